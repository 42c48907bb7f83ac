"""The profiler backend interface."""

from __future__ import annotations

import platform
import subprocess
import time
from abc import ABC, abstractmethod
from typing import Callable

from hwnas._calibration import SLOPE_BOUNDS
from hwnas.errors import ProfileError
from hwnas.layers import Layer
from hwnas.profile._timing import TimingProtocol, measure
from hwnas.spaces import Architecture, Graph, unit_graph
from hwnas.tables import Fingerprint, Timing


class Backend(ABC):
    """Builds Layers and whole architectures in a real runtime, ready to be timed."""

    name: str
    #: the calibration slopes (true latency over layer sum) this runtime can physically show:
    #: units timed alone keep their weights in cache (nnabla's sum is 0.75 of true, ONNX
    #: Runtime's 0.92-1.04, a CPU PyTorch's 0.79: ../shared/MEASURING.md)
    calibration_slope: tuple[float, float] = SLOPE_BOUNDS
    #: a unit's round goes on past the protocol's runs until this long has passed (at most
    #: ``_stats.FILL_RUNS`` times as many runs): a runtime whose networks run in tenths of a
    #: millisecond sets it, so that one scheduler hiccup does not decide a round
    min_round_s: float = 0.0

    def clock(self) -> float:
        """Seconds, for timing (a simulated device keeps its own)."""
        return time.perf_counter()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    @abstractmethod
    def fingerprint(self) -> Fingerprint:
        """The device and runtime settings the measurements depend on."""

    @abstractmethod
    def build(self, graph: Graph) -> Callable[[], None]:
        """Build the graph with random inputs and weights, check one forward pass, and return
        a function that runs one pass and waits for the device."""

    def runner(self, graph: Graph) -> Callable[[], None]:
        """``build``, with any failure turned into a ProfileError naming the unit."""
        try:
            return self.build(graph)
        except Exception as e:
            raise ProfileError(f"{unit_name(graph)}: {self.name} failed: "
                               f"{type(e).__name__}: {e}") from e

    def time_layer(self, layer: Layer, protocol: TimingProtocol = TimingProtocol()) -> Timing:
        return measure([self.runner(unit_graph(layer))], protocol, self.clock,
                       self.min_round_s)[0]

    def time_architecture(self, arch: Architecture,
                          protocol: TimingProtocol = TimingProtocol()) -> Timing:
        """True end-to-end latency of a whole architecture."""
        return measure([self.runner(arch.graph)], protocol, self.clock, self.min_round_s)[0]


def unit_name(graph: Graph) -> str:
    return f"layer {graph[0][0].key}" if len(graph) == 1 else f"network of {len(graph)} layers"


#: /proc/cpuinfo fields naming the CPU, in order of preference (ARM boards without a
#: ``model name`` name the board); runner.py reads the same, so that a device has one name
CPU_NAME_FIELDS = ("model name", "Model", "Hardware")


def cpu_name(cpuinfo: str = "/proc/cpuinfo") -> str:
    """The first of CPU_NAME_FIELDS that cpuinfo has, else the platform's processor."""
    found: dict[str, str] = {}
    try:
        with open(cpuinfo) as f:
            for line in f:
                name, sep, value = line.partition(":")
                if sep and name.strip() in CPU_NAME_FIELDS and value.strip():
                    found.setdefault(name.strip(), value.strip())
    except OSError:
        pass
    return next((found[n] for n in CPU_NAME_FIELDS if n in found), None) or \
        platform.processor() or platform.machine()


def gpu_name(device_id: int) -> str:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader",
                              "-i", str(device_id)], capture_output=True, text=True, timeout=30)
        return out.stdout.strip() or f"cuda:{device_id}"
    except (OSError, subprocess.SubprocessError):
        return f"cuda:{device_id}"
