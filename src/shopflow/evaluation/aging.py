"""How fast a model goes stale, measured on its own held-out cutoffs (the age curve).

A propensity model is fitted on cutoffs up to its last training cutoff (``trained_until``)
and then used on later ones. Every cutoff after ``trained_until`` in the run's training
frame is out of the fit (the purged gaps, validation and test of the out-of-time split)
and its labels have matured, so scoring the chosen model there, one cutoff at a time,
shows its primary metric against its *age* in data time (``age = cutoff −
trained_until``). Scoring only: nothing is refitted.

The recommended retraining age is the first age at which the metric falls below the
metric at the youngest age minus ``monitoring.live_tolerance`` (the drop gate 4 treats as
a regression) *measurably*: for ROC AUC the point's whole bootstrap interval must lie below
that line, so one noisy cutoff (a seasonal dip inside its own ±0.02) does not count; when
it never does, the last measured age.
Validation cutoffs helped choose the model, so their points are slightly optimistic; the
table marks each point's part.

A served model is older than any of its held-out cutoffs: labels need one horizon to
mature, so the newest held-out cutoff lies at least a horizon before the newest event.
That lag (``label_lag``: newest event at evaluation minus newest held-out cutoff) is kept,
and :attr:`AgeCurve.max_served_age` is the limit the monitoring DAG compares the served
age (newest event minus ``trained_until``) with: after a measured drop, recommended age +
lag (a model already past it when deployed is flagged in its report); when no drop was
measured, the age at deployment plus the span the curve covered (the model held that long
on held-out data, so it is given as long again before retraining is due).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from shopflow import atomic
from shopflow.evaluation.metrics import classification_metrics, higher_is_better
from shopflow.evaluation.uncertainty import roc_auc_interval

if TYPE_CHECKING:
    from collections.abc import Sequence

    import pandas as pd

#: the metrics kept per age (the primary metric is added when it is another one)
CURVE_METRICS = ("roc_auc", "pr_auc")
#: bootstrap resamples of each point's ROC AUC interval (fewer than the test set's: one
#: interval per held-out cutoff, and the curve must stay cheap)
RESAMPLES = 100


@dataclass(frozen=True)
class AgePoint:
    """The model on one held-out cutoff.

    Attributes:
        cutoff: the cutoff (ISO 8601).
        age_seconds: cutoff minus the model's last training cutoff.
        part: where the cutoff sat in the split: ``purged``, ``validation`` or ``test``.
        rows: rows scored; ``positives``: buyers among them.
        metrics: ``roc_auc``, ``pr_auc`` and the primary metric at this cutoff.
        roc_auc_ci95: bootstrap 95 % interval of the ROC AUC (rows resampled, seeded).
    """

    cutoff: str
    age_seconds: float
    part: str
    rows: int
    positives: int
    metrics: dict[str, float]
    roc_auc_ci95: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class AgeCurve:
    """The primary metric against age, and the retraining age it implies.

    Attributes:
        metric: the primary metric the threshold is derived from.
        trained_until: the model's last training cutoff (ISO 8601): age 0.
        tolerance: the allowed drop (``monitoring.live_tolerance``).
        points: one per held-out cutoff, youngest first.
        reference: the metric at the youngest age with a finite value.
        retrain_age_seconds: the recommended retraining age (see the module docstring).
        dropped: whether a drop beyond the tolerance was measured (False: the retraining
            age is just the last measured age).
        label_lag_seconds: newest event at evaluation minus the newest held-out cutoff.
    """

    metric: str
    trained_until: str
    tolerance: float
    points: list[AgePoint]
    reference: float | None
    retrain_age_seconds: float | None
    dropped: bool
    label_lag_seconds: float | None = None

    @property
    def max_served_age_seconds(self) -> float | None:
        """The served age the monitoring DAG allows (see the module docstring)."""
        if self.retrain_age_seconds is None:
            return None
        limit = self.retrain_age_seconds + (self.label_lag_seconds or 0.0)
        if not self.dropped and self.points:
            limit += self.points[-1].age_seconds - self.points[0].age_seconds
        return limit

    @property
    def served_age_seconds(self) -> float | None:
        """The model's age at the newest event of its run: what it is when deployed."""
        if not self.points or self.label_lag_seconds is None:
            return None
        return self.points[-1].age_seconds + self.label_lag_seconds

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["max_served_age_seconds"] = self.max_served_age_seconds
        data["served_age_seconds"] = self.served_age_seconds
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AgeCurve:
        fields = {k: v for k, v in data.items()
                  if k not in ("max_served_age_seconds", "served_age_seconds")}
        fields["points"] = [AgePoint(**p) for p in data.get("points", [])]
        return cls(**fields)


def _worse(point: AgePoint, reference: float, *, metric: str, tolerance: float) -> bool:
    """Worse than ``reference`` by more than ``tolerance``, beyond the point's own noise:
    for ROC AUC with an interval, its upper bound must lie below ``reference - tolerance``."""
    value = float(point.metrics[metric])
    if metric == "roc_auc" and len(point.roc_auc_ci95) == 2 \
            and np.isfinite(point.roc_auc_ci95[1]):
        value = float(point.roc_auc_ci95[1])
    drop = reference - value if higher_is_better(metric) else value - reference
    return drop > tolerance


def retraining_age(points: Sequence[AgePoint], *, metric: str, tolerance: float
                   ) -> tuple[float | None, float | None, bool]:
    """``(reference, retrain_age_seconds, dropped)`` of points sorted youngest first.

    The reference is the metric at the youngest point with a finite value; the retraining
    age is the first later age whose metric is worse than the reference by more than
    ``tolerance`` (beyond the point's interval, see :func:`_worse`), else the last measured
    age (``dropped`` False). Nothing finite: all None.
    """
    usable = [p for p in points if np.isfinite(p.metrics.get(metric, float("nan")))]
    if not usable:
        return None, None, False
    reference = float(usable[0].metrics[metric])
    for point in usable[1:]:
        if _worse(point, reference, metric=metric, tolerance=tolerance):
            return reference, point.age_seconds, True
    return reference, usable[-1].age_seconds, False


def age_points(frame: pd.DataFrame, scores: np.ndarray, *, trained_until: pd.Timestamp,
               metric: str = "roc_auc", threshold: float = 0.5,
               parts: dict[str, str] | None = None) -> list[AgePoint]:
    """Score each cutoff after ``trained_until`` separately, youngest first.

    Args:
        frame: labelled rows with their cutoff in ``event_timestamp`` (training frame).
        scores: the model's probabilities for ``frame``'s rows.
        trained_until: the model's last training cutoff; rows at or before it are ignored.
        metric: the primary metric (kept beside ``roc_auc`` and ``pr_auc``).
        threshold: decision threshold of the counts-based metrics.
        parts: cutoff (ISO 8601, UTC) -> split part; unlisted cutoffs are ``purged``.
    """
    import pandas as pd

    stamps = pd.to_datetime(frame["event_timestamp"], utc=True)
    anchor = _utc(trained_until)
    labels = frame["label"].astype(int).to_numpy()
    scores = np.asarray(scores, dtype=np.float64)
    names = tuple(dict.fromkeys((*CURVE_METRICS, metric)))
    points = []
    for cutoff in sorted(stamps[stamps > anchor].unique()):
        rows = np.flatnonzero((stamps == cutoff).to_numpy())
        y, p = labels[rows], scores[rows]
        measured = classification_metrics(y, p, threshold=threshold)
        interval = roc_auc_interval(frame.iloc[rows], y, p, resamples=RESAMPLES)
        stamp = pd.Timestamp(cutoff)
        points.append(AgePoint(
            cutoff=stamp.isoformat(),
            age_seconds=float((stamp - anchor).total_seconds()),
            part=(parts or {}).get(stamp.isoformat(), "purged"),
            rows=int(len(rows)), positives=int(y.sum()),
            metrics={name: float(measured[name]) for name in names if name in measured},
            roc_auc_ci95=[float(v) for v in interval["ci95"]],
        ))
    return points


def age_curve(frame: pd.DataFrame, scores: np.ndarray, *, trained_until: pd.Timestamp,
              metric: str, tolerance: float, threshold: float = 0.5,
              parts: dict[str, str] | None = None,
              newest_event: pd.Timestamp | None = None) -> AgeCurve:
    """The age curve of one model on its held-out cutoffs (see the module docstring).

    Raises:
        ValueError: ``metric`` is not one :func:`classification_metrics` computes.
    """
    probe = classification_metrics(np.array([0, 1]), np.array([0.2, 0.8]))
    if metric not in probe:
        raise ValueError(f"unknown metric {metric!r} for the age curve; known: {sorted(probe)}")
    points = age_points(frame, scores, trained_until=trained_until, metric=metric,
                        threshold=threshold, parts=parts)
    reference, retrain_age, dropped = retraining_age(points, metric=metric, tolerance=tolerance)
    lag = None
    if newest_event is not None and points:
        import pandas as pd

        lag = max(0.0, float((_utc(newest_event) - pd.Timestamp(points[-1].cutoff))
                             .total_seconds()))
    return AgeCurve(metric=metric, trained_until=_utc(trained_until).isoformat(),
                    tolerance=tolerance, points=points, reference=reference,
                    retrain_age_seconds=retrain_age, dropped=dropped, label_lag_seconds=lag)


def _utc(value: Any) -> pd.Timestamp:
    import pandas as pd

    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def age_curve_path(home: Path, version: str) -> Path:
    """Where a model version's age curve is kept: ``SHOPFLOW_HOME/monitoring/age/``."""
    return Path(home) / "monitoring" / "age" / f"{version}.json"


def save_age_curve(home: Path, version: str, curve: AgeCurve) -> Path:
    """Keep a model's age curve for the staleness check (written by the training run)."""
    return atomic.write_json(age_curve_path(home, version), curve.to_dict(), indent=2)


def load_age_curve(home: Path, version: str) -> dict[str, Any] | None:
    """A version's saved age curve (``AgeCurve.to_dict()``), or None (promoted by hand,
    or trained before age curves)."""
    path = age_curve_path(home, version)
    if not path.is_file():
        return None
    data: dict[str, Any] = json.loads(path.read_text())
    return data
