"""The one calibration line of the project: true latency ~ a * predicted + b."""

from __future__ import annotations

import numpy as np

from hwnas.errors import InputError


def fit_line(x, y) -> tuple[float, float]:
    """y ~ a x + b by least squares, where that is a rising line (a > 0); else the ratio
    through 0 (a = sum y / sum x, b = 0), which still passes through the points' mean, so
    that it is right where they are. The one calibration line of the project: the device
    tables choose their networks near the budget with it, and the search predicts with it.

    Raises InputError where not even the ratio is a finite a > 0 (no positive latencies).

    Example:
        >>> [round(v, 6) for v in fit_line([1.0, 2.0, 3.0], [2.5, 4.5, 6.5])]
        [2.0, 0.5]
        >>> fit_line([1.0, 2.0], [4.0, 2.0])  # falls: a ratio through 0
        (2.0, 0.0)
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(x) >= 2 and np.ptp(x) > 0:
        a, b = np.polyfit(x, y, 1)
        if a > 0:
            return float(a), float(b)
    a = float(np.sum(y) / np.sum(x)) if len(x) and np.sum(x) != 0 else float("nan")
    if not (np.isfinite(a) and a > 0):
        raise InputError(f"the calibration gives no slope a > 0 (a = {a:.3g}): its latencies "
                         f"are not positive; measure networks of different sizes")
    return a, 0.0
