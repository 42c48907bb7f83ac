"""Once-for-All on the 9 shipped GPU tables: how well each predictor kind ranks held-out
subnetworks, and few-shot transfer to a GPU left out (accuracy only: nothing is timed).

- catalogue: per table, ``additive`` (per resolution, over the space's resolution-aware
  features), ``additive_features`` (per op kind and mbv3 variant: calls, MACs, bytes) and
  ``tree_z`` (a forest over the resolution-aware inputs) fitted on 4,000 of its 5,000
  networks, scored on the other 1,000: Spearman and share within +-10 %. No device was
  measured twice, so there is no two-table noise ceiling; at batch 1, where the three GPUs
  rank alike, a lower bound on it is estimated from the other two (``noise_ceilings``).
  The drift column says how far the
  additive model's residuals run in the table's measurement order (lag-1 autocorrelation, and
  the mean residual of its first 500 rows): noise no model of z can predict.
- transfer: each table left out in turn, the other 8 known; 10 of its networks 'measured'
  (the transfer design, or 10 random ones, 3 seeds), ``transfer`` fitted on them and scored
  on its other 4,990 networks.
- search (``--search``, not run by default: it times): on v100_64 at 20 ms, the exact
  optimum's time and MACs, and the best of TPE and feasible TPE after 100, 300 and 1,000
  trials as a share of the optimum.

    .venv/bin/python benchmarks/ofa.py [--json benchmarks/results/ofa.json] [--search]
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from dataclasses import replace

import numpy as np
from _results import write_results
from scipy.stats import spearmanr

from hwnas.devices import device_matrix, list_devices, load_device
from hwnas.predictors import (
    AdditiveFeaturesPredictor,
    AdditivePredictor,
    TransferPredictor,
    TreeZPredictor,
    transfer_design,
)
from hwnas.spaces import get_space

HERE = os.path.dirname(os.path.abspath(__file__))
SEEDS = (0, 1, 2)
KINDS = {"additive": AdditivePredictor, "additive_features": AdditiveFeaturesPredictor,
         "tree_z": lambda: TreeZPredictor(n_estimators=100)}


def scores(predicted: np.ndarray, truth: np.ndarray) -> dict:
    return {"spearman": float(spearmanr(predicted, truth)[0]),
            "within_10": float(np.mean(np.abs(predicted / truth - 1) <= 0.10))}


def drift(table, space, model) -> dict:
    """How the additive model's residuals run in the order the shipped file lists the rows
    (the catalogue sorts them by z; the shared CSV keeps HELP's order)."""
    import csv
    import gzip
    import io
    path = os.path.join(HERE, "..", "..", "shared", "devices", f"ofa-{table}.csv.gz")
    if not os.path.exists(path):
        return {}
    with gzip.open(path) as f:
        rows = list(csv.DictReader(io.StringIO(f.read().decode())))
    Z = np.array([space.parse_z(r["z"]) for r in rows])
    y = np.array([float(r["latency_ms"]) for r in rows])
    residual = y / model.predict_z(space, Z) - 1
    return {"lag1_autocorrelation": float(np.corrcoef(residual[:-1], residual[1:])[0, 1]),
            "first_500_mean_residual": float(residual[:500].mean())}


def noise_ceilings() -> dict[str, float]:
    """Per batch-1 table, how much of it the ranking the three batch-1 GPUs share explains: a
    lower bound on its noise ceiling (no table was measured twice). At batch 1 the GPUs are
    launch-bound (latency does not follow the resolution: Spearman with r is about 0 on each),
    so they rank the networks alike (the number and kind of kernels) and each table adds noise
    of its own: rho_ij = c_i c_j, so c_i = sqrt(rho_ij rho_ik / rho_jk) over the 5,000
    networks all three measured (correction for attenuation). What a GPU does of its own counts
    as noise here, so a model may pass c_i a little. At batch 32 the GPUs rank differently
    (V100 is still half launch-bound): no estimate there."""
    known = device_matrix("ofa")
    batch = {info.name: info.batch for info in list_devices("ofa")}
    ones = [i for i, name in enumerate(known.devices) if batch[name] == 1]
    if len(ones) != 3:
        raise SystemExit(f"the estimate needs 3 batch-1 ofa tables, found {len(ones)}")
    rho = {(i, j): float(spearmanr(known.latency_ms[i], known.latency_ms[j])[0])
           for i in ones for j in ones if i != j}
    out = {}
    for i in ones:
        j, k = (o for o in ones if o != i)
        out[known.devices[i]] = float(np.sqrt(max(rho[i, j] * rho[i, k] / rho[j, k], 0.0)))
    return out


def catalogue(space) -> list[dict]:
    print(f"{'device':<12} " + " ".join(f"{k:>22}" for k in KINDS) + "   drift (lag-1, first 500)")
    out = []
    ceilings = noise_ceilings()
    for info in list_devices("ofa"):
        table = load_device(info.name, "ofa")
        rows = np.random.default_rng(0).permutation(len(table.z))
        train, test = table.select(rows[:4000]), table.select(rows[4000:])
        row: dict = {"device": info.name, "batch": info.batch}
        if info.name in ceilings:
            row["noise_ceiling"] = ceilings[info.name]
        for name, cls in KINDS.items():
            model = cls().fit_table(train, space)
            row[name] = scores(model.predict_z(space, np.array(test.z)), test.values())
            if name == "additive":
                row["drift"] = drift(info.name, space, model)
        out.append(row)
        d = row["drift"]
        print(f"{info.name:<12} " + " ".join(
            f"{row[k]['spearman']:>13.3f} / {100 * row[k]['within_10']:>4.0f} %" for k in KINDS)
            + (f"   {d['lag1_autocorrelation']:.2f}, {100 * d['first_500_mean_residual']:+.1f} %"
               if d else "")
            + (f"   noise ceiling {row['noise_ceiling']:.3f}" if "noise_ceiling" in row else ""),
            flush=True)
    return out


def transfer(space, own: list[dict]) -> tuple[list[dict], dict]:
    known = device_matrix("ofa")
    print(f"{'device':<12} {'design':>16} {'random (3 seeds)':>18}  leaned on")
    out = []
    for i, info in enumerate(list_devices("ofa")):
        keep = [j for j in range(len(known.devices)) if j != i]
        others = replace(known, devices=tuple(known.devices[j] for j in keep),
                         latency_ms=known.latency_ms[keep])
        table = load_device(info.name, "ofa")
        truth, Zall = table.values(), np.array(table.z)
        index = {z: r for r, z in enumerate(table.z)}
        designed = [index[tuple(z)] for z in transfer_design(others, space, 10).tolist()]
        samples = {"design": [designed],
                   "random": [list(np.random.default_rng(s).choice(len(truth), 10,
                                                                   replace=False))
                              for s in SEEDS]}
        row: dict = {"device": info.name, "batch": info.batch, "networks": 10}
        for name, draws in samples.items():
            got = []
            for chosen in draws:
                model = TransferPredictor(others).fit_table(table.select(chosen), space)
                rest = np.setdiff1d(np.arange(len(truth)), chosen)
                got.append(scores(model.predict_z(space, Zall[rest]), truth[rest]))
                if name == "design":
                    row["leaned_on"] = dict(list(model.weights_.items())[:3])
                    row["features"] = model.features_
            row[name] = {k: float(np.mean([g[k] for g in got])) for k in got[0]}
        out.append(row)
        d, r = row["design"], row["random"]
        print(f"{info.name:<12} {d['spearman']:>8.3f} / {100 * d['within_10']:>3.0f} %"
              f" {r['spearman']:>10.3f} / {100 * r['within_10']:>3.0f} %"
              f"  {', '.join(row['leaned_on'])} ({row['features']})", flush=True)
    summary = {}
    groups = (("all", (1, 32, 64)), ("batch_1", (1,)), ("batch_32", (32,)), ("batch_64", (64,)))
    for name in ("design", "random"):
        for label, batches in groups:
            summary[f"{name}_{label}"] = float(np.mean(
                [r[name]["spearman"] for r in out if r["batch"] in batches]))
    for label, batches in groups:  # what the additive model reaches on 4,000 of the table's own
        summary[f"own_4000_{label}"] = float(np.mean(
            [r["additive"]["spearman"] for r in own if r["batch"] in batches]))
    summary["noise_ceiling_batch_1"] = float(np.mean(
        [r["noise_ceiling"] for r in own if "noise_ceiling" in r]))
    print("mean Spearman: " + ", ".join(f"{k} {v:.3f}" for k, v in summary.items()))
    return out, summary


def search_quality(space) -> dict:
    """Exact optimum (and its time) against TPE and feasible TPE at 100, 300, 1,000 trials."""
    from hwnas.devices import device_predictor
    from hwnas.search import run_study
    predictor = device_predictor("v100_64", "ofa")
    start = time.perf_counter()
    exact = run_study(space, predictor, 20.0, sampler="exact", top=1)
    out = {"budget_ms": 20.0, "exact_s": time.perf_counter() - start,
           "optimum_macs": exact.best[0].macs, "optimum": exact.best[0].config}
    for feasible in (False, True):
        for trials in (100, 300, 1000):
            found = run_study(space, predictor, 20.0, sampler="tpe", n_trials=trials, seed=0,
                           feasible=feasible, enqueue_exact=False, top=1)
            key = f"{'feasible_' if feasible else ''}tpe_{trials}"
            out[key] = found.best[0].macs / out["optimum_macs"]
            print(f"{key}: best / optimum {out[key]:.3f}", flush=True)
    print(f"exact optimum {out['optimum_macs'] / 1e6:.1f} M MACs in {out['exact_s']:.1f} s")
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--json", default=os.path.join(HERE, "results", "ofa.json"))
    p.add_argument("--search", action="store_true", help="also the search part (it times)")
    args = p.parse_args()
    warnings.simplefilter("ignore")
    space = get_space("ofa")
    results: dict = {"catalogue": catalogue(space)}
    results["transfer"], results["transfer_summary"] = transfer(space, results["catalogue"])
    if args.search:
        results["search"] = search_quality(space)
    write_results(args.json, "ofa", results)
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
