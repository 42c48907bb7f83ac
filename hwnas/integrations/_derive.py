"""derive_z: the most likely architecture within the budgets, exactly.

A differentiable or sampling-based search ends with scores per decision and choice
(architecture logits or probabilities). Taking argmax per decision ignores the budget; here
the z with the highest total log-probability whose predicted latency is within the budget is
found by the multiple-choice knapsack that ``hwnas.search``'s exact sampler solves.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from hwnas._checks import count, positive
from hwnas.errors import InputError
from hwnas.integrations._penalty import _is_torch, to_numpy
from hwnas.predictors import Predictor
from hwnas.search import BudgetError, Budgets, LatencyModel
from hwnas.spaces import SearchSpace
from hwnas.spaces._exact import knapsack


@dataclass(frozen=True)
class Derived:
    """One derived architecture: its z, predicted latency and total log-probability."""

    z: tuple[int, ...]
    predicted_latency_ms: float
    log_prob: float


def log_probs(space: SearchSpace, scores: Any) -> np.ndarray:
    """(decisions, choices) log-probabilities of ``scores``, NaN beyond a decision's choices
    and where a probability is 0 (never chosen).

    ``scores`` is an array (decisions x choices; columns beyond a decision's choices are
    ignored; numpy, a torch tensor such as an ``nn.Parameter``, or an nnabla Variable) or a
    sequence of one 1-D array per decision (as NNabla NAS keeps its alphas; a torch
    ``ParameterList``). A
    row of non-negative numbers that sums to 1 is read as probabilities; any other row as
    logits (log-softmax over the decision's choices, which ranks z as the summed logits do).

    Example:
        >>> log_probs(space, np.zeros((len(space.decisions), 7)))  # doctest: +SKIP
    """
    n = space.n_choices
    out = np.full((len(n), max(n)), np.nan)
    for d, row in enumerate(_score_rows(space, scores)):
        if not np.all(np.isfinite(row)):
            raise InputError(f"scores of decision {space.decisions[d].name!r} must be finite, "
                             f"got {row}")
        out[d, :n[d]] = _log_prob_row(row)
    return out


def _score_rows(space: SearchSpace, scores: Any) -> list[np.ndarray]:
    """One row of numbers per decision, as many as its choices, from an array or a sequence
    of rows."""
    n = space.n_choices
    D, K = len(n), max(n)
    if _is_torch(scores) and not hasattr(scores, "shape"):  # a ParameterList: rows
        scores = list(scores)
    scores = to_numpy(scores)
    if isinstance(scores, np.ndarray) or not isinstance(scores, Sequence):
        try:
            array = np.asarray(scores, dtype=float)
        except (TypeError, ValueError):
            raise InputError(f"scores must be numbers, decisions x choices, got "
                             f"{type(scores).__name__}") from None
        if array.ndim != 2 or array.shape[0] != D or array.shape[1] < K:
            raise InputError(f"scores must have shape ({D}, {K}) (decisions x choices) for "
                             f"space {space.name!r}, got {array.shape}")
        return [array[d, :n[d]] for d in range(D)]
    if len(scores) != D:
        raise InputError(f"scores must have one row per decision ({D} for space "
                         f"{space.name!r}), got {len(scores)}")
    rows = []
    for decision, k, row in zip(space.decisions, n, scores):
        try:
            values = np.asarray(to_numpy(row), dtype=float).ravel()
        except (TypeError, ValueError):
            raise InputError(f"scores of decision {decision.name!r} must be numbers, got "
                             f"{type(row).__name__}") from None
        if len(values) < k:
            raise InputError(f"scores of decision {decision.name!r} must have {k} entries "
                             f"(one per choice), got {len(values)}")
        rows.append(values[:k])
    return rows


def _log_prob_row(row: np.ndarray) -> np.ndarray:
    """Log-probabilities of one decision's finite scores: probabilities (non-negative,
    summing to 1) as their log, NaN where 0; logits by log-softmax."""
    if np.all(row >= 0) and abs(row.sum() - 1.0) <= 1e-6:
        with np.errstate(divide="ignore"):
            return np.where(row > 0, np.log(row), np.nan)
    shifted = row - row.max()
    return shifted - np.log(np.exp(shifted).sum())


def derive_z(space: SearchSpace, predictor: Predictor, scores: Any, budget_ms: float, *,
             top: int = 1, max_param_bytes: int | None = None,
             max_activation_bytes: int | None = None) -> list[Derived]:
    """The ``top`` z with the highest total log-probability whose predicted latency is within
    ``budget_ms`` (and within the memory budgets), best first: exact, by the multiple-choice
    knapsack of ``hwnas.search``'s exact sampler (dynamic programming over latency).

    Args:
        space: the searched space (additive: not ``nb201-pruned``).
        predictor: a fitted predictor with a cost matrix (not ``tree_z``).
        scores: logits or probabilities per decision x choice (see ``log_probs``).
        budget_ms: the latency budget, in the predictor's ms.
        top: how many z to return (fewer where fewer fit).
        max_param_bytes: a budget on parameter bytes (additive: the knapsack keeps more z by
            score until the best ones within it are certain).
        max_activation_bytes: a budget on peak activation bytes (per choice: a choice that
            exceeds it is never taken).

    Returns:
        ``Derived`` (z, predicted_latency_ms, log_prob), best first.

    Raises:
        InputError: where nothing fits (``hwnas.search.BudgetError`` without memory
            budgets), naming the least latency that can be reached.

    Example:
        >>> best = derive_z(space, predictor, alpha, budget_ms=5.0)[0]  # doctest: +SKIP
        >>> best.z, best.predicted_latency_ms  # doctest: +SKIP
    """
    budget_ms = positive("budget_ms", budget_ms, convert=True, noun="a finite latency")
    top = count("top", top)
    model = LatencyModel(space, predictor)
    if model.C is None or model.fixed is None:
        raise InputError(f"derive_z needs latency additive over decisions: the "
                         f"{predictor.kind} predictor on space {space.name!r} has no cost "
                         f"matrix (use a layer predictor, additive, or calibrated over one)")
    budgets = Budgets(model, None, max_param_bytes=max_param_bytes,
                      max_activation_bytes=max_activation_bytes)
    value = log_probs(space, scores)
    allowed = budgets.feasibility().allowed & ~np.isnan(value)
    cost = np.where(allowed, model.C, np.nan)
    best = _most_likely(budgets, model.fixed, cost, np.where(allowed, value, np.nan),
                        budget_ms, top)
    if not best:
        raise _nothing_fits(space, budgets, model.fixed, cost, budget_ms)
    return [Derived(z, lat, lp) for lat, lp, z in best[:top]]


def _most_likely(budgets: Budgets, fixed: float, cost: np.ndarray, value: np.ndarray,
                 budget_ms: float, top: int) -> list[tuple[float, float, tuple[int, ...]]]:
    """(latency, log-probability, z) of the ``top`` most likely z within the budgets, best
    first. The knapsack is exact for latency; a parameter budget is checked on its answers,
    so it keeps 4 times more of them until ``top`` fit or every z within the latency budget
    has been seen."""
    by_params = "param_bytes" in budgets.memory
    keep = top
    while True:
        found = knapsack(fixed_cost=fixed, cost=cost, fixed_value=0.0, value=value,
                         budget=budget_ms, keep=keep)
        complete = len(found) < keep  # nothing was pruned: every z within the budget is here
        best = found[:keep]
        if by_params and best:
            best = [p for p, ok in zip(best, budgets.fits(np.array([z for _, _, z in best])))
                    if ok]
        if len(best) >= top or complete or not by_params:
            return best
        keep *= 4


def _nothing_fits(space: SearchSpace, budgets: Budgets, fixed: float, cost: np.ndarray,
                  budget_ms: float) -> InputError:
    """The error for a budget nothing meets, naming the least latency within the other
    budgets (and choices of probability 0 left out)."""
    if "param_bytes" in budgets.memory:
        matrix = budgets.memory["param_bytes"]
        assert matrix is not None  # additive spaces only reach here
        p_fixed, P = matrix
        least = knapsack(fixed_cost=p_fixed, cost=np.where(np.isnan(cost), np.nan, P),
                         fixed_value=-fixed, value=-cost,
                         budget=float(budgets.limits["param_bytes"] or 0))
        if not least:
            return InputError(f"no architecture of space {space.name!r} fits max_param_bytes "
                              f"= {budgets.limits['param_bytes']:g}")
        min_latency_ms = -least[0][1]
    else:
        min_latency_ms = float(fixed + np.nanmin(cost, axis=1).sum())
    limits = [f"{k} = {v:g}" for k, v in (("max_param_bytes", budgets.limits["param_bytes"]),
              ("max_activation_bytes", budgets.limits["peak_activation_bytes"]))
              if v is not None]
    if not limits:
        return BudgetError(budget_ms, min_latency_ms)
    return InputError(f"no architecture meets the budget of {budget_ms:g} ms: within "
                      f"{' and '.join(limits)} the smallest predicted latency is "
                      f"{min_latency_ms:.3f} ms")
