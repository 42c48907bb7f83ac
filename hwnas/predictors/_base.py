"""The Predictor interface: fit on measured networks or tables, predict milliseconds."""

from __future__ import annotations

import base64
import hashlib
import json
import math
import numbers
import os
import warnings
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin

from hwnas._files import MAX_PREDICTOR_BYTES, loads_json, read_text, write_json
from hwnas.errors import InputError, NotFittedError, NotSupportedError
from hwnas.layers import Layer
from hwnas.spaces import (
    NotAdditiveError,  # noqa: F401  (re-exported: part of this interface)
    SearchSpace,
    load_space,
)
from hwnas.tables import UNKNOWN_FINGERPRINT, Fingerprint, LayerTable, NetworkTable

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

#: what ``Predictor._check_params`` accepts for each kind of hyperparameter
_KINDS = {"a number": numbers.Real, "an integer": numbers.Integral, "a string": str,
          "True or False": bool}

FORMAT = "hwnas.predictor"
FORMAT_VERSION = 1

#: the device of a predictor fitted with ``fit(X, y)``: arrays name none
ARRAYS_FINGERPRINT = Fingerprint.from_row({"device": "unnamed (fit(X, y))"}, UNKNOWN_FINGERPRINT)


class Predictor(RegressorMixin, BaseEstimator, ABC):
    """Predicts a measured quantity (``target``, latency in ms by default) of the networks
    of a search space: a scikit-learn regressor over z, plus the batch and per-layer
    predictions the search and the trainers use.

    **As a scikit-learn regressor** (every kind): X is an array of z (one row per network,
    one choice index per decision of ``space``, the constructor's argument) and y their
    latencies. ``fit(X, y)`` fits the kinds that learn from measured networks (``additive``,
    ``additive_features``, ``tree_z``, ``transfer``, ``measured``, ``calibrated``);
    ``predict(X)`` gives one latency per network and ``score(X, y)`` its R^2, for every kind
    that knows its space (given as ``space=``, or the one it was fitted on). So
    ``cross_val_score``, ``GridSearchCV`` and ``Pipeline`` take them; ``__init__`` only
    stores its arguments (``get_params``, ``set_params`` and ``sklearn.base.clone`` work),
    what was learned ends in ``_``, and using an unfitted predictor raises NotFittedError.

    **From measurement tables** (hwnas's own files): ``fit_table(table)`` fits a layer kind
    (``lookup``, ``linear``, ``tree``) on a layer table, ``fit_table(networks, space)`` a
    network kind on a network table (``space`` defaults to the constructor's); it also
    records the table's device (``fingerprint_``), which a search checks.

    **For the search**: ``predict_z(space, Z)`` (a batch of z, vectorised),
    ``cost_matrix(space)`` (additive kinds: latency(z) = fixed + sum_d C[d, z_d]),
    ``predict_architecture(arch)``, ``predict_z_quantile(space, Z, q)`` (kinds with a
    spread). Layer kinds (``lookup``, ``linear``, ``tree``, ``additive_features``, and
    ``calibrated`` over one of them) also give ``predict_layers(layers)``, one latency per
    layer, and a network is the sum of its layers. Network kinds (``additive``, ``tree_z``,
    ``measured``, ``transfer``) predict whole architectures of the space they were fitted on.

    Every fit records which networks it learned from (``fitted_networks_``, digests of their
    z; ``calibrated`` adds its base's), so that scoring on them is flagged
    (``fitted_mask``, ``hwnas.evaluate``). ``save``/``load_predictor`` use JSON, never
    pickles: a file stores parameters, or training rows and settings that refit
    deterministically.

    Example:
        >>> from hwnas.devices import load_device
        >>> from hwnas.predictors import AdditiveFeaturesPredictor
        >>> from sklearn.model_selection import cross_val_score
        >>> table = load_device("pixel3", "nb201").select(range(300))
        >>> Z, y = np.array(table.z), table.values()
        >>> scores = cross_val_score(AdditiveFeaturesPredictor(space="nb201"), Z, y, cv=3)
        >>> bool(scores.min() > 0.5)
        True
    """

    kind: ClassVar[str]
    #: fitted from measured networks (``fit(X, y)``, ``fit_table(networks, space)``) rather
    #: than from a layer table (``fit_table(layers)``)
    from_networks: ClassVar[bool] = False
    _registry: ClassVar[dict[str, type[Predictor]]] = {}
    #: the constructor's ``space=`` (every kind takes it, keyword-only)
    space: str | SearchSpace | None
    #: digests of the z it was fitted or calibrated on (``network_digests``); None: unknown
    fitted_networks_: np.ndarray | None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "kind" in cls.__dict__:
            Predictor._registry[cls.kind] = cls

    # --- scikit-learn: X is z, y the latencies -------------------------------------------

    def fit(self, X: ArrayLike | LayerTable | NetworkTable,
            y: ArrayLike | str | SearchSpace | None = None) -> Predictor:
        """Fit on measured networks of ``space``: X their z (n_networks x n_decisions
        integers), y their latencies (or the target), one per row, finite and > 0. Returns
        self. Only the kinds fitted from networks (``from_networks``); the layer kinds learn
        from a layer table, with ``fit_table``.

        ``fit(table)`` and ``fit(networks, space)`` (hwnas 0.1) still work, with a
        DeprecationWarning: call ``fit_table``.
        """
        if isinstance(X, (LayerTable, NetworkTable)):
            _deprecated(self, "fit(table, space)", "fit_table(table, space)")
            return self.fit_table(X, y)  # type: ignore[arg-type]  # there y was the space
        if not self.from_networks:
            raise NotSupportedError(
                f"the {self.kind} predictor learns from a layer table: "
                f"{type(self).__name__}().fit_table(read_layer_table(path)); fit(X, y) on z "
                f"and latencies fits the network kinds ({', '.join(network_kinds())})")
        self._validate()
        space = self._fit_space(None)
        Z, values = _check_xy(space, X, y)  # type: ignore[arg-type]  # not a table here
        return self._fit_on(space, Z, values, "X", ARRAYS_FINGERPRINT)

    def predict(self, X: ArrayLike | Sequence[Layer]) -> np.ndarray:
        """The latency (or the target) of each network: X its z, one row per network, in
        the predictor's space (``space=``, else the space it was fitted on).

        ``predict(layers)`` with a list of Layer objects (hwnas 0.1) still works, with a
        DeprecationWarning: call ``predict_layers``.
        """
        if isinstance(X, (list, tuple)) and X and all(isinstance(v, Layer) for v in X):
            _deprecated(self, "predict(layers)", "predict_layers(layers)")
            return self.predict_layers(X)
        self._check_fitted()
        return self.predict_z(self._z_space("predict(X)"), X)  # type: ignore[arg-type]

    # --- hwnas: tables, layers, batches of z ---------------------------------------------

    def fit_table(self, table: LayerTable | NetworkTable,
                  space: str | SearchSpace | None = None) -> Predictor:
        """Fit on a measurement table; returns self. A layer kind takes a layer table
        (``read_layer_table``); a network kind a network table (``read_network_table``,
        ``hwnas.devices.load_device``) of ``space`` (a name or a SearchSpace; default: the
        constructor's ``space``). The table's device becomes ``fingerprint_``."""
        self._validate()
        if not self.from_networks:
            if not isinstance(table, LayerTable):
                raise InputError(f"the {self.kind} predictor learns from a layer table "
                                 f"(read_layer_table), got {_what(table)}")
            self._fit_layers(table)
            self.fingerprint_ = table.fingerprint
            self.fitted_networks_ = _digests_array([])
            return self
        if not isinstance(table, NetworkTable):
            raise InputError(f"the {self.kind} predictor learns from measured networks: a "
                             f"network table (read_network_table, hwnas.devices.load_device), "
                             f"got {_what(table)}")
        searched = self._fit_space(space)
        if table.space != searched.name:
            raise InputError(f"{table.path}: its networks are of space {table.space!r}, "
                             f"not {searched.name!r}")
        self._check_table(table)
        return self._fit_on(searched, searched.check_z(np.array(table.z)),
                            table.values(self.target), table.path, table.fingerprint)

    def predict_layers(self, layers: Sequence[Layer]) -> np.ndarray:
        """Latency (or the target) of each layer, for the layer kinds; a network is the sum
        of its layers."""
        raise NotSupportedError(f"the {self.kind} predictor predicts whole architectures "
                                f"of its space, not layers")

    def cost_matrix(self, space: SearchSpace) -> tuple[float, np.ndarray]:
        """``(fixed, C)`` so that latency(z) = fixed + sum_d C[d, z_d]."""
        self._check_fitted()
        return space.cost_matrix(self.predict_layers)

    def cost_tensor(self, space: SearchSpace) -> tuple[np.ndarray, np.ndarray]:
        """``(fixed, C)`` of a space additive within slices (``space.sliced``: Once-for-All,
        per resolution): latency(z) = fixed[r] + the sum over z's running decisions of
        C[r, d, z_d] (``space.evaluate_tensor``). NotAdditiveError for other spaces and for
        predictors that are not additive there (tree_z, measured)."""
        self._check_fitted()
        if not space.sliced:
            raise NotAdditiveError(f"space {space.name!r} has no slices: use cost_matrix")
        try:
            return space.cost_tensor(self.predict_layers)
        except NotSupportedError:
            raise NotAdditiveError(f"the {self.kind} predictor predicts whole architectures: "
                                   f"it has no cost per layer") from None

    def predict_z(self, space: SearchSpace, z: ArrayLike) -> np.ndarray:
        """Latency of each z (shape (N, D) or (D,)), vectorised over z (summed over each z's
        layers where the space is not additive)."""
        if not space.additive:
            self._check_fitted()
            return space.sum_z(z, self.predict_layers)
        fixed, C = self.cost_matrix(space)
        return space.evaluate_z(z, fixed, C)

    def predict_z_quantile(self, space: SearchSpace, z: ArrayLike, q: float) -> np.ndarray:
        """The q-quantile of each z's latency, for predictors with a spread estimate."""
        raise NotSupportedError(f"the {self.kind} predictor gives no spread estimate: use "
                                f"tree or tree_z")

    def predict_architecture(self, arch) -> float:
        """Latency of one architecture: the sum of its layers."""
        return float(np.sum(self.predict_layers(list(arch.layers))))

    def fitted_mask(self, space: str | SearchSpace, z: ArrayLike) -> np.ndarray | None:
        """Which of these z (of ``space``) the predictor was fitted or calibrated on: a
        boolean per row (all False for a layer kind); None where its file, saved by an
        earlier hwnas, does not record them."""
        self._check_fitted()
        fitted = getattr(self, "fitted_networks_", None)
        if fitted is None:
            return None
        resolved = _as_space(space)
        if resolved is None:
            raise InputError("fitted_mask needs the space of the z")
        return np.isin(network_digests(resolved.name, resolved.check_z(z)), fitted)

    # --- what the kinds implement --------------------------------------------------------

    def _validate(self) -> None:
        """Check the hyperparameters (InputError naming one), first thing in every fit."""
        self._check_params()

    def _fit_layers(self, table: LayerTable) -> None:
        """Learn from a layer table (the layer kinds)."""
        raise NotImplementedError

    def _fit_networks(self, space: SearchSpace, Z: np.ndarray, y: np.ndarray,
                      where: str) -> None:
        """Learn from checked z (N x D) and targets (N); ``where`` names them in errors (a
        table's path, or ``X``)."""
        raise NotImplementedError

    def _check_table(self, networks: NetworkTable) -> None:
        """More checks of a network table before fitting on it (calibrated: its device)."""

    def _fit_on(self, space: SearchSpace, Z: np.ndarray, y: np.ndarray, where: str,
                fingerprint: Fingerprint) -> Predictor:
        self._fit_networks(space, Z, y, where)
        self.space_ = space.name
        self.__dict__["_space_cache"] = (space.name, space)  # a space file's object, kept
        self.fingerprint_ = fingerprint
        self.fitted_networks_ = np.unique(network_digests(space.name, Z))
        return self

    # --- shared checks -------------------------------------------------------------------

    def __sklearn_is_fitted__(self) -> bool:
        """What ``sklearn.utils.validation.check_is_fitted`` asks."""
        return hasattr(self, "fingerprint_")

    def _check_fitted(self) -> None:
        if not self.__sklearn_is_fitted__():
            how = "fit(X, y) or fit_table(networks)" if self.from_networks else \
                "fit_table(table)"
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet: call {how} "
                                 f"or load a saved predictor first")

    def _check_params(self, **rules: tuple) -> None:
        """Validate hyperparameters at ``fit``: ``name=(kind, minimum or None)`` with kind one
        of ``_KINDS``; ``target`` and ``space`` are always checked. Raises InputError naming
        the parameter."""
        for name, (kind, minimum) in {"target": ("a string", None), **rules}.items():
            value = getattr(self, name)
            ok = isinstance(value, _KINDS[kind]) and (kind == "True or False" or
                                                      not isinstance(value, bool))
            if not ok or minimum is not None and not value >= minimum:
                bound = f" >= {minimum}" if minimum is not None else ""
                raise InputError(f"{type(self).__name__}: {name} must be {kind}{bound}, got "
                                 f"{value!r}")
        if not (self.space is None or isinstance(self.space, (str, SearchSpace))):
            raise InputError(f"{type(self).__name__}: space must be a space name, a space "
                             f"file or a SearchSpace, got {self.space!r}")

    def _fit_space(self, space: str | SearchSpace | None) -> SearchSpace:
        """The space to fit on: ``fit_table``'s argument, else the constructor's; both given,
        they must be the same space."""
        given, own = _as_space(space), _as_space(self.space)
        if given is None and own is None:
            raise InputError(f"the {self.kind} predictor learns from networks of a space: "
                             f"give it, {type(self).__name__}(space='nb201') (a name, a space "
                             f"file or a SearchSpace), or fit_table(networks, space)")
        if given is not None and own is not None and given.signature != own.signature:
            raise InputError(f"fit_table was given space {given.name!r}, but the predictor "
                             f"was made for space {own.name!r} (space=)")
        return given or own  # type: ignore[return-value]

    def _z_space(self, what: str) -> SearchSpace:
        """The space whose z ``predict(X)`` reads: ``space=``, else the one fitted on."""
        value = self.space if self.space is not None else getattr(self, "space_", None)
        if value is None:
            raise NotSupportedError(f"{type(self).__name__}.{what}: no space to read z in: "
                                    f"give one ({type(self).__name__}(space='nb201'), or "
                                    f"set_params(space=...)), or call predict_z(space, z)")
        cached = self.__dict__.get("_space_cache")
        if cached is not None and (cached[0] is value or isinstance(value, str) and
                                   cached[0] == value):
            return cached[1]
        space = _as_space(value)
        self.__dict__["_space_cache"] = (value, space)
        return space  # type: ignore[return-value]

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
        doc = {"format": FORMAT, "version": FORMAT_VERSION, "kind": self.kind,
               "target": self.target, "fingerprint": self.fingerprint_.as_row(),
               "space": getattr(self, "space_", None), "state": self._state()}
        fitted = getattr(self, "fitted_networks_", None)
        if fitted is not None:
            doc["fitted_networks"] = base64.b64encode(
                np.asarray(fitted, dtype="<u8").tobytes()).decode()
        return doc

    def save(self, path: str | os.PathLike) -> None:
        """Write the predictor as JSON, atomically: a failure (a full disk) leaves an earlier
        file at ``path`` as it was, and a symbolic link there is replaced, not followed."""
        write_json(path, self.to_dict())


def network_kinds() -> list[str]:
    """The kinds fitted from measured networks (``fit(X, y)``), by name."""
    return sorted(kind for kind, cls in Predictor._registry.items() if cls.from_networks)


def network_digests(space: str, Z: np.ndarray) -> np.ndarray:
    """A 64-bit digest (BLAKE2b) of each z of the space named ``space``, as uint64: what
    ``fitted_networks_`` holds of the networks a predictor learned from (8 bytes each,
    however many decisions; two z share one with chance 2^-64).

    Example:
        >>> a = network_digests("nb201", np.array([[0, 1, 2, 3, 4, 0], [0, 1, 2, 3, 4, 0]]))
        >>> a.dtype.name, bool(a[0] == a[1])
        ('uint64', True)
    """
    prefix = space.encode() + b"|"
    rows = np.ascontiguousarray(Z, dtype="<i8")
    return _digests_array(int.from_bytes(hashlib.blake2b(prefix + row.tobytes(),
                                                         digest_size=8).digest(), "little")
                          for row in rows)


def _digests_array(values) -> np.ndarray:
    return np.fromiter(values, dtype=np.uint64)


def _check_xy(space: SearchSpace, X: ArrayLike, y: ArrayLike | None
              ) -> tuple[np.ndarray, np.ndarray]:
    """``fit(X, y)``'s arrays, checked: z of the space, one finite target > 0 per row."""
    if y is None:
        raise InputError("fit(X, y) needs y: the measured latency (or target) of each z of X")
    Z = space.check_z(X)
    try:
        values = np.asarray(y, dtype=float)
    except (TypeError, ValueError):
        raise InputError(f"y must be numbers, one per row of X, got {str(y)[:80]}") from None
    if values.shape != (len(Z),):
        raise InputError(f"y must hold one number per row of X ({len(Z)}), got shape "
                         f"{values.shape}")
    bad = ~(np.isfinite(values) & (values > 0))
    if bad.any():
        row = int(np.argmax(bad))
        raise InputError(f"y[{row}] is {values[row]}: a measured latency (or target) must be "
                         f"a finite number > 0")
    return Z, values


def _as_space(value: str | SearchSpace | None) -> SearchSpace | None:
    """A space name or file read (``load_space``), a SearchSpace as it is."""
    if value is None or isinstance(value, SearchSpace):
        return value
    if isinstance(value, str):
        return load_space(value)
    raise InputError(f"space must be a space name, a space file or a SearchSpace, got "
                     f"{value!r}")


def _what(table: Any) -> str:
    names = {LayerTable: "a layer table", NetworkTable: "a network table"}
    return names.get(type(table), f"{type(table).__name__} {str(table)[:60]}")


def _deprecated(predictor: Predictor, old: str, new: str) -> None:
    """One release of grace for hwnas 0.1's names, which scikit-learn's meaning took."""
    name = type(predictor).__name__
    warnings.warn(f"{name}.{old} is deprecated and goes in the next release: call "
                  f"{name}.{new} (fit(X, y) and predict(X) now take z, as scikit-learn "
                  f"does)", DeprecationWarning, stacklevel=3)


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
        predictor.fitted_networks_ = _saved_digests(doc.get("fitted_networks"),
                                                    cls.from_networks)
    except InputError as e:
        raise InputError(f"{where}: {e}") from None
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, OverflowError) as e:
        raise InputError(f"{where}: corrupt {kind} predictor ({type(e).__name__}: {e})") \
            from None
    predictor.fingerprint_ = fingerprint
    return predictor


def _saved_digests(text: Any, from_networks: bool) -> np.ndarray | None:
    """``fitted_networks_`` from its base64 text; absent (a file of an earlier hwnas): none
    for a layer kind, unknown (None) for a kind fitted from networks."""
    if text is None:
        return None if from_networks else _digests_array([])
    if not isinstance(text, str):
        raise ValueError(f"fitted_networks must be base64 text, got {str(text)[:40]!r}")
    raw = base64.b64decode(text, validate=True)
    if len(raw) % 8:
        raise ValueError("fitted_networks is cut short (not 8 bytes per network)")
    return np.frombuffer(raw, dtype="<u8").astype(np.uint64)


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
