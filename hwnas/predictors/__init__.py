"""Latency predictors behind one interface (see ``Predictor``).

Kinds: ``lookup`` (exact, from a layer table), ``linear`` and ``tree`` (regressors over layer
features, per op kind), ``additive`` and ``additive_features`` (fitted from measured
networks), ``tree_z`` (non-additive, over z), ``measured`` (each z's measured latency, looked
up), ``transfer`` (a new device from a few networks and the known devices), and
``calibrated`` (a * any + b).
"""

from hwnas.predictors._base import (
                                    NotAdditiveError,
                                    NotFittedError,
                                    Predictor,
                                    from_dict,
                                    load_predictor,
)
from hwnas.predictors._calibrated import CalibratedPredictor, uncalibrated
from hwnas.predictors._evaluate import evaluate
from hwnas.predictors._lookup import LookupPredictor, UnseenLayerError
from hwnas.predictors._measured import MeasuredPredictor, UnmeasuredError
from hwnas.predictors._network import (
                                    AdditiveFeaturesPredictor,
                                    AdditivePredictor,
                                    TreeZPredictor,
                                    UnknownChoiceError,
                                    UnknownChoiceWarning,
)
from hwnas.predictors._regressors import LinearPredictor, TreePredictor
from hwnas.predictors._transfer import TransferPredictor, transfer_design

#: kind -> class, every predictor kind
KINDS = Predictor._registry

__all__ = ["AdditiveFeaturesPredictor", "AdditivePredictor", "CalibratedPredictor", "KINDS",
           "LinearPredictor", "LookupPredictor", "MeasuredPredictor", "NotAdditiveError",
           "NotFittedError", "Predictor", "TransferPredictor", "TreePredictor", "TreeZPredictor",
           "UnknownChoiceError", "UnknownChoiceWarning", "UnmeasuredError", "UnseenLayerError",
           "evaluate", "from_dict", "load_predictor", "transfer_design", "uncalibrated"]
