"""ONNX Runtime backend: each Layer or architecture becomes an ONNX graph run in a session."""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from typing import Callable

import numpy as np

from hwnas._files import atomic_write
from hwnas._imports import require
from hwnas.errors import InputError
from hwnas.layers import Layer, Step, step_shapes, steps
from hwnas.profile._base import Backend, ProfileError, cpu_name, gpu_name
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
    """
    onnx = require("onnx", "ONNX export")
    helper, numpy_helper = onnx.helper, onnx.numpy_helper
    rng = np.random.default_rng(seed)
    nodes, inits = [], []

    def const(name: str, value: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(value.astype(np.float32), name))
        return name

    def weight(name: str, shape: Sequence[int], scale: float = 0.1, offset: float = 0.0):
        return const(name, offset + scale * rng.standard_normal(shape))

    def node(op: str, inputs: Sequence[str], out: str, **attrs) -> str:
        nodes.append(helper.make_node(op, list(inputs), [out], name=out, **attrs))
        return out

    const("zero", np.array(0.0))
    const("six", np.array(6.0))

    def step(s: Step, xs: list, shape: tuple[int, int, int], p: str) -> str:
        h, cin, n_in = xs[0], shape[0], int(np.prod(shape))
        if s.kind == "conv":
            fan_in = cin // s.groups * s.kernel ** 2
            w = weight(f"{p}.w", (s.out, cin // s.groups, s.kernel, s.kernel),
                       scale=(2.0 / fan_in) ** 0.5)
            return node("Conv", [h, w], f"{p}.conv", kernel_shape=[s.kernel] * 2,
                        strides=[s.stride] * 2, pads=[s.pad] * 4, group=s.groups)
        if s.kind == "bn":
            h = node("BatchNormalization", [h, weight(f"{p}.gamma", (cin,), 0.1, 1.0),
                                            weight(f"{p}.beta", (cin,)),
                                            weight(f"{p}.mean", (cin,)),
                                            weight(f"{p}.var", (cin,), 0.1, 1.0)], f"{p}.bn")
            if s.act == "relu6":
                return node("Clip", [h, "zero", "six"], f"{p}.relu6")
            return node("Relu", [h], f"{p}.relu") if s.act == "relu" else h
        if s.kind == "relu":
            return node("Relu", [h], f"{p}.relu")
        if s.kind == "avgpool":
            return node("AveragePool", [h], f"{p}.pool", kernel_shape=[s.kernel] * 2,
                        strides=[s.stride] * 2, pads=[s.pad] * 4, count_include_pad=0)
        if s.kind == "gap":
            return node("GlobalAveragePool", [h], f"{p}.gap")
        if s.kind == "linear":
            h = node("Flatten", [h], f"{p}.flatten", axis=1)
            return node("Gemm", [h, weight(f"{p}.w", (s.out, n_in), n_in ** -0.5),
                                 weight(f"{p}.b", (s.out,))], f"{p}.gemm", transB=1)
        if s.kind == "add":
            return node("Add", xs, f"{p}.add")
        if s.kind == "shuffle":
            c, height, width = shape
            g = s.groups
            # shapes as Constant nodes, not initializers: initializers are the parameters
            split = node("Constant", [], f"{p}.split", value=numpy_helper.from_array(
                np.array([batch, g, c // g, height, width], np.int64)))
            merge = node("Constant", [], f"{p}.merge", value=numpy_helper.from_array(
                np.array([batch, c, height, width], np.int64)))
            h = node("Reshape", [h, split], f"{p}.grouped")
            h = node("Transpose", [h], f"{p}.swapped", perm=[0, 2, 1, 3, 4])
            return node("Reshape", [h, merge], f"{p}.shuffle")
        raise ProfileError(f"ONNX export cannot build step {s.kind!r}")

    def apply(i: int, layer: Layer, xs: list) -> str:
        tensors, shapes = list(xs), step_shapes(layer)
        for j, s in enumerate(steps(layer)):
            tensors.append(step(s, [tensors[k] for k in s.inputs], shapes[s.inputs[0]],
                                f"{i}_{layer.op}.{j}"))
        return tensors[-1]

    inputs = [("x", [batch, *graph[0][0].in_shape])]

    def zeros(layer: Layer) -> str:  # an input, not a constant ONNX Runtime would fold away
        inputs.append((f"zeros_{len(inputs)}", [batch, *layer.in_shape]))
        return inputs[-1][0]

    y, unused = walk(graph, "x", zeros, apply)
    node("Identity", [y], "y")
    last = graph[-1][0]
    out_shape = [batch, last.out_channels] if last.op == "linear" else [batch, *last.out_shape]
    FLOAT = onnx.TensorProto.FLOAT
    model = helper.make_model(
        helper.make_graph(
            nodes, "hwnas", [helper.make_tensor_value_info(n, FLOAT, s) for n, s in inputs],
            [helper.make_tensor_value_info("y", FLOAT, out_shape)] +
            [helper.make_tensor_value_info(name, FLOAT, [batch, *layer.out_shape])
             for name, layer in unused], inits),
        opset_imports=[helper.make_opsetid("", OPSET)], producer_name="hwnas")
    model.ir_version = min(model.ir_version, 8)  # loadable by older ONNX Runtime releases
    onnx.checker.check_model(model)
    return model


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

    name = "onnxruntime"

    def __init__(self, context: str = "cpu", device_id: int = 0, batch: int = 1,
                 threads: int = 1, optimization: str = "all", seed: int = 0):
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

