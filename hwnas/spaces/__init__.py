"""Search spaces: the encoding z, what it decodes to, and the built-in spaces."""

from __future__ import annotations

import functools
from typing import Callable

from hwnas.errors import InputError
from hwnas.spaces._base import (
    INPUT,
    Architecture,
    Decision,
    Graph,
    NotAdditiveError,
    SearchSpace,
    additive_cost,
    chain,
    format_z,
    parse_z,
    unit_graph,
    walk,
)
from hwnas.spaces._file import SpaceFileError, read_space_file, space_from_dict
from hwnas.spaces.fbnet import fbnet
from hwnas.spaces.mobilenet import mobilenet
from hwnas.spaces.nb201 import nb201
from hwnas.spaces.ofa import OFASpace, ofa


@functools.cache
def _ofa() -> SearchSpace:
    """The ofa space, built once (its 1,257 layers take a quarter of a second; it is frozen)."""
    return ofa()


#: built-in spaces by name, each a function returning a SearchSpace with its defaults
SPACES: dict[str, Callable[[], SearchSpace]] = {
    "mobilenet": mobilenet, "nb201": nb201, "nb201-pruned": lambda: nb201(prune=True),
    "fbnet": fbnet, "ofa": _ofa}


def get_space(name: str) -> SearchSpace:
    """Return a built-in space by name; raise InputError listing the known ones."""
    try:
        return SPACES[name]()
    except (KeyError, TypeError):
        raise InputError(f"unknown space {name!r}: expected one of {sorted(SPACES)}, or a "
                         f".json/.yaml space file") from None


def load_space(name_or_path: str) -> SearchSpace:
    """A built-in space by name, or a space defined in a .json/.yaml/.yml file."""
    if name_or_path in SPACES or not name_or_path.endswith((".json", ".yaml", ".yml")):
        return get_space(name_or_path)
    return read_space_file(name_or_path)


__all__ = ["INPUT", "Architecture", "Decision", "Graph", "NotAdditiveError", "SearchSpace",
           "SpaceFileError", "SPACES", "additive_cost", "chain", "fbnet", "format_z", "get_space",
           "load_space", "mobilenet", "nb201", "OFASpace", "ofa", "parse_z", "read_space_file",
           "space_from_dict", "unit_graph", "walk"]
