"""Predictors as scikit-learn regressors over z, on the shipped device tables: cross_val_score,
GridSearchCV and Pipeline run on them; the table-based fit and the per-layer predict under
their own names (the old calls warn); the networks a predictor was fitted on are recorded,
saved, and flagged by hwnas.evaluate."""

import json
import warnings
from dataclasses import replace
from typing import Optional

import numpy as np
import pytest
from helpers import hwnas, synthetic_table
from sklearn.base import BaseEstimator, clone, is_regressor
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from hwnas.devices import device_matrix, load_device
from hwnas.errors import InputError
from hwnas.layers import Layer
from hwnas.predictors import (
    KINDS,
    AdditiveFeaturesPredictor,
    AdditivePredictor,
    CalibratedPredictor,
    LinearPredictor,
    LookupPredictor,
    MeasuredPredictor,
    NotFittedError,
    TransferPredictor,
    TreeZPredictor,
    from_dict,
    load_predictor,
    transfer_design,
)
from hwnas.predictors._base import NotSupportedError
from hwnas.spaces import get_space

#: the shipped tables are sorted by z: unshuffled folds would hold out every network with
#: some choice, which the additive kinds refuse to price (UnknownChoiceError)
FOLDS = KFold(5, shuffle=True, random_state=0)


def shipped(device: str, space: str, n: Optional[int] = None, seed: int = 0):
    """z and latency_ms of a shipped device's networks (n of them, drawn at random)."""
    table = load_device(device, space)
    Z, y = np.array(table.z), table.values()
    rows = np.random.default_rng(seed).permutation(len(Z))[:n]
    return Z[rows], y[rows]


def test_cross_val_score_of_additive_features_over_a_shipped_device():
    Z, y = shipped("pixel3", "nb201")
    scores = cross_val_score(AdditiveFeaturesPredictor(space="nb201"), Z, y)  # the Bar
    assert scores.shape == (5,) and scores.min() > 0.7, scores
    Z, y = shipped("pixel3", "fbnet", 2000)  # no near-empty cells (0.003 ms) to divide by
    mape = -cross_val_score(AdditiveFeaturesPredictor(space="fbnet"), Z, y, cv=FOLDS,
                            scoring="neg_mean_absolute_percentage_error")
    assert 0 < mape.max() < 0.1, mape


@pytest.mark.parametrize("make", [
    lambda: AdditivePredictor(space="fbnet"),
    lambda: AdditiveFeaturesPredictor(space=get_space("fbnet")),
    lambda: TreeZPredictor(n_estimators=20, space="fbnet"),
], ids=["additive", "additive_features", "tree_z"])
def test_every_network_kind_cross_validates_on_a_shipped_device(make):
    Z, y = shipped("pixel3", "fbnet", 1500)
    estimator = make()
    assert is_regressor(estimator)
    scores = cross_val_score(estimator, Z, y, cv=FOLDS, error_score="raise")
    assert scores.min() > 0.3, scores  # a forest over 198 one-hot columns: about 0.5
    assert not hasattr(estimator, "fingerprint_")  # cross_val_score fits clones


def test_transfer_cross_validates_on_a_device_left_out_of_its_known_devices():
    known = device_matrix("nb201")
    keep = [i for i, name in enumerate(known.devices) if name != "pixel3"]
    known = replace(known, devices=tuple(known.devices[i] for i in keep),
                    latency_ms=known.latency_ms[keep])
    Z = transfer_design(known, get_space("nb201"), 24)
    truth = dict(zip(map(tuple, load_device("pixel3", "nb201").z),
                     load_device("pixel3", "nb201").values()))
    y = np.array([truth[tuple(z)] for z in Z.tolist()])
    scores = cross_val_score(TransferPredictor(known, space="nb201"), Z, y,
                             cv=KFold(3, shuffle=True, random_state=0), error_score="raise")
    assert scores.min() > 0.5, scores


def test_grid_search_chooses_a_hyperparameter_and_refits_the_best():
    Z, y = shipped("pixel3", "nb201", 3000)
    search = GridSearchCV(TreeZPredictor(space="nb201"), {"n_estimators": [2, 30]},
                          cv=FOLDS, error_score="raise").fit(Z, y)
    assert search.best_params_ == {"n_estimators": 30}  # 2 trees predict worse than 30
    best = search.best_estimator_
    assert best.n_estimators == 30 and len(best.forest_.trees) == 30
    assert search.predict(Z[:5]) == pytest.approx(best.predict(Z[:5]))
    assert best.fitted_mask("nb201", Z).all()  # refitted on all of them


def test_a_pipeline_turns_arch_strings_into_z_for_a_predictor():
    space = get_space("nb201")
    Z, y = shipped("titan_rtx_1", "nb201", 2000)
    archs = np.array([space.describe(z) for z in Z])  # "|nor_conv_3x3~0|+|...": NB201's own
    pipeline = Pipeline([
        ("z", FunctionTransformer(lambda a: np.array([space.parse_z(s) for s in a]))),
        ("latency", AdditivePredictor(space=space))])
    scores = cross_val_score(pipeline, archs, y, cv=FOLDS, error_score="raise")
    assert scores.min() > 0.5, scores
    search = GridSearchCV(pipeline, {"latency__ridge": [1e-6, 1e3]}, cv=FOLDS).fit(archs, y)
    assert search.best_params_ == {"latency__ridge": 1e-6}
    fitted = search.best_estimator_.named_steps["latency"]
    assert search.predict(archs[:3]) == pytest.approx(fitted.predict(Z[:3]))


def test_the_estimator_contract_holds_for_every_kind():
    space = get_space("nb201")
    for kind, cls in KINDS.items():
        predictor = cls(space=space)
        assert predictor.get_params()["space"] is space, kind  # stored unchanged
        twin = clone(predictor)
        assert twin.get_params()["space"] is not None and type(twin) is cls, kind
        assert predictor.set_params(space="fbnet", target="energy_mj") is predictor, kind
        assert predictor.space == "fbnet" and predictor.target == "energy_mj", kind


def test_fit_on_arrays_equals_fit_table_on_the_same_networks():
    table = load_device("pixel3", "nb201").select(range(0, 15625, 7))
    space = get_space("nb201")
    Z, y = np.array(table.z), table.values()
    from_arrays = AdditivePredictor(space="nb201").fit(Z, y)
    from_table = AdditivePredictor().fit_table(table, space)
    assert np.array_equal(from_arrays.C_, from_table.C_, equal_nan=True)
    assert from_arrays.predict(Z[:9]) == pytest.approx(from_table.predict_z(space, Z[:9]))
    assert from_table.fingerprint_ == table.fingerprint
    assert from_arrays.fingerprint_.describe() == "unnamed (fit(X, y)), batch 1"
    r2 = from_arrays.score(Z, y)
    assert r2 == pytest.approx(from_table.score(Z, y)) and r2 > 0.8


@pytest.mark.skipif(not hasattr(BaseEstimator, "__sklearn_clone__"),
                    reason="scikit-learn < 1.3 clones the base too, unfitted")
def test_a_calibration_cross_validates_its_line_over_a_fitted_base(tmp_path):
    """clone keeps the base fitted: only a and b are fitted per fold."""
    space = get_space("nb201")
    Z, y = shipped("pixel3", "nb201", 600)
    base = AdditiveFeaturesPredictor(space=space).fit(Z[:300], y[:300])
    calibrated = CalibratedPredictor(base, space="nb201")
    twin = clone(calibrated)
    assert twin.base is base and twin.space == "nb201"
    scores = cross_val_score(calibrated, Z[300:], y[300:], cv=FOLDS, error_score="raise")
    assert scores.min() > 0.5, scores
    fitted = calibrated.fit(Z[300:400], y[300:400])
    assert fitted.fitted_mask(space, Z[:500]).tolist() == [True] * 400 + [False] * 100


def test_layer_kinds_fit_tables_and_predict_z_of_their_space(tmp_path):
    space = get_space("mobilenet")
    table = synthetic_table(tmp_path)
    Z = space.random_z(5, seed=3)
    lookup = LookupPredictor(space="mobilenet").fit_table(table)
    assert lookup.predict(Z) == pytest.approx(lookup.predict_z(space, Z))
    y = lookup.predict_z(space, Z)
    assert lookup.score(Z, y) == pytest.approx(1.0)
    layers = list(space.decode(Z[0]).layers)
    assert lookup.predict_layers(layers).sum() == pytest.approx(y[0])
    with pytest.raises(NotSupportedError, match=r"layer table: LookupPredictor\(\)\.fit_table"):
        lookup.fit(Z, y)
    with pytest.raises(NotSupportedError, match=r"no space to read z in: give one"):
        LinearPredictor().fit_table(table).predict(Z)
    with pytest.raises(InputError, match="learns from a layer table .*got a network table"):
        LinearPredictor().fit_table(load_device("pixel3", "nb201"))
    Z, y = shipped("pixel3", "nb201", 200)
    with pytest.raises(NotSupportedError, match="predicts whole architectures"):
        AdditivePredictor(space="nb201").fit(Z, y).predict_layers(layers)


def test_the_old_fit_and_predict_calls_warn_and_do_what_they_did(tmp_path):
    table = synthetic_table(tmp_path)
    layers = table.layers()[:4]
    with pytest.warns(DeprecationWarning, match=r"LookupPredictor\.fit\(table, space\) is "
                                                r"deprecated.*call LookupPredictor\.fit_table"):
        old = LookupPredictor().fit(table)  # rename: keep
    with pytest.warns(DeprecationWarning, match=r"predict\(layers\) is deprecated.*"
                                                r"predict_layers\(layers\)"):
        values = old.predict(layers)  # rename: keep
    assert values.tolist() == LookupPredictor().fit_table(table).predict_layers(layers).tolist()
    networks = load_device("pixel3", "nb201")
    with pytest.warns(DeprecationWarning, match=r"MeasuredPredictor\.fit\(table, space\)"):
        measured = MeasuredPredictor().fit(networks, get_space("nb201"))  # rename: keep
    assert measured.predict([[3] * 6])[0] == pytest.approx(32.993, abs=1e-3)


@pytest.mark.parametrize("X, y, message", [
    ([[0, 1, 2, 3, 4, 0]], None, "fit\\(X, y\\) needs y"),
    ([[0, 1, 2, 3, 4, 0]], [1.0, 2.0], "y must hold one number per row of X \\(1\\)"),
    ([[0, 1, 2, 3, 4, 0]], [-1.0], "y\\[0\\] is -1.0: .* a finite number > 0"),
    ([[0, 1, 2, 3, 4, 9]], [1.0], "z\\[5\\] = 9 is out of range 0..4"),
    ([[0, 1, 2]], [1.0], "z must have 6 entries"),
])
def test_fit_on_arrays_names_what_is_wrong(X, y, message):
    with pytest.raises(InputError, match=message):
        AdditivePredictor(space="nb201").fit(X, y)


def test_fit_on_arrays_needs_a_space_and_refuses_a_different_one():
    table = load_device("pixel3", "nb201")
    with pytest.raises(InputError, match=r"give it, AdditivePredictor\(space='nb201'\)"):
        AdditivePredictor().fit([[0] * 6], [1.0])
    with pytest.raises(InputError, match="space must be a space name, a space file or a "
                                         "SearchSpace, got 3"):
        AdditivePredictor(space=3).fit([[0] * 6], [1.0])
    with pytest.raises(InputError, match="given space 'fbnet', but the predictor was made "
                                         "for space 'nb201'"):
        AdditivePredictor(space="nb201").fit_table(table, get_space("fbnet"))
    with pytest.raises(InputError, match="appears twice"):
        MeasuredPredictor(space="nb201").fit([[0] * 6, [0] * 6], [1.0, 2.0])
    with pytest.raises(NotFittedError, match=r"call fit\(X, y\) or fit_table"):
        TreeZPredictor(space="nb201").predict([[0] * 6])


def test_the_fitted_networks_survive_save_and_load(tmp_path):
    space = get_space("nb201")
    Z, y = shipped("pixel3", "nb201", 400)
    predictor = TreeZPredictor(n_estimators=5, space="nb201").fit(Z[:300], y[:300])
    predictor.save(tmp_path / "p.json")
    loaded = load_predictor(tmp_path / "p.json")
    assert loaded.fitted_mask(space, Z).tolist() == [True] * 300 + [False] * 100
    assert loaded.space is None and loaded.predict(Z[:4]) == pytest.approx(
        predictor.predict(Z[:4]))  # predict(X) reads z in the space it was fitted on
    doc = json.loads((tmp_path / "p.json").read_text())
    del doc["fitted_networks"]  # a file of an earlier hwnas
    assert from_dict(doc).fitted_mask(space, Z) is None
    layer_doc = LookupPredictor().fit_table(synthetic_table(tmp_path)).to_dict()
    del layer_doc["fitted_networks"]
    assert not from_dict(layer_doc).fitted_mask(get_space("mobilenet"), [[0] * 21]).any()
    doc["fitted_networks"] = "AAAA"
    with pytest.raises(InputError, match="fitted_networks is cut short"):
        from_dict(doc, "p.json")


def test_evaluate_says_when_it_scores_the_networks_a_predictor_was_fitted_on(tmp_path):
    fit = hwnas("fit", "--model", "additive", "--device", "pixel3", "--space", "nb201",
                "--out", tmp_path / "p.json")
    assert fit.returncode == 0, fit.stderr
    seen = hwnas("evaluate", "--predictor", tmp_path / "p.json", "--device", "pixel3",
                 "--json", tmp_path / "m.json")
    assert seen.returncode == 0, seen.stderr
    lines = [line for line in seen.stderr.splitlines() if "fitted or calibrated on" in line]
    assert lines == ["python -m hwnas.evaluate: warning: 15625 of the 15625 networks scored "
                     "are networks the predictor was fitted or calibrated on: these scores "
                     "are no held-out test (score other networks)"]
    assert json.loads((tmp_path / "m.json").read_text())["fitted_overlap"] == 15625
    doc = json.loads((tmp_path / "p.json").read_text())
    del doc["fitted_networks"]
    (tmp_path / "old.json").write_text(json.dumps(doc))
    old = hwnas("evaluate", "--predictor", tmp_path / "old.json", "--device", "pixel3")
    assert old.returncode == 0, old.stderr
    assert "does not record which networks it was fitted or calibrated on" in old.stderr


def test_no_warning_where_the_networks_are_held_out(tmp_path):
    Z, y = shipped("pixel3", "nb201", 500)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        AdditiveFeaturesPredictor(space="nb201").fit(Z, y).save(tmp_path / "p.json")
    held_out = hwnas("evaluate", "--predictor", tmp_path / "p.json", "--networks",
                     write_networks(tmp_path / "rest.csv", *shipped("pixel3", "nb201", 50, 1),
                                    exclude=Z), "--space", "nb201", "--json", tmp_path / "h.json")
    assert held_out.returncode == 0, held_out.stderr
    assert "fitted or calibrated on" not in held_out.stderr
    assert json.loads((tmp_path / "h.json").read_text())["fitted_overlap"] == 0


def write_networks(path, Z, y, exclude):
    """A network table file (space, z, latency_ms) of the rows of Z not in ``exclude``."""
    skip = {tuple(z) for z in np.asarray(exclude).tolist()}
    rows = [f"nb201,{'-'.join(map(str, z))},{v:.6g}" for z, v in zip(Z.tolist(), y)
            if tuple(z) not in skip]
    path.write_text("space,z,latency_ms\n" + "\n".join(rows) + "\n")
    return path


def test_layers_are_never_taken_for_z():
    """A list of Layer objects goes to predict_layers (deprecated), anything else is z."""
    layer = Layer("conv", (3, 8, 8), 8, kernel=3)
    Z, y = shipped("pixel3", "nb201", 300)
    with pytest.raises(InputError, match="z must"):
        AdditivePredictor(space="nb201").fit(Z, y).predict([[layer]])
