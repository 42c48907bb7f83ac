"""What the commands share: one-line errors instead of tracebacks, and common options."""

from __future__ import annotations

import argparse
import sys
from typing import Callable, Sequence

from hwnas._imports import MissingDependency
from hwnas.errors import HwnasError

#: errors that a user's input or machine causes: shown as one line, never as a traceback
USER_ERRORS = (ValueError, KeyError, NotImplementedError, MissingDependency, HwnasError,
               OSError)


class ArgumentParser(argparse.ArgumentParser):
    def error(self, message: str) -> None:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


def add_space_option(parser: argparse.ArgumentParser, default: str | None) -> None:
    from hwnas.spaces import SPACES
    default_text = default or "the network table's space"
    parser.add_argument("--space", default=default,
                        help=f"search space: {', '.join(SPACES)}, or a .json/.yaml space file "
                             f"(default: {default_text})")


def run(main: Callable[[Sequence[str] | None], int], prog: str,
        argv: Sequence[str] | None = None) -> int:
    """Run a command's main; turn the errors a user can fix into one line on stderr."""
    try:
        return main(argv)
    except USER_ERRORS as e:
        message = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"{prog}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\n{prog}: interrupted; what was measured is kept, run again to resume",
              file=sys.stderr)
        return 130
