"""python -m hwnas.search --budget-ms 5: latency-constrained architecture search.

With no --table or --predictor, this machine's layer table and whole networks spread over the
space are measured on first use, in one interleaved batch (cached per device fingerprint under
$HWNAS_CACHE, default ~/.cache/hwnas), and the layer sums are calibrated on those networks, so
that the budget is in true end-to-end milliseconds. Later runs re-time three cached networks
and reuse the cache, put on a faster scale where it was measured in a slow state. Where the
predictor's device is this machine, the reported architectures are then measured, and where
the evidence beyond the measured noise says so, the line is refitted and the search runs
again (hwnas.search._verify); --no-verify skips it.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

import optuna

from hwnas import _cli
from hwnas._files import check_figure_path, check_outputs_not_inputs
from hwnas.errors import InputError
from hwnas.profile import (
    add_backend_options,
    add_protocol_options,
    protocol_from_args,
)
from hwnas.profile._latency import DEFAULT_LATENCY, LATENCIES, WHY_DEFAULT
from hwnas.search._flow import MeasureSettings, find_architectures, load_objective
from hwnas.search._study import MODES, SAMPLERS, SearchSettings
from hwnas.spaces import load_space
from hwnas.tables import read_layer_table

PROG = "python -m hwnas.search"


def parser() -> _cli.ArgumentParser:
    p = _cli.ArgumentParser(
        prog=PROG, description=__doc__.split("\n")[0],
        epilog="The objective is an analytic proxy of accuracy, maximised under the budget: "
               "by default the MACs of the network (the largest network that fits the "
               "budget); --objective params maximises the parameter count instead.")
    _add_budget_options(p)
    _cli.add_space_option(p, None, "the --predictor's space if it records one, else mobilenet")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--table", help="layer table CSV: predict by lookup of its raw layer "
                        "latencies")
    source.add_argument("--predictor", help="a saved predictor (from python -m hwnas.fit)")
    source.add_argument("--device", metavar="NAME", help="a shipped device (python -m "
                        "hwnas.devices): search for it offline, with its measured latencies "
                        "(exact on nb201) or a predictor fitted on them (fbnet)")
    add_backend_options(p, default=None)
    add_protocol_options(p.add_argument_group(
        "timing", "how the default flow measures its tables and the verify loop its networks "
                  "(see python -m hwnas.profile)"))
    p.add_argument("--objective", default="macs", help="quantity to maximise: macs, params, "
                   "or module:function, any f(architecture) -> float such as a supernet's "
                   "validation accuracy (default: %(default)s)")
    p.add_argument("--mode", choices=MODES, default="constraint",
                   help="constraint: latency <= budget; penalty: objective x "
                        "(latency / budget)^w; pareto: objective up, latency down "
                        "(default: %(default)s)")
    p.add_argument("--penalty-weight", type=float, default=-0.07,
                   help="w of the penalty mode (default: %(default)s, as MnasNet)")
    p.add_argument("--sampler", choices=SAMPLERS, default="tpe",
                   help="Optuna sampler, wrapped so that it proposes only architectures "
                        "within the budgets; or exact: the optimum by dynamic programming "
                        "(additive predictor and objective) (default: %(default)s)")
    p.add_argument("--plain-sampler", action="store_true",
                   help="do not wrap the sampler: let it propose architectures over the "
                        "budgets and leave them to Optuna's constraint handling")
    p.add_argument("--plot", metavar="PNG", help="plot latency against objective: every "
                   "trial, the budget and the reported architectures")
    _add_study_options(p)
    p.add_argument("--json", metavar="PATH", help="write the result as JSON")
    p.add_argument("--export-onnx", metavar="DIR", help="write each reported architecture "
                   "as DIR/<space>-<rank>-<z>.onnx (needs onnx)")
    p.add_argument("--no-verify", action="store_true", help="report the predicted latencies "
                   "without measuring the reported architectures on this device (by default "
                   "they are measured, and a miss recalibrates and searches again)")
    p.add_argument("--remeasure", action="store_true", help="discard this device's cached "
                   "tables and measure them again (with neither --table nor --predictor)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def _add_budget_options(p: _cli.ArgumentParser) -> None:
    """The budgets: latency (this predictor's, a fleet's) and memory."""
    p.add_argument("--budget-ms", type=_cli.positive_float,
                   help="latency budget in milliseconds (predicted latency <= budget)")
    p.add_argument("--budget", action="append", metavar="NAME=LIMIT",
                   help="a budget of a fleet, repeatable: a shipped device (pixel3=15), this "
                        "machine or the search's own predictor (local=5, as --budget-ms), or "
                        "a fitted predictor file (p.json=3), each limit in its predictor's "
                        "unit (ms; mJ for one fitted on energy_mj); every trial is predicted "
                        "on each; without --budget-ms or local, the first is the search's own")
    p.add_argument("--max-params", type=_cli.positive_int, help="parameter budget")
    p.add_argument("--max-param-kib", type=_cli.positive_float, metavar="KIB",
                   help="parameter memory budget, KiB (1024 bytes)")
    p.add_argument("--max-activation-kib", type=_cli.positive_float, metavar="KIB",
                   help="peak activation memory budget, KiB (1024 bytes)")
    # the earlier spellings, which said kB but meant KiB, still work (hidden): scripts keep
    # running
    for what in ("param", "activation"):
        p.add_argument(f"--max-{what}-kb", type=_cli.positive_float, dest=f"max_{what}_kib",
                       help=argparse.SUPPRESS)
    p.add_argument("--confidence", type=float, metavar="Q", help="constrain the Q-quantile "
                   "of the predicted latency (e.g. 0.95; predictors with a spread)")
    p.add_argument("--latency", choices=LATENCIES, default=DEFAULT_LATENCY,
                   help="what the budget means where the answers are measured on this machine: "
                        "median or p90 of the runs in its current state, or unloaded (its "
                        "fastest state) (default: %(default)s). " + WHY_DEFAULT)


def _add_study_options(p: _cli.ArgumentParser) -> None:
    """The study: where it is kept, who shares it, how many trials, what is reported."""
    p.add_argument("--storage", help="Optuna storage: a URL (sqlite:///s.db, "
                   "postgresql://user@host/db) or a .journal file; default: in memory, or "
                   "with --study-name or --workers a journal file beside the results")
    p.add_argument("--study-name", help="name of the study, to resume or share it")
    p.add_argument("--workers", type=_cli.workers, default=1,
                   help="processes searching one study together (default: %(default)s)")
    p.add_argument("--trials", type=_cli.trials, default=100,
                   help="Optuna trials (default: %(default)s: the study starts from the exact "
                        "optimum where latency and objective are additive, which more trials "
                        "seldom improve on; give more for an objective of your own)")
    p.add_argument("--seed", type=_cli.seed, default=None, help="sampler seed, for a reproducible "
                   "search")
    p.add_argument("--top", type=_cli.positive_int, default=5,
                   help="architectures to report (default: %(default)s)")


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    _check_outputs(args)
    for option in ("--table", "--predictor", "--device"):
        if args.remeasure and getattr(args, option[2:]):
            raise InputError(f"--remeasure and {option} contradict each other: --remeasure "
                             f"re-measures this machine's cached tables (see --help)")
    space = load_space(args.space) if args.space else None  # its errors before a table's
    outcome = find_architectures(  # BudgetError exits 1, Ctrl-C 130 (hwnas._cli.run)
        args.budget_ms, space=space, device=args.device,
        predictor=read_layer_table(args.table) if args.table else args.predictor,
        fleet=args.budget or [],
        settings=_settings(args), measure=_measure(args), log=print)
    print(outcome.report())
    if args.json:
        outcome.write_json(args.json)
        print(f"wrote {args.json}")
    if args.plot:
        outcome.plot(args.plot)
        print(f"wrote {args.plot}")
    if args.export_onnx:
        for path in outcome.export_onnx(args.export_onnx):
            print(f"wrote {path}")
    return 0


def _measure(args) -> MeasureSettings:
    """How this machine is measured: --backend and its options, the timing protocol,
    --remeasure, --no-verify."""
    options = {key: getattr(args, key) for key in ("context", "device_id", "batch", "threads",
                                                   "optimization")}
    return MeasureSettings(backend=args.backend, backend_options=options,
                           protocol=protocol_from_args(args), remeasure=args.remeasure,
                           verify=not args.no_verify)


def _settings(args) -> SearchSettings:
    """The search settings of the command line; a named study, or several workers, without
    --storage share a journal file beside the results."""
    storage = args.storage
    if storage is None and (args.study_name or args.workers > 1):
        folder = os.path.dirname(os.path.abspath(args.json)) if args.json else os.getcwd()
        storage = os.path.join(folder, f"{args.study_name or 'hwnas-search'}.journal")
    return SearchSettings(
        objective=load_objective(args.objective), mode=args.mode, sampler=args.sampler,
        n_trials=args.trials, seed=args.seed, top=args.top, feasible=not args.plain_sampler,
        max_params=args.max_params, max_param_bytes=_bytes(args.max_param_kib),
        max_activation_bytes=_bytes(args.max_activation_kib), confidence=args.confidence,
        penalty_weight=args.penalty_weight, storage=storage, study_name=args.study_name,
        workers=args.workers, show_progress=not args.quiet, latency=args.latency)


def _check_outputs(args) -> None:
    """Refuse an output whose folder is missing or not writable, or that names an input or
    another output, before anything is measured or searched (the search and its device
    measurements take minutes)."""
    inputs = {"--predictor": args.predictor, "--table": args.table, "--space": args.space,
              "--storage": args.storage if args.storage and "://" not in args.storage
              else None}
    check_outputs_not_inputs({"--json": args.json, "--plot": args.plot},
                             {**inputs, "--export-onnx": args.export_onnx})
    check_outputs_not_inputs({"--json": args.json}, {"--plot": args.plot})
    check_figure_path("--plot", args.plot)
    for option, path, is_folder in [
            ("--json", args.json, False), ("--plot", args.plot, False),
            ("--export-onnx", args.export_onnx, True)]:
        if path is None:
            continue
        where = os.path.abspath(path)
        if is_folder and os.path.exists(where) and not os.path.isdir(where):
            raise InputError(f"{option} {path}: not a folder")
        if not is_folder and os.path.isdir(where):
            raise InputError(f"{option} {path}: is a folder; give a file name")
        # a missing --export-onnx folder is created on writing: its parent must be there
        folder = where if is_folder and os.path.isdir(where) else os.path.dirname(where)
        if not os.path.isdir(folder):
            raise InputError(f"{option} {path}: the folder {folder} does not exist")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise InputError(f"{option} {path}: the folder {folder} is not writable")


def _bytes(kib):
    return None if kib is None else int(kib * 1024)


if __name__ == "__main__":
    sys.exit(_cli.run(main, PROG))
