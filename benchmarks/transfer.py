"""Few-shot transfer to a device hwnas has never seen: each shipped device left out in turn.

For every catalogue device of nb201 and fbnet: the other devices of its space are the known
ones; 10 and 20 of its networks are 'measured' (the transfer design, or random ones, 3 seeds)
and ``transfer`` is fitted on them, beside ``additive_features`` fitted on the same random
networks; each is scored on all the device's other networks: Spearman and share within
+-10 %. Whole-millisecond phone tables print their tie-limited ceiling (the Spearman of a
perfect ranking that breaks their ties at random) and the additive ceiling (an additive model
fitted on all their networks). The leaned-on column names the known devices and the cost
features (``cost_features``: MACs, bytes, each op kind's MACs) the designed fit weighed.

    .venv/bin/python benchmarks/transfer.py [--json benchmarks/results/transfer.json]
"""

from __future__ import annotations

import argparse
import os
import warnings
from dataclasses import replace

import numpy as np
from _results import write_results
from scipy.stats import spearmanr

from hwnas.devices import device_matrix, list_devices, load_device
from hwnas.predictors import AdditiveFeaturesPredictor, TransferPredictor, transfer_design
from hwnas.predictors._transfer import device_basis
from hwnas.spaces import get_space

HERE = os.path.dirname(os.path.abspath(__file__))
SEEDS = (0, 1, 2)


def scores(predicted: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    return (float(spearmanr(predicted, truth)[0]),
            float(np.mean(np.abs(predicted / truth - 1) <= 0.10)))


def ceilings(truth: np.ndarray, additive: np.ndarray) -> tuple[float, float]:
    """(tie-limited, additive) ceilings of a device's Spearman."""
    jitter = truth + np.random.default_rng(0).random(len(truth)) * 1e-6
    return float(spearmanr(np.argsort(np.argsort(jitter)), truth)[0]), \
        float(spearmanr(additive, truth)[0])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--json", default=os.path.join(HERE, "results", "transfer.json"))
    p.add_argument("--space", choices=["nb201", "fbnet"], action="append")
    args = p.parse_args()
    warnings.simplefilter("ignore")
    results = []
    print(f"{'space':<6} {'device':<15} {'n':>3} {'design':>9} {'random':>7} {'features':>8} "
          f"{'within10':>8}  {'ceiling (ties / additive)':<25} leaned on")
    for space_name in args.space or ["nb201", "fbnet"]:
        space = get_space(space_name)
        known = device_matrix(space_name)
        own = device_basis(known, space).predict(space.check_z(known.z))  # additive ceilings
        for i, info in enumerate(list_devices(space_name)):
            keep = [j for j in range(len(known.devices)) if j != i]
            others = replace(known, devices=tuple(known.devices[j] for j in keep),
                             latency_ms=known.latency_ms[keep])
            table = load_device(info.name, space_name)
            truth = table.values()
            rows = {z: r for r, z in enumerate(table.z)}
            Zall = np.array(table.z)
            for n in (10, 20):
                row: dict = {"space": space_name, "device": info.name, "whole_ms": info.whole_ms,
                             "networks": n}
                designed = [rows[tuple(z)] for z in transfer_design(others, space, n).tolist()]
                fits = {"transfer_design": [designed]}
                randoms = [list(np.random.default_rng(s).choice(len(truth), n, replace=False))
                           for s in SEEDS]
                fits["transfer_random"] = randoms
                fits["additive_features_random"] = randoms
                for name, samples in fits.items():
                    got = []
                    for chosen in samples:
                        train = table.select(chosen)
                        model = TransferPredictor(others) if name.startswith("transfer") \
                            else AdditiveFeaturesPredictor()
                        model.fit_table(train, space)
                        rest = np.setdiff1d(np.arange(len(truth)), chosen)
                        got.append(scores(model.predict_z(space, Zall[rest]), truth[rest]))
                        if name == "transfer_design":
                            row["leaned_on"] = dict(list(model.weights_.items())[:3])
                            row["features"] = model.features_
                            row["cost_weights"] = model.cost_weights_
                    row[name] = {"spearman": float(np.mean([g[0] for g in got])),
                                 "within_10": float(np.mean([g[1] for g in got]))}
                row["ceiling_ties"], row["ceiling_additive"] = ceilings(truth, own[i])
                results.append(row)
                ceiling = f"{row['ceiling_ties']:.3f} / {row['ceiling_additive']:.3f}" \
                    + (" (whole ms)" if info.whole_ms else "")
                print(f"{space_name:<6} {info.name:<15} {n:>3} "
                      f"{row['transfer_design']['spearman']:>9.3f} "
                      f"{row['transfer_random']['spearman']:>7.3f} "
                      f"{row['additive_features_random']['spearman']:>8.3f} "
                      f"{row['transfer_design']['within_10']:>8.3f}  {ceiling:<25} "
                      f"{', '.join([*row['leaned_on'], *row['cost_weights']])}", flush=True)
    summary = []
    for space_name in args.space or ["nb201", "fbnet"]:
        for n in (10, 20):
            rows_ = [r for r in results if r["space"] == space_name and r["networks"] == n]
            entry = {"space": space_name, "networks": n}
            for name in ("transfer_design", "transfer_random", "additive_features_random"):
                entry[name] = float(np.mean([r[name]["spearman"] for r in rows_]))
                entry[name + "_not_whole_ms"] = float(np.mean(
                    [r[name]["spearman"] for r in rows_ if not r["whole_ms"]]))
            entry["below_0.90"] = [r["device"] for r in rows_
                                   if r["transfer_design"]["spearman"] < 0.90]
            summary.append(entry)
            print(f"mean {space_name} n={n}: design {entry['transfer_design']:.3f} "
                  f"(not whole-ms {entry['transfer_design_not_whole_ms']:.3f}), random "
                  f"{entry['transfer_random']:.3f}, additive_features "
                  f"{entry['additive_features_random']:.3f}; below 0.90: "
                  f"{', '.join(entry['below_0.90']) or 'none'}")
    write_results(args.json, "transfer", {"devices": results, "summary": summary})
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
