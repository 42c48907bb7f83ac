"""ONNX Runtime backend: each Layer or architecture becomes an ONNX graph run in a session."""

from __future__ import annotations

import os
from typing import Callable, Sequence

import numpy as np

from hwnas._imports import require
from hwnas.layers import Layer
from hwnas.profile._base import Backend, ProfileError, cpu_name, gpu_name
from hwnas.profile._timing import tune_malloc
from hwnas.spaces import Graph
from hwnas.spaces import walk
from hwnas.tables import Fingerprint

PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}
OPTIMIZATION_LEVELS = ("disable", "basic", "extended", "all")
OPSET = 13


def to_onnx(graph: Graph, batch: int = 1, seed: int = 0):
    """The graph as an ONNX model (opset 13) with random float32 weights.

    Input ``x`` is (batch, C, H, W); output ``y``. Nodes that nothing consumes are extra
    outputs, and zero tensors (a cell node no edge feeds) extra inputs ``zeros_*``, so that
    the network computes every node (see ``hwnas.spaces.walk``). Batch norm is in inference form, as a
    deployed network has it (ONNX Runtime folds it into the convolution when optimising).
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

    def conv(h: str, cin: int, cout: int, k: int, s: int, g: int, p: str) -> str:
        w = weight(f"{p}.w", (cout, cin // g, k, k), scale=(2.0 / (cin // g * k * k)) ** 0.5)
        return node("Conv", [h, w], f"{p}.conv", kernel_shape=[k, k], strides=[s, s],
                    pads=[(k - 1) // 2] * 4, group=g)

    def bn(h: str, c: int, act: str, p: str) -> str:
        h = node("BatchNormalization", [h, weight(f"{p}.gamma", (c,), 0.1, 1.0),
                                        weight(f"{p}.beta", (c,)), weight(f"{p}.mean", (c,)),
                                        weight(f"{p}.var", (c,), 0.1, 1.0)], f"{p}.bn")
        if act == "relu6":
            return node("Clip", [h, "zero", "six"], f"{p}.relu6")
        if act == "relu":
            return node("Relu", [h], f"{p}.relu")
        return h

    def relu_conv_bn(h: str, cin: int, cout: int, k: int, s: int, p: str) -> str:
        h = node("Relu", [h], f"{p}.relu")
        return bn(conv(h, cin, cout, k, s, 1, p), cout, "none", p)

    def avgpool(h: str, k: int, s: int, pad: int, p: str) -> str:
        return node("AveragePool", [h], f"{p}.pool", kernel_shape=[k, k], strides=[s, s],
                    pads=[pad] * 4, count_include_pad=0)

    def apply(i: int, layer: Layer, xs: list) -> str:
        h, p, c, out = xs[0], f"{i}_{layer.op}", layer.in_shape[0], layer.out_channels
        if layer.op == "conv":
            return bn(conv(h, c, out, layer.kernel, layer.stride, layer.groups, p), out,
                      layer.act, p)
        if layer.op == "mbconv":
            hidden = int(round(c * layer.expand))
            if layer.expand != 1:
                h = bn(conv(h, c, hidden, 1, 1, 1, f"{p}.expand"), hidden, "relu6",
                       f"{p}.expand")
            h = bn(conv(h, hidden, hidden, layer.kernel, layer.stride, hidden, f"{p}.dw"),
                   hidden, "relu6", f"{p}.dw")
            h = bn(conv(h, hidden, out, 1, 1, 1, f"{p}.project"), out, "none", f"{p}.project")
            if layer.stride == 1 and c == out:
                h = node("Add", [xs[0], h], f"{p}.add")
            return h
        if layer.op == "relu_conv_bn":
            return relu_conv_bn(h, c, out, layer.kernel, layer.stride, p)
        if layer.op == "avgpool":
            return avgpool(h, layer.kernel, layer.stride, (layer.kernel - 1) // 2, p)
        if layer.op == "resblock":
            a = relu_conv_bn(h, c, out, 3, layer.stride, f"{p}.a")
            b = relu_conv_bn(a, out, out, 3, 1, f"{p}.b")
            shortcut = conv(avgpool(h, 2, 2, 0, f"{p}.sc"), c, out, 1, 1, 1, f"{p}.sc")
            return node("Add", [shortcut, b], f"{p}.add")
        if layer.op == "bn":
            return bn(h, c, layer.act, p)
        if layer.op == "add":
            return node("Add", xs, f"{p}.add")
        if layer.op == "gap":
            return node("GlobalAveragePool", [h], f"{p}.gap")
        if layer.op == "linear":
            n_in = int(np.prod(layer.in_shape))
            h = node("Flatten", [h], f"{p}.flatten", axis=1)
            return node("Gemm", [h, weight(f"{p}.w", (out, n_in), n_in ** -0.5),
                                 weight(f"{p}.b", (out,))], f"{p}.gemm", transB=1)
        raise ProfileError(f"ONNX export cannot build op {layer.op!r}")

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
    """Write a graph (e.g. ``arch.graph``) as an .onnx file."""
    onnx = require("onnx", "ONNX export")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    onnx.save(to_onnx(graph, batch), os.fspath(path))


class OnnxRuntimeBackend(Backend):
    """Times layers with ONNX Runtime: provider ``cpu`` or ``cuda``, ``threads`` intra-op
    threads, and graph optimisation ``all`` by default (fusions on, as a deployment runs)."""

    name = "onnxruntime"

    def __init__(self, context: str = "cpu", device_id: int = 0, batch: int = 1,
                 threads: int = 1, optimization: str = "all", seed: int = 0):
        tune_malloc()
        ort = require("onnxruntime", "the onnxruntime backend")
        if context not in PROVIDERS:
            raise ValueError(f"unknown onnxruntime provider {context!r}: expected one of "
                             f"{sorted(PROVIDERS)}")
        if optimization not in OPTIMIZATION_LEVELS:
            raise ValueError(f"unknown graph optimisation {optimization!r}: expected one of "
                             f"{OPTIMIZATION_LEVELS}")
        if PROVIDERS[context] not in ort.get_available_providers():
            raise ProfileError(f"onnxruntime provider {context!r} is not available: the cuda "
                               f"provider needs onnxruntime-gpu and a CUDA GPU")
        self.context, self.device_id, self.batch = context, device_id, batch
        self.threads, self.optimization, self.seed = threads, optimization, seed
        self._ort = ort

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

