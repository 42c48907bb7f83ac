"""Measurement tables: plain CSV, one row per unique layer or per measured network.

Layer table columns::

    key, op, macs, params, latency_ms, p10_ms, p90_ms, min_ms, runs, <fingerprint>

Network table columns::

    space, z, latency_ms, p10_ms, p90_ms, min_ms, runs, <fingerprint>

A network table needs only ``space, z`` and its target column (``latency_ms`` by default): the
timing and fingerprint columns are optional and may be blank, so that numbers measured with
any tool can be read.

``<fingerprint>`` is ``backend, backend_version, device, threads, dtype, batch``: every row is
tagged with the device it was measured on, and a table never mixes two devices. ``z`` is
written as the choice indices joined by ``-`` (e.g. ``0-3-6``). Latencies are milliseconds per
forward pass of the whole batch.

Tables are validated on read: errors name the file, the line and the column. Writers hold
the table's lock, and append and flush one row at a time, so an interrupted measurement
resumes where it stopped and two processes never interleave rows.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np

from hwnas._files import read_text
from hwnas.errors import InputError
from hwnas.layers import Layer
from hwnas.spaces import format_z as format_z  # z's text form, re-exported from spaces
from hwnas.spaces import get_space
from hwnas.spaces import parse_z as parse_z

FINGERPRINT_COLUMNS = ("backend", "backend_version", "device", "threads", "dtype", "batch")
TIMING_COLUMNS = ("latency_ms", "p10_ms", "p90_ms", "min_ms", "runs", "round_spread")
LAYER_COLUMNS = ("key", "op", "macs", "params") + TIMING_COLUMNS + FINGERPRINT_COLUMNS
NETWORK_COLUMNS = ("space", "z") + TIMING_COLUMNS + FINGERPRINT_COLUMNS
#: what a network table must have besides its target column (``latency_ms`` by default)
NETWORK_REQUIRED = ("space", "z")


class TableError(InputError):
    """A malformed measurement table; the message names the file, line and column."""


@dataclass(frozen=True)
class Fingerprint:
    """What a measurement depends on besides the layer: runtime, device, threads, dtype, batch."""

    backend: str
    backend_version: str
    device: str
    threads: int
    dtype: str = "float32"
    batch: int = 1

    @property
    def id(self) -> str:
        """Short stable id, e.g. ``nnabla-cpu-3f2a9c01d2``, used for cache folders."""
        text = "|".join(str(v) for v in asdict(self).values())
        return f"{self.backend}-{hashlib.sha1(text.encode()).hexdigest()[:10]}"

    def describe(self) -> str:
        if self.backend in ("unknown", "catalogue"):  # imported or shipped (hwnas.devices)
            return f"{self.device}, batch {self.batch}"
        return (f"{self.backend} {self.backend_version} on {self.device}, "
                f"{self.threads} thread(s), {self.dtype}, batch {self.batch}")

    def as_row(self) -> dict[str, str]:
        return {k: str(v) for k, v in asdict(self).items()}

    @classmethod
    def from_row(cls, row: Mapping[str, Any],
                 defaults: Mapping[str, Any] | None = None) -> Fingerprint:
        """Parse ``as_row()`` back (a table row or a saved predictor's fingerprint).

        Args:
            row: field -> value (text or the value itself).
            defaults: field -> value for a field the row leaves blank or lacks (an imported
                table); without one, such a field is an error.

        Returns:
            The fingerprint; raises KeyError for a missing field without default, ValueError
            naming a field that is not an integer.
        """
        values: dict[str, Any] = {}
        for f in fields(cls):
            text = row.get(f.name)
            if defaults is not None and f.name in defaults and \
                    (text is None or not str(text).strip()):
                values[f.name] = defaults[f.name]
            elif f.type in ("int", int):
                try:
                    values[f.name] = int(row[f.name])
                except (TypeError, ValueError):
                    raise ValueError(f"column {f.name!r}: {text!r} is not a number") from None
            else:
                values[f.name] = str(row[f.name])
        return cls(**values)


@dataclass(frozen=True)
class Timing:
    """Statistics of repeated timed runs, in milliseconds."""

    latency_ms: float  # the protocol's statistic: least round median
    p10_ms: float
    p90_ms: float
    min_ms: float
    runs: int
    round_spread: float  # (max - min) / min of the round medians

    def as_row(self) -> dict[str, str]:
        return {"latency_ms": f"{self.latency_ms:.6g}", "p10_ms": f"{self.p10_ms:.6g}",
                "p90_ms": f"{self.p90_ms:.6g}", "min_ms": f"{self.min_ms:.6g}",
                "runs": str(self.runs), "round_spread": f"{self.round_spread:.4g}"}


@dataclass(frozen=True)
class LayerTable:
    """A validated layer table: one Timing per layer key, all from one device, and any extra
    measured columns (e.g. ``energy_mj``) per key."""

    path: str
    fingerprint: Fingerprint
    timings: dict[str, Timing]
    extras: dict[str, dict[str, float]] = field(default_factory=dict)

    def layers(self) -> list[Layer]:
        return [Layer.from_key(key) for key in self.timings]

    def values(self, target: str = "latency_ms") -> dict[str, float]:
        """Layer key -> the target column's value."""
        if target == "latency_ms":
            return {key: t.latency_ms for key, t in self.timings.items()}
        return _extra(self.path, self.extras, target)


@dataclass(frozen=True)
class NetworkTable:
    """A validated network table: measured end-to-end latency per z, from one device."""

    path: str
    fingerprint: Fingerprint
    space: str
    z: tuple[tuple[int, ...], ...]
    timings: tuple[Timing, ...]
    extras: dict[str, tuple[float, ...]] = field(default_factory=dict)

    def select(self, rows: Sequence[int] | slice) -> NetworkTable:
        """The table with only the given rows (e.g. a training or test split)."""
        rows = list(range(len(self.z)))[rows] if isinstance(rows, slice) else list(rows)
        return NetworkTable(self.path, self.fingerprint, self.space,
                            tuple(self.z[i] for i in rows), tuple(self.timings[i] for i in rows),
                            {k: tuple(v[i] for i in rows) for k, v in self.extras.items()})

    def values(self, target: str = "latency_ms") -> np.ndarray:
        """The target column, one value per row; every row must have one."""
        if target == "latency_ms":
            out = np.array([t.latency_ms for t in self.timings])
        else:
            out = np.array(_extra(self.path, self.extras, target), dtype=float)
        if np.isnan(out).any():
            raise TableError(f"{self.path}: column {target!r} is blank or absent in "
                             f"{int(np.isnan(out).sum())} row(s): read the table with "
                             f"target={target!r} (--target) so that it is required")
        return out


def _extra(path: str, extras: dict, target: str):
    if target not in extras:
        raise TableError(f"{path}: no column {target!r} to fit or evaluate (measured columns: "
                         f"{', '.join(['latency_ms', *extras])})")
    return extras[target]


def read_layer_table(path: str | os.PathLike) -> LayerTable:
    """Read and validate a layer table; raise TableError naming file, line and column."""
    path = os.fspath(path)
    timings: dict[str, Timing] = {}
    extras: dict[str, dict[str, float]] = {}
    fingerprint = None
    for line, row in _read_rows(path, LAYER_COLUMNS):
        where = f"{path}, line {line}"
        key = row["key"]
        try:
            layer = Layer.from_key(key)
        except ValueError as e:
            raise TableError(f"{where}, column 'key': {e}") from None
        if row["op"] != layer.op:
            raise TableError(f"{where}, column 'op': {row['op']!r} does not match the key's op "
                             f"{layer.op!r}")
        timing = _timing(row, where)
        fingerprint = _same_fingerprint(fingerprint, row, where)
        if key in timings and timings[key] != timing:
            raise TableError(f"{where}, column 'key': {key} appears twice with different "
                             f"timings")
        timings[key] = timing
        for column, value in _extras(row, LAYER_COLUMNS, where).items():
            extras.setdefault(column, {})[key] = value
    if fingerprint is None:
        raise TableError(f"{path}: the table has no rows")
    return LayerTable(path, fingerprint, timings, extras)


def read_network_table(path: str | os.PathLike, space=None, *, target: str = "latency_ms",
                       device: str | None = None) -> NetworkTable:
    """Read and validate a network table; raise TableError naming file, line and column.

    Only ``space``, ``z`` and the ``target`` column are required: timing and fingerprint
    columns are optional and may be blank (numbers measured with another tool). ``z`` may be
    choice indices (``0-3-6``) or the space's own notation (NAS-Bench-201 arch strings); it is
    checked against ``space``, by default the built-in space the rows name. ``device`` names
    the device where the table has no ``device`` column (or leaves it blank); without either,
    the device is ``unnamed (<file name>)``, so two such files are never mixed silently. The
    same z may appear twice only with the same values.

    Example:
        >>> # space,z,latency_ms
        >>> # nb201,|nor_conv_3x3~0|+|none~0|skip_connect~1|+|...|,12.5
        >>> table = read_network_table("phone.csv", device="Pixel 7 (TFLite)")  # doctest: +SKIP
    """

    path = os.fspath(path)
    zs, timings, fingerprint = [], [], None
    extras: dict[str, list] = {}
    first_line: dict[tuple[int, ...], tuple[int, tuple]] = {}
    for line, row in _read_rows(path, NETWORK_REQUIRED + (target,)):
        where = f"{path}, line {line}"
        for column in NETWORK_REQUIRED + (target,):
            if not (row[column] or "").strip():
                raise TableError(f"{where}, column {column!r}: is blank (required)")
        if space is None:
            try:
                space = get_space(row["space"])
            except ValueError as e:
                raise TableError(f"{where}, column 'space': {e} (pass the space itself for a "
                                 f"space of your own)") from None
        if row["space"] != space.name:
            raise TableError(f"{where}, column 'space': {row['space']!r} is not the space "
                             f"{space.name!r} of this table")
        try:
            z = space.parse_z(row["z"])
        except ValueError as e:
            raise TableError(f"{where}, column 'z': {e}") from None
        timing = _timing(row, where, required=False)
        fingerprint = _network_fingerprint(fingerprint, row, where, path, device)
        row_extras = {c: math.nan if _blank(row, c) else _number(row, c, where)
                      for c in row if c not in NETWORK_COLUMNS}  # extra metrics: blank is NaN
        values = tuple(None if math.isnan(v) else v
                       for v in (*asdict(timing).values(), *row_extras.values()))
        if z in first_line:
            earlier, earlier_values = first_line[z]
            if earlier_values != values:
                raise TableError(f"{where}, column 'z': {row['z']} was measured on line "
                                 f"{earlier} with other values (the same z twice must agree)")
            continue
        first_line[z] = (line, values)
        zs.append(z)
        timings.append(timing)
        for column, value in row_extras.items():
            extras.setdefault(column, []).append(value)
    if fingerprint is None:
        raise TableError(f"{path}: the table has no rows")
    return NetworkTable(path, fingerprint, space.name, tuple(zs), tuple(timings),
                        {k: tuple(v) for k, v in extras.items()})


def _blank(row: dict, column: str) -> bool:
    return not (row.get(column) or "").strip()


#: what an imported table's absent fingerprint columns read as
UNKNOWN_FINGERPRINT = {"backend": "unknown", "backend_version": "unknown", "threads": 0,
                       "dtype": "unknown", "batch": 1}


def _network_fingerprint(expected: Fingerprint | None, row: dict, where: str, path: str,
                         device: str | None) -> Fingerprint:
    """A network row's fingerprint: absent or blank columns read as UNKNOWN_FINGERPRINT, the
    device as ``device`` (--device), else ``unnamed (<file name>)``."""
    named = None if _blank(row, "device") else row["device"].strip()
    if device is not None and named is not None and named != device:
        raise TableError(f"{where}, column 'device': {named!r} is not the device "
                         f"{device!r} given (--device)")
    defaults = {**UNKNOWN_FINGERPRINT, "device": device or f"unnamed ({os.path.basename(path)})"}
    return _same_fingerprint(expected, {**row, "device": named}, where, defaults=defaults)


def _extras(row: dict, columns: Sequence[str], where: str) -> dict[str, float]:
    """Columns beyond the schema are extra measured metrics: each value must be a number."""
    return {c: _number(row, c, where) for c in row if c not in columns}


#: how long a writer waits for another process to finish writing the same table
LOCK_WAIT_S = 600.0


class TableLockedError(InputError):
    """Another process kept a table locked for longer than we wait; the message names both."""


class table_lock:
    """An exclusive (or shared) lock on a table, held on its ``.lock`` sibling with flock.

    The holder's process id and command are written into the lock file so that a process
    that waits in vain can name it. Waits at most ``wait_s`` seconds, then raises
    TableLockedError. Locks are per open file: nesting two on one table in one process blocks.

    Example:
        >>> with table_lock("layers.csv"):  # doctest: +SKIP
        ...     pass  # read-modify-write layers.csv without another process interleaving
    """

    def __init__(self, path: str | os.PathLike, shared: bool = False,
                 wait_s: float | None = None):
        self.path = os.fspath(path)
        self.lock_path = self.path + ".lock"
        self.shared = shared
        self.wait_s = LOCK_WAIT_S if wait_s is None else wait_s

    def __enter__(self) -> table_lock:
        import fcntl
        import time

        os.makedirs(os.path.dirname(os.path.abspath(self.lock_path)), exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o666)
        mode = (fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX) | fcntl.LOCK_NB
        deadline = time.monotonic() + self.wait_s
        while True:
            try:
                fcntl.flock(fd, mode)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = os.pread(fd, 400, 0).decode(errors="replace").strip()
                    os.close(fd)
                    raise TableLockedError(
                        f"{self.path}: another process is writing it ({holder or 'unknown'}; "
                        f"lock {self.lock_path}) and did not finish within {self.wait_s:g} s: "
                        f"wait for it, or write another file") from None
                time.sleep(0.05)
        if not self.shared:
            os.ftruncate(fd, 0)  # the lock file is ours: it only names the holder
            os.pwrite(fd, f"process {os.getpid()}: {_command()}\n".encode(), 0)
        self._fd = fd
        return self

    def __exit__(self, *exc) -> None:
        os.close(self._fd)  # closing releases the flock


def _command() -> str:
    try:
        with open("/proc/self/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()[:200]
    except OSError:
        return "?"


class TableWriter:
    """Appends rows to a CSV table one at a time, each flushed to disk before the next, while
    holding the table's lock (see table_lock): two processes never interleave their rows; the
    second waits, then sees the first one's rows in ``done``.

    Opening an existing table resumes it: a half-written last line (from a killed process) is
    cut off, the rows already there are kept, and ``done`` holds their ids (the value of
    ``id_column``) so callers skip what is measured. A file whose first line is not this
    table's header, or a table measured on another device, is refused before anything is
    written; an existing file is only ever appended to. With ``discard_existing`` an existing
    table is first renamed to ``<path>.discarded`` (under the lock) and a new one started.
    """

    def __init__(self, path: str | os.PathLike, columns: Sequence[str], id_column: str,
                 fingerprint: Fingerprint, discard_existing: bool = False,
                 wait_s: float | None = None):
        self.path = os.fspath(path)
        self.columns = tuple(columns)
        self.fingerprint = fingerprint
        self.done: set[str] = set()
        if not discard_existing:
            self._check_header(complete_only=True)  # before the lock file: a foreign file
        self._lock = table_lock(self.path, wait_s=wait_s).__enter__()
        try:
            if discard_existing and os.path.exists(self.path):
                os.replace(self.path, self.path + ".discarded")
            self._check_header()
            _cut_partial_line(self.path)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
            self._file = os.fdopen(fd, "a", newline="")
            if os.path.getsize(self.path) == 0:
                self._write_line(self.columns)
            else:
                for line, row in _read_rows(self.path, self.columns):
                    _same_fingerprint(fingerprint, row, f"{self.path}, line {line}",
                                      hint="measure into another file")
                    self.done.add(row[id_column])
        except BaseException:
            if hasattr(self, "_file"):
                self._file.close()
            self._lock.__exit__()
            raise

    def _check_header(self, complete_only: bool = False) -> None:
        """Refuse a file that is not this kind of table, touching nothing; with
        ``complete_only``, let pass a first line still being written by another process."""
        try:
            with open(self.path, "rb") as f:
                first = f.readline()
        except FileNotFoundError:
            return
        except OSError as e:
            raise TableError(f"{self.path}: cannot open the table: {e.strerror}") from None
        if not first or (complete_only and not first.endswith(b"\n")):
            return
        expected = ",".join(self.columns)
        if not first.endswith(b"\n") or first.decode(errors="replace").rstrip("\r\n") != expected:
            shown = first[:60].decode(errors="replace").rstrip("\r\n")
            raise TableError(f"{self.path}, line 1: not a table of this kind: it starts with "
                             f"{shown!r}, expected the header {expected!r}; nothing was "
                             f"written (choose another file)")

    def append(self, row: dict[str, str]) -> None:
        values = {**row, **self.fingerprint.as_row()}
        self._write_line([values[c] for c in self.columns])

    def _write_line(self, values: Sequence[str]) -> None:
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerow(values)
        self._file.write(buf.getvalue())
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        try:
            self._file.close()
        finally:
            self._lock.__exit__()

    def __enter__(self) -> TableWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _cut_partial_line(path: str) -> None:
    """Cut a half-written last row (its writer was killed); called only for a table whose
    header was checked, under its lock."""
    if not os.path.exists(path):
        return
    with open(path, "rb+") as f:
        data = f.read()
        if data and not data.endswith(b"\n"):
            f.truncate(data.rfind(b"\n") + 1)


def _read_rows(path: str, columns: Sequence[str]):
    """(line, row) of each data row; the file must be UTF-8 text (a BOM is accepted) with a
    header naming each of ``columns`` once."""
    reader = csv.DictReader(io.StringIO(read_text(path, "table", TableError), newline=""))
    try:
        header = reader.fieldnames or []
        _check_header(path, header, columns)
        for row in reader:
            line = reader.line_num
            if None in row or any(row[c] is None for c in columns):
                raise TableError(f"{path}, line {line}: expected {len(header)} fields "
                                 f"({', '.join(header)})")
            yield line, row
    except csv.Error as e:  # e.g. a field longer than csv.field_size_limit() (128 KiB)
        # line_num counts the lines of the records read before the bad one
        raise TableError(f"{path}, line {reader.line_num + 1}: not a CSV row ({e})") from None


def _check_header(path: str, header: Sequence[str], columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in header]
    if missing:
        raise TableError(f"{path}, line 1: missing column(s) {', '.join(missing)} "
                         f"(expected {', '.join(columns)})")
    twice = sorted({c for c in header if header.count(c) > 1})
    if twice:
        raise TableError(f"{path}, line 1: column(s) {', '.join(map(repr, twice))} appear more "
                         f"than once in the header")


def _number(row: dict, column: str, where: str, kind=float):
    text = row[column]
    try:
        value = kind(text)
    except ValueError:
        raise TableError(f"{where}, column {column!r}: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise TableError(f"{where}, column {column!r}: {text!r} is not finite")
    return value


def _timing(row: dict, where: str, required: bool = True) -> Timing:
    """A row's timing columns, validated. Unless ``required``, a blank or absent statistic is
    NaN (runs: 0), never 0 ms."""

    def read(column: str, kind=float, blank: float = math.nan):
        return blank if not required and _blank(row, column) else \
            _number(row, column, where, kind)

    values = {c: read(c) for c in ("latency_ms", "p10_ms", "p90_ms", "min_ms")}
    for column, value in values.items():
        if value <= 0:
            raise TableError(f"{where}, column {column!r}: {value} ms is not a valid latency "
                             f"(must be > 0; a failed measurement is never recorded as 0)")
    runs = read("runs", int, 0)
    if runs < 1 and not _blank(row, "runs"):
        raise TableError(f"{where}, column 'runs': must be >= 1, got {runs}")
    spread = read("round_spread")
    if spread < 0:
        raise TableError(f"{where}, column 'round_spread': must be >= 0, got {spread}")
    return Timing(runs=runs, round_spread=spread, **values)


def _same_fingerprint(expected: Fingerprint | None, row: dict, where: str,
                      hint: str = "tables from two devices are never mixed",
                      defaults: Mapping[str, Any] | None = None) -> Fingerprint:
    """The row's fingerprint (see Fingerprint.from_row), which must be ``expected`` if given."""
    try:
        found = Fingerprint.from_row(row, defaults)
    except ValueError as e:
        raise TableError(f"{where}, {e}") from None
    if expected is not None and found != expected:
        raise TableError(f"{where}: measured on {found.describe()}, but the table is for "
                         f"{expected.describe()} ({hint})")
    return found
