"""Reading a user's text files: UTF-8 (a byte-order mark accepted), and errors that name the
file and the line."""

from __future__ import annotations

from hwnas.errors import InputError


def read_text(path: str, what: str, error: type[InputError] = InputError) -> str:
    """The text of ``path``; raise ``error`` naming the path (and line) if it cannot be read,
    is not UTF-8 or holds a NUL byte. ``what`` says what the file is meant to be."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise error(f"{path}: cannot read the {what}: {e.strerror or e}") from None
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
