"""Best objective found by each sampler against the exact optimum, at a latency budget.

For the mobilenet space and a predictor (default: this machine's calibrated lookup, cached
by the search command's default flow), runs tpe, nsga2 and random for 1000 trials with 3 seeds
and reports the best feasible objective after 100, 300 and 1000 trials (mean of the seeds)
next to the exact optimum, plus the time per trial against a bare Optuna study with the same
sampler over the same decisions (hwnas's overhead). Writes JSON and a Pareto-front plot.

    .venv/bin/python benchmarks/search_quality.py [--budget-ms 5] [--predictor p.json]
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import optuna

from hwnas.predictors import CalibratedPredictor, LookupPredictor, load_predictor
from hwnas.profile import available_backends, device_tables, get_backend
from hwnas.search import search
from hwnas.search._plot import plot_search
from hwnas.spaces import get_space

CHECKPOINTS = (100, 300, 1000)


def bare_ms_per_trial(space, sampler: str, n: int, seed: int) -> float:
    """A bare Optuna study over the same decisions with a trivial objective."""
    make = {"tpe": optuna.samplers.TPESampler, "nsga2": optuna.samplers.NSGAIISampler,
            "random": optuna.samplers.RandomSampler}[sampler]
    study = optuna.create_study(direction="maximize", sampler=make(seed=seed))

    def objective(trial):
        return sum(trial.suggest_categorical(d.name, list(range(len(d.choices))))
                   for d in space.decisions)

    t0 = time.perf_counter()
    study.optimize(objective, n_trials=n)
    return 1e3 * (time.perf_counter() - t0) / n


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--budget-ms", type=float, default=5.0)
    p.add_argument("--predictor")
    p.add_argument("--seeds", type=int, default=3)
    here = os.path.join(os.path.dirname(__file__), "results")
    p.add_argument("--json", default=os.path.join(here, "search_quality.json"))
    p.add_argument("--plot", default=os.path.join(here, "search_pareto.png"))
    args = p.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    space = get_space("mobilenet")
    if args.predictor:
        predictor = load_predictor(args.predictor)
    else:
        layers, nets = device_tables(get_backend(available_backends()[0]), space)
        predictor = CalibratedPredictor(LookupPredictor().fit(layers)).fit(nets, space)
    t0 = time.perf_counter()
    exact = search(space, predictor, args.budget_ms, sampler="exact").best[0].objective
    exact_s = time.perf_counter() - t0
    rows = {}
    for sampler in ("tpe", "nsga2", "random"):
        found, seconds = [], []
        for seed in range(args.seeds):
            t0 = time.perf_counter()
            result = search(space, predictor, args.budget_ms, n_trials=CHECKPOINTS[-1],
                            seed=seed, sampler=sampler)
            seconds.append((time.perf_counter() - t0) / CHECKPOINTS[-1])
            trials = sorted(result.study.trials, key=lambda t: t.number)
            best = []
            for n in CHECKPOINTS:
                ok = [t.user_attrs["objective"] for t in trials[:n]
                      if t.user_attrs["predicted_latency_ms"] <= args.budget_ms]
                best.append(max(ok) if ok else np.nan)
            found.append(best)
        rows[sampler] = {"best": np.nanmean(found, axis=0).tolist(),
                         "ms_per_trial": 1e3 * float(np.mean(seconds)),
                         "bare_optuna_ms_per_trial": bare_ms_per_trial(
                             space, sampler, CHECKPOINTS[-1], 0)}
    print(f"mobilenet at {args.budget_ms:g} ms, {predictor.fingerprint_.describe()}")
    print(f"exact optimum: {exact / 1e6:.3f} MMACs ({exact_s:.2f} s)")
    print(f"{'sampler':<8} " + " ".join(f"{n:>6} trials" for n in CHECKPOINTS) +
          "  ms/trial  bare Optuna ms/trial")
    for sampler, r in rows.items():
        print(f"{sampler:<8} " + " ".join(f"{v / 1e6:>7.3f} MMACs"[:13].rjust(13)
                                         for v in r["best"]) +
              f"  {r['ms_per_trial']:>8.2f}  {r['bare_optuna_ms_per_trial']:>8.2f}")
    front = search(space, predictor, args.budget_ms, n_trials=1000, seed=0, sampler="nsga2",
                   mode="pareto")
    plot_search(front, args.plot)
    os.makedirs(os.path.dirname(args.json), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump({"budget_ms": args.budget_ms, "exact": exact, "exact_s": exact_s,
                   "samplers": rows, "checkpoints": CHECKPOINTS}, f, indent=1)
    print(f"wrote {args.json} and {args.plot}")


if __name__ == "__main__":
    main()
