"""Budgets for a fleet: one search under a limit on each of several predictors (shipped
devices, this machine, fitted predictor files), each in its own unit; and the exact optimum
under all of them (an integer program, or every z of a small space)."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from hwnas._checks import positive
from hwnas.errors import InputError
from hwnas.spaces._exact import MAX_ENUMERATED, every_z

if TYPE_CHECKING:
    from hwnas.predictors import Predictor
    from hwnas.search._feasible import Budgets
    from hwnas.spaces import SearchSpace

#: units as SI writes them, by the lower-case suffix of a target column
SI_UNITS = {"mj": "mJ", "uj": "µJ", "j": "J", "mw": "mW", "w": "W", "kib": "KiB", "mib": "MiB"}
#: the budget name of the search's own predictor (this machine, in the default flow)
LOCAL = "local"


@dataclass(frozen=True)
class DeviceBudget:
    """predictor(z) <= limit, in the predictor's unit (its ``target``: latency_ms, energy_mj).

    Example:
        >>> from hwnas.devices import device_predictor
        >>> b = DeviceBudget("pixel3", device_predictor("pixel3", "fbnet"), 15.0)
        >>> b.unit
        'ms'
    """

    name: str
    predictor: Predictor
    limit: float

    def __post_init__(self) -> None:
        positive(f"budget {self.name}: the limit", self.limit)

    @property
    def unit(self) -> str:
        """The unit of the limit: what follows the last '_' of the target (``ms``; ``mJ`` for
        ``energy_mj``: column names are lower case, units are written as SI writes them)."""
        unit = self.predictor.target.rpartition("_")[2]
        return SI_UNITS.get(unit, unit)


def parse_budget(text: str) -> tuple[str, float]:
    """``NAME=LIMIT`` of ``--budget``: a shipped device, ``local`` or a predictor file, and a
    finite limit > 0; raises InputError saying what is expected.

    Example:
        >>> parse_budget("pixel3=15")
        ('pixel3', 15.0)
    """
    name, sep, limit = text.rpartition("=")
    try:
        value = float(limit)
    except ValueError:
        value = math.nan
    if not sep or not name.strip() or not 0 < value < math.inf:
        raise InputError(f"budget {text!r} (--budget, fleet): expected NAME=LIMIT with a "
                         f"limit > 0, e.g. pixel3=15, local=5 or p.json=3")
    return name.strip(), value


def split_budgets(specs: Mapping[str, float] | Sequence[str], budget_ms: float | None
                  ) -> tuple[float, str | None, list[tuple[str, float]]]:
    """(the search's own limit, the budget that supplies the search's own predictor, the
    other budgets) of ``--budget`` options (``NAME=LIMIT`` strings, or ``{name: limit}``)
    and ``--budget-ms``.

    The search's own predictor (``local``: this machine in the default flow, or --predictor,
    --table, --device) takes ``--budget-ms`` or ``local=LIMIT``; with neither, the first
    ``--budget`` is the search's own predictor (its name is returned) and no machine is
    measured.

    Example:
        >>> split_budgets(["pixel3=15", "local=5"], None)
        (5.0, None, [('pixel3', 15.0)])
    """
    parsed = [parse_budget(f"{name}={limit!r}") for name, limit in specs.items()] \
        if isinstance(specs, Mapping) else [parse_budget(s) for s in specs]
    names = [n for n, _ in parsed]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise InputError(f"--budget {repeated[0]} is given twice: give each predictor one limit")
    local = [limit for name, limit in parsed if name == LOCAL]
    others = [(name, limit) for name, limit in parsed if name != LOCAL]
    if local and budget_ms is not None:
        raise InputError("--budget-ms and --budget local=... both limit the search's own "
                         "predictor: give one of them")
    if local or budget_ms is not None:
        return (local[0] if local else float(budget_ms or 0)), None, others
    if not others:
        raise InputError("give a budget: budget_ms (--budget-ms), or a fleet budget (--budget "
                         "NAME=LIMIT)")
    (first, limit), *rest = others
    return limit, first, rest


def fleet_optimum(budgets: Budgets, value: tuple[float, np.ndarray], top: int
                  ) -> list[tuple[int, ...]]:
    """The ``top`` best z by an additive objective (fixed, V) within every budget, best first:
    every z of a space of at most ``max_enumerated`` where some budget is not additive,
    else a mixed-integer program (scipy's milp: one binary per decision and choice; the
    next best excluded one at a time by a cut). Raises InputError where neither applies."""
    feasibility = budgets.feasibility()
    space = budgets.model.space
    if feasibility.check is not None:
        if space.size > MAX_ENUMERATED:
            raise InputError(f"the exact sampler needs every budget additive, or a space of "
                             f"at most {MAX_ENUMERATED:,} architectures to enumerate")
        Z = every_z(space.n_choices)
        Z = Z[feasibility.fits(Z)]
        v = space.evaluate_z(Z, *value)
        return [tuple(int(c) for c in Z[i]) for i in np.argsort(-v, kind="stable")[:top]]
    return _milp(feasibility, value, top)


def _milp(feasibility, value: tuple[float, np.ndarray], top: int) -> list[tuple[int, ...]]:
    from scipy.optimize import Bounds, LinearConstraint, milp
    allowed = feasibility.allowed
    D, K = allowed.shape
    n = D * K
    rows = [np.kron(np.eye(D), np.ones(K))]  # one choice per decision
    low, high = [np.ones(D)], [np.ones(D)]
    for b in feasibility.additive:
        rows.append(np.where(allowed, np.nan_to_num(b.C, nan=0.0), 0.0).reshape(1, n))
        low.append(np.array([-np.inf]))
        high.append(np.array([b.limit - b.fixed]))
    objective = -np.where(allowed, np.nan_to_num(value[1], nan=0.0), 0.0).ravel()
    found: list[tuple[int, ...]] = []
    for _ in range(4 * top):
        if len(found) == top:
            break
        A = np.vstack(rows)
        result = milp(objective, integrality=np.ones(n), bounds=Bounds(0, allowed.ravel()),
                      constraints=LinearConstraint(A, np.concatenate(low), np.concatenate(high)))
        if result.x is None:
            break
        z = tuple(int(c) for c in result.x.reshape(D, K).argmax(axis=1))
        if feasibility.fits(np.array([z]))[0]:  # not one within the solver's tolerance only
            found.append(z)
        cut = np.zeros(n)
        cut[np.arange(D) * K + np.array(z)] = 1.0
        rows.append(cut[None])
        low.append(np.array([-np.inf]))
        high.append(np.array([D - 1.0]))
    return found


def is_predictor_file(name: str) -> bool:
    """Whether a budget names a fitted predictor file rather than a shipped device."""
    return name.endswith(".json") or os.sep in name


def fleet_budgets(limits: Sequence[tuple[str, float]], space: SearchSpace
                  ) -> tuple[DeviceBudget, ...]:
    """Each ``(name, limit)`` as a DeviceBudget on ``space``: a predictor file (``*.json``),
    which must have been fitted on the space, or a shipped device of the space."""
    from hwnas.devices import device_predictor
    from hwnas.predictors import load_predictor
    out = []
    for name, limit in limits:
        if is_predictor_file(name):
            predictor = load_predictor(name)
            fitted_on = getattr(predictor, "space_", None)
            if fitted_on is not None and fitted_on != space.name:
                raise InputError(f"--budget {name}={limit:g}: the predictor was fitted on "
                                 f"space {fitted_on!r}, the search is over {space.name!r}")
        else:
            predictor = device_predictor(name, space)
        out.append(DeviceBudget(name, predictor, limit))
    return tuple(out)


def fleet_note(fleet: Sequence[DeviceBudget]) -> str:
    """What a result says of its fleet: those budgets are predictions, not verified here."""
    return (f"budgets not verified here (predicted only; verification measures the search's "
            f"own predictor): {', '.join(f'{b.name} <= {b.limit:g} {b.unit}' for b in fleet)}")
