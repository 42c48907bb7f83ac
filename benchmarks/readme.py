"""Renders the documentation's benchmark pages (docs/benchmarks/) from benchmarks/results/.

Every figure on those pages comes from a results file, with the machine, versions, commit
and date it was measured with; the text between each page's markers is this script's output
only (the words above the markers are written by hand). The plots beside the tables are drawn
from the same files when the site is built (benchmarks/plots.py, through docs/hooks/).

    python benchmarks/readme.py           # rewrite the pages between their markers
    python benchmarks/readme.py --check   # exit 1 with a diff when a page differs (a test)
"""

from __future__ import annotations

import argparse
import difflib
import importlib.util
import json
import math
import os
import statistics
import sys
import textwrap
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")
PAGES_DIR = os.path.join(os.path.dirname(HERE), "docs", "benchmarks")
BEGIN, END = "<!-- benchmarks:begin -->", "<!-- benchmarks:end -->"
# a benchmark whose full run is missing (or predates "meta") falls back to its smoke run
SMOKE = {"search_quality": "search_quality_quick.json", "few_shot": "few_shot-quick.json"}


class Result:
    """One benchmark's results file: its payload, its meta (None in the old format), its name."""

    def __init__(self, name: str, file: str, data: Any) -> None:
        self.name, self.file = name, file
        old = not (isinstance(data, dict) and "meta" in data)
        self.meta: dict | None = None if old else data["meta"]
        self.results: Any = data if old else data["results"]
        self.smoke = file == SMOKE.get(name) or (
            isinstance(self.results, dict) and bool(self.results.get("quick")))


def _read(folder: str, file: str, name: str) -> Result | None:
    path = os.path.join(folder, file)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return Result(name, file, json.load(f))


def load(folder: str, name: str) -> Result | None:
    """The results of benchmark ``name`` in folder: the full run, else its smoke run."""
    full = _read(folder, f"{name}.json", name)
    if name in SMOKE and (full is None or full.meta is None):
        return _read(folder, SMOKE[name], name) or full
    return full


def provenance(r: Result) -> str:
    """A line saying what the results were measured with."""
    where = f"`results/{r.file}`" + (" (smoke run)" if r.smoke else "")
    m = r.meta
    if m is None:
        return f"*{where}: measured before results recorded their machine.*"
    machine = m["machine"]
    loads = f"load average {machine['load_average_start'][0]:.1f} at start, " \
            f"{machine['load_average_end'][0]:.1f} at end"
    versions = ", ".join(f"{k} {v}" for k, v in m["versions"].items())
    argv = " ".join(["benchmarks/" + m["benchmark"] + ".py", *m["argv"]])
    return (f"*{where}: `{argv}` at commit {m['commit']}, {m['date']}, on {machine['cpu']} "
            f"({machine['cores']} cores, {loads}); Python {m['python']}, {versions}.*")


def _pct(share: float) -> str:
    return "-" if share is None or math.isnan(share) else f"{100 * share:.0f} %"


def _met(ok: bool) -> str:
    return "met" if ok else "missed"


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def _ms(x: float) -> str:
    return f"{x:.2f}" if x < 1 else f"{x:.1f}"


def _range(values: list[float], spec: str) -> str:
    lo, hi = min(values), max(values)
    return format(lo, spec) if format(lo, spec) == format(hi, spec) else \
        f"{lo:{spec}}-{hi:{spec}}"


def accuracy(r: Result) -> list[str]:
    rows = r.results
    n = rows[0]["n"]
    networks = rows[0].get("networks")
    scored = (f"{networks} random networks measured twice; predictors scored on {n}, "
              f"calibration on the other {networks - n}" if networks else
              f"random networks measured twice; predictors scored on {n}, calibration on the "
              f"others")
    out = [f"**Accuracy** (`.venv/bin/python benchmarks/accuracy.py`: {scored}):", "",
           "| backend | true latency | noise ceiling (tau, 2 passes) | predictor | within 10 % "
           "| MAPE | tau |", "|---|---|---|---|---|---|---|"]
    seen, noisy = set(), []
    for row in rows:
        span = (f"{_ms(row['true_ms_min'])}-{_ms(row['true_ms_max'])} ms"
                if "true_ms_min" in row else "not recorded")
        first = row["backend"] not in seen
        seen.add(row["backend"])
        if first and row["ceiling_tau"] < 0.5:
            noisy.append((row["backend"], row["ceiling_tau"]))
        lead = (f"| {row['backend']} | {span} | {row['ceiling_tau']:.3f} |" if first
                else "| | | |")
        out.append(f"{lead} {row['predictor']} | {row['within_10_pct']:.0f} % | "
                   f"{row['mape_pct']:.1f} % | {row['kendall_tau']:.3f} |")
    out.append("")
    for backend, tau in noisy:
        out += [f"{backend} networks on this machine are dominated by noise (two passes over the "
                f"same networks agree only to tau {tau:.2f}).", ""]
    verdicts = []
    for backend, least in (("nnabla", 95), ("onnxruntime", 90)):
        row = next((x for x in rows if x["backend"] == backend
                    and x["predictor"].startswith("calibrated")), None)
        if row is not None:
            ok = row["within_10_pct"] >= least and row["ceiling_tau"] >= 0.85
            verdicts.append(f"{backend} calibrated >= {least} % within 10 % and ceiling tau >= "
                            f"0.85 {'met' if ok else 'MISSED'} ({row['within_10_pct']:.0f} %, "
                            f"{row['ceiling_tau']:.2f})")
    return out + (["Targets: " + "; ".join(verdicts) + ".", ""] if verdicts else [])


def nnabla_nas_estimators(r: Result) -> list[str]:
    res, rows = r.results, r.results["rows"]

    def ratios(key: str) -> list[float]:
        return [row[key] / row["true_ms"] for row in rows]

    theirs_s = [row["nnabla_nas_s"] for row in rows]
    cal = statistics.mean(abs(x - 1) for x in ratios("hwnas calibrated_ms")) * 100
    cal_nets = (f"{res['calibration_networks']} calibration networks"
                if "calibration_networks" in res else "its calibration networks")
    return [f"**Against NNabla NAS's estimators** (`benchmarks/nnabla_nas_estimators.py`, "
            f"{len(rows)} networks; its LatencyGraphEstimator gets each architecture as an "
            f"nnabla graph built by hwnas): its `LatencyEstimator` "
            f"{_range(ratios('nnabla_nas_ms'), '.2f')} x true, "
            f"{_range(theirs_s[1:], '.2f')} s per network after the first "
            f"({theirs_s[0]:.1f} s for the first); `LatencyGraphEstimator` "
            f"{statistics.mean(ratios('nnabla_nas_graph_ms')):.2f} x true, "
            f"{statistics.mean(row['nnabla_nas_graph_s'] for row in rows):.2f} s per network; "
            f"the hwnas adapter "
            f"{1000 * statistics.mean(row['hwnas lookup_s'] for row in rows):.0f} ms per "
            f"network, raw {_range(ratios('hwnas lookup_ms'), '.2f')} x true, calibrated MAPE "
            f"{cal:.1f} %, after a one-off {res['layer_table_s']:.1f} s layer table and "
            f"{res['calibration_s']:.1f} s for {cal_nets}.", ""]


def throughput(r: Result) -> list[str]:
    rows = r.results["rows"]
    fast = {k: v["z_per_s"] for k, v in rows.items() if k != "tree_z"}
    out = (f"**Throughput** (`benchmarks/throughput.py`, predict_z on {r.results['n']:.0e} z): "
           f"{', '.join(list(fast)[:-1])} and {list(fast)[-1]} "
           f"{_range([v / 1e6 for v in fast.values()], '.1f')} million z/s (through the cost "
           f"matrix, once it is cached; best of three calls)")
    if "tree_z" in rows:
        out += f"; tree_z about {round(rows['tree_z']['z_per_s'], -3):,.0f} z/s"
    return [out.replace("e+0", "e") + ".", ""]


def search_quality(r: Result) -> list[str]:
    res, mb, nb = r.results, r.results["mobilenet"], r.results["nb201"]
    checkpoints = res["checkpoints"]
    out = ["**Search** (`benchmarks/search_quality.py`): per sampler (tpe, nsga2, random), plain "
           "and wrapped in `FeasibleSampler`, mean of 3 seeds with nothing enqueued: the share "
           "of feasible trials, the best feasible objective / the exact optimum after 100, 300 "
           "and 1000 trials, and ms per trial against a bare Optuna study with the same sampler "
           "and a trivial objective; the Pareto front after 200 NSGA-II trials; and on `nb201` "
           "a black-box objective that is not additive (`cell_paths`: products of per-op "
           "factors along the cell's paths), judged against its brute-force optimum over all "
           "15,625 cells.", "",
           f"{'A smoke run' if r.smoke else 'The run'} ({_n(res['seeds'], 'seed')}, up to "
           f"{checkpoints[-1]} trials, {res['predictor']} predictor on {res['device']}) gave on "
           f"`mobilenet` at {mb['budget_ms']:.2f} ms:", "",
           "| sampler | feasible trials | " +
           " | ".join(f"best / optimum @{c}" for c in checkpoints) +
           " | ms/trial | bare Optuna ms/trial |",
           "|---|---|" + "---|" * len(checkpoints) + "---|---|"]
    for key, row in mb["samplers"].items():
        label = key.replace(" +front", ", exact front enqueued (the default)")
        out.append(f"| {label} | {_pct(row['feasible_share'])} | " +
                   " | ".join(f"{100 * b:.1f} %" for b in row["best_over_optimum"]) +
                   f" | {row['ms_per_trial']:.2f} | {row['bare_optuna_ms_per_trial']:.2f} |")
    front_key = next(k for k in mb if k.startswith("pareto_front_size_"))
    front = mb[front_key]
    cells = (f"{nb['feasible_cells']:,} of {nb['cells']:,} cells within {nb['budget_ms']:.2f} ms"
             if "feasible_cells" in nb else f"budget {nb['budget_ms']:.2f} ms")
    best = {k: 100 * v["best_over_optimum"][-1] for k, v in nb["samplers"].items()}
    per_base = "; ".join(f"{b} {best[b]:.1f} %, feasible {best['feasible ' + b]:.1f} %"
                         for b in ("tpe", "nsga2", "random")
                         if b in best and "feasible " + b in best)
    out += ["", f"Pareto fronts after {front_key.split('_')[3]} NSGA-II trials: "
            f"{front['nsga2']} architectures plain, {front['feasible nsga2']} wrapped. On "
            f"`nb201` with `cell_paths` ({cells}), best / brute-force optimum after "
            f"{checkpoints[-1]} trials: {per_base}. `results/search_trials.png` shows the trials "
            f"of a plain and a wrapped TPE search. The exact sampler takes {mb['exact_s']:.2f} s "
            f"for `mobilenet`.", ""]
    return out


def layer_sum(r: Result) -> list[str]:
    parts = [f"{row['backend']} {row['ratio_mean']:.2f} +- {row['ratio_std']:.2f} (tau "
             f"{row['kendall_tau']:.2f}, {_ms(row['true_ms_min'])}-{_ms(row['true_ms_max'])} ms)"
             for row in r.results]
    devices = "; ".join(row["device"] for row in r.results)
    return [f"**Layer sums** (`benchmarks/layer_sum.py`, {r.results[0]['networks']} networks): "
            f"raw layer sum / true latency {', '.join(parts)}; {devices}.", ""]


def few_shot(r: Result) -> list[str]:
    rows = [row for row in r.results if row["n"] in (10, 20)]
    kinds = list(dict.fromkeys(row["predictor"] for row in rows))
    groups: dict[tuple, dict] = {}
    for row in rows:
        key = (row["backend"], row["space"], row["train"], row["n"])
        groups.setdefault(key, {})[row["predictor"]] = row
    out = ["**Few networks** (`benchmarks/few_shot.py`: predictors fitted on 10 or 20 measured "
           "networks, a covering design or random ones, and scored on 100 other random "
           "networks). Each cell: Spearman rho, share within +-10 %, and (where not all) the "
           "share of test networks the predictor can price at all:", "",
           "| backend | space | fitted on | networks | " + " | ".join(kinds) + " |",
           "|---|---|---|---|" + "---|" * len(kinds)]
    for (backend, space, train, n), by_kind in sorted(groups.items()):
        cells = []
        for kind in kinds:
            row = by_kind.get(kind)
            rho = None if row is None else row["spearman_rho"]
            priced = "" if row is None or row["priced_pct"] >= 100 else \
                f" ({row['priced_pct']:.0f} % priced)"
            cells.append("-" if rho is None or math.isnan(rho) else
                         f"{rho:.2f}, {row['within_10_pct']:.0f} %{priced}")
        out.append(f"| {backend} | {space} | {train} | {n} | " + " | ".join(cells) + " |")
    target = [row for row in rows if "meets_target" in row]
    met = [f"{row['backend']} {row['space']}" for row in target if row["meets_target"]]
    missed = [f"{row['backend']} {row['space']} (rho {row['spearman_rho']:.2f}, "
              f"{row['within_10_pct']:.0f} %)" for row in target if not row["meets_target"]]
    out += ["", "Target at 10 designed networks, additive_features: Spearman >= 0.97 and >= 90 % "
            f"within +-10 %: met on {', '.join(met) or 'none'}; missed on "
            f"{', '.join(missed) or 'none'}."]
    return out + [""]


def robustness(r: Result) -> list[str]:
    res = r.results
    out = ["**The main command, cold and warm** (`benchmarks/robustness.py`: "
           f"`hwnas.search --budget-ms {res['budget_ms']:g}`, a cold run on a fresh cache then a "
           "warm run on it, quiet; and cold runs under a load generator of its own that keeps "
           "every core busy in 1-3 s bursts; afterwards each reported architecture timed again "
           "in another process on the quiet machine, with 30 rounds and noisy units timed "
           "again, beside 8 of the run's cached calibration networks: on the scale the run "
           "judged its budget on (the cache's, or the machine's then where the run found its "
           "tables measured in a slow state), and "
           "raw, in whatever state the machine was then). "
           f"{'Smoke run' if r.smoke else 'Measured'}: {_n(res['runs'], 'run')} per condition, "
           f"{res['trials']} trials, {res['cpus']} cores:", "",
           "| condition | exit | seconds | verify rounds | a | b (ms) | predicted / true "
           "(mean) | re-timed / budget (max) | raw re-timed / budget (max) | best MMACs |",
           "|---|---|---|---|---|---|---|---|---|---|"]

    def join(values, spec):
        return ", ".join("-" if v is None else format(v, spec) for v in values)

    for name, c in res["conditions"].items():
        s = c["summary"]
        out.append(f"| {name} | {join(s['exit_statuses'], 'd')} | {join(s['seconds'], '.1f')} | "
                   f"{join(s['rounds'], 'd')} | {join(s['a'], '.2f')} | {join(s['b_ms'], '.2f')} "
                   f"| {s['predicted_over_true_mean'] or math.nan:.3f} | "
                   f"{s['true_over_budget_max'] or math.nan:.3f} | "
                   f"{s.get('raw_true_over_budget_max') or math.nan:.3f} | "
                   f"{join(s['best_mmacs'], '.2f')} |")
    verdicts = []
    conditions = res["conditions"]
    for name, limit_s in (("quiet cold", 25), ("quiet warm", 8)):
        s = conditions.get(name, {}).get("summary")
        if not s:
            continue
        one = sum(r == 1 for r in s["rounds"])
        checks = [(f"at most {limit_s} s", all(t <= limit_s for t in s["seconds"])),
                  (f"one round in {one} of {len(s['rounds'])}", one >= 0.8 * len(s["rounds"])),
                  ("every answer re-timed within the budget",
                   (s["true_over_budget_max"] or math.inf) <= 1)]
        verdicts.append(f"{name}: " + ", ".join(f"{what} {'met' if ok else 'MISSED'}"
                                               for what, ok in checks))
    quiet = [m for name in ("quiet cold", "quiet warm")
             for m in conditions.get(name, {}).get("summary", {}).get("best_mmacs", [])]
    if quiet:
        spread = (max(quiet) - min(quiet)) / max(quiet)
        verdicts.append(f"best MACs within {spread:.1%} across quiet runs "
                        f"({'met' if spread <= 0.03 else 'MISSED'}: 3 %)")
    bursty = conditions.get("bursty load", {}).get("summary")
    if bursty:
        ok = all(e == 0 for e in bursty["exit_statuses"]) and \
            (bursty["true_over_budget_max"] or math.inf) <= 1.02
        verdicts.append(f"bursty load: exit 0 and every answer re-timed <= 1.02 x budget "
                        f"{'met' if ok else 'MISSED'}")
    return out + ["", "Targets: " + "; ".join(verdicts) + ".", ""]


def repeatability(r: Result) -> list[str]:
    res = r.results["results"]
    out = ["**Which statistic repeats** (`benchmarks/repeatability.py`: "
           f"{r.results['networks']} random mobilenet networks, timed in two separate processes "
           "one after the other, each unit interleaved round by round; every protocol read off "
           "the same runs). Kendall tau and mean |difference| between the processes (also with "
           "the level a whole process ran at taken out), between two passes of one process, "
           "and seconds per network; every statistic under the default protocol, hwnas's "
           "(corrected) under every protocol, and beside it the same rounds put on the "
           "batch's fast states (`corrected to q10`: its speeds' 10 % quantile rather than "
           "each unit's typical round):", "",
           "| backend | rounds x runs, round at most | statistic | tau across | diff across "
           "| without the level | tau within | diff within | s / network |",
           "|---|---|---|---|---|---|---|---|---|"]
    default = {"rounds": 10, "runs": 10, "max_round_s": 0.03}
    chosen = r.results.get("default", "min")  # the statistic hwnas times with
    for row in res:
        if row["statistic"].startswith("corrected") or \
                all(row[k] == v for k, v in default.items()):
            out.append(f"| {row['backend']} | {row['rounds']} x {row['runs']}, "
                       f"{1e3 * row['max_round_s']:g} ms | "
                       f"{row['statistic']} | {row['tau_across']:.2f} | "
                       f"{100 * row['diff_across']:.1f} % | "
                       f"{100 * row.get('level_free_diff_across', math.nan):.1f} % | "
                       f"{row['tau_within']:.2f} | "
                       f"{100 * row['diff_within']:.1f} % | {row['seconds_per_network']:.2f} |")
    verdicts = []
    for backend in sorted({row["backend"] for row in res}):
        row = next((x for x in res if x["backend"] == backend and x["statistic"] == chosen
                    and all(x[k] == v for k, v in default.items())), None)
        if row is None:
            verdicts.append(f"{backend} not measured with the default")
            continue
        ok = row["tau_across"] >= 0.9 and row["diff_across"] <= 0.02 and (
            backend != "nnabla" or row["seconds_per_network"] <= 1.5)
        verdicts.append(f"{backend} {'met' if ok else 'MISSED'} (tau {row['tau_across']:.2f}, "
                        f"{100 * row['diff_across']:.1f} %; "
                        f"{100 * row['level_free_diff_across']:.1f} % without the level)")
    findings = []
    for backend in sorted({row["backend"] for row in res}):
        mine = [x for x in res if x["backend"] == backend and x["statistic"] == chosen]
        fast = next((x for x in res if x["backend"] == backend and x["statistic"].startswith(
            "corrected to") and all(x[k] == v for k, v in default.items())), None)
        base = next((x for x in mine if all(x[k] == v for k, v in default.items())), None)
        longest = max(mine, key=lambda x: (x["rounds"], x["runs"]), default=None)
        if fast is None or base is None or longest is None:
            continue
        findings.append(
            f"{backend}: on the fast states the difference across is "
            f"{100 * fast['diff_across']:.1f} % against {100 * base['diff_across']:.1f} % (the "
            f"level without: {100 * fast['level_free_diff_across']:.1f} % either way); "
            f"{longest['rounds']} x {longest['runs']} rounds give tau "
            f"{longest['tau_within']:.2f} within a process, {longest['tau_across']:.2f} "
            f"across (default: {base['tau_within']:.2f}, {base['tau_across']:.2f})")
    if findings:
        out += ["", "What it shows: " + "; ".join(findings) + ". A process runs at a level "
                "of its own, which the fast states take out in part; more rounds raise the "
                "order's agreement within a process more than across processes."]
    return out + ["", "The default protocol is 10 rounds x at most 10 runs (a round stops after "
                  f"30 ms), statistic {chosen}. Target across "
                  "processes: tau >= 0.9 and mean |difference| <= 2 %, at <= 1.5 s per nnabla "
                  "network: " + "; ".join(verdicts) + ".", ""]


def simulated(folder: str) -> list[str]:
    """The simulated device's runs: one row per results file ``simulated_*.json``."""
    results = load_each(folder, "simulated")
    if not results:
        return ["**simulated**: not measured yet (`benchmarks/simulated.py`).", ""]
    out = ["**The flow's guarantees on a simulated device** (`benchmarks/simulated.py`: the whole "
           "default flow on a fresh cache per run, on a device whose true latencies are known "
           "and whose noise is drawn anew each run: jitter, outliers, 15 % slow states of "
           "seconds, whole slow processes, bursts, drift; context `cpu` is the noise measured "
           "on this machine; then a warm run on that cache in another process, with noise of "
           "its own):", "",
           "| noise | sampler | run | runs | runs with an answer truly over budget | objective / "
           "true optimum (mean, worst) | verified in one round | a | b (ms) |",
           "|---|---|---|---|---|---|---|---|---|"]
    last = None
    for r in results:
        res = r.results
        runs = [("cold", res["summary"])] + ([("warm", res["summary"]["warm"])]
                                             if "warm" in res["summary"] else [])
        for kind, s in runs:
            out.append(f"| {res['context']} | {res['sampler']} | {kind} | {s['runs']} | "
                       f"{100 * s['runs_truly_over_budget_share']:.1f} % | "
                       f"{100 * s['objective_over_optimum_mean']:.1f} %, "
                       f"{100 * s['objective_over_optimum_min']:.0f} % | "
                       f"{_pct(s['one_round_share'])} | "
                       f"{s['a_range'][0]:.2f}-{s['a_range'][1]:.2f} | "
                       f"{s['b_range_ms'][0]:.2f}-{s['b_range_ms'][1]:.2f} |")
        if res["context"] == "cpu" and res["sampler"] == "exact":
            last = r, runs
    if last is not None:
        r, runs = last
        ok = all(s["runs_truly_over_budget_share"] <= 0.01 and
                 s["objective_over_optimum_mean"] >= 0.97 for _, s in runs)
        out += ["", f"Targets with this machine's noise (cpu, {runs[0][1]['runs']} runs, "
                f"{' and '.join(k for k, _ in runs)}): at most 1 % of runs truly over the "
                f"budget, mean objective >= 97 % of the optimum: {'met' if ok else 'MISSED'}.",
                "", provenance(r)]
    return out + [""]


def hard_budget(r: Result) -> list[str]:
    res = r.results
    s = res["settings"]
    lo, hi = s["range_ms"]
    out = [f"**Hard budgets in a differentiable search** (`benchmarks/hard_budget.py`: the "
           f"digits supernet of `examples/train_with_latency_penalty.py`, {s['epochs']} epochs "
           f"on {s['train_images']} images, then the derived network alone for "
           f"{_n(s['finetune_epochs'], 'epoch')}; budgets at 30, 50 and 70 % of the predicted "
           f"range {lo:.3f}-{hi:.3f} ms; the soft penalty CE + w (E[lat] / budget - 1) with "
           f"fixed w and z = argmax alpha, against the adaptive `BudgetConstraint` with z = "
           f"`derive_z` within the budget; latencies / budget, test accuracy of the derived "
           f"network on 400 images):", "",
           "| budget | method | E[lat] | derived, predicted | derived, measured | accuracy |",
           "|---|---|---|---|---|---|"]
    for row in res["runs"]:
        b = row["budget_ms"]
        out.append(f"| {row['share']:.0%} ({b:.3f} ms) | {row['method']} | "
                   f"{row['expected_latency_ms'] / b:.3f} | {row['predicted_latency_ms'] / b:.3f} "
                   f"| {row['measured_latency_ms'] / b:.3f} | {row['accuracy']:.3f} |")
    checks = res["checks"]

    def verdict(key: str) -> str:
        missed = [f"{c['share']:.0%}" for c in checks if not c[key]]
        return "met" if not missed else "MISSED at " + ", ".join(missed)

    out += ["", "Targets: adaptive E[latency] within 5 % of every budget "
            f"{verdict('expected_within_5pct')}; derived network within the budget by prediction "
            f"{verdict('predicted_within')}, within 1.05 x measured "
            f"{verdict('measured_within_1_05')}; accuracy at least the best fixed weight's "
            f"whose network fits {verdict('accuracy_at_least_best_fitting_fixed')}. "
            f"`derive_z` costs {res['derive_ms']['digits']:.1f} ms per call on this space "
            f"and {res['derive_ms']['mobilenet']:.1f} ms on `mobilenet` (21 decisions).", "",
            "The adaptive run at the 50 % budget, epoch by epoch (test accuracy of the "
            "supernet, lambda after the epoch):", "",
            "| epoch | train CE | test accuracy | E[lat] / budget | lambda |",
            "|---|---|---|---|---|"]
    adaptive = next(row for row in res["runs"]
                    if row["method"] == "adaptive" and row["share"] == 0.5)
    for h in adaptive["history"]:
        out.append(f"| {h['epoch']} | {h['train_ce']:.3f} | {h['accuracy']:.3f} | "
                   f"{h['expected_latency_ms'] / adaptive['budget_ms']:.3f} | "
                   f"{h['lambda']:.3f} |")
    return out + [""]


def transfer(r: Result) -> list[str]:
    res = r.results
    kinds = (("transfer_design", "transfer, designed"), ("transfer_random", "transfer, random"),
             ("additive_features_random", "additive_features, random"))
    out = ["**Few-shot transfer to a new device** (`benchmarks/transfer.py`: each shipped "
           "device left out in turn, `transfer` fitted from 10 or 20 of its networks (the "
           "transfer design, or random ones, 3 seeds) with the other devices of its space as "
           "known ones, beside `additive_features` on the same random networks; mean Spearman "
           "on all the device's other networks, in brackets without the whole-millisecond "
           "phone tables; the additive ceiling is what an additive model fitted on all of a "
           "device's networks reaches):", "",
           "| space | networks | " + " | ".join(label for _, label in kinds)
           + " | additive ceiling |", "|---|---|" + "---|" * (len(kinds) + 1)]
    for entry in res["summary"]:
        rows = [row for row in res["devices"] if row["space"] == entry["space"]
                and row["networks"] == entry["networks"]]
        ceiling = statistics.mean(row["ceiling_additive"] for row in rows)
        out.append(f"| {entry['space']} | {entry['networks']} | " + " | ".join(
            f"{entry[key]:.3f} ({entry[key + '_not_whole_ms']:.3f})" for key, _ in kinds)
            + f" | {ceiling:.3f} |")
    low = [row for row in res["devices"] if row["transfer_design"]["spearman"] < 0.90]
    out += ["", "Devices below 0.90 with designed networks (Spearman; tie-limited / additive "
            "ceiling):", "",
            "| space | device | networks | Spearman | tie-limited ceiling | additive ceiling |",
            "|---|---|---|---|---|---|"]
    out += [f"| {row['space']} | {row['device']}{' (whole ms)' if row['whole_ms'] else ''} | "
            f"{row['networks']} | {row['transfer_design']['spearman']:.3f} | "
            f"{row['ceiling_ties']:.3f} | {row['ceiling_additive']:.3f} |" for row in low]
    verdicts = []
    for entry in res["summary"]:
        if entry["networks"] != 10:
            continue
        mean = entry["transfer_design"]
        ceiling = statistics.mean(row["ceiling_additive"] for row in res["devices"]
                                  if row["space"] == entry["space"] and row["networks"] == 10)
        verdicts.append(f"{entry['space']} {mean:.3f} " + (
            "met" if mean >= 0.97 else f"MISSED by {0.97 - mean:.3f}, where the additive "
            f"ceiling itself is {ceiling:.3f}"))
    outside = [f"{row['space']} {row['device']}" for row in low
               if row["networks"] == 10 and not row["whole_ms"]]
    out += ["", f"Targets at 10 designed networks: mean Spearman >= 0.97 on each space: "
            f"{'; '.join(verdicts)}. No device below 0.90 but whole-millisecond phone tables: "
            + ("met." if not outside else f"MISSED on {', '.join(outside)}.")
            + " A whole-ms phone's tie-limited ceiling is near 1; its additive ceiling is what "
            "limits any additive predictor (the search needs one) on it."]
    return out + [""]


def _shares(values: list[float]) -> str:
    lo, hi = _pct(min(values)), _pct(max(values))
    return lo if lo == hi else f"{lo[:-2]}-{hi}"


def fleet(r: Result) -> list[str]:
    out = ["**Budgets for a fleet** (`benchmarks/fleet.py`: one search under 3 and 5 shipped "
           "devices' budgets at once, each at its 40th percentile over 2,000 random z; the "
           "exact sampler's optimum (most MACs) and its time; the default sampler, "
           f"{r.results[0]['trials']} trials, seeds 0-2, as the command runs it (starting "
           "from the exact optimum) and on its own):", "",
           "| space | budgets | exact optimum | optimum MMACs | feasible trials | best / optimum "
           "| without the exact start |", "|---|---|---|---|---|---|---|"]
    for row in r.results:
        out.append(f"| {row['space']} | {', '.join(row['budgets'])} | "
                   f"{row['exact_seconds']:.2f} s | {row['optimum_macs'] / 1e6:.1f} | "
                   f"{_pct(min(row['feasible_share']))} | "
                   f"{_pct(min(row['best_over_optimum']))} | "
                   f"{_shares(row['best_over_optimum_without_exact_start'])} |")
    feasible = all(min(row["feasible_share"]) == 1 for row in r.results)
    best = min(min(row["best_over_optimum"]) for row in r.results)
    alone = min(min(row["best_over_optimum_without_exact_start"]) for row in r.results)
    out += ["", f"Targets: every trial within every budget {'met' if feasible else 'MISSED'}; "
            f"best >= 99 % of the optimum after {r.results[0]['trials']} trials "
            + ("met" if best >= 0.99 else f"MISSED ({best:.1%})")
            + f" as the command runs (the sampler alone reaches {_pct(alone)} at worst)."]
    return out + [""]


def devices(r: Result) -> list[str]:
    """How well predictors fitted on most of a shipped device's networks rank the rest."""
    kinds = list(dict.fromkeys(row["predictor"] for row in r.results))
    by_device: dict[str, dict[str, Any]] = {}
    for row in r.results:
        by_device.setdefault(row["device"], {})[row["predictor"]] = row
    out = ["**Shipped devices** (`benchmarks/devices.py`: each `fbnet` device table's "
           "predictors fitted on 4,000 of its networks and scored on the other 1,000; "
           "`additive` is what a search for the device uses): Spearman rho per predictor, "
           "and the share within +-10 % and MAPE of the first:", "",
           "| device | kind | " + " | ".join(f"Spearman, {k}" for k in kinds)
           + f" | within 10 %, {kinds[0]} | MAPE, {kinds[0]} |",
           "|---|---|" + "---|" * (len(kinds) + 2)]
    for name, rows in by_device.items():
        first = rows[kinds[0]]
        out.append(f"| {name}{' (whole ms)' if first['whole_ms'] else ''} | {first['kind']} | "
                   + " | ".join(f"{rows[k]['spearman_rho']:.3f}" if k in rows else "-"
                                for k in kinds)
                   + f" | {first['within_10_pct']:.0f} % | {first['mape_pct']:.1f} % |")
    out.append("")
    for whole, label in ((False, "fractional milliseconds"), (True, "whole milliseconds")):
        means = []
        for kind in kinds:
            rho = [row["spearman_rho"] for row in r.results
                   if row["predictor"] == kind and row["whole_ms"] == whole]
            if rho:
                means.append(f"{kind} {statistics.mean(rho):.3f} (lowest {min(rho):.3f})")
        if means:
            out += [f"Mean Spearman over the tables of {label}: {', '.join(means)}.", ""]
    return out + [""]


def ofa(r: Result) -> list[str]:
    """The shipped Once-for-All GPU tables: predictors on each, and transfer to each."""
    res = r.results
    kinds = ("additive", "additive_features", "tree_z")
    out = ["**Once-for-All GPU tables** (`benchmarks/ofa.py`: each `ofa` table's predictors "
           "fitted on 4,000 of its 5,000 subnetworks and scored on the other 1,000; "
           "resolution-aware features): Spearman rho and share within +-10 % per predictor. "
           "No table was measured twice, so there is no two-table noise ceiling. At batch 1 "
           "the three GPUs are launch-bound and rank the networks alike: the shared ranking "
           "column is how much of each table the ranking they share explains (correction for "
           "attenuation: c_i = sqrt(rho_ij rho_ik / rho_jk)), a lower bound on its noise "
           "ceiling (what a GPU does of its own counts as noise there).", "",
           "| table | batch | " + " | ".join(kinds) + " | shared ranking |",
           "|---|---|" + "---|" * (len(kinds) + 1)]
    for row in res["catalogue"]:
        ceiling = f"{row['noise_ceiling']:.3f}" if "noise_ceiling" in row else "-"
        out.append(f"| {row['device']} | {row['batch']} | " + " | ".join(
            f"{row[k]['spearman']:.3f}, {_pct(row[k]['within_10'])}" for k in kinds)
            + f" | {ceiling} |")
    out += ["", "**Leave-one-out transfer over the 9 OFA tables** (`fit --model transfer` on "
                "10 networks of the held-out table, a covering design or random; Spearman rho "
                "on its other networks):", "",
            "| held out | batch | design | random | leaned on |", "|---|---|---|---|---|"]
    for row in res["transfer"]:
        leaned = ", ".join(f"{k} {w:.2f}" for k, w in row["leaned_on"].items())
        out.append(f"| {row['device']} | {row['batch']} | {row['design']['spearman']:.3f} | "
                   f"{row['random']['spearman']:.3f} | {leaned} |")
    summary = res["transfer_summary"]
    out += ["", "Mean Spearman, design / random: all "
            f"{summary['design_all']:.3f} / {summary['random_all']:.3f}; batch 1 "
            f"{summary['design_batch_1']:.3f} / {summary['random_batch_1']:.3f}; batch 32 "
            f"{summary['design_batch_32']:.3f} / {summary['random_batch_32']:.3f}; batch 64 "
            f"{summary['design_batch_64']:.3f} / {summary['random_batch_64']:.3f}. Fitted on "
            "4,000 networks of the held-out table itself instead of 10, the additive model "
            f"reaches {summary['own_4000_all']:.3f} (batch 1 {summary['own_4000_batch_1']:.3f}, "
            f"32 {summary['own_4000_batch_32']:.3f}, 64 {summary['own_4000_batch_64']:.3f}); "
            "the batch-1 tables' shared ranking averages "
            f"{summary['noise_ceiling_batch_1']:.3f}. Targets: batch 64 >= 0.98 "
            f"({_met(summary['design_batch_64'] >= 0.98)}), batch 1 >= 0.75 "
            f"({_met(summary['design_batch_1'] >= 0.75)}), all >= 0.97 "
            f"({_met(summary['design_all'] >= 0.97)}"
            + ("" if summary["design_all"] >= 0.97 else
               ": the batch-1 tables' noise and 2080ti_32's drift hold every model tried "
               "below it, fitted on 10 networks or 4,000") + ").", ""]
    search = res.get("search")
    if search:
        out += [f"**Search on `ofa`** (v100_64 at {search['budget_ms']:g} ms): the exact "
                f"optimum ({search['optimum_macs'] / 1e6:.1f} M MACs) in "
                f"{search['exact_s']:.1f} s; the MACs of the best found / the optimum's, "
                "by trials:", "",
                "| sampler | 100 | 300 | 1000 |", "|---|---|---|---|"]
        for key, label in (("tpe", "TPE"), ("feasible_tpe", "FeasibleSampler (TPE)")):
            out.append(f"| {label} | " + " | ".join(
                f"{search[f'{key}_{n}']:.3f}" for n in (100, 300, 1000)) + " |")
        out.append("")
    return out


def ofa_machine(folder: str) -> list[str]:
    """Once-for-All on this machine, one row per backend (``ofa_machine_<backend>.json``)."""
    runs = load_each(folder, "ofa_machine")
    if not runs:
        return ["**ofa_machine**: not measured yet (`benchmarks/ofa_machine.py`).", ""]
    out = ["**Once-for-All on this machine** (`benchmarks/ofa_machine.py`: `hwnas search "
           "--space ofa` on an empty cache, then again; the flow's layer predictor (the "
           "linear regressor anchored to the layers measured at 3 resolutions) on the layers "
           "of 4 resolutions it did not measure, and refitted without r = 176 on that one's, "
           "with the regressor alone in brackets; the calibrated predictor on 50 random "
           "subnetworks measured apart, and in brackets calibrated on the regressor alone. "
           "Targets: cold <= 8 min, warm <= 90 s, >= 90 % within +-10 %):", "",
           "| backend | budget | subnetworks | cold | warm | layers at 4 unmeasured r: median "
           "error, within +-10 % | without r = 176 | 50 random subnetworks: within +-10 %, "
           "MAPE, Kendall tau |", "|---|---|---|---|---|---|---|---|"]

    def pair(x: dict) -> str:
        return (f"{_pct(x['median_abs_error'])}, {_pct(x['within_10'])} "
                f"({_pct(x['plain']['median_abs_error'])}, {_pct(x['plain']['within_10'])})")
    for r in runs:
        x = r.results
        c, low, high = x["calibrated"], *x["calibration_networks_ms"]
        out.append(f"| {x['backend']} | {x['budget_ms']:g} ms | {low:.1f}-{high:.1f} ms | "
                   f"{x['cold_s']:.0f} s | {x['warm_s']:.0f} s | {pair(x['regressor'])} | "
                   f"{pair(x['regressor_middle_held_out'])} | {_pct(c['within_10'])}, "
                   f"{c['mape']:.1%}, {c['kendall_tau']:.3f} ({_pct(c['plain']['within_10'])}, "
                   f"{c['plain']['mape']:.1%}) |")
    return out + [""] + [line for r in runs for line in (provenance(r), "")]


SECTIONS = {"accuracy": accuracy, "nnabla_nas_estimators": nnabla_nas_estimators,
            "throughput": throughput, "search_quality": search_quality,
            "layer_sum": layer_sum, "few_shot": few_shot, "repeatability": repeatability,
            "robustness": robustness, "hard_budget": hard_budget,
            "transfer": transfer, "fleet": fleet, "devices": devices, "ofa": ofa}

#: page (under docs/benchmarks/) -> its sections, in order; "simulated" is every
#: simulated_*.json, "ofa_machine" every ofa_machine_*.json. A section on no page goes on
#: the overview, index.md, so that a new benchmark shows before it is given a page.
PAGES = {"predictors.md": ("accuracy", "layer_sum", "few_shot", "throughput",
                           "nnabla_nas_estimators"),
         "search.md": ("search_quality", "fleet"),
         "timing.md": ("repeatability",),
         "main-command.md": ("robustness", "simulated"),
         "training.md": ("hard_budget",),
         "devices.md": ("devices", "transfer", "ofa", "ofa_machine"),
         "index.md": ()}


def _plots() -> dict:
    """benchmarks/plots.py's PLOTS: the sections that have a plot (imported by path, so
    that this script runs from anywhere)."""
    spec = importlib.util.spec_from_file_location("benchmarks_plots",
                                                  os.path.join(HERE, "plots.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.PLOTS


def _section(name: str, folder: str, plots: dict) -> list[str]:
    if name == "ofa_machine":
        return ofa_machine(folder)
    if name == "simulated":
        out = simulated(folder)
        if name in plots and load_each(folder, "simulated"):
            out += [f"![{plots[name][0]}](img/{name}.svg)", ""]
        return out
    r = load(folder, name)
    if r is None:
        return [f"**{name}**: not measured yet (`benchmarks/{name}.py`).", ""]
    out = SECTIONS[name](r)
    if name in plots:
        out += [f"![{plots[name][0]}](img/{name}.svg)", ""]
    return out + [provenance(r), ""]


def load_each(folder: str, name: str) -> list[Result]:
    """Every ``<name>_*.json`` of folder (one per run: simulated_cpu_exact.json, ...), by
    file name."""
    files = sorted(f for f in os.listdir(folder) if f.startswith(f"{name}_"))
    return [r for f in files if (r := _read(folder, f, name)) is not None]


def render(page: str, folder: str = RESULTS) -> str:
    """The generated body of a benchmark page (a key of PAGES), from the results in folder."""
    plots = _plots()
    names = list(PAGES[page])
    if page == "index.md":
        placed = {n for sections in PAGES.values() for n in sections}
        names = [n for n in SECTIONS if n not in placed]
        if not names:
            return "Every benchmark has a page of its own (below)."
    out: list[str] = []
    for name in names:
        out += _section(name, folder, plots)
    # tables stay one row a line; prose is wrapped as the rest of the pages are
    return "\n".join(line if line.startswith(("|", "![")) else
                     textwrap.fill(line, 95, break_long_words=False, break_on_hyphens=False)
                     for line in out).strip()


def rewrite(text: str, body: str) -> str:
    """text with what stands between the markers replaced by body."""
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"the page lacks the markers {BEGIN} ... {END}")
    return text[:start + len(BEGIN)] + "\n" + body + "\n" + text[end:]


def check(pages_dir: str = PAGES_DIR, folder: str = RESULTS) -> str:
    """A unified diff from the pages to what the results give; empty when they agree."""
    diffs = []
    for page in PAGES:
        path = os.path.join(pages_dir, page)
        with open(path) as f:
            text = f.read()
        want = rewrite(text, render(page, folder))
        diffs += difflib.unified_diff(text.splitlines(True), want.splitlines(True),
                                      path, f"{path} (from benchmarks/results)")
    return "".join(diffs)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--check", action="store_true", help="exit 1 with a diff when a page "
                   "differs from what the results give")
    p.add_argument("--results", default=RESULTS)
    p.add_argument("--pages", default=PAGES_DIR, help="the folder of the benchmark pages")
    args = p.parse_args()
    if args.check:
        diff = check(args.pages, args.results)
        sys.stdout.write(diff)
        sys.exit(1 if diff else 0)
    for page in PAGES:
        path = os.path.join(args.pages, page)
        with open(path) as f:
            text = f.read()
        new = rewrite(text, render(page, args.results))  # before opening for writing: a
        with open(path, "w") as f:                        # failing section must not leave
            f.write(new)                                  # an empty page


if __name__ == "__main__":
    main()
