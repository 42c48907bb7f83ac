"""MkDocs hook: the command reference, rendered from each command's own argparse parser.

A page that holds ``<!-- hwnas-command: NAME -->`` gets, in its place, the command's usage and
one entry per option (its spellings, value, default, choices and help), read from the parser
that the command itself parses with. So the reference cannot miss an option or show a stale
default; ``tests/test_docs.py`` also checks that every option appears on the built pages.

This file runs in the docs toolchain (scripts/docs) and in the tests (imported by path).
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
from collections.abc import Callable

#: command name -> (module, how to get its parser from the module)
COMMANDS: dict[str, tuple[str, Callable[[object], argparse.ArgumentParser]]] = {
    "search": ("hwnas.search.__main__", lambda m: m.parser()),
    "profile": ("hwnas.profile.__main__", lambda m: m.parser()),
    "fit": ("hwnas.fit", lambda m: m.parser()),
    "evaluate": ("hwnas.evaluate", lambda m: m.parser()),
    "devices": ("hwnas.devices.__main__", lambda m: m.parser()),
    # the export's standalone runner; its argument is the default export folder
    "runner": ("hwnas.profile.runner", lambda m: m.parser("DIR")),
}
#: the command ``hwnas`` itself (``hwnas --version``, ``hwnas COMMAND``), where this hwnas has
#: it; its reference is on the commands' index page
if os.path.exists(os.path.join(os.path.dirname(importlib.import_module("hwnas").__file__ or ""),
                               "__main__.py")):
    COMMANDS["hwnas"] = ("hwnas.__main__", lambda m: m.parser())
#: where each command's reference is, under reference/commands/, where not at <name>.md
PAGES = {"hwnas": "index.md"}
MARKER = re.compile(r"^<!--\s*hwnas-command:\s*([\w-]+)\s*-->[ \t]*$", re.MULTILINE)
#: the width usage lines are wrapped at (argparse would take the terminal's)
WIDTH = 88


def parser(name: str) -> argparse.ArgumentParser:
    """The parser of command ``name`` (a key of COMMANDS)."""
    module, get = COMMANDS[name]
    return get(importlib.import_module(module))


def options(p: argparse.ArgumentParser) -> list[str]:
    """Every option string that ``--help`` shows (hidden, SUPPRESSed spellings left out)."""
    return [s for a in p._actions if a.help != argparse.SUPPRESS for s in a.option_strings]


def _escape(text: str) -> str:
    """Help text as Markdown shows it literally: no emphasis, links or code spans (escaped
    with a backslash), no HTML (``<`` as an entity: Markdown does not escape it)."""
    text = re.sub(r"([\\`*_\[\]])", r"\\\1", " ".join(text.split()))
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _value(a: argparse.Action) -> str:
    if a.nargs == 0:
        return ""
    if a.choices is not None and not a.metavar:
        return "{" + ",".join(str(c) for c in a.choices) + "}"
    meta = a.metavar or a.dest.upper()
    return f"[{meta}]" if a.nargs == "?" else f"{meta} ..." if a.nargs in ("*", "+") else meta


def _entry(p: argparse.ArgumentParser, a: argparse.Action) -> list[str]:
    value = _value(a)
    spellings = ", ".join(f"`{s}{' ' + value if value else ''}`" for s in a.option_strings) \
        or f"`{a.metavar or a.dest}`"  # a positional argument
    help_text = p._get_formatter()._expand_help(a) if a.help else ""
    facts = []
    if a.required:
        facts.append("required")
    if a.choices is not None:
        facts.append("one of " + ", ".join(f"`{c}`" for c in a.choices))
    if isinstance(a, argparse._AppendAction):
        facts.append("repeatable")
    if a.nargs == "?" and a.const is not None:
        facts.append(f"`{a.option_strings[0]}` alone means `{a.const}`")
    line = _escape(help_text) + (f" ({'; '.join(facts)})" if facts else "")
    return [spellings, f":   {line}".rstrip(), ""]


def render(name: str) -> str:
    """The Markdown reference of command ``name``: usage, description, options by group."""
    p = parser(name)
    formatter = argparse.HelpFormatter(p.prog, width=WIDTH)
    formatter.add_usage(p.usage, p._actions, p._mutually_exclusive_groups)
    out = ["```text", formatter.format_help().strip(), "```", ""]
    raw = issubclass(p.formatter_class, argparse.RawDescriptionHelpFormatter)
    if p.description:  # laid out by hand where the parser keeps its line breaks
        out += ["```text", p.description, "```", ""] if raw else [_escape(p.description), ""]
    for group in p._action_groups:
        actions = [a for a in group._group_actions if a.help != argparse.SUPPRESS]
        if not actions:
            continue
        title = "Options" if group.title in ("options", "optional arguments") else \
            (group.title or "Options").capitalize()
        out += [f"### {title}", ""]
        if group.description:
            out += [_escape(group.description), ""]
        for a in actions:
            out += _entry(p, a)
    exclusive = [g for g in p._mutually_exclusive_groups if len(g._group_actions) > 1]
    for g in exclusive:
        names = ", ".join(f"`{a.option_strings[0]}`" for a in g._group_actions)
        out += [f"Give at most one of {names}.", ""]
    if p.epilog:
        out += [_escape(p.epilog), ""]
    return "\n".join(out)


def on_page_markdown(markdown: str, page, config, files) -> str:
    """MkDocs: put each marked command's reference into its page (the ``hwnas`` command's
    marker stays empty in an hwnas without it)."""
    return MARKER.sub(lambda m: "" if m.group(1) == "hwnas" and "hwnas" not in COMMANDS
                      else render(m.group(1)), markdown)
