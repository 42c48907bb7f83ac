"""Devices whose runtime drops what does not reach the output (TFLite and the like on phones and
boards, HW-NAS-Bench's pixel3): a network there costs what it still computes, and a cell whose
output does not depend on its input costs almost nothing (0.003-0.4 ms among 5-40 ms). Transfer
fits such a device on the z it really computes (``computed_z``), its dead networks apart."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from hwnas.spaces import SearchSpace

#: a space name -> Z -> (the computed Z, whether each network computes nothing), for the
#: spaces whose cells a runtime can drop
RULES: dict[str, Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]] = {}


def drop_rule(space: SearchSpace) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]] | None:
    """The space's rule of what a dropping runtime computes (``nb201``), else None."""
    if not RULES:
        from hwnas.spaces.nb201 import computed_z
        RULES["nb201"] = computed_z
    return RULES.get(space.name)


def dead_networks(space: SearchSpace, Z: np.ndarray) -> np.ndarray:
    """Which rows of Z a dropping runtime computes nothing of (all False where the space has
    no rule): known devices are fitted without them (a dropping one's would bend its model)."""
    rule = drop_rule(space)
    return rule(Z)[1] if rule is not None else np.zeros(len(Z), dtype=bool)


def dead_latency(y: np.ndarray, dead: np.ndarray, model_ms: float) -> float:
    """What a dead network costs: the median of those measured, else what the model says of
    a network that computes none of its choices (``model_ms``)."""
    return float(np.median(y[dead])) if dead.any() else float(model_ms)
