"""The torch backend: modules with hwnas's analytic costs, timed on the CPU (and a CUDA GPU
where there is one), measuring with torch and numpy alone, and a search that ends verified."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import FAST, FAST_ARGS, every_op, hwnas

from hwnas.layers import Layer
from hwnas.profile import ProfileError, get_backend, profile_layers, profile_networks
from hwnas.spaces import SPACES, get_space, unit_graph
from hwnas.tables import read_layer_table, read_network_table

pytestmark = pytest.mark.torch
ROOT = Path(__file__).parent.parent


@pytest.fixture(scope="module", autouse=True)
def torch():
    """torch, on one intra-op thread: its default, a thread per core, ran these tests 40 times
    slower on a loaded 2-core machine."""
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield torch
    torch.set_num_threads(threads)


def torch_costs(torch, net, in_shape, flop_counter=False):
    """(parameters, MACs) of a torch module as PyTorch runs it, per sample: parameters plus
    batch norm's running statistics (hwnas counts what a network stores); MACs of every
    convolution and linear layer from its attributes and the output it gave (or, with
    ``flop_counter``, from PyTorch's own FLOP counter, 2 FLOPs a MAC: slower), of pooling by
    hwnas's convention (a MAC per output value and kernel position; global pooling one per
    input value), and of a layer of element-wise steps alone (a standalone batch norm or sum)
    one per input value."""
    from torch.utils.flop_counter import FlopCounterMode

    from hwnas.profile._torch_net import LayerNet
    nn = torch.nn
    params = sum(p.numel() for p in net.parameters()) + sum(
        b.numel() for name, b in net.named_buffers()
        if name.endswith(("running_mean", "running_var")))
    macs = []

    def count(module, inputs, output):
        if isinstance(module, nn.Conv2d) and not flop_counter:
            k = math.prod(module.kernel_size)
            macs.append(output.numel() * module.in_channels // module.groups * k)
        elif isinstance(module, nn.Linear) and not flop_counter:
            macs.append(module.in_features * module.out_features)
        elif isinstance(module, nn.AvgPool2d):
            macs.append(output.numel() * module.kernel_size ** 2)
        elif isinstance(module, nn.AdaptiveAvgPool2d):
            macs.append(inputs[0].numel())
        elif isinstance(module, LayerNet):
            kinds = {type(m).__name__ for m in module.steps.modules()}
            if kinds <= {"ModuleList", "BatchNorm2d", "Sequential", "ReLU", "ReLU6", "Identity",
                         "Add"}:
                macs.append(inputs[0].numel())

    hooks = [m.register_forward_hook(count) for m in net.modules()]
    try:
        with FlopCounterMode(display=False) if flop_counter else _nothing() as counter, \
                torch.inference_mode():
            net.eval()(torch.zeros(1, *in_shape))
    finally:
        for hook in hooks:
            hook.remove()
    return params, sum(macs) + (counter.get_total_flops() // 2 if flop_counter else 0)


def _nothing():
    import contextlib
    return contextlib.nullcontext()


def test_every_op_is_built_with_its_analytic_costs_and_output_shape(torch):
    from hwnas.profile._torch import torch_module
    for layer in every_op():
        net = torch_module(unit_graph(layer), seed=None)
        assert torch_costs(torch, net, layer.in_shape) == (layer.params, layer.macs), layer.key
        with torch.inference_mode():
            y = net.eval()(torch.zeros(2, *layer.in_shape))
        assert y.shape[0] == 2 and math.prod(y.shape[1:]) == math.prod(layer.out_shape)
        assert y.shape[1] == layer.out_shape[0], layer.key


@pytest.mark.parametrize("space_name", sorted(SPACES))
def test_networks_of_every_space_have_the_analytic_costs(torch, space_name):
    """50 random z per built-in space: the module PyTorch runs stores and computes what
    hwnas's analytic costs say (which the nnabla and ONNX builds are tested against)."""
    from hwnas.profile._torch import torch_module
    space = get_space(space_name)
    for i, z in enumerate(space.random_z(50, seed=7)):
        arch = space.decode(z)
        net = torch_module(arch.graph, seed=None)
        shape = arch.layers[0].in_shape  # ofa: the resolution is a decision
        assert torch_costs(torch, net, shape) == (arch.params, arch.macs), z
        if i == 0:  # PyTorch's own FLOP counter agrees on convolutions and linear layers
            assert torch_costs(torch, net, shape, flop_counter=True) == \
                (arch.params, arch.macs), z


def test_a_space_file_is_built_and_timed(tmp_path):
    from helpers import SPACE_YAML

    from hwnas.spaces import load_space
    (tmp_path / "tiny.yaml").write_text(SPACE_YAML)
    space = load_space(str(tmp_path / "tiny.yaml"))
    backend = get_backend("torch")
    for z in space.random_z(3, seed=0):
        assert backend.time_architecture(space.decode(z), FAST).latency_ms > 0


def test_layers_and_networks_are_timed_into_tables_with_the_fingerprint(torch, tmp_path):
    space = get_space("nb201")
    backend = get_backend("torch")
    layers = profile_layers(backend, space.unique_layers(), tmp_path / "l.csv", FAST,
                            show_progress=False)
    assert len(layers.timings) == 18 and all(t.latency_ms > 0 for t in layers.timings.values())
    fp = layers.fingerprint
    assert (fp.backend, fp.threads, fp.dtype, fp.batch) == ("torch", 1, "float32", 1)
    assert fp.backend_version.startswith(torch.__version__)
    assert f"cuda={torch.version.cuda or 'none'}" in fp.backend_version and "cudnn=" in \
        fp.backend_version
    assert fp.device.startswith("cpu: ")
    nets = profile_networks(backend, space, space.random_z(3, seed=1), tmp_path / "n.csv", FAST,
                            show_progress=False)
    assert nets.fingerprint == fp and all(t.runs >= FAST.rounds * FAST.min_runs
                                          for t in nets.timings)
    two = get_backend("torch", threads=2)
    two.build(unit_graph(Layer("gap", (4, 4, 4))))
    try:
        assert two.fingerprint().threads == 2
        assert torch.get_num_threads() == 2  # what is timed runs on the threads recorded
    finally:
        torch.set_num_threads(1)


def test_seeded_weights_are_the_same_and_leave_the_callers_random_state(torch):
    from hwnas.profile._torch import torch_module
    graph = get_space("mobilenet").decode([1] * 21).graph
    torch.manual_seed(123)
    before = torch.rand(3)
    torch.manual_seed(123)
    a, b = torch_module(graph), torch_module(graph)
    assert torch.equal(torch.rand(3), before)  # building drew nothing from the global generator
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(p, q), name
    bn = next(m for m in a.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert not torch.all(bn.running_mean == 0)  # random statistics: latency depends on data


def test_a_failing_network_is_named(tmp_path):
    huge = Layer("conv", (64, 40000, 40000), 64)
    with pytest.raises(ProfileError, match=r"layer conv\(in=64x40000x40000.*torch failed"):
        profile_layers(get_backend("torch"), [huge], tmp_path / "l.csv", FAST,
                       show_progress=False)


def test_bad_threads_batch_and_device_id_are_named_in_one_error():
    from hwnas.errors import InputError
    with pytest.raises(InputError, match=r"^torch backend: threads must be an integer >= 1, got "
                                         r"0; batch must be an integer >= 1, got 0; device_id "
                                         r"must be an integer >= 0, got -1$"):
        get_backend("torch", threads=0, batch=0, device_id=-1)
    with pytest.raises(InputError, match=r"^torch backend: threads must be an integer >= 1, "
                                         r"got 2\.0$"):
        get_backend("torch", threads=2.0)
    assert get_backend("torch", threads=2, batch=3).fingerprint().batch == 3


def test_cuda_is_refused_in_one_line_where_torch_sees_no_gpu(torch):
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU (test_cuda_context times on it)")
    with pytest.raises(ProfileError, match="torch context 'cuda' .* is not available"):
        get_backend("torch", context="cuda")
    with pytest.raises(ValueError, match="unknown torch context 'cudnn'"):
        get_backend("torch", context="cudnn")
    run = hwnas("profile", "--backend", "torch", "--context", "cuda", "--space", "nb201",
                "--out", "never.csv")
    assert run.returncode == 2 and "not available" in run.stderr


@pytest.mark.gpu
def test_cuda_context(torch, tmp_path):
    if not torch.cuda.is_available():
        pytest.skip("this torch build has no CUDA")
    backend = get_backend("torch", context="cuda")
    space = get_space("mobilenet")
    table = profile_layers(backend, space.unique_layers()[:5], tmp_path / "g.csv", FAST,
                           show_progress=False)
    fp = table.fingerprint
    assert fp.device == f"cuda: {torch.cuda.get_device_name(0)}"
    assert f"cuda={torch.version.cuda}" in fp.backend_version and "cudnn=none" not in \
        fp.backend_version
    nets = profile_networks(backend, space, space.random_z(2, seed=0), tmp_path / "n.csv", FAST,
                            show_progress=False)
    assert all(t.latency_ms > 0 for t in nets.timings)


def isolated_site(tmp_path):
    """A folder with the torch environment's packages but scikit-learn, SciPy, Optuna, tqdm,
    ONNX (Runtime) and hwnas: with ``python -S`` and it alone on PYTHONPATH (no .pth files
    run, so no editable hwnas either), an interpreter has torch and numpy but none of those."""
    import numpy
    import torch
    parents = {os.path.dirname(os.path.dirname(m.__file__)) for m in (numpy, torch)}
    banned = ("sklearn", "scikit_learn", "scipy", "optuna", "tqdm", "onnx", "hwnas",
              "__editable__")
    site = tmp_path / "gpu_site"
    site.mkdir()
    for parent in parents:
        for name in os.listdir(parent):
            if not name.lower().startswith(banned) and not name.endswith(".pth") and \
                    not (site / name).exists():
                os.symlink(os.path.join(parent, name), site / name)
    return site


def test_measuring_needs_only_torch_and_numpy(tmp_path):
    """As on a bare GPU machine: the checkout on PYTHONPATH beside torch and numpy, without
    scikit-learn, SciPy, Optuna or tqdm."""
    env = {"PATH": os.environ.get("PATH", ""), "HWNAS_CACHE": str(tmp_path / "cache"),
           "PYTHONPATH": f"{ROOT}{os.pathsep}{isolated_site(tmp_path)}"}
    code = ("import sys\nfrom hwnas.profile.__main__ import main\n"
            "status = main(sys.argv[1:])\n"
            "assert status == 0, status\n"
            "print(sorted(m for m in ('sklearn', 'scipy', 'optuna', 'tqdm', 'yaml', 'onnx') "
            "if m in sys.modules))\n")
    for extra in ([], ["--networks", "2"]):
        out = tmp_path / f"t{len(extra)}.csv"
        run = subprocess.run([sys.executable, "-S", "-c", code, "--backend", "torch", "--space",
                              "nb201", "--out", str(out), *FAST_ARGS, *extra], env=env,
                             capture_output=True, text=True, cwd=tmp_path)
        assert run.returncode == 0, run.stderr[-3000:]
        assert run.stdout.splitlines()[-1] == "[]", run.stdout
        assert "with torch" in run.stdout
    assert len(read_layer_table(tmp_path / "t0.csv").timings) == 18
    assert len(read_network_table(tmp_path / "t2.csv").z) == 2
    missing = subprocess.run([sys.executable, "-S", "-c", "import sklearn"], env=env,
                             capture_output=True, text=True)
    assert missing.returncode != 0  # the site really lacks scikit-learn


def test_export_for_a_pytorch_device_round_trip_without_hwnas(tmp_path):
    """An export for a device with PyTorch and no ONNX Runtime: its runner, on a site with
    numpy and torch alone, times what the torch backend builds and writes tables that a
    predictor fits on and that this machine can verify (the same fingerprint)."""
    from hwnas.predictors import LookupPredictor
    from hwnas.profile import _torch_net
    from hwnas.search._verify import verifier_backend
    export = tmp_path / "to_gpu"
    run = hwnas("profile", "--space", "nb201", "--backend", "torch", "--export", export,
                "--networks", "5", "--with-layers")
    assert run.returncode == 0, run.stderr
    assert "5 networks and 18 layers of nb201 exported" in run.stdout
    assert "needs numpy and torch" in run.stdout
    manifest = json.loads((export / "manifest.json").read_text())
    assert manifest["runtime"] == "torch"
    assert all(u["file"].endswith(".json") and (export / u["file"]).exists()
               for u in manifest["units"])
    assert (export / "hwnas_torch.py").read_bytes() == Path(_torch_net.__file__).read_bytes()
    assert not list(export.rglob("*.onnx"))
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(isolated_site(tmp_path))}
    command = [sys.executable, "-S", str(export / "runner.py"), *FAST_ARGS]
    measured = subprocess.run(command, env=env, capture_output=True, text=True, cwd=tmp_path)
    assert measured.returncode == 0, measured.stderr[-3000:]
    assert "5 networks (5 measured now)" in measured.stdout
    networks = read_network_table(export / "networks.csv")
    layers = read_layer_table(export / "layers.csv")
    assert networks.fingerprint == layers.fingerprint == get_backend("torch").fingerprint()
    assert len(layers.timings) == 18 and all(t.latency_ms > 0 for t in networks.timings)
    verifier, why = verifier_backend(LookupPredictor().fit_table(layers))
    assert verifier is not None and verifier.name == "torch", why
    # the GPU it is asked for (none here has 100), and an onnxruntime option it says it ignores
    gpu = subprocess.run(command + ["--provider", "cuda", "--device-id", "99", "--optimization",
                                    "basic", "--out-dir", str(tmp_path / "gpu")],
                         env=env, capture_output=True, text=True, cwd=tmp_path)
    assert gpu.returncode == 1 and "torch context 'cuda' (GPU 99) is not available" in gpu.stderr
    assert "--optimization is an onnxruntime setting: this export for PyTorch ignores it" in \
        gpu.stderr
    assert "optimization" not in measured.stderr
    (export / "hwnas_torch.py").unlink()  # a runner copied without it says what is missing
    bare = subprocess.run(command + ["--out-dir", str(tmp_path / "again")], env=env,
                          capture_output=True, text=True, cwd=tmp_path)
    assert bare.returncode == 1 and "runner.py needs hwnas_torch.py" in bare.stderr


def test_search_on_nb201_ends_verified(tmp_path):
    cache = tmp_path / "cache"
    run = hwnas("search", "--space", "nb201", "--backend", "torch", "--budget-ms", "1000",
                "--trials", "10", "--json", tmp_path / "r.json", "--pause-s", "0",
                env={"HWNAS_CACHE": cache})
    assert run.returncode == 0, run.stderr
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["backend"] == "torch" and result["verified"] is True, result["verification"]
    assert result["predictor"].startswith("calibrated")
    assert all(b["measured_latency_ms"] <= 1000 for b in result["best"]
               if b.get("measured_latency_ms") is not None)
    assert len(list(cache.glob("torch-*/networks-nb201-*.csv"))) == 1
    assert "verified: " in run.stdout


def test_gpu_check_dry_run_on_the_cpu(tmp_path):
    """The GPU check script, small, on the CPU, with torch and numpy alone (as on a GPU
    machine): it measures, calibrates and compares two processes."""
    env = {"PATH": os.environ.get("PATH", ""), "HWNAS_CACHE": str(tmp_path / "cache"),
           "PYTHONPATH": str(isolated_site(tmp_path))}
    run = subprocess.run([sys.executable, "-S", str(ROOT / "benchmarks" / "gpu_check.py"),
                          "--context", "cpu", "--networks", "6", "--quick", "--out",
                          str(tmp_path / "out")], env=env, capture_output=True, text=True,
                         cwd=tmp_path, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads((tmp_path / "out" / "gpu_check.json").read_text())["results"]
    assert report["device"].startswith("cpu: ") and report["backend"] == "torch"
    assert report["networks"] == 6 and len(report["passes"]) == 2
    assert 0 <= report["within_10_pct"] <= 100 and -1 <= report["kendall_tau_passes"] <= 1
    assert report["calibration"]["a"] > 0
    assert "within +-10 %" in run.stdout and "repeatability" in run.stdout
