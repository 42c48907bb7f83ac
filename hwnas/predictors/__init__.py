"""Latency predictors behind one interface."""

from hwnas.predictors._base import NotFittedError, Predictor, load_predictor
from hwnas.predictors._lookup import LookupPredictor, UnseenLayerError

__all__ = ["LookupPredictor", "NotFittedError", "Predictor", "UnseenLayerError",
           "load_predictor"]
