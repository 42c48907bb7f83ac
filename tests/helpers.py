"""Plain helpers and constants the test modules share (fixtures live in conftest.py): the
timing protocol for tests, the in-process command runner, a fingerprint, real table files with
known latencies, and a small space file. No test module imports another; they import this."""

import contextlib
import csv
import hashlib
import importlib
import importlib.util
import io
import json
import logging
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from hwnas.layers import Layer
from hwnas.profile import TimingProtocol
from hwnas.tables import (
    LAYER_COLUMNS,
    NETWORK_COLUMNS,
    Fingerprint,
    TableWriter,
    Timing,
    format_z,
    read_layer_table,
    read_network_table,
)

HAVE_NNABLA = importlib.util.find_spec("nnabla") is not None
HAVE_TORCH = importlib.util.find_spec("torch") is not None

#: few, short runs, and a noisy unit measured again without a pause: tests check behaviour,
#: never timings
FAST = TimingProtocol(warmup=1, runs=3, min_runs=2, max_round_s=0.05, pause_s=0)
#: FAST as the options of the commands that measure (their min_runs is min(3, --runs))
FAST_ARGS = ["--warmup", str(FAST.warmup), "--runs", str(FAST.runs), "--rounds",
             str(FAST.rounds), "--max-round-s", str(FAST.max_round_s), "--pause-s",
             str(FAST.pause_s)]


#: the module whose ``main`` each ``python -m hwnas.<command>`` runs
_COMMANDS = {"search": "hwnas.search.__main__", "profile": "hwnas.profile.__main__",
             "fit": "hwnas.fit", "evaluate": "hwnas.evaluate", "devices": "hwnas.devices.__main__"}


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


# --- tables with known latencies -------------------------------------------------------------

#: the fingerprint of the tables the tests write
FP = Fingerprint("nnabla", "1.39.0", "cpu: test", 1)
def every_op() -> list:
    """Every op at least once: the built-in spaces' layers and the ops they do not use."""
    from hwnas.layers import OPS
    from hwnas.spaces import get_space
    extra = [Layer("bn", (8, 6, 6), act="relu"), Layer("add", (8, 6, 6)),
             Layer("conv", (8, 7, 7), 16, kernel=5, stride=2, groups=4, act="none"),
             Layer("mbconv", (8, 7, 7), 8, kernel=5, stride=1, expand=1),
             Layer("avgpool", (8, 7, 7), kernel=3, stride=2),
             Layer("fbblock", (8, 7, 7), 8, kernel=3, stride=1, expand=1, groups=2),
             Layer("fbblock", (8, 7, 7), 16, kernel=5, stride=2, expand=3, groups=1),
             Layer("mbv3", (16, 7, 7), 16, kernel=5, stride=1, expand=4, act="h_swish", se=1),
             Layer("mbv3", (8, 7, 7), 16, kernel=3, stride=2, expand=1, act="relu"),
             Layer("conv_act", (24, 1, 1), 32, act="h_swish")]
    layers = get_space("mobilenet").unique_layers() + get_space("nb201").unique_layers() + extra
    assert {layer.op for layer in layers} == set(OPS)
    return layers


#: three small layers of different ops
LAYERS = [Layer("conv", (3, 8, 8), 4), Layer("gap", (4, 8, 8)), Layer("linear", (4, 1, 1), 2)]


def write_table(path, layers=LAYERS, fingerprint=FP) -> None:
    """A real layer table whose latencies are 0.1, 0.2, ... ms in layer order."""
    with TableWriter(path, LAYER_COLUMNS, "key", fingerprint) as w:
        for i, layer in enumerate(layers):
            t = Timing(0.1 * (i + 1), 0.09, 0.12, 0.08, 10, 0.02)
            w.append({"key": layer.key, "op": layer.op, "macs": str(layer.macs),
                      "params": str(layer.params), **t.as_row()})


def synthetic_table(folder):
    """The mobilenet space's layer table written to ``folder/layers.csv`` by write_table, read
    back: latencies 0.1, 0.2, ... ms in the order of its unique layers."""
    from hwnas.spaces import get_space
    path = folder / "layers.csv"
    write_table(path, get_space("mobilenet").unique_layers())
    return read_layer_table(path)


def network_table(path, space, zs, latency_ms, fingerprint=FP, extra=None, noise=0.0):
    """A real network table file with the given latencies (and ``noise`` as every row's round
    spread; ``extra`` columns: name -> values), read back."""
    columns = NETWORK_COLUMNS + tuple(extra or {})
    with TableWriter(path, columns, "z", fingerprint) as w:
        for i, (z, ms) in enumerate(zip(zs, latency_ms)):
            row = {"space": space.name, "z": format_z(z),
                   **Timing(ms, ms, ms, ms, 5, noise).as_row()}
            w.append({**row, **{k: str(v[i]) for k, v in (extra or {}).items()}})
    return read_network_table(path, space)


def rows(path) -> list:
    """A CSV file's lines as lists of cells (the header first)."""
    with open(path, newline="") as f:
        return list(csv.reader(f))


def set_cell(path, line, column, value) -> None:
    """Set one cell of a CSV table (line 2 is the first row)."""
    data = rows(path)
    data[line - 1][data[0].index(column)] = value
    with open(path, "w", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows(data)


def digest(path) -> str:
    """The SHA-256 of a file's bytes."""
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


#: a small space file: a stem, two searched blocks (one may be skipped), a head
SPACE_YAML = """
name: tiny
input_shape: [3, 16, 16]
stem:
  - {op: conv, out: 8, k: 3, s: 2}
decisions:
  - name: block1
    choices:
      MB3 3x3: [{op: mbconv, out: 16, k: 3, s: 2, e: 3}]
      MB6 5x5: [{op: mbconv, out: 16, k: 5, s: 2, e: 6}]
  - name: block2
    choices:
      MB3 3x3: [{op: mbconv, out: 16, k: 3, s: 1, e: 3}]
      skip: []
head:
  - "conv(in=16x4x4,out=32,k=1,s=1,g=1,act=relu6)"
  - {op: gap}
  - {op: linear, out: 5}
"""


# --- the examples ---------------------------------------------------------------------------

def check_training_example(stdout: str, derived_json, plot) -> None:
    """What a training example (examples/train_with_latency_penalty.py, nnabla, and
    train_torch_supernet.py, PyTorch) printed and wrote, run with ``--epochs 1 --quick --json
    derived_json --plot plot``: a real supernet trained on the digits at three budgets, with
    networks derived within each and measured."""
    epochs = [line for line in stdout.splitlines() if line.startswith("epoch")]
    assert len(epochs) == 6  # three budgets: before training, after one epoch
    accuracy = [float(line.split("accuracy")[1].split()[0]) for line in epochs]
    expected = [float(line.split("E[latency]")[1].split()[0]) for line in epochs]
    lams = [float(line.split("lambda")[1]) for line in epochs]
    assert all(accuracy[i + 1] > 0.4 > accuracy[i] for i in (0, 2, 4))  # real digits
    derived = json.loads(Path(derived_json).read_text())
    budgets = [r["budget_ms"] for r in derived]
    assert len(derived) == 3 and budgets == sorted(budgets)
    # the lowest budget is under the uniform mixture's E[latency]: lambda rose and pulled the
    # architecture towards speed; the highest is over it: lambda fell below 0
    assert expected[0] > budgets[0] and lams[1] > 0 and expected[1] < expected[0]
    assert expected[4] < budgets[2] and lams[5] < 0 and expected[5] > expected[4]
    for r in derived:  # within the budget by construction, measured for real
        assert r["predicted_latency_ms"] <= r["budget_ms"]
        assert r["measured_latency_ms"] > 0 and 0 <= r["accuracy"] <= 1 and len(r["z"]) == 5
    assert stdout.count("derived z") == 3
    assert Path(plot).stat().st_size > 1000
