"""A one-line progress bar with an ETA, on stderr."""

from __future__ import annotations

import sys
import time
from typing import Iterator, Sequence, TypeVar

T = TypeVar("T")


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60:d}:{seconds % 60:02d}"


class Progress:
    """Draws ``desc [#####-----] 35/70 0:04 elapsed, ETA 0:04``; silent when not enabled."""

    def __init__(self, total: int, desc: str, enabled: bool = True, stream=None):
        self.total, self.desc, self.enabled = total, desc, enabled and total > 0
        self.stream = stream or sys.stderr
        self.done = 0
        self.start = self._drawn = time.perf_counter()
        self._draw()

    def update(self, n: int = 1) -> None:
        self.done += n
        if self.done >= self.total or time.perf_counter() - self._drawn > 0.2:
            self._draw()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()

    def _draw(self) -> None:
        if not self.enabled:
            return
        self._drawn = time.perf_counter()
        elapsed = self._drawn - self.start
        eta = _clock(elapsed / self.done * (self.total - self.done)) if self.done else "?"
        filled = int(30 * self.done / self.total)
        self.stream.write(f"\r{self.desc} [{'#' * filled}{'-' * (30 - filled)}] "
                          f"{self.done}/{self.total} {_clock(elapsed)} elapsed, ETA {eta}")
        self.stream.flush()


def progress(items: Sequence[T], desc: str, enabled: bool = True) -> Iterator[T]:
    """Yield ``items`` while drawing a Progress bar."""
    bar = Progress(len(items), desc, enabled)
    for item in items:
        yield item
        bar.update()
    bar.close()
