"""Optional dependencies, imported lazily with a sentence that says what to install."""

from __future__ import annotations

import importlib
from types import ModuleType

from hwnas.errors import MissingDependency

_HINTS = {
    "nnabla": "pip install 'hwnas[nnabla]' in a Python <= 3.10 environment (nnabla has no "
              "wheels for newer Pythons); in a source checkout, scripts/setup makes one in "
              ".venv",
    "onnx": "pip install 'hwnas[onnx]'",
    "onnxruntime": "pip install 'hwnas[onnx]'",
    "matplotlib": "pip install 'hwnas[plot]'",
    "torch": "pip install 'hwnas[torch]' (a CPU-only build: pip install torch --index-url "
             "https://download.pytorch.org/whl/cpu)",
    "yaml": "pip install pyyaml",  # a dependency of hwnas: missing only from a broken install
}


def require(module: str, purpose: str) -> ModuleType:
    """Import ``module`` or raise MissingDependency saying that ``purpose`` needs it."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        top = module.split(".")[0]
        hint = _HINTS.get(top, f"pip install {top}")
        raise MissingDependency(f"{purpose} needs {top}, which is not installed "
                                f"({e}): {hint}") from None


def pyplot(purpose: str) -> ModuleType:
    """matplotlib.pyplot with the Agg backend (files only: no display is needed), or
    MissingDependency saying that ``purpose`` needs matplotlib.

    Example:
        >>> plt = pyplot("--plot")  # doctest: +SKIP
        >>> fig, ax = plt.subplots()  # doctest: +SKIP
    """
    matplotlib = require("matplotlib", purpose)
    matplotlib.use("Agg")  # before pyplot is first imported, which picks a backend
    return importlib.import_module("matplotlib.pyplot")
