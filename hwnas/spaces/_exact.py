"""The exact optimum under a latency budget when latency and objective are both additive:
a multiple-choice knapsack solved by dynamic programming over (cost, value) states; on a
space additive within slices (``ofa``), one knapsack over its stages per slice."""

from __future__ import annotations

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
             budget: float, keep: int = 1) -> list[Point]:
    """z with fixed_cost + sum_d cost[d, z_d] <= budget, as (cost, value, z), best value first
    (then least cost).

    ``cost`` and ``value`` are (decisions, choices), NaN where a decision has no such choice
    or the choice is not allowed (never chosen). With ``keep`` = 1 the result is the Pareto
    front in (cost down, value up); with ``keep`` = k its first k points are the k best z by
    value: a partial state is pruned only when k others have no more cost and at least as
    much value (each then completes to a z at least as good), or when even the cheapest
    completion would exceed the budget.

    Example:
        >>> knapsack(fixed_cost=0.0, cost=np.array([[1.0, 2.0]]), fixed_value=0.0,
        ...          value=np.array([[1.0, 3.0]]), budget=1.5)
        [(1.0, 1.0, (0,))]
    """
    allowed = ~np.isnan(cost) & ~np.isnan(value)
    cheapest = np.where(allowed, cost, np.inf).min(axis=1)
    cheapest_rest = np.concatenate([np.cumsum(cheapest[::-1])[::-1], [0.0]])
    costs = np.array([fixed_cost])
    values = np.array([fixed_value])
    zs = np.zeros((1, 0), dtype=np.int64)
    for d in range(cost.shape[0]):
        choices = np.flatnonzero(allowed[d])
        c = (costs[:, None] + cost[d, choices][None, :]).ravel()
        v = (values[:, None] + value[d, choices][None, :]).ravel()
        parent = np.repeat(np.arange(len(costs)), len(choices))
        pick = np.tile(choices, len(costs))
        ok = c + cheapest_rest[d + 1] <= budget + 1e-12
        c, v, parent, pick = c[ok], v[ok], parent[ok], pick[ok]
        order = np.lexsort((-v, c))  # by cost, then best value first
        c, v, parent, pick = c[order], v[order], parent[order], pick[order]
        kept = _undominated(v, keep)
        costs, values = c[kept], v[kept]
        zs = np.hstack([zs[parent[kept]], pick[kept][:, None]])
    order = np.lexsort((costs, -values))
    return [(float(costs[i]), float(values[i]), tuple(int(x) for x in zs[i])) for i in order]


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
