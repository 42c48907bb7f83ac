"""NNabla NAS (nnabla-nas 0.15.0) integration: a fitted hwnas predictor as that framework's
latency estimator, its command line with the estimator registered, and z for its MobileNet
SearchNet.

``HwnasLatencyEstimator`` is a subclass of ``nnabla_nas.utils.estimator.LatencyEstimator``
(module-based) and ``HwnasLatencyGraphEstimator`` of its ``LatencyGraphEstimator``
(graph-based), so NNabla NAS's ProxylessNAS searcher takes them as regularizers: nothing is
timed, and no module's weights are touched (its own profiler zeroes them). Both live in
``hwnas.integrations._nnabla_estimators``, imported on first use, since nnabla-nas needs
nnabla (Python <= 3.10): this module imports without it, and naming a class without it raises
MissingDependency.

Modules map to hwnas Layers with their shapes: ``InvertedResidual`` -> ``mbconv``; Conv +
BatchNormalization [+ ReLU/ReLU6] -> ``conv``; a lone BatchNormalization [+ ReLU] -> ``bn``;
``Add2`` -> ``add``; ``GlobalAvgPool`` -> ``gap``; ``Linear`` -> ``linear``; ``Identity``,
``Zero`` and ``Dropout`` cost nothing; a ``MixedOp`` costs its active candidate. Graphs map
function by function in the same way (an expand 1x1 conv, a depthwise conv and a linear
projection [+ the residual Add2] -> ``mbconv``). Anything else is an error naming it, or goes
to a ``fallback(module_or_function, in_shape) -> ms``.

    python -m hwnas.integrations.nnabla_nas <NNabla NAS's Hydra arguments>

runs NNabla NAS's own command line (as its ``main.py`` does: configuration ``conf/config.yaml``
under the working directory, or ``--config-path``) with both estimators registered; it says
first (UNPICKLES) that NNabla NAS's own dataset loaders unpickle the data files they read
(its CIFAR-10 loader: ``numpy.load(allow_pickle=True)`` on the batches of the archive it
downloads or finds in nnabla's data cache), which runs any code a crafted file holds: point it
only at data you trust. hwnas itself never unpickles anything. So a
configuration may name ``"regularizer": {"HwnasLatencyEstimator": {"predictor": "p.json",
"bound_ms": 5, "weight": 0.1}}``. The bound in ms is ``bound_ms``; ``bound``, NNabla NAS's own
name for it (its estimators' keyword and the ``_bound`` its searcher reads), works too.

Constraint mode: ``weight="adaptive"`` makes the reward's exponent a Lagrange multiplier set
by dual ascent (``hwnas.integrations.BudgetConstraint``): after every ``samples`` estimates
(the architectures ProxylessNAS samples per validation step, 10) it moves by ``step`` x
(L / bound_ms - 1), L the mean of their latencies or, with ``quantile``, that quantile. At the
end, ``derive_searchnet_z`` gives the most likely z of the searched alphas within the bound.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import types
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Callable, cast

import numpy as np

from hwnas._checks import count, positive
from hwnas._imports import require
from hwnas.errors import InputError, UnmappedModuleError
from hwnas.integrations._constraint import BudgetConstraint
from hwnas.integrations._derive import Derived, derive_z
from hwnas.layers import Layer
from hwnas.predictors import Predictor, load_predictor
from hwnas.spaces import SearchSpace, get_space

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


class _Functions:
    """The functions of an nnabla graph in the order they run, read front to back: each step
    takes the functions it consumes, so none is read twice or skipped."""

    def __init__(self, output):
        funcs: list = []
        output.visit(funcs.append)
        self._ahead = deque(funcs)

    def peek(self):
        """The next function, or None at the end."""
        return self._ahead[0] if self._ahead else None

    def take(self):
        """Consume the next function."""
        return self._ahead.popleft()

    def next_is(self, type_name: str) -> bool:
        """Whether the next function is a ``type_name``."""
        g = self.peek()
        return g is not None and g.info.type_name == type_name

    def take_if(self, type_name: str, after=None):
        """Consume the next function if it is a ``type_name`` (taking ``after``'s output
        first, where given); else None."""
        if not self.next_is(type_name) or (after is not None and not _feeds(after, self.peek())):
            return None
        return self.take()

    def take_activation(self, f) -> str:
        """The activation (or "none") applied to f's output next, consumed."""
        act = _activation(f, self.peek())
        if act != "none":
            self.take()
        return act


@dataclass(frozen=True, eq=False)
class _Conv:
    """Convolution (no bias) + BatchNormalization [+ ReLU/ReLU6] of a graph: an hwnas conv
    layer's fields, and the Variables it reads and writes."""

    in_shape: Shape
    out: int
    k: int
    s: int
    g: int
    act: str
    input: Any
    output: Any

    def layer(self) -> Layer:
        """This unit as an hwnas conv Layer."""
        return Layer("conv", self.in_shape, self.out, kernel=self.k, stride=self.s,
                     groups=self.g, act=self.act)


def _take_conv(functions: _Functions) -> _Conv:
    """The Convolution + BatchNormalization [+ activation] next in ``functions``."""
    f = functions.take()
    bn = functions.take_if("BatchNormalization", after=f)
    if len(f.inputs) > 2 or bn is None:
        raise UnmappedModuleError("a Convolution maps to an hwnas conv layer only without bias "
                                  "and followed by BatchNormalization")
    args = f.info.args
    _, _, kh, kw = f.inputs[1].shape
    stride, pad = tuple(args["stride"]), tuple(args["pad"])
    if kh != kw or stride[0] != stride[1] or pad != ((kh - 1) // 2,) * 2 \
            or tuple(args.get("dilation", (1, 1))) != (1, 1):
        raise UnmappedModuleError(f"Convolution {kh}x{kw} stride {stride} pad {pad}: only "
                                  f"square kernels and strides with 'same' padding map to hwnas")
    last = functions.peek()
    act = functions.take_activation(bn)
    return _Conv(tuple(f.inputs[0].shape[1:]), int(f.inputs[1].shape[0]), int(kh),
                 int(stride[0]), int(args["group"]), act, f.inputs[0],
                 (last if act != "none" else bn).outputs[0])


def _expands(conv: _Conv, dw: _Conv) -> bool:
    """conv is the 1x1 ReLU6 expansion that feeds the depthwise conv dw."""
    return conv.k == 1 and conv.g == 1 and conv.act == "relu6" and conv.output == dw.input


def _projects(dw: _Conv, conv: _Conv) -> bool:
    """dw is a depthwise ReLU6 conv and conv the linear 1x1 projection of its output."""
    return dw.g == dw.in_shape[0] > 1 and dw.act == "relu6" and conv.input == dw.output \
        and conv.k == 1 and conv.g == 1 and conv.act == "none"


def _block_size(convs: Sequence[_Conv]) -> int:
    """How many of the convs, from the first, make an inverted residual block: 3 (a 1x1
    expansion, a depthwise conv, a 1x1 projection), 2 (no expansion) or 0 (no block)."""
    if len(convs) >= 3 and _expands(convs[0], convs[1]) and _projects(convs[1], convs[2]):
        return 3
    return 2 if len(convs) >= 2 and _projects(convs[0], convs[1]) else 0


def _mbconv(block: Sequence[_Conv]) -> Layer:
    """The mbconv Layer of an inverted residual block's convs ([expansion,] depthwise,
    projection)."""
    first, dw, project = block[0], block[-2], block[-1]
    in_shape, hidden = first.in_shape, dw.in_shape[0]
    if hidden % in_shape[0]:
        raise UnmappedModuleError(f"an inverted residual block widens {in_shape[0]} to {hidden} "
                                  f"channels: hwnas mbconv needs an integer expand ratio")
    return Layer("mbconv", in_shape, project.out, kernel=dw.k, stride=dw.s,
                 expand=hidden // in_shape[0])


def _no_residual(layer: Layer) -> UnmappedModuleError:
    return UnmappedModuleError(f"an inverted residual block {layer.key} without its residual "
                               f"Add2")


def _conv_layers(convs: Sequence[_Conv]) -> tuple[list[Layer], Any]:
    """The Layers of consecutive conv units (inverted residual blocks as mbconv, the rest as
    conv), and the input Variable of the last one where it is a block whose residual Add2
    comes next (else None)."""
    layers: list[Layer] = []
    residual_of = None
    while convs:
        if residual_of is not None:  # a block with a residual is followed by its Add2
            raise _no_residual(layers[-1])
        n = _block_size(convs)
        if n == 0:
            layers.append(convs[0].layer())
            convs = convs[1:]
            continue
        layer = _mbconv(convs[:n])
        layers.append(layer)
        if layer.stride == 1 and layer.in_shape[0] == layer.out_channels:
            residual_of = convs[0].input
        convs = convs[n:]
    return layers, residual_of


def _function_layer(f, shape: Shape, functions: _Functions) -> Layer | None:
    """The Layer of one graph function other than a Convolution, with input ``shape`` (a
    BatchNormalization takes its activation from ``functions``), or None where none maps."""
    name = f.info.type_name
    if name == "BatchNormalization":
        return Layer("bn", shape, act=functions.take_activation(f))
    if name == "Add2":
        return Layer("add", shape)
    if name == "GlobalAveragePooling":
        return Layer("gap", shape)
    if name == "Affine":
        return Layer("linear", (int(np.prod(shape)), 1, 1), int(f.inputs[1].shape[1]))
    return None


def graph_layers(output, fallback: Fallback | None = None) -> tuple[list[Layer], float]:
    """The hwnas Layers that an nnabla graph (its output Variable) runs, in order, and the
    fallback ms of functions with no Layer."""
    functions = _Functions(output)
    layers: list[Layer] = []
    extra_ms = 0.0
    while (f := functions.peek()) is not None:
        if functions.next_is("Convolution"):
            convs = [_take_conv(functions)]
            while functions.next_is("Convolution"):
                convs.append(_take_conv(functions))
            found, residual_of = _conv_layers(convs)
            layers += found
            if residual_of is not None:
                add = functions.take_if("Add2")
                if add is None or not any(v == residual_of for v in add.inputs):
                    raise _no_residual(found[-1])
            continue
        functions.take()
        shape: Shape = tuple(f.inputs[0].shape[1:]) if f.inputs else ()
        layer = _function_layer(f, shape, functions)
        if layer is not None:
            layers.append(layer)
        elif fallback is not None:
            extra_ms += float(fallback(f, shape))
        else:
            raise UnmappedModuleError(f"cannot map nnabla function {f.info.type_name} with "
                                      f"input {shape} to an hwnas Layer: give the estimator a "
                                      f"fallback")
    return layers, extra_ms


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

    @staticmethod
    def bound_of(bound_ms: Any, bound: Any) -> Any:
        """The bound in ms, given as ``bound_ms`` or under NNabla NAS's own name ``bound``
        (its estimators' keyword, which configurations use); 5 ms, NNabla NAS's default,
        where neither is given."""
        if bound is None:
            return 5.0 if bound_ms is None else \
                positive("bound_ms", bound_ms, convert=True, noun="a latency in ms")
        if bound_ms is not None:
            raise InputError(f"give bound_ms or bound (NNabla NAS's name for it), not both: "
                             f"got {bound_ms!r} and {bound!r}")
        return bound

    @property
    def bound_ms(self) -> float:
        """The latency bound in ms (``_bound``, as NNabla NAS's searcher reads it)."""
        return self._bound

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


def __getattr__(name: str) -> type:
    """HwnasLatencyEstimator and HwnasLatencyGraphEstimator, from the module that imports
    nnabla_nas (imported on first use, so that this one imports without nnabla)."""
    if name in ESTIMATORS:
        return getattr(_estimators(), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _estimators() -> types.ModuleType:
    """hwnas.integrations._nnabla_estimators, once nnabla_nas imports (else MissingDependency)."""
    import_nnabla_nas()
    return importlib.import_module("hwnas.integrations._nnabla_estimators")


def register() -> None:
    """Make both estimators known to NNabla NAS's configuration by class name (its
    ``get_regularizer`` looks names up in ``nnabla_nas.utils.estimator``)."""
    classes = _estimators()
    estimator = importlib.import_module("nnabla_nas.utils.estimator")
    for name in ESTIMATORS:
        setattr(estimator, name, getattr(classes, name))


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
#: what the command says before it runs NNabla NAS's (see the module's docstring)
UNPICKLES = (f"{PROG}: note: NNabla NAS's own dataset loaders unpickle the data files they read "
             f"(its CIFAR-10 loader: numpy.load(allow_pickle=True)), which runs any code a "
             f"crafted file holds: use only data you trust (its own download, nnabla's data "
             f"cache)")


def main() -> int:
    """NNabla NAS's command line (its Hydra ``main.py``, reading sys.argv) with the hwnas
    estimators registered; run it with ``hwnas._cli.run`` for hwnas's error reporting."""
    register()
    hydra = require("hydra", "the NNabla NAS command line")
    print(UNPICKLES, file=sys.stderr)
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
