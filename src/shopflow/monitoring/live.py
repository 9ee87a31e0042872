"""Gate 4: is production still better than the model it replaced, on labels seen since?

Both models score the *same* rows: feature rows at cutoffs at or after production's
deployment watermark whose labels have matured (``purchase_labels`` only holds cutoffs
whose horizon has passed). Neither model saw those labels in training, so the
comparison is fair. If production's primary metric is worse than the previous model's by
more than ``monitoring.live_tolerance``, production is rolled back to the previous model
(ledger row with the numbers, a ``rollback`` alert; with automatic rollback off, a
``gate_blocked`` alert).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from shopflow.settings import Settings
    from shopflow.training.model import PropensityModel

logger = logging.getLogger(__name__)


@dataclass
class LiveComparison:
    """Production vs previous on the same matured rows.

    Attributes:
        metric: the primary metric compared.
        production: production's metrics on the rows.
        previous: the previous model's metrics on the same rows.
        delta: production minus previous on ``metric``, signed so that negative = worse.
        tolerance: the allowed drop.
        rows: matured rows scored.
    """

    metric: str
    production: dict[str, float]
    previous: dict[str, float]
    delta: float
    tolerance: float
    rows: int

    @property
    def regressed(self) -> bool:
        return self.delta < -self.tolerance


@dataclass
class LiveGateResult:
    """What gate 4 found and did."""

    status: str  # pass | regressed | skipped
    reason: str
    production_version: str | None = None
    previous_version: str | None = None
    watermark: str | None = None
    comparison: dict[str, Any] | None = None
    rolled_back_to: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def compare_models(production: PropensityModel, previous: PropensityModel,
                   frame: pd.DataFrame, *, metric: str, tolerance: float,
                   threshold: float = 0.5) -> LiveComparison:
    """Score both models on ``frame`` (features + ``label``) and compare ``metric``."""
    import numpy as np

    from shopflow.evaluation.metrics import classification_metrics, higher_is_better

    labels = frame["label"].to_numpy(dtype=np.int64)
    prod = classification_metrics(labels, production.predict_proba(frame), threshold=threshold)
    prev = classification_metrics(labels, previous.predict_proba(frame), threshold=threshold)
    if metric not in prod:
        raise ValueError(f"unknown metric {metric!r}; known: {sorted(prod)}")
    raw = prod[metric] - prev[metric]
    delta = raw if higher_is_better(metric) else -raw
    return LiveComparison(metric=metric, production=prod, previous=prev,
                          delta=float(delta), tolerance=tolerance, rows=len(frame))


def matured_rows(settings: Settings, watermark: str) -> pd.DataFrame:
    """Labelled feature rows at cutoffs at or after ``watermark``."""
    import pandas as pd

    from shopflow.monitoring.reference import labelled_rows

    frame = labelled_rows(settings)
    stamp = pd.Timestamp(watermark)
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    return frame[frame["cutoff_time"] >= stamp].reset_index(drop=True)


def run_live_gate(settings: Settings, *, auto_rollback: bool = True,
                  actor: str = "shopflow-monitoring") -> LiveGateResult:
    """Gate 4 end to end: find the models and rows, compare, roll back on regression."""
    from shopflow.deploy import rollback
    from shopflow.ledger import Ledger
    from shopflow.monitoring.reference import deployment_watermark
    from shopflow.registry import load_model

    ledger = Ledger(settings.ledger_url)
    try:
        production = ledger.production()
        if production is None:
            return LiveGateResult(status="skipped", reason="no production model yet")
        previous = ledger.previous_production()
        if previous is None:
            return LiveGateResult(status="skipped", production_version=production.version,
                                  reason="no previous model to compare with")
        watermark = deployment_watermark(settings, production.version)
        if watermark is None:
            candidate = ledger.candidate(production.version)
            watermark = candidate.data_window[1] if candidate else None
        if watermark is None:
            return LiveGateResult(status="skipped", production_version=production.version,
                                  previous_version=previous,
                                  reason="no deployment watermark for production")
        rows = matured_rows(settings, watermark)
        minimum = settings.monitoring.min_matured_rows
        if len(rows) < minimum or rows["label"].nunique() < 2:
            return LiveGateResult(
                status="skipped", production_version=production.version,
                previous_version=previous, watermark=watermark,
                reason=f"{len(rows)} matured rows since {watermark} "
                       f"(need {minimum} with both labels)",
            )
        comparison = compare_models(
            load_model(settings, production.version), load_model(settings, previous),
            rows, metric=settings.gate.primary_metric,
            tolerance=settings.monitoring.live_tolerance, threshold=settings.training.threshold,
        )
        numbers = (f"{comparison.metric} {comparison.production[comparison.metric]:.4f} vs "
                   f"{comparison.previous[comparison.metric]:.4f} on {comparison.rows} rows "
                   f"matured since {watermark}")
        result = LiveGateResult(
            status="regressed" if comparison.regressed else "pass",
            reason=numbers, production_version=production.version, previous_version=previous,
            watermark=watermark, comparison=asdict(comparison),
        )
        if comparison.regressed:
            if auto_rollback:  # the rollback raises the alert (kind "rollback")
                rollback(settings, to_version=previous, actor=actor,
                         from_version=production.version,
                         reason=f"gate 4: live regression, {numbers}",
                         details={"gate": "live", "comparison": asdict(comparison)})
                result.rolled_back_to = previous
            else:
                from shopflow.alerts import send_alert

                send_alert(settings, "gate_blocked",
                           f"gate 4: production {production.version} regressed against "
                           f"{previous}: {numbers} (tolerance {comparison.tolerance}); "
                           "automatic rollback is off",
                           {"gate": "live", "production_version": production.version,
                            "previous_version": previous, "comparison": asdict(comparison)})
        return result
    finally:
        ledger.close()

