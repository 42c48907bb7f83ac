"""Bad input, as a new user gives it: every kind is answered by one line naming the file, line,
column, key or option at fault, exit status 2, nothing written and the inputs unchanged.

Each command runs for real (``python -m hwnas.<cmd>``'s main, in this process: helpers.hwnas)
on real files; the API cases call the library."""

import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from helpers import SPACE_YAML, hwnas, network_table, write_table

from hwnas import _cli
from hwnas.errors import HwnasError, InputError
from hwnas.predictors import CalibratedPredictor, LookupPredictor, load_predictor
from hwnas.spaces import get_space, load_space
from hwnas.tables import (
    read_layer_table,
    read_network_table,
)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Valid files of every kind, for nb201: layers.csv, nets.csv, lookup.json,
    calibrated.json, space.yaml, space.json."""
    folder = tmp_path_factory.mktemp("inputs")
    space = get_space("nb201")
    write_table(folder / "layers.csv", space.unique_layers())
    lookup = LookupPredictor().fit_table(read_layer_table(folder / "layers.csv"))
    Z = space.random_z(10, seed=0)
    network_table(folder / "nets.csv", space, Z, 1.2 * lookup.predict_z(space, Z) + 0.3,
                  noise=0.01)
    lookup.save(folder / "lookup.json")
    CalibratedPredictor(lookup).fit_table(read_network_table(folder / "nets.csv"), space).save(
        folder / "calibrated.json")
    (folder / "space.yaml").write_text(SPACE_YAML)
    import yaml
    (folder / "space.json").write_text(json.dumps(yaml.safe_load(SPACE_YAML), indent=1))
    return folder


def snapshot(folder):
    """Every file under folder and the hash of its bytes."""
    return {os.path.relpath(os.path.join(root, name), folder):
            hashlib.sha256(open(os.path.join(root, name), "rb").read()).hexdigest()
            for root, _, names in os.walk(folder) for name in names}


def assert_one_line(run, message):
    """Exit status 2, one line on stderr that matches ``message``, no traceback."""
    assert run.returncode == 2, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in run.stderr, run.stderr
    assert " error: " in lines[0]
    assert message.lower() in lines[0].lower(), lines[0]
    return lines[0]


# --- tables ----------------------------------------------------------------------------------

def _duplicate_column(text):
    header, *rest = text.split("\n")
    return "\n".join([header + ",latency_ms"] + [r + ",1.0" if r else r for r in rest])


TABLE_CASES = {
    # kind: (how to spoil layers.csv, what the one line must say)
    "latency_ms twice in the header": (
        lambda b: _duplicate_column(b.decode()).encode(),
        "line 1: column(s) 'latency_ms' appear more than once"),
    "NUL byte": (lambda b: b.replace(b"\n", b"\n\0", 3), "line 2: a NUL byte"),
    "field over 128 KiB": (lambda b: b.replace(b"nnabla", b"x" * 140_000, 1),
                           "line 2: not a CSV row (field larger than field limit"),
    "not UTF-8": (lambda b: b.replace(b"cpu: test", b"cpu: t\xe9st", 2), "line 2: not UTF-8"),
    "a directory": (None, "cannot read the table"),
    "empty file": (lambda b: b"", "line 1: missing column(s)"),
}


@pytest.mark.parametrize("kind", TABLE_CASES)
def test_bad_tables_get_one_line(inputs, tmp_path, kind):
    spoil, message = TABLE_CASES[kind]
    bad = tmp_path / "bad.csv"
    if spoil is None:
        bad.mkdir()
    else:
        bad.write_bytes(spoil((inputs / "layers.csv").read_bytes()))
    before = snapshot(tmp_path)
    line = assert_one_line(hwnas("fit", "--layers", bad, "--out", tmp_path / "p.json"), message)
    assert str(bad) in line
    assert snapshot(tmp_path) == before  # nothing written, the input unchanged


def test_a_byte_order_mark_is_accepted(inputs, tmp_path):
    bom = tmp_path / "bom.csv"
    bom.write_bytes(b"\xef\xbb\xbf" + (inputs / "layers.csv").read_bytes())
    run = hwnas("fit", "--layers", bom, "--out", tmp_path / "p.json")
    assert run.returncode == 0, run.stderr
    assert load_predictor(tmp_path / "p.json").values_ == \
        load_predictor(inputs / "lookup.json").values_


def test_an_unwritable_output_is_one_line(inputs, tmp_path):
    out = tmp_path / "no" / "such" / "folder" / "p.json"
    assert_one_line(hwnas("fit", "--layers", inputs / "layers.csv", "--out", out), str(out))
    assert not (tmp_path / "no").exists()


# --- space files -----------------------------------------------------------------------------

SPACE_CASES = {
    # kind: (text replaced in SPACE_YAML -> replacement, file suffix, what the line says)
    "two decisions of one name": (("name: block2", "name: block1"), ".yaml",
                                  "decisions[1].name: 'block1' is the name of an earlier"),
    "out: 16.0": (("out: 8,", "out: 8.0,"), ".yaml", "stem[0].out: must be an integer"),
    "out: true": (("out: 8,", "out: true,"), ".yaml", "stem[0].out: must be an integer"),
    "e: 1.5": (("e: 3}]\n      MB6", "e: 1.5}]\n      MB6"), ".yaml",
               "choices['MB3 3x3'][0].e: must be an integer from 1 to 2147483647, got 1.5"),
    "out: \"16\"": (("out: 8,", "out: \"8\","), ".yaml",
                    "got '8' (a string: write it without quotes)"),
    "no layers": ((SPACE_YAML, "name: empty\ninput_shape: [3, 8, 8]\n"
                               "decisions: [{name: a, choices: {skip: []}}]\n"), ".yaml",
                  "the space has no layers"),
    "one key twice": (("    choices:\n      MB3 3x3: [{op: mbconv, out: 16, k: 3, s: 1",
                       "    choices:\n      MB3 3x3: []\n      MB3 3x3: [{op: mbconv, out: 16, "
                       "k: 3, s: 1"), ".yaml", "line 14: key 'MB3 3x3' appears twice"),
    "JSON nested 5,000 deep": (None, ".json", "nested too deeply"),
    "not UTF-8": (("block1", "bl\xf6ck1"), ".yaml", "line 7: not UTF-8"),
    "input_shape of bools": (("[3, 16, 16]", "[true, 16, 16]"), ".yaml",
                             "input_shape: must be 3 positive integers"),
    "a control character after accented comments": (
        (SPACE_YAML, "# \xe9t\xe9\n" * 11 + SPACE_YAML.replace("block2", "bl\x01ck2")), ".yaml",
        f"line {12 + SPACE_YAML[:SPACE_YAML.index('block2')].count(chr(10))}: not valid YAML"),
}


@pytest.mark.parametrize("parser", ["libyaml", "python"])
@pytest.mark.parametrize("kind", SPACE_CASES)
def test_bad_space_files_get_one_line(inputs, tmp_path, monkeypatch, kind, parser):
    """Alike with PyYAML's libyaml parser and without it (its pure-Python one)."""
    if parser == "python":
        import yaml
        monkeypatch.delattr(yaml, "CSafeLoader", raising=False)
    change, suffix, message = SPACE_CASES[kind]
    bad = tmp_path / f"bad{suffix}"
    if change is None:
        bad.write_text('{"name": ' + "[" * 5000 + "]" * 5000 + "}")
    else:
        text = SPACE_YAML.replace(*change)
        assert text != SPACE_YAML
        bad.write_bytes(text.encode("latin-1" if kind == "not UTF-8" else "utf-8"))
    before = snapshot(tmp_path)
    line = assert_one_line(hwnas("search", "--budget-ms", "5", "--space", bad, "--table",
                                 inputs / "layers.csv", "--json", tmp_path / "r.json"), message)
    assert str(bad) in line
    assert snapshot(tmp_path) == before


def test_the_valid_space_files_load(inputs):
    for name in ("space.yaml", "space.json"):
        space = load_space(str(inputs / name))
        assert space.n_choices == (2, 2) and [d.name for d in space.decisions] == \
            ["block1", "block2"]


# --- predictor files -------------------------------------------------------------------------

def _calibrated(**state):
    def spoil(doc):
        doc["state"].update(state)
        return json.dumps(doc)
    return spoil


PREDICTOR_CASES = {
    "calibrated a = -1": ("calibrated.json", _calibrated(a=-1.0),
                          "calibration slope a must be a finite number > 0, got -1.0"),
    "calibrated a = 0": ("calibrated.json", _calibrated(a=0), "slope a must be a finite"),
    "calibrated b = NaN": ("calibrated.json", _calibrated(b=float("nan")),
                           "state.b is nan: a saved number must be finite"),
    "calibrated a = \"1\"": ("calibrated.json", _calibrated(a="1"),
                             "slope a must be a number, got '1'"),
    "calibrated b = -0.5": ("calibrated.json", _calibrated(b=-0.5),
                            "calibration offset b: -0.5 ms is negative"),
    "nested 5,000 deep": ("lookup.json", lambda doc: "[" * 5000 + "]" * 5000,
                          "nested too deeply"),
    "lookup value NaN": ("lookup.json",
                         lambda doc: json.dumps(doc).replace(": 0.1,", ": NaN,", 1),
                         "a saved number must be finite"),
    "not JSON": ("lookup.json", lambda doc: "{", "invalid JSON"),
    "another file": ("lookup.json", lambda doc: '{"a": 1}', "not a predictor file"),
}


@pytest.mark.parametrize("kind", PREDICTOR_CASES)
def test_bad_predictor_files_are_refused_at_load(inputs, tmp_path, kind):
    source, spoil, message = PREDICTOR_CASES[kind]
    bad = tmp_path / "bad.json"
    bad.write_text(spoil(json.loads((inputs / source).read_text())))
    before = snapshot(tmp_path)
    run = hwnas("search", "--budget-ms", "50", "--space", "nb201", "--predictor", bad,
                "--json", tmp_path / "r.json")
    assert str(bad) in assert_one_line(run, message)
    assert snapshot(tmp_path) == before
    with pytest.raises(InputError, match=str(bad)):
        load_predictor(bad)


# --- options ---------------------------------------------------------------------------------

OPTION_CASES = {
    "--budget-ms inf": (["search", "--budget-ms", "inf"], "--budget-ms: must be > 0 and finite"),
    "--budget-ms 1e400": (["search", "--budget-ms", "1e400"],
                          "--budget-ms: must be > 0 and finite"),
    "--budget-ms nan": (["search", "--budget-ms", "nan"], "--budget-ms: must be > 0 and finite"),
    "--max-activation-kb inf": (["search", "--budget-ms", "5", "--max-activation-kb", "inf"],
                                "--max-activation-kb: must be > 0 and finite"),
    "search --seed -1": (["search", "--budget-ms", "5", "--seed", "-1"],
                         "--seed: must be an integer from 0 to 4294967295, got -1"),
    "profile --pause-s -1": (["profile", "--pause-s", "-1", "--out", "o.csv"],
                             "--pause-s: must be >= 0 and finite, got -1"),
    "profile --rounds 1000": (["profile", "--rounds", "1000", "--out", "o.csv"],
                              "--rounds: must be an integer from 1 to 100"),
    "profile --export with --runs": (["profile", "--space", "nb201", "--export", "x",
                                      "--runs", "3"], "give the timing options (--warmup"),
    "profile --seed -1": (["profile", "--networks", "3", "--seed", "-1", "--out", "o.csv"],
                          "--seed: must be an integer from 0 to 4294967295"),
    "profile --networks 1000000000": (
        ["profile", "--networks", "1000000000", "--out", "o.csv"],
        f"--networks: must be an integer from 1 to {_cli.MAX_NETWORKS}, got 1000000000"),
    "profile --batch 10**9": (["profile", "--batch", "1000000000", "--out", "o.csv"],
                              "--batch: must be an integer from 1 to 65536"),
    "fit --out missing": (["fit", "--layers", "layers.csv"], "--out"),
}


@pytest.mark.parametrize("kind", OPTION_CASES)
def test_bad_options_name_the_option(inputs, tmp_path, kind):
    args, message = OPTION_CASES[kind]
    before = snapshot(inputs)
    run = hwnas(*args, "--table" if args[0] == "search" else "--quiet",
                *([inputs / "layers.csv"] if args[0] == "search" else []), cwd=tmp_path)
    assert_one_line(run, message)
    assert os.listdir(tmp_path) == [] and snapshot(inputs) == before


SEARCH_CASES = {
    # what fails only once the search runs: one line, and no result written
    "--penalty-weight nan": (["--mode", "penalty", "--penalty-weight", "nan"],
                             "penalty_weight must be a finite number"),
    "an objective that raises": (["--objective", "objs:boom"], "'boom' raised RuntimeError"),
    "an objective returning NaN": (["--objective", "objs:nan"], "'nan' returned nan"),
    "an objective returning inf": (["--objective", "objs:inf"], "'inf' returned inf"),
    "--storage foo://bar": (["--storage", "foo://bar"], "storage 'foo://bar'"),
    "SQLite in a missing folder": (["--storage", "sqlite:///no/such/dir/s.db"],
                                   "cannot open the study"),
    "--workers 0": (["--workers", "0"], "--workers: must be an integer from 1 to 256, got 0"),
    "--workers 100000": (["--workers", "100000"],
                         "--workers: must be an integer from 1 to 256, got 100000"),
    "--trials 0": (["--trials", "0"], "--trials: must be an integer from 1 to"),
}


@pytest.mark.parametrize("kind", SEARCH_CASES)
def test_search_failures_are_one_line(inputs, tmp_path, kind):
    args, message = SEARCH_CASES[kind]
    (tmp_path / "objs.py").write_text("def boom(arch):\n    raise RuntimeError('x')\n"
                                      "def nan(arch):\n    return float('nan')\n"
                                      "def inf(arch):\n    return float('inf')\n")
    run = hwnas("search", "--budget-ms", "50", "--space", "nb201", "--table",
                inputs / "layers.csv", "--trials", "5", "--quiet", "--json",
                tmp_path / "r.json", *args, cwd=tmp_path,
                env={"PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"})
    assert_one_line(run, message)
    assert not (tmp_path / "r.json").exists()


OBJECTIVE_CASES = {
    "a SyntaxError": ("def f(arch)\n    return 1\n", "bad_objective.py, line 1: syntax error"),
    "an error at import": ("import no_such_module_here\n",
                           "importing 'bad_objective' raised ModuleNotFoundError"),
    "no such function": ("def g(arch):\n    return 1\n", "has no callable 'f'"),
}


@pytest.mark.parametrize("kind", OBJECTIVE_CASES)
def test_a_broken_objective_module_is_one_line(inputs, tmp_path, kind):
    code, message = OBJECTIVE_CASES[kind]
    (tmp_path / "bad_objective.py").write_text(code)
    run = hwnas("search", "--budget-ms", "50", "--space", "nb201", "--table",
                inputs / "layers.csv", "--objective", "bad_objective:f",
                "--json", tmp_path / "r.json", cwd=tmp_path,
                env={"PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"})
    assert "--objective 'bad_objective:f'" in assert_one_line(run, message)
    assert not (tmp_path / "r.json").exists()


# --- the API ---------------------------------------------------------------------------------

Z_CASES = {
    "strings": (["0"] * 6, "must be integers, got strings"),
    "2**70": ([2**70] + [0] * 5, "out of range"),
    "bools": ([True] * 6, "must be integers, got booleans"),
    "bools among ints": ([[True, 0, 0, 0, 0, 0]], "must be integers"),
    "a fraction": ([0.5] * 6, "must be integers"),
    "NaN": ([float("nan")] * 6, "must be integers"),
    "ragged rows": ([[0] * 6, [0] * 5], "must be rows of 6 integers"),
    "a scalar": (3, "must have 6 entries"),
    "None": ([None] * 6, "must be integers"),
}


@pytest.mark.parametrize("kind", Z_CASES)
def test_predict_z_refuses_what_is_not_z(inputs, kind):
    z, message = Z_CASES[kind]
    predictor = load_predictor(inputs / "calibrated.json")
    with pytest.raises(InputError, match=f"space 'nb201': z.*{message}"):
        predictor.predict_z(get_space("nb201"), z)


def test_predict_z_takes_integral_floats_and_numpy_ints(inputs):
    predictor, space = load_predictor(inputs / "lookup.json"), get_space("nb201")
    z = space.random_z(3, seed=1)
    expected = predictor.predict_z(space, z)
    assert predictor.predict_z(space, z.astype(float)) == pytest.approx(expected)
    assert predictor.predict_z(space, z.astype(np.uint8)) == pytest.approx(expected)


@pytest.mark.parametrize("call, message", [
    (lambda d: get_space("mobilenett"), "unknown space 'mobilenett'"),
    (lambda d: load_predictor(d / "absent.json"), "absent.json: cannot read the predictor"),
    (lambda d: read_layer_table(d / "absent.csv"), "absent.csv: cannot read the table"),
    (lambda d: load_space(str(d / "absent.yaml")), "absent.yaml: cannot read the space file"),
])
def test_api_errors_are_input_errors(tmp_path, call, message):
    with pytest.raises(InputError, match=message):
        call(tmp_path)


@pytest.mark.parametrize("options, message", [
    ({"workers": 0}, "workers must be an integer >= 1"),
    ({"n_trials": 0}, "n_trials must be an integer >= 1"),
    ({"budget_ms": float("nan")}, "budget_ms must be a finite number > 0"),
    ({"budget_ms": float("inf")}, "budget_ms must be a finite number > 0"),
])
def test_search_api_refuses_bad_options(inputs, options, message):
    from hwnas.search import run_study
    predictor = load_predictor(inputs / "lookup.json")
    with pytest.raises(InputError, match=message):
        run_study(get_space("nb201"), predictor, **{"budget_ms": 50.0, **options})


# --- what the commands do with errors --------------------------------------------------------

def _raise(error):
    def main(argv):
        raise error
    return main


def test_only_hwnas_errors_are_one_line(capsys):
    assert _cli.run(_raise(InputError("x.csv, line 3: bad")), "prog") == 2
    assert capsys.readouterr().err == "prog: error: x.csv, line 3: bad\n"
    assert _cli.run(_raise(FileNotFoundError(2, "No such file or directory", "out/p.json")),
                    "prog") == 2
    assert capsys.readouterr().err == "prog: error: out/p.json: No such file or directory\n"
    # a ValueError, KeyError or OSError naming no file is a bug: its traceback is shown
    for bug in (ValueError("operands could not be broadcast"), KeyError("k"),
                OSError("no file"), IndexError("index 3 is out of bounds")):
        assert _cli.run(_raise(bug), "prog") == _cli.EXIT_BUG
        err = capsys.readouterr().err
        assert "Traceback" in err and "bug in hwnas" in err.splitlines()[-1]


def test_interruption_is_one_line(capsys):
    assert _cli.run(_raise(KeyboardInterrupt()), "prog") == 130
    assert capsys.readouterr().err.strip() == \
        "prog: interrupted; what was measured is kept, run again to resume"
    assert _cli.run(_raise(KeyboardInterrupt("12 trials kept in s.journal")), "prog") == 130
    assert capsys.readouterr().err.strip() == "prog: interrupted; 12 trials kept in s.journal"


def test_a_closed_stdout_is_no_bug(tmp_path):
    # `python -m hwnas.profile --cache | head -0`: the reader goes before the command writes
    run = subprocess.Popen([sys.executable, "-m", "hwnas.profile", "--cache"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           env={**os.environ, "HWNAS_CACHE": str(tmp_path)})
    run.stdout.close()
    err = run.stderr.read().decode()
    assert run.wait() == 141 and "Traceback" not in err and "bug" not in err


def test_hwnas_debug_shows_the_traceback(inputs, tmp_path):
    args = ("fit", "--layers", tmp_path / "absent.csv", "--out", tmp_path / "p.json")
    assert "Traceback" not in hwnas(*args).stderr
    run = hwnas(*args, env={"HWNAS_DEBUG": "1"})
    assert run.returncode == 2 and "Traceback" in run.stderr
    assert run.stderr.strip().splitlines()[-1].endswith("cannot read the table: No such file "
                                                        "or directory")


def test_every_user_error_class_is_a_hwnas_error():
    from hwnas._imports import MissingDependency
    from hwnas.predictors._base import NotAdditiveError, NotFittedError, NotSupportedError
    from hwnas.predictors._lookup import UnseenLayerError
    from hwnas.profile import ProfileError
    from hwnas.search import BudgetError
    from hwnas.spaces import SpaceFileError
    from hwnas.tables import TableError
    for cls in (InputError, MissingDependency, ProfileError, TableError, SpaceFileError,
                BudgetError, UnseenLayerError, NotFittedError, NotSupportedError,
                NotAdditiveError):
        assert issubclass(cls, HwnasError), cls
