"""LatencyPenalty: predicted latency as a loss term or a reward."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from hwnas._checks import positive
from hwnas.errors import InputError
from hwnas.predictors import Predictor
from hwnas.spaces import SearchSpace


def _is_nnabla(x: Any) -> bool:
    return type(x).__module__.startswith("nnabla")


def _is_torch(x: Any) -> bool:
    """A torch tensor (or parameter, or a module such as ParameterList)."""
    return type(x).__module__.split(".")[0] == "torch"


def to_numpy(x: Any) -> Any:
    """The numbers of an nnabla Variable or a torch tensor (detached, on the host) as a numpy
    array; anything else as it is."""
    if _is_nnabla(x):
        return x.d
    if _is_torch(x) and hasattr(x, "detach"):
        return x.detach().cpu().double().numpy()
    return x


def _log(x: Any) -> Any:
    """log of a torch tensor (differentiable) or of numbers."""
    if _is_torch(x):
        import torch
        return torch.log(x)
    return np.log(x)


def _positive(name: str, value: Any, allow_zero: bool = False) -> float:
    """A finite number > 0 (>= 0 with allow_zero) from anything float() reads, else
    InputError naming the argument (hwnas._checks.positive)."""
    return positive(name, value, allow_zero=allow_zero, convert=True)


def _latency_ratio(expected_latency_ms, ref_ms: float):
    """E[lat] / ref: an nnabla Variable as is, a torch tensor (differentiable; checked to be
    > 0 on the CPU only) or a number checked to be > 0."""
    if _is_nnabla(expected_latency_ms):
        return expected_latency_ms / ref_ms
    if _is_torch(expected_latency_ms):
        latency = expected_latency_ms.detach()
        # reading a GPU tensor's values on the host waits for the GPU, in every training step
        if latency.device.type == "cpu" and \
                not bool((latency.isfinite() & (latency > 0)).all()):
            raise InputError(f"expected latency must be finite and > 0 ms, got {latency}")
        return expected_latency_ms / ref_ms
    latency = np.asarray(expected_latency_ms, dtype=float)
    if not np.all(np.isfinite(latency) & (latency > 0)):
        raise InputError(f"expected latency must be finite and > 0 ms, got {latency}")
    return latency / ref_ms


class LatencyPenalty:
    """Latency of a space's architectures from a fitted additive predictor.

    ``C`` (decisions x choices, 0 where a decision has fewer choices) and ``fixed`` are such
    that latency(z) = fixed + sum_d C[d, z_d]. The loss forms depend on latency only through
    E[lat] / ref, so they behave alike in any unit and at any scale (sub-millisecond
    references included), and each rises with latency for every ref > 0.

    Example:
        >>> penalty = LatencyPenalty(space, predictor)  # doctest: +SKIP
        >>> e_lat = penalty.expected_latency(F.softmax(alpha, axis=1))  # doctest: +SKIP
        >>> loss = penalty.multiplicative_loss(ce, e_lat, ref_ms=5.0, beta=0.6)  # doctest: +SKIP
    """

    def __init__(self, space: SearchSpace, predictor: Predictor):
        self.space = space
        self.predictor = predictor
        self.fixed, C = predictor.cost_matrix(space)
        self.mask = np.arange(C.shape[1])[None, :] < np.asarray(space.n_choices)[:, None]
        if np.isnan(C[self.mask]).any():  # unknown is not free: never a 0 in the loss
            d, c = np.argwhere(np.isnan(C) & self.mask)[0]
            raise InputError(f"the {predictor.kind} predictor cannot price choice "
                             f"{space.decisions[d].choices[c]!r} of decision "
                             f"{space.decisions[d].name!r} (and maybe others): measure networks "
                             f"that use every choice (hwnas.profile --networks N --design)")
        self.C = np.where(self.mask, C, 0.0)
        self._torch_module: Any = None  # ExpectedLatency of this C, made on first use

    def latency(self, z: Sequence[int]) -> float:
        """Predicted latency of one z."""
        return float(self.space.evaluate_z(z, self.fixed, self.C)[0])

    def expected_latency(self, probs):
        """fixed + sum_d sum_c probs[d, c] C[d, c]; probs is (D, K) (entries beyond a
        decision's choices must be 0), a numpy array, an nnabla Variable or a torch tensor
        (differentiable; (N, D, K) gives N expected latencies)."""
        if _is_torch(probs):
            return self._expected_latency_module(probs)(probs, logits=False)
        if _is_nnabla(probs):
            import nnabla as nn
            import nnabla.functions as F
            cost = nn.Variable.from_numpy_array(self.C.astype(np.float32))
            return F.sum(probs * cost) + float(self.fixed)
        probs = np.asarray(probs, dtype=float)
        if probs.shape != self.C.shape:
            raise InputError(f"probs must have shape {self.C.shape} (decisions x choices), "
                             f"got {probs.shape}")
        return float(self.fixed + (probs * self.C).sum())

    def _expected_latency_module(self, probs):
        """``ExpectedLatency`` on this cost matrix, its buffers on the device and in the dtype
        of ``probs`` (made or moved once, not every step; its forward checks ``probs``)."""
        floating = getattr(probs, "is_floating_point", lambda: False)()
        module = self._torch_module
        if module is None or (floating and module.cost.dtype != probs.dtype):
            from hwnas.integrations._torch import ExpectedLatency
            # from C itself: a cast of the float32 buffers would lose float64's digits
            module = ExpectedLatency._of_penalty(self, dtype=probs.dtype if floating else None)
            self._torch_module = module
        return module.to(probs.device) if floating else module

    @staticmethod
    def multiplicative_loss(ce, expected_latency_ms, ref_ms: float, beta: float = 0.6):
        """CE * (E[lat] / ref)^beta: the multiplicative form of ProxylessNAS, FBNet and
        MnasNet on the latency ratio (beta > 0); equals CE at E[lat] = ref."""
        ref_ms, beta = _positive("ref_ms", ref_ms), _positive("beta", beta)
        ratio = _latency_ratio(expected_latency_ms, ref_ms)
        if _is_nnabla(ratio):
            import nnabla.functions as F
            return ce * F.pow_scalar(ratio, beta)
        return ce * ratio ** beta

    @staticmethod
    def log_loss(ce, expected_latency_ms, ref_ms: float, lam: float = 0.1):
        """CE + lambda * log(E[lat] / ref) (lambda >= 0): a latency ratio of 2 costs the same
        at every scale; equals CE at E[lat] = ref."""
        ref_ms, lam = _positive("ref_ms", ref_ms), _positive("lam", lam, allow_zero=True)
        ratio = _latency_ratio(expected_latency_ms, ref_ms)
        if _is_nnabla(ratio):
            import nnabla.functions as F
            return ce + lam * F.log(ratio)
        return ce + lam * _log(ratio)

    @staticmethod
    def additive_loss(ce, expected_latency_ms, ref_ms: float, lam: float = 0.1):
        """CE + lambda * (E[lat] / ref - 1) (lambda >= 0); equals CE at E[lat] = ref."""
        ref_ms, lam = _positive("ref_ms", ref_ms), _positive("lam", lam, allow_zero=True)
        return ce + lam * (_latency_ratio(expected_latency_ms, ref_ms) - 1.0)

    @staticmethod
    def reward(accuracy: float, latency_ms: float, bound_ms: float, weight: float = 0.1) -> float:
        """The REINFORCE reward of NNabla NAS's ProxylessNAS searcher:
        acc * min(1, bound / lat)^weight (bound > 0, weight >= 0, lat > 0)."""
        bound_ms = _positive("bound_ms", bound_ms)
        weight = _positive("weight", weight, allow_zero=True)
        latency_ms = _positive("latency_ms", latency_ms)
        return accuracy * min(1.0, bound_ms / latency_ms) ** weight
