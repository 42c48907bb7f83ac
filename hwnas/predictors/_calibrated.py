"""Calibration: true ~ a * predicted + b, fitted on a few measured networks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.base import clone

from hwnas._calibration import SLOPE_BOUNDS, fit_line, on_frontier
from hwnas.errors import InputError
from hwnas.layers import Layer
from hwnas.predictors._base import (
    NotAdditiveError,
    Predictor,
    check_finite,
    check_same_device,
    from_dict,
)
from hwnas.spaces import SearchSpace
from hwnas.tables import Fingerprint, NetworkTable


class CalibratedPredictor(Predictor):
    """Wraps a fitted predictor: latency(z) = a * base(z) + b, with a and b fitted on at least
    2 measured networks by ``fit_line`` (``a_``, ``b_``; ``how_`` says how): robustly, with
    ``a`` within ``slope_bounds`` and ``0 <= b <`` the least measured latency, so that no
    prediction is negative; with ``focus_ms`` (a budget), the offset is fitted on the networks
    measured near it (on those of most MACs per predicted ms, ``on_frontier``, where two are).

    It corrects what a layer sum misses (layers timed alone keep their weights in cache;
    each call has an overhead), so that a budget means true end-to-end latency. Measure the
    calibration networks in one batch, spread over the space (``hwnas.profile.calibration_z``):
    timings drift between processes, and a narrow range cannot fix a slope.

    Fitted with ``fit_table(networks, space)`` on a network table (whose device must be the
    base's unless ``allow_mixed_devices``), or ``fit(X, y)`` on z of ``space`` and their
    latencies. ``sklearn.base.clone`` keeps the fitted base (scikit-learn >= 1.3), so that
    ``cross_val_score`` cross-validates the calibration line alone.

    Args:
        base: the fitted predictor to calibrate (e.g. a lookup on a layer table).
        allow_mixed_devices: calibrate on a network table from another device than the
            base's.
        target: the table column ``fit_table`` fits (latency_ms, or e.g. energy_mj).
        slope_bounds: the range the slope a is kept within.
        focus_ms: a budget: fit the offset on the networks measured near it.
        space: the space of the z that ``fit(X, y)`` and ``predict(X)`` take: a name, a
            space file or a SearchSpace.
    """

    kind = "calibrated"
    from_networks = True

    def __init__(self, base: Predictor | None = None, allow_mixed_devices: bool = False,
                 target: str = "latency_ms",
                 slope_bounds: tuple[float, float] = SLOPE_BOUNDS,
                 focus_ms: float | None = None, *, space: str | SearchSpace | None = None):
        self.base = base
        self.allow_mixed_devices = allow_mixed_devices
        self.target = target
        self.slope_bounds = slope_bounds
        self.focus_ms = focus_ms
        self.space = space

    def __sklearn_clone__(self) -> CalibratedPredictor:
        """``sklearn.base.clone`` (scikit-learn >= 1.3) keeps the fitted base as it is: only
        the line is fitted here, so that ``cross_val_score`` cross-validates the calibration
        (a clone of the base would be unfitted)."""
        params = self.get_params(deep=False)
        base = params.pop("base")
        return type(self)(base, **{k: clone(v, safe=False) for k, v in params.items()})

    def _validate(self) -> None:
        self._check_params(allow_mixed_devices=("True or False", None))
        low, high = self.slope_bounds
        if not 0 < low <= high:
            raise InputError(f"CalibratedPredictor: slope_bounds must be 0 < low <= high, got "
                             f"{self.slope_bounds!r}")
        self._base()._check_fitted()

    def _check_table(self, networks: NetworkTable) -> None:
        check_same_device(self._base().fingerprint_, networks.fingerprint,
                          f"the calibration networks in {networks.path}",
                          self.allow_mixed_devices)

    def _fit_networks(self, space: SearchSpace, Z: np.ndarray, y: np.ndarray,
                      where: str) -> None:
        if len(Z) < 2:
            raise InputError(f"{where}: calibration needs at least 2 measured networks, "
                             f"got {len(Z)}")
        raw = self._base().predict_z(space, Z)
        frontier = None if self.focus_ms is None else on_frontier(raw, space.sum_z(
            Z, lambda ls: [ly.macs for ly in ls]))
        try:
            line = fit_line(raw, y, self.slope_bounds, self.focus_ms, frontier)
        except InputError as e:
            raise InputError(f"{where}: {e}") from None
        self.a_, self.b_, self.how_ = line.a, line.b, line.how

    def _fit_on(self, space: SearchSpace, Z: np.ndarray, y: np.ndarray, where: str,
                fingerprint: Fingerprint) -> CalibratedPredictor:
        """As every kind, but on the base's device, and fitted on the base's networks too."""
        super()._fit_on(space, Z, y, where, fingerprint)
        base = self._base()
        self.fingerprint_ = base.fingerprint_
        own = getattr(base, "fitted_networks_", None)
        if own is not None and self.fitted_networks_ is not None:
            self.fitted_networks_ = np.union1d(self.fitted_networks_, own)
        return self

    def _base(self) -> Predictor:
        """``base``, refused (InputError) if it is not a Predictor (its default is None)."""
        if not isinstance(self.base, Predictor):
            raise InputError(f"CalibratedPredictor: base must be a fitted Predictor, got "
                             f"{self.base!r}")
        return self.base

    def predict_layers(self, layers: Sequence[Layer]) -> np.ndarray:
        """Each layer scaled by a (the offset b belongs to whole networks)."""
        self._check_fitted()
        return self.a_ * self._base().predict_layers(layers)

    def cost_matrix(self, space: SearchSpace) -> tuple[float, np.ndarray]:
        self._check_fitted()
        fixed, C = self._base().cost_matrix(space)
        return self.a_ * fixed + self.b_, self.a_ * C

    def cost_tensor(self, space: SearchSpace) -> tuple[np.ndarray, np.ndarray]:
        self._check_fitted()
        fixed, C = self._base().cost_tensor(space)
        return self.a_ * fixed + self.b_, self.a_ * C

    def predict_z(self, space: SearchSpace, z) -> np.ndarray:
        self._check_fitted()
        try:  # one pass over z through the scaled cost matrix
            fixed, C = self.cost_matrix(space)
        except NotAdditiveError:
            return self.a_ * self._base().predict_z(space, z) + self.b_
        return space.evaluate_z(z, fixed, C)

    def predict_z_quantile(self, space: SearchSpace, z, q: float) -> np.ndarray:
        self._check_fitted()
        return self.a_ * self._base().predict_z_quantile(space, z, q) + self.b_

    def predict_architecture(self, arch) -> float:
        self._check_fitted()
        return self.a_ * self._base().predict_architecture(arch) + self.b_

    def _state(self) -> dict[str, Any]:
        return {"a": self.a_, "b": self.b_, "how": self.how_, "base": self._base().to_dict()}

    @classmethod
    def _from_state(cls, state: dict[str, Any]) -> CalibratedPredictor:
        predictor = cls(from_dict(state["base"], "base predictor"))
        # a <= 0 would invert the ranking, b < 0 predict negative latencies
        predictor.a_ = check_finite(state["a"], "calibration slope a", positive=True)
        predictor.b_ = check_finite(state["b"], "calibration offset b")
        if predictor.b_ < 0:
            raise InputError(f"calibration offset b: {predictor.b_} ms is negative (a "
                             f"latency offset is >= 0)")
        predictor.how_ = str(state.get("how", "a line"))
        return predictor


def uncalibrated(predictor: Predictor) -> Predictor:
    """What a calibration scales: the base of a calibrated predictor, else the predictor."""
    return predictor._base() if isinstance(predictor, CalibratedPredictor) else predictor
