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
import importlib
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace

import optuna

from hwnas import _cli
from hwnas._files import (
    check_figure_path,
    check_outputs_not_inputs,
    json_ready,
    safe_name,
    write_json,
)
from hwnas.devices import device_predictor
from hwnas.errors import InputError
from hwnas.predictors import (
    CalibratedPredictor,
    LookupPredictor,
    Predictor,
    load_predictor,
    uncalibrated,
)
from hwnas.profile import (
    Backend,
    add_backend_options,
    add_protocol_options,
    available_backends,
    backend_from_args,
    device_tables,
    export_onnx,
    protocol_from_args,
)
from hwnas.profile._latency import DEFAULT_LATENCY, LATENCIES, WHY_DEFAULT
from hwnas.search._fleet import fleet_budgets, is_predictor_file, split_budgets
from hwnas.search._plot import plot_search
from hwnas.search._study import (
    MODES,
    OBJECTIVES,
    SAMPLERS,
    BudgetError,
    SearchInterrupted,
    SearchResult,
    SearchSettings,
    search,
)
from hwnas.search._verify import Verification, Verifier, calibrate
from hwnas.spaces import SPACES, SearchSpace, load_space
from hwnas.tables import NetworkTable, format_z, read_layer_table

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
    if args.remeasure and (args.predictor or args.table):
        raise InputError("--remeasure re-measures the cached tables of the default flow: "
                         "drop --table / --predictor, or re-measure with python -m "
                         "hwnas.profile")
    budget_ms, first, others = split_budgets(args.budget or [], args.budget_ms)
    if first is not None:  # no budget of the search's own: the first --budget's predictor is
        if args.table or args.predictor or args.device:
            raise InputError("give --budget-ms (or --budget local=LIMIT) for the search's own "
                             "predictor (--table, --predictor, --device)")
        args.predictor, args.device = (first, None) if is_predictor_file(first) else (None,
                                                                                      first)
    source = _source(args, budget_ms)
    settings = replace(_settings(args), fleet=fleet_budgets(others, source.space))
    try:
        verification = None
        if args.no_verify:
            result = search(source.space, source.predictor, budget_ms, settings=settings)
            predictor = source.predictor
        else:
            verification = Verifier(source.space, settings, budget_ms,
                                    backend=source.backend,
                                    calibration=source.networks,
                                    protocol=protocol_from_args(args), log=print
                                    ).run(source.predictor)
            result, predictor = verification.result, verification.predictor
    except BudgetError as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        return 1
    except SearchInterrupted as e:
        print(f"\n{PROG}: {e}", file=sys.stderr)
        return 130
    print(report(result, predictor))
    if verification is not None:
        print(verification_report(verification))
    if args.json:
        _write_json(as_json(result, predictor, source.path, verification), args.json)
        print(f"wrote {args.json}")
    if args.plot:
        plot_search(result, args.plot)
        print(f"wrote {args.plot}")
    if args.export_onnx:
        space = source.space
        for rank, c in enumerate(result.best, 1):
            path = os.path.join(args.export_onnx,  # the name from a space file, made safe
                                f"{safe_name(space.name)}-{rank}-{format_z(c.z)}.onnx")
            export_onnx(space.decode(c.z).graph, path, batch=predictor.fingerprint_.batch)
            print(f"wrote {path}")
    return 0


@dataclass(frozen=True)
class Source:
    """Where the search's predictions come from: the predictor and its space, the file it was
    read from; for the default flow also the backend that measured it and the calibration
    networks."""

    space: SearchSpace
    predictor: Predictor
    path: str
    backend: Backend | None = None
    networks: NetworkTable | None = None


def _source(args, budget_ms: float | None) -> Source:
    """A saved predictor (--predictor), the raw layer sums of a table (--table), or this
    machine measured and calibrated (the default flow: hwnas.profile.device_tables)."""
    if args.device:
        predictor = device_predictor(args.device, args.space)
        return Source(load_space(predictor.space_), predictor,
                      f"hwnas.devices:{predictor.space_}/{args.device}")
    loaded = load_predictor(args.predictor) if args.predictor else None
    space = load_space(args.space or _predictor_space(loaded, args.predictor) or "mobilenet")
    if loaded is not None:
        return Source(space, loaded, args.predictor)
    if args.table:
        return Source(space, LookupPredictor().fit(read_layer_table(args.table)), args.table)
    name = args.backend or next(iter(available_backends()), None)
    if name is None:
        raise InputError("no profiler backend is installed to measure this machine: "
                         "run scripts/setup (nnabla in .venv), or give --table")
    backend = backend_from_args(name, args)
    layers, networks = device_tables(backend, space, protocol=protocol_from_args(args),
                                     show_progress=not args.quiet, remeasure=args.remeasure)
    predictor = calibrate(LookupPredictor().fit(layers), networks, space, backend, budget_ms)
    return Source(space, predictor, layers.path, backend, networks)


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


def _write_json(doc: dict, path: str) -> None:
    """Write ``doc`` atomically (hwnas._files.write_json): a reader never sees a
    half-written result, a full disk leaves an earlier file as it was; an unknown number
    (NaN) is null, as JSON has no NaN; secrets in strings are masked (json_ready)."""
    write_json(path, json_ready(doc))


def verification_report(verification) -> str:
    """Measured beside predicted latency of each reported architecture, and the verdict."""
    return verification.report()


def _bytes(kib):
    return None if kib is None else int(kib * 1024)


def _predictor_space(predictor: Predictor | None, path: str | None) -> str | None:
    """The built-in space a loaded predictor was fitted on, where it records one."""
    name = getattr(predictor, "space_", None)
    if name is None or name in SPACES:
        return name
    raise InputError(f"{path} was fitted on networks of space {name!r}: give its space file "
                     f"with --space")


def load_objective(text: str):
    """A built-in objective's name, or ``module:function``; raise InputError naming
    --objective if the module cannot be imported (a SyntaxError or any error in its code)
    or has no such callable."""
    if text in OBJECTIVES:
        return text
    module, _, function = text.partition(":")
    if not module or not function:
        raise InputError(f"--objective {text!r}: expected one of {sorted(OBJECTIVES)} or "
                         f"module:function")
    try:
        loaded = importlib.import_module(module)
    except SyntaxError as e:
        raise InputError(f"--objective {text!r}: cannot load it: {e.filename}, line "
                         f"{e.lineno}: syntax error: {e.msg}") from None
    except Exception as e:  # the module is the user's code: whatever it raises is theirs
        raise InputError(f"--objective {text!r}: cannot load it: importing {module!r} "
                         f"raised {type(e).__name__}: {e}") from None
    objective = getattr(loaded, function, None)
    if not callable(objective):
        raise InputError(f"--objective {text!r}: module {module!r} has no callable "
                         f"{function!r}")
    return objective


def describe(predictor) -> str:
    text = f"{predictor.kind} predictor"
    if isinstance(predictor, CalibratedPredictor):
        text += (f" (a = {predictor.a_:.3f} x {uncalibrated(predictor).kind} + b = "
                 f"{predictor.b_:.3f} ms: {predictor.how_})")
    return text


def report(result: SearchResult, predictor) -> str:
    least = "unknown (not additive)" if result.min_latency_ms is None else \
        f"{result.min_latency_ms:.3f} ms"
    lines = [f"space {result.space}, budget {result.budget_ms:g} ms, "
             f"{predictor.fingerprint_.describe()}",
             f"{describe(predictor)}; {result.mode} mode, {result.sampler} sampler; "
             f"{result.trials} trials, {result.feasible_trials} feasible; least reachable "
             f"latency {least}; objective: {result.objective}",
             *result.notes,
             "" if result.mode != "pareto" else "Pareto front, fastest first:",
             f"{'rank':>4}  {'predicted_ms':>12}  {'objective':>12}  {'MMACs':>8}  "
             f"{'params_k':>8}  {'param_KiB':>9}  {'act_KiB':>8}  z / notation"]
    for i, c in enumerate(result.best, 1):
        lines.append(f"{i:>4}  {c.predicted_latency_ms:>12.3f}  {c.objective:>12.6g}  "
                     f"{c.macs / 1e6:>8.2f}  {c.params / 1e3:>8.1f}  "
                     f"{c.param_bytes / 1024:>9.1f}  {c.peak_activation_bytes / 1024:>8.1f}  "
                     f"{format_z(c.z)}")
        upper = "" if c.latency_upper_ms is None else \
            f"   (upper quantile {c.latency_upper_ms:.3f} ms)"
        lines.append(f"{'':>4}  {c.notation}{upper}")
        if c.budgets:
            lines.append(f"{'':>4}  budgets: " + ", ".join(
                f"{name} {value:.3f} / {limit:g} {unit}" for name, value, limit, unit
                in c.budgets))
    return "\n".join(lines)


def as_json(result: SearchResult, predictor, source: str,
            verification: Verification | None = None) -> dict:
    fingerprint = predictor.fingerprint_
    doc = {"budget_ms": result.budget_ms, "space": result.space,
           "backend": fingerprint.backend, "device": asdict(fingerprint),
           "predictor": describe(predictor), "source": source,
           "objective": result.objective, "mode": result.mode, "sampler": result.sampler,
           "trials": result.trials,
           "feasible_trials": result.feasible_trials,
           "min_latency_ms": result.min_latency_ms, "notes": list(result.notes),
           "best": [c.as_dict() for c in result.best]}
    if verification is None:
        doc.update(verified=False, verification={"note": "not verified: --no-verify"})
        return doc
    doc.update(verification.as_dict())
    for entry in doc["best"]:
        entry.update(verification.measured(tuple(entry["z"])))
    return doc


if __name__ == "__main__":
    sys.exit(_cli.run(main, PROG))
