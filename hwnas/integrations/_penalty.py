"""LatencyPenalty: predicted latency as a loss term or a reward."""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from hwnas.predictors import Predictor
from hwnas.spaces import SearchSpace


def _is_nnabla(x: Any) -> bool:
    return type(x).__module__.startswith("nnabla")


class LatencyPenalty:
    """Latency of a space's architectures from a fitted additive predictor.

    ``C`` (decisions x choices, 0 where a decision has fewer choices) and ``fixed`` are such
    that latency(z) = fixed + sum_d C[d, z_d].

    Example:
        >>> penalty = LatencyPenalty(space, predictor)
        >>> e_lat = penalty.expected_latency(F.softmax(alpha, axis=1))   # nnabla Variable
        >>> loss = penalty.proxyless_loss(ce, e_lat, ref_ms=5.0, beta=0.6)
    """

    def __init__(self, space: SearchSpace, predictor: Predictor):
        self.space = space
        self.predictor = predictor
        self.fixed, C = predictor.cost_matrix(space)
        self.mask = ~np.isnan(C)
        self.C = np.where(self.mask, C, 0.0)

    def latency(self, z: Sequence[int]) -> float:
        """Predicted latency of one z."""
        return float(self.space.evaluate_z(z, self.fixed, self.C)[0])

    def expected_latency(self, probs):
        """fixed + sum_d sum_c probs[d, c] C[d, c]; probs is (D, K) (entries beyond a
        decision's choices must be 0), a numpy array or an nnabla Variable (differentiable)."""
        if _is_nnabla(probs):
            import nnabla as nn
            import nnabla.functions as F
            cost = nn.Variable.from_numpy_array(self.C.astype(np.float32))
            return F.sum(probs * cost) + float(self.fixed)
        probs = np.asarray(probs, dtype=float)
        if probs.shape != self.C.shape:
            raise ValueError(f"probs must have shape {self.C.shape} (decisions x choices), "
                             f"got {probs.shape}")
        return float(self.fixed + (probs * self.C).sum())

    @staticmethod
    def proxyless_loss(ce, expected_latency_ms, ref_ms: float, beta: float = 0.6):
        """ProxylessNAS / FBNet multiplicative form: CE * (log E[lat] / log ref)^beta."""
        if _is_nnabla(expected_latency_ms):
            import nnabla.functions as F
            return ce * F.pow_scalar(F.log(expected_latency_ms) / math.log(ref_ms), beta)
        return ce * (np.log(expected_latency_ms) / math.log(ref_ms)) ** beta

    @staticmethod
    def additive_loss(ce, expected_latency_ms, ref_ms: float, lam: float = 0.1):
        """Additive form: CE + lambda * (E[lat] - ref) / ref."""
        return ce + lam * (expected_latency_ms - ref_ms) / ref_ms

    @staticmethod
    def reward(accuracy: float, latency_ms: float, bound_ms: float, weight: float = 0.1) -> float:
        """The REINFORCE reward of NNabla NAS's ProxylessNAS searcher:
        acc * min(1, bound / lat)^weight."""
        return accuracy * min(1.0, bound_ms / latency_ms) ** weight
