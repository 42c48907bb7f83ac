"""Predictors fitted from a network table: measured whole networks, no layer table needed."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from hwnas.errors import InputError
from hwnas.layers import Layer
from hwnas.predictors._base import (
    NotAdditiveError,
    Predictor,
    check_features,
    check_non_negative,
    saved_int,
)
from hwnas.predictors._features import by_op, per_op
from hwnas.spaces import SearchSpace
from hwnas.tables import NetworkTable


class UnknownChoiceError(InputError):
    """A z uses a choice whose cost the predictor has not learned; the message names it."""


class UnknownChoiceWarning(UserWarning):
    """A fitted predictor cannot price some choices (no measured network used them)."""


def choice_names(space: SearchSpace, known: np.ndarray) -> list[str]:
    """``decision=choice`` of every existing choice where ``known`` (D x K) is False."""
    return [f"{d.name}={d.choices[c]}" for i, d in enumerate(space.decisions)
            for c in range(len(d.choices)) if not known[i, c]]


def _warn_unknown(kind: str, names: list[str]) -> None:
    if names:
        warnings.warn(f"{len(names)} choice(s) appear in no measured network, so the {kind} "
                      f"predictor does not know their cost (NaN: infeasible in search, an error "
                      f"in predict_z): {', '.join(names[:5])}{', ...' if len(names) > 5 else ''}",
                      UnknownChoiceWarning, stacklevel=3)


def check_known(space: SearchSpace, Z: np.ndarray, known: np.ndarray, kind: str) -> None:
    """Raise UnknownChoiceError naming the first z (row) that uses a choice not ``known``."""
    bad = ~known[np.arange(Z.shape[1]), Z]
    if bad.any():
        row = int(np.argmax(bad.any(axis=1)))
        names = [f"{space.decisions[d].name}={space.decisions[d].choices[Z[row, d]]}"
                 for d in np.flatnonzero(bad[row])]
        raise UnknownChoiceError(f"the {kind} predictor never saw choice(s) {', '.join(names)} "
                                 f"of z = {'-'.join(map(str, Z[row]))} (row {row}) in its "
                                 f"training networks: it cannot price them (measure networks "
                                 f"that use them, e.g. hwnas.profile --networks N --design)")


def observed(space: SearchSpace, Z: np.ndarray) -> np.ndarray:
    """(D, K) mask of the choices some row of Z uses."""
    seen = np.zeros((len(space.decisions), max(space.n_choices)), dtype=bool)
    seen[np.arange(Z.shape[1])[None, :].repeat(len(Z), 0), Z] = True
    return seen


def nonnegative_least_squares(X: np.ndarray, y: np.ndarray, ridge: float) -> np.ndarray:
    """argmin_w ||X w - y||^2 + ridge * ||w||^2 subject to w >= 0, on scaled columns."""
    from scipy.optimize import nnls
    scale = np.abs(X).max(axis=0)
    scale[scale == 0] = 1.0
    Xs = X / scale
    A = np.vstack([Xs, np.sqrt(ridge) * np.eye(X.shape[1])])
    w, _ = nnls(A, np.concatenate([y, np.zeros(X.shape[1])]), maxiter=50 * X.shape[1])
    return w / scale


def one_hot(n_choices: Sequence[int], Z: np.ndarray) -> np.ndarray:
    """(N, sum of choices) indicator of each decision's choice."""
    offsets = np.concatenate([[0], np.cumsum(n_choices)[:-1]]).astype(int)
    X = np.zeros((len(Z), sum(n_choices)))
    X[np.arange(len(Z))[:, None], offsets + Z] = 1.0
    return X


class _SpacePredictor(Predictor):
    """A predictor bound to the space it was fitted on."""

    from_networks = True

    def _bind(self, networks: NetworkTable, space: SearchSpace) -> np.ndarray:
        """The table's z, after ``_needs_space`` has checked the space and set ``space_``."""
        self.space_signature_ = space.signature
        self.fingerprint_ = networks.fingerprint
        return space.check_z(np.array(networks.z))

    def _space_state(self) -> dict[str, Any]:
        return {"space": self.space_, "space_signature": self.space_signature_}

    def _load_space_state(self, state: dict[str, Any]) -> None:
        self.space_ = str(state["space"])
        self.space_signature_ = str(state["space_signature"])


class AdditivePredictor(_SpacePredictor):
    """latency(z) = fixed + sum_d C[d, z_d], every part >= 0, fitted by non-negative least
    squares on measured networks (one parameter per decision and choice, plus fixed).

    Each decision's cheapest choice is moved into ``fixed_`` so the fit is unique: C[d, c] is
    what choice c costs over decision d's cheapest. Choices no network of the table used are
    not learned: they are NaN in ``C_`` (infeasible in search), listed in ``unobserved_``
    (and a warning), and ``predict_z`` of a z using one raises UnknownChoiceError. Spaces
    that are not additive (``nb201-pruned``) are refused.
    """

    kind = "additive"

    def __init__(self, ridge: float = 1e-6, target: str = "latency_ms"):
        self.ridge = ridge
        self.target = target

    def fit(self, networks: NetworkTable, space: SearchSpace | None = None
            ) -> AdditivePredictor:
        self._check_params(ridge=("a number", 0))
        space = self._needs_space(space, networks)
        if not space.additive:
            raise InputError(f"space {space.name!r} is not additive over its decisions: fit "
                             f"additive_features or tree_z instead of additive")
        Z = self._bind(networks, space)
        y = networks.values(self.target)
        X = np.hstack([np.ones((len(Z), 1)), one_hot(space.n_choices, Z)])
        w = nonnegative_least_squares(X, y, self.ridge)
        C = np.full((len(space.decisions), max(space.n_choices)), np.nan)
        start = 1
        for d, k in enumerate(space.n_choices):
            C[d, :k] = w[start:start + k]
            start += k
        C[~observed(space, Z)] = np.nan  # unknown is not free: never the NNLS's 0
        least = np.nanmin(C, axis=1)
        self.fixed_ = float(w[0] + least.sum())
        self.C_ = C - least[:, None]
        self.unobserved_ = choice_names(space, ~np.isnan(self.C_))
        _warn_unknown(self.kind, self.unobserved_)
        return self

    def unknown_choices(self, space: SearchSpace) -> list[str]:
        """The choices whose cost was not learned, as ``decision=choice``."""
        self._check_space(space)
        return list(self.unobserved_)

    def cost_matrix(self, space: SearchSpace) -> tuple[float, np.ndarray]:
        self._check_space(space)
        if self.C_.shape != (len(space.decisions), max(space.n_choices)):
            raise InputError(f"the additive predictor's cost matrix has shape {self.C_.shape}, "
                             f"but space {space.name!r} needs "
                             f"{(len(space.decisions), max(space.n_choices))}: a corrupt file")
        return self.fixed_, self.C_.copy()

    def predict_z(self, space: SearchSpace, z) -> np.ndarray:
        fixed, C = self.cost_matrix(space)  # checks C's shape: a corrupt file is an InputError
        y = space.evaluate_z(z, fixed, C)
        if np.isnan(y).any():  # an unknown choice (NaN cost) was used: name it
            check_known(space, space.check_z(z), ~np.isnan(C), self.kind)
        return y

    def predict_architecture(self, arch) -> float:
        self._check_fitted()
        if arch.space != self.space_:
            raise InputError(f"the additive predictor was fitted on space {self.space_!r}, "
                             f"not {arch.space!r}")
        cost = self.C_[np.arange(len(arch.z)), list(arch.z)]
        if np.isnan(cost).any():
            raise UnknownChoiceError(f"the additive predictor never saw the choice(s) of "
                                     f"decision(s) {np.flatnonzero(np.isnan(cost)).tolist()} of "
                                     f"z = {'-'.join(map(str, arch.z))}: it cannot price them")
        return float(self.fixed_ + cost.sum())

    def _state(self) -> dict[str, Any]:
        return {**self._space_state(), "ridge": self.ridge, "fixed": self.fixed_,
                "C": [[None if np.isnan(v) else float(v) for v in row] for row in self.C_],
                "unobserved": self.unobserved_}

    @classmethod
    def _from_state(cls, state: dict[str, Any]) -> AdditivePredictor:
        predictor = cls(float(state["ridge"]))
        predictor._load_space_state(state)
        predictor.fixed_ = float(check_non_negative(state["fixed"], "fixed")[0])
        predictor.C_ = np.array([[np.nan if v is None else float(v) for v in row]
                                 for row in state["C"]])
        check_non_negative(predictor.C_, "C")
        predictor.unobserved_ = list(state["unobserved"])
        return predictor


#: per op kind, what the network-fitted layer model weighs: calls, MACs, memory traffic
FEATURES = ("calls", "macs", "bytes")


def _layer_terms(layers: Sequence[Layer]) -> np.ndarray:
    return np.array([[1.0, layer.macs, layer.param_bytes + layer.input_bytes +
                      layer.output_bytes] for layer in layers]).reshape(len(layers), 3)


class AdditiveFeaturesPredictor(Predictor):
    """A layer predictor fitted from whole networks: latency(layer) = w_op . (1, MACs, bytes)
    for its op kind, w >= 0, so latency(z) is the sum over z's layers. With three parameters
    per op kind it needs only about 10 measured networks, and it predicts any layer of a
    known op kind, in any space, also a choice no training network used (it generalises over
    features). A layer of an op kind no network had is an error in ``predict`` and NaN in the
    cost matrix (infeasible in search). Works on spaces that are not additive too
    (``nb201-pruned``): each network is the sum of the layers it really computes.
    """

    kind = "additive_features"
    from_networks = True

    def __init__(self, ridge: float = 1e-6, target: str = "latency_ms"):
        self.ridge = ridge
        self.target = target

    def fit(self, networks: NetworkTable, space: SearchSpace | None = None
            ) -> AdditiveFeaturesPredictor:
        self._check_params(ridge=("a number", 0))
        space = self._needs_space(space, networks)
        archs = [space.decode(z) for z in space.check_z(np.array(networks.z))]
        ops = sorted({layer.op for arch in archs for layer in arch.layers})
        X = np.zeros((len(archs), len(ops) * len(FEATURES)))
        for n, arch in enumerate(archs):
            terms = _layer_terms(arch.layers)
            for op, rows in by_op(arch.layers).items():
                i = ops.index(op) * len(FEATURES)
                X[n, i:i + len(FEATURES)] = terms[rows].sum(axis=0)
        w = nonnegative_least_squares(X, networks.values(self.target), self.ridge)
        self.weights_ = {op: w[i * len(FEATURES):(i + 1) * len(FEATURES)].tolist()
                         for i, op in enumerate(ops)}
        self.fingerprint_ = networks.fingerprint
        _warn_unknown(self.kind, self.unknown_choices(space))
        return self

    def _known(self, space: SearchSpace) -> np.ndarray:
        known = np.zeros((len(space.decisions), max(space.n_choices)), dtype=bool)
        for i, d in enumerate(space.decisions):
            for c, group in enumerate(d.layers):
                known[i, c] = all(layer.op in self.weights_ for layer in group)
        return known

    def unknown_choices(self, space: SearchSpace) -> list[str]:
        """The choices with a layer of an op kind no training network had."""
        self._check_fitted()
        return choice_names(space, self._known(space))

    def cost_matrix(self, space: SearchSpace) -> tuple[float, np.ndarray]:
        self._check_fitted()
        if not space.additive:
            return space.cost_matrix(self.predict)  # raises NotAdditiveError
        known = self._known(space)
        if not all(layer.op in self.weights_ for layer in space.stem + space.head):
            self.predict(list(space.stem + space.head))  # raises, naming the op
        def cost(layers: Sequence[Layer]) -> np.ndarray:
            out = np.full(len(layers), np.nan)
            rows = [i for i, ly in enumerate(layers) if ly.op in self.weights_]
            out[rows] = self.predict([layers[i] for i in rows])
            return out

        fixed, C = space.cost_matrix(cost)
        C[~known] = np.nan
        return fixed, C

    def predict_z(self, space: SearchSpace, z) -> np.ndarray:
        self._check_fitted()
        y = super().predict_z(space, z)
        if np.isnan(y).any():  # an unknown choice (NaN cost) was used: name it
            check_known(space, space.check_z(z), self._known(space), self.kind)
        return y

    def predict(self, layers: Sequence[Layer]) -> np.ndarray:
        self._check_fitted()
        terms = _layer_terms(layers)
        out = np.empty(len(layers))
        for weights, rows in per_op(layers, self.weights_, self.kind):
            out[rows] = terms[rows] @ np.asarray(weights)
        return out

    def _state(self) -> dict[str, Any]:
        return {"ridge": self.ridge, "features": list(FEATURES), "weights": self.weights_}

    @classmethod
    def _from_state(cls, state: dict[str, Any]) -> AdditiveFeaturesPredictor:
        check_features(state, FEATURES)
        predictor = cls(float(state["ridge"]))
        predictor.weights_ = {op: [float(v) for v in w] for op, w in state["weights"].items()}
        for op, w in predictor.weights_.items():
            check_non_negative(w, f"weights of {op}")
        return predictor


class TreeZPredictor(_SpacePredictor):
    """A random forest over the one-hot z, for devices whose latency is not additive over
    decisions. Its trees give quantiles. Stored as training rows and refitted on load.

    A forest predicts only within the range of its training latencies and knows nothing of a
    choice no training network used: ``predict_z`` of a z with such a choice raises
    UnknownChoiceError (a failed, never chosen trial in search)."""

    kind = "tree_z"

    def __init__(self, n_estimators: int = 200, random_state: int = 0,
                 target: str = "latency_ms"):
        self.n_estimators = n_estimators
        self.random_state = random_state
        self.target = target

    def fit(self, networks: NetworkTable, space: SearchSpace | None = None) -> TreeZPredictor:
        self._check_params(n_estimators=("an integer", 1), random_state=("an integer", 0))
        space = self._needs_space(space, networks)
        Z = self._bind(networks, space)
        self._fit_rows(Z, networks.values(self.target), list(space.n_choices))
        _warn_unknown(self.kind, self.unknown_choices(space))
        return self

    def _known(self) -> np.ndarray:
        Z, _, n_choices = self.rows_
        known = np.zeros((len(n_choices), max(n_choices)), dtype=bool)
        for row in Z:
            known[np.arange(len(row)), row] = True
        return known

    def unknown_choices(self, space: SearchSpace) -> list[str]:
        """The choices no training network used."""
        self._check_space(space)
        return choice_names(space, self._known())

    def _fit_rows(self, Z: np.ndarray, y: np.ndarray, n_choices: list[int]) -> None:
        from sklearn.ensemble import RandomForestRegressor
        self.rows_ = (Z.tolist(), y.tolist(), n_choices)
        self.model_ = RandomForestRegressor(n_estimators=self.n_estimators,
                                            random_state=self.random_state)
        self.model_.fit(self._one_hot(Z), y)

    def _one_hot(self, Z: np.ndarray) -> np.ndarray:
        return one_hot(self.rows_[2], Z)

    def cost_matrix(self, space: SearchSpace):
        raise NotAdditiveError("the tree_z predictor is not additive over decisions: use "
                               "predict_z")

    def _checked(self, space: SearchSpace, z) -> np.ndarray:
        self._check_space(space)
        Z = space.check_z(z)
        check_known(space, Z, self._known(), self.kind)
        return Z

    def predict_z(self, space: SearchSpace, z) -> np.ndarray:
        return self.model_.predict(self._one_hot(self._checked(space, z)))

    def predict_z_quantile(self, space: SearchSpace, z, q: float) -> np.ndarray:
        X = self._one_hot(self._checked(space, z))
        return np.quantile([tree.predict(X) for tree in self.model_.estimators_], q, axis=0)

    def predict_architecture(self, arch) -> float:
        self._check_fitted()
        Z = np.array([arch.z])
        unseen = ~self._known()[np.arange(Z.shape[1]), Z[0]]
        if unseen.any():
            raise UnknownChoiceError(f"the tree_z predictor never saw the choice(s) of "
                                     f"decision(s) {np.flatnonzero(unseen).tolist()} of z = "
                                     f"{'-'.join(map(str, arch.z))}: it cannot price them")
        return float(self.model_.predict(self._one_hot(Z))[0])

    def _state(self) -> dict[str, Any]:
        Z, y, n_choices = self.rows_
        return {**self._space_state(), "n_estimators": self.n_estimators,
                "random_state": self.random_state, "n_choices": n_choices, "z": Z, "y": y}

    @classmethod
    def _from_state(cls, state: dict[str, Any]) -> TreeZPredictor:
        predictor = cls(saved_int(state["n_estimators"], "n_estimators", 1, 10_000),
                        saved_int(state["random_state"], "random_state", 0, 2**32 - 1))
        predictor._load_space_state(state)
        predictor._fit_rows(np.asarray(state["z"], dtype=int), check_non_negative(state["y"], "y"),
                            [int(k) for k in state["n_choices"]])
        return predictor
