"""Command-line options that choose and configure a profiler backend and its timing protocol
(profile and search)."""

from __future__ import annotations

import argparse

from hwnas._cli import int_in, non_negative_float, positive_float
from hwnas.profile._base import Backend
from hwnas.profile._onnxruntime import OPTIMIZATION_LEVELS
from hwnas.profile._stats import STATISTICS
from hwnas.profile._timing import TimingProtocol

#: the simulated device's contexts (hwnas.profile._simulated.NOISE, which tests compare), named
#: here so that --help loads no simulator
SIMULATED_CONTEXTS = ("quiet", "cpu", "bursty")


def add_backend_options(parser: argparse.ArgumentParser, default: str | None) -> None:
    """Add --backend, --context, --device-id, --batch, --threads and --optimization."""
    from hwnas.profile import BACKENDS, DEVICE_BACKENDS
    contexts = ", ".join(SIMULATED_CONTEXTS)
    parser.add_argument("--backend", choices=sorted(BACKENDS), default=default,
                        help="profiler runtime (default: "
                             f"{default or 'the first installed of ' + ', '.join(DEVICE_BACKENDS)}"
                             f"); simulated: a device of known latencies and noise, for tests "
                             f"and benchmarks (--context {contexts}; --device-id is its seed)")
    parser.add_argument("--context", default="cpu",
                        help="device: cpu, or the GPU's (nnabla: cudnn; onnxruntime, torch: cuda); "
                             f"for simulated its noise: {contexts} (default: cpu)")
    parser.add_argument("--device-id", type=int_in(0, 1023), default=0,
                        help="GPU index (simulated: the seed of its noise)")
    parser.add_argument("--batch", type=int_in(1, 65536), default=1,
                        help="batch size to measure (default: 1)")
    parser.add_argument("--threads", type=int_in(1, 1024), default=1,
                        help="intra-op threads of onnxruntime and torch (default: 1; nnabla's "
                             "CPU context always uses one)")
    parser.add_argument("--optimization", choices=OPTIMIZATION_LEVELS, default="all",
                        help="onnxruntime graph optimisation (default: all, as deployed)")


def backend_from_args(name: str, args: argparse.Namespace) -> Backend:
    """The backend ``name`` configured by the options of ``add_backend_options``."""
    from hwnas.profile._backends import backend_options, get_backend
    return get_backend(name, **backend_options(name, vars(args)))


def add_protocol_options(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """Add --warmup, --runs, --rounds, --max-round-s, --pause-s and --statistic
    (``TimingProtocol``)."""
    defaults = TimingProtocol()
    parser.add_argument("--warmup", type=int_in(0, 10**6), default=defaults.warmup,
                        help="untimed runs per unit and round (default: %(default)s)")
    parser.add_argument("--runs", type=int_in(1, 10**6), default=defaults.runs,
                        help="timed runs per unit and round, at most (default: %(default)s)")
    parser.add_argument("--rounds", type=int_in(1, 100), default=defaults.rounds,
                        help="interleaved rounds per unit (default: %(default)s)")
    parser.add_argument("--max-round-s", "--max-seconds", dest="max_round_s",
                        type=positive_float, default=defaults.max_round_s,
                        help=f"stop a unit's round after this long, once {defaults.min_runs} "
                             f"runs (or --runs, if fewer) are done (default: %(default)s)")
    parser.add_argument("--pause-s", type=non_negative_float, default=defaults.pause_s,
                        help="pause before measuring a noisy unit again (at most "
                             f"{defaults.max_remeasures} times; default: %(default)s)")
    parser.add_argument("--statistic", choices=sorted(STATISTICS), default=defaults.statistic,
                        help="what latency_ms is, over a unit's timed runs of every round "
                             "(default: %(default)s, the statistic that repeated best across "
                             "processes on shared machines)")


def protocol_from_args(args: argparse.Namespace) -> TimingProtocol:
    """The timing protocol of the options of ``add_protocol_options``."""
    return TimingProtocol(warmup=args.warmup, runs=args.runs, rounds=args.rounds,
                          min_runs=min(TimingProtocol.min_runs, args.runs),
                          max_round_s=args.max_round_s, pause_s=args.pause_s,
                          statistic=args.statistic)
