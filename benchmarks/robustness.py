"""The main command, cold and warm, quiet and under bursty load, its answers re-timed quietly.

Each quiet run is `python -m hwnas.search --budget-ms B` twice on one fresh $HWNAS_CACHE:
cold (it measures its tables, calibrates, searches and verifies), then warm (the drift check,
the search, the verification from the cache). Under "load", a load generator of its own keeps
every core busy in bursts: on each core, processes that spin for 1-3 s, then pause for 1-3 s,
for the whole (cold) run. After each run, with the load stopped, the reported architectures
are measured again in another process (`python -m hwnas.profile --from result.json`) as the
truth. Per run: seconds, verify rounds, the calibration line (a, b), the best's MACs, and
predicted / true of every reported architecture.

Targets (issue 19): quiet cold <= 25 s, warm <= 8 s; verified in one round in >= 4 of 5;
every answer re-timed within the budget; best MACs within 3 % across runs; a and b inside
physics. Under bursty load: exit 0, every answer re-timed <= 1.02 x budget.

    .venv/bin/python benchmarks/robustness.py [--runs 5] [--budget-ms 5] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
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


def one_run(budget_ms: float, trials: int, load: bool, seed: int) -> list[dict]:
    """A cold run on a fresh cache (and, quiet, a warm run on the same cache after it), each
    answer re-timed in another process on the quiet machine."""
    records = []
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "HWNAS_CACHE": os.path.join(tmp, "cache")}
        for kind in ("cold",) if load else ("cold", "warm"):
            result_path = os.path.join(tmp, f"{kind}.json")
            cmd = [sys.executable, "-m", "hwnas.search", "--budget-ms", str(budget_ms),
                   "--trials", str(trials), "--json", result_path, "--quiet"]
            t0 = time.perf_counter()
            if load:
                with BurstyLoad(seed):
                    run = subprocess.run(cmd, capture_output=True, text=True, env=env)
            else:
                run = subprocess.run(cmd, capture_output=True, text=True, env=env)
            record = {"load": load, "kind": kind, "exit": run.returncode,
                      "seconds": time.perf_counter() - t0,
                      "load_average_after": os.getloadavg()[0],
                      "remeasured": "measuring it again" in run.stderr}
            records.append(record)
            if run.returncode != 0 or not os.path.exists(result_path):
                record["stderr"] = run.stderr[-2000:]
                continue
            with open(result_path) as f:
                result = json.load(f)
            line = re.search(r"a = ([\d.]+) x \w+ \+ b = ([\d.-]+) ms", result["predictor"])
            truth = retime(result, tmp, kind)
            record.update(
                verified=result.get("verified"),
                rounds=result.get("verification", {}).get("rounds"),
                a=float(line.group(1)) if line else None,
                b_ms=float(line.group(2)) if line else None,
                best_macs=result["best"][0]["macs"],
                architectures=[{"z": b["z"], "predicted_ms": b["predicted_latency_ms"],
                                "measured_in_run_ms": b.get("measured_latency_ms"),
                                "true_ms": truth[tuple(b["z"])], "macs": b["macs"]}
                               for b in result["best"]])
    return records


def retime(result: dict, tmp: str, kind: str) -> dict:
    """The answers of ``result`` timed again in another process: z -> latency_ms."""
    quiet_env = {**os.environ, "HWNAS_CACHE": os.path.join(tmp, f"quiet-{kind}")}
    truth_path = os.path.join(tmp, f"truth-{kind}.csv")
    check = subprocess.run([sys.executable, "-m", "hwnas.profile", "--from",
                            os.path.join(tmp, f"{kind}.json"), "--out", truth_path, "--quiet"],
                           capture_output=True, text=True, env=quiet_env)
    if check.returncode != 0:
        raise RuntimeError(f"measuring the answer failed: {check.stderr}")
    truth = read_network_table(truth_path, get_space(result["space"]))
    return dict(zip(truth.z, truth.values()))


def summary(runs: list, budget_ms: float) -> dict:
    archs = [a for r in runs for a in r.get("architectures", [])]
    ratio = np.array([a["predicted_ms"] / a["true_ms"] for a in archs])
    true = np.array([a["true_ms"] / budget_ms for a in archs])
    macs = [r["best_macs"] for r in runs if "best_macs" in r]
    return {"runs": len(runs), "exit_statuses": [r["exit"] for r in runs],
            "verified": [r.get("verified") for r in runs],
            "rounds": [r.get("rounds") for r in runs],
            "a": [r.get("a") for r in runs], "b_ms": [r.get("b_ms") for r in runs],
            "remeasured": [r["remeasured"] for r in runs],
            "seconds": [r["seconds"] for r in runs],
            "architectures": len(archs),
            "predicted_over_true_mean": float(ratio.mean()) if archs else None,
            "predicted_over_true_worst": float(ratio[np.argmax(abs(ratio - 1))]) if archs
            else None,
            "true_over_budget_max": float(true.max()) if archs else None,
            "share_true_within_budget": float(np.mean(true <= 1)) if archs else None,
            "best_mmacs": [m / 1e6 for m in macs],
            "best_macs_spread": float((max(macs) - min(macs)) / max(macs)) if macs else None}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=5, help="runs per condition (default: 5)")
    p.add_argument("--budget-ms", type=float, default=5.0)
    p.add_argument("--trials", type=int, default=500)
    p.add_argument("--quick", action="store_true", help="a smoke test: 1 run per condition, "
                   "100 trials")
    here = os.path.join(os.path.dirname(__file__), "results")
    p.add_argument("--json", default=os.path.join(here, "robustness.json"))
    args = p.parse_args()
    runs, trials = (1, 100) if args.quick else (args.runs, args.trials)
    records: dict[str, list] = {"quiet cold": [], "quiet warm": [], "bursty load": []}
    for load in (False, True):
        for i in range(runs):
            for r in one_run(args.budget_ms, trials, load, seed=i):
                key = "bursty load" if load else f"quiet {r['kind']}"
                records[key].append(r)
                print(f"{key} run {i + 1}: exit {r['exit']}, {r['seconds']:.1f} s, verified "
                      f"{r.get('verified')} in {r.get('rounds')} round(s), a = {r.get('a')}, "
                      f"b = {r.get('b_ms')} ms", flush=True)
    conditions = {k: {"summary": summary(v, args.budget_ms), "records": v}
                  for k, v in records.items()}
    print(f"\nbudget {args.budget_ms:g} ms, {runs} run(s) per condition, {trials} trials, "
          f"{os.cpu_count()} cores")
    print(f"{'condition':<12}  {'seconds':<26}  {'rounds':<10}  {'a':<30}  {'b ms':<30}  "
          f"{'pred/true':>9}  {'max true/budget':>15}  best MMACs")
    for name, c in conditions.items():
        s = c["summary"]

        def join(values, spec):
            return ",".join("-" if v is None else format(v, spec) for v in values)

        print(f"{name:<12}  {join(s['seconds'], '.1f'):<26}  {join(s['rounds'], 'd'):<10}  "
              f"{join(s['a'], '.3f'):<30}  {join(s['b_ms'], '.3f'):<30}  "
              f"{s['predicted_over_true_mean'] or float('nan'):>9.3f}  "
              f"{s['true_over_budget_max'] or float('nan'):>15.3f}  "
              f"{join(s['best_mmacs'], '.2f')}")
    write_results(args.json, "robustness",
                  {"budget_ms": args.budget_ms, "runs": runs, "trials": trials,
                   "quick": args.quick, "cpus": os.cpu_count(), "conditions": conditions})
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
