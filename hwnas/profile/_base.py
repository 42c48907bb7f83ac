"""The profiler backend interface."""

from __future__ import annotations

import os
import platform
import subprocess
from abc import ABC, abstractmethod
from typing import Callable, Sequence

from hwnas.layers import Layer
from hwnas.profile._timing import TimingProtocol, measure
from hwnas.tables import Fingerprint, Timing


class ProfileError(RuntimeError):
    """A layer or network failed to build or run; the message names it."""


class Backend(ABC):
    """Builds Layers and whole architectures in a real runtime, ready to be timed."""

    name: str

    @abstractmethod
    def fingerprint(self) -> Fingerprint:
        """The device and runtime settings the measurements depend on."""

    @abstractmethod
    def build(self, layers: Sequence[Layer]) -> Callable[[], None]:
        """Build the layers chained in order, with random inputs and weights, check one
        forward pass, and return a function that runs one pass and waits for the device."""

    def runner(self, layers: Sequence[Layer]) -> Callable[[], None]:
        """``build``, with any failure turned into a ProfileError naming the unit."""
        try:
            return self.build(layers)
        except Exception as e:
            raise ProfileError(f"{unit_name(layers)}: {self.name} failed: "
                               f"{type(e).__name__}: {e}") from e

    def time_layers(self, layers: Sequence[Layer],
                    protocol: TimingProtocol = TimingProtocol()) -> Timing:
        """Time one unit: a layer, or a whole architecture's layers."""
        return measure([self.runner(layers)], protocol)[0]


def unit_name(layers: Sequence[Layer]) -> str:
    return f"layer {layers[0].key}" if len(layers) == 1 else f"network of {len(layers)} layers"


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpu_name(device_id: int) -> str:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader",
                              "-i", str(device_id)], capture_output=True, text=True, timeout=30)
        return out.stdout.strip() or f"cuda:{device_id}"
    except (OSError, subprocess.SubprocessError):
        return f"cuda:{device_id}"


def cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
