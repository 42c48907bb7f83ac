"""Measure layers and whole networks on this device, into resumable CSV tables.

The code lives in private modules: the backends by name (``_backends``), the batch
measurement (``_batch``), the cache and how a table is judged (``_cache``), and this device's
tables for the default flow (``_device_tables``); this package re-exports what users call.

Example:
    >>> from hwnas.profile import get_backend, profile_layers
    >>> from hwnas.spaces import get_space
    >>> space = get_space("mobilenet")
    >>> table = profile_layers(get_backend("nnabla"), space.unique_layers(),
    ...                        "layers.csv")  # doctest: +SKIP
"""

from __future__ import annotations

from hwnas.profile._backends import (
    BACKENDS,
    DEVICE_BACKENDS,
    available_backends,
    default_backend,
    get_backend,
)
from hwnas.profile._base import Backend, ProfileError
from hwnas.profile._batch import (
    BATCH_UNITS,
    DRIFT_TOLERANCE,
    measure_networks,
    profile_layers,
    profile_networks,
)
from hwnas.profile._cache import (
    CACHE_STATUS,
    PREDICTION_NOISE,
    UNIT_NOISE,
    TableQuality,
    cache_dir,
    cache_report,
    device_folder,
    discard_cache,
    network_table_path,
    read_cache_status,
    table_quality,
)
from hwnas.profile._device_tables import (
    DRIFT_REFERENCES,
    calibration_z,
    device_tables,
    drift,
    frontier_z,
    layer_predictor,
    rebase,
)
from hwnas.profile._onnxruntime import export_onnx, to_onnx
from hwnas.profile._options import (
    add_backend_options,
    add_protocol_options,
    backend_from_args,
    protocol_from_args,
)
from hwnas.profile._timing import TimingProtocol
from hwnas.profile._torch import torch_module

__all__ = ["BACKENDS", "BATCH_UNITS", "Backend", "CACHE_STATUS", "DEVICE_BACKENDS",
           "DRIFT_REFERENCES", "DRIFT_TOLERANCE", "PREDICTION_NOISE", "ProfileError",
           "TableQuality", "TimingProtocol", "UNIT_NOISE", "add_backend_options",
           "add_protocol_options", "available_backends", "backend_from_args", "cache_dir",
           "cache_report", "calibration_z", "default_backend", "device_folder",
           "device_tables", "discard_cache", "drift", "export_onnx", "frontier_z",
           "get_backend", "layer_predictor", "measure_networks", "network_table_path",
           "profile_layers", "profile_networks", "protocol_from_args", "read_cache_status",
           "rebase", "table_quality", "to_onnx", "torch_module"]
