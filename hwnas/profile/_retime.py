"""Re-time the answers of a search (``python -m hwnas.profile --from result.json``): on the
machine that searched, on the search's scale (its cache's reference networks timed beside), and
raw, as they ran now."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from hwnas.profile._base import Backend
from hwnas.profile._batch import BatchLog, Job, measure_jobs, network_units
from hwnas.profile._cache import network_table_path, read_locked, unit_noise
from hwnas.profile._device_tables import spread_references
from hwnas.profile._latency import RunState, agreement_tolerance, definition
from hwnas.profile._timing import TimingProtocol
from hwnas.spaces import SearchSpace
from hwnas.tables import NETWORK_COLUMNS, Timing, format_z, read_network_table

Z = tuple[int, ...]
#: cached networks re-timed beside the networks (spread over their latencies)
RETIME_REFERENCES = 4


@dataclass(frozen=True)
class Retimed:
    """Networks timed now: each one's Timing (unloaded, on the search's scale where the
    search's cache gave references; raw median and p90 as they ran now), what the search
    measured, what its budget meant (``latency``) and its factor, and the machine now."""

    timings: dict[Z, Timing]
    searched_ms: dict[Z, float]
    latency: str
    search_factor: float
    machine: RunState
    scale: str  # which scale the unloaded figures are on, in words
    on_search_scale: bool
    moves: tuple[tuple[float, ...], ...] = ()

    def search_scale_ms(self, z: Z) -> float:
        """The network's latency as the search judged it, on its scale: the unloaded latency
        timed now times the search's factor of its latency."""
        return self.timings[z].latency_ms * (1.0 if self.latency == "unloaded"
                                             else self.search_factor)

    @property
    def tolerance(self) -> float:
        """How far a re-time may sit from the search's measurement within the noise: the
        verification's rule (``agreement_tolerance``) over the networks' noise and the
        references' spread."""
        spread = [float(np.std(np.log1p(m))) for m in self.moves if len(m) > 1]
        noises = [unit_noise(t) for t in self.timings.values()]
        return agreement_tolerance(noises, max(spread, default=0.0))

    def report(self) -> str:
        """A line per network, what its latency is, the machine's state now."""
        lines = [f"{'search_scale_ms':>15}  {'searched_ms':>11}  {'diff':>6}  "
                 f"{'unloaded_ms':>11}  {'raw_median_ms':>13}  {'raw_p90_ms':>10}  z"]
        for z, t in self.timings.items():
            searched = self.searched_ms.get(z)
            diff = f"{100 * (self.search_scale_ms(z) / searched - 1):>+5.1f}%" \
                if searched else f"{'-':>6}"
            lines.append(f"{self.search_scale_ms(z):>15.3f}  "
                         f"{searched if searched else float('nan'):>11.3f}  {diff}  "
                         f"{t.latency_ms:>11.3f}  {t.raw_median_ms:>13.3f}  "
                         f"{t.raw_p90_ms:>10.3f}  {format_z(z)}")
        lines.append(f"latency ({self.latency}, as the search's budget meant it): "
                     f"{definition(self.latency)}"
                     + ("" if self.latency == "unloaded" else
                        f": x {self.search_factor:.3f} when it searched, x "
                        f"{self.machine.factor(self.latency):.3f} now"))
        lines.append(f"scale: {self.scale}; the raw columns are the runs as they ran now")
        lines.append(f"machine now: {self.machine.describe()}")
        if self.on_search_scale and self.searched_ms:
            lines.append(f"agreement with the search: within +-{100 * self.tolerance:.1f} % "
                         f"(the noise stated) for the networks it measured")
        return "\n".join(lines)

    def as_dict(self) -> dict:
        return {"latency": self.latency, "search_factor": self.search_factor,
                "on_search_scale": self.on_search_scale, "tolerance": self.tolerance,
                "machine": self.machine.as_dict(),
                "networks": [{"z": list(z), "search_scale_ms": self.search_scale_ms(z),
                              "searched_ms": self.searched_ms.get(z),
                              **{k: v for k, v in asdict(t).items()
                                 if k in ("latency_ms", "raw_median_ms", "raw_p90_ms",
                                          "noise_ms")}}
                             for z, t in self.timings.items()]}


def search_record(doc: dict | None) -> tuple[str, float, dict[Z, float]]:
    """From a search result JSON: what its budget meant, its factor, and what it measured per
    z (an older result, or one not verified: unloaded, 1, what it has)."""
    if not isinstance(doc, dict):
        return "unloaded", 1.0, {}
    latency = doc.get("latency")
    latency = latency if isinstance(latency, dict) else {}
    meaning = latency.get("meaning", "unloaded")
    factor = latency.get("factor", 1.0)
    best = doc.get("best")
    best = best if isinstance(best, list) else []
    measured = {tuple(int(v) for v in b["z"]): float(b["measured_latency_ms"])
                for b in best if isinstance(b, dict) and isinstance(b.get("z"), list)
                and isinstance(b.get("measured_latency_ms"), (int, float))}
    return (meaning if meaning in ("median", "p90", "unloaded") else "unloaded",
            float(factor) if isinstance(factor, (int, float)) and factor > 0 else 1.0,
            measured)


def retime(backend: Backend, space: SearchSpace, zs: Sequence[Sequence[int]],
           path: str | os.PathLike, protocol: TimingProtocol = TimingProtocol(),
           search: dict | None = None, show_progress: bool = True) -> Retimed:
    """Time the networks ``zs`` now into the network table at ``path`` (every one, its row
    kept where the table has it), with RETIME_REFERENCES networks of this device's cache (the
    search's, where ``search``, its result JSON, names this device) timed beside: the rows
    and the unloaded figures are then on the search's scale, and the references tell the
    machine's state now. Without such a cache they are on this batch's own scale."""
    meaning, factor, searched = search_record(search)
    cached_path = network_table_path(backend, space)
    same_device = search is None or search.get("device") == asdict(backend.fingerprint())
    references = []
    if same_device and cached_path.exists():
        cached = read_locked(read_network_table, cached_path, space)
        wanted = {tuple(int(v) for v in z) for z in zs}
        keep = [i for i, z in enumerate(cached.z) if z not in wanted]
        if len(keep) >= 2:
            references = spread_references(backend, space, cached.select(keep),
                                           RETIME_REFERENCES)
    log = BatchLog()
    measure_jobs(backend, [Job(path, NETWORK_COLUMNS, "z", network_units(space, zs),
                               retime=True)],
                 protocol, "measuring networks" if show_progress else None,
                 references=references, log=log)
    timings = {tuple(int(v) for v in z): log.timings[format_z(z)] for z in space.check_z(zs)}
    scale = (f"the search's: {len(references)} networks of this device's cache "
             f"({cached_path}) timed beside, the batch put on their cached latency"
             if references else
             "this batch's own (no cached reference networks of " +
             ("this device" if same_device else "the search's device, which is not this one")
             + " here): not comparable with the search's figures")
    return Retimed(timings, searched, meaning, factor, RunState(tuple(log.states)), scale,
                   bool(references), tuple(tuple(m) for m in log.moves))
