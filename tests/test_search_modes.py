"""Search modes, samplers (exact against brute force), budgets and objectives."""

import itertools
import json
import os
import subprocess
import sys

import numpy as np
import optuna
import pytest

from test_tables import write_table
from hwnas.predictors import LookupPredictor
from hwnas.search import search
from hwnas.spaces import get_space
from hwnas.tables import read_layer_table


@pytest.fixture
def nb201(tmp_path):
    space = get_space("nb201")
    write_table(tmp_path / "nb.csv", space.unique_layers())
    return space, LookupPredictor().fit(read_layer_table(tmp_path / "nb.csv"))


def brute_force(space, predictor, budget, value=lambda arch: arch.macs, ok=lambda arch: True):
    Z = np.array(list(itertools.product(*[range(k) for k in space.n_choices])))
    lat = predictor.predict_z(space, Z)
    best = None
    for z, ms in zip(Z, lat):
        if ms <= budget:
            arch = space.decode(z)
            if ok(arch) and (best is None or value(arch) > best[0]):
                best = (value(arch), ms)
    return best


def test_exact_equals_brute_force_and_beats_the_samplers(nb201):
    space, predictor = nb201
    fixed, C = predictor.cost_matrix(space)
    for share in (0.2, 0.5, 0.8):
        budget = space.min_z(fixed, C)[1] + share * np.nansum(np.nanmax(C, axis=1))
        exact = search(space, predictor, budget, sampler="exact")
        assert exact.best[0].objective == brute_force(space, predictor, budget)[0]
        assert all(c.predicted_latency_ms <= budget for c in exact.best)
        for sampler in ("tpe", "nsga2", "random"):
            found = search(space, predictor, budget, n_trials=40, seed=0, sampler=sampler)
            assert found.best[0].objective <= exact.best[0].objective, sampler


def test_exact_with_an_activation_budget(nb201):
    space, predictor = nb201
    budget = 1e9
    limit = 4 * 16 * 32 * 32 * 2  # two 16x32x32 tensors: rules out the 3-tensor adds
    exact = search(space, predictor, budget, sampler="exact", max_activation_bytes=limit)
    expected = brute_force(space, predictor, budget,
                           ok=lambda a: a.peak_activation_bytes <= limit)
    assert exact.best[0].objective == expected[0]
    assert all(c.peak_activation_bytes <= limit for c in exact.best)


def test_penalty_mode_ranks_by_the_penalised_objective(nb201):
    space, predictor = nb201
    budget = float(np.median(predictor.predict_z(space, space.random_z(100, seed=0))))
    result = search(space, predictor, budget, mode="penalty", penalty_weight=-0.5,
                    n_trials=60, seed=1)
    scores = [c.objective * (c.predicted_latency_ms / budget) ** -0.5 for c in result.best]
    assert scores == sorted(scores, reverse=True)
    trial = result.study.best_trial
    assert trial.value == pytest.approx(trial.user_attrs["objective"] * (
        trial.user_attrs["predicted_latency_ms"] / budget) ** -0.5)


def test_pareto_mode_returns_a_feasible_non_dominated_front(nb201):
    space, predictor = nb201
    budget = float(np.median(predictor.predict_z(space, space.random_z(100, seed=0))))
    result = search(space, predictor, budget, mode="pareto", sampler="nsga2", n_trials=80,
                    seed=2)
    front = [(c.predicted_latency_ms, c.objective) for c in result.best]
    assert front == sorted(front) and len(front) >= 2
    for lat, obj in front:
        assert lat <= budget
        assert not any(l2 <= lat and o2 >= obj and (l2, o2) != (lat, obj) for l2, o2 in front)


def test_parameter_budgets_hold_for_every_reported_architecture(nb201):
    space, predictor = nb201
    budget = 1e9
    params = sorted(space.decode(z).params for z in space.random_z(50, seed=3))[10]
    result = search(space, predictor, budget, n_trials=60, seed=4, max_params=params,
                    max_param_bytes=4 * params)
    assert result.best and all(c.params <= params for c in result.best)


def test_an_objective_that_raises_fails_its_trial_and_the_search_goes_on(nb201):
    space, predictor = nb201

    def picky(arch):
        if arch.z[0] == 0:
            raise RuntimeError("cannot train this one")
        return float(arch.macs)

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    result = search(space, predictor, 1e9, picky, n_trials=40, seed=5, sampler="random")
    failed = result.study.get_trials(states=(optuna.trial.TrialState.FAIL,))
    assert failed and result.trials == 40 - len(failed)
    assert all(c.z[0] != 0 for c in result.best)


def test_command_with_a_module_objective_and_the_exact_sampler(nb201, tmp_path):
    (tmp_path / "my_objective.py").write_text(
        "def wide(arch):\n    return float(sum(layer.out_channels for layer in arch.layers))\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    base = [sys.executable, "-m", "hwnas.search", "--space", "nb201", "--table",
            str(tmp_path / "nb.csv"), "--budget-ms", "1e9", "--quiet"]
    run = subprocess.run(base + ["--objective", "my_objective:wide", "--trials", "20",
                                 "--json", str(tmp_path / "r.json")],
                         capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stderr
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["objective"] == "wide" and result["best"][0]["notation"].startswith("|")
    bad = subprocess.run(base + ["--objective", "nowhere:thing"], capture_output=True,
                         text=True, env=env)
    assert bad.returncode == 2 and "cannot load it" in bad.stderr
    exact = subprocess.run(base + ["--sampler", "exact", "--objective", "my_objective:wide"],
                           capture_output=True, text=True, env=env)
    assert exact.returncode == 2 and "needs a built-in objective" in exact.stderr


def test_confidence_constrains_the_upper_quantile(tmp_path):
    from hwnas.predictors import TreePredictor
    space = get_space("nb201")
    write_table(tmp_path / "nb.csv", space.unique_layers())
    tree = TreePredictor(n_estimators=20).fit(read_layer_table(tmp_path / "nb.csv"))
    budget = float(np.median(tree.predict_z(space, space.random_z(60, seed=0))))
    result = search(space, tree, budget, n_trials=40, seed=6, confidence=0.9)
    assert result.best
    for c in result.best:
        assert c.latency_upper_ms <= budget
        assert c.latency_upper_ms == pytest.approx(tree.predict_z_quantile(space, c.z, 0.9)[0])
    tree.save(tmp_path / "tree.json")
    run = subprocess.run([sys.executable, "-m", "hwnas.search", "--space", "nb201",
                          "--predictor", str(tmp_path / "tree.json"), "--budget-ms", str(budget),
                          "--confidence", "0.9", "--trials", "20", "--quiet"],
                         capture_output=True, text=True)
    assert run.returncode == 0 and "(upper quantile " in run.stdout, run.stderr
    lookup = LookupPredictor().fit(read_layer_table(tmp_path / "nb.csv"))
    with pytest.raises(NotImplementedError, match="gives no spread estimate"):
        search(space, lookup, budget, n_trials=5, confidence=0.9)


def test_command_plots_the_front(nb201, tmp_path):
    run = subprocess.run([sys.executable, "-m", "hwnas.search", "--space", "nb201", "--table",
                          str(tmp_path / "nb.csv"), "--budget-ms", "1e9", "--mode", "pareto",
                          "--sampler", "nsga2", "--trials", "30", "--plot",
                          str(tmp_path / "front.png"), "--quiet"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "Pareto front, fastest first" in run.stdout
    assert (tmp_path / "front.png").read_bytes()[:4] == b"\x89PNG"


def test_default_journal_storage_resumes_a_named_study(nb201, tmp_path):
    base = [sys.executable, "-m", "hwnas.search", "--space", "nb201", "--table",
            str(tmp_path / "nb.csv"), "--budget-ms", "1e9", "--quiet", "--study-name", "s1",
            "--json", str(tmp_path / "r.json")]
    for trials, total in ((12, 12), (8, 20)):
        run = subprocess.run(base + ["--trials", str(trials)], capture_output=True, text=True)
        assert run.returncode == 0, run.stderr
        assert json.loads((tmp_path / "r.json").read_text())["trials"] == total
    assert (tmp_path / "s1.journal").exists()


@pytest.mark.postgres
def test_four_workers_share_one_study_on_postgresql(nb201):
    import uuid
    space, predictor = nb201
    url = os.environ["HWNAS_TEST_POSTGRES_URL"]
    name = f"test-{uuid.uuid4().hex[:8]}"
    result = search(space, predictor, 1e9, n_trials=200, seed=0, storage=url, study_name=name,
                    workers=4, sampler="random")
    study = optuna.load_study(study_name=name, storage=url)
    trials = study.get_trials(deepcopy=False)
    assert len(trials) == 200 and result.trials == 200
    assert sorted(t.number for t in trials) == list(range(200))  # none lost or duplicated
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    assert study.user_attrs["space"] == "nb201" and study.user_attrs["predictor"] == "lookup"
