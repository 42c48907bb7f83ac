"""The one timing protocol every backend shares."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from hwnas.tables import Timing


@dataclass(frozen=True)
class TimingProtocol:
    """Warm-up runs, then timed runs until ``runs`` are done or ``max_seconds`` have passed
    (never fewer than ``min_runs``). Each timed run ends with a device synchronisation.

    The table's ``latency_ms`` is the median of the timed runs: robust to the other tenants'
    bursts on a shared machine; p10, p90 and the minimum are kept beside it.
    """

    warmup: int = 5
    runs: int = 30
    min_runs: int = 5
    max_seconds: float = 1.0

    def __post_init__(self) -> None:
        if self.warmup < 0 or self.min_runs < 1 or self.runs < self.min_runs:
            raise ValueError(f"invalid timing protocol {self}: need warmup >= 0 and "
                             f"1 <= min_runs <= runs")


def measure(run: Callable[[], None], protocol: TimingProtocol,
            sync: Callable[[], None] = lambda: None) -> Timing:
    """Time ``run`` under ``protocol``; ``sync`` waits for the device to finish."""
    for _ in range(protocol.warmup):
        run()
    sync()
    samples = []
    start = time.perf_counter()
    while len(samples) < protocol.runs:
        t0 = time.perf_counter()
        run()
        sync()
        t1 = time.perf_counter()
        samples.append((t1 - t0) * 1e3)
        if len(samples) >= protocol.min_runs and t1 - start > protocol.max_seconds:
            break
    ms = np.asarray(samples)
    p10, median, p90 = np.percentile(ms, [10, 50, 90])
    return Timing(float(median), float(p10), float(p90), float(ms.min()), len(ms))
