"""Which timing statistic and protocol repeat: the same networks timed in two processes.

For each backend, two separate processes (one after the other) each time the same N random
`mobilenet` networks (seeded weights and inputs: the same computation) twice, every unit of a
pass interleaved round by round, with the largest protocol (--rounds x --runs, no time cap).
Every shorter protocol is then read off the same runs (its first R rounds, first n runs of
each), so all candidates see the same machine; each statistic over the raw rounds, and
hwnas's default over the rounds speed-corrected as hwnas does (``corrected ...``). Per
statistic and protocol: Kendall tau and mean |difference| between the two processes (also
with the level a whole process ran at taken out: what a calibration in the same process
absorbs), and between the two passes of one process, and the seconds one network costs
under that protocol (warm-up included).

Targets (issue 19): tau >= 0.9 and mean |difference| <= 2 % across processes for both
backends, at <= 1.5 s per nnabla network. The default protocol is the cheapest that reaches
them.

    .venv/bin/python benchmarks/repeatability.py [--networks 24] [--rounds 30] [--runs 10]
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
from hwnas.profile._stats import MIN_RUNS, STATISTIC, STATISTICS, speed_corrected
from hwnas.profile._timing import measure_rounds
from hwnas.spaces import get_space

#: (rounds, runs per round at most, seconds per round at most) read off the largest protocol,
#: as hwnas.profile times: runs until the count or the time is reached, never fewer than 3
PROTOCOLS = [(3, 10, 0.5), (5, 10, 0.05), (8, 5, 0.05), (8, 10, 0.03), (8, 20, 0.03),
             (10, 10, 0.03), (10, 20, 0.03), (10, 50, 0.03), (12, 10, 0.03), (12, 20, 0.03),
             (12, 50, 0.03), (12, 100, 0.05), (20, 10, 0.03), (20, 20, 0.03), (30, 10, 0.03),
             (30, 20, 0.03)]
WARMUP = 2


def worker(backend_name: str, networks: int, rounds: int, runs: int, out: str) -> None:
    """Time the networks twice in this process; save every run (ms) and each pass's seconds."""
    space, backend = get_space("mobilenet"), get_backend(backend_name)
    runners = [backend.runner(space.decode(z).graph) for z in space.random_z(networks, 0)]
    protocol = TimingProtocol(warmup=2, runs=runs, rounds=rounds, min_runs=runs,
                              max_round_s=1e9, speed_correction=False)  # raw: read off below
    passes = [measure_rounds(runners, protocol) for _ in range(2)]
    np.save(out, np.array(passes))  # pass x network x round x run


def taken(round_ms: np.ndarray, runs: int, max_round_s: float) -> np.ndarray:
    """The runs of one recorded round that a protocol of ``runs`` and ``max_round_s`` takes."""
    elapsed = np.cumsum(round_ms) / 1e3
    n = int(np.searchsorted(elapsed, max_round_s, side="right")) + 1
    return round_ms[:max(min(MIN_RUNS, runs), min(runs, n))]


#: the statistics compared: each over raw rounds, and hwnas's default (STATISTIC) over rounds
#: speed-corrected as hwnas times them (``_stats.speed_corrected``)
CORRECTED = f"corrected {STATISTIC}"
#: the same, put on the batch's fast states (its speeds' FAST_LEVEL quantile) rather than
#: each unit's typical round: does the level a whole process runs at repeat better?
FAST_LEVEL = 0.1
CORRECTED_FAST = f"corrected to q{100 * FAST_LEVEL:g} {STATISTIC}"
COMPARED = [*STATISTICS, CORRECTED, CORRECTED_FAST]


def statistic(samples: np.ndarray, name: str, protocol: tuple) -> np.ndarray:
    """Each network's statistic over the runs ``protocol`` takes of its recorded rounds."""
    rounds, runs, max_round_s = protocol
    units = [[taken(r, runs, max_round_s) for r in unit[:rounds]] for unit in samples]
    if name in (CORRECTED, CORRECTED_FAST):
        level = FAST_LEVEL if name == CORRECTED_FAST else None
        units, name = speed_corrected(units, level=level), STATISTIC
    return np.array([STATISTICS[name](unit) for unit in units])


def seconds(samples: np.ndarray, protocol: tuple) -> float:
    """What ``protocol`` costs per network, warm-up runs included (their mean run)."""
    rounds, runs, max_round_s = protocol
    total = [sum(taken(r, runs, max_round_s).sum() + WARMUP * r.mean() for r in unit[:rounds])
             for unit in samples]
    return float(np.mean(total)) / 1e3


def agreement(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    """Kendall tau, mean |difference|, and mean |difference| once the level one process ran
    at (the median ratio) is taken out."""
    tau = float(kendalltau(a, b)[0])
    ratio = a / b
    return tau, float(np.mean(np.abs(ratio - 1))), \
        float(np.mean(np.abs(ratio / np.median(ratio) - 1)))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--networks", type=int, default=24)
    p.add_argument("--rounds", type=int, default=max(r for r, _, _ in PROTOCOLS))
    p.add_argument("--runs", type=int, default=10, help="runs recorded per round (nnabla)")
    p.add_argument("--fast-runs", type=int, default=100, help="runs recorded per round of the "
                   "sub-millisecond ONNX Runtime networks")
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
                runs = args.runs if name == "nnabla" else args.fast_runs
                subprocess.run([sys.executable, __file__, "--worker", name, out,
                                "--networks", str(args.networks), "--rounds", str(args.rounds),
                                "--runs", str(runs)], check=True)
                data.append(np.load(out))
        mean_ms = float(np.mean([np.median(d) for d in data]))
        for protocol in PROTOCOLS:
            rounds, runs, max_round_s = protocol
            if rounds > args.rounds or runs > data[0].shape[-1]:
                continue
            for stat in COMPARED:
                # process 1's first pass against process 2's first pass; and within process 1
                across = agreement(*(statistic(d[0], stat, protocol) for d in data))
                within = agreement(statistic(data[0][0], stat, protocol),
                                   statistic(data[0][1], stat, protocol))
                results.append({"backend": name, "rounds": rounds, "runs": runs,
                                "max_round_s": max_round_s, "warmup": WARMUP,
                                "statistic": stat,
                                "tau_across": across[0], "diff_across": across[1],
                                "level_free_diff_across": across[2],
                                "tau_within": within[0], "diff_within": within[1],
                                "seconds_per_network": seconds(data[0][0], protocol),
                                "network_ms": mean_ms})
    print(f"{'backend':<12} {'protocol':<16} {'statistic':<26} {'tau across':>10} "
          f"{'diff':>6} {'w/o lvl':>7} {'tau within':>10} {'diff':>6} {'s/net':>6}")
    for r in results:
        protocol = f"{r['rounds']}x{r['runs']}/{1e3 * r['max_round_s']:g}ms"
        print(f"{r['backend']:<12} {protocol:<16} {r['statistic']:<26} "
              f"{r['tau_across']:>10.3f} {100 * r['diff_across']:>5.1f}% "
              f"{100 * r['level_free_diff_across']:>6.1f}% "
              f"{r['tau_within']:>10.3f} {100 * r['diff_within']:>5.1f}% "
              f"{r['seconds_per_network']:>6.2f}")
    write_results(args.json, "repeatability", {"networks": args.networks, "default": CORRECTED,
                                               "results": results})
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
