"""The monitoring DAG's stages: feature and prediction drift, the drift verdict, gate 4
(on served traffic and as a backtest), the training/serving skew check.

They wrap :mod:`shopflow.monitoring` (drift measures, training references, the live gate)
the way the other stage modules wrap their parts, and live beside them so the stage layer
depends on monitoring and never the other way round.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shopflow.pipeline.vocabulary import StageSkipped

if TYPE_CHECKING:
    import pandas as pd

    from shopflow.pipeline.vocabulary import StageContext, StageResult
    from shopflow.settings import Settings
    from shopflow.training.model import PropensityModel

logger = logging.getLogger(__name__)

_NOT_FEATURES = {"user_id", "cutoff_time", "label", "label_window_end", "__score__",
                 "event_timestamp", "created"}


@dataclass(frozen=True)
class _DriftInputs:
    """Production's model with the rows it was trained on and the rows it scores now."""

    version: str
    model: PropensityModel
    reference: pd.DataFrame
    current: pd.DataFrame


def _drift_inputs(settings: Settings) -> _DriftInputs:
    """What both drift stages compare; skipped while nothing is in production."""
    from shopflow.monitoring.reference import (
        production_and_candidate,
        reference_for,
        serving_snapshot,
    )
    from shopflow.registry import load_model

    production, candidate = production_and_candidate(settings)
    if production is None:
        raise StageSkipped("no production model yet")
    return _DriftInputs(
        version=production.version,
        model=load_model(settings, production.version),
        reference=reference_for(settings, production.version,
                                data_end=candidate.data_window[1] if candidate else None),
        current=serving_snapshot(settings),
    )


def feature_drift(settings: Settings, context: StageContext) -> StageResult:
    """PSI of each of production's features: serving snapshot vs training reference."""
    from shopflow.monitoring.drift import frame_psi

    inputs = _drift_inputs(settings)
    columns = [c for c in inputs.model.feature_names if c not in _NOT_FEATURES]
    report = frame_psi(inputs.reference, inputs.current, columns=columns,
                       threshold=settings.monitoring.drift_psi_threshold,
                       bins=settings.quality.drift_bins)
    logger.info("feature drift of %s: max PSI %.3f, drifted %s", inputs.version,
                report.max_psi, report.drifted or "none")
    return {"version": inputs.version, **report.to_dict()}


def prediction_drift(settings: Settings, context: StageContext) -> StageResult:
    """PSI of production's scores: serving snapshot vs its training reference."""
    from shopflow.monitoring.drift import psi

    inputs = _drift_inputs(settings)
    reference, current, model = inputs.reference, inputs.current, inputs.model
    ref_scores = (reference["__score__"].to_numpy() if "__score__" in reference.columns
                  else model.predict_proba(reference))
    value = psi(ref_scores, model.predict_proba(current))
    threshold = settings.monitoring.drift_psi_threshold
    logger.info("prediction drift of %s: PSI %.3f", inputs.version, value)
    return {"version": inputs.version, "psi": round(value, 6), "threshold": threshold,
            "drifted": value > threshold, "reference_rows": len(reference),
            "current_rows": len(current)}


def drift_verdict(settings: Settings, context: StageContext, *,
                  features: dict[str, Any] | None = None,
                  predictions: dict[str, Any] | None = None) -> StageResult:
    """Decide whether drift warrants retraining; skipped (no asset event) when it does not."""

    drifted_features = list((features or {}).get("drifted") or [])
    prediction_drifted = bool((predictions or {}).get("drifted"))
    if not drifted_features and not prediction_drifted:
        raise StageSkipped("no drift beyond the threshold: no retraining")
    reason = []
    if drifted_features:
        reason.append(f"features {', '.join(drifted_features[:5])}")
    if prediction_drifted:
        reason.append(f"predictions (PSI {predictions.get('psi')})")  # type: ignore[union-attr]
    message = "drift beyond threshold in " + " and ".join(reason) + ": retraining triggered"
    from shopflow.alerts import send_alert

    send_alert(settings, "drift", message, {
        "run_id": context.run_id, "version": (features or predictions or {}).get("version"),
        "drifted_features": drifted_features, "features_max_psi": (features or {}).get("max_psi"),
        "prediction_psi": (predictions or {}).get("psi"),
        "threshold": settings.monitoring.drift_psi_threshold,
    })
    return {"retrain": True, "reason": message, "drifted_features": drifted_features,
            "prediction_drift": prediction_drifted}


def live_gate(settings: Settings, context: StageContext) -> StageResult:
    """Gate 4: production judged on its served traffic (:mod:`shopflow.monitoring.
    served_gate`), then today's backtest (:mod:`shopflow.monitoring.live`) beside it;
    either rolls back on a regression.

    The result is the backtest's, with the served gate's under ``served``. When the
    served gate already rolled back, the backtest is skipped (production moved). When
    the served gate fails (e.g. the warehouse is unreachable), the backtest still runs
    and the stage then fails with the served gate's error.
    """
    from shopflow.jsonable import jsonable
    from shopflow.monitoring.live import LiveGateResult, run_live_gate
    from shopflow.monitoring.served_gate import run_served_gate

    auto = bool(context.resolved.get("auto_rollback", True))
    actor = f"{context.actor}:gate4"
    served: dict[str, Any]
    error: Exception | None = None
    try:
        on_traffic = run_served_gate(settings, auto_rollback=auto, actor=actor)
        served = on_traffic.to_dict()
    except Exception as exc:  # the backtest must still run
        logger.exception("gate 4 on served traffic failed")
        served, error, on_traffic = {"status": "failed", "reason": str(exc)}, exc, None
    if on_traffic is not None and on_traffic.rolled_back_to is not None:
        backtest = LiveGateResult(
            status="skipped", production_version=on_traffic.production_version,
            previous_version=on_traffic.previous_version,
            reason=f"gate 4 on served traffic rolled back to {on_traffic.rolled_back_to}")
    else:
        backtest = run_live_gate(settings, auto_rollback=auto, actor=actor)
    result: dict[str, Any] = jsonable({**backtest.to_dict(), "served": served})
    if error is not None:
        raise RuntimeError(f"gate 4 on served traffic failed ({type(error).__name__}: "
                           f"{error}); the backtest gave {backtest.status}: "
                           f"{backtest.reason}") from error
    return result


class SkewDetected(RuntimeError):
    """Served features or scores differ from the offline path beyond the tolerances."""

    def __init__(self, message: str, result: Any) -> None:
        super().__init__(message)
        self.result = result  # the task record keeps its numbers


def skew_check(settings: Settings, context: StageContext) -> StageResult:
    """Training/serving skew on a sample of served rows (:mod:`shopflow.monitoring.skew`);
    fails, after the ``skew`` alert, on a mismatch."""
    from shopflow.jsonable import jsonable
    from shopflow.monitoring.skew import run_skew_check

    result = run_skew_check(settings)
    if result.status == "skipped":
        raise StageSkipped(result.reason)
    if result.status == "skew":
        raise SkewDetected(f"training/serving skew: {result.reason}", result)
    answer: dict[str, Any] = jsonable(result.to_dict())
    return answer


def staleness(settings: Settings, context: StageContext) -> StageResult:
    """Model age, online-feature freshness, recommender snapshot age; alerts when stale.

    See :mod:`shopflow.monitoring.staleness`. A stale check alerts (``staleness``) but never
    fails the task: retraining or materializing is a person's (or a schedule's) call.
    """
    from shopflow.monitoring.staleness import run_staleness_checks

    return run_staleness_checks(settings).to_dict()


def experiment_readout(settings: Settings, context: StageContext) -> StageResult:
    """The A/B test's readout and decision (:mod:`shopflow.monitoring.experiment`).

    A *promote* nominates the challenger and runs gate 3 as the training DAG does
    (:func:`shopflow.pipeline.model_stages.deploy`): production moves only when the
    service serves it well; with no service answering the deploy is pending and the task
    says so (:class:`~shopflow.deploy.DeployPending`). Skipped while no test runs or no
    challenger-arm row has matured.
    """
    from shopflow.jsonable import jsonable
    from shopflow.monitoring.experiment import run_experiment_readout
    from shopflow.pipeline import model_stages

    result = run_experiment_readout(
        settings, actor=f"{context.actor}:experiment", run_id=context.run_id,
        before_promotion=lambda version: model_stages.remember_for_monitoring(settings, version))
    if result["status"] == "skipped":
        raise StageSkipped(result["reason"])
    if result["status"] == "promote" and result["record"]["recorded"]:
        registered = {"promoted": True, "version": result["challenger_version"],
                      "previous_version": result["champion_version"],
                      "reason": f"A/B test: {result['readout']['reason']}"}
        result["deploy"] = model_stages.deploy(settings, context, registered=registered)
        model_stages.post_deploy_check(settings, context, deployed=result["deploy"])
    answer: dict[str, Any] = jsonable(result)
    return answer


def shadow_readout(settings: Settings, context: StageContext) -> StageResult:
    """Champion vs shadow challenger on the same requests: agreement, score deltas and
    both models' outcomes on matured labels (:func:`shopflow.monitoring.experiment.
    run_shadow_readout`); skipped while the shadow log is empty."""
    from shopflow.jsonable import jsonable
    from shopflow.monitoring.experiment import run_shadow_readout

    result = run_shadow_readout(settings)
    if result["status"] == "skipped":
        raise StageSkipped(result["reason"])
    answer: dict[str, Any] = jsonable(result)
    return answer
