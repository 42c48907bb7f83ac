"""python -m hwnas.profile: measure a space's unique layers (or N whole networks) into a CSV.

Rows are appended and flushed one at a time: run the same command again after an
interruption and it measures only what is missing.
"""

from __future__ import annotations

import sys
from typing import Sequence

from hwnas import _cli
from hwnas.profile import (TimingProtocol, get_backend, profile_layers,
                           profile_networks)
from hwnas.spaces import SPACES, get_space

PROG = "python -m hwnas.profile"


def parser() -> _cli.ArgumentParser:
    p = _cli.ArgumentParser(prog=PROG, description=__doc__.split("\n")[0])
    p.add_argument("--space", default="mobilenet", help=f"search space: {', '.join(SPACES)} "
                   "(default: %(default)s)")
    _cli.add_backend_options(p, default="nnabla")
    p.add_argument("--out", required=True, help="table to write or resume (CSV)")
    p.add_argument("--networks", type=_cli.positive_int, metavar="N",
                   help="measure N random whole networks (a network table) instead of layers")
    p.add_argument("--seed", type=int, default=0, help="seed of the random networks")
    defaults = TimingProtocol()
    p.add_argument("--warmup", type=int, default=defaults.warmup,
                   help="untimed runs first (default: %(default)s)")
    p.add_argument("--runs", type=_cli.positive_int, default=defaults.runs,
                   help="timed runs at most (default: %(default)s)")
    p.add_argument("--max-seconds", type=_cli.positive_float, default=defaults.max_seconds,
                   help="stop timing a unit after this long, once 5 runs are done "
                        "(default: %(default)s)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    space = get_space(args.space)
    protocol = TimingProtocol(warmup=args.warmup, runs=args.runs,
                              min_runs=min(TimingProtocol.min_runs, args.runs),
                              max_seconds=args.max_seconds)
    backend = get_backend(args.backend, context=args.context, device_id=args.device_id,
                          batch=args.batch)
    if args.networks:
        table = profile_networks(backend, space, space.random_z(args.networks, args.seed),
                                 args.out, protocol, not args.quiet)
        count = f"{len(table.z)} networks"
    else:
        table = profile_layers(backend, space.unique_layers(), args.out, protocol,
                               not args.quiet)
        count = f"{len(table.timings)} layers"
    print(f"{args.out}: {count} measured with {table.fingerprint.describe()}")
    return 0


if __name__ == "__main__":
    sys.exit(_cli.run(main, PROG))
