"""hwnas: hardware-aware neural architecture search.

Measure layer latency once on the target device (``hwnas.profile``), turn the tables into
predictors (``hwnas.predictors``), and search architectures under a latency budget with no
device in the loop (``hwnas.search``). ``hwnas.find_architectures(budget_ms=5)`` runs the
whole job: measure (or load), calibrate, search, verify.

The names below load on first use, so ``import hwnas.layers`` stays cheap (no optuna).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: public name -> the module that defines it
_LAZY = {"Layer": "hwnas.layers", "LookupPredictor": "hwnas.predictors",
         "Predictor": "hwnas.predictors", "load_predictor": "hwnas.predictors",
         "Architecture": "hwnas.spaces",
         "SearchSpace": "hwnas.spaces", "get_space": "hwnas.spaces",
         "read_layer_table": "hwnas.tables", "read_network_table": "hwnas.tables",
         "find_architectures": "hwnas.search", "MeasureSettings": "hwnas.search",
         "SearchOutcome": "hwnas.search", "SearchSettings": "hwnas.search"}
#: subpackages loaded on first use as attributes (``hwnas.search.FeasibleSampler``)
_SUBPACKAGES = ("devices", "errors", "integrations", "predictors", "profile", "search",
                "spaces", "tables")

__all__ = ["Architecture", "Layer", "LookupPredictor", "MeasureSettings", "Predictor",
           "SearchOutcome", "SearchSettings", "SearchSpace", "find_architectures", "get_space",
           "load_predictor", "read_layer_table", "read_network_table"]

if TYPE_CHECKING:
    from hwnas.layers import Layer
    from hwnas.predictors import LookupPredictor, Predictor, load_predictor
    from hwnas.search import MeasureSettings, SearchOutcome, SearchSettings, find_architectures
    from hwnas.spaces import Architecture, SearchSpace, get_space
    from hwnas.tables import read_layer_table, read_network_table


def __getattr__(name: str) -> Any:
    if name in _SUBPACKAGES:
        return importlib.import_module(f"hwnas.{name}")  # which sets it here
    if name not in _LAZY:
        raise AttributeError(f"module 'hwnas' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list:
    return sorted(set(globals()) | set(__all__) | set(_SUBPACKAGES))
