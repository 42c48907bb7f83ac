"""Measured latency tables of real devices, shipped with hwnas: search for them offline.

52 network tables (21 devices on ``nb201``, every cell; 22 on ``fbnet``, the same 5,000
architectures each; 9 GPUs on ``ofa``, the same 5,000 Once-for-All subnetworks each) from
HW-NAS-Bench and BRP-NAS's LatBench, as redistributed by HELP, and HELP's Once-for-All
tables (MIT licence, see ``data/LICENSE``). ``python -m hwnas.devices`` lists them.

Example:
    >>> from hwnas.devices import list_devices, load_device
    >>> [d.name for d in list_devices("fbnet")][:2]
    ['1080ti_1', '1080ti_32']
    >>> load_device("pixel3", "nb201").space
    'nb201'
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hwnas.devices._catalogue import (
    KINDS,
    SOURCES,
    DeviceInfo,
    DeviceMatrix,
    UnknownDeviceError,
    device_info,
    device_matrix,
    list_devices,
    load_device,
)

if TYPE_CHECKING:
    from hwnas.devices._predictor import device_predictor


def __getattr__(name: str) -> Any:
    """``device_predictor`` loads the predictors (scikit-learn) on first use only, so that
    listing the tables stays quick."""
    if name != "device_predictor":
        raise AttributeError(f"module 'hwnas.devices' has no attribute {name!r}")
    from hwnas.devices._predictor import device_predictor
    return device_predictor

__all__ = ["KINDS", "SOURCES", "DeviceInfo", "DeviceMatrix", "UnknownDeviceError",
           "device_info", "device_matrix", "device_predictor", "list_devices", "load_device"]
