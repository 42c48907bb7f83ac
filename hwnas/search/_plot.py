"""The search result as a picture: latency against objective."""

from __future__ import annotations

from hwnas._files import save_figure
from hwnas._imports import pyplot


def plot_search(result, path: str) -> None:
    """Every trial, the budget line, and the reported architectures (the front in pareto
    mode), latency against objective."""
    plt = pyplot("--plot")

    fig, ax = plt.subplots(figsize=(6, 4.5))
    if result.study is not None:
        trials = [t for t in result.study.trials if "objective" in t.user_attrs]
        ax.scatter([t.user_attrs["predicted_latency_ms"] for t in trials],
                   [t.user_attrs["objective"] for t in trials], s=6, color="0.7",
                   label=f"{len(trials)} trials")
    best = result.best
    ax.plot([c.predicted_latency_ms for c in best], [c.objective for c in best], "o",
            color="C3", ms=5, label="front" if result.mode == "pareto" else "reported")
    ax.axvline(result.budget_ms, color="C0", ls="--", lw=1, label=f"budget {result.budget_ms:g} ms")
    ax.set(xlabel="predicted latency (ms)", ylabel=result.objective,
           title=f"{result.space}: {result.mode} mode, {result.sampler} sampler")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)  # atomically: a failure leaves an earlier plot
    plt.close(fig)
