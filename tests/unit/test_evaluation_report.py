"""The run report shows each search trial's calibration map."""

from __future__ import annotations

from shopflow.evaluation.evaluate import ModelEvaluation, evaluate_model
from shopflow.evaluation.report import TOP_FEATURES_LISTED, write_report
from shopflow.settings import Settings, load_settings
from shopflow.training.pipeline import CandidateResult, train_family
from shopflow.training.split import split_by_cutoff
from shopflow.training.synthetic import synthetic_training_frame


def _baseline_on_its_test_rows(trials: int) -> tuple[Settings, CandidateResult, ModelEvaluation]:
    """A baseline fitted on a small synthetic shop, evaluated on its test cutoff."""
    quick = load_settings(training={"search_trials": trials})
    frame = synthetic_training_frame(rows=1500, cutoffs=5, seed=17)
    result = train_family(quick, "baseline", frame, "report", dry_run=True)
    assert result.model is not None
    test = frame.iloc[split_by_cutoff(frame).test].reset_index(drop=True)
    return quick, result, evaluate_model(result.model, test, version=result.version)


def test_report_lists_the_calibration_of_every_trial(settings: Settings) -> None:
    quick, result, evaluation = _baseline_on_its_test_rows(trials=2)
    # an old run's trials (before calibration) carry no calibration facts: shown as a dash
    trials = {"baseline": result.trials,
              "old": [{"trial": 0, "params": {"C": 1.0}, "seconds": 0.1, "roc_auc": 0.7}]}
    path = write_report(quick, "run-cal", [evaluation], winner=result.version, trials=trials)
    text = path.read_text()
    method = result.info["calibration"]["method"]
    assert text.count(f'<td class="l">{method}</td>') == len(result.trials) == 2
    assert '<td class="l">–</td>' in text


def test_report_states_purge_interval_budget_and_dropped_features(settings: Settings) -> None:
    from shopflow.training.pipeline import evaluate_candidates

    quick = load_settings(training={"search_trials": 2})
    frame = synthetic_training_frame(rows=1500, cutoffs=5, seed=17).assign(constant=3.0)
    result = train_family(quick, "baseline", frame, "report", dry_run=True)
    evaluation = evaluate_candidates(quick, [result], frame, run_id="report", dry_run=True)
    (candidate,) = evaluation.evaluations
    assert candidate.uncertainty["ci95"][0] < candidate.uncertainty["mean"]
    facts = evaluation.training["baseline"]
    # the synthetic shop's purchase days equal its orders, so that twin is pruned too
    assert facts["dropped_features"] == [
        {"feature": "purchase_days_lifetime", "reason": "identical", "to": "orders_lifetime"},
        {"feature": "constant", "reason": "constant", "value": 3.0},
    ]
    assert facts["search"]["trials_planned"] == 2 and facts["params"] == result.params
    text = write_report(quick, "run-facts", evaluation.evaluations, winner=result.version,
                        split=evaluation.split, trials=evaluation.trials,
                        training=evaluation.training).read_text()
    for expected in ("How sure (test ROC AUC)", "95% percentile bootstrap",
                     "How each candidate was fitted", "constant (constant)", "2 of 2",
                     "Out of time: a row's", "ROC AUC drop when shuffled"):
        assert expected in text, expected
    # the ten most important features of each model are listed, not fewer
    listed = text.split("<h2>Top features per model</h2>")[1].split("<h2>")[0]
    top = [t["feature"] for t in candidate.importance[:TOP_FEATURES_LISTED]]
    assert len(top) == min(TOP_FEATURES_LISTED, len(candidate.importance)) >= 10
    assert all(f"{name} " in listed for name in top)


def test_report_says_what_training_rows_were_sampled(settings: Settings) -> None:
    from shopflow.training.pipeline import evaluate_candidates

    frame = synthetic_training_frame(rows=6000, cutoffs=5, seed=17)
    bounded = load_settings(training={"search_trials": 1, "max_rows": 2000})
    result = train_family(bounded, "baseline", frame, "report", dry_run=True)
    evaluation = evaluate_candidates(bounded, [result], frame, run_id="report", dry_run=True)
    facts = evaluation.training["baseline"]["sampling"]
    assert facts["sampled"] and facts["rows_after"] < facts["rows_before"]
    text = write_report(bounded, "run-sampled", evaluation.evaluations, winner=result.version,
                        training=evaluation.training).read_text()
    for expected in (f"{facts['rows_after']:,} of {facts['rows_before']:,}",
                     f"all {facts['positives_kept']:,} positives",
                     f"keep rate {facts['negative_keep_rate']}"):
        assert expected in text, expected


def test_report_shows_examples_evaluated_without_pseudonyms(settings: Settings) -> None:
    """evaluate_model without ``hash_id`` names no user: the report shows a dash."""
    from dataclasses import replace

    quick, result, evaluated = _baseline_on_its_test_rows(trials=1)
    reasons = [{"feature": "orders_lifetime", "value": 2.0, "contribution": 0.25}]
    evaluation = replace(evaluated, examples=[{"probability": 0.9, "label": 1,
                                               "reasons": reasons}])
    text = write_report(quick, "run-anon", [evaluation], winner=result.version).read_text()
    why = text.split("Why these scores")[1].split("<h2>")[0]
    assert "<td>–</td>" in why and "orders_lifetime=" in why and "(+0.250)" in why
