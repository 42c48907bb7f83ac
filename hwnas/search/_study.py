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
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import optuna

from hwnas._progress import Progress
from hwnas.errors import HwnasError, InputError
from hwnas.search._exact import knapsack
from hwnas.search._feasible import Budgets, FeasibleSampler, LatencyModel, layer_matrix, suggest_z

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

    def as_dict(self) -> dict:
        return {"z": list(self.z), "choices": list(self.choices), "notation": self.notation,
                "predicted_latency_ms": self.predicted_latency_ms,
                "latency_upper_ms": self.latency_upper_ms, "objective": self.objective,
                "macs": self.macs, "params": self.params, "param_bytes": self.param_bytes,
                "peak_activation_bytes": self.peak_activation_bytes}


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


def search(space: SearchSpace, predictor: Predictor, budget_ms: float,
           objective: str | Objective = "macs", *, mode: str = "constraint",
           sampler: str | optuna.samplers.BaseSampler = "tpe", n_trials: int = 500,
           seed: int | None = None, top: int = 5, feasible: bool = True,
           enqueue_exact: bool = True, max_params: int | None = None,
           max_param_bytes: int | None = None, max_activation_bytes: int | None = None,
           confidence: float | None = None, penalty_weight: float = -0.07,
           storage: str | None = None, study_name: str | None = None, workers: int = 1,
           show_progress: bool = False) -> SearchResult:
    """Search z for the best ``objective`` (maximised) under a latency budget.

    Args:
        space, predictor, budget_ms: what to search, how latency is predicted (no device is
            touched), and the budget on the predicted latency (ms).
        objective: ``macs``, ``params`` or any callable f(architecture) -> float; an objective
            that raises or returns NaN/inf fails its trial and the search goes on.
        mode: ``constraint`` (latency <= budget), ``penalty`` (objective x (latency /
            budget)^penalty_weight, as MnasNet) or ``pareto`` (objective up, latency down).
        sampler: ``tpe``, ``nsga2``, ``random``, an Optuna sampler of your own, or ``exact``
            (the optimum by dynamic programming: additive predictor, built-in objective,
            constraint mode).
        feasible: wrap the sampler in ``FeasibleSampler``, so that every trial meets the
            budgets (exactly where latency is additive); False leaves infeasible proposals to
            Optuna's constraint handling.
        enqueue_exact: where latency and objective are additive (built-in objective), enqueue
            the exact Pareto front's best points first (the study then starts from the
            optimum); the least-latency z is always enqueued.
        top: how many distinct architectures to report, best objective first, for every
            sampler (in pareto mode the result is the whole feasible front, fastest first).
        max_params, max_param_bytes, max_activation_bytes: memory budgets, in every mode.
        confidence: constrain the predictor's q-quantile (tree, tree_z) instead of its mean.
        storage, study_name, workers: an Optuna storage URL or ``.journal`` path; a named
            study resumes (another budget, predictor or memory budget re-evaluates its earlier
            trials; another space, objective or mode is refused); ``workers`` processes share
            ``n_trials``.

    Returns:
        A SearchResult; BudgetError if no architecture meets the budget.

    Example (a fitted ``predictor`` as in the README)::

        result = search(get_space("mobilenet"), predictor, 5.0, n_trials=200, seed=0)
        print(result.best[0].z, result.best[0].predicted_latency_ms)
    """
    _check_arguments(budget_ms, mode, sampler, n_trials, top, penalty_weight, workers)
    name, call, value_matrix = resolve_objective(space, objective)
    model = LatencyModel(space, predictor, confidence)
    budgets = Budgets(model, None if mode == "penalty" else budget_ms, max_params=max_params,
                      max_param_bytes=max_param_bytes, max_activation_bytes=max_activation_bytes)
    min_latency_ms = _least_latency(model, budget_ms, mode)
    if sampler == "exact":
        return _exact_result(space, model, budgets, name, value_matrix, mode, top,
                             min_latency_ms)
    setting = _setting(space, predictor, budget_ms, name, mode, budgets, confidence,
                       penalty_weight)

    def make_sampler(worker: int) -> optuna.samplers.BaseSampler:
        base = _base_sampler(sampler, None if seed is None else seed + worker)
        if feasible:
            return FeasibleSampler(space, predictor, budget_ms, base, budgets=budgets,
                                   seed=None if seed is None else seed + worker)
        return base

    if workers > 1 and storage is None:
        raise InputError("workers > 1 need a shared storage (a URL or a .journal file)")
    if workers > 1 and study_name is None:
        study_name = f"hwnas-{uuid.uuid4().hex[:8]}"
    study, notes = open_study(setting, storage=storage, study_name=study_name,
                              directions=["maximize", "minimize"] if mode == "pareto"
                              else ["maximize"], sampler=make_sampler(0))
    _enqueue_start(study, space, model, budgets, value_matrix, mode, top, n_trials,
                   enqueue_exact and value_matrix is not None, budget_ms, penalty_weight)
    # every trial of an exact feasible sampler fits: Optuna need not weigh constraints
    guaranteed = isinstance(study.sampler, FeasibleSampler) and _NATIVE_CONSTRAINTS \
        and study.sampler.feasibility.check is None
    evaluate = _trial_function(space, model, budgets, call, value_matrix, mode, budget_ms,
                               penalty_weight, record_constraints=not guaranteed)
    misses = run_trials(study, storage, n_trials, workers, make_sampler, evaluate,
                        show_progress)
    if misses:
        notes.append(f"the feasible sampler's bounded rejection (latency or memory is not "
                     f"additive here) found no feasible z near {misses} proposal(s) of this "
                     f"process: those trials are infeasible")
    return rank(study, space, model, budgets, name, mode, budget_ms, penalty_weight, top,
                min_latency_ms, _sampler_name(sampler, feasible), tuple(notes))


def _check_arguments(budget_ms, mode, sampler, n_trials, top, penalty_weight, workers) -> None:
    def number(x) -> bool:
        return isinstance(x, (int, float, np.number)) and not isinstance(x, bool)

    if not (number(budget_ms) and 0 < budget_ms < math.inf):
        raise InputError(f"budget_ms must be a finite number > 0, got {budget_ms!r}")
    if mode not in MODES:
        raise InputError(f"unknown mode {mode!r}: expected one of {MODES}")
    if isinstance(sampler, str) and sampler not in SAMPLERS:
        raise InputError(f"unknown sampler {sampler!r}: expected one of {SAMPLERS} or an "
                         f"optuna sampler")
    if not isinstance(sampler, (str, optuna.samplers.BaseSampler)):
        raise InputError(f"sampler must be a name or an optuna sampler, got {sampler!r}")
    for what, value in (("n_trials", n_trials), ("top", top), ("workers", workers)):
        if not (isinstance(value, (int, np.integer)) and not isinstance(value, bool)
                and value >= 1):
            raise InputError(f"{what} must be an integer >= 1, got {value!r}")
    if not (number(penalty_weight) and math.isfinite(penalty_weight)):
        raise InputError(f"penalty_weight must be a finite number, got {penalty_weight!r}")


def resolve_objective(space: SearchSpace, objective: str | Objective
                      ) -> tuple[str, Objective, tuple[float, np.ndarray] | None]:
    """(name, callable, (fixed, V) cost matrix where the objective is built in and additive)."""
    if isinstance(objective, str):
        if objective not in OBJECTIVES:
            raise InputError(f"unknown objective {objective!r}: expected one of "
                             f"{sorted(OBJECTIVES)} or a callable")
        matrix = layer_matrix(space, lambda ly: getattr(ly, objective)) if space.additive \
            else None
        return objective, OBJECTIVES[objective], matrix
    if not callable(objective):
        raise InputError(f"objective must be a name or a callable, got {objective!r}")
    return getattr(objective, "__name__", "custom"), objective, None


def _least_latency(model: LatencyModel, budget_ms: float, mode: str) -> float | None:
    if model.C is None or model.fixed is None:
        return None
    least = float(model.fixed + np.nanmin(model.C, axis=1).sum())
    if least > budget_ms and mode != "penalty":
        raise BudgetError(budget_ms, least)
    return least


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


def _sampler_name(sampler, feasible: bool) -> str:
    name = sampler if isinstance(sampler, str) else type(sampler).__name__
    return f"feasible {name}" if feasible else name


def _setting(space, predictor, budget_ms, objective, mode, budgets, confidence,
             penalty_weight) -> dict[str, Any]:
    """What a study's trials depend on, stored in its user attrs to check a resume."""
    digest = hashlib.sha1(json.dumps(predictor.to_dict(), sort_keys=True).encode())
    setting = {"space": space.name, "space_signature": space.signature, "objective": objective,
               "mode": mode, "budget_ms": budget_ms, "predictor": predictor.kind,
               "predictor_digest": digest.hexdigest()[:12],
               "device": predictor.fingerprint_.describe(), "confidence": confidence,
               **{f"max_{k}": v for k, v in budgets.limits.items()}}
    if mode == "penalty":  # stored values depend on them
        setting["penalty_weight"] = penalty_weight
    return setting


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
        raise InputError(f"storage {storage!r}: cannot open the study: "
                         f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    notes = []
    if old is not None and has_trials:
        fixed = [k for k in _FIXED_SETTINGS + ("penalty_weight",)
                 if old.get(k) != setting.get(k)]
        if setting["mode"] == "penalty" and old.get("budget_ms") != setting["budget_ms"]:
            fixed.append("budget_ms")
        if fixed:
            k = fixed[0]
            raise InputError(f"study {study.study_name!r} in {storage} was run with {k} = "
                             f"{old.get(k)!r}, not {setting.get(k)!r}: its trials cannot be "
                             f"compared; give another --study-name (or the same {k})")
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


def _enqueue_start(study, space, model, budgets, value_matrix, mode, top, n_trials,
                   front: bool, budget_ms: float, penalty_weight: float) -> None:
    """Enqueue the least-latency z (a feasible start) and, where objective and latency are
    additive, the best points of the exact front."""
    names = [d.name for d in space.decisions]
    if not model.additive:
        return
    feasibility = budgets.feasibility()
    cost = np.where(feasibility.allowed, model.C, np.nan)
    points: list[tuple[int, ...]] = []
    if front and not [n for n in budgets.memory if n != "peak_activation_bytes"]:
        fixed_v, V = value_matrix
        limit = math.inf if mode == "penalty" else budgets.latency_ms
        found = knapsack(fixed_cost=model.fixed, cost=cost, fixed_value=fixed_v, value=V,
                         budget=limit)
        if mode == "pareto":  # spread over the front
            count = max(top, n_trials // 10)
            points = [z for _, _, z in found[::max(1, len(found) // count)][:count]]
        else:  # the best by the mode's score
            score = [v * (c / budget_ms) ** penalty_weight if mode == "penalty" else v
                     for c, v, _ in found]
            points = [found[i][2] for i in np.argsort(score, kind="stable")[::-1][:top]]
    z_min = tuple(int(c) for c in np.nanargmin(np.where(feasibility.allowed, model.C, np.inf),
                                               axis=1))
    for z in [z_min] + points:
        study.enqueue_trial(dict(zip(names, z)), skip_if_exists=True)


class _ObjectiveFailed(Exception):
    """The user's objective raised or returned a value that is not finite."""


def _trial_function(space, model, budgets, call, value_matrix, mode, budget_ms,
                    penalty_weight, *, record_constraints: bool
                    ) -> Callable[[optuna.Trial], Any]:
    """One trial: z, its latency and budgets (errors here are bugs and propagate), then the
    objective (its errors fail the trial)."""
    rows = np.arange(len(space.decisions))

    def evaluate(trial: optuna.Trial):
        Z = np.array([suggest_z(trial, space)], dtype=np.int64)
        latency_ms = float(model.mean(Z)[0])
        upper = model.upper(Z)
        upper_ms = None if upper is None else float(upper[0])
        trial.set_user_attr("predicted_latency_ms", latency_ms)
        if upper_ms is not None:
            trial.set_user_attr("latency_upper_ms", upper_ms)
        if record_constraints:
            limits = {k: float(v[0]) for k, v in budgets.violations(
                Z, np.array([latency_ms]) if upper is None else upper).items()}
            if mode == "penalty" and math.isnan(latency_ms):
                limits["latency_known"] = math.inf
            if _NATIVE_CONSTRAINTS:
                for key, v in limits.items():
                    trial.set_constraint(key, v)
            else:
                trial.set_user_attr("constraints", list(limits.values()))
        if value_matrix is not None:
            value = float(value_matrix[0] + value_matrix[1][rows, Z[0]].sum())
        else:
            arch = space.decode(Z[0])
            try:
                value = float(call(arch))
            except Exception as e:
                raise _ObjectiveFailed(f"raised {type(e).__name__}: {e}") from e
            if not math.isfinite(value):
                raise _ObjectiveFailed(f"returned {value}")
        trial.set_user_attr("objective", value)
        if mode == "penalty":
            return value * (latency_ms / budget_ms) ** penalty_weight \
                if math.isfinite(latency_ms) else -math.inf
        return (value, latency_ms) if mode == "pareto" else value

    return evaluate


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


def run_trials(study: optuna.Study, storage: str | None, n_trials: int, workers: int,
               make_sampler: Callable[[int], optuna.samplers.BaseSampler], evaluate,
               show_progress: bool) -> int:
    """Run ``n_trials`` on ``workers`` processes sharing the study; return the feasible
    sampler's misses in this process."""
    shares = [n_trials // workers + (i < n_trials % workers) for i in range(workers)]

    def work(worker: int) -> None:  # in a forked process: its own connection to the storage
        optuna.logging.set_verbosity(optuna.logging.ERROR)
        mine = optuna.load_study(study_name=study.study_name, storage=open_storage(storage),
                                 sampler=make_sampler(worker))
        try:
            _optimize(mine, shares[worker], evaluate, None)
        except KeyboardInterrupt:
            pass

    context = multiprocessing.get_context("fork")
    others = [context.Process(target=work, args=(i,)) for i in range(1, workers)]
    for process in others:
        process.start()
    bar = Progress(shares[0], "searching", show_progress)
    try:
        _optimize(study, shares[0], evaluate, bar)
    except KeyboardInterrupt:
        for process in others:
            process.join(timeout=10)
        kept = "nothing was kept (the study was in memory; give --study-name or --storage " \
               "to keep one)" if storage is None else \
            f"study {study.study_name!r} is kept in {storage}: run the same command with " \
            f"--study-name {study.study_name} to resume it"
        raise SearchInterrupted(f"interrupted after {len(study.get_trials(deepcopy=False))} "
                                f"trials; {kept}") from None
    finally:
        bar.close()
    for process in others:
        process.join()
        if process.exitcode != 0:
            raise RuntimeError(f"a search worker exited with status {process.exitcode}")
    sampler = study.sampler
    return sampler.misses if isinstance(sampler, FeasibleSampler) else 0


def rank(study, space, model, budgets, objective, mode, budget_ms, penalty_weight, top,
         min_latency_ms, sampler, notes) -> SearchResult:
    """Re-evaluate every complete trial for this setting (latency and budgets from its z) and
    rank the feasible ones: best distinct architectures by objective (penalised in penalty
    mode), or the Pareto front, fastest first."""
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    names = [d.name for d in space.decisions]
    failed = [t for t in trials if "error" in t.user_attrs]
    if not complete:
        first = failed[0].user_attrs["error"] if failed else "did not complete"
        raise InputError(f"every trial failed: the objective {objective!r} {first}")
    if failed:
        notes += (f"{len(failed)} trial(s) failed: the objective {objective!r} "
                  f"{failed[0].user_attrs['error']} (first)",)
    Z = np.array([[t.params[n] for n in names] for t in complete], dtype=np.int64)
    value = np.array([t.user_attrs["objective"] for t in complete])
    latency = model.mean(Z)
    upper = model.upper(Z)
    ok = budgets.fits(Z)
    if not ok.any():
        if mode != "penalty" and np.nanmin(latency if upper is None else upper) > budget_ms:
            raise BudgetError(budget_ms, float(np.nanmin(latency if upper is None else upper)),
                              exact=False)
        raise InputError(f"no trial met every budget: {', '.join(budgets.names)}")
    if mode == "penalty":
        value_ranked = value * (latency / budget_ms) ** penalty_weight
    else:
        value_ranked = value
    idx = np.flatnonzero(ok)
    if mode == "pareto":
        idx = idx[np.lexsort((-value[idx], latency[idx]))]
        idx = idx[value[idx] > np.concatenate([[-np.inf],
                                               np.maximum.accumulate(value[idx])[:-1]])]
    else:
        idx = idx[np.lexsort((latency[idx], -value_ranked[idx]))]
    best: dict[tuple[int, ...], Candidate] = {}
    for i in idx:
        z = tuple(int(x) for x in Z[i])
        if z not in best and (mode == "pareto" or len(best) < top):
            best[z] = _candidate(space, z, float(latency[i]), float(value[i]),
                                 None if upper is None else float(upper[i]))
    return SearchResult(space.name, budget_ms, objective, mode, sampler, len(complete),
                        int(ok.sum()), min_latency_ms, list(best.values()), study, notes)


def _candidate(space, z, latency_ms: float, value: float, upper_ms=None) -> Candidate:
    arch = space.decode(z)
    return Candidate(arch.z, arch.choices, latency_ms, value, arch.macs, arch.params,
                     arch.param_bytes, arch.peak_activation_bytes, space.describe(arch.z),
                     upper_ms)


def _exact_result(space, model, budgets, objective, value_matrix, mode, top,
                  min_latency_ms) -> SearchResult:
    """The exact sampler: the ``top`` best distinct z by objective, by dynamic programming."""
    if not model.additive:
        raise InputError("the exact sampler needs an additive predictor (not tree_z) and "
                         "space (not nb201-pruned)")
    if value_matrix is None or mode != "constraint":
        raise InputError("the exact sampler needs a built-in objective (macs, params) and "
                         "--mode constraint")
    if model.confidence is not None:
        raise InputError("the exact sampler constrains the mean; use tpe, nsga2 or random "
                         "with a confidence")
    if set(budgets.memory) - {"peak_activation_bytes"}:
        raise InputError("the exact sampler supports latency and activation budgets; use "
                         "tpe, nsga2 or random with --max-params / --max-param-kb")
    allowed = budgets.feasibility().allowed
    fixed_v, V = value_matrix
    found = knapsack(fixed_cost=model.fixed, cost=np.where(allowed, model.C, np.nan),
                     fixed_value=fixed_v, value=V, budget=budgets.latency_ms, keep=top)
    if not found:
        raise BudgetError(budgets.latency_ms, min_latency_ms)
    best = [_candidate(space, z, lat, value) for lat, value, z in found[:top]]
    return SearchResult(space.name, budgets.latency_ms, objective, mode, "exact", 0,
                        len(found), min_latency_ms, best, None)
