"""The shipped device catalogue: its tables, their predictors, and the commands that use them
offline (search, fit and evaluate with --device; python -m hwnas.devices)."""

import json

import numpy as np
import pytest
from helpers import hwnas
from scipy.stats import spearmanr

from hwnas.devices import (
    KINDS,
    UnknownDeviceError,
    device_matrix,
    device_predictor,
    list_devices,
    load_device,
)
from hwnas.predictors import AdditivePredictor, MeasuredPredictor, UnmeasuredError
from hwnas.spaces import get_space


def test_catalogue_lists_52_tables_with_kind_batch_source_and_range():
    devices = list_devices()
    assert len(devices) == 52
    assert len(list_devices("nb201")) == 21 and len(list_devices("fbnet")) == 22
    assert [d.name for d in list_devices("ofa")] == [
        "2080ti_1", "2080ti_32", "2080ti_64", "titan_xp_1", "titan_xp_32", "titan_xp_64",
        "v100_1", "v100_32", "v100_64"]
    assert {(d.kind, d.source, d.rows) for d in list_devices("ofa")} == {("GPU", "HELP", 5000)}
    assert {d.kind for d in devices} <= set(KINDS)
    by_name = {(d.space, d.name): d for d in devices}
    pixel3 = by_name["fbnet", "pixel3"]
    assert (pixel3.kind, pixel3.batch, pixel3.source) == ("phone", 1, "HW-NAS-Bench")
    assert by_name["nb201", "titanx_256"].batch == 256 and by_name["nb201", "titanx_256"].kind \
        == "GPU"
    assert by_name["fbnet", "gold_6240"].kind == "CPU"
    assert {d.name for d in devices if d.whole_ms} == {"essential_ph_1", "samsung_a50",
                                                        "samsung_s7"}
    for d in devices:
        latency = load_device(d.name, d.space).values()
        assert len(latency) == d.rows and latency.min() == d.min_ms and latency.max() == d.max_ms


def test_tables_cover_nb201_and_share_fbnets_networks():
    nb201 = device_matrix("nb201")
    assert len(nb201.z) == get_space("nb201").size == len(np.unique(nb201.z, axis=0))
    fbnet = device_matrix("fbnet")
    assert fbnet.latency_ms.shape == (22, 5000) and fbnet.z.shape == (5000, 22)
    assert np.isfinite(fbnet.latency_ms).all() and (fbnet.latency_ms > 0).all()
    table = load_device("pixel3", "fbnet")
    assert table.fingerprint.backend == "catalogue" and table.space == "fbnet"
    # the first row of the redistributed fbnet-pixel3.csv.gz, value for value
    row = table.z.index(get_space("fbnet").parse_z("7-8-1-8-4-8-8-8-7-4-1-4-7-3-2-7-3-2-4-2-4-5"))
    assert table.values()[row] == 17.55774545
    with pytest.raises(ValueError, match="read-only"):
        fbnet.latency_ms[0, 0] = 1.0


def test_an_unknown_or_ambiguous_name_is_one_clear_error():
    with pytest.raises(UnknownDeviceError, match="did you mean pixel3"):
        load_device("pixle3", "fbnet")
    with pytest.raises(ValueError, match=r"spaces fbnet, nb201: give the space \(--space\)"):
        load_device("pixel3")
    with pytest.raises(ValueError, match="no shipped device tables for space 'mobilenet'"):
        list_devices("mobilenet")
    assert load_device("titanx_256").space == "nb201"  # one space only: no --space needed


def test_nb201_predictor_is_the_measured_latency_and_fbnets_ranks_held_out_networks():
    space = get_space("nb201")
    exact = device_predictor("titan_rtx_1", "nb201")
    table = load_device("titan_rtx_1", "nb201")
    assert exact.kind == "measured" and exact.covers(space)
    assert np.array_equal(exact.predict_z(space, np.array(table.z)), table.values())
    fbnet = get_space("fbnet")
    partial = MeasuredPredictor().fit_table(table.select(range(10)), space)
    assert not partial.covers(space)
    with pytest.raises(UnmeasuredError, match="no network z"):
        partial.predict_z(space, [table.z[10]])
    nets = load_device("titan_rtx_1", "fbnet")
    rows = np.random.default_rng(0).permutation(5000)  # the table is sorted by z
    train, test = nets.select(rows[:4000]), nets.select(rows[4000:])
    held_out = AdditivePredictor().fit_table(train, fbnet).predict_z(fbnet, np.array(test.z))
    assert spearmanr(held_out, test.values())[0] > 0.95


def test_fbnet_predictor_is_cached_and_a_damaged_cache_is_refitted(tmp_path):
    space = get_space("fbnet")
    first = device_predictor("gold_6240", "fbnet")
    cached = list((tmp_path / "cache" / "devices").glob("fbnet-gold_6240-additive-*.json"))
    assert first.kind == "additive" and len(cached) == 1
    Z = space.random_z(20, seed=1)
    assert np.array_equal(device_predictor("gold_6240", space).predict_z(space, Z),
                          first.predict_z(space, Z))
    cached[0].write_text("{not json")
    assert np.allclose(device_predictor("gold_6240", "fbnet").predict_z(space, Z),
                       first.predict_z(space, Z))
    assert json.loads(cached[0].read_text())["kind"] == "additive"


def test_search_for_a_shipped_device_runs_offline_and_says_it_is_not_verified(tmp_path):
    out = tmp_path / "r.json"
    run = hwnas("search", "--space", "fbnet", "--device", "pixel3", "--budget-ms", "15",
                "--trials", "30", "--seed", "0", "--quiet", "--json", out)
    assert run.returncode == 0, run.stderr
    assert "pixel3 (phone, HW-NAS-Bench)" in run.stdout
    result = json.loads(out.read_text())
    assert result["verified"] is False
    assert "cannot be verified here" in result["verification"]["note"]
    assert 0 < result["best"][0]["predicted_latency_ms"] <= 15


def test_exact_search_on_nb201_is_the_true_optimum_of_the_measured_latencies(tmp_path):
    out = tmp_path / "r.json"
    run = hwnas("search", "--space", "nb201", "--device", "silver_4114", "--budget-ms", "10",
                "--sampler", "exact", "--top", "1", "--quiet", "--json", out)
    assert run.returncode == 0, run.stderr
    best = json.loads(out.read_text())["best"][0]
    space, table = get_space("nb201"), load_device("silver_4114", "nb201")
    Z, latency = np.array(table.z), table.values()
    macs = space.evaluate_z(Z, *space.cost_matrix(lambda ls: [ly.macs for ly in ls]))
    ok = latency <= 10
    assert best["macs"] == macs[ok].max()  # brute force over every measured cell
    row = table.z.index(tuple(best["z"]))
    assert best["predicted_latency_ms"] == pytest.approx(latency[row]) and latency[row] <= 10


def test_fit_and_evaluate_take_a_shipped_device(tmp_path):
    path = tmp_path / "p.json"
    run = hwnas("fit", "--model", "additive", "--device", "titanxp_1", "--space", "fbnet",
                "--out", path)
    assert run.returncode == 0, run.stderr
    assert "titanxp_1 (GPU, BRP-NAS LatBench)" in run.stdout
    run = hwnas("evaluate", "--predictor", path, "--device", "titanxp_1",
                "--json", tmp_path / "m.json")
    assert run.returncode == 0, run.stderr
    assert json.loads((tmp_path / "m.json").read_text())["spearman_rho"] > 0.95
    run = hwnas("fit", "--model", "additive", "--device", "pixel3", "--out", path)
    assert run.returncode == 2 and "give the space (--space)" in run.stderr
    run = hwnas("evaluate", "--predictor", path)
    assert run.returncode == 2 and "--networks CSV, or --device NAME" in run.stderr


def test_list_command_prints_every_table(capsys):
    from hwnas import _cli
    from hwnas.devices.__main__ import PROG, main
    assert _cli.run(main, PROG, ["--space", "nb201"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["name", "space", "kind", "batch", "source", "min_ms", "max_ms",
                                "rows"]
    assert len(lines) == 1 + 21 + 1 and "licence" in lines[-1]
    pixel3 = next(line for line in lines if line.startswith("pixel3 "))
    assert pixel3.split()[:4] == ["pixel3", "nb201", "phone", "1"]
    assert _cli.run(main, PROG, ["--space", "nope"]) == 2
