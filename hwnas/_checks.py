"""Numbers given by users, checked at the boundary with one message per kind of mistake:
what the argument is called, what was expected, what was given.

Two kinds of caller: settings objects take numbers only (``"5"`` is refused: a string there
is a mistake in the caller's code), while the loss terms of the integrations take anything
``float()`` reads (a training script passes numpy and framework scalars).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from hwnas.errors import InputError


def is_integer(x: Any) -> bool:
    """Whether x is an int (Python or numpy), not a bool.

    Example:
        >>> is_integer(3), is_integer(True), is_integer(3.0)
        (True, False, False)
    """
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool)


def is_number(x: Any) -> bool:
    """Whether x is a real number (Python or numpy), not a bool.

    Example:
        >>> is_number(2.5), is_number(False), is_number("2.5")
        (True, False, False)
    """
    return isinstance(x, (int, float, np.number)) and not isinstance(x, bool)


def count(name: str, value: Any, *, most: int | None = None) -> int:
    """An integer >= 1 (at most ``most``), else InputError naming ``name``.

    Example:
        >>> count("top", 0)
        Traceback (most recent call last):
        ...
        hwnas.errors.InputError: top must be an integer >= 1, got 0
    """
    if not (is_integer(value) and value >= 1 and (most is None or value <= most)):
        limit = "" if most is None else f" (at most {most})"
        raise InputError(f"{name} must be an integer >= 1{limit}, got {value!r}")
    return int(value)


def positive(name: str, value: Any, *, allow_zero: bool = False, convert: bool = False,
             noun: str = "a finite number") -> float:
    """A finite number > 0 (>= 0 with ``allow_zero``), else InputError naming ``name``.

    Args:
        name, value: the argument's name (as the user wrote it) and its value.
        allow_zero: accept 0.
        convert: accept whatever ``float()`` reads (numpy and framework scalars, "5");
            without it only numbers are accepted.
        noun: what the value is, in the message (``"a latency in ms"``).

    Returns:
        The value as a float.

    Example:
        >>> positive("budget_ms", 5)
        5.0
        >>> positive("budget_ms", float("inf"))
        Traceback (most recent call last):
        ...
        hwnas.errors.InputError: budget_ms must be a finite number > 0, got inf
    """
    if convert:
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise InputError(f"{name} must be a number, got {value!r}") from None
    if not (is_number(value) and math.isfinite(value)
            and (value > 0 or (allow_zero and value == 0))):
        raise InputError(f"{name} must be {noun} {'>=' if allow_zero else '>'} 0, "
                         f"got {value!r}")
    return float(value)


def finite(name: str, value: Any) -> float:
    """A finite number, else InputError naming ``name``.

    Example:
        >>> finite("penalty_weight", -0.07)
        -0.07
    """
    if not (is_number(value) and math.isfinite(value)):
        raise InputError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def fraction(name: str, value: Any) -> float:
    """A number strictly between 0 and 1 (a quantile, a confidence), else InputError.

    Example:
        >>> fraction("confidence", 1.0)
        Traceback (most recent call last):
        ...
        hwnas.errors.InputError: confidence must be in (0, 1), got 1.0
    """
    if not (is_number(value) and 0 < value < 1):
        raise InputError(f"{name} must be in (0, 1), got {value!r}")
    return float(value)
