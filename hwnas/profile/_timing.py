"""The one timing protocol every backend shares."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Callable

import numpy as np

from hwnas.errors import InputError
from hwnas.tables import Timing

# glibc's defaults return freed memory to the OS and map it again on the next forward pass:
# thousands of page faults per pass, which made a CPU framework 4x slower and unstable here.
MMAP_THRESHOLD_BYTES = 32 * 2 ** 20
TRIM_THRESHOLD_BYTES = 2 ** 31 - 1  # the largest value mallopt takes


def tune_malloc() -> bool:
    """Keep freed memory mapped (glibc's M_MMAP_THRESHOLD and M_TRIM_THRESHOLD, both needed),
    in this process and in the processes it starts. Returns whether glibc took the settings."""
    os.environ.setdefault("MALLOC_MMAP_THRESHOLD_", str(MMAP_THRESHOLD_BYTES))
    os.environ.setdefault("MALLOC_TRIM_THRESHOLD_", str(TRIM_THRESHOLD_BYTES))
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError, TypeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    return bool(mallopt(m_mmap_threshold, MMAP_THRESHOLD_BYTES)) and \
        bool(mallopt(m_trim_threshold, TRIM_THRESHOLD_BYTES))


@dataclass(frozen=True)
class TimingProtocol:
    """How every unit (a layer or a whole network) is timed.

    Units are timed in ``rounds``, interleaved: round 1 of every unit of a batch, then
    round 2, and so on, so that slow drifts of a shared machine hit all units alike. In each
    round a unit runs ``warmup`` times untimed, then timed run by run (each ending with a
    device synchronisation) until ``runs`` are done or ``max_seconds`` have passed, never fewer
    than ``min_runs``.

    ``latency_ms`` is the minimum over rounds of the round medians: a median shrugs off one
    slow run, and the least round median was the most repeatable statistic across processes
    on these shared machines (1.4-1.7 % spread, against 5-7 % for a plain median).
    ``round_spread`` ((max - min) / min of the round medians) records how repeatable the unit
    was. A unit measured while the machine was unsteady (see ``hwnas.profile.noise``) is
    measured again, at most ``max_remeasures`` times, each after a pause of ``pause_s`` seconds
    (bursts of other jobs last seconds), and keeps its fastest measurement.
    """

    warmup: int = 3
    runs: int = 10
    rounds: int = 3
    min_runs: int = 3
    max_seconds: float = 0.5
    max_remeasures: int = 3
    pause_s: float = 1.0

    def __post_init__(self) -> None:
        if self.warmup < 0 or self.rounds < 1 or not 1 <= self.min_runs <= self.runs \
                or self.max_remeasures < 0 or not self.pause_s >= 0:
            raise InputError(f"invalid timing protocol {self}: need warmup >= 0, rounds >= 1, "
                             f"1 <= min_runs <= runs, max_remeasures >= 0 and pause_s >= 0")


def measure(runners: Sequence[Callable[[], None]], protocol: TimingProtocol) -> list[Timing]:
    """Time each runner (one forward pass, synchronised) under ``protocol``, interleaved."""
    samples: list[list[np.ndarray]] = [[] for _ in runners]
    for _ in range(protocol.rounds):
        for run, rounds in zip(runners, samples):
            for _ in range(protocol.warmup):
                run()
            ms: list[float] = []
            start = time.perf_counter()
            while len(ms) < protocol.runs:
                t0 = time.perf_counter()
                run()
                t1 = time.perf_counter()
                ms.append((t1 - t0) * 1e3)
                if len(ms) >= protocol.min_runs and t1 - start > protocol.max_seconds:
                    break
            rounds.append(np.asarray(ms))
    return [_timing(rounds) for rounds in samples]


def _timing(rounds: list[np.ndarray]) -> Timing:
    medians = np.array([np.median(r) for r in rounds])
    pooled = np.concatenate(rounds)
    p10, p90 = np.percentile(pooled, [10, 90])
    least = float(medians.min())
    return Timing(least, float(p10), float(p90), float(pooled.min()), len(pooled),
                  float((medians.max() - least) / least))
