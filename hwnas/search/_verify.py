"""Verification in the loop: measure a search's reported architectures on the device, and
where a prediction misses, recalibrate on them and search again.

What it guarantees, where it runs (the predictor's device is this machine): every reported
architecture was measured end to end on this device with the timing protocol of the tables,
and in constraint and Pareto modes its measured latency is within the budget; the
predictions shown are those of the last calibration, and how many fall within the tolerance
of the measured latency is reported. An architecture measured over the budget is never
reported.

Example (it measures on this machine, so it is not run as a doctest)::

    from hwnas.search import search
    v = verify_search(space, predictor, lambda p, ms: search(space, p, ms, seed=0), 5.0)
    v.verified, [v.measured_ms[c.z] for c in v.result.best]
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

import numpy as np

from hwnas.errors import HwnasError
from hwnas.predictors import CalibratedPredictor, NotAdditiveError
from hwnas.profile import (
    BACKENDS,
    NOISY_SPREAD,
    TimingProtocol,
    available_backends,
    get_backend,
    measure_networks,
    network_table_path,
    noise,
)
from hwnas.profile._base import cpu_name
from hwnas.search._study import BudgetError, SearchResult
from hwnas.tables import NetworkTable, Timing

if TYPE_CHECKING:
    from hwnas.predictors import Predictor
    from hwnas.profile import Backend
    from hwnas.spaces import SearchSpace

#: predicted and measured latency may differ by this share before the loop recalibrates
TOLERANCE = 0.05
#: searches at most (the first one included)
MAX_ROUNDS = 3
#: calibration networks within this share of the budget (measured) are fitted alone when
#: there are at least 3: the calibration must be right where the answer lives
WINDOW = 0.3


@dataclass(frozen=True)
class Verification:
    """The verified answer: the search result whose architectures were all measured, the
    predictor of the last round, measured latency per z, and the rounds' printed lines."""

    result: SearchResult
    predictor: Predictor
    verified: bool
    note: str  # how it was verified, or why not
    measured_ms: dict[tuple[int, ...], float] = field(default_factory=dict)
    rounds: list[str] = field(default_factory=list)
    tolerance: float = TOLERANCE

    @property
    def within_tolerance(self) -> int | None:
        """How many reported architectures were predicted within the tolerance of their
        measured latency; None where nothing was measured."""
        if not self.measured_ms:
            return None
        return sum(bool(abs(c.predicted_latency_ms / self.measured_ms[c.z] - 1)
                        <= self.tolerance) for c in self.result.best if c.z in self.measured_ms)

    def as_dict(self) -> dict:
        """The JSON fields: ``verified`` and ``verification``."""
        return {"verified": self.verified,
                "verification": {"note": self.note, "rounds": len(self.rounds),
                                 "tolerance": self.tolerance,
                                 "within_tolerance": self.within_tolerance,
                                 "log": self.rounds}}


def verifier_backend(predictor: Predictor) -> tuple[Backend | None, str]:
    """The installed backend that measures on the predictor's device, or None and why not."""
    fp = predictor.fingerprint_
    target = getattr(predictor, "target", "latency_ms")
    if target != "latency_ms":
        return None, f"the predictor predicts {target}, not latency"
    if fp.backend not in BACKENDS:  # a table imported from another tool or device
        return None, f"the predictor is for {fp.describe()}, measured outside hwnas"
    if fp.backend not in available_backends():
        return None, f"the predictor is for {fp.describe()}; {fp.backend} is not installed here"
    context = fp.device.split(":")[0]
    if ":" not in fp.device or context not in ("cpu", "cuda", "cudnn"):  # named by hand
        return None, f"the predictor is for device {fp.device!r}, not a device of this machine"
    here_cpu = f"cpu: {cpu_name()}"
    if fp.device.startswith("cpu: ") and fp.device != here_cpu:  # known without a runtime
        return None, f"the predictor is for {fp.describe()}; this machine's CPU is {here_cpu}"
    options = {"context": context, "batch": fp.batch}
    if fp.backend == "onnxruntime":
        options.update(threads=fp.threads, optimization=fp.backend_version.rpartition("opt=")[2])
    try:
        backend = get_backend(fp.backend, **options)
        here = backend.fingerprint()
    except (HwnasError, ValueError, ImportError) as e:
        return None, f"the predictor is for {fp.describe()}, which is not available here ({e})"
    if here != fp:
        return None, f"the predictor is for {fp.describe()}; this machine is {here.describe()}"
    return backend, ""


def calibrate(base: Predictor, networks: NetworkTable, space: SearchSpace,
              budget_ms: float) -> CalibratedPredictor:
    """true ~ a * base + b (``fit_line``) fitted on the networks measured within WINDOW of
    the budget where at least 3 are, else on all of them. Noisy rows are left out where 3
    others remain."""
    steady = [i for i, t in enumerate(networks.timings) if noise(t) <= NOISY_SPREAD]
    if len(steady) >= 3:
        networks = networks.select(steady)
    latency = networks.values()
    near = [i for i, t in enumerate(latency) if abs(t / budget_ms - 1) <= WINDOW]
    if len(near) >= 3:
        return CalibratedPredictor(base).fit(networks.select(near), space)
    return CalibratedPredictor(base).fit(networks, space)


def verify_search(space: SearchSpace, predictor: Predictor,
                  run_search: Callable[[Predictor, float], SearchResult], budget_ms: float, *,
                  mode: str = "constraint", top: int = 5,
                  base: Predictor | None = None,
                  calibration: NetworkTable | None = None,
                  backend: Backend | None = None,
                  tolerance: float = TOLERANCE, max_rounds: int = MAX_ROUNDS,
                  protocol: TimingProtocol | None = None, show_progress: bool = False,
                  log: Callable[[str], None] = lambda line: None) -> Verification:
    """Search with ``run_search(predictor, search_budget_ms)``, measure the reported
    architectures on the device (interleaved, into the device's cached network table), and
    while one is over the budget or off its prediction by more than ``tolerance``, add those
    to the calibration networks, refit ``a * base + b`` and search again (at most
    ``max_rounds`` searches).

    The first search is at ``budget_ms``; after a recalibration, at ``budget_ms`` less a
    margin: how far the new calibration still predicts under the measured latency of this
    run's steady networks within WINDOW of the budget (at most ``tolerance``), so that the
    next answers measure within the budget rather than just over it.

    ``base`` is what the calibration scales (default: the predictor's own base if it is
    calibrated, else the predictor); ``calibration`` the networks it was calibrated on.
    ``backend`` defaults to the installed one whose fingerprint is the predictor's; where
    there is none, the search runs once and the result says why it is not verified.
    In constraint mode the answer is the best (by objective) of every architecture measured
    within the budget in any round. Raises BudgetError when no measured architecture meets
    the budget (the least-latency one included).
    """
    if backend is None:
        backend, why = verifier_backend(predictor)
        if backend is None:
            return Verification(run_search(predictor, budget_ms), predictor, False,
                                f"cannot be verified here: {why}")
    if base is None:
        base = predictor._base() if isinstance(predictor, CalibratedPredictor) else predictor
    path = network_table_path(backend, space)
    protocol = protocol or TimingProtocol()
    calib = set(calibration.z) if calibration is not None else set()
    measured: dict[tuple[int, ...], float] = {}
    seen: dict[tuple[int, ...], Timing] = {}  # this run's measurements, cached or not
    pool: dict[tuple[int, ...], object] = {}  # every reported candidate, by z
    rounds: list[str] = []
    over = mode != "penalty"  # a budget that a true latency can break
    result = last = None
    search_ms = budget_ms
    for number in range(1, max_rounds + 1):
        try:
            result = last = run_search(predictor, search_ms)
            zs = [c.z for c in result.best]
            pool.update((c.z, c) for c in result.best)
        except BudgetError as e:
            try:  # is the least-latency architecture truly over the budget, or the calibration?
                z_min = tuple(int(v) for v in space.min_z(*predictor.cost_matrix(space))[0])
            except NotAdditiveError:
                if last is None:
                    raise e from None
                rounds.append(f"verify round {number}: the recalibrated predictor finds no "
                              f"architecture within the budget (the least is not known: it "
                              f"is not additive)")
                log(rounds[-1])
                break
            zs, result = [z_min], None
        if not zs:
            break
        timings = measure_networks(backend, space, zs, path, protocol, show_progress)
        seen.update(timings)
        true = np.array([timings[z].latency_ms for z in zs])
        measured.update(zip(zs, map(float, true)))
        predicted = predictor.predict_z(space, np.array(zs))
        error = predicted / true - 1
        off = [(over and t > budget_ms) or abs(e) > tolerance for t, e in zip(true, error)]
        if result is None:  # predicted over the budget: measured within it, that is a miss
            off = [True]
        # another job on the core only slows a run: a busy measurement within the budget
        # still shows that the architecture fits, but it never calibrates, and is not cached
        busy = [z for z in zs if noise(timings[z]) > NOISY_SPREAD]
        misses = [z for z, o in zip(zs, off) if o and z not in busy]
        line = (f"verify round {number}: measured {len(zs)} architecture(s): predicted "
                f"{predicted.min():.3f}-{predicted.max():.3f} ms, measured "
                f"{true.min():.3f}-{true.max():.3f} ms, error {100 * error.min():+.1f} % to "
                f"{100 * error.max():+.1f} %")
        if result is None:
            line = f"verify round {number}: no architecture predicted within the budget; the " \
                   f"least-latency one, predicted {predicted[0]:.3f} ms, measured {true[0]:.3f} ms"
        if busy:
            line += f" ({len(busy)} on a busy machine: noise over {100 * NOISY_SPREAD:g} %)"
        if result is None and true[0] > budget_ms and not busy:
            rounds.append(line)
            log(line)
            if not _fits(pool, measured, budget_ms):
                raise _measured_over(budget_ms, float(true[0]))
            break  # earlier rounds' architectures measured within it: the answer is theirs
        if not any(off):
            line += f"; all within {100 * tolerance:g} %" + (" and the budget" if over else "")
            rounds.append(line)
            log(line)
            break
        line += f"; {sum(off)} over the budget or off by more than {100 * tolerance:g} %"
        if number == max_rounds:
            rounds.append(line + ": no rounds left")
            log(rounds[-1])
            break
        if not misses:
            rounds.append(line + ": measuring again")
            log(rounds[-1])
            continue
        calib.update(misses)
        if len(calib) < 3:  # a line needs networks of different sizes: a covering design
            design = [tuple(int(v) for v in z)
                      for z in space.design(max(space.n_choices), seed=0)]
            found = measure_networks(backend, space, design, path, protocol, show_progress)
            calib.update(design)
            seen.update(found)
        try:
            predictor = calibrate(base, _table(calibration, space, path, backend, calib, seen),
                                  space, budget_ms)
        except ValueError as e:  # no calibration (see fit_line): keep the answer
            rounds.append(line + f": cannot recalibrate ({e})")
            log(rounds[-1])
            break
        search_ms = budget_ms * (1 - _margin(space, predictor, seen, budget_ms, tolerance))
        line += (f": recalibrated on {len(calib)} networks (a = {predictor.a_:.3f}, "
                 f"b = {predictor.b_:.3f} ms), searching again at {search_ms:.3f} ms")
        rounds.append(line)
        log(line)
    if last is None and min(measured.values()) <= budget_ms:
        # no search found an architecture predicted within the budget, but the least-latency
        # one measured within it: a search at the least predicted latency reports it (and
        # any tie, measured too)
        last = run_search(predictor, space.min_z(*predictor.cost_matrix(space))[1] * (1 + 1e-9))
        new = [c.z for c in last.best if c.z not in measured]
        if new:
            found = measure_networks(backend, space, new, path, protocol, show_progress)
            measured.update((z, t.latency_ms) for z, t in found.items())
        pool.update((c.z, c) for c in last.best)
    if last is None:
        raise _measured_over(budget_ms, min(measured.values()))
    best = _answer(space, predictor, last, pool, measured, budget_ms, mode, top, over)
    last = dataclasses.replace(last, budget_ms=budget_ms)
    if not best:
        load = os.getloadavg()[0]
        return Verification(last, predictor, False,
                            f"the machine was too busy to verify: every reported architecture "
                            f"measured over the budget with noise over "
                            f"{100 * NOISY_SPREAD:g} % (load average {load:.1f} on "
                            f"{os.cpu_count()} cores); run again when it is quieter",
                            measured, rounds, tolerance)
    v = Verification(dataclasses.replace(last, best=best), predictor, True, "", measured,
                     rounds, tolerance)
    note = (f"{len(best)} architecture(s) measured on {backend.fingerprint().describe()}"
            + (f", all within the budget of {budget_ms:g} ms" if over else "")
            + f"; {v.within_tolerance} of {len(best)} predicted within {100 * tolerance:g} %; "
              f"{len(rounds)} round(s)")
    return dataclasses.replace(v, note=note)


def _fits(pool, measured, budget_ms) -> bool:
    """Whether a reported architecture of some round measured within the budget."""
    return any(measured[z] <= budget_ms for z in pool)


def _margin(space, predictor, seen, budget_ms, tolerance) -> float:
    """How far ``predictor`` predicts under the measured latency of this run's steady
    networks within WINDOW of the budget (0 where it predicts none under), at most
    ``tolerance``: the share by which the next search lowers its budget."""
    near = [z for z, t in seen.items()
            if noise(t) <= NOISY_SPREAD and abs(t.latency_ms / budget_ms - 1) <= WINDOW]
    if not near:
        return 0.0
    true = np.array([seen[z].latency_ms for z in near])
    under = true / predictor.predict_z(space, np.array(near)) - 1
    return float(np.clip(under.max(), 0.0, tolerance))


def _measured_over(budget_ms: float, least_ms: float) -> BudgetError:
    e = BudgetError(budget_ms, least_ms)
    e.args = (f"no architecture meets the budget of {budget_ms:g} ms: the least-latency one "
              f"measured {least_ms:.3f} ms on this device",)
    return e


def _table(calibration, space, path, backend, calib, seen) -> NetworkTable:
    """The calibration networks: the given table's rows and this run's measurements."""
    rows = dict(zip(calibration.z, calibration.timings)) if calibration is not None else {}
    rows.update((z, seen[z]) for z in calib if z in seen)
    return NetworkTable(str(path), backend.fingerprint(), space.name, tuple(rows),
                        tuple(rows.values()))


def _answer(space, predictor, last, pool, measured, budget_ms, mode, top, over):
    """The reported candidates, with the last predictor's predictions: in constraint mode
    the best measured within the budget across rounds; otherwise the last round's, less any
    measured over the budget."""
    if mode == "constraint":
        fits = [c for z, c in pool.items() if measured[z] <= budget_ms]
        chosen = sorted(fits, key=lambda c: (-c.objective, measured[c.z]))[:top]
    else:
        chosen = [c for c in (last.best if last is not None else [])
                  if not (over and measured[c.z] > budget_ms)]
    if not chosen:
        return []
    predicted = predictor.predict_z(space, np.array([c.z for c in chosen]))
    return [dataclasses.replace(c, predicted_latency_ms=float(p))
            for c, p in zip(chosen, predicted)]
