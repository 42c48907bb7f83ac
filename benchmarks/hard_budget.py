"""Hard budgets in a differentiable search: a soft penalty with fixed weights against the
adaptive BudgetConstraint, on the digits supernet of examples/train_with_latency_penalty.py.

For budgets at 30, 50 and 70 % of the space's predicted latency range (calibrated lookup,
measured here with nnabla first): the soft penalty CE + w * (E[lat] / budget - 1) with three
fixed weights w (z derived as argmax(alpha), as a soft penalty gives it) and the adaptive
constraint (dual ascent, the budget as a target; z derived by ``derive_z`` within the
budget). Each run trains weights and alpha together, then the derived network alone for
``--finetune-epochs``; reported: final E[latency] / budget, the derived network's predicted
and measured (end to end, nnabla) latency / budget, and its test accuracy (400 images).
Also what one ``derive_z`` call costs on this space and on the 21-decision ``mobilenet``.
Targets: adaptive E[latency] within 5 % of every budget; every adaptive derived network within
its budget by prediction and within 1.05 x measured; its accuracy at least that of the best
fixed weight whose network fits (by prediction).

    .venv/bin/python benchmarks/hard_budget.py [--epochs 3] [--train-images 640]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np
from _results import write_results

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples"))
import train_with_latency_penalty as example  # noqa: E402  (the example's supernet and loop)

from hwnas.integrations import derive_z  # noqa: E402
from hwnas.predictors import LookupPredictor  # noqa: E402
from hwnas.profile import TimingProtocol, profile_layers  # noqa: E402
from hwnas.spaces import get_space  # noqa: E402

SHARES = (0.3, 0.5, 0.7)
WEIGHTS = (0.1, 1.0, 10.0)


def derive_cost_ms(space, predictor, calls: int = 50) -> float:
    """Mean ms of one derive_z call at budgets over the space's range, random logits."""
    fixed, C = predictor.cost_matrix(space)
    lo, hi = space.min_z(fixed, C)[1], fixed + np.nanmax(C, axis=1).sum()
    rng = np.random.default_rng(0)
    shape = (len(space.decisions), max(space.n_choices))
    start = time.perf_counter()
    for i in range(calls):
        derive_z(space, predictor, rng.standard_normal(shape), lo + (0.2 + 0.6 * i / calls)
                 * (hi - lo))
    return (time.perf_counter() - start) / calls * 1e3


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--train-images", type=int, default=640)
    p.add_argument("--finetune-epochs", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=os.path.join(os.path.dirname(__file__), "results",
                                                  "hard_budget.json"))
    args = p.parse_args()

    start = time.perf_counter()
    setup = example.prepare(False, args.seed, train_images=args.train_images)
    span = setup.slowest_ms - setup.fastest_ms
    runs = []
    for share in SHARES:
        budget = round(setup.fastest_ms + share * span, 4)
        for weight in (*WEIGHTS, None):
            name = "adaptive" if weight is None else f"w={weight:g}"
            r = example.train(setup, budget, epochs=args.epochs, weight=weight,
                              finetune_epochs=args.finetune_epochs, seed=args.seed,
                              log=lambda line: None)
            r.update(share=share, method=name)
            runs.append(r)
            print(f"{share:4.0%} {name:9s} E/budget {r['expected_latency_ms'] / budget:.3f}  "
                  f"derived predicted/budget {r['predicted_latency_ms'] / budget:.3f} "
                  f"measured/budget {r['measured_latency_ms'] / budget:.3f}  accuracy "
                  f"{r['accuracy']:.3f}  ({r['search_s']:.0f} s)", flush=True)

    mobilenet = get_space("mobilenet")
    fast = TimingProtocol(warmup=1, runs=5, min_runs=3, max_round_s=0.05, pause_s=0)
    table = profile_layers(setup.backend, mobilenet.unique_layers(),
                           os.path.join(tempfile.mkdtemp(), "layers.csv"), fast,
                           show_progress=False)
    derive = {"digits": derive_cost_ms(setup.space, setup.predictor),
              "mobilenet": derive_cost_ms(mobilenet, LookupPredictor().fit_table(table))}

    print(f"\n{'budget':>6} {'method':9} {'E/B':>6} {'pred/B':>7} {'meas/B':>7} {'acc':>6}")
    checks = []
    for share in SHARES:
        rows = [r for r in runs if r["share"] == share]
        for r in rows:
            b = r["budget_ms"]
            print(f"{share:6.0%} {r['method']:9} {r['expected_latency_ms'] / b:6.3f} "
                  f"{r['predicted_latency_ms'] / b:7.3f} {r['measured_latency_ms'] / b:7.3f} "
                  f"{r['accuracy']:6.3f}")
        ours = rows[-1]
        b = ours["budget_ms"]
        fits = [r["accuracy"] for r in rows[:-1] if r["predicted_latency_ms"] <= b]
        checks.append({"share": share,
                       "expected_within_5pct": abs(ours["expected_latency_ms"] / b - 1) <= 0.05,
                       "predicted_within": ours["predicted_latency_ms"] <= b,
                       "measured_within_1_05": ours["measured_latency_ms"] <= 1.05 * b,
                       "best_fitting_fixed_accuracy": max(fits) if fits else None,
                       "accuracy_at_least_best_fitting_fixed":
                           not fits or ours["accuracy"] >= max(fits)})
    for c in checks:
        print(f"{c['share']:.0%}: " + ", ".join(f"{k} {v}" for k, v in c.items()
                                                if k != "share"))
    print(f"derive_z: {derive['digits']:.1f} ms per call on the digits space "
          f"({setup.space.size:,} z), {derive['mobilenet']:.1f} ms on mobilenet "
          f"({mobilenet.size:.2e} z)")
    total_s = time.perf_counter() - start
    print(f"took {total_s:.0f} s")
    write_results(args.json, "hard_budget",
                  {"runs": runs, "checks": checks, "derive_ms": derive,
                   "settings": {"epochs": args.epochs, "train_images": args.train_images,
                                "finetune_epochs": args.finetune_epochs,
                                "weights": list(WEIGHTS), "shares": list(SHARES),
                                "range_ms": [setup.fastest_ms, setup.slowest_ms]},
                   "seconds": total_s})
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
