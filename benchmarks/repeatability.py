"""Which timing statistic and protocol repeat: the same networks timed in two processes.

For each backend, two separate processes (one after the other) each time the same N random
`mobilenet` networks (seeded weights and inputs: the same computation) twice, every unit of a
pass interleaved round by round, with the largest protocol (--rounds x --runs, no time cap).
Every shorter protocol is then read off the same runs (its first R rounds, first n runs of
each), so all candidates see the same machine. Per statistic and protocol: Kendall tau and
mean |difference| between the two processes (and between the two passes of one process), and
the seconds one network costs under that protocol (warm-up included).

Targets (issue 19): tau >= 0.9 and mean |difference| <= 2 % across processes for both
backends, at <= 1.5 s per nnabla network. The default protocol is the cheapest that reaches
them.

    .venv/bin/python benchmarks/repeatability.py [--networks 24] [--rounds 8] [--runs 20]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np
from _results import write_results
from scipy.stats import kendalltau

from hwnas.profile import TimingProtocol, available_backends, get_backend
from hwnas.profile._stats import STATISTICS
from hwnas.profile._timing import measure_rounds
from hwnas.spaces import get_space

#: (rounds, runs per round, warm-up runs) read off the largest protocol
PROTOCOLS = [(3, 10, 2), (5, 5, 2), (5, 10, 2), (5, 20, 2), (8, 5, 2), (8, 10, 2), (8, 20, 2)]


def worker(backend_name: str, networks: int, rounds: int, runs: int, out: str) -> None:
    """Time the networks twice in this process; save every run (ms) and each pass's seconds."""
    space, backend = get_space("mobilenet"), get_backend(backend_name)
    runners = [backend.runner(space.decode(z).graph) for z in space.random_z(networks, 0)]
    protocol = TimingProtocol(warmup=2, runs=runs, rounds=rounds, min_runs=runs,
                              max_seconds=1e9)
    passes = [measure_rounds(runners, protocol) for _ in range(2)]
    np.save(out, np.array(passes))  # pass x network x round x run


def statistic(samples: np.ndarray, name: str, rounds: int, runs: int) -> np.ndarray:
    """Each network's statistic over its first ``rounds`` rounds, first ``runs`` runs."""
    f = STATISTICS[name]
    return np.array([f(list(unit[:rounds, :runs])) for unit in samples])


def agreement(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    tau = float(kendalltau(a, b)[0])
    return tau, float(np.mean(np.abs(a / b - 1)))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--networks", type=int, default=24)
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--worker", nargs=2, metavar=("BACKEND", "OUT"), help=argparse.SUPPRESS)
    p.add_argument("--json", default=os.path.join(os.path.dirname(__file__), "results",
                                                  "repeatability.json"))
    args = p.parse_args()
    if args.worker:
        worker(args.worker[0], args.networks, args.rounds, args.runs, args.worker[1])
        return
    results = []
    for name in available_backends():
        with tempfile.TemporaryDirectory() as tmp:
            data = []
            for process in range(2):
                out = os.path.join(tmp, f"{process}.npy")
                subprocess.run([sys.executable, __file__, "--worker", name, out,
                                "--networks", str(args.networks), "--rounds", str(args.rounds),
                                "--runs", str(args.runs)], check=True)
                data.append(np.load(out))
        mean_ms = float(np.mean([np.median(d) for d in data]))
        for rounds, runs, warmup in PROTOCOLS:
            if rounds > args.rounds or runs > args.runs:
                continue
            seconds = rounds * (runs + warmup) * mean_ms / 1e3
            for stat in STATISTICS:
                # process 1's first pass against process 2's first pass; and within process 1
                across = agreement(*(statistic(d[0], stat, rounds, runs) for d in data))
                within = agreement(statistic(data[0][0], stat, rounds, runs),
                                   statistic(data[0][1], stat, rounds, runs))
                results.append({"backend": name, "rounds": rounds, "runs": runs,
                                "warmup": warmup, "statistic": stat,
                                "tau_across": across[0], "diff_across": across[1],
                                "tau_within": within[0], "diff_within": within[1],
                                "seconds_per_network": seconds, "network_ms": mean_ms})
    print(f"{'backend':<12} {'protocol':<10} {'statistic':<19} {'tau across':>10} "
          f"{'diff':>6} {'tau within':>10} {'diff':>6} {'s/net':>6}")
    for r in results:
        print(f"{r['backend']:<12} {r['rounds']}x{r['runs']:<8} {r['statistic']:<19} "
              f"{r['tau_across']:>10.3f} {100 * r['diff_across']:>5.1f}% "
              f"{r['tau_within']:>10.3f} {100 * r['diff_within']:>5.1f}% "
              f"{r['seconds_per_network']:>6.2f}")
    write_results(args.json, "repeatability", {"networks": args.networks, "results": results})
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
