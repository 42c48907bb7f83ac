"""The ONNX Runtime profiler, ONNX export, network tables and killed-and-resumed profiling."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from helpers import FAST, FAST_ARGS, hwnas

from hwnas.layers import Layer
from hwnas.profile import ProfileError, export_onnx, get_backend, profile_layers, profile_networks
from hwnas.spaces import get_space
from hwnas.tables import read_layer_table, read_network_table


@pytest.fixture(scope="module")
def backend():
    return get_backend("onnxruntime")


def test_fingerprint_names_runtime_device_threads(backend):
    fp = get_backend("onnxruntime", threads=2, batch=4, optimization="basic").fingerprint()
    assert fp.backend == "onnxruntime" and fp.backend_version.endswith("opt=basic")
    assert fp.device.startswith("cpu: ") and fp.threads == 2 and fp.batch == 4
    assert fp.id != backend.fingerprint().id


def test_layer_table_and_network_table(backend, tmp_path):
    space = get_space("mobilenet")
    layers = profile_layers(backend, space.unique_layers(), tmp_path / "l.csv", FAST,
                            show_progress=False)
    assert set(layers.timings) == {layer.key for layer in space.unique_layers()}
    assert all(t.latency_ms > 0 and t.round_spread >= 0 for t in layers.timings.values())
    zs = space.random_z(4, seed=1)
    nets = profile_networks(backend, space, zs, tmp_path / "n.csv", FAST, show_progress=False)
    assert [list(z) for z in nets.z] == zs.tolist() and nets.fingerprint == layers.fingerprint
    assert all(t.runs >= FAST.rounds * FAST.min_runs for t in nets.timings)


def test_batch_is_measured_and_recorded(tmp_path):
    backend = get_backend("onnxruntime", batch=3)
    layer = Layer("conv", (8, 8, 8), 16, kernel=3)
    table = profile_layers(backend, [layer], tmp_path / "b.csv", FAST, show_progress=False)
    assert table.fingerprint.batch == 3


def test_exported_architecture_runs_with_the_expected_output(tmp_path):
    space = get_space("mobilenet")
    arch = space.decode(space.random_z(1, seed=5)[0])
    export_onnx(arch.graph, tmp_path / "arch.onnx", batch=2)
    session = ort.InferenceSession(str(tmp_path / "arch.onnx"),
                                   providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    (y,) = session.run(None, {"x": x})
    assert y.shape == (2, 10) and np.isfinite(y).all() and not np.allclose(y[0], y[1])
    assert session.get_inputs()[0].shape == [2, 3, 32, 32]
    model = onnx.load(str(tmp_path / "arch.onnx"))
    weights = sum(int(np.prod(t.dims)) for t in model.graph.initializer
                  if t.name not in ("zero", "six"))  # Clip's bounds, not parameters
    assert weights == arch.params


def test_failing_layer_is_named_and_not_recorded(backend, tmp_path):
    ok = Layer("gap", (4, 4, 4))
    huge = Layer("conv", (64, 40000, 40000), 64)
    with pytest.raises(ProfileError, match=r"layer conv\(in=64x40000x40000.*onnxruntime failed"):
        profile_layers(backend, [ok, huge], tmp_path / "l.csv", FAST, show_progress=False)
    assert not (tmp_path / "l.csv").exists() or huge.key not in (tmp_path / "l.csv").read_text()


def test_unavailable_provider_and_bad_options():
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        with pytest.raises(ProfileError, match="provider 'cuda' is not available"):
            get_backend("onnxruntime", context="cuda")
    with pytest.raises(ValueError, match="unknown onnxruntime provider 'tpu'"):
        get_backend("onnxruntime", context="tpu")
    with pytest.raises(ValueError, match="unknown graph optimisation"):
        get_backend("onnxruntime", optimization="max")
    with pytest.raises(ValueError, match="batch must be an integer >= 1, got 0"):
        get_backend("onnxruntime", batch=0)


@pytest.mark.skipif("CUDAExecutionProvider" not in ort.get_available_providers(),
                    reason="needs onnxruntime-gpu and a CUDA GPU")
@pytest.mark.gpu
def test_cuda_provider(tmp_path):
    backend = get_backend("onnxruntime", context="cuda")
    table = profile_layers(backend, get_space("mobilenet").unique_layers()[:3],
                           tmp_path / "g.csv", FAST, show_progress=False)
    assert table.fingerprint.device.startswith("cuda: ") and len(table.timings) == 3


QUICK = ["--backend", "onnxruntime", *FAST_ARGS]


def rows_in(path):
    return len(path.read_text().splitlines()) - 1 if path.exists() else -1


def test_sigkill_at_several_points_then_resume_gives_every_layer_once(tmp_path):
    out = tmp_path / "layers.csv"
    expected = {layer.key for layer in get_space("mobilenet").unique_layers()}
    rows_seen = []
    for at_least in (-1, 0, 24, 48):  # at once, header only, after 1 and 2 batches of 24
        proc = subprocess.Popen([sys.executable, "-m", "hwnas.profile", *QUICK, "--out", str(out),
                                 "--quiet"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while rows_in(out) < at_least and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.001)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        rows_seen.append(rows_in(out))
    assert sum(0 <= n < len(expected) for n in rows_seen) >= 3, rows_seen  # killed mid-run
    assert rows_seen == sorted(rows_seen)  # each kill kept what was written before it
    done = hwnas("profile", *QUICK, "--out", out)
    assert done.returncode == 0, done.stderr
    table = read_layer_table(out)
    assert set(table.timings) == expected
    assert len(out.read_text().splitlines()) == 1 + len(expected)  # no duplicate, no half row


def test_networks_from_a_search_result(tmp_path):
    space = get_space("mobilenet")
    zs = space.random_z(2, seed=9).tolist()
    result = tmp_path / "result.json"
    result.write_text(json.dumps({"best": [{"z": z} for z in zs]}))
    out = tmp_path / "nets.csv"
    run = hwnas("profile", *QUICK, "--from", result, "--out", out)
    assert run.returncode == 0, run.stderr
    assert "2 networks (2 measured now)" in run.stdout and "repeatability" in run.stdout
    assert [list(z) for z in read_network_table(out).z] == zs
    again = hwnas("profile", *QUICK, "--from", result, "--out", out)
    assert again.returncode == 0 and "2 networks (0 measured now)" in again.stdout
    listing = tmp_path / "z.txt"
    listing.write_text("# one z per line\n" + "-".join(map(str, zs[0])) + "\n0-1\n")
    bad = hwnas("profile", *QUICK, "--from", listing, "--out", out)
    assert bad.returncode == 2 and f"{listing}, line 3" in bad.stderr and "21 entries" in bad.stderr


def test_random_networks_are_seeded(tmp_path):
    runs = [hwnas("profile", *QUICK, "--networks", "2", "--seed", "3", "--out",
                  tmp_path / f"n{i}.csv") for i in range(2)]
    assert all(r.returncode == 0 for r in runs), runs[0].stderr
    assert read_network_table(tmp_path / "n0.csv").z == read_network_table(tmp_path / "n1.csv").z
    assert os.path.getsize(tmp_path / "n0.csv") > 0


@pytest.mark.parametrize("space_name", ["mobilenet", "nb201"])
def test_whole_networks_of_every_space_run(backend, space_name, tmp_path):
    space = get_space(space_name)
    for z in space.random_z(3, seed=11):
        arch = space.decode(z)
        assert backend.time_architecture(arch, FAST).latency_ms > 0
    export_onnx(space.decode((0,) * len(space.decisions)).graph, tmp_path / "empty.onnx")
    session = ort.InferenceSession(str(tmp_path / "empty.onnx"),
                                   providers=["CPUExecutionProvider"])
    feed = {i.name: np.zeros(i.shape, np.float32) for i in session.get_inputs()}
    feed["x"] = np.ones((1, *space.input_shape), np.float32)
    y = session.run(None, feed)[0]
    assert y.shape == (1, 10)
    assert len(feed) == (4 if space_name == "nb201" else 1)  # x, and zeros after each stage


def test_device_tables_give_the_calibration_networks_asked_for(backend):
    """A smoke check that holds under any load (the warm reuse of a good cache is checked on
    the simulated device, test_profile_simulated.py)."""
    from hwnas.profile import TimingProtocol, calibration_z, device_tables
    space = get_space("nb201")
    quick = TimingProtocol(warmup=0, runs=2, rounds=1, min_runs=1, max_round_s=0.01, pause_s=0)
    for n in (5, 3):
        layers, nets = device_tables(backend, space, networks=n, protocol=quick,
                                     show_progress=False)
        asked = {tuple(int(v) for v in z) for z in calibration_z(space, n)}
        assert len(layers.timings) == 18 and len(asked) >= 5 + 2  # the design, least, most
        # the whole cached network table: every calibration network asked for, the least
        assert asked <= set(nets.z) == set(read_network_table(nets.path).z)
        assert all(t.latency_ms > 0 and t.runs >= quick.rounds * quick.min_runs
                   for t in nets.timings)


def test_verification_measures_a_cached_network_table_of_another_protocol_again(backend,
                                                                               capsys):
    from hwnas.profile import (
        device_folder,
        device_tables,
        measure_networks,
        network_table_path,
        read_cache_status,
    )
    space = get_space("nb201")
    _, nets = device_tables(backend, space, networks=2, protocol=FAST, show_progress=False)
    path = network_table_path(backend, space)
    other = dataclasses.replace(FAST, runs=4)
    capsys.readouterr()
    measure_networks(backend, space, nets.z[:2], path, other, show_progress=False)
    assert f"{path.name} in {device_folder(backend)} was measured with another timing " \
        f"protocol" in capsys.readouterr().err
    # the discarded table's rows are gone; a network that stayed noisy is not written
    assert os.path.exists(f"{path}.discarded") and rows_in(path) <= 2
    assert read_cache_status(device_folder(backend))[path.name]["protocol"]["runs"] == 4


def test_a_table_cached_with_another_timing_protocol_is_measured_again(backend, capsys):
    from hwnas.profile import device_folder, device_tables, read_cache_status
    space = get_space("nb201")
    device_tables(backend, space, networks=2, protocol=FAST, show_progress=False)
    recorded = read_cache_status(device_folder(backend))["layers.csv"]["protocol"]
    assert recorded == {"warmup": FAST.warmup, "runs": FAST.runs, "rounds": FAST.rounds,
                        "min_runs": FAST.min_runs, "max_round_s": FAST.max_round_s,
                        "statistic": FAST.statistic,
                        "speed_correction": FAST.speed_correction}
    capsys.readouterr()
    other = dataclasses.replace(FAST, runs=4)
    layers, _ = device_tables(backend, space, networks=2, protocol=other, show_progress=False)
    assert "was measured with another timing protocol (warmup 1, runs 3," in \
        capsys.readouterr().err
    assert os.path.exists(layers.path + ".discarded")
    assert read_cache_status(device_folder(backend))["layers.csv"]["protocol"]["runs"] == 4
    # the protocol is recorded before measuring: an interrupted pass's rows are never taken
    # for another protocol's
    build, built = backend.runner, []

    def interrupted(graph):
        if len(built) == 5:
            raise KeyboardInterrupt
        built.append(graph)
        return build(graph)

    with pytest.MonkeyPatch.context() as m, pytest.raises(KeyboardInterrupt):
        m.setattr(backend, "runner", interrupted)
        device_tables(backend, space, networks=2, protocol=FAST, show_progress=False)
    assert read_cache_status(device_folder(backend))["layers.csv"]["protocol"]["runs"] == 3
    capsys.readouterr()
    device_tables(backend, space, networks=2, protocol=other, show_progress=False)
    assert "was measured with another timing protocol (warmup 1, runs 3," in \
        capsys.readouterr().err
