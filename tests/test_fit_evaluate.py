"""The fit and evaluate commands, and search --predictor, on real ONNX Runtime measurements."""

import json

import pytest
from helpers import FAST
from helpers import hwnas as run

from hwnas.predictors import evaluate, load_predictor
from hwnas.profile import get_backend, profile_layers, profile_networks
from hwnas.spaces import get_space
from hwnas.spaces._exact import every_z
from hwnas.tables import read_network_table


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    folder = tmp_path_factory.mktemp("nb201")
    backend, space = get_backend("onnxruntime"), get_space("nb201")
    profile_layers(backend, space.unique_layers(), folder / "layers.csv", FAST,
                   show_progress=False)
    profile_networks(backend, space, space.design(12, seed=0), folder / "nets.csv", FAST,
                     show_progress=False)
    profile_networks(backend, space, space.random_z(8, seed=1), folder / "test.csv", FAST,
                     show_progress=False)
    return folder


@pytest.mark.parametrize("args", [
    ["--model", "lookup", "--layers", "layers.csv"],
    ["--model", "lookup", "--layers", "layers.csv", "--fallback", "tree"],
    ["--model", "linear", "--layers", "layers.csv", "--calibrate-with", "nets.csv"],
    ["--model", "tree", "--layers", "layers.csv"],
    ["--model", "additive", "--networks", "nets.csv"],
    ["--model", "additive_features", "--networks", "nets.csv", "--space", "nb201"],
    ["--model", "tree_z", "--networks", "nets.csv"],
])
def test_fit_then_evaluate(tables, args, tmp_path):
    args = [tables / a if a.endswith(".csv") else a for a in args]
    fit = run("fit", *args, "--out", tmp_path / "p.json")
    assert fit.returncode == 0, fit.stderr
    predictor = load_predictor(tmp_path / "p.json")
    assert predictor.kind == ("calibrated" if "--calibrate-with" in args else args[1])
    ev = run("evaluate", "--predictor", tmp_path / "p.json", "--networks", tables / "test.csv",
             "--json", tmp_path / "m.json", "--plot", tmp_path / "m.png")
    assert ev.returncode == 0, ev.stderr
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["n"] == 8 and metrics["target"] == "latency_ms"
    # the command reports what the library computes for the same predictor and networks
    expected = evaluate(predictor, read_network_table(tables / "test.csv"), get_space("nb201"))
    for name in ("mape_pct", "within_10_pct", "kendall_tau"):
        assert metrics[name] == pytest.approx(expected[name], rel=1e-6, abs=1e-9), name
    assert -1 <= metrics["kendall_tau"] <= 1 and "Spearman rho" in ev.stdout
    assert (tmp_path / "m.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_evaluate_flags_the_networks_a_predictor_was_calibrated_on(tables, tmp_path):
    """Scored on its own calibration networks a calibrated lookup looks near perfect: the
    command says so, and --json counts them; on other networks it says nothing."""
    fit = run("fit", "--model", "lookup", "--layers", tables / "layers.csv", "--calibrate-with",
              tables / "nets.csv", "--out", tmp_path / "p.json")
    assert fit.returncode == 0, fit.stderr
    own = run("evaluate", "--predictor", tmp_path / "p.json", "--networks", tables / "nets.csv",
              "--json", tmp_path / "own.json")
    assert own.returncode == 0, own.stderr
    assert "warning: 12 of the 12 networks scored are networks the predictor was fitted or " \
           "calibrated on" in own.stderr
    assert json.loads((tmp_path / "own.json").read_text())["fitted_overlap"] == 12
    other = run("evaluate", "--predictor", tmp_path / "p.json", "--networks",
                tables / "test.csv", "--json", tmp_path / "other.json")
    assert other.returncode == 0 and "fitted or calibrated on" not in other.stderr
    assert json.loads((tmp_path / "other.json").read_text())["fitted_overlap"] == 0


def test_calibrated_fit_reports_a_and_b(tables, tmp_path):
    fit = run("fit", "--model", "lookup", "--layers", tables / "layers.csv", "--calibrate-with",
              tables / "nets.csv", "--out", tmp_path / "p.json")
    assert fit.returncode == 0 and "calibration a = " in fit.stdout and ", b = " in fit.stdout


@pytest.mark.parametrize("args, message", [
    (["--model", "additive", "--layers", "layers.csv"], "give --networks"),
    (["--model", "linear", "--networks", "nets.csv"], "give --layers"),
    (["--model", "linear", "--layers", "layers.csv", "--fallback", "tree"],
     "--fallback is for --model lookup"),
    (["--model", "lookup", "--layers", "nets.csv"], "missing column(s) key, op"),
    (["--model", "lookup", "--layers", "layers.csv", "--target", "energy_mj"],
     "no column 'energy_mj'"),
    (["--model", "additive", "--networks", "nets.csv", "--space", "mobilenet"],
     "is not the space 'mobilenet'"),
])
def test_fit_bad_input_is_one_line(tables, args, message, tmp_path):
    args = [tables / a if a.endswith(".csv") else a for a in args]
    fit = run("fit", *args, "--out", tmp_path / "p.json")
    assert fit.returncode == 2 and message in fit.stderr, fit.stderr
    assert len(fit.stderr.strip().splitlines()) == 1


def test_evaluate_rejects_a_foreign_file(tables, tmp_path):
    (tmp_path / "p.json").write_text('{"format": "something-else"}')
    ev = run("evaluate", "--predictor", tmp_path / "p.json", "--networks", tables / "test.csv")
    assert ev.returncode == 2 and "not a predictor file" in ev.stderr


@pytest.mark.parametrize("model", ["additive", "additive_features", "tree_z"])
def test_search_with_a_saved_network_predictor(tables, tmp_path, model):
    assert run("fit", "--model", model, "--networks", tables / "nets.csv", "--out",
               tmp_path / "p.json").returncode == 0
    predictor = load_predictor(tmp_path / "p.json")
    assert predictor.space_ == "nb201"  # recorded, so the search needs no --space
    space = get_space("nb201")
    budget = float(sorted(predictor.predict_z(space, space.random_z(50, seed=3)))[25])
    out = run("search", "--predictor", tmp_path / "p.json", "--budget-ms",
              budget, "--trials", 60, "--seed", 0, "--json", tmp_path / "r.json", "--quiet",
              "--no-verify")  # the predictor's own predictions (FAST, noisy tables)
    assert out.returncode == 0, out.stderr
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["predictor"].startswith(model) and result["best"]
    assert result["space"] == "nb201"
    for best in result["best"]:
        assert best["predicted_latency_ms"] <= budget
        assert predictor.predict_z(space, best["z"])[0] == pytest.approx(
            best["predicted_latency_ms"])
    if model == "tree_z":  # not additive, but nb201's 15,625 cells are enumerated
        least = predictor.predict_z(space, every_z(space.n_choices)).min()
        assert result["min_latency_ms"] == pytest.approx(least)
        assert f"least reachable latency {least:.3f} ms" in out.stdout
