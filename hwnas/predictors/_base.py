"""The Predictor interface: fit on measurement tables, predict milliseconds."""

from __future__ import annotations

import json
import os
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar, Dict, Sequence

import numpy as np

from hwnas.layers import Layer

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

    from hwnas.spaces import Architecture, SearchSpace

FORMAT = "hwnas.predictor"
FORMAT_VERSION = 1


class NotFittedError(RuntimeError):
    """A predictor was used before ``fit``."""


class Predictor(ABC):
    """Predicts latency in milliseconds for layers, architectures and batches of z.

    scikit-learn style: ``__init__`` only stores its arguments, ``fit`` returns self, and
    what was learned ends in ``_``. ``save``/``load`` use JSON, never pickles.
    """

    kind: ClassVar[str]
    _registry: ClassVar[Dict[str, type]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        Predictor._registry[cls.kind] = cls

    @abstractmethod
    def fit(self, table) -> "Predictor":
        """Learn from a measurement table; returns self."""

    @abstractmethod
    def predict(self, layers: Sequence[Layer]) -> np.ndarray:
        """Latency in ms of each layer."""

    @abstractmethod
    def _state(self) -> Dict[str, Any]:
        """Everything needed to rebuild the fitted predictor, as JSON-able values."""

    @classmethod
    @abstractmethod
    def _from_state(cls, state: Dict[str, Any]) -> "Predictor":
        """Rebuild a fitted predictor from ``_state()``."""

    def _check_fitted(self) -> None:
        if not hasattr(self, "fingerprint_"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet: call fit(table) "
                                 f"or load a saved predictor first")

    def predict_architecture(self, arch: Architecture) -> float:
        """Latency in ms of a whole architecture: the sum of its layers."""
        return float(np.sum(self.predict(list(arch.layers))))

    def cost_matrix(self, space: SearchSpace) -> tuple[float, np.ndarray]:
        """``(fixed, C)`` so that latency(z) = fixed + sum_d C[d, z_d]."""
        return space.cost_matrix(self.predict)

    def predict_z(self, space: SearchSpace, z: ArrayLike) -> np.ndarray:
        """Latency in ms of each z (shape (N, D) or (D,)), vectorised over z."""
        fixed, C = self.cost_matrix(space)
        return space.evaluate_z(z, fixed, C)

    def save(self, path: str | os.PathLike) -> None:
        self._check_fitted()
        doc = {"format": FORMAT, "version": FORMAT_VERSION, "kind": self.kind,
               "fingerprint": self.fingerprint_.as_row(), "state": self._state()}
        with open(path, "w") as f:
            json.dump(doc, f, indent=1)
            f.write("\n")


def load_predictor(path: str | os.PathLike) -> Predictor:
    """Load a predictor saved with ``save``; raise ValueError naming the file if it is not one."""
    from hwnas.tables import Fingerprint

    path = os.fspath(path)
    try:
        with open(path) as f:
            doc = json.load(f)
    except OSError as e:
        raise ValueError(f"{path}: cannot read the predictor: {e.strerror}") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not a predictor file (invalid JSON: {e})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ValueError(f"{path}: not a predictor file (no \"format\": \"{FORMAT}\")")
    if doc.get("version") != FORMAT_VERSION:
        raise ValueError(f"{path}: predictor format version {doc.get('version')!r} is not "
                         f"supported (this hwnas reads version {FORMAT_VERSION})")
    cls = Predictor._registry.get(doc.get("kind"))
    if cls is None:
        raise ValueError(f"{path}: unknown predictor kind {doc.get('kind')!r}: expected one of "
                         f"{sorted(Predictor._registry)}")
    try:
        fp = doc["fingerprint"]
        fingerprint = Fingerprint(**{**fp, "threads": int(fp["threads"]),
                                     "batch": int(fp["batch"])})
        predictor = cls._from_state(doc["state"])
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{path}: corrupt {doc['kind']} predictor: {e!r}") from None
    predictor.fingerprint_ = fingerprint
    return predictor
