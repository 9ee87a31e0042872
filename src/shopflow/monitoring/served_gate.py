"""Gate 4 on what was served: each model version scored on its own logged traffic.

The backtest (:mod:`shopflow.monitoring.live`) re-scores models on newer marts; this gate
reads what the service actually answered (the prediction log) joined with the labels
that matured since (:func:`shopflow.monitoring.outcomes.served_outcomes`), and measures
every served version on the rows it answered: rows, purchase rate, ROC AUC and PR AUC
(with a bootstrap 95 % interval of the ROC AUC).

Only the model's own answers count: cold starts (unknown shoppers) get a constant
fallback, not a model score, so they are counted and left out of the metrics.

Production is compared with the previous production model (the one a rollback would
restore): on the previous model's own served traffic when it has at least
``monitoring.min_matured_rows`` matured rows with both labels; otherwise the previous
model re-scores the feature vectors production was served on (the logged ``features``),
which compares both on the same rows. A drop of the primary metric (``gate.primary_metric``)
beyond ``monitoring.live_tolerance`` rolls production back (compare-and-set on the
version judged; ledger row with the numbers; ``rollback`` alert), or with automatic
rollback off sends a ``gate_blocked`` alert.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from shopflow.settings import Settings

logger = logging.getLogger(__name__)

SERVED = "served"
RESCORED = "rescored"


@dataclass
class ServedGateResult:
    """What gate 4 on served traffic found and did.

    Attributes:
        status: ``pass``, ``regressed`` or ``skipped``.
        reason: one line with the numbers, or why nothing was judged.
        basis: ``served`` (previous model on its own traffic) or ``rescored`` (on
            production's logged feature vectors).
        versions: per served version, its metrics on its matured live rows.
        comparison: ``metric``, ``production``/``previous`` metrics, ``delta`` (negative
            = worse), ``tolerance``.
        pending: live rows whose labels have not matured yet.
    """

    status: str
    reason: str
    production_version: str | None = None
    previous_version: str | None = None
    basis: str | None = None
    versions: dict[str, dict[str, Any]] = field(default_factory=dict)
    comparison: dict[str, Any] | None = None
    pending: int = 0
    rolled_back_to: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def outcome_metrics(labels: np.ndarray, scores: np.ndarray, *,
                    threshold: float = 0.5) -> dict[str, Any]:
    """Rows, purchase rate and the classification metrics of ``scores``, plus a bootstrap
    95 % interval of the ROC AUC (NaN where a metric needs both labels and has one)."""
    import numpy as np
    import pandas as pd

    from shopflow.evaluation.metrics import classification_metrics
    from shopflow.evaluation.uncertainty import roc_auc_interval

    y = np.asarray(labels, dtype=np.int64)
    p = np.asarray(scores, dtype=np.float64)
    metrics: dict[str, Any] = classification_metrics(y, p, threshold=threshold)
    metrics["rows"] = int(len(y))
    metrics["purchase_rate"] = metrics.pop("positive_rate")
    metrics["roc_auc_ci95"] = roc_auc_interval(pd.DataFrame(index=range(len(y))), y, p)["ci95"] \
        if len(y) else [float("nan"), float("nan")]
    return metrics


def version_outcomes(frame: pd.DataFrame, *, threshold: float = 0.5
                     ) -> dict[str, dict[str, Any]]:
    """Each served version's metrics on its own matured rows (model answers only), with
    its cold starts counted."""
    result = {}
    for version, rows in frame.groupby("model_version", sort=True):
        known = rows[rows["known_user"].fillna(False).astype(bool)]
        metrics = outcome_metrics(known["label"].to_numpy(), known["score"].to_numpy(),
                                  threshold=threshold)
        metrics["cold_starts"] = int(len(rows) - len(known))
        result[str(version)] = metrics
    return result


def rescore_logged(model: Any, rows: pd.DataFrame) -> np.ndarray:
    """``model``'s scores of the feature vectors logged with ``rows`` (its ``features``).

    Raises:
        ValueError: the log lacks some of the model's features (it was served by a model
            with other features), naming them.
    """
    import numpy as np
    import pandas as pd

    vectors = pd.DataFrame(list(rows["features"]), index=rows.index)
    missing = [name for name in model.feature_names if name not in vectors.columns]
    if missing:
        raise ValueError(f"the logged feature vectors lack {len(missing)} of the model's "
                         f"features, e.g. {missing[:5]}")
    frame = vectors.reindex(columns=list(model.feature_names)).astype("float64")
    return np.asarray(model.predict_proba(frame), dtype=np.float64)


def run_served_gate(settings: Settings, *, auto_rollback: bool = True,
                    actor: str = "shopflow-monitoring",
                    outcomes: pd.DataFrame | None = None) -> ServedGateResult:
    """Gate 4 on the prediction log: judge production on its served traffic.

    Args:
        settings: ledger, model store, the log, the warehouse and the ``monitoring``
            thresholds.
        auto_rollback: roll back on a regression (else only a ``gate_blocked`` alert).
        actor: who rolls back (recorded).
        outcomes: the matured outcomes to judge (default: :func:`served_outcomes`).
    """
    from shopflow.ledger import Ledger
    from shopflow.monitoring.outcomes import served_outcomes

    with Ledger(settings.ledger_url) as ledger:
        production = ledger.production()
        previous = ledger.previous_production() if production is not None else None
    if production is None:
        return ServedGateResult(status="skipped", reason="no production model yet")
    frame = served_outcomes(settings) if outcomes is None else outcomes
    threshold = settings.training.threshold
    result = ServedGateResult(status="skipped", reason="", production_version=production.version,
                              previous_version=previous,
                              versions=version_outcomes(frame, threshold=threshold),
                              pending=int(frame.attrs.get("pending", 0)))
    minimum = settings.monitoring.min_matured_rows
    mine = result.versions.get(production.version)
    if not _enough(mine, minimum):
        rows = mine["rows"] if mine else 0
        result.reason = (f"{rows} matured served rows of production {production.version} "
                         f"(need {minimum} with both labels; {result.pending} not matured)")
        return result
    if previous is None:
        result.reason = "no previous model to compare with"
        return result
    assert mine is not None
    theirs = result.versions.get(previous)
    if _enough(theirs, minimum):
        result.basis = SERVED
    else:
        theirs = _rescored(settings, previous, frame, production.version, threshold)
        if theirs is None:
            result.reason = (f"previous model {previous} has too little served traffic and "
                             "cannot re-score production's logged features")
            return result
        result.basis = RESCORED
    assert theirs is not None
    _judge(settings, result, mine, theirs)
    if result.status == "regressed":
        _act(settings, result, auto_rollback=auto_rollback, actor=actor)
    return result


def _enough(metrics: dict[str, Any] | None, minimum: int) -> bool:
    import math

    return (metrics is not None and metrics["rows"] >= minimum
            and 0 < metrics["purchase_rate"] < 1 and not math.isnan(metrics["purchase_rate"]))


def _rescored(settings: Settings, previous: str, frame: pd.DataFrame, production: str,
              threshold: float) -> dict[str, Any] | None:
    """The previous model's metrics on production's served (known) rows, re-scored."""
    from shopflow.registry import load_model

    rows = frame[(frame["model_version"] == production)
                 & frame["known_user"].fillna(False).astype(bool)]
    try:
        scores = rescore_logged(load_model(settings, previous), rows)
    except Exception as exc:  # another feature set, or a model gone from the store
        logger.warning("gate 4 (served): cannot re-score with %s: %s", previous, exc)
        return None
    return outcome_metrics(rows["label"].to_numpy(), scores, threshold=threshold)


def _judge(settings: Settings, result: ServedGateResult, mine: dict[str, Any],
           theirs: dict[str, Any]) -> None:
    from shopflow.evaluation.metrics import higher_is_better

    metric = settings.gate.primary_metric
    if metric not in mine:
        raise ValueError(f"gate.primary_metric: unknown metric {metric!r}; known: "
                         f"{sorted(k for k, v in mine.items() if isinstance(v, float))}")
    raw = mine[metric] - theirs[metric]
    delta = float(raw if higher_is_better(metric) else -raw)
    tolerance = settings.monitoring.live_tolerance
    result.comparison = {"metric": metric, "production": mine, "previous": theirs,
                         "delta": delta, "tolerance": tolerance, "basis": result.basis}
    result.status = "regressed" if delta < -tolerance else "pass"
    result.reason = (f"{metric} {mine[metric]:.4f} on {mine['rows']} served rows vs "
                     f"{theirs[metric]:.4f} for {result.previous_version} "
                     f"({'its own served traffic' if result.basis == SERVED else 're-scored on the same rows'})")
    logger.info("gate 4 (served): %s: %s", result.status, result.reason)


def _act(settings: Settings, result: ServedGateResult, *, auto_rollback: bool,
         actor: str) -> None:
    from shopflow.deploy import rollback

    assert result.previous_version is not None and result.production_version is not None
    details = {"gate": "live_served", "comparison": result.comparison, "versions": result.versions,
               "pending": result.pending}
    if auto_rollback:  # the rollback raises the alert (kind "rollback")
        rollback(settings, to_version=result.previous_version, actor=actor,
                 from_version=result.production_version,
                 reason=f"gate 4 on served traffic: regression, {result.reason}",
                 details=details)
        result.rolled_back_to = result.previous_version
        return
    from shopflow.alerts import send_alert

    send_alert(settings, "gate_blocked",
               f"gate 4 on served traffic: production {result.production_version} regressed: "
               f"{result.reason} (tolerance {settings.monitoring.live_tolerance}); automatic "
               "rollback is off",
               {"production_version": result.production_version,
                "previous_version": result.previous_version, **details})
