"""The recommender behind ``POST /recommend``, and its hot swap.

Like the propensity model (``shopflow.serving.runtime``), the served recommender is the
one the ledger names (model ``recommender``, alias ``recommender:production``). The
service's alias poller calls :meth:`RecommenderRuntime.poll_once` every
``serving.reload_interval`` seconds; a new version is loaded beside the current one,
checked with golden requests and swapped by one reference assignment, so a request
never sees half a swap. A version that fails its check is refused (the old one keeps
serving) and the refusal is a ledger ``rejection`` for the recommender.

With no recommender in production, the service answers with popularity from the last
*published* marts (what passed the marts quality gate), flagged ``cold_start``, and
refreshes it when a pipeline run publishes new marts. It never opens the warehouse: a
DuckDB file opened by the service would block the next DAG run's writes.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shopflow.recommend.serving import RecommendationResult, Recommender
    from shopflow.settings import Settings

logger = logging.getLogger(__name__)

GOLDEN_UNKNOWN_ID = "__shopflow_golden_unknown__"
SERVING_ACTOR = "shopflow-serving"
MODEL = "recommender"


class NoRecommender(RuntimeError):
    """Nothing to recommend with: no recommender in production and nothing published."""


class RecommenderRefused(RuntimeError):
    """A recommender version failed its swap-time check."""


class RecommenderRuntime:
    """Holds the served recommender; swaps it when the ledger's recommender alias moves.

    Args:
        settings: ledger URL, model store and published marts.
        popularity_retry: seconds between attempts to build the popularity fallback
            while there is nothing to serve.
    """

    def __init__(self, settings: Settings, *, popularity_retry: float = 30.0) -> None:
        from shopflow.ledger import Ledger

        self.settings = settings
        self.current: Recommender | None = None
        self.alias_version: str | None = None
        self.refusals: deque[dict[str, str]] = deque(maxlen=20)
        self.swaps = 0
        self.last_error: str | None = None
        self._ledger = Ledger(settings.ledger_url, model=MODEL)
        self._refused_target: str | None = None
        self._popularity_retry = popularity_retry
        self._popularity_tried = -math.inf
        self._popularity_stamp: float | None = None
        self._attempted_stamp: float | None = -1.0
        self._lock = threading.Lock()

    def close(self) -> None:
        self._ledger.close()

    # ---- the hot swap ------------------------------------------------------------------
    def poll_once(self) -> None:
        """Read the recommender alias once; load, check and swap when it moved."""
        with self._lock:
            try:
                production = self._ledger.production()
            except Exception as exc:  # an unreachable ledger must not stop serving
                self.last_error = f"ledger unreachable: {type(exc).__name__}: {exc}"
                logger.warning("recommender alias poll failed, keeping %s: %s",
                               self.version, exc)
                return
            self.last_error = None
            target = production.version if production is not None else None
            self.alias_version = target
            if target is None:
                self._serve_popularity()
            elif target != self.version and target != self._refused_target:
                self._swap_to(target)

    @property
    def version(self) -> str | None:
        current = self.current
        return current.model_version if current is not None else None

    def _swap_to(self, version: str) -> None:
        from shopflow.recommend.serving import Recommender

        started = time.perf_counter()
        previous = self.version
        try:
            candidate = Recommender.load(self.settings, version, fallback=False)
            self.check(candidate)
        except Exception as exc:  # a broken version is a refusal, never a crash
            self._refuse(version, f"{type(exc).__name__}: {exc}", previous)
            return
        self.current = candidate  # the swap: one reference assignment
        self._refused_target = None
        self._popularity_stamp = None
        self.swaps += 1
        logger.info("now serving recommender %s (%s; was %s; loaded and checked in %.0f ms)",
                    version, candidate.family, previous, (time.perf_counter() - started) * 1000)

    def _serve_popularity(self) -> None:
        """No recommender in production: popularity from the published marts, kept fresh."""
        from shopflow.recommend.snapshot import published_popularity_snapshot
        from shopflow.transform import marts_dir

        current = self.current
        if current is not None and current.model_version != "popularity":
            return  # the alias was emptied by hand: keep serving what we have
        path = marts_dir(self.settings) / "item_features.parquet"
        try:
            stamp = path.stat().st_mtime
        except OSError:
            stamp = None
        if current is not None and stamp == self._popularity_stamp:
            return
        now = time.monotonic()
        if stamp == self._attempted_stamp and now - self._popularity_tried < self._popularity_retry:
            return  # the same file failed a moment ago: wait before trying it again
        self._attempted_stamp, self._popularity_tried = stamp, now
        from shopflow.recommend.serving import Recommender

        try:
            snapshot = published_popularity_snapshot(self.settings)
            fresh = Recommender(snapshot, model_version="popularity", family="popularity",
                                metadata={"source": str(path)})
            self.check(fresh)
        except Exception as exc:
            self.last_error = f"no popularity fallback: {type(exc).__name__}: {exc}"
            logger.info("recommender: %s", self.last_error)
            return
        self.current = fresh
        self._popularity_stamp = stamp
        logger.info("no recommender in production: serving popularity from %s (snapshot %s)",
                    path, fresh.snapshot_time)

    def _refuse(self, version: str, reason: str, serving: str | None) -> None:
        self._refused_target = version
        self.refusals.append({"version": version, "reason": reason,
                              "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
        logger.error("refused to serve recommender %s, still serving %s: %s", version, serving,
                     reason)
        try:
            self._ledger.record_event(
                kind="rejection", version=version, reason=f"hot swap refused: {reason}",
                actor=SERVING_ACTOR, previous_version=serving,
                details={"stage": "serving", "serving_version": serving},
            )
        except Exception:
            logger.exception("could not record the refusal of recommender %s", version)

    @staticmethod
    def check(candidate: Recommender, k: int = 10) -> None:
        """Golden requests: a known user (if any) and an unknown one get ranked, finite lists.

        Raises:
            RecommenderRefused: an answer is empty, unordered or has non-finite scores.
        """
        known = candidate.sample_user()
        for user in [u for u in (known, GOLDEN_UNKNOWN_ID) if u is not None]:
            result = candidate.recommend(user, k)
            scores = [item.score for item in result.items]
            if not result.items:
                raise RecommenderRefused(f"golden request for {user!r} returned no items")
            if not all(math.isfinite(s) for s in scores):
                raise RecommenderRefused(f"golden request: non-finite scores {scores[:5]}")
            if scores != sorted(scores, reverse=True):
                raise RecommenderRefused("golden request: scores are not in descending order")
            if [i.rank for i in result.items] != list(range(1, len(result.items) + 1)):
                raise RecommenderRefused("golden request: ranks are not 1..n")

    # ---- requests ----------------------------------------------------------------------
    def recommend(self, user_id: str, k: int = 10, *,
                  exclude_purchased: bool = False) -> RecommendationResult:
        """The top ``k`` items for ``user_id`` from the recommender served right now.

        Raises:
            NoRecommender: nothing to serve (503).
            ValueError: bad ``user_id`` or ``k`` (422; the message names the field).
        """
        current = self.current  # read once: a concurrent swap cannot change this request
        if current is None:
            raise NoRecommender(self.unavailable_reason())
        return current.recommend(user_id, k, exclude_purchased=exclude_purchased)

    def unavailable_reason(self) -> str:
        """Why /recommend cannot answer, for 503s."""
        if self.alias_version is not None and self.refusals and \
                self.refusals[-1]["version"] == self.alias_version:
            return (f"production recommender {self.alias_version} was refused: "
                    f"{self.refusals[-1]['reason']}")
        if self.alias_version is not None:
            return f"production recommender {self.alias_version} is not loaded yet"
        return ("no recommender in production and no published marts to serve popularity "
                "from: run the training pipeline (shopflow pipeline run)"
                + (f" ({self.last_error})" if self.last_error else ""))

    def metadata(self) -> dict[str, Any]:
        """The ``recommender`` section of ``GET /metadata``."""
        current = self.current
        return {
            "model_version": current.model_version if current else None,
            "family": current.family if current else None,
            "snapshot_time": current.snapshot_time if current else None,
            "users": current.known_users if current else 0,
            "metrics": (current.metadata.get("metrics") if current else None) or {},
            "trained_at": (current.metadata.get("trained_at") if current else None),
            "fallback": bool(current is not None and current.model_version == "popularity"),
            "production_alias": self.alias_version,
            "refused": list(self.refusals),
            "swaps": self.swaps,
            "error": self.last_error,
        }
