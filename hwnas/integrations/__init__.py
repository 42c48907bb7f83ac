"""Plug a fitted predictor into an existing trainer: no device in the loop.

``LatencyPenalty`` gives latency(z) and, for differentiable or sampling-based search, the
expected latency fixed + sum_d sum_c p[d, c] C[d, c] of architecture probabilities, on numpy
arrays or nnabla Variables (so it back-propagates into architecture parameters), with
scale-free loss forms (multiplicative, log and additive in E[lat] / ref) and the reward of
NNabla NAS's ProxylessNAS searcher.
``BudgetConstraint`` is that penalty with its weight set by dual ascent, so that the expected
latency (or a quantile of sampled latencies) lands on a budget; ``derive_z`` returns the most
likely z within the budget (and memory budgets), exactly. All three take torch tensors too, and
``ExpectedLatency`` is the cost matrix as a ``torch.nn.Module`` whose forward gives the expected
latency of architecture logits or probabilities (torch is loaded on its first use only).
``hwnas.integrations.nnabla_nas.HwnasLatencyEstimator`` (and ``HwnasLatencyGraphEstimator``) are
NNabla NAS estimators backed by a fitted predictor; ``python -m hwnas.integrations.nnabla_nas``
runs its command line with them registered.
"""

from typing import TYPE_CHECKING, Any

from hwnas.integrations._constraint import BudgetConstraint
from hwnas.integrations._derive import Derived, derive_z, log_probs
from hwnas.integrations._penalty import LatencyPenalty

if TYPE_CHECKING:
    from hwnas.integrations._torch import ExpectedLatency


def __getattr__(name: str) -> Any:
    """``ExpectedLatency`` imports torch on first use only (or says what to install)."""
    if name != "ExpectedLatency":
        raise AttributeError(f"module 'hwnas.integrations' has no attribute {name!r}")
    from hwnas.integrations._torch import ExpectedLatency
    return ExpectedLatency


__all__ = ["BudgetConstraint", "Derived", "ExpectedLatency", "LatencyPenalty", "derive_z",
           "log_probs"]
