"""Measure layers and whole networks on this device, into resumable CSV tables.

Example:
    >>> from hwnas.profile import get_backend, profile_layers
    >>> from hwnas.spaces import get_space
    >>> space = get_space("mobilenet")
    >>> table = profile_layers(get_backend("nnabla"), space.unique_layers(), "layers.csv")
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Sequence

from hwnas._progress import progress
from hwnas.layers import Layer
from hwnas.profile._base import Backend, ProfileError
from hwnas.profile._timing import TimingProtocol
from hwnas.spaces import SearchSpace
from hwnas.tables import (LAYER_COLUMNS, NETWORK_COLUMNS, LayerTable, NetworkTable,
                          TableWriter, format_z, parse_z, read_layer_table, read_network_table)

#: backend name -> the module that must be importable for it
BACKENDS = {"nnabla": "nnabla"}


def available_backends() -> list[str]:
    return [name for name, module in BACKENDS.items() if importlib.util.find_spec(module)]


def get_backend(name: str, **options) -> Backend:
    """Return a backend by name (``nnabla``); options go to its constructor."""
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}: expected one of {sorted(BACKENDS)}")
    from hwnas.profile._nnabla import NNablaBackend
    return NNablaBackend(**options)


def cache_dir() -> Path:
    """Where measured tables are cached: ``$HWNAS_CACHE``, else ``~/.cache/hwnas``."""
    if os.environ.get("HWNAS_CACHE"):
        return Path(os.environ["HWNAS_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "hwnas"


def device_layer_table(backend: Backend, space: SearchSpace,
                       protocol: TimingProtocol = TimingProtocol(),
                       show_progress: bool = True) -> LayerTable:
    """This device's layer table for ``space``, measured on first use and cached per device
    fingerprint: later calls measure only layers not yet in the cache."""
    path = cache_dir() / backend.fingerprint().id / "layers.csv"
    return profile_layers(backend, space.unique_layers(), path, protocol, show_progress)


def profile_layers(backend: Backend, layers: Sequence[Layer], path: str | os.PathLike,
                   protocol: TimingProtocol = TimingProtocol(),
                   show_progress: bool = True) -> LayerTable:
    """Measure every layer not yet in the table at ``path``, appending one row per layer.

    Running it again after an interruption measures only what is missing. A layer that fails
    to build or run raises ProfileError naming it; nothing is recorded for it.
    """
    with TableWriter(path, LAYER_COLUMNS, "key", backend.fingerprint()) as writer:
        todo = list({layer.key: layer for layer in layers
                     if layer.key not in writer.done}.values())
        for layer in progress(todo, "measuring layers", show_progress):
            timing = backend.time_layers([layer], protocol)
            writer.append({"key": layer.key, "op": layer.op, "macs": str(layer.macs),
                           "params": str(layer.params), **timing.as_row()})
    return read_layer_table(path)


def profile_networks(backend: Backend, space: SearchSpace, zs: Sequence[Sequence[int]],
                     path: str | os.PathLike, protocol: TimingProtocol = TimingProtocol(),
                     show_progress: bool = True) -> NetworkTable:
    """Measure the end-to-end latency of each z not yet in the network table at ``path``."""
    with TableWriter(path, NETWORK_COLUMNS, "z", backend.fingerprint()) as writer:
        todo = [z for z in dict.fromkeys(format_z(z) for z in space.check_z(zs))
                if z not in writer.done]
        for z in progress(todo, "measuring networks", show_progress):
            arch = space.decode(parse_z(z))
            timing = backend.time_layers(list(arch.layers), protocol)
            writer.append({"space": space.name, "z": z, **timing.as_row()})
    return read_network_table(path)


__all__ = ["BACKENDS", "Backend", "ProfileError", "TimingProtocol", "available_backends",
           "cache_dir", "device_layer_table", "get_backend", "profile_layers",
           "profile_networks"]
