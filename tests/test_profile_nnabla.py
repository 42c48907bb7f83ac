"""The nnabla profiler, measuring real layers and networks (small shapes, few runs)."""

import math
import subprocess
import sys

import pytest

from conftest import FAST, have_gpu
from hwnas.layers import Layer
from hwnas.profile import ProfileError, get_backend, profile_layers, profile_networks
from hwnas.spaces import get_space
from hwnas.tables import read_layer_table

pytestmark = pytest.mark.nnabla


def test_times_a_layer_and_a_whole_network(nnabla_backend):
    space = get_space("mobilenet")
    layer = space.unique_layers()[2]
    t = nnabla_backend.time_layer(layer, FAST)
    assert t.runs >= FAST.min_runs and t.min_ms <= t.p10_ms <= t.latency_ms <= t.p90_ms
    assert all(math.isfinite(v) and v > 0 for v in (t.latency_ms, t.min_ms))
    net = nnabla_backend.time_architecture(space.decode(space.random_z(1, 0)[0]), FAST)
    assert net.latency_ms > 0 and net.runs >= FAST.min_runs


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
    cmd = [sys.executable, "-m", "hwnas.profile", "--space", "mobilenet", "--backend", "nnabla",
           "--out", str(out), "--runs", "2", "--warmup", "1", "--max-seconds", "0.01"]
    run = subprocess.run(cmd, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "measuring layers" in run.stderr and "ETA" in run.stderr
    assert len(read_layer_table(out).timings) == len(get_space("mobilenet").unique_layers())
    again = subprocess.run(cmd + ["--quiet"], capture_output=True, text=True)
    assert again.returncode == 0 and "measuring" not in again.stderr


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
