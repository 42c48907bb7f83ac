"""python -m hwnas.profile: measure a space's unique layers, or whole networks, into a CSV.

On ``ofa`` the layers are those of 3 resolutions (``layers_to_measure``), as the default flow
measures them; ``--all-layers`` measures all.

Rows are appended and flushed one at a time, under a lock on the table: run the same command
again after an interruption and it measures only what is missing. ``--cache`` shows the
tables cached by the default flow of hwnas.search, ``--remeasure`` discards a device's.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence

from hwnas import _cli
from hwnas._files import loads_json, read_text
from hwnas.errors import InputError
from hwnas.profile import (
    PREDICTION_NOISE,
    TimingProtocol,
    add_backend_options,
    add_protocol_options,
    backend_from_args,
    cache_report,
    default_backend,
    discard_cache,
    profile_layers,
    profile_networks,
    protocol_from_args,
    table_quality,
)
from hwnas.profile._retime import retime
from hwnas.spaces import SearchSpace, load_space
from hwnas.tables import LayerTable, NetworkTable, Timing

PROG = "python -m hwnas.profile"
#: how --design chooses the networks of --networks N
DESIGNS = ("cover", "transfer")


def parser() -> _cli.ArgumentParser:
    p = _cli.ArgumentParser(prog=PROG, description=__doc__.split("\n")[0])
    _cli.add_space_option(p, "mobilenet")
    add_backend_options(p, default=None)
    p.add_argument("--out", help="table to write or resume (CSV; not with --export); needed "
                   "unless --cache or --remeasure")
    p.add_argument("--cache", action="store_true", help="show the cached tables (of "
                   "python -m hwnas.search): when and how steadily each was measured")
    p.add_argument("--remeasure", action="store_true", help="discard the cached tables of "
                   "the device (--backend, --context, ...) so that the next use measures them "
                   "again")
    p.add_argument("--networks", type=_cli.int_in(1, _cli.MAX_NETWORKS), metavar="N",
                   help="measure N random whole networks (a network table) instead of layers")
    p.add_argument("--seed", type=_cli.seed, default=0, help="seed of the random networks")
    p.add_argument("--from", dest="from_file", metavar="PATH",
                   help="measure the networks of a search result JSON (its 'best' z: each "
                        "re-timed now and reported on the search's scale, with networks of "
                        "this device's cache timed beside, and raw, as they ran now), or of "
                        "a text file with one z per line (e.g. 0-3-6-..., or the space's "
                        "own notation: NAS-Bench-201 arch strings, Once-for-All's "
                        "ks:...;e:...;d:...;r:... strings or {\"ks\", \"e\", \"d\", \"r\"} "
                        "JSON configurations, also as one JSON file)")
    add_protocol_options(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_any_device_options(p)
    return p


# --- any device: choose networks by a covering design, export for a device -----------------

def add_any_device_options(p: _cli.ArgumentParser) -> None:
    p.add_argument("--design", nargs="?", const="cover", choices=DESIGNS,
                   help="with --networks N: 'cover' (the default): N networks in which every "
                        "choice of every decision appears, evenly (a covering design; seeded "
                        "by --seed); 'transfer': the N networks that separate the shipped "
                        "devices of the space best, to fit hwnas.fit --model transfer on")
    p.add_argument("--export", metavar="DIR",
                   help="measure nothing here: write ONNX files, a manifest and a standalone "
                        "runner (numpy + onnxruntime only) into DIR, for the layers, or for "
                        "--networks N (a covering design) / --from; time them on the device "
                        "with 'python DIR/runner.py --device NAME'. With --backend torch: "
                        "graphs for a device with PyTorch (the runner needs numpy + torch)")
    p.add_argument("--with-layers", action="store_true",
                   help="with --export and networks: export the space's layers as well")
    p.add_argument("--all-layers", action="store_true",
                   help="measure (or export) every unique layer of the space; without it, a "
                        "space with many sizes of one layer (ofa: 1,257 layers over 25 "
                        "resolutions) gets the layers of a few sizes (ofa: 284, at r = 128, "
                        "176, 224), and 'hwnas fit --model lookup --fallback linear' predicts "
                        "the others, as the default flow of hwnas search does")


def layers_of(args, space: SearchSpace):
    """The layers to measure or export: every unique one (--all-layers), or the space's
    ``layers_to_measure`` (all of them but on ``ofa``)."""
    return space.unique_layers() if args.all_layers else space.layers_to_measure()


def network_zs(args, space: SearchSpace):
    """The networks to measure or export: --from, a design (--design; always for --export),
    else random."""
    if args.from_file:
        return read_zs(args.from_file, space)
    if args.design == "transfer":
        from hwnas.devices import device_matrix
        from hwnas.predictors import transfer_design
        return transfer_design(device_matrix(space.name), space, args.networks)
    if args.design or args.export:
        return space.design(args.networks, args.seed)
    return space.random_z(args.networks, args.seed)


def export(args, space: SearchSpace) -> int:
    from hwnas.profile._export import export_for_device
    if protocol_from_args(args) != TimingProtocol():
        raise InputError("--export measures nothing here: give the timing options (--warmup, "
                         "--runs, --rounds, --max-round-s, --pause-s, --statistic) to "
                         "runner.py on the device")
    zs = network_zs(args, space) if args.networks or args.from_file else None
    layers = layers_of(args, space) if zs is None or args.with_layers else None
    runtime = "torch" if args.backend == "torch" else "onnxruntime"
    path = export_for_device(args.export, space, zs, layers, args.batch, runtime=runtime)
    counts = [f"{len(zs)} networks" if zs is not None else "",
              f"{len(layers)} layers" if layers else ""]
    print(f"{path}: {' and '.join(c for c in counts if c)} of {space.name} exported; on the "
          f"device run: python {args.export}/runner.py --device NAME (needs numpy and "
          f"{runtime}), then read back {args.export}/networks.csv (hwnas.fit --networks) "
          f"or {args.export}/layers.csv (--layers" + (
              ", with --model lookup --fallback linear: the layers of a few sizes"
              if layers and len(layers) < len(space.unique_layers()) else "") + ")")
    return 0

# ---------------------------------------------------------------------------------------------


def search_doc(path: str) -> dict | None:
    """The search result JSON at ``path`` (a document with ``best``), or None for a file of z
    (one a line, or JSON configurations)."""
    doc = _json(read_text(path, "file of z"), path)
    return doc if isinstance(doc, dict) and "best" in doc else None


def read_zs(path: str, space: SearchSpace) -> list[Sequence[int]]:
    """z from a search result JSON (its ``best`` entries), a JSON z or list of z (each a list
    of choice indices or the space's own configuration: Once-for-All's ``{"ks", "e", "d",
    "r"}``), or a text file of one z per line (``0-3-6-...``, the space's own notation, or a
    JSON configuration)."""
    text = read_text(path, "file of z")
    zs: list[Sequence[int]] = []
    doc = _json(text, path)
    if doc is not None:
        entries = doc["best"] if isinstance(doc, dict) and "best" in doc else \
            doc if isinstance(doc, list) and doc and not isinstance(doc[0], int) else [doc]
        for i, entry in enumerate(entries if isinstance(entries, list) else [entries]):
            value = entry["z"] if isinstance(entry, dict) and "z" in entry else entry
            try:
                zs.append(space.z_of(value))
            except (ValueError, TypeError) as e:
                raise InputError(f"{path}: z number {i + 1}: {e}") from None
    else:  # one z a line, checked by the space, which also reads its own notation
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip() and not line.lstrip().startswith("#"):
                line = line.strip()
                try:
                    zs.append(space.z_of(line if line.startswith("{") else
                                         re.sub(r"[,\s]+", "-", line)))
                except ValueError as e:
                    raise InputError(f"{path}, line {number}: {e}") from None
    if not zs:
        raise InputError(f"{path}: no z found")
    return zs


def _json(text: str, path: str):
    """The file as one JSON document, or None for a text file of one z a line (which may be
    JSON configurations, one a line)."""
    if not text.lstrip().startswith(("{", "[")):
        return None
    try:
        return loads_json(text)
    except (ValueError, RecursionError) as e:  # loads_json: a repeated key, a huge integer
        if len([line for line in text.splitlines() if line.strip()]) > 1:
            return None
        raise InputError(f"{path}: not a search result JSON or a JSON z ({e})") from None


def _complete_rows(path: str) -> int:
    """Rows a table already holds (complete lines after the header; 0 for a new file)."""
    try:
        with open(path, "rb") as f:
            return max(sum(1 for line in f if line.endswith(b"\n") and line.strip()) - 1, 0)
    except FileNotFoundError:
        return 0


def _refuse_contradictions(args) -> None:
    """Options that cannot both be meant are one line, not one of them ignored."""
    pairs = [("--export", args.export, "--out", args.out),
             ("--cache", args.cache, "--out", args.out),
             ("--cache", args.cache, "--export", args.export),
             ("--cache", args.cache, "--remeasure", args.remeasure),
             ("--from", args.from_file, "--networks", args.networks),
             ("--from", args.from_file, "--design", args.design)]
    for a, given_a, b, given_b in pairs:
        if given_a and given_b:
            raise InputError(f"{a} and {b} contradict each other: give one of them "
                             f"(see --help)")
    if args.with_layers and not args.export:
        raise InputError("--with-layers adds the layers to an export: give --export DIR")
    if args.all_layers and (args.networks or args.from_file) and not args.with_layers:
        raise InputError("--all-layers is for layers: without --networks / --from, or with "
                         "--export and --with-layers")


def _note_unmeasured(space: SearchSpace, table: LayerTable | NetworkTable, path: str) -> None:
    """Say what predicts the layers of the space that a layer table lacks (ofa's other
    resolutions, measured without --all-layers)."""
    if not isinstance(table, LayerTable):
        return
    missing = sum(ly.key not in table.timings for ly in space.unique_layers())
    if missing:
        print(f"the space's {missing} other layers: 'hwnas fit --layers {path} --model lookup "
              f"--fallback linear' predicts them (a regressor over layer features, anchored "
              f"to the same layers' measured sizes), or measure them too with --all-layers")


def _predictions(table: LayerTable | NetworkTable) -> str:
    """What a table's prediction noise is of (see TableQuality)."""
    return "the predicted latency of the space's networks" if isinstance(table, LayerTable) \
        else "its networks' latency"


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    _refuse_contradictions(args)
    if args.cache:
        print(cache_report())
        return 0
    if args.remeasure:
        backend = backend_from_args(args.backend or default_backend(), args)
        names = discard_cache(backend)
        print(f"discarded {len(names)} cached table(s) of {backend.fingerprint().describe()}"
              + (f": {', '.join(names)}" if names else ""))
        if not args.out and not args.export:
            return 0
    space = load_space(args.space)
    if args.export:
        return export(args, space)
    if not args.out:
        raise InputError("--out: give the table to write (or --export DIR, --cache, "
                         "--remeasure)")
    if args.design and not args.networks:
        raise InputError("--design chooses the networks of --networks N: give --networks")
    protocol = protocol_from_args(args)
    backend = backend_from_args(args.backend or default_backend(), args)
    table: LayerTable | NetworkTable
    timings: Sequence[Timing]
    before = _complete_rows(args.out)
    doc = None
    if args.networks or args.from_file:
        zs = network_zs(args, space)
        doc = search_doc(args.from_file) if args.from_file else None
        if doc is not None:  # a search's answers: re-timed, on its scale and raw
            print(retime(backend, space, zs, args.out, protocol, doc,
                         not args.quiet).report())
        table = profile_networks(backend, space, zs, args.out, protocol, not args.quiet)
        timings, unit = table.timings, "network"
    else:
        table = profile_layers(backend, layers_of(args, space), args.out, protocol,
                               not args.quiet)
        timings, unit = list(table.timings.values()), "layer"
    count = f"{len(timings)} {unit}{'s' if len(timings) != 1 else ''} " \
            f"({max(len(timings) - before, 0)} measured now)"
    quality = table_quality(args.out, space)
    print(f"{args.out}: {count} with {table.fingerprint.describe()}; repeatability: a row's "
          f"latency moves by {100 * quality.median_noise:.1f} % between rounds (median), "
          f"{_predictions(table)} by up to {100 * quality.prediction_noise:.1f} % (90th "
          f"percentile; good at most {100 * PREDICTION_NOISE:g} %)")
    if doc is None:  # a re-time of a search says what its figures are itself
        print(f"latency_ms is the unloaded latency: the median over rounds of each round's "
              f"fastest run, each round divided by the machine's speed then, on the scale of "
              f"the batch that measured it (load average {quality.load_average:.1f} on "
              f"{quality.cpus} core(s) now)")
    warning = quality.warning()
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    _note_unmeasured(space, table, args.out)
    if args.batch > 1 and (args.networks or args.from_file):
        per_s = sorted(args.batch / t.latency_ms * 1e3 for t in timings)
        print(f"throughput: {per_s[0]:.0f}-{per_s[-1]:.0f} samples/s at batch {args.batch}")
    return 0


if __name__ == "__main__":
    sys.exit(_cli.run(main, PROG))
