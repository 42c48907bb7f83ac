"""Once-for-All (Cai et al., ICLR 2020): the MobileNetV3 supernet ``ofa_mbv3_d234_e346_k357_w1.2``
whose subnetworks practitioners deploy, with elastic kernel, expand ratio, depth and input
resolution.

Structure (ImageNet, widths OFA's x 1.2 by ``make_divisible``): a 3x3/2 stem conv to 24
channels (bn, h_swish); a first block (``mbv3``, expand 1, 3x3, ReLU, residual); 5 searched
stages of up to 4 blocks each, to [32, 48, 96, 136, 192] channels, the first block of a stage
with stride [2, 2, 2, 1, 2], activations [relu, relu, h_swish, h_swish, h_swish],
squeeze-and-excite in stages [no, yes, no, yes, yes]; then a 1x1 conv to 1152 (bn, h_swish),
global average pooling, a 1x1 conv to 1536 without batch norm (h_swish) and a linear layer
to 1000 classes. Input 3 x r x r, r in 128, 132, ..., 224.

The encoding z (26 decisions, each a choice index):

- z[0..19], ``stage{s}_block{j}``: kernel and expand ratio of block j of stage s, one of 9
  choices ``k3_e3, k3_e4, k3_e6, k5_e3, ..., k7_e6`` (index = 3 x kernel index + expand
  index), in OFA's block order (the ``ks`` and ``e`` lists of ``set_active_subnet``);
- z[20..24], ``stage{s}_depth``: how many of the stage's blocks run, choices ``2, 3, 4``
  (OFA's ``d``);
- z[25], ``resolution``: the input size, choices ``128, 132, ..., 224`` (index (r - 128) / 4).

A block beyond its stage's depth does not run, so its choice does not matter: two z that
differ only there are one architecture. ``canonical`` sets those blocks to choice 0
(``k3_e3``), and every z the space decodes, counts (``size``) or draws is canonical.

OFA's own configuration ``{"ks": [20 kernels], "e": [20 expand ratios], "d": [5 depths],
"r": resolution}`` (as HELP and OFA publish subnets; ``r`` may also be ``image_size`` or a
list) and the shipped tables' string ``ks:7-5-...;e:6-4-...;d:2-3-...;r:204`` are read
wherever z is (``z_of``, ``parse_z``); ``config`` and ``config_string`` give them back.

For one resolution, latency is a sum over the running blocks: ``cost_tensor`` gives each
resolution's fixed cost and each block choice's cost, ``evaluate_tensor`` sums them for many z
at once, and the exact search solves a knapsack per resolution (``hwnas.spaces._ofa_exact``).
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from hwnas.errors import InputError
from hwnas.layers import Layer, make_divisible
from hwnas.spaces._base import Architecture, Decision, SearchSpace, _short, chain

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

#: OFA's base widths, scaled by WIDTH: stem, first block, the 5 stages, final expand, mix
BASE_WIDTHS = (16, 16, 24, 40, 80, 112, 160, 960, 1280)
WIDTH = 1.2
#: per stage: (stride of its first block, activation, squeeze-and-excite)
STAGES = ((2, "relu", 0), (2, "relu", 1), (2, "h_swish", 0), (1, "h_swish", 1),
          (2, "h_swish", 1))
KERNELS = (3, 5, 7)
EXPANDS = (3, 4, 6)
DEPTHS = (2, 3, 4)
RESOLUTIONS = tuple(range(128, 225, 4))
#: the resolutions whose layers the default flow measures on this machine (the least, the
#: middle and the most): the other 22 are predicted by a regressor over layer features
LAYER_RESOLUTIONS = (128, 176, 224)
NUM_CLASSES = 1000
#: the supernet's name in Once-for-All's model zoo
NETWORK = "ofa_mbv3_d234_e346_k357_w1.2"


def widths() -> tuple[int, ...]:
    """The channel widths (stem, first block, stages, final expand, feature mix).

    Example:
        >>> widths()
        (24, 24, 32, 48, 96, 136, 192, 1152, 1536)
    """
    return tuple(make_divisible(w * WIDTH) for w in BASE_WIDTHS)


@dataclass(frozen=True)
class OFASpace(SearchSpace):
    """The Once-for-All space (see the module docstring): decisions are the blocks' kernel
    and expand choices, the stages' depths and the resolution; not additive over them (the
    resolution scales every layer, a skipped block costs nothing), but additive over the
    running blocks of one resolution (``cost_tensor``)."""

    kernels: tuple[int, ...] = KERNELS
    expands: tuple[int, ...] = EXPANDS
    depths: tuple[int, ...] = DEPTHS
    resolutions: tuple[int, ...] = RESOLUTIONS
    #: block decisions of each stage, in order
    stages: tuple[tuple[int, ...], ...] = ()

    @property
    def additive(self) -> bool:
        return False

    @property
    def sliced(self) -> bool:
        """Additive over the running blocks of each resolution (a slice): ``cost_tensor``."""
        return True

    @functools.cached_property
    def n_blocks(self) -> int:
        return sum(len(s) for s in self.stages)

    @functools.cached_property
    def depth_decisions(self) -> tuple[int, ...]:
        return tuple(range(self.n_blocks, self.n_blocks + len(self.stages)))

    @functools.cached_property
    def resolution_decision(self) -> int:
        return len(self.decisions) - 1

    @property
    def size(self) -> int:
        """Distinct architectures: z that differ only in skipped blocks count once."""
        k = len(self.kernels) * len(self.expands)
        per_stage = [sum(k ** d for d in self.depths if d <= len(s)) for s in self.stages]
        return len(self.resolutions) * math.prod(per_stage)

    @functools.cached_property
    def signature(self) -> str:
        text = repr((self.name, self.kernels, self.expands, self.depths, self.resolutions,
                     self.stages, self.head, [(d.name, d.choices, [[ly.key for ly in g]
                                                                  for g in d.layers])
                                              for d in self.decisions]))
        return hashlib.sha1(text.encode()).hexdigest()[:12]

    # --- which blocks run ----------------------------------------------------------------

    def active(self, Z: np.ndarray) -> np.ndarray:
        """(N, D) mask of the decisions whose layers run: a block runs where its index in its
        stage is below the stage's depth; depth and resolution decisions count as running."""
        Z = np.atleast_2d(Z)
        mask = np.ones(Z.shape, dtype=bool)
        depth = np.asarray(self.depths)[Z[:, list(self.depth_decisions)]]  # (N, stages)
        for s, blocks in enumerate(self.stages):
            for j, b in enumerate(blocks):
                mask[:, b] = j < depth[:, s]
        return mask

    def check_z(self, z: ArrayLike) -> np.ndarray:
        """As SearchSpace.check_z, canonical: every skipped block at choice 0, one z per
        architecture; an OFA configuration (dict) or string is read too.

        Example:
            >>> space = ofa()
            >>> z = space.z_of({"ks": [7] * 20, "e": [6] * 20, "d": [2] * 5, "r": 224})
            >>> space.config(z)["ks"][:4]
            [7, 7, 3, 3]
        """
        if isinstance(z, (dict, str)):
            return np.array([self.z_of(z)], dtype=np.int64)
        Z = super().check_z(z)
        inactive = ~self.active(Z)
        if Z[inactive].any():
            Z = Z.copy()
            Z[inactive] = 0
        return Z

    def random_z(self, n: int, seed: int | None = None) -> np.ndarray:
        """n random architectures as OFA samples subnets (every decision uniform), canonical."""
        return self.check_z(super().random_z(n, seed))

    def design(self, n: int, seed: int | None = 0) -> np.ndarray:
        """n distinct canonical z in which every kernel and expand choice of every block
        appears as evenly as n allows (needs n >= 9), with depths and resolutions cycled
        alike (all covered from n >= 25): SearchSpace.design, made canonical, so a skipped
        block's choices are no longer all covered (duplicates are dropped)."""
        k_max = max(self.n_choices[:self.n_blocks])
        if n < k_max:
            raise InputError(f"space {self.name!r}: a design that covers every block choice "
                             f"needs n >= {k_max} networks, got {n}")
        rng = np.random.default_rng(seed)
        Z = np.column_stack([rng.permutation(np.resize(rng.permutation(k), n))
                             for k in self.n_choices])
        Z = self.check_z(Z)
        _, first = np.unique(Z, axis=0, return_index=True)
        return Z[np.sort(first)]

    def layers_to_measure(self) -> list[Layer]:
        """The unique layers of LAYER_RESOLUTIONS (those of the space's resolutions nearest
        them): measuring all 1,257 layers of the 25 resolutions is too slow for the default
        flow, and a layer's latency follows its input's area, which a regressor over layer
        features interpolates (``hwnas.profile.layer_predictor``)."""
        wanted = sorted({int(np.argmin(np.abs(np.asarray(self.resolutions) - r)))
                         for r in LAYER_RESOLUTIONS})
        fixed = self.decisions[self.resolution_decision].layers
        return list({ly.key: ly for r in wanted for ly in (
            *fixed[r], *self.head,
            *(group[r] for d in range(self.n_blocks) for group in self.decisions[d].layers))
        }.values())

    # --- decoding ---------------------------------------------------------------------------

    def resolution(self, z: Sequence[int]) -> int:
        return self.resolutions[int(z[self.resolution_decision])]

    def decode(self, z: Sequence[int]) -> Architecture:
        zz = tuple(int(v) for v in self.check_z(z)[0])
        r = zz[self.resolution_decision]
        active = self.active(np.array([zz]))[0]
        stem = self.decisions[self.resolution_decision].layers[r]
        layers = list(stem[:2])  # stem conv, first block
        for b in range(self.n_blocks):
            if active[b]:
                layers.append(self.decisions[b].layers[zz[b]][r])
        layers.extend(stem[2:])  # final expand conv, pooling
        layers.extend(self.head)
        return Architecture(self.name, zz, tuple(layers),
                            tuple(d.choices[c] for d, c in zip(self.decisions, zz)),
                            chain(layers))

    def describe(self, z: Sequence[int]) -> str:
        """z as the shipped tables' OFA string (``ks:...;e:...;d:...;r:...``)."""
        return self.config_string(list(z))

    def format_z(self, z: Iterable[int]) -> str:
        """The OFA string: tables hwnas writes for ``ofa`` read like the shipped ones."""
        return self.config_string(list(z))

    # --- OFA's configurations -------------------------------------------------------------

    def config(self, z: ArrayLike) -> dict[str, Any]:
        """OFA's configuration of z: ``{"ks": [...], "e": [...], "d": [...], "r": r}``, ready
        for ``set_active_subnet(ks=, e=, d=)`` and an input of r x r (skipped blocks canonical:
        kernel and expand of choice 0)."""
        zz = self.check_z(z)[0]
        blocks = zz[:self.n_blocks]
        n_e = len(self.expands)
        return {"ks": [self.kernels[c // n_e] for c in blocks.tolist()],
                "e": [self.expands[c % n_e] for c in blocks.tolist()],
                "d": [self.depths[c] for c in zz[list(self.depth_decisions)].tolist()],
                "r": self.resolutions[int(zz[self.resolution_decision])]}

    def config_string(self, z: ArrayLike) -> str:
        """The shipped tables' form of ``config``, e.g. ``ks:3-5-...;e:3-6-...;d:2-4-...;r:160``."""
        c = self.config(z)
        return ";".join(f"{k}:{'-'.join(map(str, c[k]))}" for k in ("ks", "e", "d")) + \
            f";r:{c['r']}"

    def z_of(self, value: Any) -> tuple[int, ...]:
        """Canonical z of a z (sequence of ints), an OFA configuration (dict), or text: the
        OFA string, a JSON configuration or ``0-3-6-...``; raises InputError naming the field."""
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("{"):
                try:
                    value = json.loads(text)
                except ValueError as e:
                    raise InputError(f"space {self.name!r}: not an OFA configuration: {e}") \
                        from None
            elif text.startswith("ks:"):
                value = _parse_string(text)
            else:
                return super().parse_z(text)
        if isinstance(value, dict):
            return self._z_of_config(value)
        return tuple(int(v) for v in self.check_z(value)[0])

    def parse_z(self, text: str) -> tuple[int, ...]:
        return self.z_of(text)

    def _z_of_config(self, config: dict) -> tuple[int, ...]:
        where = f"space {self.name!r}: OFA configuration"
        r = config.get("r", config.get("image_size", config.get("resolution")))
        if isinstance(r, (list, tuple)) and len(r) in (1, 2) and len(set(r)) == 1:
            r = r[0]
        missing = [k for k, v in (("ks", config.get("ks")), ("e", config.get("e")),
                                  ("d", config.get("d")), ("r", r)) if v is None]
        if missing:
            raise InputError(f"{where}: missing {missing[0]!r} (expected ks, e, d and r; got "
                             f"{_short(config)})")
        n = self.n_blocks
        z = [0] * len(self.decisions)
        ks, es = _values(config["ks"], n, self.kernels, f"{where}: ks"), \
            _values(config["e"], n, self.expands, f"{where}: e")
        for b in range(n):
            z[b] = self.kernels.index(ks[b]) * len(self.expands) + self.expands.index(es[b])
        ds = _values(config["d"], len(self.stages), self.depths, f"{where}: d")
        for s, d in enumerate(ds):
            if d > len(self.stages[s]):
                raise InputError(f"{where}: d[{s}] = {d} exceeds the {len(self.stages[s])} "
                                 f"blocks of stage {s + 1}")
            z[self.depth_decisions[s]] = self.depths.index(d)
        z[-1] = self.resolutions.index(_values([r], 1, self.resolutions, f"{where}: r")[0])
        return tuple(int(v) for v in self.check_z(z)[0])

    # --- costs that are additive within a resolution ----------------------------------------

    def cost_tensor(self, layer_cost: Callable[[Sequence[Layer]], ArrayLike]
                    ) -> tuple[np.ndarray, np.ndarray]:
        """``(fixed, C)``: fixed[r] the cost of resolution index r's fixed layers (stem, first
        block, final expand, pooling, head) and C[r, d, c] that of choice c of block decision
        d at resolution r (0 for depth and resolution decisions), so that cost(z) =
        fixed[r] + sum over running blocks of C[r, d, z_d] (``evaluate_tensor``).
        ``layer_cost`` is called once, on the unique layers."""
        return self._tensor(layer_cost, sum)

    def _tensor(self, layer_cost: Callable[[Sequence[Layer]], ArrayLike],
                total: Callable[[list[float]], float], slices: ArrayLike | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
        """cost_tensor, with the fixed layers' costs combined by ``total`` (sum, max); with
        ``slices``, only those resolution indices are priced (the others are NaN)."""
        R, D = len(self.resolutions), len(self.decisions)
        wanted = range(R) if slices is None else sorted({int(r) for r in np.ravel(slices)})
        fixed_groups = self.decisions[self.resolution_decision].layers
        layers = list({ly.key: ly for r in wanted for ly in (
            *fixed_groups[r], *self.head,
            *(group[r] for d in range(self.n_blocks) for group in self.decisions[d].layers))
        }.values())
        by_key = dict(zip((ly.key for ly in layers),
                          np.asarray(layer_cost(layers), dtype=float)))
        C = np.full((R, D, max(self.n_choices)), np.nan)
        C[:, self.n_blocks:] = 0.0
        fixed = np.full(R, np.nan)
        for r in wanted:
            for d in range(self.n_blocks):
                C[r, d, :len(self.decisions[d].layers)] = [
                    by_key[group[r].key] for group in self.decisions[d].layers]
            fixed[r] = total([by_key[ly.key] for ly in fixed_groups[r] + self.head])
        return fixed, C

    def evaluate_tensor(self, z: ArrayLike, fixed: np.ndarray, C: np.ndarray,
                        checked: bool = False) -> np.ndarray:
        """fixed[r] + the sum over running blocks of C[r, d, z_d] for many z (no loop over z)."""
        Z = np.asarray(z) if checked else self.check_z(z)
        r = Z[:, self.resolution_decision]
        n = self.n_blocks
        costs = C[r[:, None], np.arange(n)[None, :], Z[:, :n]]
        return fixed[r] + np.where(self.active(Z)[:, :n], costs, 0.0).sum(axis=1)

    # --- resolution-aware features of z, for models fitted from measured networks ------------

    @functools.cached_property
    def block_types(self) -> tuple[int, ...]:
        """Per block decision, its type: 2 x stage + 0 for a stage's first block, + 1 for the
        later ones (which are one layer: same input, output and stride)."""
        return tuple(2 * s + (j > 0) for s, blocks in enumerate(self.stages)
                     for j, _ in enumerate(blocks))

    @functools.cached_property
    def feature_names(self) -> tuple[str, ...]:
        """The names of ``features``: ``r=128`` ... (one per resolution), then for each block
        type (``stage1_first``, ``stage1_later``, ...) and choice ``<type>:<choice>`` (how
        many running blocks of that type chose it) and ``<type>:<choice>*(r/224)^2`` (the
        same, scaled by the input's area)."""
        types = [f"stage{s + 1}_{kind}" for s in range(len(self.stages))
                 for kind in ("first", "later")]
        choices = self.decisions[0].choices
        return tuple(f"r={r}" for r in self.resolutions) + tuple(
            f"{t}:{c}{scaled}" for scaled in ("", f"*(r/{self.resolutions[-1]})^2")
            for t in types for c in choices)

    def area(self, r_index: ArrayLike) -> np.ndarray:
        """(r / the largest resolution)^2 of resolution indices."""
        return (np.asarray(self.resolutions)[np.asarray(r_index)] / self.resolutions[-1]) ** 2

    def features(self, z: ArrayLike) -> np.ndarray:
        """(N, len(feature_names)) resolution-aware features of z: a resolution's own cost
        (one-hot), and per block type and choice a count of running blocks (what a block
        costs at any size: kernel launches) and that count x (r / 224)^2 (what grows with
        the area: compute and memory traffic). A model linear in them is additive within a
        resolution (``weights_tensor``): the exact search and the sampler stay exact."""
        Z = self.check_z(z)
        n_types, K = 2 * len(self.stages), len(self.decisions[0].choices)
        R = len(self.resolutions)
        X = np.zeros((len(Z), R + 2 * n_types * K))
        rows = np.arange(len(Z))
        X[rows, Z[:, self.resolution_decision]] = 1.0
        area = self.area(Z[:, self.resolution_decision])
        active = self.active(Z)
        for d, t in enumerate(self.block_types):
            on = rows[active[:, d]]
            col = R + t * K + Z[on, d]
            np.add.at(X, (on, col), 1.0)
            np.add.at(X, (on, col + n_types * K), area[on])
        return X

    def weights_tensor(self, w: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        """(fixed, C) of the model w . features(z), for ``evaluate_tensor``: fixed[r] = the
        weight of ``r=...``; C[r, d, c] = the weights of d's type and choice c (unit, and
        scaled by the area of r). NaN weights (features no network had) give NaN costs."""
        w = np.asarray(w, dtype=float)
        R, D, K = len(self.resolutions), len(self.decisions), max(self.n_choices)
        n_types, k = 2 * len(self.stages), len(self.decisions[0].choices)
        if w.shape != (len(self.feature_names),):
            raise InputError(f"space {self.name!r}: {len(self.feature_names)} feature weights "
                             f"expected, got shape {w.shape}")
        unit = w[R:R + n_types * k].reshape(n_types, k)
        scaled = w[R + n_types * k:].reshape(n_types, k)
        C = np.zeros((R, D, K))
        area = self.area(np.arange(R))
        for d, t in enumerate(self.block_types):
            C[:, d, :k] = unit[t][None, :] + area[:, None] * scaled[t][None, :]
        return w[:R].copy(), C

    def sum_z(self, z: ArrayLike, layer_cost: Callable[[Sequence[Layer]], ArrayLike]
              ) -> np.ndarray:
        """The cost of many z as the sum over each z's layers, through ``cost_tensor`` of
        their resolutions only (``layer_cost`` is called on the layers those can have)."""
        Z = self.check_z(z)
        return self.evaluate_tensor(Z, *self._tensor(layer_cost, sum,
                                                     Z[:, self.resolution_decision]),
                                    checked=True)

    def peak_tensor(self) -> tuple[np.ndarray, np.ndarray]:
        """(fixed, A): peak activation bytes of z = max(fixed[r], max over running blocks of
        A[r, d, z_d])."""
        return self._tensor(lambda layers: [ly.peak_activation_bytes for ly in layers], max)

    def min_z_tensor(self, fixed: np.ndarray, C: np.ndarray,
                     allowed: np.ndarray | None = None) -> tuple[np.ndarray, float]:
        """The z of least cost fixed[r] + sum of running C and that cost (``allowed``: (R, D,
        K) mask of the choices that may be taken; default all)."""
        K = np.arange(C.shape[2])[None, None, :] < np.asarray(self.n_choices)[None, :, None]
        ok = K if allowed is None else K & allowed
        cheap = np.where(ok, C, np.inf)
        best: tuple[float, np.ndarray] | None = None
        for r in range(len(self.resolutions)):
            z = np.zeros(len(self.decisions), dtype=np.int64)
            z[self.resolution_decision] = r
            total = float(fixed[r])
            for s, blocks in enumerate(self.stages):
                least = [(float(sum(cheap[r, b].min() for b in blocks[:d])), i)
                         for i, d in enumerate(self.depths) if d <= len(blocks)]
                cost, i = min(least)
                total += cost
                z[self.depth_decisions[s]] = i
                for b in blocks[:self.depths[i]]:
                    z[b] = int(np.argmin(cheap[r, b]))
            if best is None or total < best[0]:
                best = (total, z)
        assert best is not None
        return best[1], best[0]


def _parse_string(text: str) -> dict[str, Any]:
    """The shipped tables' ``ks:...;e:...;d:...;r:...`` as a configuration dict."""
    parts = {}
    for part in text.split(";"):
        key, sep, values = part.strip().partition(":")
        if not sep or key not in ("ks", "e", "d", "r") or key in parts or \
                not re.fullmatch(r"\d+(-\d+)*", values.strip()):
            raise InputError(f"not an OFA string: {_short(text)} (expected "
                             f"'ks:3-5-...;e:3-6-...;d:2-4-...;r:160', '-'-joined integers)")
        parts[key] = [int(v) for v in values.strip().split("-")]
    if "r" in parts and len(parts["r"]) != 1:
        raise InputError(f"not an OFA string: {_short(text)} (r is one resolution)")
    return {k: (v[0] if k == "r" else v) for k, v in parts.items()}


def _values(values: Any, n: int, allowed: Sequence[int], where: str) -> list[int]:
    """n integers among ``allowed``; raise InputError naming the entry."""
    if not isinstance(values, (list, tuple)) or len(values) != n:
        raise InputError(f"{where} must be a list of {n} integers, got {_short(values)}")
    for i, v in enumerate(values):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v not in allowed:
            raise InputError(f"{where}[{i}] = {v!r} is not one of {list(allowed)}")
    return [int(v) for v in values]


def ofa(resolutions: Sequence[int] = RESOLUTIONS, *, stages: int = len(STAGES),
        kernels: Sequence[int] = KERNELS, expands: Sequence[int] = EXPANDS,
        depths: Sequence[int] = DEPTHS, num_classes: int = NUM_CLASSES) -> OFASpace:
    """The Once-for-All MobileNetV3 space ``ofa_mbv3_d234_e346_k357_w1.2`` (see the module
    docstring); the arguments reduce it (fewer stages, choices or resolutions: e.g. to check
    an exact solver by enumeration) and name it ``ofa-reduced``.

    Example:
        >>> space = ofa()
        >>> len(space.decisions), space.n_choices[0], space.n_choices[20], space.n_choices[-1]
        (26, 9, 3, 25)
        >>> f"{space.size:.2e}"
        '5.44e+20'
    """
    reduced = (tuple(resolutions), stages, tuple(kernels), tuple(expands), tuple(depths),
               num_classes) != (RESOLUTIONS, len(STAGES), KERNELS, EXPANDS, DEPTHS, NUM_CLASSES)
    if not 1 <= stages <= len(STAGES) or not resolutions or not kernels or not expands or \
            not depths or min(depths) < 1 or max(depths) > max(DEPTHS) or num_classes < 1:
        raise InputError(f"ofa: stages 1..{len(STAGES)}, depths 1..{max(DEPTHS)} and at "
                         f"least one kernel, expand ratio and resolution, got stages={stages}, "
                         f"depths={tuple(depths)}")
    if any(r < 32 or r % 4 for r in resolutions) or list(resolutions) != sorted(set(resolutions)):
        raise InputError(f"ofa: resolutions must rise, each a multiple of 4 from 32, got "
                         f"{tuple(resolutions)}")
    w = widths()
    stage_widths, blocks = w[2:2 + stages], max(depths)
    choices = tuple(f"k{k}_e{e}" for k in kernels for e in expands)
    block_groups: list[list[tuple[Layer, ...]]] = [
        [() for _ in choices] for _ in range(stages * blocks)]
    fixed_groups = []
    for r in resolutions:
        stem = Layer("conv", (3, r, r), w[0], kernel=3, stride=2, act="h_swish")
        first = Layer("mbv3", stem.out_shape, w[1], kernel=3, stride=1, expand=1, act="relu")
        shape = first.out_shape
        for s, (out, (stride, act, se)) in enumerate(zip(stage_widths, STAGES)):
            for j in range(blocks):
                layers = [Layer("mbv3", shape, out, kernel=k, stride=stride if j == 0 else 1,
                                expand=e, act=act, se=se) for k in kernels for e in expands]
                for c, layer in enumerate(layers):
                    block_groups[s * blocks + j][c] += (layer,)
                shape = layers[0].out_shape
        expand = Layer("conv", shape, w[7], kernel=1, stride=1, act="h_swish")
        fixed_groups.append((stem, first, expand, Layer("gap", expand.out_shape)))
    decisions = [Decision(f"stage{b // blocks + 1}_block{b % blocks + 1}", choices,
                          tuple(group)) for b, group in enumerate(block_groups)]
    decisions += [Decision(f"stage{s + 1}_depth", tuple(map(str, depths)),
                           ((),) * len(depths)) for s in range(stages)]
    decisions.append(Decision("resolution", tuple(map(str, resolutions)), tuple(fixed_groups)))
    head = (Layer("conv_act", (w[7], 1, 1), w[8], kernel=1, act="h_swish"),
            Layer("linear", (w[8], 1, 1), num_classes))
    first_shape = (3, resolutions[-1], resolutions[-1])
    return OFASpace("ofa-reduced" if reduced else "ofa", first_shape, (), tuple(decisions),
                    head, tuple(kernels), tuple(expands), tuple(depths), tuple(resolutions),
                    tuple(tuple(range(s * blocks, (s + 1) * blocks)) for s in range(stages)))


__all__ = ["NETWORK", "OFASpace", "ofa", "widths"]
