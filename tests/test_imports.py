"""The import graph runs one way: layers <- spaces <- tables <- predictors, profile <- search,
integrations, commands; importing a low module stays cheap."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import hwnas

ROOT = Path(hwnas.__file__).parent

#: package or module -> its level; a module imports only from lower levels or its own unit
#: (at any depth: an import inside a function counts too)
LEVELS = {"hwnas.errors": 0,
          "hwnas.profile._stats": 0,  # the timing module an export copies: no hwnas import
          "hwnas._imports": 1, "hwnas._progress": 1, "hwnas._files": 1,
          "hwnas._calibration": 1, "hwnas._checks": 1,
          "hwnas.layers": 2, "hwnas.spaces": 3, "hwnas.tables": 4,
          "hwnas._cli": 5,  # what the commands share: options, one-line errors
          "hwnas.predictors": 6,
          # the default flow's layer predictor (ofa: measured layers, the others regressed)
          # chooses the frontier networks it measures
          "hwnas.profile": 6.1,
          "hwnas.profile._simulated": 6.2,  # a device for tests and benchmarks, loaded by name
          "hwnas.devices": 6.5,  # shipped device tables and their predictors
          "hwnas.profile.__main__": 7,  # the command: --design transfer reads the devices
          "hwnas.search": 7, "hwnas.fit": 7, "hwnas.evaluate": 7,
          "hwnas.integrations": 8,  # derives z with the search's exact solver
          "hwnas": 9}


def _unit(module: str) -> str:
    """The entry of LEVELS that a module belongs to (``hwnas.spaces._base`` -> spaces)."""
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in LEVELS:
            return ".".join(parts[:n])
    raise AssertionError(f"{module} is in no level of the import graph: add it to LEVELS")


def _imports(path: Path):
    """(line, imported hwnas module) of every import in the file, at any depth."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, a.name) for a in node.names
                        if a.name == "hwnas" or a.name.startswith("hwnas."))
        elif isinstance(node, ast.ImportFrom) and node.module == "hwnas":  # hwnas._cli
            yield from ((node.lineno, f"hwnas.{a.name}") for a in node.names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("hwnas."):
            yield node.lineno, node.module


def test_no_module_imports_one_above_it():
    modules = sorted(ROOT.rglob("*.py"))
    assert len(modules) > 20
    wrong = []
    for path in modules:
        name = ".".join(("hwnas", *path.relative_to(ROOT).with_suffix("").parts))
        name = name.removesuffix(".__init__")
        unit = _unit(name)
        for line, imported in _imports(path):
            target = _unit(imported)
            if target != unit and LEVELS[target] >= LEVELS[unit]:
                wrong.append(f"{path.relative_to(ROOT.parent)}:{line}: {unit} (level "
                             f"{LEVELS[unit]}) imports {imported} (level {LEVELS[target]})")
    assert not wrong, "\n".join(wrong)


@pytest.mark.skipif(sys.version_info < (3, 10), reason="sys.stdlib_module_names is new in 3.10")
@pytest.mark.parametrize("module, runtime", [("_stats.py", "numpy"), ("_torch_net.py", "torch")])
def test_a_module_an_export_copies_needs_only_the_standard_library_and_its_runtime(module,
                                                                                   runtime):
    """The timing module and the torch builder travel beside the device's runner."""
    tree = ast.parse((ROOT / "profile" / module).read_text())
    imported = {name.split(".")[0] for node in ast.walk(tree)
                for name in ([a.name for a in node.names] if isinstance(node, ast.Import) else
                             [node.module or ""] if isinstance(node, ast.ImportFrom) else [])}
    assert runtime in imported and imported - {runtime} <= set(sys.stdlib_module_names)


@pytest.mark.parametrize("module", ["hwnas", "hwnas.layers", "hwnas.spaces", "hwnas.tables"])
def test_low_modules_import_no_heavy_dependency(module):
    code = (f"import sys, {module}; "
            f"print(' '.join(m for m in ('optuna', 'sklearn', 'scipy', 'onnx', 'nnabla') "
            f"if m in sys.modules))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == [], f"import {module} loads {run.stdout.strip()}"


def test_top_level_names_load_on_first_use():
    code = ("import sys, hwnas; assert 'optuna' not in sys.modules; "
            "import hwnas.search._study; "  # the subpackage, loaded first, must not shadow it
            "from hwnas import Layer, search; assert callable(search), search; "
            "assert hwnas.search is search; "
            "print(len(hwnas.__all__), len(set(hwnas.__all__)), "  # every name listed once,
            "[n for n in hwnas.__all__ if n not in dir(hwnas) "  # shown by dir() and loaded
            "or getattr(hwnas, n, None) is None])")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == [str(len(hwnas.__all__))] * 2 + ["[]"], run.stdout
    with pytest.raises(AttributeError, match="no attribute 'nonsense'"):
        hwnas.nonsense  # noqa: B018
