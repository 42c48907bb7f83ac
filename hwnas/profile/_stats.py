"""The timing statistics and the interleaved timing loop: standard library and numpy only.

This one module is what hwnas times with, and what an export copies beside its standalone
``runner.py`` (as ``hwnas_timing.py``), so that a device without hwnas times exactly as hwnas
does. Keep it free of other imports.

Why speed-corrected rounds and their median (``STATISTIC``): on shared 2-vCPU machines the whole
machine runs faster or slower for tenths of seconds to tens of seconds (other tenants: every
unit about 10-25 % slower at once), so a unit's minimum depends on which states its rounds met.
Units are timed interleaved, round by round, so the units timed just before and after a unit's
round met the same state: the median of their deviations from their own typical round is the
machine's speed then (``speed_corrected``), and each round is divided by it. The median of the
corrected round minima then ranks networks across processes at Kendall tau 0.90-0.97 (the
minimum: 0.82-0.94) and agrees within 1.0-1.6 % once the process's own level is taken out (the
minimum: 1.6-3.9 %); what remains is a level of 0-5 % that a whole process runs at, which the
calibration (fitted in the same process) and reference networks (re-timed across processes)
absorb (../shared/MEASURING.md and ``benchmarks/repeatability.py``).
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
    "median_round_min": lambda rounds: float(np.median([r.min() for r in rounds])),
    "median": lambda rounds: float(np.median(np.concatenate(rounds))),
    "trimmed_mean": lambda rounds: _trimmed_mean(np.concatenate(rounds), 0.2),
}
#: the statistic ``latency_ms`` is, chosen by benchmarks/repeatability.py
STATISTIC = "median_round_min"
#: a unit's round is never shorter than this many timed runs (or all of them, if fewer)
MIN_RUNS = 3
#: the default protocol (hwnas's TimingProtocol and the device runner's options), chosen by
#: benchmarks/repeatability.py: rounds spread over the batch matter more than runs per round,
#: and a round stops after MAX_ROUND_S (a 6 ms network runs 5 times, a 0.25 ms one 10 times)
WARMUP, RUNS, ROUNDS, MAX_ROUND_S = 2, 10, 10, 0.03
#: a round of a unit faster than this goes on past ``runs`` until this long has passed (at most
#: FILL_RUNS x ``runs`` runs): a round of 10 runs of a 0.5 ms ONNX Runtime network lasts 5 ms, and
#: one scheduler hiccup then moves its minimum (benchmarks/accuracy.py, 2026-12-06: 73 % of such
#: networks predicted within +-10 %); the runtimes set it (``Backend.min_round_s``): ONNX
#: Runtime, and the export's runner, fill FILLED_ROUND_S (a 0.5 ms network then runs 40 times
#: a round, a 10 us layer FILL_RUNS x RUNS times)
MIN_ROUND_S = 0.0
FILLED_ROUND_S = 0.02
FILL_RUNS = 10
#: units built and timed together, their rounds interleaved: the more, the longer each unit's
#: rounds are spread in time (a slow state of seconds then hits only some of them); an
#: interrupted measurement loses at most this many
BATCH_UNITS = 96
#: the units timed on each side of a unit's round (in time) whose deviations tell the machine's
#: speed during it; a batch of fewer units than 2 * SPEED_WINDOW + 1 is not corrected
SPEED_WINDOW = 3


def _trimmed_mean(x: np.ndarray, cut: float) -> float:
    x = np.sort(x)
    k = int(cut * len(x))
    return float(x[k:len(x) - k].mean())


def statistics(rounds: Sequence[Sequence[float] | np.ndarray], statistic: str = STATISTIC,
               raw: Sequence[Sequence[float] | np.ndarray] | None = None) -> dict:
    """A unit's timing columns from the timed runs (ms) of each of its rounds.

    ``latency_ms`` is ``statistic`` over all runs; ``noise_ms`` how much one round decides it
    (the jackknife over rounds: the most the statistic moves when any one round is left
    out; for the minimum, the gap between the two fastest rounds);
    ``round_spread`` how far the rounds' own statistics spread ((max - min) / min);
    ``median_ms`` the least round median. ``raw_median_ms`` and ``raw_p90_ms`` are the median
    and 90th percentile of the runs as they ran (``raw``: before any speed correction; the
    rounds themselves where not given): the latency in the machine's state while it measured.

    Example:
        >>> s = statistics([[2.0, 2.2], [2.1, 2.4], [2.0, 3.0]])
        >>> s["latency_ms"], s["runs"], round(s["noise_ms"], 3)
        (2.0, 6, 0.05)
    """
    arrays = [np.asarray(r, dtype=float) for r in rounds]
    pooled = np.concatenate(arrays)
    f = STATISTICS[statistic]
    value = f(arrays)
    per_round = np.array([f([r]) for r in arrays])
    left_out = [f(arrays[:i] + arrays[i + 1:]) for i in range(len(arrays))] \
        if len(arrays) > 1 else [value]
    p10, p90 = np.percentile(pooled, [10, 90])
    as_ran = np.concatenate([np.asarray(r, dtype=float) for r in raw]) if raw else pooled
    return {"latency_ms": value, "p10_ms": float(p10), "p90_ms": float(p90),
            "min_ms": float(pooled.min()), "runs": int(len(pooled)),
            "round_spread": float((per_round.max() - per_round.min()) / per_round.min()),
            "median_ms": STATISTICS["least_round_median"](arrays),
            "noise_ms": float(max(abs(v - value) for v in left_out)),
            "raw_median_ms": float(np.median(as_ran)),
            "raw_p90_ms": float(np.percentile(as_ran, 90))}


def machine_speeds(samples: Sequence[Sequence[np.ndarray]], window: int = SPEED_WINDOW
                   ) -> np.ndarray | None:
    """The machine's speed during each unit's round (rounds x units, in log: 0 is the unit's
    typical round, +0.1 about 10 % slower), told by the ``window`` rounds of other units timed
    just before and just after it: the median of how far each of those ran from its unit's
    typical round (in log, its round minimum against the median of its corrected round
    minima; three passes). None for a batch too small to tell the machine from the unit."""
    units, rounds = len(samples), min((len(u) for u in samples), default=0)
    if units < 2 * window + 1 or rounds < 2:
        return None
    x = np.log([[samples[i][r].min() for i in range(units)] for r in range(rounds)]).ravel()
    unit = np.tile(np.arange(units), rounds)  # x in time order: round by round
    others = [np.r_[[t for t in range(s - 1, -1, -1) if unit[t] != unit[s]][:window],
                    [t for t in range(s + 1, len(x)) if unit[t] != unit[s]][:window]]
              .astype(int) for s in range(len(x))]
    speed = np.zeros_like(x)
    for _ in range(3):
        typical = np.array([np.median((x - speed)[unit == i]) for i in range(units)])
        deviation = x - typical[unit]
        speed = np.array([np.median(deviation[o]) for o in others])
    return speed.reshape(rounds, units)


def moved_share(samples: Sequence[Sequence[np.ndarray]]) -> float | None:
    """How far the machine's speed moved during a batch (the slowest round's speed over the
    fastest's, less 1: 0.47 is 47 %), told by the units timed beside each other
    (``machine_speeds``); None for a batch too small to tell."""
    speed = machine_speeds(samples)
    return None if speed is None else float(np.exp(np.ptp(speed)) - 1)


def speed_corrected(samples: Sequence[Sequence[np.ndarray]], window: int = SPEED_WINDOW,
                    level: float | None = None) -> list[list[np.ndarray]]:
    """Each unit's rounds (as ``time_rounds`` timed them: round 1 of every unit, then round
    2, ...) divided by the machine's speed while they ran (``machine_speeds``). Units slowed
    alike by a machine state then compare as if it had not been there. With ``level`` (a
    quantile, e.g. 0.1), every round is put on the machine's speed at that quantile of the
    batch's speeds (its fast states) instead of each unit's typical round. A batch too small
    to tell the machine from the unit is returned as is.

    Example:
        >>> slow = [1.0, 1.2, 1.0]  # the machine's speed in rounds 1, 2, 3
        >>> samples = [[np.array([ms * s]) for s in slow] for ms in (1, 2, 3, 4, 5, 6, 7)]
        >>> [round(float(r[0]), 6) for r in speed_corrected(samples)[2]]
        [3.0, 3.0, 3.0]
    """
    speed = machine_speeds(samples, window)
    if speed is None:
        return [list(u) for u in samples]
    rounds = speed.shape[0]
    if level is not None:
        speed = speed - np.quantile(speed, level)
    factor = np.exp(speed)
    return [[r / factor[k, i] if k < rounds else r for k, r in enumerate(samples[i])]
            for i in range(len(samples))]


def unit_statistics(samples: Sequence[Sequence[np.ndarray]], statistic: str = STATISTIC,
                    speed_correction: bool = True) -> list[dict]:
    """Each unit's ``statistics`` from its rounds as ``time_rounds`` timed them (raw):
    speed-corrected (``speed_corrected``) unless ``speed_correction`` is off, with the raw
    median and p90 beside."""
    corrected = speed_corrected(samples) if speed_correction else samples
    return [statistics(c, statistic, raw=r) for c, r in zip(corrected, samples)]


def time_rounds(runners: Sequence[Callable[[], object]], *, warmup: int, runs: int, rounds: int,
                max_round_s: float, min_runs: int = MIN_RUNS,
                clock: Callable[[], float] = time.perf_counter,
                min_round_s: float = MIN_ROUND_S) -> list[list[np.ndarray]]:
    """Time each runner (one synchronised forward pass) in ``rounds`` interleaved rounds: round
    1 of every runner, then round 2, ..., so that slow states of a shared machine hit all units
    alike and each unit's rounds are spread over the whole batch. In a round a unit runs
    ``warmup`` times untimed, then timed until ``runs`` are done or ``max_round_s`` have
    passed, never fewer than ``min_runs`` (or ``runs``); a round shorter than ``min_round_s``
    goes on until that long (at most FILL_RUNS x ``runs`` runs). Returns each runner's rounds of
    ms as they ran (raw: ``unit_statistics`` speed-corrects them, ``speed_corrected``, and
    keeps the raw figures beside).

    ``clock`` is where seconds come from (a simulated device brings its own).
    """
    samples: list[list[np.ndarray]] = [[] for _ in runners]
    least, most = min(min_runs, runs), runs * (FILL_RUNS if min_round_s > 0 else 1)
    for _ in range(rounds):
        for run, unit in zip(runners, samples):
            for _ in range(warmup):
                run()
            ms: list[float] = []
            start = clock()
            while len(ms) < most:
                t0 = clock()
                run()
                t1 = clock()
                ms.append((t1 - t0) * 1e3)
                if len(ms) >= least and t1 - start > max_round_s or \
                        len(ms) >= runs and t1 - start >= min_round_s:
                    break
            unit.append(np.asarray(ms))
    return samples

