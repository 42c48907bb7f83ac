"""The main job as a Python call (``hwnas.find_architectures``) and the shape of the public
API: ``hwnas.search`` is a subpackage, its 0.1 call still works with a warning."""

import json
import subprocess
import sys
import warnings

import pytest

import hwnas
from hwnas.errors import InputError
from hwnas.predictors import CalibratedPredictor
from hwnas.profile import TimingProtocol, get_backend
from hwnas.search import (
    BudgetError,
    MeasureSettings,
    SearchOutcome,
    SearchResult,
    SearchSettings,
    find_architectures,
    latency_source,
    run_study,
)

FAST = SearchSettings(seed=0, n_trials=20)
#: the simulated device's protocol, as the flow tests run it: few rounds, no pauses
SIM = MeasureSettings(backend=get_backend("simulated", context="quiet"),
                      protocol=TimingProtocol(warmup=1, runs=3, rounds=3, pause_s=0))


def test_a_shipped_device_from_python_gives_answers_within_the_budget(tmp_path):
    outcome = hwnas.find_architectures(15, space="fbnet", device="pixel3", settings=FAST)
    assert isinstance(outcome, SearchOutcome) and outcome.space.name == "fbnet"
    assert 1 <= len(outcome.best) <= 5
    assert all(c.predicted_latency_ms <= 15 for c in outcome.best)
    # a table measured elsewhere cannot be measured here: said, not hidden
    assert not outcome.verified and outcome.measured_ms == {} and outcome.calibration is None
    assert "cannot be verified here" in outcome.report()
    outcome.write_json(str(tmp_path / "r.json"))
    doc = json.loads((tmp_path / "r.json").read_text())
    assert [b["z"] for b in doc["best"]] == [list(c.z) for c in outcome.best]
    assert doc["source"] == "hwnas.devices:fbnet/pixel3" and doc["verified"] is False


def test_the_verified_job_on_a_simulated_device_returns_what_was_measured(tmp_path,
                                                                          monkeypatch):
    monkeypatch.setenv("HWNAS_CACHE", str(tmp_path))
    lines = []
    outcome = find_architectures(6, settings=FAST, measure=SIM, log=lines.append)
    assert outcome.verified and lines == outcome.rounds and len(lines) >= 1
    assert set(outcome.measured_ms) == {c.z for c in outcome.best}
    assert all(ms <= 6 for ms in outcome.measured_ms.values())
    a, b = outcome.calibration
    assert isinstance(outcome.predictor, CalibratedPredictor) and a > 0 and b >= 0
    assert outcome.source.networks is not None and len(outcome.source.networks.z) >= 4
    doc = outcome.as_json()
    assert doc["verified"] is True and doc["verification"]["rounds"] == len(lines)
    assert all(b["measured_latency_ms"] <= 6 for b in doc["best"])


def test_the_command_prints_what_the_api_returns(tmp_path, monkeypatch):
    """The command is the API's arguments, its report and its JSON: nothing of its own."""
    from helpers import hwnas as command
    run = command("search", "--space", "fbnet", "--device", "pixel3", "--budget-ms", "15",
                  "--trials", "20", "--seed", "0", "--quiet", "--json", tmp_path / "r.json")
    assert run.returncode == 0, run.stderr
    outcome = find_architectures(15, space="fbnet", device="pixel3", settings=FAST)
    assert outcome.report() in run.stdout
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["best"] == json.loads(json.dumps(outcome.as_json()["best"]))


def test_without_verification_the_study_is_the_answer(tmp_path, monkeypatch):
    monkeypatch.setenv("HWNAS_CACHE", str(tmp_path))
    outcome = find_architectures(6, settings=FAST,
                                 measure=MeasureSettings(backend=SIM.backend,
                                                         protocol=SIM.protocol, verify=False))
    assert outcome.verification is None and not outcome.verified
    assert outcome.as_json()["verification"]["note"] == "not verified: --no-verify"


def test_a_fleet_without_a_budget_of_its_own_searches_on_the_first_device():
    outcome = find_architectures(space="fbnet", fleet={"pixel3": 15, "samsung_a50": 40},
                                 settings=FAST)
    assert outcome.source.path == "hwnas.devices:fbnet/pixel3"
    assert all(c.predicted_latency_ms <= 15 for c in outcome.best)
    assert all(name == "samsung_a50" and value <= limit
               for c in outcome.best for name, value, limit, _ in c.budgets)


@pytest.mark.parametrize("kwargs, message", [
    (dict(device="pixel3", predictor="p.json"), "a shipped device or a predictor"),
    (dict(device="pixel3", measure=MeasureSettings(remeasure=True)), "--remeasure"),
    (dict(device="pixel3", fleet={"samsung_a50": 0}), "a limit > 0"),
    (dict(device="pixel3", fleet=["pixel3=1", "pixel3=2"]), "given twice"),
])
def test_bad_arguments_name_what_is_wrong(kwargs, message):
    with pytest.raises(InputError, match=message):
        find_architectures(15, space="fbnet", settings=FAST, **kwargs)


def test_no_architecture_within_the_budget_is_a_budget_error():
    with pytest.raises(BudgetError, match="least|smallest"):
        find_architectures(0.1, space="fbnet", device="pixel3", settings=FAST)


def test_a_predictor_file_or_a_layer_table_is_a_source(tmp_path):
    from helpers import synthetic_table
    table = synthetic_table(tmp_path)
    source = latency_source(predictor=table)
    assert source.space.name == "mobilenet" and source.predictor.kind == "lookup"
    source.predictor.save(str(tmp_path / "p.json"))
    again = latency_source(predictor=tmp_path / "p.json")
    assert again.path == str(tmp_path / "p.json") and again.predictor.kind == "lookup"


def test_hwnas_search_is_a_package_and_its_old_call_warns():
    program = ("import hwnas.search, hwnas; "
               "assert hwnas.search.FeasibleSampler.__name__ == 'FeasibleSampler'; "
               "assert hwnas.search is sys.modules['hwnas.search']; "
               "assert hwnas.find_architectures is hwnas.search.find_architectures")
    run = subprocess.run([sys.executable, "-c", "import sys; " + program],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    outcome = find_architectures(15, space="fbnet", device="pixel3", settings=FAST)
    args = (outcome.space, outcome.predictor, 15.0)
    for old in (hwnas.search, hwnas.search.search):
        with pytest.warns(DeprecationWarning, match="run_study"):
            result = old(*args, n_trials=5, seed=0)
        assert isinstance(result, SearchResult)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert run_study(*args, n_trials=5, seed=0).best


def test_profile_and_search_measure_with_the_same_default_backend(tmp_path):
    """One rule: the first installed backend (nnabla in .venv, ONNX Runtime without it)."""
    from helpers import FAST_ARGS
    from helpers import hwnas as command

    from hwnas.profile import available_backends, default_backend
    from hwnas.tables import read_network_table
    assert default_backend() == available_backends()[0]
    run = command("profile", "--space", "nb201", "--networks", "1", "--out",
                  tmp_path / "nets.csv", *FAST_ARGS)
    assert run.returncode == 0, run.stderr
    assert read_network_table(str(tmp_path / "nets.csv")).fingerprint.backend == \
        default_backend()


@pytest.mark.parametrize("mode, names", [
    ("constraint", ["macs"]), ("penalty", ["macs x (latency / budget)^w"]),
    ("pareto", ["macs", "predicted_latency_ms"])])
def test_a_study_names_its_values_for_optuna_dashboard(tmp_path, mode, names):
    import optuna
    if not hasattr(optuna.Study, "set_metric_names"):
        pytest.skip("Optuna < 3.2 names no metrics")
    outcome = find_architectures(15, space="fbnet", device="pixel3",
                                 settings=SearchSettings(seed=0, n_trials=3, mode=mode))
    assert outcome.result.study.metric_names == names


def test_an_objective_module_is_found_in_the_working_folder(tmp_path, monkeypatch):
    """The hwnas console script, unlike python -m, puts no working folder on sys.path."""
    from hwnas.search import load_objective
    (tmp_path / "my_accuracy.py").write_text("def score(arch):\n    return 1.0\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    assert load_objective("my_accuracy:score")(None) == 1.0
    sys.modules.pop("my_accuracy", None)


@pytest.mark.parametrize("kwargs, message", [
    (dict(budget_ms="15"), "budget_ms must be a latency in ms > 0"),
    (dict(budget_ms=True), "budget_ms must be"),
    (dict(budget_ms=float("nan")), "budget_ms must be"),
    (dict(device=3), "device must be a shipped device's name"),
    (dict(predictor=42), "predictor must be a Predictor"),
    (dict(fleet="pixel3=10"), "fleet must be"),
    (dict(settings={"n_trials": 5}), "settings must be a SearchSettings"),
    (dict(measure={"verify": False}), "measure must be a MeasureSettings"),
    (dict(log="print"), "log must be a callable"),
    (dict(budget_ms=None), r"give a budget: budget_ms \(--budget-ms\)"),
])
def test_each_argument_of_the_api_is_checked_by_its_python_name(kwargs, message):
    arguments = dict(budget_ms=15, space="fbnet", device="pixel3") | kwargs
    with pytest.raises(InputError, match=message):
        find_architectures(**arguments)


@pytest.mark.parametrize("kwargs, message", [
    (dict(backend_options={"contxt": "bursty"}), "no backend takes contxt"),
    (dict(verify="no"), "verify must be True or False"),
    (dict(protocol="fast"), "protocol must be a TimingProtocol"),
    (dict(backend=3), "backend must be a backend's name"),
])
def test_measure_settings_refuse_what_would_be_ignored(kwargs, message):
    with pytest.raises(InputError, match=message):
        MeasureSettings(**kwargs)


def test_the_api_prints_nothing_of_its_own_and_its_outcome_reads_short(capsys):
    outcome = find_architectures(15, space="fbnet", device="pixel3", settings=FAST)
    captured = capsys.readouterr()
    assert "A new study created" not in captured.out + captured.err
    assert len(repr(outcome)) < 10_000 and "SearchSpace" not in repr(outcome)


def test_a_space_file_is_given_as_a_path_too(tmp_path):
    """The type check lets an os.PathLike through: it must load as its string does."""
    from pathlib import Path

    from helpers import SPACE_YAML, synthetic_table
    path = Path(tmp_path / "space.yaml")
    path.write_text(SPACE_YAML)
    table = synthetic_table(tmp_path)
    assert latency_source(path, predictor=table).space.name == \
        latency_source(str(path), predictor=table).space.name
