"""One error family: every exception and warning of hwnas is importable from hwnas.errors (and
still from its old module), keeps its built-in base, and maps to one documented exit status of
every command (hwnas._cli): 0 an answer, 1 no architecture meets the budget, 2 bad input, 130
interrupted, 70 a bug."""

import importlib
import inspect
import pkgutil
import subprocess
import sys

import pytest

import hwnas
import hwnas.errors
from hwnas import _cli
from hwnas.errors import BudgetError, HwnasError, InputError, SearchInterrupted


def _package_classes() -> tuple[dict, list]:
    """({name: class} of every public exception or warning class that a module of hwnas
    defines, [modules that need a package not installed here])."""
    found, skipped = {}, []
    for info in pkgutil.walk_packages(hwnas.__path__, "hwnas."):
        try:
            module = importlib.import_module(info.name)
        except ImportError:  # nnabla, NNabla NAS, hwnas_timing (an export's sibling file)
            skipped.append(info.name)
            continue
        for name, value in vars(module).items():
            if inspect.isclass(value) and issubclass(value, (BaseException, Warning)) and \
                    value.__module__.startswith("hwnas") and not name.startswith("_"):
                found.setdefault(name, set()).add(value)
    return found, skipped


def test_every_exception_of_the_package_is_the_one_in_hwnas_errors():
    found, skipped = _package_classes()
    assert len(found) >= 19, sorted(found)
    assert len(skipped) <= 3, skipped  # the NNabla NAS estimators, nnabla's, the runner
    wrong = {name: classes for name, classes in found.items()
             if classes != {getattr(hwnas.errors, name, None)}}
    assert not wrong, f"define these in hwnas/errors.py and import them back: {wrong}"
    assert set(found) <= set(hwnas.errors.__all__)
    assert all(getattr(hwnas.errors, name).__module__ == "hwnas.errors"
               for name in hwnas.errors.__all__)


@pytest.mark.parametrize("name, bases", [
    ("HwnasError", (Exception,)), ("InputError", (HwnasError, ValueError)),
    ("MissingDependency", (ImportError,)), ("BudgetError", (InputError,)),
    ("TableError", (ValueError,)), ("UnseenLayerError", (KeyError, ValueError)),
    ("NotFittedError", (ValueError, AttributeError)),
    ("NotSupportedError", (NotImplementedError,)), ("NotAdditiveError", (TypeError,)),
    ("ProfileError", (RuntimeError,)), ("SearchInterrupted", (KeyboardInterrupt,)),
    ("UnknownChoiceWarning", (UserWarning,)), ("WorkerDied", (HwnasError,)),
])
def test_each_keeps_its_built_in_base(name, bases):
    cls = getattr(hwnas.errors, name)
    assert issubclass(cls, bases)
    assert issubclass(cls, HwnasError) == (name not in ("SearchInterrupted",
                                                        "UnknownChoiceWarning"))


def test_not_fitted_is_scikit_learns_and_importing_the_errors_loads_no_scikit_learn():
    from sklearn.exceptions import NotFittedError as SklearnNotFittedError

    from hwnas.errors import NotFittedError
    assert issubclass(NotFittedError, SklearnNotFittedError)
    code = ("import sys, hwnas.errors, hwnas._cli; assert 'sklearn' not in sys.modules; "
            "from hwnas.errors import NotFittedError; assert 'sklearn' in sys.modules; "
            "import hwnas.predictors._base as b; assert b.NotFittedError is NotFittedError")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("module, name", [
    ("hwnas._imports", "MissingDependency"), ("hwnas.tables", "TableError"),
    ("hwnas.tables", "TableLockedError"), ("hwnas.search", "BudgetError"),
    ("hwnas.search", "SearchInterrupted"), ("hwnas.search._study", "WorkerDied"),
    ("hwnas.predictors", "UnseenLayerError"), ("hwnas.predictors", "NotFittedError"),
    ("hwnas.predictors._network", "UnknownChoiceWarning"), ("hwnas.spaces", "SpaceFileError"),
    ("hwnas.profile", "ProfileError"), ("hwnas.devices._catalogue", "UnknownDeviceError"),
])
def test_the_old_imports_keep_working(module, name):
    assert getattr(importlib.import_module(module), name) is getattr(hwnas.errors, name)


def _raise(error: BaseException):
    def main(argv):
        raise error
    return main


@pytest.mark.parametrize("main, status, last_line", [
    (lambda argv: 0, 0, ""),
    (_raise(BudgetError(5, 7.25)), 1,
     "prog: no architecture meets the budget of 5 ms: the smallest predicted latency this "
     "space can reach is 7.250 ms"),
    (_raise(InputError("x.csv, line 3: bad")), 2, "prog: error: x.csv, line 3: bad"),
    (_raise(hwnas.errors.MissingDependency("plotting needs matplotlib")), 2,
     "prog: error: plotting needs matplotlib"),
    (_raise(KeyboardInterrupt()), 130,
     "prog: interrupted; what was measured is kept, run again to resume"),
    (_raise(SearchInterrupted("12 trials kept in s.journal")), 130,
     "prog: interrupted; 12 trials kept in s.journal"),
    (_raise(ZeroDivisionError("division by zero")), 70,
     f"prog: internal error: this is a bug in hwnas, not in your input; please report it with "
     f"the traceback above and this line: hwnas {hwnas.__version__} ("),
], ids=["answer", "budget", "input", "missing", "ctrl-c", "search-interrupted", "bug"])
def test_each_outcome_has_its_exit_status(main, status, last_line, capsys):
    assert _cli.run(main, "prog", []) == status
    err = capsys.readouterr().err.strip()
    lines = err.splitlines()
    assert (lines[-1] if lines else "").startswith(last_line), err
    assert ("Traceback" in err) == (status == _cli.EXIT_BUG)
    if status in (1, 2, 130):
        assert len(lines) == 1, err


def test_the_exit_statuses_are_distinct_and_documented():
    statuses = [_cli.EXIT_OK, _cli.EXIT_NO_ARCHITECTURE, _cli.EXIT_BAD_INPUT, _cli.EXIT_BUG,
                _cli.EXIT_INTERRUPTED, _cli.EXIT_BROKEN_PIPE]
    assert len(set(statuses)) == len(statuses)
    for status in statuses:
        assert f"\n{status} " in _cli.__doc__ and f"{status} " in _cli.EXIT_STATUS_HELP


def _hwnas(*args, cwd=None) -> subprocess.CompletedProcess:
    """``python -m hwnas ARGS`` in a new process: as the console script ``hwnas`` runs it."""
    return subprocess.run([sys.executable, "-m", "hwnas", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def test_the_hwnas_command_answers_with_the_documented_statuses(tmp_path):
    answer = _hwnas("search", "--space", "fbnet", "--device", "pixel3", "--budget-ms", "15",
                    "--trials", "30", "--quiet", "--json", tmp_path / "out.json")
    assert answer.returncode == 0, answer.stderr
    assert (tmp_path / "out.json").exists()
    none = _hwnas("search", "--space", "fbnet", "--device", "pixel3", "--budget-ms", "0.5",
                  "--quiet")
    assert none.returncode == 1 and "no architecture meets the budget of 0.5 ms" in none.stderr
    assert len(none.stderr.strip().splitlines()) == 1, none.stderr
    bad = _hwnas("search", "--space", "fbnet", "--device", "pixel9", "--budget-ms", "15")
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    assert bad.stderr.startswith("hwnas search: error: ") and "pixel9" in bad.stderr


def test_hwnas_lists_its_commands_and_says_its_version():
    from hwnas.__main__ import COMMANDS
    help_ = _hwnas("--help")
    assert help_.returncode == 0
    for command in ("search", "profile", "fit", "evaluate", "devices"):
        assert f"\n  {command} " in help_.stdout and command in COMMANDS
    assert "exit status: 0 an answer; 1 no architecture meets the budget(s); 2 bad input" \
        in " ".join(help_.stdout.split())
    version = _hwnas("--version")
    assert (version.returncode, version.stdout) == (0, f"hwnas {hwnas.__version__}\n")
    for args, message in (([], "give a command: search, profile"),
                          (["train"], "invalid choice: 'train'")):
        run = _hwnas(*args)
        assert run.returncode == 2 and message in run.stderr, run.stderr


@pytest.mark.parametrize("command", ["search", "profile", "fit", "evaluate", "devices"])
def test_each_command_runs_as_hwnas_command(command):
    run = _hwnas(command, "--help")
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith(f"usage: hwnas {command} ")


def test_a_command_module_that_fails_to_import_is_a_bug(monkeypatch, capsys):
    from hwnas import __main__ as cli
    monkeypatch.setitem(cli.COMMANDS, "devices", ("hwnas.no_such_module", "broken"))
    assert cli.main(["devices"]) == _cli.EXIT_BUG
    assert "hwnas devices: internal error" in capsys.readouterr().err

