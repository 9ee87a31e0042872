"""Rankers: order each user's candidates by how likely they are to be bought next.

Three families, all behind :class:`RankerModel` (a frame of candidate rows in, a score
per row out; picklable with plain ``pickle``):

* ``popularity`` -- the baseline: the window's best sellers, the same list for everyone;
* ``lightgbm`` -- LightGBM ``lambdarank``, one query group per (user, cutoff), early
  stopping on the validation cutoffs' NDCG@10;
* ``torch`` -- a neural collaborative filtering model: user and item embeddings (GMF
  term plus an MLP over both embeddings and the dbt features), epoch chosen on the
  validation cutoffs' NDCG@10.

Seeds are fixed, so the same data gives the same model.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Iterator

    import pandas as pd

    from shopflow.recommend.dataset import RankingData

logger = logging.getLogger(__name__)

# The family names are ``shopflow.settings.RANKER_FAMILIES`` (with the propensity ones).

#: Rows :meth:`RankerModel.score` turns into a feature matrix at once (also the torch
#: ranker's inference batch).
SCORE_BLOCK_ROWS = 65_536


@dataclass
class RankerModel:
    """A trained candidate ranker.

    Attributes:
        family: ``popularity``, ``lightgbm`` or ``torch``.
        feature_names: the frame columns the predictor reads, in its order.
        params: hyperparameters (for the ledger and the report).
        predictor: has ``predict(frame, matrix) -> scores``.
        trained_at: when training finished (UTC).
    """

    family: str
    feature_names: list[str]
    params: dict[str, Any]
    predictor: Any
    trained_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def matrix(self, frame: pd.DataFrame, columns: np.ndarray | None = None) -> np.ndarray:
        """The frame's features as float64 in the model's order (missing columns: NaN);
        with ``columns`` (positions in ``feature_names``), only those."""
        from shopflow.features.matrix import feature_matrix

        names = self.feature_names if columns is None else [self.feature_names[j] for j in columns]
        return feature_matrix(frame, names)

    def encode(self, matrix: np.ndarray, columns: np.ndarray) -> np.ndarray:
        """The predictor's inputs of ``matrix``, whose columns are ``feature_names[columns]``.

        Entry by entry, so a user's (or an item's) row can be encoded once and gathered
        for each of its candidates: the serving snapshot does that instead of encoding
        the same user columns on a hundred candidate rows.
        """
        out: np.ndarray = self.predictor.encode(matrix, columns)
        return out

    def forward(self, users: np.ndarray | None, items: np.ndarray | None,
                inputs: np.ndarray) -> np.ndarray:
        """Scores of encoded rows (``inputs``: all features, the model's order); ``users``
        and ``items`` are the predictor's vocabulary codes (:meth:`codes`) of each row."""
        return np.asarray(self.predictor.forward(users, items, inputs), dtype=np.float64)

    def codes(self, vocabulary: str, ids: np.ndarray) -> np.ndarray | None:
        """The predictor's codes of ``ids`` in ``vocabulary`` (``users`` or ``items``);
        None for a predictor that scores features only."""
        out: np.ndarray | None = self.predictor.codes(vocabulary, ids)
        return out

    def score(self, frame: pd.DataFrame) -> np.ndarray:
        """A score per candidate row; higher means recommend earlier.

        Rows are scored in blocks of ``SCORE_BLOCK_ROWS``: the float64 feature matrix and
        a predictor's temporaries (the torch ranker's transform makes several copies)
        then exist for one block at a time, not for the whole frame. Rows are scored
        independently, so the scores are the same as in one piece (the block size is the
        torch ranker's own batch size, so its batches do not move).
        """
        if len(frame) == 0:
            return np.zeros(0)
        if len(frame) <= SCORE_BLOCK_ROWS:
            return self._score_block(frame)
        return np.concatenate([self._score_block(frame.iloc[start:start + SCORE_BLOCK_ROWS])
                               for start in range(0, len(frame), SCORE_BLOCK_ROWS)])

    def _score_block(self, frame: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.predictor.predict(frame, self.matrix(frame)), dtype=np.float64)


class FeaturePredictor:
    """A predictor as three steps: ``encode`` the feature matrix (entry by entry, per
    column), vocabulary ``codes`` of the ids, ``forward`` both to scores. ``predict`` is
    the three in one; the serving snapshot runs them apart, so that rows shared by many
    candidates (a user's features) are encoded once. Here: features only, as they are.
    """

    def encode(self, matrix: np.ndarray, columns: np.ndarray | None = None) -> np.ndarray:
        return matrix

    def codes(self, vocabulary: str, ids: Any) -> np.ndarray | None:
        return None

    def forward(self, users: np.ndarray | None, items: np.ndarray | None,
                inputs: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def predict(self, frame: pd.DataFrame, matrix: np.ndarray) -> np.ndarray:
        return self.forward(None, None, self.encode(matrix))


# ---- popularity ------------------------------------------------------------------------
class PopularityPredictor(FeaturePredictor):
    """Scores a candidate by its item's popularity in the window (purchases, then views):
    its one feature, ``cand_popularity``."""

    def forward(self, users: np.ndarray | None, items: np.ndarray | None,
                inputs: np.ndarray) -> np.ndarray:
        return np.asarray(inputs[:, 0], dtype=np.float64)


def popularity_model() -> RankerModel:
    """The baseline every ranker must beat (needs no training)."""
    return RankerModel(family="popularity", feature_names=["cand_popularity"], params={},
                       predictor=PopularityPredictor())


# ---- LightGBM lambdarank -------------------------------------------------------------
class LightGBMRankPredictor(FeaturePredictor):
    """A lambdarank booster and the number of rounds early stopping kept."""

    def __init__(self, booster: Any, rounds: int, threads: int = 1) -> None:
        self.booster = booster
        self.rounds = rounds
        self.threads = threads

    def forward(self, users: np.ndarray | None, items: np.ndarray | None,
                inputs: np.ndarray) -> np.ndarray:
        return np.asarray(
            self.booster.predict(inputs, num_iteration=self.rounds, num_threads=self.threads))


def _groups(frame: pd.DataFrame) -> np.ndarray:
    """Sizes of consecutive (cutoff, user) runs: the frame must be sorted by them."""
    keys = frame.groupby(["cutoff_time", "user_id"], sort=False).ngroup().to_numpy()
    change = np.flatnonzero(np.diff(keys)) + 1
    bounds = np.concatenate([[0], change, [len(keys)]])
    return np.diff(bounds)


def _with_positives(frame: pd.DataFrame) -> pd.DataFrame:
    keep = frame.groupby(["cutoff_time", "user_id"])["label"].transform("max") > 0
    return frame[keep]


def train_lightgbm(data: RankingData, *, seed: int = 42, threads: int = 1,
                   max_rounds: int = 400, early_stopping: int = 30) -> RankerModel:
    """LightGBM lambdarank on the training cutoffs, early stopping on validation.

    ``threads`` defaults to 1: on a shared or oversubscribed machine OpenMP threads spin
    against each other (measured 5x slower with 2 threads on 2 busy cores).
    """
    import lightgbm as lgb

    features = data.feature_names
    train = data.frame("train").sort_values(["cutoff_time", "user_id"], kind="mergesort")
    valid = _with_positives(data.frame("validation")).sort_values(
        ["cutoff_time", "user_id"], kind="mergesort")
    probe = RankerModel("lightgbm", features, {}, None)
    params = {
        "objective": "lambdarank",
        "metric": "ndcg",
        "eval_at": [10],
        "learning_rate": 0.05,
        "num_leaves": 31,
        "min_data_in_leaf": 20,
        "feature_fraction": 0.9,
        "bagging_fraction": 0.8,
        "bagging_freq": 1,
        "lambda_l2": 1.0,
        "lambdarank_truncation_level": 20,
        "seed": seed,
        "deterministic": True,
        "force_row_wise": True,
        "num_threads": threads,
        "verbose": -1,
    }
    started = time.perf_counter()
    train_set = lgb.Dataset(probe.matrix(train), label=train["label"].to_numpy(),
                            group=_groups(train), feature_name=features, free_raw_data=True)
    if len(valid):
        valid_set = lgb.Dataset(probe.matrix(valid), label=valid["label"].to_numpy(),
                                group=_groups(valid), reference=train_set)
        booster = lgb.train(
            params, train_set, num_boost_round=max_rounds, valid_sets=[valid_set],
            valid_names=["validation"],
            callbacks=[lgb.early_stopping(early_stopping, verbose=False)],
        )
    else:  # no validation buyer has a bought candidate: nothing to stop on
        logger.warning("lightgbm: no validation group has a positive; training %d rounds",
                       max_rounds // 4)
        booster = lgb.train(params, train_set, num_boost_round=max_rounds // 4)
    rounds = int(booster.best_iteration or booster.current_iteration())
    logger.info("lightgbm lambdarank: %d rows, %d rounds kept, %.1fs", len(train), rounds,
                time.perf_counter() - started)
    return RankerModel("lightgbm", features, {**params, "rounds": rounds},
                       LightGBMRankPredictor(booster, rounds, threads))


# ---- PyTorch NCF -----------------------------------------------------------------------
def _transform(matrix: np.ndarray) -> np.ndarray:
    """Signed log: counts and money span orders of magnitude (one new array, in place)."""
    out = np.abs(np.asarray(matrix, dtype=np.float64))
    np.log1p(out, out=out)
    out *= np.sign(matrix)
    return out


class TorchNCFPredictor(FeaturePredictor):
    """User/item embeddings + dbt features; pickles as a CPU state dict and vocabularies."""

    def __init__(self, *, state: dict[str, Any], users: dict[str, int], items: dict[str, int],
                 mean: np.ndarray, std: np.ndarray, dim: int, hidden: int,
                 threads: int | None = None) -> None:
        self.state, self.users, self.items = state, users, items
        self.mean, self.std, self.dim, self.hidden = mean, std, dim, hidden
        self.threads = threads  # scoring's intra-op threads (None: the process's setting)
        self._net: Any = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_net"] = None
        state.pop("_lookups", None)  # derived from the vocabularies on first use
        return state

    def codes(self, vocabulary: str, ids: Any) -> np.ndarray:
        """Vocabulary codes of ``ids`` (0: unknown); the lookup is built once per predictor,
        not once per scored block (the serving snapshot scores hundreds of blocks)."""
        lookups: dict[str, _VocabularyLookup] = self.__dict__.setdefault("_lookups", {})
        if vocabulary not in lookups:
            lookups[vocabulary] = _VocabularyLookup.of(getattr(self, vocabulary))
        return lookups[vocabulary].codes(ids)

    def encode(self, matrix: np.ndarray, columns: np.ndarray | None = None) -> np.ndarray:
        """Signed log, standardised with the training mean and std of each column
        (``columns``: positions in the features; default all), NaN as 0, float32."""
        mean, std = (self.mean, self.std) if columns is None else (self.mean[columns],
                                                                   self.std[columns])
        x = _transform(matrix)
        x -= mean
        x /= std
        np.nan_to_num(x, nan=0.0, copy=False)
        return x.astype(np.float32)

    def inputs(self, frame: pd.DataFrame, matrix: np.ndarray) -> tuple[np.ndarray, ...]:
        return (self.codes("users", frame["user_id"]), self.codes("items", frame["item_id"]),
                self.encode(matrix))

    def net(self) -> Any:
        if self._net is None:
            self._net = _build_net(len(self.users) + 1, len(self.items) + 1, len(self.mean),
                                   self.dim, self.hidden)
            self._net.load_state_dict(self.state)
            self._net.eval()
        return self._net

    def predict(self, frame: pd.DataFrame, matrix: np.ndarray) -> np.ndarray:
        return self.forward(*self.inputs(frame, matrix))

    def forward(self, users: np.ndarray | None, items: np.ndarray | None,
                inputs: np.ndarray) -> np.ndarray:
        """The net on batches of ``SCORE_BLOCK_ROWS`` rows (no autograd), on ``threads``
        intra-op threads (a row's score does not depend on them: measured equal with 1
        and 2; 1 was 2x faster on 2 busy cores, as for LightGBM)."""
        import torch

        if users is None or items is None:
            raise ValueError("the torch ranker needs the user and item codes of each row")
        net = self.net()
        out = []
        # pickles from before threads were stored have none: the process's setting
        with torch_threads(self.__dict__.get("threads")), torch.inference_mode():
            for start in range(0, len(inputs), SCORE_BLOCK_ROWS):
                sl = slice(start, start + SCORE_BLOCK_ROWS)
                out.append(net(torch.from_numpy(users[sl]), torch.from_numpy(items[sl]),
                               torch.from_numpy(inputs[sl])).numpy())
        return np.concatenate(out) if out else np.zeros(0)


@dataclass(frozen=True)
class _VocabularyLookup:
    """A vocabulary (id -> code) as an index, so a column of ids is coded in one hash
    lookup instead of a Python ``dict.get`` per row."""

    keys: pd.Index
    values: np.ndarray

    @classmethod
    def of(cls, vocabulary: dict[str, int]) -> _VocabularyLookup:
        import pandas as pd

        return cls(pd.Index(list(vocabulary), dtype=object),
                   np.fromiter(vocabulary.values(), np.int64, len(vocabulary)))

    def codes(self, ids: Any) -> np.ndarray:
        """``vocabulary.get(id, 0)`` for each id (0: unknown)."""
        import pandas as pd

        if len(self.keys) == 0:
            return np.zeros(len(ids), np.int64)
        found = np.asarray(self.keys.get_indexer(pd.Index(ids)))
        out: np.ndarray = np.where(found >= 0, self.values[found], 0)
        return out


def _build_net(n_users: int, n_items: int, n_features: int, dim: int, hidden: int) -> Any:
    import torch
    from torch import nn

    class NCF(nn.Module):
        """GMF (dot of embeddings) plus an MLP over [user, item, user*item, features]."""

        def __init__(self) -> None:
            super().__init__()
            self.user = nn.Embedding(n_users, dim)
            self.item = nn.Embedding(n_items, dim)
            nn.init.normal_(self.user.weight, std=0.05)
            nn.init.normal_(self.item.weight, std=0.05)
            self.mlp = nn.Sequential(
                nn.Linear(3 * dim + n_features, hidden), nn.ReLU(),
                nn.Linear(hidden, hidden // 2), nn.ReLU(),
                nn.Linear(hidden // 2, 1),
            )

        def forward(self, u: torch.Tensor, i: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
            eu, ei = self.user(u), self.item(i)
            joint = eu * ei
            scores: torch.Tensor = self.mlp(torch.cat([eu, ei, joint, x], dim=1)).squeeze(1)
            total: torch.Tensor = scores + joint.sum(1)
            return total

    return NCF()


def train_torch(data: RankingData, *, seed: int = 42, threads: int = 1,
                **options: Any) -> RankerModel:
    """The NCF ranker; the epoch with the best validation NDCG@10 is kept.

    Uses ``threads`` intra-op threads while training (and the model when it scores) and
    restores the process's setting.
    """
    with torch_threads(threads):
        return _fit_torch(data, seed=seed, threads=threads, **options)


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """torch's intra-op threads set to ``threads`` inside (None: left as they are), the
    process's setting restored after."""
    import torch

    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _fit_torch(data: RankingData, *, seed: int, threads: int | None = None, epochs: int = 8,
               dim: int = 16, hidden: int = 64, batch_size: int = 1024, lr: float = 3e-3,
               unknown_rate: float = 0.1) -> RankerModel:
    import torch

    from shopflow.recommend.evaluate import evaluate_ranker

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    features = data.feature_names
    train = data.frame("train")
    probe = RankerModel("torch", features, {}, None)
    raw = _transform(probe.matrix(train))
    mean = np.nanmean(raw, axis=0)
    std = np.nanstd(raw, axis=0)
    mean, std = np.nan_to_num(mean), np.where(np.nan_to_num(std) > 1e-9, np.nan_to_num(std), 1.0)
    users = {u: k + 1 for k, u in enumerate(sorted(train["user_id"].unique()))}
    items = {i: k + 1 for k, i in enumerate(sorted(train["item_id"].unique()))}
    predictor = TorchNCFPredictor(state={}, users=users, items=items, mean=mean, std=std,
                                  dim=dim, hidden=hidden, threads=threads)
    u, i, x = predictor.inputs(train, probe.matrix(train))
    y = train["label"].to_numpy(np.float32)
    net = _build_net(len(users) + 1, len(items) + 1, len(features), dim, hidden)
    optimiser = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=1e-6)
    positive_weight = torch.tensor(float((1 - y.mean()) / max(y.mean(), 1e-6)) ** 0.5)
    loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=positive_weight)
    tensors = [torch.from_numpy(a) for a in (u, i, x, y)]
    params = {"epochs": epochs, "dim": dim, "hidden": hidden, "batch_size": batch_size,
              "lr": lr, "unknown_rate": unknown_rate, "seed": seed}
    best: tuple[float, int, dict[str, Any]] = (-1.0, 0, {})
    started = time.perf_counter()
    for epoch in range(1, epochs + 1):
        net.train()
        order = torch.from_numpy(rng.permutation(len(y)))
        total = 0.0
        for start in range(0, len(y), batch_size):
            idx = order[start:start + batch_size]
            bu, bi, bx, by = (t[idx] for t in tensors)
            # some rows play unknown users/items, so cold ids still get a useful embedding
            mask = torch.from_numpy(rng.random(len(idx)) < unknown_rate)
            bu = torch.where(mask, torch.zeros_like(bu), bu)
            mask = torch.from_numpy(rng.random(len(idx)) < unknown_rate / 2)
            bi = torch.where(mask, torch.zeros_like(bi), bi)
            optimiser.zero_grad()
            loss = loss_fn(net(bu, bi, bx), by)
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * len(idx)
        net.eval()
        predictor.state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        predictor._net = None
        candidate = RankerModel("torch", features, params, predictor)
        ndcg = evaluate_ranker(candidate, data.validation, ks=(10,))["ndcg@10"]
        logger.info("torch epoch %d: loss %.4f, validation ndcg@10 %.4f (%.1fs)", epoch,
                    total / len(y), ndcg, time.perf_counter() - started)
        if ndcg > best[0]:
            best = (ndcg, epoch, copy.deepcopy(predictor.state))
    predictor.state = best[2]
    predictor._net = None
    return RankerModel("torch", features, {**params, "best_epoch": best[1]}, predictor)


def train_ranker(family: str, data: RankingData, *, seed: int = 42,
                 threads: int = 1) -> RankerModel:
    """Train one family (``popularity``, ``lightgbm`` or ``torch``)."""
    if family == "popularity":
        return popularity_model()
    if family == "lightgbm":
        return train_lightgbm(data, seed=seed, threads=threads)
    if family == "torch":
        return train_torch(data, seed=seed, threads=threads)
    raise ValueError(f"unknown ranker family {family!r}; use popularity, lightgbm or torch")
