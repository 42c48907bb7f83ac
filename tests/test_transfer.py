"""Few-shot transfer: a device left out of the catalogue, fitted from 10 of its networks and
the other shipped devices, ranks its other networks; the design, the file and the commands."""

import json
from dataclasses import replace

import numpy as np
import pytest
from helpers import FAST_ARGS, hwnas
from scipy.stats import spearmanr

from hwnas.devices import device_matrix, load_device
from hwnas.errors import InputError
from hwnas.predictors import TransferPredictor, load_predictor, transfer_design
from hwnas.predictors._transfer import FEATURE_SETS, cost_features
from hwnas.spaces import get_space
from hwnas.tables import read_network_table


def without(space: str, device: str):
    """The shipped devices of ``space`` but ``device``: what a new device would lean on."""
    known = device_matrix(space)
    keep = [i for i, name in enumerate(known.devices) if name != device]
    return replace(known, devices=tuple(known.devices[i] for i in keep),
                   latency_ms=known.latency_ms[keep])


def measured(space: str, device: str, Z: np.ndarray):
    """The shipped table of ``device`` restricted to the networks Z (10 'measured' ones), and
    the rows of its other networks."""
    table = load_device(device, space)
    row = {z: i for i, z in enumerate(table.z)}
    chosen = [row[tuple(int(v) for v in z)] for z in Z]
    return table.select(chosen), np.setdiff1d(np.arange(len(table.z)), chosen)


@pytest.mark.parametrize("space_name, device", [("nb201", "titan_rtx_1"),
                                                ("fbnet", "silver_4210r")])
def test_ten_designed_networks_of_a_left_out_device_rank_its_other_networks(space_name,
                                                                            device):
    space = get_space(space_name)
    known = without(space_name, device)
    train, rest = measured(space_name, device, transfer_design(known, space, 10))
    predictor = TransferPredictor(known).fit_table(train, space)
    truth = load_device(device, space_name)
    Z = np.array(truth.z)
    predicted = predictor.predict_z(space, Z)
    rho = spearmanr(predicted[rest], truth.values()[rest])[0]
    assert rho >= 0.95, rho
    assert predictor.weights_ and device not in predictor.weights_
    assert all(w > 0 for w in predictor.weights_.values())
    assert predictor.features_ in FEATURE_SETS and predictor.loo_error_ > 0
    fixed, C = predictor.cost_matrix(space)  # additive: the search can use it
    assert np.allclose(space.evaluate_z(Z[:50], fixed, C), predicted[:50])
    assert np.nanmin(C) >= 0 and fixed > 0


def test_it_prices_networks_no_known_device_was_measured_on():
    space = get_space("fbnet")
    known = without("fbnet", "titanx_1")
    train, _ = measured("fbnet", "titanx_1", transfer_design(known, space, 10))
    predictor = TransferPredictor(known).fit_table(train, space)
    Z = space.random_z(200, seed=1)
    seen = {tuple(z) for z in known.z.tolist()}
    assert not any(tuple(z) in seen for z in Z.tolist())
    y = predictor.predict_z(space, Z)
    assert np.isfinite(y).all() and (y > 0).all()
    lo, hi = load_device("titanx_1", "fbnet").values().min(), \
        load_device("titanx_1", "fbnet").values().max()
    assert lo * 0.8 < np.median(y) < hi * 1.2


def test_saved_as_json_and_loaded_with_the_same_predictions(tmp_path):
    space = get_space("nb201")
    known = without("nb201", "gold_6240")
    train, _ = measured("nb201", "gold_6240", space.random_z(10, seed=3))
    predictor = TransferPredictor(known).fit_table(train, space)
    path = tmp_path / "p.json"
    predictor.save(path)
    doc = json.loads(path.read_text())
    assert doc["kind"] == "transfer" and doc["state"]["weights"] == predictor.weights_
    loaded = load_predictor(path)
    assert isinstance(loaded, TransferPredictor) and loaded.known is None
    Z = space.random_z(100, seed=0)
    assert np.allclose(loaded.predict_z(space, Z), predictor.predict_z(space, Z))
    assert loaded.describe_weights() == predictor.describe_weights()


def test_cost_features_are_each_z_macs_and_bytes_summed_over_its_layers():
    space = get_space("fbnet")
    costs = cost_features(space)
    Z = space.random_z(5, seed=4)
    F = costs.of(Z)
    for z, row in zip(Z, F):
        arch = space.decode(z)
        assert row[costs.names.index("macs")] == pytest.approx(arch.macs)
        assert row[costs.names.index("bytes")] == pytest.approx(sum(
            ly.param_bytes + ly.input_bytes + ly.output_bytes for ly in arch.layers))
        per_op = [row[i] for i, name in enumerate(costs.names) if name.startswith("macs_")]
        assert sum(per_op) == pytest.approx(arch.macs) and min(per_op) >= 0


def test_a_phone_no_known_device_resembles_leans_on_the_costs():
    # fbnet's pixel3 among 21 other devices: the mix of devices alone ranked it 0.85 from
    # 10 designed networks; with MACs and bytes beside them it ranks as its own table
    space = get_space("fbnet")
    known = without("fbnet", "pixel3")
    train, rest = measured("fbnet", "pixel3", transfer_design(known, space, 10))
    predictor = TransferPredictor(known).fit_table(train, space)
    assert predictor.features_.endswith("+costs") and predictor.cost_weights_
    assert all(w > 0 for w in predictor.cost_weights_.values())
    truth = load_device("pixel3", "fbnet")
    predicted = predictor.predict_z(space, np.array(truth.z)[rest])
    assert spearmanr(predicted, truth.values()[rest])[0] >= 0.95
    assert all(name in predictor.describe_weights() for name in predictor.cost_weights_)


def test_the_design_separates_the_known_devices_and_is_checked():
    space = get_space("nb201")
    known = device_matrix("nb201")
    Z = transfer_design(known, space, 12)
    assert Z.shape == (12, 6) and len(np.unique(Z, axis=0)) == 12
    assert np.array_equal(Z, transfer_design(known, space, 12))  # deterministic
    # more spread across the devices' standardised latencies and costs than random networks
    rows = {tuple(z): i for i, z in enumerate(known.z.tolist())}
    X = np.hstack([known.latency_ms.T, cost_features(space).of(known.z)])
    X = (X - X.mean(axis=0)) / np.where(X.std(axis=0) > 0, X.std(axis=0), 1.0)  # gap, head

    def logdet(Zs):
        S = X[[rows[tuple(z)] for z in Zs.tolist()]]
        S = np.hstack([np.ones((len(S), 1)), S / np.sqrt(S.shape[1])])
        return np.linalg.slogdet(S.T @ S + 1e-3 * np.eye(S.shape[1]))[1]

    assert logdet(Z) > max(logdet(space.random_z(12, seed=s)) for s in range(5))
    with pytest.raises(InputError, match="1 to 15625 networks"):
        transfer_design(known, space, 0)
    with pytest.raises(InputError, match="space 'nb201', not 'fbnet'"):
        transfer_design(known, get_space("fbnet"), 10)


def test_bad_input_is_one_clear_error():
    space = get_space("nb201")
    train, _ = measured("nb201", "gold_6240", space.random_z(10, seed=3))
    with pytest.raises(InputError, match="needs the known devices"):
        TransferPredictor().fit_table(train, space)
    with pytest.raises(InputError, match="at least 3 measured networks"):
        TransferPredictor(device_matrix("nb201")).fit_table(train.select([0, 1]), space)
    with pytest.raises(InputError, match="ridges must be numbers > 0"):
        TransferPredictor(device_matrix("nb201"), ridges=()).fit_table(train, space)
    with pytest.raises(InputError, match="ridges must be"):
        TransferPredictor(device_matrix("nb201"), ridges=(-1.0,)).fit_table(train, space)


def test_fit_command_says_which_devices_it_leaned_on(tmp_path):
    space = get_space("nb201")
    truth = load_device("silver_4210r", "nb201")
    Z = transfer_design(device_matrix("nb201"), space, 10)
    rows = {z: i for i, z in enumerate(truth.z)}
    mine = tmp_path / "mine.csv"
    mine.write_text("space,z,latency_ms\n" + "".join(
        f"nb201,{space.describe(z)},{truth.values()[rows[tuple(z)]]}\n" for z in Z.tolist()))
    out = tmp_path / "p.json"
    run = hwnas("fit", "--model", "transfer", "--networks", mine, "--space", "nb201",
                "--device", "my board", "--out", out)
    assert run.returncode == 0, run.stderr
    assert "transfer predictor of latency_ms for my board" in run.stdout
    assert "leaned on the shipped devices silver_4210r x" in run.stdout  # itself, shipped
    assert load_predictor(out).kind == "transfer"
    ev = hwnas("evaluate", "--predictor", out, "--device", "silver_4210r", "--space", "nb201")
    assert ev.returncode == 0, ev.stderr


def test_profile_design_transfer_measures_this_machine_and_fit_transfers(tmp_path):
    pytest.importorskip("onnxruntime")
    table = tmp_path / "mine.csv"
    run = hwnas("profile", "--space", "nb201", "--backend", "onnxruntime", "--networks", "10",
                "--design", "transfer", "--out", table, "--quiet", *FAST_ARGS)
    assert run.returncode == 0, run.stderr
    space = get_space("nb201")
    networks = read_network_table(table)
    assert sorted(networks.z) == sorted(map(tuple, transfer_design(device_matrix("nb201"),
                                                                   space, 10).tolist()))
    out = tmp_path / "p.json"
    fit = hwnas("fit", "--model", "transfer", "--networks", table, "--out", out)
    assert fit.returncode == 0, fit.stderr
    assert "leaned on the shipped devices" in fit.stdout
    y = load_predictor(out).predict_z(space, space.random_z(100, seed=0))
    assert np.isfinite(y).all() and (y > 0).all()


# --- devices whose runtime drops cells (issue 34) -------------------------------------------

def dead_and_live(space_name="nb201"):
    from hwnas.spaces.nb201 import computed_z
    Z = np.array(load_device("pixel3", space_name).z)
    return Z, computed_z(Z)


def dropping_board(device: str):
    """A board made of ``device``'s own measurements as a runtime that drops what does not
    reach the output would run them (each network costs what its computed z costs there;
    a cell that computes nothing 0.003-0.4 ms): a Raspberry-Pi-class board with TFLite."""
    Z, (Zc, dead) = dead_and_live()
    table = load_device(device, "nb201")
    at = {z: i for i, z in enumerate(table.z)}
    ms = table.values()[[at[tuple(z)] for z in Zc.tolist()]]
    ms[dead] = np.random.default_rng(0).uniform(0.003, 0.4, int(dead.sum()))
    assert [tuple(z) for z in Z.tolist()] == list(table.z)
    return replace(table, timings=tuple(replace(t, latency_ms=float(v))
                                        for t, v in zip(table.timings, ms)))


def draws_with_a_dead_cell(n_draws=10, seed=1):
    """Draws of 10 networks, each with one whose cell computes nothing (what made the fit
    exit 2: 4 of 26 draws), the others random."""
    _, (_, dead) = dead_and_live()
    rng = np.random.default_rng(seed)
    return [[*rng.choice(np.flatnonzero(~dead), 9, replace=False).tolist(),
             int(rng.choice(np.flatnonzero(dead)))] for _ in range(n_draws)]


def rho_of(predictor, table, chosen):
    space = get_space("nb201")
    rest = np.setdiff1d(np.arange(len(table.z)), chosen)
    return spearmanr(predictor.predict_z(space, np.array(table.z)[rest]),
                     table.values()[rest])[0]


@pytest.mark.parametrize("device", ["silver_4114", "gold_6240"])
def test_a_board_that_drops_cells_fits_every_draw_and_ranks_its_other_networks(device):
    """The bar: a held-out board that drops cells fits from every draw of 10 networks (a dead
    cell among them) and ranks its other networks at mean Spearman >= 0.94 (0.959 and 0.955
    here; the plain additive mix ranked such a board below 0.92)."""
    board, known = dropping_board(device), without("nb201", device)
    rhos = []
    for chosen in draws_with_a_dead_cell():
        predictor = TransferPredictor(known).fit_table(board.select(chosen), get_space("nb201"))
        assert predictor.drops_ and 0 < predictor.dead_ms_ < 0.5
        rhos.append(rho_of(predictor, board, chosen))
    assert np.mean(rhos) >= 0.94, rhos


def test_pixel3_left_out_ranks_at_095_from_ten_designed_networks_with_the_pruning_known():
    """benchmarks/transfer.py's figure: pixel3 drops cells (HW-NAS-Bench); the design's 10
    networks ranked it at 0.906 before the pruning was known, 0.967 now; 10 random draws of
    10 at 0.948 (mean; 0.90-0.93 before)."""
    space, known = get_space("nb201"), without("nb201", "pixel3")
    table = load_device("pixel3", "nb201")
    train, rest = measured("nb201", "pixel3", transfer_design(known, space, 10))
    predictor = TransferPredictor(known).fit_table(train, space)
    predicted = predictor.predict_z(space, np.array(table.z)[rest])
    assert spearmanr(predicted, table.values()[rest])[0] >= 0.95
    rhos = [rho_of(TransferPredictor(known).fit_table(table.select(chosen), space), table, chosen)
            for chosen in [np.random.default_rng(s).choice(len(table.z), 10, replace=False)
                           for s in range(10)]]
    assert np.mean(rhos) >= 0.94, rhos


def test_every_shipped_nb201_device_fits_from_ten_networks_with_a_dead_cell(tmp_path):
    """``fit --model transfer`` exits 0 on 10 valid networks of every shipped nb201 device,
    one of them a cell its runtime may drop (the class that exited 2), and the file it
    writes predicts a positive latency for every z."""
    from hwnas.devices import list_devices
    space = get_space("nb201")
    chosen = draws_with_a_dead_cell(1, seed=7)[0]
    for info in list_devices("nb201"):
        table = load_device(info.name, "nb201")
        mine, out = tmp_path / f"{info.name}.csv", tmp_path / f"{info.name}.json"
        mine.write_text("space,z,latency_ms\n" + "".join(
            f"nb201,{space.describe(table.z[i])},{table.values()[i]}\n" for i in chosen))
        run = hwnas("fit", "--model", "transfer", "--networks", mine, "--space", "nb201",
                    "--device", "my board", "--out", out)
        assert run.returncode == 0, (info.name, run.stderr)
        assert (load_predictor(out).predict_z(space, space.random_z(2000, 0)) > 0).all()


def test_a_dropping_predictor_is_saved_loaded_and_searched_as_not_additive(tmp_path):
    from hwnas.predictors import NotAdditiveError
    board, known = dropping_board("silver_4114"), without("nb201", "silver_4114")
    space = get_space("nb201")
    predictor = TransferPredictor(known).fit_table(
        board.select(draws_with_a_dead_cell(1)[0]), space)
    predictor.save(tmp_path / "p.json")
    loaded = load_predictor(tmp_path / "p.json")
    Z = space.random_z(500, 3)
    assert loaded.drops_ and np.allclose(loaded.predict_z(space, Z), predictor.predict_z(space, Z))
    with pytest.raises(NotAdditiveError):
        loaded.cost_matrix(space)
    run = hwnas("search", "--predictor", tmp_path / "p.json", "--space", "nb201", "--budget-ms",
                "20", "--trials", "30", "--seed", "0", "--quiet", "--no-verify")
    assert run.returncode == 0, run.stderr
