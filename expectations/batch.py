"""Batch-level checks: this batch as a whole, and compared with the last good one.

Some problems are invisible row by row: a duplicate rate, the share of rows ingestion
had to quarantine, a price distribution that moved ten-fold. ``shopflow.quality.metrics``
computes these numbers (PSI against the histograms of the last good batch, kept in
``reports/quality/baseline-<layer>.json``) into a one-row frame, and this suite holds the
thresholds, so the numbers and their verdicts land in Data Docs beside the row checks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import great_expectations as gx
import great_expectations.expectations as gxe

from ._common import Severity, check

if TYPE_CHECKING:
    from collections.abc import Mapping

    from shopflow.settings import QualitySettings

#: Drift metrics: column in the metrics frame -> what its histogram is of.
PSI_METRICS = {
    "psi_price": "unit price",
    "psi_events_per_user_day": "events per user-day",
    "psi_events_lookback": "user events in the lookback",
}


def build_batch_suite(
    *,
    layer: str,
    metrics: Mapping[str, float | None],
    quality: QualitySettings,
) -> gx.ExpectationSuite:
    """Thresholds on the batch metrics that could be computed (None ones are skipped).

    Args:
        layer: ``raw``, ``staging`` or ``marts`` (names the suite).
        metrics: metric name -> value, as computed for this batch.
        quality: thresholds (``settings.quality``).
    """
    present = {name for name, value in metrics.items() if value is not None}
    expectations: list[gxe.Expectation] = []

    def bounded(metric: str, *, severity: Severity, limit: float, name: str, why: str,
                key: str | None) -> None:
        if metric in present:
            expectations.append(
                check(
                    gxe.ExpectColumnMaxToBeBetween,
                    severity=severity,
                    name=name,
                    why=why,
                    key=key,
                    unit=None if metric.startswith("psi_") else "share",
                    column=metric,
                    max_value=limit,
                )
            )

    bounded(
        "duplicate_rate",
        severity="error",
        limit=quality.max_duplicate_rate,
        name=f"duplicate events <= {quality.max_duplicate_rate:.0%}",
        why="Extra copies of one event (same quality.duplicate_key); beyond this a source is "
        "replaying data. Real repeat purchases (day-level dates, no order id): add source_file "
        "and source_row to quality.duplicate_key to keep them.",
        key="quality.max_duplicate_rate",
    )
    bounded(
        "duplicate_rate",
        severity="warning",
        limit=0.0,
        name="no duplicate events",
        why="Staging keeps one row per quality.duplicate_key and drops the copies counted "
        "here; reported so nothing is dropped silently.",
        key="quality.duplicate_key",
    )
    bounded(
        "exact_duplicate_rate",
        severity="warning",
        limit=0.0,
        name="no exact duplicate rows (kept: quality.duplicate_key)",
        why="Rows repeating another's every event column; with the configured key staging "
        "keeps them as distinct events (e.g. repeat purchases on one day).",
        key="quality.duplicate_key",
    )
    bounded(
        "missing_user_rate",
        severity="error",
        limit=quality.max_null_user_rate,
        name=f"rows without user_id <= {quality.max_null_user_rate:.0%} of the file",
        why="Beyond this the user id column is probably mis-mapped, not just guest checkouts.",
        key="quality.max_null_user_rate",
    )
    bounded(
        "missing_user_rate",
        severity="warning",
        limit=0.0,
        name="no rows without user_id (guests) quarantined",
        why="Guest rows cannot be attributed to a shopper; they sit in raw.quarantine.",
        key=None,
    )
    bounded(
        "other_quarantine_rate",
        severity="warning",
        limit=0.0,
        name="no rows quarantined for other reasons",
        why="Unparseable times, unknown event types, invalid prices or quantities.",
        key=None,
    )
    for metric, what in PSI_METRICS.items():
        bounded(
            metric,
            severity="error",
            limit=quality.max_psi,
            name=f"{what}: PSI vs last good batch <= {quality.max_psi:g}",
            why="A shift this large breaks the features the champion was trained on.",
            key="quality.max_psi",
        )
        bounded(
            metric,
            severity="warning",
            limit=quality.warn_psi,
            name=f"{what}: PSI vs last good batch <= {quality.warn_psi:g}",
            why="A moderate shift: worth a look before the next retrain.",
            key="quality.warn_psi",
        )
    return gx.ExpectationSuite(name=f"{layer}.batch_metrics", expectations=expectations)
