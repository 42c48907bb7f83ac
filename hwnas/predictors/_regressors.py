"""Regressors over layer features, one model per op kind: linear and tree ensemble."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from hwnas.layers import Layer
from hwnas.predictors._base import Predictor, check_features, saved_int
from hwnas.predictors._features import FEATURES, by_op, features, per_op
from hwnas.tables import LayerTable


class _PerOpRegressor(Predictor):
    """Fits one model per op kind on (features, target) of a layer table."""

    def fit(self, table: LayerTable, space=None) -> _PerOpRegressor:
        self._validate()
        values = table.values(self.target)
        layers = table.layers()
        y = np.array([values[layer.key] for layer in layers])
        X = features(layers)
        self.models_ = {op: self._fit_op(X[rows], y[rows]) for op, rows in by_op(layers).items()}
        self.fingerprint_ = table.fingerprint
        return self

    def predict(self, layers: Sequence[Layer]) -> np.ndarray:
        self._check_fitted()
        out = np.empty(len(layers))
        X = features(layers)
        for model, rows in per_op(layers, self.models_, self.kind):
            out[rows] = self._predict_op(model, X[rows])
        return np.maximum(out, 0.0)


class LinearPredictor(_PerOpRegressor):
    """Per op kind, a ridge-regularised linear model over standardised layer features
    (``FEATURES``) with an intercept for the per-call overhead. Stored as its coefficients.
    """

    kind = "linear"

    def __init__(self, alpha: float = 1e-3, target: str = "latency_ms"):
        self.alpha = alpha
        self.target = target

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
    quantiles (``predict_quantile``, ``predict_z_quantile``). Stored as its training rows and
    settings, and refitted identically on load (``random_state``).
    """

    kind = "tree"

    def __init__(self, n_estimators: int = 100, random_state: int = 0,
                 target: str = "latency_ms"):
        self.n_estimators = n_estimators
        self.random_state = random_state
        self.target = target

    def _validate(self) -> None:
        self._check_params(n_estimators=("an integer", 1), random_state=("an integer", 0))

    def _fit_op(self, X: np.ndarray, y: np.ndarray):
        from sklearn.ensemble import RandomForestRegressor
        model = RandomForestRegressor(n_estimators=self.n_estimators,
                                      random_state=self.random_state)
        model.fit(X, y)
        model.rows_ = (X.tolist(), y.tolist())
        return model

    @staticmethod
    def _predict_op(model, X: np.ndarray) -> np.ndarray:
        return model.predict(X)

    def predict_members(self, layers: Sequence[Layer]) -> np.ndarray:
        """(n_estimators, len(layers)): each tree's prediction of each layer."""
        self._check_fitted()
        out = np.empty((self.n_estimators, len(layers)))
        X = features(layers)
        for model, rows in per_op(layers, self.models_, self.kind):
            out[:, rows] = [tree.predict(X[rows]) for tree in model.estimators_]
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
                "rows": {op: {"X": m.rows_[0], "y": m.rows_[1]} for op, m in self.models_.items()}}

    @classmethod
    def _from_state(cls, state: dict[str, Any]) -> TreePredictor:
        check_features(state, FEATURES)
        predictor = cls(saved_int(state["n_estimators"], "n_estimators", 1, 10_000),
                        saved_int(state["random_state"], "random_state", 0, 2**32 - 1))
        predictor.models_ = {op: predictor._fit_op(np.asarray(r["X"], float),
                                                   np.asarray(r["y"], float))
                             for op, r in state["rows"].items()}
        return predictor
