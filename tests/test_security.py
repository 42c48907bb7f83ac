"""Hostile files, failing disks and dying workers: each test plants, breaks or kills something
real (symbolic links, a full or read-only tmpfs, a YAML bomb, /dev/zero, a FIFO, a killed
process) and asserts hwnas's promise: nothing written outside the folder given or through a
link, no secret on disk or printed, no input overwritten, one line and exit 2 for what the user
must fix, workers that die with their parent."""

import errno
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time

import numpy as np
import pytest
from helpers import FP, digest, hwnas, network_table, set_cell, write_table

from hwnas import _cli
from hwnas._files import atomic_write, mask_secrets, parse_float, parse_int, safe_name
from hwnas.errors import InputError
from hwnas.predictors import LookupPredictor, load_predictor
from hwnas.predictors._regressors import TreePredictor
from hwnas.profile import read_cache_status
from hwnas.search import run_study
from hwnas.spaces import get_space, load_space
from hwnas.tables import (
    LAYER_COLUMNS,
    NETWORK_COLUMNS,
    TableError,
    TableWriter,
    Timing,
    format_z,
    read_layer_table,
    table_lock,
)

SECRET = "s3cret-Pw"
URL = f"postgresql://me:{SECRET}@127.0.0.1:1/none"


@pytest.fixture
def files(tmp_path):
    """nb201's layer table, a network table, a lookup predictor, a victim file outside."""
    space = get_space("nb201")
    write_table(tmp_path / "layers.csv", space.unique_layers())
    lookup = LookupPredictor().fit_table(read_layer_table(tmp_path / "layers.csv"))
    Z = space.random_z(8, seed=0)
    network_table(tmp_path / "nets.csv", space, Z, lookup.predict_z(space, Z), noise=0.01)
    lookup.save(tmp_path / "lookup.json")
    (tmp_path / "victim.txt").write_text("precious\n")
    return tmp_path


def one_line(run, *fragments):
    """Exit status 2 and one line on stderr holding every fragment, no traceback."""
    assert run.returncode == 2, (run.stdout, run.stderr)
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in run.stderr, run.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def no_temp_files(folder):
    return not [n for n in os.listdir(folder) if n.endswith(".tmp")]


# --- links ---------------------------------------------------------------------------------

def test_a_lock_planted_as_a_link_is_refused_and_its_target_untouched(files):
    (files / "layers.csv.lock").unlink(missing_ok=True)
    os.symlink(files / "victim.txt", files / "layers.csv.lock")
    before = digest(files / "victim.txt")
    with pytest.raises(TableError, match="lock .* is a symbolic link: refused"):
        TableWriter(files / "layers.csv", LAYER_COLUMNS, "key", FP)
    with pytest.raises(TableError, match="symbolic link"):
        with table_lock(files / "layers.csv", shared=True):
            pass
    assert digest(files / "victim.txt") == before


def test_a_table_planted_as_a_link_is_not_written_through(files):
    os.symlink(files / "victim.txt", files / "t.csv")
    with pytest.raises(TableError, match="symbolic link: refused"):
        TableWriter(files / "t.csv", LAYER_COLUMNS, "key", FP)
    assert (files / "victim.txt").read_text() == "precious\n"


@pytest.mark.parametrize("command", ["fit", "evaluate", "search"])
def test_an_output_planted_as_a_link_is_replaced_never_written_through(files, command):
    out = files / "out.json"
    os.symlink(files / "victim.txt", out)
    args = {"fit": ["--layers", files / "layers.csv", "--out", out],
            "evaluate": ["--predictor", files / "lookup.json", "--networks",
                         files / "nets.csv", "--json", out],
            "search": ["--space", "nb201", "--predictor", files / "lookup.json", "--budget-ms",
                       "1e9", "--trials", "3", "--no-verify", "--quiet", "--json", out]}
    run = hwnas(command, *args[command])
    assert run.returncode == 0, run.stderr
    assert (files / "victim.txt").read_text() == "precious\n"
    assert not out.is_symlink() and json.loads(out.read_text())
    assert no_temp_files(files)


def test_atomic_write_keeps_the_old_file_when_the_writer_fails(tmp_path):
    path = tmp_path / "p.json"
    path.write_text("old\n")

    def broken(f):
        f.write(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")
    with pytest.raises(OSError) as error:
        atomic_write(path, broken)
    assert error.value.filename == str(path) and error.value.errno == errno.ENOSPC
    assert path.read_text() == "old\n" and no_temp_files(tmp_path)


# --- names from data, the runner's files ----------------------------------------------------

@pytest.mark.parametrize("name", ["../../evil", "/tmp/evil", "a/b", "..", ".hidden",
                                  "nul\0byte", "x" * 101])
def test_a_space_name_that_is_no_safe_file_name_is_refused(tmp_path, name):
    path = tmp_path / "space.json"
    path.write_text(json.dumps({"name": name, "input_shape": [3, 8, 8],
                                "decisions": [{"name": "a", "choices": {"skip": [],
                                               "c": [{"op": "conv", "out": 3, "k": 3}]}}]}))
    with pytest.raises(InputError, match="name: .*a space name may hold only"):
        load_space(str(path))
    run = hwnas("search", "--space", path, "--table", tmp_path / "none.csv", "--budget-ms", "1",
                "--export-onnx", tmp_path / "onnx")
    one_line(run, "space name")
    assert sorted(os.listdir(tmp_path)) == ["space.json"]


def test_safe_names_stay_in_their_folder():
    for name in ["../../etc/passwd", "/abs", "..", "a\0b", "", "-rf", "ok-name_1.2"]:
        safe = safe_name(name)
        assert "/" not in safe and "\0" not in safe and safe not in (".", "..") and safe
        assert os.path.dirname(os.path.join("folder", safe)) == "folder"
    assert safe_name("ok-name_1.2") == "ok-name_1.2"


@pytest.fixture
def export(tmp_path):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from hwnas.profile._export import export_for_device
    space = get_space("nb201")
    folder = tmp_path / "export"
    export_for_device(folder, space, zs=space.random_z(2, seed=0))
    return folder


@pytest.mark.parametrize("planted", ["../outside.onnx", "/etc/passwd", "link", "networks/../../x"])
def test_the_runner_opens_only_files_inside_its_export_folder(export, planted):
    from hwnas.profile import runner
    manifest = json.loads((export / "manifest.json").read_text())
    (export.parent / "outside.onnx").write_bytes((export / manifest["units"][0]["file"])
                                                 .read_bytes())
    if planted == "link":  # a link inside the folder that leads out of it
        os.symlink(export.parent / "outside.onnx", export / "link.onnx")
        planted = "link.onnx"
    manifest["units"][0]["file"] = planted
    (export / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(SystemExit) as stop:
        runner.main(["--export-dir", str(export), "--runs", "1", "--rounds", "1"])
    assert "unit 0" in str(stop.value.code) and "export folder" in str(stop.value.code)
    assert not (export / "networks.csv").exists()  # refused before anything was measured


def test_the_runner_refuses_a_table_planted_as_a_link(export):
    from hwnas.profile import runner
    os.symlink(export.parent / "victim.csv", export / "networks.csv")
    with pytest.raises(SystemExit, match="symbolic link"):
        runner.main(["--export-dir", str(export), "--runs", "1", "--rounds", "1"])
    assert not (export.parent / "victim.csv").exists()


# --- secrets ---------------------------------------------------------------------------------

def test_every_url_form_is_masked():
    cases = {f"postgresql://me:{SECRET}@db/x": "postgresql://me:***@db/x",
             f"mysql+pymysql://u:{SECRET}@h:3306/d?charset=utf8": "mysql+pymysql://u:***@h:3306/d?charset=utf8",
             f"redis://:{SECRET}@host/0": "redis://:***@host/0",
             f"postgresql://u@h/d?password={SECRET}": "postgresql://u@h/d?password=***",
             f"postgresql://u@h/d?sslmode=x&password={SECRET}&a=1": "postgresql://u@h/d?sslmode=x&password=***&a=1",
             f"https://h/p?token={SECRET}": "https://h/p?token=***",
             f"x passwd={SECRET} y": "x passwd=*** y",
             f"api_key={SECRET}": "api_key=***",
             f"postgresql://u:p@{SECRET}@h/d": "postgresql://u:***@h/d"}
    for text, masked in cases.items():
        assert mask_secrets(text) == masked and SECRET not in mask_secrets(text)
    assert mask_secrets("sqlite:///a.db and 3 trials") == "sqlite:///a.db and 3 trials"


def test_a_lock_records_the_process_not_its_command_line(tmp_path):
    path = tmp_path / "t.csv"
    code = ("import sys, time; from hwnas.tables import table_lock\n"
            f"with table_lock({str(path)!r}):\n"
            "    print('locked', flush=True); time.sleep(30)\n")
    process = subprocess.Popen([sys.executable, "-c", code, "--storage", URL],
                               stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().strip() == "locked"
        lock = tmp_path / "t.csv.lock"
        text = lock.read_text()
        assert text.startswith(f"process {process.pid} on ") and "started" in text
        assert SECRET not in text and "--storage" not in text
        assert lock.stat().st_mode & 0o777 in (0o600, 0o644)
    finally:
        process.kill()
        process.wait()


def test_no_secret_in_stdout_stderr_json_or_the_cache_record(files, tmp_path):
    run = hwnas("search", "--space", "nb201", "--predictor", files / "lookup.json",
                "--budget-ms", "1e9", "--trials", "2", "--no-verify", "--quiet",
                "--storage", URL + f"?password={SECRET}")
    one_line(run, "postgresql://me:***@127.0.0.1:1/none")
    assert SECRET not in run.stdout + run.stderr
    # an objective whose error quotes a URL: its note reaches stdout and the result JSON
    (tmp_path / "leaky.py").write_text(
        f"def leaky(arch):\n    raise RuntimeError('cannot reach {URL}')\n")
    run = hwnas("search", "--space", "nb201", "--predictor", files / "lookup.json",
                "--budget-ms", "1e9", "--trials", "3", "--no-verify", "--quiet",
                "--objective", "leaky:leaky", "--json", tmp_path / "r.json", cwd=tmp_path)
    assert SECRET not in run.stdout + run.stderr, run.stdout + run.stderr
    if (tmp_path / "r.json").exists():
        assert SECRET not in (tmp_path / "r.json").read_text()
    # an uncaught error's traceback is masked too
    err = subprocess.run([sys.executable, "-c", "import sys\nfrom hwnas import _cli\n"
                          "def buggy(argv):\n"
                          f"    raise RuntimeError('boom at {URL}')\n"
                          "sys.exit(_cli.run(buggy, 'x'))\n"],
                         capture_output=True, text=True)
    assert err.returncode == _cli.EXIT_BUG and "boom at postgresql://me:***@" in err.stderr
    assert SECRET not in err.stderr
    from hwnas.profile._cache import record_status
    record_status(tmp_path, {"layers.csv": {"protocol": {"runs": 3}}})
    assert SECRET not in (tmp_path / "measured.json").read_text()
    assert oct((tmp_path / "measured.json").stat().st_mode & 0o777) in ("0o644", "0o600")


# --- an output that names an input -----------------------------------------------------------

@pytest.mark.parametrize("command,args,output", [
    ("fit", ["--layers", "layers.csv", "--out", "layers.csv"], "layers.csv"),
    ("fit", ["--model", "additive", "--networks", "nets.csv", "--out", "./nets.csv"],
     "nets.csv"),
    ("fit", ["--layers", "layers.csv", "--calibrate-with", "nets.csv", "--out", "alias.csv"],
     "nets.csv"),
    ("evaluate", ["--predictor", "lookup.json", "--networks", "nets.csv", "--json",
                  "nets.csv"], "nets.csv"),
    ("evaluate", ["--predictor", "lookup.json", "--networks", "nets.csv", "--plot",
                  "lookup.json"], "lookup.json"),
    ("search", ["--predictor", "lookup.json", "--json", "lookup.json"], "lookup.json"),
    ("search", ["--space", "nb201", "--table", "layers.csv", "--plot", "layers.csv"],
     "layers.csv"),
])
def test_an_output_naming_an_input_is_refused_and_the_input_kept(files, command, args, output):
    os.symlink(files / "nets.csv", files / "alias.csv")  # another name for the same file
    before = digest(files / output)
    if command == "search":
        args = [*args, "--budget-ms", "1e9", "--trials", "2", "--no-verify", "--quiet"]
    run = hwnas(command, *args, cwd=files)
    one_line(run, "names the same file as", "destroy the input")
    assert digest(files / output) == before


# --- full and read-only disks ----------------------------------------------------------------

def _can_mount():
    if os.geteuid() != 0 or not sys.platform.startswith("linux"):
        return False
    probe = tempfile.mkdtemp(prefix="hwnas-mount-probe-")  # one per test process
    ok = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", probe],
                        capture_output=True).returncode == 0
    if ok and subprocess.run(["umount", probe], capture_output=True).returncode != 0:
        subprocess.run(["umount", "-l", probe], capture_output=True)  # busy: detach it
    shutil.rmtree(probe, ignore_errors=True)
    return ok


CAN_MOUNT = _can_mount()


@pytest.fixture
def tiny_disk(tmp_path):
    """A 64 KiB tmpfs (root only)."""
    if not CAN_MOUNT:
        pytest.skip("needs root and mount: the simulated full disk below runs instead")
    folder = tmp_path / "disk"
    folder.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(folder)], check=True)
    yield folder
    subprocess.run(["umount", "-l", str(folder)], check=True)


def _fill(folder):
    fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        for size in (4096, 1):
            try:
                while True:
                    os.write(fd, b"x" * size)
            except OSError as e:
                assert e.errno == errno.ENOSPC
    finally:
        os.close(fd)


def test_a_full_tmpfs_is_one_line_and_keeps_the_old_predictor(files, tiny_disk):
    out = tiny_disk / "p.json"
    out.write_bytes((files / "lookup.json").read_bytes())
    before = digest(out)
    _fill(tiny_disk)
    run = hwnas("fit", "--model", "tree", "--layers", files / "layers.csv", "--out", out)
    one_line(run, str(out), "No space left on device")
    assert digest(out) == before and no_temp_files(tiny_disk)
    # a table being appended to: the error names it, the rows before stay
    os.unlink(tiny_disk / "filler")
    writer = TableWriter(tiny_disk / "t.csv", LAYER_COLUMNS, "key", FP)
    layer = get_space("nb201").unique_layers()[0]
    _fill(tiny_disk)
    with pytest.raises(OSError) as error:
        for _ in range(10_000):
            writer.append({"key": layer.key, "op": layer.op, "macs": "1", "params": "1",
                           **Timing(1, 1, 1, 1, 1, 0).as_row()})
    writer.close()
    assert error.value.errno == errno.ENOSPC and error.value.filename == str(tiny_disk / "t.csv")


def test_a_simulated_full_disk_is_one_line_and_keeps_the_old_predictor(files):
    """Where no tmpfs can be mounted: a file-size limit makes every write past it fail (EFBIG),
    in a process of its own."""
    out = files / "p.json"
    out.write_text('{"old": true}\n')
    code = textwrap.dedent(f"""
        import resource, signal, sys
        from hwnas import _cli, fit
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (300, {resource.RLIM_INFINITY}))
        sys.exit(_cli.run(fit.main, "fit", ["--layers", {str(files / "layers.csv")!r},
                                            "--out", {str(out)!r}]))
    """)
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    one_line(run, str(out), "File too large")
    assert out.read_text() == '{"old": true}\n' and no_temp_files(files)


@pytest.fixture
def read_only_folder(tmp_path):
    """A folder with a complete layer table and cache record that this process cannot write:
    a read-only tmpfs where root can mount one, else a folder without write permission."""
    folder = tmp_path / "ro"
    folder.mkdir()
    if CAN_MOUNT:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(folder)],
                       check=True)
    write_table(folder / "layers.csv", get_space("nb201").unique_layers())
    (folder / "measured.json").write_text(json.dumps({"layers.csv": {"good": True,
                                                                     "rows": 3}}))
    for lock in folder.glob("*.lock"):
        lock.unlink()
    if CAN_MOUNT:
        subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)
    elif os.geteuid() != 0:
        folder.chmod(0o555)
    else:
        pytest.skip("root without mount cannot make a read-only folder")
    yield folder
    if CAN_MOUNT:
        subprocess.run(["umount", "-l", str(folder)], check=True)
    else:
        folder.chmod(0o755)


def test_a_complete_read_only_cache_is_read_without_locks(read_only_folder):
    folder = read_only_folder
    keys = {layer.key for layer in get_space("nb201").unique_layers()}
    writer = TableWriter(folder / "layers.csv", LAYER_COLUMNS, "key", FP)
    assert writer.done == keys  # nothing to measure: nothing needs writing
    writer.close()
    with table_lock(folder / "layers.csv", shared=True):
        assert set(read_layer_table(folder / "layers.csv").timings) == keys
    assert read_cache_status(folder) == {"layers.csv": {"good": True, "rows": 3}}
    assert not list(folder.glob("*.lock"))


def test_an_output_on_a_read_only_disk_is_one_line(files, read_only_folder):
    run = hwnas("fit", "--layers", files / "layers.csv", "--out", read_only_folder / "p.json")
    one_line(run, str(read_only_folder / "p.json"))
    assert not (read_only_folder / "p.json").exists()


# --- bounded readers ---------------------------------------------------------------------------

BOMB = "\n".join(["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"] +
                 [f"{n}: &{n} [{', '.join(['*' + p] * 9)}]"
                  for p, n in zip("abcdefgh", "bcdefghi")])


def test_a_yaml_alias_bomb_is_refused_at_once(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(BOMB + "\n")
    assert len(BOMB) < 600
    start = time.monotonic()
    run = hwnas("fit", "--model", "additive", "--networks", tmp_path / "n.csv", "--space", path,
                "--out", tmp_path / "p.json")
    one_line(run, "bomb.yaml", "YAML alias")
    assert time.monotonic() - start < 5


@pytest.mark.parametrize("where", ["space.yaml", "space.json", "predictor", "table", "result",
                                   "option"])
def test_a_5000_digit_integer_is_one_line(files, where):
    huge = "9" * 5000
    if where.startswith("space"):
        path = files / where
        text = (f"name: tiny\ninput_shape: [3, 8, {huge}]\ndecisions: [{{name: a, choices: "
                f"{{skip: []}}}}]\n") if where.endswith("yaml") else \
            f'{{"name": "tiny", "input_shape": [3, 8, {huge}], "decisions": []}}'
        path.write_text(text)
        run = hwnas("fit", "--model", "additive", "--networks", files / "nets.csv", "--space",
                    path, "--out", files / "p.json")
    elif where == "predictor":
        doc = json.loads((files / "lookup.json").read_text())
        (files / "lookup.json").write_text(json.dumps(doc).replace('"version": 1',
                                                                    f'"version": {huge}'))
        run = hwnas("evaluate", "--predictor", files / "lookup.json", "--networks",
                    files / "nets.csv")
    elif where == "table":
        set_cell(files / "layers.csv", 2, "runs", huge)
        run = hwnas("fit", "--layers", files / "layers.csv", "--out", files / "p.json")
    elif where == "result":  # the z of a search result, to measure or export
        (files / "r.json").write_text(f'{{"best": [{{"z": [0, 1, 2, 3, 4, {huge}]}}]}}')
        run = hwnas("profile", "--space", "nb201", "--from", files / "r.json", "--export",
                    files / "export")
        assert not (files / "export").exists()
    else:
        run = hwnas("search", "--space", "nb201", "--table", files / "layers.csv",
                    "--budget-ms", "1", "--trials", huge)
        assert run.returncode == 2 and "is not an integer" in run.stderr
        return
    one_line(run, "5000 digits")
    assert not (files / "p.json").exists()


def test_special_files_fail_fast(files, tmp_path):
    fifo = tmp_path / "fifo.csv"
    os.mkfifo(fifo)
    for source in ["/dev/zero", str(fifo), str(tmp_path)]:
        start = time.monotonic()
        run = hwnas("fit", "--layers", source, "--out", tmp_path / "p.json")
        one_line(run, source)
        assert time.monotonic() - start < 5
    run = hwnas("evaluate", "--predictor", "/dev/zero", "--networks", files / "nets.csv")
    one_line(run, "/dev/zero", "not a regular file")


@pytest.mark.parametrize("record", ["[]", '{"layers.csv": 3}', '{"layers.csv": {"rows": "x"}}',
                                    '{"layers.csv": {"good": "yes"}}', "{"])
def test_a_cache_record_of_the_wrong_shape_is_one_error_naming_it(tmp_path, record):
    (tmp_path / "measured.json").write_text(record)
    with pytest.raises(InputError, match="measured.json"):
        read_cache_status(tmp_path)


@pytest.mark.parametrize("value,message", [("0_15", "not a number"), ("١٥", "not a number"),
                                           ("1e308x", "not a number")])
def test_numbers_are_parsed_strictly(files, value, message):
    if value != "1e308x":
        assert float(value) == 15  # what Python alone accepts
    set_cell(files / "layers.csv", 2, "latency_ms", value)
    run = hwnas("fit", "--layers", files / "layers.csv", "--out", files / "p.json")
    one_line(run, "layers.csv, line 2, column 'latency_ms'", message)
    for bad in ["0_15", "١٥", " ", "1.5.2", "0x10"]:
        with pytest.raises(ValueError):
            parse_float(bad)
    with pytest.raises(ValueError):
        parse_int("1_000")
    assert parse_float(" 1.5e-3 ") == 1.5e-3 and parse_int("-12") == -12


def test_a_layer_key_padded_with_blanks_is_refused(files):
    key = read_layer_table(files / "layers.csv").layers()[0].key
    set_cell(files / "layers.csv", 2, "key", f" {key}")
    run = hwnas("fit", "--layers", files / "layers.csv", "--out", files / "p.json")
    one_line(run, "line 2, column 'key'", "blanks around it")


def test_fit_on_1e308_ms_refuses_what_it_could_not_save(tmp_path):
    space = get_space("nb201")
    with TableWriter(tmp_path / "huge.csv", NETWORK_COLUMNS, "z", FP) as w:
        for z in space.design(12, seed=0):
            w.append({"space": "nb201", "z": format_z(z),
                      **Timing(1e308, 1e308, 1e308, 1e308, 5, 0.0).as_row()})
    for model in ["additive", "additive_features"]:
        run = hwnas("fit", "--model", model, "--networks", tmp_path / "huge.csv", "--out",
                    tmp_path / "p.json")
        one_line(run, "p.json: not written", "is inf")
        assert not (tmp_path / "p.json").exists()


def test_a_target_column_with_zeros_is_refused_not_nan(files):
    lines = (files / "nets.csv").read_text().splitlines()
    lines[0] += ",energy_mj"
    lines[1:] = [line + (",0" if i == 0 else ",1.5") for i, line in enumerate(lines[1:])]
    (files / "nets.csv").write_text("\n".join(lines) + "\n")
    run = hwnas("evaluate", "--predictor", files / "lookup.json", "--networks",
                files / "nets.csv", "--target", "energy_mj", "--json", files / "m.json")
    one_line(run, "nets.csv: column 'energy_mj' is 0", "undefined")
    assert not (files / "m.json").exists()


def test_a_resumed_table_with_a_bad_row_fails_before_anything_is_appended(files):
    set_cell(files / "layers.csv", 3, "latency_ms", "-1")
    before = digest(files / "layers.csv")
    with pytest.raises(TableError, match="line 3, column 'latency_ms'"):
        TableWriter(files / "layers.csv", LAYER_COLUMNS, "key", FP)
    assert digest(files / "layers.csv") == before


@pytest.mark.parametrize("kind", ["additive_fixed", "additive_C", "tree"])
def test_a_predictor_with_negative_costs_is_refused(files, tmp_path, kind):
    space = get_space("nb201")
    if kind == "tree":
        TreePredictor(n_estimators=3).fit_table(read_layer_table(files / "layers.csv")).save(
            tmp_path / "p.json")
        doc = json.loads((tmp_path / "p.json").read_text())
        forest = doc["state"]["forests"]["relu_conv_bn"]["trees"][0]
        import base64
        split = np.frombuffer(base64.b64decode(forest["split"]), "<f8").copy()
        leaf = np.frombuffer(base64.b64decode(forest["left"]), "<i4") < 0
        split[leaf] = -split[leaf]
        forest["split"] = base64.b64encode(split.tobytes()).decode()
    else:
        from hwnas.predictors import AdditivePredictor
        from hwnas.tables import read_network_table
        AdditivePredictor().fit_table(read_network_table(files / "nets.csv"), space).save(
            tmp_path / "p.json")
        doc = json.loads((tmp_path / "p.json").read_text())
        if kind == "additive_fixed":
            doc["state"]["fixed"] = -5.0
        else:
            doc["state"]["C"][0] = [-1.0 if v is not None else None for v in doc["state"]["C"][0]]
    (tmp_path / "p.json").write_text(json.dumps(doc))
    with pytest.raises(InputError, match="p.json: .*(>= 0|saved costs)"):
        load_predictor(tmp_path / "p.json")


# --- a tree predictor loads its trees ---------------------------------------------------------

def test_a_tree_predictor_loads_without_refitting_and_predicts_the_same(files, monkeypatch):
    layers = read_layer_table(files / "layers.csv")
    fitted = TreePredictor(n_estimators=20).fit_table(layers)
    fitted.save(files / "tree.json")
    from sklearn.ensemble import RandomForestRegressor

    def no_refit(*args, **kwargs):
        raise AssertionError("a saved tree predictor was refitted on load")
    monkeypatch.setattr(RandomForestRegressor, "fit", no_refit)
    loaded = load_predictor(files / "tree.json")
    assert np.array_equal(
        loaded.predict_layers(layers.layers()), fitted.predict_layers(layers.layers()))
    assert np.array_equal(loaded.predict_members(layers.layers()),
                          fitted.predict_members(layers.layers()))


def test_the_forest_predicts_exactly_as_scikit_learn(files):
    from sklearn.ensemble import RandomForestRegressor

    from hwnas.predictors._regressors import Forest
    rng = np.random.default_rng(0)
    X, y = rng.random((300, 5)) * 1e3, rng.random(300)
    model = RandomForestRegressor(n_estimators=30, random_state=0).fit(X, y)
    forest = Forest.from_dict(json.loads(json.dumps(Forest.from_sklearn(model).to_dict())), 30,
                              "forest")
    probe = rng.random((500, 5)) * 1e3
    assert np.array_equal(forest.predict(probe), model.predict(probe))


# --- workers ---------------------------------------------------------------------------------

def _search_process(files, tmp_path, objective_code, *extra):
    (tmp_path / "objective.py").write_text(textwrap.dedent(objective_code))
    return subprocess.Popen(
        [sys.executable, "-m", "hwnas.search", "--space", "nb201", "--predictor",
         str(files / "lookup.json"), "--budget-ms", "1e9", "--trials", "400", "--objective",
         "objective:f", "--no-verify", "--quiet", "--workers", "2", "--study-name", "w",
         "--json", str(tmp_path / "r.json"), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
        env={**os.environ, "TEST_PID": str(os.getpid()),
             "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])})


def _wait_for(path, seconds=60):
    for _ in range(int(seconds / 0.05)):
        if path.exists() and path.read_text().strip():
            return
        time.sleep(0.05)
    raise AssertionError(f"{path} never appeared")


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead: only its parent's wait is missing
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


WORKER_PID = """
    import os, pathlib, time
    def f(arch):
        if os.getppid() != int(os.environ["TEST_PID"]):  # a worker: the search's child
            pathlib.Path("worker.pid").write_text(str(os.getpid()))
            time.sleep(3600)
        time.sleep(0.05)
        return float(arch.macs)
"""


def test_workers_die_with_their_parent(files, tmp_path):
    process = _search_process(files, tmp_path, WORKER_PID)
    try:
        _wait_for(tmp_path / "worker.pid")
        worker = int((tmp_path / "worker.pid").read_text())
        assert _alive(worker)
        process.kill()  # SIGKILL: no finally runs in the parent
        process.wait(timeout=30)
        for _ in range(100):
            if not _alive(worker):
                break
            time.sleep(0.05)
        assert not _alive(worker), "the worker outlived its parent"
    finally:
        process.kill()
        process.wait()


def test_ctrl_c_ends_a_search_whose_worker_hangs_within_seconds(files, tmp_path):
    process = _search_process(files, tmp_path, WORKER_PID)
    try:
        _wait_for(tmp_path / "worker.pid")
        worker = int((tmp_path / "worker.pid").read_text())
        start = time.monotonic()
        process.send_signal(signal.SIGINT)  # to the parent only: it must stop its workers
        _, err = process.communicate(timeout=60)
        assert time.monotonic() - start < 15
        assert process.returncode == 130, err
        assert "interrupted" in err and "kept in" in err and "--study-name w" in err
        assert not _alive(worker)
    finally:
        process.kill()
        process.wait()


def test_a_worker_killed_by_a_signal_is_reported_as_such(files, tmp_path):
    process = _search_process(files, tmp_path, """
        import os, signal, time
        def f(arch):
            if os.getppid() != int(os.environ["TEST_PID"]):
                os.kill(os.getpid(), signal.SIGKILL)
            time.sleep(0.01)
            return float(arch.macs)
    """, "--trials", "40")
    _, err = process.communicate(timeout=300)
    assert process.returncode == 2, err
    assert "worker 1" in err and "died (signal 9, SIGKILL)" in err and "bug" not in err


def test_an_objective_calling_sys_exit_fails_its_trial_only(files):
    space = get_space("nb201")
    predictor = load_predictor(files / "lookup.json")

    def exits(arch):
        if arch.z[0] == 0:
            sys.exit(3)
        return float(arch.macs)
    result = run_study(space, predictor, 1e9, exits, n_trials=30, seed=0)
    failed = [t for t in result.study.trials if t.state.name == "FAIL"]
    assert failed and all("SystemExit" in t.user_attrs["error"] for t in failed)
    assert result.best and all(c.z[0] != 0 for c in result.best)


# --- contradicting options -------------------------------------------------------------------

def test_contradicting_options_are_refused(files, tmp_path):
    run = hwnas("search", "--space", "nb201", "--table", files / "layers.csv", "--budget-ms",
                "1e9", "--sampler", "exact", "--workers", "2", "--no-verify", "--quiet")
    one_line(run, "exact sampler", "--workers")
    run = hwnas("profile", "--space", "nb201", "--export", tmp_path / "d", "--out",
                tmp_path / "x.csv")
    one_line(run, "--export and --out contradict")
    assert not (tmp_path / "d").exists() and not (tmp_path / "x.csv").exists()
    run = hwnas("profile", "--space", "nb201", "--with-layers", "--out", tmp_path / "x.csv")
    one_line(run, "--with-layers")
