"""Boosted trees as flat numpy arrays, every tree walked at once.

A one-user ``/predict`` is one row through a few dozen to a few hundred trees. The tree
libraries' ``predict`` costs a fixed ~0.1-0.5 ms per call (argument checks, a DMatrix or
row adapter, thread pools) before the first tree is read; walking the same trees as
numpy arrays costs a handful of array operations per tree *level* instead.

Layout: the nodes of all trees are numbered globally. Node ``i`` reads column
``feature[i]`` of the *extended row* (below), compares it with ``threshold[i]`` and goes to
``child[2i + go_right]``; a leaf points to itself both ways, so walking ``depth`` levels
leaves every tree at its leaf, whatever its own depth; ``value[i]`` is the leaf value.

Missing values without a branch per node: the extended row holds one copy of the features
per *view*, each with the missing values replaced so that the node's plain comparison
sends them to its default child (``-inf`` goes left, ``+inf`` right); a node reads the
copy of its default direction and missing-value rule. The library semantics copied:

* XGBoost — features and thresholds in float32 (XGBoost casts the input), left iff
  ``x < threshold``, NaN to the default child; leaves summed in float32 from the base
  margin, tree after tree, then a float32 sigmoid.
* LightGBM — float64, left iff ``x <= threshold``; per node ``missing_type`` ``None`` (NaN
  counts as 0), ``Zero`` (NaN and ``|x| <= 1e-35`` go to the default child) or ``NaN``
  (NaN goes to the default child); leaves summed in float64, ``1 / (1 + exp(-s * margin))``.

Categorical splits, linear trees, DART, multi-class and non-logistic objectives are not
copied: the exporters raise :class:`NotCompilable` and the library keeps serving.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np

#: LightGBM's ``kZeroThreshold``: values this close to 0 count as zero.
LIGHTGBM_ZERO = 1e-35

# views of the row (see the module docstring), by how missing values are replaced
NAN_LEFT = 0  # NaN -> -inf
NAN_RIGHT = 1  # NaN -> +inf
NAN_AS_ZERO = 2  # NaN -> 0 (LightGBM missing_type None)
ZERO_LEFT = 3  # NaN and |x| <= 1e-35 -> -inf (LightGBM missing_type Zero)
ZERO_RIGHT = 4  # NaN and |x| <= 1e-35 -> +inf


class NotCompilable(ValueError):
    """The model uses something the numpy evaluators do not reproduce (the message says what)."""


#: Up to this many rows, every node's decision is taken at once (fewest array operations);
#: above it the walk goes level by level, touching only the nodes on each row's path.
#: Measured crossover on 37-50 trees of 31 leaves: about 8 rows.
ALL_NODES_MAX_ROWS = 8

_FILLS = {NAN_LEFT: -np.inf, NAN_RIGHT: np.inf, NAN_AS_ZERO: 0.0, ZERO_LEFT: -np.inf,
          ZERO_RIGHT: np.inf}


@dataclass(frozen=True)
class TreeEnsemble:
    """A binary classifier's trees as flat arrays (see the module docstring for the layout).

    Attributes:
        feature: column of the extended row each node reads (int64; 0 at leaves).
        threshold: each node's split value (in ``dtype``).
        child: the next node at ``2 * node + go_right`` (int64; leaves loop to themselves).
        left: each node's left child, ``right`` its right child (leaves: themselves).
        value: each leaf's value (in ``dtype``; 0 for splits). The base margin is already
            added to the first tree's leaves, as the library's first addition does.
        roots: each tree's root node, in the library's summation order.
        depth: the deepest tree's number of split levels.
        n_features: columns of the model's matrix.
        views: the row views, in extended-row order.
        fills: what replaces a missing value in each view (shape ``(views, 1)``).
        zero_views: positions of the views where LightGBM's zeros count as missing.
        strict: go left iff ``x < threshold`` (XGBoost), else iff ``x <= threshold``.
        dtype: ``float32`` (XGBoost) or ``float64`` (LightGBM).
        sigmoid_scale: ``s`` of ``1 / (1 + exp(-s * margin))``.
    """

    feature: np.ndarray
    threshold: np.ndarray
    child: np.ndarray
    left: np.ndarray
    right: np.ndarray
    value: np.ndarray
    roots: np.ndarray
    depth: int
    n_features: int
    views: tuple[int, ...]
    fills: np.ndarray
    zero_views: tuple[int, ...]
    strict: bool
    dtype: np.dtype[Any]
    sigmoid_scale: float = 1.0

    @property
    def n_trees(self) -> int:
        return int(len(self.roots))

    def extended(self, matrix: np.ndarray) -> np.ndarray:
        """The rows with one copy of the features per view, shape ``(n, views * features)``."""
        if self.dtype == np.float32:
            with np.errstate(over="ignore"):  # beyond float32 is +-inf, as in XGBoost
                x = np.asarray(matrix, dtype=self.dtype)
        else:
            x = np.asarray(matrix, dtype=self.dtype)
        rows = np.where(np.isnan(x)[:, None, :], self.fills, x[:, None, :])
        if self.zero_views:
            zero = np.abs(x) <= LIGHTGBM_ZERO
            for i in self.zero_views:
                np.copyto(rows[:, i, :], self.fills[i], where=zero)
        return rows.reshape(len(x), -1)

    def leaves(self, matrix: np.ndarray) -> np.ndarray:
        """The leaf node each row reaches in each tree, shape ``(n, trees)``."""
        rows = self.extended(matrix)
        if len(rows) == 1:
            return self._one_row_leaves(rows[0])[None, :]
        if len(rows) <= ALL_NODES_MAX_ROWS:
            return self._all_nodes_leaves(rows)
        return self._level_leaves(rows)

    def _go_right(self, values: np.ndarray, threshold: np.ndarray) -> np.ndarray:
        return (values >= threshold) if self.strict else (values > threshold)

    def _one_row_leaves(self, row: np.ndarray) -> np.ndarray:
        """Every node decides at once, then the walk is one gather per level.

        A few array operations in all, where a level-by-level walk costs several per level.
        """
        step = np.where(self._go_right(row[self.feature], self.threshold), self.right,
                        self.left)
        node = self.roots
        for _ in range(self.depth):
            node = step[node]
        return node

    def _all_nodes_leaves(self, rows: np.ndarray) -> np.ndarray:
        n, n_nodes = len(rows), len(self.feature)
        right = self._go_right(np.take(rows, self.feature, axis=1), self.threshold)
        offsets = (np.arange(n, dtype=np.int64) * n_nodes)[:, None]
        step = (np.where(right, self.right, self.left) + offsets).reshape(-1)
        node = self.roots + offsets
        for _ in range(self.depth):
            node = step[node]
        return np.asarray(node - offsets)

    def _level_leaves(self, rows: np.ndarray) -> np.ndarray:
        """Level by level: at each level, each (row, tree) reads the one node it is at."""
        n, width = rows.shape
        flat = rows.reshape(-1)
        offsets = (np.arange(n, dtype=np.int64) * width)[:, None]
        node = np.broadcast_to(self.roots, (n, self.n_trees))
        for _ in range(self.depth):
            right = self._go_right(flat[self.feature[node] + offsets], self.threshold[node])
            node = self.child[2 * node + right]
        return np.asarray(node)

    def margin(self, matrix: np.ndarray) -> np.ndarray:
        """The summed leaf values per row, in ``dtype``.

        Summed tree after tree, as the libraries do (a cumulative sum is sequential;
        ``sum`` adds pairwise and would round differently).
        """
        return np.asarray(np.cumsum(self.value[self.leaves(matrix)], axis=1)[:, -1])

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        """P(label = 1) per row (float64 holding the library's precision)."""
        margin = self.margin(matrix)
        if self.sigmoid_scale != 1.0:
            margin = self.dtype.type(self.sigmoid_scale) * margin
        one = self.dtype.type(1.0)
        # exp in float64, rounded once: C's expf is correctly rounded almost always, numpy's
        # float32 exp is not (1.2e-7 apart on a fifth of XGBoost's rows; this way 0.03%)
        decay = np.exp(-margin.astype(np.float64)).astype(self.dtype)
        return np.asarray(one / (one + decay), dtype=np.float64)


@dataclass
class _Builder:
    """Collects nodes of many trees into the flat arrays of a :class:`TreeEnsemble`."""

    feature: list[int]
    threshold: list[float]
    left: list[int]
    right: list[int]
    value: list[float]
    roots: list[int]
    depth: int = 0

    @classmethod
    def empty(cls) -> _Builder:
        return cls([], [], [], [], [], [])

    def add(self, feature: int, threshold: float, value: float) -> int:
        self.feature.append(feature)
        self.threshold.append(threshold)
        self.left.append(-1)
        self.right.append(-1)
        self.value.append(value)
        return len(self.feature) - 1

    def build(self, *, n_features: int, views: tuple[int, ...], strict: bool,
              dtype: type[np.floating[Any]], base_margin: float = 0.0,
              sigmoid_scale: float = 1.0) -> TreeEnsemble:
        if not self.roots:
            raise NotCompilable("the model has no trees")
        n = len(self.feature)
        nodes = np.arange(n, dtype=np.int64)
        left = np.where(np.asarray(self.left, dtype=np.int64) < 0, nodes, self.left)
        right = np.where(np.asarray(self.right, dtype=np.int64) < 0, nodes, self.right)
        child = np.empty(2 * n, dtype=np.int64)
        child[0::2] = left
        child[1::2] = right
        value = np.asarray(self.value, dtype=dtype)
        if base_margin:
            # the library starts from the base margin and adds the first tree's leaf to it
            first = slice(self.roots[0], self.roots[1] if len(self.roots) > 1 else n)
            leaves = left[first] == nodes[first]
            value[first][leaves] = dtype(base_margin) + value[first][leaves]
        return TreeEnsemble(
            feature=np.asarray(self.feature, dtype=np.int64),
            threshold=np.asarray(self.threshold, dtype=dtype),
            child=child,
            left=left,
            right=right,
            value=value,
            roots=np.asarray(self.roots, dtype=np.int64),
            depth=self.depth,
            n_features=n_features,
            views=views,
            fills=np.array([_FILLS[v] for v in views], dtype=dtype)[:, None],
            zero_views=tuple(i for i, v in enumerate(views) if v in (ZERO_LEFT, ZERO_RIGHT)),
            strict=strict,
            dtype=np.dtype(dtype),
            sigmoid_scale=sigmoid_scale,
        )


def _column(views: list[int], view: int, feature: int, n_features: int) -> int:
    if view not in views:
        views.append(view)
    return views.index(view) * n_features + feature


def from_xgboost(booster: Any, rounds: int) -> TreeEnsemble:
    """The first ``rounds`` boosting rounds of a ``binary:logistic`` gbtree booster.

    Raises:
        NotCompilable: another objective or booster, several targets or parallel trees per
            round, or categorical splits.
    """
    learner = json.loads(bytes(booster.save_raw("json")))["learner"]
    objective = learner["objective"]["name"]
    if objective != "binary:logistic":
        raise NotCompilable(f"XGBoost objective {objective!r} (only binary:logistic)")
    gradient_booster = learner["gradient_booster"]
    if gradient_booster["name"] != "gbtree":
        raise NotCompilable(f"XGBoost booster {gradient_booster['name']!r} (only gbtree)")
    param = learner["learner_model_param"]
    scores = str(param["base_score"]).strip("[]").split(",")
    if len(scores) != 1 or int(param.get("num_target", 1)) > 1:
        raise NotCompilable("XGBoost model with several targets")
    n_features = int(param["num_feature"])
    model = gradient_booster["model"]
    indptr = model["iteration_indptr"]
    if rounds < 1 or rounds >= len(indptr):
        raise NotCompilable(f"XGBoost model has {len(indptr) - 1} rounds, asked for {rounds}")
    trees = model["trees"][indptr[0]:indptr[rounds]]
    # XGBoost turns the base score into a margin in float32: -logf(1 / p - 1); C's logf
    # is correctly rounded, numpy's float32 log not always, so the log runs in float64
    one = np.float32(1.0)
    odds = np.float64(one / np.float32(scores[0]) - one)
    base_margin = float(np.float32(-np.log(odds)))
    builder = _Builder.empty()
    views: list[int] = []
    for tree in trees:
        if any(int(t) != 0 for t in tree["split_type"]) or tree["categories_nodes"]:
            raise NotCompilable("XGBoost tree with categorical splits")
        left, right = tree["left_children"], tree["right_children"]
        offset = len(builder.feature)
        for i, (feature, condition, default_left) in enumerate(zip(
                tree["split_indices"], tree["split_conditions"], tree["default_left"],
                strict=True)):
            leaf = left[i] == -1
            view = NAN_LEFT if default_left else NAN_RIGHT
            builder.add(0 if leaf else _column(views, view, int(feature), n_features),
                        0.0 if leaf else float(condition), float(condition) if leaf else 0.0)
            if not leaf:
                builder.left[offset + i] = offset + int(left[i])
                builder.right[offset + i] = offset + int(right[i])
        builder.roots.append(offset)
        builder.depth = max(builder.depth, _depth(left, right))
    return builder.build(n_features=n_features, views=tuple(views) or (NAN_LEFT,), strict=True,
                         dtype=np.float32, base_margin=base_margin)


def _depth(left: list[int], right: list[int]) -> int:
    """Split levels of an XGBoost tree from its child arrays (root 0)."""
    deepest, level, frontier = 0, 0, [0]
    while frontier:
        nxt = [c for i in frontier if left[i] != -1 for c in (left[i], right[i])]
        if nxt:
            level += 1
            deepest = level
        frontier = nxt
    return deepest


_LIGHTGBM_VIEWS = {("None", True): NAN_AS_ZERO, ("None", False): NAN_AS_ZERO,
                   ("NaN", True): NAN_LEFT, ("NaN", False): NAN_RIGHT,
                   ("Zero", True): ZERO_LEFT, ("Zero", False): ZERO_RIGHT}


def from_lightgbm(booster: Any, rounds: int) -> TreeEnsemble:
    """The first ``rounds`` iterations of a binary LightGBM booster.

    Raises:
        NotCompilable: another objective, several trees per iteration, averaged output
            (random forest), linear trees or categorical splits.
    """
    dump = booster.dump_model(num_iteration=rounds)
    objective = str(dump.get("objective", ""))
    if not objective.startswith("binary"):
        raise NotCompilable(f"LightGBM objective {objective!r} (only binary)")
    if int(dump.get("num_tree_per_iteration", 1)) != 1 or dump.get("average_output"):
        raise NotCompilable("LightGBM model with several trees per iteration or averaged output")
    scale = 1.0
    for word in objective.split():
        if word.startswith("sigmoid:"):
            scale = float(word.partition(":")[2])
    n_features = int(dump["max_feature_idx"]) + 1
    builder = _Builder.empty()
    views: list[int] = []
    for tree in dump["tree_info"]:
        if tree.get("num_cat", 0) or tree.get("is_linear"):
            raise NotCompilable("LightGBM tree with categorical splits or linear leaves")
        builder.roots.append(_add_lightgbm_tree(builder, views, tree["tree_structure"],
                                                n_features))
    return builder.build(n_features=n_features, views=tuple(views) or (NAN_AS_ZERO,),
                         strict=False, dtype=np.float64, sigmoid_scale=scale)


def _add_lightgbm_tree(builder: _Builder, views: list[int], root: dict[str, Any],
                       n_features: int) -> int:
    """Add one dumped tree's nodes (iteratively: leaf-wise trees can be deep); its root."""
    first = len(builder.feature)
    stack: list[tuple[dict[str, Any], int, int, str]] = [(root, -1, 0, "")]
    while stack:
        node, parent, level, side = stack.pop()
        if "leaf_value" in node:
            if "leaf_coeff" in node:
                raise NotCompilable("LightGBM tree with linear leaves")
            index = builder.add(0, 0.0, float(node["leaf_value"]))
        else:
            if node.get("decision_type") != "<=":
                raise NotCompilable(
                    f"LightGBM split of decision type {node.get('decision_type')!r}")
            view = _LIGHTGBM_VIEWS[(str(node["missing_type"]), bool(node["default_left"]))]
            index = builder.add(_column(views, view, int(node["split_feature"]), n_features),
                                float(node["threshold"]), 0.0)
            builder.depth = max(builder.depth, level + 1)
            stack.append((node["right_child"], index, level + 1, "right"))
            stack.append((node["left_child"], index, level + 1, "left"))
        if side == "left":
            builder.left[parent] = index
        elif side == "right":
            builder.right[parent] = index
    return first
