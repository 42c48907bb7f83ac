"""The Predictor interface: fit on measurement tables, predict milliseconds."""

from __future__ import annotations

import json
import math
import numbers
import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError as _SklearnNotFittedError

from hwnas._files import MAX_PREDICTOR_BYTES, loads_json, read_text, write_json
from hwnas.errors import HwnasError, InputError
from hwnas.layers import Layer
from hwnas.spaces import NotAdditiveError  # noqa: F401  (re-exported: part of this interface)
from hwnas.tables import Fingerprint, NetworkTable

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

    from hwnas.spaces import SearchSpace

#: what ``Predictor._check_params`` accepts for each kind of hyperparameter
_KINDS = {"a number": numbers.Real, "an integer": numbers.Integral, "a string": str,
          "True or False": bool}

FORMAT = "hwnas.predictor"
FORMAT_VERSION = 1


class NotFittedError(HwnasError, _SklearnNotFittedError):
    """A predictor was used before ``fit`` (scikit-learn's error: a ValueError and an
    AttributeError)."""


class NotSupportedError(HwnasError, NotImplementedError):
    """The predictor kind cannot do what was asked; the message says which kinds can."""


class Predictor(BaseEstimator, ABC):
    """Predicts a measured quantity (``target``, latency in ms by default) for layers,
    architectures and batches of z.

    A scikit-learn estimator: ``__init__`` only stores its arguments (``get_params``,
    ``set_params`` and ``sklearn.base.clone`` work), ``fit`` validates them and returns self,
    what was learned ends in ``_``, and using an unfitted predictor raises NotFittedError.
    ``save``/``load_predictor`` use JSON, never pickles: a file stores parameters, or
    training rows and settings that refit deterministically.

    Layer predictors (``lookup``, ``linear``, ``tree``, ``additive_features``) predict each
    layer, and a network is the sum of its layers. Network predictors (``additive``,
    ``tree_z``) predict whole architectures of the space they were fitted on.
    """

    kind: ClassVar[str]
    #: fitted from a network table (``fit(networks, space)``) rather than a layer table
    from_networks: ClassVar[bool] = False
    _registry: ClassVar[dict[str, type[Predictor]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "kind" in cls.__dict__:
            Predictor._registry[cls.kind] = cls

    @abstractmethod
    def fit(self, table, space: SearchSpace | None = None) -> Predictor:
        """Learn from a layer table, or for network predictors a network table and its space;
        returns self."""

    def predict(self, layers: Sequence[Layer]) -> np.ndarray:
        """Latency (or the target) of each layer."""
        raise NotSupportedError(f"the {self.kind} predictor predicts whole architectures "
                                  f"of its space, not layers")

    def cost_matrix(self, space: SearchSpace) -> tuple[float, np.ndarray]:
        """``(fixed, C)`` so that latency(z) = fixed + sum_d C[d, z_d]."""
        self._check_fitted()
        return space.cost_matrix(self.predict)

    def predict_z(self, space: SearchSpace, z: ArrayLike) -> np.ndarray:
        """Latency of each z (shape (N, D) or (D,)), vectorised over z (summed over each z's
        layers where the space is not additive)."""
        if not space.additive:
            self._check_fitted()
            return space.sum_z(z, self.predict)
        fixed, C = self.cost_matrix(space)
        return space.evaluate_z(z, fixed, C)

    def predict_z_quantile(self, space: SearchSpace, z: ArrayLike, q: float) -> np.ndarray:
        """The q-quantile of each z's latency, for predictors with a spread estimate."""
        raise NotSupportedError(f"the {self.kind} predictor gives no spread estimate: use "
                                  f"tree or tree_z")

    def predict_architecture(self, arch) -> float:
        """Latency of one architecture: the sum of its layers."""
        return float(np.sum(self.predict(list(arch.layers))))

    def __sklearn_is_fitted__(self) -> bool:
        """What ``sklearn.utils.validation.check_is_fitted`` asks."""
        return hasattr(self, "fingerprint_")

    def _check_fitted(self) -> None:
        if not self.__sklearn_is_fitted__():
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet: call fit() "
                                 f"or load a saved predictor first")

    def _check_params(self, **rules: tuple) -> None:
        """Validate hyperparameters at ``fit``: ``name=(kind, minimum or None)`` with kind one
        of ``_KINDS``; ``target`` is always checked. Raises InputError naming the parameter."""
        for name, (kind, minimum) in {"target": ("a string", None), **rules}.items():
            value = getattr(self, name)
            ok = isinstance(value, _KINDS[kind]) and (kind == "True or False" or
                                                      not isinstance(value, bool))
            if not ok or minimum is not None and not value >= minimum:
                bound = f" >= {minimum}" if minimum is not None else ""
                raise InputError(f"{type(self).__name__}: {name} must be {kind}{bound}, got "
                                 f"{value!r}")

    def _needs_space(self, space: SearchSpace | None, networks: NetworkTable) -> SearchSpace:
        """``space``, without which a predictor fitted from a network table cannot fit, and
        which must be the table's; recorded as ``space_`` (saved), so that a search knows it."""
        if space is None:
            raise InputError(f"the {self.kind} predictor learns from a network table and its "
                             f"space: call fit(networks, space)")
        if networks.space != space.name:
            raise InputError(f"{networks.path}: its networks are of space {networks.space!r}, "
                             f"not {space.name!r}")
        self.space_ = space.name
        return space

    def _check_space(self, space: SearchSpace) -> None:
        self._check_fitted()
        if space.signature != self.space_signature_:
            raise InputError(f"the {self.kind} predictor was fitted on space "
                             f"{self.space_!r} (signature {self.space_signature_}), not "
                             f"on {space.name!r} (signature {space.signature})")

    @abstractmethod
    def _state(self) -> dict[str, Any]:
        """Everything needed to rebuild the fitted predictor, as JSON-able values."""

    @classmethod
    @abstractmethod
    def _from_state(cls, state: dict[str, Any]) -> Predictor:
        """Rebuild a fitted predictor from ``_state()``."""

    def to_dict(self) -> dict[str, Any]:
        self._check_fitted()
        return {"format": FORMAT, "version": FORMAT_VERSION, "kind": self.kind,
                "target": self.target, "fingerprint": self.fingerprint_.as_row(),
                "space": getattr(self, "space_", None), "state": self._state()}

    def save(self, path: str | os.PathLike) -> None:
        """Write the predictor as JSON, atomically: a failure (a full disk) leaves an earlier
        file at ``path`` as it was, and a symbolic link there is replaced, not followed."""
        write_json(path, self.to_dict())


def from_dict(doc: Any, where: str = "predictor") -> Predictor:
    """Rebuild a predictor from ``to_dict()``; raise InputError saying what is wrong."""
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise InputError(f"{where}: not a predictor file (no \"format\": \"{FORMAT}\")")
    if doc.get("version") != FORMAT_VERSION:
        raise InputError(f"{where}: predictor format version {doc.get('version')!r} is not "
                         f"supported (this hwnas reads version {FORMAT_VERSION})")
    kind = doc.get("kind")
    cls = Predictor._registry.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise InputError(f"{where}: unknown predictor kind {kind!r}: expected one of "
                         f"{sorted(Predictor._registry)}")
    try:
        fingerprint = Fingerprint.from_row(doc["fingerprint"])
        check_numbers(doc["state"], "state")
        predictor = cls._from_state(doc["state"])
        if not isinstance(doc["target"], str):
            raise ValueError(f"target must be a column name, got {doc['target']!r}")
        predictor.target = doc["target"]
        space = doc.get("space")  # absent from files saved before it was recorded
        if space is not None:
            if not isinstance(space, str):
                raise ValueError(f"space must be a space name, got {space!r}")
            predictor.space_ = space
    except InputError as e:
        raise InputError(f"{where}: {e}") from None
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, OverflowError) as e:
        raise InputError(f"{where}: corrupt {kind} predictor ({type(e).__name__}: {e})") \
            from None
    predictor.fingerprint_ = fingerprint
    return predictor


def load_predictor(path: str | os.PathLike) -> Predictor:
    """Load a predictor saved with ``save``; raise InputError naming the file if it is not
    one."""
    path = os.fspath(path)
    text = read_text(path, "predictor file", max_bytes=MAX_PREDICTOR_BYTES)
    try:
        doc = loads_json(text)
    except json.JSONDecodeError as e:
        raise InputError(f"{path}: not a predictor file (invalid JSON: {e})") from None
    except ValueError as e:  # json_int: an integer that long; a key twice in an object
        raise InputError(f"{path}: not a predictor file ({e})") from None
    except RecursionError:
        raise InputError(f"{path}: not a predictor file (nested too deeply)") from None
    try:
        return from_dict(doc, path)
    except RecursionError:
        raise InputError(f"{path}: not a predictor file (nested too deeply)") from None


def check_numbers(value: Any, key: str) -> None:
    """Every number saved in a state is finite (an unknown is stored as null, never NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise InputError(f"{key} is {value}: a saved number must be finite")
    if isinstance(value, dict):
        for k, v in value.items():
            check_numbers(v, f"{key}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            check_numbers(v, f"{key}[{i}]")


def saved_int(value: Any, name: str, low: int, high: int) -> int:
    """A saved setting that must be an integer from low to high; raise InputError naming it."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InputError(f"{name} must be an integer from {low} to {high}, got {value!r}")
    return value


def check_finite(value: Any, name: str, positive: bool = False) -> float:
    """A saved number: finite (and > 0 where ``positive``); raise InputError naming it."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value) or (positive and not value > 0):
        raise InputError(f"{name} must be a finite number{' > 0' if positive else ''}, got "
                         f"{value!r}")
    return float(value)


def check_non_negative(values: Any, name: str) -> np.ndarray:
    """Saved costs (latencies, energies): finite or unknown (None, NaN), and never negative,
    which would predict a negative latency. Raises InputError naming them."""
    array = np.array([np.nan if v is None else v for v in np.ravel(np.array(values, object))],
                     dtype=float)
    if (array < 0).any():
        raise InputError(f"{name} holds {array[array < 0].min():g}: a saved cost must be >= 0")
    return array


def check_features(state: dict[str, Any], features: Sequence[str]) -> None:
    """A saved model's features must be the ones this hwnas computes, in the same order."""
    if state["features"] != list(features):
        raise ValueError(f"features {state['features']} differ from {list(features)}")


def check_same_device(a: Fingerprint, b: Fingerprint, what: str, allow: bool) -> None:
    if a != b and not allow:
        raise InputError(f"{what} were measured on {b.describe()}, but the predictor on "
                         f"{a.describe()}: tables from two devices are not mixed unless "
                         f"allowed (allow_mixed_devices=True, --allow-mixed-devices)")
