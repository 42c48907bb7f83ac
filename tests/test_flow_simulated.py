"""The default flow (profile, calibrate, search, verify) on a simulated device whose true
latencies and noise are known: its guarantees, checked deterministically by seed, whatever
the machine running the tests is doing."""

import csv
import dataclasses
import importlib
import json
from pathlib import Path

import numpy as np
import pytest
from helpers import hwnas

from hwnas._calibration import fit_line
from hwnas.errors import InputError
from hwnas.predictors import CalibratedPredictor, LookupPredictor
from hwnas.profile import (
    cache_report,
    device_tables,
    frontier_z,
    get_backend,
    read_cache_status,
    rebase,
)
from hwnas.profile._device_tables import FRONTIER_GRID, FRONTIER_NETWORKS
from hwnas.profile._simulated import NOISE
from hwnas.search import SearchSettings
from hwnas.search._verify import Verifier, calibrate
from hwnas.spaces import get_space
from hwnas.tables import read_network_table

SIM = ["--backend", "simulated", "--trials", "40", "--seed", "0", "--quiet"]


def run_flow(tmp_path, cache, *args):
    run = hwnas("search", "--budget-ms", "6", *SIM, "--json", tmp_path / "r.json", *args,
                env={"HWNAS_CACHE": cache})
    assert run.returncode == 0, run.stderr
    return run, json.loads((tmp_path / "r.json").read_text())


def true_ms(device_id, context, z):
    device = get_backend("simulated", context=context, device_id=device_id)
    return device.true_latency_ms(get_space("mobilenet").decode(z).graph)


def test_cold_then_warm_run_reuses_the_cache_and_verifies_in_one_round(tmp_path):
    """On the unloaded scale a warm run repeats the cold run's answer exactly (a budget at the
    median now moves with the machine's state: tests/test_latency.py)."""
    cache = tmp_path / "cache"
    first, doc = run_flow(tmp_path, cache, "--context", "quiet", "--latency", "unloaded")
    assert "measuring it again" not in first.stderr
    assert doc["verified"] is True and doc["verification"]["rounds"] == 1
    for b in doc["best"]:
        assert b["measured_latency_ms"] <= 6 and true_ms(0, "quiet", b["z"]) <= 6
    tables = sorted(cache.glob("simulated-*/*.csv"))
    contents = [t.read_text() for t in tables]
    assert all(r["good"] for r in read_cache_status(tables[0].parent).values())
    second, again = run_flow(tmp_path, cache, "--context", "quiet", "--latency", "unloaded")
    assert "measuring" not in second.stderr  # only the drift check timed anything
    assert [t.read_text() for t in tables] == contents  # the answers were cached already
    assert again["verification"]["rounds"] == 1
    assert [b["z"] for b in again["best"]] == [b["z"] for b in doc["best"]]


def test_the_same_seed_gives_the_same_answer_and_calibration(tmp_path):
    answers = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        _, doc = run_flow(tmp_path / name, tmp_path / name / "cache", "--device-id", "3")
        answers.append((doc["predictor"], [b["z"] for b in doc["best"]],
                        [b["measured_latency_ms"] for b in doc["best"]]))
    assert answers[0] == answers[1]


@pytest.mark.parametrize("context", sorted(NOISE))
@pytest.mark.parametrize("device_id", range(4))
def test_the_calibration_stays_inside_physics_under_any_noise(tmp_path, monkeypatch, context,
                                                              device_id):
    monkeypatch.setenv("HWNAS_CACHE", str(tmp_path))
    space, device = get_space("mobilenet"), get_backend("simulated", context=context,
                                                        device_id=device_id)
    layers, nets = device_tables(device, space, show_progress=False)
    predictor = calibrate(LookupPredictor().fit_table(layers), nets, space, device)
    low, high = device.calibration_slope
    measured = nets.values()
    assert low <= predictor.a_ <= high and 0 <= predictor.b_ < measured.min()
    z_min, least = space.min_z(*predictor.cost_matrix(space))
    assert tuple(z_min) in set(nets.z)  # the least-latency network was measured
    assert least >= measured[list(nets.z).index(tuple(z_min))] * (1 - 1e-9)
    assert (predictor.predict_z(space, space.random_z(500, 1)) > 0).all()
    # the simulated truth: a = 1 / alone, b = the overhead; noise only slows runs down
    assert predictor.a_ == pytest.approx(1 / device.alone, rel=0.1)
    truth = np.array([device.true_latency_ms(space.decode(z).graph)
                      for z in space.random_z(50, 2)])
    error = predictor.predict_z(space, space.random_z(50, 2)) / truth - 1
    # a process that runs slow throughout predicts slow (safe for a budget), never fast
    assert error.min() > -0.05
    if context == "quiet":
        assert np.abs(error).max() < 0.05


@pytest.mark.parametrize("scale, offset_ms, first", [
    (0.5, 0.0, "the calibration is off by"),
    (1.0, 10.0, "no architecture predicted within"),
])
def test_verify_corrects_a_wrong_calibration(tmp_path, monkeypatch, scale, offset_ms, first):
    monkeypatch.setenv("HWNAS_CACHE", str(tmp_path))
    space, device = get_space("mobilenet"), get_backend("simulated", context="cpu")
    layers, nets = device_tables(device, space, show_progress=False)
    right = calibrate(LookupPredictor().fit_table(layers), nets, space, device)
    wrong = another_line(right, scale, offset_ms, "wrong")
    lines: list[str] = []
    v = Verifier(space, SearchSettings(n_trials=40, seed=0), 6.0, backend=device,
                 calibration=nets, log=lines.append).run(wrong)
    assert lines == v.rounds and len(v.rounds) >= 2 and first in v.rounds[0]
    assert "recalibrated" in " ".join(v.rounds) and v.verified
    for c in v.result.best:
        assert v.measured_ms[c.z] <= 6.0 and device.true_latency_ms(
            space.decode(c.z).graph) <= 6.0
    assert v.result.budget_ms == 6.0
    assert low_error(v, space, device) < low_error_of(wrong, v, space, device)


def another_line(right, scale, offset_ms, how):
    """The calibrated predictor ``right`` with its line scaled by ``scale`` and moved up by
    ``offset_ms``: a wrong calibration of the same base and device."""
    line = CalibratedPredictor(right.base)
    line.a_, line.b_, line.how_ = right.a_ * scale, right.b_ * scale + offset_ms, how
    line.fingerprint_ = right.fingerprint_
    return line


def low_error(v, space, device):
    return low_error_of(v.predictor, v, space, device)


def low_error_of(predictor, v, space, device):
    z = v.result.best[0].z
    return abs(predictor.predict_z(space, [z])[0] / device.true_latency_ms(
        space.decode(z).graph) - 1)


def scale_rows(path, scale, which=None):
    """Multiply the latency_ms of the table's rows (``which``: those of these indices) by
    ``scale``."""
    with open(path, newline="") as f:
        header, *rows = list(csv.reader(f))
    col = header.index("latency_ms")
    for i, row in enumerate(rows):
        if which is None or i in which:
            row[col] = f"{float(row[col]) * scale:.6g}"
    with open(path, "w", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows([header, *rows])


@pytest.mark.parametrize("scale, most_only, outcome", [
    (1.2, False, "rebased"),  # measured in a slow state: the machine now runs 17 % faster
    (1.1, False, None),  # 9 % faster now: within the states of minutes references take out
    (0.7, False, None),  # 43 % slower now, a slow state: later batches go on the cache's scale
    (1.5, True, "measured"),  # the most latent network alone moved: not a state of the machine
])
def test_the_drift_check_rebases_a_cache_measured_in_a_slow_state(tmp_path, scale, most_only,
                                                                  outcome):
    cache = tmp_path / "cache"
    run_flow(tmp_path, cache, "--context", "quiet")
    folder = next(cache.glob("simulated-*"))
    nets, layers = next(folder.glob("networks-*.csv")), folder / "layers.csv"
    before = read_network_table(nets)
    latency = before.values()
    scale_rows(nets, scale, {int(np.argmax(latency))} if most_only else None)
    if not most_only:
        scale_rows(layers, scale)
    again, _ = run_flow(tmp_path, cache, "--context", "quiet")
    assert ("measured in a slow state" in again.stderr) == (outcome == "rebased")
    assert ("measuring it again" in again.stderr) == (outcome == "measured")
    if outcome == "rebased":  # back on the machine's scale, within its 1 % jitter
        after = read_network_table(nets)
        back = np.array([after.timings[after.z.index(z)].latency_ms for z in before.z])
        assert np.abs(back / latency - 1).max() < 0.04
        rebased_by = read_cache_status(folder)[nets.name]["rebased_by"]
        assert rebased_by == pytest.approx(1 / scale, rel=0.04)
        assert read_cache_status(folder)["layers.csv"]["rebased_by"] == rebased_by


def test_a_rebase_scales_both_tables_once_and_accumulates(tmp_path, monkeypatch):
    """``rebase`` multiplies every duration of both tables and records the product; a
    process that read the tables before another one rebased them does nothing (it saw
    another ``rebased_by``); a move within DRIFT_TOLERANCE is no rebase."""
    monkeypatch.setenv("HWNAS_CACHE", str(tmp_path))
    space, device = get_space("mobilenet"), get_backend("simulated", context="quiet")
    layers, nets = device_tables(device, space, show_progress=False)
    folder = Path(layers.path).parent
    paths = (Path(layers.path), Path(nets.path))
    assert rebase(paths, -0.2, "a test", seen=1.0)
    assert not rebase(paths, -0.2, "a test", seen=1.0)  # another process's: already done
    assert rebase(paths, -0.5, "a test", seen=0.8)
    assert not rebase(paths, -0.1, "a test", seen=0.4)  # within the tolerance
    status = read_cache_status(folder)
    assert [status[p.name]["rebased_by"] for p in paths] == pytest.approx([0.4, 0.4])
    assert cache_report(tmp_path).count("x0.400  good") == 2
    again, again_nets = device_tables(device, space, show_progress=False)
    assert again_nets.values() == pytest.approx(0.4 * nets.values(), rel=1e-5)
    assert [again.timings[k].latency_ms for k in layers.timings] == pytest.approx(
        [0.4 * t.latency_ms for t in layers.timings.values()], rel=1e-5)


def test_a_cluster_of_answers_near_the_budget_cannot_fix_the_slope():
    """The calibration networks span the space on true = 1.2 x + 1; twenty answers of earlier
    verifications, measured near 5 ms with 5 % noise, would tilt a Theil-Sen line fitted on
    every pair; only pairs far apart fix the slope, and the offset is fitted near the focus."""
    rng = np.random.default_rng(0)
    spread = np.linspace(1.0, 10.0, 12)
    cluster = rng.uniform(3.2, 3.5, 20)
    x = np.r_[spread, cluster]
    y = 1.2 * x + 1.0
    y[len(spread):] *= 1 + rng.uniform(-0.05, 0.05, len(cluster))
    line = fit_line(x, y, (0.5, 2.0), focus=5.0)
    assert line.a == pytest.approx(1.2, rel=0.02) and 0.7 < line.b < 1.3
    assert "offset fitted on the" in line.how


def test_the_offset_is_fitted_where_a_search_lands_on_the_frontier():
    """A layer sum misses compute-dense networks (the frontier of MACs per predicted ms, where
    a search for the most MACs lands) by more than the rest: here they measure 6 % over the
    line of the networks spread over the space. With two of them near the budget, the offset
    is fitted on them and predicts them within 1 %; without, the median of every network near
    the budget misses them by 2-6 %."""
    rng = np.random.default_rng(1)
    spread = np.linspace(1.0, 10.0, 12)
    frontier_x = np.array([1.0, 2.5, 3.4, 3.9, 6.0, 9.0])
    x = np.r_[spread, frontier_x]
    y = (1.2 * x + 1.0) * (1 + rng.uniform(-0.01, 0.01, len(x)))
    dense = np.r_[np.zeros(len(spread), bool), np.ones(len(frontier_x), bool)]
    y[dense] *= 1.06
    near = dense & (np.abs(y / 5.0 - 1) <= 0.3)
    assert near.sum() >= 2
    with_frontier = fit_line(x, y, (0.5, 2.0), focus=5.0, frontier=dense)
    without = fit_line(x, y, (0.5, 2.0), focus=5.0)
    miss = [np.abs((line.a * x[near] + line.b) / y[near] - 1).max()
            for line in (with_frontier, without)]
    assert miss[0] < 0.01 < 0.02 < miss[1]
    assert f"offset fitted on the {near.sum()} frontier networks" in with_frontier.how
    assert "frontier" not in without.how


def test_the_frontier_holds_the_most_macs_within_each_layer_sum(tmp_path, monkeypatch):
    """``frontier_z`` solves the knapsack exactly on its grid: no random network has both less
    layer sum and more MACs than a frontier network (beyond one grid step); the least-latency
    network is one of them, and they spread over the space's layer sums."""
    monkeypatch.setenv("HWNAS_CACHE", str(tmp_path))
    space = get_space("mobilenet")
    device = get_backend("simulated", context="quiet", device_id=0)
    layers, _ = device_tables(device, space, show_progress=False)
    fixed, ms = space.cost_matrix(lambda ls: [layers.timings[ly.key].latency_ms for ly in ls])
    _, macs = space.cost_matrix(lambda ls: [ly.macs for ly in ls])
    front = frontier_z(space, layers)
    others = space.random_z(4000, seed=3)
    f_ms, o_ms = space.evaluate_z(front, fixed, ms), space.evaluate_z(others, fixed, ms)
    f_macs, o_macs = space.evaluate_z(front, 0, macs), space.evaluate_z(others, 0, macs)
    step = (np.nanmax(ms, 1) - np.nanmin(ms, 1)).sum() / FRONTIER_GRID
    for t, m in zip(f_ms, f_macs):
        assert not np.any((o_ms <= t - len(ms) * step) & (o_macs > m))
    least, _ = space.min_z(fixed, ms)
    assert any((z == least).all() for z in front)
    assert len(front) >= FRONTIER_NETWORKS // 2 and f_ms.max() > 0.8 * o_ms.max()


def test_tables_measured_in_a_slow_state_that_has_ended_are_put_on_the_scale_now(
        tmp_path, monkeypatch):
    """The calibration networks' table says 30 % slower than the machine runs now (measured
    in a slow state): the verification's references show it, the run's calibration is put on
    the scale now and searched again, so the answer uses the budget (true latency within
    5 % of it) instead of answering on the slow scale (about 77 % of it); the cached table
    keeps its own scale."""
    monkeypatch.setenv("HWNAS_CACHE", str(tmp_path))
    space, device = get_space("mobilenet"), get_backend("simulated", context="quiet")
    layers, nets = device_tables(device, space, show_progress=False)
    slow = dataclasses.replace(nets, timings=tuple(dataclasses.replace(
        t, latency_ms=t.latency_ms * 1.3) for t in nets.timings))
    predictor = calibrate(LookupPredictor().fit_table(layers), slow, space, device, 6.0)
    v = Verifier(space, SearchSettings(sampler="exact"), 6.0, backend=device,
                 calibration=slow).run(predictor)
    assert "measured in a slow state" in v.rounds[0] and len(v.rounds) == 2 and v.verified
    assert v.as_dict()["verification"]["scale"] == pytest.approx(1 / 1.3, rel=0.02)
    true = [device.true_latency_ms(space.decode(c.z).graph) for c in v.result.best]
    assert 0.95 * 6.0 <= max(true) <= 6.0
    cached = read_network_table(next(tmp_path.glob("simulated-*/networks-*.csv")), space)
    z = nets.z[0]
    assert cached.timings[list(cached.z).index(z)].latency_ms == pytest.approx(
        nets.timings[0].latency_ms, rel=1e-4)


def test_a_frontier_mask_of_another_length_is_refused():
    with pytest.raises(InputError, match="frontier mask has 2 entries for 3"):
        fit_line([1.0, 2.0, 3.0], [2.0, 3.0, 4.0], focus=3.0, frontier=np.array([True, False]))


@pytest.mark.parametrize("fallback, rounds", [(0.05, 1), (0.0, 2)])
def test_a_fallback_under_the_budget_spares_a_round_when_every_answer_measures_over_it(
        tmp_path, monkeypatch, fallback, rounds):
    """A calibration that predicts 3 % too little, within its noise: the top answers, all
    predicted within 1 % of the budget, measure over it. The round's fallback, the best
    architecture predicted 5 % under the budget, measures within it and is the answer, in one
    round; without it (FALLBACK 0: no other architecture) a second round is spent."""
    monkeypatch.setenv("HWNAS_CACHE", str(tmp_path))
    monkeypatch.setattr(importlib.import_module("hwnas.search._verify"), "FALLBACK", fallback)
    space, device = get_space("mobilenet"), get_backend("simulated", context="quiet")
    layers, nets = device_tables(device, space, show_progress=False)
    right = calibrate(LookupPredictor().fit_table(layers), nets, space, device, 6.0)
    low = another_line(right, 0.97, 0.0, "3 % low")
    v = Verifier(space, SearchSettings(sampler="exact"), 6.0, backend=device,
                 calibration=nets).run(low)
    assert "none within the budget" in v.rounds[0] if rounds == 2 else \
        "of 6 within the budget" in v.rounds[0]
    assert len(v.rounds) == rounds and v.verified
    for c in v.result.best:
        assert v.measured_ms[c.z] <= 6.0
        assert device.true_latency_ms(space.decode(c.z).graph) <= 6.0
