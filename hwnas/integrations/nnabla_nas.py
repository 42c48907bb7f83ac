"""NNabla NAS (nnabla-nas 0.15.0) integration: a fitted hwnas predictor behind that
framework's estimator interface, and z for its MobileNet SearchNet.

``PredictorEstimator`` has the interface of ``nnabla_nas.utils.estimator.LatencyEstimator``
(``predict(module)``, ``get_estimation(module)``, ``reset()``, and the ``_bound`` and
``_weight`` its ProxylessNAS searcher reads), so that framework's trainers and searchers use
hwnas instead of live profiling: nothing is timed, and no module's weights are touched (its
own estimator zeroes them). Modules map to hwnas Layers with their shapes: ``InvertedResidual``
-> ``mbconv``; Conv + BatchNormalization [+ ReLU/ReLU6] -> ``conv``; a lone BatchNormalization
[+ ReLU] -> ``bn``; ``Add2`` -> ``add``; ``GlobalAvgPool`` -> ``gap``; ``Linear`` -> ``linear``;
``Identity``, ``Zero`` and ``Dropout`` cost nothing; a ``MixedOp`` costs its active candidate.
Anything else is an error naming it, or goes to a ``fallback(module, in_shape) -> ms``.
"""

from __future__ import annotations

import sys
import types
from typing import Any, Callable, List, Optional, Sequence, Tuple

import numpy as np

from hwnas._imports import require
from hwnas.layers import Layer
from hwnas.predictors import Predictor
from hwnas.spaces import Architecture, SearchSpace, chain

_BROKEN = "nnabla_nas.contrib.classification.ofa.networks"


def import_nnabla_nas() -> types.ModuleType:
    """Import nnabla_nas 0.15.0, whose wheel lacks ``contrib.classification.ofa.networks``:
    a stub stands in for that module (hwnas never uses it)."""
    if _BROKEN not in sys.modules:
        stub = types.ModuleType(_BROKEN)
        stub.ofa_mbv3 = stub.ofa_xception = stub.ofa_resnet50 = None
        sys.modules[_BROKEN] = stub
    return require("nnabla_nas", "the NNabla NAS integration")


class UnmappedModuleError(TypeError):
    """A module of NNabla NAS that has no hwnas Layer (and no fallback was given)."""


Shape = Tuple[int, int, int]


def module_layers(module: Any, in_shape: Sequence[int],
                  fallback: Optional[Callable[[Any, Shape], float]] = None
                  ) -> Tuple[List[Layer], float, Shape]:
    """The hwnas Layers a module runs for input (C, H, W): (layers, fallback ms, out shape)."""
    Mo = import_nnabla_nas().module
    mobilenet = sys.modules.get("nnabla_nas.contrib.classification.mobilenet.modules")
    shape: Shape = tuple(int(v) for v in in_shape)
    name = type(module).__name__
    if mobilenet is not None and isinstance(module, mobilenet.InvertedResidual):
        k = module._kernel[0] if isinstance(module._kernel, tuple) else module._kernel
        layer = Layer("mbconv", shape, module._out_channels, kernel=k, stride=module._stride,
                      expand=module._expand_ratio)
        return [layer], 0.0, layer.out_shape
    if mobilenet is not None and isinstance(module, mobilenet.ChoiceBlock):
        return module_layers(module._mixed, shape, fallback)
    if isinstance(module, Mo.MixedOp):
        if module.active_index is None:
            raise UnmappedModuleError(f"MixedOp {module.name!r} has no active candidate: set "
                                      f"one (e.g. set_z) before estimating")
        return module_layers(module._ops[module.active_index], shape, fallback)
    if isinstance(module, (Mo.Identity, Mo.Zero, Mo.Dropout)):
        return [], 0.0, shape
    if isinstance(module, Mo.GlobalAvgPool):
        layer = Layer("gap", shape)
        return [layer], 0.0, layer.out_shape
    if isinstance(module, Mo.Linear):
        layer = Layer("linear", shape, module._out_features)
        return [layer], 0.0, layer.out_shape
    if len(module.modules) == 0:
        if fallback is None:
            raise UnmappedModuleError(f"cannot map {name} {module.name!r} with input {shape} to "
                                      f"an hwnas Layer: give PredictorEstimator a fallback")
        return [], float(fallback(module, shape)), shape
    return _container_layers(list(module.modules.values()), shape, fallback, Mo)


def _container_layers(children: List[Any], shape: Shape, fallback, Mo):
    """Children in order; Conv + BN [+ activation] and BN [+ activation] become one Layer."""
    layers, extra_ms, i = [], 0.0, 0
    acts = {Mo.ReLU: "relu", Mo.ReLU6: "relu6"}
    while i < len(children):
        child = children[i]
        nxt = children[i + 1] if i + 1 < len(children) else None
        if isinstance(child, Mo.Conv) and isinstance(nxt, Mo.BatchNormalization) \
                and child._b is None:
            after = children[i + 2] if i + 2 < len(children) else None
            act = acts.get(type(after), "none")
            k = child._kernel[0]
            pad = child._pad[0] if child._pad else 0
            stride = tuple(child._stride or (1, 1))
            if stride[0] != stride[1] or pad != (k - 1) // 2:
                raise UnmappedModuleError(f"Conv {child.name!r}: only square strides and "
                                          f"'same' padding map to hwnas conv layers")
            layer = Layer("conv", shape, child._out_channels, kernel=k, stride=stride[0],
                          groups=child._group, act=act)
            i += 2 + (act != "none")
        elif isinstance(child, Mo.BatchNormalization):
            act = acts.get(type(nxt), "none")
            layer = Layer("bn", shape, act=act)
            i += 1 + (act != "none")
        else:
            sub, ms, shape = module_layers(child, shape, fallback)
            layers += sub
            extra_ms += ms
            i += 1
            continue
        layers.append(layer)
        shape = layer.out_shape
    return layers, extra_ms, shape


class PredictorEstimator:
    """NNabla NAS's estimator interface, backed by a fitted hwnas predictor (see module doc).

    Args:
        predictor: a fitted layer predictor (lookup, linear, tree, additive_features, or
            calibrated over one of them).
        input_shape: (C, H, W) of the network input; by default the module's recorded
            ``input_shapes``.
        bound, weight: read by NNabla NAS's ProxylessNAS searcher for its reward
            acc * min(1, bound / latency)^weight.
        fallback: ``fallback(module, in_shape) -> ms`` for modules with no hwnas Layer.
    """

    def __init__(self, predictor: Predictor, input_shape: Optional[Sequence[int]] = None,
                 bound: float = 5.0, weight: float = 0.1,
                 fallback: Optional[Callable[[Any, Shape], float]] = None):
        self.predictor = predictor
        self.input_shape = input_shape
        self._bound, self._weight = bound, weight
        self.fallback = fallback

    def _layers(self, module) -> Tuple[List[Layer], float]:
        shape = self.input_shape
        if shape is None:
            recorded = getattr(module, "input_shapes", None)
            if not recorded:
                raise ValueError(f"{type(module).__name__} {module.name!r} has not been called, "
                                 f"so its input shape is unknown: give input_shape")
            shape = recorded[0][1:]
        layers, extra_ms, _ = module_layers(module, shape, self.fallback)
        return layers, extra_ms

    def predict(self, module) -> float:
        """Latency in ms of one module: the sum of its layers (no per-network offset)."""
        layers, extra_ms = self._layers(module)
        return float(np.sum(self.predictor.predict(layers))) + extra_ms if layers else extra_ms

    def get_estimation(self, module) -> float:
        """Latency in ms of a whole network, as the predictor predicts architectures (a
        calibrated predictor adds its offset)."""
        layers, extra_ms = self._layers(module)
        arch = Architecture("nnabla_nas", (), tuple(layers), (), chain(layers))
        return self.predictor.predict_architecture(arch) + extra_ms

    def reset(self) -> None:
        """Nothing to clear: estimates are computed from the predictor, never cached."""


def choice_blocks(net) -> list:
    """The ChoiceBlocks of a MobileNet SearchNet, in order: one per entry of z."""
    mobilenet = import_nnabla_nas().contrib.classification.mobilenet.modules
    return [m for _, m in net.get_modules() if isinstance(m, mobilenet.ChoiceBlock)]


def get_z(net) -> Tuple[int, ...]:
    """hwnas ``mobilenet`` z of a SearchNet's active candidates (same candidate order)."""
    return tuple(int(block._mixed.active_index) for block in choice_blocks(net))


def set_z(net, z: Sequence[int], space: Optional[SearchSpace] = None) -> None:
    """Activate the candidates of hwnas ``mobilenet`` z in a SearchNet."""
    blocks = choice_blocks(net)
    if space is not None:
        z = space.check_z(z)[0]
    if len(z) != len(blocks):
        raise ValueError(f"z has {len(z)} entries, the SearchNet {len(blocks)} choice blocks")
    for block, choice in zip(blocks, z):
        n = len(block._mixed._ops)
        if not 0 <= int(choice) < n:
            raise ValueError(f"choice {choice} is out of range for {block.name!r} ({n} ops)")
        block._mixed.active_index = int(choice)
