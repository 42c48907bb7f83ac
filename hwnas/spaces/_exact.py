"""The exact optimum under a latency budget when latency and objective are both additive:
a multiple-choice knapsack solved by dynamic programming over (cost, value) states; on a
space additive within slices (``ofa``), one knapsack over its stages per slice."""

from __future__ import annotations

import bisect
import heapq
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from hwnas.spaces import SearchSpace

#: (cost, value, z) of one architecture
Point = tuple[float, float, tuple[int, ...]]
#: the most architectures an exact solver enumerates where a budget is not additive
MAX_ENUMERATED = 1_000_000


def every_z(n_choices: Sequence[int]) -> np.ndarray:
    """Every z of a space with these numbers of choices, one row each, z[-1] fastest.

    Example:
        >>> every_z([2, 2]).tolist()
        [[0, 0], [0, 1], [1, 0], [1, 1]]
    """
    return np.stack(np.meshgrid(*map(np.arange, n_choices), indexing="ij"),
                    axis=-1).reshape(-1, len(n_choices))


def knapsack(*, fixed_cost: float, cost: np.ndarray, fixed_value: float, value: np.ndarray,
             budget: float, keep: int = 1,
             extra: Sequence[tuple[float, np.ndarray, float]] = ()) -> list[Point]:
    """z with fixed_cost + sum_d cost[d, z_d] <= budget, as (cost, value, z), best value first
    (then least cost).

    ``cost`` and ``value`` are (decisions, choices), NaN where a decision has no such choice
    or the choice is not allowed (never chosen). With ``keep`` = 1 the result is the Pareto
    front in (cost down, value up); with ``keep`` = k its first k points are the k best z by
    value: a partial state is pruned only when k others have no more cost and at least as
    much value (each then completes to a z at least as good), or when even the cheapest
    completion would exceed the budget. ``extra`` budgets, each (fixed, cost matrix, limit),
    are sums over decisions too (parameter bytes): a z must meet every one, and a state is
    pruned only when k others have no more of every cost (so the front is exact in all).

    Example:
        >>> knapsack(fixed_cost=0.0, cost=np.array([[1.0, 2.0]]), fixed_value=0.0,
        ...          value=np.array([[1.0, 3.0]]), budget=1.5)
        [(1.0, 1.0, (0,))]
        >>> knapsack(fixed_cost=0.0, cost=np.array([[1.0, 2.0]]), fixed_value=0.0,
        ...          value=np.array([[1.0, 3.0]]), budget=5.0,
        ...          extra=[(0.0, np.array([[5.0, 1.0]]), 2.0)])
        [(2.0, 3.0, (1,))]
    """
    allowed = ~np.isnan(cost) & ~np.isnan(value)
    extra = _merged(extra)
    for _, E, _ in extra:
        allowed &= ~np.isnan(E)
    limits = np.array([budget, *(limit for _, _, limit in extra)])
    stacked = np.stack([cost, *(E for _, E, _ in extra)])  # (budgets, decisions, choices)
    cheapest = np.where(allowed[None], stacked, np.inf).min(axis=2)  # (budgets, decisions)
    cheapest_rest = np.hstack([np.cumsum(cheapest[:, ::-1], axis=1)[:, ::-1],
                               np.zeros((len(limits), 1))])
    costs = np.array([[fixed_cost, *(f for f, _, _ in extra)]])  # (states, budgets)
    values = np.array([fixed_value])
    zs = np.zeros((1, 0), dtype=np.int64)
    bound = _Bound(stacked, value, allowed, limits, costs[0], fixed_value, keep) if extra \
        else None
    for d in range(cost.shape[0]):
        choices = np.flatnonzero(allowed[d])
        c = (costs[:, None, :] + stacked[:, d, choices].T[None]).reshape(-1, len(limits))
        v = (values[:, None] + value[d, choices][None, :]).ravel()
        parent = np.repeat(np.arange(len(costs)), len(choices))
        pick = np.tile(choices, len(costs))
        ok = (c + cheapest_rest[:, d + 1] <= limits + 1e-12).all(axis=1)
        if bound is not None:  # what cannot reach the k best known: pruned (branch and bound)
            ok &= bound.reachable(d + 1, c, v)
        c, v, parent, pick = c[ok], v[ok], parent[ok], pick[ok]
        order = np.lexsort((-v, c[:, 0]))  # by cost, then best value first
        c, v, parent, pick = c[order], v[order], parent[order], pick[order]
        kept = _undominated(v, keep) if not extra else _undominated_in_all(c[:, 1:], v, keep)
        costs, values = c[kept], v[kept]
        zs = np.hstack([zs[parent[kept]], pick[kept][:, None]])
    order = np.lexsort((costs[:, 0], -values))
    return [(float(costs[i, 0]), float(values[i]), tuple(int(x) for x in zs[i]))
            for i in order]


#: the shares of the first cost's room in the sums whose fronts give known z (``_Bound``)
SHARES = (0.1, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95)


def _merged(extra: Sequence[tuple[float, np.ndarray, float]]
            ) -> list[tuple[float, np.ndarray, float]]:
    """The extra budgets, those proportional to an earlier one (parameters and their bytes)
    folded into it with the tighter limit: one cost fewer to be exact in."""
    merged: list[tuple[float, np.ndarray, float]] = []
    for fixed, E, limit in extra:
        for i, (f0, E0, limit0) in enumerate(merged):
            scale = float(np.nanmax(E) / np.nanmax(E0)) if np.nanmax(E0) > 0 else 0.0
            if scale > 0 and np.isclose(fixed, scale * f0) and np.allclose(
                    E, scale * E0, equal_nan=True):
                merged[i] = (f0, E0, min(limit0, limit / scale))
                break
        else:
            merged.append((fixed, E, limit))
    return merged


class _Bound:
    """Branch and bound for budgets in several costs: ``floor`` is the k-th best value of z
    known to meet every budget (one-cost fronts of weighted sums of the costs, each over a
    share of its room: a z within 1 there is within every limit), and a state that cannot
    reach it within any one cost's budget (the best value the remaining decisions reach
    within what is left of it, from one-cost fronts built from the back) is pruned. Every
    state pruned would complete only to z worse than k known ones: the result stays exact."""

    def __init__(self, stacked: np.ndarray, value: np.ndarray, allowed: np.ndarray,
                 limits: np.ndarray, fixed: np.ndarray, fixed_value: float, keep: int):
        self.limits = limits
        self.floor = -np.inf
        room = np.maximum(limits - fixed, 1e-300)
        for share in SHARES:  # cost_b / (room_b share_b) summed within 1: each within room_b
            weights = np.array([share, *[(1 - share) / (len(limits) - 1)] * (len(limits) - 1)])
            scaled = np.tensordot(1 / (room * weights), stacked, axes=1)
            known = knapsack(fixed_cost=0.0, cost=np.where(allowed, scaled, np.nan),
                             fixed_value=fixed_value, value=value, budget=1.0, keep=keep)
            if len(known) >= keep:
                self.floor = max(self.floor, known[keep - 1][1])
        self.fronts = [[_suffix_front(stacked[b], value, allowed, d, limits[b] - fixed[b])
                        for d in range(stacked.shape[1] + 1)] for b in range(len(limits))]

    def reachable(self, d: int, costs: np.ndarray, values: np.ndarray) -> np.ndarray:
        """Which states (their costs so far, values) can still reach the floor."""
        ok = np.ones(len(values), dtype=bool)
        for b, fronts in enumerate(self.fronts):
            spent, best = fronts[d]
            if not len(spent):  # nothing from here on fits what this cost's limit leaves
                return np.zeros(len(values), dtype=bool)
            i = np.searchsorted(spent, self.limits[b] - costs[:, b] + 1e-12, side="right") - 1
            ok &= (i >= 0) & (values + np.where(i >= 0, best[np.maximum(i, 0)], -np.inf)
                              >= self.floor - 1e-9 * max(1.0, abs(self.floor)))
        return ok


def _staircases(cost: list[float], v: list[float], keep: int) -> np.ndarray:
    """``_undominated_in_all`` for one extra cost in n log n: ``keep`` layers, each a
    staircase (extra cost ascending, value rising) of the states kept in it; a state goes to
    the first layer none of whose states dominates it, and is pruned where every layer has
    one: a state of layer m was dominated by one of each layer before it, so one that a state
    of layer ``keep`` dominates has at least ``keep`` dominators."""
    layers: list[tuple[list[float], list[float]]] = [([], []) for _ in range(keep)]
    mask = np.zeros(len(v), dtype=bool)
    for i, (c, x) in enumerate(zip(cost, v)):
        for costs, values in layers:
            j = bisect.bisect_right(costs, c)
            if j and values[j - 1] >= x:  # the best value within this cost beats it
                continue
            end = j
            while end < len(costs) and values[end] <= x:  # no longer on the staircase
                end += 1
            costs[j:end], values[j:end] = [c], [x]
            mask[i] = True
            break
    return mask


def _suffix_front(cost: np.ndarray, value: np.ndarray, allowed: np.ndarray, d: int,
                  budget: float) -> tuple[np.ndarray, np.ndarray]:
    """The decisions from ``d`` on: their costs (ascending) on the one-cost front within
    ``budget``, and the best value within each."""
    if d == cost.shape[0]:
        return np.zeros(1), np.zeros(1)
    found = knapsack(fixed_cost=0.0, cost=np.where(allowed[d:], cost[d:], np.nan),
                     fixed_value=0.0, value=np.where(allowed[d:], value[d:], np.nan),
                     budget=max(budget, 0.0))
    spent = np.array(sorted(c for c, _, _ in found))
    best = np.maximum.accumulate(np.array([v for _, v, _ in sorted(found)]))
    return spent, best


def _undominated_in_all(extra: np.ndarray, v: np.ndarray, keep: int,
                        chunk: int = 1024) -> np.ndarray:
    """Mask of the states (sorted by the first cost, best value first among equal ones) that
    fewer than ``keep`` earlier states dominate: no more of every ``extra`` cost and at least
    as much value (with one extra cost, ``_staircases``; a state kept that ``keep`` others
    dominate costs time, never exactness)."""
    if extra.shape[1] == 1:
        return _staircases(extra[:, 0].tolist(), v.tolist(), keep)
    n = len(v)
    mask = np.ones(n, dtype=bool)
    for start in range(0, n, chunk):
        rows = np.arange(start, min(start + chunk, n))
        earlier = np.arange(rows[-1] + 1)
        beats = (earlier[None, :] < rows[:, None]) & (v[None, :rows[-1] + 1] >= v[rows, None])
        for k in range(extra.shape[1]):
            beats &= extra[None, :rows[-1] + 1, k] <= extra[rows, None, k]
        mask[rows] = beats.sum(axis=1) < keep
    return mask


def pareto_mask(v: np.ndarray) -> np.ndarray:
    """Mask of the Pareto front of points sorted by cost (best value first among equal
    costs): those whose value beats every earlier one.

    Example:
        >>> pareto_mask(np.array([1.0, 0.5, 2.0, 2.0]))
        array([ True, False,  True, False])
    """
    return v > np.concatenate([[-np.inf], np.maximum.accumulate(v)[:-1]])


def _undominated(v: np.ndarray, keep: int) -> np.ndarray:
    """Mask of the states (sorted by cost) that fewer than ``keep`` earlier states beat or
    equal in value."""
    if keep == 1:
        return pareto_mask(v)
    mask = np.zeros(len(v), dtype=bool)
    best: list[float] = []  # a min-heap of the keep largest values so far
    for i, x in enumerate(v.tolist()):
        if len(best) < keep or x > best[0]:
            mask[i] = True
            if len(best) < keep:
                heapq.heappush(best, x)
            else:
                heapq.heapreplace(best, x)
    return mask


# --- spaces additive within slices (ofa: per resolution, over the running blocks) ---------

def layer_tensor(space: SearchSpace, attribute: str) -> tuple[np.ndarray, np.ndarray]:
    """(fixed, C) of a per-layer quantity (``macs``, ``params``, ``param_bytes``)."""
    return space.cost_tensor(
        lambda layers: [float(getattr(ly, attribute)) for ly in layers])


def stage_options(space: SearchSpace, r: int, stage: int, cost: np.ndarray, value: np.ndarray,
                  allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A stage's options in slice r on its Pareto front: (cost, value, depth index, block
    choices (options x the stage's blocks, 0 where a block does not run)) of each depth and
    choices of its running blocks, without those another beats (no more cost, at least as
    much value: the other completes to as good a z)."""
    blocks = space.stages[stage]  # type: ignore[attr-defined]
    costs, values, depths, grids = [], [], [], []
    for i, depth in enumerate(space.depths):  # type: ignore[attr-defined]
        if depth > len(blocks):
            continue
        choices = [np.flatnonzero(allowed[r, d]) for d in blocks[:depth]]
        grid = np.stack(np.meshgrid(*choices, indexing="ij"), axis=-1).reshape(-1, depth)
        run = np.array(blocks[:depth])
        costs.append(cost[r, run[None, :], grid].sum(axis=1))
        values.append(value[r, run[None, :], grid].sum(axis=1))
        depths.append(np.full(len(grid), i))
        grids.append(np.pad(grid, ((0, 0), (0, len(blocks) - depth))))
    c, v = np.concatenate(costs), np.concatenate(values)
    order = np.lexsort((-v, c))
    kept = order[pareto_mask(v[order])]
    return c[kept], v[kept], np.concatenate(depths)[kept], np.concatenate(grids)[kept]


def sliced_knapsack(space: SearchSpace, cost: tuple[np.ndarray, np.ndarray],
                    value: tuple[np.ndarray, np.ndarray], budget: float, *,
                    allowed: np.ndarray | None = None, slice_ok: np.ndarray | None = None
                    ) -> list[Point]:
    """The Pareto front in (cost down, value up) of the z with cost <= budget, as (cost,
    value, z), best value first: per slice a knapsack over its stages' options
    (``stage_options``), merged over slices. ``allowed`` (slices x decisions x choices) and
    ``slice_ok`` (slices) exclude choices and slices; NaN costs are never taken."""
    fixed_c, C = cost
    fixed_v, V = value
    ok = usable(space, C, V, allowed)
    found: list[Point] = []
    for r in range(len(fixed_c)):
        if (slice_ok is None or slice_ok[r]) and not np.isnan(fixed_c[r]):
            found += _slice_front(space, r, fixed_c, C, fixed_v, V, ok, budget)
    front, best = [], -math.inf
    for point in sorted(found, key=lambda p: (p[0], -p[1])):
        if point[1] > best:
            front.append(point)
            best = point[1]
    return sorted(front, key=lambda p: (-p[1], p[0]))


def usable(space: SearchSpace, C: np.ndarray, V: np.ndarray,
           allowed: np.ndarray | None) -> np.ndarray:
    """(slices, decisions, choices) mask of the choices that exist, are allowed and priced."""
    ok = ~np.isnan(C) & ~np.isnan(V)
    if allowed is not None:
        ok &= allowed
    n = np.asarray(space.n_choices)
    return ok & (np.arange(C.shape[2])[None, None, :] < n[None, :, None])


def _slice_front(space: SearchSpace, r: int, fixed_c: np.ndarray, C: np.ndarray,
                 fixed_v: np.ndarray, V: np.ndarray, ok: np.ndarray, budget: float
                 ) -> list[Point]:
    """The knapsack over the stages of slice r: its front within the budget, as points."""
    stages = space.stages  # type: ignore[attr-defined]
    per_stage = [stage_options(space, r, s, C, V, ok) for s in range(len(stages))]
    width = max(len(o[0]) for o in per_stage)
    cost = np.full((len(stages), width), np.nan)
    value = np.full((len(stages), width), np.nan)
    for s, (c, v, _, _) in enumerate(per_stage):
        cost[s, :len(c)], value[s, :len(v)] = c, v
    points = knapsack(fixed_cost=float(fixed_c[r]), cost=cost, fixed_value=float(fixed_v[r]),
                      value=value, budget=budget)
    if not points:
        return []
    picks = np.array([p[2] for p in points])  # (points, stages)
    Z = np.zeros((len(points), len(space.decisions)), dtype=np.int64)
    Z[:, space.resolution_decision] = r  # type: ignore[attr-defined]
    for s, (_, _, depth, grid) in enumerate(per_stage):
        Z[:, space.depth_decisions[s]] = depth[picks[:, s]]  # type: ignore[attr-defined]
        Z[:, list(stages[s])] = grid[picks[:, s]]
    return [(c, v, tuple(z)) for (c, v, _), z in zip(points, Z.tolist())]
