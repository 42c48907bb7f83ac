"""Shipped fbnet devices: how well the predictor of ``--device`` ranks networks it never saw.

For each of the 22 fbnet device tables (5,000 measured architectures each): the networks are
split at random (seed 0) into 4,000 to fit and 1,000 to score; ``additive`` (what
``hwnas.devices.device_predictor`` fits, on all 5,000) and ``additive_features`` are scored on
the held-out 1,000: Spearman, Kendall, share within +-10 %, MAPE. Whole-millisecond phone
tables are marked: their ties cap any ranking.

    .venv/bin/python benchmarks/devices.py [--json benchmarks/results/devices.json]
"""

from __future__ import annotations

import argparse
import os
import warnings

import numpy as np
from _results import write_results

from hwnas.devices import list_devices, load_device
from hwnas.predictors import AdditiveFeaturesPredictor, AdditivePredictor, evaluate
from hwnas.spaces import get_space

HERE = os.path.dirname(os.path.abspath(__file__))
KINDS = {"additive": AdditivePredictor, "additive_features": AdditiveFeaturesPredictor}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--json", default=os.path.join(HERE, "results", "devices.json"))
    args = p.parse_args()
    space = get_space("fbnet")
    rows = np.random.default_rng(0).permutation(5000)
    results = []
    print(f"{'device':<16} {'kind':<6} {'predictor':<18} {'spearman':>8} {'kendall':>8} "
          f"{'within10':>8} {'MAPE':>6}")
    for info in list_devices("fbnet"):
        table = load_device(info.name, "fbnet")
        train, test = table.select(rows[:4000]), table.select(rows[4000:])
        for kind, cls in KINDS.items():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                metrics = evaluate(cls().fit_table(train, space), test, space)
            entry = {"device": info.name, "kind": info.kind, "whole_ms": info.whole_ms,
                     "predictor": kind, **{k: float(metrics[k]) for k in (
                         "spearman_rho", "kendall_tau", "within_10_pct", "mape_pct")}}
            results.append(entry)
            print(f"{info.name:<16} {info.kind:<6} {kind:<18} {entry['spearman_rho']:>8.3f} "
                  f"{entry['kendall_tau']:>8.3f} {entry['within_10_pct']:>7.0f}% "
                  f"{entry['mape_pct']:>5.1f}%{'  (whole ms)' if info.whole_ms else ''}")
    for kind in KINDS:
        for whole in (False, True):
            picked = [e for e in results if e["predictor"] == kind and e["whole_ms"] == whole]
            print(f"mean {kind} over {len(picked)} {'whole-ms' if whole else 'other'} tables: "
                  f"Spearman {np.mean([e['spearman_rho'] for e in picked]):.3f}, Kendall "
                  f"{np.mean([e['kendall_tau'] for e in picked]):.3f}, min Spearman "
                  f"{min(e['spearman_rho'] for e in picked):.3f}")
    write_results(args.json, "devices", results)
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
