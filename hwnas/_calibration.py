"""The one calibration line of the project: true latency ~ a * predicted + b, inside physics."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hwnas.errors import InputError

#: the slopes a calibration may take where its caller names none (true latency over layer
#: sum: 0.75-1.04 was measured across runtimes, see hwnas.profile.Backend.calibration_slope)
SLOPE_BOUNDS = (0.5, 2.0)
#: the predicted latencies must span at least this share of their median to fix a slope;
#: narrower, the line is a ratio through 0
MIN_SPAN = 0.15
#: with a focus, the offset is fitted on the networks measured within this share of it
FOCUS_WINDOW = 0.3


@dataclass(frozen=True)
class Line:
    """true ~ a * predicted + b, and how it was fitted (``how``: what a user should know)."""

    a: float
    b: float
    how: str


def fit_line(x, y, slope_bounds: tuple[float, float] = SLOPE_BOUNDS,
             focus: float | None = None, frontier: np.ndarray | None = None) -> Line:
    """The calibration line through measured networks: predicted ``x``, measured ``y`` (ms).

    Robust (Theil-Sen: the median of the pairwise slopes, the offset the median residual), so
    that one network measured in a slow moment cannot tilt it. The slope comes from the pairs
    of networks predicted at least MIN_SPAN / 2 apart (of the median), spread over the space,
    so that a cluster near one budget cannot fix it with its noise; with a ``focus`` (a
    budget, ms), the offset is the median residual of the networks measured within
    FOCUS_WINDOW of it where there are 3 (a layer sum misses by 0.7-0.8x of true depending on
    the network's make-up: the line must be right where the answer lives): of those on the
    ``frontier`` (a mask: the networks of most MACs per predicted ms, where a search for the
    most capable network lands) where 2 of them are. And physical:

    - ``a`` within ``slope_bounds``; where the networks span less than MIN_SPAN of their
      predicted latency, the data cannot fix a slope: a ratio through 0 (b = 0; near the
      focus where it can), and ``how`` says so;
    - ``0 <= b <`` the least measured latency, so that no prediction is negative;
    - the network of least ``x`` is predicted at least at its measured latency: the least
      reachable latency is never below what the least-latency network measured.

    Raises InputError with fewer than 2 networks or with latencies that are not positive.

    Example:
        >>> line = fit_line([1.0, 2.0, 3.0, 4.0], [2.5, 4.5, 6.5, 8.5])
        >>> round(line.a, 6), round(line.b, 6)
        (2.0, 0.5)
        >>> fit_line([1.0, 1.05], [4.0, 4.2]).how.split(" (")[0]
        'a ratio through 0'
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(x) < 2 or not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise InputError(f"the calibration needs at least 2 networks with finite latencies, "
                         f"got {len(x)}")
    if np.any(y <= 0) or np.any(x <= 0):
        raise InputError("the calibration gives no slope a > 0: its latencies are not "
                         "positive; measure networks of different sizes")
    notes: list[str] = []
    frontier = np.zeros(len(x), bool) if frontier is None else np.asarray(frontier, bool)
    if frontier.shape != x.shape:
        raise InputError(f"the frontier mask has {frontier.size} entries for {len(x)} networks")
    a, b = _robust_line(x, y, slope_bounds, focus, frontier, notes)
    least = int(np.argmin(x))
    floor = float(y[least] - a * x[least])
    if floor > b:
        notes.append("offset raised so that the least-latency network is predicted at what it "
                     "measured")
    b = float(min(max(b, floor), y.min() * (1 - 1e-6)))
    return Line(a, b, "; ".join(notes) or "a robust line")


def on_frontier(x, macs) -> np.ndarray:
    """Which networks no other beats on both counts, a predicted latency ``x`` as low and
    ``macs`` as high (one of them strictly): the frontier that ``fit_line`` fits its offset on.

    Example:
        >>> on_frontier([1.0, 2.0, 2.0, 3.0], [5, 9, 7, 9]).tolist()
        [True, True, False, False]
    """
    x, m = np.asarray(x, float), np.asarray(macs, float)
    beaten = ((x[None] <= x[:, None]) & (m[None] >= m[:, None])
              & ((x[None] < x[:, None]) | (m[None] > m[:, None])))
    return ~beaten.any(axis=1)


def _robust_line(x: np.ndarray, y: np.ndarray, slope_bounds: tuple[float, float],
                 focus: float | None, frontier: np.ndarray, notes: list[str]
                 ) -> tuple[float, float]:
    """(a, b) before the floor: Theil-Sen's slope within the bounds, the offset near the
    focus (on its frontier networks where there are 2); a ratio through 0 where the x span
    too little or the offset would be negative. What a user should know is appended to
    ``notes``."""
    low, high = slope_bounds
    span = float(np.ptp(x) / np.median(x))
    if len(x) < 3 or span < MIN_SPAN:
        notes.append(f"a ratio through 0 (the networks span {100 * span:.0f} % of their "
                     f"predicted latency: too narrow to fix a slope)")
        return float(np.clip(np.median(y / x), low, high)), 0.0
    # pairs of networks far apart: a cluster measured near a budget (the answers of earlier
    # verifications) would otherwise fix the slope with its noise
    i, j = np.triu_indices(len(x), 1)
    dx = x[j] - x[i]
    apart = np.abs(dx) >= MIN_SPAN / 2 * np.median(x)
    a = float(np.median((y[j] - y[i])[apart] / dx[apart]))
    if not low <= a <= high:
        notes.append(f"the fitted slope {a:.3g} lies outside the physical range "
                     f"{low:g}-{high:g}: held at the bound")
        a = float(np.clip(a, low, high))
    near = np.abs(y / focus - 1) <= FOCUS_WINDOW if focus else np.zeros(len(y), bool)
    dense = (near & frontier).sum() >= 2
    if dense:
        near &= frontier
    focused = dense or near.sum() >= 3
    if not focused:
        near = np.ones(len(y), bool)
    b = float(np.median((y - a * x)[near]))
    if focused:
        notes.append(f"offset fitted on the {int(near.sum())} "
                     f"{'frontier ' if dense else ''}networks within "
                     f"{100 * FOCUS_WINDOW:g} % of {focus:g} ms")
    if b < 0:  # no offset below 0: a ratio through 0, where the focus is if it can
        notes.append("the offset came out negative: a ratio through 0")
        return float(np.clip(np.median(y[near] / x[near]), low, high)), 0.0
    return a, b
