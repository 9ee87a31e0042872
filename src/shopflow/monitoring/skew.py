"""Training/serving skew: did the service score what training would have seen?

For a sample of logged live ``/predict`` rows (``monitoring.skew_sample``, seeded), two
checks against the offline path that built the training sets:

* **features** — the vector the service scored (the log's ``features``) equals Feast's
  point-in-time historical retrieval (:func:`shopflow.features.training.
  build_training_set`) for the same user at the row's data time (``as_of``, else ``at``):
  ``|served - offline| <= monitoring.skew_feature_tolerance * max(1, |offline|)``, and a
  value present on one side only is a mismatch;
* **score** — the served model (``load_served_model``: the same cold-start and
  hostile-value handling as the service) re-scores the offline vector to the logged score
  within ``monitoring.skew_score_tolerance``.

The log holds keyed hashes of user ids, so they are mapped back through the user ids of
Feast's offline user files (the warehouse's ``user_features`` mart as exported), hashed
with the log's :class:`~shopflow.privacy.IdHasher`; a sampled row whose user is not
there cannot be compared and is counted as ``unmapped``.

The runtime re-reads the materialization watermark at most every
:data:`~shopflow.serving.prediction_log.AS_OF_REFRESH_SECONDS` (and materialization
writes values before it moves the watermark), so rows answered just before a newer
``as_of`` first shows in the log may carry new values under the old ``as_of``: rows
answered within that interval before a newer watermark's first row are not sampled.
Known limit: a check run within that interval after a materialization, before the log
shows the newer watermark, cannot tell such rows apart.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from datetime import datetime

    import pandas as pd

    from shopflow.settings import Settings

logger = logging.getLogger(__name__)

SEED = 0
#: Mismatches kept in the result and the alert (the counts are complete).
EXAMPLES = 10


@dataclass
class SkewResult:
    """What the skew check compared and found.

    Attributes:
        status: ``pass``, ``skew`` (a mismatch beyond a tolerance) or ``skipped``.
        reason: one line with the counts.
        sampled: logged rows drawn; ``compared`` of them found offline; ``unmapped``
            rows whose user is in no offline user file.
        feature_mismatches / score_mismatches: rows with a mismatch of that kind.
        max_feature_difference / max_score_difference: the largest (relative / absolute)
            differences seen.
        examples: up to :data:`EXAMPLES` mismatches (hashed user, version, as_of,
            feature or ``score``, served and offline values).
    """

    status: str
    reason: str
    sampled: int = 0
    compared: int = 0
    unmapped: int = 0
    feature_mismatches: int = 0
    score_mismatches: int = 0
    max_feature_difference: float = 0.0
    max_score_difference: float = 0.0
    feature_tolerance: float = 0.0
    score_tolerance: float = 0.0
    versions: list[str] = field(default_factory=list)
    examples: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def sample_rows(log: pd.DataFrame, n: int, *, seed: int = SEED) -> pd.DataFrame:
    """Up to ``n`` live ``/predict`` rows, drawn seeded, leaving out the rows whose
    ``as_of`` may lag the values they were served (see the module doc)."""
    import pandas as pd

    from shopflow.monitoring.outcomes import live_rows
    from shopflow.serving.prediction_log import AS_OF_REFRESH_SECONDS

    rows = live_rows(log, "predict")
    stamped = rows.dropna(subset=["as_of"])
    if not stamped.empty:
        first_seen = stamped.groupby("as_of")["at"].min().sort_index()
        # for each watermark, when the log first shows a newer one
        later = first_seen.iloc[::-1].cummin().iloc[::-1].shift(-1)
        next_seen = rows["as_of"].map(later)
        lag = pd.Timedelta(seconds=AS_OF_REFRESH_SECONDS)
        rows = rows[~(next_seen.notna() & (rows["at"] > next_seen - lag))]
    if len(rows) > n:
        rows = rows.sample(n=n, random_state=seed)
    return rows.reset_index(drop=True)


def offline_user_ids(settings: Settings, tokens: set[str]) -> dict[str, str]:
    """Raw user id of each hashed token found in Feast's offline user files."""
    import pyarrow.parquet as pq

    from shopflow.features.schema import USER_TABLE, feature_tables
    from shopflow.privacy import IdHasher

    hasher = IdHasher(settings.home_dir)
    found: dict[str, str] = {}
    for table in feature_tables(settings):
        path = table.offline_path(settings)
        if table.join_key != USER_TABLE.join_key or not path.is_file():
            continue
        ids = pq.read_table(path, columns=[table.join_key]).column(0).unique().to_pylist()
        for uid in ids:
            if uid is not None:
                token = hasher(str(uid))
                if token in tokens:
                    found[token] = str(uid)
        if len(found) == len(tokens):
            break
    return found


def run_skew_check(settings: Settings, *, since: datetime | None = None,
                   alert: bool = True) -> SkewResult:
    """Compare a sample of served rows with the offline path; alert (``skew``) on a
    mismatch.

    Args:
        settings: the log, Feast, the model store and the ``monitoring.skew_*`` knobs.
        since: sample only rows logged at or after this time.
        alert: send the ``skew`` alert when something mismatches.
    """
    from shopflow.serving.prediction_log import read_prediction_log

    monitoring = settings.monitoring
    result = SkewResult(status="skipped", reason="",
                        feature_tolerance=monitoring.skew_feature_tolerance,
                        score_tolerance=monitoring.skew_score_tolerance)
    rows = sample_rows(read_prediction_log(settings.home_dir, since), monitoring.skew_sample)
    result.sampled = len(rows)
    if rows.empty:
        result.reason = "no live /predict rows logged to compare"
        return result
    ids = offline_user_ids(settings, set(rows["user"]))
    result.unmapped = int((~rows["user"].isin(ids)).sum())
    rows = rows[rows["user"].isin(ids)].reset_index(drop=True)
    if rows.empty:
        result.reason = (f"none of the {result.sampled} sampled users is in Feast's offline "
                         "user files: nothing to compare")
        return result
    rows["user_id"] = rows["user"].map(ids)
    for version, group in rows.groupby("model_version", sort=True):
        _compare_version(settings, str(version), group, result)
    result.versions = sorted({str(v) for v in rows["model_version"]})
    bad = result.feature_mismatches or result.score_mismatches
    result.status = "skew" if bad else "pass"
    result.reason = (f"{result.compared} served rows compared with Feast's point-in-time "
                     f"features: {result.feature_mismatches} with other feature values (max "
                     f"relative difference {result.max_feature_difference:.3g}, tolerance "
                     f"{result.feature_tolerance:g}), {result.score_mismatches} with another "
                     f"score (max {result.max_score_difference:.3g}, tolerance "
                     f"{result.score_tolerance:g})")
    logger.info("skew check: %s: %s", result.status, result.reason)
    if bad and alert:
        from shopflow.alerts import send_alert

        send_alert(settings, "skew", f"training/serving skew: {result.reason}",
                   {"versions": result.versions, "sampled": result.sampled,
                    "compared": result.compared, "feature_mismatches": result.feature_mismatches,
                    "score_mismatches": result.score_mismatches,
                    "examples": result.examples})
    return result


def _compare_version(settings: Settings, version: str, rows: pd.DataFrame,
                     result: SkewResult) -> None:
    """Compare the rows one model version served with the offline path."""
    import numpy as np
    import pandas as pd

    from shopflow.features.training import ENTITY_TIMESTAMP, build_training_set
    from shopflow.monitoring.outcomes import data_time
    from shopflow.serving.served import load_served_model

    served = load_served_model(settings, version)
    names = list(served.feature_names)
    when = data_time(rows)
    entities = pd.DataFrame({"user_id": rows["user_id"].to_numpy(),
                             ENTITY_TIMESTAMP: when.to_numpy()}).drop_duplicates()
    offline = build_training_set(settings, entities, feature_service=served.feature_service)
    offline = offline.set_index(["user_id", ENTITY_TIMESTAMP])
    keys = pd.MultiIndex.from_arrays([rows["user_id"].to_numpy(), when.to_numpy()])
    expected = offline.reindex(keys)[names].to_numpy(dtype=np.float64)
    logged = pd.DataFrame([f if isinstance(f, dict) else {} for f in rows["features"]])
    actual = logged.reindex(columns=names).to_numpy(dtype=np.float64)
    result.compared += len(rows)

    # features: equal within the tolerance, or missing on both sides
    one_side = np.isnan(actual) != np.isnan(expected)
    with np.errstate(invalid="ignore"):
        relative = np.abs(actual - expected) / np.maximum(1.0, np.abs(expected))
    relative = np.where(np.isnan(relative), 0.0, relative)
    wrong = one_side | (relative > result.feature_tolerance)
    result.feature_mismatches += int(wrong.any(axis=1).sum())
    if relative.size:  # a one-sided value is counted above, not measured
        result.max_feature_difference = max(result.max_feature_difference,
                                            float(relative.max()))
    for i, j in zip(*np.nonzero(wrong), strict=True):
        _example(result, rows.iloc[int(i)], when.iloc[int(i)], names[int(j)],
                 actual[i, j], expected[i, j])

    # scores: the served model re-scores the offline vector (unknown offline: cold start)
    known = ~np.isnan(expected).all(axis=1)
    offline_scores = served.score_matrix(expected, known)
    logged_scores = rows["score"].to_numpy(dtype=np.float64)
    difference = np.abs(offline_scores - logged_scores)
    unscored = np.isnan(difference)  # no score logged: a mismatch, not a measure
    off = unscored | (np.where(unscored, 0.0, difference) > result.score_tolerance)
    result.score_mismatches += int(off.sum())
    if (~unscored).any():
        result.max_score_difference = max(result.max_score_difference,
                                          float(difference[~unscored].max()))
    for i in np.flatnonzero(off):
        _example(result, rows.iloc[int(i)], when.iloc[int(i)], "score", logged_scores[i],
                 offline_scores[i])


def _example(result: SkewResult, row: pd.Series, when: Any, what: str, served: float,
             offline: float) -> None:
    if len(result.examples) < EXAMPLES:
        result.examples.append({
            "user": row["user"], "model_version": row["model_version"],
            "request_id": row["request_id"], "as_of": str(when), "what": what,
            "served": None if math.isnan(served) else float(served),
            "offline": None if math.isnan(offline) else float(offline)})
