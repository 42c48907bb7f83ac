"""Once-for-All on this machine: the default flow's cold and warm times, the layer regressor's
error at resolutions it did not measure, and the calibrated predictor on random subnetworks.

It times, so run it by hand on a quiet machine (nothing else running), per backend:

    .venv/bin/python benchmarks/ofa_machine.py --backend nnabla --budget-ms 100
    .venv/bin/python benchmarks/ofa_machine.py --backend onnxruntime --budget-ms 10

1. ``hwnas search --space ofa --budget-ms X`` in a new process with an empty cache (cold:
   measures the layers of 3 resolutions and the calibration networks, calibrates, searches,
   verifies), then again (warm); wall-clock seconds of each.
2. The layer predictor: the layers of ``--extra`` resolutions (none of them measured by the
   flow) measured now, against what the flow's ``layer_predictor`` (lookup of the measured
   layers, a linear regressor over layer features for the rest, anchored to the same layers'
   measured sizes) predicts for them, and its regressor alone (``plain``): median absolute
   error and share within +-10 %, per op kind; and, measuring nothing more, both refitted
   without the middle measured resolution (176), against its layers.
3. The calibrated predictor (as the flow fits it, its offset near the budget) on 50 random
   subnetworks across resolutions, measured in one batch with calibration networks re-timed
   beside them (``references``): share within +-10 %, MAPE, Kendall tau; and the same
   calibrated with the regressor's predictions not anchored (``plain``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
from _results import write_results
from scipy.stats import kendalltau

from hwnas.predictors._features import op_key
from hwnas.profile import device_tables, get_backend, layer_predictor, profile_layers
from hwnas.profile._batch import measure_networks
from hwnas.search._verify import calibrate
from hwnas.spaces import get_space

HERE = os.path.dirname(os.path.abspath(__file__))


def flow(backend: str, budget_ms: float, cache: str, out: str) -> float:
    """Seconds of one ``hwnas search --space ofa`` in a new process on ``cache``."""
    command = [sys.executable, "-m", "hwnas.search", "--space", "ofa", "--backend", backend,
               "--budget-ms", str(budget_ms), "--json", out, "--quiet"]
    start = time.perf_counter()
    run = subprocess.run(command, env={**os.environ, "HWNAS_CACHE": cache},
                         capture_output=True, text=True)
    seconds = time.perf_counter() - start
    print(run.stdout + run.stderr, flush=True)
    if run.returncode != 0:
        raise SystemExit(f"{' '.join(command)} exited {run.returncode}")
    return seconds


def errors(predicted: np.ndarray, truth: np.ndarray) -> dict:
    error = np.abs(predicted / truth - 1)
    return {"median_abs_error": float(np.median(error)), "within_10": float(np.mean(error <= 0.10))}


def anchored_and_plain(out: dict) -> str:
    """The layer predictor's errors in ``out`` and, in brackets, its regressor's alone."""
    return (f"median |error| {100 * out['median_abs_error']:.1f} %, "
            f"{100 * out['within_10']:.0f} % within +-10 % (the regressor alone: "
            f"{100 * out['plain']['median_abs_error']:.1f} %, "
            f"{100 * out['plain']['within_10']:.0f} %)")


def regressor_error(space, backend, layers, extra: list[int], folder: str) -> dict:
    """The flow's layer predictor (anchored) and its regressor alone (plain) against layers of
    resolutions it did not measure."""
    index = [space.resolutions.index(r) for r in extra]
    fixed = space.decisions[space.resolution_decision].layers
    unmeasured = list({ly.key: ly for r in index for ly in (
        *fixed[r], *(group[r] for d in range(space.n_blocks)
                     for group in space.decisions[d].layers))
        if ly.key not in layers.timings}.values())
    measured = profile_layers(backend, unmeasured, os.path.join(folder, "extra.csv"))
    truth = np.array([measured.timings[ly.key].latency_ms for ly in unmeasured])
    predictor = layer_predictor(space, layers)
    predicted = predictor.predict_layers(unmeasured)
    by_op: dict[str, dict] = {}
    for op in sorted({op_key(ly) for ly in unmeasured}):
        rows = [i for i, ly in enumerate(unmeasured) if op_key(ly) == op]
        by_op[op] = {"layers": len(rows), **errors(predicted[rows], truth[rows])}
    out = {"resolutions": extra, "layers": len(unmeasured), **errors(predicted, truth),
           "plain": errors(predictor.fallback_.predict_layers(unmeasured), truth),
           "by_op": by_op}
    print(f"layer predictor on {len(unmeasured)} layers of r = {extra}: "
          f"{anchored_and_plain(out)}")
    return out


def middle_held_out(space, layers) -> dict:
    """The layer predictor fitted on the layers of the outer measured resolutions only (its
    anchors at 128 and 224), and its regressor alone, scored on the layers only the middle one
    has (no further measurement: one batch, one scale)."""
    from hwnas.layers import Layer
    from hwnas.predictors import LinearPredictor, LookupPredictor
    from hwnas.tables import LayerTable
    fixed = space.decisions[space.resolution_decision].layers

    def keys(r):
        return {ly.key for ly in (*fixed[r], *(group[r] for d in range(space.n_blocks)
                                               for group in space.decisions[d].layers))}
    outer = keys(0) | keys(len(space.resolutions) - 1)
    test = sorted(keys(space.resolutions.index(176)) - outer)
    train = LayerTable(layers.path, layers.fingerprint,
                       {k: v for k, v in layers.timings.items() if k not in test})
    truth = np.array([layers.timings[k].latency_ms for k in test])
    predictor = LookupPredictor(fallback=LinearPredictor(), warn_fallback=False).fit_table(train)
    held_out = [Layer.from_key(k) for k in test]
    out = {"layers": len(test), **errors(predictor.predict_layers(held_out), truth),
           "plain": errors(predictor.fallback_.predict_layers(held_out), truth)}
    print(f"layer predictor without r = 176, on its {len(test)} layers: "
          f"{anchored_and_plain(out)}")
    return out


def calibrated_accuracy(space, backend, layers, networks, budget_ms: float, folder: str
                        ) -> dict:
    """The flow's calibrated predictor on 50 random subnetworks measured now."""
    predictor = calibrate(layer_predictor(space, layers), networks, space, backend, budget_ms)
    Z = space.random_z(50, seed=1)
    latency = networks.values()
    order = np.argsort(latency)
    picks = order[np.unique(np.linspace(0, len(order) - 1, 4).round().astype(int))]
    timings = measure_networks(backend, space, Z, os.path.join(folder, "random.csv"),
                               references=[(networks.z[i], latency[i]) for i in picks])
    truth = np.array([timings[tuple(z)].latency_ms for z in space.check_z(Z).tolist()])
    predicted = predictor.predict_z(space, Z)
    error = predicted / truth - 1
    plain = layer_predictor(space, layers)
    plain.anchors_ = {}  # the regressor's predictions as they are
    plain_error = calibrate(plain, networks, space, backend, budget_ms).predict_z(space, Z) \
        / truth - 1

    def macs(layers):
        return [ly.macs for ly in layers]
    out = {"networks": len(Z), "within_10": float(np.mean(np.abs(error) <= 0.10)),
           "mape": float(np.mean(np.abs(error))), "kendall_tau": float(kendalltau(
               predicted, truth)[0]), "measured_ms": [float(truth.min()), float(truth.max())],
           "calibration": {"a": predictor.a_, "b": predictor.b_},
           "plain": {"within_10": float(np.mean(np.abs(plain_error) <= 0.10)),
                     "mape": float(np.mean(np.abs(plain_error)))},
           "rows": [{"z": space.config_string(z), "macs": int(m), "predicted_ms": float(p),
                     "measured_ms": float(t)} for z, m, p, t in zip(
                         space.check_z(Z), space.sum_z(Z, macs), predicted, truth)]}
    print(f"calibrated predictor on 50 random subnetworks ({truth.min():.1f}-"
          f"{truth.max():.1f} ms): {100 * out['within_10']:.0f} % within +-10 %, MAPE "
          f"{100 * out['mape']:.1f} %, Kendall tau {out['kendall_tau']:.3f} (not anchored: "
          f"{100 * out['plain']['within_10']:.0f} %, MAPE {100 * out['plain']['mape']:.1f} %)")
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--backend", choices=["nnabla", "onnxruntime"], required=True)
    p.add_argument("--budget-ms", type=float, required=True,
                   help="a budget inside the space's range on this machine")
    p.add_argument("--extra", type=int, nargs="+", default=[140, 160, 196, 212],
                   help="resolutions whose layers the flow does not measure, measured here")
    p.add_argument("--json", help="results file (default: benchmarks/results/"
                                  "ofa_machine_<backend>.json)")
    args = p.parse_args()
    path = args.json or os.path.join(HERE, "results", f"ofa_machine_{args.backend}.json")
    space = get_space("ofa")
    with tempfile.TemporaryDirectory() as folder:
        cache = os.path.join(folder, "cache")
        results: dict = {"backend": args.backend, "budget_ms": args.budget_ms}
        results["cold_s"] = flow(args.backend, args.budget_ms, cache, os.path.join(folder, "a"))
        results["warm_s"] = flow(args.backend, args.budget_ms, cache, os.path.join(folder, "b"))
        with open(os.path.join(folder, "b")) as f:
            results["answer"] = json.load(f)["best"][0]
        print(f"cold {results['cold_s']:.0f} s, warm {results['warm_s']:.0f} s", flush=True)
        os.environ["HWNAS_CACHE"] = cache
        backend = get_backend(args.backend)
        layers, networks = device_tables(backend, space, show_progress=False)
        results["layers_measured"] = len(layers.timings)
        results["calibration_networks_ms"] = [float(networks.values().min()),
                                              float(networks.values().max())]  # least, most
        results["regressor"] = regressor_error(space, backend, layers, args.extra, folder)
        results["regressor_middle_held_out"] = middle_held_out(space, layers)
        results["calibrated"] = calibrated_accuracy(space, backend, layers, networks,
                                                    args.budget_ms, folder)
    write_results(path, "ofa_machine", results)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
