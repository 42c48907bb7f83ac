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
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np

from hwnas._calibration import fit_line
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
from hwnas.profile._timing import TimingProtocol, measure
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
            "onnxruntime": ("onnxruntime", "hwnas.profile._onnxruntime:OnnxRuntimeBackend")}

#: units built and timed together, interleaved; an interrupted run loses at most this many
BATCH_UNITS = 24

#: a row whose round medians differ by more than this share, or whose latency is this much
#: over its fastest run, was measured while the machine was unsteady (quiet rows here: round
#: spread median 3 %, 90th percentile 5 %; latency / fastest run at most 1.05)
NOISY_SPREAD = 0.15
#: a table with more noisy rows than this share (and more than one) is not trusted
NOISY_SHARE = 0.05


def available_backends() -> list[str]:
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


def device_folder(backend: Backend) -> Path:
    """The cache folder of this backend's device fingerprint."""
    return cache_dir() / backend.fingerprint().id


def network_table_path(backend: Backend, space: SearchSpace) -> Path:
    """The cached network table of ``space`` on this backend's device."""
    return device_folder(backend) / f"networks-{space.name}-{space.signature}.csv"


def device_tables(backend: Backend, space: SearchSpace, networks: int = 6,
                  protocol: TimingProtocol = TimingProtocol(), show_progress: bool = True,
                  budget_ms: float | None = None, remeasure: bool = False
                  ) -> tuple[LayerTable, NetworkTable]:
    """This device's layer table for ``space`` and whole networks measured to calibrate it,
    measured on first use and cached per device fingerprint (and space): later calls measure
    only what is missing.

    The layers and a balanced covering design of networks (every choice of every decision in
    at least one network: ``space.design``) are timed in the same interleaved batches, so
    both see the same machine state. Then the least-latency network by layer sum and
    ``networks`` networks whose calibrated layer sum is near ``budget_ms`` (of different
    sizes) are measured; without a budget, the most latent network and ``networks`` random
    ones (seed 0). Cached networks near the budget (e.g. verified search results) join the
    returned calibration set.

    A cached table recorded as noisy (see ``cache_report``) or as measured with another
    ``protocol`` (warmup, runs, rounds, min_runs or max_seconds), or every table with
    ``remeasure``, is discarded and measured again. Units whose ``noise`` is over
    NOISY_SPREAD are re-measured (as ``protocol`` says); a table that stays noisy is kept for
    this call but recorded as noisy (``measured.json`` beside the tables), with a warning
    on stderr that says how noisy, the machine's load and what to do.
    """
    layers_path, nets_path = device_folder(backend) / "layers.csv", \
        network_table_path(backend, space)
    status = read_cache_status(device_folder(backend))
    stale = [_stale(status.get(p.name), protocol) for p in (layers_path, nets_path)]
    discard = [remeasure or bool(why) for why in stale]
    for path, why, d in zip((layers_path, nets_path), stale, discard):
        if d or path.name not in status:
            _start(path, protocol, None if remeasure else why)
    span = space.design(max(space.n_choices), seed=0)
    layer_units = _layer_units(space.unique_layers())
    qualities, _ = _measure(backend, [(layers_path, LAYER_COLUMNS, "key", layer_units),
                                   (nets_path, NETWORK_COLUMNS, "z", _network_units(space, span))],
                         protocol, "measuring layers and networks" if show_progress else None,
                         discard_existing=discard)
    layers = _read(read_layer_table, layers_path)
    fixed, C = space.cost_matrix(lambda ls: [layers.timings[ly.key].latency_ms for ly in ls])
    nets = _read(read_network_table, nets_path, space)
    spanning = {tuple(int(v) for v in z) for z in span}  # the same line for the same cache
    nets = nets.select([i for i, z in enumerate(nets.z) if z in spanning])
    a, b = fit_line(space.evaluate_z(np.array(nets.z), fixed, C), nets.values())
    zs = [space.min_z(fixed, C)[0]]
    if budget_ms is None:
        zs.extend([np.nanargmax(C, axis=1), *space.random_z(networks, 0)])
    else:
        zs.extend(_near_budget(space, fixed, C, (budget_ms - b) / a, networks))
    qualities += _measure(backend, [(nets_path, NETWORK_COLUMNS, "z",
                                     _network_units(space, zs))],
                          protocol, "measuring networks" if show_progress else None)[0]
    nets = _read(read_network_table, nets_path, space)
    wanted = {tuple(int(v) for v in z) for z in np.vstack([span, zs])}
    if budget_ms is not None:  # earlier networks near the budget: verified results, say
        predicted = a * space.evaluate_z(np.array(nets.z), fixed, C) + b
        wanted |= {z for z, p, t in zip(nets.z, predicted, nets.timings)
                   if abs(p - budget_ms) <= 0.1 * budget_ms and noise(t) <= NOISY_SPREAD}
    last = {q.path: q for q in qualities}  # a table's later pass describes all of it
    _record(device_folder(backend), {Path(q.path).name: {**asdict(q), "good": q.good,
                                                        "protocol": _measurement(protocol)}
                                     for q in last.values()})
    for q in last.values():
        if q.warning():
            print(f"hwnas: warning: {q.warning()}", file=sys.stderr)
    return layers, nets.select([i for i, z in enumerate(nets.z) if z in wanted])


def _measurement(protocol: TimingProtocol) -> dict:
    """What in a protocol decides a table's timings (re-measuring noisy units only mends)."""
    return {k: v for k, v in asdict(protocol).items() if k not in ("max_remeasures", "pause_s")}


def _other_protocol(record: dict, protocol: TimingProtocol) -> str | None:
    """How a cached table that ``record`` describes was measured, where not with ``protocol``
    (a table recorded without its protocol was measured with the default one)."""
    measured = record.get("protocol", _measurement(TimingProtocol()))
    if measured == _measurement(protocol):
        return None
    return "with another timing protocol (" + ", ".join(
        f"{k} {v}" for k, v in measured.items()) + ")"


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


def _near_budget(space: SearchSpace, fixed: float, C: np.ndarray, target: float,
                 n: int, seed: int = 1) -> list[np.ndarray]:
    """n distinct z whose layer sum is nearest ``target``, spread over their MACs (the
    largest first: what a search under that budget reports)."""
    Z = np.unique(space.random_z(4000, seed), axis=0)
    sums = space.evaluate_z(Z, fixed, C)
    order = np.argsort(np.abs(sums - target))
    close = order[:max(n, int(np.sum(np.abs(sums - target) <= 0.05 * abs(target))))]
    macs = np.array([space.decode(Z[i]).macs for i in close])
    by_macs = close[np.argsort(-macs)]
    picks = np.unique(np.linspace(0, len(by_macs) - 1, min(n, len(by_macs))).round().astype(int))
    return [Z[by_macs[i]] for i in picks]


def profile_layers(backend: Backend, layers: Sequence[Layer], path: str | os.PathLike,
                   protocol: TimingProtocol = TimingProtocol(),
                   show_progress: bool = True) -> LayerTable:
    """Measure every layer not yet in the table at ``path``, appending one row per layer.

    Running it again after an interruption measures only what is missing. A layer that fails
    to build or run raises ProfileError naming it; nothing is recorded for it. Noisy rows are
    re-measured (see device_tables); ``table_quality`` tells how steady the table is.
    """
    _measure(backend, [(path, LAYER_COLUMNS, "key", _layer_units(layers))], protocol,
             "measuring layers" if show_progress else None)
    return _read(read_layer_table, path)


def profile_networks(backend: Backend, space: SearchSpace, zs: Sequence[Sequence[int]],
                     path: str | os.PathLike, protocol: TimingProtocol = TimingProtocol(),
                     show_progress: bool = True) -> NetworkTable:
    """Measure the end-to-end latency of each z not yet in the network table at ``path``."""
    _measure(backend, [(path, NETWORK_COLUMNS, "z", _network_units(space, zs))], protocol,
             "measuring networks" if show_progress else None)
    return _read(read_network_table, path, space)


def measure_networks(backend: Backend, space: SearchSpace, zs: Sequence[Sequence[int]],
                     path: str | os.PathLike, protocol: TimingProtocol = TimingProtocol(),
                     show_progress: bool = True) -> dict[tuple[int, ...], Timing]:
    """Like profile_networks, but a measurement that stays noisy (see ``noise``) is returned
    without being cached, so that it is measured again next time. Returns z -> Timing for
    every z asked for; the table at ``path`` keeps only the steady ones. A cached table (see
    ``device_tables``) measured with another protocol is measured again."""
    record = read_cache_status(Path(path).parent).get(Path(path).name)
    other = record is not None and _other_protocol(record, protocol)
    if other:
        _start(Path(path), protocol, other)
    _, unsaved = _measure(backend, [(path, NETWORK_COLUMNS, "z", _network_units(space, zs))],
                          protocol, "measuring networks" if show_progress else None,
                          discard_existing=[bool(other)], keep_noisy=False)
    timings = {space.parse_z(key): t for key, t in unsaved.items()}
    wanted = [tuple(int(v) for v in z) for z in zs]
    if any(z not in timings for z in wanted):  # in the table (else it may have no rows yet)
        table = _read(read_network_table, path, space)
        timings.update((z, t) for z, t in zip(table.z, table.timings) if z not in timings)
    return {z: timings[z] for z in wanted}


Units = dict[str, tuple[Graph, dict[str, str]]]


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


@dataclass(frozen=True)
class TableQuality:
    """How well a table was measured: when, its rows' round spreads, the machine's load."""

    path: str
    measured_at: str
    rows: int
    noisy_rows: int  # noise still over NOISY_SPREAD
    median_noise: float  # see noise(): the round spread, or latency over the fastest run
    worst_noise: float
    load_average: float  # 1-minute load average when the pass ended
    cpus: int

    @property
    def good(self) -> bool:
        """Few enough noisy rows to trust the table."""
        return self.noisy_rows <= max(1, int(NOISY_SHARE * self.rows))

    def warning(self) -> str | None:
        """What to tell the user about a noisy table, or None."""
        if self.good:
            return None
        return (f"{self.path}: {self.noisy_rows} of {self.rows} rows still varied by more than "
                f"{100 * NOISY_SPREAD:.0f} % between rounds after re-measuring them (median "
                f"{100 * self.median_noise:.1f} %, worst {100 * self.worst_noise:.0f} %); "
                f"load average {self.load_average:.1f} on {self.cpus} core(s): other jobs "
                f"were running. Its latencies are unreliable: measure it again when the "
                f"machine is quieter (hwnas.search re-measures a noisy cached table on its "
                f"next use; python -m hwnas.profile --cache shows the cache)")


def _measure(backend: Backend, jobs: Sequence[tuple[str | os.PathLike, Sequence[str], str, Units]],
             protocol: TimingProtocol, progress_label: str | None,
             discard_existing: Sequence[bool] = (), keep_noisy: bool = True
             ) -> tuple[list[TableQuality], dict[str, Timing]]:
    """Measure the units not yet in their tables, BATCH_UNITS at a time, interleaved across
    tables (each job is ``(path, columns, id_column, units)``), so that units of different
    tables share machine states. Units whose noise is over NOISY_SPREAD are measured again
    after a pause (at most ``protocol.max_remeasures`` more times; the fastest measurement is
    kept). A unit that fails to build stops it, after the units built before it are measured
    and kept.

    ``discard_existing[j]`` discards job j's existing table first (renamed, see TableWriter).
    Every table is locked for the whole pass (in path order, so two passes cannot deadlock).
    Returns the quality of each table that gained rows, and the measurements that were not
    written: rows still noisy, unless ``keep_noisy``.
    """
    order = sorted(range(len(jobs)), key=lambda j: os.path.abspath(os.fspath(jobs[j][0])))
    writers: dict[int, TableWriter] = {}
    try:
        for j in order:
            path, columns, id_column, _ = jobs[j]
            writers[j] = TableWriter(path, columns, id_column, backend.fingerprint(),
                                     j < len(discard_existing) and discard_existing[j])
        todo = _interleave([[(j, key) for key in jobs[j][3] if key not in writers[j].done]
                            for j in range(len(jobs))])
        bar = Progress(len(todo), progress_label or "", progress_label is not None)
        measured = {j: 0 for j in writers}
        unsaved: dict[str, Timing] = {}
        try:
            for start in range(0, len(todo), BATCH_UNITS):
                batch = todo[start:start + BATCH_UNITS]
                runners: list[Callable[[], None]] = []
                failure = None
                for j, key in batch:
                    try:
                        runners.append(backend.runner(jobs[j][3][key][0]))
                    except ProfileError as e:
                        failure = e
                        break
                timings = measure(runners, protocol)
                for _ in range(protocol.max_remeasures):
                    noisy = [i for i, t in enumerate(timings) if noise(t) > NOISY_SPREAD]
                    if not noisy:
                        break
                    time.sleep(protocol.pause_s)
                    for i, t in zip(noisy, measure([runners[i] for i in noisy], protocol)):
                        # another job on the core only slows a round down: keep the faster
                        timings[i] = min(timings[i], t, key=lambda x: x.latency_ms)
                for (j, key), timing in zip(batch, timings):
                    if keep_noisy or noise(timing) <= NOISY_SPREAD:
                        writers[j].append({**jobs[j][3][key][1], **timing.as_row()})
                        measured[j] += 1
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
    return [table_quality(jobs[j][0]) for j in sorted(writers) if measured[j]], unsaved


def noise(timing: Timing) -> float:
    """How unsteady a measurement was: its round spread, or how far its latency (the least
    round median) lies above its fastest run where that is more (a whole round slowed by
    another job on the core)."""
    return max(timing.round_spread, timing.latency_ms / timing.min_ms - 1)


def _interleave(lists: Sequence[list]) -> list:
    """Merge lists so that each is spread evenly over the result (stable within a list)."""
    keyed = [((i + 0.5) / len(items), n, item) for n, items in enumerate(lists)
             for i, item in enumerate(items)]
    return [item for _, _, item in sorted(keyed, key=lambda k: (k[0], k[1]))]


def table_quality(path: str | os.PathLike) -> TableQuality:
    """How well the table at ``path`` is measured now: its rows' noise and the load."""
    import csv
    path = os.fspath(path)
    with table_lock(path, shared=True), open(path, newline="") as f:
        spreads = np.array([noise(Timing(float(row["latency_ms"]), 0, 0, float(row["min_ms"]), 1,
                                         float(row["round_spread"])))
                            for row in csv.DictReader(f)])
    return TableQuality(path, datetime.now(timezone.utc).isoformat(timespec="seconds"),
                        len(spreads),
                        int(np.sum(spreads > NOISY_SPREAD)), float(np.median(spreads)),
                        float(spreads.max()), os.getloadavg()[0], os.cpu_count() or 1)


CACHE_STATUS = "measured.json"


def read_cache_status(folder: str | os.PathLike) -> dict[str, dict]:
    """What a device's cache folder records about its tables: file name -> TableQuality
    fields and ``good``. Empty where nothing is recorded. A folder this process cannot write
    (a shared, read-only cache) is read without the lock, whose file it could not create:
    nobody can be writing there through it either."""
    path = Path(folder) / CACHE_STATUS
    try:
        if not os.access(folder, os.W_OK):
            with open(path) as f:
                return json.load(f)
        with table_lock(path, shared=True), open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return {}
    except (OSError, json.JSONDecodeError) as e:
        raise InputError(f"{path}: unreadable cache record ({e}); delete it") from None


def _record(folder: Path, entries: dict[str, dict]) -> None:
    """Set the entries (table file name -> what is known of it: the protocol measuring it,
    then its TableQuality) of the folder's CACHE_STATUS (replaced atomically). The protocol is
    recorded before a table is measured, so that an interrupted pass leaves its rows under
    the protocol that measured them."""
    if not entries:
        return
    path = folder / CACHE_STATUS
    with table_lock(path):
        status = {}
        if path.exists():
            with open(path) as f:
                status = json.load(f)
        status.update(entries)
        tmp = path.with_name(f".{CACHE_STATUS}.{os.getpid()}")
        with open(tmp, "x") as f:
            json.dump(status, f, indent=1)
        os.replace(tmp, path)


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
                 f"{'median':>6}  {'worst':>6}  {'noisy':>5}  {'load':>5}  state")
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
                         f"{100 * q['worst_noise']:>5.0f}%  {q['noisy_rows']:>5}  "
                         f"{q['load_average']:>5.1f}  {'good' if q['good'] else 'NOISY'}")
    return "\n".join(lines)


__all__ = ["BACKENDS", "Backend", "ProfileError", "TimingProtocol", "add_backend_options",
           "add_protocol_options", "available_backends", "backend_from_args", "cache_dir",
           "cache_report", "device_tables", "discard_cache", "export_onnx", "get_backend",
           "measure_networks", "network_table_path", "noise", "profile_layers", "profile_networks",
           "protocol_from_args", "read_cache_status", "table_quality", "to_onnx"]
