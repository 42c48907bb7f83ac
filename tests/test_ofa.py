"""The Once-for-All space: structure, costs, OFA's configurations in and out, both backends."""

import json

import numpy as np
import pytest

from hwnas.errors import InputError
from hwnas.spaces import get_space


def bn(c):
    return 4 * c  # gamma, beta, running mean and variance (as nnabla stores them)


def block(cin, out, k, e, se_hidden=None):
    """Parameters of one OFA MBConv block, by hand: 1x1 expansion to cin x e (none at e = 1),
    kxk depthwise, squeeze-and-excite (two 1x1 convs with bias), 1x1 projection."""
    mid = cin * e
    params = 0 if e == 1 else cin * mid + bn(mid)
    params += mid * k * k + bn(mid)
    if se_hidden is not None:
        params += mid * se_hidden + se_hidden + se_hidden * mid + mid
    return params + mid * out + bn(out)


# stem 3 -> 24 (3x3), first block 24 -> 24, final expand 192 -> 1152, mix 1152 -> 1536, fc
FIXED = (24 * 3 * 9 + bn(24)) + block(24, 24, 3, 1) + (192 * 1152 + bn(1152)) + \
    1152 * 1536 + (1536 * 1000 + 1000)


def test_parameter_counts_of_the_smallest_and_largest_subnetworks_by_hand():
    space = get_space("ofa")
    # smallest: every stage 2 blocks of k3 e3; squeeze-and-excite in stages 2, 4, 5, hidden
    # make_divisible(mid // 4, 8): mid 96 -> 24, 144 -> 40, 288 -> 72, 408 -> 104, 576 -> 144
    smallest = FIXED + (block(24, 32, 3, 3) + block(32, 32, 3, 3)) + \
        (block(32, 48, 3, 3, 24) + block(48, 48, 3, 3, 40)) + \
        (block(48, 96, 3, 3) + block(96, 96, 3, 3)) + \
        (block(96, 136, 3, 3, 72) + block(136, 136, 3, 3, 104)) + \
        (block(136, 192, 3, 3, 104) + block(192, 192, 3, 3, 144))
    # largest: every stage 4 blocks of k7 e6: mid 192 -> 48, 288 -> 72, 576 -> 144,
    # 816 -> 208 (204 rounded to 8), 1152 -> 288
    largest = FIXED + (block(24, 32, 7, 6) + 3 * block(32, 32, 7, 6)) + \
        (block(32, 48, 7, 6, 48) + 3 * block(48, 48, 7, 6, 72)) + \
        (block(48, 96, 7, 6) + 3 * block(96, 96, 7, 6)) + \
        (block(96, 136, 7, 6, 144) + 3 * block(136, 136, 7, 6, 208)) + \
        (block(136, 192, 7, 6, 208) + 3 * block(192, 192, 7, 6, 288))
    low = space.decode(space.z_of({"ks": [3] * 20, "e": [3] * 20, "d": [2] * 5, "r": 128}))
    high = space.decode(space.z_of({"ks": [7] * 20, "e": [6] * 20, "d": [4] * 5, "r": 224}))
    assert (low.params, high.params) == (smallest, largest) == (4_617_000, 10_752_464)
    # parameters do not depend on the resolution; MACs do (OFA: 66-843 M; here the pooling
    # of squeeze-and-excite and of the head counts too)
    assert space.decode(space.z_of({"ks": [3] * 20, "e": [3] * 20, "d": [2] * 5,
                                    "r": 224})).params == smallest
    assert 65e6 < low.macs < 67e6 and 843e6 < high.macs < 846e6


def test_widths_follow_make_divisible_and_blocks_their_stage():
    from hwnas.spaces.ofa import widths
    assert widths() == (24, 24, 32, 48, 96, 136, 192, 1152, 1536)
    space = get_space("ofa")
    arch = space.decode(space.z_of({"ks": [5] * 20, "e": [4] * 20, "d": [3] * 5, "r": 160}))
    keys = [layer.key for layer in arch.layers]
    assert keys[0] == "conv(in=3x160x160,out=24,k=3,s=2,g=1,act=h_swish)"
    assert keys[1] == "mbv3(in=24x80x80,out=24,k=3,s=1,e=1,act=relu,se=0)"
    assert keys[2] == "mbv3(in=24x80x80,out=32,k=5,s=2,e=4,act=relu,se=0)"
    assert keys[5] == "mbv3(in=32x40x40,out=48,k=5,s=2,e=4,act=relu,se=1)"
    assert keys[-4:] == ["conv(in=192x5x5,out=1152,k=1,s=1,g=1,act=h_swish)", "gap(in=1152x5x5)",
                         "conv_act(in=1152x1x1,out=1536,k=1,s=1,act=h_swish)",
                         "linear(in=1536x1x1,out=1000)"]
    assert len(arch.layers) == 2 + 15 + 4 and arch.layers[-1].out_shape == (1000, 1, 1)


SHIPPED = ("ks:7-5-5-5-7-7-5-7-5-7-3-7-5-3-7-3-5-3-5-3;e:6-4-4-6-6-3-4-3-3-6-3-3-3-6-3-4-6-4-"
           "3-6;d:2-2-2-2-3;r:204")


def test_ofa_configurations_in_and_out():
    space = get_space("ofa")
    z = space.z_of(SHIPPED)
    config = space.config(z)
    assert config["d"] == [2, 2, 2, 2, 3] and config["r"] == 204
    # skipped blocks are canonical: k3 e3, whatever the string said
    assert config["ks"][:4] == [7, 5, 3, 3] and config["e"][:4] == [6, 4, 3, 3]
    assert space.z_of(config) == z == space.parse_z(space.config_string(z))
    assert space.z_of(json.dumps({**config, "r": [204, 204]})) == z  # image_size as a pair
    assert space.z_of("-".join(map(str, z))) == z
    assert space.describe(z) == space.config_string(z)
    assert z[space.resolution_decision] == (204 - 128) // 4


def test_z_that_differ_only_in_skipped_blocks_are_one_architecture():
    space = get_space("ofa")
    rng = np.random.default_rng(0)
    Z = rng.integers(0, np.asarray(space.n_choices), size=(200, len(space.n_choices)))
    C = space.canonical(Z)
    assert (space.canonical(C) == C).all()
    changed = (C != Z).any(axis=1)
    assert changed.any()
    for z, c in zip(Z[:20], C[:20]):
        assert [ly.key for ly in space.decode(z).layers] == \
            [ly.key for ly in space.decode(c).layers]
        assert space.decode(z).z == tuple(c)
    R = space.random_z(500, 1)
    assert (space.canonical(R) == R).all()
    assert f"{space.size:.3e}" == "5.440e+20"  # 25 x (9^2 + 9^3 + 9^4)^5


@pytest.mark.parametrize("value, message", [
    ({"ks": [3] * 20, "e": [3] * 20, "d": [2] * 5}, "missing 'r'"),
    ({"ks": [3] * 19, "e": [3] * 20, "d": [2] * 5, "r": 128}, "ks must be a list of 20"),
    ({"ks": [3] * 20, "e": [5] * 20, "d": [2] * 5, "r": 128}, r"e\[0\] = 5 is not one of"),
    ({"ks": [3] * 20, "e": [3] * 20, "d": [2] * 5, "r": 130}, r"r\[0\] = 130"),
    ({"ks": [3] * 20, "e": [3] * 20, "d": [1] * 5, "r": 128}, r"d\[0\] = 1"),
    ("ks:3-3;e:3;d:2;r:128;x:1", "not an OFA string"),
    ("ks:3;e:3;d:2;r:128-132", "not an OFA string"),
    ("{not json", "not an OFA configuration"),
])
def test_bad_configurations_name_the_field(value, message):
    with pytest.raises(InputError, match=message):
        get_space("ofa").z_of(value)


def test_costs_are_a_sum_over_running_blocks_within_a_resolution():
    space = get_space("ofa")
    Z = space.random_z(64, 0)
    fixed, C = space.cost_tensor(lambda layers: [ly.macs for ly in layers])
    assert np.array_equal(space.evaluate_tensor(Z, fixed, C),
                          [space.decode(z).macs for z in Z])
    z, least = space.min_z_tensor(fixed, C)
    assert least == space.decode(z).macs == min(space.evaluate_tensor(Z, fixed, C).min(), least)
    assert space.config(z) == {"ks": [3] * 20, "e": [3] * 20, "d": [2] * 5, "r": 128}
    fixed, A = space.peak_tensor()
    peak = [max(fixed[z[-1]], *(A[z[-1], d, z[d]] for d in range(20) if space.active(z)[0, d]))
            for z in Z[:10]]
    assert peak == [space.decode(z).peak_activation_bytes for z in Z[:10]]


def test_reduced_space_for_enumeration():
    from hwnas.spaces import ofa
    space = ofa((128, 160, 224), stages=2, kernels=(3, 5), expands=(3, 6), depths=(1, 2))
    assert space.name == "ofa-reduced" and space.n_choices == (4, 4, 4, 4, 2, 2, 3)
    assert space.size == 3 * (4 + 16) ** 2
    arch = space.decode(space.z_of({"ks": [5, 3, 3, 3], "e": [6, 3, 3, 3], "d": [1, 2],
                                    "r": 160}))
    assert [ly.op for ly in arch.layers].count("mbv3") == 1 + 3


SMALLEST = {"ks": [3] * 20, "e": [3] * 20, "d": [2] * 5, "r": 128}


def test_smallest_subnetwork_builds_in_onnx_with_its_parameters():
    pytest.importorskip("onnx")
    from hwnas.profile import to_onnx
    space = get_space("ofa")
    arch = space.decode(space.z_of(SMALLEST))
    model = to_onnx(arch.graph)
    count = sum(int(np.prod(t.dims)) for t in model.graph.initializer
                if t.name not in ("zero", "six"))
    assert count == arch.params
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 3, 128, 128]


@pytest.mark.nnabla
def test_smallest_subnetwork_builds_in_nnabla_with_its_parameters():
    import collections

    import nnabla as nn

    from hwnas.profile._nnabla import build
    space = get_space("ofa")
    arch = space.decode(space.z_of({**SMALLEST, "r": 132}))
    params = collections.OrderedDict()
    with nn.parameter_scope("ofa", params):
        x = nn.Variable((1, 3, 132, 132))
        x.d = np.random.default_rng(0).standard_normal(x.shape)
        y, _ = build(arch.graph, x)
        count = sum(int(np.prod(p.shape)) for p in nn.get_parameters(grad_only=False).values())
    y.forward()
    assert count == arch.params and y.shape == (1, 1000) and np.isfinite(y.d).all()


def test_profile_from_ofa_configurations_writes_ofa_strings(tmp_path):
    from helpers import FAST_ARGS, hwnas

    from hwnas.tables import read_network_table
    space = get_space("ofa")
    configs = tmp_path / "subnets.json"  # as HELP and OFA publish them
    configs.write_text(json.dumps([SMALLEST, {**SMALLEST, "ks": [5] * 20, "r": 136}]))
    out = tmp_path / "nets.csv"
    run = hwnas("profile", "--space", "ofa", "--backend", "onnxruntime", *FAST_ARGS,
                "--from", configs, "--out", out)
    assert run.returncode == 0, run.stderr
    lines = out.read_text().splitlines()
    assert lines[1].split(",")[1].startswith("ks:3-3-3-3-3-3")  # the shipped tables' form
    table = read_network_table(out)
    assert [space.config(z) for z in table.z] == [SMALLEST, {
        **SMALLEST, "ks": [5, 5, 3, 3] * 5, "r": 136}]  # skipped blocks canonical
    listing = tmp_path / "z.txt"
    listing.write_text(json.dumps(SMALLEST) + "\n" + space.config_string(table.z[1]) + "\n")
    again = hwnas("profile", "--space", "ofa", "--backend", "onnxruntime", *FAST_ARGS,
                  "--from", listing, "--out", out)
    assert again.returncode == 0 and "2 networks (0 measured now)" in again.stdout


def test_export_manifest_carries_resolution_and_configuration(tmp_path):
    from hwnas.profile._export import export_for_device
    space = get_space("ofa")
    z = space.z_of({**SMALLEST, "r": 140})
    manifest = json.loads(export_for_device(tmp_path / "out", space, [z]).read_text())
    unit = manifest["units"][0]
    assert unit["input_shape"] == [1, 3, 140, 140] and unit["config"]["r"] == 140
    assert unit["z"] == unit["id"] == space.config_string(z)
    assert unit["file"].startswith("networks/") and ";" not in unit["file"]


# --- exact search where it stays exact: brute force on a reduced OFA -------------------------

@pytest.fixture(scope="module")
def reduced(tmp_path_factory):
    """A reduced OFA (2 stages of up to 2 blocks, kernels 3/5, expands 3/6, depths 1/2,
    3 resolutions: 1,200 architectures) with two lookup predictors from real layer tables."""
    from helpers import write_table

    from hwnas.predictors import LookupPredictor
    from hwnas.spaces import ofa
    from hwnas.spaces._exact import every_z
    from hwnas.tables import read_layer_table
    space = ofa((128, 160, 224), stages=2, kernels=(3, 5), expands=(3, 6), depths=(1, 2))
    folder = tmp_path_factory.mktemp("reduced")
    predictors = []
    for name, layers in (("a", space.unique_layers()[::-1]), ("b", space.unique_layers())):
        write_table(folder / f"{name}.csv", layers)  # 0.1, 0.2, ... ms in that order
        predictors.append(LookupPredictor().fit_table(read_layer_table(folder / f"{name}.csv")))
    Z = np.unique(space.check_z(every_z(space.n_choices)), axis=0)
    assert len(Z) == space.size == 1200
    archs = [space.decode(z) for z in Z]
    truth = {"z": Z, "macs": np.array([a.macs for a in archs]),
             "peak": np.array([a.peak_activation_bytes for a in archs]),
             "a": np.array([predictors[0].predict_architecture(a) for a in archs]),
             "b": np.array([predictors[1].predict_architecture(a) for a in archs])}
    return space, predictors, truth


def best_macs(truth, ok, top=5):
    return sorted(truth["macs"][ok], reverse=True)[:top]


def test_exact_sampler_matches_brute_force_with_activation_and_fleet_budgets(reduced):
    from hwnas.search import run_study
    from hwnas.search._fleet import DeviceBudget
    space, (a, b), truth = reduced
    assert np.allclose(a.predict_z(space, truth["z"]), truth["a"])  # per resolution, exact
    budget = float(np.quantile(truth["a"], 0.3))
    result = run_study(space, a, budget, sampler="exact", top=5)
    assert [c.macs for c in result.best] == best_macs(truth, truth["a"] <= budget)
    assert result.min_latency_ms == pytest.approx(truth["a"].min())
    assert all(c.predicted_latency_ms <= budget and c.config["r"] in (128, 160, 224)
               for c in result.best)
    peak = float(np.quantile(truth["peak"], 0.5))
    capped = run_study(space, a, budget, sampler="exact", top=5, max_activation_bytes=peak)
    assert [c.macs for c in capped.best] == best_macs(
        truth, (truth["a"] <= budget) & (truth["peak"] <= peak))
    limit = float(np.quantile(truth["b"], 0.4))
    fleet = run_study(space, a, budget, sampler="exact", top=5,
                   fleet=(DeviceBudget("other", b, limit),))
    assert [c.macs for c in fleet.best] == best_macs(
        truth, (truth["a"] <= budget) & (truth["b"] <= limit))


def test_feasible_sampler_proposes_canonical_z_within_the_budget_only(reduced):
    import optuna

    from hwnas.search import FeasibleSampler
    from hwnas.search._feasible import suggest_z
    space, (a, _), truth = reduced
    budget = float(np.quantile(truth["a"], 0.2))
    for base in (optuna.samplers.TPESampler(seed=0), optuna.samplers.RandomSampler(seed=0)):
        sampler = FeasibleSampler.for_budget(space, a, budget, base, seed=0)
        study = optuna.create_study(direction="maximize", sampler=sampler)
        study.optimize(lambda trial: float(space.decode(suggest_z(trial, space)).macs),
                       n_trials=40)
        names = [d.name for d in space.decisions]
        Z = np.array([[t.params[n] for n in names] for t in study.trials])
        assert (a.predict_z(space, Z) <= budget + 1e-9).all()
        assert (space.check_z(Z) == Z).all()  # skipped blocks at choice 0: no duplicates


def test_default_study_starts_from_the_exact_optimum(reduced):
    from hwnas.search import run_study
    space, (a, _), truth = reduced
    budget = float(np.quantile(truth["a"], 0.5))
    result = run_study(space, a, budget, n_trials=5, seed=0)
    assert result.best[0].macs == best_macs(truth, truth["a"] <= budget)[0]
    assert len({c.z for c in result.best}) == len(result.best)


# --- the shipped GPU tables -------------------------------------------------------------------

def test_shipped_tables_read_the_shared_z_form_and_an_additive_model_ranks_held_out_networks():
    from scipy.stats import spearmanr

    from hwnas.devices import load_device
    from hwnas.predictors import AdditivePredictor, NotAdditiveError
    space = get_space("ofa")
    table = load_device("v100_64", "ofa")
    # the first row of the shared ofa-v100_64.csv.gz, value for value
    assert table.values()[table.z.index(space.z_of(SHIPPED))] == 21.807122230529785
    rows = np.random.default_rng(0).permutation(len(table.z))
    train, test = table.select(rows[:1000]), table.select(rows[1000:2000])
    model = AdditivePredictor().fit_table(train, space)
    predicted = model.predict_z(space, np.array(test.z))
    assert spearmanr(predicted, test.values())[0] > 0.99
    fixed, C = model.cost_tensor(space)
    assert fixed.shape == (25,) and C.shape == (25, 26, 25) and (C >= 0).all()
    with pytest.raises(NotAdditiveError, match="within its slices only"):
        model.cost_matrix(space)


def test_search_offline_on_a_shipped_gpu_answers_with_an_ofa_configuration(tmp_path):
    from helpers import hwnas
    out = tmp_path / "result.json"
    run = hwnas("search", "--space", "ofa", "--device", "v100_64", "--budget-ms", "20",
                "--trials", "20", "--seed", "0", "--json", out, "--quiet")
    assert run.returncode == 0, run.stderr
    best = json.loads(out.read_text())["best"][0]
    assert best["predicted_latency_ms"] <= 20
    assert set(best["config"]) == {"ks", "e", "d", "r"} and len(best["config"]["ks"]) == 20
    assert best["notation"] == get_space("ofa").config_string(best["z"])
    assert f"r:{best['config']['r']}" in run.stdout


# --- predictors for a space that is not a plain sum ------------------------------------------

@pytest.fixture(scope="module")
def v100_1():
    from hwnas.devices import load_device
    table = load_device("v100_1", "ofa")
    rows = np.random.default_rng(0).permutation(len(table.z))
    return table.select(rows[:600]), table.select(rows[600:1200])


@pytest.mark.parametrize("kind", ["additive", "additive_features", "tree_z", "measured"])
def test_every_network_predictor_kind_handles_resolution_and_depth(kind, v100_1, tmp_path):
    from scipy.stats import spearmanr

    from hwnas.predictors import KINDS, UnmeasuredError, load_predictor
    space = get_space("ofa")
    train, test = v100_1
    model = KINDS[kind](**({"n_estimators": 20} if kind == "tree_z" else {})).fit_table(
        train, space)
    model.save(tmp_path / "p.json")
    loaded = load_predictor(tmp_path / "p.json")
    if kind == "measured":  # exact on what it measured, and says so for the rest
        assert np.array_equal(loaded.predict_z(space, np.array(train.z)), train.values())
        with pytest.raises(UnmeasuredError):
            loaded.predict_z(space, np.array(test.z[:1]))
        return
    predicted = loaded.predict_z(space, np.array(test.z))
    assert np.allclose(predicted, model.predict_z(space, np.array(test.z)))
    assert spearmanr(predicted, test.values())[0] > 0.7  # batch 1: launch-bound, noisy
    arch = space.decode(test.z[0])
    assert loaded.predict_architecture(arch) == pytest.approx(predicted[0])


def test_layer_predictors_price_every_resolution_through_the_unique_layers(tmp_path):
    from helpers import write_table

    from hwnas.predictors import LinearPredictor, LookupPredictor, UnseenLayerError
    from hwnas.tables import read_layer_table
    space = get_space("ofa")
    at_224 = [group[-1] for d in space.decisions[:20] for group in d.layers]
    layers = list(dict.fromkeys(at_224 + list(space.decisions[-1].layers[-1] + space.head)))
    write_table(tmp_path / "l.csv", layers)  # every layer of r = 224 only
    table = read_layer_table(tmp_path / "l.csv")
    assert LookupPredictor().fit_table(table).predict_z(space, [space.z_of({**SMALLEST, "r": 224})])
    z = space.z_of(SMALLEST)  # r = 128
    with pytest.raises(UnseenLayerError, match="not in the lookup table"):
        LookupPredictor().fit_table(table).predict_z(space, [z])
    with pytest.warns(UserWarning, match="fallback"):
        fallback = LookupPredictor(fallback=LinearPredictor()).fit_table(table)
        assert fallback.predict_z(space, [z])[0] > 0


def test_profile_measures_three_resolutions_and_fit_predicts_the_others(tmp_path):
    from helpers import hwnas

    from hwnas.predictors import load_predictor
    from hwnas.tables import read_layer_table
    space = get_space("ofa")
    out = tmp_path / "layers.csv"
    run = hwnas("profile", "--space", "ofa", "--backend", "simulated", "--context", "quiet",
                "--out", out, "--quiet")
    assert run.returncode == 0, run.stderr
    assert len(read_layer_table(out).timings) == len(space.layers_to_measure()) < 300
    assert "--fallback linear" in run.stdout and "--all-layers" in run.stdout
    fit = hwnas("fit", "--layers", out, "--model", "lookup", "--fallback", "linear",
                "--out", tmp_path / "p.json")
    assert fit.returncode == 0, fit.stderr
    predictor = load_predictor(tmp_path / "p.json")
    z = space.z_of({**SMALLEST, "r": 200})  # no layer of r = 200 was measured
    with pytest.warns(UserWarning, match="predicted by its linear fallback"):
        assert predictor.predict_z(space, [z])[0] > 0
    export = hwnas("profile", "--space", "ofa", "--export", tmp_path / "to_device")
    assert export.returncode == 0, export.stderr
    units = json.loads((tmp_path / "to_device" / "manifest.json").read_text())["units"]
    assert len(units) == len(space.layers_to_measure()) and "--fallback linear" in export.stdout
    refused = hwnas("profile", "--space", "ofa", "--networks", "3", "--all-layers", "--out",
                    tmp_path / "n.csv")
    assert refused.returncode == 2 and "--all-layers is for layers" in refused.stderr


def test_fit_transfer_and_profile_design_transfer_work_on_ofa(tmp_path):
    from helpers import hwnas

    from hwnas.devices import device_matrix, load_device
    from hwnas.predictors import transfer_design
    space = get_space("ofa")
    export = tmp_path / "to_gpu"
    run = hwnas("profile", "--space", "ofa", "--networks", "10", "--design", "transfer",
                "--export", export)
    assert run.returncode == 0, run.stderr
    manifest = json.loads((export / "manifest.json").read_text())
    Z = [space.z_of(u["config"]) for u in manifest["units"]]
    assert Z == [tuple(z) for z in transfer_design(device_matrix("ofa"), space, 10).tolist()]
    # the GPU's runner would write these rows: v100_1's own latencies stand in for them
    table = load_device("v100_1", "ofa")
    rows = {z: i for i, z in enumerate(table.z)}
    measured = tmp_path / "networks.csv"
    measured.write_text("space,z,latency_ms\n" + "".join(
        f"ofa,{space.config_string(z)},{table.values()[rows[z]]}\n" for z in Z))
    fit = hwnas("fit", "--model", "transfer", "--networks", measured, "--device", "new gpu",
                "--out", tmp_path / "p.json")
    assert fit.returncode == 0, fit.stderr
    assert "leaned on the shipped devices" in fit.stdout and "v100_1" in fit.stdout  # itself
    score = hwnas("evaluate", "--predictor", tmp_path / "p.json", "--device", "v100_1",
                  "--space", "ofa", "--json", tmp_path / "m.json")
    assert score.returncode == 0, score.stderr
    assert json.loads((tmp_path / "m.json").read_text())["spearman_rho"] > 0.85


# --- this machine: time, not runs; a few resolutions measured, the rest predicted ------------

def test_a_unit_slower_than_a_round_is_warmed_and_timed_once_a_round():
    from hwnas.profile._stats import time_rounds
    now = [0.0]
    calls = {"slow": 0, "fast": 0}

    def unit(name, seconds):
        def run():
            calls[name] += 1
            now[0] += seconds
        return run
    rounds = time_rounds([unit("slow", 0.2), unit("fast", 0.001)], warmup=2, runs=10,
                         rounds=4, max_round_s=0.03, min_runs=3, clock=lambda: now[0],
                         min_round_s=0)
    assert [len(r) for r in rounds[0]] == [1] * 4 and calls["slow"] == 4 * 2  # time, not runs
    assert [len(r) for r in rounds[1]] == [10] * 4 and calls["fast"] == 4 * 12  # as before


def test_the_default_flow_measures_three_resolutions_and_predicts_the_others(tmp_path):
    from helpers import write_table

    from hwnas.profile import calibration_z, layer_predictor
    from hwnas.tables import read_layer_table
    space = get_space("ofa")
    layers = space.layers_to_measure()
    sizes = {ly.in_shape[1] for ly in layers if ly.op == "conv" and ly.in_shape[0] == 3}
    assert sizes == {128, 176, 224} and len(layers) < len(space.unique_layers()) / 4
    write_table(tmp_path / "l.csv", layers)
    predictor = layer_predictor(space, read_layer_table(tmp_path / "l.csv"))
    Z = space.random_z(20, 0)
    assert (predictor.predict_z(space, Z) > 0).all()  # every resolution, no warning
    Z = calibration_z(space, 4)
    assert len(Z) <= 13 and {space.config(z)["r"] for z in Z} >= {128, 224}


def test_search_on_the_simulated_device_measures_calibrates_searches_and_verifies(tmp_path):
    from helpers import hwnas

    from hwnas.profile import device_folder, get_backend
    out = tmp_path / "result.json"
    run = hwnas("search", "--space", "ofa", "--backend", "simulated", "--context", "quiet",
                "--budget-ms", "100", "--json", out, "--quiet",
                env={"HWNAS_CACHE": tmp_path / "cache"})
    assert run.returncode == 0, run.stderr
    result = json.loads(out.read_text())
    assert result["verified"] and result["best"][0]["config"]["r"] in range(128, 225, 4)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HWNAS_CACHE", str(tmp_path / "cache"))
        folder = device_folder(get_backend("simulated", context="quiet", device_id=0))
    rows = (folder / "layers.csv").read_text().splitlines()
    assert len(rows) - 1 == len(get_space("ofa").layers_to_measure())  # not all 1,257
