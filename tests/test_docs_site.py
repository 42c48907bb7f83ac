"""The built documentation site: ``scripts/docs`` builds it in strict mode (a warning fails
it), its command reference names every option each command's parser accepts, its API pages
render every public name, and its front page and a benchmark page render in a real browser,
headless Chromium (Debian's ``chromium``, which ``scripts/docs --browser`` installs), with
screenshots saved under .test-results/screenshots/ for a person to look at.

The site is built once per state of what it is made from (docs/, mkdocs.yml, the code, the
benchmark results): the other test environment of ``scripts/test`` reuses the build.
"""

from __future__ import annotations

import ast
import fcntl
import hashlib
import html
import importlib
import importlib.util
import inspect
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / ".test-results"
SHOTS = RESULTS / "screenshots"
#: what the site is made from: a change in any of these builds it again
INPUTS = ("docs", "mkdocs.yml", "hwnas", "benchmarks", "scripts/docs", "pyproject.toml")


def _digest() -> str:
    h = hashlib.sha1()
    for name in INPUTS:
        path = ROOT / name
        files = [path] if path.is_file() else sorted(
            p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
        for f in files:
            h.update(str(f.relative_to(ROOT)).encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:12]


@pytest.fixture(scope="session")
def site() -> Path:
    """The built site: .test-results/site-<digest of its inputs>, built by scripts/docs (which
    also makes .venv-docs and installs chromium where they are missing) under a lock, so that
    xdist workers and the second test environment build it once."""
    if not (ROOT / ".git").exists():
        pytest.skip("an unpacked sdist: the checkout's test run builds and checks the site")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"site-{_digest()}"
    with open(RESULTS / "site.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (out / "index.html").exists():
            for old in RESULTS.glob("site-*"):
                shutil.rmtree(old, ignore_errors=True)
            building = RESULTS / f"building-{os.getpid()}"
            run = subprocess.run([str(ROOT / "scripts" / "docs"), "--browser", "-d",
                                  str(building)], cwd=ROOT, capture_output=True, text=True,
                                 timeout=900)
            assert run.returncode == 0, f"scripts/docs failed:\n{run.stdout}\n{run.stderr}"
            building.rename(out)
    return out


class _Text(HTMLParser):
    """The text of an HTML page, and the ids of its elements."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self.ids: set[str] = set()
        self.images: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("id"):
            self.ids.add(attrs["id"])
        if tag == "img" and attrs.get("src"):
            self.images.append(attrs["src"])

    def handle_data(self, data):
        self.parts.append(data)


def _read(page: Path) -> _Text:
    parsed = _Text()
    parsed.feed(page.read_text(encoding="utf-8"))
    return parsed


def _hook():
    spec = importlib.util.spec_from_file_location("docs_hooks_commands",
                                                  ROOT / "docs" / "hooks" / "commands.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_page_of_the_navigation_is_built(site):
    sources = [p.relative_to(ROOT / "docs") for p in (ROOT / "docs").rglob("*.md")
               if "hooks" not in p.parts]
    missing = [str(s) for s in sources if not (site / s.with_suffix(".html")).exists()]
    assert sources and missing == []


@pytest.mark.parametrize("command", sorted(_hook().COMMANDS))
def test_every_option_of_a_command_appears_on_its_built_reference_page(site, command):
    hook = _hook()
    page = Path(hook.PAGES.get(command, f"{command}.md")).with_suffix(".html")
    text = html.unescape(" ".join(_read(site / "reference" / "commands" / page).parts))
    options = hook.options(hook.parser(command))
    missing = [o for o in options if not re.search(rf"(?<![\w-]){re.escape(o)}(?![\w-])", text)]
    assert options and missing == []


@pytest.mark.parametrize("package", ["hwnas.search", "hwnas.predictors", "hwnas.profile",
                                     "hwnas.spaces", "hwnas.tables", "hwnas.devices",
                                     "hwnas.integrations", "hwnas.errors"])
def test_every_public_name_of_a_package_is_on_its_api_page(site, package):
    module = importlib.import_module(package)
    public = getattr(module, "__all__", None) or _defined(module)
    page = package.split(".")[1]
    ids = _read(site / "reference" / "api" / f"{page}.html").ids
    # a name that is also a submodule's (hwnas.spaces.fbnet) is the submodule to mkdocstrings
    assert [n for n in public if f"{package}.{n}" not in ids
            and f"{package}.{n}" not in sys.modules] == []


def _defined(module) -> list[str]:
    """The public names a module defines at its top level (not those it imports)."""
    tree = ast.parse(Path(inspect.getfile(module)).read_text(encoding="utf-8"))
    names = [node.name for node in tree.body
             if isinstance(node, (ast.FunctionDef, ast.ClassDef))]
    names += [t.id for node in tree.body if isinstance(node, (ast.Assign, ast.AnnAssign))
              for t in (node.targets if isinstance(node, ast.Assign) else [node.target])
              if isinstance(t, ast.Name)]
    return [n for n in names if not n.startswith("_")]


def test_every_image_of_the_benchmark_pages_is_in_the_site(site):
    images = []
    for page in (site / "benchmarks").glob("*.html"):
        for src in _read(page).images:
            images.append(src)
            assert (page.parent / src).is_file(), f"{page.name}: {src} is missing"
    assert len([s for s in images if s.endswith(".svg")]) >= 8


@pytest.mark.parametrize("page, name", [("index.html", "front-page"),
                                        ("benchmarks/predictors.html", "benchmarks-predictors")])
def test_a_page_renders_in_headless_chromium(site, page, name):
    """A screenshot of the page as a browser draws it (look at it: .test-results/screenshots/),
    and a check that it is not blank: the page's text and its plot are drawn."""
    chromium = shutil.which("chromium")
    assert chromium, "no chromium: scripts/docs --browser installs Debian's package"
    SHOTS.mkdir(parents=True, exist_ok=True)
    shot = SHOTS / f"{name}.png"
    shot.unlink(missing_ok=True)
    run = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu",
                          "--hide-scrollbars", "--window-size=1280,2000",
                          "--virtual-time-budget=5000", f"--screenshot={shot}",
                          (site / page).as_uri()],
                         capture_output=True, text=True, timeout=120)
    assert shot.is_file(), f"chromium wrote no screenshot:\n{run.stderr[-2000:]}"
    import matplotlib.image
    pixels = matplotlib.image.imread(shot)
    assert pixels.shape[:2] == (2000, 1280)
    # a blank or error page is one colour; a drawn one has text, a header bar and plots
    colours = {tuple(p) for p in (pixels[::7, ::7, :3] * 255).astype(int).reshape(-1, 3)}
    assert len(colours) > 50, f"{shot}: the page looks blank ({len(colours)} colours)"
