"""The nnabla profiler, measuring real layers and networks (small shapes, few runs)."""

import csv
import math
import subprocess
import sys

import numpy as np
import pytest
from helpers import FAST, FAST_ARGS, have_gpu, hwnas

from hwnas.layers import Layer
from hwnas.profile import ProfileError, get_backend, profile_layers, profile_networks
from hwnas.spaces import get_space
from hwnas.tables import read_layer_table

pytestmark = pytest.mark.nnabla


def test_building_a_network_searches_sys_path_for_no_module(nnabla_backend):
    """nnabla's compiled modules import nnabla_ext Python 2 style, first relative to their
    package: each such import once searched sys.path in vain, ~2,000 times a network."""
    space = get_space("mobilenet")
    nnabla_backend.runner(space.decode(space.random_z(1, 0)[0]).graph)
    searched = []

    class Finder:
        def find_spec(self, name, path, target=None):
            searched.append(name)
            return None

    sys.meta_path.insert(0, Finder())
    try:
        nnabla_backend.runner(space.decode(space.random_z(1, 1)[0]).graph)
    finally:
        sys.meta_path.remove(next(f for f in sys.meta_path if isinstance(f, Finder)))
    assert searched == []


def test_weights_are_the_same_seeded_uniform_draws_in_every_build(nnabla_backend):
    """Latency depends on the data: every process must time the same weights."""
    import nnabla.random

    from hwnas.profile._nnabla import _Weights
    draws = [_Weights(seed).uniform(-0.5, 0.5, (64, 9)) for seed in (0, 0, 1)]
    assert draws[0].dtype == np.float32 and np.array_equal(draws[0], draws[1])
    assert not np.array_equal(draws[0], draws[2])
    assert -0.5 <= draws[0].min() and draws[0].max() < 0.5 and draws[0].std() > 0.2
    space = get_space("mobilenet")
    nnabla_backend.runner(space.decode(space.random_z(1, 0)[0]).graph)
    assert isinstance(nnabla.random.prng, _Weights)


def test_times_a_layer_and_a_whole_network(nnabla_backend):
    space = get_space("mobilenet")
    layer = space.unique_layers()[2]
    t = nnabla_backend.time_layer(layer, FAST)
    assert t.runs >= FAST.rounds * FAST.min_runs
    # the protocol's statistic is the median of the round minima: at least the fastest run
    assert t.min_ms <= t.latency_ms and t.min_ms <= t.p10_ms <= t.p90_ms
    assert t.min_ms <= t.median_ms
    assert all(math.isfinite(v) and v > 0 for v in (t.latency_ms, t.median_ms))
    assert 0 <= t.noise_ms < math.inf and t.round_spread >= 0
    net = nnabla_backend.time_architecture(space.decode(space.random_z(1, 0)[0]), FAST)
    assert 0 < net.min_ms <= net.latency_ms and net.runs >= FAST.rounds * FAST.min_runs


def test_layer_table_of_the_space(mobilenet_table):
    space = get_space("mobilenet")
    assert set(mobilenet_table.timings) == {layer.key for layer in space.unique_layers()}
    fp = mobilenet_table.fingerprint
    assert fp.backend == "nnabla" and fp.device.startswith("cpu: ") and fp.batch == 1


def test_interrupted_profiling_resumes_without_remeasuring(nnabla_backend, tmp_path):
    layers = get_space("mobilenet").unique_layers()[:8]
    path = tmp_path / "layers.csv"
    first = profile_layers(nnabla_backend, layers[:3], path, FAST, show_progress=False)
    table = profile_layers(nnabla_backend, layers, path, FAST, show_progress=False)
    assert list(table.timings) == [layer.key for layer in layers]
    for key, timing in first.timings.items():
        assert table.timings[key] == timing  # kept, not measured again
    assert len(path.read_text().splitlines()) == 1 + len(layers)


def test_a_failing_layer_is_an_error_naming_it_and_is_never_recorded(nnabla_backend, tmp_path):
    ok = get_space("mobilenet").unique_layers()[0]
    huge = Layer("conv", (64, 40000, 40000), 64)  # 400 GB of input: nnabla cannot run it
    path = tmp_path / "layers.csv"
    with pytest.raises(ProfileError, match=r"layer conv\(in=64x40000x40000"):
        profile_layers(nnabla_backend, [ok, huge], path, FAST, show_progress=False)
    assert list(read_layer_table(path).timings) == [ok.key]


def test_network_table(nnabla_backend, tmp_path):
    space = get_space("mobilenet")
    zs = space.random_z(3, seed=4)
    table = profile_networks(nnabla_backend, space, zs, tmp_path / "nets.csv", FAST,
                             show_progress=False)
    assert table.space == "mobilenet" and [list(z) for z in table.z] == zs.tolist()
    assert all(t.latency_ms > 0 for t in table.timings)


def test_profile_command_writes_the_layer_table(tmp_path):
    out = tmp_path / "layers.csv"
    cmd = ["--space", "mobilenet", "--backend", "nnabla", "--out", out, *FAST_ARGS]
    run = hwnas("profile", *cmd)
    assert run.returncode == 0, run.stderr
    assert "measuring layers" in run.stderr and "ETA" in run.stderr
    assert "repeatability: a row's latency moves by" in run.stdout
    timings = read_layer_table(out).timings.values()
    assert len(timings) == len(get_space("mobilenet").unique_layers())
    assert all(0 < t.min_ms <= t.latency_ms and t.noise_ms >= 0 for t in timings)
    again = hwnas("profile", *cmd, "--quiet")
    assert again.returncode == 0 and "measuring layers" not in again.stderr


def test_cudnn_context_without_a_gpu_is_a_clear_error():
    if have_gpu():
        pytest.skip("a GPU is present")
    with pytest.raises(ProfileError, match="needs nnabla-ext-cuda and a CUDA GPU"):
        get_backend("nnabla", context="cudnn")


@pytest.mark.gpu
def test_cudnn_context_measures_on_the_gpu(tmp_path):
    pytest.importorskip("nnabla_ext.cuda", reason="needs nnabla-ext-cuda (hwnas[cuda])")
    backend = get_backend("nnabla", context="cudnn")
    assert backend.fingerprint().device.startswith("cudnn: ")
    layers = get_space("mobilenet").unique_layers()[:4]
    table = profile_layers(backend, layers, tmp_path / "gpu.csv", FAST, show_progress=False)
    assert len(table.timings) == 4 and all(t.latency_ms > 0 for t in table.timings.values())


def test_nb201_layers_and_networks(nnabla_backend, tmp_path):
    space = get_space("nb201")
    table = profile_layers(nnabla_backend, space.unique_layers(), tmp_path / "l.csv", FAST,
                           show_progress=False)
    assert len(table.timings) == 18
    nets = profile_networks(nnabla_backend, space, space.random_z(2, seed=0).tolist() +
                            [[0] * 6], tmp_path / "n.csv", FAST, show_progress=False)
    assert len(nets.z) == 3 and all(t.latency_ms > 0 for t in nets.timings)


QUICK = [*FAST_ARGS, "--quiet"]


def test_two_profile_processes_on_one_file_never_interleave(tmp_path):
    out = tmp_path / "layers.csv"
    cmd = [sys.executable, "-m", "hwnas.profile", "--space", "nb201", "--out", str(out), *QUICK]
    runs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)]
    results = [(p.wait(), p.stderr.read()) for p in runs]
    for code, stderr in results:  # both finish, or one says who holds the lock
        assert code == 0 or (code == 2 and "another process is writing it" in stderr), stderr
    assert any(code == 0 for code, _ in results)
    rows = list(csv.reader(out.read_text().splitlines()))
    keys = [row[0] for row in rows[1:]]
    assert len(keys) == len(set(keys)) == 18  # each layer once
    assert all(len(row) == len(rows[0]) for row in rows)  # no torn line
    assert len(read_layer_table(out).timings) == 18


def test_out_naming_a_file_that_is_not_a_table_leaves_it_untouched(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_bytes(b"l1\nl2")  # the last line has no newline
    run = hwnas("profile", "--space", "nb201", "--out", notes, *QUICK)
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert "notes.txt, line 1: not a table of this kind" in run.stderr
    assert notes.read_bytes() == b"l1\nl2"
    layers = tmp_path / "layers.csv"
    profile_layers(get_backend("nnabla"), get_space("nb201").unique_layers()[:2], layers, FAST,
                   show_progress=False)
    before = layers.read_bytes()
    run = hwnas("profile", "--space", "nb201", "--networks", "2", "--out", layers, *QUICK)
    assert run.returncode == 2 and "expected the header 'space,z," in run.stderr
    assert layers.read_bytes() == before


def test_profile_shows_and_discards_the_cache(tmp_path, monkeypatch):
    from hwnas.profile import device_folder, device_tables, read_cache_status
    cache = tmp_path / "hwcache"
    monkeypatch.setenv("HWNAS_CACHE", str(cache))
    device_tables(get_backend("nnabla"), get_space("nb201"), networks=2, protocol=FAST,
                  show_progress=False)
    shown = hwnas("profile", "--cache")
    assert shown.returncode == 0, shown.stderr
    assert "layers.csv" in shown.stdout and "networks-nb201-" in shown.stdout
    assert "measured (UTC)" in shown.stdout
    # each table's line says what the cache records of it: good or NOISY
    recorded = read_cache_status(device_folder(get_backend("nnabla")))
    states = {line[24:60].strip(): line.split()[-1] for line in shown.stdout.splitlines()[2:]}
    assert len(recorded) == 2  # the layer table and the network table
    assert states == {name: "good" if q["good"] else "NOISY" for name, q in recorded.items()}
    _read_only_cache_shows(cache, shown.stdout)
    gone = hwnas("profile", "--remeasure")
    assert gone.returncode == 0 and "discarded 2 cached table(s)" in gone.stdout, gone.stderr
    assert not list(cache.glob("*/*.csv")) and len(list(cache.glob("*/*.csv.discarded"))) == 2


def test_device_tables_measure_the_calibration_networks_and_remeasure_a_noisy_table(tmp_path):
    """A smoke check that holds under any load: what the tables hold, what the cache records,
    and that a table recorded as noisy is measured again while a good one is kept (the
    quality itself, and the warm reuse, are checked on the simulated device)."""
    import json
    from dataclasses import asdict

    from hwnas.profile import (
        PREDICTION_NOISE,
        calibration_z,
        device_folder,
        device_tables,
        frontier_z,
    )
    from hwnas.profile._device_tables import FRONTIER_NETWORKS
    space, backend = get_space("nb201"), get_backend("nnabla")
    layers, nets = device_tables(backend, space, networks=3, protocol=FAST, show_progress=False)
    calibration = {tuple(int(v) for v in z) for z in calibration_z(space, 3)}
    assert {tuple(z) for z in space.design(5, seed=0)} <= calibration <= set(nets.z)
    assert all(0 < t.min_ms <= t.latency_ms and t.noise_ms >= 0 for t in nets.timings)
    status_path = device_folder(backend) / "measured.json"
    status = json.loads(status_path.read_text())
    nets_name = nets.path.split("/")[-1]
    # and the frontier: the layer table's, unless it was put on a faster scale since (which
    # moves the frontier a little)
    if status[nets_name]["rebased_by"] == 1:
        assert set(nets.z) == calibration | {tuple(int(v) for v in z)
                                             for z in frontier_z(space, layers)}
    assert 0 < len(set(nets.z) - calibration) <= FRONTIER_NETWORKS
    assert set(status) == {"layers.csv", nets_name}
    protocol = {k: v for k, v in asdict(FAST).items() if k not in ("max_remeasures", "pause_s")}
    for record in status.values():
        assert "measured_at" in record and "load_average" in record
        assert record["protocol"] == protocol and record["good"] == (
            record["prediction_noise"] <= PREDICTION_NOISE)
    status["layers.csv"]["good"], status[nets_name]["good"] = False, True
    status_path.write_text(json.dumps(status))
    again, again_nets = device_tables(backend, space, networks=3, protocol=FAST,
                                      show_progress=False)
    assert (device_folder(backend) / "layers.csv.discarded").exists()  # measured anew
    assert not list(device_folder(backend).glob("networks-*.discarded"))  # kept
    # the rows are kept (on one scale: the machine may have run faster since), and the new
    # layer table's frontier is measured where it moved
    n = len(nets.z)
    assert again_nets.z[:n] == nets.z
    ratio = again_nets.values()[:n] / nets.values()
    assert ratio.max() / ratio.min() - 1 < 1e-4
    assert len(set(again_nets.z) - set(nets.z)) <= FRONTIER_NETWORKS
    assert set(again.timings) == set(layers.timings)


def _read_only_cache_shows(cache, expected):
    """A shared cache this user cannot write: showing it needs no lock file."""
    import os

    from hwnas.profile import cache_report
    if os.geteuid() == 0:  # root writes anywhere: nothing to show
        return
    folders = [p for p in cache.iterdir() if p.is_dir()]
    for lock in cache.glob("*/*.lock"):
        lock.unlink()
    for folder in folders:
        folder.chmod(0o555)
    try:
        assert cache_report(cache).splitlines()[1:] == expected.strip().splitlines()[1:]
        assert not list(cache.glob("*/*.lock"))
    finally:
        for folder in folders:
            folder.chmod(0o755)
