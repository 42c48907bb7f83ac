"""MkDocs hook: the benchmark pages, rendered from benchmarks/results/ when the site is built.

Each page under docs/benchmarks/ holds, between its markers, what benchmarks/readme.py renders
from the results files; the build renders it again (so the site always shows the results
files, and ``benchmarks/readme.py --check``, a test, says when a committed page lags), and
draws each section's plot (benchmarks/plots.py) as benchmarks/img/<section>.svg, beside
benchmarks/img/search_trials.png, which benchmarks/search_quality.py saves.
"""

from __future__ import annotations

import importlib.util
import os
import sys

from mkdocs.structure.files import File

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RESULTS = os.path.join(ROOT, "benchmarks", "results")
#: files of benchmarks/results/ shown as they are
IMAGES = ("search_trials.png",)


def _module(name: str):
    """benchmarks/<name>.py, imported by path (benchmarks/ is not a package)."""
    key = f"benchmarks_{name}"
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            key, os.path.join(ROOT, "benchmarks", f"{name}.py"))
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module
        spec.loader.exec_module(module)
    return sys.modules[key]


def on_files(files, config):
    """Add the plots and images to the site, drawn from the results files."""
    readme, plots = _module("readme"), _module("plots")
    for name, (_, draw) in plots.PLOTS.items():
        results = readme.load_each(RESULTS, "simulated") if name == "simulated" else \
            readme.load(RESULTS, name)
        if results:
            files.append(File.generated(config, f"benchmarks/img/{name}.svg",
                                        content=plots.svg(draw(results))))
    for image in IMAGES:
        path = os.path.join(RESULTS, image)
        if os.path.exists(path):
            files.append(File.generated(config, f"benchmarks/img/{image}", abs_src_path=path))
    return files


def on_page_markdown(markdown: str, page, config, files) -> str:
    """A benchmark page's generated part, rendered from the results files now."""
    readme = _module("readme")
    where = page.file.src_uri
    if not where.startswith("benchmarks/") or os.path.basename(where) not in readme.PAGES:
        return markdown
    return readme.rewrite(markdown, readme.render(os.path.basename(where), RESULTS))
