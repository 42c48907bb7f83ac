"""Predictor accuracy against measured networks, per backend, beside the noise ceiling.

For each installed backend, in one process: the mobilenet layer table, and N random networks
measured twice (two independent passes; Kendall's tau between them is the ceiling no predictor
can be judged beyond). Predictors: raw layer sum (lookup), lookup calibrated on the first 10
networks, linear, tree; scored on the other networks of the first pass.

    .venv/bin/python benchmarks/accuracy.py [--networks 100]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

from _results import write_results
from scipy.stats import kendalltau

from hwnas.predictors import (
    CalibratedPredictor,
    LinearPredictor,
    LookupPredictor,
    TreePredictor,
    evaluate,
)
from hwnas.profile import available_backends, get_backend, profile_layers, profile_networks
from hwnas.spaces import get_space


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--networks", type=int, default=100)
    p.add_argument("--json", default=os.path.join(os.path.dirname(__file__), "results",
                                                  "accuracy.json"))
    args = p.parse_args()
    space, folder, results = get_space("mobilenet"), tempfile.mkdtemp(), []
    for name in available_backends():
        backend = get_backend(name)
        t0 = time.perf_counter()
        layers = profile_layers(backend, space.unique_layers(),
                                os.path.join(folder, f"{name}-l.csv"), show_progress=False)
        Z = space.random_z(args.networks, seed=0)
        passes = [profile_networks(backend, space, Z, os.path.join(folder, f"{name}-n{i}.csv"),
                                   show_progress=False) for i in range(2)]
        seconds = time.perf_counter() - t0
        first, second = (t.values() for t in passes)
        ceiling = kendalltau(first, second).statistic
        train, test = passes[0].select(slice(0, 10)), passes[0].select(slice(10, None))
        lookup = LookupPredictor().fit_table(layers)
        predictors = {"raw layer sum": lookup,
                      "calibrated (10 nets)": CalibratedPredictor(lookup).fit_table(train, space),
                      "linear": LinearPredictor().fit_table(layers),
                      "tree": TreePredictor().fit_table(layers)}
        print(f"\n{layers.fingerprint.describe()}: {args.networks} networks, "
              f"{first.min():.2f}-{first.max():.2f} ms; noise ceiling tau {ceiling:.3f} "
              f"(two passes); measured in {seconds:.0f} s")
        print(f"{'predictor':<22} {'within 10 %':>11} {'MAPE':>7} {'tau':>6}")
        for label, predictor in predictors.items():
            m = evaluate(predictor, test, space)
            print(f"{label:<22} {m['within_10_pct']:>10.0f}% {m['mape_pct']:>6.1f}% "
                  f"{m['kendall_tau']:>6.3f}")
            results.append({"backend": name, "predictor": label, "ceiling_tau": ceiling,
                            "networks": args.networks, "true_ms_min": float(first.min()),
                            "true_ms_max": float(first.max()),
                            **{k: v for k, v in m.items()
                               if k not in ("predicted", "measured", "target")}})
    write_results(args.json, "accuracy", results)


if __name__ == "__main__":
    main()
