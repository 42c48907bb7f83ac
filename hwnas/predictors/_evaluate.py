"""Scoring a predictor against measured networks."""

from __future__ import annotations

from typing import Any

import numpy as np

from hwnas._files import save_figure
from hwnas._imports import pyplot
from hwnas.tables import NetworkTable


def metrics(predicted: np.ndarray, measured: np.ndarray) -> dict[str, float]:
    """MAPE and RMSPE (%), the share within +-5/10/15 %, Kendall's tau, Spearman's rho."""
    from scipy.stats import kendalltau, spearmanr
    predicted, measured = np.asarray(predicted, float), np.asarray(measured, float)
    error = (predicted - measured) / measured
    out = {"n": int(len(measured)),
           "mape_pct": float(100 * np.abs(error).mean()),
           "rmspe_pct": float(100 * np.sqrt((error ** 2).mean()))}
    for pct in (5, 10, 15):
        out[f"within_{pct}_pct"] = float(100 * (np.abs(error) <= pct / 100).mean())
    rank = len(measured) > 1 and np.ptp(measured) > 0 and np.ptp(predicted) > 0
    out["kendall_tau"] = float(kendalltau(predicted, measured).statistic) if rank else np.nan
    out["spearman_rho"] = float(spearmanr(predicted, measured).statistic) if rank else np.nan
    return out


def evaluate(predictor, networks: NetworkTable, space, target: str | None = None
             ) -> dict[str, Any]:
    """Predict each network of the table and score against its measurement.

    Returns the metrics with ``predicted`` and ``measured`` arrays beside them, and
    ``fitted_overlap``: how many of the networks the predictor was fitted or calibrated on
    (scores on them are no held-out test), None where its file does not record that.
    """
    target = target or predictor.target
    measured = networks.values(target)
    Z = np.array(networks.z)
    predicted = predictor.predict_z(space, Z)
    seen = predictor.fitted_mask(space, Z)
    return {**metrics(predicted, measured), "target": target,
            "fitted_overlap": None if seen is None else int(seen.sum()),
            "predicted": predicted, "measured": measured}


def plot_predicted_vs_measured(result: dict[str, Any], path: str, title: str) -> None:
    """Scatter of predicted against measured with y = x and a +-10 % band."""
    plt = pyplot("--plot")

    measured, predicted = result["measured"], result["predicted"]
    lo, hi = min(measured.min(), predicted.min()) * 0.95, max(measured.max(),
                                                                predicted.max()) * 1.05
    fig, ax = plt.subplots(figsize=(5, 5))
    line = np.linspace(lo, hi, 2)
    ax.fill_between(line, line * 0.9, line * 1.1, color="0.9", label="+-10 %")
    ax.plot(line, line, color="0.5", lw=1, label="predicted = measured")
    ax.scatter(measured, predicted, s=14, color="C0", label=f"{result['n']} networks")
    unit = result["target"]
    ax.set(xlim=(lo, hi), ylim=(lo, hi), xlabel=f"measured {unit}",
           ylabel=f"predicted {unit}",
           title=f"{title}\nMAPE {result['mape_pct']:.1f} %, within 10 % "
                 f"{result['within_10_pct']:.0f} %, tau {result['kendall_tau']:.2f}")
    ax.legend(loc="upper left")
    fig.tight_layout()
    save_figure(fig, path)  # atomically: a failure leaves an earlier plot
    plt.close(fig)
