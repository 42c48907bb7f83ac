"""Predictors fitted from a network table: measured whole networks, no layer table needed."""

from __future__ import annotations

import warnings
from abc import abstractmethod
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from hwnas.errors import InputError, UnknownChoiceError, UnknownChoiceWarning
from hwnas.layers import Layer
from hwnas.predictors._base import (
    NotAdditiveError,
    Predictor,
    check_features,
    check_non_negative,
    saved_int,
)
from hwnas.predictors._features import by_op, op_key, per_op
from hwnas.predictors._regressors import Forest
from hwnas.spaces import SearchSpace


def choice_names(space: SearchSpace, known: np.ndarray) -> list[str]:
    """``decision=choice`` of every existing choice where ``known`` (D x K) is False."""
    return [f"{d.name}={d.choices[c]}" for i, d in enumerate(space.decisions)
            for c in range(len(d.choices)) if not known[i, c]]


def _warn_unknown(kind: str, names: list[str]) -> None:
    if names:
        warnings.warn(f"{len(names)} choice(s) appear in no measured network, so the {kind} "
                      f"predictor does not know their cost (NaN: infeasible in search, an error "
                      f"in predict_z): {', '.join(names[:5])}{', ...' if len(names) > 5 else ''}",
                      UnknownChoiceWarning, stacklevel=5)  # the caller of fit


def check_known(kind: str, known: np.ndarray, Z: np.ndarray,
                space: SearchSpace | None = None) -> None:
    """Raise UnknownChoiceError naming the first z (row of Z) that uses a choice not ``known``
    (D x K): as ``decision=choice`` where the space is given, else by index (an Architecture
    names its space but does not carry it).

    Example:
        >>> try:
        ...     check_known("tree_z", np.array([[True, False]]), np.array([[1]]))
        ... except UnknownChoiceError as e:
        ...     print(str(e)[:65])
        the tree_z predictor never saw choice(s) decision 0=choice 1 of z
    """
    bad = ~known[np.arange(Z.shape[1]), Z]
    if bad.any():
        row = int(np.argmax(bad.any(axis=1)))
        names = [f"{space.decisions[d].name}={space.decisions[d].choices[Z[row, d]]}"
                 if space is not None else f"decision {d}=choice {Z[row, d]}"
                 for d in np.flatnonzero(bad[row])]
        raise UnknownChoiceError(f"the {kind} predictor never saw choice(s) {', '.join(names)} "
                                 f"of z = {'-'.join(map(str, Z[row]))} (row {row}) in its "
                                 f"training networks: it cannot price them (measure networks "
                                 f"that use them, e.g. hwnas.profile --networks N --design)")


def observed(n_choices: Sequence[int], Z: np.ndarray) -> np.ndarray:
    """(D, K) mask of the choices some row of Z uses."""
    seen = np.zeros((len(n_choices), max(n_choices)), dtype=bool)
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
    """A predictor bound to the space it was fitted on (``space_signature_``)."""

    from_networks = True

    def _space_state(self) -> dict[str, Any]:
        return {"space": self.space_, "space_signature": self.space_signature_}

    def _load_space_state(self, state: dict[str, Any]) -> None:
        self.space_ = str(state["space"])
        self.space_signature_ = str(state["space_signature"])

    def _arch_z(self, arch) -> np.ndarray:
        """(1, D) z of an architecture of the space this predictor was fitted on."""
        self._check_fitted()
        if arch.space != self.space_:
            raise InputError(f"the {self.kind} predictor was fitted on space {self.space_!r}, "
                             f"not {arch.space!r}")
        return np.array([arch.z])


class _KnownChoices(Predictor):
    """A predictor that learns the cost of only the choices its training networks used: the
    others are listed by ``unknown_choices`` and refused by ``_check_known``, with one
    message (check_known)."""

    @abstractmethod
    def _known(self, space: SearchSpace) -> np.ndarray:
        """(D, K) mask of the choices whose cost was learned."""

    def unknown_choices(self, space: SearchSpace) -> list[str]:
        """The choices whose cost was not learned, as ``decision=choice``."""
        self._check_fitted()
        return choice_names(space, self._known(space))

    def _check_known(self, space: SearchSpace, z) -> np.ndarray:
        """z as an (N, D) array; raise UnknownChoiceError if a z uses an unknown choice."""
        Z = space.check_z(z)
        check_known(self.kind, self._known(space), Z, space)
        return Z


class AdditivePredictor(_KnownChoices, _SpacePredictor):
    """latency(z) = fixed + sum_d C[d, z_d], every part >= 0, fitted by non-negative least
    squares on measured networks (one parameter per decision and choice, plus fixed).

    Each decision's cheapest choice is moved into ``fixed_`` so the fit is unique: C[d, c] is
    what choice c costs over decision d's cheapest. Choices no training network used are
    not learned: they are NaN in ``C_`` (infeasible in search), listed in ``unobserved_``
    (and a warning), and ``predict_z`` of a z using one raises UnknownChoiceError.

    On a space additive within slices (``ofa``: per resolution, over the running blocks), the
    model is linear in the space's resolution-aware ``features`` (a resolution's own cost, and
    per block type and choice a cost per running block plus one that grows with the input's
    area), non-negative, so that ``fixed_`` (per resolution) and ``C_`` (resolution x decision
    x choice) give ``cost_tensor``: the search stays exact. Features no network had are NaN.
    Other spaces that are not additive (``nb201-pruned``) are refused.

    Args:
        ridge: the ridge penalty of the least squares (on scaled columns).
        target: the table column ``fit_table`` fits (latency_ms, or e.g. energy_mj).
        space: the space of the z that ``fit(X, y)`` and ``predict(X)`` take: a name, a
            space file or a SearchSpace.

    Example:
        >>> from hwnas.devices import load_device
        >>> table = load_device("pixel3", "nb201")
        >>> p = AdditivePredictor(space="nb201").fit(np.array(table.z), table.values())
        >>> round(float(p.predict([[3, 3, 3, 3, 3, 3]])[0]), 1)  # measured: 32.993 ms
        37.4
    """

    kind = "additive"
    #: a float and (decisions, choices); per slice (slices,) and (slices, decisions, choices)
    fixed_: Any
    C_: np.ndarray

    def __init__(self, ridge: float = 1e-6, target: str = "latency_ms", *,
                 space: str | SearchSpace | None = None):
        self.ridge = ridge
        self.target = target
        self.space = space

    def _validate(self) -> None:
        self._check_params(ridge=("a number", 0))

    def _fit_networks(self, space: SearchSpace, Z: np.ndarray, y: np.ndarray,
                      where: str) -> None:
        if not space.additive and not space.sliced:
            raise InputError(f"space {space.name!r} is not additive over its decisions: fit "
                             f"additive_features or tree_z instead of additive")
        self.space_signature_ = space.signature
        if space.sliced:
            self._fit_sliced(space, Z, y)
            return
        X = np.hstack([np.ones((len(Z), 1)), one_hot(space.n_choices, Z)])
        w = nonnegative_least_squares(X, y, self.ridge)
        C = np.full((len(space.decisions), max(space.n_choices)), np.nan)
        start = 1
        for d, k in enumerate(space.n_choices):
            C[d, :k] = w[start:start + k]
            start += k
        C[~observed(space.n_choices, Z)] = np.nan  # unknown is not free: never the NNLS's 0
        least = np.nanmin(C, axis=1)
        self.fixed_ = float(w[0] + least.sum())
        self.C_ = C - least[:, None]
        self.unobserved_ = choice_names(space, ~np.isnan(self.C_))
        _warn_unknown(self.kind, self.unobserved_)

    def _fit_sliced(self, space: SearchSpace, Z: np.ndarray, y: np.ndarray) -> None:
        X = space.features(Z)  # type: ignore[attr-defined]
        w = nonnegative_least_squares(X, y, self.ridge)
        seen = (X != 0).any(axis=0)
        w[~seen] = np.nan  # unknown is not free
        self.fixed_, self.C_ = space.weights_tensor(w)  # type: ignore[attr-defined]
        self.unobserved_ = [name for name, ok in zip(space.feature_names, seen)  # type: ignore
                            if not ok]
        _warn_unknown(self.kind, self.unobserved_)

    @property
    def sliced_(self) -> bool:
        """Fitted on a space additive within slices (C_ per slice, decision and choice)."""
        return np.ndim(self.C_) == 3

    def _known(self, space: SearchSpace) -> np.ndarray:
        if self.sliced_:
            return ~np.isnan(self.cost_tensor(space)[1]).any(axis=0)
        return ~np.isnan(self.cost_matrix(space)[1])

    def cost_matrix(self, space: SearchSpace) -> tuple[float, np.ndarray]:
        self._check_space(space)
        if self.sliced_:
            raise NotAdditiveError(f"the additive predictor of space {space.name!r} is "
                                   f"additive within its slices only: use cost_tensor")
        if self.C_.shape != (len(space.decisions), max(space.n_choices)):
            raise InputError(f"the additive predictor's cost matrix has shape {self.C_.shape}, "
                             f"but space {space.name!r} needs "
                             f"{(len(space.decisions), max(space.n_choices))}: a corrupt file")
        return self.fixed_, self.C_.copy()

    def cost_tensor(self, space: SearchSpace) -> tuple[np.ndarray, np.ndarray]:
        self._check_space(space)
        if not self.sliced_:
            raise NotAdditiveError(f"space {space.name!r} has no slices: use cost_matrix")
        R = len(space.resolutions)  # type: ignore[attr-defined]
        shape = (R, len(space.decisions), max(space.n_choices))
        if self.C_.shape != shape or np.shape(self.fixed_) != (R,):
            raise InputError(f"the additive predictor's costs have shape {self.C_.shape}, but "
                             f"space {space.name!r} needs {shape}: a corrupt file")
        return np.array(self.fixed_, dtype=float), self.C_.copy()

    def predict_z(self, space: SearchSpace, z) -> np.ndarray:
        if self.sliced_:
            y = space.evaluate_tensor(z, *self.cost_tensor(space))
            if np.isnan(y).any():
                Z = space.check_z(z)
                row = int(np.flatnonzero(np.isnan(y))[0])
                raise UnknownChoiceError(f"the {self.kind} predictor cannot price z = "
                                         f"{space.describe(Z[row])} (row {row}): it uses a "
                                         f"feature no training network had "
                                         f"({', '.join(self.unobserved_[:3])}...)")
            return y
        fixed, C = self.cost_matrix(space)  # checks C's shape: a corrupt file is an InputError
        y = space.evaluate_z(z, fixed, C)
        if np.isnan(y).any():  # an unknown choice (NaN cost) was used: name it
            self._check_known(space, z)
        return y

    def predict_architecture(self, arch) -> float:
        Z = self._arch_z(arch)
        if self.sliced_:
            from hwnas.spaces import get_space
            return float(self.predict_z(get_space(self.space_), Z)[0])
        check_known(self.kind, ~np.isnan(self.C_), Z)
        return float(self.fixed_ + self.C_[np.arange(Z.shape[1]), Z[0]].sum())

    def _state(self) -> dict[str, Any]:
        def saved(values):
            return [saved(v) for v in values] if np.ndim(values) else \
                None if np.isnan(values) else float(values)
        fixed = saved(np.asarray(self.fixed_)) if self.sliced_ else self.fixed_
        return {**self._space_state(), "ridge": self.ridge, "fixed": fixed,
                "C": saved(self.C_), "unobserved": self.unobserved_}

    @classmethod
    def _from_state(cls, state: dict[str, Any]) -> AdditivePredictor:
        predictor = cls(float(state["ridge"]))
        predictor._load_space_state(state)
        fixed = check_non_negative(state["fixed"], "fixed")
        C = check_non_negative(state["C"], "C")
        if isinstance(state["fixed"], list):  # per slice: (slices,) and (slices, D, K)
            predictor.fixed_ = fixed
            predictor.C_ = C.reshape(len(fixed), len(state["C"][0]), -1)
        else:
            predictor.fixed_ = float(fixed[0])
            predictor.C_ = C.reshape(len(state["C"]), -1)
        predictor.unobserved_ = list(state["unobserved"])
        return predictor


#: per op kind, what the network-fitted layer model weighs: calls, MACs, memory traffic
FEATURES = ("calls", "macs", "bytes")


def _layer_terms(layers: Sequence[Layer]) -> np.ndarray:
    return np.array([[1.0, layer.macs, layer.param_bytes + layer.input_bytes +
                      layer.output_bytes] for layer in layers]).reshape(len(layers), 3)


def _op_terms(space: SearchSpace, Z: np.ndarray) -> tuple[list[str], np.ndarray]:
    """The op kinds in the networks z (rows of Z) and, per network, its layers' terms summed
    per op kind: (N, ops x FEATURES). Through the space's cost matrices where it is additive
    (no network decoded: 15,625 networks in well under a second), else layer by layer."""
    if not space.additive:
        archs = [space.decode(z) for z in Z]
        ops = sorted({op_key(layer) for arch in archs for layer in arch.layers})
        X = np.zeros((len(archs), len(ops) * len(FEATURES)))
        for n, arch in enumerate(archs):
            terms = _layer_terms(arch.layers)
            for op, rows in by_op(arch.layers).items():
                i = ops.index(op) * len(FEATURES)
                X[n, i:i + len(FEATURES)] = terms[rows].sum(axis=0)
        return ops, X
    seen = observed(space.n_choices, Z)
    ops = sorted({op_key(layer) for layer in space.stem + space.head} |
                 {op_key(layer) for d, decision in enumerate(space.decisions)
                  for c, group in enumerate(decision.layers) if seen[d, c] for layer in group})
    unique = space.unique_layers()
    by_key = dict(zip((layer.key for layer in unique), _layer_terms(unique)))
    X = np.zeros((len(Z), len(ops) * len(FEATURES)))
    for i, op in enumerate(ops):
        for j in range(len(FEATURES)):
            fixed, C = space.cost_matrix(_term_of(by_key, op, j))
            X[:, i * len(FEATURES) + j] = fixed + C[np.arange(Z.shape[1]), Z].sum(axis=1)
    return ops, X


def _term_of(by_key: dict[str, np.ndarray], op: str, j: int
             ) -> Callable[[Sequence[Layer]], list[float]]:
    """A layer cost for ``cost_matrix``: term j of each layer of op kind ``op``, else 0."""
    return lambda layers: [float(by_key[ly.key][j]) if op_key(ly) == op else 0.0
                           for ly in layers]


class AdditiveFeaturesPredictor(_KnownChoices):
    """A layer predictor fitted from whole networks: latency(layer) = w_op . (1, MACs, bytes)
    for its op kind, w >= 0, so latency(z) is the sum over z's layers. With three parameters
    per op kind it needs only about 10 measured networks, and it predicts any layer of a
    known op kind, in any space, also a choice no training network used (it generalises over
    features). A layer of an op kind no network had is an error in ``predict`` and NaN in the
    cost matrix (infeasible in search). Works on spaces that are not additive too
    (``nb201-pruned``): each network is the sum of the layers it really computes.

    Args:
        ridge: the ridge penalty of the non-negative least squares (on scaled columns).
        target: the table column ``fit_table`` fits (latency_ms, or e.g. energy_mj).
        space: the space of the z that ``fit(X, y)`` and ``predict(X)`` take: a name, a
            space file or a SearchSpace.

    Example:
        >>> from hwnas.devices import load_device
        >>> table = load_device("pixel3", "nb201").select(range(0, 15625, 1000))
        >>> p = AdditiveFeaturesPredictor(space="nb201").fit(np.array(table.z), table.values())
        >>> from hwnas.spaces import get_space
        >>> p.predict(table.z[:2]).shape, p.predict_layers(get_space("nb201").stem).shape
        ((2,), (3,))
    """

    kind = "additive_features"
    from_networks = True

    def __init__(self, ridge: float = 1e-6, target: str = "latency_ms", *,
                 space: str | SearchSpace | None = None):
        self.ridge = ridge
        self.target = target
        self.space = space

    def _validate(self) -> None:
        self._check_params(ridge=("a number", 0))

    def _fit_networks(self, space: SearchSpace, Z: np.ndarray, y: np.ndarray,
                      where: str) -> None:
        ops, X = _op_terms(space, Z)
        w = nonnegative_least_squares(X, y, self.ridge)
        self.weights_ = {op: w[i * len(FEATURES):(i + 1) * len(FEATURES)].tolist()
                         for i, op in enumerate(ops)}
        _warn_unknown(self.kind, choice_names(space, self._known(space)))

    def _known(self, space: SearchSpace) -> np.ndarray:
        """A choice is known where every layer of it has an op kind a training network had."""
        known = np.zeros((len(space.decisions), max(space.n_choices)), dtype=bool)
        for i, d in enumerate(space.decisions):
            for c, group in enumerate(d.layers):
                known[i, c] = all(op_key(layer) in self.weights_ for layer in group)
        return known

    def cost_matrix(self, space: SearchSpace) -> tuple[float, np.ndarray]:
        self._check_fitted()
        if not space.additive:
            return space.cost_matrix(self.predict_layers)  # raises NotAdditiveError
        known = self._known(space)
        if not all(op_key(layer) in self.weights_ for layer in space.stem + space.head):
            self.predict_layers(list(space.stem + space.head))  # raises, naming the op

        def cost(layers: Sequence[Layer]) -> np.ndarray:
            out = np.full(len(layers), np.nan)
            rows = [i for i, ly in enumerate(layers) if op_key(ly) in self.weights_]
            out[rows] = self.predict_layers([layers[i] for i in rows])
            return out

        fixed, C = space.cost_matrix(cost)
        C[~known] = np.nan
        return fixed, C

    def predict_z(self, space: SearchSpace, z) -> np.ndarray:
        self._check_fitted()
        y = super().predict_z(space, z)
        if np.isnan(y).any():  # an unknown choice (NaN cost) was used: name it
            self._check_known(space, z)
        return y

    def predict_layers(self, layers: Sequence[Layer]) -> np.ndarray:
        """Each layer's w_op . (1, MACs, bytes); a layer of an op kind no training network
        had is an InputError naming it."""
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


def tree_inputs(space: SearchSpace, Z: np.ndarray) -> np.ndarray:
    """What tree_z's forest sees of checked z: the one-hot z; on a sliced space (``ofa``) its
    resolution-aware ``features`` (per block type and choice, counts of running blocks,
    plain and scaled by the input's area), its MACs, the resolution index, the stages'
    depths and the running blocks instead: a one-hot z hides that a skipped block costs
    nothing and how the resolution scales every layer (4,000 networks, Spearman on 1,000
    others: v100_64 0.963 one-hot, 0.998 these; v100_1 0.890 and 0.889; titan_xp_1 0.798
    and 0.805; without the depths, v100_1 fell to 0.735: MACs took the first splits)."""
    if not space.sliced:
        return one_hot(space.n_choices, Z)
    fixed, C = space.cost_tensor(lambda layers: [float(ly.macs) for ly in layers])
    macs = space.evaluate_tensor(Z, fixed, C, checked=True)
    blocks = int(space.n_blocks)  # type: ignore[attr-defined]
    running = space.active(Z)[:, :blocks].sum(axis=1)  # type: ignore[attr-defined]
    structure = Z[:, blocks:]  # depths, resolution
    return np.hstack([space.features(Z), macs[:, None] / 1e6,  # type: ignore[attr-defined]
                      structure, running[:, None]])


class TreeZPredictor(_KnownChoices, _SpacePredictor):
    """A random forest over the one-hot z (on a sliced space such as ``ofa``, over
    ``tree_inputs``), for devices whose latency is not additive over decisions. Its trees
    give quantiles. Stored as its fitted trees' arrays (a Forest, as the
    tree predictor stores its forests) and the mask of the choices its training networks
    used, so that loading refits nothing; files that stored the training rows are refitted
    identically on load (``random_state``).

    A forest predicts only within the range of its training latencies and knows nothing of a
    choice no training network used: ``predict_z`` of a z with such a choice raises
    UnknownChoiceError (a failed, never chosen trial in search).

    Args:
        n_estimators: the number of trees.
        random_state: seeds the forest: the same networks give the same trees.
        target: the table column ``fit_table`` fits (latency_ms, or e.g. energy_mj).
        space: the space of the z that ``fit(X, y)`` and ``predict(X)`` take: a name, a
            space file or a SearchSpace.

    Example:
        >>> from hwnas.devices import load_device
        >>> p = TreeZPredictor(n_estimators=10).fit_table(load_device("pixel3", "nb201"),
        ...                                               "nb201")
        >>> bool(p.predict([[3, 3, 3, 3, 3, 3]])[0] > 0)
        True
    """

    kind = "tree_z"

    def __init__(self, n_estimators: int = 200, random_state: int = 0,
                 target: str = "latency_ms", *, space: str | SearchSpace | None = None):
        self.n_estimators = n_estimators
        self.random_state = random_state
        self.target = target
        self.space = space

    def _validate(self) -> None:
        self._check_params(n_estimators=("an integer", 1), random_state=("an integer", 0))

    def _fit_networks(self, space: SearchSpace, Z: np.ndarray, y: np.ndarray,
                      where: str) -> None:
        self.space_signature_ = space.signature
        self._fit_rows(Z, y, list(space.n_choices),
                       tree_inputs(space, Z) if space.sliced else None)
        _warn_unknown(self.kind, choice_names(space, self.known_))

    def _fit_rows(self, Z: np.ndarray, y: np.ndarray, n_choices: list[int],
                  X: np.ndarray | None = None) -> None:
        """Fit on z (and ``X``, a sliced space's ``tree_inputs``; default the one-hot z)."""
        from sklearn.ensemble import RandomForestRegressor
        model = RandomForestRegressor(n_estimators=self.n_estimators,
                                      random_state=self.random_state)
        self.n_choices_ = n_choices
        self.known_ = observed(n_choices, Z)
        self.inputs_ = "one_hot" if X is None else "sliced"
        self.forest_ = Forest.from_sklearn(model.fit(one_hot(n_choices, Z) if X is None else X,
                                                     y))

    def _inputs(self, space: SearchSpace, Z: np.ndarray) -> np.ndarray:
        if self.inputs_ == "sliced" and not space.sliced:
            raise InputError(f"this tree_z predictor was fitted on a sliced space, not on "
                             f"{space.name!r}")
        return one_hot(self.n_choices_, Z) if self.inputs_ == "one_hot" else \
            tree_inputs(space, Z)

    def _known(self, space: SearchSpace) -> np.ndarray:
        self._check_space(space)
        return self.known_

    def cost_matrix(self, space: SearchSpace):
        raise NotAdditiveError("the tree_z predictor is not additive over decisions: use "
                               "predict_z")

    def cost_tensor(self, space: SearchSpace):
        raise NotAdditiveError("the tree_z predictor is not additive within slices either: "
                               "use predict_z")

    def predict_z(self, space: SearchSpace, z) -> np.ndarray:
        return self.forest_.predict(self._inputs(space, self._check_known(space, z)))

    def predict_z_quantile(self, space: SearchSpace, z, q: float) -> np.ndarray:
        X = self._inputs(space, self._check_known(space, z))
        return np.quantile(self.forest_.members(X), q, axis=0)

    def predict_architecture(self, arch) -> float:
        Z = self._arch_z(arch)
        check_known(self.kind, self.known_, Z)
        if self.inputs_ == "sliced":
            from hwnas.spaces import get_space
            return float(self.predict_z(get_space(self.space_), Z)[0])
        return float(self.forest_.predict(one_hot(self.n_choices_, Z))[0])

    def _state(self) -> dict[str, Any]:
        return {**self._space_state(), "inputs": self.inputs_, "n_estimators": self.n_estimators,
                "random_state": self.random_state, "n_choices": self.n_choices_,
                "known": [row[:k].tolist() for row, k in zip(self.known_, self.n_choices_)],
                "forest": self.forest_.to_dict()}

    @classmethod
    def _from_state(cls, state: dict[str, Any]) -> TreeZPredictor:
        predictor = cls(saved_int(state["n_estimators"], "n_estimators", 1, 10_000),
                        saved_int(state["random_state"], "random_state", 0, 2**32 - 1))
        predictor._load_space_state(state)
        n_choices = [saved_int(k, "n_choices", 1, 10_000) for k in state["n_choices"]]
        if "forest" not in state:  # earlier files stored the training rows: refit them
            Z = np.asarray(state["z"], dtype=int)
            if Z.ndim != 2 or Z.shape[1] != len(n_choices) or (Z < 0).any() or \
                    (Z >= np.asarray(n_choices)).any():
                raise ValueError(f"z must be rows of {len(n_choices)} choice indices within "
                                 f"n_choices")
            predictor._fit_rows(Z, check_non_negative(state["y"], "y"), n_choices)
            predictor.forest_.check_non_negative("forest")
            return predictor
        predictor.n_choices_ = n_choices
        predictor.known_ = _known_mask(state["known"], n_choices)
        predictor.inputs_ = state.get("inputs", "one_hot")  # absent from earlier files
        if predictor.inputs_ not in ("one_hot", "sliced"):
            raise ValueError(f"inputs must be one_hot or sliced, got {predictor.inputs_!r}")
        predictor.forest_ = Forest.from_dict(state["forest"], predictor.n_estimators, "forest")
        if predictor.inputs_ == "one_hot" and predictor.forest_.n_features != sum(n_choices):
            raise ValueError(f"forest: {predictor.forest_.n_features} features, not the "
                             f"{sum(n_choices)} choices of n_choices")
        return predictor


def _known_mask(rows: Any, n_choices: list[int]) -> np.ndarray:
    """The saved mask of learned choices, a list of booleans per decision, as (D, K)."""
    if not isinstance(rows, list) or [len(r) if isinstance(r, list) else None
                                      for r in rows] != n_choices or \
            not all(isinstance(v, bool) for r in rows for v in r):
        raise ValueError(f"known must be, per decision, one true or false per choice "
                         f"({n_choices})")
    known = np.zeros((len(n_choices), max(n_choices)), dtype=bool)
    for d, row in enumerate(rows):
        known[d, :len(row)] = row
    return known
