import json

import numpy as np
import pytest
from helpers import synthetic_table

from hwnas.errors import InputError
from hwnas.layers import Layer
from hwnas.predictors import (
    LinearPredictor,
    LookupPredictor,
    NotFittedError,
    TreePredictor,
    UnseenLayerError,
    load_predictor,
)
from hwnas.spaces import get_space


def test_lookup_predicts_the_table(tmp_path):
    table = synthetic_table(tmp_path)
    p = LookupPredictor().fit_table(table)
    layers = table.layers()
    assert p.predict_layers(layers) == pytest.approx([0.1 * (i + 1) for i in range(len(layers))])
    space = get_space("mobilenet")
    Z = space.random_z(200, seed=0)
    batch = p.predict_z(space, Z)
    assert batch.shape == (200,)
    for z, value in zip(Z[:20], batch[:20]):
        assert value == pytest.approx(p.predict_architecture(space.decode(z)))


def test_unseen_layer_names_its_key(tmp_path):
    p = LookupPredictor().fit_table(synthetic_table(tmp_path))
    unseen = Layer("conv", (3, 64, 64), 32, kernel=3, stride=2)
    with pytest.raises(UnseenLayerError, match=r"conv\(in=3x64x64,out=32"):
        p.predict_layers([unseen])


def test_unfitted_is_a_clear_error():
    with pytest.raises(NotFittedError, match="not fitted"):
        LookupPredictor().predict_layers([Layer("gap", (4, 2, 2))])


def test_save_load_gives_identical_predictions(tmp_path):
    table = synthetic_table(tmp_path)
    p = LookupPredictor().fit_table(table)
    p.save(tmp_path / "p.json")
    q = load_predictor(tmp_path / "p.json")
    assert isinstance(q, LookupPredictor) and q.fingerprint_ == table.fingerprint
    space = get_space("mobilenet")
    Z = space.random_z(100, seed=3)
    assert np.array_equal(p.predict_z(space, Z), q.predict_z(space, Z))


@pytest.mark.parametrize("content, message", [
    ("not json", "invalid JSON"),
    ('{"format": "other"}', "not a predictor file"),
    ('{"format": "hwnas.predictor", "version": 99}', "version 99 is not supported"),
    ('{"format": "hwnas.predictor", "version": 1, "kind": "magic"}', "unknown predictor kind"),
    ('{"format": "hwnas.predictor", "version": 1, "kind": "lookup", "state": {}}',
     "corrupt lookup predictor"),
])
def test_corrupt_or_foreign_files(tmp_path, content, message):
    path = tmp_path / "p.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        load_predictor(path)


def test_corrupt_latency_in_a_saved_file(tmp_path):
    p = LookupPredictor().fit_table(synthetic_table(tmp_path))
    p.save(tmp_path / "p.json")
    doc = json.loads((tmp_path / "p.json").read_text())
    key = next(iter(doc["state"]["values"]))
    doc["state"]["values"][key] = 0
    (tmp_path / "p.json").write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="not a positive number"):
        load_predictor(tmp_path / "p.json")


@pytest.mark.nnabla
def test_lookup_on_real_measurements(mobilenet_table):
    space = get_space("mobilenet")
    p = LookupPredictor().fit_table(mobilenet_table)
    for z in space.random_z(5, seed=2):
        layers = space.decode(z).layers
        expected = sum(mobilenet_table.timings[layer.key].latency_ms for layer in layers)
        assert p.predict_z(space, z)[0] == pytest.approx(expected)


def test_predictors_are_scikit_learn_estimators(tmp_path):
    from sklearn.base import clone
    from sklearn.exceptions import NotFittedError as SklearnNotFittedError
    from sklearn.utils.validation import check_is_fitted

    from hwnas.predictors import KINDS

    for cls in KINDS.values():
        p = cls()
        assert clone(p).get_params() == p.get_params(), cls.kind
    p = LookupPredictor(fallback=TreePredictor(n_estimators=5), target="latency_ms")
    assert p.get_params()["fallback__n_estimators"] == 5
    assert p.set_params(fallback__n_estimators=7) is p and p.fallback.n_estimators == 7
    with pytest.raises(SklearnNotFittedError):
        check_is_fitted(p)
    with pytest.raises(ValueError, match="not fitted"):
        p.predict_layers([Layer("gap", (4, 2, 2))])  # scikit-learn's NotFittedError is a ValueError
    assert issubclass(NotFittedError, (SklearnNotFittedError, AttributeError))

    fallback = LinearPredictor()
    p = LookupPredictor(fallback=fallback).fit_table(synthetic_table(tmp_path))
    check_is_fitted(p)
    assert not hasattr(fallback, "models_"), "fit must fit a clone, not the caller's fallback"
    assert p.fallback is fallback and hasattr(p.fallback_, "models_")
    refit = clone(p)
    assert not hasattr(refit, "values_") and refit.fallback is not fallback


@pytest.mark.parametrize("make, message", [
    (lambda: LinearPredictor(alpha=-1),
     "LinearPredictor: alpha must be a number >= 0, got -1"),
    (lambda: TreePredictor(n_estimators=0),
     "TreePredictor: n_estimators must be an integer >= 1, got 0"),
    (lambda: TreePredictor(random_state="x"),
     "random_state must be an integer >= 0, got 'x'"),
    (lambda: LookupPredictor(target=3), "LookupPredictor: target must be a string, got 3"),
    (lambda: LookupPredictor(fallback="linear"), "fallback must be a layer predictor"),
])
def test_hyperparameters_are_validated_by_fit(tmp_path, make, message):
    from hwnas.errors import InputError
    with pytest.raises(InputError, match=message):
        make().fit_table(synthetic_table(tmp_path))


def test_tree_z_loads_its_trees_without_refitting_and_predicts_the_same(tmp_path, monkeypatch):
    from sklearn.ensemble import RandomForestRegressor

    from hwnas.devices import load_device
    from hwnas.predictors import TreeZPredictor
    from hwnas.predictors._network import one_hot
    space = get_space("nb201")
    table = load_device("pixel3", "nb201")
    networks = table.select(np.random.default_rng(0).permutation(len(table.z))[:5000])
    fitted = TreeZPredictor(n_estimators=30).fit_table(networks, space)
    Z = space.random_z(2000, seed=4)
    expected = fitted.predict_z(space, Z)
    model = RandomForestRegressor(n_estimators=30, random_state=0).fit(
        one_hot(space.n_choices, np.array(networks.z)), networks.values("latency_ms"))
    assert np.array_equal(expected, model.predict(one_hot(space.n_choices, Z)))
    fitted.save(tmp_path / "tree_z.json")

    def no_refit(*args, **kwargs):
        raise AssertionError("a saved tree_z predictor was refitted on load")
    with monkeypatch.context() as m:
        m.setattr(RandomForestRegressor, "fit", no_refit)
        loaded = load_predictor(tmp_path / "tree_z.json")
        assert np.array_equal(loaded.predict_z(space, Z), expected)
        assert np.array_equal(loaded.predict_z_quantile(space, Z, 0.9),
                              fitted.predict_z_quantile(space, Z, 0.9))
        assert loaded.predict_architecture(space.decode(Z[0])) == expected[0]
    # a file that stored the training rows (before the trees were stored) is refitted alike
    doc = json.loads((tmp_path / "tree_z.json").read_text())
    state = doc["state"]
    del state["forest"], state["known"]
    state["z"], state["y"] = [list(z) for z in networks.z], networks.values("latency_ms").tolist()
    (tmp_path / "rows.json").write_text(json.dumps(doc))
    assert np.array_equal(load_predictor(tmp_path / "rows.json").predict_z(space, Z), expected)
    state["z"][0][0] = 9  # a choice the space does not have
    (tmp_path / "rows.json").write_text(json.dumps(doc))
    with pytest.raises(InputError, match="rows.json: corrupt tree_z predictor .*n_choices"):
        load_predictor(tmp_path / "rows.json")


@pytest.mark.parametrize("n", [1, 3, 5000])  # all trees in one numpy step, or 4 at a time
def test_every_tree_of_a_forest_predicts_as_scikit_learn_s(n):
    from sklearn.ensemble import RandomForestRegressor

    from hwnas.predictors._regressors import Forest
    rng = np.random.default_rng(1)
    X, y = rng.random((400, 4)), rng.random(400)
    model = RandomForestRegressor(n_estimators=13, random_state=0).fit(X, y)
    probe = rng.random((n, 4))
    probe[0] = X[0]  # on the thresholds' side of a training row
    expected = np.array([tree.predict(probe.astype(np.float32)) for tree in model.estimators_])
    assert np.array_equal(Forest.from_sklearn(model).members(probe), expected)


def test_a_forest_whose_nodes_share_children_loads_at_once():
    import base64

    from hwnas.predictors._regressors import Forest
    n = 64  # node i splits to i + 1 both ways: 2^63 paths if each were followed
    left = np.append(np.arange(1, n), -1).astype("<i4")

    def array(a):
        return base64.b64encode(a.tobytes()).decode()
    tree = {"left": array(left), "right": array(left), "feature": array(np.zeros(n, "<i2")),
            "split": array(np.ones(n, "<f8"))}
    forest = Forest.from_dict({"n_features": 1, "trees": [tree]}, 1, "forest")
    assert forest.predict(np.zeros((3, 1))).tolist() == [1.0, 1.0, 1.0]


def test_network_predictors_refuse_an_architecture_of_another_space():
    import warnings

    from hwnas.devices import load_device
    from hwnas.predictors import AdditivePredictor, MeasuredPredictor, TreeZPredictor
    space, other = get_space("nb201"), get_space("mobilenet")
    networks = load_device("pixel3", "nb201").select(slice(0, 500))
    arch = other.decode(other.random_z(1, seed=0)[0])
    for predictor in (AdditivePredictor(), MeasuredPredictor(), TreeZPredictor(n_estimators=3)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # choices the first 500 networks never use
            predictor.fit_table(networks, space)
        with pytest.raises(InputError, match=f"the {predictor.kind} predictor was fitted on "
                                             f"space 'nb201', not 'mobilenet'"):
            predictor.predict_architecture(arch)


def test_lookup_anchors_its_fallback_to_the_same_layer_measured_at_other_sizes(tmp_path):
    """Convolutions measured at 8x8, 16x16 and 24x24, each configuration 0.6-1.6 x what its
    MACs say: the linear fallback misprices each alike at every size; anchored to the
    configuration's measured sizes (their measured / predicted ratio, interpolated in area) it
    prices 12x12 and 20x20 close. A layer measured at no size falls back unanchored."""
    from helpers import FP

    from hwnas.tables import LAYER_COLUMNS, LayerTable, TableWriter, Timing, read_layer_table
    configs = [(c, k, out) for c in (4, 8) for k in (1, 3, 5, 7) for out in (8, 16, 24, 32)]
    factor = dict(zip(configs, np.random.default_rng(0).uniform(0.6, 1.6, len(configs))))

    def truth(layer):
        return factor[layer.in_shape[0], layer.kernel, layer.out_channels] * (
            0.05 + 2e-6 * layer.macs)
    path = tmp_path / "layers.csv"
    with TableWriter(path, LAYER_COLUMNS, "key", FP) as w:
        for c, k, out in configs:
            for size in (8, 16, 24):
                layer = Layer("conv", (c, size, size), out, kernel=k)
                ms = truth(layer)
                w.append({"key": layer.key, "op": "conv", "macs": str(layer.macs),
                          "params": str(layer.params),
                          **Timing(ms, ms, ms, ms, 5, 0.0).as_row()})
        once = Layer("conv", (4, 8, 8), 40, kernel=1)  # measured at one size only
        w.append({"key": once.key, "op": "conv", "macs": str(once.macs),
                  "params": str(once.params), **Timing(0.2, 0.2, 0.2, 0.2, 5, 0.0).as_row()})
    p = LookupPredictor(fallback=LinearPredictor(), warn_fallback=False).fit_table(
        read_layer_table(path))
    between = [Layer("conv", (c, s, s), out, kernel=k) for c, k, out in configs
               for s in (12, 20)]
    true = np.array([truth(ly) for ly in between])
    plain = np.abs(p.fallback_.predict_layers(between) / true - 1)
    anchored = np.abs(p.predict_layers(between) / true - 1)
    assert np.median(plain) > 0.15 and np.median(anchored) < 0.05
    assert np.mean(anchored < plain) > 0.8
    factors = p.anchors([Layer("conv", (4, s, s), 40, kernel=1) for s in (4, 8, 12, 40)])
    assert factors == pytest.approx([factors[1]] * 4) and factors[1] != 1.0  # its one ratio
    unknown = Layer("conv", (3, 12, 12), 8, kernel=3)  # 3 input channels: never measured
    assert p.anchors([unknown]) == [1.0]
    assert p.predict_layers([unknown]) == pytest.approx(p.fallback_.predict_layers([unknown]))
    p.save(tmp_path / "p.json")
    loaded = load_predictor(tmp_path / "p.json")
    with pytest.warns(UserWarning, match="predicted by its linear fallback"):  # not saved
        assert loaded.predict_layers(between) == pytest.approx(p.predict_layers(between))
    before, table = p.anchors(between), read_layer_table(path)
    p.fit_table(LayerTable(table.path, table.fingerprint, {  # refit without 24x24: new anchors
        k: v for k, v in table.timings.items() if "x24x24" not in k}))
    assert not np.allclose(p.anchors(between[1::2]), before[1::2])  # 20x20: beyond 16 now
