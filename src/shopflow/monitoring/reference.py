"""What monitoring compares against: the training reference and the deployment watermark.

Both are kept per model version under ``SHOPFLOW_HOME/monitoring``:

* ``reference/<version>.parquet`` — a sample of the feature rows the model was trained and
  evaluated on, with the model's scores (feature and prediction drift compare with it);
* ``deployments/<version>.json`` — the data watermark when the version went to production
  (the latest event time then). Labels at cutoffs at or after it were unknown at
  deployment, so gate 4 judges the model on exactly those;
* ``age/<version>.json`` — the model's age curve, kept by the training run through
  :func:`shopflow.evaluation.aging.save_age_curve` (training must not import monitoring)
  and read by the staleness check.

They are written by the training DAG's register/deploy stages; when missing (a model
promoted by hand) they are rebuilt from the published marts and the ledger.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from shopflow import atomic
from shopflow.transform.publish import read_mart_snapshot

if TYPE_CHECKING:
    from pathlib import Path

    import pandas as pd

    from shopflow.settings import Settings

logger = logging.getLogger(__name__)

REFERENCE_SAMPLE_ROWS = 50_000
KEYS = ("user_id", "cutoff_time")


def production_and_candidate(settings: Settings) -> tuple[Any, Any]:
    """The ledger's production model and its candidate row (data window, metrics), or
    ``(None, None)`` while nothing is in production: what every monitoring check starts from."""
    from shopflow.ledger import Ledger

    ledger = Ledger(settings.ledger_url)
    try:
        production = ledger.production()
        candidate = ledger.candidate(production.version) if production else None
    finally:
        ledger.close()
    return production, candidate


def monitoring_dir(settings: Settings) -> Path:
    """``SHOPFLOW_HOME/monitoring``."""
    return settings.home_dir / "monitoring"


def _reference_path(settings: Settings, version: str) -> Path:
    return monitoring_dir(settings) / "reference" / f"{version}.parquet"


def _deployment_path(settings: Settings, version: str) -> Path:
    return monitoring_dir(settings) / "deployments" / f"{version}.json"


def labelled_rows(settings: Settings) -> pd.DataFrame:
    """Feature rows with their labels (training cutoffs only), newest cutoffs last."""
    features, keys = _labelled_keys(settings)
    return _with_labels(features, keys)


def labelled_reference(settings: Settings, *, before: str | None = None, seed: int = 0
                       ) -> pd.DataFrame:
    """The reference rows of :func:`labelled_rows` with a cutoff before ``before``.

    The same rows, in the same order and with the same columns, as
    ``reference_sample(rows[rows.cutoff_time < before], seed=seed)`` (index aside), but
    the filter and sample run on the keys alone and only the sampled rows' features are
    taken: at 10M events the labelled rows are millions, and the register stage used to
    hold three copies of them to keep 50,000.
    """
    import pandas as pd

    features, keys = _labelled_keys(settings)
    if before is not None:
        keys = keys[keys["cutoff_time"] < pd.Timestamp(before)]
    return _with_labels(features, reference_sample(keys, seed=seed))


def _labelled_keys(settings: Settings) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The feature rows, and the keys of those with a label (sorted by the keys), each
    with its feature row's position (``_row``) and its ``label``: the join and the sort
    move two keys and two numbers per row, not every feature."""
    import numpy as np

    features = read_mart_snapshot(settings, "user_features")
    labels = read_mart_snapshot(settings, "purchase_labels", columns=[*KEYS, "label"])
    keys = (features[list(KEYS)].assign(_row=np.arange(len(features)))
            .merge(labels, on=list(KEYS), how="inner")
            .sort_values(list(KEYS)).reset_index(drop=True))
    return features, keys


def _with_labels(features: pd.DataFrame, keys: pd.DataFrame) -> pd.DataFrame:
    """The feature rows ``keys`` point at, in their order, with their labels."""
    rows = features.iloc[keys["_row"].to_numpy()].reset_index(drop=True)
    return rows.assign(label=keys["label"].to_numpy())




def serving_snapshot(settings: Settings) -> pd.DataFrame:
    """The feature rows at the latest cutoff: what the service scores now."""
    features = read_mart_snapshot(settings, "user_features")
    if features.empty:
        return features
    latest: pd.DataFrame = features[features["cutoff_time"] == features["cutoff_time"].max()]
    return latest.reset_index(
        drop=True
    )


def reference_sample(frame: pd.DataFrame, *, seed: int = 0) -> pd.DataFrame:
    """The rows :func:`save_reference` keeps of ``frame``: all of them, or a seeded sample
    of :data:`REFERENCE_SAMPLE_ROWS`. Scoring only these (not millions of labelled rows
    first) gives the reference the same rows and scores for a fraction of the memory."""
    if len(frame) > REFERENCE_SAMPLE_ROWS:
        return frame.sample(n=REFERENCE_SAMPLE_ROWS, random_state=seed)
    return frame


def save_reference(settings: Settings, version: str, frame: pd.DataFrame,
                   scores: Any | None = None, *, seed: int = 0) -> Path:
    """Keep (a sample of) the rows a model was trained on, with its scores."""
    sample = reference_sample(frame, seed=seed).copy()
    if scores is not None:
        import numpy as np

        score_array = np.asarray(scores, dtype="float64")
        sample["__score__"] = score_array if len(sample) == len(frame) else score_array[
            frame.index.get_indexer(sample.index)]
    path = _reference_path(settings, version)
    with atomic.atomic_path(path) as tmp:
        sample.to_parquet(tmp, index=False)
    return path


def load_reference(settings: Settings, version: str) -> pd.DataFrame | None:
    """The saved reference of a version, or None."""
    import pandas as pd

    path = _reference_path(settings, version)
    return pd.read_parquet(path) if path.is_file() else None


def reference_for(settings: Settings, version: str, *, data_end: str | None = None
                  ) -> pd.DataFrame:
    """The saved reference, or the labelled rows up to the model's data end, rebuilt.

    Scores are not part of a rebuilt reference (the caller scores it if needed).
    """
    saved = load_reference(settings, version)
    if saved is not None:
        return saved
    import pandas as pd

    frame = labelled_rows(settings)
    if data_end:
        end = pd.Timestamp(data_end).tz_localize(None) if pd.Timestamp(data_end).tzinfo \
            else pd.Timestamp(data_end)
        frame = frame[frame["cutoff_time"] <= end]
    return frame


def record_deployment(settings: Settings, version: str, *, data_watermark: str | None,
                      deployed_at: datetime | None = None) -> Path:
    """Remember the data watermark at which ``version`` went to production."""
    return atomic.write_json(_deployment_path(settings, version), {
        "version": version,
        "data_watermark": data_watermark,
        "deployed_at": (deployed_at or datetime.now(UTC)).isoformat(),
    }, indent=2)


def deployment_watermark(settings: Settings, version: str) -> str | None:
    """The data watermark recorded when ``version`` was deployed (None if never recorded)."""
    path = _deployment_path(settings, version)
    if not path.is_file():
        return None
    watermark = json.loads(path.read_text()).get("data_watermark")
    return None if watermark is None else str(watermark)


def snapshot_user_ids(settings: Settings, count: int = 5) -> list[str]:
    """A few users of the serving snapshot: golden requests must score known users too."""
    try:
        snapshot = serving_snapshot(settings)
    except FileNotFoundError:
        return []
    return snapshot["user_id"].astype(str).head(count).tolist()
