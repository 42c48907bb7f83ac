"""The profiler backends by name: which are installed, and building one."""

from __future__ import annotations

import importlib
import importlib.util

from hwnas.errors import InputError
from hwnas.profile._base import Backend

#: backend name -> (module that must be importable, class path)
BACKENDS = {"nnabla": ("nnabla", "hwnas.profile._nnabla:NNablaBackend"),
            "onnxruntime": ("onnxruntime", "hwnas.profile._onnxruntime:OnnxRuntimeBackend"),
            "torch": ("torch", "hwnas.profile._torch:TorchBackend"),
            "simulated": ("numpy", "hwnas.profile._simulated:SimulatedBackend")}


#: backends that measure this machine (the default flow takes the first installed)
DEVICE_BACKENDS = ("nnabla", "onnxruntime", "torch")


def available_backends() -> list[str]:
    """Installed backends, the user's framework (nnabla) first."""
    return [name for name in DEVICE_BACKENDS if importlib.util.find_spec(BACKENDS[name][0])]


def get_backend(name: str, **options) -> Backend:
    """Return a backend by name (``nnabla``, ``onnxruntime``, ``torch``, or ``simulated``: a
    device with known latencies and noise, for tests and benchmarks); options go to its
    constructor (``context``, ``device_id``, ``batch``; for onnxruntime and torch also
    ``threads``; for onnxruntime ``optimization``)."""
    if name not in BACKENDS:
        raise InputError(f"unknown backend {name!r}: expected one of {sorted(BACKENDS)}")
    module, _, cls = BACKENDS[name][1].partition(":")
    return getattr(importlib.import_module(module), cls)(**options)
