"""The profiler backends by name: which are installed, and building one."""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Mapping
from typing import Any

from hwnas.errors import InputError
from hwnas.profile._base import Backend

#: backend name -> (module that must be importable, class path)
BACKENDS = {"nnabla": ("nnabla", "hwnas.profile._nnabla:NNablaBackend"),
            "onnxruntime": ("onnxruntime", "hwnas.profile._onnxruntime:OnnxRuntimeBackend"),
            "torch": ("torch", "hwnas.profile._torch:TorchBackend"),
            "simulated": ("numpy", "hwnas.profile._simulated:SimulatedBackend")}


#: backends that measure this machine (the default flow takes the first installed)
DEVICE_BACKENDS = ("nnabla", "onnxruntime", "torch")
#: the constructor options every backend takes, and those of some only
COMMON_OPTIONS = ("context", "device_id", "batch")
EXTRA_OPTIONS = {"onnxruntime": ("threads", "optimization"), "torch": ("threads",)}


def available_backends() -> list[str]:
    """Installed backends, the user's framework (nnabla) first."""
    return [name for name in DEVICE_BACKENDS if importlib.util.find_spec(BACKENDS[name][0])]


def default_backend() -> str:
    """The backend that measures this machine when none is named, in every command and
    ``find_architectures``: the first installed of DEVICE_BACKENDS."""
    installed = available_backends()
    if not installed:
        raise InputError("no profiler backend is installed to measure this machine: install "
                         "one (pip install 'hwnas[onnx]', 'hwnas[torch]', or 'hwnas[nnabla]' on "
                         "Python <= 3.10), or give a predictor, a layer table or a shipped "
                         "device")
    return installed[0]


def check_backend_options(options: Mapping[str, Any]) -> None:
    """Refuse an option no backend takes (a misspelt ``contxt`` would be dropped unseen)."""
    known = set(COMMON_OPTIONS).union(*EXTRA_OPTIONS.values())
    unknown = sorted(str(key) for key in options if key not in known)
    if unknown:
        raise InputError(f"backend_options: no backend takes {', '.join(unknown)}: expected "
                         f"some of {', '.join(sorted(known))}")


def backend_options(name: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """The ``options`` that backend ``name`` takes (``threads`` is onnxruntime's and
    torch's: the command line offers it for every backend)."""
    allowed = COMMON_OPTIONS + EXTRA_OPTIONS.get(name, ())
    return {key: value for key, value in options.items() if key in allowed}


def get_backend(name: str, **options) -> Backend:
    """Return a backend by name (``nnabla``, ``onnxruntime``, ``torch``, or ``simulated``: a
    device with known latencies and noise, for tests and benchmarks); options go to its
    constructor (``context``, ``device_id``, ``batch``; for onnxruntime and torch also
    ``threads``; for onnxruntime ``optimization``)."""
    if name not in BACKENDS:
        raise InputError(f"unknown backend {name!r}: expected one of {sorted(BACKENDS)}")
    module, _, cls = BACKENDS[name][1].partition(":")
    return getattr(importlib.import_module(module), cls)(**options)
