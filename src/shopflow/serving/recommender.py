"""The recommender behind ``POST /recommend``, and its hot swap.

Like the propensity model (``shopflow.serving.runtime``), the served recommender is the
one the ledger names (model ``recommender``, alias ``recommender:production``), followed
the same way (:mod:`shopflow.serving.alias_follower`): the service's alias poller calls
:meth:`RecommenderRuntime.poll_once` every ``serving.reload_interval`` seconds; a new
version is loaded beside the current one, checked with golden requests and swapped by one
reference assignment, so a request never sees half a swap. A version that fails its check
is refused (the old one keeps serving) and the refusal is a ledger ``rejection`` for the
recommender.

With no recommender in production, the service answers with popularity from the last
*published* marts (what passed the marts quality gate), flagged ``cold_start``, and
refreshes it when a pipeline run publishes new marts. It never opens the warehouse: a
DuckDB file opened by the service would block the next DAG run's writes.
"""

from __future__ import annotations

import logging
import math
import time
from typing import TYPE_CHECKING, Any

from shopflow.contract import GOLDEN_UNKNOWN_ID, POPULARITY_VERSION, RECOMMENDER_MODEL
from shopflow.serving.alias_follower import AliasFollower, ModelRefused

if TYPE_CHECKING:
    from shopflow.recommend.serving import RecommendationResult, Recommender
    from shopflow.serving.packaged import PinnedModel
    from shopflow.settings import Settings

logger = logging.getLogger(__name__)

class NoRecommender(RuntimeError):
    """Nothing to recommend with: no recommender in production and nothing published."""


class RecommenderRefused(ModelRefused):
    """A recommender version failed its swap-time check."""


class RecommenderRuntime(AliasFollower["Recommender"]):
    """Holds the served recommender; swaps it when the ledger's recommender alias moves.

    Args:
        settings: ledger URL, model store and published marts.
        popularity_retry: seconds between attempts to build the popularity fallback
            while there is nothing to serve.
        packaged: inside a Bento: serve ``pin`` (or popularity when the Bento carries no
            recommender), follow no alias, never open the ledger.
        pin: the recommender the Bento carries, resolved to its folder.
    """

    kind = RECOMMENDER_MODEL
    label = RECOMMENDER_MODEL

    def __init__(self, settings: Settings, *, popularity_retry: float = 30.0,
                 packaged: bool = False, pin: PinnedModel | None = None) -> None:
        super().__init__(settings.ledger_url, packaged=packaged,
                         pinned_version=pin.version if pin is not None else None)
        self.pin = pin
        self.settings = settings
        self._popularity_retry = popularity_retry
        self._popularity_tried = -math.inf
        self._popularity_stamp: float | None = None
        self._attempted_stamp: float | None = -1.0
        self._popularity_error: str | None = None

    @property
    def last_error(self) -> str | None:
        """Why the last poll left something undone: the ledger, else the fallback."""
        return self.last_poll_error or self._popularity_error

    # ---- what the alias follower needs to know about this model ------------------------
    def _load(self, version: str) -> Recommender:
        from shopflow.recommend.serving import Recommender

        if self.pin is not None:
            return Recommender.load_packaged(self.pin)
        return Recommender.load(self.settings, version, fallback=False)

    def _check(self, candidate: Recommender) -> Recommender:
        self.check(candidate)
        return candidate

    def _version_of(self, model: Recommender) -> str:
        return model.model_version

    def _after_swap(self, model: Recommender) -> None:
        self._popularity_stamp = None

    def _after_poll(self, target: str | None) -> None:
        self._popularity_error = None
        if target is None:
            self._serve_popularity()

    def _serve_popularity(self) -> None:
        """No recommender in production: popularity from the published marts, kept fresh."""
        from shopflow.recommend.snapshot import published_popularity_snapshot
        from shopflow.transform import marts_dir

        current = self.current
        if current is not None and current.model_version != POPULARITY_VERSION:
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
            fresh = Recommender(snapshot, model_version=POPULARITY_VERSION, family="popularity",
                                metadata={"source": str(path)})
            self.check(fresh)
        except Exception as exc:
            self._popularity_error = f"no popularity fallback: {type(exc).__name__}: {exc}"
            logger.info("recommender: %s", self._popularity_error)
            return
        self.current = fresh
        self._popularity_stamp = stamp
        logger.info("no recommender in production: serving popularity from %s (snapshot %s)",
                    path, fresh.snapshot_time)

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
        refusal = self.alias_refusal()
        if refusal is not None:
            return f"production recommender {refusal.version} was refused: {refusal.reason}"
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
            "fallback": bool(current is not None and current.model_version == POPULARITY_VERSION),
            "production_alias": self.alias_version,
            "refused": [r.asdict() for r in self.refusals],
            "swaps": self.swaps,
            "error": self.last_error,
        }
