"""A one-line progress bar with an ETA, on stderr (tqdm, where installed: measuring runs on
bare accelerator machines that may have only the framework and numpy)."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from typing import TypeVar

try:
    from tqdm import tqdm
except ImportError:  # pragma: no cover (tqdm is a dependency of hwnas; a bare machine lacks it)
    tqdm = None  # type: ignore[assignment,misc]

T = TypeVar("T")

_FORMAT = ("{desc} {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} "
           "[{elapsed} elapsed, ETA {remaining}, {rate_fmt}]")


class Progress:
    """Draws ``desc  50%|#####     | 35/70 [00:04 elapsed, ETA 00:04, 8.10it/s]`` on stderr;
    silent when not enabled or when there is nothing to do."""

    def __init__(self, total: int, desc: str, enabled: bool = True):
        self._bar = None if tqdm is None else tqdm(
            total=total, desc=desc, disable=not enabled or total <= 0, file=sys.stderr,
            mininterval=0.2, bar_format=_FORMAT)

    def update(self, n: int = 1) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def progress(items: Sequence[T], desc: str, enabled: bool = True) -> Iterator[T]:
    """Yield ``items`` while drawing a Progress bar."""
    bar = Progress(len(items), desc, enabled)
    try:
        for item in items:
            yield item
            bar.update()
    finally:
        bar.close()
