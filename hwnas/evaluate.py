"""python -m hwnas.evaluate: score a saved predictor against measured networks.

Reports MAPE, RMSPE, the share of networks within +-5/10/15 %, Kendall's tau and
Spearman's rho; --plot draws predicted against measured. Warns (and --json's
``fitted_overlap`` counts) where the networks scored include those the predictor was fitted
or calibrated on.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import numpy as np

from hwnas import _cli
from hwnas._files import check_figure_path, check_outputs_not_inputs, json_ready, write_json
from hwnas.devices import load_device
from hwnas.errors import InputError
from hwnas.predictors import evaluate, load_predictor
from hwnas.predictors._evaluate import plot_predicted_vs_measured
from hwnas.profile._cache import table_latency
from hwnas.spaces import load_space
from hwnas.tables import read_network_table

PROG = "python -m hwnas.evaluate"


def parser() -> _cli.ArgumentParser:
    p = _cli.ArgumentParser(prog=PROG, description=__doc__.split("\n")[0])
    p.add_argument("--predictor", required=True, help="predictor file (from hwnas.fit)")
    p.add_argument("--networks", metavar="CSV", help="measured network table (or --device)")
    _cli.add_space_option(p, None)
    p.add_argument("--target", help="column to score (default: the predictor's target)")
    p.add_argument("--device", metavar="NAME",
                   help="without --networks: a shipped device (python -m hwnas.devices) whose "
                        "measured networks to score on; with them: the device they were "
                        "measured on, where they have no device column")
    p.add_argument("--json", metavar="PATH", help="write the metrics as JSON")
    p.add_argument("--plot", metavar="PNG", help="plot predicted against measured")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    check_outputs_not_inputs({"--json": args.json, "--plot": args.plot},
                             {"--predictor": args.predictor, "--networks": args.networks,
                              "--space": args.space})
    check_outputs_not_inputs({"--json": args.json}, {"--plot": args.plot})
    check_figure_path("--plot", args.plot)
    predictor = load_predictor(args.predictor)
    space = load_space(args.space) if args.space else None
    if args.networks:
        networks = read_network_table(args.networks, space,
                                      target=args.target or predictor.target, device=args.device)
    elif args.device:
        networks = load_device(args.device, args.space or getattr(predictor, "space_", None))
    else:
        raise InputError("give the measured networks: --networks CSV, or --device NAME of a "
                         "shipped device")
    space = space or load_space(networks.space)
    if networks.fingerprint != predictor.fingerprint_:
        print(f"{PROG}: warning: the networks were measured on "
              f"{networks.fingerprint.describe()}, the predictor's tables on "
              f"{predictor.fingerprint_.describe()}", file=sys.stderr)
    target = args.target or predictor.target
    measured = networks.values(target)
    if (measured <= 0).any():  # percentage errors divide by it
        raise InputError(f"{networks.path}: column {target!r} is {measured.min():g} (<= 0) in "
                         f"{int(np.sum(measured <= 0))} row(s): percentage errors (MAPE, "
                         f"RMSPE) are undefined there; score another column or drop those rows")
    result = evaluate(predictor, networks, space, args.target)
    metrics = {k: v for k, v in result.items() if k not in ("predicted", "measured")}
    _warn_fitted_overlap(predictor, metrics["fitted_overlap"], metrics["n"])
    latency = table_latency(networks.path, networks.fingerprint, metrics["target"])
    print(f"{predictor.kind} predictor on {metrics['n']} networks of {networks.path} "
          f"({metrics['target']})")
    print(f"  measured: {latency}")
    print(f"  MAPE {metrics['mape_pct']:.2f} %   RMSPE {metrics['rmspe_pct']:.2f} %   "
          f"within 5/10/15 %: {metrics['within_5_pct']:.0f} / {metrics['within_10_pct']:.0f} "
          f"/ {metrics['within_15_pct']:.0f} %   Kendall tau {metrics['kendall_tau']:.3f}   "
          f"Spearman rho {metrics['spearman_rho']:.3f}")
    if args.json:
        write_json(args.json, json_ready({"predictor": args.predictor,
                                               "networks": networks.path, **metrics,
                                               "measured": latency}))
    if args.plot:
        plot_predicted_vs_measured(result, args.plot, f"{predictor.kind} on {space.name}")
        print(f"wrote {args.plot}")
    return 0


def _warn_fitted_overlap(predictor, overlap: int | None, n: int) -> None:
    """One line where the scores are (or may be) on networks the predictor learned from."""
    if overlap:
        print(f"{PROG}: warning: {overlap} of the {n} networks scored are networks the "
              f"predictor was fitted or calibrated on: these scores are no held-out test "
              f"(score other networks)", file=sys.stderr)
    elif overlap is None:
        print(f"{PROG}: warning: the predictor file (from an earlier hwnas) does not record "
              f"which networks it was fitted or calibrated on: if these are among them, the "
              f"scores are no held-out test", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(_cli.run(main, PROG))
