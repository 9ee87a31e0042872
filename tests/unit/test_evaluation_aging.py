"""The age curve: a model scored per held-out cutoff against its age, and the retraining age."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from shopflow.evaluation.aging import AgeCurve, AgePoint, age_curve, retraining_age
from shopflow.settings import ConfigError, Settings, load_settings

DAY = 86400.0
TRAINED_UNTIL = pd.Timestamp("2024-03-03", tz="UTC")


def _point(age_days: float, value: float, metric: str = "roc_auc") -> AgePoint:
    return AgePoint(cutoff=(TRAINED_UNTIL + pd.Timedelta(days=age_days)).isoformat(),
                    age_seconds=age_days * DAY, part="test", rows=100, positives=30,
                    metrics={metric: value})


def _decaying_frame(seed: int = 3) -> tuple[pd.DataFrame, np.ndarray]:
    """Training and held-out cutoffs whose label follows the score less and less."""
    rng = np.random.default_rng(seed)
    frames = []
    for step in range(-3, 7):  # cutoffs before and after TRAINED_UNTIL, a week apart
        score = rng.uniform(0, 1, 800)
        noise = 0.15 + 0.25 * max(step, 0)  # the signal fades as the cutoff ages
        frames.append(pd.DataFrame({
            "user_id": [f"u{i}" for i in range(800)],
            "event_timestamp": TRAINED_UNTIL + pd.Timedelta(days=7 * step),
            "score": score,
            "label": (score + rng.normal(0, noise, 800) > 0.6).astype(int),
        }))
    frame = pd.concat(frames, ignore_index=True)
    return frame, frame["score"].to_numpy()


def test_retraining_age_is_the_first_age_beyond_the_tolerance() -> None:
    points = [_point(7, 0.80), _point(14, 0.79), _point(21, 0.775), _point(28, 0.70)]
    reference, age, dropped = retraining_age(points, metric="roc_auc", tolerance=0.02)
    assert (reference, age, dropped) == (0.80, 21 * DAY, True)
    # a wider tolerance: only the last point is worse by more than it
    assert retraining_age(points, metric="roc_auc", tolerance=0.05)[1:] == (28 * DAY, True)


def test_retraining_age_without_a_drop_is_the_last_measured_age() -> None:
    points = [_point(7, 0.80), _point(14, float("nan")), _point(21, 0.81), _point(28, 0.79)]
    assert retraining_age(points, metric="roc_auc", tolerance=0.02) == (0.80, 28 * DAY, False)
    # the youngest finite value is the reference, a NaN point is never an age
    nan_first = [_point(7, float("nan")), _point(14, 0.8), _point(21, 0.7)]
    assert retraining_age(nan_first, metric="roc_auc", tolerance=0.02) == (0.8, 21 * DAY, True)
    assert retraining_age([_point(7, float("nan"))], metric="roc_auc",
                          tolerance=0.02) == (None, None, False)


def test_a_dip_inside_its_own_interval_is_not_a_drop() -> None:
    dip = AgePoint(cutoff="c", age_seconds=21 * DAY, part="test", rows=100, positives=30,
                   metrics={"roc_auc": 0.77}, roc_auc_ci95=[0.74, 0.80])
    clear = AgePoint(cutoff="d", age_seconds=28 * DAY, part="test", rows=100, positives=30,
                     metrics={"roc_auc": 0.70}, roc_auc_ci95=[0.66, 0.74])
    points = [_point(7, 0.80), dip, clear]
    # 0.77 is 0.03 below 0.80, but its interval reaches 0.80: only the clear drop counts
    assert retraining_age(points, metric="roc_auc", tolerance=0.02) == (0.80, 28 * DAY, True)
    assert retraining_age(points[:2], metric="roc_auc", tolerance=0.02) == (0.80, 21 * DAY,
                                                                           False)


def test_retraining_age_of_a_lower_is_better_metric_looks_for_a_rise() -> None:
    points = [_point(7, 0.40, "log_loss"), _point(14, 0.35, "log_loss"),
              _point(21, 0.43, "log_loss")]
    assert retraining_age(points, metric="log_loss", tolerance=0.02) == (0.40, 21 * DAY, True)


def test_age_curve_scores_each_held_out_cutoff_by_age() -> None:
    frame, scores = _decaying_frame()
    parts = {(TRAINED_UNTIL + pd.Timedelta(days=28)).isoformat(): "validation",
             (TRAINED_UNTIL + pd.Timedelta(days=42)).isoformat(): "test"}
    newest = TRAINED_UNTIL + pd.Timedelta(days=42 + 30)
    curve = age_curve(frame, scores, trained_until=TRAINED_UNTIL, metric="roc_auc",
                      tolerance=0.02, parts=parts, newest_event=newest)
    assert [p.age_seconds / DAY for p in curve.points] == [7, 14, 21, 28, 35, 42]
    assert [p.part for p in curve.points] == ["purged"] * 3 + ["validation", "purged", "test"]
    expected = []
    for point in curve.points:
        rows = frame[pd.to_datetime(frame["event_timestamp"]) == pd.Timestamp(point.cutoff)]
        assert point.rows == len(rows) and point.positives == int(rows["label"].sum())
        auc = roc_auc_score(rows["label"], rows["score"])
        assert point.metrics["roc_auc"] == pytest.approx(auc)
        assert point.metrics["pr_auc"] == pytest.approx(
            average_precision_score(rows["label"], rows["score"]))
        low, high = point.roc_auc_ci95
        assert low < auc < high
        expected.append(auc)
    # the first age whose whole AUC interval is below the youngest's minus the tolerance
    first = next(i for i, point in enumerate(curve.points)
                 if point.roc_auc_ci95[1] < expected[0] - 0.02)
    assert curve.dropped and curve.reference == pytest.approx(expected[0])
    assert curve.retrain_age_seconds == curve.points[first].age_seconds
    assert curve.label_lag_seconds == 30 * DAY
    assert curve.max_served_age_seconds == curve.retrain_age_seconds + 30 * DAY
    assert curve.served_age_seconds == (42 + 30) * DAY  # the newest event's age
    assert curve.trained_until == TRAINED_UNTIL.isoformat()
    # the curve reads only the cutoffs and labels: the training run passes just those
    slim = age_curve(frame[["event_timestamp", "label"]], scores, trained_until=TRAINED_UNTIL,
                     metric="roc_auc", tolerance=0.02, parts=parts, newest_event=newest)
    assert slim == curve


def test_age_curve_round_trips_through_json_and_rejects_unknown_metrics() -> None:
    import json

    frame, scores = _decaying_frame(seed=5)
    curve = age_curve(frame, scores, trained_until=TRAINED_UNTIL, metric="pr_auc",
                      tolerance=0.5)  # nothing drops by half: the last measured age
    assert not curve.dropped and curve.retrain_age_seconds == curve.points[-1].age_seconds
    data = json.loads(json.dumps(curve.to_dict()))
    # no lag given, no drop measured: the age at the last point plus the span measured
    span = curve.points[-1].age_seconds - curve.points[0].age_seconds
    assert data["max_served_age_seconds"] == curve.retrain_age_seconds + span
    assert AgeCurve.from_dict(data) == curve
    with pytest.raises(ValueError, match="unknown metric 'auc'"):
        age_curve(frame, scores, trained_until=TRAINED_UNTIL, metric="auc", tolerance=0.02)


def test_evaluation_measures_the_winners_age_curve_and_the_report_plots_it(
        settings: Settings) -> None:
    from shopflow.evaluation.report import write_report
    from shopflow.training.pipeline import evaluate_candidates, train_family
    from shopflow.training.synthetic import synthetic_training_frame

    quick = load_settings(training={"search_trials": 2})
    frame = synthetic_training_frame(rows=2000, cutoffs=8, seed=17)
    result = train_family(quick, "baseline", frame, "aging", dry_run=True)
    evaluation = evaluate_candidates(quick, [result], frame, run_id="aging", dry_run=True)
    curve = AgeCurve.from_dict(evaluation.age_curve)
    split = evaluation.split
    assert curve.trained_until == pd.Timestamp(split["train"]["cutoffs"][-1]).isoformat()
    held_out = [c for c in sorted(frame["event_timestamp"].unique())
                if c > pd.Timestamp(curve.trained_until)]
    assert [pd.Timestamp(p.cutoff) for p in curve.points] == held_out
    assert {p.part for p in curve.points} >= {"validation", "test"}
    # no published marts: the newest labels are taken to be one horizon old
    assert curve.label_lag_seconds == quick.task.horizon.total_seconds()
    text = write_report(quick, "aging", evaluation.evaluations, winner=evaluation.winner,
                        split=split, age_curve=evaluation.age_curve).read_text()
    assert "How fast the winner goes stale" in text
    assert 'alt="Metric against model age"' in text
    assert f"{curve.retrain_age_seconds / DAY:.4g} days" in text
    assert f"already {curve.served_age_seconds / DAY:.4g} days old" in text
    assert "alerts as soon as it serves" not in text  # no drop: the limit is the served age


def test_staleness_thresholds_parse_durations_measured_and_off() -> None:
    from shopflow.monitoring.staleness import judge

    monitoring = load_settings(monitoring={"max_model_age": "45d",
                                           "max_feature_staleness": "off",
                                           "max_recommender_age": None}).monitoring
    assert monitoring.max_model_age == timedelta(days=45)
    assert monitoring.max_feature_staleness is None and monitoring.max_recommender_age is None
    assert load_settings().monitoring.max_model_age == "measured"
    with pytest.raises(ConfigError, match="max_feature_staleness"):
        load_settings(monitoring={"max_feature_staleness": "measured"})
    assert judge(timedelta(days=2), timedelta(days=1)) == "stale"
    assert judge(timedelta(days=1), timedelta(days=1)) == "ok"
    assert judge(None, timedelta(days=1)) == "stale"  # never materialized
    assert judge(timedelta(days=99), None) == "off"


def test_report_warns_when_the_model_is_already_past_its_measured_age(
        settings: Settings) -> None:
    from shopflow.evaluation.evaluate import evaluate_model
    from shopflow.evaluation.report import write_report
    from shopflow.training.pipeline import train_family
    from shopflow.training.synthetic import synthetic_training_frame

    frame, scores = _decaying_frame()
    curve = age_curve(frame, scores, trained_until=TRAINED_UNTIL, metric="roc_auc",
                      tolerance=0.02, newest_event=TRAINED_UNTIL + pd.Timedelta(days=72))
    assert curve.dropped and curve.served_age_seconds > curve.max_served_age_seconds
    shop = synthetic_training_frame(rows=600, cutoffs=4, seed=1)
    model = train_family(load_settings(training={"search_trials": 1}), "baseline", shop,
                         "aged", dry_run=True).model
    assert model is not None
    evaluation = evaluate_model(model, shop, version="v", explain=False)
    text = write_report(settings, "aged", [evaluation], winner="v",
                        age_curve=curve.to_dict()).read_text()
    assert "alerts as soon as it serves" in text
    assert f"already {curve.served_age_seconds / DAY:.4g} days old" in text
