"""Exact lookup of measured layer latencies, with an optional fallback for unseen layers."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.base import clone

from hwnas.errors import InputError, UnseenLayerError
from hwnas.layers import ATTR_FIELDS, OPS, Layer
from hwnas.predictors._base import Predictor, from_dict
from hwnas.spaces import SearchSpace
from hwnas.tables import LayerTable


class LookupPredictor(Predictor):
    """Latency of a layer = its measured value in the layer table.

    A layer that was not measured is an error naming its key, unless a ``fallback`` layer
    predictor (e.g. ``LinearPredictor()``, fitted on the same table) predicts it; then
    ``unseen(layers)`` lists those keys and a warning says how many fell back (unless
    ``warn_fallback`` is False: where measuring only some layers is the plan, as the default
    flow does on ``ofa``). Where the same layer was measured at other input sizes (``ofa``'s
    resolutions), the fallback's prediction is anchored to them: scaled by their measured /
    predicted ratio, interpolated in input area (``anchors``): a regressor over layer features
    misprices a whole configuration alike at every size (``benchmarks/ofa_machine.py``
    measures both on layers of resolutions it did not fit).

    Args:
        fallback: an unfitted layer predictor (``LinearPredictor()``, ``TreePredictor()``)
            whose clone ``fit_table`` fits on the same table, or None.
        target: the table column to look up (latency_ms, or e.g. energy_mj).
        space: the space of the z that ``predict(X)`` and ``score(X, y)`` take (a name, a
            space file or a SearchSpace); ``predict_z`` takes any space.

    Example:
        >>> table = read_layer_table("layers.csv")  # doctest: +SKIP
        >>> p = LookupPredictor(space="mobilenet").fit_table(table)  # doctest: +SKIP
        >>> p.predict(get_space("mobilenet").random_z(3))  # doctest: +SKIP
    """

    kind = "lookup"

    def __init__(self, fallback: Predictor | None = None, target: str = "latency_ms",
                 warn_fallback: bool = True, *, space: str | SearchSpace | None = None):
        self.fallback = fallback
        self.target = target
        self.warn_fallback = warn_fallback
        self.space = space

    def _validate(self) -> None:
        self._check_params()
        if self.fallback is not None and (not isinstance(self.fallback, Predictor) or
                                          self.fallback.from_networks):
            raise InputError(f"LookupPredictor: fallback must be a layer predictor (e.g. "
                             f"LinearPredictor()) or None, got {self.fallback!r}")

    def _fit_layers(self, table: LayerTable) -> None:
        """Keep the table's values; fit a clone of ``fallback`` (never the caller's object) on
        the same table, as ``fallback_``."""
        self.values_ = table.values(self.target)
        self.fallback_ = None if self.fallback is None else \
            clone(self.fallback).set_params(target=self.target).fit_table(table)
        self.anchors_ = _anchor_table(self.values_, self.fallback_)

    def unseen(self, layers: Sequence[Layer]) -> list[str]:
        """Keys of the layers that are not in the table."""
        self._check_fitted()
        return list(dict.fromkeys(layer.key for layer in layers
                                  if layer.key not in self.values_))

    def predict_layers(self, layers: Sequence[Layer]) -> np.ndarray:
        """Each layer's measured value; an unmeasured one goes to the fallback, or is an
        UnseenLayerError naming it."""
        missing = self.unseen(layers)
        if missing and self.fallback_ is None:
            raise UnseenLayerError(
                f"{len(missing)} layer(s) not in the lookup table, e.g. {missing[0]}: measure "
                f"them (python -m hwnas.profile) or give the lookup a fallback predictor")
        out = np.array([self.values_.get(layer.key, np.nan) for layer in layers], dtype=float)
        if missing and self.fallback_ is not None:
            if self.warn_fallback:
                warnings.warn(f"{len(missing)} layer(s) not in the lookup table were predicted "
                              f"by its {self.fallback_.kind} fallback, e.g. {missing[0]}",
                              stacklevel=2)
            gaps = np.isnan(out)
            unseen = [ly for ly, g in zip(layers, gaps) if g]
            out[gaps] = self.fallback_.predict_layers(unseen) * self.anchors(unseen)
        return out

    def anchors(self, layers: Sequence[Layer]) -> np.ndarray:
        """Per layer, the factor the fallback's prediction is multiplied by: where the table
        has the same layer at other input sizes, their measured / predicted ratio,
        interpolated in input area (the nearest size's beyond them); else 1."""
        self._check_fitted()
        found = [self.anchors_.get(_unsized(ly)) for ly in layers]
        return np.array([1.0 if a is None else float(np.exp(np.interp(_area(ly), *a)))
                         for ly, a in zip(layers, found)])

    def _state(self) -> dict[str, Any]:
        return {"values": self.values_,
                "fallback": None if self.fallback_ is None else self.fallback_.to_dict()}

    @classmethod
    def _from_state(cls, state: dict[str, Any]) -> LookupPredictor:
        fallback = None if state["fallback"] is None else from_dict(state["fallback"],
                                                                     "fallback")
        predictor = cls(None if fallback is None else clone(fallback))
        predictor.fallback_ = fallback
        predictor.values_ = {str(k): float(v) for k, v in state["values"].items()}
        for key, value in predictor.values_.items():
            Layer.from_key(key)
            if not np.isfinite(value) or value <= 0:
                raise ValueError(f"value of {key} is {value}, not a positive number")
        predictor.anchors_ = _anchor_table(predictor.values_, fallback)
        return predictor


#: the range of an anchor (measured / predicted): a regressor further off than this on a
#: layer says little about how that layer grows with its size
ANCHOR_BOUNDS = (0.25, 4.0)


def _anchor_table(values: dict[str, float], fallback: Predictor | None
                  ) -> dict[tuple, tuple[np.ndarray, np.ndarray]]:
    """Per layer configuration (``_unsized``): its measured input areas, increasing, and the
    log of measured / ``fallback``-predicted at each (the mean where areas are equal),
    within ANCHOR_BOUNDS. Empty without a fallback."""
    if fallback is None:
        return {}
    measured = [Layer.from_key(k) for k in values]
    groups: dict[tuple, dict[int, list[float]]] = {}
    for layer, ms, predicted in zip(measured, values.values(),
                                    fallback.predict_layers(measured)):
        if predicted > 0:
            groups.setdefault(_unsized(layer), {}).setdefault(_area(layer), []).append(
                float(np.log(ms / predicted)))
    low, high = np.log(ANCHOR_BOUNDS)
    return {key: (np.array(sorted(areas), dtype=float),
                  np.clip([np.mean(areas[a]) for a in sorted(areas)], low, high))
            for key, areas in groups.items()}


def _unsized(layer: Layer) -> tuple:
    """What identifies a layer but its input's height and width."""
    return (layer.op, layer.in_shape[0],
            *(getattr(layer, ATTR_FIELDS[a]) for a in OPS[layer.op]))


def _area(layer: Layer) -> int:
    return layer.in_shape[1] * layer.in_shape[2]
