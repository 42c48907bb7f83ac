"""Exact lookup of measured layer latencies."""

from __future__ import annotations

from typing import Any, Dict, Sequence

import numpy as np

from hwnas.layers import Layer
from hwnas.predictors._base import Predictor
from hwnas.tables import LayerTable


class UnseenLayerError(KeyError):
    """A layer has no row in the lookup table."""

    def __str__(self) -> str:
        return str(self.args[0])


class LookupPredictor(Predictor):
    """Latency of a layer = its measured ``latency_ms`` in the layer table.

    A layer that was not measured is an error naming its key.

    Example:
        >>> p = LookupPredictor().fit(read_layer_table("layers.csv"))
        >>> p.predict_z(get_space("mobilenet"), z)
    """

    kind = "lookup"

    def fit(self, table: LayerTable) -> "LookupPredictor":
        self.latency_ms_ = {key: t.latency_ms for key, t in table.timings.items()}
        self.fingerprint_ = table.fingerprint
        return self

    def predict(self, layers: Sequence[Layer]) -> np.ndarray:
        self._check_fitted()
        missing = [layer.key for layer in layers if layer.key not in self.latency_ms_]
        if missing:
            raise UnseenLayerError(
                f"{len(missing)} layer(s) not in the lookup table, e.g. {missing[0]}: measure "
                f"them (python -m hwnas.profile) or use a regressor predictor")
        return np.array([self.latency_ms_[layer.key] for layer in layers], dtype=float)

    def _state(self) -> Dict[str, Any]:
        return {"latency_ms": self.latency_ms_}

    @classmethod
    def _from_state(cls, state: Dict[str, Any]) -> "LookupPredictor":
        predictor = cls()
        predictor.latency_ms_ = {str(k): float(v) for k, v in state["latency_ms"].items()}
        for key, value in predictor.latency_ms_.items():
            Layer.from_key(key)
            if not np.isfinite(value) or value <= 0:
                raise ValueError(f"latency of {key} is {value}, not a positive number")
        return predictor
