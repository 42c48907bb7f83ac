"""Every exception and warning that hwnas raises on purpose, in one place.

Catch ``HwnasError`` for anything caused by bad input or by a machine that cannot do what was
asked; the message names the file, row, field or argument at fault. Each subclass also derives
from the built-in exception a Python user would expect (``ValueError`` for bad values,
``ImportError`` for a missing package, ``KeyError`` for an unseen layer), so ``except
ValueError`` keeps working. Two classes are not HwnasErrors: ``SearchInterrupted`` is a
``KeyboardInterrupt`` (Ctrl-C), and ``UnknownChoiceWarning`` is a warning.

The commands map them to exit statuses (``hwnas._cli``): ``BudgetError`` 1 (no architecture
meets the budget), any other ``HwnasError`` 2 (one line on stderr), ``SearchInterrupted`` 130;
any other exception is a bug in hwnas and keeps its traceback.

Each class is also importable from the module that raises it (``hwnas.tables.TableError``,
``hwnas.search.BudgetError``), as before. This module imports nothing of hwnas, so every
module can import it; ``NotFittedError`` derives from scikit-learn's and is made on first use,
so that importing this module does not load scikit-learn.

Example:
    >>> from hwnas.errors import HwnasError, TableError
    >>> issubclass(TableError, ValueError), issubclass(TableError, HwnasError)
    (True, True)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["BudgetError", "HwnasError", "InputError", "MissingDependency", "NotAdditiveError",
           "NotFittedError", "NotSupportedError", "ProfileError", "RepeatedKeyError",
           "SearchInterrupted", "SpaceFileError", "TableError", "TableLockedError",
           "UnknownChoiceError", "UnknownChoiceWarning", "UnknownDeviceError",
           "UnmappedModuleError", "UnmeasuredError", "UnseenLayerError", "WorkerDied"]


class HwnasError(Exception):
    """Bad input (a file, row, field or argument) or a machine that cannot do what was asked;
    the message names what is at fault."""


class InputError(HwnasError, ValueError):
    """A bad argument or value; the message names it."""


class MissingDependency(HwnasError, ImportError):
    """An optional dependency is not installed; the message says what to install."""


# --- spaces, tables, devices
class NotAdditiveError(HwnasError, TypeError):
    """Latency is not additive over the decisions of z: no per-decision cost matrix exists."""


class RepeatedKeyError(InputError):
    """A JSON object that gives one key twice (Python's reader would keep only the last,
    silently); the message names the key. Callers say which file."""


class SpaceFileError(InputError):
    """A malformed space file; the message names the file and the key or line."""


class TableError(InputError):
    """A malformed measurement table; the message names the file, line and column."""


class TableLockedError(InputError):
    """Another process kept a table locked for longer than we wait; the message names both."""


class UnknownDeviceError(InputError):
    """No shipped table of that name (and space); the message lists close matches."""


# --- measuring
class ProfileError(HwnasError, RuntimeError):
    """A layer or network failed to build or run; the message names it."""


# --- predictors
class NotSupportedError(HwnasError, NotImplementedError):
    """The predictor kind cannot do what was asked; the message says which kinds can."""


class UnseenLayerError(InputError, KeyError):
    """A layer has no row in the lookup table (and there is no fallback)."""

    def __str__(self) -> str:
        return str(self.args[0])  # KeyError's own would quote the message


class UnmeasuredError(InputError):
    """A z that the measured predictor's table does not hold; the message names it."""


class UnknownChoiceError(InputError):
    """A z uses a choice whose cost the predictor has not learned; the message names it."""


class UnknownChoiceWarning(UserWarning):
    """A fitted predictor cannot price some choices (no measured network used them)."""


# --- search
class BudgetError(InputError):
    """No architecture of the space meets the budget (the commands exit with status 1)."""

    def __init__(self, budget_ms: float, min_latency_ms: float, exact: bool = True):
        self.budget_ms, self.min_latency_ms = budget_ms, min_latency_ms
        what = "this space can reach" if exact else "the search found (the predictor is " \
                                                    "not additive, so the least is not known)"
        super().__init__(f"no architecture meets the budget of {budget_ms:g} ms: the smallest "
                         f"predicted latency {what} is {min_latency_ms:.3f} ms")


class SearchInterrupted(KeyboardInterrupt):
    """The search was interrupted (Ctrl-C); the message says what was kept."""


class WorkerDied(HwnasError):
    """A search worker process was killed by a signal (the out-of-memory killer, a user's
    kill): not a bug in hwnas; the message names the worker and the signal."""


# --- integrations
class UnmappedModuleError(InputError):
    """A module or graph function of NNabla NAS that has no hwnas Layer (and no fallback)."""


if TYPE_CHECKING:
    from sklearn.exceptions import NotFittedError as _SklearnNotFittedError

    class NotFittedError(HwnasError, _SklearnNotFittedError):
        """A predictor was used before ``fit``."""


def _not_fitted_error() -> type:
    from sklearn.exceptions import NotFittedError as _SklearnNotFittedError

    class NotFittedError(HwnasError, _SklearnNotFittedError):
        """A predictor was used before ``fit`` (scikit-learn's error: a ValueError and an
        AttributeError, so scikit-learn's tools recognise it)."""

    NotFittedError.__module__, NotFittedError.__qualname__ = __name__, "NotFittedError"
    return NotFittedError


def __getattr__(name: str) -> Any:
    # made on first use: scikit-learn takes half a second to import, and the commands'
    # error handling, which imports this module, must stay cheap
    if name == "NotFittedError":
        value = globals()[name] = _not_fitted_error()
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

