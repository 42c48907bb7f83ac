"""An Optuna study over z with predicted latency as a constraint, a penalty or an objective.

``search`` is composed of named parts: the objective (``resolve_objective``), the latency
model and budgets (``_feasible``), the study and its storage (``open_study``), the workers
(``run_trials``), and the ranking of the result (``rank``).
"""

from __future__ import annotations

import hashlib
import json
import math
import multiprocessing
import os
import signal
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import optuna

from hwnas._checks import count, finite, fraction, is_integer, positive
from hwnas._cli import MAX_TRIALS, MAX_WORKERS
from hwnas._files import mask_secrets
from hwnas._progress import Progress
from hwnas.errors import HwnasError, InputError
from hwnas.profile._latency import DEFAULT_LATENCY, LATENCIES
from hwnas.search._feasible import Budgets, FeasibleSampler, LatencyModel, layer_matrix, suggest_z
from hwnas.search._fleet import DeviceBudget, fleet_note, fleet_optimum
from hwnas.spaces._exact import MAX_ENUMERATED, every_z, knapsack, pareto_mask

if TYPE_CHECKING:
    from hwnas.predictors import Predictor
    from hwnas.spaces import Architecture, SearchSpace

Objective = Callable[["Architecture"], float]

#: built-in analytic proxies of quality (maximised): the largest network that fits the budget
OBJECTIVES: dict[str, Objective] = {
    "macs": lambda arch: float(arch.macs),
    "params": lambda arch: float(arch.params),
}

MODES = ("constraint", "penalty", "pareto")
SAMPLERS = ("tpe", "nsga2", "random", "exact")

# Optuna 5 records constraints per trial; older versions take a sampler constraints_func.
_NATIVE_CONSTRAINTS = hasattr(optuna.trial.Trial, "set_constraint")
#: settings a resumed study must share with its earlier trials (values are not comparable
#: otherwise); the others (budget, predictor, memory budgets, confidence) are re-evaluated
_FIXED_SETTINGS = ("space_signature", "objective", "mode")


class BudgetError(InputError):
    """No architecture of the space meets the budget."""

    def __init__(self, budget_ms: float, min_latency_ms: float, exact: bool = True):
        self.budget_ms, self.min_latency_ms = budget_ms, min_latency_ms
        what = "this space can reach" if exact else "the search found (the predictor is " \
                                                    "not additive, so the least is not known)"
        super().__init__(f"no architecture meets the budget of {budget_ms:g} ms: the smallest "
                         f"predicted latency {what} is {min_latency_ms:.3f} ms")


class SearchInterrupted(KeyboardInterrupt):
    """The search was interrupted (Ctrl-C); the message says what was kept."""


class WorkerDied(HwnasError):
    """A search worker process was killed by a signal (the out-of-memory killer, a user's
    kill): not a bug in hwnas; the message names the worker and the signal."""


@dataclass(frozen=True)
class Candidate:
    """One searched architecture with its predicted latency and objective."""

    z: tuple[int, ...]
    choices: tuple[str, ...]
    predicted_latency_ms: float
    objective: float
    macs: int
    params: int
    param_bytes: int
    peak_activation_bytes: int
    notation: str
    latency_upper_ms: float | None = None  # the constrained quantile, with --confidence
    #: each fleet budget's (name, predicted value, limit, unit), with SearchSettings.fleet
    budgets: tuple[tuple[str, float, float, str], ...] = ()

    def as_dict(self) -> dict:
        return {"z": list(self.z), "choices": list(self.choices), "notation": self.notation,
                "predicted_latency_ms": self.predicted_latency_ms,
                "latency_upper_ms": self.latency_upper_ms, "objective": self.objective,
                "macs": self.macs, "params": self.params, "param_bytes": self.param_bytes,
                "peak_activation_bytes": self.peak_activation_bytes,
                "budgets": [{"name": n, "predicted": v, "limit": lim, "unit": u}
                            for n, v, lim, u in self.budgets]}


@dataclass(frozen=True)
class SearchResult:
    space: str
    budget_ms: float
    objective: str
    mode: str
    sampler: str
    trials: int
    feasible_trials: int
    min_latency_ms: float | None  # None where the predictor is not additive
    best: list[Candidate]  # best first; in pareto mode the front, fastest first
    study: optuna.Study | None  # None for the exact sampler
    notes: tuple[str, ...] = ()  # what the user should know: a resumed setting, misses


def open_storage(spec: str | None):
    """An Optuna storage URL as it is, or a ``.journal`` file as a JournalStorage."""
    if spec is None or not spec.endswith(".journal"):
        return spec
    from optuna.storages import JournalStorage
    try:
        from optuna.storages.journal import JournalFileBackend
    except ImportError:  # Optuna < 4
        from optuna.storages import JournalFileStorage as JournalFileBackend
    return JournalStorage(JournalFileBackend(spec))


@dataclass(frozen=True)
class SearchSettings:
    """How to search, besides what (space, predictor) and the budget: checked on creation.

    Args:
        objective: ``macs``, ``params`` or any callable f(architecture) -> float (maximised);
            an objective that raises or returns NaN/inf fails its trial and the search goes on.
        mode: ``constraint`` (latency <= budget), ``penalty`` (objective x (latency /
            budget)^penalty_weight, as MnasNet) or ``pareto`` (objective up, latency down).
        sampler: ``tpe``, ``nsga2``, ``random``, an Optuna sampler of your own, or ``exact``
            (the optimum by dynamic programming: additive predictor, built-in objective,
            constraint mode).
        n_trials, seed: Optuna trials (shared by the workers) and the random seed. 100 by
            default: with ``enqueue_exact`` the study starts from the optimum, which more
            trials seldom improve on (the TPE sampler costs 5-10 ms a trial, growing with
            the trials); an objective of your own (accuracy) wants as many as you can pay.
        top: how many distinct architectures to report, best objective first, for every
            sampler (in pareto mode the result is the whole feasible front, fastest first).
        feasible: wrap the sampler in ``FeasibleSampler``, so that every trial meets the
            budgets (exactly where latency is additive); False leaves infeasible proposals to
            Optuna's constraint handling.
        enqueue_exact: where latency and objective are additive (built-in objective), enqueue
            the exact Pareto front's best points first (the study then starts from the
            optimum); the least-latency z is always enqueued.
        max_params, max_param_bytes, max_activation_bytes: memory budgets, in every mode.
        fleet: budgets on other predictors (``DeviceBudget``: a shipped device, a fitted
            predictor file), each with its limit in its own unit; every trial is evaluated on
            each, the feasible sampler and the exact sampler keep within all of them, and
            Pareto mode trades the objective against the worst value / limit.
        confidence: constrain the predictor's q-quantile (tree, tree_z) instead of its mean.
        penalty_weight: the exponent of penalty mode.
        storage, study_name, workers: an Optuna storage URL or ``.journal`` path; a named
            study resumes (another budget, predictor or memory budget re-evaluates its earlier
            trials; another space, objective or mode is refused); ``workers`` processes share
            ``n_trials`` (more than one needs a storage).
        show_progress: a progress bar on stderr.
        latency: what the budget means where verification measures the answers on this
            machine (``hwnas.profile._latency``): ``median`` (the default) or ``p90`` of the
            runs in the machine's current state, or ``unloaded`` (its fastest state: the most
            repeatable, as a dedicated device runs). The study itself searches the
            predictor's (unloaded) latency at the budget the verification gives it.

    Example:
        >>> SearchSettings(sampler="random", n_trials=100, seed=0).n_trials
        100
        >>> SearchSettings(workers=0)
        Traceback (most recent call last):
        ...
        hwnas.errors.InputError: workers must be an integer >= 1 (at most 256), got 0
    """

    objective: str | Objective = "macs"
    mode: str = "constraint"
    sampler: str | optuna.samplers.BaseSampler = "tpe"
    n_trials: int = 100
    seed: int | None = None
    top: int = 5
    feasible: bool = True
    enqueue_exact: bool = True
    max_params: int | None = None
    max_param_bytes: int | None = None
    max_activation_bytes: int | None = None
    fleet: tuple[DeviceBudget, ...] = ()
    confidence: float | None = None
    penalty_weight: float = -0.07
    storage: str | None = None
    study_name: str | None = None
    workers: int = 1
    show_progress: bool = False
    latency: str = DEFAULT_LATENCY

    def __post_init__(self) -> None:
        self._check_choices()
        self._check_numbers()
        self._check_study()

    def _check_choices(self) -> None:
        """objective, mode, sampler and fleet: a known name or an object of the right kind."""
        if isinstance(self.objective, str) and self.objective not in OBJECTIVES:
            raise InputError(f"unknown objective {self.objective!r}: expected one of "
                             f"{sorted(OBJECTIVES)} or a callable")
        if not isinstance(self.objective, str) and not callable(self.objective):
            raise InputError(f"objective must be a name or a callable, got {self.objective!r}")
        if self.mode not in MODES:
            raise InputError(f"unknown mode {self.mode!r}: expected one of {MODES}")
        if isinstance(self.sampler, str) and self.sampler not in SAMPLERS:
            raise InputError(f"unknown sampler {self.sampler!r}: expected one of {SAMPLERS} "
                             f"or an optuna sampler")
        if not isinstance(self.sampler, (str, optuna.samplers.BaseSampler)):
            raise InputError(f"sampler must be a name or an optuna sampler, got "
                             f"{self.sampler!r}")
        if not all(isinstance(b, DeviceBudget) for b in self.fleet):
            raise InputError(f"fleet must be DeviceBudget entries, got {self.fleet!r}")
        if self.latency not in LATENCIES:
            raise InputError(f"unknown latency {self.latency!r}: expected one of {LATENCIES}")

    def _check_numbers(self) -> None:
        count("n_trials", self.n_trials, most=MAX_TRIALS)
        count("top", self.top)
        count("workers", self.workers, most=MAX_WORKERS)
        if self.seed is not None and not (is_integer(self.seed) and 0 <= self.seed < 2**32):
            raise InputError(f"seed must be an integer from 0 to 2**32 - 1, got {self.seed!r}")
        for what in ("max_params", "max_param_bytes", "max_activation_bytes"):
            if getattr(self, what) is not None:
                positive(what, getattr(self, what))
        if self.confidence is not None:
            fraction("confidence", self.confidence)
        finite("penalty_weight", self.penalty_weight)

    def _check_study(self) -> None:
        """storage, study_name and workers: what can share or keep a study."""
        for what in ("storage", "study_name"):
            if getattr(self, what) is not None and not isinstance(getattr(self, what), str):
                raise InputError(f"{what} must be a string, got {getattr(self, what)!r}")
        if self.workers > 1 and self.storage is None:
            raise InputError("workers > 1 need a shared storage (a URL or a .journal file)")
        if self.storage is not None and "://" not in self.storage and \
                not self.storage.endswith(".journal"):  # known now, not after the search
            raise InputError(f"storage {self.storage!r}: expected a database URL "
                             f"(sqlite:///study.db, postgresql://user@host/db) or a .journal "
                             f"file")
        if self.sampler == "exact":  # it solves in this process, keeping no study
            given = [what for what, bad in (("workers > 1 (--workers)", self.workers > 1),
                                            ("a study_name (--study-name)", self.study_name),
                                            ("a storage (--storage)", self.storage))
                     if bad]
            if given:
                raise InputError(f"the exact sampler solves the search at once in one "
                                 f"process and keeps no study: it takes no {given[0]}")


def search(space: SearchSpace, predictor: Predictor, budget_ms: float,
           objective: str | Objective | None = None, *, settings: SearchSettings | None = None,
           **options: Any) -> SearchResult:
    """Search z for the best objective (maximised) under a latency budget.

    Args:
        space, predictor, budget_ms: what to search, how latency is predicted (no device is
            touched), and the budget on the predicted latency (ms).
        objective, options: the fields of ``SearchSettings`` (objective ``macs`` by default);
            or ``settings``, a SearchSettings, instead of them.

    Returns:
        A SearchResult; BudgetError if no architecture meets the budget.

    Example (a fitted ``predictor`` as in the README)::

        result = search(get_space("mobilenet"), predictor, 5.0, n_trials=200, seed=0)
        print(result.best[0].z, result.best[0].predicted_latency_ms)
    """
    problem = SearchProblem.build(space, predictor, budget_ms,
                                  _settings(objective, settings, options))
    settings = problem.settings
    if settings.sampler == "exact":
        return _exact_result(problem)
    study_name = settings.study_name
    if settings.workers > 1 and study_name is None:
        study_name = f"hwnas-{uuid.uuid4().hex[:8]}"
    study, notes = open_study(_setting(problem), storage=settings.storage,
                              study_name=study_name, directions=problem.directions,
                              sampler=problem.sampler(0))
    _enqueue_start(study, problem)
    # every trial of an exact feasible sampler fits: Optuna need not weigh constraints
    guaranteed = isinstance(study.sampler, FeasibleSampler) and _NATIVE_CONSTRAINTS \
        and study.sampler.feasibility.check is None
    evaluate = _trial_function(problem, record_constraints=not guaranteed)
    misses = run_trials(study, settings, problem.sampler, evaluate)
    if settings.fleet:
        notes.append(fleet_note(settings.fleet))
    if misses:
        notes.append(f"the feasible sampler's bounded rejection (latency or memory is not "
                     f"additive here) found no feasible z near {misses} proposal(s) of this "
                     f"process: those trials are infeasible")
    return rank(study, problem, tuple(notes))


def _settings(objective: str | Objective | None, settings: SearchSettings | None,
              options: dict[str, Any]) -> SearchSettings:
    """search()'s settings: ``settings`` as given, or built from the objective and options."""
    if settings is not None:
        if objective is not None or options:
            raise InputError("search: give either settings= or the options as keywords, "
                             "not both")
        return settings
    if objective is not None:
        options["objective"] = objective
    try:
        return SearchSettings(**options)
    except TypeError as e:  # an unknown keyword
        raise InputError(f"search: {e}".replace("__init__()", "SearchSettings")) from None


@dataclass(frozen=True)
class ResolvedObjective:
    """The objective: its name, its function, and (fixed, V) where it is additive."""

    name: str
    call: Objective
    matrix: tuple[float, np.ndarray] | None


def resolve_objective(space: SearchSpace, objective: str | Objective) -> ResolvedObjective:
    """The objective's function, and its cost matrix where it is built in and additive."""
    if isinstance(objective, str):
        matrix = layer_matrix(space, lambda ly: getattr(ly, objective)) if space.additive \
            else None
        return ResolvedObjective(objective, OBJECTIVES[objective], matrix)
    return ResolvedObjective(getattr(objective, "__name__", "custom"), objective, None)


def enumerated_least(model: LatencyModel) -> float | None:
    """The least predicted latency of a space whose latency is not additive but whose every z
    can be evaluated (at most MAX_ENUMERATED: a measured table of all 15,625 nb201 cells, a
    device that drops cells); None where the space is larger or the predictor cannot price
    every z (a table that lacks some)."""
    if model.space.size > MAX_ENUMERATED:
        return None
    try:
        latency = model.mean(every_z(model.space.n_choices))
    except HwnasError:
        return None
    return float(np.min(latency)) if np.isfinite(latency).all() else None


@dataclass(frozen=True)
class SearchProblem:
    """What one search solves, resolved once: the budgets (with the latency model, and so
    the space), the objective, the latency budget and the settings. ``budget_ms`` is the
    one latency budget: ``budgets`` bounds it, except in penalty mode, where it is the
    reference of the penalty instead.

    Example (a fitted ``predictor`` as in the README)::

        problem = SearchProblem.build(space, predictor, 5.0, SearchSettings(seed=0))
        problem.min_latency_ms  # the least latency of the space, where additive
    """

    budgets: Budgets
    goal: ResolvedObjective
    budget_ms: float
    settings: SearchSettings
    #: the least predicted latency of the space; None where latency is not additive
    min_latency_ms: float | None

    @classmethod
    def build(cls, space: SearchSpace, predictor: Predictor, budget_ms: float,
              settings: SearchSettings) -> SearchProblem:
        """The problem of searching ``space`` under ``budget_ms`` (checked) on the
        predictor's latency; BudgetError where no z of the space meets the budget."""
        positive("budget_ms", budget_ms)
        goal = resolve_objective(space, settings.objective)
        model = LatencyModel(space, predictor, settings.confidence)
        budgets = Budgets(model, None if settings.mode == "penalty" else budget_ms,
                          max_params=settings.max_params,
                          max_param_bytes=settings.max_param_bytes,
                          max_activation_bytes=settings.max_activation_bytes,
                          devices=settings.fleet)
        least = model.least()
        least_ms = enumerated_least(model) if least is None else least[1]
        if least_ms is not None and least_ms > budget_ms and settings.mode != "penalty":
            raise BudgetError(budget_ms, least_ms)
        return cls(budgets, goal, budget_ms, settings, least_ms)

    @property
    def model(self) -> LatencyModel:
        return self.budgets.model

    @property
    def space(self) -> SearchSpace:
        return self.budgets.model.space

    @property
    def mode(self) -> str:
        return self.settings.mode

    @property
    def directions(self) -> list[str]:
        """The study's: the objective up, and in pareto mode latency (or the worst budget
        ratio) down."""
        return ["maximize", "minimize"] if self.mode == "pareto" else ["maximize"]

    def penalised(self, value: Any, latency_ms: Any) -> Any:
        """Penalty mode's score: value x (latency / budget)^penalty_weight (as MnasNet)."""
        return value * (latency_ms / self.budget_ms) ** self.settings.penalty_weight

    def sampler(self, worker: int) -> optuna.samplers.BaseSampler:
        """The sampler of one worker (its seed is the settings' seed + worker), wrapped in
        a FeasibleSampler unless ``feasible`` is False."""
        seed = None if self.settings.seed is None else self.settings.seed + worker
        base = _base_sampler(self.settings.sampler, seed)
        return FeasibleSampler(self.budgets, base, seed=seed) if self.settings.feasible \
            else base


def _base_sampler(sampler: str | optuna.samplers.BaseSampler, seed: int | None
                  ) -> optuna.samplers.BaseSampler:
    if not isinstance(sampler, str):
        return sampler
    native: dict[str, Any] = {} if _NATIVE_CONSTRAINTS else {
        "constraints_func": _stored_constraints}
    if sampler == "tpe":
        return optuna.samplers.TPESampler(seed=seed, **native)
    if sampler == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, **native)
    return optuna.samplers.RandomSampler(seed=seed)


def _stored_constraints(trial: optuna.trial.FrozenTrial) -> list[float]:
    return trial.user_attrs["constraints"]


def _sampler_name(settings: SearchSettings) -> str:
    sampler = settings.sampler
    name = sampler if isinstance(sampler, str) else type(sampler).__name__
    return f"feasible {name}" if settings.feasible else name


def _setting(problem: SearchProblem) -> dict[str, Any]:
    """What a study's trials depend on, stored in its user attrs to check a resume."""
    space, predictor, settings = problem.space, problem.model.predictor, problem.settings
    digest = hashlib.sha1(json.dumps(predictor.to_dict(), sort_keys=True).encode())
    setting = {"space": space.name, "space_signature": space.signature,
               "objective": problem.goal.name, "mode": settings.mode,
               "budget_ms": problem.budget_ms, "predictor": predictor.kind,
               "predictor_digest": digest.hexdigest()[:12],
               "device": predictor.fingerprint_.describe(), "confidence": settings.confidence,
               **{f"max_{k}": v for k, v in problem.budgets.limits.items()}}
    if settings.fleet:
        setting["fleet"] = [[b.name, b.limit] for b in settings.fleet]
    if settings.mode == "penalty":  # stored values depend on them
        setting["penalty_weight"] = settings.penalty_weight
    return setting


def _masked(url: str | None) -> str | None:
    """A storage URL without its password (``user:***@``, ``?password=***``), for messages:
    see ``mask_secrets``."""
    return None if url is None else mask_secrets(url)


def open_study(setting: dict[str, Any], *, storage: str | None, study_name: str | None,
               directions: list[Any], sampler: optuna.samplers.BaseSampler
               ) -> tuple[optuna.Study, list[str]]:
    """Create or resume the study; refuse a resume whose trials cannot be compared, and note
    a changed setting (its earlier trials are then re-evaluated for the new one)."""
    try:
        study = optuna.create_study(directions=directions, sampler=sampler,
                                    storage=open_storage(storage), study_name=study_name,
                                    load_if_exists=study_name is not None)
        old = study.user_attrs.get("setting")
        has_trials = bool(study.get_trials(deepcopy=False))
    except (HwnasError, KeyboardInterrupt):
        raise
    except Exception as e:  # the storage's own errors: a bad URL, a server, a folder
        reason = mask_secrets(str(e).splitlines()[0]) if str(e) else type(e).__name__
        raise InputError(f"storage {_masked(storage)!r}: cannot open the study: {reason}") \
            from None
    notes = []
    if old is not None and has_trials:
        fixed = [k for k in _FIXED_SETTINGS + ("penalty_weight",)
                 if old.get(k) != setting.get(k)]
        if setting["mode"] == "penalty" and old.get("budget_ms") != setting["budget_ms"]:
            fixed.append("budget_ms")
        if fixed:
            k = fixed[0]
            raise InputError(f"study {study.study_name!r} in {_masked(storage)} was run "
                             f"with {k} = {old.get(k)!r}, not {setting.get(k)!r}: its trials "
                             f"cannot be compared; give another --study-name (or the same {k})")
        changed = [f"{k} {old.get(k)!r} -> {v!r}" for k, v in setting.items()
                   if old.get(k) != v]
        if changed:
            notes.append(f"resumed study {study.study_name!r} with another setting "
                         f"({'; '.join(changed)}): its earlier trials were re-evaluated for "
                         f"this one")
    study.set_user_attr("setting", setting)
    for key in ("space", "objective", "mode", "budget_ms", "predictor", "device"):
        study.set_user_attr(key, setting[key])
    return study, notes


def _enqueue_start(study: optuna.Study, problem: SearchProblem) -> None:
    """Enqueue the starting points of ``_start_points``."""
    names = [d.name for d in problem.space.decisions]
    for z in _start_points(problem):
        study.enqueue_trial(dict(zip(names, z)), skip_if_exists=True)


def _start_points(problem: SearchProblem) -> list[tuple[int, ...]]:
    """Where the study starts: with a fleet in constraint mode its exact optimum; where
    latency is additive the least-latency z (a feasible start) and, where the objective is
    too (and ``enqueue_exact``), the best points of the exact front."""
    budgets, settings, goal = problem.budgets, problem.settings, problem.goal
    exact = settings.enqueue_exact and goal.matrix is not None
    points: list[tuple[int, ...]] = []
    if budgets.devices and exact and goal.matrix is not None and problem.mode == "constraint":
        try:
            points += fleet_optimum(budgets, goal.matrix, settings.top)
        except InputError:  # a large space with a budget that is not additive: no optimum
            pass
    if not problem.model.additive:
        return points
    allowed = budgets.feasibility().allowed
    least = problem.model.least(allowed)
    assert least is not None
    starts = [tuple(int(c) for c in least[0])]
    if exact and not [n for n in budgets.memory if n != "peak_activation_bytes"]:
        starts += _front_points(problem, allowed)
    # the latency budget is met by construction; a fleet's need not be
    return points + [z for z in starts
                     if not budgets.devices or budgets.fits(np.array([z]))[0]]


def _front_points(problem: SearchProblem, allowed: np.ndarray) -> list[tuple[int, ...]]:
    """The exact front's best points within the latency budget: in pareto mode spread over
    the front, else the best by the mode's score."""
    model, settings = problem.model, problem.settings
    assert problem.goal.matrix is not None and model.C is not None and model.fixed is not None
    fixed_v, V = problem.goal.matrix
    limit = math.inf if problem.budgets.latency_ms is None else problem.budgets.latency_ms
    found = knapsack(fixed_cost=model.fixed, cost=np.where(allowed, model.C, np.nan),
                     fixed_value=fixed_v, value=V, budget=limit)
    if problem.mode == "pareto":
        n = max(settings.top, settings.n_trials // 10)
        return [z for _, _, z in found[::max(1, len(found) // n)][:n]]
    score = [problem.penalised(v, c) if problem.mode == "penalty" else v for c, v, _ in found]
    return [found[i][2] for i in np.argsort(score, kind="stable")[::-1][:settings.top]]


class _ObjectiveFailed(Exception):
    """The user's objective raised or returned a value that is not finite."""


def _trial_function(problem: SearchProblem, *, record_constraints: bool
                    ) -> Callable[[optuna.Trial], Any]:
    """One trial: z, its latency and budgets (errors here are bugs and propagate), then the
    objective (its errors fail the trial)."""
    space, budgets, mode = problem.space, problem.budgets, problem.mode

    def evaluate(trial: optuna.Trial):
        Z = np.array([suggest_z(trial, space)], dtype=np.int64)
        latency_ms, upper = _record_predictions(trial, budgets, Z)
        if record_constraints:
            _record_constraints(trial, problem, Z, latency_ms, upper)
        value = _objective_value(problem.goal, space, Z[0])
        trial.set_user_attr("objective", value)
        if mode == "penalty":
            return problem.penalised(value, latency_ms) if math.isfinite(latency_ms) \
                else -math.inf
        if mode == "pareto" and budgets.devices:
            return value, float(budgets.worst_ratio(Z, np.array([latency_ms]))[0])
        return (value, latency_ms) if mode == "pareto" else value

    return evaluate


def _record_predictions(trial: optuna.Trial, budgets: Budgets, Z: np.ndarray
                        ) -> tuple[float, np.ndarray | None]:
    """Record the trial's predicted latency, upper quantile and each fleet budget's value;
    return the latency and the upper quantile (None without a confidence)."""
    latency_ms = float(budgets.model.mean(Z)[0])
    upper = budgets.model.upper(Z)
    trial.set_user_attr("predicted_latency_ms", latency_ms)
    for name, predicted in budgets.predictions(Z).items():  # every fleet budget
        trial.set_user_attr(f"predicted {name}", float(predicted[0]))
    if upper is not None:
        trial.set_user_attr("latency_upper_ms", float(upper[0]))
    return latency_ms, upper


def _record_constraints(trial: optuna.Trial, problem: SearchProblem, Z: np.ndarray,
                        latency_ms: float, upper: np.ndarray | None) -> None:
    """Record each budget's violation (<= 0 fits) for Optuna's constraint handling."""
    limits = {k: float(v[0]) for k, v in problem.budgets.violations(
        Z, np.array([latency_ms]) if upper is None else upper).items()}
    if problem.mode == "penalty" and math.isnan(latency_ms):
        limits["latency_known"] = math.inf
    if _NATIVE_CONSTRAINTS:
        for key, v in limits.items():
            trial.set_constraint(key, v)
    else:
        trial.set_user_attr("constraints", list(limits.values()))


def _objective_value(goal: ResolvedObjective, space: SearchSpace, z: np.ndarray) -> float:
    """The objective of z: from its matrix where additive, else by calling it on the
    decoded architecture (_ObjectiveFailed where it raises or is not finite)."""
    if goal.matrix is not None:
        return float(goal.matrix[0] + goal.matrix[1][np.arange(len(z)), z].sum())
    arch = space.decode(z.tolist())
    try:
        value = float(goal.call(arch))
    except (Exception, SystemExit) as e:  # sys.exit() in it fails the trial too
        raise _ObjectiveFailed(f"raised {type(e).__name__}: {e}") from e
    if not math.isfinite(value):
        raise _ObjectiveFailed(f"returned {value}")
    return value


def _optimize(study: optuna.Study, n_trials: int, evaluate, bar: Progress | None) -> None:
    """Optimise with a failed objective failing its trial (its error is stored in the trial;
    Optuna's per-trial warning with a traceback is silenced); anything else fails the trial
    and propagates."""

    def objective(trial: optuna.Trial):
        try:
            return evaluate(trial)
        except _ObjectiveFailed as e:
            trial.set_user_attr("error", str(e))
            raise
        finally:
            if bar is not None:
                bar.update()

    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        study.optimize(objective, n_trials=n_trials, catch=(_ObjectiveFailed,))
    finally:
        optuna.logging.set_verbosity(verbosity)


def run_trials(study: optuna.Study, settings: SearchSettings,
               make_sampler: Callable[[int], optuna.samplers.BaseSampler], evaluate) -> int:
    """Run ``n_trials`` on ``workers`` processes sharing the study; return the feasible
    sampler's misses in this process.

    The workers are forked children that die with this process (even killed with SIGKILL)
    and are stopped and reaped whatever happens here: Ctrl-C stops them within seconds
    (SearchInterrupted says what the study kept); a worker killed by a signal is WorkerDied.
    """
    storage, n_trials, workers = settings.storage, settings.n_trials, settings.workers
    shares = [n_trials // workers + (i < n_trials % workers) for i in range(workers)]
    parent = os.getpid()

    def work(worker: int) -> None:  # in a forked process: its own connection to the storage
        _die_with_parent(parent)
        optuna.logging.set_verbosity(optuna.logging.ERROR)
        mine = optuna.load_study(study_name=study.study_name, storage=open_storage(storage),
                                 sampler=make_sampler(worker))
        try:
            _optimize(mine, shares[worker], evaluate, None)
        except KeyboardInterrupt:
            pass

    context = multiprocessing.get_context("fork")
    others = [context.Process(target=work, args=(i,), name=f"hwnas search worker {i}")
              for i in range(1, workers)]
    try:
        for process in others:
            process.start()
        bar = Progress(shares[0], "searching", settings.show_progress)
        try:
            _optimize(study, shares[0], evaluate, bar)
        finally:
            bar.close()
        for process in others:
            process.join()
    except (KeyboardInterrupt, Exception) as e:
        if not _from_ctrl_c(e):
            raise
        _stop(others)
        raise _interrupted(study, storage) from None
    finally:
        _stop(others)
    _check_exits(others, storage)
    sampler = study.sampler
    return sampler.misses if isinstance(sampler, FeasibleSampler) else 0


def _from_ctrl_c(error: BaseException) -> bool:
    """Whether an error is Ctrl-C, or raised while Ctrl-C was handled: a journal storage's
    lock release, cut short by it, then fails with a FileNotFoundError of its own."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, KeyboardInterrupt):
            return True
        seen = seen.__context__
    return False


def _interrupted(study: optuna.Study, storage: str | None) -> SearchInterrupted:
    """What Ctrl-C leaves: the trials run and where the study is kept, if anywhere."""
    kept = "nothing was kept (the study was in memory; give --study-name or --storage " \
           "to keep one)" if storage is None else \
        f"study {study.study_name!r} is kept in {_masked(storage)}: run the same command " \
        f"with --study-name {study.study_name} to resume it"
    try:  # Ctrl-C may have cut the storage's own lock handling short
        done = f" after {len(study.get_trials(deepcopy=False))} trials"
    except Exception:
        done = ""
    return SearchInterrupted(f"interrupted{done}; {kept}")


def _check_exits(workers: list, storage: str | None) -> None:
    """WorkerDied for a worker killed by a signal, RuntimeError for one that failed."""
    for i, process in enumerate(workers, 1):
        code = process.exitcode
        if code is not None and code < 0:
            name = signal.Signals(-code).name if -code in signal.valid_signals() else "?"
            raise WorkerDied(f"search worker {i} (process {process.pid}) died (signal {-code}, "
                             f"{name}): its running trial is lost; the study keeps the other "
                             f"trials" + (f" in {_masked(storage)}" if storage else ""))
        if code != 0:
            raise RuntimeError(f"search worker {i} exited with status {code}")


#: how long stopped workers may take to end their trial before they are killed
STOP_WAIT_S = 3.0


def _stop(processes: list) -> None:
    """Stop the workers still running (SIGINT: each ends its trial; SIGKILL after
    STOP_WAIT_S) and reap them all."""
    alive = [p for p in processes if p.pid is not None and p.exitcode is None]
    for p in alive:
        try:
            os.kill(p.pid, signal.SIGINT)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + STOP_WAIT_S
    for p in alive:
        p.join(max(0.0, deadline - time.monotonic()))
        if p.exitcode is None:
            p.kill()
            p.join()


def _die_with_parent(parent: int) -> None:
    """Make this forked worker die when its parent does, even by SIGKILL: on Linux the kernel
    sends it SIGKILL (prctl PR_SET_PDEATHSIG); elsewhere a thread watches the parent."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # 1: PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    else:
        def watch() -> None:
            while os.getppid() == parent:
                time.sleep(0.5)
            os._exit(1)
        threading.Thread(target=watch, daemon=True).start()
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)


def rank(study: optuna.Study, problem: SearchProblem, notes: tuple[str, ...] = ()
         ) -> SearchResult:
    """Re-evaluate every complete trial for this problem (latency and budgets from its z) and
    rank the feasible ones: best distinct architectures by objective (penalised in penalty
    mode), or the Pareto front, fastest first."""
    budgets, settings, mode = problem.budgets, problem.settings, problem.mode
    complete, notes = _complete_trials(study, problem.goal.name, notes)
    names = [d.name for d in problem.space.decisions]
    Z = np.array([[t.params[n] for n in names] for t in complete], dtype=np.int64)
    value = np.array([t.user_attrs["objective"] for t in complete])
    latency = budgets.model.mean(Z)
    upper = budgets.model.upper(Z)
    ok = budgets.fits(Z)
    if not ok.any():
        constrained = latency if upper is None else upper
        if mode != "penalty" and np.nanmin(constrained) > problem.budget_ms:
            raise BudgetError(problem.budget_ms, float(np.nanmin(constrained)), exact=False)
        raise InputError(f"no trial met every budget: {', '.join(budgets.names)}")
    idx = np.flatnonzero(ok)
    if mode == "pareto":  # by latency, or with a fleet by the worst budget ratio
        cost = budgets.worst_ratio(Z, latency) if budgets.devices else latency
        idx = idx[np.lexsort((-value[idx], cost[idx]))]
        idx = idx[pareto_mask(value[idx])]
    else:
        ranked = problem.penalised(value, latency) if mode == "penalty" else value
        idx = idx[np.lexsort((latency[idx], -ranked[idx]))]
    best: dict[tuple[int, ...], Candidate] = {}
    for i in idx:
        z = tuple(int(x) for x in Z[i])
        if z not in best and (mode == "pareto" or len(best) < settings.top):
            best[z] = _candidate(problem.space, z, float(latency[i]), float(value[i]),
                                 None if upper is None else float(upper[i]), budgets)
    return SearchResult(problem.space.name, problem.budget_ms, problem.goal.name, mode,
                        _sampler_name(settings), len(complete), int(ok.sum()),
                        problem.min_latency_ms, list(best.values()), study, notes)


def _complete_trials(study: optuna.Study, objective: str, notes: tuple[str, ...]
                     ) -> tuple[list[optuna.trial.FrozenTrial], tuple[str, ...]]:
    """The study's complete trials, and the notes with a line on the failed ones; InputError
    where every trial failed."""
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    failed = [t for t in trials if "error" in t.user_attrs]
    if not complete:
        first = failed[0].user_attrs["error"] if failed else "did not complete"
        raise InputError(f"every trial failed: the objective {objective!r} {first}")
    if failed:
        notes += (f"{len(failed)} trial(s) failed: the objective {objective!r} "
                  f"{failed[0].user_attrs['error']} (first)",)
    return complete, notes


def _candidate(space, z, latency_ms: float, value: float, upper_ms=None,
               budgets: Budgets | None = None) -> Candidate:
    arch = space.decode(z)
    fleet = () if budgets is None else tuple(
        (b.name, float(m.mean(np.array([arch.z]))[0]), b.limit, b.unit)
        for b, m in budgets.devices)
    return Candidate(arch.z, arch.choices, latency_ms, value, arch.macs, arch.params,
                     arch.param_bytes, arch.peak_activation_bytes, space.describe(arch.z),
                     upper_ms, fleet)


def _enumerated_result(problem: SearchProblem, allowed: np.ndarray) -> SearchResult:
    """The exact sampler where latency is not additive (a measured table, nb201-pruned):
    every z of the (small) space evaluated, the ``top`` best within the budgets."""
    space, goal, budget_ms = problem.space, problem.goal, problem.budget_ms
    assert goal.matrix is not None
    Z = every_z(space.n_choices)
    latency = problem.model.mean(Z)
    value = space.evaluate_z(Z, *goal.matrix)
    ok = (latency <= budget_ms) & allowed[np.arange(Z.shape[1]), Z].all(axis=1) \
        & problem.budgets.fits(Z)
    if not ok.any():
        raise BudgetError(budget_ms, float(latency.min()))
    rows = np.flatnonzero(ok)[np.lexsort((latency[ok], -value[ok]))][:problem.settings.top]
    best = [_candidate(space, Z[i], float(latency[i]), float(value[i])) for i in rows]
    return SearchResult(space.name, budget_ms, goal.name, problem.mode, "exact", 0,
                        int(ok.sum()), float(latency.min()), best, None)


def _exact_result(problem: SearchProblem) -> SearchResult:
    """The exact sampler: the ``top`` best distinct z by objective, by dynamic programming."""
    _check_exact(problem)
    budgets, goal, budget_ms, model = problem.budgets, problem.goal, problem.budget_ms, \
        problem.model
    allowed = budgets.feasibility().allowed
    if budgets.devices:
        return _fleet_result(problem)
    if model.C is None or model.fixed is None or goal.matrix is None:
        return _enumerated_result(problem, allowed)
    fixed_v, V = goal.matrix
    # parameter counts and bytes are sums over decisions too: exact budgets of the solver
    extra = [(fixed, np.where(allowed, M, np.nan), float(budgets.limits[name] or 0))
             for name, matrix in budgets.memory.items()
             if name != "peak_activation_bytes" and matrix is not None for fixed, M in [matrix]]
    found = knapsack(fixed_cost=model.fixed, cost=np.where(allowed, model.C, np.nan),
                     fixed_value=fixed_v, value=V, budget=budget_ms, keep=problem.settings.top,
                     extra=extra)
    assert problem.min_latency_ms is not None
    if not found:
        least = model.least(allowed)
        # the least latency fits: where the activation budget leaves nothing, say so
        if list(budgets.memory) == ["peak_activation_bytes"] and least is not None:
            raise InputError(f"no architecture meets both budgets: within max_activation_bytes "
                             f"= {budgets.limits['peak_activation_bytes']:g} the smallest "
                             f"predicted latency is {least[1]:.3f} ms (without it "
                             f"{problem.min_latency_ms:.3f} ms), over {budget_ms:g} ms")
        if budgets.memory:  # a parameter budget, with or without the activation one
            raise InputError("no architecture meets every budget: " + ", ".join(
                f"{name} <= {budgets.limits[name]:g}" for name in budgets.memory)
                + f" and latency <= {budget_ms:g} ms (the least latency alone is "
                  f"{problem.min_latency_ms:.3f} ms)")
        raise BudgetError(budget_ms, problem.min_latency_ms)
    best = [_candidate(problem.space, z, lat, value)
            for lat, value, z in found[:problem.settings.top]]
    return SearchResult(problem.space.name, budget_ms, goal.name, problem.mode, "exact", 0,
                        len(found), problem.min_latency_ms, best, None)


def _check_exact(problem: SearchProblem) -> None:
    """InputError where the exact sampler cannot solve the problem, saying what it needs."""
    model = problem.model
    if not model.additive and problem.space.size > MAX_ENUMERATED:
        raise InputError(f"the exact sampler needs an additive predictor (not tree_z) and "
                         f"space (not nb201-pruned), or a space of at most {MAX_ENUMERATED:,} "
                         f"architectures to enumerate")
    if problem.goal.matrix is None or problem.mode != "constraint":
        raise InputError("the exact sampler needs a built-in objective (macs, params) and "
                         "--mode constraint")
    if model.confidence is not None:
        raise InputError("the exact sampler constrains the mean; use tpe, nsga2 or random "
                         "with a confidence")


def _fleet_result(problem: SearchProblem) -> SearchResult:
    """The exact sampler under a fleet's budgets: the ``top`` best z within all of them
    (hwnas.search._fleet.fleet_optimum)."""
    budgets, goal, space = problem.budgets, problem.goal, problem.space
    assert goal.matrix is not None
    found = fleet_optimum(budgets, goal.matrix, problem.settings.top)
    if not found:
        raise InputError(f"no architecture meets every budget: {', '.join(budgets.names)}")
    Z = np.array(found)
    latency = problem.model.mean(Z)
    value = space.evaluate_z(Z, *goal.matrix)
    best = [_candidate(space, z, float(lat), float(v), None, budgets)
            for z, lat, v in zip(found, latency, value)]
    return SearchResult(space.name, problem.budget_ms, goal.name, problem.mode, "exact", 0,
                        len(found), problem.min_latency_ms, best, None,
                        (fleet_note(problem.settings.fleet),))
