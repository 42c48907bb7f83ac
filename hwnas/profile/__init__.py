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
import json
import math
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np

from hwnas._progress import Progress
from hwnas.errors import InputError
from hwnas.layers import Layer
from hwnas.profile._base import Backend, ProfileError
from hwnas.profile._onnxruntime import export_onnx, to_onnx
from hwnas.profile._options import (
    add_backend_options,
    add_protocol_options,
    backend_from_args,
    protocol_from_args,
)
from hwnas.profile._timing import TimingProtocol, measure_rounds, to_timing
from hwnas.spaces import Graph, SearchSpace, unit_graph
from hwnas.tables import (
    LAYER_COLUMNS,
    NETWORK_COLUMNS,
    LayerTable,
    NetworkTable,
    TableWriter,
    Timing,
    format_z,
    read_layer_table,
    read_network_table,
    table_lock,
)

#: backend name -> (module that must be importable, class path)
BACKENDS = {"nnabla": ("nnabla", "hwnas.profile._nnabla:NNablaBackend"),
            "onnxruntime": ("onnxruntime", "hwnas.profile._onnxruntime:OnnxRuntimeBackend"),
            "simulated": ("numpy", "hwnas.profile._simulated:SimulatedBackend")}
#: backends that measure this machine (the default flow takes the first installed)
DEVICE_BACKENDS = ("nnabla", "onnxruntime")

#: units built and timed together, interleaved; an interrupted run loses at most this many
BATCH_UNITS = 24

#: a table is good when the predicted latency of its space's networks moves between rounds by
#: at most this share (the sum of a network's rows' noise_ms over its latency, 90th percentile
#: over random networks): noise is judged by what it does to a prediction, not row by row
PREDICTION_NOISE = 0.02
#: a unit whose statistic moves between rounds by more than this share of its latency is
#: measured again (as the protocol says); a whole network that stays so noisy is not cached
UNIT_NOISE = 0.03
#: networks re-timed on a warm run to check that the cache still describes this machine
DRIFT_REFERENCES = 3
#: how far reference networks may move (median) before the machine counts as in another
#: state than when they were measured (the minimum repeated within 1.3-4 % across processes)
DRIFT_TOLERANCE = 0.04


def available_backends() -> list[str]:
    """Installed backends, the user's framework (nnabla) first."""
    return [name for name in DEVICE_BACKENDS if importlib.util.find_spec(BACKENDS[name][0])]


def get_backend(name: str, **options) -> Backend:
    """Return a backend by name (``nnabla``, ``onnxruntime``, or ``simulated``: a device with
    known latencies and noise, for tests and benchmarks); options go to its constructor
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


def device_folder(backend: Backend) -> Path:
    """The cache folder of this backend's device fingerprint."""
    return cache_dir() / backend.fingerprint().id


def network_table_path(backend: Backend, space: SearchSpace) -> Path:
    """The cached network table of ``space`` on this backend's device."""
    return device_folder(backend) / f"networks-{space.name}-{space.signature}.csv"


def device_tables(backend: Backend, space: SearchSpace, networks: int = 8,
                  protocol: TimingProtocol = TimingProtocol(), show_progress: bool = True,
                  remeasure: bool = False) -> tuple[LayerTable, NetworkTable]:
    """This device's layer table for ``space`` and the whole networks that calibrate it,
    measured on first use and cached per device fingerprint (and space).

    The calibration networks (``calibration_z``: a covering design, in which every choice of
    every decision appears, and ``networks`` networks spread evenly over the space's MACs,
    the least and the most included) are timed in the same interleaved batches as the layers,
    so that all of them see the same machine states and the calibration line spans the whole
    space. The network of least layer sum is then measured too (the floor of the calibration).

    A warm call re-times DRIFT_REFERENCES cached networks (``drift``): where they moved
    beyond their noise (at least DRIFT_TOLERANCE), the machine is no longer what the cache
    describes and both tables are measured again; else the cache is used as it is. A cached
    table recorded as not good (``TableQuality``) or as measured with another ``protocol``,
    or every table with ``remeasure``, is measured again too.
    """
    layers_path, nets_path = device_folder(backend) / "layers.csv", \
        network_table_path(backend, space)
    status = read_cache_status(device_folder(backend))
    stale = [_stale(status.get(p.name), protocol) for p in (layers_path, nets_path)]
    calibration = calibration_z(space, networks)
    layer_units = _layer_units(space.unique_layers())
    if not (remeasure or any(stale)) and \
            _complete(status, layers_path, layer_units, space) and \
            _complete(status, nets_path, _network_units(space, calibration), space):
        moved = drift(backend, space, _read(read_network_table, nets_path, space), protocol)
        if moved:
            stale = [f"before the machine's timings moved ({moved})"] * 2
    discard = [remeasure or bool(why) for why in stale]
    for path, why, d in zip((layers_path, nets_path), stale, discard):
        if d or path.name not in status:
            _start(path, protocol, None if remeasure else why)
    label = "measuring layers and networks" if show_progress else None
    _measure(backend, [_Job(layers_path, LAYER_COLUMNS, "key", layer_units),
                       _Job(nets_path, NETWORK_COLUMNS, "z", _network_units(space, calibration))],
             protocol, label, discard_existing=discard)
    layers = _read(read_layer_table, layers_path)
    fixed, C = space.cost_matrix(lambda ls: [layers.timings[ly.key].latency_ms for ly in ls])
    least = space.min_z(fixed, C)[0]
    _measure(backend, [_Job(nets_path, NETWORK_COLUMNS, "z", _network_units(space, [least]))],
             protocol, label)
    qualities = [table_quality(path, space) for path in (layers_path, nets_path)]
    _record(device_folder(backend), {
        Path(q.path).name: {**asdict(q), "good": q.good, "protocol": _measurement(protocol)}
        for q in qualities})
    for q in qualities:
        if q.warning():
            print(f"hwnas: warning: {q.warning()}", file=sys.stderr)
    nets = _read(read_network_table, nets_path, space)
    wanted = {tuple(int(v) for v in z) for z in np.vstack([calibration, [least]])}
    return layers, nets.select([i for i, z in enumerate(nets.z) if z in wanted])


def calibration_z(space: SearchSpace, n: int = 8, seed: int = 0) -> np.ndarray:
    """The networks that calibrate a layer table: a covering design of ``space`` (every choice
    of every decision in some network) and ``n`` networks spread evenly over the space's MACs,
    the least and the most included: a range wide enough to fix the calibration's slope.
    Distinct rows, the same for the same space, n and seed."""
    fixed, macs = space.cost_matrix(lambda ls: [ly.macs for ly in ls])
    Z = np.vstack([np.nanargmin(macs, axis=1), np.nanargmax(macs, axis=1),
                   space.random_z(4000, seed)])
    total = space.evaluate_z(Z, fixed, macs)
    targets = np.linspace(total.min(), total.max(), n)
    spread = Z[[int(np.argmin(np.abs(total - t))) for t in targets]]
    design = space.design(max(space.n_choices), seed=seed)
    return np.unique(np.vstack([spread, design]), axis=0)


def drift(backend: Backend, space: SearchSpace, cached: NetworkTable,
          protocol: TimingProtocol) -> str | None:
    """Re-time DRIFT_REFERENCES of the cached networks (the least, median and most latent)
    in one batch (``_steady``: a burst is waited out once) and compare them with the cache:
    how far they moved, where the median move is beyond DRIFT_TOLERANCE, else None."""
    latency = cached.values()
    order = np.argsort(latency)
    picks = order[np.unique(np.linspace(0, len(order) - 1, DRIFT_REFERENCES).round()
                            .astype(int))]
    references = [(backend.runner(space.decode(cached.z[i]).graph), float(latency[i]))
                  for i in picks]
    _, moved = _steady(backend, [], protocol, references)
    if abs(moved) <= DRIFT_TOLERANCE:
        return None
    return f"{len(picks)} cached networks now measure {100 * moved:+.1f} % (median)"


def _complete(status: dict, path: Path, units: Units, space: SearchSpace) -> bool:
    """Whether the cached table at ``path`` is recorded as good and has every unit."""
    if not status.get(path.name, {}).get("good") or not path.exists():
        return False
    if path.name == "layers.csv":
        done = set(_read(read_layer_table, path).timings)
    else:
        done = {format_z(z) for z in _read(read_network_table, path, space).z}
    return set(units) <= done


def _measurement(protocol: TimingProtocol) -> dict:
    """What in a protocol decides a table's timings (re-measuring noisy units only mends)."""
    return {k: v for k, v in asdict(protocol).items() if k not in ("max_remeasures", "pause_s")}


def _other_protocol(record: dict, protocol: TimingProtocol) -> str | None:
    """How a cached table that ``record`` describes was measured, where not with ``protocol``
    (a table recorded without its protocol was measured before statistics were chosen)."""
    measured = record.get("protocol", {})
    if measured == _measurement(protocol):
        return None
    return "with another timing protocol (" + (", ".join(
        f"{k} {v}" for k, v in measured.items()) or "not recorded") + ")"


def _start(path: Path, protocol: TimingProtocol, why: str | None) -> None:
    """Before a cached table is (re)filled: say ``why`` it is measured again, if given, and
    record the protocol that will measure it (see ``_record``)."""
    if why:
        print(f"hwnas: {path.name} in {path.parent} was measured {why}: measuring it again",
              file=sys.stderr)
    _record(path.parent, {path.name: {"protocol": _measurement(protocol)}})


def _stale(record: dict | None, protocol: TimingProtocol) -> str | None:
    """Why a cached table that ``record`` describes must be measured again, or None."""
    if record is None:
        return None
    if not record.get("good", True):
        return _other_protocol(record, protocol) or "while the machine was unsteady"
    return _other_protocol(record, protocol)


def profile_layers(backend: Backend, layers: Sequence[Layer], path: str | os.PathLike,
                   protocol: TimingProtocol = TimingProtocol(),
                   show_progress: bool = True) -> LayerTable:
    """Measure every layer not yet in the table at ``path``, appending one row per layer.

    Running it again after an interruption measures only what is missing. A layer that fails
    to build or run raises ProfileError naming it; nothing is recorded for it. Noisy rows are
    re-measured (see ``_measure``); ``table_quality`` tells how steady the table is.
    """
    _measure(backend, [_Job(path, LAYER_COLUMNS, "key", _layer_units(layers))], protocol,
             "measuring layers" if show_progress else None)
    return _read(read_layer_table, path)


def profile_networks(backend: Backend, space: SearchSpace, zs: Sequence[Sequence[int]],
                     path: str | os.PathLike, protocol: TimingProtocol = TimingProtocol(),
                     show_progress: bool = True) -> NetworkTable:
    """Measure the end-to-end latency of each z not yet in the network table at ``path``."""
    _measure(backend, [_Job(path, NETWORK_COLUMNS, "z", _network_units(space, zs))], protocol,
             "measuring networks" if show_progress else None)
    return _read(read_network_table, path, space)


def measure_networks(backend: Backend, space: SearchSpace, zs: Sequence[Sequence[int]],
                     path: str | os.PathLike, protocol: TimingProtocol = TimingProtocol(),
                     show_progress: bool = True,
                     references: Sequence[tuple[Sequence[int], float]] = ()
                     ) -> dict[tuple[int, ...], Timing]:
    """Like profile_networks, but a measurement that stays noisy (over UNIT_NOISE) is returned
    without being cached, so that it is measured again next time. Returns z -> Timing for
    every z asked for; the table at ``path`` keeps only the steady ones. A cached table (see
    ``device_tables``) measured with another protocol is measured again.

    ``references`` are (z, latency_ms) of networks measured before on this machine (e.g. the
    calibration networks): they are re-timed in the same batch, and where they moved, the
    batch is timed again (``_steady``), and what still moved is not cached."""
    record = read_cache_status(Path(path).parent).get(Path(path).name)
    other = record is not None and _other_protocol(record, protocol)
    if other:
        _start(Path(path), protocol, other)
    refs = [(backend.runner(space.decode(z).graph), ms) for z, ms in references]
    unsaved = _measure(backend, [_Job(path, NETWORK_COLUMNS, "z", _network_units(space, zs))],
                       protocol, "measuring networks" if show_progress else None,
                       discard_existing=[bool(other)], keep_noisy=False, references=refs)
    timings = {space.parse_z(key): t for key, t in unsaved.items()}
    wanted = [tuple(int(v) for v in z) for z in zs]
    if any(z not in timings for z in wanted):  # in the table (else it may have no rows yet)
        table = _read(read_network_table, path, space)
        timings.update((z, t) for z, t in zip(table.z, table.timings) if z not in timings)
    return {z: timings[z] for z in wanted}


def time_networks(backend: Backend, space: SearchSpace, zs: Sequence[Sequence[int]],
                  protocol: TimingProtocol = TimingProtocol()) -> list[Timing]:
    """Time whole networks in one interleaved batch, re-measuring the noisy ones, without any
    table: fresh measurements that see one machine state (e.g. to verify or recalibrate)."""
    runners = [backend.runner(space.decode(z).graph) for z in space.check_z(zs)]
    return _steady(backend, runners, protocol)[0]


Units = dict[str, tuple[Graph, dict[str, str]]]


@dataclass(frozen=True)
class _Job:
    """Units to measure into one table: its path, columns and id column."""

    path: str | os.PathLike
    columns: Sequence[str]
    id_column: str
    units: Units


def _layer_units(layers: Sequence[Layer]) -> Units:
    return {layer.key: (unit_graph(layer), {"key": layer.key, "op": layer.op,
                                            "macs": str(layer.macs), "params": str(layer.params)})
            for layer in layers}


def _network_units(space: SearchSpace, zs) -> Units:
    units = {}
    for z in space.check_z(zs):
        key = format_z(z)
        units[key] = (space.decode(z).graph, {"space": space.name, "z": key})
    return units


def _read(reader, path, *args):
    """Read a table while no process writes it (a shared lock)."""
    with table_lock(path, shared=True):
        return reader(path, *args)


def _unit_noise(timing: Timing) -> float:
    """How far a unit's statistic moved between rounds, as a share of it (the round spread for
    rows written before ``noise_ms`` was recorded)."""
    return timing.noise if math.isfinite(timing.noise) else timing.round_spread


def _steady(backend: Backend, runners: Sequence[Callable[[], None]], protocol: TimingProtocol,
            references: Sequence[tuple[Callable[[], None], float]] = ()
            ) -> tuple[list[Timing], float]:
    """Time the runners in one interleaved batch, with ``references`` (runners of networks
    whose latency this machine measured before, and that latency) among them. Units whose
    statistic moved between rounds by more than UNIT_NOISE are timed again after
    ``protocol.pause_s`` (at most ``protocol.max_remeasures`` times), their new rounds pooled
    with the old ones; where the references moved by more than DRIFT_TOLERANCE, the machine
    was in another state (another job's burst, a slow state lasting seconds), and the whole
    batch is timed again so. Returns the timings and how far the references still moved
    (their median share; 0 without references)."""
    every = [*runners, *(run for run, _ in references)]
    expected = np.array([ms for _, ms in references])
    rounds = measure_rounds(every, protocol, backend.clock)
    timings = [to_timing(r, protocol) for r in rounds]

    def shift() -> float:
        if not len(expected):
            return 0.0
        return float(np.median([t.latency_ms for t in timings[len(runners):]] / expected) - 1)

    for _ in range(protocol.max_remeasures):
        again = list(range(len(every))) if abs(shift()) > DRIFT_TOLERANCE else \
            [i for i, t in enumerate(timings) if _unit_noise(t) > UNIT_NOISE]
        if not again:
            break
        backend.sleep(protocol.pause_s)
        for i, more in zip(again, measure_rounds([every[i] for i in again], protocol,
                                                 backend.clock)):
            rounds[i] = rounds[i] + more
            timings[i] = to_timing(rounds[i], protocol)
    return timings[:len(runners)], shift()


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
        return (f"{self.path}: its predictions move by up to {100 * self.prediction_noise:.1f} "
                f"% between rounds (90th percentile; {self.noisy_rows} of {self.rows} rows "
                f"moved by more than {100 * UNIT_NOISE:g} % after re-measuring them); load "
                f"average {self.load_average:.1f} on {self.cpus} core(s): other jobs were "
                f"running. Its latencies are unreliable: measure it again when the machine "
                f"is quieter (hwnas.search re-measures a noisy cached table on its next use; "
                f"python -m hwnas.profile --cache shows the cache)")


def _measure(backend: Backend, jobs: Sequence[_Job], protocol: TimingProtocol,
             progress_label: str | None, discard_existing: Sequence[bool] = (),
             keep_noisy: bool = True,
             references: Sequence[tuple[Callable[[], None], float]] = ()
             ) -> dict[str, Timing]:
    """Measure the units not yet in their tables, BATCH_UNITS at a time, interleaved across
    tables, so that units of different tables share machine states, with the ``references``
    in every batch (``_steady``). A unit that fails to build stops it, after the units built
    before it are measured and kept.

    ``discard_existing[j]`` discards job j's existing table first (renamed, see TableWriter).
    Every table is locked for the whole pass (in path order, so two passes cannot deadlock).
    Returns the measurements that were not written: units still noisy, or measured while the
    references had moved, unless ``keep_noisy``.
    """
    order = sorted(range(len(jobs)), key=lambda j: os.path.abspath(os.fspath(jobs[j].path)))
    writers: dict[int, TableWriter] = {}
    unsaved: dict[str, Timing] = {}
    try:
        for j in order:
            job = jobs[j]
            writers[j] = TableWriter(job.path, job.columns, job.id_column, backend.fingerprint(),
                                     j < len(discard_existing) and discard_existing[j])
        todo = _interleave([[(j, key) for key in jobs[j].units if key not in writers[j].done]
                            for j in range(len(jobs))])
        bar = Progress(len(todo), progress_label or "", progress_label is not None)
        try:
            for start in range(0, len(todo), BATCH_UNITS):
                batch = todo[start:start + BATCH_UNITS]
                runners: list[Callable[[], None]] = []
                failure = None
                for j, key in batch:
                    try:
                        runners.append(backend.runner(jobs[j].units[key][0]))
                    except ProfileError as e:
                        failure = e
                        break
                timings, moved = _steady(backend, runners, protocol, references)
                for (j, key), timing in zip(batch, timings):
                    if keep_noisy or (_unit_noise(timing) <= UNIT_NOISE and
                                      abs(moved) <= DRIFT_TOLERANCE):
                        writers[j].append({**jobs[j].units[key][1], **timing.as_row()})
                    else:
                        unsaved[key] = timing
                    bar.update()
                if failure is not None:
                    raise failure
        finally:
            bar.close()
    finally:
        for writer in writers.values():
            writer.close()
    return unsaved


def _interleave(lists: Sequence[list]) -> list:
    """Merge lists so that each is spread evenly over the result (stable within a list)."""
    keyed = [((i + 0.5) / len(items), n, item) for n, items in enumerate(lists)
             for i, item in enumerate(items)]
    return [item for _, _, item in sorted(keyed, key=lambda k: (k[0], k[1]))]


def table_quality(path: str | os.PathLike, space: SearchSpace | None = None) -> TableQuality:
    """How well the table at ``path`` is measured now (see TableQuality); a layer table is
    judged through the networks of ``space`` where it is given and additive."""
    path = os.fspath(path)
    is_layers = Path(path).name == "layers.csv" or _header(path)[:1] == ["key"]
    if is_layers:
        layers = _read(read_layer_table, path)
        timings = list(layers.timings.values())
    else:
        timings = list(_read(read_network_table, path, space).timings)
    noise = np.array([_unit_noise(t) for t in timings])
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
    return TableQuality(path, datetime.now(timezone.utc).isoformat(timespec="seconds"),
                        len(noise), int(np.sum(noise > UNIT_NOISE)), float(np.median(noise)),
                        float(predicted), os.getloadavg()[0], os.cpu_count() or 1)


def _header(path: str) -> list[str]:
    with open(path, newline="") as f:
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

    from hwnas._files import MAX_RECORD_BYTES, json_int, read_text
    path = Path(folder) / CACHE_STATUS
    if not path.exists():
        return {}
    if lock:
        with table_lock(path, shared=True):
            text = read_text(str(path), "cache record", max_bytes=MAX_RECORD_BYTES)
    else:
        text = read_text(str(path), "cache record", max_bytes=MAX_RECORD_BYTES)
    try:
        status = json.loads(text, parse_int=json_int)
    except (ValueError, RecursionError) as e:
        raise InputError(f"{path}: unreadable cache record ({e}); delete it") from None
    number = (int, float)
    kinds: dict[str, type | tuple[type, ...]] = {
        "good": bool, "measured_at": str, "protocol": dict, "path": str,
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


def _record(folder: Path, entries: dict[str, dict]) -> None:
    """Set the entries (table file name -> what is known of it: the protocol measuring it,
    then its TableQuality) of the folder's CACHE_STATUS (replaced atomically: a full disk
    leaves the earlier record; a link there is replaced, not followed). The protocol is
    recorded before a table is measured, so that an interrupted pass leaves its rows under
    the protocol that measured them."""
    from hwnas._files import write_json
    if not entries:
        return
    path = folder / CACHE_STATUS
    with table_lock(path):
        status = read_cache_status(folder, lock=False)
        status.update(entries)
        write_json(path, status)


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
    """A table of every cached table: device, rows, when measured, repeatability, good."""
    root = Path(root) if root is not None else cache_dir()
    lines = [f"cache {root}"]
    folders = sorted(p for p in root.glob("*") if p.is_dir()) if root.exists() else []
    if not folders:
        return lines[0] + ": empty"
    lines.append(f"{'device':<22}  {'table':<36}  {'rows':>5}  {'measured (UTC)':<25}  "
                 f"{'median':>6}  {'p90 net':>7}  {'noisy':>5}  {'load':>5}  state")
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
            lines.append(f"{folder.name:<22}  {path.name:<36}  {rows:>5}  "
                         f"{q['measured_at']:<25}  {100 * q['median_noise']:>5.1f}%  "
                         f"{100 * q['prediction_noise']:>6.1f}%  {q['noisy_rows']:>5}  "
                         f"{q['load_average']:>5.1f}  {'good' if q['good'] else 'NOISY'}")
    return "\n".join(lines)


__all__ = ["BACKENDS", "Backend", "ProfileError", "TimingProtocol", "add_backend_options",
           "add_protocol_options", "available_backends", "backend_from_args", "cache_dir",
           "cache_report", "device_tables", "discard_cache", "export_onnx", "get_backend",
           "calibration_z", "measure_networks", "network_table_path", "profile_layers",
           "profile_networks", "protocol_from_args", "read_cache_status", "table_quality",
           "time_networks", "to_onnx"]
