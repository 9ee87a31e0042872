"""Out-of-time split of a training frame by cutoff, and the frame's feature columns.

A propensity model is used on *future* cutoffs, so it must be chosen on future cutoffs:
train on the earlier cutoffs, validate (early stopping, search, selection) on the next
``validation_cutoffs`` and test (report, gate 2) on the latest ``test_cutoffs``. A random
split would leak a user's future behaviour into training and flatter every model.

Out of time means out of time: a row at cutoff ``c`` is labelled by the window
``(c, c + horizon]``. Given the ``horizon``, :func:`split_by_cutoff` purges every
training row whose label window reaches past the first validation cutoff and every
validation row whose window reaches past the first test cutoff (a gap of one horizon), so
no label the model learns from, or is selected on, overlaps the period it is tested on.
The purged cutoffs are dropped (not moved to another part) and listed in
:meth:`Split.describe`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from shopflow.errors import PermanentError

if TYPE_CHECKING:
    from datetime import timedelta

    import pandas as pd

KEY_COLUMNS = ("user_id", "event_timestamp")
LABEL_COLUMN = "label"
# columns a training frame may carry that are never features
NON_FEATURE_COLUMNS = frozenset(
    {"user_id", "item_id", "event_timestamp", "label", "cutoff_time", "label_window_end",
     "created", "created_at", "created_timestamp"}
)


class TrainingDataError(PermanentError, ValueError):
    """The training frame cannot support an honest out-of-time evaluation."""


@dataclass(frozen=True)
class Split:
    """Row positions of each part of the frame, and the cutoffs each part covers."""

    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray
    train_cutoffs: list[pd.Timestamp]
    validation_cutoffs: list[pd.Timestamp]
    test_cutoffs: list[pd.Timestamp]
    horizon_days: float | None = None
    purged_cutoffs: list[pd.Timestamp] = field(default_factory=list)
    purged_rows: int = 0

    def describe(self) -> dict[str, object]:
        """Sizes and cutoffs of each part, and what was purged, for the report and ledger."""
        parts: dict[str, object] = {
            part: {
                "rows": int(len(getattr(self, part))),
                "cutoffs": [str(c) for c in getattr(self, f"{part}_cutoffs")],
            }
            for part in ("train", "validation", "test")
        }
        parts["purge"] = {
            "horizon_days": self.horizon_days,
            "rows": int(self.purged_rows),
            "cutoffs": [str(c) for c in self.purged_cutoffs],
            "rule": ("none: no horizon given" if self.horizon_days is None else
                     "a training row at cutoff c is kept only if c + horizon <= the first "
                     "validation cutoff, a validation row only if c + horizon <= the first "
                     "test cutoff, and test cutoffs are at least one horizon apart"),
        }
        return parts


def validate_frame(frame: pd.DataFrame) -> None:
    """Fail early, naming the problem, on a frame no model should be trained on."""
    missing = [c for c in (*KEY_COLUMNS, LABEL_COLUMN) if c not in frame.columns]
    if missing:
        raise TrainingDataError(
            f"training frame lacks column(s) {missing}; it needs user_id, event_timestamp "
            f"(the cutoff), label and feature columns; got {list(frame.columns)[:10]}"
        )
    if frame.empty:
        raise TrainingDataError("training frame is empty")
    labels = frame[LABEL_COLUMN]
    if labels.isna().any():
        raise TrainingDataError(f"label has {int(labels.isna().sum())} missing value(s)")
    bad = sorted(set(labels.unique().tolist()) - {0, 1})  # True/False compare equal to 1/0
    if bad:
        raise TrainingDataError(f"label must be 0/1; found values {bad[:5]}")
    if not feature_columns(frame):
        raise TrainingDataError("training frame has no numeric feature columns")


def feature_columns(frame: pd.DataFrame) -> list[str]:
    """Numeric (or boolean) columns that are not keys, labels or timestamps, in frame order."""
    import pandas as pd

    return [
        c
        for c in frame.columns
        if c not in NON_FEATURE_COLUMNS
        and (pd.api.types.is_numeric_dtype(frame[c]) or pd.api.types.is_bool_dtype(frame[c]))
        and not pd.api.types.is_datetime64_any_dtype(frame[c])
    ]


def split_by_cutoff(
    frame: pd.DataFrame,
    *,
    validation_cutoffs: int = 1,
    test_cutoffs: int = 1,
    horizon: timedelta | None = None,
) -> Split:
    """Split rows by their cutoff (``event_timestamp``): train < validation < test.

    The latest ``test_cutoffs`` cutoffs test; with a ``horizon``, they are the latest
    cutoffs spaced at least one horizon apart (disjoint label windows), validation takes
    the latest ``validation_cutoffs`` cutoffs whose label window ends by the first test
    cutoff, and training every cutoff whose label window ends by the first validation
    cutoff; the cutoffs in between are purged. Without one, nothing is purged (the
    parts are just consecutive).

    Raises:
        TrainingDataError: too few cutoffs for the three parts (after purging), or a
            part lacks a class.
    """
    import pandas as pd

    validate_frame(frame)
    # numpy datetime64 throughout: iterating pandas Timestamps is slow on large frames
    values = pd.to_datetime(frame["event_timestamp"], utc=True).dt.tz_localize(None).to_numpy()
    cutoffs = np.unique(values)
    needed = validation_cutoffs + test_cutoffs + 1
    if len(cutoffs) < needed:
        raise TrainingDataError(
            f"training frame has {len(cutoffs)} cutoff(s) but an out-of-time split needs at "
            f"least {needed} ({validation_cutoffs} validation + {test_cutoffs} test + 1 train); "
            "use a longer event history or a shorter task.cutoff_every"
        )
    if horizon is None:
        test_set = cutoffs[-test_cutoffs:]
    else:
        test_set = _spaced_latest(cutoffs, test_cutoffs, horizon)
    if horizon is None:
        validation_set = cutoffs[-(test_cutoffs + validation_cutoffs) : -test_cutoffs]
        train_set = cutoffs[: -(test_cutoffs + validation_cutoffs)]
    else:
        gap = np.timedelta64(int(horizon.total_seconds() * 1e6), "us")
        earlier = cutoffs[cutoffs < test_set[0]]
        validation_set = earlier[earlier + gap <= test_set[0]][-validation_cutoffs:]
        train_set = (earlier[earlier + gap <= validation_set[0]]
                     if len(validation_set) == validation_cutoffs else earlier[:0])
        if (len(test_set) < test_cutoffs or len(validation_set) < validation_cutoffs
                or not len(train_set)):
            span = (cutoffs[-1] - cutoffs[0]) / np.timedelta64(1, "D")
            raise TrainingDataError(
                f"training frame's {len(cutoffs)} cutoff(s) span {span:g} days, too short for "
                f"an out-of-time split purged by the {horizon.total_seconds() / 86400:g}-day horizon: a row's label window "
                "(cutoff, cutoff + horizon] must end before the next part's first cutoff, so "
                f"the history needs about {validation_cutoffs - 1} cutoff step(s) plus "
                f"{test_cutoffs + 1} horizon(s) plus one training cutoff; use a longer event "
                "history, a shorter task.horizon, a shorter task.cutoff_every or fewer "
                "training.test_cutoffs"
            )
    kept = np.concatenate([train_set, validation_set, test_set])
    purged = np.setdiff1d(cutoffs, kept)
    parts = {
        "train": np.flatnonzero(values <= train_set[-1]),
        "validation": np.flatnonzero((values >= validation_set[0])
                                     & (values <= validation_set[-1])),
        "test": np.flatnonzero(np.isin(values, test_set)),
    }
    labels = frame[LABEL_COLUMN].astype(int).to_numpy()
    for part, rows in parts.items():
        classes = set(np.unique(labels[rows]).tolist())
        if classes != {0, 1}:
            raise TrainingDataError(
                f"the {part} part ({len(rows)} rows) has only label value(s) {sorted(classes)}; "
                "every part needs buyers and non-buyers"
            )
    return Split(
        train=parts["train"],
        validation=parts["validation"],
        test=parts["test"],
        train_cutoffs=[pd.Timestamp(c, tz="UTC") for c in train_set],
        validation_cutoffs=[pd.Timestamp(c, tz="UTC") for c in validation_set],
        test_cutoffs=[pd.Timestamp(c, tz="UTC") for c in test_set],
        horizon_days=None if horizon is None else horizon.total_seconds() / 86400,
        purged_cutoffs=[pd.Timestamp(c, tz="UTC") for c in purged],
        purged_rows=int(np.isin(values, purged).sum()),
    )


def _spaced_latest(cutoffs: np.ndarray, count: int, horizon: timedelta) -> np.ndarray:
    """Up to ``count`` latest cutoffs, each at least ``horizon`` before the next one.

    Several test cutoffs give a mean and an interval (a rolling origin scored with one
    fit); spacing them a horizon apart keeps their label windows disjoint, so they are
    separate looks at the future rather than one look counted several times.
    """
    gap = np.timedelta64(int(horizon.total_seconds() * 1e6), "us")
    chosen = [cutoffs[-1]]
    for cutoff in cutoffs[-2::-1]:
        if len(chosen) == count:
            break
        if cutoff + gap <= chosen[-1]:
            chosen.append(cutoff)
    return np.array(chosen[::-1])


def in_key_order(frame: pd.DataFrame) -> bool:
    """Whether ``frame`` is already in its canonical row order (sorted by the keys).

    Judged with pandas' own ordering of the key values (a MultiIndex of them), so True
    means a stable sort by :data:`KEY_COLUMNS` would leave every row where it is. The
    check holds one integer code per row and key; the sort it spares copies every column.
    """
    import pandas as pd

    return bool(pd.MultiIndex.from_frame(frame[list(KEY_COLUMNS)]).is_monotonic_increasing)


def key_ordered(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` sorted by the keys with a fresh 0..n-1 index: the canonical row order.

    A frame already in that order is returned as it is, not copied (the training set is
    stored in key order, and at millions of rows each copy is gigabytes); callers treat
    the result as read-only.
    """
    import pandas as pd

    if in_key_order(frame):
        if isinstance(frame.index, pd.RangeIndex) and frame.index.start == 0 \
                and frame.index.step == 1:
            return frame
        return frame.reset_index(drop=True)
    return frame.sort_values(list(KEY_COLUMNS), kind="mergesort", ignore_index=True)


def frame_fingerprint(frame: pd.DataFrame) -> str:
    """A content hash of the frame, independent of row order (recorded with every model)."""
    import pandas as pd

    ordered = key_ordered(frame)
    ordered = ordered[sorted(ordered.columns)]
    row_hashes = pd.util.hash_pandas_object(ordered, index=False).to_numpy()
    digest = hashlib.sha256(row_hashes.tobytes())
    digest.update(",".join(ordered.columns).encode())
    return digest.hexdigest()[:16]
