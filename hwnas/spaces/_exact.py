"""The exact optimum under a latency budget when latency and objective are both additive:
a multiple-choice knapsack solved by dynamic programming over (cost, value) states."""

from __future__ import annotations

import heapq
from collections.abc import Sequence

import numpy as np

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
