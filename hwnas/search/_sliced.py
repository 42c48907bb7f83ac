"""Exact where it stays exact: spaces additive within slices (``ofa``: for one resolution,
latency is a sum over the running blocks; a block beyond its stage's depth costs nothing).

For one slice r, a stage's options are its depth d and its first d blocks' choices (for OFA's
stages 9^2 + 9^3 + 9^4 = 7,371 options), each with its summed cost and value: the optimum
under a budget is a multiple-choice knapsack over the stages (``knapsack``), and the best
over slices is the optimum of the space. ``SlicedFeasibility`` is the feasible sampler's
machinery for such spaces: every proposal is repaired into the budgets within its slice and
depths where it can be, else in the nearest slice and depths that fit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import numpy as np

from hwnas.errors import InputError
from hwnas.spaces._exact import (
    Point,
    layer_tensor,
    sliced_knapsack,
)

if TYPE_CHECKING:
    from hwnas.search._feasible import Budgets
    from hwnas.search._study import SearchProblem, SearchResult
    from hwnas.spaces import SearchSpace

#: candidates drawn per redraw, and rounds of bounded rejection for a check that is not
#: additive within slices (an upper quantile, a memory budget read from each z)
BATCH, ROUNDS = 64, 4


@dataclass(frozen=True)
class SlicedBudget:
    """fixed[r] + the sum over running decisions of C[r, d, z_d] <= limit."""

    name: str
    fixed: np.ndarray  # (slices,)
    C: np.ndarray  # (slices, decisions, choices)
    limit: float


def sliced_feasibility(budgets: Budgets) -> SlicedFeasibility:
    """The feasible-set machinery of ``budgets`` on a space additive within slices: latency,
    parameter and fleet budgets are sliced sums, peak activation a per-layer bound; the rest
    (a confidence, a fleet predictor that is not additive) is a ``check``."""
    model, space = budgets.model, budgets.model.space
    assert model.tensor is not None
    fixed, C = model.tensor
    allowed = ~np.isnan(C)
    slice_ok = ~np.isnan(fixed)
    additive: list[SlicedBudget] = []
    if budgets.latency_ms is not None and model.confidence is None:
        additive.append(SlicedBudget("latency_ms", fixed, C, budgets.latency_ms))
    exact = budgets.latency_ms is None or model.confidence is None
    for name, limit in budgets.limits.items():
        if limit is None:
            continue
        if name == "peak_activation_bytes":
            peak_fixed, A = space.peak_tensor()  # type: ignore[attr-defined]
            allowed &= A <= limit
            slice_ok &= peak_fixed <= limit
            if not slice_ok.any():
                raise InputError(f"max_activation_bytes = {limit}: the fixed layers alone "
                                 f"need {peak_fixed.min():.0f} bytes")
        else:
            additive.append(SlicedBudget(name, *layer_tensor(space, name), float(limit)))
    for b, m in budgets.devices:
        if m.tensor is not None:
            allowed &= ~np.isnan(m.tensor[1])
            slice_ok &= ~np.isnan(m.tensor[0])
            additive.append(SlicedBudget(b.name, *m.tensor, b.limit))
        else:
            exact = False
    return SlicedFeasibility(space, additive, allowed, slice_ok,
                             None if exact else budgets.fits)


class SlicedFeasibility:
    """The z that meet sliced budgets: exact checks, repair into the budgets with the least
    change (block choices first, then depths, then the slice), and feasible draws.

    Draws (``sample``) are random z repaired into the budgets: every one fits, but they are
    not uniform over the feasible set (the repaired ones lean to its edge).
    """

    def __init__(self, space: SearchSpace, additive: list[SlicedBudget], allowed: np.ndarray,
                 slice_ok: np.ndarray, check: Callable[[np.ndarray], np.ndarray] | None):
        self.space, self.additive, self.allowed, self.check = space, additive, allowed, check
        self.slice_ok = slice_ok
        self.D = len(space.decisions)
        self.misses = 0
        self.proposals = 0
        self.blocks = np.array([d for stage in space.stages for d in stage])  # type: ignore
        self.res = space.resolution_decision  # type: ignore[attr-defined]
        n = np.asarray(space.n_choices)
        exists = np.arange(allowed.shape[2])[None, None, :] < n[None, :, None]
        self.allowed = allowed & exists
        if additive:
            self._fixed = np.stack([b.fixed for b in additive])  # (budgets, slices)
            self._C = np.stack([np.where(self.allowed, b.C, np.inf) for b in additive])
            self._limit = np.array([b.limit for b in additive])
            self._scale = np.maximum(np.abs(self._limit), 1e-12)

    @property
    def empty(self) -> bool:
        z = self.least()
        return z is None or not self._additive_fits(z)

    def least(self) -> np.ndarray | None:
        """The z of least scaled cost over the budgets (the one most likely to fit)."""
        if not self.additive:
            return self.space.min_z_tensor(
                np.where(self.slice_ok, 0.0, np.inf), np.zeros(self.allowed.shape),
                self.allowed)[0]
        fixed = (self._fixed / self._scale[:, None]).sum(axis=0)
        fixed = np.where(self.slice_ok, fixed, np.inf)
        C = (self._C / self._scale[:, None, None, None]).sum(axis=0)
        z, cost = self.space.min_z_tensor(fixed, C, self.allowed)
        return z if math.isfinite(cost) else None

    def _totals(self, Z: np.ndarray) -> np.ndarray:
        """(budgets, N) of each sliced budget's value."""
        return np.stack([self.space.evaluate_tensor(
            Z, self._fixed[i], self._C[i], checked=True) for i in range(len(self.additive))])

    def _allowed_rows(self, Z: np.ndarray) -> np.ndarray:
        r = Z[:, self.res]
        active = self.space.active(Z)  # type: ignore[attr-defined]
        ok = self.allowed[r[:, None], np.arange(self.D)[None, :], Z] | ~active
        return ok.all(axis=1) & self.slice_ok[r]

    def _additive_fits(self, z: np.ndarray) -> bool:
        Z = z[None]
        if not self._allowed_rows(Z)[0]:
            return False
        return not self.additive or bool((self._totals(Z)[:, 0] <= self._limit).all())

    def fits(self, Z: np.ndarray) -> np.ndarray:
        """Exact check of every budget for checked int rows Z."""
        ok = self._allowed_rows(Z)
        if self.additive and ok.any():
            with np.errstate(invalid="ignore"):
                ok &= (self._totals(Z) <= self._limit[:, None]).all(axis=0)
        if self.check is not None and ok.any():
            ok[ok] = self.check(Z[ok])
        return ok

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """n random z repaired into the sliced budgets (canonical; not checked by ``check``)."""
        Z = self.space.check_z(rng.integers(0, np.asarray(self.space.n_choices),
                                            size=(n, self.D)))
        out = [self._fix(z, rng) for z in Z]
        out = [z for z in out if z is not None]
        return np.array(out, dtype=np.int64).reshape(len(out), self.D)

    def repair(self, z: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A feasible canonical z with the least change to ``z`` (see the class docstring)."""
        self.proposals += 1
        z = self.space.check_z(np.asarray(z, dtype=np.int64)[None])[0]
        if self.fits(z[None])[0]:
            return z
        fixed = self._fix(z, rng)
        if fixed is None:
            self.misses += 1
            return z
        if self.check is None or self.check(fixed[None])[0]:
            return fixed
        for _ in range(ROUNDS):
            cand = self.sample(BATCH, rng)
            cand = cand[self.fits(cand)] if len(cand) else cand
            if len(cand):
                return cand[np.argmin((cand != z).sum(axis=1))]
        self.misses += 1
        return fixed

    def _fix(self, z: np.ndarray, rng: np.random.Generator) -> np.ndarray | None:
        """z within the sliced budgets: its slice and depths kept where their cheapest blocks
        fit, else depths lowered (the stage whose last block saves most first), else the
        next lower slices; the blocks then changed fewest (largest savings first) and redrawn
        among the completions that fit."""
        if self._additive_fits(z):
            return z
        r0 = int(z[self.res])
        for r in [r0] + [r for r in range(r0 - 1, -1, -1)] + \
                [r for r in range(r0 + 1, len(self.slice_ok))]:
            if not self.slice_ok[r]:
                continue
            moved = z.copy()
            moved[self.res] = r
            fitted = self._fit_depths(moved)
            if fitted is not None:
                return self._fix_blocks(z, fitted, rng)
        least = self.least()
        return least if least is not None and self._additive_fits(least) else None

    def _cheapest(self, z: np.ndarray) -> np.ndarray:
        """z with every running block at its least scaled-cost allowed choice."""
        out = z.copy()
        r = int(z[self.res])
        active = self.space.active(z[None])[0]  # type: ignore[attr-defined]
        for d in self.blocks[active[self.blocks]]:
            cost = (self._C[:, r, d, :] / self._scale[:, None]).sum(axis=0) if self.additive \
                else np.where(self.allowed[r, d], 0.0, np.inf)
            out[d] = int(np.argmin(cost))
        return out

    def _fit_depths(self, z: np.ndarray) -> np.ndarray | None:
        """z (slice fixed) with depths lowered until its cheapest blocks fit; None if even the
        least depths do not."""
        space = self.space
        z = z.copy()
        while True:
            cheapest = self._cheapest(z)
            if self._additive_fits(cheapest):
                return z
            lower = [(s, dd) for s, dd in enumerate(space.depth_decisions)  # type: ignore
                     if z[dd] > 0]
            if not lower:
                return None
            s, dd = max(lower, key=lambda p: self._last_block_cost(cheapest, p[0]))
            z[dd] -= 1
            z = space.check_z(z[None])[0]

    def _last_block_cost(self, z: np.ndarray, stage: int) -> float:
        depth = self.space.depths[z[self.space.depth_decisions[stage]]]  # type: ignore
        d = self.space.stages[stage][depth - 1]  # type: ignore[attr-defined]
        r = int(z[self.res])
        if not self.additive:
            return 0.0
        return float((self._C[:, r, d, z[d]] / self._scale).sum())

    def _fix_blocks(self, wanted: np.ndarray, z: np.ndarray, rng: np.random.Generator
                    ) -> np.ndarray:
        """Within z's slice and depths (whose cheapest blocks fit): keep ``wanted``'s block
        choices where allowed, move the blocks that save most to their cheapest until it
        fits, then redraw the moved ones among the completions that fit."""
        cheapest = self._cheapest(z)
        r = int(z[self.res])
        active = self.space.active(z[None])[0]  # type: ignore[attr-defined]
        blocks = self.blocks[active[self.blocks]]
        out = cheapest.copy()
        keep = [d for d in blocks if self.allowed[r, d, wanted[d]]]
        out[keep] = wanted[keep]
        if self._additive_fits(out):
            return out
        now = (self._C[:, r, blocks, out[blocks]] / self._scale[:, None]).sum(axis=0)
        least = (self._C[:, r, blocks, cheapest[blocks]] / self._scale[:, None]).sum(axis=0)
        order = blocks[np.argsort(-(now - least), kind="stable")]
        for k in range(1, len(order) + 1):
            out[order[:k]] = cheapest[order[:k]]
            if self._additive_fits(out):
                return self._redraw(out, order[:k], rng)
        return cheapest

    def _redraw(self, z: np.ndarray, changed: np.ndarray, rng: np.random.Generator
                ) -> np.ndarray:
        """z with the ``changed`` blocks redrawn uniformly among their allowed choices, the
        first of a batch of draws that fits (else z)."""
        r = int(z[self.res])
        out = np.repeat(z[None], BATCH, axis=0)
        for d in changed:
            out[:, d] = rng.choice(np.flatnonzero(self.allowed[r, d]), size=BATCH)
        ok = self._allowed_rows(out)
        if self.additive:
            ok &= (self._totals(out) <= self._limit[:, None]).all(axis=0)
        return out[int(np.argmax(ok))] if ok.any() else z


# --- the exact optimum ----------------------------------------------------------------------

def sliced_top(feasibility: SlicedFeasibility, latency: tuple[np.ndarray, np.ndarray],
               value: tuple[np.ndarray, np.ndarray], budget: float, top: int) -> list[Point]:
    """The ``top`` best z by value with latency <= budget (and within every budget of
    ``feasibility``), best first: each slice's best by its knapsack front, the next of a
    slice by an integer program that excludes the ones found (``_SliceProgram``)."""
    import heapq
    space = feasibility.space
    front = sliced_knapsack(space, latency, value, budget, allowed=feasibility.allowed,
                            slice_ok=feasibility.slice_ok)
    best: dict[int, Point] = {}
    for point in front:  # best value first: the first of a slice is its best
        best.setdefault(point[2][space.resolution_decision], point)  # type: ignore[attr-defined]
    heap = [(-p[1], p[0], r, p) for r, p in best.items()]
    heapq.heapify(heap)
    programs: dict[int, _SliceProgram] = {}
    found: list[Point] = []
    while heap and len(found) < top:
        _, _, r, point = heapq.heappop(heap)
        found.append(point)
        if len(found) == top:
            break
        program = programs.setdefault(r, _SliceProgram(feasibility, value, r))
        program.exclude(point[2])
        following = program.next()
        if following is not None:
            heapq.heappush(heap, (-following[1], following[0], r, following))
    return found


# --- the study's start and the exact sampler (hwnas.search._study) ----------------------------

def _problem_front(problem: SearchProblem, keep: int) -> list[Point]:
    """The exact points of a problem with a built-in objective, within its latency budget
    (and the activation and sliced fleet budgets)."""
    feasibility = problem.budgets.feasibility()
    assert isinstance(feasibility, SlicedFeasibility) and problem.model.tensor is not None
    objective = problem.goal.name
    if not isinstance(problem.settings.objective, str):
        return []
    limit = math.inf if problem.budgets.latency_ms is None else problem.budgets.latency_ms
    value = layer_tensor(problem.space, objective)
    if any(b.name != "latency_ms" for b in feasibility.additive):
        # a parameter or fleet budget too: an integer program per slice
        return sliced_milp(feasibility, value, max(keep, problem.settings.top))
    if keep > 1:
        return sliced_top(feasibility, problem.model.tensor, value, limit, keep)
    return sliced_knapsack(problem.space, problem.model.tensor, value, limit,
                           allowed=feasibility.allowed, slice_ok=feasibility.slice_ok)


def sliced_start_points(problem: SearchProblem) -> list[tuple[int, ...]]:
    """Where the study starts on a space additive within slices: the least-latency z and,
    with a built-in objective (and ``enqueue_exact``), the exact front's best points."""
    from hwnas.search._study import _penalised_order
    least = problem.model.least()
    points = [] if least is None else [tuple(int(c) for c in least[0])]
    settings = problem.settings
    if not settings.enqueue_exact or set(problem.budgets.memory) - {"peak_activation_bytes"}:
        return points
    found = _problem_front(problem, 1)
    if problem.mode == "pareto":
        n = max(settings.top, settings.n_trials // 10)
        return points + [z for _, _, z in found[::max(1, len(found) // n)][:n]]
    return points + [found[i][2] for i in _penalised_order(problem, found)[:settings.top]]


def sliced_exact_result(problem: SearchProblem) -> SearchResult:
    """The exact sampler on a space additive within slices: the ``top`` best distinct z by
    the built-in objective within every budget, by a knapsack per slice."""
    from hwnas.search._fleet import fleet_note
    from hwnas.search._study import BudgetError, SearchResult, _candidate
    settings, space = problem.settings, problem.space
    if problem.model.tensor is None:
        raise InputError("the exact sampler on this space needs a predictor additive per "
                         "resolution (additive, transfer, a layer predictor), not tree_z or "
                         "measured")
    if not isinstance(settings.objective, str):
        raise InputError("the exact sampler needs a built-in objective (macs, params)")
    if problem.budgets.devices and any(m.tensor is None for _, m in problem.budgets.devices):
        raise InputError("the exact sampler needs every fleet predictor additive per "
                         "resolution (not tree_z or measured)")
    found = _problem_front(problem, settings.top)[:settings.top]
    if not found:
        least = problem.model.least()
        if least is not None and least[1] > problem.budget_ms:
            raise BudgetError(problem.budget_ms, least[1])
        raise InputError(f"no architecture meets every budget: "
                         f"{', '.join(problem.budgets.names)}")
    Z = np.array([z for _, _, z in found])
    latency = problem.model.mean(Z)
    budgets = problem.budgets if problem.budgets.devices else None
    best = [_candidate(space, z, float(lat), v, None, budgets)
            for (_, v, z), lat in zip(found, latency)]
    notes = (fleet_note(settings.fleet),) if settings.fleet else ()
    return SearchResult(space.name, problem.budget_ms, problem.goal.name, problem.mode,
                        "exact", 0, len(found), problem.min_latency_ms, best, None, notes)


def sliced_milp(feasibility: SlicedFeasibility, value: tuple[np.ndarray, np.ndarray],
                top: int) -> list[Point]:
    """The ``top`` best z by value within every sliced budget, best first, as (cost of the
    first budget, value, z): per slice a mixed-integer program (scipy's milp: a binary per
    block and choice and per stage and depth; a block runs iff its stage's depth reaches it),
    the slices' bests merged, the next best of a slice found by a cut excluding the last."""
    import heapq
    programs = {r: _SliceProgram(feasibility, value, r)
                for r in range(len(feasibility.slice_ok)) if feasibility.slice_ok[r]}
    heap: list[tuple[float, int, Point]] = []
    for r, program in programs.items():
        point = program.next()
        if point is not None:
            heapq.heappush(heap, (-point[1], r, point))
    found: list[Point] = []
    while heap and len(found) < top:
        _, r, point = heapq.heappop(heap)
        if feasibility.fits(np.array([point[2]]))[0]:  # not one within a tolerance only
            found.append(point)
        following = programs[r].next()
        if following is not None:
            heapq.heappush(heap, (-following[1], r, following))
    return found


class _SliceProgram:
    """The integer program of one slice, with the cuts of the points it has returned."""

    def __init__(self, feasibility: SlicedFeasibility, value: tuple[np.ndarray, np.ndarray],
                 r: int):
        space = feasibility.space
        self.space, self.r, self.feasibility = space, r, feasibility
        self.blocks = list(feasibility.blocks)
        stages, depths = space.stages, space.depths  # type: ignore[attr-defined]
        K = feasibility.allowed.shape[2]
        self.K = K
        nx = len(self.blocks) * K
        self.depth_vars = [(s, i) for s in range(len(stages)) for i, d in enumerate(depths)
                           if d <= len(stages[s])]
        n = nx + len(self.depth_vars)
        rows, low, high = [], [], []
        for s in range(len(stages)):  # one depth per stage
            row = np.zeros(n)
            for j, (ss, _) in enumerate(self.depth_vars):
                row[nx + j] = ss == s
            rows.append(row)
            low.append(1.0)
            high.append(1.0)
        for bi, d in enumerate(self.blocks):  # a block runs iff its stage's depth reaches it
            s = next(i for i, blocks in enumerate(stages) if d in blocks)
            position = stages[s].index(d)
            row = np.zeros(n)
            row[bi * K:(bi + 1) * K] = 1.0
            for j, (ss, i) in enumerate(self.depth_vars):
                if ss == s and depths[i] > position:
                    row[nx + j] = -1.0
            rows.append(row)
            low.append(0.0)
            high.append(0.0)
        for b in feasibility.additive:
            row = np.zeros(n)
            row[:nx] = np.nan_to_num(b.C[r][self.blocks], nan=0.0, posinf=0.0).ravel()
            rows.append(row)
            low.append(-np.inf)
            high.append(b.limit - b.fixed[r])
        self.rows, self.low, self.high = rows, low, high
        upper = np.ones(n)
        upper[:nx] = feasibility.allowed[r][self.blocks].ravel()
        self.upper = upper
        V = np.nan_to_num(value[1][r][self.blocks], nan=0.0).ravel()
        self.objective = -np.concatenate([V, np.zeros(len(self.depth_vars))])
        self.fixed_value = float(value[0][r])

    def exclude(self, z: Sequence[int]) -> None:
        """A cut: the program's later solutions differ from z in a running block's choice
        or a depth."""
        nx = len(self.blocks) * self.K
        cut = np.zeros(len(self.objective))
        active = self.space.active(np.array([z]))[0]  # type: ignore[attr-defined]
        for bi, d in enumerate(self.blocks):
            if active[d]:
                cut[bi * self.K + z[d]] = 1.0
        for j, (s, i) in enumerate(self.depth_vars):
            cut[nx + j] = z[self.space.depth_decisions[s]] == i  # type: ignore[attr-defined]
        self.rows.append(cut)
        self.low.append(-np.inf)
        self.high.append(cut.sum() - 1)

    def next(self) -> Point | None:
        from scipy.optimize import Bounds, LinearConstraint, milp
        result = milp(self.objective, integrality=np.ones(len(self.objective)),
                      bounds=Bounds(0, self.upper),
                      constraints=LinearConstraint(np.vstack(self.rows), self.low, self.high))
        if result.x is None:
            return None
        x = np.round(result.x).astype(int)
        nx = len(self.blocks) * self.K
        z = np.zeros(len(self.space.decisions), dtype=np.int64)
        z[self.space.resolution_decision] = self.r  # type: ignore[attr-defined]
        for j, (s, i) in enumerate(self.depth_vars):
            if x[nx + j]:
                z[self.space.depth_decisions[s]] = i  # type: ignore[attr-defined]
        chosen = x[:nx].reshape(len(self.blocks), self.K)
        for bi, d in enumerate(self.blocks):
            if chosen[bi].any():
                z[d] = int(np.argmax(chosen[bi]))
        z = self.space.check_z(z[None])[0]
        self.exclude(z)
        cost = float(self.feasibility._totals(z[None])[0, 0]) if self.feasibility.additive \
            else 0.0
        return cost, self.fixed_value - float(result.fun), tuple(int(c) for c in z)
