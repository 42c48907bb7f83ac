"""The shipped device tables: an index (``data/index.json``) and one ``.npz`` per space,
each read on first use and kept."""

from __future__ import annotations

import difflib
import functools
import io
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hwnas._files import read_bytes
from hwnas.errors import InputError, UnknownDeviceError
from hwnas.tables import Fingerprint, NetworkTable, Timing

DATA = Path(__file__).parent / "data"
FORMAT_VERSION = 1
LICENSE_FILE = "LICENSE"
#: where the measurements come from; any redistribution keeps both names and the licence
SOURCES = ("HW-NAS-Bench (Li et al., ICLR 2021) and BRP-NAS's LatBench (Dudziak et al., "
           "NeurIPS 2020), as redistributed by HELP (Lee et al., NeurIPS 2021; MIT licence, "
           "Copyright (c) 2024 HayeonLee), and HELP's tables of Once-for-All subnetworks on GPUs")
#: the fingerprint backend of a shipped table: measured elsewhere, never on this machine
BACKEND = "catalogue"
#: the kinds of device a table may come from
KINDS = ("GPU", "CPU", "phone", "ASIC", "FPGA", "edge")


@dataclass(frozen=True)
class DeviceInfo:
    """One shipped device table: where it was measured and what it holds.

    Example:
        >>> info = next(d for d in list_devices("fbnet") if d.name == "pixel3")
        >>> info.kind, info.batch, info.rows
        ('phone', 1, 5000)
    """

    name: str
    space: str
    kind: str  # one of KINDS
    batch: int
    source: str
    rows: int
    min_ms: float
    max_ms: float
    whole_ms: bool  # the table holds whole milliseconds (ties limit any ranking of it)

    @property
    def fingerprint(self) -> Fingerprint:
        """The fingerprint of its network table: backend ``catalogue`` (not measurable here)."""
        return Fingerprint(BACKEND, f"hwnas.devices {FORMAT_VERSION}",
                           f"{self.name} ({self.kind}, {self.source})", 0, "unknown",
                           self.batch)


@dataclass(frozen=True)
class DeviceMatrix:
    """Every shipped device of one space over the same networks: ``latency_ms[i, n]`` is
    device ``devices[i]`` on network ``z[n]`` (arrays read-only, shared)."""

    space: str
    devices: tuple[str, ...]
    z: np.ndarray  # (networks, decisions) int64, sorted
    latency_ms: np.ndarray  # (devices, networks) float64


@functools.cache
def _index(folder: str = str(DATA)) -> tuple[DeviceInfo, ...]:
    path = os.path.join(folder, "index.json")
    doc = json.loads(read_bytes(path, "device index"))
    if doc.get("format_version") != FORMAT_VERSION:
        raise InputError(f"{path}: format version {doc.get('format_version')!r}, expected "
                         f"{FORMAT_VERSION}")
    return tuple(DeviceInfo(**entry) for entry in doc["devices"])


def list_devices(space: str | None = None) -> list[DeviceInfo]:
    """The shipped device tables (of one space, or all), by space then name.

    Example:
        >>> len(list_devices("nb201")), len(list_devices("fbnet")), len(list_devices("ofa"))
        (21, 22, 9)
    """
    spaces = sorted({d.space for d in _index()})
    if space is not None and space not in spaces:
        raise InputError(f"no shipped device tables for space {space!r}: they cover "
                         f"{', '.join(spaces)}")
    return [d for d in _index() if space in (None, d.space)]


def device_info(name: str, space: str | None = None) -> DeviceInfo:
    """The shipped table ``name`` of ``space``; without a space, the one space that has
    ``name``. Raises UnknownDeviceError listing close matches, or naming the spaces to choose
    from."""
    found = [d for d in list_devices(space) if d.name == name]
    if len(found) == 1:
        return found[0]
    if found:
        raise InputError(f"device {name!r} has tables for spaces "
                         f"{', '.join(d.space for d in found)}: give the space (--space)")
    names = sorted({d.name for d in list_devices(space)})
    close = difflib.get_close_matches(name, names, n=4, cutoff=0.5)
    where = f" for space {space!r}" if space else ""
    hint = f"did you mean {', '.join(close)}?" if close else \
        "hwnas devices lists them"
    raise UnknownDeviceError(f"no shipped device {name!r}{where}: {hint}")


@functools.cache
def device_matrix(space: str, folder: str = str(DATA)) -> DeviceMatrix:
    """Every shipped device table of ``space`` as one matrix (read on first use)."""
    list_devices(space)  # a space without tables is an InputError naming the others
    path = os.path.join(folder, f"{space}.npz")
    with np.load(io.BytesIO(read_bytes(path, "device data")), allow_pickle=False) as data:
        z, devices, latency = data["z"].astype(np.int64), data["devices"], data["latency_ms"]
    for array in (z, latency):
        array.flags.writeable = False
    return DeviceMatrix(space, tuple(str(d) for d in devices), z, latency)


def load_device(name: str, space: str | None = None) -> NetworkTable:
    """The network table of a shipped device (``space, z, latency_ms`` of every measured
    network), fingerprinted ``catalogue``: hwnas cannot measure it on this machine.

    Example:
        >>> table = load_device("pixel3", "fbnet")
        >>> len(table.z), table.fingerprint.backend
        (5000, 'catalogue')
    """
    info = device_info(name, space)
    matrix = device_matrix(info.space)
    latency = matrix.latency_ms[matrix.devices.index(info.name)]
    nan = math.nan
    return NetworkTable(f"hwnas.devices:{info.space}/{info.name}", info.fingerprint, info.space,
                        tuple(map(tuple, matrix.z.tolist())),
                        tuple(Timing(latency_ms=float(v), p10_ms=nan, p90_ms=nan, min_ms=nan,
                                     runs=0, round_spread=nan) for v in latency))
