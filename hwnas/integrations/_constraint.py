"""BudgetConstraint: a latency penalty whose weight adapts so that latency lands on the budget.

A soft penalty with a fixed weight lands wherever that weight happens to balance the task
loss: the user tunes it per budget and per device. Here the weight is a Lagrange multiplier
lambda of the constraint g = L / budget - 1 <= 0, raised by dual ascent while the constrained
latency L is over the budget and lowered (never below 0) while it is under:

    lambda <- max(0, lambda + step * (L / budget - 1))

L is the expected latency E[lat] = fixed + sum_d sum_c p[d, c] C[d, c] of the architecture
distribution (differentiable search), or, with ``quantile`` q, the q-quantile of the latencies
of the architectures sampled in a step (sampling-based search: at most a share 1 - q of the
samples over the budget). At a fixed point lambda > 0 and L = budget, or lambda = 0 and L is
under the budget: the loss (or reward) need not be tuned per budget.

With ``equality`` the budget is a target (L = budget, as TF-NAS's latency loss aims): lambda
<- lambda + step * (L / budget - 1) may turn negative, pulling latency up to the budget where
the task loss alone would leave it under (in a supernet, the task loss hardly moves the
expected latency). The derived network is still within the budget by ``derive_z``.

Lambda integrates the excess, so alone it overshoots: far over the budget it grows until the
latency has fallen below it. The loss therefore uses the augmented Lagrangian (the method of
multipliers) with ``damping`` rho: the term psi(g) = (max(0, lambda + rho g)^2 - lambda^2) /
(2 rho), whose slope max(0, lambda + rho g) adds a pull proportional to the excess now (a
proportional term beside lambda's integral one); rho = 0 gives lambda g. With ``equality``,
psi(g) = lambda g + rho g^2 / 2.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from hwnas.errors import InputError
from hwnas.integrations._penalty import (
    LatencyPenalty,
    _is_nnabla,
    _is_torch,
    _latency_ratio,
    _positive,
    to_numpy,
)
from hwnas.predictors import Predictor
from hwnas.spaces import SearchSpace

#: the loss forms, each weighting the latency ratio E[lat] / budget by lambda
FORMS = ("additive", "log", "multiplicative")


class BudgetConstraint:
    """A latency budget for a training loop, with a weight lambda set by dual ascent.

    Each step: build the loss with ``loss(ce, expected_latency_ms)`` (or the reward of a
    sampled architecture with ``reward``), take the optimiser's step, then ``update`` lambda
    with the latency of that step. The loss forms, all equal to CE at lambda = 0:

    - ``additive``: CE + psi(E[lat] / budget - 1), the (augmented) Lagrangian itself;
    - ``log``: CE + psi(log(E[lat] / budget));
    - ``multiplicative``: CE * exp(psi(log(E[lat] / budget))), which is CE * (E[lat] /
      budget)^lambda at rho = 0 (ProxylessNAS / MnasNet's form with its exponent adapted).

    The reward is NNabla NAS's ProxylessNAS reward acc * min(1, budget / lat)^lambda
    (acc * (budget / lat)^lambda with ``equality``).
    On nnabla Variables the loss reads lambda from a Variable that ``update`` rewrites, so a
    graph built once follows lambda. On torch tensors ``expected_latency`` and ``loss`` return
    tensors that back-propagate (the loss reads lambda when it is called: eager PyTorch builds
    it every step), and ``update`` takes a tensor.

    Args:
        space, predictor: as for LatencyPenalty (an additive predictor), for
            ``expected_latency``; None and None where latencies come from elsewhere (NNabla
            NAS's estimators: ``update`` with the latencies of sampled networks).
        budget_ms: the latency budget (> 0 ms).
        step: the dual step size (> 0): lambda moves by step x the relative excess per update.
        quantile: None to constrain the mean of the latencies given to ``update``, or q in
            (0, 1) to constrain their q-quantile.
        damping: rho >= 0 of the augmented Lagrangian in the loss (see the module).
        equality: the budget as a target (lambda may be negative), not only a bound.

    Lambda starts at 0; ``lam`` may be set (a finite number or a one-element tensor, >= 0
    unless ``equality``), e.g. to a fixed weight that is never updated, or is restored by
    ``load_state_dict``. ``state_dict()`` holds plain numbers: save it in the model's
    checkpoint (``torch.save({"model": model.state_dict(), "constraint":
    constraint.state_dict()}, path)`` loads back with ``weights_only=True``).

    Example:
        >>> constraint = BudgetConstraint(space, predictor, budget_ms=5.0)  # doctest: +SKIP
        >>> e_lat = constraint.expected_latency(F.softmax(alpha, axis=1))  # doctest: +SKIP
        >>> loss = constraint.loss(ce, e_lat)  # doctest: +SKIP
        >>> # each step: loss.forward(); loss.backward(); solver.update(); then
        >>> constraint.update(e_lat)  # doctest: +SKIP
    """

    def __init__(self, space: SearchSpace | None, predictor: Predictor | None,
                 budget_ms: float, *, step: float = 0.05, quantile: float | None = None,
                 damping: float = 10.0, equality: bool = False):
        if (space is None) != (predictor is None):
            raise InputError("give both space and predictor (for expected latencies), or "
                             "neither (for latencies computed elsewhere)")
        self.penalty = None if space is None or predictor is None else \
            LatencyPenalty(space, predictor)
        self.budget_ms = _positive("budget_ms", budget_ms)
        self.step = _positive("step", step)
        if quantile is not None and not (isinstance(quantile, (int, float)) and
                                         0 < quantile < 1):
            raise InputError(f"quantile must be in (0, 1) or None, got {quantile!r}")
        self.quantile = quantile
        self.damping = _positive("damping", damping, allow_zero=True)
        if not isinstance(equality, bool):
            raise InputError(f"equality must be True or False, got {equality!r}")
        self.equality = equality
        self._lam_var: Any = None  # the nnabla Variable that loss graphs read lambda from
        self._lam = 0.0
        self.updates = 0
        self.last_latency_ms = math.nan

    @property
    def lam(self) -> float:
        """The weight lambda of the latency term (the Lagrange multiplier)."""
        return self._lam

    @lam.setter
    def lam(self, value: Any) -> None:
        self._lam = self._check_lam("lam", value)
        if self._lam_var is not None:  # loss graphs built earlier follow it
            self._lam_var.d = self._lam

    def expected_latency(self, probs):
        """E[lat] of architecture probabilities (decisions x choices): numpy, nnabla or torch
        (differentiable)."""
        return self._penalty().expected_latency(probs)

    def latency(self, z) -> float:
        """Predicted latency of one z."""
        return self._penalty().latency(z)

    def _penalty(self) -> LatencyPenalty:
        if self.penalty is None:
            raise InputError("this BudgetConstraint was made without a space and predictor: "
                             "it constrains latencies given to update() only")
        return self.penalty

    def constrained_latency(self, latency_ms) -> float:
        """What the budget bounds: the mean of ``latency_ms`` (one value, an array of sampled
        latencies, an nnabla Variable or a torch tensor), or its ``quantile``."""
        values = np.asarray(to_numpy(latency_ms), dtype=float).ravel()
        if values.size == 0 or not np.all(np.isfinite(values) & (values > 0)):
            raise InputError(f"latencies must be finite and > 0 ms, got {values}")
        if self.quantile is None:
            return float(values.mean())
        return float(np.quantile(values, self.quantile))

    def update(self, latency_ms) -> float:
        """One dual-ascent step, lambda <- max(0, lambda + step * (L / budget - 1)) (without
        the max with ``equality``), with L the constrained latency of ``latency_ms``; returns
        the new lambda."""
        latency = self.constrained_latency(latency_ms)
        lam = self.lam + self.step * (latency / self.budget_ms - 1.0)
        self.lam = lam if self.equality else max(0.0, lam)
        self.updates += 1
        self.last_latency_ms = latency
        return self.lam

    def loss(self, ce, expected_latency_ms, form: str = "additive"):
        """The task loss ``ce`` with the latency term weighted by lambda (see the class); on
        nnabla Variables a graph that follows later updates of lambda."""
        if form not in FORMS:
            raise InputError(f"form must be one of {', '.join(FORMS)}, got {form!r}")
        ratio = _latency_ratio(expected_latency_ms, self.budget_ms)
        rho = self.damping
        if _is_nnabla(ratio) or _is_nnabla(ce):
            import nnabla.functions as F
            lam = self._lambda_variable()
            if not _is_nnabla(ratio):  # a number beside an nnabla task loss
                import nnabla as nn
                ratio = nn.Variable.from_numpy_array(np.asarray(ratio, dtype=np.float32))
            g = ratio - 1.0 if form == "additive" else F.log(ratio)
            if self.equality or rho == 0:
                psi = lam * g + (rho / 2) * g * g
            else:
                psi = (F.relu(lam + rho * g) ** 2 - lam * lam) / (2 * rho)
            return ce * F.exp(psi) if form == "multiplicative" else ce + psi
        if _is_torch(ratio) or _is_torch(ce):
            return self._torch_loss(ce, ratio, form)
        g = ratio - 1.0 if form == "additive" else np.log(ratio)
        if self.equality or rho == 0:
            psi = self.lam * g + (rho / 2) * g * g
        else:
            psi = (np.maximum(0.0, self.lam + rho * g) ** 2 - self.lam ** 2) / (2 * rho)
        return ce * np.exp(psi) if form == "multiplicative" else ce + psi

    def _torch_loss(self, ce, ratio, form: str):
        """``loss`` on torch tensors (the same terms as on numbers)."""
        import torch
        like = ce if _is_torch(ce) else ratio
        ratio = torch.as_tensor(ratio, dtype=like.dtype, device=like.device)
        rho, lam = self.damping, self.lam
        g = ratio - 1.0 if form == "additive" else torch.log(ratio)
        if self.equality or rho == 0:
            psi = lam * g + (rho / 2) * g * g
        else:
            psi = (torch.relu(lam + rho * g) ** 2 - lam ** 2) / (2 * rho)
        return ce * torch.exp(psi) if form == "multiplicative" else ce + psi

    def reward(self, accuracy: float, latency_ms: float) -> float:
        """NNabla NAS's ProxylessNAS reward acc * min(1, budget / lat)^lambda of one sampled
        architecture (acc * (budget / lat)^lambda with ``equality``)."""
        if not self.equality:
            return LatencyPenalty.reward(accuracy, latency_ms, self.budget_ms, self.lam)
        return accuracy * (self.budget_ms / _positive("latency_ms", latency_ms)) ** self.lam

    def _check_lam(self, name: str, value: Any) -> float:
        """A finite lambda, >= 0 unless ``equality``."""
        if self.equality:
            try:
                value = float(value)
            except (TypeError, ValueError):
                raise InputError(f"{name} must be a number, got {value!r}") from None
            if not math.isfinite(value):
                raise InputError(f"{name} must be finite, got {value}")
            return value
        return _positive(name, value, allow_zero=True)

    def _lambda_variable(self):
        if self._lam_var is None:
            import nnabla as nn
            self._lam_var = nn.Variable.from_numpy_array(np.array(self.lam, dtype=np.float32))
        return self._lam_var

    def state_dict(self) -> dict[str, Any]:
        """What a resumed training needs (JSON-safe): lambda, the number of updates, the last
        constrained latency and the settings they depend on."""
        return {"lam": self.lam, "updates": self.updates,
                "last_latency_ms": None if math.isnan(self.last_latency_ms)
                else self.last_latency_ms,
                "budget_ms": self.budget_ms, "step": self.step, "quantile": self.quantile,
                "damping": self.damping, "equality": self.equality}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from ``state_dict()``: a state saved for another budget, step or quantile
        is refused (its lambda balanced another constraint)."""
        if not isinstance(state, dict) or not {"lam", "updates"} <= state.keys():
            raise InputError("state must be a dict from BudgetConstraint.state_dict() (with "
                             "'lam' and 'updates')")
        for key in ("budget_ms", "step", "quantile", "damping", "equality"):
            if key in state and state[key] != getattr(self, key):
                raise InputError(f"the state was saved with {key} = {state[key]!r}, this "
                                 f"constraint has {getattr(self, key)!r}")
        updates = state["updates"]
        if isinstance(updates, bool) or not isinstance(updates, int) or updates < 0:
            raise InputError(f"state 'updates' must be an integer >= 0, got {updates!r}")
        self.lam = self._check_lam("state 'lam'", state["lam"])
        self.updates = updates
        last = state.get("last_latency_ms")
        self.last_latency_ms = math.nan if last is None else float(last)
