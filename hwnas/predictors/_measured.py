"""The measured latency of each z, looked up: exact wherever a network table covers the space
(``nb201`` on a shipped device: all 15,625 cells)."""

from __future__ import annotations

from typing import Any

import numpy as np

from hwnas.errors import InputError, UnmeasuredError
from hwnas.predictors._base import NotAdditiveError
from hwnas.predictors._network import _SpacePredictor
from hwnas.spaces import SearchSpace


class MeasuredPredictor(_SpacePredictor):
    """latency(z) = the measured latency of z in its network table; nothing is modelled, so
    it is exact and not additive (the search evaluates it per z; ``--sampler exact``
    enumerates the space where it is small). A z the table lacks is an UnmeasuredError, and
    a z given twice to ``fit`` an InputError.

    Args:
        target: the table column ``fit_table`` fits (latency_ms, or e.g. energy_mj).
        space: the space of the z that ``fit(X, y)`` and ``predict(X)`` take: a name, a
            space file or a SearchSpace.

    Example:
        >>> from hwnas.devices import load_device
        >>> p = MeasuredPredictor().fit_table(load_device("pixel3", "nb201"), "nb201")
        >>> round(float(p.predict([[3, 3, 3, 3, 3, 3]])[0]), 3)
        32.993
    """

    kind = "measured"

    def __init__(self, target: str = "latency_ms", *,
                 space: str | SearchSpace | None = None):
        self.target = target
        self.space = space

    def _fit_networks(self, space: SearchSpace, Z: np.ndarray, y: np.ndarray,
                      where: str) -> None:
        self.space_signature_ = space.signature
        self._fit_rows(Z, y)
        if len(self.row_) < len(Z):  # which of two measurements to look up is no choice
            rows, counts = np.unique(Z, axis=0, return_counts=True)
            twice = rows[counts > 1][0]
            raise InputError(f"{where}: z = {'-'.join(map(str, twice))} appears twice: the "
                             f"measured predictor looks up one latency per network")

    def _fit_rows(self, Z: np.ndarray, y: np.ndarray) -> None:
        self.z_, self.y_ = Z, y
        self.row_ = {tuple(z): i for i, z in enumerate(Z.tolist())}

    def covers(self, space: SearchSpace) -> bool:
        """Whether every z of ``space`` was measured."""
        self._check_space(space)
        return len(self.row_) == space.size

    def cost_matrix(self, space: SearchSpace):
        raise NotAdditiveError("the measured predictor looks each z up: it is not additive "
                               "over decisions (use predict_z)")

    def cost_tensor(self, space: SearchSpace):
        raise NotAdditiveError("the measured predictor looks each z up: it is not additive "
                               "within slices either (use predict_z)")

    def predict_z(self, space: SearchSpace, z) -> np.ndarray:
        self._check_space(space)
        Z = space.check_z(z)
        rows = [self.row_.get(row) for row in map(tuple, Z.tolist())]
        if None in rows:
            missing = Z[rows.index(None)]
            raise UnmeasuredError(f"the measured predictor's table has no network z = "
                                  f"{'-'.join(map(str, missing))}: it predicts only measured "
                                  f"networks")
        return self.y_[np.asarray(rows, dtype=int)]

    def predict_architecture(self, arch) -> float:
        row = self.row_.get(tuple(self._arch_z(arch)[0].tolist()))
        if row is None:
            raise UnmeasuredError(f"the measured predictor's table has no network z = "
                                  f"{'-'.join(map(str, arch.z))}")
        return float(self.y_[row])

    def _state(self) -> dict[str, Any]:
        return {**self._space_state(), "z": self.z_.tolist(), "y": self.y_.tolist()}

    @classmethod
    def _from_state(cls, state: dict[str, Any]) -> MeasuredPredictor:
        predictor = cls()
        predictor._load_space_state(state)
        Z, y = np.asarray(state["z"], dtype=np.int64), np.asarray(state["y"], dtype=float)
        if Z.ndim != 2 or y.shape != (len(Z),) or not (y > 0).all():
            raise ValueError(f"z must be rows of choice indices and y one latency > 0 per "
                             f"row, got shapes {Z.shape} and {y.shape}")
        predictor._fit_rows(Z, y)
        return predictor
