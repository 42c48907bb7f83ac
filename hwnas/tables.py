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
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

import numpy as np

from hwnas._files import MAX_TABLE_BYTES, atomic_write, parse_float, parse_int, read_text
from hwnas.errors import TableError, TableLockedError
from hwnas.layers import Layer
from hwnas.spaces import SearchSpace, get_space
from hwnas.spaces import format_z as format_z  # z's text form, re-exported from spaces
from hwnas.spaces import parse_z as parse_z

FINGERPRINT_COLUMNS = ("backend", "backend_version", "device", "threads", "dtype", "batch")
TIMING_COLUMNS = ("latency_ms", "p10_ms", "p90_ms", "min_ms", "runs", "round_spread",
                  "median_ms", "noise_ms")
#: timing columns that tables written before they existed lack: read as NaN
LATER_TIMING_COLUMNS = ("median_ms", "noise_ms")
LAYER_COLUMNS = ("key", "op", "macs", "params") + TIMING_COLUMNS + FINGERPRINT_COLUMNS
NETWORK_COLUMNS = ("space", "z") + TIMING_COLUMNS + FINGERPRINT_COLUMNS
#: what a network table must have besides its target column (``latency_ms`` by default)
NETWORK_REQUIRED = ("space", "z")


#: the UTF-8 byte-order mark some editors (Excel, Notepad) write first: every reader and the
#: writer that resumes a table accept it
BOM = b"\xef\xbb\xbf"


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
                    values[f.name] = parse_int(str(row[f.name]))
                except ValueError:
                    raise ValueError(f"column {f.name!r}: {text!r} is not a number") \
                        from None
            else:
                values[f.name] = str(row[f.name])
        return cls(**values)


@dataclass(frozen=True)
class Timing:
    """Statistics of repeated timed runs, in milliseconds."""

    latency_ms: float  # the protocol's statistic (default: median of corrected round minima)
    p10_ms: float
    p90_ms: float
    min_ms: float
    runs: int
    round_spread: float  # (max - min) / min of the round statistics
    median_ms: float = math.nan  # the least round median
    noise_ms: float = math.nan  # how far the statistic moves between rounds (see _stats)
    # the median and p90 of the runs as they ran, in the machine's state then (no speed
    # correction, never rescaled by ``scaled``); known only where just measured: not a column
    raw_median_ms: float = math.nan
    raw_p90_ms: float = math.nan

    def as_row(self) -> dict[str, str]:
        return {"latency_ms": f"{self.latency_ms:.6g}", "p10_ms": f"{self.p10_ms:.6g}",
                "p90_ms": f"{self.p90_ms:.6g}", "min_ms": f"{self.min_ms:.6g}",
                "runs": str(self.runs), "round_spread": f"{self.round_spread:.4g}",
                "median_ms": _blank_nan(self.median_ms, ".6g"),
                "noise_ms": _blank_nan(self.noise_ms, ".4g")}

    @property
    def noise(self) -> float:
        """``noise_ms`` relative to ``latency_ms`` (NaN where not recorded)."""
        return self.noise_ms / self.latency_ms

    def scaled(self, factor: float) -> Timing:
        """This timing with every duration multiplied by ``factor`` (another machine state)."""
        return replace(self, **{f: getattr(self, f) * factor for f in (
            "latency_ms", "p10_ms", "p90_ms", "min_ms", "median_ms", "noise_ms")})


def _blank_nan(value: float, spec: str) -> str:
    return "" if math.isnan(value) else format(value, spec)


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
    for line, row in _read_rows(path, [c for c in LAYER_COLUMNS
                                       if c not in LATER_TIMING_COLUMNS]):
        where = f"{path}, line {line}"
        key = row["key"]
        _layer_of(row, where)
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


def _layer_of(row: dict, where: str) -> Layer:
    """The layer a layer table's row names (its key, exactly: a key padded with blanks would
    be stored padded and never found), with the op the row gives."""
    try:
        layer = Layer.from_key(row["key"])
    except ValueError as e:
        raise TableError(f"{where}, column 'key': {e}") from None
    if row["op"] != layer.op:
        raise TableError(f"{where}, column 'op': {row['op']!r} does not match the key's op "
                         f"{layer.op!r}")
    return layer


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
        space, z = _space_and_z(row, where, space, target)
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


def _space_and_z(row: dict, where: str, space: SearchSpace | None, target: str
                 ) -> tuple[SearchSpace, tuple[int, ...]]:
    """A network row's space (``space``, or the built-in one its first row names) and z;
    the required columns must not be blank."""
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
        return space, space.parse_z(row["z"])
    except ValueError as e:
        raise TableError(f"{where}, column 'z': {e}") from None


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


class table_lock:
    """An exclusive (or shared) lock on a table, held on its ``.lock`` sibling with flock.

    The holder's process id, host and start time (never its command line, which may hold a
    password) are written into the lock file so that a process that waits in vain can name
    it. The lock file is created with mode 0644 and never through a link: a ``.lock`` planted
    as a symbolic link is refused. Where the folder cannot be written (a read-only, shared
    cache) and holds no lock file, no lock is taken: nobody can write there through one
    either (``locked`` is then False). Waits at most ``wait_s`` seconds, then raises
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
        self.locked = False

    def __enter__(self) -> table_lock:
        import fcntl
        import time

        self._fd = _open_lock(self.lock_path, self.path)
        if self._fd is None:
            return self
        fd = self._fd
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
        self.locked = True
        if not self.shared:
            try:  # the lock file is ours: it only names the holder
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"{_holder()}\n".encode(), 0)
            except OSError:  # opened read-only (a read-only folder): the lock still holds
                pass
        return self

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing releases the flock


_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def _open_lock(lock_path: str, path: str) -> int | None:
    """The lock file's descriptor, created (0644) or opened without following a link; None
    where the folder cannot be written and has no lock file."""
    import errno
    os.makedirs(os.path.dirname(os.path.abspath(lock_path)), exist_ok=True)
    try:
        return os.open(lock_path, os.O_RDWR | os.O_CREAT | _NOFOLLOW | os.O_CLOEXEC, 0o644)
    except OSError as e:
        if e.errno == errno.ELOOP or os.path.islink(lock_path):
            raise TableError(f"{path}: its lock {lock_path} is a symbolic link: refused (hwnas "
                             f"never writes through a link; delete it if no hwnas process "
                             f"runs)") from None
        if e.errno not in (errno.EACCES, errno.EROFS, errno.EPERM):
            raise
    try:  # a read-only folder: a lock file there can still be locked for reading
        return os.open(lock_path, os.O_RDONLY | _NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None


def _holder() -> str:
    """This process as a lock file names it: id, host and start time (no command line)."""
    import socket
    import time
    started = "?"
    try:
        with open("/proc/self/stat", "rb") as f:  # field 22: start, in ticks after boot
            ticks = int(f.read().rsplit(b")", 1)[1].split()[19])
        with open("/proc/stat", "rb") as f:
            boot = next(int(line.split()[1]) for line in f if line.startswith(b"btime "))
        start = boot + ticks / os.sysconf("SC_CLK_TCK")
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(start))
    except (OSError, ValueError, IndexError, StopIteration):
        pass
    return f"process {os.getpid()} on {socket.gethostname()}, started {started}"


class TableWriter:
    """Appends rows to a CSV table one at a time, each flushed to disk before the next, while
    holding the table's lock (see table_lock): two processes never interleave their rows; the
    second waits, then sees the first one's rows in ``done``.

    Opening an existing table resumes it: a half-written last line (from a killed process) is
    cut off, the rows already there are kept, and ``done`` holds their ids (the value of
    ``id_column``) so callers skip what is measured. A file whose first line is not this
    table's header, a table measured on another device, a malformed row, or a table that is
    a symbolic link is refused before anything is written; an existing file is only ever
    appended to. With ``discard_existing`` an existing table is first renamed to
    ``<path>.discarded`` (under the lock) and a new one started. A table that cannot be
    written (a read-only cache) is still opened, so that a complete one is read; ``append``
    then raises the OSError naming it.
    """

    def __init__(self, path: str | os.PathLike, columns: Sequence[str], id_column: str,
                 fingerprint: Fingerprint, discard_existing: bool = False,
                 wait_s: float | None = None):
        self.path = os.fspath(path)
        self.columns = tuple(columns)
        self.fingerprint = fingerprint
        self.done: set[str] = set()
        self._file: io.TextIOWrapper | None = None
        self._unwritable: OSError | None = None
        _refuse_link(self.path)
        if not discard_existing:
            self._check_header(complete_only=True)  # before the lock file: a foreign file
        self._lock = table_lock(self.path, wait_s=wait_s).__enter__()
        try:
            if discard_existing and os.path.exists(self.path):
                os.replace(self.path, self.path + ".discarded")
            self._check_header()
            _cut_partial_line(self.path)
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | _NOFOLLOW |
                             os.O_CLOEXEC, 0o644)
                self._file = os.fdopen(fd, "a", newline="")
            except OSError as e:
                if not (os.path.isfile(self.path) and os.path.getsize(self.path) > 0):
                    raise OSError(e.errno, e.strerror, self.path) from None
                self._unwritable = OSError(e.errno, e.strerror, self.path)
            if os.path.getsize(self.path) == 0:
                self._write_line(self.columns)
            else:
                for line, row in _read_rows(self.path, self.columns):
                    where = f"{self.path}, line {line}"
                    _check_row(row, self.columns, where)
                    _same_fingerprint(fingerprint, row, where, hint="measure into another file")
                    self.done.add(row[id_column])
        except BaseException:
            if self._file is not None:
                self._file.close()
            self._lock.__exit__()
            raise

    def _check_header(self, complete_only: bool = False) -> None:
        """Refuse a file that is not this kind of table, touching nothing; with
        ``complete_only``, let pass a first line still being written by another process."""
        try:
            with open(self.path, "rb") as f:
                first = f.readline(64 * 1024)
        except FileNotFoundError:
            return
        except OSError as e:
            raise TableError(f"{self.path}: cannot open the table: {e.strerror}") from None
        if not first or (complete_only and not first.endswith(b"\n")):
            return
        expected = ",".join(self.columns)
        first = first.removeprefix(BOM)  # as every reader of a table accepts (read_text)
        if not first.endswith(b"\n") or first.decode(errors="replace").rstrip("\r\n") != expected:
            shown = first[:60].decode(errors="replace").rstrip("\r\n")
            raise TableError(f"{self.path}, line 1: not a table of this kind: it starts with "
                             f"{shown!r}, expected the header {expected!r}; nothing was "
                             f"written (choose another file)")

    def append(self, row: dict[str, str]) -> None:
        values = {**row, **self.fingerprint.as_row()}
        self._write_line([values[c] for c in self.columns])

    def _write_line(self, values: Sequence[str]) -> None:
        if self._file is None:
            raise self._unwritable or OSError(f"{self.path}: closed")
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerow(values)
        try:
            self._file.write(buf.getvalue())
            self._file.flush()
            os.fsync(self._file.fileno())
        except OSError as e:  # a full disk: name the table (its earlier rows are kept)
            raise OSError(e.errno, e.strerror, self.path) from None

    def close(self) -> None:
        try:
            if self._file is not None:
                try:
                    self._file.close()
                except OSError:  # what could not be flushed was reported by _write_line
                    pass
        finally:
            self._lock.__exit__()

    def __enter__(self) -> TableWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def scale_table(path: str | os.PathLike, columns: Sequence[str], factor: float) -> None:
    """Multiply every duration of every row of the table at ``path`` (a table of ``columns``)
    by ``factor``: a table measured in another state of the machine put on its scale now.
    Rewritten atomically under the table's lock: a reader sees the table before or after,
    a full disk leaves it as it was, a link there is replaced, never written through."""
    path = os.fspath(path)
    with table_lock(path):
        _refuse_link(path)  # under the lock: no link planted between the check and the read
        rows = []
        for line, row in _read_rows(path, columns):
            rows.append({**row, **_timing(row, f"{path}, line {line}").scaled(factor).as_row()})
        if not rows:
            return
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=list(rows[0]), lineterminator="\n",
                                extrasaction="ignore")  # a table without median_ms, noise_ms
        writer.writeheader()
        writer.writerows(rows)
        atomic_write(path, text.getvalue())


def _refuse_link(path: str) -> None:
    if os.path.islink(path):
        raise TableError(f"{path}: a symbolic link: refused (hwnas never writes through a "
                         f"link; give the file it points to, or another file)")


def _check_row(row: dict, columns: Sequence[str], where: str) -> None:
    """A row of a table being resumed, validated as its reader would, so that a bad row is
    refused before new rows are appended after it."""
    if "key" in columns:
        _layer_of(row, where)
    if "z" in columns:
        try:
            _parse_row_z(row)
        except ValueError as e:
            raise TableError(f"{where}, column 'z': {e}") from None
    if "latency_ms" in columns:
        _timing(row, where)
    _extras(row, columns, where)


def _parse_row_z(row: dict) -> tuple[int, ...]:
    """A row's z: choice indices, or the notation of the built-in space the row names
    (Once-for-All's configuration strings); a space of the user's own takes indices here."""
    try:
        space = get_space(row.get("space") or "")
    except ValueError:
        return parse_z(row["z"])
    return space.parse_z(row["z"])


def _cut_partial_line(path: str) -> None:
    """Cut a half-written last row (its writer was killed); called only for a table whose
    header was checked, under its lock."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            if size == 0:
                return
            f.seek(size - 1)
            if f.read(1) == b"\n":
                return
            f.seek(0)
            data = f.read()
    except FileNotFoundError:
        return
    fd = os.open(path, os.O_WRONLY | _NOFOLLOW | os.O_CLOEXEC)
    try:
        os.ftruncate(fd, data.rfind(b"\n") + 1)
    finally:
        os.close(fd)


def _read_rows(path: str, columns: Sequence[str]):
    """(line, row) of each data row; the file must be UTF-8 text (a BOM is accepted) with a
    header naming each of ``columns`` once."""
    reader = csv.DictReader(io.StringIO(read_text(path, "table", TableError, MAX_TABLE_BYTES),
                                        newline=""))
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
    """A cell's number, parsed strictly (see parse_float, parse_int) and finite."""
    text = row[column]
    try:
        value = (parse_int if kind is int else parse_float)(text)
    except ValueError as e:
        detail = f" ({e})" if "digits" in str(e) else ""
        raise TableError(f"{where}, column {column!r}: {text[:40]!r} is not a number"
                         f"{detail}") from None
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
    later = {c: math.nan if _blank(row, c) else _number(row, c, where)
             for c in LATER_TIMING_COLUMNS}
    if later["median_ms"] <= 0 or later["noise_ms"] < 0:
        raise TableError(f"{where}: median_ms must be > 0 and noise_ms >= 0, got "
                         f"{later['median_ms']} and {later['noise_ms']}")
    return Timing(runs=runs, round_spread=spread, **values, **later)


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
