"""The cache of measured tables: where it is, what it records of each table (its protocol and
how steady it was measured), and how a table is judged (TableQuality)."""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from hwnas.errors import InputError
from hwnas.profile._base import Backend
from hwnas.profile._timing import TimingProtocol
from hwnas.spaces import SearchSpace
from hwnas.tables import LayerTable, Timing, read_layer_table, read_network_table, table_lock


def cache_dir() -> Path:
    """Where measured tables are cached: ``$HWNAS_CACHE``, else ``~/.cache/hwnas``
    (``$XDG_CACHE_HOME/hwnas``). A path that cannot be a folder (it, or a folder above it,
    is a file) is an InputError naming the variable that set it, not the files inside."""
    if os.environ.get("HWNAS_CACHE"):
        path, named = Path(os.environ["HWNAS_CACHE"]), "HWNAS_CACHE"
    elif os.environ.get("XDG_CACHE_HOME"):
        path, named = Path(os.environ["XDG_CACHE_HOME"]) / "hwnas", "XDG_CACHE_HOME"
    else:
        path, named = Path.home() / ".cache" / "hwnas", "the default cache (~/.cache/hwnas)"
    for above in (path, *path.parents):
        if above.exists() or above.is_symlink():
            if not above.is_dir():
                what = "a file" if above.is_file() else "not a folder"
                raise InputError(f"{named} ({path}): {above} is {what}, but the cache of "
                                 f"measured tables must be a folder: set HWNAS_CACHE to one")
            break
    return path


def device_folder(backend: Backend) -> Path:
    """The cache folder of this backend's device fingerprint."""
    return cache_dir() / backend.fingerprint().id


def network_table_path(backend: Backend, space: SearchSpace) -> Path:
    """The cached network table of ``space`` on this backend's device."""
    return device_folder(backend) / f"networks-{space.name}-{space.signature}.csv"


#: a table is good when the predicted latency of its space's networks moves between rounds by
#: at most this share (the sum of a network's rows' noise_ms over its latency, 90th percentile
#: over random networks): noise is judged by what it does to a prediction, not row by row
PREDICTION_NOISE = 0.02


#: a unit whose statistic moves between rounds by more than this share of its latency is
#: measured again (as the protocol says); a whole network that stays so noisy is not cached
UNIT_NOISE = 0.03


def read_locked(reader, path, *args):
    """Read a table while no process writes it (a shared lock)."""
    with table_lock(path, shared=True):
        return reader(path, *args)


def unit_noise(timing: Timing) -> float:
    """How far a unit's statistic moved between rounds, as a share of it (the round spread for
    rows written before ``noise_ms`` was recorded)."""
    return timing.noise if math.isfinite(timing.noise) else timing.round_spread


@dataclass(frozen=True)
class TableQuality:
    """How well a table was measured: when, how far its predictions move between rounds, the
    machine's load.

    ``prediction_noise`` is, for a layer table, the 90th percentile over the space's networks
    of how far their prediction can move between rounds as a share of it (the sum of their
    layers' ``noise_ms`` over the sum of their latencies); for a network table, whose rows
    feed a robust calibration line, the rows' median relative noise. The table is good when
    that is at most PREDICTION_NOISE.
    """

    path: str
    measured_at: str
    rows: int
    noisy_rows: int  # rows whose statistic moved by more than UNIT_NOISE of it
    median_noise: float  # the rows' median relative noise
    prediction_noise: float
    load_average: float  # 1-minute load average when the table was judged
    cpus: int

    @property
    def good(self) -> bool:
        """Whether the table's predictions repeat within PREDICTION_NOISE."""
        return self.prediction_noise <= PREDICTION_NOISE

    def warning(self) -> str | None:
        """What to tell the user about a noisy table, or None."""
        if self.good:
            return None
        return (f"{self.path}: its predictions move by {100 * self.prediction_noise:.1f} % "
                f"between rounds (over {100 * PREDICTION_NOISE:g} %; {self.noisy_rows} of "
                f"{self.rows} rows "
                f"moved by more than {100 * UNIT_NOISE:g} % after re-measuring them); load "
                f"average {self.load_average:.1f} on {self.cpus} core(s): other jobs were "
                f"running. Its latencies are unreliable: measure it again when the machine "
                f"is quieter (hwnas.search re-measures a noisy cached table on its next use; "
                f"python -m hwnas.profile --cache shows the cache)")


def table_quality(path: str | os.PathLike, space: SearchSpace | None = None) -> TableQuality:
    """How well the table at ``path`` is measured now (see TableQuality); a layer table is
    judged through the networks of ``space`` where it is given and additive."""
    path = os.fspath(path)
    is_layers = Path(path).name == "layers.csv" or _header(path)[:1] == ["key"]
    if is_layers:
        layers = read_locked(read_layer_table, path)
        timings = list(layers.timings.values())
    else:
        timings = list(read_locked(read_network_table, path, space).timings)
    noise = np.array([unit_noise(t) for t in timings])
    predicted = float(np.median(noise))  # a robust calibration line shrugs off a few rows
    if is_layers and space is not None and space.additive:
        def cost(column):
            return space.cost_matrix(lambda ls: [getattr(layers.timings[ly.key], column)
                                                 if ly.key in layers.timings else np.nan
                                                 for ly in ls])
        Z = space.random_z(1000, 0)
        with np.errstate(invalid="ignore"):
            moved = space.evaluate_z(Z, *cost("noise_ms")) / space.evaluate_z(Z, *cost(
                "latency_ms"))
        if np.isfinite(moved).all():
            predicted = float(np.percentile(moved, 90))
    elif is_layers and space is not None and space.sliced:
        predicted = _sliced_prediction_noise(space, layers, predicted)
    return TableQuality(path, datetime.now(timezone.utc).isoformat(timespec="seconds"),
                        len(noise), int(np.sum(noise > UNIT_NOISE)), float(np.median(noise)),
                        float(predicted), os.getloadavg()[0], os.cpu_count() or 1)


def _sliced_prediction_noise(space: SearchSpace, layers: LayerTable, default: float) -> float:
    """The 90th percentile of noise / latency over random z of the resolutions whose layers
    the table holds (``ofa``: the default flow measures a few); ``default`` where none."""
    def cost(column):
        return space.cost_tensor(lambda ls: [getattr(layers.timings[ly.key], column)
                                             if ly.key in layers.timings else np.nan
                                             for ly in ls])
    latency, noise = cost("latency_ms"), cost("noise_ms")
    measured = np.flatnonzero(np.isfinite(latency[0]) & ~np.isnan(latency[1]).all(axis=(1, 2)))
    if not len(measured):
        return default
    Z = space.random_z(1000, 0)
    Z[:, space.resolution_decision] = measured[np.arange(1000) % len(measured)]  # type: ignore
    with np.errstate(invalid="ignore"):
        moved = space.evaluate_tensor(Z, *noise) / space.evaluate_tensor(Z, *latency)
    return float(np.percentile(moved, 90)) if np.isfinite(moved).all() else default


def _header(path: str) -> list[str]:
    with open(path, newline="", encoding="utf-8-sig") as f:  # a BOM, as read_text accepts
        return f.readline().strip().split(",")


CACHE_STATUS = "measured.json"


def read_cache_status(folder: str | os.PathLike, *, lock: bool = True) -> dict[str, dict]:
    """What a device's cache folder records about its tables: file name -> TableQuality
    fields and ``good``. Empty where nothing is recorded. Read under a shared lock (unless
    ``lock`` is False: the caller holds the exclusive one); a folder this process cannot
    write (a shared, read-only cache) is read without one, as table_lock does: nobody can be
    writing there through it either. A record that is not JSON, too large (over
    MAX_RECORD_BYTES), or not of this shape is an InputError naming the file."""
    from dataclasses import fields

    from hwnas._files import MAX_RECORD_BYTES, loads_json, read_text
    path = Path(folder) / CACHE_STATUS
    if not path.exists():
        return {}
    if lock:
        with table_lock(path, shared=True):
            text = read_text(str(path), "cache record", max_bytes=MAX_RECORD_BYTES)
    else:
        text = read_text(str(path), "cache record", max_bytes=MAX_RECORD_BYTES)
    try:
        status = loads_json(text)
    except (ValueError, RecursionError) as e:
        raise InputError(f"{path}: unreadable cache record ({e}); delete it") from None
    number = (int, float)
    kinds: dict[str, type | tuple[type, ...]] = {
        "good": bool, "measured_at": str, "protocol": dict, "path": str, "frontier": bool,
        "rebased_by": number,
        **{f.name: number for f in fields(TableQuality) if f.type in ("int", "float")}}
    if not isinstance(status, dict):
        raise InputError(f"{path}: not a cache record (expected a mapping of table file names); "
                         f"delete it")
    for name, record in status.items():
        if not isinstance(record, dict):
            raise InputError(f"{path}: the record of {name!r} is not a mapping; delete it")
        for key, value in record.items():
            kind = kinds.get(key, object)  # a field recorded by a later hwnas: any value
            if not isinstance(value, kind) or (kind is number and isinstance(value, bool)):
                raise InputError(f"{path}: {name!r}: {key} is {str(value)[:40]!r}, of the "
                                 f"wrong type; delete the record")
    return status


def record_status(folder: Path, entries: dict[str, dict] | Callable[[dict], dict[str, dict]]
                  ) -> dict[str, dict]:
    """Set the entries (table file name -> what is known of it: the protocol measuring it,
    then its TableQuality) of the folder's CACHE_STATUS (replaced atomically: a full disk
    leaves the earlier record; a link there is replaced, not followed), and return them.
    ``entries`` may be a function of the current status, called under the status's lock: a
    read-modify-write that no other process interleaves. The protocol is recorded before a
    table is measured, so that an interrupted pass leaves its rows under the protocol that
    measured them."""
    from hwnas._files import write_json
    path = folder / CACHE_STATUS
    with table_lock(path):
        status = read_cache_status(folder, lock=False)
        new = entries(status) if callable(entries) else entries
        if new:
            status.update(new)
            write_json(path, status)
    return new


def protocol_record(protocol: TimingProtocol) -> dict:
    """What in a protocol decides a table's timings (re-measuring noisy units only mends)."""
    return {k: v for k, v in asdict(protocol).items() if k not in ("max_remeasures", "pause_s")}


def other_protocol(record: dict, protocol: TimingProtocol) -> str | None:
    """How a cached table that ``record`` describes was measured, where not with ``protocol``
    (a table recorded without its protocol was measured before statistics were chosen)."""
    measured = record.get("protocol", {})
    if measured == protocol_record(protocol):
        return None
    return "with another timing protocol (" + (", ".join(
        f"{k} {v}" for k, v in measured.items()) or "not recorded") + ")"


def start_table(path: Path, protocol: TimingProtocol, why: str | None) -> None:
    """Before a cached table is (re)filled: say ``why`` it is measured again, if given, and
    record the protocol that will measure it (see ``record_status``)."""
    if why:
        print(f"hwnas: {path.name} in {path.parent} was measured {why}: measuring it again",
              file=sys.stderr)
    record_status(path.parent, {path.name: {"protocol": protocol_record(protocol)}})


def stale_reason(record: dict | None, protocol: TimingProtocol) -> str | None:
    """Why a cached table that ``record`` describes must be measured again, or None."""
    if record is None:
        return None
    if not record.get("good", True):
        return other_protocol(record, protocol) or "while the machine was unsteady"
    return other_protocol(record, protocol)


def table_latency(path: str, fingerprint, target: str = "latency_ms") -> str:
    """What the ``target`` column of the network table at ``path`` is, and the machine's state
    when it was measured, as far as known (the cache records it for its own tables)."""
    from hwnas.profile._latency import definition
    if target != "latency_ms":
        return f"{target} of {path}, as it was measured (not a latency)"
    if fingerprint.backend not in ("nnabla", "onnxruntime", "simulated"):
        return (f"latency_ms of {path}, as {fingerprint.describe()} measured it outside hwnas "
                f"(hwnas's is {definition('unloaded')})")
    record = read_cache_status(Path(path).parent).get(Path(path).name) \
        if Path(path).parent.is_dir() else None
    state = "the machine's state then is not recorded (a table outside the cache)"
    if record and "measured_at" in record:
        state = (f"measured {record['measured_at']}, load average "
                 f"{record['load_average']:.1f} on {record['cpus']} core(s), put on the "
                 f"fastest state seen (x {record.get('rebased_by', 1.0):.3f} since)")
    return f"latency_ms of {path}: {definition('unloaded')}; {state}"


def discard_cache(backend: Backend) -> list[str]:
    """Discard this device's cached tables (each renamed to ``<name>.discarded`` under its
    lock); returns their names."""
    folder = device_folder(backend)
    names = []
    for path in sorted(folder.glob("*.csv")):
        with table_lock(path):
            os.replace(path, f"{path}.discarded")
        names.append(path.name)
    status = folder / CACHE_STATUS
    if status.exists():
        with table_lock(status):
            os.replace(status, f"{status}.discarded")
    return names


def cache_report(root: str | os.PathLike | None = None) -> str:
    """A table of every cached table: device, rows, when measured, repeatability, what its
    durations were multiplied by since (``rebased``: put on a faster state's scale), good."""
    root = Path(root) if root is not None else cache_dir()
    lines = [f"cache {root}"]
    folders = sorted(p for p in root.glob("*") if p.is_dir()) if root.exists() else []
    if not folders:
        return lines[0] + ": empty"
    lines.append(f"{'device':<22}  {'table':<36}  {'rows':>5}  {'measured (UTC)':<25}  "
                 f"{'median':>6}  {'p90 net':>7}  {'noisy':>5}  {'load':>5}  {'rebased':>7}  "
                 f"state")
    for folder in folders:
        status = read_cache_status(folder)
        for path in sorted(folder.glob("*.csv")):
            with open(path) as f:  # rows now: verification adds networks after the record
                rows = sum(1 for _ in f) - 1
            q = status.get(path.name)
            if q is None or "measured_at" not in q:
                lines.append(f"{folder.name:<22}  {path.name:<36}  {rows:>5}  "
                             f"{'(being measured)' if q else '(not recorded)':<25}")
                continue
            rebased = f"x{q['rebased_by']:.3f}" if q.get("rebased_by", 1) != 1 else "-"
            lines.append(f"{folder.name:<22}  {path.name:<36}  {rows:>5}  "
                         f"{q['measured_at']:<25}  {100 * q['median_noise']:>5.1f}%  "
                         f"{100 * q['prediction_noise']:>6.1f}%  {q['noisy_rows']:>5}  "
                         f"{q['load_average']:>5.1f}  "
                         f"{rebased:>7}  {'good' if q['good'] else 'NOISY'}")
    return "\n".join(lines)
