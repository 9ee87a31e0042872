"""Recommendations for one shopper in milliseconds, from a stored recommender.

:class:`Recommender` loads a ranker's precomputed serving snapshot (see snapshot.py)
into flat arrays, so ``recommend`` is a dictionary lookup plus a slice. Shoppers unknown
to the snapshot get the popularity list, flagged ``cold_start``; never an error.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from shopflow.contract import MAX_K, POPULARITY_VERSION

if TYPE_CHECKING:
    import pandas as pd

    from shopflow.recommend.snapshot import ServingSnapshot
    from shopflow.serving.packaged import PinnedModel
    from shopflow.settings import Settings

logger = logging.getLogger(__name__)


class RecommenderUnavailable(RuntimeError):
    """No recommender can be loaded (nothing stored and no warehouse to fall back on)."""


@dataclass(frozen=True)
class RecommendedItem:
    """One recommended item."""

    item_id: str
    score: float
    rank: int


@dataclass(frozen=True)
class RecommendationResult:
    """The answer to one ``recommend`` call.

    Attributes:
        user_id: who it is for.
        items: best first.
        model_version: the recommender version (``popularity`` when none is stored).
        family: ``lightgbm``, ``torch`` or ``popularity``.
        cold_start: the user was unknown at the snapshot; items are the popular ones.
        snapshot_time: the cutoff the lists were computed at (ISO 8601, UTC).
    """

    user_id: str
    items: list[RecommendedItem]
    model_version: str
    family: str
    cold_start: bool
    snapshot_time: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, for the HTTP response."""
        return asdict(self)


class Recommender:
    """Serves a stored recommender's precomputed lists.

    Build with :meth:`load` (from the store) or :meth:`from_snapshot` (tests, tools).
    """

    def __init__(self, snapshot: ServingSnapshot, *, model_version: str, family: str,
                 metadata: dict[str, Any] | None = None) -> None:
        self.model_version = model_version
        self.family = family
        self.metadata = dict(metadata or {})
        cutoff = snapshot.cutoff
        self.snapshot_time = (cutoff.tz_localize("UTC") if cutoff.tzinfo is None else cutoff).isoformat()
        ranked = _finite_scores(snapshot.ranked, model_version, "ranked lists").sort_values(
            ["user_id", "rank"], kind="mergesort")
        users = ranked["user_id"].to_numpy(dtype=object)
        self._items = ranked["item_id"].to_numpy(dtype=object)
        self._scores = ranked["score"].to_numpy(dtype=np.float64)
        if len(users):
            starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
            ends = np.r_[starts[1:], len(users)]
            self._spans = {str(users[s]): (int(s), int(e)) for s, e in zip(starts, ends, strict=True)}
        else:
            self._spans = {}
        popular = _finite_scores(snapshot.popular, model_version, "popular items")
        self._popular_items = popular["item_id"].to_numpy(dtype=object)
        self._popular_scores = popular["score"].to_numpy(dtype=np.float64)
        purchased: dict[str, set[str]] = {}
        for user, item in zip(snapshot.purchased["user_id"], snapshot.purchased["item_id"],
                              strict=True):
            purchased.setdefault(str(user), set()).add(str(item))
        self._purchased = {u: frozenset(s) for u, s in purchased.items()}

    @classmethod
    def from_snapshot(cls, snapshot: ServingSnapshot, *, model_version: str = "snapshot",
                      family: str = "unknown") -> Recommender:
        return cls(snapshot, model_version=model_version, family=family)

    @classmethod
    def load_packaged(cls, pin: PinnedModel) -> Recommender:
        """The recommender a Bento carries (:mod:`shopflow.serving.packaged`), from its
        folder, checked against the digests in its pin; no ledger, no model store.

        Raises:
            RecommenderLoadError: a file differs from its digest, or cannot be read.
        """
        from shopflow.recommend.store import RecommenderLoadError, read_recommender
        from shopflow.registry.digest import ArtefactMismatch, verify_packaged

        try:
            verify_packaged(pin.version, pin.folder(), pin.artefacts)
        except ArtefactMismatch as exc:
            raise RecommenderLoadError(str(exc)) from exc
        model, snapshot = read_recommender(pin.folder(), pin.version)
        return cls(snapshot, model_version=pin.version, family=model.family,
                   metadata=pin.metadata)

    @classmethod
    def load(cls, settings: Settings, version: str | None = None, *,
             fallback: bool = True, newest_stored: bool = True) -> Recommender:
        """The named version; else the ledger's recommender production; else the newest.

        With nothing to load and ``fallback``, serves popularity: from the last published
        marts when there are some (no warehouse lock), else computed from the warehouse
        (version ``popularity``).

        Args:
            settings: the model store, ledger, published marts and warehouse to use.
            version: a stored recommender version; None: production.
            fallback: serve popularity when no recommender can be named.
            newest_stored: with no production recommender, serve the newest stored one
                (tools, notebooks); the service passes False, so that a recommender the
                gate rejected is never served.

        Raises:
            RecommenderLoadError: the named version is missing or broken.
            RecommenderUnavailable: nothing stored and no fallback possible.
        """
        from shopflow.recommend.store import list_recommenders, load_recommender

        if version is None:
            version = cls.production_version(settings)
            if version is None and newest_stored:
                stored = list_recommenders(settings)
                version = stored[0].version if stored else None
        if version is not None:
            model, snapshot, metadata = load_recommender(settings, version)
            logger.info("recommender %s (%s) loaded: %d users, snapshot %s", version,
                        model.family, snapshot.ranked["user_id"].nunique(), snapshot.cutoff)
            return cls(snapshot, model_version=version, family=model.family, metadata=metadata)
        if not fallback:
            raise RecommenderUnavailable(
                "no recommender in production"
                + ("" if not newest_stored else
                   f" and no shopflow-recommender in the model store at {settings.bentoml_home}")
            )
        return cls.popularity(settings)

    @classmethod
    def popularity(cls, settings: Settings) -> Recommender:
        """Everyone gets the popular items (``cold_start``), version ``popularity``.

        Raises:
            RecommenderUnavailable: nothing published and no warehouse to compute it from.
        """
        from shopflow.recommend.snapshot import popularity_snapshot, published_popularity_snapshot

        try:
            snapshot = published_popularity_snapshot(settings)
            return cls(snapshot, model_version=POPULARITY_VERSION, family="popularity",
                       metadata={"source": "published item_features"})
        except (FileNotFoundError, ValueError) as exc:
            logger.info("no published popularity (%s); trying the warehouse", exc)
        if settings.warehouse.backend == "duckdb" and not settings.warehouse_path.is_file():
            raise RecommenderUnavailable(
                "no recommender in production, no published marts and no warehouse at "
                f"{settings.warehouse_path} to serve popularity from: run the training "
                "pipeline first"
            )
        try:
            snapshot = popularity_snapshot(settings)
        except Exception as exc:
            raise RecommenderUnavailable(
                "no recommender in production and the warehouse cannot give a popularity "
                f"list: {type(exc).__name__}: {exc}"
            ) from exc
        return cls(snapshot, model_version=POPULARITY_VERSION, family="popularity",
                   metadata={"source": "warehouse staged events"})

    @staticmethod
    def production_version(settings: Settings) -> str | None:
        """The ledger's recommender production version (poll it to hot swap)."""
        from shopflow.recommend.gate import recommender_ledger

        ledger = recommender_ledger(settings)
        try:
            production = ledger.production()
        finally:
            ledger.close()
        return None if production is None else production.version

    @property
    def known_users(self) -> int:
        """How many users have a personal list."""
        return len(self._spans)

    def sample_user(self) -> str | None:
        """Some user with a personal list (for golden requests), None when nobody has one."""
        return next(iter(self._spans), None)

    def known(self, user_id: str) -> bool:
        """Whether the user has a personal list in the snapshot."""
        return str(user_id) in self._spans

    def recommend(self, user_id: str, k: int = 10, *,
                  exclude_purchased: bool = False) -> RecommendationResult:
        """The top ``k`` items for ``user_id``.

        Args:
            user_id: the shopper; unknown ids get the popularity list (``cold_start``).
            k: how many items, 1 to 100.
            exclude_purchased: leave out items the user already bought (the list is
                filled up from the popular items).

        Raises:
            ValueError: ``user_id`` is empty or ``k`` is not an integer in [1, 100].
        """
        if not isinstance(user_id, str) or not user_id.strip():
            raise ValueError("user_id must be a non-empty string")
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 1 <= k <= MAX_K:
            raise ValueError(f"k must be an integer from 1 to {MAX_K}, got {k!r}")
        span = self._spans.get(user_id)
        skip = self._purchased.get(user_id, frozenset()) if exclude_purchased else frozenset()
        chosen: list[RecommendedItem] = []
        seen: set[str] = set()
        if span is not None:
            start, end = span
            for item, score in zip(self._items[start:end], self._scores[start:end], strict=True):
                if item in skip:
                    continue
                chosen.append(RecommendedItem(str(item), float(score), len(chosen) + 1))
                seen.add(item)
                if len(chosen) == k:
                    break
        if len(chosen) < k:
            # cold start, or a short list: popular items, scored below every ranked item
            floor = min((c.score for c in chosen), default=0.0)
            for item, score in zip(self._popular_items, self._popular_scores, strict=True):
                if item in skip or item in seen:
                    continue
                value = float(score) if span is None else floor - 1.0 - len(chosen)
                chosen.append(RecommendedItem(str(item), value, len(chosen) + 1))
                if len(chosen) == k:
                    break
        return RecommendationResult(
            user_id=user_id, items=chosen, model_version=self.model_version,
            family=self.family if span is not None else "popularity",
            cold_start=span is None, snapshot_time=self.snapshot_time,
        )


def _finite_scores(frame: pd.DataFrame, version: str, what: str) -> pd.DataFrame:
    """``frame`` without the rows whose score is NaN or infinite.

    JSON has no NaN, and an item the ranker could not score has no place in a ranking: it
    is left out (a short list is filled up from the popular items, as for any shopper with
    fewer ranked items than asked for), with a warning that names the recommender.
    """
    scores = frame["score"].to_numpy(dtype=np.float64)
    finite = np.isfinite(scores)
    if finite.all():
        return frame
    logger.warning("recommender %s: %d of the %s have a non-finite score; left out",
                   version, int((~finite).sum()), what)
    kept: pd.DataFrame = frame.loc[finite]
    return kept
