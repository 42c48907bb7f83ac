"""Latency-constrained architecture search over z with Optuna.

``find_architectures`` runs the main job (measure or load, calibrate, search, verify);
its building blocks are public: ``latency_source`` (where predictions come from),
``calibrate``, ``run_study`` (one Optuna study over the predictions, nothing measured),
``Verifier`` (measure the answers, recalibrate on a miss), ``FeasibleSampler``.

``hwnas.search(...)``, the function of hwnas 0.1, still runs ``run_study`` with a
DeprecationWarning.
"""

from __future__ import annotations

import sys
import types
import warnings
from typing import Any

from hwnas.search._feasible import Budgets, FeasibleSampler, LatencyModel, suggest_z
from hwnas.search._fleet import DeviceBudget, fleet_budgets
from hwnas.search._flow import (
    LatencySource,
    MeasureSettings,
    SearchOutcome,
    find_architectures,
    latency_source,
    load_objective,
)
from hwnas.search._study import (
    OBJECTIVES,
    BudgetError,
    Candidate,
    SearchInterrupted,
    SearchResult,
    SearchSettings,
    run_study,
)
from hwnas.search._verify import Verification, Verifier, calibrate

__all__ = ["OBJECTIVES", "BudgetError", "Budgets", "Candidate", "DeviceBudget",
           "FeasibleSampler", "LatencyModel", "LatencySource", "MeasureSettings",
           "SearchInterrupted", "SearchOutcome", "SearchResult", "SearchSettings",
           "Verification", "Verifier", "calibrate", "find_architectures", "fleet_budgets",
           "latency_source", "load_objective", "run_study", "suggest_z"]

_RENAMED = ("hwnas.search(...) is deprecated: call hwnas.search.run_study(...) (the same "
            "arguments), or hwnas.find_architectures(...) for the whole verified job")


def search(*args: Any, **kwargs: Any) -> SearchResult:
    """Deprecated: ``run_study``."""
    warnings.warn(_RENAMED, DeprecationWarning, stacklevel=2)
    return run_study(*args, **kwargs)


class _SearchPackage(types.ModuleType):
    """The subpackage, callable as the function of hwnas 0.1 (deprecated)."""

    def __call__(self, *args: Any, **kwargs: Any) -> SearchResult:
        warnings.warn(_RENAMED, DeprecationWarning, stacklevel=2)
        return run_study(*args, **kwargs)


sys.modules[__name__].__class__ = _SearchPackage
