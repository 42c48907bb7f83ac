"""An Optuna study over z with predicted latency as a hard constraint."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Dict, List, Optional, Tuple, Union

import optuna

from hwnas._progress import Progress
from hwnas.predictors import NotAdditiveError

if TYPE_CHECKING:
    from hwnas.predictors import Predictor
    from hwnas.spaces import Architecture, SearchSpace

Objective = Callable[["Architecture"], float]

#: built-in analytic proxies of quality (maximised): the largest network that fits the budget
OBJECTIVES: Dict[str, Objective] = {
    "macs": lambda arch: float(arch.macs),
    "params": lambda arch: float(arch.params),
}

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

    def as_dict(self) -> dict:
        return {"z": list(self.z), "choices": list(self.choices),
                "predicted_latency_ms": self.predicted_latency_ms, "objective": self.objective,
                "macs": self.macs, "params": self.params}


@dataclass(frozen=True)
class SearchResult:
    space: str
    budget_ms: float
    objective: str
    trials: int
    feasible_trials: int
    min_latency_ms: Optional[float]  # None where the predictor is not additive
    best: List[Candidate]
    study: optuna.Study


def search(space: SearchSpace, predictor: Predictor, budget_ms: float,
           objective: Union[str, Objective] = "macs", n_trials: int = 500,
           seed: int | None = None, top: int = 5, storage: str | None = None,
           study_name: str | None = None, show_progress: bool = False) -> SearchResult:
    """Maximise ``objective`` over z subject to predicted latency <= ``budget_ms``.

    No device is touched: latency comes from ``predictor``, through the space's cost matrix
    where it is additive. The least-latency architecture is then enqueued first, so the study
    always has a feasible trial when one exists; if none exists, BudgetError says the least
    reachable latency.

    Example:
        >>> result = search(get_space("mobilenet"), predictor, budget_ms=5.0, seed=0)
        >>> result.best[0].z, result.best[0].predicted_latency_ms
    """
    if not budget_ms > 0:
        raise ValueError(f"budget_ms must be > 0, got {budget_ms}")
    if n_trials < 1:
        raise ValueError(f"n_trials must be >= 1, got {n_trials}")
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
        z_min, min_latency_ms = None, None

        def latency(z):
            return float(predictor.predict_z(space, z)[0])
    else:
        z_min, min_latency_ms = space.min_z(fixed, C)
        if min_latency_ms > budget_ms:
            raise BudgetError(budget_ms, min_latency_ms)

        def latency(z):
            return float(space.evaluate_z(z, fixed, C)[0])

    def constraint(trial: optuna.trial.FrozenTrial) -> List[float]:
        return [trial.user_attrs["predicted_latency_ms"] - budget_ms]

    sampler = optuna.samplers.TPESampler(
        seed=seed, **({} if _NATIVE_CONSTRAINTS else {"constraints_func": constraint}))
    study = optuna.create_study(direction="maximize", sampler=sampler, storage=storage,
                                study_name=study_name, load_if_exists=study_name is not None)
    study.set_user_attr("space", space.name)
    study.set_user_attr("budget_ms", budget_ms)
    study.set_user_attr("objective", objective_name)
    study.set_user_attr("device", predictor.fingerprint_.describe())
    params = [d.name for d in space.decisions]
    if z_min is not None:
        study.enqueue_trial(dict(zip(params, map(int, z_min))), skip_if_exists=True)

    def run_trial(trial: optuna.Trial) -> float:
        z = [trial.suggest_categorical(name, list(range(k)))
             for name, k in zip(params, space.n_choices)]
        latency_ms = latency(z)
        trial.set_user_attr("predicted_latency_ms", latency_ms)
        if _NATIVE_CONSTRAINTS:
            trial.set_constraint("latency_ms", latency_ms - budget_ms)
        return float(objective(space.decode(z)))

    bar = Progress(n_trials, "searching", show_progress)
    study.optimize(run_trial, n_trials=n_trials, callbacks=[lambda s, t: bar.update()])
    bar.close()

    best: Dict[Tuple[int, ...], Candidate] = {}
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    feasible = [t for t in complete if t.user_attrs["predicted_latency_ms"] <= budget_ms]
    if not feasible and min_latency_ms is None:
        raise BudgetError(budget_ms, min(t.user_attrs["predicted_latency_ms"] for t in complete),
                          exact=False)
    for t in sorted(feasible, key=lambda t: (-t.value, t.user_attrs["predicted_latency_ms"])):
        z = tuple(int(t.params[name]) for name in params)
        if z not in best and len(best) < top:
            arch = space.decode(z)
            best[z] = Candidate(z, arch.choices, t.user_attrs["predicted_latency_ms"], t.value,
                                arch.macs, arch.params)
    return SearchResult(space.name, budget_ms, objective_name, len(complete), len(feasible),
                        min_latency_ms, list(best.values()), study)
