"""Predictions per second for a batch of 1e6 z, per predictor kind (mobilenet).

Fits every kind on this machine's cached tables (the search command's default flow measures
them) and times predict_z on one batch of z: the best of three calls after the first, which
also builds and caches the space's cost matrix (its time is reported too).

    .venv/bin/python benchmarks/throughput.py [--n 1000000]
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

from _results import write_results

from hwnas.predictors import (
    AdditiveFeaturesPredictor,
    AdditivePredictor,
    CalibratedPredictor,
    LinearPredictor,
    LookupPredictor,
    TreePredictor,
    TreeZPredictor,
)
from hwnas.profile import available_backends, device_tables, get_backend
from hwnas.spaces import get_space


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=1_000_000)
    p.add_argument("--json", default=os.path.join(os.path.dirname(__file__), "results",
                                                  "throughput.json"))
    args = p.parse_args()
    warnings.simplefilter("ignore")
    space = get_space("mobilenet")
    layers, nets = device_tables(get_backend(available_backends()[0]), space, networks=32)
    kinds = {"lookup": LookupPredictor().fit_table(layers),
             "linear": LinearPredictor().fit_table(layers),
             "tree": TreePredictor().fit_table(layers),
             "additive": AdditivePredictor().fit_table(nets, space),
             "additive_features": AdditiveFeaturesPredictor().fit_table(nets, space),
             "tree_z": TreeZPredictor().fit_table(nets, space)}
    kinds["calibrated"] = CalibratedPredictor(kinds["lookup"]).fit_table(nets, space)
    Z = space.random_z(args.n, seed=0)
    rows = {}
    print(f"{'predictor':<18} {'z per second':>14} {'first call s':>12}")
    for name, predictor in kinds.items():
        calls = []  # the first call also builds and caches the space's cost matrix
        for _ in range(4):
            t0 = time.perf_counter()
            predictor.predict_z(space, Z)
            calls.append(time.perf_counter() - t0)
        seconds = min(calls[1:])
        rows[name] = {"z_per_s": args.n / seconds, "seconds": seconds,
                      "first_call_s": calls[0]}
        print(f"{name:<18} {args.n / seconds:>14,.0f} {calls[0]:>12.2f}")
    write_results(args.json, "throughput",
                  {"n": args.n, "device": layers.fingerprint.describe(), "rows": rows})


if __name__ == "__main__":
    main()
