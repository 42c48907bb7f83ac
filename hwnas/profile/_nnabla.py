"""nnabla backend: contexts ``cpu`` and ``cudnn`` (nnabla-ext-cuda and a GPU)."""

from __future__ import annotations

import functools
from collections import OrderedDict
from typing import Any, Callable

import numpy as np

from hwnas._imports import require
from hwnas.errors import InputError
from hwnas.layers import Layer, Step, steps
from hwnas.profile._base import Backend, ProfileError, cpu_name, gpu_name
from hwnas.profile._timing import tune_malloc
from hwnas.spaces import Graph, walk
from hwnas.tables import Fingerprint

CONTEXTS = ("cpu", "cudnn")


def _modules():
    nn = require("nnabla", "the nnabla backend")
    _resolve_relative_imports()
    return nn, require("nnabla.functions", "nnabla"), \
        require("nnabla.parametric_functions", "nnabla")


@functools.cache
def _resolve_relative_imports() -> None:
    """nnabla's compiled modules import ``nnabla_ext`` and ``nnabla`` inside functions called
    for every parameter, Python 2 style: first relative to their package, as
    ``nnabla.nnabla_ext`` and ``nnabla.nnabla``, which do not exist, so that every call
    searches sys.path in vain before the absolute import succeeds (2,000 searches, half of a
    network's build time). Those two names are made to resolve at once to the very modules
    the absolute import returns (a mobilenet network builds in 50-65 ms instead of 100-150)."""
    import importlib
    import importlib.util
    import sys
    for name, target in (("nnabla.nnabla_ext", "nnabla_ext"), ("nnabla.nnabla", "nnabla")):
        if name not in sys.modules and importlib.util.find_spec(name) is None:
            sys.modules[name] = importlib.import_module(target)


def build(graph: Graph, x, batch_norm_stats: bool = False):
    """Build ``graph`` on the nnabla Variable ``x`` with parametric functions; return its
    output and the Variable whose forward pass computes every node (see ``walk``).

    Parameters go to the current parameter scope, one sub-scope per node. Batch norm uses its
    running statistics (inference), as a deployed network does.
    """
    nn, F, PF = _modules()

    def h_sigmoid(h):
        return F.mul_scalar(F.relu6(F.add_scalar(h, 3.0)), 1.0 / 6.0)

    act = {"relu": F.relu, "relu6": F.relu6, "none": lambda h: h,
           "h_swish": lambda h: F.mul2(h, h_sigmoid(h))}

    def step(step: Step, xs: list):
        h = xs[0]
        if step.kind == "conv":
            return PF.convolution(h, step.out, (step.kernel,) * 2, pad=(step.pad,) * 2,
                                  stride=(step.stride,) * 2, group=step.groups, with_bias=False)
        if step.kind == "bn":
            return act[step.act](PF.batch_normalization(h, batch_stat=batch_norm_stats))
        if step.kind == "relu":
            return F.relu(h)
        if step.kind == "act":
            return act[step.act](h)
        if step.kind == "se":
            channels = h.shape[1]
            with nn.parameter_scope("reduce"):
                s = F.relu(PF.convolution(F.global_average_pooling(h), step.out, (1, 1)))
            with nn.parameter_scope("expand"):
                s = h_sigmoid(PF.convolution(s, channels, (1, 1)))
            return F.mul2(h, s)  # (N, C, 1, 1) broadcast over H and W
        if step.kind == "avgpool":
            return F.average_pooling(h, (step.kernel,) * 2, (step.stride,) * 2,
                                     pad=(step.pad,) * 2, including_pad=False)
        if step.kind == "gap":
            return F.global_average_pooling(h)
        if step.kind == "linear":
            return PF.affine(h, step.out)
        if step.kind == "add":
            return F.add2(xs[0], xs[1])
        if step.kind == "shuffle":
            n, c, height, width = h.shape
            g = step.groups
            h = F.transpose(F.reshape(h, (n, g, c // g, height, width)), (0, 2, 1, 3, 4))
            return F.reshape(h, (n, c, height, width))
        raise ProfileError(f"the nnabla backend cannot build step {step.kind!r}")

    def apply(i: int, layer: Layer, xs: list):
        tensors = list(xs)
        for j, s in enumerate(steps(layer)):
            with nn.parameter_scope(f"{i}_{layer.op}/{j}_{s.kind}"):
                tensors.append(step(s, [tensors[k] for k in s.inputs]))
        return tensors[-1]

    def zeros(layer: Layer):
        return nn.Variable.from_numpy_array(np.zeros((x.shape[0],) + layer.in_shape, np.float32))

    y, unused = walk(graph, x, zeros, apply)
    return y, (F.sink(y, *(out for out, _ in unused)) if unused else y)


class _Weights(np.random.RandomState):
    """nnabla's generator for initial weights, whose uniform draws are float32 from numpy's
    PCG64: seeded uniform weights as before, about 10 ms less of a mobilenet network's 50-60
    ms build than float64 from the Mersenne twister, converted (nnabla's initialisers ask
    for ``uniform`` only; anything else comes from the seeded RandomState)."""

    def __init__(self, seed: int):
        super().__init__(seed)
        self._generator = np.random.default_rng(seed)

    def uniform(self, low=0.0, high=1.0, size=None):  # type: ignore[override]
        draw = self._generator.random(size, dtype=np.float32)
        return draw * np.float32(high - low) + np.float32(low)


class NNablaBackend(Backend):
    """Times layers with nnabla on context ``cpu`` or ``cudnn`` (GPU ``device_id``).

    Inputs and weights are random (latency depends on the data: all-zero tensors run faster),
    parameters live in a private scope (the user's global parameters are never touched), and
    each timed forward pass ends with a device synchronisation.
    """

    name = "nnabla"

    def __init__(self, context: str = "cpu", device_id: int = 0, batch: int = 1,
                 seed: int = 0):
        if context not in CONTEXTS:
            raise InputError(f"unknown nnabla context {context!r}: expected one of {CONTEXTS}")
        self.context, self.device_id, self.batch, self.seed = context, device_id, batch, seed
        tune_malloc()
        nn, _, _ = _modules()
        ext_utils = require("nnabla.ext_utils", "nnabla")
        try:
            self._ext = ext_utils.import_extension_module(context)
            self._ctx = ext_utils.get_extension_context(context, device_id=str(device_id))
            if context == "cudnn" and self._ext.get_device_count() < 1:
                raise RuntimeError("no CUDA device")
        except Exception as e:
            raise ProfileError(f"nnabla context {context!r} is not available ({e}): the cudnn "
                               f"context needs nnabla-ext-cuda and a CUDA GPU") from None
        self._nn = nn

    @functools.cache  # noqa: B019 (one per backend: a GPU's name comes from nvidia-smi)
    def fingerprint(self) -> Fingerprint:
        if self.context == "cpu":
            device, threads = f"cpu: {cpu_name()}", 1  # nnabla's CPU kernels use one thread
        else:
            device, threads = f"cudnn: {gpu_name(self.device_id)}", 1
        return Fingerprint("nnabla", self._nn.__version__, device, threads, "float32",
                           self.batch)

    def build(self, graph: Graph) -> Callable[[], None]:
        nn = self._nn
        params: OrderedDict = OrderedDict()
        last = graph[-1][0]
        # the same seeded weights in every process (latency depends on the data): nnabla's
        # initialisers draw from its module-wide generator
        nnabla_random: Any = require("nnabla.random", "nnabla")
        nnabla_random.prng = _Weights(self.seed)
        with nn.context_scope(self._ctx), nn.parameter_scope("hwnas", params):
            x = nn.Variable((self.batch,) + tuple(graph[0][0].in_shape))
            x.d = np.random.default_rng(self.seed).standard_normal(x.shape)
            y, everything = build(graph, x)
        if y.shape[:2] != (self.batch, last.out_channels):
            raise ProfileError(f"built output shape {y.shape}, expected "
                               f"{(self.batch,) + tuple(last.out_shape)}")
        y.persistent = True  # keep the output for the check below
        everything.forward(clear_buffer=True)
        if not np.all(np.isfinite(y.d)):
            raise ProfileError("the forward pass gave non-finite outputs")
        device_id = str(self.device_id)

        def run() -> None:
            everything.forward(clear_buffer=True)
            self._ext.synchronize(device_id=device_id)

        return run
