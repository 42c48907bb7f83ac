"""Files from outside and files we write: bounded, strict reading (UTF-8, a size cap, regular
files only, numbers in plain ASCII), atomic writing that never follows a planted link, names
from data reduced to safe file names, and secrets masked in any text shown."""

from __future__ import annotations

import errno
import json
import math
import os
import re
import stat
from collections.abc import Callable
from typing import IO, Any, Union

from hwnas.errors import InputError, RepeatedKeyError

#: the largest file each reader reads (a bigger one is refused before it is read): far over
#: any real table, space, predictor or record, far under what fills the memory
MAX_TABLE_BYTES = 256 << 20
MAX_SPACE_BYTES = 16 << 20
MAX_PREDICTOR_BYTES = 512 << 20
MAX_RECORD_BYTES = 16 << 20
#: the most digits an integer may have where a count, index or size is expected (a 64-bit
#: value has 19; Python 3.10 converts a 100,000-digit string for seconds)
MAX_INT_DIGITS = 18
#: errors of a disk that cannot take the output: the user's to fix, never a bug
DISK_ERRORS = frozenset({errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT,
                         errno.EFBIG, errno.ELOOP})


def read_bytes(path: str, what: str, error: type[InputError] = InputError,
               max_bytes: int = MAX_TABLE_BYTES) -> bytes:
    """The bytes of the regular file ``path``, at most ``max_bytes``; raise ``error`` naming
    the path for a missing, unreadable, special (``/dev/zero``, a FIFO) or larger file."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))  # a FIFO: no hang
    except OSError as e:
        raise error(f"{path}: cannot read the {what}: {e.strerror or e}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = "a folder" if stat.S_ISDIR(info.st_mode) else "not a regular file"
            raise error(f"{path}: cannot read the {what}: {kind}")
        if info.st_size > max_bytes:
            raise error(f"{path}: the {what} is {info.st_size:,} bytes, over the "
                        f"{max_bytes:,} a {what} may have")
        chunks, size = [], 0
        while size <= max_bytes:  # a file that grows while read stops at the cap too
            chunk = os.read(fd, min(1 << 20, max_bytes + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > max_bytes:
            raise error(f"{path}: the {what} is over the {max_bytes:,} bytes it may have")
        return b"".join(chunks)
    except OSError as e:
        raise error(f"{path}: cannot read the {what}: {e.strerror or e}") from None
    finally:
        os.close(fd)


def read_text(path: str, what: str, error: type[InputError] = InputError,
              max_bytes: int = MAX_TABLE_BYTES) -> str:
    """The text of ``path``; raise ``error`` naming the path (and line) if it cannot be read,
    is not a regular file, is larger than ``max_bytes``, is not UTF-8 (a byte-order mark is
    accepted) or holds a NUL byte. ``what`` says what the file is meant to be."""
    data = read_bytes(path, what, error, max_bytes)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise error(f"{path}, line {line}: not UTF-8 text (byte 0x{data[e.start]:02x}); "
                    f"save the {what} as UTF-8") from None
    nul = text.find("\0")
    if nul >= 0:
        line = text.count("\n", 0, nul) + 1
        raise error(f"{path}, line {line}: a NUL byte: the {what} must be text")
    return text


def json_int(text: str) -> int:
    """``json.loads(parse_int=json_int)``: an integer of at most MAX_INT_DIGITS digits (a
    longer one is no count, index or size; converting it costs seconds)."""
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise ValueError(f"an integer of {len(text.lstrip('-'))} digits (at most "
                         f"{MAX_INT_DIGITS})")
    return int(text)


def unique_keys(pairs: list[tuple[str, Any]]) -> dict:
    """``json.loads(object_pairs_hook=unique_keys)``: refuse an object that repeats a key."""
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            raise RepeatedKeyError(f"the key {key!r} appears twice in one object (a JSON "
                                   f"reader would keep only the last)")
        seen.add(key)
    return dict(pairs)


def loads_json(text: str) -> Any:
    """JSON as hwnas reads every file of it: integers of at most MAX_INT_DIGITS digits
    (``json_int``) and no key twice in an object (``unique_keys``); ValueError (or
    RecursionError) otherwise."""
    return json.loads(text, parse_int=json_int, object_pairs_hook=unique_keys)


_FLOAT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
                    r"|[+-]?(?:inf|infinity|nan)", re.ASCII | re.IGNORECASE)
_INT = re.compile(r"[+-]?[0-9]+", re.ASCII)


def parse_float(text: str) -> float:
    """A number written as a table or a person writes one: ASCII digits, a point, an exponent
    (``inf`` and ``nan`` too: the caller refuses them where they do not belong); surrounding
    blanks are ignored. Python's ``float`` also takes ``0_15`` and other scripts' digits
    (``'١٥'``): refused here. Raises ValueError."""
    stripped = text.strip(" \t\r\n")
    if not _FLOAT.fullmatch(stripped):
        raise ValueError(f"not a number: {text!r}")
    return float(stripped)


def parse_int(text: str) -> int:
    """An integer in ASCII digits (surrounding blanks ignored), at most MAX_INT_DIGITS of
    them; no underscores, no other scripts' digits. Raises ValueError."""
    stripped = text.strip(" \t\r\n")
    if not _INT.fullmatch(stripped):
        raise ValueError(f"not an integer: {text!r}")
    if len(stripped.lstrip("+-")) > MAX_INT_DIGITS:
        raise ValueError(f"an integer of {len(stripped.lstrip('+-'))} digits (at most "
                         f"{MAX_INT_DIGITS}): {stripped[:20]}...")
    return int(stripped)


_SAFE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._+-]{0,99}", re.ASCII)


def is_safe_name(name: str) -> bool:
    """Whether ``name`` may be part of a file name as it is: letters, digits, ``._+-``, not
    starting with a dot, a dash or a plus, at most 100 characters (no ``/``, ``..`` alone, NUL)."""
    return bool(_SAFE.fullmatch(name))


def safe_name(name: str) -> str:
    """``name`` reduced to a safe file-name part (see is_safe_name): other characters become
    ``_``; a leading dot or dash is prefixed with ``_``.

    Example:
        >>> safe_name("../../etc/passwd")
        '_.._.._etc_passwd'
    """
    text = re.sub(r"[^A-Za-z0-9._+-]", "_", name, flags=re.ASCII)[:100] or "_"
    return text if is_safe_name(text) else ("_" + text)[:100]


#: credentials in a URL's user part, and query or key=value parameters that hold one
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^\s:/@?#]*:)[^\s/?#]*(?=@)")
_PARAM_SECRET = re.compile(
    r"(?P<head>(?:^|[?&;\s,(\"'])(?:[A-Za-z0-9_.-]*(?:password|passwd|pwd|secret|token|"
    r"api[_-]?key|apikey|access[_-]?key)[A-Za-z0-9_.-]*)=)"
    r"(?P<value>\"[^\"]*\"|'[^']*'|[^\s&;,)\"']+)", re.IGNORECASE)


def mask_secrets(text: str) -> str:
    """``text`` with every credential it shows replaced by ``***``: the password of a URL
    (``postgresql://user:PASSWORD@host/db``) and any ``password=``, ``passwd=``, ``pwd=``,
    ``token=``, ``secret=``, ``api_key=`` parameter (``?password=x``, ``&token=y``).
    Used for everything hwnas prints and writes that may hold a storage URL.

    Example:
        >>> mask_secrets("postgresql://me:hunter2@db/x?sslpassword=k&user=me")
        'postgresql://me:***@db/x?sslpassword=***&user=me'
    """
    text = _URL_PASSWORD.sub(lambda m: m["head"] + "***", text)
    return _PARAM_SECRET.sub(lambda m: m["head"] + "***", text)


Data = Union[str, bytes, Callable[[IO[bytes]], Any]]


def atomic_write(path: str | os.PathLike, data: Data, mode: int = 0o644) -> None:
    """Write ``data`` (text, bytes, or a function writing into a binary file) to ``path`` so
    that it appears whole or not at all: into a new temporary file in the same folder
    (created exclusively, never through a link), synced, then renamed over ``path``. A
    failure (a full or read-only disk) removes the temporary file and leaves an existing
    ``path`` as it was; the OSError names ``path``. ``path`` itself, if a symbolic link, is
    replaced, never written through.

    Example:
        >>> atomic_write("result.json", json.dumps({"ok": True}))  # doctest: +SKIP
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise IsADirectoryError(errno.EISDIR, "is a folder; give a file name", path)
    tmp = os.path.join(folder, f".{os.path.basename(path)[:80]}.{os.getpid()}."
                               f"{os.urandom(4).hex()}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | \
        getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(tmp, flags, mode)
    except OSError as e:
        raise OSError(e.errno, e.strerror, path) from None
    try:
        with os.fdopen(fd, "wb") as f:
            if callable(data):
                data(f)
            else:
                f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError) and e.filename in (None, tmp):
            raise OSError(e.errno, e.strerror, path) from None
        raise
    try:  # the rename itself survives a power cut once the folder is synced
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass


def write_json(path: str | os.PathLike, doc: Any) -> None:
    """``doc`` as indented JSON, written atomically (see atomic_write); a float that is not
    finite (an unknown: NaN, or inf) anywhere in it is written null, as JSON has no NaN (a
    file with ``NaN`` in it is not JSON: other tools refuse it)."""
    atomic_write(path, json.dumps(_finite_or_null(doc), indent=1, allow_nan=False) + "\n")


def _finite_or_null(doc: Any) -> Any:
    if isinstance(doc, float):
        return doc if math.isfinite(doc) else None
    if isinstance(doc, dict):
        return {k: _finite_or_null(v) for k, v in doc.items()}
    if isinstance(doc, (list, tuple)):
        return [_finite_or_null(v) for v in doc]
    if type(doc).__module__ == "numpy" and hasattr(doc, "item"):  # a numpy scalar
        return _finite_or_null(doc.item())
    return doc


#: the figure formats matplotlib writes (its ``get_supported_filetypes``; what a file name's
#: extension may say)
FIGURE_FORMATS = ("eps", "jpeg", "jpg", "pdf", "pgf", "png", "ps", "raw", "rgba", "svg",
                  "svgz", "tif", "tiff", "webp")


def check_figure_path(option: str, path: str | os.PathLike | None) -> None:
    """Refuse a figure file whose name says a format matplotlib does not write, before any
    work (the figure is drawn last, after minutes of measuring and searching)."""
    if path is None:
        return
    ext = os.path.splitext(os.fspath(path))[1].lstrip(".").lower()
    if ext and ext not in FIGURE_FORMATS:
        raise InputError(f"{option} {path}: a figure cannot be written as .{ext}: give a name "
                         f"ending in one of {', '.join('.' + f for f in FIGURE_FORMATS)} (or "
                         f"none, for PNG)")


def save_figure(fig: Any, path: str | os.PathLike, dpi: int = 120) -> None:
    """Save a matplotlib figure atomically (see atomic_write), in the format its file name
    says (PNG where it says none)."""
    ext = os.path.splitext(os.fspath(path))[1].lstrip(".").lower() or "png"
    atomic_write(path, lambda f: fig.savefig(f, dpi=dpi, format=ext))


def json_ready(doc: Any) -> Any:
    """``doc`` as a result file may hold it: every float that is not finite (an unknown: NaN,
    or inf) as None, which JSON writes as null (JSON has no NaN), and every string with its
    secrets masked (see mask_secrets: an objective's error message may quote a URL)."""
    if isinstance(doc, float):
        return doc if math.isfinite(doc) else None
    if isinstance(doc, str):
        return mask_secrets(doc)
    if isinstance(doc, dict):
        return {k: json_ready(v) for k, v in doc.items()}
    if isinstance(doc, (list, tuple)):
        return [json_ready(v) for v in doc]
    return doc


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether two paths name one file (an existing one by inode, through links; else by
    their resolved paths)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def check_outputs_not_inputs(outputs: dict[str, Any], inputs: dict[str, Any]) -> None:
    """Refuse an output path that names an input (``{"--out": path}`` against
    ``{"--layers": path}``): writing it would destroy the input. Raises InputError naming
    both options."""
    for out_option, out in outputs.items():
        if out is None:
            continue
        for in_option, given in inputs.items():
            if given is not None and same_file(out, given):
                raise InputError(f"{out_option} {out} names the same file as {in_option} "
                                 f"{given}: writing it would destroy the input; give another "
                                 f"file")
