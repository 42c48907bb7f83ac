"""SearchSpace, Decision and Architecture: the encoding z and what it decodes to."""

from __future__ import annotations

import functools
import hashlib
import numbers
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Optional

import numpy as np

from hwnas.errors import InputError, NotAdditiveError
from hwnas.layers import ARITY, Layer

if TYPE_CHECKING:
    from numpy.typing import ArrayLike


#: in a Graph, the network input; ``None`` is a tensor of zeros (e.g. a cell node that no
#: edge feeds)
INPUT = -1
#: a network as (layer, indices of its input nodes) in topological order; the last is the output
Graph = tuple[tuple[Layer, tuple[Optional[int], ...]], ...]


def format_z(z: Iterable[int]) -> str:
    """z's text form: choice indices joined by '-', e.g. ``0-3-6``."""
    return "-".join(str(int(v)) for v in z)


def parse_z(text: str) -> tuple[int, ...]:
    """z from its text form (``0-3-6``); raises InputError saying what is expected.

    Example:
        >>> parse_z(format_z([0, 3, 6]))
        (0, 3, 6)
    """
    parts = text.strip().split("-")
    if not all(p.isascii() and p.isdigit() and len(p) < 10 for p in parts):
        raise InputError(f"z must be choice indices joined by '-', e.g. '0-3-6', got {text!r}")
    return tuple(int(p) for p in parts)


def chain(layers: Sequence[Layer]) -> Graph:
    """The layers one after another."""
    return tuple((layer, (INPUT if i == 0 else i - 1,)) for i, layer in enumerate(layers))


def unit_graph(layer: Layer) -> Graph:
    """One layer on its own, fed the network input (twice for an ``add``)."""
    return ((layer, (INPUT,) * ARITY.get(layer.op, 1)),)


def walk(graph: Graph, source: Any, zeros: Callable[[Layer], Any],
         apply: Callable[[int, Layer, list[Any]], Any]) -> tuple[Any, list[Any]]:
    """Build a graph in a framework: ``apply(i, layer, inputs)`` gives node i's output,
    ``zeros(layer)`` a zero input of the layer's shape (computed at run time, never folded).

    Returns the output (the last node's) and (output, layer) of the other nodes that nothing
    consumes: a
    network runs every node, as NAS-Bench-201's reference cells do, so runtimes must be told
    to compute these too, or they would drop them as dead code.
    """
    outs: list[Any] = []
    used: set[int] = set()
    for i, (layer, inputs) in enumerate(graph):
        xs = [source if j == INPUT else zeros(layer) if j is None else outs[j] for j in inputs]
        used.update(j for j in inputs if j is not None and j != INPUT)
        outs.append(apply(i, layer, xs))
    return outs[-1], [(out, graph[i][0]) for i, out in enumerate(outs[:-1]) if i not in used]


def _short(value: Any) -> str:
    """A value for an error message, cut short."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


#: rows gathered at a time by ``additive_cost``: the gathered block stays in the CPU cache
ADDITIVE_CHUNK = 8192


def additive_cost(fixed: float, C: np.ndarray, Z: np.ndarray) -> np.ndarray:
    """fixed + sum_d C[d, Z[:, d]] for checked int rows Z (no Python loop over z).

    Gathers from the flattened matrix in chunks of rows and sums each block by a product with
    ones (BLAS): about twice the throughput of one fancy-indexed gather and ``.sum(axis=1)``.
    """
    flat = np.ascontiguousarray(C, dtype=float).ravel()
    offsets = np.arange(C.shape[0]) * C.shape[1]
    ones = np.ones(C.shape[0])
    out = np.empty(len(Z))
    for start in range(0, len(Z), ADDITIVE_CHUNK):
        out[start:start + ADDITIVE_CHUNK] = flat[Z[start:start + ADDITIVE_CHUNK] + offsets] @ ones
    return fixed + out


@dataclass(frozen=True)
class Decision:
    """One entry of z: a named choice among candidates, each a (possibly empty) layer tuple.

    An empty tuple is a skip / zero candidate: it costs nothing.
    """

    name: str
    choices: tuple[str, ...]
    layers: tuple[tuple[Layer, ...], ...]

    def __post_init__(self) -> None:
        if len(self.choices) != len(self.layers) or not self.choices:
            raise InputError(f"decision {self.name!r}: needs one layer tuple per choice")


@dataclass(frozen=True)
class Architecture:
    """The ordered layers that one z decodes to, with z kept beside them."""

    space: str
    z: tuple[int, ...]
    layers: tuple[Layer, ...]
    choices: tuple[str, ...]
    graph: Graph

    @property
    def macs(self) -> int:
        return sum(layer.macs for layer in self.layers)

    @property
    def params(self) -> int:
        return sum(layer.params for layer in self.layers)

    @property
    def param_bytes(self) -> int:
        return sum(layer.param_bytes for layer in self.layers)

    @property
    def peak_activation_bytes(self) -> int:
        """Peak of live activations in a sequential forward pass (one unit at a time)."""
        return max((layer.peak_activation_bytes for layer in self.layers), default=0)


@dataclass(frozen=True)
class SearchSpace:
    """A list of decisions between a fixed stem and a fixed head.

    ``decode(z)`` gives stem + the chosen layers of every decision + head, in execution order.
    Every decision's layers are fixed given its own choice, so the latency of any layer-additive
    predictor is ``fixed + sum_d C[d, z_d]`` (see ``cost_matrix``).
    """

    name: str
    input_shape: tuple[int, int, int]
    stem: tuple[Layer, ...]
    decisions: tuple[Decision, ...]
    head: tuple[Layer, ...]

    @property
    def additive(self) -> bool:
        """Whether z decodes to stem + each decision's own layers + head, so that any
        layer-additive cost is fixed + sum_d C[d, z_d]; spaces that drop layers depending on
        other decisions (``nb201-pruned``) are not."""
        return True

    @property
    def sliced(self) -> bool:
        """Whether any layer-additive cost is additive within slices of z though not over
        all decisions: fixed[r] + the sum over the running decisions of C[r, d, z_d], r the
        slice (Once-for-All: the resolution; a block beyond its stage's depth does not run).
        Such a space has ``cost_tensor``, ``evaluate_tensor``, ``active`` and
        ``min_z_tensor``; the others have not."""
        return False

    @property
    def n_choices(self) -> tuple[int, ...]:
        return tuple(len(d.choices) for d in self.decisions)

    @property
    def size(self) -> int:
        """Number of distinct z."""
        return int(np.prod(self.n_choices, dtype=object))

    def check_z(self, z: ArrayLike) -> np.ndarray:
        """Return z as an int array of shape (N, D); raise InputError naming what is wrong
        (a wrong length, a value out of range, a string, a bool or a fraction)."""
        where = f"space {self.name!r}: z"
        try:
            arr = np.asarray(z)
        except (ValueError, TypeError):
            raise InputError(f"{where} must be rows of {len(self.decisions)} integers, got "
                             f"{_short(z)}") from None
        if arr.dtype.kind in "iu" and not isinstance(z, np.ndarray) and any(
                isinstance(v, (bool, np.bool_)) for v in np.asarray(z, dtype=object).flat):
            raise InputError(f"{where} must be integers, got booleans: {_short(z)}")
        if arr.ndim == 1:
            arr = arr[None, :]
        if arr.ndim != 2 or arr.shape[1] != len(self.decisions):
            raise InputError(f"{where} must have {len(self.decisions)} entries, got shape "
                             f"{arr.shape}")
        if arr.dtype.kind == "O":  # e.g. Python ints beyond int64, or mixed types
            if any(isinstance(v, bool) or not isinstance(v, (numbers.Integral, numbers.Real))
                   for v in arr.flat):
                raise InputError(f"{where} must be integers, got {_short(z)}")
            try:
                arr = arr.astype(float)
            except OverflowError:
                raise InputError(f"{where} holds a value far out of range: {_short(z)}") \
                    from None
        if arr.size and arr.dtype.kind not in "iuf":
            kind = {"b": "booleans", "U": "strings", "S": "bytes"}.get(arr.dtype.kind,
                                                                      str(arr.dtype))
            raise InputError(f"{where} must be integers, got {kind}: {_short(z)}")
        n = np.asarray(self.n_choices)
        if arr.size and arr.dtype.kind == "f":
            if not np.all(np.mod(arr, 1) == 0):
                raise InputError(f"{where} must be integers, got {_short(z)}")
            self._check_range(arr, (arr < 0) | (arr >= n))  # before the cast: 2**70 > int64
        arr = arr.astype(np.int64, copy=False)
        # one reduction per column (negatives wrap to huge unsigned values): cheap for 1e6 z
        if arr.size and (arr.view(np.uint64).max(axis=0) >= n).any():
            self._check_range(arr, (arr < 0) | (arr >= n))
        return arr

    def _check_range(self, arr: np.ndarray, bad: np.ndarray) -> None:
        """Raise InputError naming the first z entry that ``bad`` marks."""
        if bad.any():
            row, d = map(int, np.argwhere(bad)[0])
            raise InputError(f"space {self.name!r}: z[{d}] = {arr[row, d]:g} is out of range "
                             f"0..{self.n_choices[d] - 1} for decision {self.decisions[d].name!r}")

    def decode(self, z: Sequence[int]) -> Architecture:
        zz = tuple(int(v) for v in self.check_z(z)[0])
        layers = list(self.stem)
        for d, c in zip(self.decisions, zz):
            layers.extend(d.layers[c])
        layers.extend(self.head)
        return Architecture(self.name, zz, tuple(layers),
                            tuple(d.choices[c] for d, c in zip(self.decisions, zz)),
                            self.graph(zz, layers))

    def graph(self, z: tuple[int, ...], layers: Sequence[Layer]) -> Graph:
        """How z's layers connect; here a chain. Spaces with cells override it."""
        return chain(layers)

    def parse_z(self, text: str) -> tuple[int, ...]:
        """z from its text form (``0-3-6``, or the space's own notation), checked."""
        return tuple(int(v) for v in self.check_z(parse_z(text))[0])

    def z_of(self, value: Any) -> tuple[int, ...]:
        """One z from any of its forms, checked: choice indices, their text form or the
        space's own notation (``parse_z``), or the space's own configuration (a dict, where
        the space has one: Once-for-All's ``{"ks", "e", "d", "r"}``)."""
        if isinstance(value, str):
            return self.parse_z(value)
        if isinstance(value, dict):
            raise InputError(f"space {self.name!r} has no configuration of its own: give z as "
                             f"choice indices, got {_short(value)}")
        return tuple(int(v) for v in self.check_z(value)[0])

    def format_z(self, z: Iterable[int]) -> str:
        """z's text form in the tables hwnas writes: choice indices joined by '-'; a space
        whose own notation names one architecture per z (Once-for-All's configuration
        string) writes that instead. ``parse_z`` reads both."""
        return format_z(z)

    def config(self, z: ArrayLike) -> dict[str, Any] | None:
        """z in the space's own configuration, for the tools that deploy it (Once-for-All's
        ``{"ks", "e", "d", "r"}``); None where the space has none."""
        return None

    def canonical(self, z: ArrayLike) -> np.ndarray:
        """Checked z as rows (N, D), one z per architecture: a space in which several z
        decode to one architecture (Once-for-All's skipped blocks) maps them to one, in
        ``check_z``; here z as it is."""
        return self.check_z(z)

    def describe(self, z: Sequence[int]) -> str:
        """z in the space's own notation: the chosen candidate of each decision."""
        return " | ".join(d.choices[c] for d, c in zip(self.decisions, z))

    @functools.cached_property
    def signature(self) -> str:
        """Changes whenever z would decode to other layers: fitted predictors check it
        (computed once: the space is frozen)."""
        text = repr((self.name, self.stem, self.decisions, self.head))
        return hashlib.sha1(text.encode()).hexdigest()[:12]

    def unique_layers(self) -> list[Layer]:
        """Every layer any z can produce, once each, in first-seen order: what to measure."""
        seen: dict[str, Layer] = {}
        for layer in self.stem + tuple(
                ly for d in self.decisions for c in d.layers for ly in c) + self.head:
            seen.setdefault(layer.key, layer)
        return list(seen.values())

    def layers_to_measure(self) -> list[Layer]:
        """The layers the default flow measures on this machine: every unique layer here; a
        space with many sizes of one layer (Once-for-All's 25 resolutions) measures a few
        and predicts the rest (``hwnas.profile.layer_predictor``)."""
        return self.unique_layers()

    def random_z(self, n: int, seed: int | None = None) -> np.ndarray:
        """n uniformly random z, drawn row by row: the first rows do not depend on n."""
        rng = np.random.default_rng(seed)
        return rng.integers(0, np.asarray(self.n_choices), size=(n, len(self.decisions)))

    def design(self, n: int, seed: int | None = 0) -> np.ndarray:
        """n distinct z in which every choice of every decision appears, as evenly as n allows
        (a balanced covering design): what to measure so that few networks still price every
        choice. Needs n >= the most choices of any decision.

        Each column cycles through its choices in a random order and is then shuffled on its
        own, so every choice appears floor(n / k) or ceil(n / k) times; rows that repeat an
        earlier z are drawn again.

        Example:
            >>> from hwnas.spaces import get_space
            >>> Z = get_space("nb201").design(10)
            >>> Z.shape, all(len(set(Z[:, d])) == 5 for d in range(6))
            ((10, 6), True)
        """
        k_max = max(self.n_choices)
        if n < k_max:
            raise InputError(f"space {self.name!r}: a design that covers every choice needs "
                             f"n >= {k_max} networks, got {n}")
        n = min(n, self.size)
        rng = np.random.default_rng(seed)
        for _ in range(100):
            Z = np.column_stack([rng.permutation(np.resize(rng.permutation(k), n))
                                 for k in self.n_choices])
            if len(np.unique(Z, axis=0)) == n:
                return Z.astype(np.int64)
        raise InputError(f"space {self.name!r}: found no design of {n} distinct z")

    def cost_matrix(self, layer_cost: Callable[[Sequence[Layer]], ArrayLike]
                    ) -> tuple[float, np.ndarray]:
        """Per-decision costs: ``(fixed, C)`` with C[d, c] the cost of choice c of decision d.

        ``layer_cost`` maps a list of layers to one cost each (e.g. ``predictor.predict_layers``);
        it is called once, on the unique layers. C is NaN where decision d has no choice c.
        Raises NotAdditiveError for a space that is not ``additive``: use ``sum_z``.
        """
        if not self.additive:
            raise NotAdditiveError(f"space {self.name!r} is not additive over its decisions "
                                   f"(which layers run depends on several decisions): no cost "
                                   f"matrix; latency is summed over each z's layers")
        layers = self.unique_layers()
        costs = np.asarray(layer_cost(layers), dtype=float)
        by_key = {layer.key: cost for layer, cost in zip(layers, costs)}

        def total(group: Sequence[Layer]) -> float:
            return float(sum(by_key[layer.key] for layer in group))

        C = np.full((len(self.decisions), max(self.n_choices)), np.nan)
        for i, d in enumerate(self.decisions):
            C[i, :len(d.choices)] = [total(group) for group in d.layers]
        return total(self.stem) + total(self.head), C

    def cost_tensor(self, layer_cost: Callable[[Sequence[Layer]], ArrayLike]
                    ) -> tuple[np.ndarray, np.ndarray]:
        """Per-slice costs of a ``sliced`` space (see OFASpace); here NotAdditiveError."""
        raise NotAdditiveError(f"space {self.name!r} has no slices: use cost_matrix")

    def evaluate_tensor(self, z: ArrayLike, fixed: np.ndarray, C: np.ndarray,
                        checked: bool = False) -> np.ndarray:
        """Cost of many z through ``cost_tensor``'s (fixed, C); here NotAdditiveError."""
        raise NotAdditiveError(f"space {self.name!r} has no slices: use evaluate_z")

    def min_z_tensor(self, fixed: np.ndarray, C: np.ndarray,
                     allowed: np.ndarray | None = None) -> tuple[np.ndarray, float]:
        """The z of least cost through ``cost_tensor``'s (fixed, C); here NotAdditiveError."""
        raise NotAdditiveError(f"space {self.name!r} has no slices: use min_z")

    def sum_z(self, z: ArrayLike, layer_cost: Callable[[Sequence[Layer]], ArrayLike]
              ) -> np.ndarray:
        """The cost of many z as the sum over each z's decoded layers, for any space (additive
        or not); ``layer_cost`` is called once, on the unique layers."""
        Z = self.check_z(z)
        layers = self.unique_layers()
        by_key = dict(zip((ly.key for ly in layers),
                          np.asarray(layer_cost(layers), dtype=float)))
        return np.array([sum(by_key[ly.key] for ly in self.decode(row).layers) for row in Z],
                        dtype=float)

    def evaluate_z(self, z: ArrayLike, fixed: float, C: np.ndarray) -> np.ndarray:
        """Additive cost of many z at once: fixed + sum_d C[d, z_d] (no Python loop over z)."""
        return additive_cost(fixed, C, self.check_z(z))

    def min_z(self, fixed: float, C: np.ndarray) -> tuple[np.ndarray, float]:
        """The z of least additive cost and that cost."""
        z = np.nanargmin(C, axis=1)
        return z, float(fixed + np.nanmin(C, axis=1).sum())
