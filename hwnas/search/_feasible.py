"""Feasible by construction: the latency model, the budgets a z must meet, and an Optuna
sampler that proposes only z within them.

Latency is additive where the predictor has a cost matrix (latency(z) = fixed + sum_d
C[d, z_d]); so are parameter counts and bytes. Peak activation memory is a max over layers,
so a choice is allowed iff each of its layers fits. A cost nobody measured (NaN) is never
allowed. Where latency is not additive (``tree_z``) or an upper quantile is constrained, a
batch check on the predictor decides, by bounded rejection.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution

from hwnas._checks import fraction, positive
from hwnas.errors import InputError
from hwnas.predictors import NotAdditiveError
from hwnas.spaces import additive_cost

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial

    from hwnas.layers import Layer
    from hwnas.predictors import Predictor
    from hwnas.search._fleet import DeviceBudget
    from hwnas.spaces import SearchSpace

#: budget bins of the dynamic programme: costs are rounded up to 1/BINS of the slack, so the
#: sampled z always fit; z within D/BINS of the slack from the budget may be missed by the
#: uniform draw (never by the repair, which checks exact sums)
BINS = 4096
#: candidates per round and rounds of the bounded rejection for non-additive checks
BATCH, ROUNDS = 128, 4
#: feasible z drawn at once for a random base sampler
RANDOM_BATCH = 256
#: the memory budgets, by name
_MEMORY = ("params", "param_bytes", "peak_activation_bytes")


class LatencyModel:
    """Predicted latency of z: the mean (through the cost matrix where additive, or the cost
    tensor where additive within slices: ``ofa``) and, with a ``confidence`` q, the
    predictor's q-quantile."""

    def __init__(self, space: SearchSpace, predictor: Predictor,
                 confidence: float | None = None):
        if confidence is not None:
            fraction("confidence", confidence)
        self.space, self.predictor, self.confidence = space, predictor, confidence
        self.fixed: float | None
        self.C: np.ndarray | None
        #: (fixed per slice, C per slice, decision and choice) where additive within slices
        self.tensor: tuple[np.ndarray, np.ndarray] | None = None
        try:
            self.fixed, self.C = predictor.cost_matrix(space)
        except NotAdditiveError:
            self.fixed, self.C = None, None
            if space.sliced:
                try:
                    self.tensor = predictor.cost_tensor(space)
                except NotAdditiveError:
                    pass
        if confidence is not None:  # fails early for predictors without a spread
            predictor.predict_z_quantile(space, np.zeros((1, len(space.decisions)), int),
                                         confidence)

    @property
    def additive(self) -> bool:
        return self.C is not None

    @property
    def sliced(self) -> bool:
        """Additive within slices (``tensor``), though not over all decisions."""
        return self.tensor is not None

    def mean(self, Z: np.ndarray) -> np.ndarray:
        """Mean predicted latency of each row of Z (checked int z, shape (N, D))."""
        if self.tensor is not None:
            return self.space.evaluate_tensor(Z, *self.tensor, checked=True)
        if self.C is None or self.fixed is None:
            return np.asarray(self.predictor.predict_z(self.space, Z), dtype=float)
        return additive_cost(self.fixed, self.C, Z)

    def least(self, allowed: np.ndarray | None = None) -> tuple[np.ndarray, float] | None:
        """The z of least mean latency and that latency, among the ``allowed`` choices
        (decisions x choices, or slices x decisions x choices where additive within slices;
        default all); None where latency is not additive."""
        if self.tensor is not None:
            return self.space.min_z_tensor(*self.tensor, allowed)
        if self.C is None or self.fixed is None:
            return None
        C = self.C if allowed is None else np.where(allowed, self.C, np.nan)
        return self.space.min_z(self.fixed, C)

    def upper(self, Z: np.ndarray) -> np.ndarray | None:
        """The constrained quantile of each row, or None without a confidence."""
        if self.confidence is None:
            return None
        return np.asarray(self.predictor.predict_z_quantile(self.space, Z, self.confidence),
                          dtype=float)

    def constrained(self, Z: np.ndarray) -> np.ndarray:
        """What the budget bounds: the upper quantile with a confidence, else the mean."""
        upper = self.upper(Z)
        return self.mean(Z) if upper is None else upper


def layer_matrix(space: SearchSpace, cost: Callable[[Layer], float]) -> tuple[float, np.ndarray]:
    """(fixed, C) of an additive per-layer quantity such as params or MACs."""
    return space.cost_matrix(lambda layers: np.array([cost(ly) for ly in layers], float))


def peak_matrix(space: SearchSpace) -> tuple[float, np.ndarray]:
    """(fixed, A) with peak activation(z) = max(fixed, max_d A[d, z_d]); 0 for a skip."""
    A = np.full((len(space.decisions), max(space.n_choices)), np.nan)
    for d, decision in enumerate(space.decisions):
        A[d, :len(decision.layers)] = [max((ly.peak_activation_bytes for ly in group),
                                           default=0) for group in decision.layers]
    fixed = max(ly.peak_activation_bytes for ly in space.stem + space.head)
    return float(fixed), A


@dataclass(frozen=True)
class AdditiveBudget:
    """fixed + sum_d C[d, z_d] <= limit; NaN in C is a choice that is not allowed."""

    name: str
    fixed: float
    C: np.ndarray
    limit: float


class Budgets:
    """Every budget a z must meet in one place: latency (unless ``latency_ms`` is None, as in
    penalty mode), parameter count and bytes, peak activation memory, and a fleet's budgets
    (``devices``: a limit on each of other predictors, each in its own unit)."""

    def __init__(self, model: LatencyModel, latency_ms: float | None, *,
                 max_params: int | None = None, max_param_bytes: int | None = None,
                 max_activation_bytes: int | None = None,
                 devices: Sequence[DeviceBudget] = ()):
        space = model.space
        self.model, self.latency_ms = model, latency_ms
        #: each fleet budget with the model of its predictor (a cost matrix where additive)
        self.devices = [(b, LatencyModel(space, b.predictor)) for b in devices]
        names = [b.name for b in devices]
        if len(set(names)) < len(names) or set(names) & {"latency_ms", *_MEMORY}:
            raise InputError(f"budget names must differ from each other and from "
                             f"{['latency_ms', *_MEMORY]}, got {names}")
        self.limits = {"params": max_params, "param_bytes": max_param_bytes,
                       "peak_activation_bytes": max_activation_bytes}
        for name, limit in self.limits.items():
            if limit is not None:
                positive(f"max_{name}", limit)
        # per decision where the space is additive; None: from each decoded z
        self.memory: dict[str, tuple[float, np.ndarray] | None] = {}
        for name, limit in self.limits.items():
            if limit is None:
                continue
            if not space.additive:
                self.memory[name] = None
            elif name == "peak_activation_bytes":
                self.memory[name] = peak_matrix(space)
            else:
                self.memory[name] = layer_matrix(space, operator.attrgetter(name))

    @property
    def names(self) -> list[str]:
        return list(self.memory) + ([] if self.latency_ms is None else ["latency_ms"]) + \
            [b.name for b, _ in self.devices]

    def predictions(self, Z: np.ndarray) -> dict[str, np.ndarray]:
        """Each fleet budget's predicted value of each row of Z (in its unit)."""
        return {b.name: m.mean(Z) for b, m in self.devices}

    def worst_ratio(self, Z: np.ndarray, latency_ms: np.ndarray) -> np.ndarray:
        """The largest value / limit over the latency budget and the fleet's (what Pareto
        mode trades against the objective); NaN where a value is unknown."""
        ratios = [] if self.latency_ms is None else [latency_ms / self.latency_ms]
        ratios += [m.mean(Z) / b.limit for b, m in self.devices]
        return np.max(ratios, axis=0)

    def violations(self, Z: np.ndarray, latency_ms: np.ndarray | None = None
                   ) -> dict[str, np.ndarray]:
        """value - limit of each budget for each row of Z (<= 0 fits; inf where unknown)."""
        out = {}
        for name, matrix in self.memory.items():
            if matrix is None:
                value = np.array([getattr(self.model.space.decode(z), name) for z in Z], float)
            elif name == "peak_activation_bytes":
                fixed, M = matrix
                value = np.maximum(fixed, M[np.arange(M.shape[0]), Z].max(axis=1))
            else:
                value = additive_cost(*matrix, Z)
            out[name] = value - float(self.limits[name] or 0)
        if self.latency_ms is not None:
            lat = self.model.constrained(Z) if latency_ms is None else latency_ms
            out["latency_ms"] = lat - self.latency_ms
        for b, m in self.devices:
            out[b.name] = m.mean(Z) - b.limit
        return {k: np.where(np.isnan(v), np.inf, v) for k, v in out.items()}

    def fits(self, Z: np.ndarray) -> np.ndarray:
        """Whether each row of Z meets every budget (a NaN cost never does)."""
        ok = np.ones(len(Z), dtype=bool)
        for v in self.violations(Z).values():
            ok &= v <= 0
        if self.latency_ms is None:  # penalty mode: an unknown latency is still not allowed
            ok &= ~np.isnan(self.model.mean(Z))
        return ok

    def feasibility(self) -> Feasibility:
        """The exact feasible-set machinery for these budgets (SlicedFeasibility where
        latency is additive within slices)."""
        space, model = self.model.space, self.model
        if model.sliced:
            from hwnas.search._sliced import sliced_feasibility
            return sliced_feasibility(self)  # type: ignore[return-value]
        n = np.asarray(space.n_choices)
        allowed = np.arange(max(n))[None, :] < n[:, None]
        additive: list[AdditiveBudget] = []
        if model.C is not None and model.fixed is not None:
            allowed &= ~np.isnan(model.C)
            if self.latency_ms is not None and model.confidence is None:
                additive.append(AdditiveBudget("latency_ms", model.fixed, model.C,
                                               self.latency_ms))
        for name, matrix in self.memory.items():
            if matrix is None:
                continue
            fixed, M = matrix
            if name == "peak_activation_bytes":
                limit = float(self.limits[name] or 0)
                if fixed > limit:
                    raise InputError(f"max_activation_bytes = {limit}: the fixed layers alone "
                                     f"need {fixed:.0f} bytes")
                allowed &= M <= limit
            else:
                additive.append(AdditiveBudget(name, fixed, M, float(self.limits[name] or 0)))
        for b, m in self.devices:  # where additive, a fleet budget is exact like latency's
            if m.C is not None and m.fixed is not None:
                allowed &= ~np.isnan(m.C)
                additive.append(AdditiveBudget(b.name, m.fixed, m.C, b.limit))
        exact = model.additive and (model.confidence is None or self.latency_ms is None) \
            and None not in self.memory.values() and all(m.additive for _, m in self.devices)
        return Feasibility(space, additive, allowed, None if exact else self.fits)


class Feasibility:
    """The z that meet the budgets: uniform sampling and least-change repair.

    Additive budgets are exact: the first by dynamic programming over its slack in ``BINS``
    bins (uniform over the z whose rounded-up costs fit), the others by rejection. A
    ``check`` (non-additive latency, an upper quantile) is applied by bounded rejection.
    """

    def __init__(self, space: SearchSpace, additive: Sequence[AdditiveBudget],
                 allowed: np.ndarray, check: Callable[[np.ndarray], np.ndarray] | None):
        self.space, self.additive, self.allowed, self.check = space, list(additive), allowed, check
        self.D = len(space.decisions)
        self.misses = 0  # proposals for which bounded rejection found nothing feasible
        self.proposals = 0
        empty = [space.decisions[d].name for d in np.flatnonzero(~allowed.any(axis=1))]
        if empty:
            raise InputError(f"decision {empty[0]!r} has no allowed choice: every choice has an "
                             f"unknown (NaN) cost or exceeds the activation budget")
        self.C = [np.where(allowed, b.C, np.inf) for b in self.additive]
        self.floor = [c.min(axis=1) for c in self.C]
        self.slack = [b.limit - b.fixed - f.sum() for b, f in zip(self.additive, self.floor)]
        self._rows = np.arange(self.D)
        if self.additive:  # what the repair needs for every proposal
            self._scale = np.array([max(s, 1e-12) for s in self.slack])
            self._cheapest = np.argmin(sum(c / s for c, s in zip(self.C, self._scale)), axis=1)
            self._stacked = np.stack(self.C)  # (budgets, D, choices)
            self._cheapest_cost = self._stacked[:, self._rows, self._cheapest]
            self._fixed = np.array([b.fixed for b in self.additive])
            self._limit = np.array([b.limit for b in self.additive])
        if self.additive:
            slack = self.slack[0]
            self.unit = slack / BINS if slack > 0 else 1.0
            over = self.C[0] - self.floor[0][:, None]
            q = np.ceil(over / self.unit - 1e-9)
            self.q = np.where(np.isfinite(q) & (q <= BINS), q, BINS + 1).astype(np.int64)
            self.table = _count_table(self.q, BINS)

    @property
    def empty(self) -> bool:
        """No z fits the additive budgets."""
        return any(s < -1e-9 * max(1.0, abs(b.limit)) for s, b in zip(self.slack, self.additive))

    def fits(self, Z: np.ndarray) -> np.ndarray:
        """Exact check of every budget for checked int rows Z."""
        ok = self.allowed[np.arange(self.D), Z].all(axis=1)
        for b in self.additive:
            with np.errstate(invalid="ignore"):
                ok &= additive_cost(b.fixed, b.C, Z) <= b.limit
        if self.check is not None and ok.any():
            ok[ok] = self.check(Z[ok])
        return ok

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """n z drawn uniformly from the additive-feasible set (not checked by ``check``)."""
        if not self.additive:
            return _draw_allowed(self.allowed, n, rng)
        Z = _draw(self.q, self.table, np.full(n, BINS), rng)
        if len(self.additive) > 1:  # the other additive budgets by rejection
            ok = np.ones(n, dtype=bool)
            for b in self.additive[1:]:
                ok &= additive_cost(b.fixed, b.C, Z) <= b.limit
            Z = Z[ok] if ok.any() else Z[:0]
        return Z

    def repair(self, z: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A feasible z with the least change to ``z``: the fewest decisions changed (by the
        largest savings), redrawn uniformly among the completions that fit; for a ``check``,
        the nearest feasible z among bounded batches of candidates."""
        self.proposals += 1
        z = np.asarray(z, dtype=np.int64)
        if self.fits(z[None])[0]:
            return z
        fixed = self._fix_additive(z, rng)
        if self.check is None:
            return fixed
        if fixed is not z and self.check(fixed[None])[0]:
            return fixed
        for _ in range(ROUNDS):
            cand = np.vstack([self._neighbours(fixed, BATCH // 2, rng),
                              self.sample(BATCH - BATCH // 2, rng)])
            cand = cand[self.fits(cand)] if len(cand) else cand
            if len(cand):
                return cand[np.argmin((cand != z).sum(axis=1))]
        self.misses += 1
        return fixed

    def _fix_additive(self, z: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if not self.additive:
            bad = ~self.allowed[np.arange(self.D), z]
            if not bad.any():
                return z
            out = z.copy()
            out[bad] = _draw_allowed(self.allowed[bad], 1, rng)[0]
            return out
        # move the decisions that save most (in units of each budget's slack) to their
        # cheapest allowed choice; a choice that is not allowed saves inf, so it moves first
        cheapest = self._cheapest
        now = self._stacked[:, self._rows, z]
        with np.errstate(invalid="ignore"):
            gain = now - self._cheapest_cost
        order = np.argsort(-(gain / self._scale[:, None]).sum(axis=0), kind="stable")
        excess = self._fixed + now.sum(axis=1) - self._limit
        with np.errstate(invalid="ignore"):
            enough = (np.cumsum(gain[:, order], axis=1) >= excess[:, None]).all(axis=0)
        out = z.copy()
        for k in range(int(np.argmax(enough)) + 1 if enough.any() else 1, self.D + 1):
            changed = order[:k]
            out[changed] = cheapest[changed]
            if self._additive_fits(out):
                return self._redraw(out, changed, rng)
        return self._first_sample(rng, z)

    def _additive_fits(self, z: np.ndarray) -> bool:
        return bool((self._fixed + self._stacked[:, self._rows, z].sum(axis=1)
                     <= self._limit).all())

    def _redraw(self, z: np.ndarray, changed: np.ndarray, rng: np.random.Generator
                ) -> np.ndarray:
        """Redraw the changed decisions uniformly among their completions that fit: by
        rejection from one batch where that is likely to succeed (exactly uniform), else by
        dynamic programming over the binned slack."""
        out = np.repeat(z[None], BATCH, axis=0)
        out[:, changed] = _draw_allowed(self.allowed[changed], BATCH, rng)
        totals = self._fixed[:, None] + self._stacked[:, self._rows, out].sum(axis=2)
        fit = np.flatnonzero((totals <= self._limit[:, None]).all(axis=0))
        if len(fit):
            return out[fit[0]]
        keep = np.ones(self.D, dtype=bool)
        keep[changed] = False
        b = self.additive[0]
        used = b.fixed + self.C[0][np.arange(self.D)[keep], z[keep]].sum() \
            + self.floor[0][changed].sum()
        bins = int(math.floor((b.limit - used) / self.unit + 1e-9))
        if bins < 0:
            return z
        q = self.q[changed]
        table = _count_table(q, min(bins, BINS))
        for _ in range(4):
            out = z.copy()
            out[changed] = _draw(q, table, np.array([min(bins, BINS)]), rng)[0]
            if self._additive_fits(out):
                return out
        return z

    def _first_sample(self, rng: np.random.Generator, z: np.ndarray) -> np.ndarray:
        Z = self.sample(BATCH, rng)
        return Z[0] if len(Z) else z

    def _neighbours(self, z: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
        """z with 1-3 decisions redrawn among their allowed choices."""
        out = np.repeat(z[None], n, axis=0)
        for row, k in enumerate(rng.integers(1, 4, size=n)):
            for d in rng.choice(self.D, size=min(k, self.D), replace=False):
                out[row, d] = rng.choice(np.flatnonzero(self.allowed[d]))
        return out


def _count_table(q: np.ndarray, bins: int) -> np.ndarray:
    """N[d, b]: how many completions of decisions d.. have rounded cost <= b."""
    D = len(q)
    N = np.zeros((D + 1, bins + 1))
    N[D] = 1.0
    for d in range(D - 1, -1, -1):
        for c in q[d]:
            if c <= bins:
                N[d, c:] += N[d + 1, :bins + 1 - c]
    return N


def _draw(q: np.ndarray, N: np.ndarray, start: np.ndarray, rng: np.random.Generator
          ) -> np.ndarray:
    """Rows drawn uniformly from the completions counted in N, each from its own budget."""
    n, D = len(start), len(q)
    left = start.astype(np.int64).copy()
    Z = np.zeros((n, D), dtype=np.int64)
    width = N.shape[1]
    for d in range(D):
        rest = left[:, None] - q[d][None, :]
        w = np.where(rest >= 0, N[d + 1][np.clip(rest, 0, width - 1)], 0.0)
        total = w.sum(axis=1)
        pick = (w.cumsum(axis=1) < (rng.random(n) * total)[:, None]).sum(axis=1)
        pick = np.minimum(pick, q.shape[1] - 1)
        Z[:, d] = pick
        left -= q[d][pick]
    return Z


def _draw_allowed(allowed: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """n rows, each entry uniform among its row's allowed choices."""
    counts = allowed.sum(axis=1)
    ranks = (rng.random((n, len(allowed))) * counts).astype(np.int64)
    order = np.argsort(~allowed, axis=1, kind="stable")  # allowed choices first
    return order[np.arange(len(allowed)), ranks]


def suggest_z(trial: optuna.Trial, space: SearchSpace) -> list[int]:
    """z from a trial: one categorical parameter per decision, named after it."""
    return [trial.suggest_categorical(d.name, list(range(len(d.choices))))
            for d in space.decisions]


class FeasibleSampler(optuna.samplers.BaseSampler):
    """An Optuna sampler that proposes only z within the budgets, wrapping any base sampler.

    The base sampler (default TPE) proposes a z; if it does not fit, the fewest decisions are
    changed (those that save most), and redrawn uniformly among the completions that fit.
    Where latency is additive (a cost matrix) the result always fits: exact sums, NaN costs
    never chosen. Where it is not (``tree_z``, or an upper quantile with ``confidence``), the
    nearest feasible z among at most ``ROUNDS`` x ``BATCH`` candidates is taken, and
    ``misses`` counts proposals for which none was found. The objective must read z with
    ``suggest_z(trial, space)`` (one categorical parameter per decision). Works with any
    storage and any number of workers: it keeps no state between trials but the base's.

    Built from ``Budgets`` (one latency model and every budget), or, for a latency budget and
    optional memory budgets, with ``FeasibleSampler.for_budget``.

    Example (a fitted ``predictor``, e.g. ``hwnas.devices.device_predictor("pixel3", "fbnet")``,
    and its ``space``)::

        sampler = FeasibleSampler.for_budget(space, predictor, 5.0,
                                             optuna.samplers.TPESampler(seed=0))
        study = optuna.create_study(direction="maximize", sampler=sampler)
        study.optimize(lambda t: space.decode(suggest_z(t, space)).macs, n_trials=100)
    """

    def __init__(self, budgets: Budgets, base: optuna.samplers.BaseSampler | None = None, *,
                 seed: int | None = None):
        if not isinstance(budgets, Budgets):
            raise InputError(f"FeasibleSampler(budgets, base): budgets must be a Budgets, got "
                             f"{type(budgets).__name__}; for a latency budget use "
                             f"FeasibleSampler.for_budget(space, predictor, budget_ms, base)")
        space = budgets.model.space
        self.budgets = budgets
        self.feasibility = budgets.feasibility()
        self.base = base if base is not None else optuna.samplers.TPESampler(seed=seed)
        self._rng = np.random.default_rng(seed)
        self._space = {d.name: CategoricalDistribution(list(range(len(d.choices))))
                       for d in space.decisions}
        self._choices = {name: dist.choices for name, dist in self._space.items()}
        self._proposed: dict[int, dict[str, int]] = {}  # z of the trials running here
        self._drawn: list[list[int]] = []  # uniform feasible z not yet proposed (random base)

    @classmethod
    def for_budget(cls, space: SearchSpace, predictor: Predictor, budget_ms: float | None,
                   base: optuna.samplers.BaseSampler | None = None, *,
                   confidence: float | None = None, seed: int | None = None,
                   **memory: int | None) -> FeasibleSampler:
        """A sampler for a latency budget (None: no latency budget) and memory budgets, on
        the predictor's mean latency or, with ``confidence``, its upper quantile.

        Args:
            memory: the memory budgets as ``Budgets`` takes them: ``max_params``,
                ``max_param_bytes``, ``max_activation_bytes``.
        """
        known = ("max_params", "max_param_bytes", "max_activation_bytes")
        unknown = sorted(set(memory) - set(known))
        if unknown:
            raise InputError(f"FeasibleSampler.for_budget: unknown budget {unknown[0]!r}; "
                             f"expected one of {list(known)}")
        budgets = Budgets(LatencyModel(space, predictor, confidence), budget_ms,
                          max_params=memory.get("max_params"),
                          max_param_bytes=memory.get("max_param_bytes"),
                          max_activation_bytes=memory.get("max_activation_bytes"))
        return cls(budgets, base, seed=seed)

    @property
    def misses(self) -> int:
        """Proposals for which bounded rejection found no feasible z (non-additive only)."""
        return self.feasibility.misses

    def reseed_rng(self) -> None:
        self.base.reseed_rng()
        self._rng = np.random.default_rng()
        self._drawn = []

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial
                                    ) -> dict[str, BaseDistribution]:
        # z is proposed whole on a trial's first decision (sample_independent): Optuna's
        # relative-parameter path compares every distribution choice by choice per trial
        return {}

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        return {}

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        choices = self._choices.get(param_name)
        if choices is None or not isinstance(param_distribution, CategoricalDistribution) \
                or param_distribution.choices != choices:  # not a decision of z
            return self.base.sample_independent(study, trial, param_name, param_distribution)
        z = self._proposed.get(trial.number)
        if z is None:
            z = self._proposed[trial.number] = self._propose(study, trial)
        return z[param_name]

    def _propose(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, int]:
        """The base sampler's z for this trial, repaired to fit the budgets. A random base
        draws from the feasible set itself (uniform where latency is additive): the same
        distribution as random proposals kept only when they fit, without the misses."""
        if isinstance(self.base, optuna.samplers.RandomSampler) and self.feasibility.check is None:
            if not self._drawn:  # drawn in batches: one dynamic-programming pass for many
                self._drawn = self.feasibility.sample(RANDOM_BATCH, self._rng).tolist()[::-1]
            if self._drawn:
                self.feasibility.proposals += 1
                return dict(zip(self._space, self._drawn.pop()))
        base_space = self.base.infer_relative_search_space(study, trial)
        proposal = self.base.sample_relative(study, trial, base_space) if base_space else {}
        z = np.array([proposal[name] if name in proposal else
                      self.base.sample_independent(study, trial, name, dist)
                      for name, dist in self._space.items()], dtype=np.int64)
        z = self.feasibility.repair(z, self._rng)
        return dict(zip(self._space, z.tolist()))

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.base.before_trial(study, trial)

    def after_trial(self, study: optuna.Study, trial: FrozenTrial,
                    state: optuna.trial.TrialState, values: Sequence[float] | None) -> None:
        self._proposed.pop(trial.number, None)
        self.base.after_trial(study, trial, state, values)
