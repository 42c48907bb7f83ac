"""The package's functions stay small: at most 60 lines of body (docstring aside) and 8
parameters (self aside), unless a framework's signature dictates more."""

import ast
from pathlib import Path

import hwnas

#: function (module:qualified name) -> why its signature is not ours to choose
DICTATED = {
    "hwnas.integrations._nnabla_estimators:HwnasLatencyEstimator.__init__":
        "NNabla NAS builds its estimators from hydra configs with these keyword names",
}
MAX_LINES, MAX_PARAMETERS = 60, 8


def functions(path: Path, module: str):
    tree = ast.parse(path.read_text())

    def visit(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield f"{module}:{prefix}{child.name}", child
                yield from visit(child, f"{prefix}{child.name}.")
            elif isinstance(child, ast.ClassDef):
                yield from visit(child, f"{prefix}{child.name}.")
    yield from visit(tree, "")


def shape(node) -> tuple[int, int]:
    a = node.args
    names = [*a.posonlyargs, *a.args, *a.kwonlyargs, a.vararg, a.kwarg]
    parameters = sum(p is not None and p.arg not in ("self", "cls") for p in names)
    body = node.body
    docstring = isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
        and isinstance(body[0].value.value, str)
    first = body[1] if docstring and len(body) > 1 else body[0]
    return node.end_lineno - first.lineno + 1, parameters


def test_no_function_is_over_60_lines_or_8_parameters():
    root = Path(hwnas.__file__).parent
    too_big = []
    for path in sorted(root.rglob("*.py")):
        module = ".".join(path.relative_to(root.parent).with_suffix("").parts)
        for name, node in functions(path, module):
            lines, parameters = shape(node)
            if (lines > MAX_LINES or parameters > MAX_PARAMETERS) and name not in DICTATED:
                too_big.append(f"{name}: {lines} lines, {parameters} parameters")
    assert not too_big, too_big


def test_the_rule_sees_a_long_function(tmp_path):
    path = tmp_path / "m.py"
    path.write_text("def f(a, b, c, d, e, f, g, h, i):\n" + "    x = 1\n" * 61)
    (name, node), = functions(path, "m")
    assert name == "m:f" and shape(node) == (61, 9)
