"""Standalone runner of an hwnas export: time its ONNX files on this device.

Needs only Python 3.8+, numpy and onnxruntime (no hwnas, no nnabla). Run it beside the
manifest that ``python -m hwnas.profile --export DIR`` wrote::

    python runner.py --device "Raspberry Pi 5, 4 threads" --threads 4

It times every unit of ``manifest.json`` as hwnas does, with hwnas's own timing module, which
the export copied beside this file as ``hwnas_timing.py`` (units built BATCH_UNITS at a time
and timed in interleaved rounds; per round ``--warmup`` untimed runs, then timed runs until
``--runs`` are done or ``--max-round-s`` have passed, never fewer than 3; each round
speed-corrected by the units timed beside it; ``latency_ms`` is the median of the round minima
(``--statistic``), ``noise_ms`` how far that moves from round to round; a unit whose noise is
over 3 % of its latency is measured again after a pause, at most 2 more times, its rounds
pooled) and appends one row per unit, flushed, to ``networks.csv`` /
``layers.csv``: run it again after an interruption and it measures only what is missing. Bring
the tables back and read them with ``python -m hwnas.fit --networks networks.csv`` (or
``--layers``).

This file repeats hwnas's table columns, protocol defaults and re-measuring on purpose, so
that it runs without hwnas; hwnas's tests check that both agree.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import platform
import sys
import time
from collections.abc import Callable

try:
    import numpy as np
    import onnxruntime as ort
except ImportError as e:  # on a bare board: say what to install, not a traceback
    sys.exit(f"runner.py needs numpy and onnxruntime ({e}): pip install numpy onnxruntime")
if __package__:  # imported from hwnas itself (its tests): the module that the export copies
    from hwnas.profile._stats import (
        BATCH_UNITS,
        FILL_RUNS,
        FILLED_ROUND_S,
        MAX_ROUND_S,
        MIN_RUNS,
        ROUNDS,
        RUNS,
        STATISTIC,
        STATISTICS,
        WARMUP,
        moved_share,
        speed_corrected,
        statistics,
        time_rounds,
    )
else:  # python runner.py: its folder is on sys.path, with the export's copy
    try:
        from hwnas_timing import (  # type: ignore[no-redef]
            BATCH_UNITS,
            FILL_RUNS,
            FILLED_ROUND_S,
            MAX_ROUND_S,
            MIN_RUNS,
            ROUNDS,
            RUNS,
            STATISTIC,
            STATISTICS,
            WARMUP,
            moved_share,
            speed_corrected,
            statistics,
            time_rounds,
        )
    except ImportError as e:
        sys.exit(f"runner.py needs hwnas_timing.py, hwnas's timing module, beside it ({e}): "
                 f"copy the whole export folder")

FINGERPRINT_COLUMNS = ("backend", "backend_version", "device", "threads", "dtype", "batch")
TIMING_COLUMNS = ("latency_ms", "p10_ms", "p90_ms", "min_ms", "runs", "round_spread",
                  "median_ms", "noise_ms")
COLUMNS = {"layers": ("key", "op", "macs", "params") + TIMING_COLUMNS + FINGERPRINT_COLUMNS,
           "networks": ("space", "z") + TIMING_COLUMNS + FINGERPRINT_COLUMNS}
OPTIMIZATION_LEVELS = {"disable": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC",
                       "extended": "ORT_ENABLE_EXTENDED", "all": "ORT_ENABLE_ALL"}
PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}
#: hwnas's timing protocol defaults (hwnas.profile.TimingProtocol)
REMEASURE, REMEASURE_PAUSE_S = 2, 1.0
#: a unit whose statistic moves between rounds by more than this share of it is measured
#: again (hwnas.profile.UNIT_NOISE)
UNIT_NOISE = 0.03
CPU_NAME_FIELDS = ("model name", "Model", "Hardware")


def cpu_name(cpuinfo: str = "/proc/cpuinfo") -> str:
    """The first of CPU_NAME_FIELDS that cpuinfo has (ARM boards without ``model name`` name
    the board), else the platform's processor."""
    found: dict[str, str] = {}
    try:
        with open(cpuinfo) as f:
            for line in f:
                name, sep, value = line.partition(":")
                if sep and name.strip() in CPU_NAME_FIELDS and value.strip():
                    found.setdefault(name.strip(), value.strip())
    except OSError:
        pass
    return next((found[n] for n in CPU_NAME_FIELDS if n in found), None) or \
        platform.processor() or platform.machine()


def row(timing: dict) -> dict:
    """The timing columns of a table row (as hwnas's ``Timing.as_row`` writes them)."""
    return {"latency_ms": f"{timing['latency_ms']:.6g}", "p10_ms": f"{timing['p10_ms']:.6g}",
            "p90_ms": f"{timing['p90_ms']:.6g}", "min_ms": f"{timing['min_ms']:.6g}",
            "runs": str(timing["runs"]), "round_spread": f"{timing['round_spread']:.4g}",
            "median_ms": f"{timing['median_ms']:.6g}", "noise_ms": f"{timing['noise_ms']:.4g}"}


def too_noisy(timing: dict) -> bool:
    """Whether a unit's statistic moved between rounds by more than UNIT_NOISE of it."""
    return timing["noise_ms"] / timing["latency_ms"] > UNIT_NOISE


def measure_steady(runners: list, args, statistic: str = STATISTIC) -> tuple:
    """Time each runner (one synchronised forward pass) in interleaved rounds (``args``:
    warmup, runs, rounds, max_round_s, min_round_s), then the noisy ones again after a pause
    of ``args.pause_s`` (at most REMEASURE times), their new rounds pooled with the old (more
    rounds, a surer statistic). Returns each unit's statistics (with the raw median and p90
    of its runs as they ran), and how far the machine's speed moved during the batch (None
    for a batch too small to tell)."""
    def timed(chosen: list) -> list:
        return time_rounds(chosen, warmup=args.warmup, runs=args.runs, rounds=args.rounds,
                           max_round_s=args.max_round_s, clock=time.perf_counter,
                           min_round_s=args.min_round_s)

    raw = timed(runners)
    corrected = speed_corrected(raw)
    timings = [statistics(c, statistic, raw=r) for c, r in zip(corrected, raw)]
    for _ in range(REMEASURE):
        noisy = [i for i, t in enumerate(timings) if too_noisy(t)]
        if not noisy:
            break
        time.sleep(args.pause_s)
        more = timed([runners[i] for i in noisy])
        for i, r, c in zip(noisy, more, speed_corrected(more)):
            raw[i], corrected[i] = raw[i] + r, corrected[i] + c
            timings[i] = statistics(corrected[i], statistic, raw=raw[i])
    return timings, moved_share(raw)


def build(path: str, args) -> Callable[[], object]:
    """A session for one ONNX file, checked once; returns a function that runs one pass."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = getattr(ort.GraphOptimizationLevel,
                                               OPTIMIZATION_LEVELS[args.optimization])
    options.log_severity_level = 3
    session = ort.InferenceSession(path, options, providers=[PROVIDERS[args.provider]])
    rng = np.random.default_rng(0)
    feed = {}
    for i in session.get_inputs():  # x is random; zeros_* are cell nodes no edge feeds
        feed[i.name] = (rng.standard_normal(i.shape) if i.name == "x"
                        else np.zeros(i.shape)).astype(np.float32)
    y = session.run(None, feed)[0]
    if not np.isfinite(y).all():
        raise RuntimeError(f"{path}: the output is not finite")
    return lambda: session.run(None, feed)


NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
#: the largest manifest read (100,000 units take about 30 MB)
MAX_MANIFEST_BYTES = 256 << 20


def open_table(path: str, columns: tuple, fingerprint: dict) -> tuple:
    """Open a table to append to; returns (file, ids already measured). A half-written last
    line is cut off; a table from another device, or a symbolic link, is refused."""
    done = set()
    if os.path.islink(path):
        sys.exit(f"{path}: a symbolic link: refused (the runner never writes through a link)")
    if os.path.exists(path) and os.path.getsize(path) > 0:
        with os.fdopen(os.open(path, os.O_RDWR | NOFOLLOW), "rb+") as raw:
            data = raw.read()
            if not data.endswith(b"\n"):
                raw.truncate(data.rfind(b"\n") + 1)
        with open(path, newline="", encoding="utf-8-sig") as f:  # a BOM, as hwnas accepts
            reader = csv.DictReader(f)
            if tuple(reader.fieldnames or ()) != columns:
                sys.exit(f"{path}: not a table of this runner (columns differ)")
            for row in reader:
                found = {c: row[c] for c in FINGERPRINT_COLUMNS}
                if found != fingerprint:
                    sys.exit(f"{path}, line {reader.line_num}: measured with {found}, not "
                             f"{fingerprint}: measure into another folder (--out-dir)")
                done.add(row["key"] if "key" in columns else row["z"])
        return os.fdopen(os.open(path, os.O_WRONLY | os.O_APPEND | NOFOLLOW), "a", newline=""), \
            done
    f = os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | NOFOLLOW, 0o644), "w",
                  newline="")
    write(f, columns)
    return f, done


def unit_path(folder: str, name: object) -> str:
    """The file a manifest unit names: a relative path inside the export folder (no absolute
    path, no '..', no link leading out of it), else ValueError."""
    if not isinstance(name, str) or not name or os.path.isabs(name) or "\\" in name or \
            "\0" in name or ".." in name.split("/"):
        raise ValueError(f"file {name!r} is not a relative path inside the export folder")
    root = os.path.realpath(folder)
    path = os.path.realpath(os.path.join(root, name))
    if os.path.commonpath([root, path]) != root:
        raise ValueError(f"file {name!r} leads outside the export folder (a link)")
    return path


def short_int(text: str) -> int:
    """A JSON integer of at most 18 digits: no count or index is longer, and converting a
    longer one costs seconds."""
    if len(text.lstrip("-")) > 18:
        raise ValueError(f"an integer of {len(text.lstrip('-'))} digits")
    return int(text)


def unique_keys(pairs: list) -> dict:
    """An object of the manifest, whose keys must each appear once (hwnas's JSON rule: a
    reader would keep only the last, silently)."""
    keys = [k for k, _ in pairs]
    twice = next((k for k in keys if keys.count(k) > 1), None)
    if twice is not None:
        raise ValueError(f"the key {twice!r} appears twice in one object")
    return dict(pairs)


def read_manifest(folder: str) -> dict:
    """The export's manifest.json, checked: an hwnas export (format version 1) whose units
    each name a table, an id, the columns of its table and a file inside the folder (which
    ``file`` then holds as a checked path). Exits with a message naming what is wrong."""
    where = os.path.join(folder, "manifest.json")
    try:
        fd = os.open(where, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(fd, "rb") as f:
            if not os.path.isfile(where) or os.fstat(f.fileno()).st_size > MAX_MANIFEST_BYTES:
                sys.exit(f"{where}: not a regular file of at most {MAX_MANIFEST_BYTES} bytes")
            manifest = json.loads(f.read(MAX_MANIFEST_BYTES + 1).decode("utf-8"),
                                  parse_int=short_int, object_pairs_hook=unique_keys)
    except (OSError, ValueError, RecursionError) as e:
        sys.exit(f"{where}: cannot read it ({e})")
    if not isinstance(manifest, dict) or manifest.get("format") != "hwnas.export" or \
            manifest.get("version") != 1:
        sys.exit(f"{where}: not an hwnas export (format version 1)")
    batch = manifest.get("batch")
    if not isinstance(batch, int) or isinstance(batch, bool) or not 1 <= batch <= 1 << 20:
        sys.exit(f"{where}: batch must be an integer from 1 to {1 << 20}, got {batch!r}")
    units = manifest.get("units")
    if not isinstance(units, list):
        sys.exit(f"{where}: units must be a list")
    for i, unit in enumerate(units):
        table = unit.get("table") if isinstance(unit, dict) else None
        if table not in COLUMNS:
            sys.exit(f"{where}, unit {i}: table must be one of {sorted(COLUMNS)}")
        needed = ("id", "file") + COLUMNS[table][:COLUMNS[table].index("latency_ms")]
        bad = [k for k in needed if not isinstance(unit.get(k), (str, int)) or
               isinstance(unit.get(k), bool)]
        if bad:
            sys.exit(f"{where}, unit {i}: {bad[0]!r} missing or not a string or integer")
        try:
            unit["file"] = unit_path(folder, unit["file"])
        except ValueError as e:
            sys.exit(f"{where}, unit {i}: {e}")
    check_units(where, units)
    return manifest


def check_units(where: str, units: list) -> None:
    """Before anything is timed (a whole export takes minutes to hours): every unit's file is
    a regular file there, and no table names the same unit twice (its rows would be measured
    twice and the second refused on reading back). Exits naming the unit."""
    seen: dict = {}
    for i, unit in enumerate(units):
        if not os.path.isfile(unit["file"]):
            what = "a folder" if os.path.isdir(unit["file"]) else "missing"
            sys.exit(f"{where}, unit {i}: its file {unit['file']} is {what}: copy the whole "
                     f"export folder, or export again")
        key = (unit["table"], str(unit["id"]))
        if key in seen:
            sys.exit(f"{where}, unit {i}: {unit['table']} unit {unit['id']!r} is named twice "
                     f"(also unit {seen[key]}): export again")
        seen[key] = i


def write(f, values) -> None:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(values)
    f.write(buf.getvalue())
    f.flush()
    os.fsync(f.fileno())


def fingerprint(args, batch: int) -> dict:
    """The fingerprint columns of this device and these settings."""
    return {"backend": "onnxruntime",
            "backend_version": f"{ort.__version__} opt={args.optimization}",
            "device": args.device or f"{args.provider}: {cpu_name()}",
            "threads": str(args.threads), "dtype": "float32", "batch": str(batch)}


def number(kind: type, low: float, inclusive: bool = True) -> Callable[[str], float]:
    """An argparse type: a finite ``kind`` >= low (> low where not ``inclusive``)."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {kind.__name__}") from None
        if not (value >= low if inclusive else value > low) or value != value \
                or value in (float("inf"), float("-inf")):
            raise argparse.ArgumentTypeError(f"must be {'>=' if inclusive else '>'} {low} and "
                                             f"finite, got {text}")
        return value
    return parse


def parser(export_dir: str) -> argparse.ArgumentParser:
    """The command line; ``export_dir`` is the default export folder (this file's)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--export-dir", default=export_dir, help="the folder with manifest.json "
                   "(default: this file's folder)")
    p.add_argument("--out-dir", help="where to write networks.csv and layers.csv "
                   "(default: the export folder)")
    p.add_argument("--device", help="the device's name in the tables (default: its CPU's)")
    p.add_argument("--provider", choices=sorted(PROVIDERS), default="cpu")
    p.add_argument("--threads", type=number(int, 1), default=1,
                   help="intra-op threads (default: 1)")
    p.add_argument("--optimization", choices=list(OPTIMIZATION_LEVELS), default="all")
    p.add_argument("--warmup", type=number(int, 0), default=WARMUP,
                   help="untimed runs per unit and round (default: %(default)s)")
    p.add_argument("--runs", type=number(int, 1), default=RUNS,
                   help="timed runs per unit and round, at most (default: %(default)s)")
    p.add_argument("--rounds", type=number(int, 1), default=ROUNDS,
                   help="interleaved rounds per unit (default: %(default)s)")
    p.add_argument("--max-round-s", type=number(float, 0, inclusive=False),
                   default=MAX_ROUND_S,
                   help=f"stop a unit's round after this long, once {MIN_RUNS} runs (or "
                        f"--runs, if fewer) are done (default: %(default)s)")
    p.add_argument("--min-round-s", type=number(float, 0), default=FILLED_ROUND_S,
                   help=f"a unit's round goes on past --runs until this long (at most "
                        f"{FILL_RUNS} x --runs runs), so that one scheduler hiccup cannot decide "
                        f"a round of a sub-millisecond network (default: %(default)s, as hwnas "
                        f"times ONNX Runtime)")
    p.add_argument("--pause-s", type=number(float, 0), default=REMEASURE_PAUSE_S,
                   help=f"pause before measuring a noisy unit again (at most {REMEASURE} "
                        f"times; default: %(default)s)")
    p.add_argument("--statistic", choices=sorted(STATISTICS), default=STATISTIC,
                   help="what latency_ms is, over a unit's timed runs of every round "
                        "(default: %(default)s)")
    return p


def measure_table(table: str, units: list, args, path: str, device_fingerprint: dict) -> int:
    """Measure the units not yet in the table at ``path`` (``table``: networks or layers),
    appending a row as each batch is done; returns how many measured now stayed noisy."""
    columns = COLUMNS[table]
    f, done = open_table(path, columns, device_fingerprint)
    todo = [u for u in units if u["id"] not in done]
    start, noisy = time.time(), 0
    with f:
        for first in range(0, len(todo), BATCH_UNITS):
            batch = todo[first:first + BATCH_UNITS]
            runners = [build(u["file"], args) for u in batch]
            timings, moved = measure_steady(runners, args, args.statistic)
            for unit, timing in zip(batch, timings):
                values = {**unit, **row(timing), **device_fingerprint}
                write(f, [values[c] for c in columns])
                noisy += too_noisy(timing)
            n = first + len(batch)
            print(f"{table}: {n}/{len(todo)} measured, {time.time() - start:.0f} s; "
                  f"{machine_state(moved)}", file=sys.stderr)
    print(f"{path}: {len(units)} {table} ({len(todo)} measured now) on "
          f"{device_fingerprint['device']}; latency_ms is {LATENCY}")
    return noisy


#: what latency_ms is (hwnas.profile._latency.definition("unloaded"), for this batch's scale)
LATENCY = ("the unloaded latency: the median over rounds of each round's fastest run, each "
           "round divided by the machine's speed then (told by the units timed beside it), "
           "on the scale of the batch's typical state")


def machine_state(moved) -> str:
    """The machine's state during a batch, in words."""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    speed = "too few units to tell how far its speed moved" if moved is None else \
        f"its speed moved {100 * moved:.0f} % during the batch (units timed beside each other)"
    return f"the machine: {speed}, load average {load:.1f} on {os.cpu_count()} core(s)"


def main(argv=None) -> int:
    args = parser(os.path.dirname(os.path.abspath(__file__))).parse_args(argv)
    manifest = read_manifest(args.export_dir)
    device_fingerprint = fingerprint(args, manifest["batch"])
    out_dir = args.out_dir or args.export_dir
    os.makedirs(out_dir, exist_ok=True)
    for table in ("networks", "layers"):
        units = [u for u in manifest["units"] if u["table"] == table]
        if not units:
            continue
        noisy = measure_table(table, units, args, os.path.join(out_dir, f"{table}.csv"),
                              device_fingerprint)
        if noisy:
            print(f"warning: {noisy} of the {table} measured now stayed noisy (their "
                  f"latency moved by over {100 * UNIT_NOISE:g} % between rounds): stop other "
                  f"jobs on the device and measure them again into another folder (--out-dir)",
                  file=sys.stderr)
    return 0

if __name__ == "__main__":
    sys.exit(main())
