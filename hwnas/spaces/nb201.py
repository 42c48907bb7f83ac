"""The NAS-Bench-201 space: one searched cell (4 nodes, 6 edges, 5 ops) in its macro skeleton.

Skeleton: 3x3 conv + batch norm to 16 channels; 3 stages of 5 cells at 16, 32 and 64
channels with a residual reduction block between stages; batch norm + ReLU, global pooling,
linear. Node j of a cell is the sum of op(node i) over its edges i < j; z has one entry per
edge in NAS-Bench-201's order (1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2), so
``|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|``
is z = (3, 3, 4, 1, 3, 1).

Each node accumulates its edges from zero (one ``add`` per edge that is not ``none``), so the
latency of z is exactly additive over edges.

``nb201(prune=True)`` (the space ``nb201-pruned``) models runtimes that drop what does not
reach the output (TFLite and the like on phones and boards): in each cell, an edge is computed
only if its source node has a path from the cell input and its target node has a path to the
cell output (node 3). A cell whose output does not depend on its input then computes nothing
and outputs zeros (a runtime input, never folded), so its network costs only what is still
computed. Latency is then no longer additive over edges: the space is not ``additive``, has
no cost matrix (NotAdditiveError), and predictors sum each z's decoded layers instead.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from hwnas.errors import InputError
from hwnas.layers import Layer
from hwnas.spaces._base import INPUT, Architecture, Decision, Graph, SearchSpace

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))  # (to node, from node)
STAGES = (16, 32, 64)
CELLS_PER_STAGE = 5


@functools.cache
def _op_layers(op: str, shape: tuple[int, int, int]) -> tuple[Layer, ...]:
    """The layers one edge adds to a cell: its op, then the add into its node (made once per
    op and shape: decoding builds no layer)."""
    if op == "none":
        return ()
    add = Layer("add", shape)
    if op == "skip_connect":
        return (add,)
    if op == "avg_pool_3x3":
        return (Layer("avgpool", shape, kernel=3, stride=1), add)
    kernel = 1 if op == "nor_conv_1x1" else 3
    return (Layer("relu_conv_bn", shape, shape[0], kernel=kernel, stride=1), add)


def kept_edges(z: Sequence[int]) -> tuple[bool, ...]:
    """Per edge, whether a runtime that drops dead nodes computes it: the edge is not
    ``none``, its source has a path from the cell input and its target one to node 3."""
    ops = [OPS[int(c)] for c in z]
    live, reaches = {0}, {3}
    for (to, frm), op in zip(EDGES, ops):  # EDGES run by target node, upwards
        if op != "none" and frm in live:
            live.add(to)
    for (to, frm), op in reversed(list(zip(EDGES, ops))):
        if op != "none" and to in reaches:
            reaches.add(frm)
    return tuple(op != "none" and frm in live and to in reaches
                 for (to, frm), op in zip(EDGES, ops))


def computed_z(Z) -> tuple[np.ndarray, np.ndarray]:
    """Each z as a runtime that drops what does not reach the output computes it (its dead
    code eliminated): an edge whose target node has no path to the cell output (node 3)
    becomes ``none``; and whether the cell's output does not depend on its input at all (no
    edge of ``kept_edges``: the network computes nothing but a constant, which such a runtime
    folds). On HW-NAS-Bench's pixel3 this is what the phone does: its latency is additive
    over the computed z of the other networks at Spearman 0.967 (over z itself 0.943, over
    ``nb201-pruned``'s kept edges 0.924), and the networks that compute nothing cost 0.05 ms
    (median) among 1-37 ms.

    Example:
        >>> Zc, dead = computed_z([(3, 3, 0, 0, 0, 0), (3, 3, 3, 3, 0, 0)])
        >>> Zc.tolist(), dead.tolist()
        ([[0, 0, 0, 0, 0, 0], [0, 0, 0, 3, 0, 0]], [True, False])
    """
    Z = np.asarray(Z, dtype=int).reshape(-1, len(EDGES))
    keep = np.zeros(Z.shape, dtype=bool)
    dead = np.zeros(len(Z), dtype=bool)
    for row, z in enumerate(Z):
        reaches = {3}
        for e in reversed(range(len(EDGES))):
            to, frm = EDGES[e]
            if z[e] != 0 and to in reaches:
                reaches.add(frm)
                keep[row, e] = True
        dead[row] = not any(kept_edges(z))
    return np.where(keep, Z, 0), dead


@dataclass(frozen=True)
class NB201Space(SearchSpace):
    #: drop edges that do not connect the cell input to its output (see the module docstring)
    prune: bool = False

    @property
    def additive(self) -> bool:
        return not self.prune

    @property
    def signature(self) -> str:
        if not self.prune:
            return super().signature
        return hashlib.sha1((super().signature + "|prune").encode()).hexdigest()[:12]

    def decode(self, z: Sequence[int]) -> Architecture:
        arch = super().decode(z)
        if not self.prune:
            return arch
        return replace(arch, layers=tuple(layer for layer, _ in arch.graph))

    def graph(self, z: tuple[int, ...], layers: Sequence[Layer]) -> Graph:
        nodes: list[tuple[Layer, tuple[int | None, ...]]] = []

        def node(layer: Layer, *inputs: int | None) -> int:
            nodes.append((layer, inputs))
            return len(nodes) - 1

        stem, *reductions = self.stem  # the stem conv, then the fixed reduction blocks
        h: int | None = node(stem, INPUT)
        for stage, channels in enumerate(STAGES):
            if stage:
                h = node(reductions[stage - 1], h)
            shape = (channels, self.input_shape[1] >> stage, self.input_shape[2] >> stage)
            kept = kept_edges(z) if self.prune else (True,) * len(EDGES)
            for _ in range(CELLS_PER_STAGE):
                outs: list[int | None] = [h, None, None, None]
                for (to, frm), choice, keep in zip(EDGES, z, kept):
                    op = OPS[choice]
                    if op == "none" or not keep:
                        continue
                    src, edge = outs[frm], _op_layers(op, shape)
                    if op != "skip_connect":
                        src = node(edge[0], src)
                    outs[to] = node(edge[-1], outs[to], src)
                h = outs[3]
        for layer in self.head:
            h = node(layer, h)
        return tuple(nodes)

    def parse_z(self, text: str) -> tuple[int, ...]:
        text = text.strip()
        return arch_to_z(text) if text.startswith("|") else super().parse_z(text)

    def describe(self, z: Sequence[int]) -> str:
        return z_to_arch(z)


def nb201(input_shape: Sequence[int] = (3, 32, 32), num_classes: int = 10,
          prune: bool = False) -> NB201Space:
    """The NAS-Bench-201 space (6 edges x 5 ops; 15,625 cells); with ``prune`` the space
    ``nb201-pruned``, whose cells compute only edges that connect their input to their output.

    Example:
        >>> space = nb201()
        >>> space.parse_z("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|"
        ...               "+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|")
        (3, 3, 4, 1, 3, 1)
    """
    c, h, w = (int(v) for v in input_shape)
    if h % 4 or w % 4:
        raise InputError(f"nb201: input height and width must be multiples of 4, got {h}x{w}")
    stem = Layer("conv", (c, h, w), STAGES[0], kernel=3, stride=1, act="none")
    reductions = tuple(Layer("resblock", (STAGES[i], h >> i, w >> i), STAGES[i + 1], stride=2)
                       for i in range(len(STAGES) - 1))
    decisions = []
    for (to, frm) in EDGES:
        groups = []
        for op in OPS:
            layers: tuple[Layer, ...] = ()
            for stage, channels in enumerate(STAGES):
                shape = (channels, h >> stage, w >> stage)
                layers += _op_layers(op, shape) * CELLS_PER_STAGE
            groups.append(layers)
        decisions.append(Decision(f"edge_{to}<-{frm}", OPS, tuple(groups)))
    last = (STAGES[-1], h >> 2, w >> 2)
    head = (Layer("bn", last, act="relu"), Layer("gap", last),
            Layer("linear", (STAGES[-1], 1, 1), num_classes))
    return NB201Space("nb201-pruned" if prune else "nb201", (c, h, w), (stem,) + reductions,
                      tuple(decisions), head, prune)


_ARCH = re.compile(r"^\|(?P<node1>[^+]*)\|\+\|(?P<node2>[^+]*)\|\+\|(?P<node3>[^+]*)\|$")


def arch_to_z(arch: str) -> tuple[int, ...]:
    """Parse a NAS-Bench-201 arch string; raise InputError naming what is wrong."""
    m = _ARCH.match(arch.strip())
    if not m:
        raise InputError(f"not a NAS-Bench-201 arch string: {arch!r} (expected "
                         f"'|op~0|+|op~0|op~1|+|op~0|op~1|op~2|')")
    z = []
    for to in (1, 2, 3):
        edges = m[f"node{to}"].split("|")
        if len(edges) != to:
            raise InputError(f"arch string {arch!r}: node {to} needs {to} edges, got "
                             f"{len(edges)}")
        for frm, edge in enumerate(edges):
            op, _, src = edge.partition("~")
            if op not in OPS:
                raise InputError(f"arch string {arch!r}: unknown op {op!r}, expected one of "
                                 f"{OPS}")
            if src != str(frm):
                raise InputError(f"arch string {arch!r}: edge {edge!r} of node {to} must come "
                                 f"from node {frm}")
            z.append(OPS.index(op))
    return tuple(z)


def z_to_arch(z: Sequence[int]) -> str:
    ops = [OPS[int(c)] for c in z]
    nodes = [ops[0:1], ops[1:3], ops[3:6]]
    return "+".join("|" + "|".join(f"{op}~{i}" for i, op in enumerate(node)) + "|"
                    for node in nodes)
