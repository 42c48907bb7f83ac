"""The timing statistics and the interleaved timing loop: standard library and numpy only.

This one module is what hwnas times with, and what an export copies beside its standalone
``runner.py`` (as ``hwnas_timing.py``), so that a device without hwnas times exactly as hwnas
does. Keep it free of other imports.

Why the minimum (``STATISTIC``): on shared 2-vCPU machines one network's run times are wide and
often bimodal (some seconds run about 15 % slower for every unit, and the slow state can last a
round or a whole process). Timed in two separate processes, the minimum over all runs of
several interleaved rounds agreed best (Kendall tau 0.76-0.96, 1.3-4 % mean difference), where
the least round median (the statistic before, kept as ``median_ms``) agreed at tau 0.49 and
14.6 % (../shared/MEASURING.md and ``benchmarks/repeatability.py``). A run can be slowed by
other jobs, never sped up, so the minimum has no outliers on its low side.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Callable

import numpy as np

#: statistic name -> f(rounds) -> ms, over each round's timed runs (ms)
STATISTICS: dict[str, Callable[[Sequence[np.ndarray]], float]] = {
    "min": lambda rounds: float(min(r.min() for r in rounds)),
    "p10": lambda rounds: float(np.percentile(np.concatenate(rounds), 10)),
    "least_round_median": lambda rounds: float(min(np.median(r) for r in rounds)),
    "median": lambda rounds: float(np.median(np.concatenate(rounds))),
    "trimmed_mean": lambda rounds: _trimmed_mean(np.concatenate(rounds), 0.2),
}
#: the statistic ``latency_ms`` is, chosen by benchmarks/repeatability.py
STATISTIC = "min"
#: a unit's round is never shorter than this many timed runs (or all of them, if fewer)
MIN_RUNS = 3
#: the default protocol (hwnas's TimingProtocol and the device runner's options), chosen by
#: benchmarks/repeatability.py: rounds spread over the batch matter more than runs per round,
#: and a round stops after MAX_ROUND_S (a 6 ms network runs 5 times, a 0.25 ms one 10 times)
WARMUP, RUNS, ROUNDS, MAX_ROUND_S = 2, 10, 10, 0.03
#: units built and timed together, their rounds interleaved: the more, the longer each unit's
#: rounds are spread in time (a slow state of seconds then hits only some of them); an
#: interrupted measurement loses at most this many
BATCH_UNITS = 96


def _trimmed_mean(x: np.ndarray, cut: float) -> float:
    x = np.sort(x)
    k = int(cut * len(x))
    return float(x[k:len(x) - k].mean())


def statistics(rounds: Sequence[Sequence[float] | np.ndarray], statistic: str = STATISTIC
               ) -> dict:
    """A unit's timing columns from the timed runs (ms) of each of its rounds.

    ``latency_ms`` is ``statistic`` over all runs; ``noise_ms`` how much one round decides it
    (the jackknife over rounds: the most the statistic moves when any one round is left
    out; for the minimum, the gap between the two fastest rounds), so a unit whose fast
    state was seen in two rounds is steady however slow its other rounds were;
    ``round_spread`` how far the rounds' own statistics spread ((max - min) / min);
    ``median_ms`` the least round median.

    Example:
        >>> s = statistics([[2.0, 2.2], [2.1, 2.4], [2.0, 3.0]])
        >>> s["latency_ms"], s["runs"], round(s["noise_ms"], 3)
        (2.0, 6, 0.0)
    """
    arrays = [np.asarray(r, dtype=float) for r in rounds]
    pooled = np.concatenate(arrays)
    f = STATISTICS[statistic]
    value = f(arrays)
    per_round = np.array([f([r]) for r in arrays])
    left_out = [f(arrays[:i] + arrays[i + 1:]) for i in range(len(arrays))] \
        if len(arrays) > 1 else [value]
    p10, p90 = np.percentile(pooled, [10, 90])
    return {"latency_ms": value, "p10_ms": float(p10), "p90_ms": float(p90),
            "min_ms": float(pooled.min()), "runs": int(len(pooled)),
            "round_spread": float((per_round.max() - per_round.min()) / per_round.min()),
            "median_ms": STATISTICS["least_round_median"](arrays),
            "noise_ms": float(max(abs(v - value) for v in left_out))}


def time_rounds(runners: Sequence[Callable[[], object]], *, warmup: int, runs: int, rounds: int,
                max_round_s: float, min_runs: int = MIN_RUNS,
                clock: Callable[[], float] = time.perf_counter) -> list[list[np.ndarray]]:
    """Time each runner (one synchronised forward pass) in ``rounds`` interleaved rounds: round
    1 of every runner, then round 2, ..., so that slow states of a shared machine hit all units
    alike and each unit's rounds are spread over the whole batch. In a round a unit runs
    ``warmup`` times untimed, then timed until ``runs`` are done or ``max_round_s`` have
    passed, never fewer than ``min_runs`` (or ``runs``). Returns each runner's rounds of ms.

    ``clock`` is where seconds come from (a simulated device brings its own).
    """
    samples: list[list[np.ndarray]] = [[] for _ in runners]
    least = min(min_runs, runs)
    for _ in range(rounds):
        for run, unit in zip(runners, samples):
            for _ in range(warmup):
                run()
            ms: list[float] = []
            start = clock()
            while len(ms) < runs:
                t0 = clock()
                run()
                t1 = clock()
                ms.append((t1 - t0) * 1e3)
                if len(ms) >= least and t1 - start > max_round_s:
                    break
            unit.append(np.asarray(ms))
    return samples

