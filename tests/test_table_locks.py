"""Tables are safe to share: one writer at a time, foreign files untouched."""

import subprocess
import sys
from pathlib import Path

import pytest
from helpers import FP, LAYERS, write_table

from hwnas.tables import (
    LAYER_COLUMNS,
    NETWORK_COLUMNS,
    TableError,
    TableLockedError,
    TableWriter,
    Timing,
    read_layer_table,
    table_lock,
)


def hold_lock(path, seconds):
    """Another process that holds the table's lock for a while."""
    code = (f"import time; from hwnas.tables import table_lock\n"
            f"with table_lock({str(path)!r}):\n"
            f"    print('locked', flush=True); time.sleep({seconds})")
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "locked"
    return process


def test_a_second_writer_fails_after_its_wait_naming_the_other_process(tmp_path):
    path = tmp_path / "t.csv"
    write_table(path, LAYERS[:1])
    other = hold_lock(path, 30)
    try:
        with pytest.raises(TableLockedError, match=rf"t.csv: another process is writing it "
                                                   rf"\(process {other.pid} on .+, started "):
            TableWriter(path, LAYER_COLUMNS, "key", FP, wait_s=0.3)
    finally:
        other.kill()
        other.wait()
    assert len(read_layer_table(path).timings) == 1  # untouched


def test_a_second_writer_waits_then_sees_the_first_ones_rows(tmp_path):
    path = tmp_path / "t.csv"
    code = (f"import time, helpers as t\n"
            f"from hwnas.tables import TableWriter, LAYER_COLUMNS\n"
            f"with TableWriter({str(path)!r}, LAYER_COLUMNS, 'key', t.FP) as w:\n"
            f"    print('locked', flush=True); time.sleep(0.5)\n"
            f"    l = t.LAYERS[0]\n"
            f"    w.append(dict(key=l.key, op=l.op, macs=str(l.macs), params=str(l.params),\n"
            f"                  **t.Timing(0.1, 0.09, 0.12, 0.08, 10, 0.02).as_row()))\n")
    other = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                             cwd=str(Path(__file__).parent))
    assert other.stdout.readline().strip() == "locked"
    with TableWriter(path, LAYER_COLUMNS, "key", FP, wait_s=30) as w:
        assert w.done == {LAYERS[0].key}  # it waited for the other writer's row
    assert other.wait() == 0


@pytest.mark.parametrize("content", [b"l1\nl2", b"l1\nl2\n", b"key,op\n", b"\xff\xfe\n"])
def test_a_file_that_is_not_a_table_is_refused_and_left_as_it_is(tmp_path, content):
    path = tmp_path / "notes.txt"
    path.write_bytes(content)
    with pytest.raises(TableError, match=r"notes.txt, line 1: not a table of this kind"):
        TableWriter(path, LAYER_COLUMNS, "key", FP)
    assert path.read_bytes() == content
    assert not (tmp_path / "notes.txt.lock").exists()


def test_a_layer_table_is_not_resumed_as_a_network_table(tmp_path):
    path = tmp_path / "t.csv"
    write_table(path)
    before = path.read_bytes()
    with pytest.raises(TableError, match="expected the header 'space,z,"):
        TableWriter(path, NETWORK_COLUMNS, "z", FP)
    assert path.read_bytes() == before


def test_discard_existing_keeps_the_old_table_beside(tmp_path):
    path = tmp_path / "t.csv"
    write_table(path)
    before = path.read_bytes()
    with TableWriter(path, LAYER_COLUMNS, "key", FP, discard_existing=True) as w:
        assert w.done == set()
    assert (tmp_path / "t.csv.discarded").read_bytes() == before
    assert path.read_text().splitlines() == [",".join(LAYER_COLUMNS)]


def test_shared_locks_do_not_block_each_other_but_block_a_writer(tmp_path):
    path = tmp_path / "t.csv"
    with table_lock(path, shared=True) as first, \
            table_lock(path, shared=True, wait_s=0.2) as second:
        assert first.locked and second.locked
        with pytest.raises(TableLockedError, match="did not finish within 0.2 s"):
            table_lock(path, wait_s=0.2).__enter__()
    with table_lock(path, wait_s=0.2) as writer:  # both readers gone: the writer gets it
        assert writer.locked


def noisy_layer_table(path, layers, latency_ms, noise_ms):
    """A layer table whose rows have the given latency and noise (ms)."""
    with TableWriter(path, LAYER_COLUMNS, "key", FP) as w:
        for layer, ms, noise in zip(layers, latency_ms, noise_ms):
            w.append({"key": layer.key, "op": layer.op, "macs": str(layer.macs),
                      "params": str(layer.params),
                      **Timing(ms, ms, 2 * ms, ms, 10, noise / ms, ms + noise, noise).as_row()})


def test_noisy_table_quality_says_what_to_do(tmp_path):
    from hwnas.profile import table_quality
    path = tmp_path / "t.csv"
    # two of three rows moved by 90 % between rounds (measured while others ran)
    noisy_layer_table(path, LAYERS, [0.1] * 3, [0.001, 0.09, 0.09])
    q = table_quality(path)
    assert (q.rows, q.noisy_rows, q.good) == (3, 2, False)
    assert q.median_noise == pytest.approx(0.9) and q.prediction_noise > 0.5
    assert "2 of 3 rows" in q.warning() and "load average" in q.warning()
    assert "predictions move by" in q.warning() and "over 2 %" in q.warning()


def test_a_layer_table_is_judged_by_how_far_its_predictions_move(tmp_path):
    """Tiny noisy rows barely move the networks they sum into: the table is good for its
    space, though most rows are noisy."""
    from hwnas.profile import PREDICTION_NOISE, UNIT_NOISE, table_quality
    from hwnas.spaces import get_space
    space = get_space("nb201")
    fixed = {layer.key for layer in space.decode([0] * 6).layers}  # in every network: 6 ms
    layers = space.unique_layers()
    latency = [1.0 if ly.key in fixed else 0.0002 for ly in layers]
    noise = [0.001 if ly.key in fixed else 0.0001 for ly in layers]  # the cells' ops: 50 %
    path = tmp_path / "layers.csv"
    noisy_layer_table(path, layers, latency, noise)
    rows = table_quality(path)
    assert rows.noisy_rows == 12 and rows.prediction_noise > UNIT_NOISE and not rows.good
    q = table_quality(path, space)
    assert q.noisy_rows == 12 and q.prediction_noise < PREDICTION_NOISE and q.good
    assert q.warning() is None
