"""The one base class of errors that bad input or an unusable machine state cause.

The commands print a ``HwnasError`` as one line and exit with status 2; any other exception
is a bug and keeps its traceback. Each subclass also derives from the built-in exception a
Python user would expect (``ValueError`` for bad values, ``ImportError`` for a missing
package), so ``except ValueError`` keeps working.
"""

from __future__ import annotations


class HwnasError(Exception):
    """Bad input (a file, row, field or argument) or a machine that cannot do what was asked;
    the message names what is at fault."""


class InputError(HwnasError, ValueError):
    """A bad argument or value; the message names it."""


class RepeatedKeyError(InputError):
    """A JSON object that gives one key twice (Python's reader would keep only the last,
    silently); the message names the key. Callers say which file."""
