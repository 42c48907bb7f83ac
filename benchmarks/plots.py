"""The plots of the documentation's benchmark pages, drawn from benchmarks/results/.

``PLOTS`` maps a section of benchmarks/readme.py to its caption and a function that draws it
from that section's results (a ``readme.Result``; for ``simulated``, the list of them) into a
matplotlib figure. benchmarks/readme.py links each plot from its page; the docs build
(docs/hooks/benchmarks.py) draws them as SVG files. Nothing here is measured: it only reads.
"""

from __future__ import annotations

import io
import math
from typing import Any, Callable

Figure = Any  # matplotlib.figure.Figure; matplotlib is imported only when a plot is drawn


def _figure(columns: int = 1, width: float = 7.5, height: float = 3.6):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, columns, figsize=(width, height), squeeze=False)
    return fig, list(axes[0])


def _bars(ax, positions: list[float], values: list, size: float, label: str,
          horizontal: bool = False) -> None:
    """Bars of ``values`` at ``positions``; a value that is None (a result not measured) draws
    no bar and says "not measured" there: a missing result is never a bar of 0."""
    heights = [math.nan if v is None else v for v in values]
    if horizontal:
        ax.barh(positions, heights, size, label=label)
    else:
        ax.bar(positions, heights, size, label=label)
    for position, value in zip(positions, values):
        if value is None:  # on the axis's low edge, whatever its limits
            if horizontal:
                ax.text(0.01, position, "not measured", transform=ax.get_yaxis_transform(),
                        va="center", fontsize=5)
            else:
                ax.text(position, 0.01, "not measured", transform=ax.get_xaxis_transform(),
                        rotation=90, ha="center", va="bottom", fontsize=5)


def accuracy(r) -> Figure:
    fig, (within, mape) = _figure(2)
    backends = list(dict.fromkeys(row["backend"] for row in r.results))
    predictors = list(dict.fromkeys(row["predictor"] for row in r.results))
    width = 0.8 / len(backends)
    for i, backend in enumerate(backends):
        rows = {row["predictor"]: row for row in r.results if row["backend"] == backend}
        xs = [k + i * width for k in range(len(predictors))]
        for ax, column in ((within, "within_10_pct"), (mape, "mape_pct")):
            _bars(ax, xs, [rows[p][column] if p in rows else None for p in predictors], width,
                  backend)
    for ax, label in ((within, "networks within +-10 % (%)"), (mape, "MAPE (%)")):
        ax.set_xticks([k + 0.4 - width / 2 for k in range(len(predictors))])
        ax.set_xticklabels(predictors, rotation=30, ha="right", fontsize=8)
        ax.set_ylabel(label)
    within.legend(fontsize=8)
    return fig


def few_shot(r) -> Figure:
    fig, (ax,) = _figure()
    rows = [row for row in r.results if row["train"] == "designed" and row["n"] == 10]
    groups = list(dict.fromkeys(f"{row['backend']}\n{row['space']}" for row in rows))
    kinds = list(dict.fromkeys(row["predictor"] for row in rows))
    width = 0.8 / len(kinds)
    for i, kind in enumerate(kinds):
        rho = {f"{row['backend']}\n{row['space']}": row["spearman_rho"] for row in rows
               if row["predictor"] == kind}
        _bars(ax, [k + i * width for k in range(len(groups))], [rho.get(g) for g in groups],
              width, kind)
    ax.set_xticks([k + 0.4 - width / 2 for k in range(len(groups))])
    ax.set_xticklabels(groups, fontsize=8)
    ax.set_ylabel("Spearman rho, 10 designed networks")
    ax.set_ylim(min(0, ax.get_ylim()[0]), 1.05)
    ax.legend(fontsize=8)
    return fig


def throughput(r) -> Figure:
    fig, (ax,) = _figure(height=3.0)
    rows = r.results["rows"]
    ax.barh(list(rows), [v["z_per_s"] for v in rows.values()])
    ax.set_xscale("log")
    ax.set_xlabel("architectures predicted per second (predict_z)")
    return fig


def search_quality(r) -> Figure:
    fig, (ax,) = _figure()
    res = r.results
    for name, row in res["mobilenet"]["samplers"].items():
        ax.plot(res["checkpoints"], [100 * b for b in row["best_over_optimum"]], marker="o",
                linestyle="-" if name.startswith("feasible") else "--", label=name)
    ax.set_xscale("log")
    ax.set_xlabel("trials")
    ax.set_ylabel("best feasible / exact optimum (%)")
    ax.legend(fontsize=7)
    return fig


def repeatability(r) -> Figure:
    fig, (ax,) = _figure()
    for backend in sorted({row["backend"] for row in r.results["results"]}):
        rows = [row for row in r.results["results"] if row["backend"] == backend
                and row["statistic"] == r.results.get("default")]
        ax.scatter([row["seconds_per_network"] for row in rows],
                   [row["tau_across"] for row in rows], label=backend)
    ax.set_xlabel("seconds per network (protocol)")
    ax.set_ylabel("Kendall tau between two processes")
    ax.legend(fontsize=8)
    return fig


def robustness(r) -> Figure:
    fig, (seconds, over) = _figure(2)
    conditions = r.results["conditions"]
    for i, c in enumerate(conditions.values()):
        s = c["summary"]
        seconds.scatter([i] * len(s["seconds"]), s["seconds"])
        over.bar(i, s["true_over_budget_max"] or 0)
    over.axhline(1.0, color="black", linewidth=0.8)
    for ax, label in ((seconds, "seconds per run"), (over, "re-timed / budget (max)")):
        ax.set_xticks(range(len(conditions)))
        ax.set_xticklabels(list(conditions), fontsize=8)
        ax.set_ylabel(label)
    return fig


def simulated(results) -> Figure:
    fig, (ax,) = _figure()
    labels, values = [], []
    for r in results:
        res = r.results
        labels.append(f"{res['context']}\n{res['sampler']}")
        values.append([100 * rec["objective"] / rec["optimum"] for rec in res["records"]
                       if rec.get("optimum")])
    ax.boxplot(values)
    ax.set_xticks(range(1, len(labels) + 1))
    ax.set_xticklabels(labels, fontsize=8)
    ax.set_ylabel("objective / true optimum (%), cold runs")
    return fig


def hard_budget(r) -> Figure:
    fig, (lat, hist) = _figure(2)
    runs = r.results["runs"]
    methods = list(dict.fromkeys(row["method"] for row in runs))
    shares = list(dict.fromkeys(row["share"] for row in runs))
    width = 0.8 / len(methods)
    for i, method in enumerate(methods):
        ratio = {row["share"]: row["measured_latency_ms"] / row["budget_ms"] for row in runs
                 if row["method"] == method}
        lat.bar([k + i * width for k in range(len(shares))], [ratio[s] for s in shares],
                width, label=method)
    lat.axhline(1.0, color="black", linewidth=0.8)
    lat.set_xticks([k + 0.4 - width / 2 for k in range(len(shares))])
    lat.set_xticklabels([f"{s:.0%} budget" for s in shares], fontsize=8)
    lat.set_ylabel("derived network, measured / budget")
    lat.legend(fontsize=7)
    for row in runs:
        if row["method"] == "adaptive":
            hist.plot([h["epoch"] for h in row["history"]],
                      [h["expected_latency_ms"] / row["budget_ms"] for h in row["history"]],
                      marker="o", label=f"{row['share']:.0%} budget")
    hist.set_xlabel("epoch (adaptive)")
    hist.set_ylabel("E[latency] / budget")
    hist.legend(fontsize=7)
    return fig


def transfer(r) -> Figure:
    fig, axes = _figure(2, width=9, height=4.2)
    for ax, space in zip(axes, ("nb201", "fbnet")):
        rows = [row for row in r.results["devices"] if row["space"] == space
                and row["networks"] == 10]
        ax.barh([row["device"] for row in rows],
                [row["transfer_design"]["spearman"] for row in rows], label="transfer")
        ax.scatter([row["ceiling_additive"] for row in rows], range(len(rows)), color="black",
                   marker="|", s=80, label="additive ceiling", zorder=3)
        ax.set_title(f"{space}, 10 designed networks (|: additive ceiling)", fontsize=9)
        ax.set_xlabel("Spearman rho of transfer")
        ax.tick_params(axis="y", labelsize=6)
        ax.set_xlim(0.5, 1.0)
    return fig


def devices(r) -> Figure:
    fig, (ax,) = _figure(height=4.6)
    kinds = list(dict.fromkeys(row["predictor"] for row in r.results))
    names = list(dict.fromkeys(row["device"] for row in r.results))
    height = 0.8 / len(kinds)
    for i, kind in enumerate(kinds):
        rho = {row["device"]: row["spearman_rho"] for row in r.results
               if row["predictor"] == kind}
        _bars(ax, [k + i * height for k in range(len(names))], [rho.get(n) for n in names],
              height, kind, horizontal=True)
    ax.set_yticks([k + 0.4 - height / 2 for k in range(len(names))])
    ax.set_yticklabels(names, fontsize=6)
    ax.set_xlabel("Spearman rho on 1,000 held-out networks")
    ax.set_xlim(0.5, 1.0)
    ax.legend(fontsize=7, loc="lower left")
    return fig


#: section -> (caption, draw)
PLOTS: dict[str, tuple[str, Callable[[Any], Figure]]] = {
    "accuracy": ("Share within 10 % and MAPE per predictor and backend", accuracy),
    "few_shot": ("Spearman rho from 10 designed networks, per predictor kind", few_shot),
    "throughput": ("Predictions per second, per predictor kind", throughput),
    "search_quality": ("Best feasible objective against trials, per sampler (mobilenet)",
                       search_quality),
    "repeatability": ("Agreement between two processes against the time each protocol takes",
                      repeatability),
    "robustness": ("The main command: seconds per run and the re-timed answer over the budget",
                   robustness),
    "simulated": ("Objective reached over the true optimum, per noise and sampler", simulated),
    "hard_budget": ("Derived networks against their budgets; E[latency] epoch by epoch",
                    hard_budget),
    "transfer": ("Spearman of transfer per held-out device, beside the additive ceiling",
                 transfer),
    "devices": ("Spearman per shipped fbnet device and predictor", devices),
}


def svg(fig: Figure) -> str:
    """The figure as SVG text, the same bytes for the same figure (no date, fixed ids)."""
    import matplotlib
    import matplotlib.pyplot as plt
    matplotlib.rcParams["svg.hashsalt"] = "hwnas"
    out = io.StringIO()
    fig.tight_layout()
    fig.savefig(out, format="svg", metadata={"Date": None})
    plt.close(fig)
    return out.getvalue()
