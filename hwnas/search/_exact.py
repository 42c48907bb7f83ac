"""The exact optimum under a latency budget when latency and objective are both additive:
a multiple-choice knapsack solved by dynamic programming over Pareto fronts."""

from __future__ import annotations

from typing import List, Tuple

import numpy as np


def pareto_knapsack(fixed_cost: float, cost: np.ndarray, fixed_value: float, value: np.ndarray,
                    budget: float) -> List[Tuple[float, float, Tuple[int, ...]]]:
    """Every z that is Pareto-optimal in (cost down, value up) among those with
    fixed_cost + sum_d cost[d, z_d] <= budget, as (cost, value, z), by value, best first.

    ``cost`` and ``value`` are (decisions, choices) with NaN where a decision has no such
    choice (or the choice is not allowed). Exact: states are pruned only when another state
    has no more cost and at least as much value, or when even the cheapest completion would
    exceed the budget.
    """
    cheapest_rest = np.concatenate([np.cumsum(np.nanmin(cost, axis=1)[::-1])[::-1], [0.0]])
    costs = np.array([fixed_cost])
    values = np.array([fixed_value])
    zs = np.zeros((1, 0), dtype=np.int64)
    for d in range(cost.shape[0]):
        choices = np.flatnonzero(~np.isnan(cost[d]) & ~np.isnan(value[d]))
        c = (costs[:, None] + cost[d, choices][None, :]).ravel()
        v = (values[:, None] + value[d, choices][None, :]).ravel()
        parent = np.repeat(np.arange(len(costs)), len(choices))
        pick = np.tile(choices, len(costs))
        ok = c + cheapest_rest[d + 1] <= budget + 1e-12
        c, v, parent, pick = c[ok], v[ok], parent[ok], pick[ok]
        order = np.lexsort((-v, c))  # by cost, then best value first
        c, v, parent, pick = c[order], v[order], parent[order], pick[order]
        keep = v > np.concatenate([[-np.inf], np.maximum.accumulate(v)[:-1]])
        costs, values = c[keep], v[keep]
        zs = np.hstack([zs[parent[keep]], pick[keep][:, None]])
    order = np.argsort(-values, kind="stable")
    return [(float(costs[i]), float(values[i]), tuple(int(x) for x in zs[i])) for i in order]
