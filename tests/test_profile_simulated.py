"""hwnas.profile's guarantees on the simulated device, whose true latencies and noise are known:
checked deterministically by seed, whatever the machine running the tests is doing (the real
backends' tests keep smoke checks that hold under any load)."""

import dataclasses
import json

import numpy as np
import pytest
from helpers import hwnas

from hwnas.profile import (
    PREDICTION_NOISE,
    TimingProtocol,
    calibration_z,
    device_folder,
    device_tables,
    get_backend,
    read_cache_status,
    table_quality,
)
from hwnas.profile._stats import STATISTIC, STATISTICS, speed_corrected
from hwnas.spaces import get_space, unit_graph
from hwnas.tables import read_layer_table, read_network_table


def z_set(Z):
    return {tuple(int(v) for v in z) for z in Z}


def test_a_warm_call_reuses_the_cache_and_gives_the_whole_network_table():
    space, device = get_space("nb201"), get_backend("simulated", context="quiet")
    layers, nets = device_tables(device, space, networks=5, show_progress=False)
    folder = device_folder(device)
    status = read_cache_status(folder)
    assert len(status) == 2 and all(r["good"] for r in status.values())
    assert all(r["protocol"]["statistic"] == STATISTIC for r in status.values())
    files = {p.name: p.read_bytes() for p in folder.glob("*.csv")}
    again, fewer = device_tables(device, space, networks=3, show_progress=False)
    assert again.timings == layers.timings
    # fewer calibration networks asked for: the cached table, all of it, calibrates
    assert z_set(calibration_z(space, 3)) <= set(fewer.z) == set(nets.z)
    assert {p.name: p.read_bytes() for p in folder.glob("*.csv")} == files  # nothing measured


@pytest.mark.parametrize("device_id", range(3))
def test_a_quiet_device_is_measured_at_its_true_latency(device_id):
    space = get_space("mobilenet")
    device = get_backend("simulated", context="quiet", device_id=device_id)
    layers, nets = device_tables(device, space, show_progress=False)
    ratio = [layers.timings[ly.key].latency_ms / device.true_latency_ms(unit_graph(ly))
             for ly in space.unique_layers()]
    ratio += [t.latency_ms / device.true_latency_ms(space.decode(z).graph)
              for z, t in zip(nets.z, nets.timings)]
    # no run is faster than true; the rounds' speed correction and the frontier's references
    # scale by estimates, within the quiet noise
    assert 1 - 1e-3 <= min(ratio) and max(ratio) < 1.005
    assert all(t.min_ms <= t.latency_ms and t.noise_ms >= 0 for t in nets.timings)
    q = table_quality(layers.path, space)
    assert q.good and q.prediction_noise < PREDICTION_NOISE / 10 and q.noisy_rows == 0


def test_noisy_units_are_measured_again_and_their_rounds_pooled():
    """Under bursts (a seed where they hit some units in some of 3 rounds: the median of 10
    speed-corrected rounds rides out this machine's noise), those units are timed again, at
    most max_remeasures times, their rounds pooled with the first ones, and leave tables
    whose predictions repeat within PREDICTION_NOISE."""
    space = get_space("mobilenet")
    device = get_backend("simulated", context="bursty", device_id=3)
    protocol = TimingProtocol(rounds=3)
    layers, nets = device_tables(device, space, protocol=protocol, show_progress=False)
    once = protocol.rounds * protocol.runs  # the most runs one measurement gives
    runs = [t.runs for t in layers.timings.values()] + [t.runs for t in nets.timings]
    assert sum(n > once for n in runs) >= 1 and max(runs) <= once * (
        1 + protocol.max_remeasures)
    for path in (layers.path, nets.path):
        assert table_quality(path, space).good


def test_the_profile_command_times_with_the_statistic_asked_for(tmp_path):
    sim = ["--space", "nb201", "--backend", "simulated", "--context", "quiet", "--quiet"]
    run = hwnas("profile", *sim, "--networks", "4", "--statistic", "min", "--out",
                tmp_path / "min.csv")
    assert run.returncode == 0, run.stderr
    assert "repeatability: a row's latency moves by" in run.stdout and not run.stderr
    median = hwnas("profile", *sim, "--networks", "4", "--statistic", "median", "--out",
                   tmp_path / "median.csv")
    assert median.returncode == 0, median.stderr
    lowest, middle = (read_network_table(tmp_path / f"{s}.csv") for s in ("min", "median"))
    assert lowest.z == middle.z
    assert all(t.latency_ms == t.min_ms for t in lowest.timings)
    assert all(t.latency_ms > t.min_ms for t in middle.timings)
    bad = hwnas("profile", *sim, "--statistic", "mean", "--out", tmp_path / "l.csv")
    assert bad.returncode == 2 and "--statistic: invalid choice: 'mean'" in bad.stderr


def test_layers_measured_again_with_another_statistic_replace_the_cache(capsys):
    space, device = get_space("nb201"), get_backend("simulated", context="quiet")
    layers, _ = device_tables(device, space, networks=2, show_progress=False)
    median = dataclasses.replace(TimingProtocol(), statistic="median")
    capsys.readouterr()
    again, _ = device_tables(device, space, networks=2, protocol=median, show_progress=False)
    assert "was measured with another timing protocol" in capsys.readouterr().err
    assert read_cache_status(device_folder(device))["layers.csv"]["protocol"]["statistic"] == \
        "median"
    assert read_layer_table(layers.path + ".discarded").timings == layers.timings
    values = np.array([again.timings[k].latency_ms / layers.timings[k].latency_ms
                       for k in layers.timings])
    assert (values > 1).all()  # a median is slower than the minimum of the same device


def test_the_simulated_contexts_are_the_ones_the_options_name():
    from hwnas.profile._options import SIMULATED_CONTEXTS
    from hwnas.profile._simulated import NOISE
    assert sorted(SIMULATED_CONTEXTS) == sorted(NOISE)


def test_speed_correction_takes_out_a_state_that_slows_every_unit_alike():
    """A 20 % slow state that ends mid-round: the first half of the units met it in 5 of 10
    rounds, the others in 4, so their raw medians disagree by 10 %; corrected by the units
    timed beside them, by less than half of that."""
    units, rounds = 12, 10
    true = np.linspace(1.0, 8.0, units)
    slow = lambda r, i: 1.2 if r * units + i < 4.5 * units else 1.0  # noqa: E731
    samples = [[np.array([ms * slow(r, i), ms * slow(r, i) * 1.01]) for r in range(rounds)]
               for i, ms in enumerate(true)]
    raw = np.array([STATISTICS[STATISTIC](u) for u in samples]) / true
    corrected = np.array([STATISTICS[STATISTIC](u) for u in speed_corrected(samples)]) / true
    assert raw.max() / raw.min() > 1.05
    assert corrected.max() / corrected.min() - 1 < 0.6 * (raw.max() / raw.min() - 1)
    # a batch too small to tell the machine from its units is left as it is
    assert speed_corrected(samples[:6]) == [list(u) for u in samples[:6]]
    # on the batch's fast states: every round alike by a factor of at most 1, near the speed
    # of the rounds that met no slow state (a quantile of noisy speeds errs fast, by < 5 %)
    fast = speed_corrected(samples, level=0.1)
    ratio = np.concatenate([np.concatenate(f) / np.concatenate(c) for f, c in
                            zip(fast, speed_corrected(samples))])
    assert np.ptp(ratio) < 1e-9 and ratio[0] <= 1
    at = np.array([STATISTICS[STATISTIC](u) for u in fast]) / true
    assert 0.95 < at.min() and at.max() <= 1 + 1e-9


def test_networks_missing_from_a_kept_table_are_measured_alone_on_its_scale():
    """A cache from another version lacks some of the networks this one calibrates on (here:
    three of its rows removed): a warm call measures just those, beside networks of the
    kept table, and keeps every other row as it was."""
    space, device = get_space("mobilenet"), get_backend("simulated", context="cpu")
    _, nets = device_tables(device, space, show_progress=False)
    path = next(device_folder(device).glob("networks-*.csv"))
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:-3]) + "\n")
    status = device_folder(device) / "measured.json"  # as a version before the frontier
    record = json.loads(status.read_text())
    del record[path.name]["frontier"]
    status.write_text(json.dumps(record))
    _, again = device_tables(device, space, show_progress=False)
    assert set(again.z) == set(nets.z)
    kept = path.read_text().splitlines()
    assert kept[:len(lines) - 3] == lines[:-3] and len(kept) == len(lines)
    before = dict(zip(nets.z, nets.values()))
    for z, ms in zip(again.z, again.values()):  # on the table's scale, within its noise
        assert ms == pytest.approx(before[z], rel=0.2)
