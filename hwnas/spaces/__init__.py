"""Search spaces: the encoding z, what it decodes to, and the built-in spaces."""

from __future__ import annotations

from hwnas.spaces._base import (INPUT, Architecture, Decision, Graph, SearchSpace, chain,
                                unit_graph, walk)
from hwnas.spaces.mobilenet import mobilenet
from hwnas.spaces.nb201 import nb201

#: built-in spaces by name, each a function returning a SearchSpace with its defaults
SPACES = {"mobilenet": mobilenet, "nb201": nb201}


def get_space(name: str) -> SearchSpace:
    """Return a built-in space by name; raise ValueError listing the known ones."""
    try:
        return SPACES[name]()
    except KeyError:
        raise ValueError(f"unknown space {name!r}: expected one of {sorted(SPACES)}") from None


__all__ = ["INPUT", "Architecture", "Decision", "Graph", "SearchSpace", "SPACES", "chain",
           "get_space", "mobilenet", "nb201", "unit_graph", "walk"]
