"""PyTorch modules of hwnas graphs given as plain data, and one timed forward pass of them.

This module needs only torch (no hwnas, no numpy): an export for a device with PyTorch copies
it beside its runner as ``hwnas_torch.py``, so that the device builds exactly what hwnas's
``torch`` backend builds. ``hwnas.profile._torch.plain_graph`` writes the plain data: a list
of nodes, each ``{"inputs": [...], "shape": [C, H, W], "steps": [...]}``, where an input is -1
(the network input), null (zeros of the node's input shape: a cell node no edge feeds) or an
earlier node's index, and each step is a ``hwnas.layers.Step`` as a dict plus ``shape``, the
shape of its first input.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch
from torch import nn

#: a node input that is the network input (hwnas.spaces.INPUT)
INPUT = -1
STEP_KINDS = ("conv", "bn", "relu", "act", "se", "avgpool", "gap", "linear", "add", "shuffle")
#: h_swish is x * relu6(x + 3) / 6 (MobileNetV3, Once-for-All): torch's Hardswish
ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "none": nn.Identity, "relu": nn.ReLU, "relu6": nn.ReLU6, "h_swish": nn.Hardswish}


class Add(nn.Module):
    """The element-wise sum of two tensors (a residual, or a cell node's sum)."""

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a + b


class SqueezeExcite(nn.Module):
    """Squeeze-and-excite (Once-for-All's): global average pooling, 1x1 conv with bias to
    ``hidden`` channels, ReLU, 1x1 conv with bias back, h_sigmoid = relu6(x + 3) / 6, and the
    input scaled channel-wise by it."""

    def __init__(self, channels: int, hidden: int):
        super().__init__()
        self.gate = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(channels, hidden, 1),
                                  nn.ReLU(), nn.Conv2d(hidden, channels, 1), nn.Hardsigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x)


class ChannelShuffle(nn.Module):
    """ShuffleNet's channel shuffle: (C, H, W) seen as (g, C / g, H, W), first axes swapped."""

    def __init__(self, groups: int):
        super().__init__()
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        return x.reshape(n, self.groups, c // self.groups, h, w).transpose(1, 2) \
            .reshape(n, c, h, w)


def step_module(step: dict[str, Any], batch_stats: bool = False) -> nn.Module:
    """The module of one step. Batch norm keeps running statistics and uses them in eval
    mode (a deployed network), or with ``batch_stats`` always normalises by the batch's (a
    supernet whose mixture moves every step)."""
    kind, (c, h, w) = step["kind"], step["shape"]
    if kind == "conv":
        return nn.Conv2d(c, step["out"], step["kernel"], step["stride"], step["pad"],
                         groups=step["groups"], bias=False)
    if kind == "bn":
        bn = nn.BatchNorm2d(c, track_running_stats=not batch_stats)
        return bn if step["act"] == "none" else nn.Sequential(bn, ACTIVATIONS[step["act"]]())
    if kind == "relu":
        return nn.ReLU()
    if kind == "act":
        return ACTIVATIONS[step["act"]]()
    if kind == "se":
        return SqueezeExcite(c, step["out"])
    if kind == "avgpool":
        return nn.AvgPool2d(step["kernel"], step["stride"], step["pad"], count_include_pad=False)
    if kind == "gap":
        return nn.AdaptiveAvgPool2d(1)
    if kind == "linear":
        return nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, step["out"]))
    if kind == "add":
        return Add()
    if kind == "shuffle":
        return ChannelShuffle(step["groups"])
    raise ValueError(f"unknown step kind {kind!r}: expected one of {STEP_KINDS}")


class LayerNet(nn.Module):
    """One layer: its steps, each on the tensors its ``inputs`` number (the layer's inputs
    first, then each step's output)."""

    def __init__(self, steps: list[dict[str, Any]], batch_stats: bool = False):
        super().__init__()
        self.steps = nn.ModuleList(step_module(s, batch_stats) for s in steps)
        self.step_inputs = [tuple(s["inputs"]) for s in steps]

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        tensors = list(xs)
        for module, inputs in zip(self.steps, self.step_inputs):
            tensors.append(module(*(tensors[k] for k in inputs)))
        return tensors[-1]


class GraphNet(nn.Module):
    """A network of layers (``nodes``); its output is the last node's. Every node runs (eager
    PyTorch drops no node that nothing consumes, as NAS-Bench-201's reference cells run)."""

    def __init__(self, nodes: list[dict[str, Any]], batch_stats: bool = False):
        super().__init__()
        self.layers = nn.ModuleList(LayerNet(n["steps"], batch_stats) for n in nodes)
        self.node_inputs = [tuple(n["inputs"]) for n in nodes]
        for i, node in enumerate(nodes):
            if None in node["inputs"]:  # a tensor added at run time, never folded away
                self.register_buffer(f"zeros_{i}", torch.zeros(1, *node["shape"]),
                                     persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs: list[torch.Tensor] = []
        for i, (layer, inputs) in enumerate(zip(self.layers, self.node_inputs)):
            xs = [x if j == INPUT else outs[j] if j is not None else
                  getattr(self, f"zeros_{i}").expand(x.shape[0], -1, -1, -1) for j in inputs]
            outs.append(layer(*xs))
        return outs[-1]


def randomize(net: nn.Module, seed: int) -> None:
    """Seeded random weights and batch-norm statistics (latency depends on the data: all-zero
    tensors run faster), scaled as the ONNX export scales them."""
    g = torch.Generator().manual_seed(seed)

    def normal(like: torch.Tensor, scale: float, offset: float = 0.0) -> torch.Tensor:
        return offset + scale * torch.randn(like.shape, generator=g)

    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.Conv2d):
                fan_in = m.in_channels // m.groups * math.prod(m.kernel_size)
                m.weight.copy_(normal(m.weight, (2.0 / fan_in) ** 0.5))
            elif isinstance(m, nn.Linear):
                m.weight.copy_(normal(m.weight, m.in_features ** -0.5))
                m.bias.copy_(normal(m.bias, 0.1))
            elif isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(normal(m.weight, 0.1, 1.0))
                m.bias.copy_(normal(m.bias, 0.1))
                if m.running_mean is not None and m.running_var is not None:
                    m.running_mean.copy_(normal(m.running_mean, 0.1))
                    m.running_var.copy_(1.0 + normal(m.running_var, 0.1).abs())


def build_network(nodes: list[dict[str, Any]], seed: int | None = 0,
                  batch_stats: bool = False) -> GraphNet:
    """The GraphNet of plain ``nodes``: with seeded random weights (``randomize``), built
    without touching the caller's random state; ``seed`` None keeps PyTorch's own
    initialisation from the global generator (a network to train)."""
    if seed is None:
        return GraphNet(nodes, batch_stats)
    with torch.random.fork_rng(devices=[]):
        net = GraphNet(nodes, batch_stats)
    randomize(net, seed)
    return net


def forward_runner(net: nn.Module, x: torch.Tensor) -> Callable[[], None]:
    """One forward pass in eval mode under ``torch.inference_mode()``, returning once the
    device has finished it (on a GPU: a synchronisation after the pass; the one before is
    the previous pass's)."""
    net.eval()
    if x.device.type == "cuda":
        device, synchronize = x.device, torch.cuda.synchronize

        def run_cuda() -> None:
            with torch.inference_mode():
                net(x)
            synchronize(device)

        return run_cuda

    def run() -> None:
        with torch.inference_mode():
            net(x)

    return run


def backend_version() -> str:
    """The fingerprint's backend version: torch's, with the CUDA and cuDNN it was built with
    ('none' in a CPU-only build)."""
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    return f"{torch.__version__} cuda={torch.version.cuda or 'none'} cudnn={cudnn or 'none'}"


def device_of(context: str, device_id: int) -> torch.device:
    """The torch device of a context (``cpu`` or ``cuda``), checked to exist."""
    if context == "cpu":
        return torch.device("cpu")
    if context != "cuda":
        raise ValueError(f"unknown torch context {context!r}: expected cpu or cuda")
    if not torch.cuda.is_available() or device_id >= torch.cuda.device_count():
        raise RuntimeError(f"torch context 'cuda' (GPU {device_id}) is not available: "
                           f"torch {torch.__version__} sees {torch.cuda.device_count()} CUDA "
                           f"GPU(s) (a CPU-only build sees none)")
    return torch.device("cuda", device_id)
