"""Verification in the loop: measure a search's reported architectures on the device, and
spend another round (recalibrate, search again) only where the evidence says the answer would
be wrong: none of them measured within the budget, or the calibration predicts more than
they measured beyond the tolerance (the search left room under the budget). Where it predicts
less but some measured within the budget, those are the answer (the others are not reported).
In constraint mode a round also measures a fallback predicted FALLBACK under its budget, so
that answers all a little over the budget within their noise do not cost a round.

What it guarantees, where it runs (the predictor's device is this machine): every reported
architecture was measured end to end on this device with the timing protocol of the tables,
and in constraint and Pareto modes its measured latency is within the budget; the
predictions shown are those of the last calibration. On a quiet machine with a right
calibration the answer is verified in one round.

The tolerance is not a constant: a prediction is off when it misses the measured latency by
more than the calibration's own error (MIN_TOLERANCE) or NOISE_SIGMAS times the measured
noise of the networks being verified, whichever is more. That noise is a network's between
batches where it shows: the calibration networks re-timed beside the answers put the batch on
the calibration's scale, and how far they disagree (their spread) is how far any network of
the batch may sit off that scale (2-4 % on a shared 2-vCPU VM, up to 6 %; within one batch,
far less); at most DRIFT_TOLERANCE / NOISE_SIGMAS.

Example (it measures on this machine, so it is not run as a doctest)::

    from hwnas.search import SearchSettings
    v = Verifier(space, SearchSettings(seed=0), 5.0, backend=backend).run(predictor)
    v.verified, [v.measured_ms[c.z] for c in v.result.best]
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

import numpy as np

from hwnas.errors import HwnasError
from hwnas.predictors import CalibratedPredictor, NotAdditiveError, uncalibrated
from hwnas.profile import (
    BACKENDS,
    DEVICE_BACKENDS,
    DRIFT_TOLERANCE,
    TimingProtocol,
    available_backends,
    get_backend,
    measure_networks,
    network_table_path,
)
from hwnas.profile._base import cpu_name
from hwnas.profile._batch import BatchLog, reference_runners, steady
from hwnas.profile._cache import unit_noise
from hwnas.profile._latency import (  # the tolerance rule: here and in a re-time
    MIN_NOISE,
    MIN_TOLERANCE,
    NOISE_SIGMAS,
    MachineState,
    RunState,
    definition,
)
from hwnas.search._study import (
    BudgetError,
    Candidate,
    SearchResult,
    SearchSettings,
    run_study,
)
from hwnas.tables import NetworkTable, Timing, format_z

if TYPE_CHECKING:
    from hwnas.predictors import Predictor
    from hwnas.profile import Backend
    from hwnas.spaces import SearchSpace

Z = tuple[int, ...]
#: searches at most (the first one included)
MAX_ROUNDS = 3
#: calibration networks re-timed beside the answers (those nearest the budget; their median
#: puts the batch on the calibration's scale)
REFERENCES = 3
#: in constraint mode a round also measures the best architecture predicted within this share
#: under the budget it searched at (a fallback): the reported ones all sit within about 1 % of
#: that budget, so a calibration that predicts 1-5 % too little, within its noise, put every
#: one of them over it, and that cost a whole round (benchmarks/robustness.py, 2026-12-02: 4
#: of 10 cold runs); then the fallback, measured within the budget, is the answer
FALLBACK = 0.05


@dataclass(frozen=True)
class Verification:
    """The verified answer: the search result whose architectures were all measured, the
    predictor of the last round, measured latency per z (as ``latency`` means it: the
    budget's meaning, ``hwnas.profile._latency``), the rounds' printed lines, each measured
    architecture's timing (``timings``: its unloaded latency and the raw median and p90 of its
    runs now) and the machine's states during the run (``machine``)."""

    result: SearchResult
    predictor: Predictor
    verified: bool
    note: str  # how it was verified, or why not
    measured_ms: dict[Z, float] = field(default_factory=dict)
    rounds: list[str] = field(default_factory=list)
    tolerance: float = MIN_TOLERANCE
    scale: float = 1.0  # the scale the budget was judged on over the cached tables'
    latency: str = "unloaded"
    machine: RunState = RunState(())
    timings: dict[Z, Timing] = field(default_factory=dict)

    @property
    def factor(self) -> float:
        """The machine's factor of ``latency`` over the unloaded latency during the run."""
        return self.machine.factor(self.latency) / self.scale \
            if self.latency != "unloaded" else 1.0

    def unsteady(self) -> str | None:
        """One line where the machine moved more than the tolerance during the run."""
        return self.machine.unsteady(self.result.budget_ms, self.latency, self.tolerance)

    @property
    def within_tolerance(self) -> int | None:
        """How many reported architectures were predicted within the tolerance of their
        measured latency; None where nothing was measured."""
        if not self.measured_ms:
            return None
        return sum(bool(abs(c.predicted_latency_ms / self.measured_ms[c.z] - 1)
                        <= self.tolerance) for c in self.result.best if c.z in self.measured_ms)

    def as_dict(self) -> dict:
        """The JSON fields: ``verified``, ``verification`` and ``latency`` (what the budget and
        every measured latency mean, the factor, the machine's state during the run)."""
        return {"verified": self.verified,
                "verification": {"note": self.note, "rounds": len(self.rounds),
                                 "tolerance": self.tolerance,
                                 "within_tolerance": self.within_tolerance,
                                 "scale": self.scale, "log": self.rounds},
                "latency": {"meaning": self.latency, "definition": definition(self.latency),
                            "factor": self.factor,
                            "machine": self.machine.as_dict(self.result.budget_ms,
                                                            self.latency, self.tolerance)}}

    def measured(self, z: Z) -> dict:
        """A reported architecture's measured fields for the JSON: its latency as the budget
        means it, its unloaded latency, and the raw median and p90 of its runs now."""
        t = self.timings.get(tuple(z))
        return {"measured_latency_ms": self.measured_ms.get(tuple(z)),
                "unloaded_latency_ms": None if t is None else t.latency_ms,
                "raw_median_ms": None if t is None else t.raw_median_ms,
                "raw_p90_ms": None if t is None else t.raw_p90_ms}

    def report(self) -> str:
        """Measured beside predicted latency of each reported architecture, the raw timings
        beside, what the latency is, the machine's state, and the verdict."""
        if not self.measured_ms:
            return (f"not verified: {self.note}\nlatency: as the predictor predicts it (its "
                    f"tables' unloaded latency); the machine's state was not measured")
        lines = [f"{'rank':>4}  {'predicted_ms':>12}  {'measured_ms':>11}  {'error':>7}  "
                 f"{'unloaded_ms':>11}  {'raw_median_ms':>13}  {'raw_p90_ms':>10}  z"]
        for i, c in enumerate(self.result.best, 1):
            true, t = self.measured_ms[c.z], self.timings.get(c.z)
            raw = "" if t is None else f"{t.latency_ms:>11.3f}  {t.raw_median_ms:>13.3f}  " \
                                       f"{t.raw_p90_ms:>10.3f}"
            lines.append(f"{i:>4}  {c.predicted_latency_ms:>12.3f}  {true:>11.3f}  "
                         f"{100 * (c.predicted_latency_ms / true - 1):>+6.1f}%  "
                         f"{raw or ' ' * 40}  {format_z(c.z)}")
        lines.append(f"latency ({self.latency}): {definition(self.latency)}"
                     + ("" if self.latency == "unloaded" else f": x {self.factor:.3f} now"))
        lines.append(f"machine: {self.machine.describe()}")
        if self.unsteady():
            lines.append(f"warning: {self.unsteady()}")
        lines.append(("verified: " if self.verified else "not verified: ") + self.note)
        return "\n".join(lines)


@dataclass
class VerifyState:
    """What a verification has learned so far."""

    predictor: Predictor
    search_ms: float  # the budget the next search runs at
    number: int = 0  # rounds begun
    result: SearchResult | None = None  # the last search that found architectures
    found: bool = True  # whether this round's search found any
    pool: dict[Z, Candidate] = field(default_factory=dict)  # every reported candidate
    measured: dict[Z, Timing] = field(default_factory=dict)  # this run's measurements
    calibration: dict[Z, Timing] = field(default_factory=dict)  # what recalibration fits
    lines: list[str] = field(default_factory=list)
    tolerance: float = MIN_TOLERANCE
    shift: float | None = None  # how far the reference networks moved in this round's batch
    scale_noise: float = 0.0  # how far they disagreed (see Verifier.measure)
    scale: float = 1.0  # the machine's scale now over the cached tables' (see Verifier.measure)
    states: list[MachineState] = field(default_factory=list)  # the machine's, batch by batch
    done: bool = False

    def factor(self, latency: str) -> float:
        """The machine's factor of ``latency`` over the unloaded latency on the current scale
        (1 for ``unloaded``, and where no reference network was timed)."""
        if latency == "unloaded" or not self.states:
            return 1.0
        return RunState(tuple(self.states)).factor(latency) / self.scale


class Verifier:
    """Search, measure the answers on ``backend``, judge them under their noise, and where the
    evidence says so recalibrate ``a * base + b`` and search again (at most MAX_ROUNDS).

    Args:
        space, settings, budget_ms: what and how to search (``search``'s arguments); a named
            study is the first round's, later rounds search studies of their own (their
            trials carry other predictions).
        backend: measures on the predictor's device (default: the installed one whose
            fingerprint is the predictor's, see ``verifier_backend``).
        calibration: the networks the predictor was calibrated on (what a recalibration
            refits, with this run's measurements; what the calibration scales is the
            predictor's own base if it is calibrated, else the predictor).
        protocol, show_progress: how networks are measured.
        log: called with each round's line as it ends.
    """

    def __init__(self, space: SearchSpace, settings: SearchSettings, budget_ms: float, *,
                 backend: Backend | None = None, calibration: NetworkTable | None = None,
                 protocol: TimingProtocol = TimingProtocol(),
                 log: Callable[[str], None] = lambda line: None):
        self.space, self.settings, self.budget_ms = space, settings, budget_ms
        self.backend, self.calibration = backend, calibration
        self.protocol, self.log = protocol, log
        self.base: Predictor | None = None
        self.over = settings.mode != "penalty"  # a budget that a true latency can break
        self.latency = settings.latency

    def run(self, predictor: Predictor) -> Verification:
        """The verified answer for ``predictor`` (see the module's guarantees). Raises
        BudgetError when no measured architecture meets the budget."""
        if self.backend is None:
            self.backend, why = verifier_backend(predictor)
            if self.backend is None:
                return Verification(self._search(predictor, self.budget_ms, 1), predictor,
                                    False, f"cannot be verified here: {why}")
        self.base = uncalibrated(predictor)
        state = VerifyState(predictor, self.budget_ms, calibration=dict(
            zip(self.calibration.z, self.calibration.timings)) if self.calibration else {})
        self.check_state(state)
        while not state.done:
            state.number += 1
            zs = self.search(state)
            self.measure(state, zs)
            line, wrong = self.judge(state, zs)
            if wrong and state.number < MAX_ROUNDS:
                line += self.recalibrate(state, zs)
            else:
                state.done = True
                if wrong:
                    line += ": no rounds left"
            state.lines.append(line)
            self.log(line)
        return self.answer(state)

    # --- the steps --------------------------------------------------------------------------

    def check_state(self, state: VerifyState) -> None:
        """Where the budget means a latency in the machine's current state, time the
        reference networks alone first: their factor puts the first search's budget on the
        predictor's (unloaded) scale."""
        if self.latency == "unloaded" or not self._references():
            return
        assert self.backend is not None
        steady(self.backend, [], self.protocol,
               reference_runners(self.backend, self.space, self._references()), state.states)
        state.search_ms = self.unloaded_budget(state)

    def unloaded_budget(self, state: VerifyState) -> float:
        """The budget on the predictor's (unloaded) scale: the user's, over the machine's
        factor of the latency it means."""
        return self.budget_ms / state.factor(self.latency)

    def _references(self) -> list[tuple[Z, float]]:
        """REFERENCES calibration networks nearest the budget (z, latency_ms), if known."""
        known = self.calibration
        if known is None:
            return []
        near = np.argsort(np.abs(known.values() - self.budget_ms))[:REFERENCES]
        return [(known.z[i], float(known.values()[i])) for i in near]

    def search(self, state: VerifyState) -> list[Z]:
        """Search at ``state.search_ms``: the reported z; where nothing is predicted within
        it, the least-latency z (is it truly over the budget, or is the calibration?)."""
        try:
            state.result = self._search(state.predictor, state.search_ms, state.number)
        except BudgetError:
            state.found = False
            return [self._least(state.predictor)]
        state.found = True
        found = list(state.result.best)
        found += [c for c in self._fallback(state) if c.z not in {b.z for b in found}]
        state.pool.update((c.z, c) for c in found)
        return [c.z for c in found]

    def measure(self, state: VerifyState, zs: list[Z]) -> None:
        """Measure ``zs`` on the device, interleaved, into its cached network table (the
        steady ones: a warm run reuses them), with REFERENCES calibration networks re-timed
        among them: the batch is put on their earlier scale, so that a machine state that
        slows or speeds every network alike does not count as an error of the calibration
        (``hwnas.profile.measure_networks``). Where they ran faster than that scale by more
        than DRIFT_TOLERANCE, the tables were measured in a slow state that has ended: this
        run's calibration networks and measurements are put on the machine's scale now, and
        the calibration found off (the next run's drift check puts the tables there:
        ``hwnas.profile.rebase``)."""
        assert self.backend is not None
        log = BatchLog(states=state.states)
        measured = measure_networks(
            self.backend, self.space, zs, network_table_path(self.backend, self.space),
            self.protocol, self.settings.show_progress, references=self._references(), log=log)
        moves = log.moves
        state.measured.update((z, t.scaled(state.scale)) for z, t in measured.items())
        state.shift = float(np.median(np.concatenate(moves))) if moves else None
        faster = 1.0 if state.shift is None else (1 + state.shift) / state.scale
        if faster < 1 - DRIFT_TOLERANCE:  # the calibration was measured in a slow state
            state.scale *= faster
            for rows in (state.measured, state.calibration):
                rows.update({z: t.scaled(faster) for z, t in rows.items()})
        # how far the references disagree: the noise of a network between batches, which
        # their scale carries to every answer (a share; within one batch it is far less)
        spread = [np.log1p(m) - np.median(np.log1p(m)) for m in moves if len(m) > 1]
        # (at most DRIFT_TOLERANCE / NOISE_SIGMAS: one reference caught in a burst cannot make
        # every error look like noise)
        state.scale_noise = min(float(np.sqrt(np.sum(np.square(np.concatenate(spread)))
                                              / sum(len(d) - 1 for d in spread))),
                                DRIFT_TOLERANCE / NOISE_SIGMAS) if spread else 0.0

    def judge(self, state: VerifyState, zs: list[Z]) -> tuple[str, bool]:
        """The round's line, and whether the evidence says another round is needed: none is
        within the budget, or the predictions are off beyond the tolerance as a whole (the
        median error: the calibration is wrong) where that changes the answer: predicting too
        much (room left under the budget), or too little where no budget filters what is
        reported (penalty mode) or none measured within the budget."""
        true = np.array([state.measured[z].latency_ms for z in zs])
        noise = np.maximum([np.nan_to_num(unit_noise(state.measured[z])) for z in zs],
                           max(MIN_NOISE, state.scale_noise))
        predicted = state.predictor.predict_z(self.space, np.array(zs))
        error = predicted / true - 1
        state.tolerance = tolerance = max(MIN_TOLERANCE, NOISE_SIGMAS * float(np.median(noise)))
        budget = self.unloaded_budget(state)
        beyond = self.over & (true * (1 - NOISE_SIGMAS * noise) > budget)
        within = true <= budget if self.over else np.ones(len(zs), bool)
        line = (f"verify round {state.number}: measured {len(zs)} architecture(s): predicted "
                f"{predicted.min():.3f}-{predicted.max():.3f} ms, measured {true.min():.3f}-"
                f"{true.max():.3f} ms, error {100 * error.min():+.1f} % to "
                f"{100 * error.max():+.1f} % (tolerance {100 * tolerance:.1f} %"
                + ("" if state.shift is None else f"; the calibration networks ran "
                   f"{100 * state.shift:+.1f} % beside them, taken out, "
                   f"+-{100 * state.scale_noise:.1f} % apart") + ")"
                + ("" if state.scale == 1 else f"; the tables were measured in a slow state: "
                   f"put on the machine's scale now ({100 * (state.scale - 1):+.1f} %)")
                + ("" if self.latency == "unloaded" else f"; unloaded, judged against "
                   f"{budget:.3f} ms: the {self.latency} now is x "
                   f"{state.factor(self.latency):.3f}"))
        if not state.found:
            line = (f"verify round {state.number}: no architecture predicted within "
                    f"{state.search_ms:.3f} ms; the least-latency one, predicted "
                    f"{predicted[0]:.3f} ms, measured {true[0]:.3f} ms")
            if not beyond[0]:  # it may fit: the calibration predicts too much
                return line, True
            if not any(ms <= budget for ms in self._fits(state)):
                self.log(line)
                raise self._measured_over(state, float(true[0]))
            return line + "; the answer is an earlier round's", False
        off = float(np.median(error))
        reasons = []
        if off > tolerance or (off < -tolerance and not (self.over and within.any())):
            reasons.append(f"the calibration is off by {100 * off:+.1f} %")
        if not within.any():
            reasons.append("none within the budget" + (
                f" ({int(beyond.sum())} over it beyond their noise)" if beyond.any() else ""))
        if reasons:
            return line + "; " + ", ".join(reasons), True
        if not self.over or within.all():
            return line + ("; all within the budget" if self.over else ""), False
        return line + (f"; {int(within.sum())} of {len(zs)} within the budget (the others over "
                       f"it, {int(beyond.sum())} beyond their noise: not reported)"), False

    def recalibrate(self, state: VerifyState, zs: list[Z]) -> str:
        """Refit the line on the calibration networks and this run's measurements, and
        search next below the budget by how far the new line still predicts under the
        measured latency of this round's networks (at most the tolerance)."""
        state.calibration.update((z, state.measured[z]) for z in zs)
        rows = state.calibration
        assert self.backend is not None and self.base is not None
        table = NetworkTable(str(network_table_path(self.backend, self.space)),
                             self.backend.fingerprint(), self.space.name, tuple(rows),
                             tuple(rows.values()))
        try:
            state.predictor = calibrate(self.base, table, self.space, self.backend,
                                        self.unloaded_budget(state))
        except HwnasError as e:  # no calibration (see fit_line): keep the answer
            state.done = True
            return f": cannot recalibrate ({e})"
        true = np.array([state.measured[z].latency_ms for z in zs])
        under = true / state.predictor.predict_z(self.space, np.array(zs)) - 1
        margin = float(np.clip(under.max(), 0.0, state.tolerance))
        state.search_ms = self.unloaded_budget(state) * (1 - margin)
        p = state.predictor
        return (f": recalibrated on {len(rows)} networks (a = {p.a_:.3f}, b = {p.b_:.3f} ms; "
                f"{p.how_}), searching again at {state.search_ms:.3f} ms")

    def answer(self, state: VerifyState) -> Verification:
        """The reported candidates with the last predictor's predictions: in constraint mode
        the best measured within the budget across rounds; otherwise the last round's, less
        any measured over the budget. Latencies as the budget means them (``latency``): the
        unloaded ones times the machine's factor."""
        k = state.factor(self.latency)
        measured = {z: t.latency_ms * k for z, t in state.measured.items()}
        if state.result is None:  # no search found an architecture predicted within it
            if min(measured.values()) > self.budget_ms:
                raise self._measured_over(state, min(measured.values()) / k)
            # the least-latency network measured within the budget although predicted over
            # it: a search at the least predicted latency reports it (and any tie)
            least = self._least(state.predictor)
            state.result = self._search(
                state.predictor, float(state.predictor.predict_z(self.space, [least])[0])
                * (1 + 1e-9), state.number + 1)
            state.pool.update((c.z, c) for c in state.result.best)
            self.measure(state, [c.z for c in state.result.best])
            k = state.factor(self.latency)
            measured = {z: t.latency_ms * k for z, t in state.measured.items()}
        if self.settings.mode == "constraint":
            fits = [c for z, c in state.pool.items() if measured[z] <= self.budget_ms]
            chosen = sorted(fits, key=lambda c: (-c.objective, measured[c.z]))
            chosen = chosen[:self.settings.top]
        else:
            chosen = [c for c in state.result.best
                      if not (self.over and measured[c.z] > self.budget_ms)]
        result = dataclasses.replace(state.result, budget_ms=self.budget_ms, min_latency_ms=None
                                     if state.result.min_latency_ms is None
                                     else state.result.min_latency_ms * k)
        if not chosen:
            load = os.getloadavg()[0]
            return self._verification(state, result, measured, False,
                                      f"every reported architecture measured over the budget, "
                                      f"within its noise (load average {load:.1f} on "
                                      f"{os.cpu_count()} cores); run again when it is quieter")
        predicted = state.predictor.predict_z(self.space, np.array([c.z for c in chosen])) * k
        best = [dataclasses.replace(c, predicted_latency_ms=float(p))
                for c, p in zip(chosen, predicted)]
        v = self._verification(state, dataclasses.replace(result, best=best), measured, True,
                               "")
        assert self.backend is not None
        note = (f"{len(best)} architecture(s) measured on {self.backend.fingerprint().describe()}"
                + (f", all within the budget of {self.budget_ms:g} ms" if self.over else "")
                + f"; {v.within_tolerance} of {len(best)} predicted within "
                  f"{100 * state.tolerance:.1f} %; {len(state.lines)} round(s)")
        return dataclasses.replace(v, note=note)

    def _verification(self, state: VerifyState, result: SearchResult,
                      measured: dict[Z, float], verified: bool, note: str) -> Verification:
        return Verification(result, state.predictor, verified, note, measured, state.lines,
                            state.tolerance, state.scale, self.latency,
                            RunState(tuple(state.states)), dict(state.measured))

    # --- helpers ----------------------------------------------------------------------------

    def _search(self, predictor: Predictor, budget_ms: float, number: int) -> SearchResult:
        name = self.settings.study_name
        if name and number > 1:
            name = f"{name}-verify-{number - 1}"
        return run_study(self.space, predictor, budget_ms,
                         settings=dataclasses.replace(self.settings, study_name=name))

    def _fallback(self, state: VerifyState) -> list[Candidate]:
        """In constraint mode, the best architecture predicted within FALLBACK under the
        round's budget, where the exact sampler solves the problem at once (else none)."""
        if self.settings.mode != "constraint":
            return []
        exact = dataclasses.replace(self.settings, sampler="exact", top=1, storage=None,
                                    study_name=None, workers=1, show_progress=False)
        try:
            return run_study(self.space, state.predictor, state.search_ms * (1 - FALLBACK),
                             settings=exact).best
        except HwnasError:  # not additive, a confidence or a params budget; nothing fits
            return []

    def _least(self, predictor: Predictor) -> Z:
        try:
            if self.space.sliced:  # ofa: per resolution
                z = self.space.min_z_tensor(*predictor.cost_tensor(self.space))[0]
            else:
                z = self.space.min_z(*predictor.cost_matrix(self.space))[0]
        except NotAdditiveError:
            raise BudgetError(self.budget_ms, float("nan"), exact=False) from None
        return tuple(int(v) for v in z)

    def _measured_over(self, state: VerifyState, least_unloaded_ms: float) -> BudgetError:
        """No architecture meets the budget: the least-latency one measured over it."""
        return _measured_over(self.budget_ms, least_unloaded_ms * state.factor(self.latency),
                              self.latency)

    def _fits(self, state: VerifyState) -> list[float]:
        """The measured latencies of the candidates reported in some round."""
        return [state.measured[z].latency_ms for z in state.pool if z in state.measured]



def verifier_backend(predictor: Predictor) -> tuple[Backend | None, str]:
    """The installed backend that measures on the predictor's device, or None and why not."""
    fp = predictor.fingerprint_
    target = getattr(predictor, "target", "latency_ms")
    if target != "latency_ms":
        return None, f"the predictor predicts {target}, not latency"
    if fp.backend not in BACKENDS:  # a table imported from another tool or device
        return None, f"the predictor is for {fp.describe()}, measured outside hwnas"
    if fp.backend not in DEVICE_BACKENDS:
        return None, f"the predictor is for {fp.describe()}, not a device of this machine"
    if fp.backend not in available_backends():
        return None, f"the predictor is for {fp.describe()}; {fp.backend} is not installed here"
    context = fp.device.split(":")[0]
    if ":" not in fp.device or context not in ("cpu", "cuda", "cudnn"):  # named by hand
        return None, f"the predictor is for device {fp.device!r}, not a device of this machine"
    here_cpu = f"cpu: {cpu_name()}"
    if fp.device.startswith("cpu: ") and fp.device != here_cpu:  # known without a runtime
        return None, f"the predictor is for {fp.describe()}; this machine's CPU is {here_cpu}"
    options = {"context": context, "batch": fp.batch}
    if fp.backend in ("onnxruntime", "torch"):
        options["threads"] = fp.threads
    if fp.backend == "onnxruntime":
        options["optimization"] = fp.backend_version.rpartition("opt=")[2]
    try:
        backend = get_backend(fp.backend, **options)
        here = backend.fingerprint()
    except (HwnasError, ValueError, ImportError) as e:
        return None, f"the predictor is for {fp.describe()}, which is not available here ({e})"
    if here != fp:
        return None, f"the predictor is for {fp.describe()}; this machine is {here.describe()}"
    return backend, ""


def calibrate(base: Predictor, networks: NetworkTable, space: SearchSpace,
              backend: Backend | None = None, budget_ms: float | None = None
              ) -> CalibratedPredictor:
    """true ~ a * base + b (``fit_line``: robust, within the backend's physical slopes): the
    slope over the calibration networks, which span the space, the offset where the budget
    is."""
    bounds = backend.calibration_slope if backend is not None else \
        CalibratedPredictor().slope_bounds
    return CalibratedPredictor(base, slope_bounds=bounds, focus_ms=budget_ms).fit_table(
        networks, space)


def _measured_over(budget_ms: float, least_ms: float, latency: str = "unloaded"
                   ) -> BudgetError:
    e = BudgetError(budget_ms, least_ms)
    meaning = "unloaded" if latency == "unloaded" else f"at the {latency} in its state now"
    e.args = (f"no architecture meets the budget of {budget_ms:g} ms: the least-latency one "
              f"measured {least_ms:.3f} ms on this device ({meaning})",)
    return e
