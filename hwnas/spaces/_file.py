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
from collections.abc import Callable
from typing import Any, NoReturn

from hwnas._files import MAX_INT_DIGITS, MAX_SPACE_BYTES, is_safe_name, json_int, read_text
from hwnas.errors import SpaceFileError
from hwnas.layers import ACTIVATIONS, ATTR_FIELDS, OPS, Layer
from hwnas.spaces._base import Decision, SearchSpace

#: the largest shape or attribute value a space file may give
MAX_SIZE = 2**31 - 1


def read_space_file(path: str | os.PathLike) -> SearchSpace:
    """Read a space from a .json or .yaml/.yml file; raise SpaceFileError naming the file and
    the key or line at fault."""
    path = os.fspath(path)
    text = read_text(path, "space file", SpaceFileError, MAX_SPACE_BYTES)
    try:
        if path.endswith((".yaml", ".yml")):
            doc = _load_yaml(text, path)
        else:
            try:
                doc = json.loads(text, object_pairs_hook=_unique_keys, parse_int=json_int)
            except json.JSONDecodeError as e:
                raise SpaceFileError(f"{path}, line {e.lineno}: not valid JSON: {e.msg}") \
                    from None
            except ValueError as e:  # json_int: an integer too long to be a size
                raise SpaceFileError(f"{path}: not a valid space file: {e}") from None
        # inside the try: where the YAML reader sets no nesting limit (older PyYAML with
        # libyaml), a value nested thousands deep fails only here, in its repr
        return space_from_dict(doc, path)
    except RecursionError:
        raise SpaceFileError(f"{path}: nested too deeply to be a space file") from None
    except _DuplicateKey as e:
        raise SpaceFileError(f"{path}{e.args[1]}: key {e.args[0]!r} appears twice in one "
                             f"mapping") from None


class _DuplicateKey(Exception):
    """A mapping with one key twice (JSON and YAML readers keep only the last silently)."""


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict:
    keys = [k for k, _ in pairs]
    for k in keys:
        if keys.count(k) > 1:
            raise _DuplicateKey(k, "")
    return dict(pairs)


def _load_yaml(text: str, path: str) -> Any:
    from hwnas._imports import require
    yaml: Any = require("yaml", "a YAML space file")  # imported lazily, so its classes are Any
    try:
        return yaml.load(text, Loader=_yaml_loader(yaml))
    except _Alias as e:
        raise SpaceFileError(f"{path}, line {e.args[0]}: a YAML alias (*name): refused in "
                             f"space files (a few aliases can expand to billions of "
                             f"entries); write the entries out") from None
    except _TooMerged as e:
        raise SpaceFileError(f"{path}, line {e.args[0]}: YAML merge keys (<<) expand this "
                             f"mapping to over {MAX_MERGED} entries; write the entries out"
                             ) from None
    except _TooLong as e:
        raise SpaceFileError(f"{path}, line {e.args[0]}: an integer of {e.args[1]} digits (at "
                             f"most {MAX_INT_DIGITS})") from None
    except yaml.YAMLError as e:
        line = _yaml_error_line(e, text, hasattr(yaml, "CSafeLoader"))
        problem = getattr(e, "problem", None) or getattr(e, "reason", None) or str(e)
        where = f", line {line}" if line else ""
        raise SpaceFileError(f"{path}{where}: not valid YAML: {problem}") from None
    except TypeError as e:  # a mapping key that cannot be a key, e.g. {[1]: 2}
        raise SpaceFileError(f"{path}: not a valid space file: {e}") from None


def _yaml_loader(yaml: Any) -> Any:
    """PyYAML's safe loader refusing aliases (but what merge keys merge), integers of over
    MAX_INT_DIGITS digits and duplicate keys.

    libyaml's parser where PyYAML was built with it: 10x faster than the pure-Python one on
    a space file; 3,000 nested brackets, which the pure-Python one recurses into for 0.9 s,
    are refused at once (its nesting limit is 1,000)."""
    base = yaml.CSafeLoader if hasattr(yaml, "CSafeLoader") else yaml.SafeLoader

    class Loader(base):  # type: ignore[misc,valid-type]
        def construct_document(self, node):
            _refuse_aliases(node)
            return super().construct_document(node)

        def construct_yaml_int(self, node):
            digits = len(str(node.value).lstrip("+-").replace("_", ""))
            if digits > MAX_INT_DIGITS:
                raise _TooLong(node.start_mark.line + 1, digits)
            return super().construct_yaml_int(node)

        def flatten_mapping(self, node):
            """A mapping's own keys once each (before what merge keys bring, which its own
            keys override, as merging means), then merged, at most MAX_MERGED entries."""
            checked = self.__dict__.setdefault("_own_keys_checked", set())
            if id(node) not in checked:
                checked.add(id(node))
                seen = set()
                for key_node, _ in node.value:
                    if key_node.tag == MERGE_TAG:
                        continue
                    key = self.construct_object(key_node)
                    if key in seen:
                        raise _DuplicateKey(key, f", line {key_node.start_mark.line + 1}")
                    seen.add(key)
            own = len(node.value)
            super().flatten_mapping(node)
            if len(node.value) > max(own, MAX_MERGED):  # older PyYAML multiplies them
                raise _TooMerged(node.start_mark.line + 1)

    Loader.add_constructor("tag:yaml.org,2002:int", Loader.construct_yaml_int)
    return Loader


def _yaml_error_line(e: Any, text: str, libyaml: bool) -> int | None:
    """The line of a YAML error: its mark, or the position of a character YAML does not
    allow, counted in bytes by libyaml and in characters by Python."""
    mark = getattr(e, "problem_mark", None)
    position = getattr(e, "position", None)
    before = text.encode()[:position].decode(errors="ignore") if libyaml and position \
        else text[:position]
    return mark.line + 1 if mark else None if position is None else before.count("\n") + 1


class _Alias(Exception):
    """A YAML node reached twice: an alias (``*name``) of an anchored node."""


class _TooMerged(Exception):
    """Merge keys that expand one mapping to more than MAX_MERGED entries."""


class _TooLong(Exception):
    """A YAML integer too long to be a size or an index."""


#: the tag of a YAML merge key (``<<: *defaults``)
MERGE_TAG = "tag:yaml.org,2002:merge"
#: the most entries merge keys may expand one mapping to (a chain of merges of merges can
#: multiply them, as aliases do)
MAX_MERGED = 10_000


def _refuse_aliases(root: Any) -> None:
    """Raise _Alias for the first node that the YAML graph reaches twice, except as what a
    merge key (``<<: *defaults``, or ``<<: [*a, *b]``) merges: every other alias (``*a``) is
    one, and refusing them bounds the document by its size (a 510-byte "billion laughs"
    expands to 10^9 entries); what merges expand to is bounded by MAX_MERGED (see the
    loader's ``flatten_mapping``). Iterative, linear in the nodes."""
    seen: set[int] = set()
    reached: set[int] = set()  # nodes reached in a place other than a merge's
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, merged = stack.pop()
        if not merged:
            if id(node) in reached:
                raise _Alias(node.start_mark.line + 1)
            reached.add(id(node))
        if id(node) in seen:  # its own nodes are checked once
            continue
        seen.add(id(node))
        for item in node.value if isinstance(node.value, list) else ():
            if not isinstance(item, tuple):
                stack.append((item, False))
                continue
            key, value = item
            stack.append((key, False))
            if key.tag != MERGE_TAG:
                stack.append((value, False))
            elif value.id == "sequence":  # <<: [*a, *b]
                seen.add(id(value))
                stack.extend((target, True) for target in value.value)
            else:
                stack.append((value, True))


def space_from_dict(doc: Any, where: str = "space") -> SearchSpace:
    """The space a parsed space file describes; raise SpaceFileError naming ``where`` and the
    key at fault.

    Example:
        >>> space = space_from_dict({"name": "tiny", "input_shape": [3, 8, 8], "decisions": [
        ...     {"name": "k", "choices": {"3x3": [{"op": "conv", "out": 3, "k": 3}],
        ...                               "skip": []}}]})
        >>> space.n_choices
        (2,)
    """
    def fail(key: str, message: str) -> NoReturn:
        raise SpaceFileError(f"{where}: {key}: {message}")

    _check_top(doc, fail)
    stem, shape = _layers(doc.get("stem", []), "stem", tuple(doc["input_shape"]), fail)
    if not isinstance(doc["decisions"], list) or not doc["decisions"]:
        fail("decisions", "must be a non-empty list")
    decisions: list[Decision] = []
    for d, entry in enumerate(doc["decisions"]):
        decision, shape = _decision(entry, d, shape, [e.name for e in decisions], fail)
        decisions.append(decision)
    head, _ = _layers(doc.get("head", []), "head", shape, fail)
    if not stem and not head and not any(group for d in decisions for group in d.layers):
        fail("top level", "the space has no layers: stem, decisions and head are all empty")
    return SearchSpace(doc["name"], tuple(doc["input_shape"]), stem, tuple(decisions), head)


def _check_top(doc: Any, fail: Callable[[str, str], NoReturn]) -> None:
    """The top-level keys, the space's name and its input shape."""
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
    if not is_safe_name(doc["name"]):
        # the name becomes part of file names (cached tables, --export-onnx): a '/', '..' or
        # an absolute path would put them outside their folder
        fail("name", f"{doc['name'][:60]!r}: a space name may hold only letters, digits, "
                     f"'.', '_', '+' and '-', start with a letter, digit or '_', and have at "
                     f"most 100 characters (it becomes part of file names)")
    shape = doc["input_shape"]
    if not (isinstance(shape, list) and len(shape) == 3 and all(_is_size(v) for v in shape)):
        fail("input_shape", f"must be 3 positive integers [C, H, W] (at most {MAX_SIZE}), "
                            f"got {shape!r}")


def _layers(specs: Any, key: str, shape: tuple[int, int, int],
            fail: Callable[[str, str], NoReturn]) -> tuple[tuple[Layer, ...], tuple[int, int, int]]:
    """A list of layer specs, each taking the previous one's output; and the last output."""
    if not isinstance(specs, list):
        fail(key, "must be a list of layers")
    out: list[Layer] = []
    for i, spec in enumerate(specs):
        layer = _layer(spec, shape, f"{key}[{i}]", fail)
        out.append(layer)
        shape = layer.out_shape
    return tuple(out), shape


def _decision(entry: Any, d: int, shape: tuple[int, int, int], earlier: list[str],
              fail: Callable[[str, str], NoReturn]) -> tuple[Decision, tuple[int, int, int]]:
    """Decision ``d`` (its choices' layers follow ``shape``), and the shape it gives."""
    key = f"decisions[{d}]"
    if not isinstance(entry, dict) or not isinstance(entry.get("choices"), dict) \
            or not entry["choices"]:
        fail(key, "must be a mapping with 'name' and a non-empty 'choices' mapping")
    if set(entry) - {"name", "choices"}:
        fail(f"{key}.{sorted(map(str, set(entry) - {'name', 'choices'}))[0]}",
             "unknown key (expected name, choices)")
    name = entry.get("name", f"decision{d}")
    if not isinstance(name, str) or not name:
        fail(f"{key}.name", f"must be a non-empty string, got {name!r}")
    if name in earlier:
        fail(f"{key}.name", f"{name!r} is the name of an earlier decision: every decision "
                            f"needs its own name")
    names = [str(c) for c in entry["choices"]]
    twice = [c for c in names if names.count(c) > 1]
    if twice:
        fail(f"{key}.choices", f"two choices are both named {twice[0]!r}")
    groups, out_shapes = [], set()
    for choice, specs in entry["choices"].items():
        group, out_shape = _layers(specs if specs is not None else [],
                                   f"{key}.choices[{choice!r}]", shape, fail)
        groups.append(group)
        out_shapes.add(out_shape)
    if len(out_shapes) > 1:
        fail(f"{key}.choices", f"choices give different output shapes {sorted(out_shapes)}: "
                               f"every choice must give the same shape")
    return Decision(name, tuple(names), tuple(groups)), out_shapes.pop()


def _is_size(value: Any) -> bool:
    """An integer (not a bool, not 16.0) that a shape or attribute can take."""
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_SIZE


def _layer(spec: Any, shape: tuple[int, int, int], key: str,
           fail: Callable[[str, str], NoReturn]) -> Layer:
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
    if not isinstance(op, str) or op not in OPS:
        fail(key, f"unknown op {op!r}: expected one of {sorted(OPS)}")
    kwargs = {}
    for name, value in spec.items():
        if name == "op":
            continue
        if name not in OPS[op]:
            fail(f"{key}.{name}", f"not an attribute of {op} (it takes {', '.join(OPS[op])})")
        if name == "act" and not isinstance(value, str):
            fail(f"{key}.{name}", f"must be a string, one of {', '.join(ACTIVATIONS)}, got "
                                  f"{value!r}")
        if name == "se" and (isinstance(value, bool) or value not in (0, 1)):
            fail(f"{key}.{name}", f"must be 0 or 1 (squeeze-and-excite), got {value!r}")
        if name not in ("act", "se") and not _is_size(value):
            quoted = " (a string: write it without quotes)" if isinstance(value, str) else ""
            fail(f"{key}.{name}", f"must be an integer from 1 to {MAX_SIZE}, got "
                                  f"{value!r}{quoted}")
        kwargs[ATTR_FIELDS[name]] = value
    try:
        return Layer(op, shape, **kwargs)
    except (ValueError, TypeError) as e:
        fail(key, str(e))
