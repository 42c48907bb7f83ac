"""Layer features for the regressors, in one fixed order."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from hwnas.errors import InputError
from hwnas.layers import Layer

#: what the regressors see of a layer: costs, shapes and attributes
FEATURES = ("macs", "params", "input_bytes", "output_bytes", "in_channels", "out_channels",
            "in_size", "out_size", "kernel", "stride", "expand")


def features(layers: Sequence[Layer]) -> np.ndarray:
    """An (N, len(FEATURES)) float array."""
    return np.array([[layer.macs, layer.params, layer.input_bytes, layer.output_bytes,
                      layer.in_shape[0], layer.out_channels, layer.in_shape[1],
                      layer.out_shape[1], layer.kernel, layer.stride, layer.expand]
                     for layer in layers], dtype=float).reshape(len(layers), len(FEATURES))


def op_key(layer: Layer) -> str:
    """The op kind a per-op model is fitted for: the op, and for Once-for-All's ``mbv3``
    blocks also their activation and squeeze-and-excite (``mbv3/h_swish/se``), which cost
    what the shared features (MACs, sizes) do not show.

    Example:
        >>> op_key(Layer("mbv3", (16, 8, 8), 16, kernel=3, expand=3, act="h_swish", se=1))
        'mbv3/h_swish/se'
    """
    if layer.op != "mbv3":
        return layer.op
    return f"mbv3/{layer.act}" + ("/se" if layer.se else "")


def by_op(layers: Sequence[Layer]) -> dict[str, list[int]]:
    """Op kind (``op_key``) -> indices of its layers."""
    groups: dict[str, list[int]] = {}
    for i, layer in enumerate(layers):
        groups.setdefault(op_key(layer), []).append(i)
    return groups


def per_op(layers: Sequence[Layer], models: Mapping[str, Any], what: str
           ) -> Iterator[tuple[Any, list[int]]]:
    """(model, indices of its layers) for each op kind of ``layers``; raises InputError naming
    the first op kind that ``models`` lacks (``what`` names the predictor)."""
    for op, rows in by_op(layers).items():
        if op not in models:
            raise InputError(f"the {what} predictor has no model for op {op!r} (it was fitted "
                             f"on {sorted(models)}), e.g. layer {layers[rows[0]].key}")
        yield models[op], rows
