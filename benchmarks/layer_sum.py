"""How well the raw sum of layer latencies tracks true network latency, per backend.

For each installed backend, in one process: measure the mobilenet layer table and N random
networks (seeded), then print the true latency range, the layer-sum / true ratio, Kendall's
tau between the two, and the repeatability of both tables (median round spread).

    .venv/bin/python benchmarks/layer_sum.py [--networks 20] [--json PATH]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np
from _results import write_results
from scipy.stats import kendalltau

from hwnas.predictors import LookupPredictor
from hwnas.profile import available_backends, get_backend, profile_layers, profile_networks
from hwnas.spaces import get_space


def run(backend_name: str, n: int, seed: int, folder: str) -> dict:
    space = get_space("mobilenet")
    backend = get_backend(backend_name)
    t0 = time.perf_counter()
    layers = profile_layers(backend, space.unique_layers(),
                            os.path.join(folder, f"{backend_name}-layers.csv"))
    t1 = time.perf_counter()
    nets = profile_networks(backend, space, space.random_z(n, seed),
                            os.path.join(folder, f"{backend_name}-nets.csv"))
    true = np.array([t.latency_ms for t in nets.timings])
    raw = LookupPredictor().fit_table(layers).predict_z(space, np.array(nets.z))
    ratio = raw / true
    return {"backend": backend_name, "device": layers.fingerprint.describe(),
            "networks": n, "true_ms_min": true.min(), "true_ms_max": true.max(),
            "ratio_mean": ratio.mean(), "ratio_std": ratio.std(ddof=1),
            "kendall_tau": kendalltau(raw, true).statistic,
            "layer_table_s": t1 - t0,
            "layer_round_spread_median": float(np.median(
                [t.round_spread for t in layers.timings.values()])),
            "network_round_spread_median": float(np.median([t.round_spread
                                                            for t in nets.timings]))}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--networks", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=os.path.join(os.path.dirname(__file__), "results",
                                                  "layer_sum.json"))
    args = p.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for name in available_backends():
            rows.append(run(name, args.networks, args.seed, folder))
    print(f"\n{'backend':<12} {'true ms':>13} {'sum/true':>15} {'tau':>5} "
          f"{'table s':>7} {'spread layers':>13} {'spread nets':>11}")
    for r in rows:
        print(f"{r['backend']:<12} {r['true_ms_min']:>6.2f}-{r['true_ms_max']:<6.2f} "
              f"{r['ratio_mean']:>8.3f} +-{r['ratio_std']:.3f} {r['kendall_tau']:>5.2f} "
              f"{r['layer_table_s']:>7.1f} {100 * r['layer_round_spread_median']:>12.1f}% "
              f"{100 * r['network_round_spread_median']:>10.1f}%")
    print("\n" + "\n".join(f"{r['backend']}: {r['device']}" for r in rows))
    write_results(args.json, "layer_sum", rows)


if __name__ == "__main__":
    main()
