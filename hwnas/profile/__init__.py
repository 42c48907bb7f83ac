"""Measure layers and whole networks on this device, into resumable CSV tables.

Example:
    >>> from hwnas.profile import get_backend, profile_layers
    >>> from hwnas.spaces import get_space
    >>> space = get_space("mobilenet")
    >>> table = profile_layers(get_backend("nnabla"), space.unique_layers(),
    ...                        "layers.csv")  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from pathlib import Path
from typing import Callable, Dict, List, Sequence, Tuple

import numpy as np

from hwnas._progress import Progress
from hwnas.errors import InputError
from hwnas.layers import Layer
from hwnas.profile._base import Backend, ProfileError
from hwnas.profile._onnxruntime import export_onnx, to_onnx
from hwnas.profile._options import add_backend_options, backend_from_args
from hwnas.profile._timing import TimingProtocol, measure
from hwnas.spaces import Graph, SearchSpace, unit_graph
from hwnas.tables import (LAYER_COLUMNS, NETWORK_COLUMNS, LayerTable, NetworkTable,
                          TableWriter, format_z, read_layer_table, read_network_table)

#: backend name -> (module that must be importable, class path)
BACKENDS = {"nnabla": ("nnabla", "hwnas.profile._nnabla:NNablaBackend"),
            "onnxruntime": ("onnxruntime", "hwnas.profile._onnxruntime:OnnxRuntimeBackend")}

#: units built and timed together, interleaved; an interrupted run loses at most this many
BATCH_UNITS = 24


def available_backends() -> List[str]:
    """Installed backends, the user's framework (nnabla) first."""
    return [name for name, (module, _) in BACKENDS.items() if importlib.util.find_spec(module)]


def get_backend(name: str, **options) -> Backend:
    """Return a backend by name (``nnabla`` or ``onnxruntime``); options go to its constructor
    (``context``, ``device_id``, ``batch``; for onnxruntime also ``threads``,
    ``optimization``)."""
    if name not in BACKENDS:
        raise InputError(f"unknown backend {name!r}: expected one of {sorted(BACKENDS)}")
    module, _, cls = BACKENDS[name][1].partition(":")
    return getattr(importlib.import_module(module), cls)(**options)


def cache_dir() -> Path:
    """Where measured tables are cached: ``$HWNAS_CACHE``, else ``~/.cache/hwnas``."""
    if os.environ.get("HWNAS_CACHE"):
        return Path(os.environ["HWNAS_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "hwnas"


def device_tables(backend: Backend, space: SearchSpace, networks: int = 8,
                  protocol: TimingProtocol = TimingProtocol(), show_progress: bool = True
                  ) -> Tuple[LayerTable, NetworkTable]:
    """This device's layer table for ``space`` and ``networks`` measured whole networks to
    calibrate it, measured on first use and cached per device fingerprint (and space):
    later calls measure only what is missing.

    The networks span the space: its least and most latent architectures by the layer sum,
    and random ones (seed 0).
    """
    folder = cache_dir() / backend.fingerprint().id
    layers = profile_layers(backend, space.unique_layers(), folder / "layers.csv", protocol,
                            show_progress)
    fixed, C = space.cost_matrix(lambda ls: [layers.timings[ly.key].latency_ms for ly in ls])
    most = np.nanargmax(C, axis=1)
    zs = np.vstack([space.min_z(fixed, C)[0], most, space.random_z(max(networks - 2, 0), 0)])
    zs = zs[:networks]
    nets = profile_networks(backend, space, zs,
                            folder / f"networks-{space.name}-{space.signature}.csv", protocol,
                            show_progress)
    wanted = {tuple(int(v) for v in z) for z in zs}  # the cache may hold other networks too
    return layers, nets.select([i for i, z in enumerate(nets.z) if z in wanted])


def profile_layers(backend: Backend, layers: Sequence[Layer], path: str | os.PathLike,
                   protocol: TimingProtocol = TimingProtocol(),
                   show_progress: bool = True) -> LayerTable:
    """Measure every layer not yet in the table at ``path``, appending one row per layer.

    Running it again after an interruption measures only what is missing. A layer that fails
    to build or run raises ProfileError naming it; nothing is recorded for it.
    """
    units = {layer.key: (unit_graph(layer), {"key": layer.key, "op": layer.op, "macs": str(layer.macs),
                                   "params": str(layer.params)}) for layer in layers}
    _measure(backend, units, path, LAYER_COLUMNS, "key", protocol,
             "measuring layers" if show_progress else None)
    return read_layer_table(path)


def profile_networks(backend: Backend, space: SearchSpace, zs: Sequence[Sequence[int]],
                     path: str | os.PathLike, protocol: TimingProtocol = TimingProtocol(),
                     show_progress: bool = True) -> NetworkTable:
    """Measure the end-to-end latency of each z not yet in the network table at ``path``."""
    units = {}
    for z in space.check_z(zs):
        key = format_z(z)
        units[key] = (space.decode(z).graph, {"space": space.name, "z": key})
    _measure(backend, units, path, NETWORK_COLUMNS, "z", protocol,
             "measuring networks" if show_progress else None)
    return read_network_table(path, space)


def _measure(backend: Backend, units: Dict[str, Tuple[Graph, Dict[str, str]]],
             path: str | os.PathLike, columns: Sequence[str], id_column: str,
             protocol: TimingProtocol, progress_label: str | None) -> None:
    """Measure the units not yet in the table, BATCH_UNITS at a time, interleaved; a unit
    that fails to build stops it, after the units built before it are measured and kept."""
    with TableWriter(path, columns, id_column, backend.fingerprint()) as writer:
        todo = [key for key in units if key not in writer.done]
        bar = Progress(len(todo), progress_label or "", progress_label is not None)
        try:
            for start in range(0, len(todo), BATCH_UNITS):
                batch = todo[start:start + BATCH_UNITS]
                runners: List[Callable[[], None]] = []
                failure = None
                for key in batch:
                    try:
                        runners.append(backend.runner(units[key][0]))
                    except ProfileError as e:
                        failure = e
                        break
                for key, timing in zip(batch, measure(runners, protocol)):
                    writer.append({**units[key][1], **timing.as_row()})
                    bar.update()
                if failure is not None:
                    raise failure
        finally:
            bar.close()


__all__ = ["BACKENDS", "Backend", "ProfileError", "TimingProtocol", "add_backend_options",
           "available_backends", "backend_from_args", "cache_dir", "device_tables", "export_onnx", "get_backend", "profile_layers",
           "profile_networks", "to_onnx"]
