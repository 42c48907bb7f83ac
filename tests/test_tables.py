import math

import pytest
from helpers import FP, LAYERS, rows, set_cell, write_table

from hwnas.tables import (
    LAYER_COLUMNS,
    Fingerprint,
    TableError,
    TableWriter,
    read_layer_table,
    scale_table,
)


def test_round_trip(tmp_path):
    path = tmp_path / "t.csv"
    write_table(path)
    table = read_layer_table(path)
    assert table.fingerprint == FP
    assert table.layers() == LAYERS
    assert table.timings[LAYERS[1].key].latency_ms == pytest.approx(0.2)
    assert rows(path)[0] == list(LAYER_COLUMNS)


def test_scale_table_multiplies_every_duration_and_nothing_else(tmp_path):
    path, outside = tmp_path / "t.csv", tmp_path / "outside.csv"
    write_table(path)
    before = read_layer_table(path)
    scale_table(path, LAYER_COLUMNS, 0.8)
    after = read_layer_table(path)
    assert after.layers() == before.layers() and after.fingerprint == before.fingerprint
    for key, t in before.timings.items():
        u = after.timings[key]
        assert (u.latency_ms, u.p10_ms, u.min_ms, u.p90_ms, u.median_ms, u.noise_ms) == \
            pytest.approx((0.8 * t.latency_ms, 0.8 * t.p10_ms, 0.8 * t.min_ms, 0.8 * t.p90_ms,
                           0.8 * t.median_ms, 0.8 * t.noise_ms), nan_ok=True)
        assert (u.runs, u.round_spread) == (t.runs, t.round_spread)
    write_table(outside)
    path.unlink()
    path.symlink_to(outside)  # a planted link: refused, the file it names untouched
    text = outside.read_text()
    with pytest.raises(TableError, match="symbolic link: refused"):
        scale_table(path, LAYER_COLUMNS, 0.5)
    assert outside.read_text() == text


def test_resume_skips_done_rows_and_cuts_a_half_written_line(tmp_path):
    path = tmp_path / "t.csv"
    write_table(path, LAYERS[:2])
    with open(path, "a") as f:
        f.write(LAYERS[2].key + ",linear,12")  # a row cut short by a killed process
    with TableWriter(path, LAYER_COLUMNS, "key", FP) as w:
        assert w.done == {LAYERS[0].key, LAYERS[1].key}
    assert len(rows(path)) == 3 and read_layer_table(path).layers() == LAYERS[:2]


def test_resume_refuses_another_device(tmp_path):
    path = tmp_path / "t.csv"
    write_table(path)
    other = Fingerprint("nnabla", "1.39.0", "cudnn: H100", 1)
    with pytest.raises(TableError, match="line 2: measured on nnabla 1.39.0 on cpu: test"):
        TableWriter(path, LAYER_COLUMNS, "key", other)


@pytest.mark.parametrize("line, column, value, message", [
    (2, "latency_ms", "0", "line 2, column 'latency_ms': 0.0 ms is not a valid latency"),
    (3, "latency_ms", "nan", "line 3, column 'latency_ms': 'nan' is not finite"),
    (3, "p90_ms", "-1", "line 3, column 'p90_ms'"),
    (2, "latency_ms", "fast", "'fast' is not a number"),
    (4, "key", "conv(in=3x8x8)", "line 4, column 'key'"),
    (2, "op", "linear", "column 'op': 'linear' does not match the key's op 'conv'"),
    (3, "device", "cpu: other", "line 3: measured on .*cpu: other.*tables from two devices"),
    (2, "runs", "0", "column 'runs': must be >= 1"),
    (3, "round_spread", "-0.1", "column 'round_spread': must be >= 0"),
])
def test_bad_rows_name_file_line_and_column(tmp_path, line, column, value, message):
    path = tmp_path / "t.csv"
    write_table(path)
    set_cell(path, line, column, value)
    with pytest.raises(TableError, match=message) as e:
        read_layer_table(path)
    assert str(path) in str(e.value)


def test_duplicate_keys_with_different_values(tmp_path):
    path = tmp_path / "t.csv"
    write_table(path, LAYERS + LAYERS[:1])
    with pytest.raises(TableError, match="line 5, column 'key'.*appears twice"):
        read_layer_table(path)


def test_missing_column_and_empty_and_absent_table(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("key,op\n")
    with pytest.raises(TableError, match="line 1: missing column.*latency_ms"):
        read_layer_table(path)
    path.unlink()
    write_table(path, [])
    with pytest.raises(TableError, match="has no rows"):
        read_layer_table(path)
    with pytest.raises(TableError, match="cannot read the table"):
        read_layer_table(tmp_path / "absent.csv")


def write_networks(path, zs, space_name="nb201", extra_header="", extra_value=""):
    from hwnas.tables import NETWORK_COLUMNS
    header = ",".join(NETWORK_COLUMNS) + extra_header
    fp = ",".join(FP.as_row().values())
    lines = [header] + [f"{space_name},{z},1.5,1.4,1.6,1.3,5,0.01,1.5,0.01,{fp}{extra_value}"
                        for z in zs]
    path.write_text("\n".join(lines) + "\n")


ARCH = ("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|"
        "+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|")


def test_network_table_takes_z_or_arch_strings(tmp_path):
    from hwnas.tables import read_network_table
    path = tmp_path / "n.csv"
    write_networks(path, ["0-1-2-3-4-0", ARCH], extra_header=",energy_mj", extra_value=",2.5")
    table = read_network_table(path)
    assert table.z == ((0, 1, 2, 3, 4, 0), (3, 3, 4, 1, 3, 1))
    assert list(table.values("energy_mj")) == [2.5, 2.5]


@pytest.mark.parametrize("zs, space_name, extra, message", [
    (["0-1-2"], "nb201", ("", ""), "line 2, column 'z': space 'nb201': z must have 6 entries"),
    (["0-1-2-3-4-0", "0-1-2-3-4-9"], "nb201", ("", ""), r"line 3, column 'z'.*z\[5\] = 9"),
    (["|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|"], "nb201", ("", ""),
     "line 2, column 'z'.*unknown op 'conv'"),
    (["0-1"], "resnet", ("", ""), "line 2, column 'space': unknown space 'resnet'"),
    (["0-1-2-3-4-0"], "nb201", (",note", ",fast"), "column 'note': 'fast' is not a number"),
    (["0-1-2-3-4-0"], "nb201", (",energy_mj", ",inf"), "column 'energy_mj': 'inf' is not finite"),
])
def test_bad_network_rows(tmp_path, zs, space_name, extra, message):
    from hwnas.tables import read_network_table
    path = tmp_path / "n.csv"
    write_networks(path, zs, space_name, *extra)
    with pytest.raises(TableError, match=message) as e:
        read_network_table(path)
    assert str(path) in str(e.value)


def test_network_table_of_another_space(tmp_path):
    from hwnas.spaces import get_space
    from hwnas.tables import read_network_table
    path = tmp_path / "n.csv"
    write_networks(path, ["0-1-2-3-4-0"])
    with pytest.raises(TableError, match="'nb201' is not the space 'mobilenet'"):
        read_network_table(path, get_space("mobilenet"))


@pytest.mark.parametrize("column, value", [
    ("latency_ms", "0"), ("p10_ms", "-1"), ("min_ms", "inf"), ("p90_ms", "fast"), ("runs", "0"),
    ("runs", "1.5"), ("round_spread", "-0.1"), ("threads", "two"), ("batch", "nan"),
    ("device", "cpu: other"), ("dtype", "float16"),
])
def test_layer_and_network_rows_are_checked_alike(tmp_path, column, value):
    """One parser of the timing and fingerprint columns: a bad value gets the same message in
    a layer table and in a network table."""
    from hwnas.tables import read_network_table
    layers, networks = tmp_path / "l.csv", tmp_path / "n.csv"
    write_table(layers)
    write_networks(networks, ["0-1-2-3-4-0", "1-1-2-3-4-0"])
    messages = []
    for path, read in ((layers, read_layer_table), (networks, read_network_table)):
        set_cell(path, 3, column, value)
        with pytest.raises(TableError) as e:
            read(path)
        messages.append(str(e.value).replace(str(path), "<table>"))
    assert messages[0] == messages[1]
    assert messages[0].startswith("<table>, line 3")


def test_blank_columns_are_required_in_layer_tables_and_unknown_in_network_tables(tmp_path):
    from hwnas.tables import UNKNOWN_FINGERPRINT, read_network_table
    layers, networks = tmp_path / "l.csv", tmp_path / "n.csv"
    write_table(layers)
    write_networks(networks, ["0-1-2-3-4-0"])
    for column in ("p10_ms", "runs", "threads", "device"):
        set_cell(layers, 2, column, "")
        set_cell(networks, 2, column, "")
    with pytest.raises(TableError, match=r"line 2, column 'p10_ms': '' is not a number"):
        read_layer_table(layers)
    table = read_network_table(networks)
    assert math.isnan(table.timings[0].p10_ms) and table.timings[0].runs == 0
    assert table.timings[0].latency_ms == 1.5
    assert table.fingerprint == Fingerprint("nnabla", "1.39.0", "unnamed (n.csv)",
                                            UNKNOWN_FINGERPRINT["threads"])
    assert read_network_table(networks, device="board").fingerprint.device == "board"


def test_fingerprint_from_row_with_defaults():
    row = {**FP.as_row(), "threads": " ", "device": ""}
    assert Fingerprint.from_row(row, {"threads": 4, "device": "board"}) == \
        Fingerprint("nnabla", "1.39.0", "board", 4)
    assert Fingerprint.from_row(FP.as_row()) == FP
    with pytest.raises(ValueError, match="column 'threads': ' ' is not a number"):
        Fingerprint.from_row(row)
    with pytest.raises(KeyError):
        Fingerprint.from_row({"backend": "nnabla"})
