"""A/B readout and decision rule on synthetic matured outcomes, and its ledger records.

Outcomes are simulated the way the service produces them: shoppers split by the sticky
hash of :mod:`shopflow.serving.experiment`, each asked for more than once, labels drawn
at a purchase rate per arm and scores that separate buyers from the rest with a chosen
strength per arm (so one arm's model is truly better).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from shopflow.ledger import Ledger, ProductionChangedError
from shopflow.monitoring.experiment import (
    experiment_decision,
    rate_difference,
    read_experiment,
    read_shadow,
    record_decision,
    run_experiment_readout,
    wilson_interval,
)
from shopflow.serving.experiment import CHALLENGER, assign_arm
from shopflow.settings import ExperimentSettings, load_settings

SALT = "test-salt"


def synthetic_outcomes(*, users: int, share: float = 0.5, champion_signal: float = 1.0,
                       challenger_signal: float = 1.0, champion_rate: float = 0.3,
                       challenger_rate: float = 0.3, repeats: int = 2,
                       seed: int = 7, challenger: str = "v-new") -> pd.DataFrame:
    """Served predictions with matured labels; ``*_signal`` is how far each arm's model
    moves a buyer's score up (0: a coin flip)."""
    rng = np.random.default_rng(seed)
    rows = []
    start = pd.Timestamp("2026-11-01", tz="UTC")
    for i in range(users):
        uid = f"u{i}"
        arm = assign_arm(SALT, uid, share)
        signal, rate = ((challenger_signal, challenger_rate) if arm == CHALLENGER
                        else (champion_signal, champion_rate))
        label = int(rng.random() < rate)
        for r in range(repeats):
            logit = -1.0 + signal * (2 * label - 1) + rng.normal()
            rows.append({"user": f"h{i}", "arm": arm,
                         "model_version": challenger if arm == CHALLENGER else "v-old",
                         "score": 1 / (1 + math.exp(-logit)), "label": label,
                         "at": start + pd.Timedelta(minutes=i + 1000 * r)})
    return pd.DataFrame(rows)


# a guardrail of 0.05: 1,500 shoppers per arm bound a purchase-rate difference near 0.3
# within about +-0.033 (at the default 0.02 a promotion needs about 4,000 per arm)
CONFIG = ExperimentSettings(enabled=True, min_rows_per_arm=300, resamples=300,
                            purchase_rate_tolerance=0.05)


def test_wilson_and_newcombe_match_published_values() -> None:
    # Newcombe (1998), Statistics in Medicine 17: 81/263 and the 56/70 vs 48/80 example
    low, high = wilson_interval(81, 263)
    assert (round(low, 4), round(high, 4)) == (0.2553, 0.3662)
    d, lo, hi = rate_difference(48, 80, 56, 70)
    assert (round(d, 4), round(lo, 4), round(hi, 4)) == (0.2, 0.0524, 0.3339)


def test_sticky_hash_splits_at_the_share() -> None:
    arms = [assign_arm(SALT, f"user-{i}", 0.2) for i in range(20_000)]
    share = arms.count(CHALLENGER) / len(arms)
    assert abs(share - 0.2) < 0.015
    assert arms == [assign_arm(SALT, f"user-{i}", 0.2) for i in range(20_000)]  # sticky
    other = [assign_arm("another-salt", f"user-{i}", 0.2) for i in range(20_000)]
    assert other != arms  # a new salt reshuffles


def test_better_challenger_is_promoted() -> None:
    frame = synthetic_outcomes(users=3000, champion_signal=0.6, challenger_signal=1.6)
    readout = read_experiment(frame, CONFIG, champion_version="v-old",
                              challenger_version="v-new")
    assert readout.decision == "promote", readout.reason
    auc = readout.differences["roc_auc"]
    assert auc.ci[0] > 0 and auc.estimate > 0
    assert readout.challenger.roc_auc > readout.champion.roc_auc
    # one row per shopper: repeats do not count twice
    assert readout.champion.n + readout.challenger.n == 3000
    assert readout.challenger.roc_auc_ci[0] < readout.challenger.roc_auc \
        < readout.challenger.roc_auc_ci[1]


def test_worse_challenger_is_stopped() -> None:
    frame = synthetic_outcomes(users=3000, champion_signal=1.6, challenger_signal=0.4)
    readout = read_experiment(frame, CONFIG)
    assert readout.decision == "stop", readout.reason
    assert readout.differences["roc_auc"].ci[1] < 0
    assert "worse" in readout.reason


def test_too_few_rows_continue_and_equal_models_continue() -> None:
    small = read_experiment(synthetic_outcomes(users=300, challenger_signal=3.0), CONFIG)
    assert small.decision == "continue"
    assert "matured shoppers of the 300 needed" in small.reason
    same = read_experiment(synthetic_outcomes(users=3000), CONFIG)
    assert same.decision == "continue", same.reason
    low, high = same.differences["roc_auc"].ci
    assert low < 0 < high


def test_purchase_rate_guardrail_stops_a_better_ranker() -> None:
    frame = synthetic_outcomes(users=6000, champion_signal=0.6, challenger_signal=1.6,
                               champion_rate=0.40, challenger_rate=0.22)
    readout = read_experiment(frame, CONFIG)
    assert readout.decision == "stop", readout.reason
    assert "guardrail" in readout.reason
    assert readout.differences["roc_auc"].ci[0] > 0  # better ranking, worse shop


def test_purchase_rate_as_primary_metric() -> None:
    config = CONFIG.model_copy(update={"primary_metric": "purchase_rate"})
    frame = synthetic_outcomes(users=6000, champion_rate=0.25, challenger_rate=0.35)
    readout = read_experiment(frame, config)
    assert readout.decision == "promote", readout.reason
    assert readout.differences["purchase_rate"].ci[0] > 0


def test_rows_of_other_versions_and_bad_input() -> None:
    frame = synthetic_outcomes(users=1000)
    readout = read_experiment(frame, CONFIG, challenger_version="v-other")
    assert readout.challenger.n == 0 and readout.decision == "continue"
    with pytest.raises(ValueError, match="'arm'"):
        read_experiment(frame.drop(columns=["arm"]), CONFIG)
    with pytest.raises(ValueError, match="'label' must be 0/1"):
        read_experiment(frame.assign(label=2), CONFIG)


def test_decisions_are_recorded_in_the_ledger(settings) -> None:
    ledger = Ledger(settings.ledger_url)
    for version in ("v-old", "v-new", "v-bad"):
        ledger.record_candidate(version=version, family="xgboost", metrics={"roc_auc": 0.7},
                                params={}, feature_service="propensity_v1")
    ledger.promote("v-old", actor="test", reason="first")
    better = read_experiment(
        synthetic_outcomes(users=3000, champion_signal=0.6, challenger_signal=1.6), CONFIG,
        champion_version="v-old", challenger_version="v-new")
    recorded = record_decision(settings, better, actor="test:experiment", run_id="r1")
    assert recorded["recorded"] and recorded["event"] == "promotion"
    pending = ledger.pending()
    assert pending is not None and pending.version == "v-new"  # gate 3 moves production
    assert ledger.production().version == "v-old"
    event = experiment_decision(settings, "v-new")
    assert event.details["decision"] == "promote"
    assert event.details["readout"]["differences"]["roc_auc"]["ci"][0] > 0
    again = record_decision(settings, better, actor="test:experiment", run_id="r1")
    assert not again["recorded"]  # a retried task does not decide twice
    enabled = load_settings(serving={"experiment": {"enabled": True}})
    paused = run_experiment_readout(enabled, actor="test")  # gate 3 decides first
    assert paused["status"] == "skipped" and "v-new is deploy pending" in paused["reason"]

    worse = read_experiment(
        synthetic_outcomes(users=3000, champion_signal=1.6, challenger_signal=0.4,
                           challenger="v-bad"), CONFIG,
        champion_version="v-old", challenger_version="v-bad")
    stopped = record_decision(settings, worse, actor="test:experiment")
    assert stopped["event"] == "rejection"
    event = experiment_decision(settings, "v-bad")
    assert event.kind == "rejection" and event.details["stage"] == "experiment"
    assert event.previous_version == "v-old"

    undecided = read_experiment(synthetic_outcomes(users=200), CONFIG,
                                champion_version="v-old", challenger_version="v-bad2")
    kept = record_decision(settings, undecided, actor="test")
    assert kept["event"] is None and kept["readout_path"].endswith(".json")
    assert len(list((settings.reports_dir / "experiments").glob("*.json"))) == 4

    ledger.drop_candidate("v-new", actor="test", reason="gate 3 failed")
    ledger.promote("v-bad", actor="test", reason="someone else promoted")
    late = read_experiment(
        synthetic_outcomes(users=3000, champion_signal=0.6, challenger_signal=1.6, seed=3,
                           challenger="v-late"),
        CONFIG, champion_version="v-old", challenger_version="v-late")
    with pytest.raises(ProductionChangedError):  # promote only against the measured champion
        record_decision(settings, late, actor="test")
    ledger.close()


def test_shadow_readout_agreement_and_outcomes() -> None:
    rng = np.random.default_rng(1)
    n = 2000
    labels = (rng.random(n) < 0.3).astype(int)
    champion = 1 / (1 + np.exp(-(-1 + 0.5 * (2 * labels - 1) + rng.normal(size=n))))
    challenger = 1 / (1 + np.exp(-(-1 + 1.5 * (2 * labels - 1) + rng.normal(size=n))))
    at = pd.Timestamp("2026-11-01", tz="UTC") + pd.to_timedelta(np.arange(n), unit="s")
    shadow = pd.DataFrame({"user": [f"h{i}" for i in range(n)], "at": at,
                           "champion_version": "v-old", "champion": champion,
                           "challenger_version": "v-new", "challenger": challenger})
    outcomes = pd.DataFrame({"user": shadow["user"], "at": at + pd.Timedelta(milliseconds=5),
                             "label": labels})
    readout = read_shadow(shadow, threshold=0.5, labels=outcomes, resamples=200)
    expected = np.mean((champion >= 0.5) == (challenger >= 0.5))
    assert readout.agreement == pytest.approx(expected)
    assert readout.max_abs_delta == pytest.approx(np.abs(champion - challenger).max())
    assert readout.matured == n
    assert readout.challenger_roc_auc > readout.champion_roc_auc
    assert readout.roc_auc_difference is not None and readout.roc_auc_difference.ci[0] > 0
    unlabelled = read_shadow(shadow, threshold=0.5)
    assert unlabelled.matured == 0 and unlabelled.roc_auc_difference is None


def test_readout_stages_skip_while_nothing_runs(settings) -> None:
    from shopflow.pipeline.stages import stage_function
    from shopflow.pipeline.vocabulary import StageContext, StageSkipped

    context = StageContext(run_id="m1", dag_id="shopflow_monitoring")
    with pytest.raises(StageSkipped, match="serving.experiment.enabled is false"):
        stage_function("experiment_readout")(settings, context)
    with pytest.raises(StageSkipped, match="shadow log is empty"):
        stage_function("shadow_readout")(settings, context)
