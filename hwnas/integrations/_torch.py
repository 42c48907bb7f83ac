"""PyTorch: a fitted predictor's cost matrix as a ``torch.nn.Module`` whose forward gives the
expected latency of architecture logits or probabilities, differentiable.

Loaded on first use of ``hwnas.integrations.ExpectedLatency`` (torch is never imported by
``import hwnas``). ``BudgetConstraint`` and ``derive_z`` take torch tensors as they are.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from hwnas._imports import require
from hwnas.errors import InputError
from hwnas.integrations._penalty import LatencyPenalty
from hwnas.predictors import Predictor
from hwnas.spaces import SearchSpace

if TYPE_CHECKING:
    import torch
else:  # a missing torch says what to install
    torch = require("torch", "hwnas.integrations.ExpectedLatency")


class ExpectedLatency(torch.nn.Module):
    """E[lat] = fixed + sum_d sum_c p[d, c] C[d, c] of a space's architecture distribution, as
    a module: drop it into a model and add its output to the loss (or give it to
    ``BudgetConstraint.loss``).

    ``C`` (decisions x choices) and ``fixed`` come from an additive predictor (as for
    ``LatencyPenalty``; a choice it cannot price is an error, never a 0). They are buffers, so
    they follow ``.to(device)`` and ``.to(dtype)``; they are not persistent (derived from the
    predictor, not learned: a checkpoint does not carry them).

    Args:
        space, predictor: the searched space and a fitted predictor with a cost matrix.
        dtype: the buffers' dtype (default: torch's default, float32).

    Example:
        >>> latency = ExpectedLatency(space, predictor)  # doctest: +SKIP
        >>> alpha = torch.nn.Parameter(torch.zeros(latency.cost.shape))  # doctest: +SKIP
        >>> e_lat = latency(alpha)  # softmax over each decision's choices  # doctest: +SKIP
        >>> e_lat.backward()  # d E[lat] / d alpha  # doctest: +SKIP
    """

    cost: Any
    fixed: Any
    valid: Any

    def __init__(self, space: SearchSpace, predictor: Predictor, *, dtype: Any = None):
        super().__init__()
        self._buffers_of(LatencyPenalty(space, predictor), dtype)

    @classmethod
    def _of_penalty(cls, penalty: LatencyPenalty, *, dtype: Any = None) -> ExpectedLatency:
        """The module of a LatencyPenalty's cost matrix (shared, not computed again)."""
        module = cls.__new__(cls)
        torch.nn.Module.__init__(module)
        module._buffers_of(penalty, dtype)
        return module

    def _buffers_of(self, penalty: LatencyPenalty, dtype: Any) -> None:
        self.penalty = penalty
        self.space = penalty.space
        dtype = dtype or torch.get_default_dtype()
        self.register_buffer("cost", torch.as_tensor(penalty.C, dtype=dtype), persistent=False)
        self.register_buffer("fixed", torch.tensor(float(penalty.fixed), dtype=dtype),
                             persistent=False)
        self.register_buffer("valid", torch.as_tensor(penalty.mask), persistent=False)

    def forward(self, scores: Any, logits: bool = True) -> Any:
        """The expected latency (ms) of ``scores``: (D, K), or (N, D, K) for N expected
        latencies, or a sequence of one 1-D tensor per decision (a ``ParameterList``).

        Args:
            scores: architecture logits (``logits=True``: softmax over each decision's
                choices; entries beyond them are ignored) or probabilities (entries beyond a
                decision's choices must be 0).
            logits: whether ``scores`` are logits or probabilities.
        """
        scores = self._matrix(scores, logits)
        if tuple(scores.shape[-2:]) != tuple(self.cost.shape) or scores.dim() not in (2, 3):
            raise InputError(f"scores must have shape {tuple(self.cost.shape)} (decisions x "
                             f"choices) or (N, {', '.join(map(str, self.cost.shape))}), got "
                             f"{tuple(scores.shape)}")
        probs = self.probs(scores) if logits else scores
        return (probs * self.cost).sum(dim=(-2, -1)) + self.fixed

    def probs(self, logits: Any) -> Any:
        """Softmax over each decision's choices; 0 beyond them."""
        return torch.softmax(logits.masked_fill(~self.valid, float("-inf")), dim=-1)

    def latency(self, z: Sequence[int]) -> float:
        """Predicted latency of one z."""
        return self.penalty.latency(z)

    def _matrix(self, scores: Any, logits: bool) -> Any:
        """(D, K) from a sequence of one row per decision (padded); a tensor as it is. Anything
        but floating-point tensors is refused here, in one line, rather than deep in torch."""
        rows = [scores] if isinstance(scores, torch.Tensor) else \
            list(scores) if isinstance(scores, (Sequence, torch.nn.ParameterList)) else [scores]
        bad = [r for r in rows if not (isinstance(r, torch.Tensor) and r.is_floating_point())]
        if bad:
            got = f"a {bad[0].dtype} tensor" if isinstance(bad[0], torch.Tensor) else \
                f"{type(bad[0]).__module__}.{type(bad[0]).__qualname__}"
            raise InputError(f"scores must be a floating-point torch tensor, or a sequence of "
                             f"one per decision, got {got} (torch.as_tensor(x, "
                             f"dtype=torch.float32) converts numbers)")
        if isinstance(scores, torch.Tensor):
            return scores
        n = self.space.n_choices
        if len(rows) != len(n) or any(r.dim() != 1 or len(r) != k for r, k in zip(rows, n)):
            raise InputError(f"scores must be one 1-D tensor per decision with its choices "
                             f"({len(n)} decisions: {list(n)}), got "
                             f"{[tuple(r.shape) for r in rows]}")
        K = self.cost.shape[1]
        fill = float("-inf") if logits else 0.0
        return torch.stack([torch.nn.functional.pad(r, (0, K - len(r)), value=fill)
                            for r in rows])
