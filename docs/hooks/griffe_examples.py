"""A griffe extension (mkdocstrings' reader of docstrings): hwnas's ``Example:`` sections are
read as Google-style ``Examples:`` sections, so their ``>>>`` lines render as Python code.

hwnas writes ``Example:`` (one example), which griffe would take for an admonition and render
as Markdown prose, where ``[...][:2]`` in a doctest reads as a link.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_EXAMPLE = re.compile(r"^(\s*)Example:[ \t]*$", re.MULTILINE)


class ExampleSections(griffe.Extension):
    def on_object(self, *, obj: Any, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = _EXAMPLE.sub(r"\1Examples:", obj.docstring.value)
