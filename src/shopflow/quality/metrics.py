"""Batch metrics and the "last good batch" baseline they are compared with.

Row checks live in the suites; what needs the whole batch (a duplicate rate), history
(PSI against the last good batch) or another table (the share of a file ingestion
quarantined) is computed here into plain numbers, which ``expectations/batch.py`` then
judges inside the same GX checkpoint.

The baseline of a layer is a small JSON file, ``reports/quality/baseline-<layer>.json``,
written only when that layer's gate passes: rows per table, a quantile histogram per key
distribution and the label rate.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from shopflow import atomic
from shopflow.features.matrix import numeric_values
from shopflow.quality.drift import Histogram, histogram, psi
from shopflow.quality.result import QualityError
from shopflow.settings import CANONICAL_COLUMNS

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from pathlib import Path

    import pandas as pd

    from shopflow.settings import Settings

logger = logging.getLogger(__name__)

#: Columns whose exact copies count as one duplicated event by default (lineage excluded:
#: the same event read twice has different source rows); ``quality.duplicate_key`` sets it.
DUPLICATE_KEY = CANONICAL_COLUMNS
#: A key with one of these keeps every row of a file distinct (exact copies are kept).
_ROW_IDENTITY = ("source_row",)


@dataclass
class Baseline:
    """What the last good run of a layer looked like."""

    layer: str
    batch_id: str | None = None
    saved_at: str | None = None
    rows: dict[str, int] = field(default_factory=dict)
    histograms: dict[str, Histogram] = field(default_factory=dict)
    label_rate: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "layer": self.layer,
            "batch_id": self.batch_id,
            "saved_at": self.saved_at,
            "rows": self.rows,
            "histograms": {name: h.to_dict() for name, h in self.histograms.items()},
            "label_rate": self.label_rate,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Baseline:
        return cls(
            layer=str(data["layer"]),
            batch_id=data.get("batch_id"),
            saved_at=data.get("saved_at"),
            rows={str(k): int(v) for k, v in (data.get("rows") or {}).items()},
            histograms=_current_histograms(data.get("histograms") or {}),
            label_rate=data.get("label_rate"),
        )


@dataclass
class LayerStats:
    """What the batch metrics and a new baseline need of a layer, however computed.

    Attributes:
        rows: rows per table.
        values: the key distributions (see :func:`distributions`), one number per row or
            per group; never whole tables.
        label_rate: mean label of ``purchase_labels`` (marts only).
        rates: batch-wide shares (raw only: ``duplicate_rate``, and
            ``exact_duplicate_rate`` when ``quality.duplicate_key`` is not the default).
    """

    rows: dict[str, int]
    values: dict[str, np.ndarray]
    label_rate: float | None = None
    rates: dict[str, float | None] | None = None


def _current_histograms(stored: Mapping[str, Any]) -> dict[str, Histogram]:
    """The stored histograms that follow the shared PSI policy; older ones are dropped.

    A baseline written before the PSI counted missing values has no missing share and
    binned ties differently, so comparing with it would report drift that is not there.
    The drift check of that distribution is skipped once (a warning says so); the next
    passing gate writes a comparable histogram.
    """
    histograms: dict[str, Histogram] = {}
    for name, data in stored.items():
        if Histogram.has_missing_share(data):
            histograms[str(name)] = Histogram.from_dict(data)
        else:
            logger.warning(
                "baseline histogram %r predates the shared PSI policy (no missing share); "
                "its drift check is skipped until the next passing gate rewrites it", name
            )
    return histograms


def baseline_path(settings: Settings, layer: str) -> Path:
    """``reports/quality/baseline-<layer>.json``."""
    return settings.reports_dir / "quality" / f"baseline-{layer}.json"


def load_baseline(settings: Settings, layer: str) -> Baseline | None:
    """The last good baseline of a layer, or None before the first pass.

    Raises:
        QualityError: the file exists but cannot be read (delete it to start afresh).
    """
    path = baseline_path(settings, layer)
    if not path.is_file():
        return None
    try:
        return Baseline.from_dict(json.loads(path.read_text()))
    except (ValueError, KeyError, TypeError) as exc:
        raise QualityError(
            f"baseline {path} is unreadable ({exc}); delete it to compare against the next "
            "good batch instead"
        ) from exc


def save_baseline(settings: Settings, baseline: Baseline) -> Path:
    """Write the baseline atomically (a crash never leaves half a file)."""
    path = baseline_path(settings, baseline.layer)
    return atomic.write_text(path, json.dumps(baseline.to_dict(), indent=2, sort_keys=True))


def _numeric(frame: pd.DataFrame, column: str) -> np.ndarray | None:
    """The column as float64 with NaN for missing or unreadable values (None: no rows).

    Missing values stay in: the shared PSI counts them in a bin of their own, so a batch
    whose prices went missing is a shifted price distribution, as in monitoring.
    """
    if column not in frame.columns or frame.empty:
        return None
    return numeric_values(frame[column])


def _events_per_user_day(frame: pd.DataFrame) -> np.ndarray | None:
    """Events per (user, calendar day): activity intensity that does not grow with the
    length of the batch (events per user would double when a file covers twice the days).
    """
    import pandas as pd

    if not {"user_id", "event_time"} <= set(frame.columns):
        return None
    times = pd.to_datetime(frame["event_time"], errors="coerce")
    keyed = pd.DataFrame({"user_id": frame["user_id"], "day": times.dt.floor("D")}).dropna()
    if keyed.empty:
        return None
    return keyed.groupby(["user_id", "day"]).size().to_numpy(dtype="float64")


def distributions(layer: str, frames: Mapping[str, pd.DataFrame]) -> dict[str, np.ndarray]:
    """The key distributions of a layer, by name (those that can be computed).

    raw/staging: unit ``price`` and ``events_per_user_day``; marts: ``events_lookback``
    (user events in the lookback at the latest cutoff of ``user_features``).
    """
    found: dict[str, np.ndarray | None] = {}
    if layer in ("raw", "staging"):
        frame = next(iter(frames.values()))
        found["price"] = _numeric(frame, "price")
        found["events_per_user_day"] = _events_per_user_day(frame)
    elif layer == "marts":
        from shopflow.features.schema import widest_window_column

        users = frames.get("user_features")
        # events over the whole lookback: the widest window of the task (events_90d, ...)
        column = widest_window_column(users.columns, "events") if users is not None else None
        if users is not None and column is not None and "cutoff_time" in users.columns:
            latest = users[users["cutoff_time"] == users["cutoff_time"].max()]
            found["events_lookback"] = _numeric(latest, column)
    return {name: values for name, values in found.items() if values is not None}


def label_rate(frames: Mapping[str, pd.DataFrame]) -> float | None:
    """Mean label of ``purchase_labels`` (None when absent or unreadable)."""
    labels = frames.get("purchase_labels")
    if labels is None:
        return None
    values = _numeric(labels, "label")
    if values is None:
        return None
    known = values[np.isfinite(values)]
    return float(known.mean()) if known.size else None


def duplicate_rate(frame: pd.DataFrame, key: Sequence[str] = DUPLICATE_KEY) -> float | None:
    """Share of rows that are extra copies of an earlier event with the same ``key``.

    These are the rows staging collapses into one event (its ``event_id`` hashes the same
    key). A key naming ``source_row`` keeps every row of a file: a file's frame before
    ingestion has no lineage yet, so its rows count as distinct.
    """
    if frame.empty:
        return None
    present = duplicate_key_columns([str(c) for c in frame.columns], key)
    if not present:
        return None if present is None else 0.0
    return float(frame.duplicated(subset=present).mean())


def duplicate_key_columns(columns: Sequence[str], key: Sequence[str]) -> list[str] | None:
    """The columns of ``key`` a batch has, for its duplicate rate (frame or SQL alike).

    Returns ``[]`` when the key names a row identity (``source_row``) the batch lacks: every
    row is then distinct (rate 0); None when it has no key column at all (no rate).
    """
    if any(c in key and c not in columns for c in _ROW_IDENTITY):
        return []
    present = [c for c in key if c in columns]
    return present or None


def exact_duplicate_rate(frame: pd.DataFrame) -> float | None:
    """Share of rows that exactly repeat an earlier row's canonical columns (kept or not)."""
    return duplicate_rate(frame, DUPLICATE_KEY)


def batch_metrics(
    layer: str,
    frames: Mapping[str, pd.DataFrame],
    *,
    baseline: Baseline | None,
    quarantine_counts: Mapping[str, int] | None = None,
    duplicate_key: Sequence[str] = DUPLICATE_KEY,
    values: Mapping[str, np.ndarray] | None = None,
    rates: Mapping[str, float | None] | None = None,
) -> dict[str, float | None]:
    """The numbers ``expectations/batch.py`` judges; a None metric is skipped.

    Args:
        layer: the gate's layer.
        frames: table name -> the rows validated.
        baseline: the last good baseline (None: no drift metrics yet).
        quarantine_counts: for a raw batch, ``rows_read``, ``missing_user_id`` and
            ``quarantined`` (all reasons) from ingestion.
        duplicate_key: ``quality.duplicate_key``: what makes two rows one event.
        values: the layer's key distributions when computed in the warehouse
            (``shopflow.quality.warehouse_stats``); None: from ``frames``.
        rates: raw only: ``duplicate_rate`` (and ``exact_duplicate_rate``) computed in the
            warehouse (:attr:`LayerStats.rates`); None: from ``frames``.
    """
    metrics: dict[str, float | None] = {}
    if layer == "raw" and rates is not None:
        metrics.update(rates)
    elif layer == "raw":
        events = next(iter(frames.values()))
        metrics["duplicate_rate"] = duplicate_rate(events, duplicate_key)
        if tuple(duplicate_key) != tuple(DUPLICATE_KEY):
            # exact copies that the configured key keeps (or collapses differently): counted
            metrics["exact_duplicate_rate"] = exact_duplicate_rate(events)
    if layer == "raw" and quarantine_counts and quarantine_counts.get("rows_read"):
        read = quarantine_counts["rows_read"]
        missing = quarantine_counts.get("missing_user_id", 0)
        metrics["missing_user_rate"] = missing / read
        metrics["other_quarantine_rate"] = (
            max(quarantine_counts.get("quarantined", 0) - missing, 0) / read
        )
    if baseline is not None:
        found = distributions(layer, frames) if values is None else values
        for name, current in found.items():
            reference = baseline.histograms.get(name)
            if reference is not None:
                metrics[f"psi_{name}"] = psi(reference, current)
    return metrics


def new_baseline(
    layer: str,
    frames: Mapping[str, pd.DataFrame],
    *,
    batch_id: str | None,
    bins: int,
    stats: LayerStats | None = None,
) -> Baseline:
    """The baseline a passing run leaves for the next one.

    ``stats``: what the warehouse computed for a layer validated in place (``frames`` is
    then ignored); None: computed from ``frames``.
    """
    if stats is None:
        stats = LayerStats(
            rows={table: len(frame) for table, frame in frames.items()},
            values=distributions(layer, frames),
            label_rate=label_rate(frames) if layer == "marts" else None,
        )
    histograms = {
        name: hist
        for name, values in stats.values.items()
        if (hist := histogram(values, bins=bins)) is not None
    }
    return Baseline(
        layer=layer,
        batch_id=batch_id,
        saved_at=datetime.now(UTC).isoformat(timespec="seconds"),
        rows=dict(stats.rows),
        histograms=histograms,
        label_rate=stats.label_rate if layer == "marts" else None,
    )
