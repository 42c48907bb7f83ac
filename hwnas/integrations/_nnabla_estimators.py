"""NNabla NAS's latency estimators backed by a fitted hwnas predictor.

Importing this module imports nnabla_nas (which needs nnabla, Python <= 3.10), so only
``hwnas.integrations.nnabla_nas`` imports it, when an estimator is first asked for: that
module, and ``hwnas.integrations``, import without nnabla.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from hwnas.errors import InputError
from hwnas.integrations.nnabla_nas import (
    Fallback,
    _Adaptive,
    _predictor,
    graph_layers,
    import_nnabla_nas,
    module_layers,
)
from hwnas.layers import Layer
from hwnas.predictors import Predictor
from hwnas.spaces import Architecture, chain

import_nnabla_nas()
# Any: nnabla_nas is untyped, and its classes are the bases below
_latency: Any = importlib.import_module("nnabla_nas.utils.estimator.latency")


def _estimate(predictor: Predictor, layers: list[Layer], extra_ms: float, network: bool
              ) -> float:
    """ms of the layers: their sum, or (network) the predictor's architecture prediction,
    which adds a calibrated predictor's offset."""
    if network:
        arch = Architecture("nnabla_nas", (), tuple(layers), (), chain(layers))
        return predictor.predict_architecture(arch) + extra_ms
    return float(np.sum(predictor.predict_layers(layers))) + extra_ms if layers else extra_ms


class HwnasLatencyEstimator(_Adaptive, _latency.LatencyEstimator):
    """NNabla NAS's module-based ``LatencyEstimator``, backed by a fitted hwnas predictor.

    Args:
        predictor: a fitted layer predictor (lookup, linear, tree, additive_features, or
            calibrated over one of them), or the path of one saved as JSON.
        bound_ms, weight: read by NNabla NAS's ProxylessNAS searcher for its reward
            acc * min(1, bound_ms / latency)^weight; weight "adaptive" sets it by dual ascent
            (``constraint``, a BudgetConstraint on the bound).
        input_shape: (C, H, W) of the network input; by default the module's recorded
            ``input_shapes``.
        fallback: ``fallback(module, in_shape) -> ms`` for modules with no hwnas Layer.
        step, quantile, samples: the constraint's step and quantile (None: the mean), and
            how many estimates make one update (ProxylessNAS samples 10 per step).
        bound: ``bound_ms`` under NNabla NAS's own name for it (its estimators' keyword, so
            a configuration may say ``bound: 5``); give one of the two.

    Example:
        >>> est = HwnasLatencyEstimator("p.json", bound_ms=5, weight=0.1)  # doctest: +SKIP
        >>> est.get_estimation(search_net)  # doctest: +SKIP
    """

    def __init__(self, predictor: Any, bound_ms: float | None = None,
                 weight: float | str = 0.1, input_shape: Sequence[int] | None = None,
                 fallback: Fallback | None = None, *, step: float = 0.05,
                 quantile: float | None = None, samples: int = 10, bound: float | None = None):
        # LatencyEstimator.__init__ only sets up the profiler, which this one never runs
        self.predictor = _predictor(predictor)
        _Adaptive.__init__(self, _Adaptive.bound_of(bound_ms, bound), weight, step, quantile,
                           samples)
        self.input_shape = input_shape
        self.fallback = fallback

    def _layers(self, module) -> tuple[list[Layer], float]:
        shape = self.input_shape
        if shape is None:
            recorded = getattr(module, "input_shapes", None)
            if not recorded:
                raise InputError(f"{type(module).__name__} {module.name!r} has not been "
                                 f"called, so its input shape is unknown: give input_shape")
            shape = recorded[0][1:]
        layers, extra_ms, _ = module_layers(module, shape, self.fallback)
        return layers, extra_ms

    def predict(self, module) -> float:
        """Latency in ms of one module: the sum of its layers (no per-network offset)."""
        return _estimate(self.predictor, *self._layers(module), network=False)

    def get_estimation(self, module) -> float:
        """Latency in ms of a whole network, as the predictor predicts architectures (a
        calibrated predictor adds its offset)."""
        return self._record(_estimate(self.predictor, *self._layers(module), network=True))


class HwnasLatencyGraphEstimator(_Adaptive, _latency.LatencyGraphEstimator):
    """NNabla NAS's graph-based ``LatencyGraphEstimator``, backed by a fitted hwnas
    predictor: ``get_estimation(output_variable)``. Arguments as HwnasLatencyEstimator's;
    ``fallback(function, in_shape) -> ms`` for graph functions with no hwnas Layer.

    Example:
        >>> est = HwnasLatencyGraphEstimator("p.json", bound_ms=5)  # doctest: +SKIP
        >>> est.get_estimation(net(nn.Variable((1, 3, 32, 32))))  # doctest: +SKIP
    """

    def __init__(self, predictor: Any, bound_ms: float | None = None,
                 weight: float | str = 0.1, fallback: Fallback | None = None, *,
                 step: float = 0.05, quantile: float | None = None, samples: int = 10,
                 bound: float | None = None):
        # LatencyGraphEstimator.__init__ only sets up the profiler, never run here
        self.predictor = _predictor(predictor)
        _Adaptive.__init__(self, _Adaptive.bound_of(bound_ms, bound), weight, step, quantile,
                           samples)
        self.fallback = fallback

    def predict(self, graph) -> float:
        """Latency in ms of the graph's layers, summed (no per-network offset)."""
        return _estimate(self.predictor, *graph_layers(graph, self.fallback), network=False)

    def get_estimation(self, graph) -> float:
        """Latency in ms of the network whose output is ``graph``, as the predictor predicts
        architectures."""
        return self._record(_estimate(self.predictor, *graph_layers(graph, self.fallback),
                                      network=True))
