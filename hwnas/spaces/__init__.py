"""Search spaces: the encoding z, what it decodes to, and the built-in spaces."""

from __future__ import annotations

from hwnas.spaces._base import Architecture, Decision, SearchSpace
from hwnas.spaces.mobilenet import mobilenet

#: built-in spaces by name, each a function returning a SearchSpace with its defaults
SPACES = {"mobilenet": mobilenet}


def get_space(name: str) -> SearchSpace:
    """Return a built-in space by name; raise ValueError listing the known ones."""
    try:
        return SPACES[name]()
    except KeyError:
        raise ValueError(f"unknown space {name!r}: expected one of {sorted(SPACES)}") from None


__all__ = ["Architecture", "Decision", "SearchSpace", "SPACES", "get_space", "mobilenet"]
