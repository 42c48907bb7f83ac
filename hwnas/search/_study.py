"""An Optuna study over z with predicted latency as a constraint, a penalty or an objective."""

from __future__ import annotations

import multiprocessing
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Dict, List, Optional, Tuple, Union

import numpy as np
import optuna

from hwnas._progress import Progress
from hwnas.predictors import NotAdditiveError
from hwnas.search._exact import pareto_knapsack

if TYPE_CHECKING:
    from hwnas.predictors import Predictor
    from hwnas.spaces import Architecture, SearchSpace

Objective = Callable[["Architecture"], float]

#: built-in analytic proxies of quality (maximised): the largest network that fits the budget
OBJECTIVES: Dict[str, Objective] = {
    "macs": lambda arch: float(arch.macs),
    "params": lambda arch: float(arch.params),
}

MODES = ("constraint", "penalty", "pareto")
SAMPLERS = ("tpe", "nsga2", "random", "exact")

# Optuna 5 records constraints per trial; older versions take a sampler constraints_func.
_NATIVE_CONSTRAINTS = hasattr(optuna.trial.Trial, "set_constraint")


class BudgetError(ValueError):
    """No architecture of the space meets the budget."""

    def __init__(self, budget_ms: float, min_latency_ms: float, exact: bool = True):
        self.budget_ms, self.min_latency_ms = budget_ms, min_latency_ms
        what = "this space can reach" if exact else "the search found (the predictor is " \
                                                    "not additive, so the least is not known)"
        super().__init__(f"no architecture meets the budget of {budget_ms:g} ms: the smallest "
                         f"predicted latency {what} is {min_latency_ms:.3f} ms")


@dataclass(frozen=True)
class Candidate:
    """One searched architecture with its predicted latency and objective."""

    z: Tuple[int, ...]
    choices: Tuple[str, ...]
    predicted_latency_ms: float
    objective: float
    macs: int
    params: int
    param_bytes: int
    peak_activation_bytes: int
    notation: str
    latency_upper_ms: Optional[float] = None  # the constrained quantile, with --confidence

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
    min_latency_ms: Optional[float]  # None where the predictor is not additive
    best: List[Candidate]  # best first; in pareto mode the front, fastest first
    study: Optional[optuna.Study]  # None for the exact sampler


def open_storage(spec: Optional[str]):
    """An Optuna storage URL as it is, or a ``.journal`` file as a JournalStorage."""
    if spec is None or not spec.endswith(".journal"):
        return spec
    from optuna.storages import JournalStorage
    try:
        from optuna.storages.journal import JournalFileBackend
    except ImportError:  # Optuna < 4
        from optuna.storages import JournalFileStorage as JournalFileBackend
    return JournalStorage(JournalFileBackend(spec))


def _candidate(space, z, latency_ms: float, value: float, upper_ms=None) -> Candidate:
    arch = space.decode(z)
    return Candidate(arch.z, arch.choices, latency_ms, value, arch.macs, arch.params,
                     arch.param_bytes, arch.peak_activation_bytes, space.describe(arch.z),
                     upper_ms)


def search(space: SearchSpace, predictor: Predictor, budget_ms: float,
           objective: Union[str, Objective] = "macs", n_trials: int = 500,
           seed: int | None = None, top: int = 5, storage: str | None = None,
           study_name: str | None = None, show_progress: bool = False,
           mode: str = "constraint", penalty_weight: float = -0.07, sampler: str = "tpe",
           max_params: int | None = None, max_param_bytes: int | None = None,
           max_activation_bytes: int | None = None,
           confidence: float | None = None, workers: int = 1) -> SearchResult:
    """Search z for the best ``objective`` (maximised) under a latency budget.

    Modes: ``constraint`` (predicted latency <= budget, Optuna's constraint API),
    ``penalty`` (objective x (latency / budget)^penalty_weight, as MnasNet), ``pareto``
    (objective up and latency down; the result is the feasible Pareto front). Parameter and
    peak-activation budgets are constraints in every mode. Samplers: ``tpe``, ``nsga2``,
    ``random``, and ``exact``: the optimum by dynamic programming where latency and objective
    are additive (built-in objectives, an additive predictor, constraint mode). With
    ``confidence`` q (e.g. 0.95) the latency constraint holds for the predictor's q-quantile
    (predictors with a spread: tree, tree_z, calibrated over them) instead of its mean.

    ``storage`` is an Optuna storage URL (``sqlite:///s.db``, ``postgresql://...``) or a
    ``.journal`` file path; with ``study_name`` a search resumes. ``workers`` > 1 runs that many
    processes on one study (it needs a storage), sharing ``n_trials`` between them.

    No device is touched: latency comes from ``predictor``, through the space's cost matrix
    where it is additive. The least-latency architecture is then enqueued first, so the study
    always has a feasible trial when one exists; if none exists, BudgetError says the least
    reachable latency. An objective that raises fails its trial; the search goes on.

    Example:
        >>> result = search(get_space("mobilenet"), predictor, budget_ms=5.0,
        ...                 seed=0)  # doctest: +SKIP
        >>> result.best[0].z, result.best[0].predicted_latency_ms  # doctest: +SKIP
    """
    if not budget_ms > 0:
        raise ValueError(f"budget_ms must be > 0, got {budget_ms}")
    if n_trials < 1:
        raise ValueError(f"n_trials must be >= 1, got {n_trials}")
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}: expected one of {MODES}")
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}: expected one of {SAMPLERS}")
    objective_name = objective if isinstance(objective, str) else getattr(
        objective, "__name__", "custom")
    if isinstance(objective, str):
        if objective not in OBJECTIVES:
            raise ValueError(f"unknown objective {objective!r}: expected one of "
                             f"{sorted(OBJECTIVES)} or a callable")
        objective = OBJECTIVES[objective]
    try:
        fixed, C = predictor.cost_matrix(space)
    except NotAdditiveError:
        fixed = C = z_min = min_latency_ms = None

        def latency(z):
            return float(predictor.predict_z(space, z)[0])
    else:
        z_min, min_latency_ms = space.min_z(fixed, C)
        if min_latency_ms > budget_ms and mode != "penalty":
            raise BudgetError(budget_ms, min_latency_ms)

        def latency(z):
            return float(space.evaluate_z(z, fixed, C)[0])

    if confidence is not None:
        if not 0 < confidence < 1:
            raise ValueError(f"confidence must be in (0, 1), got {confidence}")
        predictor.predict_z_quantile(space, z_min if z_min is not None else
                                     space.random_z(1, 0)[0], confidence)  # fails early
        if sampler == "exact":
            raise ValueError("the exact sampler constrains the mean; use tpe, nsga2 or random "
                             "with a confidence")

    def upper(z) -> Optional[float]:
        if confidence is None:
            return None
        return float(predictor.predict_z_quantile(space, z, confidence)[0])

    budgets = {"params": (max_params, lambda a: a.params),
               "param_bytes": (max_param_bytes, lambda a: a.param_bytes),
               "peak_activation_bytes": (max_activation_bytes,
                                         lambda a: a.peak_activation_bytes)}
    budgets = {k: v for k, v in budgets.items() if v[0] is not None}
    if sampler == "exact":
        return _exact(space, fixed, C, budget_ms, objective_name, mode, budgets, top,
                      min_latency_ms)

    def constraints(trial: optuna.trial.FrozenTrial) -> List[float]:
        return trial.user_attrs["constraints"]

    native = {} if _NATIVE_CONSTRAINTS else {"constraints_func": constraints}

    def make_sampler(worker: int) -> optuna.samplers.BaseSampler:
        worker_seed = None if seed is None else seed + worker
        return {"tpe": lambda: optuna.samplers.TPESampler(seed=worker_seed, **native),
                "nsga2": lambda: optuna.samplers.NSGAIISampler(seed=worker_seed, **native),
                "random": lambda: optuna.samplers.RandomSampler(seed=worker_seed)}[sampler]()

    if workers > 1 and storage is None:
        raise ValueError("workers > 1 need a shared storage (a URL or a .journal file)")
    if workers > 1 and study_name is None:
        study_name = f"hwnas-{uuid.uuid4().hex[:8]}"
    directions = ["maximize", "minimize"] if mode == "pareto" else ["maximize"]
    study = optuna.create_study(directions=directions, sampler=make_sampler(0),
                                storage=open_storage(storage), study_name=study_name,
                                load_if_exists=study_name is not None)
    for key, value in {"space": space.name, "budget_ms": budget_ms, "objective": objective_name,
                       "mode": mode, "sampler": sampler,
                       "predictor": predictor.kind,
                       "device": predictor.fingerprint_.describe()}.items():
        study.set_user_attr(key, value)
    params = [d.name for d in space.decisions]
    if z_min is not None:
        study.enqueue_trial(dict(zip(params, map(int, z_min))), skip_if_exists=True)

    def run_trial(trial: optuna.Trial):
        z = [trial.suggest_categorical(name, list(range(k)))
             for name, k in zip(params, space.n_choices)]
        arch = space.decode(z)
        latency_ms, upper_ms = latency(z), upper(z)
        trial.set_user_attr("predicted_latency_ms", latency_ms)
        trial.set_user_attr("latency_upper_ms", upper_ms)
        limits = {k: float(fn(arch) - limit) for k, (limit, fn) in budgets.items()}
        if mode != "penalty":
            limits["latency_ms"] = (latency_ms if upper_ms is None else upper_ms) - budget_ms
        trial.set_user_attr("constraints", list(limits.values()))
        if _NATIVE_CONSTRAINTS:
            for key, value in limits.items():
                trial.set_constraint(key, value)
        value = float(objective(arch))
        trial.set_user_attr("objective", value)
        if mode == "penalty":
            return value * (latency_ms / budget_ms) ** penalty_weight
        return (value, latency_ms) if mode == "pareto" else value

    shares = [n_trials // workers + (i < n_trials % workers) for i in range(workers)]

    def work(worker: int) -> None:  # in a forked process: its own connection to the storage
        optuna.logging.set_verbosity(optuna.logging.ERROR)
        mine = optuna.load_study(study_name=study.study_name, storage=open_storage(storage),
                                 sampler=make_sampler(worker))
        mine.optimize(run_trial, n_trials=shares[worker], catch=(Exception,))

    context = multiprocessing.get_context("fork")
    others = [context.Process(target=work, args=(i,)) for i in range(1, workers)]
    for process in others:
        process.start()
    bar = Progress(shares[0], "searching", show_progress)
    study.optimize(run_trial, n_trials=shares[0], callbacks=[lambda s, t: bar.update()],
                   catch=(Exception,))
    bar.close()
    for process in others:
        process.join()
        if process.exitcode != 0:
            raise RuntimeError(f"a search worker exited with status {process.exitcode}")
    if others:
        study = optuna.load_study(study_name=study.study_name, storage=open_storage(storage))

    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    feasible = [t for t in complete if all(v <= 0 for v in t.user_attrs["constraints"])]
    if not feasible and mode != "penalty":
        if not complete:
            raise ValueError(f"every trial failed: the objective {objective_name!r} raised "
                             f"(see the warnings above)")
        least = min(t.user_attrs["predicted_latency_ms"] for t in complete)
        if least > budget_ms:
            raise BudgetError(budget_ms, least, exact=False)
        raise ValueError(f"no trial met every budget: {', '.join(budgets)} as well as latency")
    if mode == "pareto":
        front = {t.number for t in study.best_trials}
        ranked = sorted((t for t in feasible if t.number in front),
                        key=lambda t: t.user_attrs["predicted_latency_ms"])
    else:
        ranked = sorted(feasible, key=lambda t: (-t.values[0],
                                                 t.user_attrs["predicted_latency_ms"]))
    best: Dict[Tuple[int, ...], Candidate] = {}
    for t in ranked:
        z = tuple(int(t.params[name]) for name in params)
        if z not in best and (mode == "pareto" or len(best) < top):
            best[z] = _candidate(space, z, t.user_attrs["predicted_latency_ms"],
                                 t.user_attrs["objective"], t.user_attrs["latency_upper_ms"])
    return SearchResult(space.name, budget_ms, objective_name, mode, sampler, len(complete),
                        len(feasible), min_latency_ms, list(best.values()), study)


def _exact(space, fixed, C, budget_ms, objective_name, mode, budgets, top, min_latency_ms):
    if C is None:
        raise ValueError("the exact sampler needs an additive predictor (not tree_z)")
    if objective_name not in OBJECTIVES or mode != "constraint":
        raise ValueError("the exact sampler needs a built-in objective (macs, params) and "
                         "--mode constraint")
    if set(budgets) - {"peak_activation_bytes"}:
        raise ValueError("the exact sampler supports latency and activation budgets; use tpe, "
                         "nsga2 or random with --max-params / --max-param-kb")
    attribute = {"macs": "macs", "params": "params"}[objective_name]
    fixed_value, V = space.cost_matrix(lambda layers: [getattr(ly, attribute) for ly in layers])
    cost = C.copy()
    if budgets:  # a max over layers: a choice is allowed iff each of its layers fits
        limit = budgets["peak_activation_bytes"][0]
        if any(ly.peak_activation_bytes > limit for ly in space.stem + space.head):
            raise ValueError("the fixed layers alone exceed the activation budget")
        for d, decision in enumerate(space.decisions):
            for c, group in enumerate(decision.layers):
                if any(ly.peak_activation_bytes > limit for ly in group):
                    cost[d, c] = np.nan
    front = pareto_knapsack(fixed, cost, fixed_value, V, budget_ms)
    if not front:
        raise BudgetError(budget_ms, min_latency_ms)
    best = [_candidate(space, z, lat, value) for lat, value, z in front[:top]]
    return SearchResult(space.name, budget_ms, objective_name, mode, "exact", 0, len(front),
                        min_latency_ms, best, None)
