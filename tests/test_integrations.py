"""LatencyPenalty and the NNabla NAS estimators, searcher and command line."""

import pathlib
import runpy
import subprocess
import sys

import numpy as np
import pytest
from helpers import check_training_example, network_table, synthetic_table

from hwnas.errors import InputError
from hwnas.integrations import LatencyPenalty
from hwnas.predictors import CalibratedPredictor, LookupPredictor
from hwnas.spaces import get_space

ROOT = pathlib.Path(__file__).parent.parent


@pytest.fixture
def penalty(tmp_path):
    return LatencyPenalty(
        get_space("mobilenet"), LookupPredictor().fit_table(synthetic_table(tmp_path)))


def one_hot_probs(penalty, z):
    probs = np.zeros_like(penalty.C)
    probs[np.arange(len(z)), z] = 1.0
    return probs


def test_expected_latency_of_one_hot_probs_is_the_latency(penalty):
    space = penalty.space
    for z in space.random_z(10, seed=0):
        expected = penalty.predictor.predict_z(space, z)[0]
        assert penalty.latency(z) == pytest.approx(expected)
        assert penalty.expected_latency(one_hot_probs(penalty, z)) == pytest.approx(expected)
    with pytest.raises(InputError, match=r"probs must have shape \(21, 7\)"):
        penalty.expected_latency(np.ones((21, 6)))


FORMS = {"multiplicative": (LatencyPenalty.multiplicative_loss, "beta", 0.6),
         "log": (LatencyPenalty.log_loss, "lam", 0.3),
         "additive": (LatencyPenalty.additive_loss, "lam", 0.3)}


@pytest.mark.parametrize("form", FORMS)
def test_loss_forms_rise_with_latency_at_every_scale(form):
    loss, weight_name, weight = FORMS[form]
    for ref_ms in (1e-3, 0.3, 0.5, 1.0, 2.0, 5.0, 1e3):
        assert loss(2.0, ref_ms, ref_ms, **{weight_name: weight}) == pytest.approx(2.0)
        latencies = ref_ms * np.array([0.1, 0.5, 0.9, 1.0, 1.1, 2.0, 10.0])
        values = np.array([loss(2.0, lat, ref_ms, **{weight_name: weight}) for lat in latencies])
        assert np.all(np.isfinite(values)), (ref_ms, values)
        assert np.all(np.diff(values) > 0), (ref_ms, values)  # strictly increasing
        # scale-free: the same latency ratios give the same losses at every reference
        same = [loss(2.0, 5.0 * lat / ref_ms, 5.0, **{weight_name: weight}) for lat in latencies]
        np.testing.assert_allclose(values, same, rtol=1e-12)


def test_loss_and_reward_arguments_are_checked():
    for bad in (0.0, -1.0, float("nan"), float("inf"), "x"):
        with pytest.raises(InputError, match="ref_ms"):
            LatencyPenalty.multiplicative_loss(1.0, 2.0, ref_ms=bad)
        with pytest.raises(InputError, match="bound_ms"):
            LatencyPenalty.reward(0.9, 2.0, bound_ms=bad)
    with pytest.raises(InputError, match="beta must be a finite number > 0"):
        LatencyPenalty.multiplicative_loss(1.0, 2.0, ref_ms=1.0, beta=0.0)
    with pytest.raises(InputError, match="lam must be a finite number >= 0"):
        LatencyPenalty.log_loss(1.0, 2.0, ref_ms=1.0, lam=-0.1)
    with pytest.raises(InputError, match="expected latency must be finite and > 0"):
        LatencyPenalty.log_loss(1.0, 0.0, ref_ms=1.0)
    with pytest.raises(InputError, match="weight must be a finite number >= 0"):
        LatencyPenalty.reward(0.9, 2.0, bound_ms=5.0, weight=-1)
    assert LatencyPenalty.reward(0.9, 4.0, bound_ms=5.0) == pytest.approx(0.9)
    assert LatencyPenalty.reward(0.9, 10.0, bound_ms=5.0, weight=0.5) == \
        pytest.approx(0.9 * 0.5 ** 0.5)
    assert LatencyPenalty.reward(0.9, 0.2, bound_ms=0.1, weight=1.0) == pytest.approx(0.45)


def softmax_probs(logits, mask):
    masked = np.where(mask, logits, -np.inf)
    p = np.exp(masked - masked.max(axis=1, keepdims=True))
    return p / p.sum(axis=1, keepdims=True)


def loss_np(penalty, form, logits, ce, ref_ms):
    """The loss of architecture logits in float64 numpy."""
    e = penalty.expected_latency(softmax_probs(logits, penalty.mask))
    if form == "expected":
        return e
    loss, weight_name, weight = FORMS[form]
    return loss(ce, e, ref_ms, **{weight_name: weight})


def analytic_grad(penalty, form, logits, ce, ref_ms, scale=1.0):
    """d loss / d logits by the chain rule through E, the expected latency: dL/dE is a central
    difference of the real loss form in E (no copy of its formula here), dE/dlogits is
    p (C - E_d) with E_d = sum_c p C per decision and C the predictor's own cost matrix (times
    ``scale``): what the real loss's gradient must be if it prices architectures as claimed."""
    p = softmax_probs(logits, penalty.mask)
    e = penalty.expected_latency(p)
    if form == "expected":
        dl_de = 1.0
    else:
        loss, weight_name, weight = FORMS[form]
        h = 1e-6 * e
        dl_de = (loss(ce, e + h, ref_ms, **{weight_name: weight})
                 - loss(ce, e - h, ref_ms, **{weight_name: weight})) / (2 * h)
    C = scale * np.where(penalty.mask, penalty.predictor.cost_matrix(penalty.space)[1], 0.0)
    per_decision = (p * C).sum(axis=1, keepdims=True)
    return dl_de * p * (C - per_decision)


def finite_difference(penalty, form, logits, ce, ref_ms, d, c, eps=1e-6):
    bump = np.zeros_like(logits)
    bump[d, c] = eps
    return (loss_np(penalty, form, logits + bump, ce, ref_ms)
            - loss_np(penalty, form, logits - bump, ce, ref_ms)) / (2 * eps)


CELLS = [(0, 0), (1, 6), (5, 3), (20, 2)]


@pytest.mark.parametrize("form", ["expected", *FORMS])
@pytest.mark.parametrize("scale", [1e-3, 1.0])  # the table's latencies in s-like and ms units
def test_numpy_gradients_match_finite_differences(penalty, form, scale):
    penalty.C, penalty.fixed = penalty.C * scale, penalty.fixed * scale
    logits = np.random.default_rng(0).standard_normal(penalty.C.shape)
    ref_ms = 0.8 * penalty.expected_latency(softmax_probs(logits, penalty.mask))
    grad = analytic_grad(penalty, form, logits, 1.3, ref_ms, scale)
    for d, c in CELLS:
        numeric = finite_difference(penalty, form, logits, 1.3, ref_ms, d, c)
        assert grad[d, c] == pytest.approx(numeric, rel=1e-5, abs=1e-9 * scale), (d, c)
    assert np.all(grad[~penalty.mask] == 0)


@pytest.mark.nnabla
@pytest.mark.parametrize("form", ["expected", *FORMS])
@pytest.mark.parametrize("ref_ms", [0.5, 1.0, 20.0])  # 0.5 and 1.0 broke the log-ratio form
def test_nnabla_gradients_match_finite_differences_and_analytic(penalty, form, ref_ms):
    import nnabla as nn
    import nnabla.functions as F

    logits = np.random.default_rng(0).standard_normal(penalty.C.shape)
    alpha = nn.Variable.from_numpy_array(logits, need_grad=True)
    masked = alpha + nn.Variable.from_numpy_array(np.where(penalty.mask, 0.0, -1e9))
    e = penalty.expected_latency(F.softmax(masked, axis=1))
    ce = nn.Variable.from_numpy_array(np.array(1.3))
    loss = e if form == "expected" else \
        FORMS[form][0](ce, e, ref_ms, **{FORMS[form][1]: FORMS[form][2]})
    loss.forward()
    alpha.grad.zero()
    loss.backward()
    assert float(loss.d) == pytest.approx(loss_np(penalty, form, logits, 1.3, ref_ms), rel=1e-5)
    analytic = analytic_grad(penalty, form, logits, 1.3, ref_ms)
    for d, c in CELLS:
        numeric = finite_difference(penalty, form, logits, 1.3, ref_ms, d, c, eps=1e-5)
        assert alpha.g[d, c] == pytest.approx(numeric, rel=1e-3, abs=1e-6), (d, c)
        assert alpha.g[d, c] == pytest.approx(analytic[d, c], rel=1e-3, abs=1e-6), (d, c)
    assert abs(alpha.g[~penalty.mask]).max() < 1e-6  # no gradient into impossible choices


def test_estimator_module_imports_without_nnabla_and_says_what_is_missing():
    """In the core env (no nnabla) the module imports; naming an estimator raises
    MissingDependency, never a bare ImportError at import time."""
    code = ("import sys; sys.modules['nnabla_nas'] = None\n"
            "import hwnas.integrations.nnabla_nas as m\n"
            "from hwnas._imports import MissingDependency\n"
            "try:\n    m.HwnasLatencyEstimator\nexcept MissingDependency as e:\n"
            "    print('missing:', e)\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "missing: the NNabla NAS integration needs nnabla_nas" in run.stdout


@pytest.fixture(scope="module")
def searchnet():
    from hwnas.integrations.nnabla_nas import import_nnabla_nas
    import_nnabla_nas()
    import nnabla as nn
    from nnabla_nas.contrib.classification.mobilenet import SearchNet
    net = SearchNet(num_classes=10, mode="sample")
    net(nn.Variable((1, 3, 32, 32)))
    return net


@pytest.mark.nnabla
def test_searchnet_z_maps_both_ways_onto_the_same_layers(searchnet):
    from hwnas.integrations.nnabla_nas import get_z, module_layers, set_z
    space = get_space("mobilenet")
    for z in space.random_z(10, seed=1):
        set_z(searchnet, z, space)
        assert get_z(searchnet) == tuple(z)
        layers, _, out = module_layers(searchnet, (3, 32, 32))
        assert [ly.key for ly in layers] == [ly.key for ly in space.decode(z).layers]
        assert out == (10, 1, 1)
    with pytest.raises(ValueError, match="out of range"):
        set_z(searchnet, [6] + [0] * 20, space)


@pytest.mark.nnabla
def test_graphs_of_sampled_architectures_map_onto_the_same_layers(searchnet):
    """The graph path: the nnabla graph a sampled SearchNet builds maps to the layers of the
    sampled z (expand + depthwise + projection [+ residual add] -> mbconv)."""
    import nnabla as nn

    from hwnas.integrations.nnabla_nas import get_z, graph_layers
    space = get_space("mobilenet")
    searchnet.apply(training=False)
    for _ in range(5):
        out = searchnet(nn.Variable((1, 3, 32, 32)))  # sample mode: samples an architecture
        layers, extra_ms = graph_layers(out)
        assert [ly.key for ly in layers] == \
            [ly.key for ly in space.decode(get_z(searchnet)).layers]
        assert extra_ms == 0.0


@pytest.mark.nnabla
def test_estimators_are_nnabla_nas_estimators_and_equal_the_prediction(searchnet, tmp_path,
                                                                       mobilenet_table):
    import nnabla as nn
    from nnabla_nas.utils.estimator.latency import LatencyEstimator, LatencyGraphEstimator

    from hwnas.integrations.nnabla_nas import (
        HwnasLatencyEstimator,
        HwnasLatencyGraphEstimator,
        get_z,
        set_z,
    )
    space = get_space("mobilenet")
    lookup = LookupPredictor().fit_table(mobilenet_table)
    Z = space.random_z(6, seed=2)
    nets = network_table(tmp_path / "n.csv", space, Z, lookup.predict_z(space, Z) * 1.2 + 0.3,
                         mobilenet_table.fingerprint)
    calibrated = CalibratedPredictor(lookup).fit_table(nets, space)
    calibrated.save(tmp_path / "p.json")
    for predictor in (lookup, calibrated, str(tmp_path / "p.json")):
        estimator = HwnasLatencyEstimator(predictor, bound_ms=5.0, weight=0.1)
        graph_estimator = HwnasLatencyGraphEstimator(predictor, bound=5.0, weight=0.1)
        assert estimator.bound_ms == graph_estimator.bound_ms == graph_estimator._bound == 5.0
        assert isinstance(estimator, LatencyEstimator)
        assert isinstance(graph_estimator, LatencyGraphEstimator)
        fitted = estimator.predictor
        for z in space.random_z(3, seed=3):
            set_z(searchnet, z)
            assert estimator.get_estimation(searchnet) == pytest.approx(
                fitted.predict_z(space, z)[0])
            block = [m for _, m in searchnet.get_modules()
                     if type(m).__name__ == "ChoiceBlock"][0]
            assert estimator.predict(block) == pytest.approx(
                fitted.predict_layers(list(space.decode(z).layers[2:3]))[0])
        out = searchnet(nn.Variable((1, 3, 32, 32)))
        assert graph_estimator.get_estimation(out) == pytest.approx(
            fitted.predict_z(space, get_z(searchnet))[0])
    with pytest.raises(InputError, match="bound must be a latency in ms > 0"):
        HwnasLatencyEstimator(lookup, bound=0)
    with pytest.raises(InputError, match="bound_ms must be a latency in ms > 0"):
        HwnasLatencyGraphEstimator(lookup, bound_ms=-1)
    with pytest.raises(InputError, match="give bound_ms or bound .* not both"):
        HwnasLatencyEstimator(lookup, bound_ms=5, bound=5)
    with pytest.raises(InputError, match="missing.json: cannot read the predictor"):
        HwnasLatencyGraphEstimator(str(tmp_path / "missing.json"))
    with pytest.raises(InputError, match="predictor must be a fitted hwnas Predictor"):
        HwnasLatencyEstimator(42)


@pytest.mark.nnabla
def test_unmappable_modules_are_errors_or_go_to_the_fallback(mobilenet_table):
    import nnabla as nn

    from hwnas.integrations.nnabla_nas import (
        HwnasLatencyEstimator,
        HwnasLatencyGraphEstimator,
        UnmappedModuleError,
        import_nnabla_nas,
    )
    Mo = import_nnabla_nas().module
    net = Mo.Sequential(Mo.Conv(3, 8, (3, 3), pad=(1, 1), with_bias=False),
                        Mo.BatchNormalization(8, 4), Mo.ReLU6(), Mo.MaxPool((2, 2)))
    out = net(nn.Variable((1, 3, 8, 8)))
    estimator = HwnasLatencyEstimator(LookupPredictor().fit_table(mobilenet_table))
    with pytest.raises(UnmappedModuleError, match="cannot map MaxPool"):
        estimator.get_estimation(net)
    with pytest.raises(UnmappedModuleError, match="cannot map nnabla function MaxPooling"):
        HwnasLatencyGraphEstimator(estimator.predictor).get_estimation(out)
    from hwnas.predictors import LinearPredictor
    linear = LinearPredictor().fit_table(mobilenet_table)
    conv = linear.predict_layers([__import__("hwnas").Layer("conv", (3, 8, 8), 8, kernel=3)])[0]
    with_fallback = HwnasLatencyEstimator(linear, fallback=lambda module, shape: 0.25)
    assert with_fallback.get_estimation(net) == pytest.approx(conv + 0.25)
    graph_fallback = HwnasLatencyGraphEstimator(linear, fallback=lambda f, shape: 0.25)
    assert graph_fallback.get_estimation(out) == pytest.approx(conv + 0.25)


def parameters_of(module) -> dict:
    # every ``.d`` read imports nnabla_ext.cpu, relative first (Python 2 style): a search for
    # ``nnabla.nnabla_ext``, which does not exist, costs 40 us under pytest's import hook (15
    # s of the searcher test's snapshots); named as what the absolute import gives, it is free
    import nnabla_ext.cpu
    sys.modules.setdefault("nnabla.nnabla_ext", sys.modules["nnabla_ext"])
    sys.modules.setdefault("nnabla.nnabla_ext.cpu", nnabla_ext.cpu)
    return {k: v.d.copy() for k, v in module.get_parameters().items()}


def same_parameters(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


@pytest.mark.nnabla
def test_the_weights_check_catches_nnabla_nas_own_estimator_zeroing_them():
    """The check used below is real: NNabla NAS's own LatencyEstimator zeroes what it
    profiles, and ``same_parameters`` sees it."""
    import nnabla as nn

    from hwnas.integrations.nnabla_nas import import_nnabla_nas
    import_nnabla_nas()  # first: it registers what the broken wheel lacks
    import nnabla_nas.module as Mo
    from nnabla_nas.utils.estimator.latency import LatencyEstimator
    conv = Mo.Conv(3, 4, (3, 3), pad=(1, 1), with_bias=False)
    conv(nn.Variable((1, 3, 8, 8)))
    before = parameters_of(conv)
    assert np.abs(before[next(iter(before))]).sum() > 0
    LatencyEstimator(device_id=0, ext_name="cpu", n_run=1, n_warmup=0).predict(conv)
    assert not same_parameters(before, parameters_of(conv))


class DigitsLoader:
    """NNabla NAS's dataloader interface (``next``, ``__len__``, ``transform``) over scikit-
    learn's 8x8 digits, scaled to 3x32x32 in memory."""

    def __init__(self, start: int, n: int, batch_size: int):
        from sklearn.datasets import load_digits
        digits = load_digits()
        images = np.kron(digits.images[start:start + n] / 16.0, np.ones((4, 4)))
        self.x = np.repeat(images[:, None], 3, axis=1).astype(np.float32)
        self.y = digits.target[start:start + n, None]
        self.batch_size, self.position, self.transform = batch_size, 0, None

    def __len__(self) -> int:
        return len(self.x)

    def next(self) -> dict:
        rows = np.arange(self.position, self.position + self.batch_size) % len(self.x)
        self.position += self.batch_size
        return {"inputs": [self.x[rows]], "targets": [self.y[rows]]}


@pytest.fixture
def hydra_run_dir(tmp_path, monkeypatch):
    """NNabla NAS's runners read their output folder from Hydra's configuration."""
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "config.yaml").write_text("hydra:\n  run:\n    dir: log\n"
                                                   "  output_subdir: .hydra\n")
    monkeypatch.chdir(tmp_path)
    with initialize_config_dir(config_dir=str(tmp_path / "conf"), version_base="1.3"):
        cfg = compose("config", return_hydra_config=True,
                      overrides=[f"hydra.runtime.cwd={tmp_path}"])
    HydraConfig.instance().set_config(cfg)
    yield tmp_path / "log"
    HydraConfig.instance().cfg = None


@pytest.mark.nnabla
def test_nnabla_nas_proxylessnas_searcher_runs_with_the_hwnas_estimators(
        mobilenet_table, hydra_run_dir, capsys):
    """NNabla NAS's own ProxylessNasSearcher, two iterations (10 sampled architectures each) on
    its MobileNet SearchNet with both hwnas estimators as regularizers (module and graph
    path; the graph one in constraint mode, its weight adapted to a budget), ending with the
    z derived from the searched alphas within the budget."""
    from hwnas.integrations.nnabla_nas import (
        HwnasLatencyEstimator,
        HwnasLatencyGraphEstimator,
        derive_searchnet_z,
        import_nnabla_nas,
        set_z,
    )
    import_nnabla_nas()
    import nnabla as nn
    from nnabla.ext_utils import get_extension_context
    from nnabla_nas.contrib.classification.mobilenet import SearchNet
    from nnabla_nas.optimizer import Optimizer
    from nnabla_nas.runner.searcher.pnas import ProxylessNasSearcher
    from nnabla_nas.utils.helper import CommunicatorWrapper

    nn.set_default_context(get_extension_context("cpu"))
    net = SearchNet(num_classes=10, mode="sample")
    lookup = LookupPredictor().fit_table(mobilenet_table)
    costs = LatencyPenalty(get_space("mobilenet"), lookup)
    fastest = costs.fixed + np.where(costs.mask, costs.C, np.inf).min(axis=1).sum()
    slowest = costs.fixed + costs.C.max(axis=1).sum()
    budget = fastest + 0.3 * (slowest - fastest)
    checks, estimates = [], []

    def checked(cls, **options):
        """The estimator, with the model's parameters compared around each of its calls."""
        class Checked(cls):
            def get_estimation(self, what):
                before = parameters_of(net)
                value = super().get_estimation(what)
                checks.append(same_parameters(before, parameters_of(net)))
                estimates.append((type(self).__mro__[1].__name__, value, self._weight))
                return value
        return Checked(lookup, **options)

    regularizer = {"HwnasLatencyEstimator": checked(HwnasLatencyEstimator, bound_ms=5.0,
                                                    weight=0.5),
                   "HwnasLatencyGraphEstimator": checked(HwnasLatencyGraphEstimator,
                                                         bound_ms=budget, weight="adaptive")}
    hparams = dict(epoch=1, warmup=0, batch_size_train=8, batch_size_valid=8,
                   mini_batch_train=8, mini_batch_valid=8, input_shapes=[[3, 32, 32]],
                   target_shapes=[[1]], loss_weights=None)
    args = dict(comm=CommunicatorWrapper(nn.get_current_context()), event=None,
                output_path=".", save_nnp=False, no_visualize=False, print_frequency=1)
    searcher = ProxylessNasSearcher(
        net, optimizer={"train": Optimizer(name="Momentum", lr=0.01),
                        "valid": Optimizer(name="Adam", alpha=0.05)},
        regularizer=regularizer,
        dataloader={"train": DigitsLoader(0, 16, 8), "valid": DigitsLoader(16, 16, 8)},
        hparams=hparams, args=args)
    arch_before = {k: v.d.copy() for k, v in net.get_arch_parameters().items()}
    searcher.run()
    log = capsys.readouterr().out
    print(log)  # the searcher's own log lines (shown with -s)

    iterations = 2  # 16 training images, batch 8: the estimators again after an update
    assert len(checks) == 2 * 10 * iterations and all(checks)  # 10 samples per valid step
    for name in regularizer:
        meter = searcher.monitor[name]
        assert meter.count == 10 * iterations
        assert fastest < meter.avg < slowest
        assert f"{name} " in log
    assert "reward" in searcher.monitor.meters and "reward" in log
    changed = [k for k, v in net.get_arch_parameters().items()
               if not np.array_equal(v.d, arch_before[k])]
    assert len(changed) == len(arch_before) == 21
    assert (hydra_run_dir / "arch.h5").exists()
    # constraint mode: the first step's 10 estimates updated lambda once, before the second
    # step's first reward; every reward of a step used the same weight
    adaptive = regularizer["HwnasLatencyGraphEstimator"]
    graph = [(value, weight) for name, value, weight in estimates
             if name == "HwnasLatencyGraphEstimator"]
    first = np.mean([value for value, _ in graph[:10]])
    assert adaptive.constraint.updates == 1
    assert adaptive._weight == pytest.approx(max(0.0, 0.05 * (first / budget - 1)))
    assert {w for _, w in graph[:10]} == {0.0} and {w for _, w in graph[10:]} == \
        {adaptive._weight}
    # the searched alphas, derived within the budget exactly
    best = derive_searchnet_z(net, lookup, budget, top=2)
    assert best[0].predicted_latency_ms <= budget and best[1].log_prob <= best[0].log_prob
    set_z(net, best[0].z)
    estimator = HwnasLatencyEstimator(lookup)
    assert estimator.get_estimation(net) == pytest.approx(best[0].predicted_latency_ms)


@pytest.mark.nnabla
def test_the_note_on_unpickling_says_what_nnabla_nas_loaders_do():
    """NNabla NAS's CIFAR-10 loader unpickles its data files (numpy allow_pickle): the note
    the command prints says so; where a later NNabla NAS stops, this test says to drop it."""
    import importlib.util

    from hwnas.integrations import nnabla_nas
    # read, not imported: importing it (or its package, which find_spec of a submodule
    # does) imports nnabla's data utilities, in their own order
    spec = importlib.util.find_spec("nnabla_nas")
    assert spec is not None and spec.submodule_search_locations
    loader = pathlib.Path(list(spec.submodule_search_locations)[0], "dataset", "cifar10.py")
    assert "allow_pickle=True" in loader.read_text()
    assert "unpickle" in nnabla_nas.UNPICKLES and "allow_pickle=True" in nnabla_nas.UNPICKLES
    assert "unpickle" in nnabla_nas.__doc__


@pytest.mark.nnabla
def test_nnabla_nas_command_line_finds_the_estimator_by_name(tmp_path, mobilenet_table):
    """``python -m hwnas.integrations.nnabla_nas`` runs NNabla NAS's own (Hydra) command line
    on a configuration that names HwnasLatencyEstimator, with its csv dataloader."""
    LookupPredictor().fit_table(mobilenet_table).save(tmp_path / "p.json")
    loader = DigitsLoader(0, 16, 8)
    rows = ["x:image,y:label"]
    for i, (x, y) in enumerate(zip(loader.x, loader.y[:, 0])):
        np.save(tmp_path / f"{i}.npy", x)
        rows.append(f"{i}.npy,{y}")
    (tmp_path / "train.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "conf").mkdir()
    config = f"""
hydra: {{run: {{dir: log}}, job: {{chdir: true}}, output_subdir: .hydra}}
args: {{context: cpu, device_id: '-1', type_config: float, search: true,
        algorithm: ProxylessNasSearcher, output_path: '.', save_nnp: false,
        no_visualize: false, print_frequency: 1}}
dataloader: {{csv: {{train_file: {tmp_path / 'train.csv'}, valid_file: {tmp_path / 'train.csv'},
              train_portion: 0.5}}}}
network: {{mobilenet: {{num_classes: 10, mode: sample}}}}
optimizer: {{train: {{name: Momentum, lr: 0.01}}, valid: {{name: Adam, alpha: 0.05}}}}
hparams: {{epoch: 1, warmup: 0, batch_size_train: 8, batch_size_valid: 8, mini_batch_train: 8,
          mini_batch_valid: 8, input_shapes: [[3, 32, 32]], target_shapes: [[1]],
          loss_weights: null}}
regularizer: {{HwnasLatencyEstimator: {{predictor: p.json, bound: 5, weight: 0.1}}}}
"""
    (tmp_path / "conf" / "config.yaml").write_text(config)
    command = [sys.executable, "-m", "hwnas.integrations.nnabla_nas"]
    run = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    from hwnas.integrations.nnabla_nas import UNPICKLES
    assert UNPICKLES in run.stderr  # said where hwnas runs NNabla NAS's command
    lines = [line for line in run.stdout.splitlines() if "HwnasLatencyEstimator" in line]
    assert len(lines) == 1, run.stdout[-3000:]  # 8 training images, batch 8: one iteration
    assert "reward" in lines[0]
    assert (tmp_path / "log" / "arch.h5").exists()
    # a bad argument in the configuration is one line and exit 2
    (tmp_path / "conf" / "config.yaml").write_text(config.replace("bound: 5", "bound: -1"))
    run = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True)
    assert run.returncode == 2
    assert run.stderr.strip().splitlines()[-1] == "python -m hwnas.integrations.nnabla_nas: " \
        "error: bound must be a latency in ms > 0, got -1.0"


@pytest.mark.nnabla
@pytest.mark.parametrize("args, status, message", [
    (["--budget-ms", "0.0001"], 1, "no architecture meets the budget of 0.0001 ms: the "
                                   "smallest predicted latency this space can reach is"),
    (["--budget-ms", "-1"], 2, "error: argument --budget-ms: must be > 0"),
    (["--budget-ms", "nan"], 2, "error: argument --budget-ms"),
    (["--json", "/no/such/folder/r.json"], 2, "the folder /no/such/folder does not exist"),
])
def test_the_training_example_ends_a_budget_it_cannot_meet_in_one_line(args, status, message,
                                                                        monkeypatch, capsys):
    """Below the least reachable latency (known once the layers are measured), a bad budget,
    an output nowhere to write: one line and the commands' exit status, no traceback, no
    training."""
    import nnabla as nn
    monkeypatch.setattr(sys, "argv", ["train_with_latency_penalty.py", "--quick", *args])
    nn.clear_parameters()
    try:
        with pytest.raises(SystemExit) as stop:
            runpy.run_path(str(ROOT / "examples" / "train_with_latency_penalty.py"),
                           run_name="__main__")
    finally:
        nn.clear_parameters()
    err = capsys.readouterr()
    assert stop.value.code == status
    ours = [line for line in err.err.splitlines() if "[nnabla]" not in line]
    assert len(ours) == 1 and message in ours[0] and "Traceback" not in err.err
    assert "epoch" not in err.out


@pytest.mark.nnabla
@pytest.mark.parametrize("script", ["train_with_latency_penalty.py", "nnabla_nas_estimator.py"])
def test_examples_run(script, mobilenet_table, monkeypatch, capsys, tmp_path):
    """Each example as a script (its ``__main__``), in this process: nnabla is loaded already.
    nnabla's global parameters are cleared around it, as a new process would start."""
    import nnabla as nn
    out = tmp_path / "derived.json"
    if script.startswith("train"):
        args = ["--epochs", "1", "--quick", "--json", str(out), "--plot", str(tmp_path / "a.png")]
    else:
        costs = LatencyPenalty(get_space("mobilenet"), LookupPredictor().fit_table(mobilenet_table))
        bound = costs.fixed + np.nanmean(np.where(costs.mask, costs.C, np.nan), axis=1).sum()
        args = ["--table", mobilenet_table.path, "--adaptive", "--bound-ms", f"{bound:.4f}"]
    monkeypatch.setattr(sys, "argv", [script, *args])
    nn.clear_parameters()
    try:
        runpy.run_path(str(ROOT / "examples" / script), run_name="__main__")
    except SystemExit as e:  # a command's exit status (train_with_latency_penalty.py)
        assert e.code == 0, capsys.readouterr().err
    finally:
        nn.clear_parameters()
    stdout = capsys.readouterr().out
    if script.startswith("train"):
        check_training_example(stdout, out, tmp_path / "a.png")
        assert "measured" in stdout
    else:
        assert stdout.count("reward at accuracy 0.5") == 5
        weights = [float(line.split("(weight")[1].rstrip(")")) for line in stdout.splitlines()
                   if "(weight" in line]
        assert weights[0] == 0.0 and len(weights) == 5  # lambda starts at 0, then adapts
        best = stdout.split("most likely z within ")[1].split("predicted ")[1].split()[0]
        assert float(best) <= bound


def test_our_tests_are_not_shadowed_by_nnabla_nas_tests_package():
    import conftest
    assert pathlib.Path(conftest.__file__).parent == pathlib.Path(__file__).parent
