"""ONNX Runtime backend: each Layer or architecture becomes an ONNX graph run in a session."""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from typing import Callable

import numpy as np

from hwnas._checks import count
from hwnas._files import atomic_write
from hwnas._imports import require
from hwnas.errors import InputError
from hwnas.layers import Layer, Step, step_shapes, steps
from hwnas.profile._base import Backend, ProfileError, cpu_name, gpu_name
from hwnas.profile._stats import FILLED_ROUND_S
from hwnas.profile._timing import tune_malloc
from hwnas.spaces import Graph, walk
from hwnas.tables import Fingerprint

PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}
OPTIMIZATION_LEVELS = ("disable", "basic", "extended", "all")
OPSET = 13


def to_onnx(graph: Graph, batch: int = 1, seed: int = 0):
    """The graph as an ONNX model (opset 13) with random float32 weights.

    Input ``x`` is (batch, C, H, W); output ``y``. Nodes that nothing consumes are extra
    outputs, and zero tensors (a cell node no edge feeds) extra inputs ``zeros_*``, so that
    the network computes every node (see ``hwnas.spaces.walk``). Batch norm is in inference
    form, as a deployed network has it (ONNX Runtime folds it into the convolution when
    optimising).

    Example:
        >>> from hwnas.spaces import get_space
        >>> space = get_space("mobilenet")
        >>> model = to_onnx(space.decode([0] * len(space.decisions)).graph)
        >>> [i.name for i in model.graph.input], [o.name for o in model.graph.output]
        (['x'], ['y'])
    """
    onnx = require("onnx", "ONNX export")
    helper = onnx.helper
    build = _OnnxGraph(onnx, batch, seed)
    inputs = [("x", [batch, *graph[0][0].in_shape])]

    def zeros(layer: Layer) -> str:  # an input, not a constant ONNX Runtime would fold away
        inputs.append((f"zeros_{len(inputs)}", [batch, *layer.in_shape]))
        return inputs[-1][0]

    y, unused = walk(graph, "x", zeros, build.layer)
    build.node("Identity", [y], "y")
    last = graph[-1][0]
    out_shape = [batch, last.out_channels] if last.op == "linear" else [batch, *last.out_shape]
    FLOAT = onnx.TensorProto.FLOAT
    model = helper.make_model(
        helper.make_graph(
            build.nodes, "hwnas",
            [helper.make_tensor_value_info(n, FLOAT, s) for n, s in inputs],
            [helper.make_tensor_value_info("y", FLOAT, out_shape)] +
            [helper.make_tensor_value_info(name, FLOAT, [batch, *layer.out_shape])
             for name, layer in unused], build.inits),
        opset_imports=[helper.make_opsetid("", OPSET)], producer_name="hwnas")
    model.ir_version = min(model.ir_version, 8)  # loadable by older ONNX Runtime releases
    onnx.checker.check_model(model)
    return model


class _OnnxGraph:
    """The nodes and initialisers of one ONNX graph as its layers' steps are added, with one
    method per step kind (``_STEPS``); weights are drawn from one generator in graph order,
    so a seed gives the same model."""

    def __init__(self, onnx, batch: int, seed: int):
        self.helper, self.numpy_helper = onnx.helper, onnx.numpy_helper
        self.batch = batch
        self.rng = np.random.default_rng(seed)
        self.nodes: list = []
        self.inits: list = []
        self.const("zero", np.array(0.0))
        self.const("six", np.array(6.0))

    def const(self, name: str, value: np.ndarray) -> str:
        self.inits.append(self.numpy_helper.from_array(value.astype(np.float32), name))
        return name

    def weight(self, name: str, shape: Sequence[int], scale: float = 0.1,
               offset: float = 0.0) -> str:
        return self.const(name, offset + scale * self.rng.standard_normal(shape))

    def node(self, op: str, inputs: Sequence[str], out: str, **attrs) -> str:
        self.nodes.append(self.helper.make_node(op, list(inputs), [out], name=out, **attrs))
        return out

    def dims(self, out: str, values: Sequence[int]) -> str:
        """A shape as a Constant node, not an initialiser: initialisers are the parameters."""
        return self.node("Constant", [], out,
                         value=self.numpy_helper.from_array(np.array(values, np.int64)))

    def layer(self, i: int, layer: Layer, xs: list) -> str:
        """Add the layer's steps (``walk``'s ``apply``); returns its output tensor."""
        tensors, shapes = list(xs), step_shapes(layer)
        for j, s in enumerate(steps(layer)):
            build = _STEPS.get(s.kind)
            if build is None:
                raise ProfileError(f"ONNX export cannot build step {s.kind!r}")
            tensors.append(build(self, s, [tensors[k] for k in s.inputs], shapes[s.inputs[0]],
                                 f"{i}_{layer.op}.{j}"))
        return tensors[-1]

    def conv(self, s: Step, xs: list, shape: tuple[int, int, int], p: str) -> str:
        cin = shape[0]
        w = self.weight(f"{p}.w", (s.out, cin // s.groups, s.kernel, s.kernel),
                        scale=(2.0 / (cin // s.groups * s.kernel ** 2)) ** 0.5)
        return self.node("Conv", [xs[0], w], f"{p}.conv", kernel_shape=[s.kernel] * 2,
                         strides=[s.stride] * 2, pads=[s.pad] * 4, group=s.groups)

    def bn(self, s: Step, xs: list, shape: tuple[int, int, int], p: str) -> str:
        cin = shape[0]
        h = self.node("BatchNormalization", [xs[0], self.weight(f"{p}.gamma", (cin,), 0.1, 1.0),
                                             self.weight(f"{p}.beta", (cin,)),
                                             self.weight(f"{p}.mean", (cin,)),
                                             self.weight(f"{p}.var", (cin,), 0.1, 1.0)],
                      f"{p}.bn")
        return self.activation(s.act, h, p)

    def activation(self, act: str, h: str, p: str) -> str:
        if act == "relu6":
            return self.node("Clip", [h, "zero", "six"], f"{p}.relu6")
        if act == "h_swish":  # x * relu6(x + 3) / 6 (HardSwish itself is opset 14)
            return self.node("Mul", [h, self.h_sigmoid(h, p)], f"{p}.h_swish")
        return self.node("Relu", [h], f"{p}.relu") if act == "relu" else h

    def h_sigmoid(self, h: str, p: str) -> str:
        return self.node("HardSigmoid", [h], f"{p}.h_sigmoid", alpha=1.0 / 6.0, beta=0.5)

    def relu(self, s: Step, xs: list, shape: tuple[int, int, int], p: str) -> str:
        return self.node("Relu", [xs[0]], f"{p}.relu")

    def act(self, s: Step, xs: list, shape: tuple[int, int, int], p: str) -> str:
        return self.activation(s.act, xs[0], p)

    def se(self, s: Step, xs: list, shape: tuple[int, int, int], p: str) -> str:
        """Squeeze-and-excite: pooled, reduced, expanded, and the input scaled channel-wise."""
        c = shape[0]
        h = self.node("GlobalAveragePool", [xs[0]], f"{p}.se_pool")
        h = self.node("Conv", [h, self.weight(f"{p}.se_w1", (s.out, c, 1, 1), c ** -0.5),
                               self.weight(f"{p}.se_b1", (s.out,))], f"{p}.se_reduce",
                      kernel_shape=[1, 1])
        h = self.node("Relu", [h], f"{p}.se_relu")
        h = self.node("Conv", [h, self.weight(f"{p}.se_w2", (c, s.out, 1, 1), s.out ** -0.5),
                               self.weight(f"{p}.se_b2", (c,))], f"{p}.se_expand",
                      kernel_shape=[1, 1])
        return self.node("Mul", [xs[0], self.h_sigmoid(h, f"{p}.se")], f"{p}.se")

    def avgpool(self, s: Step, xs: list, shape: tuple[int, int, int], p: str) -> str:
        return self.node("AveragePool", [xs[0]], f"{p}.pool", kernel_shape=[s.kernel] * 2,
                         strides=[s.stride] * 2, pads=[s.pad] * 4, count_include_pad=0)

    def gap(self, s: Step, xs: list, shape: tuple[int, int, int], p: str) -> str:
        return self.node("GlobalAveragePool", [xs[0]], f"{p}.gap")

    def linear(self, s: Step, xs: list, shape: tuple[int, int, int], p: str) -> str:
        n_in = int(np.prod(shape))
        h = self.node("Flatten", [xs[0]], f"{p}.flatten", axis=1)
        return self.node("Gemm", [h, self.weight(f"{p}.w", (s.out, n_in), n_in ** -0.5),
                                  self.weight(f"{p}.b", (s.out,))], f"{p}.gemm", transB=1)

    def add(self, s: Step, xs: list, shape: tuple[int, int, int], p: str) -> str:
        return self.node("Add", xs, f"{p}.add")

    def shuffle(self, s: Step, xs: list, shape: tuple[int, int, int], p: str) -> str:
        c, height, width = shape
        split = self.dims(f"{p}.split", [self.batch, s.groups, c // s.groups, height, width])
        merge = self.dims(f"{p}.merge", [self.batch, c, height, width])
        h = self.node("Reshape", [xs[0], split], f"{p}.grouped")
        h = self.node("Transpose", [h], f"{p}.swapped", perm=[0, 2, 1, 3, 4])
        return self.node("Reshape", [h, merge], f"{p}.shuffle")


#: the ONNX nodes of each step kind (hwnas.layers.steps)
_STEPS: dict[str, Callable[..., str]] = {
    kind: getattr(_OnnxGraph, kind)
    for kind in ("conv", "bn", "relu", "act", "se", "avgpool", "gap", "linear", "add",
                 "shuffle")}


def export_onnx(graph: Graph, path: str | os.PathLike, batch: int = 1) -> None:
    """Write a graph (e.g. ``arch.graph``) as an .onnx file, atomically (see atomic_write:
    a failure leaves an earlier file, and a link at ``path`` is replaced, not followed)."""
    require("onnx", "ONNX export")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    model = to_onnx(graph, batch)
    atomic_write(path, model.SerializeToString())


class OnnxRuntimeBackend(Backend):
    """Times layers with ONNX Runtime: provider ``cpu`` or ``cuda``, ``threads`` intra-op
    threads, and graph optimisation ``all`` by default (fusions on, as a deployment runs)."""

    #: its networks run in 0.2-1 ms: a round of 10 runs lasted about 5 ms, and one scheduler
    #: hiccup moved it (73 % of calibrated predictions within +-10 %, nnabla's 100 %): rounds
    #: fill FILLED_ROUND_S (runner.py does the same; benchmarks/accuracy.py --min-round-s
    #: compares)
    min_round_s = FILLED_ROUND_S

    name = "onnxruntime"

    def __init__(self, context: str = "cpu", device_id: int = 0, batch: int = 1,
                 threads: int = 1, optimization: str = "all", seed: int = 0):
        count("batch", batch)
        tune_malloc()
        ort = require("onnxruntime", "the onnxruntime backend")
        if context not in PROVIDERS:
            raise InputError(f"unknown onnxruntime provider {context!r}: expected one of "
                             f"{sorted(PROVIDERS)}")
        if optimization not in OPTIMIZATION_LEVELS:
            raise InputError(f"unknown graph optimisation {optimization!r}: expected one of "
                             f"{OPTIMIZATION_LEVELS}")
        if PROVIDERS[context] not in ort.get_available_providers():
            raise ProfileError(f"onnxruntime provider {context!r} is not available: the cuda "
                               f"provider needs onnxruntime-gpu and a CUDA GPU")
        self.context, self.device_id, self.batch = context, device_id, batch
        self.threads, self.optimization, self.seed = threads, optimization, seed
        self._ort = ort

    @functools.cache  # noqa: B019 (one per backend: a GPU's name comes from nvidia-smi)
    def fingerprint(self) -> Fingerprint:
        device = f"cpu: {cpu_name()}" if self.context == "cpu" else \
            f"cuda: {gpu_name(self.device_id)}"
        return Fingerprint("onnxruntime", f"{self._ort.__version__} opt={self.optimization}",
                           device, self.threads, "float32", self.batch)

    def build(self, graph: Graph) -> Callable[[], None]:
        ort = self._ort
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = {
            "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}[self.optimization]
        options.log_severity_level = 3
        provider = PROVIDERS[self.context]
        provider_options = {"device_id": str(self.device_id)} if self.context == "cuda" else {}
        model = to_onnx(graph, self.batch, self.seed)
        session = ort.InferenceSession(model.SerializeToString(), options,
                                       providers=[(provider, provider_options)])
        feed = {i.name: np.zeros(i.shape, np.float32) for i in session.get_inputs()}
        feed["x"] = np.random.default_rng(self.seed).standard_normal(
            (self.batch, *graph[0][0].in_shape)).astype(np.float32)
        y = session.run(None, feed)[0]
        if y.shape[:2] != (self.batch, graph[-1][0].out_channels) or not np.isfinite(y).all():
            raise ProfileError(f"unexpected output {y.shape} (finite: {np.isfinite(y).all()})")
        # run() returns host arrays, so it returns only once the device has finished
        return lambda: session.run(None, feed)

