"""Fuzzing the commands with mutated tables, space files and predictor files (seeded).

Each case spoils one valid file (byte flips, truncation, deleted or duplicated columns and
keys, swapped values, huge numbers, NaN, empty files, ...) and runs a real command on it: in
process through ``hwnas._cli.run`` (what the command line runs, see helpers.hwnas) for speed,
and a case per command and kind of input as ``python -m hwnas.<cmd>``. Every case must end
with exit status 0 or 2 (1 only for search's "no architecture meets the budget"), never with a
traceback (a bug), and every input stays byte for byte as it was."""

import json
import math
import os
import random
import subprocess
import sys
from collections import Counter

import pytest
import yaml
from helpers import SPACE_YAML, digest, hwnas, network_table, write_table

from hwnas.predictors import AdditivePredictor, CalibratedPredictor, LookupPredictor
from hwnas.spaces import get_space, load_space
from hwnas.tables import (
    read_layer_table,
)

#: more cases or another seed: HWNAS_FUZZ_CASES=5000 HWNAS_FUZZ_SEED=1 pytest <this file>
CASES = int(os.environ.get("HWNAS_FUZZ_CASES", 300))
SEED = int(os.environ.get("HWNAS_FUZZ_SEED", 14))
ODD_VALUES = ["nan", "NaN", "inf", "-inf", "1e400", "-1", "0", "1" + "0" * 30, "", "x", "1.5",
              "true", "\0", "9" * 5000, "-0", "2147483648"]
DEEP = "deeply nested"
ODD_OBJECTS = [None, float("nan"), float("inf"), -1, 0, 10**30, 1e308, "16", True, [], {},
               1.5, "", [[[[1]]]], {"op": "conv"}, -1.5]


@pytest.fixture(scope="module")
def valid(tmp_path_factory):
    """Valid inputs of each kind: the files to spoil, and the files each command also reads."""
    folder = tmp_path_factory.mktemp("valid")
    space = get_space("nb201")
    write_table(folder / "layers.csv", space.unique_layers())
    lookup = LookupPredictor().fit_table(read_layer_table(folder / "layers.csv"))
    Z = space.design(12)
    nets = network_table(folder / "nets.csv", space, Z, 1.2 * lookup.predict_z(space, Z) + 0.3,
                         noise=0.01)
    lookup.save(folder / "lookup.json")
    CalibratedPredictor(lookup).fit_table(nets, space).save(folder / "calibrated.json")
    AdditivePredictor().fit_table(nets, space).save(folder / "additive.json")
    (folder / "space.yaml").write_text(SPACE_YAML)
    (folder / "space.json").write_text(json.dumps(yaml.safe_load(SPACE_YAML), indent=1))
    write_table(folder / "tiny_layers.csv", load_space(str(folder / "space.yaml"))
                 .unique_layers())
    return folder


# --- mutations -------------------------------------------------------------------------------

def byte_mutation(rng, data: bytes) -> bytes:
    kind = rng.choice(["flip", "truncate", "delete", "insert", "empty", "nul", "latin1",
                       "duplicate_line", "bom"])
    n = len(data)
    i = rng.randrange(max(n, 1))
    if kind == "flip" and n:
        return data[:i] + bytes([data[i] ^ (1 << rng.randrange(8))]) + data[i + 1:]
    if kind == "truncate":
        return data[:i]
    if kind == "delete":
        return data[:i] + data[i + rng.randrange(1, 40):]
    if kind == "insert":
        return data[:i] + rng.choice([b",", b"\n", b'"', b"{", b"]", b":", b"-", b"\r"]) + \
            data[i:]
    if kind == "empty":
        return b""
    if kind == "nul":
        return data[:i] + b"\0" + data[i:]
    if kind == "latin1":
        return data[:i] + b"\xe9\xff" + data[i:]
    if kind == "duplicate_line":
        lines = data.split(b"\n")
        j = rng.randrange(len(lines))
        return b"\n".join(lines[:j + 1] + lines[j:])
    return b"\xef\xbb\xbf" + data  # a BOM: must still be read


def csv_mutation(rng, data: bytes) -> bytes:
    rows = [line.split(",") for line in data.decode().rstrip("\n").split("\n")]
    width = len(rows[0])
    kind = rng.choice(["delete_column", "duplicate_column", "swap_values", "odd_value",
                       "rename_column", "delete_rows", "shuffle_rows", "huge_field",
                       "swap_columns"])
    c, c2 = rng.randrange(width), rng.randrange(width)
    r = rng.randrange(1, len(rows))
    if kind == "delete_column":
        rows = [row[:c] + row[c + 1:] for row in rows]
    elif kind == "duplicate_column":
        rows = [row + [row[c]] for row in rows]
    elif kind == "swap_values":
        rows[r][c], rows[r][c2] = rows[r][c2], rows[r][c]
    elif kind == "odd_value":
        rows[r][c] = rng.choice(ODD_VALUES)
    elif kind == "rename_column":
        rows[0][c] = rng.choice([rows[0][c2], rows[0][c].upper(), " " + rows[0][c], ""])
    elif kind == "delete_rows":
        rows = rows[:1] + rows[1:][rng.randrange(len(rows)):]
    elif kind == "shuffle_rows":
        body = rows[1:]
        rng.shuffle(body)
        rows = rows[:1] + body
    elif kind == "huge_field":
        rows[r][c] = "7" * 140_000
    else:
        rows[0][c], rows[0][c2] = rows[0][c2], rows[0][c]
    return ("\n".join(",".join(row) for row in rows) + "\n").encode()


def _paths(doc, path=()):
    yield path
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _paths(v, path + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from _paths(v, path + (i,))


def doc_mutation(rng, doc):
    """The document with one node replaced, deleted, or nested deeply."""
    paths = [p for p in _paths(doc) if p]
    path = rng.choice(paths)
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    kind = rng.choice(["replace", "replace", "replace", "delete", "deep"])
    if kind == "delete":
        del parent[path[-1]]
    elif kind == "deep":
        parent[path[-1]] = DEEP  # replaced by 3,000 nested lists once written
    else:
        parent[path[-1]] = rng.choice(ODD_OBJECTS)
    return doc


def mutate(rng, name: str, data: bytes) -> tuple[str, bytes]:
    """(what was done, the spoiled bytes)."""
    choice = rng.random()
    if choice < 0.35:
        return "bytes", byte_mutation(rng, data)
    if name.endswith(".csv"):
        return "csv", csv_mutation(rng, data)
    doc = yaml.safe_load(data) if name.endswith(".yaml") else json.loads(data)
    doc = doc_mutation(rng, doc)
    text = yaml.safe_dump(doc) if name.endswith(".yaml") else json.dumps(doc)
    return name.rsplit(".")[-1], text.replace(json.dumps(DEEP), "[" * 3000 + "]" * 3000) \
        .replace(DEEP, "[" * 3000 + "]" * 3000).encode()


# --- the commands ----------------------------------------------------------------------------

def command(name: str, bad: str, valid, out) -> list:
    """The command (module, argv) that reads the spoiled copy of ``name``."""
    v = lambda f: str(valid / f)  # noqa: E731
    search = ["--budget-ms", "50", "--trials", "4", "--sampler", "random", "--seed", "0",
              "--quiet", "--json", str(out / "r.json")]
    return {
        "layers.csv": ("fit", ["--model", "lookup", "--layers", bad, "--calibrate-with",
                               v("nets.csv"), "--out", str(out / "p.json")]),
        "nets.csv": ("evaluate", ["--predictor", v("calibrated.json"), "--networks", bad,
                                  "--json", str(out / "m.json")]),
        "lookup.json": ("search", ["--space", "nb201", "--predictor", bad] + search),
        "calibrated.json": ("search", ["--space", "nb201", "--predictor", bad] + search),
        "additive.json": ("evaluate", ["--predictor", bad, "--networks", v("nets.csv")]),
        "space.yaml": ("search", ["--space", bad, "--table", v("tiny_layers.csv")] + search),
        "space.json": ("search", ["--space", bad, "--table", v("tiny_layers.csv")] + search),
    }[name]


def fuzz_case(rng, case: int, name: str, valid, tmp_path):
    """A mutation of the valid file ``name`` written as its own file, an empty output folder,
    and the command that reads it: (kind, data, path, out, module, argv)."""
    kind, data = mutate(rng, name, (valid / name).read_bytes())
    bad = tmp_path / f"case{case}-{name}"
    bad.write_bytes(data)
    out = tmp_path / f"out{case}"
    out.mkdir()
    return (kind, data, bad, out, *command(name, str(bad), valid, out))


def check_outcome(status, err: str, data: bytes, bad, out, what: str) -> None:
    """Status 0 or 2 (1 only for search's "no architecture meets the budget"), never a
    traceback; a refusal is one line and writes nothing; the input is unchanged."""
    what = f"{what}\n{err[:2000]}"
    assert "Traceback" not in err, what
    assert status in (0, 2) or (status == 1 and "no architecture meets the budget" in err), what
    if status == 2:
        assert len(err.strip().splitlines()) == 1, what
        assert not os.listdir(out), what  # a refused input writes nothing
    assert bad.read_bytes() == data, what


NAMES = ["layers.csv", "nets.csv", "lookup.json", "calibrated.json", "additive.json",
         "space.yaml", "space.json"]


def run_case(case: int, valid, tmp_path) -> int:
    """Fuzz case ``case`` (its own seeded mutation of one file, the files in turn) run in
    process and checked by check_outcome; its exit status."""
    name = NAMES[case % len(NAMES)]
    kind, data, bad, out, module, argv = fuzz_case(random.Random(f"{SEED}:{case}"), case, name,
                                                    valid, tmp_path)
    run = hwnas(module, *argv)
    check_outcome(run.returncode, run.stderr, data, bad, out,
                  f"case {case} ({kind} on {name}): {module} {' '.join(argv)[:300]}")
    return run.returncode


@pytest.fixture(scope="module")
def statuses(tmp_path_factory):
    """The folder where each case records its exit status: the run's, shared by xdist
    workers, so that the last test can count every case's."""
    base = tmp_path_factory.getbasetemp()
    folder = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "fuzz-status"
    folder.mkdir(exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """One folder for every case's files (named by case): a folder per test costs more than
    the command it runs."""
    return tmp_path_factory.mktemp("fuzz")


@pytest.fixture
def no_debug(monkeypatch):
    monkeypatch.delenv("HWNAS_DEBUG", raising=False)  # a traceback only for a bug


@pytest.mark.parametrize("case", range(CASES),
                         ids=lambda case: f"{case}-{NAMES[case % len(NAMES)]}")
def test_a_fuzzed_input_ends_in_status_0_or_2_and_stays_unchanged(case, valid, statuses, work,
                                                                    no_debug):
    originals = {p: digest(valid / p) for p in os.listdir(valid)}
    status = run_case(case, valid, work)
    assert {p: digest(valid / p) for p in os.listdir(valid)} == originals
    (statuses / f"{SEED}-{case}.new").write_text(str(status))
    os.replace(statuses / f"{SEED}-{case}.new", statuses / f"{SEED}-{case}")  # read whole


def test_the_fuzz_spoils_inputs_but_not_always(valid, statuses, work, no_debug):
    """Over all cases, more than a third are refused and some accepted; a case no test has
    run yet (run alone, or by another xdist worker that has not got there) is run here."""
    counts = Counter()
    for case in range(CASES):
        recorded = statuses / f"{SEED}-{case}"
        counts[int(recorded.read_text()) if recorded.exists() else
               run_case(case, valid, work)] += 1
    print(f"\nfuzz (seed {SEED}): {CASES} cases; statuses {dict(sorted(counts.items()))}")
    assert counts[2] > CASES / 3 and counts[0] > 0  # the mutations do spoil, not always


def test_fuzzed_inputs_through_the_real_command_line(valid, tmp_path):
    rng = random.Random(140)
    # fit, evaluate, search with a predictor file and with a space file
    names = ["layers.csv", "nets.csv", "calibrated.json", "space.yaml"]
    for case, name in enumerate(names):
        kind, data, bad, out, module, argv = fuzz_case(rng, case, name, valid, tmp_path)
        run = subprocess.run([sys.executable, "-m", f"hwnas.{module}", *argv],
                             capture_output=True, text=True)
        check_outcome(run.returncode, run.stderr, data, bad, out,
                      f"case {case} ({kind} on {name})")


def test_odd_values_are_finite_or_refused():
    """The fuzz's odd values include every number that broke a command once."""
    assert any(v in ("nan", "inf", "1e400") for v in ODD_VALUES)
    assert any(isinstance(v, float) and not math.isfinite(v) for v in ODD_OBJECTS)
