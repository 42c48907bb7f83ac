import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from helpers import FAST_ARGS, HAVE_NNABLA, SPACE_YAML, hwnas, synthetic_table

from hwnas.predictors import LookupPredictor
from hwnas.profile._stats import STATISTIC
from hwnas.search import BudgetError, run_study
from hwnas.spaces import get_space
from hwnas.tables import read_network_table


@pytest.fixture
def predictor(tmp_path):
    return LookupPredictor().fit_table(synthetic_table(tmp_path))


def budget_between(predictor, share):
    space = get_space("mobilenet")
    fixed, C = predictor.cost_matrix(space)
    least = space.min_z(fixed, C)[1]
    most = fixed + np.nanmax(C, axis=1).sum()
    return least + share * (most - least)


def test_every_reported_architecture_meets_the_budget(predictor):
    space = get_space("mobilenet")
    budget = budget_between(predictor, 0.3)
    result = run_study(space, predictor, budget, n_trials=150, seed=0)
    assert result.trials == 150 and 1 <= len(result.best) <= 5
    assert result.feasible_trials >= len(result.best)
    assert len({c.z for c in result.best}) == len(result.best)
    objectives = [c.objective for c in result.best]
    assert objectives == sorted(objectives, reverse=True)
    for c in result.best:
        assert c.predicted_latency_ms <= budget
        assert c.predicted_latency_ms == pytest.approx(predictor.predict_z(space, c.z)[0])
        assert c.objective == space.decode(c.z).macs
    # the search beats the least-latency architecture, which it is seeded with
    z_min, _ = space.min_z(*predictor.cost_matrix(space))
    assert result.best[0].objective > space.decode(z_min).macs


def test_same_seed_same_search(predictor):
    space = get_space("mobilenet")
    budget = budget_between(predictor, 0.5)
    a = run_study(space, predictor, budget, n_trials=60, seed=7)
    b = run_study(space, predictor, budget, n_trials=60, seed=7)
    assert [c.z for c in a.best] == [c.z for c in b.best]


def test_custom_objective(predictor):
    space = get_space("mobilenet")

    def fewest_params(arch):
        return -arch.params

    result = run_study(space, predictor, budget_between(predictor, 1.0), fewest_params,
                    n_trials=40, seed=1)
    assert result.objective == "fewest_params"
    assert result.best[0].objective == -result.best[0].params


def test_impossible_budget_says_the_least_reachable_latency(predictor):
    space = get_space("mobilenet")
    least = space.min_z(*predictor.cost_matrix(space))[1]
    with pytest.raises(BudgetError, match=f"smallest predicted latency .* is {least:.3f} ms"):
        run_study(space, predictor, least * 0.99, n_trials=10)


def test_study_records_its_settings(predictor):
    result = run_study(get_space("mobilenet"), predictor, budget_between(predictor, 0.5),
                    n_trials=5)
    attrs = result.study.user_attrs
    assert attrs["space"] == "mobilenet" and attrs["objective"] == "macs"
    assert "cpu: test" in attrs["device"]


def test_command_with_a_table_writes_json(predictor, tmp_path):
    budget = budget_between(predictor, 0.3)
    out = tmp_path / "result.json"
    run = hwnas("search", "--budget-ms", str(budget), "--table", str(tmp_path / "layers.csv"),
                "--trials", "60", "--seed", "0", "--json", str(out), "--quiet")
    assert run.returncode == 0, run.stderr
    assert "predicted_ms" in run.stdout and "MMACs" in run.stdout
    result = json.loads(out.read_text())
    assert result["budget_ms"] == budget and result["space"] == "mobilenet"
    assert result["backend"] == "nnabla" and result["trials"] == 60
    assert result["device"]["device"] == "cpu: test" and result["device"]["threads"] == 1
    best = result["best"]
    assert best and all(b["predicted_latency_ms"] <= budget for b in best)
    assert [b["objective"] for b in best] == sorted((b["objective"] for b in best),
                                                    reverse=True)
    assert "-".join(map(str, best[0]["z"])) in run.stdout
    # the table's device ("cpu: test") is not this machine
    assert result["verified"] is False and "not verified" in run.stdout
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # renamed
    assert result["verification"]["note"].startswith("cannot be verified here: the predictor "
                                                     "is for nnabla 1.39.0 on cpu: test")


def test_command_exports_the_architectures_as_onnx(predictor, tmp_path):
    import onnxruntime as ort
    run = hwnas("search", "--budget-ms", str(budget_between(predictor, 0.6)), "--table",
                str(tmp_path / "layers.csv"), "--trials", "40", "--top", "2",
                "--export-onnx", str(tmp_path / "onnx"), "--json",
                str(tmp_path / "r.json"), "--quiet", "--seed", "0")
    assert run.returncode == 0, run.stderr
    best = json.loads((tmp_path / "r.json").read_text())["best"]
    files = sorted((tmp_path / "onnx").glob("mobilenet-*.onnx"))
    assert [f.name for f in files] == [
        f"mobilenet-{rank}-{'-'.join(map(str, b['z']))}.onnx" for rank, b in enumerate(best, 1)]
    session = ort.InferenceSession(str(files[0]), providers=["CPUExecutionProvider"])
    x = np.zeros((1, 3, 32, 32), np.float32)
    assert session.run(None, {"x": x})[0].shape == (1, 10)


@pytest.mark.parametrize("args, message", [
    (["--budget-ms", "0"], "argument --budget-ms: must be > 0"),
    (["--budget-ms", "-3"], "must be > 0"),
    (["--budget-ms", "fast"], "'fast' is not a number"),
    (["--budget-ms", "5", "--space", "resnet"], "unknown space 'resnet'"),
    (["--budget-ms", "5", "--backend", "tvm"], "invalid choice: 'tvm'"),
    (["--budget-ms", "5", "--table", "absent.csv"], "absent.csv: cannot read the table"),
    (["--budget-ms", "5", "--table", "absent.csv", "--remeasure"],
     "--remeasure and --table contradict each other"),
])
def test_bad_arguments_get_one_line(args, message):
    run = hwnas("search", *args)
    assert run.returncode == 2
    assert message in run.stderr and len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert "Traceback" not in run.stderr


def test_impossible_budget_exits_non_zero(tmp_path, predictor):
    run = hwnas("search", "--budget-ms", "0.001", "--table", str(tmp_path / "layers.csv"))
    assert run.returncode == 1
    assert "smallest predicted latency this space can reach is" in run.stderr


@pytest.mark.skipif(HAVE_NNABLA, reason="checks the message where nnabla is not installed")
def test_nnabla_missing_says_what_to_do():
    run = hwnas("search", "--budget-ms", "5", "--backend", "nnabla")
    assert run.returncode == 2 and len(run.stderr.strip().splitlines()) == 1
    assert "needs nnabla" in run.stderr and "Python <= 3.10" in run.stderr


@pytest.mark.nnabla
def test_default_flow_on_nnabla_smoke(tmp_path):
    """The README's main command as a real process on nnabla, with FAST's few runs: what holds
    under any load (the flow's guarantees are tested on the simulated device,
    test_flow_simulated.py)."""
    cache = tmp_path / "hwcache"
    first = subprocess.run([sys.executable, "-m", "hwnas.search", "--budget-ms", "5", "--trials",
                            "40", "--seed", "0", "--json", str(tmp_path / "r.json"), *FAST_ARGS],
                           capture_output=True, text=True,
                           env={**os.environ, "HWNAS_CACHE": str(cache)})
    assert first.returncode in (0, 1), first.stderr  # 1: nothing meets 5 ms on a slow machine
    assert "measuring layers and networks" in first.stderr
    tables = sorted(cache.glob("nnabla-*/*.csv"))
    assert [t.name.split("-")[0] for t in tables] == ["layers.csv", "networks"]
    nets = read_network_table(tables[1])
    assert all(0 <= t.noise_ms and t.min_ms <= t.latency_ms for t in nets.timings)
    assert len(nets.z) >= 7 + 2  # a covering design and networks spread over the MACs
    status = json.loads((tables[0].parent / "measured.json").read_text())
    assert {s["protocol"]["statistic"] for s in status.values()} == {STATISTIC}
    if first.returncode == 1:
        assert "no architecture meets the budget of 5 ms" in first.stderr
        return
    result = json.loads((tmp_path / "r.json").read_text())
    a, b = (float(v) for v in re.findall(r"a = ([\d.]+) x lookup \+ b = ([\d.]+) ms",
                                          result["predictor"])[0])
    assert 0.5 <= a <= 2.0 and 0 <= b < min(nets.values())
    assert result["source"] == str(tables[0]) and result["verification"]["rounds"] >= 1
    for entry in result["best"]:
        assert entry["measured_latency_ms"] > 0
        if result["verified"]:  # what the verify loop guarantees
            assert entry["measured_latency_ms"] <= 5


@pytest.mark.parametrize("option, make, message", [
    ("--json", lambda d: d / "missing" / "r.json", "does not exist"),
    ("--plot", lambda d: d / "missing" / "p.png", "does not exist"),
    ("--json", lambda d: d, "is a folder"),
    ("--export-onnx", lambda d: d / "file.txt", "not a folder"),
    ("--export-onnx", lambda d: d / "missing" / "onnx", "does not exist"),
])
def test_outputs_are_checked_before_the_search(predictor, tmp_path, option, make, message):
    (tmp_path / "file.txt").write_text("x")
    path = make(tmp_path)
    run = hwnas("search", "--budget-ms", str(budget_between(predictor, 0.3)), "--table",
                str(tmp_path / "layers.csv"), "--trials", "5", option, str(path),
                "--quiet")
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert f"{option} {path}" in run.stderr and message in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1 and "predicted_ms" not in run.stdout


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_an_unwritable_json_folder_is_refused_before_the_search(predictor, tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        run = hwnas("search", "--budget-ms", str(budget_between(predictor, 0.3)), "--table",
                    str(tmp_path / "layers.csv"), "--json", str(folder / "r.json"))
    finally:
        folder.chmod(0o700)
    assert run.returncode == 2 and "--json" in run.stderr and "not writable" in run.stderr
    assert "predicted_ms" not in run.stdout


def test_search_a_space_of_your_own_on_onnxruntime(tmp_path):
    (tmp_path / "tiny.yaml").write_text(SPACE_YAML)
    run = hwnas("search", "--space", str(tmp_path / "tiny.yaml"), "--backend", "onnxruntime",
                "--budget-ms", "1000", "--trials", "10", "--json", str(tmp_path / "r.json"),
                "--pause-s", "0", env={"HWNAS_CACHE": str(tmp_path / "c")})
    assert run.returncode == 0, run.stderr
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["space"] == "tiny" and result["backend"] == "onnxruntime"
    assert result["predictor"].startswith("calibrated")
    assert len(list((tmp_path / "c").glob("onnxruntime-*/networks-tiny-*.csv"))) == 1
    # 4 architectures in all: the search reports each once
    assert len(result["best"]) == len({tuple(b["z"]) for b in result["best"]}) <= 4
