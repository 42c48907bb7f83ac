"""This device's cached layer table and calibration networks for a space (the default flow)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np

from hwnas.profile._base import Backend
from hwnas.profile._batch import (
    DRIFT_TOLERANCE,
    BatchLog,
    Job,
    layer_units,
    measure_jobs,
    network_units,
    reference_runners,
    steady,
)
from hwnas.profile._cache import (
    device_folder,
    network_table_path,
    protocol_record,
    read_cache_status,
    read_locked,
    record_status,
    stale_reason,
    start_table,
    table_quality,
)
from hwnas.profile._timing import TimingProtocol
from hwnas.spaces import SearchSpace
from hwnas.spaces._exact import knapsack
from hwnas.tables import (
    LAYER_COLUMNS,
    NETWORK_COLUMNS,
    LayerTable,
    NetworkTable,
    read_layer_table,
    read_network_table,
    scale_table,
)

#: networks re-timed on a warm run to check that the cache still describes this machine
DRIFT_REFERENCES = 3
#: networks on the frontier of MACs against layer sum that calibrate too (``frontier_z``)
FRONTIER_NETWORKS = 12
#: calibration networks re-timed beside the frontier (spread over their latencies)
FRONTIER_REFERENCES = 4
#: the steps that ``frontier_z`` rounds layer sums to (its frontier is exact on them)
FRONTIER_GRID = 2000
#: cached networks re-timed in one batch that moved this far apart (the most against the
#: least, in log) no longer compare as cached: not a state of the machine (which moves every
#: network alike, 2-4 % apart), another machine
DRIFT_APART = 0.25


def device_tables(backend: Backend, space: SearchSpace, networks: int = 4,
                  protocol: TimingProtocol = TimingProtocol(), show_progress: bool = True,
                  remeasure: bool = False) -> tuple[LayerTable, NetworkTable]:
    """This device's layer table for ``space`` and the whole networks that calibrate it (the
    cached network table: the calibration networks and the steady answers of earlier
    verifications), measured on first use and cached per device fingerprint (and space).

    The calibration networks (``calibration_z``: a covering design, in which every choice of
    every decision appears, and ``networks`` networks spread evenly over the space's MACs,
    the least and the most included) are timed in the same interleaved batches as the layers,
    so that all of them see the same machine states and the calibration line spans the whole
    space. Then the layer table's ``frontier_z`` (the networks of most MACs per ms of layer
    sum, the least-latency one included: where a search for the most capable network within
    a budget lands, and where the calibration's offset is fitted), with FRONTIER_REFERENCES
    calibration networks re-timed beside them, put on their scale.

    The tables hold the machine's fastest state seen (a shared machine moves through slower
    states of seconds to minutes, other tenants' load; a dedicated device seldom does): where
    the frontier's references, or a warm call's drift check, ran faster than the tables by
    more than DRIFT_TOLERANCE, the tables were measured in a slow state and are put on the
    faster scale (``rebase``); where they run slower, later batches are put on the tables'
    scale by the references timed beside them. A warm call re-times DRIFT_REFERENCES cached
    networks (``drift``) and measures both tables again only where they moved apart by more
    than DRIFT_APART (not a state: another machine). A cached table recorded as not good
    (``TableQuality``) or as measured with another ``protocol``, or every table with
    ``remeasure``, is measured again too; a read-only cache is used as it is.
    """
    folder = device_folder(backend)
    paths = (folder / "layers.csv", network_table_path(backend, space))
    status = read_cache_status(folder)
    stale = [stale_reason(status.get(p.name), protocol) for p in paths]
    calibration = calibration_z(space, networks)
    if not remeasure and not os.access(folder, os.W_OK):  # a shared cache: used as it is
        cached = _cached(status, *paths, space, calibration, judged=False, complete=False)
        if cached is not None:
            if any(stale):
                print(f"hwnas: warning: {folder} is read-only: its tables, measured "
                      f"{next(why for why in stale if why)}, are used as they are",
                      file=sys.stderr)
            return cached
    cached = None if remeasure else _cached(status, *paths, space, calibration)
    if cached is not None and not any(stale):
        moves = drift(backend, space, cached[1], protocol)
        if _apart(moves):
            stale = [f"on another machine: {len(moves)} cached networks now measure "
                     f"{', '.join(f'{100 * m:+.0f} %' for m in moves)}"] * 2
        elif not rebase(paths, float(np.median(moves)), "the drift check",
                        _rebased_by(status, paths[1])):
            return cached
        else:  # the same tables, on the faster scale (unless another process changed them)
            cached = _cached(read_cache_status(folder), *paths, space, calibration)
            if cached is not None:
                return cached
    for path, why in zip(paths, stale):
        if remeasure or why or path.name not in status:
            start_table(path, protocol, None if remeasure else why)
    _measure_tables(backend, space, paths, calibration, protocol,
                    [remeasure or bool(why) for why in stale], show_progress)
    cached = _cached(read_cache_status(folder), *paths, space, calibration, judged=False)
    assert cached is not None  # every unit was just measured
    return cached


def _measure_tables(backend: Backend, space: SearchSpace, paths: tuple[Path, Path],
                    calibration: np.ndarray, protocol: TimingProtocol, discard: list[bool],
                    show_progress: bool) -> None:
    """Measure the layers and the calibration networks in one interleaved batch (``discard``:
    start each table afresh), then the layer table's frontier beside FRONTIER_REFERENCES of
    those networks (put on their scale); record how good each table is."""
    layers_path, nets_path = paths
    label = "measuring layers and networks" if show_progress else None
    jobs = [Job(layers_path, LAYER_COLUMNS, "key", layer_units(space.layers_to_measure())),
            Job(nets_path, NETWORK_COLUMNS, "z", network_units(space, calibration))]
    kept = None if discard[1] or not nets_path.exists() else \
        read_locked(read_network_table, nets_path, space)
    log = BatchLog()
    # networks missing from a kept table (measured by another version) go on its scale
    measure_jobs(backend, jobs, protocol, label, discard_existing=discard,
                 references=spread_references(backend, space, kept, FRONTIER_REFERENCES)
                 if kept is not None and len(kept.z) >= 2 else (), log=log)
    frontier = frontier_z(space, read_locked(read_layer_table, layers_path))
    nets = read_locked(read_network_table, nets_path, space)
    if {tuple(int(v) for v in z) for z in frontier} - set(nets.z):
        measure_jobs(backend, [Job(nets_path, NETWORK_COLUMNS, "z",
                                   network_units(space, frontier))],
                     protocol, "measuring the frontier" if show_progress else None,
                     references=spread_references(backend, space, nets, FRONTIER_REFERENCES),
                     log=log)
    qualities = [table_quality(path, space) for path in paths]
    recorded = record_status(layers_path.parent, lambda status: {
        Path(q.path).name: {**asdict(q), "good": q.good, "protocol": protocol_record(protocol),
                            "rebased_by": _rebased_by(status, Path(q.path)),  # a kept table's
                            **({"frontier": True} if Path(q.path) == nets_path else {})}
        for q in qualities})
    for q in qualities:
        if q.warning():
            print(f"hwnas: warning: {q.warning()}", file=sys.stderr)
    if log.moves:
        rebase(paths, float(np.median(np.concatenate(log.moves))), "the frontier's batch",
               _rebased_by(recorded, nets_path))


def frontier_z(space: SearchSpace, layers: LayerTable, n: int = FRONTIER_NETWORKS
               ) -> np.ndarray:
    """Up to ``n`` networks on the frontier of MACs against layer sum: each the network of most
    MACs within a layer sum, at sums spread evenly on a log scale from the least-latency
    network (included, exactly) to the most; the frontier is the exact one (``knapsack``) of
    the layer sums rounded to FRONTIER_GRID steps. A search for the most capable network
    within a budget lands on this frontier and exploits what a layer sum misses there
    (compute-dense networks measured 3-10 % over a line fitted on networks spread over the
    space): the calibration measures them too, a few near any budget.

    Example:
        >>> from hwnas.spaces import get_space
        >>> from hwnas.tables import LayerTable, Timing
        >>> space = get_space("mobilenet")
        >>> ms = {ly.key: 0.01 + 1e-7 * ly.macs * (1 + ("k=5" in ly.key))
        ...       for ly in space.unique_layers()}  # made up: 5x5 kernels run slower
        >>> table = LayerTable("made-up", None, {k: Timing(v, v, v, v, 10, 0.0)
        ...                                      for k, v in ms.items()})
        >>> z = frontier_z(space, table, 6)
        >>> least, _ = space.min_z(*space.cost_matrix(lambda ls: [ms[ly.key] for ly in ls]))
        >>> len(z) <= 6, bool((z == least).all(axis=1).any())
        (True, True)
    """
    if space.sliced:
        return _sliced_frontier_z(space, layers, n)
    fixed, ms = space.cost_matrix(lambda ls: [layers.timings[ly.key].latency_ms for ly in ls])
    _, macs = space.cost_matrix(lambda ls: [ly.macs for ly in ls])
    step = max(float(np.nansum(np.nanmax(ms, axis=1) - np.nanmin(ms, axis=1))), 1e-12) \
        / FRONTIER_GRID
    front = sorted(knapsack(fixed_cost=fixed, cost=np.round(ms / step) * step, fixed_value=0.0,
                            value=macs, budget=np.inf))  # by layer sum: MACs rise along it
    sums = np.array([cost for cost, _, _ in front])
    Z = [np.nanargmin(ms, axis=1)]  # the least-latency network, exactly (not rounded)
    for target in np.geomspace(max(sums[0], step), max(sums[-1], step), n)[1:]:
        Z.append(np.array(front[int(np.searchsorted(sums, target, side="right")) - 1][2]))
    return np.unique(np.array(Z), axis=0)


def _sliced_frontier_z(space: SearchSpace, layers: LayerTable, n: int) -> np.ndarray:
    """frontier_z on a space additive within slices (``ofa``): the exact front of the layer
    sums (``layer_predictor``: measured layers, the others predicted) per resolution
    (``sliced_knapsack``), n networks along it on a log scale of layer sums."""
    from hwnas.spaces._exact import layer_tensor, sliced_knapsack
    fixed, ms = layer_predictor(space, layers).cost_tensor(space)
    blocks = ms[:, :space.n_blocks]  # type: ignore[attr-defined]
    step = max(float(np.nanmax(fixed) - np.nanmin(fixed) + np.nansum(
        np.nanmax(blocks, axis=2) - np.nanmin(blocks, axis=2), axis=1).max()), 1e-12) \
        / FRONTIER_GRID  # rounded sums: a front of at most FRONTIER_GRID points a slice
    front = sorted(sliced_knapsack(space, (fixed, np.round(ms / step) * step),
                                   layer_tensor(space, "macs"), np.inf))
    sums = np.array([cost for cost, _, _ in front])
    Z = [np.array(front[0][2])]  # the least-latency network
    for target in np.geomspace(sums[0], sums[-1], n)[1:]:
        Z.append(np.array(front[int(np.searchsorted(sums, target, side="right")) - 1][2]))
    return np.unique(np.array(Z), axis=0)


def layer_predictor(space: SearchSpace, layers: LayerTable):
    """The layer predictor of the default flow: the measured layers looked up (``lookup``);
    where the space's layers were measured at a few sizes only (``ofa``:
    ``layers_to_measure``), the others predicted by a linear regressor over layer features
    (per op kind, fitted on the measured ones) anchored to the same layers' measured sizes
    (``LookupPredictor.anchors``), silently: that is the plan, not a gap."""
    from hwnas.predictors import LinearPredictor, LookupPredictor
    if all(ly.key in layers.timings for ly in space.unique_layers()):
        return LookupPredictor().fit_table(layers)
    return LookupPredictor(fallback=LinearPredictor(), warn_fallback=False).fit_table(layers)


def _cached(status: dict, layers_path: Path, nets_path: Path, space: SearchSpace,
            calibration: np.ndarray, judged: bool = True, complete: bool = True
            ) -> tuple[LayerTable, NetworkTable] | None:
    """The cached layer table and its network table, or None where a table is missing, lacks
    a layer or a calibration network, was not measured with its frontier (as its status
    records: the frontier moves a little when a table is put on another scale), or
    (``judged``) is not recorded as good. Not ``complete``: any 2 networks do (a read-only
    cache measured by another version). The network table also holds the steady answers of earlier
    verifications: they calibrate too, near the budgets they were verified at."""
    if not (layers_path.exists() and nets_path.exists()) or judged and not all(
            status.get(p.name, {}).get("good") for p in (layers_path, nets_path)):
        return None
    layers = read_locked(read_layer_table, layers_path)
    if any(ly.key not in layers.timings for ly in space.layers_to_measure()):
        return None
    nets = read_locked(read_network_table, nets_path, space)
    if not complete:
        return (layers, nets) if len(nets.z) >= 2 else None
    if not status.get(nets_path.name, {}).get("frontier") or \
            {tuple(int(v) for v in z) for z in calibration} - set(nets.z):
        return None
    return layers, nets


def calibration_z(space: SearchSpace, n: int = 4, seed: int = 0) -> np.ndarray:
    """The networks that calibrate a layer table: a covering design of ``space`` (every choice
    of every decision in some network) and ``n`` networks spread evenly over the space's MACs,
    the least and the most included: a range wide enough to fix the calibration's slope.
    Distinct rows, the same for the same space, n and seed."""
    if space.sliced:  # the least and the most by MACs, over every resolution and depth
        from hwnas.spaces._exact import layer_tensor
        per_slice, C = layer_tensor(space, "macs")
        least, most = (space.min_z_tensor(sign * per_slice, sign * C)[0]
                       for sign in (1.0, -1.0))
        Z = np.vstack([least, most, space.random_z(4000, seed)])
        total = space.evaluate_tensor(Z, per_slice, C)
    else:
        fixed, macs = space.cost_matrix(lambda ls: [ly.macs for ly in ls])
        Z = np.vstack([np.nanargmin(macs, axis=1), np.nanargmax(macs, axis=1),
                       space.random_z(4000, seed)])
        total = space.evaluate_z(Z, fixed, macs)
    targets = np.linspace(total.min(), total.max(), n)
    spread = Z[[int(np.argmin(np.abs(total - t))) for t in targets]]
    # ofa: a design over the blocks' 9 choices, not the 25 resolutions (whole subnetworks
    # cost seconds each here; the spread networks and the frontier span the resolutions)
    choices = space.n_choices[:space.n_blocks] if space.sliced else space.n_choices  # type: ignore
    design = space.design(max(choices), seed=seed)
    return np.unique(np.vstack([spread, design]), axis=0)


def drift(backend: Backend, space: SearchSpace, cached: NetworkTable,
          protocol: TimingProtocol) -> list[float]:
    """Re-time DRIFT_REFERENCES of the cached networks (the least, median and most latent)
    in one batch (``steady``): how far each moved against the cache (a share: +0.1 is 10 %
    slower now). Where they moved apart (``_apart``: one caught by a burst?), they are timed
    once more."""
    references = spread_references(backend, space, cached, DRIFT_REFERENCES)
    moves = steady(backend, [], protocol, references)[1]
    return steady(backend, [], protocol, references)[1] if _apart(moves) else moves


def _apart(moves: list[float]) -> bool:
    """Whether networks re-timed in one batch moved more than DRIFT_APART apart."""
    return float(np.ptp(np.log1p(moves))) > DRIFT_APART


def rebase(paths: tuple[Path, Path], moved: float, by: str, seen: float) -> bool:
    """Where reference networks ran faster than the cached tables at ``paths`` by more than
    DRIFT_TOLERANCE (``moved``, their median share, below -DRIFT_TOLERANCE), the tables were
    measured in a slow state: multiply every duration in them by ``1 + moved`` (the network
    table first: the one a drift check reads), record the product of such factors as each
    table's ``rebased_by``, say so, and return True. ``seen`` is the network table's
    ``rebased_by`` when its networks were read: where another process has rebased it since,
    nothing is done (under the status's lock: two processes never rebase twice)."""
    if moved >= -DRIFT_TOLERANCE:
        return False
    folder = paths[0].parent

    def scale(status: dict) -> dict:
        if _rebased_by(status, paths[1]) != seen:
            return {}
        for path, columns in zip(paths[::-1], (NETWORK_COLUMNS, LAYER_COLUMNS)):
            scale_table(path, columns, 1 + moved)
        return {p.name: {**status.get(p.name, {}),
                         "rebased_by": (1 + moved) * _rebased_by(status, p)} for p in paths}

    if not record_status(folder, scale):
        return False
    print(f"hwnas: the tables in {folder} were measured in a slow state: networks re-timed in "
          f"{by} ran {100 * -moved:.1f} % faster (median); every latency in them is put on "
          f"this scale (multiplied by {1 + moved:.3f})", file=sys.stderr)
    return True


def _rebased_by(status: dict, path: Path) -> float:
    """What the durations of the table at ``path`` were multiplied by since measured."""
    return float(status.get(path.name, {}).get("rebased_by", 1.0))


def spread_references(backend: Backend, space: SearchSpace, nets: NetworkTable, k: int
                      ) -> list[tuple[Callable[[], None], float]]:
    """Reference runners (``reference_runners``) of up to ``k`` of the networks in ``nets``,
    spread evenly over their latencies (the least and the most included)."""
    latency = nets.values()
    order = np.argsort(latency)
    picks = order[np.unique(np.linspace(0, len(order) - 1, k).round().astype(int))]
    return reference_runners(backend, space, [(nets.z[i], latency[i]) for i in picks])
