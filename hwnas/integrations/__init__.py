"""Plug a fitted predictor into an existing trainer: no device in the loop.

``LatencyPenalty`` gives latency(z) and, for differentiable or sampling-based search, the
expected latency fixed + sum_d sum_c p[d, c] C[d, c] of architecture probabilities, on numpy
arrays or nnabla Variables (so it back-propagates into architecture parameters), with the
loss and reward forms of ProxylessNAS, FBNet and NNabla NAS.
``hwnas.integrations.nnabla_nas.PredictorEstimator`` stands in for NNabla NAS's estimators.
"""

from hwnas.integrations._penalty import LatencyPenalty

__all__ = ["LatencyPenalty"]
