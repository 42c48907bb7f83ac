"""A simulated device: latencies from a known model, noise from a known model, time virtual.

It is how the flow's guarantees are tested and measured (``benchmarks/simulated.py``): a real
machine's noise cannot be chosen, repeated or known, this device's can. Each unit's true
latency is additive per layer plus a per-network overhead; a layer timed alone runs faster
than inside a network (its weights stay in cache, as on real CPUs), so the raw layer sum is
biased and must be calibrated. Runs advance a virtual clock, so a whole flow that "measures"
for minutes takes milliseconds, deterministically by seed.

Example:
    >>> from hwnas.profile import get_backend
    >>> from hwnas.spaces import get_space
    >>> device = get_backend("simulated", context="quiet", device_id=1)
    >>> space = get_space("mobilenet")
    >>> arch = space.decode(space.random_z(1, 0)[0])
    >>> 5 < device.true_latency_ms(arch.graph) < 9  # ms, like nnabla here
    True
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass
from typing import Callable

import numpy as np

from hwnas.errors import InputError
from hwnas.layers import Layer
from hwnas.profile._base import Backend
from hwnas.spaces import Graph
from hwnas.tables import Fingerprint


@dataclass(frozen=True)
class NoiseModel:
    """How a run's time departs from the unit's true latency (every share is of that latency).

    Args:
        jitter: mean of the exponential slowdown every run has (runs are never faster than
            true).
        outlier_rate, outlier_slowdown: the share of runs hit by a scheduler hiccup, and how
            much slower it makes them (up to that share, uniformly).
        slow_rate_per_s, slow_s, slow_share: slow states (steal time, frequency changes from
            other tenants): how often one starts per second, how long it lasts on average,
            and how much slower every unit runs meanwhile.
        slow_process: the chance that a whole process runs in the slow state.
        burst_rate_per_s, burst_s, burst_share: bursts of other jobs (seconds long, much
            slower), like slow states.
        drift_per_min: slow drift of the whole machine's speed, per minute.
    """

    jitter: float = 0.01
    outlier_rate: float = 0.0
    outlier_slowdown: float = 1.0
    slow_rate_per_s: float = 0.0
    slow_s: float = 2.0
    slow_share: float = 0.15
    slow_process: float = 0.0
    burst_rate_per_s: float = 0.0
    burst_s: float = 1.0
    burst_share: float = 0.6
    drift_per_min: float = 0.0


#: the version of the latency model below (a cache measured under another is not reused)
MODEL_VERSION = "1"

#: the noise models a simulated backend's ``context`` names
NOISE = {
    "quiet": NoiseModel(),
    # what was measured on this project's shared 2-vCPU VMs (../shared/MEASURING.md): a wide,
    # often bimodal distribution, 15 % slow states lasting seconds, and a whole process slow
    # now and then (one pair of processes in the 7 compared there differed so)
    "cpu": NoiseModel(jitter=0.03, outlier_rate=0.02, outlier_slowdown=2.0,
                      slow_rate_per_s=0.1, slow_s=3.0, slow_share=0.15, slow_process=0.1,
                      drift_per_min=0.01),
    "bursty": NoiseModel(jitter=0.05, outlier_rate=0.05, outlier_slowdown=3.0,
                         slow_rate_per_s=0.2, slow_s=3.0, slow_share=0.15, slow_process=0.3,
                         burst_rate_per_s=0.1, burst_s=2.0, burst_share=0.8,
                         drift_per_min=0.03),
}


class SimulatedBackend(Backend):
    """A device with known latencies and noise (``NOISE[context]``), seeded by ``device_id``.

    True latency of a network: ``overhead_ms`` + the sum of its layers' true latencies; a
    layer's true latency comes from its MACs, parameters and activations at per-op speeds,
    times a factor fixed by the layer's key. A layer timed alone takes ``alone`` of its true
    latency (its weights stay in cache).

    ``$HWNAS_SIMULATED_SLOWDOWN`` (a factor, default 1) puts the whole process in a slow state
    of the machine (not part of the device's fingerprint): tests and benchmarks drive the
    machine between two processes with it, as other tenants do.
    """

    name = "simulated"

    def __init__(self, context: str = "cpu", device_id: int = 0, batch: int = 1,
                 overhead_ms: float = 0.4, alone: float = 0.75):
        if context not in NOISE:
            raise InputError(f"unknown simulated context {context!r}: expected one of "
                             f"{sorted(NOISE)}")
        self.context, self.device_id, self.batch = context, device_id, batch
        self.overhead_ms, self.alone = overhead_ms, alone
        self.noise = NOISE[context]
        self._rng = np.random.default_rng(device_id)
        self._now = 0.0
        self._process = (1 + (self.noise.slow_share
                              if self._rng.random() < self.noise.slow_process else 0.0)) \
            * process_slowdown()
        self._states: dict[str, float] = {"slow": -1.0, "burst": -1.0}

    def fingerprint(self) -> Fingerprint:
        return Fingerprint("simulated", MODEL_VERSION, f"simulated: {self.context}", 1,
                           "float32", self.batch)

    def clock(self) -> float:
        return self._now

    def sleep(self, seconds: float) -> None:
        self._now += seconds

    def true_latency_ms(self, graph: Graph) -> float:
        """The noise-free latency of a graph: one layer alone, or a whole network."""
        if len(graph) == 1:
            return self.alone * layer_ms(graph[0][0]) * self.batch
        return self.overhead_ms + sum(layer_ms(layer) for layer, _ in graph) * self.batch

    def build(self, graph: Graph) -> Callable[[], None]:
        true_s = self.true_latency_ms(graph) / 1e3

        def run() -> None:
            self._now += true_s * self._slowdown()

        return run

    def _slowdown(self) -> float:
        """How much slower than true this run is, at the current virtual time."""
        n, rng = self.noise, self._rng
        factor = self._process * (1 + n.drift_per_min * self._now / 60)
        factor *= 1 + rng.exponential(n.jitter) if n.jitter > 0 else 1
        if rng.random() < n.outlier_rate:
            factor *= 1 + rng.uniform(0, n.outlier_slowdown)
        for state, rate, length, share in (("slow", n.slow_rate_per_s, n.slow_s, n.slow_share),
                                           ("burst", n.burst_rate_per_s, n.burst_s,
                                            n.burst_share)):
            if self._now < self._states[state]:
                factor *= 1 + share
            elif rate > 0 and rng.random() < 1 - math.exp(-rate * 1e-3):
                # a state starts in this millisecond (runs are about that long)
                self._states[state] = self._now + rng.exponential(length)
        return factor


def process_slowdown() -> float:
    """``$HWNAS_SIMULATED_SLOWDOWN``: how much slower this process's machine state runs."""
    text = os.environ.get("HWNAS_SIMULATED_SLOWDOWN", "1")
    try:
        factor = float(text)
    except ValueError:
        factor = math.nan
    if not 1 <= factor < 100:
        raise InputError(f"HWNAS_SIMULATED_SLOWDOWN={text!r}: expected a factor from 1 to 100")
    return factor


#: per-op speed: microseconds per million MACs, and a fixed cost per layer
_US_PER_MMAC = {"conv": 300.0, "dwconv": 900.0, "linear": 200.0}
_FIXED_US = 30.0


def layer_ms(layer: Layer) -> float:
    """A layer's true latency on the simulated device (ms, batch 1): a fixed cost, its MACs at
    an op-dependent speed and its activations moved, times a factor in [0.8, 1.25] fixed by
    its key, so that latency is not a function of MACs alone."""
    kind = "dwconv" if "dw" in layer.op or "mb" in layer.op else \
        "linear" if "linear" in layer.op else "conv"
    bytes_moved = 4 * (math.prod(layer.in_shape) + math.prod(layer.out_shape))
    us = _FIXED_US + _US_PER_MMAC[kind] * layer.macs / 1e6 + bytes_moved / 2e3
    digest = hashlib.sha1(layer.key.encode()).digest()
    return us / 1e3 * (0.8 + 0.45 * digest[0] / 255)
