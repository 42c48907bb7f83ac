"""What the commands share: one-line errors instead of tracebacks, and common options."""

from __future__ import annotations

import argparse
import errno
import io
import math
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from hwnas._files import DISK_ERRORS, MAX_INT_DIGITS, mask_secrets, parse_float, parse_int
from hwnas.errors import HwnasError

#: the most networks one ``--networks`` run measures: more is a typo, not a plan (refused
#: before anything is allocated)
MAX_NETWORKS = 100_000
#: the most trials and worker processes (each one forked) of a search: more is a typo
MAX_TRIALS, MAX_WORKERS = 10_000_000, 256


class ArgumentParser(argparse.ArgumentParser):
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
    """Run a command's main: a HwnasError (bad input, an unusable machine) or an I/O error on
    a named file (a missing folder, a full or read-only disk) is one line on stderr and exit
    status 2; Ctrl-C is one line and status 130; anything else is a bug and keeps its
    traceback (status 1). Every line and traceback printed has its secrets masked (a storage
    URL's password: see ``mask_secrets``). ``HWNAS_DEBUG=1`` shows the traceback of every
    error."""
    debug = os.environ.get("HWNAS_DEBUG", "") not in ("", "0")
    streams = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _Masking(sys.stdout), _Masking(sys.stderr)
    try:
        return _run(main, prog, argv, debug)
    finally:
        sys.stdout, sys.stderr = streams


def _run(main: Callable[[Sequence[str] | None], int], prog: str,
         argv: Sequence[str] | None, debug: bool) -> int:
    try:
        status = main(argv)
        sys.stdout.flush()  # a closed pipe shows here, where it is handled, not at exit
        return status
    except KeyboardInterrupt as e:
        if debug:
            _print_traceback()
        message = str(e) or "what was measured is kept, run again to resume"
        print(mask_secrets(f"\n{prog}: interrupted; {message}"), file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader of stdout went away (`| head`): nothing to report, as for any Unix tool;
        # stdout goes to devnull so that the interpreter's final flush does not fail again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception as e:
        # an OSError naming a file (a missing folder, no permission, a full disk) or a disk
        # that refuses a write is the user's to fix; any other is not
        if isinstance(e, HwnasError) or (isinstance(e, OSError) and (
                e.filename is not None or e.errno in DISK_ERRORS)):
            if debug:
                _print_traceback()
            print(mask_secrets(f"{prog}: error: {_one_line(e)}"), file=sys.stderr)
            return 2
        _print_traceback()
        print(f"{prog}: internal error: this is a bug in hwnas, not in your input; please "
              f"report it with the traceback above", file=sys.stderr)
        return 1


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
