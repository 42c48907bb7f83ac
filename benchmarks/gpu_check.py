"""GPU check: measure the mobilenet space on a CUDA GPU with PyTorch, calibrate, and say how
accurate and how repeatable it is, in a few minutes.

For a machine with an NVIDIA GPU and torch already installed, and nothing else: no package
index, no scikit-learn, SciPy or Optuna (numpy comes with torch; tqdm is not needed). Copy the
project as plain files and run, from anywhere::

    python benchmarks/gpu_check.py            # --context cuda, 20 networks
    python benchmarks/gpu_check.py --context cpu --networks 6 --quick   # a dry run

It imports hwnas from the checkout this file lies in. Two processes, one after the other,
each measure the ``mobilenet`` layer table and the same N random networks with ``--backend
torch`` (hwnas's timing protocol, eval mode, ``torch.inference_mode()``, a synchronisation
after every pass). Then, in numpy alone (hwnas's one calibration line,
``hwnas._calibration.fit_line``, within the backend's physical slopes): the line true ~ a x
layer sum + b fitted on the first half of the networks of process 1, the share of the other
half predicted within +-10 % (in process 1, and in process 2 with the line of process 1), and
the repeatability of the two processes (Kendall tau and mean relative difference, of networks
and of layers). Prints a report and writes ``gpu_check.json`` and both processes' tables into
``--out`` (default: benchmarks/results/gpu_check/).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the checkout's hwnas, with or without PYTHONPATH

import numpy as np  # noqa: E402

from hwnas._calibration import fit_line  # noqa: E402
from hwnas.errors import HwnasError  # noqa: E402
from hwnas.profile import (  # noqa: E402
    TimingProtocol,
    get_backend,
    profile_layers,
    profile_networks,
)
from hwnas.profile._torch import TorchBackend  # noqa: E402
from hwnas.spaces import get_space  # noqa: E402
from hwnas.tables import read_layer_table, read_network_table  # noqa: E402

SPACE = "mobilenet"
#: the dry run's protocol: few, short runs (it checks the script, not the device)
QUICK = TimingProtocol(warmup=1, runs=3, min_runs=2, max_round_s=0.05, pause_s=0)
#: the whole check should take less than this (the GPU machines are lent by the quarter hour)
TIME_LIMIT_S = 300


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--context", default="cuda", choices=("cuda", "cpu"),
                   help="cuda (default) or cpu (a dry run)")
    p.add_argument("--device-id", type=int, default=0, help="the GPU's index")
    p.add_argument("--threads", type=int, default=1, help="PyTorch intra-op threads")
    p.add_argument("--networks", type=int, default=20, help="random networks (default: 20)")
    p.add_argument("--quick", action="store_true", help="few, short timing runs (dry run)")
    p.add_argument("--out", default=str(HERE / "results" / "gpu_check"),
                   help="folder for gpu_check.json and the tables (default: %(default)s)")
    p.add_argument("--measure-pass", type=int, help=argparse.SUPPRESS)  # one process's work
    return p


def measure(args: argparse.Namespace) -> int:
    """One process: the layer table and the networks, into ``--out``/pass<N>/."""
    try:
        backend = get_backend("torch", context=args.context, device_id=args.device_id,
                              threads=args.threads)
    except HwnasError as e:  # no GPU, no torch: one line
        print(f"gpu_check: {e}", file=sys.stderr)
        return 2
    space = get_space(SPACE)
    protocol = QUICK if args.quick else TimingProtocol()
    folder = Path(args.out) / f"pass{args.measure_pass}"
    start = time.perf_counter()
    profile_layers(backend, space.unique_layers(), folder / "layers.csv", protocol,
                   show_progress=False)
    profile_networks(backend, space, space.random_z(args.networks, seed=0),
                     folder / "networks.csv", protocol, show_progress=False)
    (folder / "seconds.txt").write_text(f"{time.perf_counter() - start:.1f}\n")
    return 0


def kendall_tau(a, b) -> float:
    """Kendall's tau-b (ties counted as scipy does), in numpy."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    i, j = np.triu_indices(len(a), 1)
    da, db = np.sign(a[i] - a[j]), np.sign(b[i] - b[j])
    pairs = len(i)
    denominator = np.sqrt((pairs - np.sum(da == 0)) * (pairs - np.sum(db == 0)))
    return float(np.sum(da * db) / denominator) if denominator else float("nan")


def read_pass(out: Path, n: int) -> dict:
    """A process's tables: layer latencies, and per network its layer sum and latency."""
    space = get_space(SPACE)
    layers = read_layer_table(out / f"pass{n}" / "layers.csv")
    networks = read_network_table(out / f"pass{n}" / "networks.csv", space)
    ms = {key: t.latency_ms for key, t in layers.timings.items()}
    sums = np.array([sum(ms[layer.key] for layer in space.decode(z).layers)
                     for z in networks.z])
    return {"fingerprint": layers.fingerprint, "layers": ms, "z": networks.z, "sum": sums,
            "true": np.asarray(networks.values("latency_ms"), dtype=float),
            "seconds": float((out / f"pass{n}" / "seconds.txt").read_text())}


def within(predicted, true, share: float = 0.10) -> float:
    """The percentage of networks predicted within +-share of their latency."""
    error = np.asarray(predicted) / np.asarray(true) - 1
    return float(100 * np.mean(np.abs(error) <= share + 1e-12))


def analyse(out: Path, slope_bounds: tuple[float, float]) -> dict:
    """Calibration on process 1's first half, accuracy on the rest, repeatability."""
    first, second = read_pass(out, 1), read_pass(out, 2)
    if first["z"] != second["z"]:
        raise SystemExit("the two processes measured different networks")
    half = len(first["z"]) // 2
    line = fit_line(first["sum"][:half], first["true"][:half], slope_bounds)

    def predict(p: dict):
        return line.a * p["sum"][half:] + line.b

    keys = sorted(first["layers"])
    layers_1 = np.array([first["layers"][k] for k in keys])
    layers_2 = np.array([second["layers"][k] for k in keys])
    fp = first["fingerprint"]
    return {
        "device": fp.device, "backend": fp.backend, "backend_version": fp.backend_version,
        "threads": fp.threads, "networks": len(first["z"]), "layers": len(keys),
        "calibration": {"a": line.a, "b": line.b, "how": line.how, "networks": half,
                        "true_over_sum": float(np.median(first["true"] / first["sum"]))},
        "within_10_pct": within(predict(first), first["true"][half:]),
        "mape_pct": float(100 * np.mean(np.abs(predict(first) / first["true"][half:] - 1))),
        "within_10_pct_other_process": within(predict(second), second["true"][half:]),
        "kendall_tau_passes": kendall_tau(first["true"], second["true"]),
        "mean_abs_diff_pct_passes": float(100 * np.mean(
            np.abs(second["true"] / first["true"] - 1))),
        "layers_kendall_tau_passes": kendall_tau(layers_1, layers_2),
        "layers_mean_abs_diff_pct_passes": float(100 * np.mean(
            np.abs(layers_2 / layers_1 - 1))),
        "passes": [{"seconds": p["seconds"], "true_ms_min": float(p["true"].min()),
                    "true_ms_max": float(p["true"].max()),
                    "layer_sum_ms_min": float(p["sum"].min()),
                    "layer_sum_ms_max": float(p["sum"].max())} for p in (first, second)],
    }


def report(r: dict, seconds: float) -> str:
    c = r["calibration"]
    lines = [f"GPU check: {r['backend']} {r['backend_version']} on {r['device']}, "
             f"{r['threads']} thread(s); space {SPACE}: {r['layers']} layers, "
             f"{r['networks']} networks, measured in two processes"]
    for i, p in enumerate(r["passes"], 1):
        lines.append(f"process {i}: {p['seconds']:.0f} s; networks {p['true_ms_min']:.3f}-"
                     f"{p['true_ms_max']:.3f} ms, their layer sums {p['layer_sum_ms_min']:.3f}-"
                     f"{p['layer_sum_ms_max']:.3f} ms")
    lines += [
        f"calibration on {c['networks']} networks of process 1: true = {c['a']:.3f} x layer "
        f"sum + {c['b']:.4f} ms ({c['how']}); true / sum {c['true_over_sum']:.3f} (median)",
        f"within +-10 %: {r['within_10_pct']:.0f} % of the other {r['networks'] - c['networks']} "
        f"networks (MAPE {r['mape_pct']:.1f} %); in process 2 with process 1's line: "
        f"{r['within_10_pct_other_process']:.0f} %",
        f"repeatability across the two processes: networks Kendall tau "
        f"{r['kendall_tau_passes']:.3f}, mean |difference| {r['mean_abs_diff_pct_passes']:.1f} "
        f"%; layers tau {r['layers_kendall_tau_passes']:.3f}, mean |difference| "
        f"{r['layers_mean_abs_diff_pct_passes']:.1f} %",
        f"total {seconds:.0f} s" + ("" if seconds <= TIME_LIMIT_S else
                                    f" (over the {TIME_LIMIT_S} s this check should take)")]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.measure_pass is not None:
        return measure(args)
    out = Path(args.out)
    start = time.perf_counter()
    for n in (1, 2):  # each in a fresh process: what repeats across processes is the point
        shutil.rmtree(out / f"pass{n}", ignore_errors=True)
        command = [sys.executable, *(["-S"] if sys.flags.no_site else []), str(Path(__file__)),
                   "--measure-pass", str(n), "--context", args.context, "--device-id",
                   str(args.device_id), "--threads", str(args.threads), "--networks",
                   str(args.networks), "--out", str(out), *(["--quick"] if args.quick else [])]
        if subprocess.run(command, env=os.environ.copy()).returncode != 0:
            print(f"gpu_check: process {n} failed (above)", file=sys.stderr)
            return 1
    result = analyse(out, TorchBackend.calibration_slope)
    seconds = time.perf_counter() - start
    result["seconds"] = seconds
    print(report(result, seconds))
    try:
        from _results import write_results
        write_results(str(out / "gpu_check.json"), "gpu_check", result)
    except ImportError:  # benchmarks/_results.py not carried: the numbers alone
        (out / "gpu_check.json").write_text(json.dumps({"meta": {}, "results": result},
                                                       indent=1) + "\n")
    print(f"wrote {out / 'gpu_check.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
