"""Few-shot transfer: a new device's additive latency model from about 10 measured networks,
leaning on the known devices of the same space (``hwnas.devices``) as prior knowledge."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from hwnas.errors import InputError
from hwnas.layers import Layer
from hwnas.predictors._base import NotAdditiveError, check_finite
from hwnas.predictors._drops import dead_latency, dead_networks, drop_rule
from hwnas.predictors._network import AdditivePredictor, nonnegative_least_squares, one_hot
from hwnas.spaces import SearchSpace, get_space

#: the ridge strengths leave-one-out cross-validation chooses from (on scaled columns)
RIDGES = (1e-4, 1e-3, 1e-2, 1e-1)
#: the feature sets it chooses from: a mix of the known devices alone (always positive), with
#: an offset, with an offset and per-op counts, or the mix with the space's analytic costs
#: (``cost_features``, non-negative weights) without and with an offset
FEATURE_SETS = ("mix", "devices", "devices+ops", "mix+costs", "devices+costs")
#: where a space's cells can be dropped (``_drops``), the dropping model is chosen unless the
#: plain one's leave-one-out error is lower by more than this factor: 10 networks seldom hold a
#: dead one, and then both fit alike; on the shipped pixel3 the dropping model ranks its other
#: networks at 0.94 (mean of 10 random draws of 10), the plain one at 0.90
DROPS_PREFERRED = 1.15


def feature_sets(space: SearchSpace) -> tuple[str, ...]:
    """The feature sets cross-validation chooses from on ``space``: without per-op counts on
    a sliced space (``ofa``: 9 signed counts of block choices and an offset fitted 10
    networks exactly and ranked a held-out batch-1 GPU at Spearman 0.54 where the mix alone
    reached 0.70: leave-one-out could not see it)."""
    return tuple(k for k in FEATURE_SETS if not (space.sliced and k.endswith("+ops")))


#: fewer networks leave nothing to cross-validate on
MIN_NETWORKS = 3


class KnownDevices(Protocol):
    """What transfer needs of the known devices: ``hwnas.devices.device_matrix(space)``."""

    @property
    def space(self) -> str: ...

    @property
    def devices(self) -> tuple[str, ...]: ...

    @property
    def z(self) -> np.ndarray: ...  # (networks, decisions)

    @property
    def latency_ms(self) -> np.ndarray: ...  # (devices, networks)


@dataclass(frozen=True)
class DeviceBasis:
    """Each known device's additive model on one space: latency_k(z) = fixed[k] + sum_d
    C[k, d, z_d], least squares on all its measured networks (which is what lets transfer
    predict z no known device was measured on). On a space additive within slices (``ofa``)
    each is linear in the space's resolution-aware ``features``: fixed[k] is per slice and
    C[k] per slice, decision and choice (``space.evaluate_tensor``)."""

    devices: tuple[str, ...]
    fixed: np.ndarray  # (devices,), or (devices, slices)
    C: np.ndarray  # (devices, [slices,] decisions, choices), NaN where no such choice
    space: SearchSpace | None = None  # the sliced space, where it is one

    def predict(self, Z: np.ndarray) -> np.ndarray:
        """(devices, N) latency of each known device's model on checked int rows Z."""
        if self.space is not None:
            return np.stack([self.space.evaluate_tensor(Z, f, C, checked=True)
                             for f, C in zip(self.fixed, self.C)])
        rows = np.arange(Z.shape[1])
        return self.fixed[:, None] + self.C[:, rows, Z].sum(axis=2)


def device_basis(known: KnownDevices, space: SearchSpace) -> DeviceBasis:
    """The additive model of every known device, fitted at once (one least-squares solve).

    Example:
        >>> from hwnas.devices import device_matrix
        >>> basis = device_basis(device_matrix("nb201"), get_space("nb201"))
        >>> basis.C.shape[1:]
        (6, 5)
    """
    _check_known(known, space)
    Z = space.check_z(known.z)
    if space.sliced:  # non-negative: a mix of them never makes a block cost less than none
        X = space.features(Z)  # type: ignore[attr-defined]
        tensors = [space.weights_tensor(nonnegative_least_squares(  # type: ignore[attr-defined]
            X, np.asarray(y, dtype=float), 1e-6)) for y in known.latency_ms]
        return DeviceBasis(tuple(known.devices), np.stack([f for f, _ in tensors]),
                           np.stack([C for _, C in tensors]), space)
    live = ~dead_networks(space, Z)  # a device that drops them would bend its additive model
    X = np.hstack([np.ones((len(Z), 1)), one_hot(space.n_choices, Z)])
    w = np.linalg.lstsq(X[live], np.asarray(known.latency_ms, dtype=float)[:, live].T,
                        rcond=None)[0]
    C = np.full((len(known.devices), len(space.decisions), max(space.n_choices)), np.nan)
    start = 1
    for d, k in enumerate(space.n_choices):
        C[:, d, :k] = w[start:start + k].T
        start += k
    least = np.nanmin(C, axis=2)  # each decision's cheapest choice into fixed: unique C
    return DeviceBasis(tuple(known.devices), w[0] + least.sum(axis=1), C - least[:, :, None])


def _check_known(known: KnownDevices | None, space: SearchSpace) -> KnownDevices:
    """``known``, checked: given, of ``space`` (the built-in one), with devices."""
    if known is None:
        raise InputError("the transfer predictor needs the known devices of the space: "
                         "TransferPredictor(known=hwnas.devices.device_matrix(space_name)) "
                         "(python -m hwnas.fit --model transfer does this)")
    if getattr(known, "space", None) != space.name:
        raise InputError(f"the known devices are of space {getattr(known, 'space', None)!r}, "
                         f"not {space.name!r}")
    if space.signature != get_space(space.name).signature:
        raise InputError(f"the known devices were measured on the built-in space "
                         f"{space.name!r}; the space given differs from it")
    if len(known.devices) == 0:
        raise InputError(f"no known devices of space {space.name!r} to transfer from")
    return known


def _counted(space: SearchSpace) -> list[int]:
    """The decisions whose choices ``op_counts`` counts: all, or a sliced space's blocks."""
    return list(range(space.n_blocks if space.sliced else len(space.decisions)))  # type: ignore


def op_counts(space: SearchSpace, Z: np.ndarray) -> tuple[list[str], np.ndarray]:
    """The choice names of the space (op kinds: ``nor_conv_3x3``, ``k5_e6``) and how many
    decisions of each z chose each: an additive feature (a count of choices; on a sliced
    space of its running blocks' choices)."""
    counted = _counted(space)
    names = sorted({c for d in counted for c in space.decisions[d].choices})
    index = np.full((len(space.decisions), max(space.n_choices)), -1)
    for i in counted:
        d = space.decisions[i]
        index[i, :len(d.choices)] = [names.index(c) for c in d.choices]
    chosen = index[np.arange(Z.shape[1]), Z]
    if space.sliced:
        chosen = np.where(space.active(Z), chosen, -1)  # type: ignore[attr-defined]
    return names, np.stack([(chosen == j).sum(axis=1) for j in range(len(names))], axis=1
                           ).astype(float)


@dataclass(frozen=True)
class CostFeatures:
    """The space's analytic costs as additive columns: total MACs, total bytes moved (weights,
    inputs, outputs) and each op kind's MACs; feature j of z is fixed[j] + sum_d C[d, z_d, j].
    A device that no known one resembles (a phone among GPUs) is often close to a
    non-negative mix of these."""

    names: tuple[str, ...]
    fixed: np.ndarray  # (features,), or (slices, features)
    C: np.ndarray  # ([slices,] decisions, choices, features), NaN where no such choice
    space: SearchSpace | None = None  # the sliced space, where it is one

    def of(self, Z: np.ndarray) -> np.ndarray:
        """(N, features) of checked int rows Z."""
        if self.space is not None:
            return np.stack([self.space.evaluate_tensor(
                Z, self.fixed[:, j], self.C[..., j], checked=True)
                for j in range(len(self.names))], axis=1)
        return self.fixed + self.C[np.arange(Z.shape[1]), Z].sum(axis=1)


def cost_features(space: SearchSpace) -> CostFeatures:
    """The analytic cost columns of an additive space (``CostFeatures``).

    Example:
        >>> cost_features(get_space("fbnet")).names[:3]
        ('macs', 'bytes', 'macs_conv')
    """
    ops = sorted({layer.op for layer in space.unique_layers()})

    def column(name: str) -> Callable[[Sequence[Layer]], list[float]]:
        if name == "bytes":
            return lambda layers: [float(ly.param_bytes + ly.input_bytes + ly.output_bytes)
                                   for ly in layers]
        op = name[len("macs_"):]
        return lambda layers: [float(ly.macs) if not op or ly.op == op else 0.0
                               for ly in layers]

    names = ("macs", "bytes", *(f"macs_{op}" for op in ops))
    if space.sliced:
        tensors = [space.cost_tensor(column(name)) for name in names]
        return CostFeatures(names, np.stack([f for f, _ in tensors], axis=-1),
                            np.stack([C for _, C in tensors], axis=-1), space)
    columns = [space.cost_matrix(column(name)) for name in names]
    return CostFeatures(names, np.array([f for f, _ in columns]),
                        np.stack([C for _, C in columns], axis=-1))


def _solve(devices: np.ndarray, signed: np.ndarray, y: np.ndarray, ridge: float
           ) -> tuple[np.ndarray, np.ndarray]:
    """argmin ||devices a + signed b - y||^2 + ridge (||a||^2 + ||b||^2) on scaled columns,
    with a >= 0 (a non-negative mix of known devices) and b of any sign (an offset and per-op
    corrections); y is fitted relative to its mean, so ridge is scale-free."""
    from scipy.optimize import nnls
    X = np.hstack([devices, signed, -signed])
    scale = np.abs(X).max(axis=0)
    scale[scale == 0] = 1.0
    mean = float(np.mean(y))
    n = X.shape[1]
    A = np.vstack([X / scale, np.sqrt(ridge) * np.eye(n)])
    w, _ = nnls(A, np.concatenate([y / mean, np.zeros(n)]), maxiter=50 * n)
    w = w / scale * mean
    k, s = devices.shape[1], signed.shape[1]
    return w[:k], w[k:k + s] - w[k + s:]


def _features(kind: str, space: SearchSpace, basis: DeviceBasis, costs: CostFeatures,
              Z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(non-negative columns: the known devices' latencies, and the cost features with
    ``+costs``; signed columns: none for ``mix...``, else an offset, and op counts with
    ``+ops``)."""
    positive = basis.predict(Z).T
    if kind.endswith("+costs"):
        positive = np.hstack([positive, costs.of(Z)])
    signed = np.ones((len(Z), 0 if kind.startswith("mix") else 1))
    if kind == "devices+ops":
        signed = np.hstack([signed, op_counts(space, Z)[1]])
    return positive, signed


class TransferPredictor(AdditivePredictor):
    """An additive predictor for a new device from a few measured networks (about 10), by
    transfer from known devices: latency(z) = b + sum_k a_k latency_k(z) (+ sum_j c_j
    cost_j(z)) (+ sum_op v_op count_op(z)), a_k, c_j >= 0, where latency_k is known device k's
    additive model (``device_basis``) and cost_j the space's MACs and bytes
    (``cost_features``). The feature set (``FEATURE_SETS``: the mix alone, with the offset b,
    with b and per-op counts, with the costs) and the ridge are chosen by leave-one-out
    cross-validation on the networks. Being additive, it prices every z of the space and gives
    the search a cost matrix; ``weights_`` says which known devices it leaned on,
    ``cost_weights_`` which costs.

    Args:
        known: the known devices of the space, ``hwnas.devices.device_matrix(space)`` (any
            object with ``space``, ``devices``, ``z`` and ``latency_ms``); not saved (the
            fitted cost matrix is).
        ridges: the ridge strengths to choose from.
        target: the table column ``fit_table`` fits (latency_ms, or e.g. energy_mj).
        space: the space of the z that ``fit(X, y)`` and ``predict(X)`` take: a built-in
            space's name (the known devices were measured on it) or that SearchSpace.

    Example:
        >>> from hwnas.devices import device_matrix, load_device
        >>> Z = transfer_design(device_matrix("nb201"), get_space("nb201"), 10)
        >>> y = 0.05 * Z.sum(axis=1) + 1.0  # measure these 10 networks on your device
        >>> p = TransferPredictor(device_matrix("nb201"), space="nb201").fit(Z, y)
        >>> bool(p.score(Z, y) > 0.9), p.features_ in FEATURE_SETS
        (True, True)
    """

    kind = "transfer"

    def __init__(self, known: KnownDevices | None = None, ridges: Sequence[float] = RIDGES,
                 target: str = "latency_ms", *, space: str | SearchSpace | None = None):
        self.known = known
        self.ridges = ridges
        self.target = target
        self.space = space

    def _validate(self) -> None:
        self._check_params()
        self._checked_ridges()

    def _fit_networks(self, space: SearchSpace, Z: np.ndarray, y: np.ndarray,
                      where: str) -> None:
        ridges = self._checked_ridges()
        known = _check_known(self.known, space)
        self.space_signature_ = space.signature
        if len(Z) < MIN_NETWORKS:
            raise InputError(f"{where}: the transfer predictor needs at least "
                             f"{MIN_NETWORKS} measured networks (about 10 is best), got {len(Z)}")
        if not (np.all(np.isfinite(y)) and np.all(y > 0)):
            raise InputError(f"{where}: {self.target} must be finite and > 0 in every "
                             f"row to transfer from known devices")
        basis, costs = device_basis(known, space), cost_features(space)
        best = None
        for drops, (Zf, dead) in _variants(space, Z):
            for kind in feature_sets(space):
                positive, signed = _features(kind, space, basis, costs, Zf)
                for ridge in ridges:
                    error = _loo_error(positive, signed, y, ridge, dead) / \
                        (DROPS_PREFERRED if drops else 1.0)
                    a, b = _solve(positive[~dead], signed[~dead], y[~dead], ridge)
                    fixed, C = _cost_matrix(space, basis, costs, a, b, kind)
                    if space.sliced and (np.any(fixed < 0) or np.any(C[~np.isnan(C)] < 0)):
                        continue  # a part of a network (a block, a resolution) costing < 0
                    least = space.min_z_tensor(fixed, C)[1] if space.sliced else \
                        fixed + np.nanmin(C, axis=1).sum()
                    if least > 0 and (best is None or error < best[0]):  # never negative
                        best = (error, kind, ridge, a, b, fixed, C, drops,
                                dead_latency(y, dead, fixed + C[:, 0].sum()) if drops else None)
        if best is None:
            raise InputError(f"{where}: no mix of the known devices predicts a "
                             f"positive {self.target} for every z of {space.name!r}")
        self.loo_error_, self.features_, self.ridge_, a, b, fixed, C, self.drops_, \
            self.dead_ms_ = best
        k = len(basis.devices)
        order = np.argsort(-a[:k], kind="stable")
        self.weights_ = {basis.devices[i]: float(a[i]) for i in order if a[i] > 0}
        self.cost_weights_ = {name: float(w) for name, w in zip(costs.names, a[k:]) if w > 0}
        self.offset_ = float(b[0]) if len(b) else 0.0
        self.op_costs_ = dict(zip(op_counts(space, Z[:1])[0], map(float, b[1:])))
        if space.sliced:  # per slice: the search sums it as the space's tensor
            self.fixed_, self.C_ = fixed, C
        else:
            least = np.nanmin(C, axis=1)
            self.fixed_ = float(fixed + least.sum())
            self.C_ = C - least[:, None]
        self.unobserved_ = []
        self.ridge = self.ridge_  # what AdditivePredictor's methods and state read

    def cost_matrix(self, space: SearchSpace) -> tuple[float, np.ndarray]:
        if getattr(self, "drops_", False):
            raise NotAdditiveError(f"the transfer predictor of a device that drops what does "
                                   f"not reach the output is not additive over z of "
                                   f"{space.name!r}")
        return super().cost_matrix(space)

    def _known(self, space: SearchSpace) -> np.ndarray:
        self._check_space(space)
        if self.sliced_:  # per slice: a choice is known where every slice prices it
            return super()._known(space)
        return ~np.isnan(self.C_)  # the costs of the z computed, where cells are dropped

    def predict_z(self, space: SearchSpace, z) -> np.ndarray:
        """Latency of each z; on a device that drops cells (``drops_``), of the z it computes
        (``_drops``), and ``dead_ms_`` where it computes nothing."""
        if not getattr(self, "drops_", False):
            return super().predict_z(space, z)
        self._check_space(space)
        rule = drop_rule(space)
        assert rule is not None  # fitted on this space, which has one
        Zc, dead = rule(space.check_z(z))
        y = space.evaluate_z(Zc, self.fixed_, self.C_)
        y[dead] = self.dead_ms_
        return y

    def predict_architecture(self, arch) -> float:
        Z = self._arch_z(arch)
        if not getattr(self, "drops_", False):
            return super().predict_architecture(arch)
        from hwnas.spaces import get_space
        return float(self.predict_z(get_space(self.space_), Z)[0])

    def _checked_ridges(self) -> tuple[float, ...]:
        try:
            ridges = tuple(check_finite(r, "ridges", positive=True) for r in self.ridges)
        except TypeError:
            ridges = ()
        if not ridges:
            raise InputError(f"TransferPredictor: ridges must be numbers > 0, got "
                             f"{self.ridges!r}")
        return ridges

    def describe_weights(self, top: int = 5) -> str:
        """The known devices it leaned on, heaviest first, e.g. ``titan_rtx_1 x 0.93``, and
        the cost features it weighed (``+ macs``)."""
        self._check_fitted()
        parts = [f"{name} x {w:.3g}" for name, w in list(self.weights_.items())[:top]]
        more = len(self.weights_) - top
        devices = ", ".join(parts) + (f" and {more} more" if more > 0 else "")
        return " + ".join(part for part in (devices, *self.cost_weights_) if part) or "none"

    def _state(self) -> dict[str, Any]:
        return {**super()._state(), "weights": self.weights_, "features": self.features_,
                "offset": self.offset_, "op_costs": self.op_costs_,
                "cost_weights": self.cost_weights_, "loo_error": self.loo_error_,
                "drops": bool(getattr(self, "drops_", False)),
                "dead_ms": getattr(self, "dead_ms_", None)}

    @classmethod
    def _from_state(cls, state: dict[str, Any]) -> TransferPredictor:
        base = AdditivePredictor._from_state(state)
        predictor = cls()
        predictor.__dict__.update({k: v for k, v in vars(base).items() if k.endswith("_")})
        predictor.ridge = predictor.ridge_ = base.ridge
        predictor.weights_ = {str(k): check_finite(v, f"weights.{k}")
                              for k, v in dict(state["weights"]).items()}
        if state["features"] not in FEATURE_SETS:
            raise ValueError(f"features {state['features']!r} is not one of {FEATURE_SETS}")
        predictor.features_ = state["features"]
        predictor.offset_ = check_finite(state["offset"], "offset")
        predictor.op_costs_ = {str(k): check_finite(v, f"op_costs.{k}")
                               for k, v in dict(state["op_costs"]).items()}
        predictor.cost_weights_ = {str(k): check_finite(v, f"cost_weights.{k}")
                                   for k, v in dict(state.get("cost_weights", {})).items()}
        predictor.loo_error_ = check_finite(state["loo_error"], "loo_error")
        predictor.drops_ = state.get("drops", False) is True  # older files: it did not
        dead = state.get("dead_ms")
        predictor.dead_ms_ = None if dead is None else check_finite(dead, "dead_ms",
                                                                     positive=True)
        if predictor.drops_ and predictor.dead_ms_ is None:
            raise ValueError("drops is true but dead_ms is missing")
        return predictor


def _cost_matrix(space: SearchSpace, basis: DeviceBasis, costs: CostFeatures, a: np.ndarray,
                 b: np.ndarray, kind: str) -> tuple[Any, np.ndarray]:
    """(fixed, C) of b[0] + sum_k a_k latency_k(z) (+ sum_j a_j cost_j(z) with ``+costs``)
    (+ sum_op b[op] count_op(z) with ``+ops``)."""
    k = len(basis.devices)
    fixed = (b[0] if len(b) else 0.0) + np.tensordot(a[:k], basis.fixed, axes=1)
    C = np.tensordot(a[:k], basis.C, axes=1)
    if kind.endswith("+costs"):
        fixed = fixed + costs.fixed @ a[k:]
        C = C + costs.C @ a[k:]
    if len(b) > 1:
        counted = _counted(space)
        names = sorted({c for d in counted for c in space.decisions[d].choices})
        for i in counted:
            d = space.decisions[i]
            C[..., i, :len(d.choices)] += [b[1 + names.index(c)] for c in d.choices]
    return (fixed, C) if space.sliced else (float(fixed), C)


def _variants(space: SearchSpace, Z: np.ndarray):
    """(drops, (the z computed, which compute nothing)): the networks as they are, and where
    the space's cells can be dropped (``_drops``) and enough networks compute something, as a
    dropping runtime computes them."""
    yield False, (Z, np.zeros(len(Z), dtype=bool))
    rule = drop_rule(space)
    if rule is not None:
        Zc, dead = rule(Z)
        if (~dead).sum() >= MIN_NETWORKS:
            yield True, (Zc, dead)


def _loo_error(positive: np.ndarray, signed: np.ndarray, y: np.ndarray, ridge: float,
               dead: np.ndarray | None = None) -> float:
    """Root mean square relative error of leave-one-out predictions (each at most 100 %); a
    ``dead`` network (it
    computes nothing) is predicted as the others that do (``dead_latency``; none: the model's
    network that computes no choice, ``positive[i]`` of its computed z)."""
    dead = np.zeros(len(y), dtype=bool) if dead is None else dead
    errors = []
    for i in range(len(y)):
        keep = (np.arange(len(y)) != i) & ~dead
        a, b = _solve(positive[keep], signed[keep], y[keep], ridge)
        model = positive[i] @ a + signed[i] @ b
        others = dead & (np.arange(len(y)) != i)
        errors.append((dead_latency(y, others, model) if dead[i] else model) / y[i] - 1)
    # an error over 100 % counts as 100 %: a network that a dropping runtime computes nothing
    # of (0.05 ms) is missed by any model's hundredfold, and must not decide the choice alone
    return float(np.sqrt(np.mean(np.square(np.clip(errors, -1.0, 1.0)))))


def transfer_design(known: KnownDevices, space: SearchSpace, n: int) -> np.ndarray:
    """n networks to measure on a new device so that they separate the known devices best:
    greedy D-optimal selection, among the networks the known devices were measured on, over
    their standardised latency vectors and cost features (each pick adds the most
    information about how the new device mixes the known ones and the costs; without the
    costs, the picks were the known devices' outliers, and batch-1 GPUs ranked worse from
    them than from random networks). Deterministic.

    Example:
        >>> from hwnas.devices import device_matrix
        >>> Z = transfer_design(device_matrix("nb201"), get_space("nb201"), 10)
        >>> Z.shape
        (10, 6)
    """
    _check_known(known, space)
    Z = space.check_z(known.z)
    if not 1 <= n <= len(Z):
        raise InputError(f"a transfer design chooses 1 to {len(Z)} networks of space "
                         f"{space.name!r}, got {n}")
    X = np.hstack([np.asarray(known.latency_ms, dtype=float).T, cost_features(space).of(Z)])
    X = (X - X.mean(axis=0)) / np.where(X.std(axis=0) > 0, X.std(axis=0), 1.0)
    X = np.hstack([np.ones((len(X), 1)), X / np.sqrt(X.shape[1])])
    information = 1e-3 * np.eye(X.shape[1])
    chosen: list[int] = []
    for _ in range(n):
        gain = np.einsum("ij,jk,ik->i", X, np.linalg.inv(information), X)
        gain[chosen] = -np.inf
        pick = int(np.argmax(gain))
        chosen.append(pick)
        information += np.outer(X[pick], X[pick])
    return Z[chosen]
