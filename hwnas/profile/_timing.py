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
from hwnas.profile._stats import (
    MAX_ROUND_S,
    MIN_RUNS,
    ROUNDS,
    RUNS,
    STATISTIC,
    STATISTICS,
    WARMUP,
    statistics,
    time_rounds,
    unit_statistics,
)
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
    """How every unit (a layer or a whole network) is timed (``hwnas.profile._stats``).

    Units are timed in ``rounds``, interleaved: round 1 of every unit of a batch, then
    round 2, and so on, so that slow states of a shared machine hit all units alike and each
    unit's rounds are spread over the batch. In each round a unit runs ``warmup`` times
    untimed, then timed run by run (each ending with a device synchronisation) until ``runs``
    are done or ``max_round_s`` have passed, never fewer than ``min_runs``.

    Each round is divided by the machine's speed while it ran, told by the units timed just
    before and after it (``speed_correction``, see ``_stats.speed_corrected``). ``latency_ms``
    is ``statistic`` over the rounds: by default the median of the round minima, which agreed
    best between two processes on these shared machines (``_stats``,
    ``benchmarks/repeatability.py``). ``noise_ms`` records how far it moved between rounds.
    A unit whose noise is over the tolerance its caller gives (what it may move the
    predictions it sums into) is measured again, at most ``max_remeasures`` times, each after
    a pause of ``pause_s`` seconds (bursts of other jobs last seconds), and its rounds are
    pooled: more rounds, a surer statistic.
    """

    warmup: int = WARMUP
    runs: int = RUNS
    rounds: int = ROUNDS
    min_runs: int = MIN_RUNS
    max_round_s: float = MAX_ROUND_S
    max_remeasures: int = 2
    pause_s: float = 1.0
    statistic: str = STATISTIC
    speed_correction: bool = True

    def __post_init__(self) -> None:
        if self.warmup < 0 or self.rounds < 1 or not 1 <= self.min_runs <= self.runs \
                or self.max_remeasures < 0 or not self.pause_s >= 0 \
                or self.statistic not in STATISTICS:
            raise InputError(f"invalid timing protocol {self}: need warmup >= 0, rounds >= 1, "
                             f"1 <= min_runs <= runs, max_remeasures >= 0, pause_s >= 0 and "
                             f"a statistic of {sorted(STATISTICS)}")


def measure_rounds(runners: Sequence[Callable[[], None]], protocol: TimingProtocol,
                   clock: Callable[[], float] = time.perf_counter, min_round_s: float = 0.0
                   ) -> list[list[np.ndarray]]:
    """Each runner's timed rounds (ms) under ``protocol``, interleaved, as they ran (raw:
    ``timings`` corrects them); a round goes on until ``min_round_s`` (the runtime's, see
    ``Backend.min_round_s``) has passed (``_stats.time_rounds``)."""
    return time_rounds(runners, warmup=protocol.warmup, runs=protocol.runs,
                       rounds=protocol.rounds, max_round_s=protocol.max_round_s,
                       min_runs=protocol.min_runs, clock=clock, min_round_s=min_round_s)


def to_timing(rounds: Sequence[np.ndarray], protocol: TimingProtocol) -> Timing:
    """The Timing of one unit's rounds (as they are) under ``protocol``'s statistic."""
    return Timing(**statistics(rounds, protocol.statistic))


def timings(samples: Sequence[Sequence[np.ndarray]], protocol: TimingProtocol) -> list[Timing]:
    """Each unit's Timing from its raw rounds (``measure_rounds``) under ``protocol``:
    speed-corrected where it says so, with the raw median and p90 beside."""
    return [Timing(**s) for s in unit_statistics(samples, protocol.statistic,
                                                 protocol.speed_correction)]


def measure(runners: Sequence[Callable[[], None]], protocol: TimingProtocol,
            clock: Callable[[], float] = time.perf_counter, min_round_s: float = 0.0
            ) -> list[Timing]:
    """Time each runner (one forward pass, synchronised) under ``protocol``, interleaved."""
    return timings(measure_rounds(runners, protocol, clock, min_round_s), protocol)
