"""The default flow on fresh caches, quiet and under bursty load, checked on the quiet machine.

Each run is `python -m hwnas.search --budget-ms B` with a fresh $HWNAS_CACHE (so it measures
its tables, calibrates, searches and verifies). Under "load", a load generator of its own
keeps every core busy in bursts: on each core, processes that spin for 1-3 s, then pause for
1-3 s, for the whole run. After each run, with the load stopped, the reported architectures
are measured again (`python -m hwnas.profile --from result.json`, 5 rounds) as the truth.
Per condition: exit statuses, predicted / true of every reported architecture (mean and
worst), the share whose true latency is within the budget, and the MACs of the best across
runs. Targets: exit 0 in every run; every reported architecture true <= budget; predicted
within +-5 % of true; the best's MACs within 5 % across quiet runs.

    .venv/bin/python benchmarks/robustness.py [--runs 3] [--budget-ms 5] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np
from _results import write_results

from hwnas.spaces import get_space
from hwnas.tables import read_network_table

SPIN = "import time, sys\nend = time.time() + float(sys.argv[1])\nwhile time.time() < end: pass"


class BurstyLoad:
    """On every core, a process that spins for 1-3 s, then a pause of 1-3 s, again and again."""

    def __init__(self, seed: int = 0):
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._core, args=(seed + i,), daemon=True)
                         for i in range(os.cpu_count() or 1)]

    def _core(self, seed: int) -> None:
        rng = random.Random(seed)
        while not self._stop.is_set():
            spin = subprocess.Popen([sys.executable, "-c", SPIN, f"{rng.uniform(1, 3):.2f}"])
            while spin.poll() is None:
                if self._stop.wait(0.05):
                    spin.kill()
            spin.wait()
            self._stop.wait(rng.uniform(1, 3))

    def __enter__(self) -> BurstyLoad:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for t in self._threads:
            t.join()


def one_run(budget_ms: float, trials: int, load: bool, seed: int) -> dict:
    """One default-flow run on a fresh cache, and its answer measured on the quiet machine."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "HWNAS_CACHE": os.path.join(tmp, "cache")}
        result_path = os.path.join(tmp, "result.json")
        cmd = [sys.executable, "-m", "hwnas.search", "--budget-ms", str(budget_ms),
               "--trials", str(trials), "--json", result_path, "--quiet"]
        t0 = time.perf_counter()
        if load:
            with BurstyLoad(seed):
                run = subprocess.run(cmd, capture_output=True, text=True, env=env)
        else:
            run = subprocess.run(cmd, capture_output=True, text=True, env=env)
        record = {"load": load, "exit": run.returncode, "seconds": time.perf_counter() - t0,
                  "load_average_after": os.getloadavg()[0]}
        if run.returncode != 0 or not os.path.exists(result_path):
            record["stderr"] = run.stderr[-2000:]
            return record
        with open(result_path) as f:
            result = json.load(f)
        quiet_env = {**os.environ, "HWNAS_CACHE": os.path.join(tmp, "quiet")}
        truth_path = os.path.join(tmp, "truth.csv")
        check = subprocess.run([sys.executable, "-m", "hwnas.profile", "--from", result_path,
                                "--out", truth_path, "--rounds", "5", "--quiet"],
                               capture_output=True, text=True, env=quiet_env)
        if check.returncode != 0:
            raise RuntimeError(f"measuring the answer failed: {check.stderr}")
        truth = read_network_table(truth_path, get_space(result["space"]))
        true_ms = dict(zip(truth.z, truth.values()))
        record.update(
            verified=result.get("verified"),
            rounds=result.get("verification", {}).get("rounds"),
            best_macs=result["best"][0]["macs"],
            architectures=[{"z": b["z"], "predicted_ms": b["predicted_latency_ms"],
                            "measured_in_run_ms": b.get("measured_latency_ms"),
                            "true_ms": true_ms[tuple(b["z"])], "macs": b["macs"]}
                           for b in result["best"]])
        return record


def summary(runs: list, budget_ms: float) -> dict:
    archs = [a for r in runs for a in r.get("architectures", [])]
    ratio = np.array([a["predicted_ms"] / a["true_ms"] for a in archs])
    macs = [r["best_macs"] for r in runs if "best_macs" in r]
    return {"runs": len(runs), "exit_statuses": [r["exit"] for r in runs],
            "verified": [r.get("verified") for r in runs],
            "rounds": [r.get("rounds") for r in runs],
            "architectures": len(archs),
            "predicted_over_true_mean": float(ratio.mean()) if archs else None,
            "predicted_over_true_worst": float(ratio[np.argmax(abs(ratio - 1))]) if archs
            else None,
            "share_within_5pct": float(np.mean(abs(ratio - 1) <= 0.05)) if archs else None,
            "share_true_within_budget": float(np.mean([a["true_ms"] <= budget_ms
                                                       for a in archs])) if archs else None,
            "best_mmacs": [m / 1e6 for m in macs],
            "best_macs_spread": float((max(macs) - min(macs)) / max(macs)) if macs else None,
            "seconds_mean": float(np.mean([r["seconds"] for r in runs]))}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=3, help="runs per condition (default: 3)")
    p.add_argument("--budget-ms", type=float, default=5.0)
    p.add_argument("--trials", type=int, default=500)
    p.add_argument("--quick", action="store_true", help="a smoke test: 1 run per condition, "
                   "100 trials")
    here = os.path.join(os.path.dirname(__file__), "results")
    p.add_argument("--json", default=os.path.join(here, "robustness.json"))
    args = p.parse_args()
    runs, trials = (1, 100) if args.quick else (args.runs, args.trials)
    conditions = {}
    for name, load in (("quiet", False), ("bursty load", True)):
        records = []
        for i in range(runs):
            records.append(one_run(args.budget_ms, trials, load, seed=i))
            r = records[-1]
            print(f"{name} run {i + 1}: exit {r['exit']}, verified {r.get('verified')}, "
                  f"rounds {r.get('rounds')}, {r['seconds']:.0f} s", flush=True)
        conditions[name] = {"summary": summary(records, args.budget_ms), "records": records}
    print(f"\nbudget {args.budget_ms:g} ms, {runs} run(s) per condition, {trials} trials, "
          f"{os.cpu_count()} cores")
    print(f"{'condition':<12}  {'exits':<10}  {'verified':<10}  {'pred/true mean':>14}  "
          f"{'worst':>6}  {'within 5%':>9}  {'true<=budget':>12}  {'best MMACs':<20}")
    for name, c in conditions.items():
        s = c["summary"]

        def fmt(v, spec):
            return "-" if v is None else format(v, spec)

        print(f"{name:<12}  {','.join(map(str, s['exit_statuses'])):<10}  "
              f"{','.join('y' if v else 'n' for v in s['verified']):<10}  "
              f"{fmt(s['predicted_over_true_mean'], '.3f'):>14}  "
              f"{fmt(s['predicted_over_true_worst'], '.3f'):>6}  "
              f"{fmt(s['share_within_5pct'], '.0%'):>9}  "
              f"{fmt(s['share_true_within_budget'], '.0%'):>12}  "
              f"{' '.join(f'{m:.2f}' for m in s['best_mmacs']):<20}")
    write_results(args.json, "robustness",
                  {"budget_ms": args.budget_ms, "runs": runs, "trials": trials,
                   "quick": args.quick, "cpus": os.cpu_count(), "conditions": conditions})
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
