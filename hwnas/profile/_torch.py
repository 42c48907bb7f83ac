"""PyTorch backend: each Layer or architecture becomes a torch module, timed in eval mode under
``torch.inference_mode()`` on the CPU (``--threads``) or a CUDA GPU (context ``cuda``).

Measuring imports only torch and numpy (and tqdm where present): it runs on a bare GPU machine
with PyTorch and without scikit-learn, SciPy or Optuna. The modules come from
``_torch_net`` (torch only, which an export copies for its runner), fed the plain form of
hwnas's steps (``plain_graph``), so every backend builds what ``hwnas.layers.steps`` defines.
"""

from __future__ import annotations

import functools
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from hwnas._checks import is_integer
from hwnas._imports import require
from hwnas.errors import InputError
from hwnas.layers import step_shapes, steps
from hwnas.profile._base import Backend, ProfileError, cpu_name
from hwnas.profile._timing import tune_malloc
from hwnas.spaces import Graph
from hwnas.tables import Fingerprint

if TYPE_CHECKING:
    from hwnas.profile._torch_net import GraphNet

CONTEXTS = ("cpu", "cuda")


def plain_graph(graph: Graph) -> list[dict[str, Any]]:
    """The graph as plain data (JSON-safe) that ``_torch_net.build_network`` builds: per node
    its inputs, input shape and steps (``hwnas.layers.Step`` fields plus the shape of the
    step's first input).

    Example:
        >>> from hwnas.layers import Layer
        >>> from hwnas.spaces import unit_graph
        >>> node = plain_graph(unit_graph(Layer("conv", (3, 8, 8), 4)))[0]
        >>> node["inputs"], [s["kind"] for s in node["steps"]], node["steps"][0]["shape"]
        ([-1], ['conv', 'bn'], [3, 8, 8])
    """
    nodes = []
    for layer, inputs in graph:
        shapes = step_shapes(layer)
        nodes.append({"inputs": list(inputs), "shape": list(layer.in_shape),
                      "steps": [{**asdict(s), "inputs": list(s.inputs),
                                 "shape": list(shapes[s.inputs[0]])} for s in steps(layer)]})
    return nodes


def torch_module(graph: Graph, *, seed: int | None = 0, batch_stats: bool = False
                 ) -> GraphNet:
    """The graph (``arch.graph``, ``chain(layers)``, ``unit_graph(layer)``) as a
    ``torch.nn.Module`` on the CPU whose forward takes (N, C, H, W).

    Args:
        graph: the layers and their inputs.
        seed: seeded random weights (what the backend times), or None for PyTorch's own
            initialisation from the global generator (a network to train).
        batch_stats: batch norm always normalises with the batch's statistics (a supernet).

    Its parameters plus batch norm's running statistics are the layers' ``params``.

    Example:
        >>> from hwnas.spaces import get_space
        >>> space = get_space("nb201")
        >>> net = torch_module(space.decode((3,) * 6).graph)  # doctest: +SKIP
        >>> net(torch.zeros(2, 3, 32, 32)).shape  # doctest: +SKIP
        torch.Size([2, 10])
    """
    torch_net = _torch_net()
    try:
        return torch_net.build_network(plain_graph(graph), seed, batch_stats)
    except ValueError as e:
        raise ProfileError(f"the torch backend cannot build it: {e}") from None


def _torch_net():
    require("torch", "the torch backend")
    from hwnas.profile import _torch_net
    return _torch_net


class TorchBackend(Backend):
    """Times layers with PyTorch on context ``cpu`` (``threads`` intra-op threads) or ``cuda``
    (GPU ``device_id``), float32, eval mode, under ``torch.inference_mode()``.

    Weights, batch-norm statistics and inputs are seeded random numbers (latency depends on
    the data); each timed pass on a GPU ends with a synchronisation (the timing protocol
    warms up and repeats, and assumes nothing about clocks). cuDNN's autotuner stays off
    (``torch.backends.cudnn.benchmark``, PyTorch's default): it picks kernels by timing them,
    so two processes could time different kernels.
    """

    name = "torch"

    def __init__(self, context: str = "cpu", device_id: int = 0, batch: int = 1,
                 threads: int = 1, seed: int = 0):
        if context not in CONTEXTS:
            raise InputError(f"unknown torch context {context!r}: expected one of {CONTEXTS}")
        bad = [f"{name} must be an integer >= {least}, got {value!r}" for name, value, least in
               (("threads", threads, 1), ("batch", batch, 1), ("device_id", device_id, 0))
               if not (is_integer(value) and value >= least)]
        if bad:
            raise InputError(f"torch backend: {'; '.join(bad)}")
        tune_malloc()
        self._torch = require("torch", "the torch backend")
        self.context, self.device_id, self.batch = context, device_id, batch
        self.threads, self.seed = threads, seed
        try:
            self._device = _torch_net().device_of(context, device_id)
        except RuntimeError as e:
            raise ProfileError(str(e)) from None

    @functools.cache  # noqa: B019 (one per backend)
    def fingerprint(self) -> Fingerprint:
        torch_net = _torch_net()
        device = f"cpu: {cpu_name()}" if self.context == "cpu" else \
            f"cuda: {self._torch.cuda.get_device_name(self._device)}"
        return Fingerprint("torch", torch_net.backend_version(), device, self.threads,
                           "float32", self.batch)

    def build(self, graph: Graph) -> Callable[[], None]:
        torch = self._torch
        if torch.get_num_threads() != self.threads:  # process-wide: set for what is timed
            torch.set_num_threads(self.threads)
        net = torch_module(graph, seed=self.seed).to(self._device).eval()
        x = torch.from_numpy(np.random.default_rng(self.seed).standard_normal(
            (self.batch, *graph[0][0].in_shape)).astype(np.float32)).to(self._device)
        with torch.inference_mode():
            y = net(x)
        if tuple(y.shape[:2]) != (self.batch, graph[-1][0].out_channels) or \
                not bool(torch.isfinite(y).all()):
            raise ProfileError(f"unexpected output {tuple(y.shape)} (finite: "
                               f"{bool(torch.isfinite(y).all())})")
        return _torch_net().forward_runner(net, x)
