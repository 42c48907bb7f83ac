"""The main job as one call: ``find_architectures(budget_ms=5)``.

Where the predictions come from (``latency_source``): a shipped device, a saved predictor, a
layer table, or this machine, measured on first use and cached per device fingerprint under
$HWNAS_CACHE (default ~/.cache/hwnas), its layer sums calibrated on whole networks timed in
the same batches (``hwnas.profile.device_tables``, ``calibrate``). Then the search over z
(``run_study``) and, where the predictor's device is this machine, the verification of its
answers on the device (``Verifier``): the reported architectures are measured, and only
evidence beyond the measured noise spends another round. ``python -m hwnas.search`` parses
its options into these arguments, calls ``find_architectures`` and prints the outcome.

Example (a shipped device: offline, no measurement):
    >>> from hwnas.search import SearchSettings, find_architectures
    >>> outcome = find_architectures(15, space="fbnet", device="pixel3",
    ...                              settings=SearchSettings(seed=0, n_trials=20))
    >>> outcome.best[0].predicted_latency_ms <= 15, outcome.verified
    (True, False)
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any, Union

from hwnas._checks import positive
from hwnas._files import json_ready, safe_name, write_json
from hwnas.errors import InputError
from hwnas.predictors import (
    CalibratedPredictor,
    LookupPredictor,
    Predictor,
    load_predictor,
    uncalibrated,
)
from hwnas.search._fleet import LOCAL, fleet_budgets, is_predictor_file, split_budgets
from hwnas.search._study import OBJECTIVES, Candidate, SearchResult, SearchSettings, run_study
from hwnas.search._verify import Verification, Verifier, calibrate
from hwnas.spaces import SPACES, SearchSpace, load_space
from hwnas.tables import LayerTable, NetworkTable, format_z

if TYPE_CHECKING:
    from hwnas.profile import Backend, TimingProtocol

Z = tuple[int, ...]
#: where predictions come from: a fitted Predictor, a layer table (lookup of its latencies),
#: or the path of a saved predictor (from ``hwnas fit`` or ``Predictor.save``)
PredictorLike = Union[Predictor, LayerTable, str, "os.PathLike[str]"]


@dataclass(frozen=True)
class MeasureSettings:
    """How this machine is measured, where it is (the default flow and verification).

    Args:
        backend: a backend's name (``nnabla``, ``onnxruntime``, ``torch``, ``simulated``) or a
            configured ``Backend`` (``hwnas.profile.get_backend``); default: the first
            installed one.
        backend_options: the options of a backend given by name, or of the default one
            (``context``, ``device_id``, ``batch``; ``threads`` for onnxruntime and torch;
            ``optimization`` for onnxruntime); those another backend takes are ignored, any
            other is refused.
        protocol: the timing protocol of the tables and of verification.
        remeasure: discard this device's cached tables and measure them again.
        verify: measure the reported architectures on the device and recalibrate on a miss
            (where the predictor's device is this machine); False reports predictions only.
    """

    backend: str | Backend | None = None
    backend_options: Mapping[str, Any] = field(default_factory=dict)
    protocol: TimingProtocol | None = None
    remeasure: bool = False
    verify: bool = True

    def __post_init__(self) -> None:
        from hwnas.profile import Backend, TimingProtocol
        from hwnas.profile._backends import check_backend_options
        if self.backend is not None and not isinstance(self.backend, (str, Backend)):
            raise InputError(f"backend must be a backend's name or a Backend, got "
                             f"{self.backend!r:.60}")
        if not isinstance(self.backend_options, Mapping):
            raise InputError(f"backend_options must be a mapping, got "
                             f"{self.backend_options!r:.60}")
        check_backend_options(self.backend_options)
        if self.protocol is not None and not isinstance(self.protocol, TimingProtocol):
            raise InputError(f"protocol must be a TimingProtocol, got {self.protocol!r:.60}")
        for name in ("remeasure", "verify"):
            if not isinstance(getattr(self, name), bool):
                raise InputError(f"{name} must be True or False, got "
                                 f"{getattr(self, name)!r:.60}")

    def timing(self) -> TimingProtocol:
        from hwnas.profile import TimingProtocol
        return self.protocol if self.protocol is not None else TimingProtocol()


@dataclass(frozen=True)
class LatencySource:
    """Where the search's predictions come from: the predictor and its space, a description of
    where it was read from; for this machine's default flow also the backend that measured it
    and the calibration networks."""

    space: SearchSpace
    predictor: Predictor
    path: str
    backend: Backend | None = None
    networks: NetworkTable | None = None


def latency_source(space: str | os.PathLike[str] | SearchSpace | None = None, *,
                   device: str | None = None,
                   predictor: PredictorLike | None = None,
                   measure: MeasureSettings | None = None,
                   budget_ms: float | None = None, show_progress: bool = False
                   ) -> LatencySource:
    """The predictor a search runs on: a shipped ``device``'s, a ``predictor`` (or a saved
    one's path, or a layer table's), or this machine's, measured or read from the cache and
    calibrated (``hwnas.profile.device_tables``, ``calibrate``; its offset fitted near
    ``budget_ms``).

    ``space`` defaults to the space the predictor was fitted on where it records one, else
    ``mobilenet``.
    """
    measure = measure if measure is not None else MeasureSettings()
    if isinstance(space, os.PathLike):  # a space file: read as its name is
        space = os.fspath(space)
    if measure.remeasure and (device is not None or predictor is not None):
        raise InputError("remeasure (--remeasure) re-measures the cached tables of this "
                         "machine's default flow: give no device or predictor (--device, "
                         "--predictor, --table), or re-measure with hwnas profile")
    if device is not None:
        if predictor is not None:
            raise InputError("give a shipped device or a predictor (--device, --predictor), "
                             "not both")
        from hwnas.devices import device_predictor
        fitted = device_predictor(device, space)
        return LatencySource(load_space(fitted.space_), fitted,
                             f"hwnas.devices:{fitted.space_}/{device}")
    if predictor is not None:
        given = _space(space, None, None) if space is not None else None  # checked first
        fitted, path = _predictor(predictor)
        return LatencySource(given or _space(None, fitted, path), fitted, path)
    return _this_machine(_space(space, None, None), measure, budget_ms, show_progress)


def _predictor(given: PredictorLike) -> tuple[Predictor, str]:
    """A fitted predictor and where it came from: itself, a layer table, a saved predictor."""
    if isinstance(given, Predictor):
        return given, f"a {given.kind} predictor"
    if isinstance(given, LayerTable):
        return LookupPredictor().fit_table(given), given.path
    path = os.fspath(given)
    return load_predictor(path), path


def _space(space: str | SearchSpace | None, predictor: Predictor | None, path: str | None
           ) -> SearchSpace:
    """``space`` as given, else the built-in space the predictor was fitted on where it
    records one, else mobilenet."""
    if space is not None:
        return space if isinstance(space, SearchSpace) else load_space(space)
    name = getattr(predictor, "space_", None)
    if name is not None and name not in SPACES:
        raise InputError(f"{path} was fitted on networks of space {name!r}: give its space "
                         f"file as space (--space)")
    return load_space(name or "mobilenet")


def _this_machine(space: SearchSpace, measure: MeasureSettings, budget_ms: float | None,
                  show_progress: bool) -> LatencySource:
    """This machine's cached (or newly measured) layer table, calibrated on its networks."""
    from hwnas.profile import default_backend, device_tables, get_backend, layer_predictor
    from hwnas.profile._backends import backend_options
    backend = measure.backend if measure.backend is not None else default_backend()
    if isinstance(backend, str):
        backend = get_backend(backend, **backend_options(backend, measure.backend_options))
    layers, networks = device_tables(backend, space, protocol=measure.timing(),
                                     show_progress=show_progress, remeasure=measure.remeasure)
    calibrated = calibrate(layer_predictor(space, layers), networks, space, backend, budget_ms)
    return LatencySource(space, calibrated, layers.path, backend, networks)


@dataclass(frozen=True)
class SearchOutcome:
    """What ``find_architectures`` found: the search result and, where it ran, its
    verification on the device.

    Attributes:
        result: the last round's ``SearchResult`` (its candidates, trials, notes).
        predictor: the predictor of the last round (the recalibrated one after a miss).
        source: where the predictions came from (``LatencySource``).
        verification: the measured answers and the rounds, or None with ``verify=False``.
    """

    result: SearchResult
    predictor: Predictor
    source: LatencySource = field(repr=False)  # holds the whole space and its tables
    verification: Verification | None = None

    @property
    def space(self) -> SearchSpace:
        return self.source.space

    @property
    def best(self) -> list[Candidate]:
        """The reported architectures, best objective first (the front, fastest first, in
        pareto mode)."""
        return self.result.best

    @property
    def verified(self) -> bool:
        """Every reported architecture was measured on the device and judged right."""
        return self.verification is not None and self.verification.verified

    @property
    def measured_ms(self) -> dict[Z, float]:
        """The measured latency of each reported architecture (empty if none was measured)."""
        if self.verification is None:
            return {}
        return {c.z: self.verification.measured_ms[c.z] for c in self.best
                if c.z in self.verification.measured_ms}

    @property
    def calibration(self) -> tuple[float, float] | None:
        """The calibration line (a, b ms: true ~ a * sum + b), where the predictor has one."""
        if isinstance(self.predictor, CalibratedPredictor):
            return float(self.predictor.a_), float(self.predictor.b_)
        return None

    @property
    def rounds(self) -> list[str]:
        """Each verification round's line."""
        return [] if self.verification is None else list(self.verification.rounds)

    def report(self) -> str:
        """The text ``hwnas search`` prints: the result table and the verification."""
        text = report(self.result, self.predictor)
        if self.verification is None:
            return text
        return text + "\n" + self.verification.report()

    def as_json(self) -> dict:
        """The document ``--json`` writes (``write_json``)."""
        return as_json(self.result, self.predictor, self.source.path, self.verification)

    def write_json(self, path: str) -> None:
        """Write ``as_json()`` atomically: a reader never sees a half-written result; an
        unknown number (NaN) is null, as JSON has no NaN; secrets in strings are masked."""
        write_json(path, json_ready(self.as_json()))

    def plot(self, path: str) -> None:
        """Latency against objective: every trial, the budget and the reported ones (PNG)."""
        from hwnas.search._plot import plot_search
        plot_search(self.result, path)

    def export_onnx(self, folder: str) -> list[str]:
        """Each reported architecture as ``folder/<space>-<rank>-<z>.onnx``; the paths."""
        from hwnas.profile import export_onnx
        paths = []
        for rank, c in enumerate(self.best, 1):
            path = os.path.join(folder,  # the name from a space file, made safe
                                f"{safe_name(self.space.name)}-{rank}-{format_z(c.z)}.onnx")
            export_onnx(self.space.decode(c.z).graph, path,
                        batch=self.predictor.fingerprint_.batch)
            paths.append(path)
        return paths


def find_architectures(budget_ms: float | None = None, *,
                       space: str | os.PathLike[str] | SearchSpace | None = None,
                       device: str | None = None,
                       predictor: PredictorLike | None = None,
                       fleet: Mapping[str, float] | Sequence[str] | None = None,
                       settings: SearchSettings | None = None,
                       measure: MeasureSettings | None = None,
                       log: Callable[[str], None] | None = None) -> SearchOutcome:
    """The main job: the best architectures within the budget, verified where it can be.

    Args:
        budget_ms: the latency budget (ms, end to end) on the search's own predictor.
        space: a built-in space's name, a space file, or a SearchSpace (default: the
            predictor's space, else ``mobilenet``).
        device: a shipped device (``hwnas.devices``): search for it offline.
        predictor: a fitted Predictor, or the path of a saved predictor or a layer table.
            With neither ``device`` nor ``predictor``, this machine is measured (cached).
        fleet: other budgets, ``{name: limit}`` (or ``NAME=LIMIT`` strings): shipped
            devices, saved predictor files, or ``local`` (the search's own predictor, as
            ``budget_ms``); each limit in its predictor's unit. Without ``budget_ms`` or
            ``local``, the first is the search's own predictor and no machine is measured.
        settings: how to search (``SearchSettings``: objective, mode, sampler, trials, seed,
            memory budgets, storage); its ``fleet`` is set from ``fleet``.
        measure: how this machine is measured and whether the answers are verified
            (``MeasureSettings``).
        log: called with each verification round's line as it ends.

    Returns:
        A SearchOutcome. Raises BudgetError when no architecture meets the budget,
        SearchInterrupted on Ctrl-C, and an HwnasError naming the bad input.
    """
    _check_arguments(budget_ms, space, device, predictor, fleet, settings, measure, log)
    settings = settings if settings is not None else SearchSettings()
    measure = measure if measure is not None else MeasureSettings()
    own_ms, first, others = split_budgets(fleet or {}, budget_ms)
    if first is not None:  # the first fleet budget's predictor is the search's own
        if device is not None or predictor is not None:
            raise InputError(f"give budget_ms (--budget-ms) or a {LOCAL!r} fleet budget "
                             f"(--budget {LOCAL}=LIMIT) for the search's own predictor: the "
                             f"device or predictor given (--device, --predictor, --table)")
        device, predictor = (None, first) if is_predictor_file(first) else (first, None)
    source = latency_source(space, device=device, predictor=predictor, measure=measure,
                            budget_ms=own_ms, show_progress=settings.show_progress)
    settings = replace(settings, fleet=fleet_budgets(others, source.space))
    if not measure.verify:
        return SearchOutcome(run_study(source.space, source.predictor, own_ms,
                                       settings=settings), source.predictor, source)
    verification = Verifier(source.space, settings, own_ms, backend=source.backend,
                            calibration=source.networks, protocol=measure.timing(),
                            log=log or (lambda line: None)).run(source.predictor)
    return SearchOutcome(verification.result, verification.predictor, source, verification)


def _check_arguments(budget_ms, space, device, predictor, fleet, settings, measure, log
                     ) -> None:
    """find_architectures's arguments, each of its type: an InputError naming the argument,
    before anything is loaded or measured."""
    if budget_ms is not None:
        positive("budget_ms", budget_ms, noun="a latency in ms")
    kinds: list[tuple[str, Any, tuple, str]] = [
        ("space", space, (str, os.PathLike, SearchSpace), "a space name or file, or a "
         "SearchSpace"),
        ("device", device, (str,), "a shipped device's name (hwnas devices lists them)"),
        ("predictor", predictor, (Predictor, LayerTable, str, os.PathLike), "a Predictor, a "
         "LayerTable or a saved predictor's path"),
        ("fleet", fleet, (Mapping, list, tuple), "{name: limit} or NAME=LIMIT strings"),
        ("settings", settings, (SearchSettings,), "a SearchSettings"),
        ("measure", measure, (MeasureSettings,), "a MeasureSettings")]
    for name, value, types, what in kinds:
        if value is not None and not isinstance(value, types):
            raise InputError(f"{name} must be {what}, got {type(value).__name__} {value!r:.60}")
    if log is not None and not callable(log):
        raise InputError(f"log must be a callable taking a line, got {log!r:.60}")


def load_objective(text: str):
    """A built-in objective's name, or ``module:function`` (any f(architecture) -> float);
    raise InputError naming --objective if the module cannot be imported (a SyntaxError or
    any error in its code) or has no such callable."""
    if text in OBJECTIVES:
        return text
    module, _, function = text.partition(":")
    if not module or not function:
        raise InputError(f"--objective {text!r}: expected one of {sorted(OBJECTIVES)} or "
                         f"module:function")
    if os.getcwd() not in sys.path and "" not in sys.path:  # the hwnas console script: as
        sys.path.append(os.getcwd())                         # python -m, the working folder
    try:
        loaded = importlib.import_module(module)
    except SyntaxError as e:
        raise InputError(f"--objective {text!r}: cannot load it: {e.filename}, line "
                         f"{e.lineno}: syntax error: {e.msg}") from None
    except Exception as e:  # the module is the user's code: whatever it raises is theirs
        raise InputError(f"--objective {text!r}: cannot load it: importing {module!r} "
                         f"raised {type(e).__name__}: {e}") from None
    objective = getattr(loaded, function, None)
    if not callable(objective):
        raise InputError(f"--objective {text!r}: module {module!r} has no callable "
                         f"{function!r}")
    return objective


def describe(predictor: Predictor) -> str:
    """The predictor's kind, and its calibration line where it has one."""
    text = f"{predictor.kind} predictor"
    if isinstance(predictor, CalibratedPredictor):
        text += (f" (a = {predictor.a_:.3f} x {uncalibrated(predictor).kind} + b = "
                 f"{predictor.b_:.3f} ms: {predictor.how_})")
    return text


def report(result: SearchResult, predictor: Predictor) -> str:
    """The result as the table ``hwnas search`` prints."""
    least = "unknown (not additive)" if result.min_latency_ms is None else \
        f"{result.min_latency_ms:.3f} ms"
    lines = [f"space {result.space}, budget {result.budget_ms:g} ms, "
             f"{predictor.fingerprint_.describe()}",
             f"{describe(predictor)}; {result.mode} mode, {result.sampler} sampler; "
             f"{result.trials} trials, {result.feasible_trials} feasible; least reachable "
             f"latency {least}; objective: {result.objective}",
             *result.notes,
             "" if result.mode != "pareto" else "Pareto front, fastest first:",
             f"{'rank':>4}  {'predicted_ms':>12}  {'objective':>12}  {'MMACs':>8}  "
             f"{'params_k':>8}  {'param_KiB':>9}  {'act_KiB':>8}  z / notation"]
    for i, c in enumerate(result.best, 1):
        lines += _candidate_lines(i, c)
    return "\n".join(lines)


def _candidate_lines(rank: int, c: Candidate) -> list[str]:
    lines = [f"{rank:>4}  {c.predicted_latency_ms:>12.3f}  {c.objective:>12.6g}  "
             f"{c.macs / 1e6:>8.2f}  {c.params / 1e3:>8.1f}  "
             f"{c.param_bytes / 1024:>9.1f}  {c.peak_activation_bytes / 1024:>8.1f}  "
             f"{format_z(c.z)}"]
    upper = "" if c.latency_upper_ms is None else \
        f"   (upper quantile {c.latency_upper_ms:.3f} ms)"
    lines.append(f"{'':>4}  {c.notation}{upper}")
    if c.budgets:
        lines.append(f"{'':>4}  budgets: " + ", ".join(
            f"{name} {value:.3f} / {limit:g} {unit}" for name, value, limit, unit in c.budgets))
    return lines



def as_json(result: SearchResult, predictor: Predictor, source: str,
            verification: Verification | None = None) -> dict:
    """The result, the predictor's device and the verification as a JSON document."""
    fingerprint = predictor.fingerprint_
    doc: dict[str, Any] = {
        "budget_ms": result.budget_ms, "space": result.space,
        "backend": fingerprint.backend, "device": asdict(fingerprint),
        "predictor": describe(predictor), "source": source, "objective": result.objective,
        "mode": result.mode, "sampler": result.sampler, "trials": result.trials,
        "feasible_trials": result.feasible_trials, "min_latency_ms": result.min_latency_ms,
        "notes": list(result.notes), "best": [c.as_dict() for c in result.best]}
    if verification is None:
        doc.update(verified=False, verification={"note": "not verified: --no-verify"})
        return doc
    doc.update(verification.as_dict())
    for entry in doc["best"]:
        entry.update(verification.measured(tuple(entry["z"])))
    return doc


__all__ = ["LatencySource", "MeasureSettings", "SearchOutcome", "find_architectures",
           "latency_source", "load_objective"]
