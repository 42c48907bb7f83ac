"""Fleet search: one search under 3 and 5 shipped devices' budgets at once, on nb201 and fbnet.

The first device's predictor is the search's own (its limit the latency budget), the others
are fleet budgets. Each limit is that device's 40th percentile over 2,000 random z, so every
budget binds. Reported: the exact sampler's optimum (MACs) and its time; the default sampler
(feasible TPE, 300 trials, seeds 0-2): its share of trials within every budget, and its best
over the optimum, as the command runs it (the study starts from the exact optimum,
``enqueue_exact``) and without that start (the sampler on its own).

    .venv/bin/python benchmarks/fleet.py [--json benchmarks/results/fleet.json]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
from _results import write_results

from hwnas.devices import device_predictor
from hwnas.search import run_study
from hwnas.search._fleet import DeviceBudget
from hwnas.spaces import get_space

HERE = os.path.dirname(os.path.abspath(__file__))
DEVICES = ("pixel3", "titan_rtx_1", "gold_6240", "silver_4114", "2080ti_32")
SEEDS = (0, 1, 2)
TRIALS = 300


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--json", default=os.path.join(HERE, "results", "fleet.json"))
    args = p.parse_args()
    results = []
    print(f"{'space':<6} {'budgets':>7} {'exact_s':>8} {'optimum_MMACs':>13} "
          f"{'feasible':>8} {'best/opt':>8} {'no start':>8} {'search_s':>8}  limits")
    for space_name in ("nb201", "fbnet"):
        space = get_space(space_name)
        sample = space.random_z(2000, seed=0)
        predictors = {d: device_predictor(d, space_name) for d in DEVICES}
        limits = {d: float(np.quantile(p.predict_z(space, sample), 0.4))
                  for d, p in predictors.items()}
        for count in (3, 5):
            names = DEVICES[:count]
            fleet = tuple(DeviceBudget(d, predictors[d], limits[d]) for d in names[1:])
            own, budget = predictors[names[0]], limits[names[0]]
            start = time.perf_counter()
            exact = run_study(space, own, budget, sampler="exact", top=1, fleet=fleet)
            exact_s = time.perf_counter() - start
            optimum = exact.best[0].objective
            feasible, ratio, alone, seconds = [], [], [], []
            for seed in SEEDS:
                start = time.perf_counter()
                found = run_study(space, own, budget, n_trials=TRIALS, seed=seed, fleet=fleet)
                seconds.append(time.perf_counter() - start)
                feasible.append(found.feasible_trials / found.trials)
                ratio.append(found.best[0].objective / optimum)
                own_start = run_study(space, own, budget, n_trials=TRIALS, seed=seed, fleet=fleet,
                                   enqueue_exact=False)
                feasible.append(own_start.feasible_trials / own_start.trials)
                alone.append(own_start.best[0].objective / optimum)
            row = {"space": space_name, "budgets": {d: limits[d] for d in names},
                   "exact_seconds": exact_s, "optimum_macs": optimum,
                   "feasible_share": feasible, "best_over_optimum": ratio,
                   "best_over_optimum_without_exact_start": alone,
                   "search_seconds": seconds, "trials": TRIALS}
            results.append(row)
            print(f"{space_name:<6} {count:>7} {exact_s:>8.2f} {optimum / 1e6:>13.2f} "
                  f"{min(feasible):>8.1%} {min(ratio):>8.2%} {min(alone):>8.2%} "
                  f"{np.mean(seconds):>8.1f}  "
                  + ", ".join(f"{d}={limits[d]:.2f}" for d in names), flush=True)
    write_results(args.json, "fleet", results)
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
