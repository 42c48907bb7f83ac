"""Any device: export + standalone runner, import of outside numbers, unknown choices are never
free, and the pruned NAS-Bench-201 space of runtimes that drop dead nodes."""

import argparse
import csv
import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from helpers import FAST, FAST_ARGS, network_table, write_table

from hwnas import _cli
from hwnas.errors import InputError
from hwnas.fit import main as fit_main
from hwnas.predictors import (
    AdditiveFeaturesPredictor,
    AdditivePredictor,
    LookupPredictor,
    NotAdditiveError,
    TreeZPredictor,
    UnknownChoiceError,
    load_predictor,
)
from hwnas.profile.__main__ import main as profile_main
from hwnas.search import run_study
from hwnas.spaces import SPACES, get_space
from hwnas.spaces.nb201 import kept_edges
from hwnas.tables import (
    LAYER_COLUMNS,
    NETWORK_COLUMNS,
    TableError,
    read_layer_table,
    read_network_table,
)

ARCH = ("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|"
        "+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|")
HAVE_ORT = importlib.util.find_spec("onnxruntime") is not None and \
    importlib.util.find_spec("onnx") is not None
needs_ort = pytest.mark.skipif(not HAVE_ORT, reason="needs onnx and onnxruntime")


def write(path, text):
    path.write_text(text.strip() + "\n")
    return path


# --- import anything -----------------------------------------------------------------------

def test_minimal_table_from_another_tool_fits_with_a_device_name(tmp_path, capsys):
    path = write(tmp_path / "phone.csv", f"""
space,z,latency_ms
nb201,{ARCH},21.4
nb201,0-1-2-3-4-0,12.9
nb201,1-2-0-0-1-2,9.7
nb201,4-4-3-2-4-0,15.2
nb201,2-0-4-4-2-3,17.8
nb201,0-0-0-0-0-0,2.1
""")
    out = tmp_path / "p.json"
    assert fit_main(["--model", "additive", "--networks", str(path), "--device",
                     "Pixel 7 (TFLite)", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "for Pixel 7 (TFLite), batch 1" in printed
    assert "2 choice(s) unknown" in printed and "edge_2<-1=skip_connect" in printed
    p = load_predictor(out)
    assert p.fingerprint_.device == "Pixel 7 (TFLite)" and p.fingerprint_.backend == "unknown"
    from hwnas.evaluate import main as evaluate_main
    assert evaluate_main(["--predictor", str(out), "--networks", str(path), "--device",
                          "Pixel 7 (TFLite)"]) == 0
    assert "additive predictor on 6 networks" in capsys.readouterr().out
    table = read_network_table(path)
    assert table.fingerprint.device == "unnamed (phone.csv)"  # never mixed with another file
    assert np.isnan(table.timings[0].p10_ms) and table.timings[0].runs == 0


def test_blank_optional_columns_and_another_target(tmp_path):
    path = write(tmp_path / "n.csv", """
space,z,energy_mj,latency_ms,runs,device,note
nb201,0-1-2-3-4-0,3.5,,,board,
nb201,1-2-3-4-0-1,2.5,1.2,5,board,7
""")
    table = read_network_table(path, target="energy_mj")
    assert list(table.values("energy_mj")) == [3.5, 2.5]
    assert table.fingerprint.device == "board"
    with pytest.raises(TableError, match="column 'latency_ms' is blank or absent in 1 row"):
        table.values("latency_ms")
    with pytest.raises(TableError, match=r"n.csv, line 2, column 'latency_ms': is blank"):
        read_network_table(path)
    with pytest.raises(TableError, match="line 2, column 'device': 'board' is not the device "
                                         "'phone'"):
        read_network_table(path, target="energy_mj", device="phone")
    with pytest.raises(TableError, match="line 1: missing column.*watts"):
        read_network_table(path, target="watts")


def test_the_same_z_twice_must_agree(tmp_path):
    same = write(tmp_path / "same.csv", f"""
space,z,latency_ms
nb201,3-3-4-1-3-1,5.0
nb201,{ARCH},5.0
""")
    assert read_network_table(same).z == ((3, 3, 4, 1, 3, 1),)
    other = write(tmp_path / "other.csv", f"""
space,z,latency_ms
nb201,0-0-0-0-0-1,1.0
nb201,3-3-4-1-3-1,5.0
nb201,{ARCH},5.5
""")
    with pytest.raises(TableError, match="other.csv, line 4, column 'z': .* was measured on "
                                         "line 3 with other values"):
        read_network_table(other)


# --- never free by ignorance ----------------------------------------------------------------

def few_networks(tmp_path, space, Z):
    rng = np.random.default_rng(0)
    C = rng.uniform(0.5, 2.0, size=(len(space.decisions), max(space.n_choices)))
    y = 3.0 + C[np.arange(len(space.decisions)), Z].sum(axis=1)
    return network_table(tmp_path / "n.csv", space, Z, y)


def test_additive_never_prices_an_unseen_choice_and_search_never_picks_it(tmp_path):
    space = get_space("nb201")
    Z = np.array([[1, 2, 3, 4, 1, 2], [2, 3, 4, 1, 2, 3], [3, 4, 1, 2, 3, 4], [4, 1, 2, 3, 4, 1]])
    with pytest.warns(UserWarning, match="appear in no measured network"):
        p = AdditivePredictor().fit_table(few_networks(tmp_path, space, Z), space)
    fixed, C = p.cost_matrix(space)
    assert np.isnan(C[:, 0]).all() and not np.isnan(C[:, 1:]).any()  # `none` never measured
    assert "edge_1<-0=none" in p.unknown_choices(space)
    with pytest.raises(UnknownChoiceError, match=r"never saw choice\(s\) edge_1<-0=none"):
        p.predict_z(space, [0, 1, 1, 1, 1, 1])
    p.save(tmp_path / "p.json")
    assert np.isnan(load_predictor(tmp_path / "p.json").cost_matrix(space)[1][:, 0]).all()
    from hwnas.integrations import LatencyPenalty
    with pytest.raises(ValueError, match="cannot price choice 'none' of decision 'edge_1<-0'"):
        LatencyPenalty(space, p)
    for sampler in ("exact", "random"):
        result = run_study(space, p, budget_ms=1e3, sampler=sampler, n_trials=60, seed=0,
                        show_progress=False)
        assert result.best and all(0 not in c.z for c in result.best)


def test_additive_features_prices_unseen_choices_of_known_ops_only(tmp_path):
    space = get_space("nb201")
    Z = np.array([[1, 2, 3, 1, 2, 3], [3, 1, 2, 3, 1, 2], [2, 3, 1, 2, 3, 1]])  # no avg_pool
    with pytest.warns(UserWarning, match="edge_1<-0=avg_pool_3x3"):
        p = AdditiveFeaturesPredictor().fit_table(few_networks(tmp_path, space, Z), space)
    fixed, C = p.cost_matrix(space)
    assert np.isnan(C[:, 4]).all() and not np.isnan(C[:, :4]).any()  # `none` is priced: free
    with pytest.raises(UnknownChoiceError, match="edge_3<-2=avg_pool_3x3"):
        p.predict_z(space, [1, 1, 1, 1, 1, 4])
    assert p.predict_z(space, [0, 1, 2, 3, 0, 0])[0] > 0


def test_tree_z_refuses_choices_it_never_saw(tmp_path):
    space = get_space("nb201")
    Z = space.random_z(4, 0)
    p = TreeZPredictor(n_estimators=5).fit_table(few_networks(tmp_path, space, Z), space)
    unseen = p.unknown_choices(space)
    assert unseen
    d, c = next((d, c) for d in range(6) for c in range(5) if c not in Z[:, d])
    z = Z[0].copy()
    z[d] = c
    with pytest.raises(UnknownChoiceError, match=f"{space.decisions[d].name}="):
        p.predict_z(space, z)
    assert np.isfinite(p.predict_z(space, Z)).all()


# --- deployment semantics: nb201-pruned -----------------------------------------------------

@pytest.mark.parametrize("z, kept", [
    ((3, 3, 4, 1, 3, 1), (True,) * 6),
    ((0, 3, 3, 0, 3, 3), (False, True, False, False, False, True)),  # node 1 is dead
    ((3, 3, 3, 0, 0, 0), (False,) * 6),  # nothing reaches node 3
    ((3, 0, 3, 0, 0, 3), (True, False, True, False, False, True)),
    ((3, 3, 0, 0, 0, 2), (False, True, False, False, False, True)),  # node 1 reaches nothing
])
def test_pruned_cells_keep_only_edges_from_input_to_output(z, kept):
    assert kept_edges(z) == kept
    pruned, full = get_space("nb201-pruned"), get_space("nb201")
    convs = sum(k and c in (2, 3) for c, k in zip(z, kept))
    arch = pruned.decode(z)
    assert sum(ly.op == "relu_conv_bn" for ly in arch.layers) == 15 * convs
    assert len(arch.layers) == len(arch.graph) <= len(full.decode(z).layers)


def test_pruned_space_is_its_own_and_not_additive(tmp_path):
    pruned = get_space("nb201-pruned")
    assert "nb201-pruned" in SPACES and pruned.signature != get_space("nb201").signature
    assert not pruned.additive and get_space("nb201").additive
    with pytest.raises(NotAdditiveError):
        pruned.cost_matrix(lambda layers: np.ones(len(layers)))
    write_table(tmp_path / "layers.csv", pruned.unique_layers())  # 0.1, 0.2, ... ms
    lookup = LookupPredictor().fit_table(read_layer_table(tmp_path / "layers.csv"))
    costs = {ly.key: 0.1 * (i + 1) for i, ly in enumerate(pruned.unique_layers())}
    Z = pruned.random_z(20, 3)
    y = np.array([sum(costs[ly.key] for ly in pruned.decode(z).layers) for z in Z])
    assert lookup.predict_z(pruned, Z) == pytest.approx(y)  # the layers really computed
    assert (lookup.predict_z(get_space("nb201"), Z) >= y - 1e-9).all()
    table = network_table(tmp_path / "n.csv", pruned, Z, y)
    with pytest.raises(ValueError, match="not additive"):
        AdditivePredictor().fit_table(table, pruned)
    p = AdditiveFeaturesPredictor().fit_table(table, pruned)
    with pytest.raises(NotAdditiveError):
        p.cost_matrix(pruned)
    assert np.isfinite(p.predict_z(pruned, Z)).all()
    result = run_study(pruned, p, budget_ms=float(np.median(y)), sampler="random", n_trials=30,
                    seed=0, show_progress=False)
    assert result.best[0].predicted_latency_ms <= np.median(y)


@needs_ort
def test_pruned_network_runs_without_its_dead_nodes(tmp_path):
    from hwnas.profile import get_backend
    from hwnas.profile._onnxruntime import to_onnx
    pruned, full = get_space("nb201-pruned"), get_space("nb201")
    z = (0, 3, 3, 0, 3, 3)
    model, whole = to_onnx(pruned.decode(z).graph), to_onnx(full.decode(z).graph)
    assert len(model.graph.output) == len(whole.graph.output) == 1
    assert len(model.graph.input) < len(whole.graph.input)  # dead node 1 is no zeros input
    convs = [sum(n.op_type == "Conv" for n in m.graph.node) for m in (model, whole)]
    assert convs[0] == convs[1] - 2 * 15
    backend = get_backend("onnxruntime")
    backend.runner(pruned.decode((3, 3, 3, 0, 0, 0)).graph)()  # a cell that computes nothing


# --- export for a device --------------------------------------------------------------------

def isolated_site(tmp_path):
    """A folder holding only numpy and onnxruntime (and their shared libraries) from this
    environment: with ``python -S`` and it alone on PYTHONPATH, hwnas cannot be imported."""
    import numpy
    import onnxruntime
    site = tmp_path / "device_site"
    site.mkdir()
    for module in (numpy, onnxruntime):
        folder = os.path.dirname(module.__file__)
        parent = os.path.dirname(folder)
        for name in os.listdir(parent):
            if name == os.path.basename(folder) or name == f"{os.path.basename(folder)}.libs":
                os.symlink(os.path.join(parent, name), site / name)
    return site


@needs_ort
def test_export_runner_round_trip_without_hwnas(tmp_path, capsys):
    export = tmp_path / "to_device"
    assert profile_main(["--space", "nb201", "--export", str(export), "--networks", "6",
                         "--with-layers"]) == 0
    assert "6 networks and 18 layers of nb201 exported" in capsys.readouterr().out
    manifest = json.loads((export / "manifest.json").read_text())
    space = get_space("nb201")
    Z = np.array([space.parse_z(u["z"]) for u in manifest["units"] if u["table"] == "networks"])
    assert np.array_equal(Z, space.design(6, 0))  # the export measures a covering design
    assert all((export / u["file"]).exists() for u in manifest["units"])
    assert manifest["units"][0]["input_shape"] == [1, 3, 32, 32]

    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(isolated_site(tmp_path))}
    check = subprocess.run([sys.executable, "-S", "-c", "import hwnas"], env=env,
                           capture_output=True, text=True, cwd=tmp_path)
    assert check.returncode != 0 and "No module named 'hwnas'" in check.stderr
    command = [sys.executable, "-S", str(export / "runner.py"), "--device", "test box",
               *FAST_ARGS]
    run = subprocess.run(command, env=env, capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "6 networks (6 measured now) on test box" in run.stdout

    networks = read_network_table(export / "networks.csv")
    layers = read_layer_table(export / "layers.csv")
    assert sorted(networks.z) == sorted(map(tuple, Z)) and len(layers.timings) == 18
    assert networks.fingerprint == layers.fingerprint
    assert networks.fingerprint.device == "test box" and networks.fingerprint.backend == \
        "onnxruntime"
    assert all(t.runs >= FAST.rounds * FAST.min_runs and 0 < t.min_ms <= t.latency_ms and
               t.min_ms <= t.median_ms and t.noise_ms >= 0 for t in networks.timings)

    with open(export / "networks.csv", "a") as f:  # a row cut short by a killed runner
        f.write("nb201,0-0-0")
    again = subprocess.run(command, env=env, capture_output=True, text=True, cwd=tmp_path)
    assert "6 networks (0 measured now)" in again.stdout, again.stderr
    assert read_network_table(export / "networks.csv").z == networks.z
    other = subprocess.run(command[:3] + ["--device", "another box"], env=env,
                           capture_output=True, text=True, cwd=tmp_path)
    assert other.returncode != 0 and "measure into another folder" in other.stderr

    out = tmp_path / "p.json"
    assert fit_main(["--model", "lookup", "--layers", str(export / "layers.csv"),
                     "--calibrate-with", str(export / "networks.csv"), "--out", str(out)]) == 0


def test_runner_without_onnxruntime_says_what_to_install():
    import hwnas.profile.runner as runner
    run = subprocess.run([sys.executable, "-S", "-I", runner.__file__, "--device", "x"],
                         capture_output=True, text=True)  # no site-packages: a bare board
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert run.stderr.strip().endswith("pip install numpy onnxruntime")


@pytest.mark.parametrize("option, value, message", [
    ("--runs", "0", "must be >= 1"), ("--rounds", "0", "must be >= 1"),
    ("--pause-s", "-1", "must be >= 0"), ("--pause-s", "nan", "must be >= 0 and finite"),
    ("--max-round-s", "0", "must be > 0"), ("--runs", "2.5", "'2.5' is not int"),
    ("--threads", "0", "must be >= 1")])
def test_runner_refuses_bad_timing_options(tmp_path, capsys, option, value, message):
    from hwnas.profile import runner
    with pytest.raises(SystemExit) as stop:
        runner.main(["--export-dir", str(tmp_path), option, value])
    assert stop.value.code == 2
    assert f"argument {option}: {message}" in capsys.readouterr().err


def test_runner_repeats_the_columns_and_protocol_defaults_of_hwnas():
    pytest.importorskip("onnxruntime")
    from hwnas import profile
    from hwnas.profile import TimingProtocol, _onnxruntime, _stats, runner
    assert runner.COLUMNS == {"layers": LAYER_COLUMNS, "networks": NETWORK_COLUMNS}
    d = TimingProtocol()
    assert (runner.WARMUP, runner.RUNS, runner.ROUNDS, runner.MAX_ROUND_S, runner.MIN_RUNS,
            runner.REMEASURE, runner.REMEASURE_PAUSE_S) == \
        (d.warmup, d.runs, d.rounds, d.max_round_s, d.min_runs, d.max_remeasures, d.pause_s)
    assert d.statistic == _stats.STATISTIC  # the runner's statistic: the module's default
    assert (runner.UNIT_NOISE, runner.BATCH_UNITS) == (profile.UNIT_NOISE, profile.BATCH_UNITS)
    assert tuple(runner.OPTIMIZATION_LEVELS) == _onnxruntime.OPTIMIZATION_LEVELS
    assert runner.PROVIDERS == _onnxruntime.PROVIDERS
    # imported from hwnas, the runner times with hwnas's own module (an export copies it)
    assert (runner.statistics, runner.time_rounds) == (_stats.statistics, _stats.time_rounds)


@needs_ort
def test_the_exported_runner_computes_hwnas_statistics_with_the_copied_module(tmp_path):
    """The runner of an export, on a site without hwnas, imports the export's copy of
    hwnas.profile._stats and turns the same rounds into the same table row as hwnas."""
    from pathlib import Path

    from hwnas.profile import TimingProtocol, _stats
    from hwnas.profile._export import export_for_device
    from hwnas.profile._timing import to_timing
    export = tmp_path / "to_device"
    export_for_device(export, get_space("nb201"), zs=[(0,) * 6])
    assert (export / "hwnas_timing.py").read_bytes() == Path(_stats.__file__).read_bytes()
    rng = np.random.default_rng(0)
    rounds = [[list(rng.uniform(1, 2, n) * rng.uniform(1, 1.5)) for n in (7, 3, 5, 4, 6)]
              for _ in range(20)]
    code = ("import json, sys, runner; assert 'hwnas' not in sys.modules; "
            "print(runner.statistics.__module__); "
            "print(json.dumps([runner.row(runner.statistics(r)) for r in json.load(sys.stdin)]))")
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(isolated_site(tmp_path))}
    run = subprocess.run([sys.executable, "-S", "-c", code], input=json.dumps(rounds), env=env,
                         capture_output=True, text=True, cwd=export)
    assert run.returncode == 0, run.stderr
    module, rows = run.stdout.splitlines()
    assert module == "hwnas_timing"
    assert json.loads(rows) == [to_timing([np.asarray(x) for x in r], TimingProtocol()).as_row()
                                for r in rounds]
    (export / "hwnas_timing.py").unlink()  # a runner copied without it says what is missing
    bare = subprocess.run([sys.executable, "-S", str(export / "runner.py")], env=env,
                          capture_output=True, text=True, cwd=tmp_path)
    assert bare.returncode == 1 and "Traceback" not in bare.stderr
    assert "runner.py needs hwnas_timing.py" in bare.stderr


class FakeClock:
    """A clock that only fake forward passes advance, and a sleep that only records."""

    def __init__(self):
        self.now, self.pauses = 0.0, []

    def sleep(self, seconds):
        self.pauses.append(seconds)

    def module(self):
        """The time module, with this clock's perf_counter and sleep."""
        import time
        import types
        names = {n: getattr(time, n) for n in dir(time) if not n.startswith("_")}
        return types.SimpleNamespace(**{**names, "perf_counter": lambda: self.now,
                                        "sleep": self.sleep})


class FakePass:
    """A unit's forward pass: advances the clock by ``cost(n)`` ms on the n-th call."""

    def __init__(self, clock, cost):
        self.clock, self.cost, self.calls = clock, cost, 0

    def __call__(self):
        self.clock.now += self.cost(self.calls) / 1e3
        self.calls += 1


#: unit -> ms of its n-th pass (protocol below: 6 passes a round, 18 a measurement): steady;
#: slow (max_round_s ends its rounds after 3 runs); noisy in its first measurement only (then
#: re-measured, its rounds pooled); noisy in every measurement (re-measured
#: TimingProtocol.max_remeasures times, then kept with its noise)
COSTS = {"0-0": lambda n: 1.0 + 0.01 * (n % 5),
         "0-1": lambda n: 300.0,
         "1-0": lambda n: 1.5 if n < 6 else 2.0 if n < 18 else 1.0,
         "1-1": lambda n: 1.0 if n < 6 else 2.0}


def test_runner_re_measures_and_pools_as_hwnas_does(tmp_path, monkeypatch):
    """Both re-measuring loops, driven by the same fake passes and clocks: the same passes,
    pauses and rows."""
    pytest.importorskip("onnxruntime")
    from hwnas import profile
    from hwnas.profile import Backend, TimingProtocol, runner
    from hwnas.tables import Fingerprint

    hwnas_clock, runner_clock = FakeClock(), FakeClock()
    monkeypatch.setattr(runner, "time", runner_clock.module())

    class FakeBackend(Backend):
        name = "fake"

        def __init__(self):
            self.passes = {}

        def clock(self):
            return hwnas_clock.now

        def sleep(self, seconds):
            hwnas_clock.sleep(seconds)

        def fingerprint(self):
            return Fingerprint("fake", "0", "test", 1)

        def build(self, graph):
            return self.passes.setdefault(graph, FakePass(hwnas_clock, COSTS[graph]))

    backend = FakeBackend()
    protocol = TimingProtocol(warmup=1, runs=5, rounds=3, min_runs=3, max_round_s=0.5,
                              pause_s=0.25, statistic="min")  # COSTS are made for the minimum
    path = tmp_path / "n.csv"
    profile._batch.measure_jobs(backend, [profile._batch.Job(path, NETWORK_COLUMNS, "z", {
        z: (z, {"space": "fake", "z": z}) for z in COSTS})], protocol, None)
    with open(path, newline="") as f:
        hwnas_rows = [{c: row[c] for c in runner.TIMING_COLUMNS} for row in csv.DictReader(f)]

    passes = [FakePass(runner_clock, cost) for cost in COSTS.values()]
    options = argparse.Namespace(warmup=protocol.warmup, runs=protocol.runs,
                                 rounds=protocol.rounds, max_round_s=protocol.max_round_s,
                                 pause_s=protocol.pause_s, min_round_s=backend.min_round_s)
    timings, _ = runner.measure_steady(passes, options, "min")
    assert [runner.row(t) for t in timings] == hwnas_rows
    calls = [p.calls for p in passes]
    assert calls == [backend.passes[z].calls for z in COSTS]
    assert calls[:2] == [18, 12] and 18 < calls[2] and calls[3] == 18 * (1 + 2)
    assert runner_clock.pauses == hwnas_clock.pauses == [protocol.pause_s] * 2
    assert runner_clock.now == hwnas_clock.now
    assert [float(r["latency_ms"]) for r in hwnas_rows] == [1.0, 300.0, 1.0, 1.0]
    assert [runner.too_noisy(t) for t in timings] == [False, False, False, True]
    assert float(hwnas_rows[3]["noise_ms"]) == 1.0 and timings[3]["runs"] == 45


def test_runner_sets_up_sessions_and_fingerprints_as_the_backend(tmp_path, monkeypatch):
    """Same session options and provider for each optimisation level, and the same
    fingerprint: a predictor fitted on the runner's table is verifiable here."""
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    import types

    from hwnas.layers import Layer
    from hwnas.predictors import LookupPredictor
    from hwnas.profile import runner
    from hwnas.profile._onnxruntime import OnnxRuntimeBackend, export_onnx
    from hwnas.search._verify import verifier_backend
    from hwnas.spaces import unit_graph
    from hwnas.tables import Fingerprint

    seen = []
    session = ort.InferenceSession

    def recording(model, options, providers):
        names = [p[0] if isinstance(p, tuple) else p for p in providers]
        seen.append({"providers": names, **{a: getattr(options, a) for a in (
            "intra_op_num_threads", "inter_op_num_threads", "execution_mode",
            "graph_optimization_level", "log_severity_level")}})
        return session(model, options, providers=providers)

    monkeypatch.setattr(ort, "InferenceSession", recording)
    graph = unit_graph(Layer("conv", (3, 8, 8), 4))
    export_onnx(graph, tmp_path / "conv.onnx")
    for level in runner.OPTIMIZATION_LEVELS:
        args = types.SimpleNamespace(threads=2, optimization=level, provider="cpu", device=None,
                                     device_id=0)
        runner.build(str(tmp_path / "conv.onnx"), args)
        backend = OnnxRuntimeBackend(threads=2, optimization=level)
        backend.build(graph)
        assert seen[-2] == seen[-1]
        assert runner.fingerprint(args, 1) == backend.fingerprint().as_row()
        table = tmp_path / f"{level}.csv"
        write_table(table, [Layer("conv", (3, 8, 8), 4)],
                    Fingerprint.from_row(runner.fingerprint(args, 1)))
        verifier, why = verifier_backend(LookupPredictor().fit_table(read_layer_table(table)))
        assert verifier is not None, why
        assert (verifier.optimization, verifier.threads) == (level, 2)
    assert len({str(s["graph_optimization_level"]) for s in seen}) == 4


ARM_BOARD = """processor\t: 0
BogoMIPS\t: 108.00
CPU implementer\t: 0x41

Hardware\t: BCM2835
Revision\t: d04170
Model\t\t: Raspberry Pi 5 Model B Rev 1.0
"""


@pytest.mark.parametrize("cpuinfo, name", [
    ("processor\t: 0\nmodel name\t: Intel(R) Xeon(R) CPU @ 2.20GHz\nflags\t: fpu\n",
     "Intel(R) Xeon(R) CPU @ 2.20GHz"),
    (ARM_BOARD, "Raspberry Pi 5 Model B Rev 1.0"),
    ("model name\t: ARMv7 Processor rev 4 (v7l)\n" + ARM_BOARD, "ARMv7 Processor rev 4 (v7l)"),
    ("processor\t: 0\nHardware\t: Qualcomm SM8150\n", "Qualcomm SM8150"),
    ("processor\t: 0\n", None),
])
def test_runner_and_hwnas_name_the_cpu_alike(tmp_path, cpuinfo, name):
    pytest.importorskip("onnxruntime")
    from hwnas.profile import _base, runner
    path = tmp_path / "cpuinfo"
    path.write_text(cpuinfo)
    assert runner.cpu_name(str(path)) == _base.cpu_name(str(path))
    import platform  # no field names the CPU: the platform's processor (or machine) does
    assert _base.cpu_name(str(path)) == (name or platform.processor() or platform.machine())
    assert runner.cpu_name() == _base.cpu_name()


def test_profile_from_reads_the_spaces_own_notation(tmp_path):
    from hwnas.profile.__main__ import read_zs
    space = get_space("nb201")
    path = write(tmp_path / "zs.txt", f"# two networks\n{ARCH}\n 0, 1, 2, 3, 4, 0\n")
    assert read_zs(str(path), space) == [(3, 3, 4, 1, 3, 1), (0, 1, 2, 3, 4, 0)]
    write(path, "|nor_conv_3x3~0|+|bad|")
    with pytest.raises(InputError, match="zs.txt, line 1: "):
        read_zs(str(path), space)


@needs_ort
def test_export_refuses_another_exports_folder_and_resumes_its_own(tmp_path):
    from hwnas.profile._export import export_for_device
    space = get_space("nb201")
    folder, zs = tmp_path / "to_device", [(0, 1, 2, 3, 4, 0), (1, 2, 3, 4, 0, 1)]
    manifest = export_for_device(folder, space, zs)
    (folder / "networks.csv").write_text("the device's table\n")
    os.remove(folder / "networks" / "1-2-3-4-0-1.onnx")  # as if the export was interrupted
    before = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    assert export_for_device(folder, space, zs) == manifest
    assert (folder / "networks" / "1-2-3-4-0-1.onnx").exists()
    assert all(p.read_bytes() == data for p, data in before.items())  # nothing rewritten
    before = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    with pytest.raises(InputError, match="to_device: the folder is not empty and holds no "
                                         "export of these units"):
        export_for_device(folder, space, zs[:1])
    assert {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()} == before
    assert not list(folder.rglob(".*"))  # no temporary file left
    other = tmp_path / "notes"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    code = _cli.run(profile_main, "p", ["--space", "nb201", "--export", str(other),
                                        "--networks", "5"])
    assert code == 2 and os.listdir(other) == ["notes.txt"]


def test_export_needs_enough_networks_for_a_design(tmp_path, capsys):
    code = _cli.run(profile_main, "p", ["--space", "mobilenet", "--export", str(tmp_path),
                                       "--networks", "3"])
    assert code == 2 and "needs n >= 7 networks" in capsys.readouterr().err


@needs_ort
def test_profile_networks_by_design(tmp_path):
    out = tmp_path / "n.csv"
    assert profile_main(["--space", "nb201", "--backend", "onnxruntime", "--networks", "5",
                         "--design", "--seed", "2", "--out", str(out), "--quiet",
                         *FAST_ARGS]) == 0
    Z = np.array(read_network_table(out).z)
    assert all(set(Z[:, d]) == set(range(5)) for d in range(6))
    with open(out) as f:
        assert next(csv.reader(f)) == list(NETWORK_COLUMNS)


@pytest.mark.nnabla
def test_pruned_network_runs_in_nnabla(nnabla_backend, tmp_path):
    from hwnas.profile import profile_networks
    pruned = get_space("nb201-pruned")
    zs = [(3, 3, 3, 0, 0, 0), (0, 3, 3, 0, 3, 3), (3, 3, 4, 1, 3, 1)]
    table = profile_networks(nnabla_backend, pruned, zs, tmp_path / "n.csv", FAST,
                             show_progress=False)
    assert table.space == "nb201-pruned" and len(table.z) == 3
    assert (table.values() > 0).all()
