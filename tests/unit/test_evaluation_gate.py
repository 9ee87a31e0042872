"""Gate 2's rules on evaluations with chosen numbers (no models needed)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from shopflow.evaluation.evaluate import ModelEvaluation
from shopflow.evaluation.gate import (
    ForcedPromotionError,
    GateDecision,
    PairedScores,
    gate_decision,
)
from shopflow.settings import GateSettings


def _eval(version: str, auc: float, log_loss: float = 0.40, *, family: str = "lightgbm",
          role: str = "candidate", slice_auc: tuple[float, float] | None = None) -> ModelEvaluation:
    new, returning = slice_auc or (auc, auc)
    return ModelEvaluation(
        version=version, family=family, feature_service="propensity_v1", role=role,
        metrics={"roc_auc": auc, "log_loss": log_loss, "rows": 1000.0},
        slices={"is_returning_buyer": {
            "new": {"roc_auc": new, "rows": 400.0},
            "returning": {"roc_auc": returning, "rows": 600.0}}},
        calibration=[], curves={},
    )


GATE = GateSettings()  # roc_auc, +0.002, log_loss 0.02, slice_roc_auc 0.03


def test_better_challenger_is_promoted() -> None:
    d = gate_decision(_eval("new", 0.80), champion=_eval("old", 0.78, role="champion"),
                      baseline=None, gate=GATE)
    assert d.promote and not d.forced and d.gate_passed
    assert d.reference_role == "champion" and d.reference_version == "old"
    assert "0.8000 vs 0.7800" in d.explanation and "promoted" in d.explanation


def test_too_small_improvement_is_rejected_naming_the_metric() -> None:
    d = gate_decision(_eval("new", 0.7810), champion=_eval("old", 0.78, role="champion"),
                      baseline=None, gate=GATE)
    assert not d.promote
    assert "roc_auc beats champion" in d.reason and "failed" in d.reason


def test_log_loss_guard_blocks_a_better_ranking_with_worse_probabilities() -> None:
    d = gate_decision(_eval("new", 0.85, log_loss=0.50),
                      champion=_eval("old", 0.78, log_loss=0.40, role="champion"),
                      baseline=None, gate=GATE)
    assert not d.promote
    assert "guard log_loss" in d.reason


def test_slice_guard_blocks_a_regression_on_new_users() -> None:
    d = gate_decision(_eval("new", 0.80, slice_auc=(0.60, 0.85)),
                      champion=_eval("old", 0.78, slice_auc=(0.70, 0.80), role="champion"),
                      baseline=None, gate=GATE)
    assert not d.promote
    assert "is_returning_buyer=new" in d.reason


def test_first_run_promotes_the_winner_only_if_it_beats_the_baseline() -> None:
    # behaviour change (issue "Models that win on real shop data", item 8): a winner that
    # loses to the baseline no longer blocks the first run; the baseline ships instead
    base = _eval("base", 0.75, family="baseline")
    first = gate_decision(_eval("new", 0.80), champion=None, baseline=base, gate=GATE)
    assert first.promote and first.challenger_version == "new"
    assert first.reference_role == "baseline"
    d = gate_decision(_eval("new", 0.70), champion=None, baseline=base, gate=GATE)
    assert d.promote and d.challenger_version == "base" and d.challenger_family == "baseline"
    assert d.reason.startswith(
        "baseline promoted: no learned family beat it by min_improvement")
    assert d.reference_role == "candidate" and d.reference_version == "new"
    itself = gate_decision(base, champion=None, baseline=base, gate=GATE)
    assert itself.promote and "baseline itself" in itself.explanation
    assert itself.reason.startswith("baseline promoted")


def test_first_run_floors_block_a_model_no_better_than_chance() -> None:
    base = _eval("base", 0.52, family="baseline")
    d = gate_decision(_eval("new", 0.51), champion=None, baseline=base, gate=GATE)
    assert not d.promote and d.challenger_version == "base"
    assert "floor roc_auc >= 0.55" in d.reason and "baseline not promoted" in d.reason
    miscalibrated = _eval("base", 0.75, family="baseline")
    miscalibrated.metrics["ece"] = 0.3
    d = gate_decision(miscalibrated, champion=None, baseline=miscalibrated, gate=GATE)
    assert not d.promote and "floor ece <= 0.1" in d.reason
    lone = gate_decision(_eval("new", 0.7), champion=None, baseline=None, gate=GATE)
    assert lone.promote and "absolute floors" in lone.reason


def test_first_run_slice_floor_and_small_slices_are_reported_not_guarded() -> None:
    bad_slice = _eval("new", 0.8, slice_auc=(0.45, 0.85))
    d = gate_decision(bad_slice, champion=None, baseline=None, gate=GATE)
    assert not d.promote and "floor roc_auc on is_returning_buyer=new" in d.reason
    bad_slice.slices["is_returning_buyer"]["new"]["positive_rate"] = 0.01  # 4 positives
    d = gate_decision(bad_slice, champion=None, baseline=None, gate=GATE)
    assert d.promote
    info = next(c for c in d.checks if c.name == "floor roc_auc on is_returning_buyer=new")
    assert not info.blocking and "gate.min_slice_positives" in info.note


def _paired(n: int, gains: dict[str, float], seed: int = 0) -> PairedScores:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    return PairedScores(labels=y, scores={v: rng.random(n) + g * y for v, g in gains.items()})


def _scored(version: str, family: str, paired: PairedScores, role: str = "candidate"
            ) -> ModelEvaluation:
    y, p = paired.labels, paired.scores[version]
    e = _eval(version, roc_auc_score(y, p), family=family, role=role)
    e.metrics["rows"] = float(len(y))
    return e


def test_a_more_complex_model_needs_the_interval_to_clear_min_improvement() -> None:
    gate = GateSettings(min_improvement=0.01, guard_tolerances={})
    # a small, noisy gain: the point estimate clears 0.01, the interval's lower bound not
    paired = _paired(300, {"base": 0.3, "torch": 0.34}, seed=3)
    base, torch = _scored("base", "baseline", paired), _scored("torch", "torch", paired)
    assert torch.metrics["roc_auc"] - base.metrics["roc_auc"] >= 0.01
    d = gate_decision(torch, champion=None, baseline=base, gate=gate, paired=paired)
    assert d.promote and d.challenger_version == "base"
    compare = next(c for c in d.checks if c.interval is not None)
    assert compare.interval is not None and compare.interval["lower"] < 0.01
    assert compare.interval["resamples"] == gate.bootstrap_resamples
    assert compare.interval["seed"] == gate.bootstrap_seed
    assert "CI [" in d.reason and "lower bound" in compare.note
    again = gate_decision(torch, champion=None, baseline=base, gate=gate, paired=paired)
    assert again.checks[0].interval == compare.interval  # seeded: the same interval
    # a clear gain on many rows clears it
    paired = _paired(4000, {"base": 0.1, "torch": 0.5}, seed=4)
    base, torch = _scored("base", "baseline", paired), _scored("torch", "torch", paired)
    d = gate_decision(torch, champion=None, baseline=base, gate=gate, paired=paired)
    assert d.promote and d.challenger_version == "torch" and "CI [" in d.reason


def test_against_the_champion_the_interval_applies_to_more_complex_families_only() -> None:
    gate = GateSettings(min_improvement=0.01, guard_tolerances={})
    paired = _paired(300, {"champ": 0.3, "lgbm": 0.34}, seed=3)  # as the test above
    paired = PairedScores(labels=paired.labels,
                          scores={**paired.scores, "odd": paired.scores["lgbm"]})
    champ = _scored("champ", "lightgbm", paired, role="champion")
    same = gate_decision(_scored("lgbm", "lightgbm", paired), champion=champ, baseline=None,
                         gate=gate, paired=paired)
    assert same.promote  # same complexity: the point estimate decides, as before
    assert same.checks[0].interval is not None  # but the interval is reported
    unknown = gate_decision(_scored("odd", "mystery_family", paired), champion=champ,
                            baseline=None, gate=gate, paired=paired)
    assert not unknown.promote and "lower bound" in unknown.reason


def test_the_production_model_is_not_promoted_again() -> None:
    same = _eval("v1", 0.8)
    d = gate_decision(same, champion=_eval("v1", 0.8, role="champion"), baseline=None, gate=GATE)
    assert not d.promote and "already" in d.explanation


def test_forced_promotion_needs_a_reason_and_keeps_the_verdict() -> None:
    worse, champ = _eval("new", 0.70), _eval("old", 0.78, role="champion")
    with pytest.raises(ForcedPromotionError, match="reason"):
        gate_decision(worse, champion=champ, baseline=None, gate=GATE, force_promote=True)
    d = gate_decision(worse, champion=champ, baseline=None, gate=GATE, force_promote=True,
                      force_reason="hotfix for holiday traffic", actor="alice")
    assert d.promote and d.forced and not d.gate_passed
    assert "alice" in d.reason and "hotfix for holiday traffic" in d.reason
    assert "would have rejected" in d.explanation


def test_other_primary_metric_and_round_trip() -> None:
    gate = GateSettings(primary_metric="log_loss", min_improvement=0.01, guard_tolerances={})
    d = gate_decision(_eval("new", 0.7, log_loss=0.30),
                      champion=_eval("old", 0.7, log_loss=0.35, role="champion"),
                      baseline=None, gate=gate)
    assert d.promote
    again = GateDecision.from_dict(d.to_dict())
    assert again == d
