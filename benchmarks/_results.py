"""Writes a benchmark's results with what they were measured with (benchmarks/readme.py reads them).

Imported at the start of a benchmark: the date, commit and load average are taken then, so
that the results file the benchmark writes does not make its own commit "dirty".
"""

from __future__ import annotations

import datetime
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
# what the module names are called as distributions
_PACKAGES = {"numpy": "numpy", "sklearn": "scikit-learn", "optuna": "optuna",
             "nnabla": "nnabla", "onnxruntime": "onnxruntime", "nnabla_nas": "nnabla-nas",
             "torch": "torch"}


def _git(*args: str) -> str:
    try:
        out = subprocess.run(["git", *args], cwd=HERE, capture_output=True, text=True,
                             timeout=30, check=True)
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip()


def _commit() -> str | None:
    commit = _git("rev-parse", "--short", "HEAD")
    if not commit:
        return None
    return commit + ("-dirty" if _git("status", "--porcelain", "--untracked-files=no") else "")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _versions() -> dict[str, str]:
    versions = {}
    for module, dist in _PACKAGES.items():
        try:
            versions[module] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            pass
    return versions


_START = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
          "commit": _commit(), "load_average_start": list(os.getloadavg())}


def write_results(path: str, benchmark: str, results: Any) -> None:
    """Write ``{"meta": ..., "results": results}`` to path as JSON.

    Args:
        path: the JSON file (its folder is created).
        benchmark: the benchmark's name, e.g. ``"accuracy"``.
        results: what the benchmark measured (JSON-serialisable; NaN allowed).
    """
    meta = {"benchmark": benchmark, "date": _START["date"], "commit": _START["commit"],
            "machine": {"cpu": _cpu_model(), "cores": os.cpu_count(),
                        "load_average_start": _START["load_average_start"],
                        "load_average_end": list(os.getloadavg())},
            "python": platform.python_version(), "versions": _versions(),
            "argv": sys.argv[1:]}
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump({"meta": meta, "results": results}, f, indent=1)
