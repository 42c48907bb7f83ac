"""What a network's latency means, in every command: the unloaded latency on the cache's scale,
or a percentile in the machine's current state; and the machine's state while it measured.

One definition (docs/explanation/latency.md): every table's ``latency_ms`` is the unloaded
latency, the protocol's statistic (the median of the speed-corrected round minima), put on
the scale of the machine's fastest state seen where reference networks measured on it are
timed beside (the default flow's cache). A latency in the machine's current state is that
unloaded latency times the machine's factor now (``MachineState``): how much slower the
reference networks' runs (their median or 90th percentile, as they ran) are than their
unloaded latency. The factor is estimated over several networks, so it repeats far better
than one network's median does (MEASURING.md: medians of one network agreed at tau 0.41
between processes); the runs as they ran (``raw_median_ms``, ``raw_p90_ms``) are reported
beside it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: a latency measured twice is the same within this share at least (the calibration's own
#: error)
MIN_TOLERANCE = 0.03
#: a difference must exceed this many times the measured noise of the networks to count
NOISE_SIGMAS = 3.0
#: the noise of a measurement is taken as at least this share of it (a network's statistic
#: repeated within 1.0-1.6 % across processes, their levels taken out: ../shared/MEASURING.md)
MIN_NOISE = 0.01

#: the quantiles of the rounds' factors taken as the machine's fast and slow states
MOVED_LOW, MOVED_HIGH = 0.1, 0.9

#: what a budget, and the latency a command reports, can mean
LATENCIES = ("median", "p90", "unloaded")
#: the default: see WHY_DEFAULT
DEFAULT_LATENCY = "median"
WHY_DEFAULT = (
    "A network deployed on the machine it was searched on runs in whatever state that machine "
    "is in, and its user's own timer reports a typical run, so by default a budget means the "
    "median latency in the machine's current state (the network's unloaded latency times the "
    "factor that reference networks timed beside it show now). The unloaded latency "
    "(--latency unloaded) is the most repeatable reading and the right one for a dedicated "
    "device; p90 is what latency service levels are written in.")


def definition(latency: str) -> str:
    """One line saying what ``latency`` is."""
    if latency == "unloaded":
        return ("the unloaded latency: the median over rounds of each round's fastest run, "
                "each round divided by the machine's speed then, on the scale of this "
                "machine's fastest state seen")
    what = "median" if latency == "median" else "90th percentile"
    return (f"the {what} of the runs in the machine's state now: the unloaded latency times "
            f"the factor reference networks timed beside show ({latency} of their runs over "
            f"their unloaded latency)")


def agreement_tolerance(noises: Sequence[float], scale_noise: float = 0.0) -> float:
    """How far two measurements of a network may differ within their noise (a share): the
    larger of MIN_TOLERANCE and NOISE_SIGMAS times the median of the networks' noises (each
    at least MIN_NOISE and ``scale_noise``, how far references put the batch off its
    scale). Verification judges its predictions by it; a re-time states it."""
    finite = [n for n in noises if np.isfinite(n)] or [0.0]
    noise = np.maximum(finite, max(MIN_NOISE, scale_noise))
    return max(MIN_TOLERANCE, NOISE_SIGMAS * float(np.median(noise)))


def judged_ms(unloaded_ms: float, latency: str, factor: float) -> float:
    """A network's latency as ``latency`` means it, from its unloaded latency and the
    machine's ``factor`` for that statistic (1 for ``unloaded``)."""
    return unloaded_ms * (1.0 if latency == "unloaded" else factor)


@dataclass(frozen=True)
class MachineState:
    """How fast the machine ran while one batch was measured, told by reference networks
    timed in it against their unloaded latency (measured before, on the cache's scale).

    ``median`` and ``p90`` are the factors (the median over references of the median / 90th
    percentile of their runs as they ran, over their unloaded latency: 1.3 is 30 % slower);
    ``speeds`` the machine's factor in each round (the median over references of their
    round's median run over their unloaded latency)."""

    median: float
    p90: float
    speeds: tuple[float, ...]
    references: int
    load_average: float
    cpus: int

    def factor(self, latency: str) -> float:
        """The factor of ``latency`` (1 for the unloaded latency)."""
        return 1.0 if latency == "unloaded" else self.median if latency == "median" \
            else self.p90

    def as_dict(self) -> dict:
        return {"median_factor": self.median, "p90_factor": self.p90,
                "slowest_round": max(self.speeds), "fastest_round": min(self.speeds),
                "references": self.references, "load_average": self.load_average,
                "cpus": self.cpus}


def batch_state(raw_rounds: Sequence[Sequence[np.ndarray]], unloaded_ms: Sequence[float]
                ) -> MachineState | None:
    """The MachineState of a batch from its references' raw rounds (ms, as they ran) and
    their unloaded latencies; None without references."""
    if not raw_rounds:
        return None
    ratios = [(np.concatenate(r) / ms) for r, ms in zip(raw_rounds, unloaded_ms)]
    rounds = min(len(r) for r in raw_rounds)
    speeds = [float(np.median([np.median(r[k]) / ms for r, ms in zip(raw_rounds,
                                                                        unloaded_ms)]))
              for k in range(rounds)]
    return MachineState(float(np.median([np.median(r) for r in ratios])),
                        float(np.median([np.percentile(r, 90) for r in ratios])),
                        tuple(speeds), len(raw_rounds), os.getloadavg()[0], os.cpu_count() or 1)


@dataclass(frozen=True)
class RunState:
    """The machine's states over a run: one MachineState per batch that timed references."""

    batches: tuple[MachineState, ...]

    def factor(self, latency: str) -> float:
        """The run's factor for ``latency``: the median of its batches' (1 where none)."""
        if latency == "unloaded" or not self.batches:
            return 1.0
        return float(np.median([b.factor(latency) for b in self.batches]))

    @property
    def speeds(self) -> np.ndarray:
        """The machine's factor in every round of the run (``MachineState.speeds``)."""
        return np.concatenate([b.speeds for b in self.batches]) if self.batches else \
            np.ones(1)

    @property
    def span(self) -> tuple[float, float]:
        """The machine's factor in its fast and slow states during the run: the MOVED_LOW and
        MOVED_HIGH quantiles of its rounds' (a round's median of a few runs is noisy: the
        extremes of 30 rounds would show noise, not states)."""
        low, high = np.quantile(self.speeds, [MOVED_LOW, MOVED_HIGH])
        return float(low), float(high)

    @property
    def moved(self) -> float:
        """How far the machine's speed moved during the run: its slow state's factor over its
        fast state's, less 1 (0.47 is 47 %)."""
        low, high = self.span
        return high / low - 1

    def describe(self) -> str:
        """The machine's state in one phrase."""
        if not self.batches:
            return "the machine's state was not measured (no reference networks)"
        last, (low, high) = self.batches[-1], self.span
        return (f"reference networks ran at {low:.2f}-{high:.2f} x their unloaded latency "
                f"(rounds' median runs, 10th to 90th percentile; all runs: median "
                f"{self.factor('median'):.2f} x, p90 {self.factor('p90'):.2f} x) in "
                f"{len(self.batches)} batch(es); load average {last.load_average:.1f} on "
                f"{last.cpus} core(s)")

    def unsteady(self, budget_ms: float, latency: str, tolerance: float) -> str | None:
        """One line where the machine moved more than ``tolerance`` during the run: what an
        answer within the budget ran at in its slowest state; else None."""
        if not self.batches or self.moved <= tolerance:
            return None
        slowest = budget_ms * self.span[1] / self.factor(latency)
        meaning = "when unloaded" if latency == "unloaded" else f"at the {latency} now"
        return (f"this machine's speed moved {100 * self.moved:.0f} % during the run: an "
                f"answer within {budget_ms:g} ms {meaning} ran at up to {slowest:.1f} ms; "
                f"this machine cannot give a steady budget now")

    def as_dict(self, budget_ms: float | None = None, latency: str = "unloaded",
                tolerance: float = 0.0) -> dict:
        return {"median_factor": self.factor("median"), "p90_factor": self.factor("p90"),
                "moved": self.moved if self.batches else None,
                "batches": [b.as_dict() for b in self.batches],
                "unsteady": None if budget_ms is None else
                self.unsteady(budget_ms, latency, tolerance)}
