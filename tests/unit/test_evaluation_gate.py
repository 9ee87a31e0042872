"""Gate 2's rules on evaluations with chosen numbers (no models needed)."""

from __future__ import annotations

import pytest

from shopflow.evaluation.evaluate import ModelEvaluation
from shopflow.evaluation.gate import ForcedPromotionError, GateDecision, gate_decision
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


def test_first_run_must_beat_the_baseline() -> None:
    base = _eval("base", 0.75, family="baseline")
    assert gate_decision(_eval("new", 0.80), champion=None, baseline=base, gate=GATE).promote
    d = gate_decision(_eval("new", 0.70), champion=None, baseline=base, gate=GATE)
    assert not d.promote and d.reference_role == "baseline"
    itself = gate_decision(base, champion=None, baseline=base, gate=GATE)
    assert not itself.promote and "baseline itself" in itself.explanation


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
