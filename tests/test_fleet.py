"""Budgets for a fleet: one search under a limit on each of several predictors; the exact
optimum under all of them against brute force on nb201; the command's --budget."""

import json

import numpy as np
import pytest
from helpers import hwnas

from hwnas.devices import device_predictor, load_device
from hwnas.errors import InputError
from hwnas.predictors import AdditivePredictor
from hwnas.search import run_study
from hwnas.search._fleet import DeviceBudget, split_budgets
from hwnas.spaces import get_space


def every_z(space):
    return np.stack(np.meshgrid(*map(np.arange, space.n_choices), indexing="ij"),
                    axis=-1).reshape(-1, len(space.n_choices))


def brute_force(space, budgets, top):
    """The top MACs of every z within every (predictor, limit)."""
    Z = every_z(space)
    ok = np.ones(len(Z), dtype=bool)
    for predictor, limit in budgets:
        ok &= predictor.predict_z(space, Z) <= limit
    macs = np.array([space.decode(z).macs for z in Z[ok]])
    return sorted(macs, reverse=True)[:top]


@pytest.mark.parametrize("kind", ["additive", "measured"])
def test_exact_optimum_under_three_budgets_is_the_brute_force_one_on_nb201(kind):
    space = get_space("nb201")
    names = ["pixel3", "titan_rtx_1", "gold_6240"]
    if kind == "additive":  # cost matrices: the integer program
        predictors = [AdditivePredictor().fit_table(load_device(n, "nb201"), space) for n in names]
    else:  # each cell's measured latency: every z enumerated
        predictors = [device_predictor(n, "nb201") for n in names]
    limits = [12.0, 6.0, 9.0]
    fleet = tuple(DeviceBudget(n, p, lim) for n, p, lim in zip(names[1:], predictors[1:],
                                                                  limits[1:]))
    result = run_study(space, predictors[0], limits[0], sampler="exact", top=3, fleet=fleet)
    expected = brute_force(space, list(zip(predictors, limits)), 3)
    assert [c.objective for c in result.best] == pytest.approx(expected)
    for c in result.best:
        assert c.predicted_latency_ms <= limits[0]
        assert [name for name, *_ in c.budgets] == names[1:]
        assert all(value <= limit for _, value, limit, _ in c.budgets)
    # the budgets bind: without them the optimum is larger
    alone = run_study(space, predictors[0], limits[0], sampler="exact", top=1)
    assert alone.best[0].objective > result.best[0].objective


def test_default_sampler_keeps_every_trial_within_every_budget_on_fbnet():
    space = get_space("fbnet")
    fleet = (DeviceBudget("titan_rtx_1", device_predictor("titan_rtx_1", "fbnet"), 8.0),
             DeviceBudget("gold_6240", device_predictor("gold_6240", "fbnet"), 26.0))
    pixel3 = device_predictor("pixel3", "fbnet")
    result = run_study(space, pixel3, 15.0, n_trials=60, seed=0, fleet=fleet)
    trials = result.study.get_trials()
    assert result.trials == result.feasible_trials == 60
    for t in trials:
        assert t.user_attrs["predicted_latency_ms"] <= 15.0 + 1e-9
        assert t.user_attrs["predicted titan_rtx_1"] <= 8.0 + 1e-9
        assert t.user_attrs["predicted gold_6240"] <= 26.0 + 1e-9
    exact = run_study(space, pixel3, 15.0, sampler="exact", top=1, fleet=fleet)
    assert result.best[0].objective <= exact.best[0].objective + 1e-6
    assert any(n.startswith("budgets not verified here") for n in result.notes)


def test_pareto_mode_trades_the_objective_against_the_worst_budget_ratio():
    space = get_space("nb201")
    fleet = (DeviceBudget("titan_rtx_1", device_predictor("titan_rtx_1", "nb201"), 8.0),)
    pixel3 = AdditivePredictor().fit_table(load_device("pixel3", "nb201"), space)
    result = run_study(space, pixel3, 20.0, mode="pareto", n_trials=80, seed=1, fleet=fleet)
    worst = [max(c.predicted_latency_ms / 20.0, c.budgets[0][1] / 8.0) for c in result.best]
    assert len(result.best) >= 2 and max(worst) <= 1.0 + 1e-9
    assert worst == sorted(worst)  # the front by worst ratio, with a rising objective
    objectives = [c.objective for c in result.best]
    assert objectives == sorted(objectives) and objectives[0] < objectives[-1]


def test_budget_options_are_checked():
    assert split_budgets(["pixel3=15", "local=5"], None) == (5.0, None, [("pixel3", 15.0)])
    assert split_budgets(["pixel3=15", "p.json=3"], None) == (15.0, "pixel3",
                                                               [("p.json", 3.0)])
    for specs, budget_ms, message in [
            (["pixel3"], None, "expected NAME=LIMIT"), (["pixel3=-1"], None, "limit > 0"),
            (["pixel3=1", "pixel3=2"], None, "given twice"),
            (["local=5"], 5.0, "give one of them"), ([], None, "give a budget")]:
        with pytest.raises(InputError, match=message):
            split_budgets(specs, budget_ms)


def test_search_command_with_a_fleet_of_devices_and_an_energy_predictor(tmp_path):
    table = load_device("titan_rtx_1", "fbnet")
    space = get_space("fbnet")
    energy = tmp_path / "energy.csv"  # a table with another target column: millijoules
    energy.write_text("space,z,latency_ms,energy_mj\n" + "".join(
        f"fbnet,{'-'.join(map(str, z))},{v},{3 * v}\n"
        for z, v in zip(table.z[:300], table.values()[:300])))
    fitted = tmp_path / "energy.json"
    fit = hwnas("fit", "--model", "additive", "--networks", energy, "--target", "energy_mj",
                "--device", "my board", "--out", fitted)
    assert fit.returncode == 0, fit.stderr
    out = tmp_path / "result.json"
    run = hwnas("search", "--space", "fbnet", "--budget", "pixel3=15", "--budget",
                "titan_rtx_1=8", "--budget", f"{fitted}=25", "--trials", "30", "--seed", "0",
                "--top", "2", "--json", out, "--quiet")
    assert run.returncode == 0, run.stderr
    assert "budgets: titan_rtx_1" in run.stdout and " mJ" in run.stdout
    assert "budgets not verified here" in run.stdout
    doc = json.loads(out.read_text())
    for entry in doc["best"]:
        assert entry["predicted_latency_ms"] <= 15
        budgets = {b["name"]: b for b in entry["budgets"]}
        assert budgets["titan_rtx_1"]["predicted"] <= 8
        assert budgets[str(fitted)]["unit"] == "mJ" and budgets[str(fitted)]["predicted"] <= 25
    bad = hwnas("search", "--space", "fbnet", "--budget", "pixel3=15", "--budget",
                "nosuchdevice=3", "--trials", "5")
    assert bad.returncode == 2 and "no shipped device 'nosuchdevice'" in bad.stderr
    space.check_z(doc["best"][0]["z"])
