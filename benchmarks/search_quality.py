"""Search quality with and without the feasibility-aware sampler, against exact optima.

1. mobilenet, MACs under the latency budget: for tpe, nsga2 and random, each plain and wrapped
   in FeasibleSampler (mean of --seeds seeds, nothing enqueued): the share of feasible
   trials, the best feasible MACs / the exact optimum (dynamic programming) after 100, 300
   and 1000 trials, and ms per trial next to a bare Optuna study with the same base sampler
   over the same decisions (trivial objective).
2. mobilenet, pareto mode, nsga2 for 200 trials: the size of the feasible front, plain and
   wrapped.
3. nb201 with a black-box objective that is not additive (``cell_paths`` below: a sum over
   the cell's four input-to-output paths of the product of per-op factors), whose optimum
   under the budget is found by brute force over all 15,625 cells: best / optimum, so that the
   wrapper is judged where dynamic programming cannot help.
A plot shows the trials of a plain and a wrapped TPE search (latency against MACs).

The predictor: this machine's calibrated lookup (the search command's default flow, cached),
or ``--table`` (a layer table, e.g. benchmarks/results/search_layers_nnabla_cpu.csv, measured
with nnabla by hwnas.profile) by lookup, or ``--predictor``. The budget: ``--budget-ms``, or
``--budget-share`` s: least + s x (most - least) reachable latency of each space.

    .venv/bin/python benchmarks/search_quality.py [--budget-ms 5] [--table T | --predictor P]
    .venv/bin/python benchmarks/search_quality.py --quick   # a smoke run: 1 seed, <= 300 trials
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import optuna
from _results import write_results

from hwnas._files import save_figure
from hwnas._imports import pyplot
from hwnas.predictors import CalibratedPredictor, LookupPredictor, load_predictor
from hwnas.profile import available_backends, device_tables, get_backend
from hwnas.search import run_study
from hwnas.spaces import get_space
from hwnas.tables import read_layer_table

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
SAMPLERS = ("tpe", "nsga2", "random")
#: per-op factor of the black-box nb201 objective (none cuts a path)
OP_FACTOR = {"none": 0.0, "skip_connect": 0.55, "nor_conv_1x1": 0.8, "nor_conv_3x3": 1.0,
             "avg_pool_3x3": 0.45}
#: the cell's paths from node 0 to node 3, as indices of z (NAS-Bench-201's edge order:
#: 1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2)
PATHS = ((3,), (0, 4), (1, 5), (0, 2, 5))


def cell_paths(arch) -> float:
    """A non-additive stand-in for accuracy on nb201: the sum over the cell's input-to-output
    paths of the product of its ops' factors (deeper convolutional paths score more, a none
    edge cuts every path through it), plus 0.2 per distinct op kind used."""
    ops = arch.choices
    paths = sum(np.prod([OP_FACTOR[ops[e]] * (1.15 if len(p) > 1 else 1.0) for e in p])
                for p in PATHS)
    return float(paths + 0.2 * len(set(ops) - {"none"}))


def bare_ms_per_trial(space, sampler: str, n: int, seed: int) -> float:
    """A bare Optuna study over the same decisions with a trivial objective."""
    study = optuna.create_study(direction="maximize", sampler=make_sampler(sampler, seed))

    def objective(trial):
        return sum(trial.suggest_categorical(d.name, list(range(len(d.choices))))
                   for d in space.decisions)

    t0 = time.perf_counter()
    study.optimize(objective, n_trials=n)
    return 1e3 * (time.perf_counter() - t0) / n


def make_sampler(name: str, seed: int) -> optuna.samplers.BaseSampler:
    return {"tpe": optuna.samplers.TPESampler, "nsga2": optuna.samplers.NSGAIISampler,
            "random": optuna.samplers.RandomSampler}[name](seed=seed)


def budget_for(space, predictor, args) -> float:
    if args.budget_share is None:
        return args.budget_ms
    fixed, C = predictor.cost_matrix(space)
    least = space.min_z(fixed, C)[1]
    return float(least + args.budget_share * (fixed + np.nanmax(C, axis=1).sum() - least))


def sampler_runs(space, predictor, budget, objective, optimum, checkpoints, seeds):
    """Per sampler, plain and wrapped (and, for a built-in objective, wrapped TPE with the
    exact front enqueued, as by default): feasible share, best / optimum at each checkpoint,
    ms per trial, and one TPE study of each for the plot."""
    rows, studies, bare = {}, {}, {}
    runs = [(s, f, False) for s in SAMPLERS for f in (False, True)]
    if isinstance(objective, str):
        runs.append(("tpe", True, True))
    for sampler, feasible, enqueue in runs:
        if sampler not in bare:
            bare[sampler] = bare_ms_per_trial(space, sampler, checkpoints[-1], 0)
        share, found, ms = [], [], []
        for seed in range(seeds):
            t0 = time.perf_counter()
            result = run_study(space, predictor, budget, objective, sampler=sampler,
                            n_trials=checkpoints[-1], seed=seed, feasible=feasible,
                            enqueue_exact=enqueue)
            ms.append(1e3 * (time.perf_counter() - t0) / checkpoints[-1])
            trials = sorted(result.study.get_trials(
                deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)),
                key=lambda t: t.number)
            ok = [t.user_attrs["predicted_latency_ms"] <= budget for t in trials]
            share.append(float(np.mean(ok)))
            found.append([max([t.user_attrs["objective"] for t, f in
                               zip(trials[:n], ok[:n]) if f], default=np.nan) / optimum
                          for n in checkpoints])
            if sampler == "tpe" and seed == 0 and not enqueue:
                studies[feasible] = result.study
        key = f"{'feasible ' if feasible else ''}{sampler}{' +front' if enqueue else ''}"
        rows[key] = {"feasible_share": float(np.mean(share)),
                     "best_over_optimum": np.nanmean(found, axis=0).tolist(),
                     "ms_per_trial": float(np.mean(ms)),
                     "bare_optuna_ms_per_trial": bare[sampler]}
    return rows, studies


def print_rows(title: str, rows: dict, checkpoints) -> None:
    print(title)
    print(f"{'sampler':<18} {'feasible':>8} " + " ".join(f"{f'@{n}':>7}" for n in checkpoints)
          + f" {'ms/trial':>9} {'bare ms':>8}")
    for key, r in rows.items():
        print(f"{key:<18} {r['feasible_share']:>8.1%} " +
              " ".join(f"{v:>7.1%}" for v in r["best_over_optimum"]) +
              f" {r['ms_per_trial']:>9.2f} {r['bare_optuna_ms_per_trial']:>8.2f}")


def plot_trials(studies, budget: float, path: str) -> None:
    plt = pyplot("--plot")
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharex=True, sharey=True)
    for ax, feasible in zip(axes, (False, True)):
        trials = [t for t in studies[feasible].trials if "objective" in t.user_attrs]
        lat = np.array([t.user_attrs["predicted_latency_ms"] for t in trials])
        obj = np.array([t.user_attrs["objective"] for t in trials]) / 1e6
        ok = lat <= budget
        ax.scatter(lat[~ok], obj[~ok], s=6, color="0.7", label=f"{(~ok).sum()} infeasible")
        ax.scatter(lat[ok], obj[ok], s=6, color="C2", label=f"{ok.sum()} feasible")
        ax.axvline(budget, color="C0", ls="--", lw=1, label=f"budget {budget:.3g} ms")
        name = "TPE wrapped in FeasibleSampler" if feasible else "plain TPE"
        ax.set(xlabel="predicted latency (ms)", title=f"{name}, {len(trials)} trials")
        ax.legend(loc="lower right", fontsize=8)
    axes[0].set_ylabel("MMACs")
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def load(args, space):
    if args.predictor:
        return load_predictor(args.predictor)
    if args.table:
        return LookupPredictor().fit_table(read_layer_table(args.table))
    layers, nets = device_tables(get_backend(available_backends()[0]), space)
    return CalibratedPredictor(LookupPredictor().fit_table(layers)).fit_table(nets, space)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--budget-ms", type=float, default=5.0)
    p.add_argument("--budget-share", type=float, help="budget = least + share x (most - "
                   "least) predicted latency of each space, instead of --budget-ms")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--predictor")
    source.add_argument("--table", help="a layer table: predict by lookup")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="a smoke run: 1 seed, 100 and 300 "
                   "trials")
    p.add_argument("--json", help="default: results/search_quality.json "
                   "(search_quality_quick.json with --quick)")
    p.add_argument("--plot", default=os.path.join(HERE, "search_trials.png"))
    args = p.parse_args()
    if args.json is None:
        args.json = os.path.join(HERE, "search_quality_quick.json" if args.quick
                                 else "search_quality.json")
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    checkpoints = (100, 300) if args.quick else (100, 300, 1000)
    seeds = 1 if args.quick else args.seeds

    space = get_space("mobilenet")
    predictor = load(args, space)
    budget = budget_for(space, predictor, args)
    t0 = time.perf_counter()
    exact = run_study(space, predictor, budget, sampler="exact")
    exact_s = time.perf_counter() - t0
    optimum = exact.best[0].objective
    rows, studies = sampler_runs(space, predictor, budget, "macs", optimum, checkpoints, seeds)
    print(f"mobilenet at {budget:.4g} ms, {predictor.kind} predictor, "
          f"{predictor.fingerprint_.describe()}; exact optimum {optimum / 1e6:.3f} MMACs "
          f"({exact_s:.2f} s); mean of {seeds} seed(s), nothing enqueued")
    print_rows("best feasible MACs / exact optimum after n trials:", rows, checkpoints)
    fronts = {}
    for feasible in (False, True):
        front = run_study(space, predictor, budget, sampler="nsga2", mode="pareto", n_trials=200,
                       seed=0, feasible=feasible, enqueue_exact=False)
        fronts["feasible nsga2" if feasible else "nsga2"] = len(front.best)
    print("pareto mode, 200 nsga2 trials, front size: " +
          ", ".join(f"{k} {v}" for k, v in fronts.items()))

    nb = get_space("nb201")
    nb_predictor = predictor if args.table or args.predictor else load(args, nb)
    nb_budget = budget_for(nb, nb_predictor, argparse.Namespace(
        budget_ms=args.budget_ms, budget_share=0.3 if args.budget_share is None
        else args.budget_share))
    Z = np.array(np.meshgrid(*[range(k) for k in nb.n_choices], indexing="ij")).reshape(
        len(nb.n_choices), -1).T
    fits = nb_predictor.predict_z(nb, Z) <= nb_budget
    t0 = time.perf_counter()
    values = np.array([cell_paths(nb.decode(z)) for z in Z[fits]])
    brute_s = time.perf_counter() - t0
    nb_optimum = float(values.max())
    nb_rows, _ = sampler_runs(nb, nb_predictor, nb_budget, cell_paths, nb_optimum,
                              checkpoints, seeds)
    print(f"nb201 at {nb_budget:.4g} ms, black-box objective cell_paths: brute-force optimum "
          f"{nb_optimum:.4f} over {fits.sum()} feasible of {len(Z)} cells ({brute_s:.1f} s)")
    print_rows("best feasible objective / brute-force optimum after n trials:", nb_rows,
               checkpoints)

    plot_trials(studies, budget, args.plot)
    write_results(args.json, "search_quality",
                  {"quick": args.quick, "seeds": seeds, "checkpoints": checkpoints,
                   "predictor": predictor.kind, "device": predictor.fingerprint_.describe(),
                   "optuna": optuna.__version__,
                   "mobilenet": {"budget_ms": budget, "exact": optimum, "exact_s": exact_s,
                                 "samplers": rows, "pareto_front_size_200_nsga2": fronts},
                   "nb201": {"budget_ms": nb_budget, "objective": "cell_paths",
                             "brute_force_optimum": nb_optimum, "feasible_cells": int(fits.sum()),
                             "cells": len(Z), "samplers": nb_rows}})
    print(f"wrote {args.json} and {args.plot}")


if __name__ == "__main__":
    main()
