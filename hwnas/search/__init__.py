"""Latency-constrained architecture search over z with Optuna."""

from hwnas.search._study import OBJECTIVES, BudgetError, Candidate, SearchResult, search

__all__ = ["OBJECTIVES", "BudgetError", "Candidate", "SearchResult", "search"]
