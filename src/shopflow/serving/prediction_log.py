"""The prediction log: every answer the service served, for gate 4, skew checks and A/B.

One JSON object per served row, under ``SHOPFLOW_HOME/predictions/`` in files
``predictions-<UTC hour>-<pid>-<n>.jsonl`` (written by :class:`~shopflow.serving.jsonl_log.
JsonlLog`: off the request path, batched, rotated by size and hour, fsynced; see there for
what a crash loses). Columns (docs/ARCHITECTURE.md, "Prediction log"):

* ``request_id`` — the id also sent back in the ``X-Request-ID`` header and the access log;
* ``at`` — when the answer was computed (ISO 8601, UTC);
* ``endpoint`` — ``predict`` or ``recommend``;
* ``row`` — position of the user in the request;
* ``user`` — the keyed hash of the user id (:class:`~shopflow.privacy.IdHasher`);
* ``model_version`` — the model that answered;
* ``known_user`` — False for a cold start;
* ``score`` — ``/predict``: the purchase probability served; ``/recommend``: null;
* ``features`` — ``/predict``: ``{feature name: value}`` the model scored (null values:
  missing; unknown users have all null); ``/recommend``: null;
* ``items`` — ``/recommend``: ``[{"item_id", "rank", "score"}]`` best first; else null;
* ``as_of`` — the data time the served features describe: the online user view's
  materialization watermark when the answer was computed (ISO 8601 UTC; null when
  unknown). Shop exports are historical, so labels are judged from ``as_of``, not ``at``
  (:mod:`shopflow.monitoring.outcomes`; it falls back to ``at`` when null);
* ``source`` — ``live``, or ``probe`` for the deploy gate's own requests (sent with the
  :data:`PROBE_HEADER` header); probes are kept out of outcome joins.
* ``arm`` — ``/predict`` during an A/B test (``serving.experiment``): ``champion`` or
  ``challenger``, the arm of the shopper (``model_version`` is that arm's model); else null.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from shopflow.contract import PROBE_HEADER as CONTRACT_PROBE_HEADER
from shopflow.serving.jsonl_log import JsonlLog, log_files, read_records, remove_user_lines

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    import numpy as np
    import pandas as pd

    from shopflow.recommend.serving import RecommendationResult
    from shopflow.settings import Settings

PREFIX = "predictions"
#: Hashed user ids remembered by the writer (cleared when full).
HASH_CACHE = 100_000
COLUMNS = ["request_id", "at", "endpoint", "row", "user", "model_version", "known_user",
           "score", "features", "items", "as_of", "source", "arm"]
#: ``source`` of answers to requests with :data:`~shopflow.contract.PROBE_HEADER` (the
#: deploy gate's), and of every other answer.
PROBE_HEADER = CONTRACT_PROBE_HEADER
LIVE = "live"
PROBE = "probe"
#: Most seconds between the runtime's reads of the materialization watermark (``as_of``).
AS_OF_REFRESH_SECONDS = 30.0


def prediction_log_dir(home: Path) -> Path:
    """Where the prediction log lives in ``SHOPFLOW_HOME``."""
    return Path(home) / "predictions"


def prediction_log_files(home: Path) -> list[Path]:
    """The prediction log's files in ``home``, oldest first per process."""
    return log_files(prediction_log_dir(home), PREFIX)


class ServedPredict(NamedTuple):
    """One ``/predict`` answer as the request path hands it over (references, no copies)."""

    request_id: str
    at: float
    model_version: str
    user_ids: Sequence[str]
    probabilities: np.ndarray
    known: np.ndarray
    features: np.ndarray | None
    feature_names: Sequence[str]
    #: the online features' data time (epoch seconds; None: unknown)
    as_of: float | None = None
    source: str = LIVE
    arm: str | None = None
    """The A/B arm of every user here (None: no test runs)."""
    rows: Sequence[int] | None = None
    """Each user's position in the request, when these users are one arm of it."""


class ServedRecommend(NamedTuple):
    """One ``/recommend`` answer as the request path hands it over."""

    request_id: str
    at: float
    result: RecommendationResult
    #: the online features' data time (epoch seconds; None: unknown)
    as_of: float | None = None
    source: str = LIVE


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


class PredictionLog(JsonlLog["ServedPredict | ServedRecommend"]):
    """The service's prediction log (a :class:`JsonlLog` that knows the record layout).

    Args:
        settings: serving knobs (``serving.prediction_log_*``), retention
            (``privacy.retention.logs``) and SHOPFLOW_HOME.
        hash_id: pseudonymises user ids (applied on the writer thread).
    """

    def __init__(self, settings: Settings, *, hash_id: Callable[[str], str]) -> None:
        serving = settings.serving
        super().__init__(directory=prediction_log_dir(settings.home_dir), prefix=PREFIX,
                         to_records=self._records,
                         flush_interval=serving.prediction_log_flush_interval,
                         max_bytes=serving.prediction_log_max_bytes,
                         rotate_seconds=serving.prediction_log_rotate_seconds,
                         max_pending=serving.prediction_log_max_pending,
                         keep=settings.privacy.retention.logs)
        self._hash_id = hash_id
        # writer-thread caches: shoppers come back, and many answers share a second
        self._hashed: dict[str, str] = {}
        self._second: tuple[int, str] = (-1, "")
        self._as_of: tuple[float, str] = (float("nan"), "")

    def _user(self, user_id: str) -> str:
        token = self._hashed.get(user_id)
        if token is None:
            if len(self._hashed) >= HASH_CACHE:
                self._hashed.clear()
            token = self._hashed[user_id] = self._hash_id(user_id)
        return token

    def _iso(self, at: float) -> str:
        """``at`` as ISO 8601 UTC with microseconds (the second's text reused)."""
        second = int(at)
        if second != self._second[0]:
            text = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
            self._second = (second, text)
        return f"{self._second[1]}.{int((at - second) * 1e6):06d}+00:00"

    def _as_of_iso(self, as_of: float) -> str:
        """The watermark as ISO 8601 UTC (it changes rarely: the last text is reused)."""
        if as_of != self._as_of[0]:
            self._as_of = (as_of, datetime.fromtimestamp(as_of, UTC).isoformat())
        return self._as_of[1]

    def _records(self, item: ServedPredict | ServedRecommend) -> Iterator[dict[str, Any]]:
        at = self._iso(item.at)
        as_of = None if item.as_of is None else self._as_of_iso(item.as_of)
        if isinstance(item, ServedRecommend):
            result = item.result
            yield {"request_id": item.request_id, "at": at, "endpoint": "recommend", "row": 0,
                   "user": self._user(result.user_id), "model_version": result.model_version,
                   "known_user": not result.cold_start, "score": None, "features": None,
                   "items": [{"item_id": i.item_id, "rank": i.rank, "score": _finite(i.score)}
                             for i in result.items],
                   "as_of": as_of, "source": item.source, "arm": None}
            return
        names = list(item.feature_names)
        rows = item.features.tolist() if item.features is not None else None
        positions, arm = item.rows, item.arm
        for row, (uid, p, known) in enumerate(zip(item.user_ids, item.probabilities.tolist(),
                                                  item.known.tolist(), strict=True)):
            features = None if rows is None else {
                name: _finite(v) for name, v in zip(names, rows[row], strict=True)}
            yield {"request_id": item.request_id, "at": at, "endpoint": "predict",
                   "row": row if positions is None else positions[row],
                   "user": self._user(uid), "model_version": item.model_version,
                   "known_user": bool(known), "score": _finite(p), "features": features,
                   "items": None, "as_of": as_of, "source": item.source,
                   "arm": arm}


def read_prediction_log(home: Path, since: datetime | None = None) -> pd.DataFrame:
    """The served predictions in ``home``'s log as a frame (columns: :data:`COLUMNS`).

    Args:
        home: SHOPFLOW_HOME.
        since: only rows answered at or after this time (naive means UTC).

    Returns:
        One row per served user (``at`` and ``as_of`` as UTC timestamps, ``as_of`` NaT
        when unknown; ``source`` ``live`` for rows logged before it existed), oldest
        first; ``features`` and ``items`` hold dicts / lists (``pandas.json_normalize``
        flattens them). Keys this version does not know (a newer writer's) are kept as
        extra columns after :data:`COLUMNS`.
    """
    import pandas as pd

    paths = prediction_log_files(home)
    if since is not None:
        since = since if since.tzinfo is not None else since.replace(tzinfo=UTC)
        paths = [p for p in paths if _may_hold(p, since)]
    frame = pd.DataFrame(list(read_records(paths)))
    extra = [c for c in frame.columns if c not in COLUMNS]
    frame = frame.reindex(columns=[*COLUMNS, *extra])
    frame["source"] = frame["source"].fillna(LIVE)
    frame["at"] = pd.to_datetime(frame["at"], utc=True, format="ISO8601")
    frame["as_of"] = pd.to_datetime(frame["as_of"], utc=True, format="ISO8601")
    if since is not None:
        frame = frame[frame["at"] >= pd.Timestamp(since)]
    return frame.sort_values("at", kind="stable").reset_index(drop=True)


def _may_hold(path: Path, since: datetime) -> bool:
    """A file last written before ``since`` holds no row after it (rows are written after
    they are answered), so it need not be read."""
    try:
        return path.stat().st_mtime >= since.timestamp()
    except OSError:
        return False


def remove_user(home: Path, hashed_id: str) -> int:
    """Erase one shopper's rows from the prediction log (``shopflow forget``'s
    ``prediction_log`` store does this file by file).

    Each changed file is replaced atomically; a running writer notices and reopens it.

    Args:
        home: SHOPFLOW_HOME.
        hashed_id: the shopper's token, ``IdHasher(home)(user_id)``.

    Returns:
        How many rows were removed. Rows still buffered in a running service (at most
        one flush interval) are written after this; run it after stopping the service, or
        again, to be sure.
    """
    return sum(remove_user_lines(path, hashed_id) for path in prediction_log_files(home))
