"""Shared fixtures. Tests marked ``nnabla`` skip without nnabla, or fail when
HWNAS_REQUIRE_NNABLA=1 (scripts/test sets it for .venv, so they cannot silently skip there)."""

import contextlib
import importlib
import importlib.util
import io
import logging
import os
import shutil
import subprocess
import sys
import warnings

import pytest

from hwnas.profile import TimingProtocol

HAVE_NNABLA = importlib.util.find_spec("nnabla") is not None
REQUIRE_NNABLA = os.environ.get("HWNAS_REQUIRE_NNABLA") == "1"

#: few, short runs, and a noisy unit measured again without a pause: tests check behaviour,
#: never timings
FAST = TimingProtocol(warmup=1, runs=3, min_runs=2, max_round_s=0.05, pause_s=0)
#: FAST as the options of the commands that measure (their min_runs is min(3, --runs))
FAST_ARGS = ["--warmup", str(FAST.warmup), "--runs", str(FAST.runs), "--rounds",
             str(FAST.rounds), "--max-round-s", str(FAST.max_round_s), "--pause-s",
             str(FAST.pause_s)]


#: the module whose ``main`` each ``python -m hwnas.<command>`` runs
_COMMANDS = {"search": "hwnas.search.__main__", "profile": "hwnas.profile.__main__",
             "fit": "hwnas.fit", "evaluate": "hwnas.evaluate"}


def hwnas(command: str, *args, cwd=None, env=None) -> subprocess.CompletedProcess:
    """``python -m hwnas.<command> args``, run in this process: its ``main`` through
    ``hwnas._cli.run`` as on the command line, with stdout and stderr captured (print, warnings
    and the log handlers that write to stderr; not what C code writes to file descriptor 2),
    ``env`` added to the environment, ``cwd`` as working directory and first on ``sys.path``
    (as ``-m`` puts it, for ``--objective module:function``; the modules imported from there
    are forgotten after), and Python's default warning filters. Ctrl-C stops the tests.

    A new interpreter costs half a second of imports per call; the tests of what only a
    process has (signals, a closed pipe, concurrent writers, import isolation, the
    ``__main__`` entry points themselves) start real ones."""
    from hwnas import _cli
    module = importlib.import_module(_COMMANDS[command])
    argv = [str(a) for a in args]
    out, err = io.StringIO(), io.StringIO()
    here, path, modules = os.getcwd(), list(sys.path), set(sys.modules)
    with pytest.MonkeyPatch.context() as patch:
        for name, value in (env or {}).items():
            patch.setenv(name, str(value))
        if cwd is not None:
            patch.chdir(cwd)
            sys.path.insert(0, os.path.realpath(cwd))
            importlib.invalidate_caches()
        for handler in _stderr_log_handlers():
            patch.setattr(handler, "stream", err)
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), \
                    warnings.catch_warnings():
                _default_warnings()
                try:
                    status = _cli.run(module.main, module.PROG, argv)
                except SystemExit as e:  # argparse: --help, or a usage error already printed
                    status = 0 if e.code is None else e.code if isinstance(e.code, int) else 1
                    if not isinstance(e.code, (int, type(None))):
                        print(e.code, file=sys.stderr)  # as the interpreter does
        finally:
            sys.path[:] = path
            if cwd is not None:
                _forget_modules_under(os.path.realpath(cwd), set(sys.modules) - modules)
    assert os.getcwd() == here
    if status == 130:  # _cli.run turned a Ctrl-C into its message: stop the tests
        raise KeyboardInterrupt
    return subprocess.CompletedProcess(["python", "-m", f"hwnas.{command}", *argv], status,
                                       out.getvalue(), err.getvalue())


def _stderr_log_handlers() -> list:
    """The logging handlers that print to this process's stderr (optuna's, for one: a new
    process would print them to the command's stderr)."""
    loggers = [logging.getLogger(), *(logger for logger in logging.Logger.manager.loggerDict
                                      .values() if isinstance(logger, logging.Logger))]
    return [h for logger in loggers for h in logger.handlers
            if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)
            and h.stream in (sys.stderr, sys.__stderr__)]


def _forget_modules_under(folder: str, names) -> None:
    for name in names:
        file = getattr(sys.modules[name], "__file__", None)
        if file and os.path.commonpath([os.path.realpath(file), folder]) == folder:
            del sys.modules[name]


def _default_warnings() -> None:
    """The warning filters and printing of a fresh interpreter (pytest records warnings)."""
    warnings.resetwarnings()
    for category in (DeprecationWarning, PendingDeprecationWarning, ImportWarning,
                     ResourceWarning):
        warnings.simplefilter("ignore", category)
    warnings.showwarning = lambda message, category, filename, lineno, file=None, line=None: \
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


def have_gpu() -> bool:
    """A CUDA GPU is visible (what the runtimes then need is checked by each test)."""
    if not shutil.which("nvidia-smi"):
        return False
    run = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True)
    return run.returncode == 0 and "GPU" in run.stdout


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.get_closest_marker("nnabla"):
            item.user_properties.append(("needs", "nnabla"))
        if item.get_closest_marker("gpu"):
            item.user_properties.append(("gpu", "yes"))
        if item.get_closest_marker("postgres"):
            item.user_properties.append(("needs_postgres", "yes"))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    if item.get_closest_marker("nnabla") and not HAVE_NNABLA:
        if REQUIRE_NNABLA:
            pytest.fail("nnabla is required here (HWNAS_REQUIRE_NNABLA=1) but not installed")
        pytest.skip("needs nnabla (Python <= 3.10): run scripts/setup and test in .venv")
    if item.get_closest_marker("postgres") and not os.environ.get("HWNAS_TEST_POSTGRES_URL"):
        if os.environ.get("HWNAS_REQUIRE_POSTGRES") == "1":
            pytest.fail("HWNAS_TEST_POSTGRES_URL is not set: scripts/test starts the server")
        pytest.skip("needs PostgreSQL: run scripts/test, or set HWNAS_TEST_POSTGRES_URL")
    if item.get_closest_marker("gpu") and not have_gpu():
        pytest.skip("needs a CUDA GPU")


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HWNAS_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="session")
def nnabla_backend():
    from hwnas.profile import get_backend
    return get_backend("nnabla")


@pytest.fixture(scope="session")
def mobilenet_table(nnabla_backend, tmp_path_factory):
    """The mobilenet space's layer table, really measured with nnabla on this CPU, once per
    test run: xdist workers write one file, the second waiting on the table's lock and then
    finding every row measured, as two profile processes do."""
    from hwnas.profile import profile_layers
    from hwnas.spaces import get_space
    base = tmp_path_factory.getbasetemp()  # a worker's is in the run's folder
    folder = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    return profile_layers(nnabla_backend, get_space("mobilenet").unique_layers(),
                          folder / "mobilenet-layers.csv", FAST, show_progress=False)
