"""What the exact machinery knows: the least latency of a space that is not additive but can be
enumerated, and memory budgets that are sums over decisions (parameters) in the exact solver."""

import json

import numpy as np
import pytest
from helpers import hwnas

from hwnas.devices import device_predictor
from hwnas.predictors import MeasuredPredictor
from hwnas.search import SearchSettings
from hwnas.search._study import SearchProblem
from hwnas.spaces import get_space
from hwnas.spaces._exact import every_z, knapsack


def test_a_table_of_every_cell_knows_the_least_latency():
    run = hwnas("search", "--space", "nb201", "--device", "titan_rtx_1", "--budget-ms", "1",
                "--quiet")
    assert run.returncode == 1
    assert "the smallest predicted latency this space can reach is 2.486 ms" in run.stderr
    assert "not known" not in run.stderr


def test_the_least_is_known_for_any_predictor_that_prices_every_z_of_a_small_space():
    """The class: a predictor that is not additive, over a space small enough to enumerate,
    knows its least (a measured table, a transfer fit of a device that drops cells); one that
    cannot price every z (a table lacking cells) does not claim to."""
    space = get_space("nb201")
    full = device_predictor("pixel3", "nb201")
    problem = SearchProblem.build(space, full, 50.0, SearchSettings())
    truth = full.predict_z(space, every_z(space.n_choices)).min()
    assert problem.min_latency_ms == pytest.approx(truth)
    from hwnas.devices import load_device
    part = MeasuredPredictor().fit_table(load_device("pixel3", "nb201").select(range(100)), space)
    assert SearchProblem.build(space, part, 50.0, SearchSettings()).min_latency_ms is None


@pytest.mark.parametrize("extras", [1, 2])
def test_the_exact_solver_meets_every_budget_and_finds_the_k_best(extras):
    """Against enumeration: random additive costs, one or two extra budgets (params, param
    bytes), the k best values within all of them."""
    rng = np.random.default_rng(extras)
    for trial in range(60):
        D, K = 5, 4
        cost, value = rng.uniform(0, 1, (D, K)), rng.uniform(0, 1, (D, K))
        cost[0, 3] = value[0, 3] = np.nan  # a decision with fewer choices
        memory = [rng.uniform(0, 1, (D, K)) for _ in range(extras)]
        Z = every_z([3, 4, 4, 4, 4])
        rows = np.arange(D)
        budget, limits = rng.uniform(1, 3), rng.uniform(1.2, 3, extras)
        ok = cost[rows, Z].sum(1) <= budget
        for M, limit in zip(memory, limits):
            ok &= M[rows, Z].sum(1) <= limit
        for keep in (1, 3):
            found = knapsack(fixed_cost=0.0, cost=cost, fixed_value=0.0, value=value,
                             budget=budget, keep=keep,
                             extra=[(0.0, M, limit) for M, limit in zip(memory, limits)])
            best = np.sort(value[rows, Z].sum(1)[ok])[::-1][:keep]
            assert np.allclose([v for _, v, _ in found[:keep]], best), (trial, keep)
            for _, _, z in found:
                assert all(M[rows, list(z)].sum() <= limit + 1e-12
                           for M, limit in zip(memory, limits))


@pytest.mark.parametrize("space, budget, memory", [
    ("nb201", "5", ["--max-param-kib", "500"]),  # enumerated: a measured table
    ("fbnet", "9", ["--max-param-kib", "5000", "--max-params", "1300000"]),  # the solver
])
def test_the_exact_sampler_takes_parameter_budgets(tmp_path, space, budget, memory):
    run = hwnas("search", "--space", space, "--device", "titan_rtx_1", "--budget-ms", budget,
                "--sampler", "exact", *memory, "--quiet", "--json", tmp_path / "r.json")
    assert run.returncode == 0, run.stderr
    best = json.loads((tmp_path / "r.json").read_text())["best"]
    kib = float(memory[1])
    assert best and all(b["param_bytes"] <= kib * 1024 and b["predicted_latency_ms"] <= float(
        budget) for b in best)
    if "--max-params" in memory:
        assert all(b["params"] <= 1_300_000 for b in best)
    if space == "nb201":  # the best by enumeration
        sp, p = get_space("nb201"), device_predictor("titan_rtx_1", "nb201")
        Z = every_z(sp.n_choices)
        macs = sp.evaluate_z(Z, *sp.cost_matrix(lambda ls: [ly.macs for ly in ls]))
        bytes_ = sp.evaluate_z(Z, *sp.cost_matrix(lambda ls: [ly.param_bytes for ly in ls]))
        ok = (p.predict_z(sp, Z) <= 5) & (bytes_ <= kib * 1024)
        assert best[0]["macs"] == macs[ok].max()
