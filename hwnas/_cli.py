"""What the commands share: one-line errors instead of tracebacks, exit statuses, and common
options.

Every command (``hwnas search|profile|fit|evaluate|devices``, each also ``python -m
hwnas.<command>``) runs its ``main`` through ``run``, which turns how it ended into its exit
status:

====  =====================================================================================
0     an answer (or ``--help``, ``--version``)
1     no architecture meets the budget(s): ``hwnas.errors.BudgetError``, one line on stderr
2     bad input: a ``hwnas.errors.HwnasError`` (a file, row, field or argument, a missing
      optional package, a machine that cannot do what was asked), an unusable command line,
      or an I/O error on a named file (a missing folder, a full or read-only disk); one line
      on stderr
130   interrupted (Ctrl-C: ``KeyboardInterrupt``, ``hwnas.errors.SearchInterrupted``); what
      was measured is kept, and the same command resumes
141   the reader of the output went away (``| head``), as for any Unix tool
70    anything else: a bug in hwnas; its traceback is kept, followed by one line asking to
      report it with the hwnas version (70 is ``EX_SOFTWARE`` of sysexits.h: Python's own 1
      for an uncaught exception would read as "no architecture meets the budget")
====  =====================================================================================

``HWNAS_DEBUG=1`` shows the traceback of every error. Whatever a command prints has the
password of a storage URL masked (``hwnas._files.mask_secrets``).
"""

from __future__ import annotations

import argparse
import errno
import io
import math
import os
import platform
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from hwnas._files import DISK_ERRORS, MAX_INT_DIGITS, mask_secrets, parse_float, parse_int
from hwnas.errors import BudgetError, HwnasError

#: exit statuses (see the module's docstring)
EXIT_OK, EXIT_NO_ARCHITECTURE, EXIT_BAD_INPUT, EXIT_BUG = 0, 1, 2, 70
EXIT_INTERRUPTED, EXIT_BROKEN_PIPE = 130, 141
#: the exit statuses as ``--help`` lists them
EXIT_STATUS_HELP = (
    "exit status: 0 an answer; 1 no architecture meets the budget(s); 2 bad input (one line "
    "says what is wrong); 130 interrupted (what was measured is kept: run again to resume); "
    "141 output pipe closed; 70 a bug in hwnas (with its traceback: please report it)")

#: the most networks one ``--networks`` run measures: more is a typo, not a plan (refused
#: before anything is allocated)
MAX_NETWORKS = 100_000
#: the most trials and worker processes (each one forked) of a search: more is a typo
MAX_TRIALS, MAX_WORKERS = 10_000_000, 256


#: the name a command was started by, where it is not its ``python -m`` name (``hwnas
#: search``): its parser's usage and messages say that name
_invoked_as: list[str] = []


class ArgumentParser(argparse.ArgumentParser):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if _invoked_as and str(kwargs.get("prog", "")).startswith("python -m hwnas."):
            kwargs["prog"] = _invoked_as[-1]
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _float_over(low: float, inclusive: bool) -> Callable[[str], float]:
    """An argparse type: a finite number > low (>= low where ``inclusive``); ``inf``, ``1e400``
    and ``nan`` are refused."""
    sign = ">=" if inclusive else ">"

    def parse(text: str) -> float:
        try:
            value = parse_float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not ((value >= low if inclusive else value > low) and math.isfinite(value)):
            raise argparse.ArgumentTypeError(f"must be {sign} {low:g} and finite, got {text}")
        return value
    parse.__name__ = "number"
    return parse


#: a finite number > 0, or >= 0
positive_float = _float_over(0, inclusive=False)
non_negative_float = _float_over(0, inclusive=True)


def int_in(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: an integer from ``low`` to ``high`` (None: no upper bound)."""
    def parse(text: str) -> int:
        try:
            value = parse_int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer (ASCII digits, "
                                             f"at most {MAX_INT_DIGITS})") from None
        if high is None and value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {text}")
        if high is not None and not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be an integer from {low} to {high}, "
                                             f"got {text}")
        return value
    parse.__name__ = "integer"
    return parse


#: an integer >= 1
positive_int = int_in(1)
workers = int_in(1, MAX_WORKERS)
trials = int_in(1, MAX_TRIALS)

#: a random seed: numpy and Optuna take 0 .. 2**32 - 1
seed = int_in(0, 2**32 - 1)


def add_space_option(parser: argparse.ArgumentParser, default: str | None,
                     default_text: str | None = None) -> None:
    from hwnas.spaces import SPACES
    default_text = default_text or default or "the network table's space"
    parser.add_argument("--space", default=default,
                        help=f"search space: {', '.join(SPACES)}, or a .json/.yaml space file "
                             f"(default: {default_text})")


def run(main: Callable[[Sequence[str] | None], int], prog: str,
        argv: Sequence[str] | None = None) -> int:
    """Run a command's ``main(argv)`` and return its exit status: what ``main`` returned, or
    the status of how it failed (the table in this module's docstring; each failure is one
    line on stderr that starts with ``prog``, a bug its traceback and a line asking to report
    it). Every line and traceback printed has its secrets masked (a storage URL's password:
    see ``mask_secrets``). ``HWNAS_DEBUG=1`` shows the traceback of every error."""
    debug = os.environ.get("HWNAS_DEBUG", "") not in ("", "0")
    streams = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _Masking(sys.stdout), _Masking(sys.stderr)
    _invoked_as.append(prog)
    try:
        return _run(main, prog, argv, debug)
    finally:
        _invoked_as.pop()
        sys.stdout, sys.stderr = streams


def _run(main: Callable[[Sequence[str] | None], int], prog: str,
         argv: Sequence[str] | None, debug: bool) -> int:
    try:
        status = main(argv)
        sys.stdout.flush()  # a closed pipe shows here, where it is handled, not at exit
        return status
    except KeyboardInterrupt as e:  # SearchInterrupted too: its message says what was kept
        if debug:
            _print_traceback()
        message = str(e) or "what was measured is kept, run again to resume"
        if not message.startswith("interrupted"):  # SearchInterrupted's says it already
            message = f"interrupted; {message}"
        print(mask_secrets(f"\n{prog}: {message}"), file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # the reader of stdout went away (`| head`): nothing to report, as for any Unix tool;
        # stdout goes to devnull so that the interpreter's final flush does not fail again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except BudgetError as e:  # an answer of its own: nothing fits, not a mistake in the input
        if debug:
            _print_traceback()
        print(mask_secrets(f"{prog}: {_one_line(e)}"), file=sys.stderr)
        return EXIT_NO_ARCHITECTURE
    except Exception as e:
        # an OSError naming a file (a missing folder, no permission, a full disk) or a disk
        # that refuses a write is the user's to fix; any other is not
        if isinstance(e, HwnasError) or (isinstance(e, OSError) and (
                e.filename is not None or e.errno in DISK_ERRORS)):
            if debug:
                _print_traceback()
            print(mask_secrets(f"{prog}: error: {_one_line(e)}"), file=sys.stderr)
            return EXIT_BAD_INPUT
        _print_traceback()
        print(f"{prog}: internal error: this is a bug in hwnas, not in your input; please "
              f"report it with the traceback above and this line: {version_line()}",
              file=sys.stderr)
        return EXIT_BUG


def version_line() -> str:
    """``hwnas 0.1.0 (CPython 3.11.7, Linux)``: the version, where a bug report needs it."""
    # hwnas itself is imported before any of its modules; importing it here by name would
    # point the import graph upwards
    version = getattr(sys.modules.get("hwnas"), "__version__", "(unknown version)")
    return (f"hwnas {version} ({platform.python_implementation()} "
            f"{platform.python_version()}, {platform.system()})")


class _Masking(io.TextIOBase):
    """A text stream that masks secrets (mask_secrets) in what is written to it: whatever a
    command prints, a storage URL's password never reaches the terminal or a log."""

    def __init__(self, stream: Any):
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(mask_secrets(text))
        return len(text)

    def flush(self) -> None:
        self._stream.flush()

    def fileno(self) -> int:
        return self._stream.fileno()

    def isatty(self) -> bool:
        return self._stream.isatty()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self._stream, "encoding", "utf-8")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _print_traceback() -> None:
    sys.stderr.write(mask_secrets(traceback.format_exc()))


def _one_line(e: BaseException) -> str:
    if isinstance(e, OSError) and not isinstance(e, HwnasError):
        text = f"{e.filename}: {e.strerror or e}" if e.filename is not None else \
            f"{e.strerror or e}"
        if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS):
            text += " (what was there before is kept as it was)"
        return text
    text = str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e)
    return " ".join(text.split())
