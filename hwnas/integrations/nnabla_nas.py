"""NNabla NAS (nnabla-nas 0.15.0) integration: a fitted hwnas predictor as that framework's
latency estimator, its command line with the estimator registered, and z for its MobileNet
SearchNet.

``HwnasLatencyEstimator`` is a subclass of ``nnabla_nas.utils.estimator.LatencyEstimator``
(module-based) and ``HwnasLatencyGraphEstimator`` of its ``LatencyGraphEstimator``
(graph-based), so NNabla NAS's ProxylessNAS searcher takes them as regularizers: nothing is
timed, and no module's weights are touched (its own profiler zeroes them). Both are defined
on first use, since nnabla-nas needs nnabla (Python <= 3.10): this module imports without it,
and naming a class without it raises MissingDependency.

Modules map to hwnas Layers with their shapes: ``InvertedResidual`` -> ``mbconv``; Conv +
BatchNormalization [+ ReLU/ReLU6] -> ``conv``; a lone BatchNormalization [+ ReLU] -> ``bn``;
``Add2`` -> ``add``; ``GlobalAvgPool`` -> ``gap``; ``Linear`` -> ``linear``; ``Identity``,
``Zero`` and ``Dropout`` cost nothing; a ``MixedOp`` costs its active candidate. Graphs map
function by function in the same way (an expand 1x1 conv, a depthwise conv and a linear
projection [+ the residual Add2] -> ``mbconv``). Anything else is an error naming it, or goes
to a ``fallback(module_or_function, in_shape) -> ms``.

    python -m hwnas.integrations.nnabla_nas <NNabla NAS's Hydra arguments>

runs NNabla NAS's own command line (as its ``main.py`` does: configuration ``conf/config.yaml``
under the working directory, or ``--config-path``) with both estimators registered, so a
configuration may name ``"regularizer": {"HwnasLatencyEstimator": {"predictor": "p.json",
"bound": 5, "weight": 0.1}}``.

Constraint mode: ``weight="adaptive"`` makes the reward's exponent a Lagrange multiplier set
by dual ascent (``hwnas.integrations.BudgetConstraint``): after every ``samples`` estimates
(the architectures ProxylessNAS samples per validation step, 10) it moves by ``step`` x
(L / bound - 1), L the mean of their latencies or, with ``quantile``, that quantile. At the
end, ``derive_searchnet_z`` gives the most likely z of the searched alphas within the bound.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import types
from collections.abc import Sequence
from typing import Any, Callable, cast

import numpy as np

from hwnas._checks import count, positive
from hwnas._imports import require
from hwnas.errors import InputError
from hwnas.integrations._constraint import BudgetConstraint
from hwnas.integrations._derive import Derived, derive_z
from hwnas.layers import Layer
from hwnas.predictors import Predictor, load_predictor
from hwnas.spaces import Architecture, SearchSpace, chain, get_space

_BROKEN = "nnabla_nas.contrib.classification.ofa.networks"
ESTIMATORS = ("HwnasLatencyEstimator", "HwnasLatencyGraphEstimator")


def import_nnabla_nas() -> types.ModuleType:
    """Import nnabla_nas 0.15.0, whose wheel lacks ``contrib.classification.ofa.networks``:
    a stub stands in for that module (hwnas never uses it)."""
    if _BROKEN not in sys.modules:
        stub: Any = types.ModuleType(_BROKEN)  # Any: it gets attributes a module type lacks
        stub.ofa_mbv3 = stub.ofa_xception = stub.ofa_resnet50 = None
        sys.modules[_BROKEN] = stub
    return require("nnabla_nas", "the NNabla NAS integration")


class UnmappedModuleError(InputError):
    """A module or graph function of NNabla NAS that has no hwnas Layer (and no fallback)."""


Shape = tuple[int, int, int]
Fallback = Callable[[Any, Shape], float]


def module_layers(module: Any, in_shape: Sequence[int],
                  fallback: Fallback | None = None
                  ) -> tuple[list[Layer], float, Shape]:
    """The hwnas Layers a module runs for input (C, H, W): (layers, fallback ms, out shape)."""
    Mo = import_nnabla_nas().module
    mobilenet = sys.modules.get("nnabla_nas.contrib.classification.mobilenet.modules")
    shape = cast(Shape, tuple(int(v) for v in in_shape))  # Layer checks that it is (C, H, W)
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
                                      f"an hwnas Layer: give the estimator a fallback")
        return [], float(fallback(module, shape)), shape
    return _container_layers(list(module.modules.values()), shape, fallback, Mo)


def _container_layers(children: list[Any], shape: Shape, fallback, Mo):
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


_ACTIVATIONS = {"ReLU": "relu", "ReLU6": "relu6"}


def _feeds(f, g) -> bool:
    """Function g takes function f's output as its first input."""
    return g is not None and len(g.inputs) > 0 and g.inputs[0] == f.outputs[0]


def _activation(f, g) -> str:
    """The activation (or "none") that function g, if it takes f's output, applies to it."""
    return _ACTIVATIONS.get(g.info.type_name, "none") if _feeds(f, g) else "none"


def _conv_unit(funcs: list, i: int) -> tuple[dict, int]:
    """Convolution (no bias) + BatchNormalization [+ ReLU/ReLU6] from funcs[i]: its fields
    and the index after it."""
    f = funcs[i]
    nxt = funcs[i + 1] if i + 1 < len(funcs) else None
    if len(f.inputs) > 2 or nxt is None or nxt.info.type_name != "BatchNormalization" \
            or not _feeds(f, nxt):
        raise UnmappedModuleError("a Convolution maps to an hwnas conv layer only without bias "
                                  "and followed by BatchNormalization")
    args = f.info.args
    _, _, kh, kw = f.inputs[1].shape
    stride, pad = tuple(args["stride"]), tuple(args["pad"])
    if kh != kw or stride[0] != stride[1] or pad != ((kh - 1) // 2,) * 2 \
            or tuple(args.get("dilation", (1, 1))) != (1, 1):
        raise UnmappedModuleError(f"Convolution {kh}x{kw} stride {stride} pad {pad}: only "
                                  f"square kernels and strides with 'same' padding map to hwnas")
    act = _activation(nxt, funcs[i + 2] if i + 2 < len(funcs) else None)
    end = i + 2 + (act != "none")
    return {"in_shape": tuple(f.inputs[0].shape[1:]), "out": int(f.inputs[1].shape[0]),
            "k": int(kh), "s": int(stride[0]), "g": int(args["group"]), "act": act,
            "input": f.inputs[0], "output": funcs[end - 1].outputs[0]}, end


def graph_layers(output, fallback: Fallback | None = None) -> tuple[list[Layer], float]:
    """The hwnas Layers that an nnabla graph (its output Variable) runs, in order, and the
    fallback ms of functions with no Layer."""
    funcs: list = []
    output.visit(funcs.append)
    layers: list[Layer] = []
    units: list[dict | None] = []  # the conv unit behind each of layers, else None
    extra_ms, i = 0.0, 0
    while i < len(funcs):
        f = funcs[i]
        name = f.info.type_name
        shape: Shape = tuple(f.inputs[0].shape[1:]) if f.inputs else ()
        if name == "Convolution":
            unit, i = _conv_unit(funcs, i)
            dw = unit["g"] == unit["in_shape"][0] > 1 and unit["act"] == "relu6"
            nxt = funcs[i] if i < len(funcs) else None
            if dw and nxt is not None and nxt.info.type_name == "Convolution" \
                    and nxt.inputs[0] == unit["output"]:
                project, after = _conv_unit(funcs, i)
                if project["k"] == 1 and project["g"] == 1 and project["act"] == "none":
                    i = after
                    layer, unit_in = _mbconv(layers, units, unit, project)
                    if layer.stride == 1 and layer.in_shape[0] == layer.out_channels:
                        add = funcs[i] if i < len(funcs) else None
                        if add is None or add.info.type_name != "Add2" or not any(
                                v == unit_in for v in add.inputs):
                            raise UnmappedModuleError(f"an inverted residual block {layer.key} "
                                                      f"without its residual Add2")
                        i += 1
                    layers.append(layer)
                    units.append(None)
                    continue
            layers.append(Layer("conv", unit["in_shape"], unit["out"], kernel=unit["k"],
                                stride=unit["s"], groups=unit["g"], act=unit["act"]))
            units.append(unit)
            continue
        i += 1
        if name == "BatchNormalization":
            act = _activation(f, funcs[i] if i < len(funcs) else None)
            i += act != "none"
            layer = Layer("bn", shape, act=act)
        elif name == "Add2":
            layer = Layer("add", shape)
        elif name == "GlobalAveragePooling":
            layer = Layer("gap", shape)
        elif name == "Affine":
            layer = Layer("linear", (int(np.prod(shape)), 1, 1), int(f.inputs[1].shape[1]))
        elif fallback is not None:
            extra_ms += float(fallback(f, shape))
            continue
        else:
            raise UnmappedModuleError(f"cannot map nnabla function {name} with input {shape} to "
                                      f"an hwnas Layer: give the estimator a fallback")
        layers.append(layer)
        units.append(None)
    return layers, extra_ms


def _mbconv(layers: list[Layer], units: list[dict | None], dw: dict, project: dict
            ) -> tuple[Layer, Any]:
    """The mbconv Layer of a depthwise + projection pair, taking the 1x1 expand conv that
    feeds it off ``layers``; returns it and the block's input Variable."""
    prev = units[-1] if units else None
    if prev is not None and prev["k"] == 1 and prev["g"] == 1 and prev["act"] == "relu6" \
            and prev["output"] == dw["input"]:
        layers.pop()
        units.pop()
        in_shape, block_in = prev["in_shape"], prev["input"]
    else:
        in_shape, block_in = dw["in_shape"], dw["input"]
    hidden = dw["in_shape"][0]
    if hidden % in_shape[0]:
        raise UnmappedModuleError(f"an inverted residual block widens {in_shape[0]} to {hidden} "
                                  f"channels: hwnas mbconv needs an integer expand ratio")
    return Layer("mbconv", in_shape, project["out"], kernel=dw["k"], stride=dw["s"],
                 expand=hidden // in_shape[0]), block_in


def _predictor(predictor: Any) -> Predictor:
    """A Predictor as given, or loaded from the path of a saved one (relative paths are taken
    from where the command was started, also under Hydra, which changes directory)."""
    if isinstance(predictor, Predictor):
        return predictor
    if isinstance(predictor, (str, os.PathLike)):
        path = os.fspath(predictor)
        if not os.path.isabs(path) and importlib.util.find_spec("hydra") is not None:
            from hydra.core.hydra_config import HydraConfig
            if HydraConfig.initialized():
                from hydra.utils import to_absolute_path
                path = to_absolute_path(path)
        return load_predictor(path)
    raise InputError(f"predictor must be a fitted hwnas Predictor or the path of a saved "
                     f"predictor (JSON), got {type(predictor).__name__}")


def _reward_args(bound: Any, weight: Any) -> tuple[float, float]:
    """bound > 0 and weight >= 0 (finite), as the reward acc * min(1, bound / lat)^weight
    needs; weight "adaptive" reads as 0 (the constraint's initial lambda)."""
    if weight == "adaptive":
        weight = 0.0
    return (positive("bound", bound, convert=True, noun="a latency in ms"),
            positive("weight", weight, allow_zero=True, convert=True))


class _Adaptive:
    """The reward weight of an estimator: fixed, or (``weight="adaptive"``) the lambda of a
    BudgetConstraint on the bound, updated once per ``samples`` estimates."""

    def __init__(self, bound: Any, weight: Any, step: Any, quantile: Any, samples: Any):
        self._bound, self._fixed_weight = _reward_args(bound, weight)
        self.constraint: BudgetConstraint | None = None
        if weight == "adaptive":
            count("samples", samples)
            self.constraint = BudgetConstraint(None, None, self._bound, step=step,
                                               quantile=quantile)
        self.samples = samples
        self._pending: list[float] = []

    @property
    def _weight(self) -> float:
        """The exponent NNabla NAS's searcher reads for its reward."""
        return self._fixed_weight if self.constraint is None else self.constraint.lam

    def _record(self, latency_ms: float) -> float:
        """Note one estimate; the estimates of a finished validation step update lambda
        first, so that every sample of a step is rewarded with the same weight."""
        if self.constraint is not None:
            if len(self._pending) == self.samples:
                self.constraint.update(self._pending)
                self._pending = []
            self._pending.append(latency_ms)
        return latency_ms


def _estimate(predictor: Predictor, layers: list[Layer], extra_ms: float, network: bool
              ) -> float:
    """ms of the layers: their sum, or (network) the predictor's architecture prediction,
    which adds a calibrated predictor's offset."""
    if network:
        arch = Architecture("nnabla_nas", (), tuple(layers), (), chain(layers))
        return predictor.predict_architecture(arch) + extra_ms
    return float(np.sum(predictor.predict(layers))) + extra_ms if layers else extra_ms


_CLASSES: dict[str, type] = {}


def _define_estimators() -> dict[str, type]:
    """Define the estimator classes over nnabla_nas's (once, on first use)."""
    if _CLASSES:
        return _CLASSES
    import_nnabla_nas()
    # Any: nnabla_nas is untyped, and its classes are the bases below
    latency: Any = importlib.import_module("nnabla_nas.utils.estimator.latency")

    class HwnasLatencyEstimator(_Adaptive, latency.LatencyEstimator):
        """NNabla NAS's module-based ``LatencyEstimator``, backed by a fitted hwnas predictor.

        Args:
            predictor: a fitted layer predictor (lookup, linear, tree, additive_features, or
                calibrated over one of them), or the path of one saved as JSON.
            bound, weight: read by NNabla NAS's ProxylessNAS searcher for its reward
                acc * min(1, bound / latency)^weight (bound in ms); weight "adaptive" sets
                it by dual ascent (``constraint``, a BudgetConstraint on the bound).
            step, quantile, samples: the constraint's step and quantile (None: the mean),
                and how many estimates make one update (ProxylessNAS samples 10 per step).
            input_shape: (C, H, W) of the network input; by default the module's recorded
                ``input_shapes``.
            fallback: ``fallback(module, in_shape) -> ms`` for modules with no hwnas Layer.

        Example:
            >>> est = HwnasLatencyEstimator(predictor="p.json", bound=5, weight=0.1)
            >>> est.get_estimation(search_net)  # ms of its active candidates
        """

        def __init__(self, predictor: Any, bound: float = 5.0, weight: float | str = 0.1,
                     input_shape: Sequence[int] | None = None,
                     fallback: Fallback | None = None, *, step: float = 0.05,
                     quantile: float | None = None, samples: int = 10):
            # LatencyEstimator.__init__ only sets up the profiler, which this one never runs
            self.predictor = _predictor(predictor)
            _Adaptive.__init__(self, bound, weight, step, quantile, samples)
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

    class HwnasLatencyGraphEstimator(_Adaptive, latency.LatencyGraphEstimator):
        """NNabla NAS's graph-based ``LatencyGraphEstimator``, backed by a fitted hwnas
        predictor: ``get_estimation(output_variable)``. Arguments as HwnasLatencyEstimator's;
        ``fallback(function, in_shape) -> ms`` for graph functions with no hwnas Layer."""

        def __init__(self, predictor: Any, bound: float = 5.0, weight: float | str = 0.1,
                     fallback: Fallback | None = None, *, step: float = 0.05,
                     quantile: float | None = None, samples: int = 10):
            # LatencyGraphEstimator.__init__ only sets up the profiler, never run here
            self.predictor = _predictor(predictor)
            _Adaptive.__init__(self, bound, weight, step, quantile, samples)
            self.fallback = fallback

        def predict(self, graph) -> float:
            """Latency in ms of the graph's layers, summed (no per-network offset)."""
            return _estimate(self.predictor, *graph_layers(graph, self.fallback), network=False)

        def get_estimation(self, graph) -> float:
            """Latency in ms of the network whose output is ``graph``, as the predictor
            predicts architectures."""
            return self._record(_estimate(self.predictor, *graph_layers(graph, self.fallback),
                                          network=True))

    for cls in (HwnasLatencyEstimator, HwnasLatencyGraphEstimator):
        cls.__module__ = __name__
        cls.__qualname__ = cls.__name__
        _CLASSES[cls.__name__] = cls
    return _CLASSES


def __getattr__(name: str) -> type:
    """HwnasLatencyEstimator and HwnasLatencyGraphEstimator, defined on first use."""
    if name in ESTIMATORS:
        return _define_estimators()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def register() -> None:
    """Make both estimators known to NNabla NAS's configuration by class name (its
    ``get_regularizer`` looks names up in ``nnabla_nas.utils.estimator``)."""
    classes = _define_estimators()
    estimator = importlib.import_module("nnabla_nas.utils.estimator")
    for name, cls in classes.items():
        setattr(estimator, name, cls)


class _CpuStreamEventHandler:
    """Stands in for nnabla_ext.cuda's StreamEventHandler, which only multi-process (GPU) runs
    use: no stream events on one CPU process."""

    def __init__(self, device_id: int = 0):
        self.device_id = device_id

    def default_stream_synchronize(self) -> None:
        """Nothing to synchronise."""

    def add_default_stream_event(self) -> None:
        """Nothing to record."""


def _import_cli() -> types.ModuleType:
    """NNabla NAS's command line module, made to run on the ``cpu`` context too: it imports
    ``nnabla_ext.cuda`` (and exits where the CUDA extension is absent) for a handler that only
    multi-process runs use, and parses the context's device id, which the cpu context leaves
    empty, as an integer. Without the extension a no-op handler stands in while it imports,
    and an empty device id reads as 0."""
    cli: Any  # nnabla_nas is untyped, and get_extension_context is replaced below
    try:
        importlib.import_module("nnabla_ext.cuda")
    except ImportError:
        stub: Any = types.ModuleType("nnabla_ext.cuda")  # Any: it gets a class set below
        stub.StreamEventHandler = _CpuStreamEventHandler
        sys.modules["nnabla_ext.cuda"] = stub
        try:
            cli = importlib.import_module("nnabla_nas.utils.cli.cli")
        finally:
            del sys.modules["nnabla_ext.cuda"]  # nothing else may take it for the extension
    else:
        cli = importlib.import_module("nnabla_nas.utils.cli.cli")
    context_of = cli.get_extension_context

    def get_extension_context(*args: Any, **kwargs: Any):
        ctx = context_of(*args, **kwargs)
        if ctx.device_id == "":
            ctx.device_id = "0"
        return ctx

    cli.get_extension_context = get_extension_context
    return cli


PROG = "python -m hwnas.integrations.nnabla_nas"


def main() -> int:
    """NNabla NAS's command line (its Hydra ``main.py``, reading sys.argv) with the hwnas
    estimators registered; run it with ``hwnas._cli.run`` for hwnas's error reporting."""
    register()
    hydra = require("hydra", "the NNabla NAS command line")
    cli = _import_cli()
    failed: list[Exception] = []

    @hydra.main(config_path=os.path.join(os.getcwd(), "conf"), config_name="config",
                version_base="1.1")
    def app(cfg) -> None:
        sys.path.append(".")  # as NNabla NAS's main.py does
        try:
            cli.main(cfg)
        except Exception as e:  # raised below, past Hydra's own error report
            failed.append(e)

    app()
    if failed:
        raise failed[0]
    return 0


def choice_blocks(net) -> list:
    """The ChoiceBlocks of a MobileNet SearchNet, in order: one per entry of z."""
    mobilenet = import_nnabla_nas().contrib.classification.mobilenet.modules
    return [m for _, m in net.get_modules() if isinstance(m, mobilenet.ChoiceBlock)]


def get_z(net) -> tuple[int, ...]:
    """hwnas ``mobilenet`` z of a SearchNet's active candidates (same candidate order)."""
    return tuple(int(block._mixed.active_index) for block in choice_blocks(net))


def alphas(net) -> list[np.ndarray]:
    """The architecture logits of a SearchNet, one 1-D array per ChoiceBlock (entry of z)."""
    return [np.asarray(block._mixed._alpha.d, dtype=float).ravel()
            for block in choice_blocks(net)]


def derive_searchnet_z(net, predictor: Any, budget_ms: float, *,
                       space: SearchSpace | None = None, top: int = 1,
                       max_param_bytes: int | None = None,
                       max_activation_bytes: int | None = None) -> list[Derived]:
    """The most likely z of a searched SearchNet (by its alphas) whose predicted latency is
    within ``budget_ms``: ``derive_z`` on hwnas's ``mobilenet`` space (or ``space``, the
    one that the SearchNet's settings match).

    Example:
        >>> best = derive_searchnet_z(net, "p.json", budget_ms=5.0)[0]  # doctest: +SKIP
        >>> set_z(net, best.z)  # doctest: +SKIP
    """
    space = get_space("mobilenet") if space is None else space
    return derive_z(space, _predictor(predictor), alphas(net), budget_ms, top=top,
                    max_param_bytes=max_param_bytes, max_activation_bytes=max_activation_bytes)


def set_z(net, z: Sequence[int], space: SearchSpace | None = None) -> None:
    """Activate the candidates of hwnas ``mobilenet`` z in a SearchNet."""
    blocks = choice_blocks(net)
    if space is not None:
        z = space.check_z(z)[0]
    if len(z) != len(blocks):
        raise InputError(f"z has {len(z)} entries, the SearchNet {len(blocks)} choice blocks")
    for block, choice in zip(blocks, z):
        n = len(block._mixed._ops)
        if not 0 <= int(choice) < n:
            raise InputError(f"choice {choice} is out of range for {block.name!r} ({n} ops)")
        block._mixed.active_index = int(choice)


if __name__ == "__main__":
    # run the imported module's main, so that the classes NNabla NAS finds are the ones that
    # ``import hwnas.integrations.nnabla_nas`` gives
    from hwnas import _cli
    module = importlib.import_module("hwnas.integrations.nnabla_nas")
    sys.exit(_cli.run(lambda argv: module.main(), PROG))
