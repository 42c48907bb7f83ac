"""Search modes, samplers (exact against brute force), budgets and objectives."""

import itertools
import json
import os
import subprocess
import sys

import numpy as np
import optuna
import pytest
from helpers import hwnas, synthetic_table, write_table

from hwnas.errors import InputError
from hwnas.predictors import LookupPredictor
from hwnas.search import run_study
from hwnas.spaces import get_space
from hwnas.tables import read_layer_table


@pytest.fixture
def nb201(tmp_path):
    space = get_space("nb201")
    write_table(tmp_path / "nb.csv", space.unique_layers())
    return space, LookupPredictor().fit_table(read_layer_table(tmp_path / "nb.csv"))


def all_z(space):
    return np.array(list(itertools.product(*[range(k) for k in space.n_choices])))


def layer_sums(space, Z, attribute):
    fixed, M = space.cost_matrix(lambda layers: [getattr(ly, attribute) for ly in layers])
    return space.evaluate_z(Z, fixed, M)


def peak_activation(space, Z):
    from hwnas.search._feasible import peak_matrix
    fixed, A = peak_matrix(space)
    return np.maximum(fixed, A[np.arange(A.shape[0]), Z].max(axis=1))


def brute_force(space, predictor, budget, ok=None, k=1):
    """The k best MACs of all z within the budget, through the cost matrices (no decoding)."""
    Z = all_z(space)
    fits = predictor.predict_z(space, Z) <= budget
    if ok is not None:
        fits &= ok(Z)
    return sorted(layer_sums(space, Z[fits], "macs"), reverse=True)[:k]


def test_brute_force_through_cost_matrices_matches_decoding(nb201):
    space, _ = nb201
    Z = space.random_z(20, seed=0)
    archs = [space.decode(z) for z in Z]
    assert list(layer_sums(space, Z, "macs")) == [a.macs for a in archs]
    assert list(peak_activation(space, Z)) == [a.peak_activation_bytes for a in archs]


def test_exact_equals_brute_force_and_beats_the_samplers(nb201):
    space, predictor = nb201
    fixed, C = predictor.cost_matrix(space)
    for share in (0.2, 0.5, 0.8):
        budget = space.min_z(fixed, C)[1] + share * np.nansum(np.nanmax(C, axis=1))
        exact = run_study(space, predictor, budget, sampler="exact")
        assert [c.objective for c in exact.best] == brute_force(space, predictor, budget, k=5)
        assert all(c.predicted_latency_ms <= budget for c in exact.best)
        for sampler in ("tpe", "nsga2", "random"):
            found = run_study(space, predictor, budget, n_trials=40, seed=0, sampler=sampler,
                           enqueue_exact=False)
            assert found.best[0].objective <= exact.best[0].objective, sampler


def test_exact_with_an_activation_budget(nb201):
    space, predictor = nb201
    budget = 1e9
    limit = 4 * 16 * 32 * 32 * 2  # two 16x32x32 tensors: rules out the 3-tensor adds
    exact = run_study(space, predictor, budget, sampler="exact", max_activation_bytes=limit)
    expected = brute_force(space, predictor, budget,
                           ok=lambda Z: peak_activation(space, Z) <= limit, k=5)
    assert [c.objective for c in exact.best] == expected
    assert all(c.peak_activation_bytes <= limit for c in exact.best)


def test_penalty_mode_ranks_by_the_penalised_objective(nb201):
    space, predictor = nb201
    budget = float(np.median(predictor.predict_z(space, space.random_z(100, seed=0))))
    result = run_study(space, predictor, budget, mode="penalty", penalty_weight=-0.5,
                    n_trials=60, seed=1)
    scores = [c.objective * (c.predicted_latency_ms / budget) ** -0.5 for c in result.best]
    assert scores == sorted(scores, reverse=True)
    trial = result.study.best_trial
    assert trial.value == pytest.approx(trial.user_attrs["objective"] * (
        trial.user_attrs["predicted_latency_ms"] / budget) ** -0.5)


def test_pareto_mode_returns_a_feasible_non_dominated_front(nb201):
    space, predictor = nb201
    budget = float(np.median(predictor.predict_z(space, space.random_z(100, seed=0))))
    result = run_study(space, predictor, budget, mode="pareto", sampler="nsga2", n_trials=80,
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
    result = run_study(space, predictor, budget, n_trials=60, seed=4, max_params=params,
                    max_param_bytes=4 * params)
    assert result.best and all(c.params <= params for c in result.best)


def test_an_objective_that_raises_fails_its_trial_and_the_search_goes_on(nb201):
    space, predictor = nb201

    def picky(arch):
        if arch.z[0] == 0:
            raise RuntimeError("cannot train this one")
        return float(arch.macs)

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    result = run_study(space, predictor, 1e9, picky, n_trials=40, seed=5, sampler="random")
    failed = result.study.get_trials(states=(optuna.trial.TrialState.FAIL,))
    assert failed and result.trials == 40 - len(failed)
    assert all(c.z[0] != 0 for c in result.best)


def test_command_with_a_module_objective_and_the_exact_sampler(nb201, tmp_path):
    (tmp_path / "my_objective.py").write_text(
        "def wide(arch):\n    return float(sum(layer.out_channels for layer in arch.layers))\n")
    base = ["--space", "nb201", "--table", tmp_path / "nb.csv", "--budget-ms", "1e9", "--quiet"]
    run = hwnas("search", *base, "--objective", "my_objective:wide", "--trials", "20",
                "--json", tmp_path / "r.json", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["objective"] == "wide" and result["best"][0]["notation"].startswith("|")
    bad = hwnas("search", *base, "--objective", "nowhere:thing", cwd=tmp_path)
    assert bad.returncode == 2 and "cannot load it" in bad.stderr
    exact = hwnas("search", *base, "--sampler", "exact", "--objective", "my_objective:wide",
                  cwd=tmp_path)
    assert exact.returncode == 2 and "needs a built-in objective" in exact.stderr


def test_confidence_constrains_the_upper_quantile(tmp_path):
    from hwnas.predictors import TreePredictor
    space = get_space("nb201")
    write_table(tmp_path / "nb.csv", space.unique_layers())
    tree = TreePredictor(n_estimators=20).fit_table(read_layer_table(tmp_path / "nb.csv"))
    budget = float(np.median(tree.predict_z(space, space.random_z(60, seed=0))))
    result = run_study(space, tree, budget, n_trials=40, seed=6, confidence=0.9)
    assert result.best
    for c in result.best:
        assert c.latency_upper_ms <= budget
        assert c.latency_upper_ms == pytest.approx(tree.predict_z_quantile(space, c.z, 0.9)[0])
    tree.save(tmp_path / "tree.json")
    run = hwnas("search", "--space", "nb201", "--predictor", tmp_path / "tree.json",
                "--budget-ms", budget, "--confidence", "0.9", "--trials", "20", "--quiet")
    assert run.returncode == 0 and "(upper quantile " in run.stdout, run.stderr
    lookup = LookupPredictor().fit_table(read_layer_table(tmp_path / "nb.csv"))
    with pytest.raises(NotImplementedError, match="gives no spread estimate"):
        run_study(space, lookup, budget, n_trials=5, confidence=0.9)


def test_command_plots_the_front(nb201, tmp_path):
    run = hwnas("search", "--space", "nb201", "--table", tmp_path / "nb.csv", "--budget-ms",
                "1e9", "--mode", "pareto", "--sampler", "nsga2", "--trials", "30", "--plot",
                tmp_path / "front.png", "--quiet")
    assert run.returncode == 0, run.stderr
    assert "Pareto front, fastest first" in run.stdout
    assert (tmp_path / "front.png").read_bytes()[:4] == b"\x89PNG"


def test_default_journal_storage_resumes_a_named_study(nb201, tmp_path):
    base = ["--space", "nb201", "--table", tmp_path / "nb.csv", "--budget-ms", "1e9", "--quiet",
            "--study-name", "s1", "--json", tmp_path / "r.json"]
    for trials, total in ((12, 12), (8, 20)):
        run = hwnas("search", *base, "--trials", trials)
        assert run.returncode == 0, run.stderr
        assert json.loads((tmp_path / "r.json").read_text())["trials"] == total
    assert (tmp_path / "s1.journal").exists()


@pytest.mark.postgres
def test_four_workers_share_one_study_on_postgresql(nb201):
    import uuid
    space, predictor = nb201
    url = os.environ["HWNAS_TEST_POSTGRES_URL"]
    name = f"test-{uuid.uuid4().hex[:8]}"
    result = run_study(space, predictor, 1e9, n_trials=80, seed=0, storage=url, study_name=name,
                    workers=4, sampler="random")
    study = optuna.load_study(study_name=name, storage=url)
    trials = study.get_trials(deepcopy=False)
    assert len(trials) == 80 and result.trials == 80
    assert sorted(t.number for t in trials) == list(range(80))  # none lost or duplicated
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    assert study.user_attrs["space"] == "nb201" and study.user_attrs["predictor"] == "lookup"


# --- the feasibility-aware sampler ---------------------------------------------------------

def mobilenet_lookup(tmp_path):
    return get_space("mobilenet"), LookupPredictor().fit_table(synthetic_table(tmp_path))


def tight_budget(space, predictor, share):
    fixed, C = predictor.cost_matrix(space)
    least = space.min_z(fixed, C)[1]
    return least + share * (fixed + np.nanmax(C, axis=1).sum() - least)


def feasible_share(result, budget):
    """The share of complete trials within the budget, up to the rounding of a sum (the
    sampler's tolerance: its repair and the predictor add the same costs in other orders)."""
    trials = result.study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    return np.mean([t.user_attrs["predicted_latency_ms"] <= budget + 1e-9 * max(1.0, budget)
                    for t in trials])


@pytest.mark.parametrize("space_name", ["mobilenet", "nb201"])
@pytest.mark.parametrize("sampler", ["tpe", "nsga2", "random"])
def test_the_wrapped_samplers_propose_only_feasible_trials(tmp_path, space_name, sampler):
    if space_name == "nb201":
        space = get_space("nb201")
        write_table(tmp_path / "nb.csv", space.unique_layers())
        predictor = LookupPredictor().fit_table(read_layer_table(tmp_path / "nb.csv"))
    else:
        space, predictor = mobilenet_lookup(tmp_path)
    budget = tight_budget(space, predictor, 0.2)
    wrapped = run_study(space, predictor, budget, sampler=sampler, n_trials=60, seed=0,
                     enqueue_exact=False)
    assert feasible_share(wrapped, budget) == 1.0 and wrapped.sampler == f"feasible {sampler}"
    assert len(wrapped.study.trials) == 60  # every trial proposed, and every one feasible
    plain = run_study(space, predictor, budget, sampler=sampler, n_trials=60, seed=0,
                   enqueue_exact=False, feasible=False)
    assert feasible_share(plain, budget) < feasible_share(wrapped, budget)


@pytest.mark.nnabla
def test_the_wrapped_sampler_on_a_measured_table(mobilenet_table):
    from hwnas.search import FeasibleSampler, suggest_z
    space = get_space("mobilenet")
    predictor = LookupPredictor().fit_table(mobilenet_table)
    budget = tight_budget(space, predictor, 0.15)
    sampler = FeasibleSampler.for_budget(space, predictor, budget,
                                         optuna.samplers.TPESampler(seed=0), seed=0)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(lambda t: float(space.decode(suggest_z(t, space)).macs), n_trials=40)
    Z = np.array([[t.params[d.name] for d in space.decisions] for t in study.trials])
    assert (predictor.predict_z(space, Z) <= budget).all()


def test_workers_on_a_journal_storage_stay_feasible(tmp_path):
    space, predictor = mobilenet_lookup(tmp_path)
    budget = tight_budget(space, predictor, 0.2)
    result = run_study(space, predictor, budget, n_trials=20, seed=0, workers=2,
                    storage=str(tmp_path / "s.journal"), sampler="random", enqueue_exact=False)
    trials = result.study.get_trials(deepcopy=False)
    assert len(trials) == 20 and result.trials == 20
    assert feasible_share(result, budget) == 1.0


def test_a_resumed_study_with_a_tighter_budget_reports_no_infeasible_rank_1(tmp_path):
    space, predictor = mobilenet_lookup(tmp_path)
    loose, tight = tight_budget(space, predictor, 0.9), tight_budget(space, predictor, 0.1)
    options = dict(storage=str(tmp_path / "s.journal"), study_name="s", seed=0)
    first = run_study(space, predictor, loose, n_trials=12, **options)
    assert first.best[0].predicted_latency_ms > tight  # the old rank 1 is now infeasible
    second = run_study(space, predictor, tight, n_trials=3, **options)
    assert second.trials == 15 and second.best
    assert all(c.predicted_latency_ms <= tight for c in second.best)
    assert any("resumed study 's' with another setting (budget_ms" in n for n in second.notes)
    with pytest.raises(InputError, match="was run with objective = 'macs', not 'params'"):
        run_study(space, predictor, tight, "params", n_trials=5, **options)


def test_exact_top_is_the_best_distinct_architectures(nb201):
    space, predictor = nb201
    budget = tight_budget(space, predictor, 0.4)
    exact = run_study(space, predictor, budget, sampler="exact", top=8)
    assert len({c.z for c in exact.best}) == 8
    assert [c.objective for c in exact.best] == brute_force(space, predictor, budget, k=8)


@pytest.mark.parametrize("sampler", ["tpe", "random", "exact"])
@pytest.mark.parametrize("feasible", [True, False])
def test_a_choice_of_unknown_cost_is_never_chosen(nb201, sampler, feasible):
    space, predictor = nb201
    conv3 = space.decisions[0].choices.index("nor_conv_3x3")
    for layer in space.decisions[0].layers[conv3]:  # a gap in the table: cost unknown
        predictor.values_[layer.key] = float("nan")
    assert np.isnan(predictor.cost_matrix(space)[1][:, conv3]).all()
    result = run_study(space, predictor, 1e9, sampler=sampler, n_trials=30, seed=0, top=10,
                    feasible=feasible)
    assert result.best and all(conv3 not in c.z for c in result.best)
    if sampler != "exact" and feasible:
        assert all(t.params[d.name] != conv3 for t in result.study.trials
                   for d in space.decisions)


@pytest.mark.parametrize("returned, message", [
    ("float('nan')", "returned nan"), ("float('inf')", "returned inf"),
    ("1 / 0", "raised ZeroDivisionError: division by zero")])
def test_an_objective_that_never_works_is_one_clear_error(nb201, returned, message):
    space, predictor = nb201
    namespace = {}
    exec(f"def broken(arch):\n    return {returned}\n", namespace)
    with pytest.raises(InputError, match=f"every trial failed: the objective 'broken' "
                                         f"{message}"):
        run_study(space, predictor, 1e9, namespace["broken"], n_trials=5, seed=0)


@pytest.mark.parametrize("options, message", [
    (dict(workers=0), "workers must be an integer >= 1"),
    (dict(n_trials=0), "n_trials must be an integer >= 1"),
    (dict(top=0), "top must be an integer >= 1"),
    (dict(mode="penalty", penalty_weight=float("nan")), "penalty_weight must be a finite"),
    (dict(max_params=float("inf")), "max_params must be a finite number > 0, got inf"),
])
def test_bad_search_arguments_name_themselves(nb201, options, message):
    space, predictor = nb201
    with pytest.raises(InputError, match=message):
        run_study(space, predictor, 1e9, **options)


@pytest.mark.parametrize("storage", ["foo://bar", "sqlite:///{tmp}/missing/dir/s.db",
                                     "postgresql://nobody@127.0.0.1:1/none"])
def test_a_bad_storage_is_one_line(nb201, tmp_path, storage):
    storage = storage.format(tmp=tmp_path)
    run = hwnas("search", "--space", "nb201", "--table", tmp_path / "nb.csv", "--budget-ms",
                "1e9", "--trials", "3", "--storage", storage, "--quiet")
    assert run.returncode == 2, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and f"storage {storage!r}: cannot open the study" in lines[0], lines
    assert not (tmp_path / "missing").exists()


def test_ctrl_c_says_what_was_kept_and_how_to_resume(nb201, tmp_path):
    import signal
    import time
    (tmp_path / "slow.py").write_text(
        "import pathlib, time\n"
        "def slow(arch):\n"
        f"    pathlib.Path({str(tmp_path / 'started')!r}).touch()\n"
        "    time.sleep(0.2)\n"
        "    return float(arch.macs)\n")
    process = subprocess.Popen(
        [sys.executable, "-m", "hwnas.search", "--space", "nb201", "--table",
         str(tmp_path / "nb.csv"), "--budget-ms", "1e9", "--trials", "500", "--objective",
         "slow:slow", "--study-name", "kept", "--json", str(tmp_path / "r.json"), "--quiet"],
        stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(
            [str(tmp_path), os.environ.get("PYTHONPATH", "")])})
    for _ in range(600):
        if (tmp_path / "started").exists():
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    lines = err.strip().splitlines()
    assert process.returncode == 130 and len(lines) == 1, err
    assert "interrupted after" in lines[0] and "--study-name kept" in lines[0], err
    assert (tmp_path / "kept.journal").exists()


def test_bounded_rejection_where_latency_is_not_additive(tmp_path):
    space = get_space("nb201-pruned")  # which layers run depends on several decisions
    write_table(tmp_path / "nb.csv", get_space("nb201").unique_layers())
    predictor = LookupPredictor().fit_table(read_layer_table(tmp_path / "nb.csv"))
    budget = float(np.quantile(predictor.predict_z(space, space.random_z(200, seed=0)), 0.2))
    result = run_study(space, predictor, budget, sampler="tpe", n_trials=30, seed=0)
    # not additive, but small enough to enumerate: its least latency is known (issue 34)
    from hwnas.spaces._exact import every_z
    least = predictor.predict_z(space, every_z(space.n_choices)).min()
    assert result.min_latency_ms == pytest.approx(least) and result.best
    assert feasible_share(result, budget) >= 0.95
    assert all(c.predicted_latency_ms <= budget for c in result.best)


# --- the settings object and the messages of its parts ---------------------------------------

def test_settings_are_one_object_checked_on_creation(nb201):
    from hwnas.search import SearchSettings
    space, predictor = nb201
    budget = tight_budget(space, predictor, 0.4)
    settings = SearchSettings(sampler="random", n_trials=20, seed=3, enqueue_exact=False)
    a = run_study(space, predictor, budget, settings=settings)
    b = run_study(space, predictor, budget, sampler="random", n_trials=20, seed=3,
               enqueue_exact=False)
    assert [c.z for c in a.best] == [c.z for c in b.best] and a.trials == 20
    with pytest.raises(InputError, match="either settings= or the options"):
        run_study(space, predictor, budget, settings=settings, n_trials=5)
    with pytest.raises(InputError, match="unexpected keyword argument 'n_trial'"):
        run_study(space, predictor, budget, n_trial=5)
    for options, message in [(dict(workers=257), r"workers must be an integer >= 1 \(at most"),
                             (dict(n_trials=10**8), r"n_trials must be an integer >= 1"),
                             (dict(confidence=1.5), r"confidence must be in \(0, 1\)"),
                             (dict(objective="flops"), "unknown objective 'flops'"),
                             (dict(workers=2), "workers > 1 need a shared storage")]:
        with pytest.raises(InputError, match=message):
            SearchSettings(**options)


def test_the_feasible_sampler_is_built_one_way(nb201):
    from hwnas.search import Budgets, FeasibleSampler, LatencyModel
    space, predictor = nb201
    with pytest.raises(InputError, match="use FeasibleSampler.for_budget"):
        FeasibleSampler(space)
    budgets = Budgets(LatencyModel(space, predictor), 5.0, max_params=10**6)
    assert FeasibleSampler(budgets).budgets is budgets
    sampler = FeasibleSampler.for_budget(space, predictor, 5.0, max_params=10**6)
    assert sampler.budgets.limits == budgets.limits and sampler.budgets.latency_ms == 5.0


def test_for_budget_refuses_a_budget_it_does_not_know(nb201):
    from hwnas.search import FeasibleSampler
    space, predictor = nb201
    with pytest.raises(InputError, match="unknown budget 'max_flops'"):
        FeasibleSampler.for_budget(space, predictor, 5.0, max_flops=10)
    sampler = FeasibleSampler.for_budget(space, predictor, 5.0, max_activation_bytes=10**9)
    assert sampler.budgets.limits["peak_activation_bytes"] == 10**9


def test_a_search_problem_holds_one_budget_and_the_least_latency(nb201):
    from hwnas.search import BudgetError, SearchSettings
    from hwnas.search._study import SearchProblem, rank
    space, predictor = nb201
    least = float(predictor.predict_z(space, all_z(space)).min())
    budget = least * 1.5
    problem = SearchProblem.build(space, predictor, budget, SearchSettings(seed=0))
    assert problem.min_latency_ms == pytest.approx(least)
    assert problem.budgets.latency_ms == budget and problem.goal.name == "macs"
    penalty = SearchProblem.build(space, predictor, budget, SearchSettings(mode="penalty"))
    assert penalty.budgets.latency_ms is None and penalty.budget_ms == budget
    assert penalty.penalised(2.0, budget * 2) == pytest.approx(2.0 * 2 ** -0.07)
    with pytest.raises(BudgetError, match=f"is {least:.3f} ms"):
        SearchProblem.build(space, predictor, least * 0.99, SearchSettings())
    result = run_study(space, predictor, budget, n_trials=10, seed=0)
    again = rank(result.study, problem)
    assert [c.z for c in again.best] == [c.z for c in result.best]
    assert again.min_latency_ms == result.min_latency_ms == problem.min_latency_ms


def test_an_error_raised_while_ctrl_c_is_handled_counts_as_ctrl_c():
    from hwnas.search._study import _from_ctrl_c
    try:  # as a journal storage's lock release, cut short by Ctrl-C
        try:
            raise KeyboardInterrupt
        finally:
            raise FileNotFoundError("w.journal.lock.rename")
    except FileNotFoundError as e:
        assert _from_ctrl_c(e)
    assert not _from_ctrl_c(FileNotFoundError("w.journal"))


def test_memory_budgets_in_kib_keep_their_earlier_spellings():
    from hwnas.search.__main__ import parser
    p = parser()
    new = p.parse_args(["--budget-ms", "5", "--max-param-kib", "3", "--max-activation-kib", "2"])
    old = p.parse_args(["--budget-ms", "5", "--max-param-kb", "3", "--max-activation-kb", "2"])
    assert (new.max_param_kib, new.max_activation_kib) == (old.max_param_kib,
                                                           old.max_activation_kib) == (3, 2)
    assert "--max-param-kib" in p.format_help() and "--max-param-kb " not in p.format_help()


def test_an_activation_budget_that_leaves_nothing_says_so(tmp_path):
    from hwnas.search._feasible import peak_matrix
    space, predictor = mobilenet_lookup(tmp_path)
    fixed_bytes, A = peak_matrix(space)
    for d, c in np.argwhere(A > fixed_bytes):  # the choices over the activation budget...
        for layer in space.decisions[d].layers[c]:
            predictor.values_[layer.key] = 1e-6  # ...are the fastest
    fixed, C = predictor.cost_matrix(space)
    least = space.min_z(fixed, C)[1]
    least_within = fixed + np.where(A <= fixed_bytes, C, np.inf).min(axis=1).sum()
    assert least < least_within
    with pytest.raises(InputError, match=f"within max_activation_bytes = {fixed_bytes:g} the "
                                         f"smallest predicted latency is {least_within:.3f} ms"):
        run_study(space, predictor, (least + least_within) / 2, sampler="exact",
               max_activation_bytes=int(fixed_bytes))


def test_a_storage_error_hides_the_password(nb201):
    space, predictor = nb201
    with pytest.raises(InputError) as error:
        run_study(space, predictor, 1e9, n_trials=1,
               storage="postgresql://me:s3cret@127.0.0.1:1/none")
    assert "s3cret" not in str(error.value) and "postgresql://me:***@127.0.0.1:1/none" in \
        str(error.value)


def test_command_bounds_for_workers_and_trials():
    import argparse

    from hwnas import _cli
    assert _cli.workers("256") == 256 and _cli.trials("10000000") == 10_000_000
    for parse, text in [(_cli.workers, "257"), (_cli.workers, "0"),
                        (_cli.trials, "10000001"), (_cli.positive_int, "0")]:
        with pytest.raises(argparse.ArgumentTypeError):
            parse(text)
