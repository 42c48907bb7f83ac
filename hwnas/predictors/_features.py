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


def by_op(layers: Sequence[Layer]) -> dict[str, list[int]]:
    """Op kind -> indices of its layers."""
    groups: dict[str, list[int]] = {}
    for i, layer in enumerate(layers):
        groups.setdefault(layer.op, []).append(i)
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
