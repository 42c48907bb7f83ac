"""Latency-constrained architecture search over z with Optuna."""

from hwnas.search._feasible import Budgets, FeasibleSampler, LatencyModel, suggest_z
from hwnas.search._study import (
    OBJECTIVES,
    BudgetError,
    Candidate,
    SearchInterrupted,
    SearchResult,
    SearchSettings,
    search,
)

__all__ = ["OBJECTIVES", "BudgetError", "Budgets", "Candidate", "FeasibleSampler",
           "LatencyModel", "SearchInterrupted", "SearchResult", "SearchSettings", "search",
           "suggest_z"]
