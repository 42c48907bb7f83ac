"""LatencyPenalty and the NNabla NAS estimator adapter."""

import numpy as np
import pytest

from test_predictors import synthetic_table
from hwnas.integrations import LatencyPenalty
from hwnas.predictors import CalibratedPredictor, LookupPredictor
from hwnas.spaces import get_space


@pytest.fixture
def penalty(tmp_path):
    return LatencyPenalty(get_space("mobilenet"), LookupPredictor().fit(synthetic_table(tmp_path)))


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
    with pytest.raises(ValueError, match=r"probs must have shape \(21, 7\)"):
        penalty.expected_latency(np.ones((21, 6)))


def uniform_probs(penalty):
    probs = penalty.mask / penalty.mask.sum(axis=1, keepdims=True)
    return probs


def test_loss_forms_and_reward(penalty):
    e = penalty.expected_latency(uniform_probs(penalty))
    assert penalty.proxyless_loss(2.0, e, ref_ms=e) == pytest.approx(2.0)
    assert penalty.proxyless_loss(2.0, e, ref_ms=e / 2) > 2.0
    assert penalty.additive_loss(2.0, e, ref_ms=e, lam=0.5) == pytest.approx(2.0)
    assert penalty.additive_loss(2.0, 2 * e, ref_ms=e, lam=0.5) == pytest.approx(2.5)
    assert penalty.reward(0.9, 4.0, bound_ms=5.0) == pytest.approx(0.9)
    assert penalty.reward(0.9, 10.0, bound_ms=5.0, weight=0.5) == pytest.approx(0.9 * 0.5 ** 0.5)


@pytest.mark.nnabla
@pytest.mark.parametrize("form", ["expected", "proxyless", "additive"])
def test_nnabla_gradients_match_finite_differences(penalty, form):
    import nnabla as nn
    import nnabla.functions as F

    rng = np.random.default_rng(0)
    logits0 = rng.standard_normal(penalty.C.shape)
    mask = penalty.mask

    def loss_of(logits):
        alpha = nn.Variable.from_numpy_array(logits, need_grad=True)
        masked = alpha + nn.Variable.from_numpy_array(np.where(mask, 0.0, -1e9))
        e = penalty.expected_latency(F.softmax(masked, axis=1))
        ce = nn.Variable.from_numpy_array(np.array(1.3))
        loss = {"expected": e, "proxyless": penalty.proxyless_loss(ce, e, ref_ms=20.0),
                "additive": penalty.additive_loss(ce, e, ref_ms=20.0, lam=0.3)}[form]
        return alpha, loss

    alpha, loss = loss_of(logits0)
    loss.forward()
    alpha.grad.zero()
    loss.backward()
    grad = alpha.g.copy()

    def loss_np(logits):  # the same loss in float64 numpy, for central differences
        masked = np.where(mask, logits, -1e9)
        p = np.exp(masked - masked.max(axis=1, keepdims=True))
        e = penalty.expected_latency(p / p.sum(axis=1, keepdims=True))
        return {"expected": e, "proxyless": penalty.proxyless_loss(1.3, e, ref_ms=20.0),
                "additive": penalty.additive_loss(1.3, e, ref_ms=20.0, lam=0.3)}[form]

    eps = 1e-5
    assert float(loss.d) == pytest.approx(loss_np(logits0), rel=1e-5)
    for d, c in [(0, 0), (1, 6), (5, 3), (20, 2)]:
        bump = np.zeros_like(logits0)
        bump[d, c] = eps
        numeric = (loss_np(logits0 + bump) - loss_np(logits0 - bump)) / (2 * eps)
        assert grad[d, c] == pytest.approx(numeric, rel=1e-3, abs=1e-5), (d, c)
    assert abs(grad[np.where(~mask)]).max() < 1e-6  # no gradient into impossible choices


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
def test_searchnet_z_maps_both_ways_onto_the_same_layers(searchnet, tmp_path):
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
def test_estimator_equals_the_prediction_for_the_mapped_z(searchnet, mobilenet_table, tmp_path):
    from test_predictor_kinds import network_table
    from hwnas.integrations.nnabla_nas import PredictorEstimator, set_z
    space = get_space("mobilenet")
    lookup = LookupPredictor().fit(mobilenet_table)
    Z = space.random_z(6, seed=2)
    nets = network_table(tmp_path / "n.csv", space, Z, lookup.predict_z(space, Z) * 1.2 + 0.3,
                         mobilenet_table.fingerprint)
    for predictor in (lookup, CalibratedPredictor(lookup).fit(nets, space)):
        estimator = PredictorEstimator(predictor, bound=5.0, weight=0.1)
        for z in space.random_z(5, seed=3):
            set_z(searchnet, z)
            assert estimator.get_estimation(searchnet) == pytest.approx(
                predictor.predict_z(space, z)[0])
            block = [m for _, m in searchnet.get_modules()
                     if type(m).__name__ == "ChoiceBlock"][0]
            assert estimator.predict(block) == pytest.approx(
                predictor.predict(list(space.decode(z).layers[2:3]))[0])
        estimator.reset()


@pytest.mark.nnabla
def test_unmappable_modules_are_errors_or_go_to_the_fallback(mobilenet_table):
    from hwnas.integrations.nnabla_nas import (PredictorEstimator, UnmappedModuleError,
                                               import_nnabla_nas)
    import nnabla as nn
    Mo = import_nnabla_nas().module
    net = Mo.Sequential(Mo.Conv(3, 8, (3, 3), pad=(1, 1), with_bias=False),
                        Mo.BatchNormalization(8, 4), Mo.ReLU6(), Mo.MaxPool((2, 2)))
    net(nn.Variable((1, 3, 8, 8)))
    estimator = PredictorEstimator(LookupPredictor().fit(mobilenet_table))
    with pytest.raises(UnmappedModuleError, match="cannot map MaxPool"):
        estimator.get_estimation(net)
    from hwnas.predictors import LinearPredictor
    with_fallback = PredictorEstimator(LinearPredictor().fit(mobilenet_table),
                                       fallback=lambda module, shape: 0.25)
    conv = with_fallback.predictor.predict([__import__("hwnas").Layer("conv", (3, 8, 8), 8,
                                                                      kernel=3)])[0]
    assert with_fallback.get_estimation(net) == pytest.approx(conv + 0.25)


@pytest.mark.nnabla
def test_proxylessnas_reward_step_runs_with_the_adapter(searchnet, mobilenet_table):
    """The part of NNabla NAS's ProxylessNAS searcher that calls the estimator:
    reward *= min(1, bound / estimate)^weight, over sampled architectures."""
    import nnabla as nn
    from hwnas.integrations.nnabla_nas import PredictorEstimator, get_z
    estimator = PredictorEstimator(LookupPredictor().fit(mobilenet_table), bound=3.0,
                                   weight=0.2)
    space = get_space("mobilenet")
    x = nn.Variable.from_numpy_array(np.random.default_rng(0).standard_normal((2, 3, 32, 32)))
    rewards = []
    for _ in range(3):
        searchnet.apply(training=False)
        y = searchnet(x)  # sample mode: each call samples an architecture
        y.forward()
        z = get_z(searchnet)
        value = estimator.get_estimation(searchnet)
        assert value == pytest.approx(estimator.predictor.predict_z(space, z)[0])
        accuracy = 0.5
        reward = accuracy * min(1.0, estimator._bound / value) ** estimator._weight
        assert 0 < reward <= accuracy
        rewards.append(reward)
    assert np.isfinite(y.d).all()  # the adapter never touched the weights


@pytest.mark.nnabla
@pytest.mark.parametrize("script", ["train_with_latency_penalty.py", "nnabla_nas_estimator.py"])
def test_examples_run(script, mobilenet_table):
    import pathlib
    import subprocess
    import sys
    path = pathlib.Path(__file__).parent.parent / "examples" / script
    run = subprocess.run([sys.executable, str(path), "--table", mobilenet_table.path],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    if script.startswith("train"):
        lines = [line for line in run.stdout.splitlines() if "E[latency]" in line]
        first, last = (float(line.split("E[latency]")[1].split()[0]) for line in
                       (lines[0], lines[-1]))
        assert last < first  # the penalty pulled the architecture towards lower latency
        assert "most likely z" in run.stdout
    else:
        assert run.stdout.count("reward at accuracy 0.5") == 5


def test_our_tests_are_not_shadowed_by_nnabla_nas_tests_package():
    import conftest
    import pathlib
    assert pathlib.Path(conftest.__file__).parent == pathlib.Path(__file__).parent
