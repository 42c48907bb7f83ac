"""Predictor accuracy against measured networks, per backend, beside the noise ceiling.

For each installed backend (or each of ``--backends``), in one process: the mobilenet layer
table, and N random networks measured twice (two independent passes; Kendall's tau between
them is the ceiling no predictor can be judged beyond). Predictors: raw layer sum (lookup),
lookup calibrated on the first 10 networks, linear, tree; scored on the other networks of the
first pass. The first pass's latencies of every network go to ``--networks-json`` and the
first 20 are printed side by side for every backend in it.

nnabla needs CPython <= 3.10 and the CPU-only torch wheel here is for 3.11, so the three
backends come from two interpreters; ``--merge`` keeps the other backends' rows of an
earlier run (each row names its interpreter and runtime)::

    .venv/bin/python benchmarks/accuracy.py [--networks 100] [--backends onnxruntime]
        [--min-round-s 0 0.02]
    .venv-core/bin/python benchmarks/accuracy.py --backends torch --merge

ONNX Runtime's rounds fill at least 0.02 s (``Backend.min_round_s``): its 0.4-0.7 ms networks
ran 10 runs a round before, about 5 ms, and one scheduler hiccup moved a round (73 % of them
calibrated within +-10 % on 2026-12-06, nnabla 100 %); the target is >= 95 %, compared with
``--min-round-s 0 0.02`` on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
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
from hwnas.tables import format_z

RESULTS = os.path.join(os.path.dirname(__file__), "results")
#: networks shown side by side
SIDE_BY_SIDE = 20


def earlier(path: str, measured: list[str]) -> list | dict:
    """The results an earlier run wrote to ``path`` for the backends not measured now."""
    try:
        with open(path) as f:
            found = json.load(f)["results"]
    except (OSError, ValueError, KeyError):
        return []
    if isinstance(found, dict):  # the networks' latencies: backend -> z -> ms
        return {b: v for b, v in found.get("latencies", {}).items() if b not in measured}
    return [row for row in found if row.get("backend") not in measured]


def side_by_side(latencies: dict[str, dict[str, float]]) -> str:
    """The first SIDE_BY_SIDE networks' latency (ms) on every backend."""
    backends = sorted(latencies)
    zs = list(next(iter(latencies.values())))[:SIDE_BY_SIDE]
    lines = [f"{'z':<44}" + "".join(f"{b:>13}" for b in backends)]
    for z in zs:
        lines.append(f"{z:<44}" + "".join(f"{latencies[b].get(z, float('nan')):>13.3f}"
                                         for b in backends))
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--networks", type=int, default=100)
    p.add_argument("--backends", nargs="+", help="default: every installed one")
    p.add_argument("--min-round-s", type=float, nargs="+", metavar="S",
                   help="time with each of these least round durations in turn (a round of "
                        "a fast network goes on past its runs until then; default: the "
                        "backend's own, 0.02 s for onnxruntime, 0 for nnabla), e.g. 0 0.02 "
                        "to compare ONNX Runtime's capped rounds with filled ones")
    p.add_argument("--merge", action="store_true",
                   help="keep the rows of the other backends in --json and --networks-json")
    p.add_argument("--json", default=os.path.join(RESULTS, "accuracy.json"))
    p.add_argument("--networks-json", default=os.path.join(RESULTS, "accuracy_networks.json"))
    args = p.parse_args()
    names = args.backends or available_backends()
    space, folder = get_space("mobilenet"), tempfile.mkdtemp()
    results = earlier(args.json, names) if args.merge else []
    latencies = dict(earlier(args.networks_json, names) or {}) if args.merge else {}
    for name in names:
        for fill in args.min_round_s or [None]:
            backend = get_backend(name)
            if fill is not None:
                backend.min_round_s = fill
            rows, latencies[name] = score(backend, space, args.networks,
                                          os.path.join(folder, f"{name}-{backend.min_round_s:g}"))
            results += rows
    print(f"\nthe first {SIDE_BY_SIDE} networks' latency_ms on each backend:\n"
          f"{side_by_side(latencies)}")
    write_results(args.json, "accuracy", results)
    write_results(args.networks_json, "accuracy_networks", {"latencies": latencies})


def score(backend, space, networks: int, prefix: str) -> tuple[list[dict], dict[str, float]]:
    """Measure the layer table and ``networks`` random networks twice with ``backend``, fit
    the predictors, print and return their scores beside the two passes' ceiling, and the
    first pass's latency of each network."""
    t0 = time.perf_counter()
    layers = profile_layers(backend, space.unique_layers(), f"{prefix}-l.csv",
                            show_progress=False)
    Z = space.random_z(networks, seed=0)
    passes = [profile_networks(backend, space, Z, f"{prefix}-n{i}.csv", show_progress=False)
              for i in range(2)]
    seconds = time.perf_counter() - t0
    first, second = (t.values() for t in passes)
    ceiling = kendalltau(first, second).statistic
    train, test = passes[0].select(slice(0, 10)), passes[0].select(slice(10, None))
    lookup = LookupPredictor().fit_table(layers)
    predictors = {"raw layer sum": lookup,
                  "calibrated (10 nets)": CalibratedPredictor(lookup).fit_table(train, space),
                  "linear": LinearPredictor().fit_table(layers),
                  "tree": TreePredictor().fit_table(layers)}
    print(f"\n{layers.fingerprint.describe()}, rounds of at least {backend.min_round_s:g} s: "
          f"{networks} networks, {first.min():.2f}-{first.max():.2f} ms; noise ceiling tau "
          f"{ceiling:.3f} (two passes); measured in {seconds:.0f} s")
    print(f"{'predictor':<22} {'within 10 %':>11} {'MAPE':>7} {'tau':>6}")
    results = []
    for label, predictor in predictors.items():
        m = evaluate(predictor, test, space)
        print(f"{label:<22} {m['within_10_pct']:>10.0f}% {m['mape_pct']:>6.1f}% "
              f"{m['kendall_tau']:>6.3f}")
        results.append({"backend": backend.name, "min_round_s": backend.min_round_s,
                        "predictor": label, "ceiling_tau": ceiling, "networks": networks,
                        "true_ms_min": float(first.min()), "true_ms_max": float(first.max()),
                        "fingerprint": layers.fingerprint.describe(),
                        "python": platform.python_version(),
                        **{k: v for k, v in m.items()
                           if k not in ("predicted", "measured", "target")}})
    return results, {format_z(z): float(t.latency_ms)
                     for z, t in zip(passes[0].z, passes[0].timings)}


if __name__ == "__main__":
    main()
