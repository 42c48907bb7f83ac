"""Regressors over layer features, one model per op kind: linear and tree ensemble."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

import numpy as np

from hwnas.layers import Layer
from hwnas.predictors._base import Predictor, check_features, saved_int
from hwnas.predictors._features import FEATURES, by_op, features, per_op
from hwnas.spaces import SearchSpace
from hwnas.tables import LayerTable


class _PerOpRegressor(Predictor):
    """Fits one model per op kind on (features, target) of a layer table."""

    def _fit_layers(self, table: LayerTable) -> None:
        values = table.values(self.target)
        layers = table.layers()
        y = np.array([values[layer.key] for layer in layers])
        X = features(layers)
        self.models_ = {op: self._fit_op(X[rows], y[rows]) for op, rows in by_op(layers).items()}

    def predict_layers(self, layers: Sequence[Layer]) -> np.ndarray:
        """Each layer's prediction by its op kind's model (>= 0); an op kind the table had
        no layer of is an InputError naming it."""
        self._check_fitted()
        out = np.empty(len(layers))
        X = features(layers)
        for model, rows in per_op(layers, self.models_, self.kind):
            out[rows] = self._predict_op(model, X[rows])
        return np.maximum(out, 0.0)


class LinearPredictor(_PerOpRegressor):
    """Per op kind, a ridge-regularised linear model over standardised layer features
    (``FEATURES``) with an intercept for the per-call overhead. Stored as its coefficients.

    Args:
        alpha: the ridge penalty (on standardised features).
        target: the table column to fit (latency_ms, or e.g. energy_mj).
        space: the space of the z that ``predict(X)`` and ``score(X, y)`` take (a name, a
            space file or a SearchSpace); ``predict_z`` takes any space.
    """

    kind = "linear"

    def __init__(self, alpha: float = 1e-3, target: str = "latency_ms", *,
                 space: str | SearchSpace | None = None):
        self.alpha = alpha
        self.target = target
        self.space = space

    def _validate(self) -> None:
        self._check_params(alpha=("a number", 0))

    def _fit_op(self, X: np.ndarray, y: np.ndarray) -> dict[str, Any]:
        from sklearn.linear_model import Ridge
        mean, scale = X.mean(axis=0), X.std(axis=0)
        scale[scale == 0] = 1.0
        model = Ridge(alpha=self.alpha).fit((X - mean) / scale, y)
        return {"mean": mean.tolist(), "scale": scale.tolist(), "coef": model.coef_.tolist(),
                "intercept": float(model.intercept_)}

    @staticmethod
    def _predict_op(m: dict[str, Any], X: np.ndarray) -> np.ndarray:
        return (X - np.asarray(m["mean"])) / np.asarray(m["scale"]) @ np.asarray(m["coef"]) \
            + m["intercept"]

    def _state(self) -> dict[str, Any]:
        return {"alpha": self.alpha, "features": list(FEATURES), "models": self.models_}

    @classmethod
    def _from_state(cls, state: dict[str, Any]) -> LinearPredictor:
        check_features(state, FEATURES)
        predictor = cls(float(state["alpha"]))
        predictor.models_ = {op: {k: m[k] for k in ("mean", "scale", "coef", "intercept")}
                             for op, m in state["models"].items()}
        return predictor


class TreePredictor(_PerOpRegressor):
    """Per op kind, a random forest over layer features; the spread of its trees gives
    quantiles (``predict_quantile``, ``predict_z_quantile``). Stored as its fitted trees'
    arrays (see Forest), so that loading takes well under a second however large the
    training table (refitting 20,000 rows took 15 s); files of hwnas 0.1, which stored the
    training rows, are refitted identically on load (``random_state``).

    Args:
        n_estimators: the number of trees per op kind.
        random_state: seeds the forests: the same table gives the same trees.
        target: the table column to fit (latency_ms, or e.g. energy_mj).
        space: the space of the z that ``predict(X)`` and ``score(X, y)`` take (a name, a
            space file or a SearchSpace); ``predict_z`` takes any space.
    """

    kind = "tree"

    def __init__(self, n_estimators: int = 100, random_state: int = 0,
                 target: str = "latency_ms", *, space: str | SearchSpace | None = None):
        self.n_estimators = n_estimators
        self.random_state = random_state
        self.target = target
        self.space = space

    def _validate(self) -> None:
        self._check_params(n_estimators=("an integer", 1), random_state=("an integer", 0))

    def _fit_op(self, X: np.ndarray, y: np.ndarray):
        from sklearn.ensemble import RandomForestRegressor
        model = RandomForestRegressor(n_estimators=self.n_estimators,
                                      random_state=self.random_state)
        return Forest.from_sklearn(model.fit(X, y))

    @staticmethod
    def _predict_op(model: Forest, X: np.ndarray) -> np.ndarray:
        return model.predict(X)

    def predict_members(self, layers: Sequence[Layer]) -> np.ndarray:
        """(n_estimators, len(layers)): each tree's prediction of each layer."""
        self._check_fitted()
        out = np.empty((self.n_estimators, len(layers)))
        X = features(layers)
        for model, rows in per_op(layers, self.models_, self.kind):
            out[:, rows] = model.members(X[rows])
        return np.maximum(out, 0.0)

    def predict_quantile(self, layers: Sequence[Layer], q: float) -> np.ndarray:
        return np.quantile(self.predict_members(layers), q, axis=0)

    def predict_z_quantile(self, space, z, q: float) -> np.ndarray:
        """Quantile over trees of each tree's whole-network sum: an architecture-level spread."""
        Z = space.check_z(z)
        fixed, C = self._member_costs(space)
        sums = fixed[:, None] + C[:, np.arange(Z.shape[1]), Z].sum(axis=2)
        return np.quantile(sums, q, axis=0)

    def _member_costs(self, space) -> tuple[np.ndarray, np.ndarray]:
        """Each tree's (fixed, C) over the space, computed once per fit and space: a search
        asks for quantiles every trial."""
        cached = self.__dict__.get("_member_cache")
        if cached is None or cached[0] != space.signature or cached[1] is not self.models_:
            members = self.predict_members(space.unique_layers())
            pairs = [space.cost_matrix(lambda _, m=m: m) for m in members]
            cached = (space.signature, self.models_,
                      (np.array([f for f, _ in pairs]), np.stack([c for _, c in pairs])))
            self.__dict__["_member_cache"] = cached
        return cached[2]

    def _state(self) -> dict[str, Any]:
        return {"n_estimators": self.n_estimators, "random_state": self.random_state,
                "features": list(FEATURES),
                "forests": {op: m.to_dict() for op, m in self.models_.items()}}

    @classmethod
    def _from_state(cls, state: dict[str, Any]) -> TreePredictor:
        check_features(state, FEATURES)
        predictor = cls(saved_int(state["n_estimators"], "n_estimators", 1, 10_000),
                        saved_int(state["random_state"], "random_state", 0, 2**32 - 1))
        if "forests" in state:
            predictor.models_ = {str(op): Forest.from_dict(f, predictor.n_estimators,
                                                           f"forest of {op}")
                                 for op, f in state["forests"].items()}
        else:  # hwnas 0.1 stored the training rows: refit them
            predictor.models_ = {op: predictor._fit_op(np.asarray(r["X"], float),
                                                       np.asarray(r["y"], float))
                                 for op, r in state["rows"].items()}
            for op, m in predictor.models_.items():
                m.check_non_negative(f"forest of {op}")
        return predictor


#: Forest.members descends at least this many (tree, row) pairs at once (few rows: many
#: trees per numpy step), and never more than 4 trees' for many rows (their nodes stay in
#: the processor's cache: 3-4x faster on 10,000 rows than all trees at once)
_PAIRS_AT_ONCE = 1 << 15

#: how a Forest stores each array: (JSON key, dtype). ``split`` is a node's threshold, or at
#: a leaf its value (scikit-learn keeps both for every node; each node uses one)
_ARRAYS = (("left", "<i4"), ("right", "<i4"), ("feature", "<i2"), ("split", "<f8"))


def _depth(tree: dict[str, np.ndarray]) -> int:
    """The number of splits on the longest path from the root to a leaf."""
    left, right = tree["left"], tree["right"]
    depth, level = 0, np.zeros(1 if left[0] >= 0 else 0, dtype=np.int64)
    while len(level):
        depth += 1
        level = np.unique(np.concatenate([left[level], right[level]]))  # a node once, even
        level = level[left[level] >= 0]  # where a corrupt file gives it two parents
    return depth


class Forest:
    """A fitted regression forest as plain arrays, one set per tree (scikit-learn's
    ``tree_`` internals: children, split feature and threshold, node value): predicts
    exactly as the scikit-learn forest it came from, and is saved and loaded as JSON
    (base64 of the arrays' little-endian bytes) without refitting and without pickles, so a newer
    scikit-learn still loads it.

    Example:
        >>> forest = Forest.from_sklearn(RandomForestRegressor().fit(X, y))  # doctest: +SKIP
        >>> Forest.from_dict(forest.to_dict(), 100).predict(X)  # doctest: +SKIP
    """

    def __init__(self, trees: list[dict[str, np.ndarray]], n_features: int):
        """``trees``: per tree, the arrays of _ARRAYS (children -1 at a leaf)."""
        self.trees = trees
        self.n_features = n_features
        # every tree's nodes in one array (children shifted by the tree's offset, a leaf its
        # own children, always taken), so that members() descends all trees at once, one
        # numpy step per level, not per tree and level
        sizes = [len(t["left"]) for t in trees]
        self._roots = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        leaf = np.concatenate([t["left"] < 0 for t in trees])
        nodes = np.arange(len(leaf))
        left, right = (np.where(leaf, nodes, np.concatenate([t[key] for t in trees]) +
                                np.repeat(self._roots, sizes)) for key in ("left", "right"))
        self._children = np.stack([left, right], axis=1).ravel()  # node n: 2n left, 2n+1 right
        self._feature = np.concatenate([t["feature"] for t in trees]).astype(np.int64)
        self._split = np.concatenate([t["split"] for t in trees])
        self._threshold = np.where(leaf, np.inf, self._split)
        self._depths = [_depth(t) for t in trees]

    @classmethod
    def from_sklearn(cls, model) -> Forest:
        trees = []
        for estimator in model.estimators_:
            t = estimator.tree_
            leaf = t.children_left < 0
            trees.append({"left": t.children_left.astype("<i4"),
                          "right": t.children_right.astype("<i4"),
                          "feature": np.where(leaf, 0, t.feature).astype("<i2"),
                          "split": np.where(leaf, t.value[:, 0, 0], t.threshold).astype("<f8")})
        return cls(trees, int(model.n_features_in_))

    def members(self, X: np.ndarray) -> np.ndarray:
        """(trees, len(X)): each tree's prediction. Features are compared as float32, as
        scikit-learn's trees compare them."""
        X = np.asarray(X, dtype=np.float32).astype(np.float64)
        flat = X.ravel()
        out = np.empty((len(self.trees), len(X)))
        at_once = max(4, _PAIRS_AT_ONCE // max(1, len(X)))
        for first in range(0, len(self.trees), at_once):
            trees = slice(first, first + at_once)
            base = np.tile(np.arange(len(X)) * X.shape[1], len(self._roots[trees]))
            node = np.repeat(self._roots[trees], len(X))
            for _ in range(max(self._depths[trees])):  # right where not x <= threshold (NaN too)
                node = self._children[2 * node + ~(flat[base + self._feature[node]] <=
                                                   self._threshold[node])]
            out[trees] = self._split[node].reshape(-1, len(X))  # at a leaf: its value
        return out

    def predict(self, X: np.ndarray) -> np.ndarray:
        """The mean of the trees, summed in tree order as scikit-learn sums them."""
        members = self.members(X)
        out = np.zeros(members.shape[1])
        for m in members:
            out += m
        return out / len(members)

    def to_dict(self) -> dict[str, Any]:
        return {"n_features": self.n_features,
                "trees": [{key: base64.b64encode(t[key].tobytes()).decode()
                           for key, _ in _ARRAYS} for t in self.trees]}

    @classmethod
    def from_dict(cls, doc: Any, n_trees: int, where: str) -> Forest:
        """Rebuild from ``to_dict()``, checking every array (a corrupt file is a ValueError:
        a child that is not a later node, a feature out of range, a negative or non-finite
        value)."""
        if not isinstance(doc, dict) or not isinstance(doc.get("trees"), list):
            raise ValueError(f"{where}: expected a mapping with trees")
        n_features = saved_int(doc.get("n_features"), f"{where}: n_features", 1, 10_000)
        if len(doc["trees"]) != n_trees:
            raise ValueError(f"{where}: {len(doc['trees'])} trees, not n_estimators = {n_trees}")
        trees = [cls._tree(t, n_features, f"{where}, tree {i}") for i, t in enumerate(doc["trees"])]
        forest = cls(trees, n_features)
        forest.check_non_negative(where)
        return forest

    @staticmethod
    def _tree(doc: Any, n_features: int, where: str) -> dict[str, np.ndarray]:
        if not isinstance(doc, dict):
            raise ValueError(f"{where}: not a mapping")
        tree = {}
        for key, dtype in _ARRAYS:
            try:
                raw = base64.b64decode(doc[key])
            except (KeyError, TypeError, ValueError) as e:
                raise ValueError(f"{where}: array {key!r} unreadable ({e})") from None
            if len(raw) % np.dtype(dtype).itemsize:
                raise ValueError(f"{where}: array {key!r} is cut short")
            tree[key] = np.frombuffer(raw, dtype=dtype)
        n = len(tree["left"])
        if n == 0 or any(len(a) != n for a in tree.values()):
            raise ValueError(f"{where}: arrays of different lengths")
        nodes = np.arange(n)
        leaf = tree["left"] < 0
        inner = ~leaf
        if (leaf != (tree["right"] < 0)).any() or (tree["left"][leaf] != -1).any() or \
                (tree["left"][inner] <= nodes[inner]).any() or (tree["left"] >= n).any() or \
                (tree["right"][inner] <= nodes[inner]).any() or (tree["right"] >= n).any():
            raise ValueError(f"{where}: children must be later nodes (or -1 for a leaf)")
        if ((tree["feature"][inner] < 0) | (tree["feature"][inner] >= n_features)).any():
            raise ValueError(f"{where}: a split feature out of range 0..{n_features - 1}")
        if not np.isfinite(tree["split"]).all():
            raise ValueError(f"{where}: a threshold or value is not finite")
        return tree

    def check_non_negative(self, where: str) -> None:
        """A latency (or energy) is never negative: a forest predicting one is corrupt."""
        least = min(float(t["split"][t["left"] < 0].min()) for t in self.trees)
        if least < 0:
            raise ValueError(f"{where}: a leaf value of {least:g}: saved costs must be >= 0")
