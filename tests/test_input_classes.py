"""Classes of input and fault that were mishandled (issue 34's held-out checks), each class
pinned, not only the instance found: outputs whose format their name decides, manifests the
runner cannot follow, numbers a layer cannot have, tables with a byte-order mark, JSON objects
that repeat a key, YAML merge keys, a cache path that cannot be a folder, unknowns in a JSON."""

import csv
import json
import math
import os

import numpy as np
import pytest
from helpers import FAST_ARGS, hwnas

from hwnas._files import loads_json, write_json
from hwnas.errors import InputError
from hwnas.layers import MAX_COST, MAX_DIMENSION, Layer
from hwnas.predictors import LookupPredictor, load_predictor
from hwnas.profile import cache_dir, read_cache_status
from hwnas.spaces import get_space, load_space
from hwnas.tables import BOM, LAYER_COLUMNS

# --- an output whose format is known before the work --------------------------------------


@pytest.mark.parametrize("command, args", [
    ("search", ["--space", "nb201", "--device", "titan_rtx_1", "--budget-ms", "5"]),
    ("evaluate", ["--predictor", "p.json", "--device", "titan_rtx_1", "--space", "nb201"]),
])
@pytest.mark.parametrize("name", ["plot.txt", "plot.csv", "plot.json"])
def test_a_figure_named_in_a_format_matplotlib_cannot_write_is_refused_first(
        tmp_path, command, args, name):
    from hwnas.devices import device_predictor
    device_predictor("titan_rtx_1", "nb201").save(tmp_path / "p.json")
    run = hwnas(command, *args, "--plot", tmp_path / name, "--json", tmp_path / "r.json",
                cwd=tmp_path)
    assert run.returncode == 2 and "a figure cannot be written as ." in run.stderr
    assert not (tmp_path / "r.json").exists()  # refused before any work


def test_a_storage_that_is_neither_a_url_nor_a_journal_is_refused_first(tmp_path):
    run = hwnas("search", "--space", "nb201", "--device", "titan_rtx_1", "--budget-ms", "5",
                "--storage", tmp_path / "study.txt", "--json", tmp_path / "r.json")
    assert run.returncode == 2 and "expected a database URL" in run.stderr
    assert not (tmp_path / "r.json").exists()


# --- a manifest the runner cannot follow ------------------------------------------------------

@pytest.fixture
def export(tmp_path):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from hwnas.profile._export import export_for_device
    space = get_space("nb201")
    export_for_device(tmp_path / "export", space, zs=space.random_z(3, seed=0))
    return tmp_path / "export"


def edit_manifest(export, change):
    path = export / "manifest.json"
    manifest = json.loads(path.read_text())
    text = change(manifest)
    path.write_text(text if isinstance(text, str) else json.dumps(manifest))


@pytest.mark.parametrize("fault, message", [
    ("missing", "is missing"), ("folder", "is a folder"), ("twice", "is named twice"),
    ("repeated key", "appears twice in one object")])
def test_the_runner_refuses_a_manifest_it_cannot_follow_before_timing(export, fault, message):
    from hwnas.profile import runner
    if fault == "missing":
        edit_manifest(export, lambda m: (export / m["units"][1]["file"]).unlink())
    elif fault == "folder":
        def to_folder(m):
            os.unlink(export / m["units"][1]["file"])
            os.mkdir(export / m["units"][1]["file"])
        edit_manifest(export, to_folder)
    elif fault == "twice":
        edit_manifest(export, lambda m: m["units"].append(dict(m["units"][0])))
    else:
        edit_manifest(export, lambda m: json.dumps(m).replace('"batch": 1',
                                                              '"batch": 1, "batch": 2'))
    with pytest.raises(SystemExit) as stop:
        runner.main(["--export-dir", str(export), "--runs", "1", "--rounds", "1"])
    assert message in str(stop.value.code)
    assert not (export / "networks.csv").exists()  # nothing was timed


def test_the_runner_fills_rounds_as_hwnas_times_onnx_runtime():
    pytest.importorskip("onnxruntime")
    from hwnas.profile import runner
    from hwnas.profile._onnxruntime import OnnxRuntimeBackend
    options = runner.parser(".").parse_args([])
    assert options.min_round_s == OnnxRuntimeBackend.min_round_s > 0


# --- numbers a layer cannot have -----------------------------------------------------------

def layer_table(path, keys):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(LAYER_COLUMNS)
        for i, key in enumerate(keys):
            ms = 0.1 * (i + 1)
            w.writerow([key, key.split("(")[0], 1, 1, ms, ms, ms, ms, 10, 0, "", "", "nnabla",
                        "1.39.0", "cpu: test", 1, "float32", 1])


@pytest.mark.parametrize("number", ["9" * 12, "9" * 40, "9" * 400])
@pytest.mark.parametrize("where", ["in=3x{}x8", "out={}"])
@pytest.mark.parametrize("model", ["tree", "linear", "lookup"])
def test_a_key_with_a_number_beyond_what_a_layer_takes_is_one_line_naming_it(
        tmp_path, number, where, model):
    """A dimension over a runtime's int32, or costs over what hwnas counts: refused where the
    table is read (row and key named), never in a regressor's fit."""
    key = "conv(" + where.format(number) + ("" if where.startswith("out") else ",out=4") + \
        ",k=1,s=1,g=1,act=relu)"
    if where.startswith("out"):
        key = key.replace("conv(", "conv(in=3x8x8,")
    layer_table(tmp_path / "t.csv", [Layer("conv", (3, 8, 8), 4).key, key])
    run = hwnas("fit", "--layers", tmp_path / "t.csv", "--model", model, "--out",
                tmp_path / "p.json")
    assert run.returncode == 2, run.stderr
    assert "line 3, column 'key'" in run.stderr and "internal error" not in run.stderr


def test_the_largest_layer_a_runtime_takes_is_accepted_and_its_costs_are_counted():
    ok = Layer("conv", (1, MAX_DIMENSION, 1), 1)
    assert ok.macs <= MAX_COST
    with pytest.raises(InputError, match="over"):
        Layer("conv", (MAX_DIMENSION, MAX_DIMENSION, MAX_DIMENSION), MAX_DIMENSION)


# --- a table with a byte-order mark --------------------------------------------------------

def test_a_table_with_a_byte_order_mark_is_read_and_resumed_alike(tmp_path):
    """Every reader of a table accepts a UTF-8 BOM (editors write it): fit reads it, and
    profile resumes it, measuring only what is missing."""
    out = tmp_path / "layers.csv"
    run = hwnas("profile", "--backend", "simulated", "--space", "nb201", "--out", out,
                "--quiet", *FAST_ARGS)
    assert run.returncode == 0, run.stderr
    lines = out.read_bytes().split(b"\n")
    out.write_bytes(BOM + b"\n".join(lines[:6]) + b"\n")  # 5 rows measured, with a BOM
    assert hwnas("fit", "--layers", out, "--model", "lookup", "--out",
                 tmp_path / "p.json").returncode == 0
    again = hwnas("profile", "--backend", "simulated", "--space", "nb201", "--out", out,
                  "--quiet", *FAST_ARGS)
    assert again.returncode == 0, again.stderr
    assert f"({len(get_space('nb201').unique_layers()) - 5} measured now)" in again.stdout
    from hwnas.profile import table_quality
    assert table_quality(out).rows == len(get_space("nb201").unique_layers())


# --- JSON objects that repeat a key ---------------------------------------------------------

def test_every_json_hwnas_reads_refuses_a_key_given_twice(tmp_path):
    with pytest.raises(ValueError, match="'a' appears twice"):
        loads_json('{"a": 1, "b": {"c": 2}, "a": 3}')
    assert loads_json('{"a": {"b": 1}, "b": {"b": 2}}') == {"a": {"b": 1}, "b": {"b": 2}}
    # a predictor file
    from helpers import write_table
    write_table(tmp_path / "t.csv")
    from hwnas.tables import read_layer_table
    LookupPredictor().fit_table(read_layer_table(tmp_path / "t.csv")).save(tmp_path / "p.json")
    text = (tmp_path / "p.json").read_text()
    (tmp_path / "p.json").write_text(text.replace('"kind": "lookup"',
                                                  '"kind": "lookup", "kind": "linear"', 1))
    with pytest.raises(InputError, match="p.json: not a predictor file.*appears twice"):
        load_predictor(tmp_path / "p.json")
    # a search result given to profile --from
    (tmp_path / "r.json").write_text('{"best": [{"z": [0, 0, 0, 0, 0, 0]}], "best": []}')
    run = hwnas("profile", "--from", tmp_path / "r.json", "--space", "nb201", "--backend",
                "simulated", "--out", tmp_path / "n.csv")
    assert run.returncode == 2 and "appears twice" in run.stderr
    # the cache's record
    folder = tmp_path / "cache" / "dev"
    folder.mkdir(parents=True)
    (folder / "measured.json").write_text('{"layers.csv": {"good": true, "good": false}}')
    with pytest.raises(InputError, match="unreadable cache record.*appears twice"):
        read_cache_status(folder)


# --- YAML merge keys -----------------------------------------------------------------------

SPACE = """
name: tiny
input_shape: [3, 16, 16]
stem:
  - {{op: conv, out: 8, k: 3, s: 2}}
decisions:
  - name: block1
    choices:
      MB3 3x3: [{first}]
      MB6 5x5: [{second}]
head:
  - {{op: gap}}
  - {{op: linear, out: 5}}
"""


def test_yaml_merge_keys_merge_and_other_aliases_stay_refused(tmp_path):
    pytest.importorskip("yaml")
    written = SPACE.format(first="{op: mbconv, out: 16, s: 2, k: 3, e: 3}",
                           second="{op: mbconv, out: 16, s: 2, k: 5, e: 6}")
    merged = SPACE.format(first="&mb {op: mbconv, out: 16, s: 2, k: 3, e: 3}",
                          second="{<<: *mb, k: 5, e: 6}")
    listed = SPACE.format(first="&mb {op: mbconv, out: 16, s: 2, k: 3, e: 3}",
                          second="{<<: [*mb], k: 5, e: 6}")
    spaces = []
    for name, text in (("written", written), ("merged", merged), ("listed", listed)):
        (tmp_path / f"{name}.yaml").write_text(text)
        spaces.append(load_space(str(tmp_path / f"{name}.yaml")))
    assert spaces[0].signature == spaces[1].signature == spaces[2].signature
    aliased = SPACE.format(first="&mb {op: mbconv, out: 16, s: 2, k: 3, e: 3}", second="*mb")
    (tmp_path / "aliased.yaml").write_text(aliased)
    with pytest.raises(InputError, match="a YAML alias"):
        load_space(str(tmp_path / "aliased.yaml"))
    twice = SPACE.format(first="&mb {op: mbconv, out: 16, s: 2, k: 3, e: 3}",
                         second="{<<: *mb, k: 5, k: 7, e: 6}")  # its own key twice
    (tmp_path / "twice.yaml").write_text(twice)
    with pytest.raises(InputError, match="'k'"):
        load_space(str(tmp_path / "twice.yaml"))


# --- a cache path that cannot be a folder ---------------------------------------------------

@pytest.mark.parametrize("below", ["", "sub/folder"])
def test_a_cache_path_that_is_a_file_is_blamed_on_the_variable(tmp_path, monkeypatch, below):
    (tmp_path / "file").write_text("not a folder")
    monkeypatch.setenv("HWNAS_CACHE", str(tmp_path / "file" / below))
    with pytest.raises(InputError, match=r"HWNAS_CACHE \(.*\): .*file is a file"):
        cache_dir()
    for command, args in (("profile", ["--cache"]),
                          ("search", ["--budget-ms", "6", "--backend", "simulated",
                                      "--trials", "5"])):
        run = hwnas(command, *args, "--quiet" if command == "search" else "--cache")
        assert run.returncode == 2 and "HWNAS_CACHE" in run.stderr, run.stderr
        assert "Not a directory" not in run.stderr


# --- unknowns written into a JSON -------------------------------------------------------------

def test_an_unknown_is_written_null_so_every_json_file_is_json(tmp_path):
    doc = {"a": math.nan, "b": [1.0, math.inf, np.float32("nan"), np.float64(2.5)],
           "c": {"d": -math.inf}}
    write_json(tmp_path / "x.json", doc)
    text = (tmp_path / "x.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"a": None, "b": [1.0, None, None, 2.5], "c": {"d": None}}
