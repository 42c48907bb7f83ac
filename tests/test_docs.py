"""The documentation cannot rot: every example in docs/ and README.md runs, and the reference
names every option, column, predictor kind and space the code has.

Each page's fenced blocks run in order in a fresh folder, the page's Python blocks sharing one
namespace: ```python blocks are executed; ```console blocks run their ``$ `` lines and check
that the output lines shown after a command (up to a ``...``) appear in its output; ```bash
blocks run every line. A block with ``title="NAME"`` is written to the file NAME instead. An
HTML comment on the line before a block changes how it runs (docs/development.md lists them):
``<!-- docs-test: skip REASON -->``, ``needs MODULE``, ``nnabla``, ``fast``, ``exit N``.

Commands (``hwnas CMD``, ``python -m hwnas.CMD``) run in this process, as tests/helpers.py's
``hwnas`` runs them; ``python FILE`` and ``hwnas`` without a known subcommand in a new process.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import helpers
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = sorted([ROOT / "README.md", *(p for p in DOCS.rglob("*.md")
                                      if "hooks" not in p.relative_to(DOCS).parts)])
#: few, short timing runs, appended to the measuring commands of a block marked ``fast``
FAST_ARGS = ["--warmup", "1", "--runs", "3", "--rounds", "3", "--max-round-s", "0.05",
             "--pause-s", "0"]
#: the subcommands helpers.hwnas runs in this process
COMMANDS = {"search", "profile", "fit", "evaluate", "devices"}
RUN_LANGUAGES = {"python", "py", "console", "bash", "sh", "shell"}
FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^\n`]*)$")
MARKER = re.compile(r"^\s*<!--\s*docs-test:\s*(?P<words>.*?)\s*-->\s*$")


@dataclass
class Block:
    page: Path
    line: int  # of the opening fence, 1-based
    language: str
    title: str | None
    text: str
    skip: str | None = None  # the reason
    needs: list[str] = field(default_factory=list)  # modules it runs only where installed
    fast: bool = False
    exit: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def where(self) -> str:
        page = self.page.relative_to(ROOT) if ROOT in self.page.parents else self.page
        return f"{page}:{self.line}"


def _marker(block: Block, words: str) -> None:
    tokens = words.split()
    while tokens:
        word = tokens.pop(0)
        if word == "skip":
            block.skip = " ".join(tokens)
            if not block.skip:
                block.problems.append("docs-test: skip needs a reason")
            return
        if word == "exit" and tokens and tokens[0].isdigit():
            block.exit = int(tokens.pop(0))
        elif word == "needs" and tokens:
            block.needs += tokens.pop(0).split(",")
        elif word == "nnabla":
            block.needs.append("nnabla")
        elif word == "fast":
            block.fast = True
        else:
            block.problems.append(f"unknown docs-test marker word {word!r}")


def blocks(page: Path) -> list[Block]:
    """The fenced blocks of a Markdown page, with the marker on the line before each."""
    lines = page.read_text(encoding="utf-8").splitlines()
    out, i = [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        info = m["info"].strip()
        language = info.split()[0].lower() if info else ""
        title = re.search(r'title="([^"]+)"', info)
        end = next((j for j in range(i + 1, len(lines))
                    if lines[j].strip().startswith(m["fence"])
                    and lines[j].strip().strip(m["fence"][0]) == ""), len(lines))
        indent = len(m["indent"])
        text = "\n".join(line[indent:] for line in lines[i + 1:end]) + "\n"
        block = Block(page, i + 1, language, title[1] if title else None, text)
        before = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        if (marker := MARKER.match(before)) is not None:
            _marker(block, marker["words"])
        out.append(block)
        i = end + 1
    return out


def _runs(block: Block) -> bool:
    return block.title is None and block.language in RUN_LANGUAGES and block.skip is None


def _page_id(page: Path) -> str:
    return str(page.relative_to(ROOT))


def _page_params():
    params = []
    for page in PAGES:
        runnable = [b for b in blocks(page) if _runs(b)]
        if not runnable:
            continue
        # a page that only runs where nnabla is, is an nnabla test (.ci/run checks those ran)
        marks = [pytest.mark.nnabla] if all("nnabla" in b.needs for b in runnable) else []
        if all("torch" in b.needs for b in runnable):  # likewise torch (in .venv-core)
            marks.append(pytest.mark.torch)
        params.append(pytest.param(page, id=_page_id(page), marks=marks))
    return params


# --- running a page ---------------------------------------------------------------------------

def _commands(block: Block) -> list[tuple[list[str], list[str]]]:
    """The commands of a shell block, each with the output lines shown after it."""
    out: list[tuple[list[str], list[str]]] = []
    pending = ""
    for line in block.text.splitlines():
        if block.language == "console" and not line.startswith("$ ") and not pending:
            if out and line.strip():
                out[-1][1].append(line.strip())
            continue
        text = line[2:] if block.language == "console" and not pending else line
        pending += text
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        words = shlex.split(pending, comments=True)
        pending = ""
        if words:
            out.append((words, []))
    return out


def _run_command(words: list[str], block: Block, folder: Path) -> subprocess.CompletedProcess:
    env = {}
    while words and re.match(r"^[A-Z_][A-Z0-9_]*=", words[0]):
        name, _, value = words.pop(0).partition("=")
        env[name] = value
    if words[:2] == ["python", "-m"] and words[2].startswith("hwnas."):
        words = ["hwnas", words[2].split(".", 1)[1], *words[3:]]
    if words and words[0] == "hwnas" and len(words) > 1 and words[1] in COMMANDS:
        command, args = words[1], words[2:]
        if block.fast and command in ("profile", "search") and "--export" not in args:
            args = [*args, *FAST_ARGS]
        return helpers.hwnas(command, *args, cwd=folder, env=env)
    if words and words[0] == "hwnas" or words[:3] == ["python", "-m", "hwnas"]:
        argv = [sys.executable, "-m", "hwnas", *words[1 if words[0] == "hwnas" else 3:]]
    elif len(words) > 1 and words[0] == "python" and words[1].endswith(".py"):
        argv = [sys.executable, *words[1:]]
        if block.fast and words[1].endswith("runner.py"):
            argv += FAST_ARGS
    else:
        pytest.fail(f"{block.where}: the tests do not know how to run {' '.join(words)!r}: "
                    f"mark its block <!-- docs-test: skip REASON -->")
    path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return subprocess.run(argv, cwd=folder, capture_output=True, text=True, timeout=600,
                          env={**os.environ, **env, "PYTHONPATH": path})


def _run_shell(block: Block, folder: Path) -> None:
    for words, shown in _commands(block):
        result = _run_command(list(words), block, folder)
        said = result.stdout + result.stderr
        assert result.returncode == block.exit, (
            f"{block.where}: {' '.join(words)!r} exited {result.returncode}, the page says "
            f"{block.exit}:\n{said[-3000:]}")
        actual = {" ".join(line.split()) for line in said.splitlines()}
        for line in shown:
            if line == "...":
                break
            assert " ".join(line.split()) in actual, (
                f"{block.where}: {' '.join(words)!r} did not print the line the page shows:\n"
                f"{line}\nit printed:\n{said[-3000:]}")


def _run_python(block: Block, folder: Path, namespace: dict) -> None:
    code = compile(block.text, block.where, "exec")
    exec(code, namespace)  # the page's own example: what a reader would run


def run_page(page: Path, folder: Path, monkeypatch) -> None:
    """Run every block of page in folder, in order (see the module)."""
    monkeypatch.chdir(folder)
    monkeypatch.syspath_prepend(str(folder))
    namespace: dict = {"__name__": "__main__"}
    modules = set(sys.modules)
    try:
        for block in blocks(page):
            assert not block.problems, f"{block.where}: {'; '.join(block.problems)}"
            if block.title is not None:
                (folder / block.title).write_text(block.text, encoding="utf-8")
                continue
            if not _runs(block):
                continue
            missing = [m for m in block.needs if importlib.util.find_spec(m) is None]
            if missing:
                if "nnabla" in missing and os.environ.get("HWNAS_REQUIRE_NNABLA") == "1":
                    pytest.fail(f"{block.where} needs nnabla, which is required here")
                continue  # where they are installed, the block runs
            if block.language in ("python", "py"):
                _run_python(block, folder, namespace)
            else:
                _run_shell(block, folder)
    finally:
        helpers._forget_modules_under(str(folder.resolve()), set(sys.modules) - modules)


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory):
    """One hwnas cache for every page, as a reader has one: the shipped devices' predictors
    are fitted once (xdist workers share it as two hwnas processes do, under its locks)."""
    base = tmp_path_factory.getbasetemp()  # a worker's is in the run's folder
    return (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "docs-cache"


@pytest.mark.parametrize("page", _page_params())
def test_every_example_of_the_page_runs(page, tmp_path, monkeypatch, shared_cache):
    monkeypatch.setenv("HWNAS_CACHE", str(shared_cache))
    run_page(page, tmp_path, monkeypatch)


# --- what the examples are made of ------------------------------------------------------------

def test_markers_are_understood_and_skips_say_why():
    problems = [f"{b.where}: {p}" for page in PAGES for b in blocks(page) for p in b.problems]
    assert problems == []
    skipped = [b for page in PAGES for b in blocks(page) if b.skip is not None]
    assert skipped and all(b.skip for b in skipped)


def test_the_harness_reads_blocks_markers_commands_and_shown_output(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("Text\n\n<!-- docs-test: exit 2 fast -->\n```console\n"
                    "$ hwnas fit --model lookup \\\n    --out p.json   # no layers\n"
                    "hwnas.fit: error: ...\n...\nignored\n```\n\n"
                    '```yaml title="s.yaml"\nname: s\n```\n\n'
                    "<!-- docs-test: skip a reason -->\n```bash\nscp a b\n```\n")
    console, titled, skipped = blocks(page)
    assert (console.exit, console.fast, console.line, console.needs) == (2, True, 4, [])
    assert _commands(console) == [(["hwnas", "fit", "--model", "lookup", "--out", "p.json"],
                                   ["hwnas.fit: error: ...", "...", "ignored"])]
    assert (titled.title, titled.text) == ("s.yaml", "name: s\n")
    assert skipped.skip == "a reason" and not _runs(skipped)


def test_a_page_whose_shown_output_is_not_printed_fails(tmp_path, monkeypatch):
    page = tmp_path / "page.md"
    page.write_text("```console\n$ hwnas devices --space nb201\nno such line\n```\n")
    with pytest.raises(AssertionError, match="did not print the line the page shows"):
        run_page(page, tmp_path, monkeypatch)


# --- the reference names what the code has -----------------------------------------------------

def _hook(name: str):
    spec = importlib.util.spec_from_file_location(f"docs_hooks_{name}",
                                                  DOCS / "hooks" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("command", sorted(_hook("commands").COMMANDS))
def test_the_reference_of_a_command_shows_every_option_of_its_parser(command):
    """Its page holds the marker the site build renders the parser at, and the rendering
    names every option --help shows, as a whole word (tests/test_docs_site.py checks the
    built page too)."""
    hook = _hook("commands")
    page = DOCS / "reference" / "commands" / hook.PAGES.get(command, f"{command}.md")
    assert hook.MARKER.search(page.read_text()), f"{page} lacks <!-- hwnas-command: {command} -->"
    parser = hook.parser(command)
    rendered = hook.render(command).replace("\\", "")
    missing = [o for o in hook.options(parser)
               if not re.search(rf"(?<![\w-]){re.escape(o)}(?![\w-])", rendered)]
    assert missing == []
    shown = [a for a in parser._actions if a.help != argparse.SUPPRESS]
    assert len(shown) > 1 and hook.options(parser) == [s for a in shown for s in a.option_strings]


def test_every_table_column_predictor_kind_and_space_is_in_the_reference():
    from hwnas.fit import MODELS
    from hwnas.predictors import KINDS
    from hwnas.spaces import SPACES
    from hwnas.tables import LAYER_COLUMNS, NETWORK_COLUMNS
    tables = (DOCS / "reference" / "tables.md").read_text()
    predictors = (DOCS / "reference" / "predictors.md").read_text()
    spaces = (DOCS / "reference" / "spaces.md").read_text()
    assert [c for c in {*LAYER_COLUMNS, *NETWORK_COLUMNS} if f"`{c}`" not in tables] == []
    assert [k for k in KINDS if f"| `{k}` |" not in predictors] == []
    assert "calibrated" not in MODELS  # the page says it is not a --model: keep it true
    assert [s for s in SPACES if f"`{s}`" not in spaces] == []


def _nav_files(entry) -> list[str]:
    if isinstance(entry, str):
        return [entry]
    if isinstance(entry, list):
        return [f for item in entry for f in _nav_files(item)]
    if isinstance(entry, dict):
        return [f for value in entry.values() for f in _nav_files(value)]
    return []


def test_every_page_is_in_the_navigation_and_every_nav_entry_exists():
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    nav = _nav_files(config["nav"])
    pages = {str(p.relative_to(DOCS)) for p in PAGES if DOCS in p.parents}
    assert sorted(pages - set(nav)) == []
    assert sorted(set(nav) - pages) == []


def test_the_readme_is_short_starts_with_its_two_commands_and_links_what_exists():
    text = (ROOT / "README.md").read_text()
    lines = text.splitlines()
    assert len(lines) <= 200
    assert lines[2:4] == ["    scripts/setup && .venv/bin/python -m hwnas.search --budget-ms 5",
                          "    scripts/test"]
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text)
    assert [link for link in links
            if not link.startswith("http") and not (ROOT / link).exists()] == []
    for private in ("../shared", "DESIGN.md", "issue 19", "hwnas/spaces/_file.py"):
        assert private not in text
