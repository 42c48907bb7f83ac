"""python -m hwnas.fit: fit a predictor from measurement tables and save it as JSON.

Layer models (lookup, linear, tree) fit on --layers; network models (additive,
additive_features, tree_z, transfer) on --networks; transfer leans on the shipped devices of
the space, so that about 10 networks (hwnas.profile --networks 10 --design transfer) suffice.
--calibrate-with wraps the model in a calibration true ~ a * predicted + b fitted on measured
networks. Network tables need only space, z and the target column (numbers from any tool);
--device names the device they were measured on, or without --networks a shipped device
(python -m hwnas.devices) whose measured networks to fit.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Sequence

from hwnas import _cli
from hwnas._files import check_outputs_not_inputs
from hwnas.devices import device_matrix, load_device
from hwnas.errors import InputError
from hwnas.predictors import (
    KINDS,
    CalibratedPredictor,
    Predictor,
    TransferPredictor,
    UnknownChoiceWarning,
    from_dict,
    uncalibrated,
)
from hwnas.spaces import SearchSpace, load_space
from hwnas.tables import read_layer_table, read_network_table

PROG = "python -m hwnas.fit"
MODELS = sorted(kind for kind in KINDS if kind != "calibrated")


def parser() -> _cli.ArgumentParser:
    p = _cli.ArgumentParser(prog=PROG, description=__doc__.split("\n")[0])
    p.add_argument("--model", choices=MODELS, default="lookup",
                   help="predictor kind (default: %(default)s)")
    p.add_argument("--layers", metavar="CSV", help="layer table (layer models)")
    p.add_argument("--networks", metavar="CSV", help="network table (network models)")
    _cli.add_space_option(p, None)
    p.add_argument("--calibrate-with", metavar="CSV",
                   help="network table to calibrate the model on (true ~ a * predicted + b)")
    p.add_argument("--fallback", choices=["linear", "tree"],
                   help="lookup only: predict layers missing from the table with this model")
    p.add_argument("--target", default="latency_ms",
                   help="table column to fit, e.g. energy_mj (default: %(default)s)")
    p.add_argument("--device", metavar="NAME",
                   help="without --networks: a shipped device (python -m hwnas.devices) whose "
                        "measured networks to fit on; with them: the device they were measured "
                        "on, where they have no device column (e.g. 'Pixel 7, TFLite 2.16')")
    p.add_argument("--allow-mixed-devices", action="store_true",
                   help="allow calibration networks measured on another device than layers")
    p.add_argument("--out", required=True, help="predictor file to write (JSON)")
    return p


def fit_predictor(args) -> tuple[Predictor, SearchSpace | None]:
    """The fitted predictor and the space of its network tables (None for layer models)."""
    cls = KINDS[args.model]
    kwargs = {"target": args.target}
    if args.fallback:
        if args.model != "lookup":
            raise InputError("--fallback is for --model lookup")
        kwargs["fallback"] = KINDS[args.fallback]()
    model = cls(**kwargs)
    space = None
    if args.device and not (cls.from_networks or args.calibrate_with):
        raise InputError("--device names the device of network tables (--networks, "
                         "--calibrate-with) or a shipped device to fit a network model on; a "
                         "layer table carries its own")
    if cls.from_networks:
        if not args.networks and not args.device:
            raise InputError(f"--model {args.model} is fitted from measured networks: give "
                             f"--networks, or --device NAME of a shipped device")
        networks = read_network_table(args.networks, _space(args), target=args.target,
                                      device=args.device) if args.networks else \
            load_device(args.device, args.space)
        space = _space(args) or load_space(networks.space)
        if isinstance(model, TransferPredictor):  # the shipped devices are its prior knowledge
            model.set_params(known=device_matrix(space.name))
        model.fit_table(networks, space)
    else:
        if not args.layers:
            raise InputError(f"--model {args.model} is fitted from a layer table: give --layers")
        model.fit_table(read_layer_table(args.layers))
    if args.calibrate_with:
        calibration = read_network_table(args.calibrate_with, _space(args), target=args.target,
                                         device=args.device)
        space = space or _space(args) or load_space(calibration.space)
        model = CalibratedPredictor(model, args.allow_mixed_devices, args.target).fit_table(
            calibration, space)
    return model, space


def _unknown_choices(model: Predictor, space: SearchSpace | None) -> list:
    base = uncalibrated(model)
    if space is None or not hasattr(base, "unknown_choices"):
        return []
    return base.unknown_choices(space)


def _space(args):
    return load_space(args.space) if args.space else None


def check_loadable(model: Predictor, out: str) -> None:
    """Refuse to write a predictor that ``load_predictor`` would refuse (a fit that overflowed
    to inf or NaN, on latencies near 1e308; a zero or negative cost): an InputError naming
    ``out``, before anything is written."""
    try:
        from_dict(model.to_dict(), "the fitted predictor")
    except InputError as e:
        raise InputError(f"{out}: not written: {e} (are the table's values plausible "
                         f"latencies?)") from None


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    check_outputs_not_inputs({"--out": args.out},
                             {"--layers": args.layers, "--networks": args.networks,
                              "--calibrate-with": args.calibrate_with, "--space": args.space})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model, space = fit_predictor(args)
    check_loadable(model, args.out)  # its error explains numpy's overflow warnings
    for w in caught:
        if not issubclass(w.category, UnknownChoiceWarning):  # the summary lists them all
            print(f"{PROG}: warning: {w.message}", file=sys.stderr)
    model.save(args.out)
    summary = f"{args.out}: {model.kind} predictor of {model.target} for " \
              f"{model.fingerprint_.describe()}"
    if isinstance(model, CalibratedPredictor):
        summary += f"; calibration a = {model.a_:.4f}, b = {model.b_:.4f}"
    print(summary)
    base = uncalibrated(model)
    if isinstance(base, TransferPredictor):
        print(f"leaned on the shipped devices {base.describe_weights()} ({base.features_}, "
              f"ridge {base.ridge_:g}; leave-one-out error {100 * base.loo_error_:.1f} %)")
    unknown = _unknown_choices(model, space)
    if unknown:
        print(f"{len(unknown)} choice(s) unknown to it (in no measured network: NaN, infeasible "
              f"in search; measure networks with them, e.g. hwnas.profile --networks N "
              f"--design): {', '.join(unknown)}")
    return 0


if __name__ == "__main__":
    sys.exit(_cli.run(main, PROG))
