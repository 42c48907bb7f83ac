"""What the commands share: one-line errors instead of tracebacks, and common options."""

from __future__ import annotations

import argparse
import sys
from typing import Callable, Sequence

from hwnas._imports import MissingDependency
from hwnas.profile import BACKENDS, Backend, ProfileError, get_backend
from hwnas.profile._onnxruntime import OPTIMIZATION_LEVELS
from hwnas.tables import TableError

#: errors that a user's input or machine causes: shown as one line, never as a traceback
USER_ERRORS = (ValueError, KeyError, NotImplementedError, MissingDependency, ProfileError,
               TableError, OSError)


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


def add_backend_options(parser: argparse.ArgumentParser, default: str | None) -> None:
    parser.add_argument("--backend", choices=sorted(BACKENDS), default=default,
                        help="profiler runtime (default: %(default)s)")
    parser.add_argument("--context", default="cpu",
                        help="device: cpu, or the GPU's (nnabla: cudnn; onnxruntime: cuda) "
                             "(default: cpu)")
    parser.add_argument("--device-id", type=int, default=0, help="GPU index")
    parser.add_argument("--batch", type=positive_int, default=1,
                        help="batch size to measure (default: 1)")
    parser.add_argument("--threads", type=positive_int, default=1,
                        help="onnxruntime intra-op threads (default: 1; nnabla's CPU context "
                             "always uses one)")
    parser.add_argument("--optimization", choices=OPTIMIZATION_LEVELS, default="all",
                        help="onnxruntime graph optimisation (default: all, as deployed)")


def backend_from_args(name: str, args: argparse.Namespace) -> Backend:
    options = {"context": args.context, "device_id": args.device_id, "batch": args.batch}
    if name == "onnxruntime":
        options.update(threads=args.threads, optimization=args.optimization)
    return get_backend(name, **options)


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
