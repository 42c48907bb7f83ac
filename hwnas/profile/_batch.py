"""The batch measurement: units timed BATCH_UNITS at a time, interleaved across tables, noisy
ones timed again, reference networks re-timed among them; rows appended to their tables."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np

from hwnas._progress import Progress
from hwnas.layers import Layer
from hwnas.profile._base import Backend, ProfileError
from hwnas.profile._cache import (
    UNIT_NOISE,
    other_protocol,
    read_cache_status,
    read_locked,
    start_table,
    unit_noise,
)
from hwnas.profile._latency import MachineState, batch_state
from hwnas.profile._stats import BATCH_UNITS, speed_corrected, statistics
from hwnas.profile._timing import TimingProtocol, measure_rounds
from hwnas.spaces import Graph, SearchSpace, unit_graph
from hwnas.tables import (
    LAYER_COLUMNS,
    NETWORK_COLUMNS,
    LayerTable,
    NetworkTable,
    TableWriter,
    Timing,
    read_layer_table,
    read_network_table,
)

#: how far reference networks may move (median) and still be taken out, the machine in one of
#: its states of seconds to minutes (2-vCPU VM, 2026-12-02: calibration networks re-timed
#: beside verification batches less than a minute later moved -11 % to +31 %, 16 of 25
#: within 12 %); beyond it, the machine is in another state than when they were measured
DRIFT_TOLERANCE = 0.12


Units = dict[str, tuple[Graph, dict[str, str]]]


@dataclass(frozen=True)
class Job:
    """Units to measure into one table: its path, columns and id column; ``retime``: time the
    units already in the table too (their rows are kept as they are)."""

    path: str | os.PathLike
    columns: Sequence[str]
    id_column: str
    units: Units
    retime: bool = False


def layer_units(layers: Sequence[Layer]) -> Units:
    return {layer.key: (unit_graph(layer), {"key": layer.key, "op": layer.op,
                                            "macs": str(layer.macs), "params": str(layer.params)})
            for layer in layers}


def network_units(space: SearchSpace, zs) -> Units:
    units = {}
    for z in space.check_z(zs):
        key = space.format_z(z)
        units[key] = (space.decode(z).graph, {"space": space.name, "z": key})
    return units


@dataclass
class BatchLog:
    """What the batches of a measurement saw, for its caller: how far each reference moved
    against its earlier latency (``moves``: a list of shares per batch), the machine's state
    (``states``: a MachineState per batch with references), and every unit measured
    (``timings``: id -> Timing, on the references' scale where there are any)."""

    moves: list[list[float]] = field(default_factory=list)
    states: list[MachineState] = field(default_factory=list)
    timings: dict[str, Timing] = field(default_factory=dict)


def steady(backend: Backend, runners: Sequence[Callable[[], None]], protocol: TimingProtocol,
           references: Sequence[tuple[Callable[[], None], float]] = (),
           states: list[MachineState] | None = None) -> tuple[list[Timing], list[float]]:
    """Time the runners in one interleaved batch, with ``references`` (runners of networks
    whose latency this machine measured before, and that latency) among them. Units whose
    statistic moved between rounds by more than UNIT_NOISE are timed again after
    ``protocol.pause_s`` (at most ``protocol.max_remeasures`` times), their new rounds pooled
    with the old ones. Returns the timings and how far each reference moved against what it
    measured before (a share: +0.1 is 10 % slower now); the machine's state the references
    tell (``MachineState``) is appended to ``states`` where given."""
    every = [*runners, *(run for run, _ in references)]
    raw = measure_rounds(every, protocol, backend.clock, backend.min_round_s)
    corrected = speed_corrected(raw) if protocol.speed_correction else [list(r) for r in raw]

    def timing(i: int) -> Timing:
        return Timing(**statistics(corrected[i], protocol.statistic, raw=raw[i]))

    timings = [timing(i) for i in range(len(every))]
    for _ in range(protocol.max_remeasures):
        again = [i for i, t in enumerate(timings) if unit_noise(t) > UNIT_NOISE]
        if not again:
            break
        backend.sleep(protocol.pause_s)
        more = measure_rounds([every[i] for i in again], protocol, backend.clock,
                              backend.min_round_s)
        for i, r, c in zip(again, more, speed_corrected(more) if protocol.speed_correction
                           else more):
            raw[i], corrected[i] = raw[i] + r, corrected[i] + list(c)
            timings[i] = timing(i)
    state = batch_state(raw[len(runners):], [ms for _, ms in references])
    if states is not None and state is not None:
        states.append(state)
    now = [t.latency_ms for t in timings[len(runners):]]
    return timings[:len(runners)], [float(t / ms - 1) for t, (_, ms) in zip(now, references)]


def measure_jobs(backend: Backend, jobs: Sequence[Job], protocol: TimingProtocol,
             progress_label: str | None, discard_existing: Sequence[bool] = (),
             keep_noisy: bool = True,
             references: Sequence[tuple[Callable[[], None], float]] = (),
             log: BatchLog | None = None) -> dict[str, Timing]:
    """Measure the units not yet in their tables, BATCH_UNITS at a time, interleaved across
    tables, so that units of different tables share machine states, with the ``references``
    in every batch (``steady``): a batch's timings are divided by how far its references
    moved (their median share), which puts them on the scale the references were measured
    at (a machine state that slows or speeds every unit alike cancels out); what each batch
    saw goes into ``log`` where given (``BatchLog``). A unit that
    fails to build stops it, after the units built before it are measured and kept.

    ``discard_existing[j]`` discards job j's existing table first (renamed, see TableWriter).
    Every table is locked for the whole pass (in path order, so two passes cannot deadlock).
    Returns the measurements that were not written: units still noisy, or measured while the
    references had moved by more than DRIFT_TOLERANCE (rescaled, but less sure), unless
    ``keep_noisy``.
    """
    order = sorted(range(len(jobs)), key=lambda j: os.path.abspath(os.fspath(jobs[j].path)))
    writers: dict[int, TableWriter] = {}
    unsaved: dict[str, Timing] = {}
    try:
        for j in order:
            job = jobs[j]
            writers[j] = TableWriter(job.path, job.columns, job.id_column, backend.fingerprint(),
                                     j < len(discard_existing) and discard_existing[j])
        todo = _interleave([[(j, key) for key in jobs[j].units
                             if jobs[j].retime or key not in writers[j].done]
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
                timings, moved = _on_their_scale(backend, runners, protocol, references, log)
                for (j, key), timing in zip(batch, timings):
                    if log is not None:
                        log.timings[key] = timing
                    kept = keep_noisy or (unit_noise(timing) <= UNIT_NOISE and
                                          abs(moved) <= DRIFT_TOLERANCE)
                    if not kept:
                        unsaved[key] = timing
                    elif key not in writers[j].done:  # a re-timed unit's row stays as it is
                        writers[j].append({**jobs[j].units[key][1], **timing.as_row()})
                    bar.update()
                if failure is not None:
                    raise failure
        finally:
            bar.close()
    finally:
        for writer in writers.values():
            writer.close()
    return unsaved


def _on_their_scale(backend: Backend, runners: Sequence[Callable[[], None]],
                    protocol: TimingProtocol,
                    references: Sequence[tuple[Callable[[], None], float]],
                    log: BatchLog | None) -> tuple[list[Timing], float]:
    """``steady``'s timings divided by how far the references moved (their median share; 0
    without references), and that share; what the batch saw goes into ``log``."""
    timings, moved_each = steady(backend, runners, protocol, references,
                                 None if log is None else log.states)
    if not references:
        return timings, 0.0
    moved = float(np.median(moved_each))
    if log is not None:
        log.moves.append(moved_each)
    return [t.scaled(1 / (1 + moved)) for t in timings], moved


def reference_runners(backend: Backend, space: SearchSpace,
                      references: Sequence[tuple[Sequence[int], float]]
                      ) -> list[tuple[Callable[[], None], float]]:
    """(runner, latency_ms) of each reference network, (z, latency_ms measured before), as
    ``steady`` and ``measure_jobs`` take them."""
    return [(backend.runner(space.decode(z).graph), float(ms)) for z, ms in references]


def _interleave(lists: Sequence[list]) -> list:
    """Merge lists so that each is spread evenly over the result (stable within a list)."""
    keyed = [((i + 0.5) / len(items), n, item) for n, items in enumerate(lists)
             for i, item in enumerate(items)]
    return [item for _, _, item in sorted(keyed, key=lambda k: (k[0], k[1]))]


def profile_layers(backend: Backend, layers: Sequence[Layer], path: str | os.PathLike,
                   protocol: TimingProtocol = TimingProtocol(),
                   show_progress: bool = True) -> LayerTable:
    """Measure every layer not yet in the table at ``path``, appending one row per layer.

    Running it again after an interruption measures only what is missing. A layer that fails
    to build or run raises ProfileError naming it; nothing is recorded for it. Noisy rows are
    re-measured (see ``measure_jobs``); ``table_quality`` tells how steady the table is.
    """
    measure_jobs(backend, [Job(path, LAYER_COLUMNS, "key", layer_units(layers))], protocol,
             "measuring layers" if show_progress else None)
    return read_locked(read_layer_table, path)


def profile_networks(backend: Backend, space: SearchSpace, zs: Sequence[Sequence[int]],
                     path: str | os.PathLike, protocol: TimingProtocol = TimingProtocol(),
                     show_progress: bool = True) -> NetworkTable:
    """Measure the end-to-end latency of each z not yet in the network table at ``path``."""
    measure_jobs(backend, [Job(path, NETWORK_COLUMNS, "z", network_units(space, zs))], protocol,
             "measuring networks" if show_progress else None)
    return read_locked(read_network_table, path, space)


def measure_networks(backend: Backend, space: SearchSpace, zs: Sequence[Sequence[int]],
                     path: str | os.PathLike, protocol: TimingProtocol = TimingProtocol(),
                     show_progress: bool = True,
                     references: Sequence[tuple[Sequence[int], float]] = (),
                     log: BatchLog | None = None) -> dict[tuple[int, ...], Timing]:
    """Time each z now, in one interleaved batch, and add the steady ones that the network
    table at ``path`` lacks (a measurement that stays noisy, over UNIT_NOISE, is not cached,
    so that it is measured again next time). Returns z -> Timing for every z asked for: its
    row where the table has one (a warm run judges with what it cached), else what was
    measured now; either way with the raw median and p90 of its runs now. A cached table
    (see ``device_tables``) measured with another protocol is measured again.

    ``references`` are (z, latency_ms) of networks measured before on this machine (e.g. the
    calibration networks): they are re-timed in the same batch, and the batch is returned on
    their earlier scale (``measure_jobs``; what each batch saw goes into ``log``), so that it
    compares with what was measured beside them; a batch whose references moved by more than
    DRIFT_TOLERANCE is not cached."""
    record = read_cache_status(Path(path).parent).get(Path(path).name)
    other = record is not None and other_protocol(record, protocol)
    if other:
        start_table(Path(path), protocol, other)
    refs = reference_runners(backend, space, references)
    log = BatchLog() if log is None else log
    measure_jobs(backend, [Job(path, NETWORK_COLUMNS, "z", network_units(space, zs),
                               retime=True)],
                 protocol, "measuring networks" if show_progress else None,
                 discard_existing=[bool(other)], keep_noisy=False, references=refs, log=log)
    table = read_locked(read_network_table, path, space) if Path(path).exists() else None
    rows = dict(zip(table.z, table.timings)) if table is not None and len(table.z) else {}
    measured = {}
    for z in space.check_z(zs):  # canonical (ofa: skipped blocks' choices fixed)
        z = tuple(int(v) for v in z)
        now = log.timings[space.format_z(z)]
        measured[z] = now if z not in rows else \
            replace(rows[z], raw_median_ms=now.raw_median_ms, raw_p90_ms=now.raw_p90_ms)
    return measured
