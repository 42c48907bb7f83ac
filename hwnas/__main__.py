"""hwnas: the command line. ``hwnas COMMAND ...`` (the console script) and ``python -m hwnas
COMMAND ...`` run the same commands as ``python -m hwnas.COMMAND ...``, each through
``hwnas._cli.run`` (whose docstring lists the exit statuses).

Example (a shell)::

    hwnas --version
    hwnas devices --space fbnet
    hwnas search --space fbnet --device pixel3 --budget-ms 15 --json out.json
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from hwnas import __version__, _cli

#: command -> (the module whose ``main(argv)`` runs it, what it does)
COMMANDS = {
    "search": ("hwnas.search.__main__", "search architectures under a latency budget"),
    "profile": ("hwnas.profile.__main__", "measure layer and network latency on this machine"),
    "fit": ("hwnas.fit", "fit a latency predictor on measured tables"),
    "evaluate": ("hwnas.evaluate", "score a predictor on measured networks"),
    "devices": ("hwnas.devices.__main__", "list the shipped device tables"),
}


def parser() -> _cli.ArgumentParser:
    commands = "\n".join(f"  {name:<10} {what}" for name, (_, what) in COMMANDS.items())
    p = _cli.ArgumentParser(
        prog="hwnas", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Hardware-aware neural architecture search.\n\ncommands:\n" + commands +
                    "\n\n'hwnas COMMAND --help' shows a command's options; 'python -m hwnas."
                    "COMMAND' runs the same command.",
        epilog=_cli.EXIT_STATUS_HELP + ". Example: hwnas search --space fbnet --device "
               "pixel3 --budget-ms 15")
    p.add_argument("--version", action="version", version=f"hwnas {__version__}")
    p.add_argument("command", choices=COMMANDS, metavar="COMMAND",
                   help=f"one of: {', '.join(COMMANDS)}")
    p.add_argument("args", nargs=argparse.REMAINDER, metavar="...",
                   help="the command's arguments")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``hwnas COMMAND ARGS``; return its exit status (``hwnas._cli``)."""
    p = parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv:
        p.error(f"give a command: {', '.join(COMMANDS)}")
    args = p.parse_args(argv)
    module, _ = COMMANDS[args.command]

    def command(rest: Sequence[str] | None) -> int:
        # imported inside run: a module that fails to import is a bug with its exit status
        return int(importlib.import_module(module).main(rest))

    return _cli.run(command, f"hwnas {args.command}", args.args)


if __name__ == "__main__":
    sys.exit(main())
