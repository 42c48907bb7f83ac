"""Latency-constrained architecture search over z with Optuna."""

from hwnas.search._feasible import FeasibleSampler, suggest_z
from hwnas.search._study import (
    OBJECTIVES,
    BudgetError,
    Candidate,
    SearchInterrupted,
    SearchResult,
    search,
)

__all__ = ["OBJECTIVES", "BudgetError", "Candidate", "FeasibleSampler", "SearchInterrupted",
           "SearchResult", "search", "suggest_z"]
