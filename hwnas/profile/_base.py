"""The profiler backend interface."""

from __future__ import annotations

import os
import platform
from abc import ABC, abstractmethod
from typing import Sequence

from hwnas.layers import Layer
from hwnas.profile._timing import TimingProtocol
from hwnas.tables import Fingerprint, Timing


class ProfileError(RuntimeError):
    """A layer or network failed to build or run; the message names it."""


class Backend(ABC):
    """Builds Layers and whole architectures in a real runtime and times them."""

    name: str

    @abstractmethod
    def fingerprint(self) -> Fingerprint:
        """The device and runtime settings the measurements depend on."""

    @abstractmethod
    def time_layers(self, layers: Sequence[Layer], protocol: TimingProtocol) -> Timing:
        """Time the layers chained in order (one layer, or a whole architecture)."""


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
