"""The run's leaderboard is ordered by the configured primary metric, in its direction."""

from __future__ import annotations

from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import pytest

from shopflow.pipeline.model_stages import leaderboard
from shopflow.pipeline.vocabulary import StageContext
from shopflow.settings import load_settings

if TYPE_CHECKING:
    from pathlib import Path


def _evaluation() -> Any:
    """Three candidates whose order differs by ROC AUC, log loss and PR AUC."""
    def candidate(version: str, **metrics: float) -> SimpleNamespace:
        return SimpleNamespace(version=version, family=version.split("-")[0], metrics=metrics,
                               validation_metrics={"roc_auc": metrics.get("roc_auc", 0.5)})

    return SimpleNamespace(
        winner="xgboost-1",
        evaluations=[
            candidate("baseline-1", roc_auc=0.70, log_loss=0.40, pr_auc=0.30),
            candidate("xgboost-1", roc_auc=0.80, log_loss=0.50, pr_auc=0.20),
            candidate("lightgbm-1", roc_auc=0.75, log_loss=0.30, pr_auc=float("nan")),
        ],
    )


@pytest.mark.parametrize(("metric", "order"), [
    ("roc_auc", ["xgboost-1", "lightgbm-1", "baseline-1"]),  # higher is better
    ("log_loss", ["lightgbm-1", "baseline-1", "xgboost-1"]),  # lower is better
    ("pr_auc", ["baseline-1", "xgboost-1", "lightgbm-1"]),  # no value (NaN) goes last
])
def test_leaderboard_is_best_first_by_the_primary_metric(metric: str, order: list[str]) -> None:
    rows = leaderboard(_evaluation(), primary_metric=metric)
    assert [r["version"] for r in rows] == order
    assert [r["winner"] for r in rows].count(True) == 1


def test_default_leaderboard_keeps_roc_auc_and_json_types() -> None:
    rows = leaderboard(_evaluation())
    assert rows[0]["version"] == "xgboost-1"
    nan_row = next(r for r in rows if r["version"] == "lightgbm-1")
    assert nan_row["metrics"]["pr_auc"] is None  # JSON has no NaN


def test_evaluate_stage_sorts_by_the_configured_gate_metric(
    shopflow_home: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The stage passes ``settings.gate.primary_metric``, not a hard-coded ``roc_auc``."""
    import shopflow.training.pipeline as training
    from shopflow.pipeline import model_stages

    evaluation = _evaluation()
    evaluation.baseline = "baseline-1"
    evaluation.to_dict = lambda: {"winner": evaluation.winner}
    monkeypatch.setattr(training.CandidateResult, "from_dict",
                        classmethod(lambda cls, data: SimpleNamespace(**data)))
    monkeypatch.setattr(training, "evaluate_candidates", lambda *a, **k: evaluation)
    monkeypatch.setattr(model_stages, "build_training_frame", lambda settings, service: None)
    settings = load_settings(gate={"primary_metric": "log_loss"})
    settings.ensure_dirs()

    result = model_stages.evaluate(settings, StageContext(run_id="r1"),
                                   candidates=[{"version": "xgboost-1"}])
    assert [r["version"] for r in result["leaderboard"]] == [
        "lightgbm-1", "baseline-1", "xgboost-1"]
