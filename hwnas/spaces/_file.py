"""Search spaces defined in a JSON or YAML file.

Example (YAML)::

    name: tiny
    input_shape: [3, 32, 32]
    stem:
      - {op: conv, out: 16, k: 3, s: 2}
    decisions:
      - name: block1
        choices:
          MB3 3x3: [{op: mbconv, out: 24, k: 3, s: 2, e: 3}]
          MB6 5x5: [{op: mbconv, out: 24, k: 5, s: 2, e: 6}]
      - name: block2
        choices:
          MB3 3x3: [{op: mbconv, out: 24, k: 3, s: 1, e: 3}]
          skip: []
    head:
      - {op: conv, out: 64, k: 1}
      - {op: gap}
      - {op: linear, out: 10}

Layers chain: each takes the previous one's output shape, so a layer is its op and
attributes (``out``, ``k``, ``s``, ``g``, ``e``, ``act``, as in layer keys); a full layer key
string is accepted too. Every choice of a decision must give the same output shape (an empty
choice, a skip, keeps its input). Errors name the file and the key, or the line of a syntax
error.
"""

from __future__ import annotations

import json
import os
from typing import Any, List, Tuple

from hwnas.errors import InputError
from hwnas.layers import ATTR_FIELDS, OPS, Layer
from hwnas.spaces._base import Decision, SearchSpace


class SpaceFileError(InputError):
    """A malformed space file; the message names the file and the key or line."""


def read_space_file(path: str | os.PathLike) -> SearchSpace:
    path = os.fspath(path)
    try:
        with open(path) as f:
            text = f.read()
    except OSError as e:
        raise SpaceFileError(f"{path}: cannot read the space file: {e.strerror}") from None
    if path.endswith((".yaml", ".yml")):
        from hwnas._imports import require
        yaml = require("yaml", "a YAML space file")
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f", line {mark.line + 1}" if mark else ""
            raise SpaceFileError(f"{path}{where}: not valid YAML: "
                                 f"{getattr(e, 'problem', e)}") from None
    else:
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as e:
            raise SpaceFileError(f"{path}, line {e.lineno}: not valid JSON: {e.msg}") from None
    return space_from_dict(doc, path)


def space_from_dict(doc: Any, where: str = "space") -> SearchSpace:
    def fail(key: str, message: str):
        raise SpaceFileError(f"{where}: {key}: {message}")

    if not isinstance(doc, dict):
        fail("top level", "expected a mapping with name, input_shape, stem, decisions, head")
    unknown = set(doc) - {"name", "input_shape", "stem", "decisions", "head"}
    if unknown:
        fail(sorted(unknown)[0], "unknown key (expected name, input_shape, stem, decisions, "
                                 "head)")
    for key in ("name", "input_shape", "decisions"):
        if key not in doc:
            fail(key, "missing")
    if not isinstance(doc["name"], str) or not doc["name"]:
        fail("name", "must be a non-empty string")
    shape = doc["input_shape"]
    if not (isinstance(shape, list) and len(shape) == 3 and
            all(isinstance(v, int) and v > 0 for v in shape)):
        fail("input_shape", f"must be 3 positive integers [C, H, W], got {shape!r}")
    shape = tuple(shape)

    def layers(specs: Any, key: str, shape: Tuple[int, int, int]):
        if not isinstance(specs, list):
            fail(key, "must be a list of layers")
        out: List[Layer] = []
        for i, spec in enumerate(specs):
            layer = _layer(spec, shape, f"{key}[{i}]", fail)
            out.append(layer)
            shape = layer.out_shape
        return tuple(out), shape

    stem, shape = layers(doc.get("stem", []), "stem", shape)
    if not isinstance(doc["decisions"], list) or not doc["decisions"]:
        fail("decisions", "must be a non-empty list")
    decisions = []
    for d, entry in enumerate(doc["decisions"]):
        key = f"decisions[{d}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("choices"), dict) \
                or not entry["choices"]:
            fail(key, "must be a mapping with 'name' and a non-empty 'choices' mapping")
        name = str(entry.get("name", f"decision{d}"))
        groups, out_shapes = [], set()
        for choice, specs in entry["choices"].items():
            group, out_shape = layers(specs if specs is not None else [],
                                      f"{key}.choices[{choice!r}]", shape)
            groups.append(group)
            out_shapes.add(out_shape)
        if len(out_shapes) > 1:
            fail(f"{key}.choices", f"choices give different output shapes {sorted(out_shapes)}: "
                                   f"every choice must give the same shape")
        decisions.append(Decision(name, tuple(str(c) for c in entry["choices"]), tuple(groups)))
        shape = out_shapes.pop()
    head, _ = layers(doc.get("head", []), "head", shape)
    return SearchSpace(doc["name"], tuple(doc["input_shape"]), stem, tuple(decisions), head)


def _layer(spec: Any, shape: Tuple[int, int, int], key: str, fail) -> Layer:
    if isinstance(spec, str):
        try:
            layer = Layer.from_key(spec)
        except ValueError as e:
            fail(key, str(e))
        if layer.in_shape != shape:
            fail(key, f"input shape {layer.in_shape} does not follow the previous layer's "
                      f"output {shape}")
        return layer
    if not isinstance(spec, dict) or "op" not in spec:
        fail(key, f"a layer is a mapping with 'op' (one of {sorted(OPS)}) or a layer key, "
                  f"got {spec!r}")
    op = spec["op"]
    if op not in OPS:
        fail(key, f"unknown op {op!r}: expected one of {sorted(OPS)}")
    kwargs = {}
    for name, value in spec.items():
        if name == "op":
            continue
        if name not in OPS[op]:
            fail(f"{key}.{name}", f"not an attribute of {op} (it takes {', '.join(OPS[op])})")
        kwargs[ATTR_FIELDS[name]] = value
    try:
        return Layer(op, shape, **kwargs)
    except (ValueError, TypeError) as e:
        fail(key, str(e))
