"""Hard budgets in the user's trainer: derive_z (exact, against brute force) and
BudgetConstraint (dual ascent, save/restore, landing on the budget in real training steps)."""

import itertools
import json

import numpy as np
import pytest
from helpers import FP

from hwnas.errors import InputError
from hwnas.integrations import BudgetConstraint, derive_z, log_probs
from hwnas.predictors import LookupPredictor
from hwnas.search import BudgetError
from hwnas.spaces import get_space
from hwnas.spaces.mobilenet import mobilenet
from hwnas.tables import LAYER_COLUMNS, TableWriter, Timing, read_layer_table

#: the example's digits space: five searched blocks, 7 x 7 x 6 x 7 x 6 z
STAGES = ((16, 2, 1), (24, 2, 2), (32, 1, 1))


def random_table(path, layers, seed=0):
    """A real CSV layer table with random latencies (0.01-1 ms): few ties between z."""
    rng = np.random.default_rng(seed)
    with TableWriter(path, LAYER_COLUMNS, "key", FP) as w:
        for layer in layers:
            ms = float(rng.uniform(0.01, 1.0))
            t = Timing(ms, ms, ms * 1.1, ms * 0.95, 10, 0.02)
            w.append({"key": layer.key, "op": layer.op, "macs": str(layer.macs),
                      "params": str(layer.params), **t.as_row()})
    return read_layer_table(path)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    space = mobilenet(input_shape=(1, 8, 8), num_classes=10, stages=STAGES)
    path = tmp_path_factory.mktemp("small") / "layers.csv"
    return space, LookupPredictor().fit_table(random_table(path, space.unique_layers()))


@pytest.fixture(scope="module")
def nb201(tmp_path_factory):
    space = get_space("nb201")
    path = tmp_path_factory.mktemp("nb201") / "layers.csv"
    return space, LookupPredictor().fit_table(random_table(path, space.unique_layers(), seed=1))


def every_z(space):
    return np.array(list(itertools.product(*(range(n) for n in space.n_choices))))


def brute_force(space, predictor, logits, budget_ms, fits=None):
    """(log-probability, latency) of every z within the budget, best first."""
    Z = every_z(space)
    latency = predictor.predict_z(space, Z)
    lp = log_probs(space, logits)
    score = np.nansum(lp[np.arange(len(space.decisions)), Z], axis=1)
    ok = latency <= budget_ms + 1e-9
    if fits is not None:
        ok &= fits(Z)
    order = np.argsort(-score[ok], kind="stable")
    return Z[ok][order], score[ok][order], latency[ok][order]


def latency_range(space, predictor):
    Z = every_z(space)
    latency = predictor.predict_z(space, Z)
    return latency.min(), latency.max()


@pytest.mark.parametrize("which", ["small", "nb201"])
def test_derive_z_equals_brute_force(which, request):
    space, predictor = request.getfixturevalue(which)
    lo, hi = latency_range(space, predictor)
    rng = np.random.default_rng(3)
    for share in (0.0, 0.1, 0.3, 0.5, 0.7, 1.0):
        budget = lo + share * (hi - lo)
        logits = rng.standard_normal((len(space.decisions), max(space.n_choices))) * 2
        Z, score, latency = brute_force(space, predictor, logits, budget)
        found = derive_z(space, predictor, logits, budget, top=3)
        assert len(found) == min(3, len(Z))
        for k, d in enumerate(found):
            assert d.log_prob == pytest.approx(score[k], abs=1e-9), (share, k)
            assert d.predicted_latency_ms <= budget + 1e-9
            assert d.predicted_latency_ms == pytest.approx(predictor.predict_z(space, d.z)[0])
        assert [d.z for d in found] == [tuple(int(v) for v in z) for z in Z[:len(found)]]
        # argmax of the logits is the answer wherever it fits
        argmax = tuple(np.argmax(np.where(np.isnan(log_probs(space, logits)), -np.inf,
                                          logits), axis=1))
        if predictor.predict_z(space, argmax)[0] <= budget:
            assert found[0].z == argmax


def test_probabilities_and_logits_derive_the_same_z(small):
    space, predictor = small
    lo, hi = latency_range(space, predictor)
    logits = np.random.default_rng(5).standard_normal((5, 7))
    mask = np.arange(7)[None, :] < np.array(space.n_choices)[:, None]
    e = np.where(mask, np.exp(logits), 0.0)
    probs = e / e.sum(axis=1, keepdims=True)
    ragged = [logits[d, :n] for d, n in enumerate(space.n_choices)]  # as NNabla NAS keeps them
    budget = lo + 0.4 * (hi - lo)
    a, b, c = (derive_z(space, predictor, s, budget)[0] for s in (logits, probs, ragged))
    assert a == b == c
    # a probability of 0 is never chosen, even where it is the fastest choice
    fixed, C = predictor.cost_matrix(space)
    fastest = np.nanargmin(C, axis=1)
    probs[0] = 0.0
    probs[0, (fastest[0] + 1) % space.n_choices[0]] = 1.0
    assert derive_z(space, predictor, probs, hi)[0].z[0] != fastest[0]


def test_memory_budgets_equal_brute_force(small):
    space, predictor = small
    lo, hi = latency_range(space, predictor)
    Z = every_z(space)
    params = np.array([space.decode(z).param_bytes for z in Z])
    peaks = np.array([space.decode(z).peak_activation_bytes for z in Z])
    logits = np.random.default_rng(7).standard_normal((5, 7))
    max_params = int(np.quantile(params, 0.2))  # tight: the knapsack keeps more z than top
    max_peak = int(np.quantile(peaks, 0.6))
    by_z = {tuple(z): (p, a) for z, p, a in zip(Z, params, peaks)}

    def fits(Zs):
        return np.array([by_z[tuple(z)][0] <= max_params and by_z[tuple(z)][1] <= max_peak
                         for z in Zs])

    for share in (0.3, 0.8):
        budget = lo + share * (hi - lo)
        _, score, _ = brute_force(space, predictor, logits, budget, fits)
        found = derive_z(space, predictor, logits, budget, top=2, max_param_bytes=max_params,
                         max_activation_bytes=max_peak)
        assert [d.log_prob for d in found] == pytest.approx(list(score[:2]), abs=1e-9)
        assert all(fits([d.z])[0] for d in found)


def test_nothing_fits_names_the_least_latency(small):
    space, predictor = small
    lo, _ = latency_range(space, predictor)
    logits = np.zeros((5, 7))
    with pytest.raises(BudgetError, match=f"smallest predicted latency this space can reach "
                                          f"is {lo:.3f} ms"):
        derive_z(space, predictor, logits, lo * 0.99)
    params = min(space.decode(z).param_bytes for z in every_z(space))
    with pytest.raises(InputError, match=f"no architecture of space .* fits max_param_bytes = "
                                         f"{params - 1}"):
        derive_z(space, predictor, logits, 1e6, max_param_bytes=params - 1)
    with pytest.raises(InputError, match=r"within max_param_bytes = \d+ the smallest predicted "
                                         r"latency is"):
        derive_z(space, predictor, logits, lo * 0.99, max_param_bytes=params * 2)
    with pytest.raises(InputError, match=r"scores must have shape \(5, 7\)"):
        derive_z(space, predictor, np.zeros((5, 6)), 1.0)
    with pytest.raises(InputError, match="must be finite"):
        derive_z(space, predictor, np.full((5, 7), np.nan), 1.0)
    with pytest.raises(InputError, match="budget_ms must be a finite latency > 0"):
        derive_z(space, predictor, logits, -1.0)
    with pytest.raises(InputError, match="top must be an integer >= 1"):
        derive_z(space, predictor, logits, 1.0, top=0)


def test_lambda_rises_over_the_budget_and_falls_to_zero_under_it(small):
    space, predictor = small
    constraint = BudgetConstraint(space, predictor, 2.0, step=0.5)
    assert constraint.lam == 0.0
    lams = [constraint.update(3.0) for _ in range(4)]  # 50 % over: +0.25 each
    assert lams == pytest.approx([0.25, 0.5, 0.75, 1.0])
    lams = [constraint.update(1.0) for _ in range(5)]  # 50 % under: -0.25, never below 0
    assert lams == pytest.approx([0.75, 0.5, 0.25, 0.0, 0.0])
    assert constraint.update(2.0) == 0.0  # on the budget: unchanged
    with pytest.raises(InputError, match="lam must be a finite number >= 0, got -0.5"):
        constraint.lam = -0.5  # only an equality constraint's lambda turns negative
    constraint.lam = 0.75  # e.g. a fixed weight
    assert constraint.update(2.0) == 0.75
    constraint.lam = 0.0
    # the loss forms weight the latency ratio by lambda; equal to CE at lambda = 0
    constraint.damping = 0.0  # the plain Lagrangian: lambda times the constraint
    assert constraint.loss(1.5, 3.0) == 1.5
    constraint.update(4.0)  # lambda 0.5
    assert constraint.loss(1.5, 3.0) == pytest.approx(1.5 + 0.5 * 0.5)
    assert constraint.loss(1.5, 3.0, form="log") == pytest.approx(1.5 + 0.5 * np.log(1.5))
    assert constraint.loss(1.5, 3.0, form="multiplicative") == pytest.approx(1.5 * 1.5 ** 0.5)
    # damped (augmented Lagrangian): slope max(0, lambda + rho g) in g, the same value at g = 0
    constraint.damping = 4.0
    g = np.array([-0.3, -0.2, 0.0, 0.1, 0.5])
    values = np.array([constraint.loss(1.5, 2.0 * (1 + x)) for x in g])
    slope = (constraint.loss(1.5, 2.0 * 1.001) - constraint.loss(1.5, 2.0 * 0.999)) / 0.002
    assert values[2] == pytest.approx(1.5) and slope == pytest.approx(0.5, rel=1e-3)
    assert np.all(np.diff(values) >= 0) and values[0] == values[1]  # flat far under budget
    assert constraint.reward(0.9, 4.0) == pytest.approx(0.9 * 0.5 ** 0.5)
    assert constraint.reward(0.9, 1.0) == pytest.approx(0.9)
    with pytest.raises(InputError, match="form must be one of"):
        constraint.loss(1.5, 3.0, form="square")
    with pytest.raises(InputError, match="latencies must be finite and > 0"):
        constraint.update(float("nan"))


def test_equality_makes_the_budget_a_target(small):
    """With equality, lambda turns negative under the budget (pulling latency up to it), and
    the loss and reward reward latency there."""
    space, predictor = small
    constraint = BudgetConstraint(space, predictor, 2.0, step=0.5, damping=0.0, equality=True)
    assert [constraint.update(1.0) for _ in range(2)] == pytest.approx([-0.25, -0.5])
    assert constraint.loss(1.5, 1.0) == pytest.approx(1.5 + 0.25)  # -0.5 * (0.5 - 1)
    assert constraint.loss(1.5, 1.0) > constraint.loss(1.5, 1.5)  # slower is better here
    assert constraint.reward(0.9, 4.0) == pytest.approx(0.9 * 2.0 ** 0.5)
    constraint.damping = 2.0  # psi = lambda g + rho g^2 / 2
    assert constraint.loss(1.5, 3.0) == pytest.approx(1.5 - 0.5 * 0.5 + 0.25)
    saved = constraint.state_dict()
    assert saved["lam"] == -0.5 and saved["equality"] is True
    with pytest.raises(InputError, match="saved with equality = True"):
        BudgetConstraint(space, predictor, 2.0, step=0.5, damping=2.0).load_state_dict(saved)


def test_the_quantile_constrains_the_tail_of_sampled_latencies():
    samples = np.array([1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 3.0, 3.0])  # mean 1.4
    mean = BudgetConstraint(None, None, 2.0, step=1.0)
    tail = BudgetConstraint(None, None, 2.0, step=1.0, quantile=0.9)
    assert mean.update(samples) == 0.0  # the mean is under the budget
    assert tail.update(samples) == pytest.approx(np.quantile(samples, 0.9) / 2.0 - 1.0)
    with pytest.raises(InputError, match="quantile must be in"):
        BudgetConstraint(None, None, 2.0, quantile=1.0)
    with pytest.raises(InputError, match="made without a space and predictor"):
        mean.expected_latency(np.zeros((5, 7)))


def test_state_dict_round_trip_resumes_the_same_trajectory(small):
    space, predictor = small
    latencies = [3.0, 2.5, 2.2, 1.8, 2.1, 2.4]
    whole = BudgetConstraint(space, predictor, 2.0, step=0.3)
    for lat in latencies:
        whole.update(lat)
    first = BudgetConstraint(space, predictor, 2.0, step=0.3)
    for lat in latencies[:3]:
        first.update(lat)
    saved = json.loads(json.dumps(first.state_dict()))  # as a checkpoint file keeps it
    resumed = BudgetConstraint(space, predictor, 2.0, step=0.3)
    resumed.load_state_dict(saved)
    assert resumed.lam == first.lam and resumed.updates == 3
    for lat in latencies[3:]:
        resumed.update(lat)
    assert resumed.state_dict() == whole.state_dict()
    with pytest.raises(InputError, match="saved with budget_ms = 2.0, this constraint has 3.0"):
        BudgetConstraint(space, predictor, 3.0, step=0.3).load_state_dict(saved)
    with pytest.raises(InputError, match="state must be a dict"):
        resumed.load_state_dict({"lam": 1.0})
    with pytest.raises(InputError, match="state 'lam' must be a finite number >= 0"):
        resumed.load_state_dict({**saved, "lam": -1.0})


@pytest.mark.nnabla
@pytest.mark.parametrize("equality", [False, True])
def test_nnabla_loss_equals_numpy_and_follows_lambda(equality):
    """A graph built once reads lambda from a Variable: after updates it gives what the numpy
    loss gives with the new lambda, for every form, with and without damping."""
    import nnabla as nn
    for form in ("additive", "log", "multiplicative"):
        for damping in (0.0, 3.0):
            constraint = BudgetConstraint(None, None, 2.0, step=0.4, damping=damping,
                                          equality=equality)
            ce = nn.Variable.from_numpy_array(np.array(1.5, np.float32))
            e_lat = nn.Variable.from_numpy_array(np.array(2.6, np.float32))
            graphs = [constraint.loss(ce, e_lat, form), constraint.loss(ce, 2.6, form)]
            for latency in (3.0, 3.0, 1.0, 1.0, 1.0, 1.0):
                constraint.update(latency)
                for graph in graphs:
                    graph.forward()
                    assert float(graph.d) == pytest.approx(constraint.loss(1.5, 2.6, form),
                                                           rel=1e-5), (form, damping)
            assert (constraint.lam < 0) == equality
            constraint.lam = 0.8  # set, not updated: the graphs follow it too
            for graph in graphs:
                graph.forward()
                assert float(graph.d) == pytest.approx(constraint.loss(1.5, 2.6, form),
                                                       rel=1e-5), (form, damping)


@pytest.mark.nnabla
@pytest.mark.parametrize("form", ["additive", "log", "multiplicative"])
def test_adaptive_weight_lands_expected_latency_on_the_budget_in_nnabla(small, form):
    """Real nnabla steps on architecture logits whose task loss prefers the slowest z: a fixed
    graph follows lambda, and E[latency] ends within 5 % of the budget; a budget above what
    the task wants leaves lambda at 0."""
    import nnabla as nn
    import nnabla.functions as F
    import nnabla.solvers as S

    space, predictor = small
    lo, hi = latency_range(space, predictor)
    fixed, C = predictor.cost_matrix(space)
    mask = ~np.isnan(C)
    slowest = np.nanargmax(C, axis=1)
    for share, lands in ((0.3, True), (1.5, False)):
        budget = lo + share * (hi - lo)
        constraint = BudgetConstraint(space, predictor, budget)  # the defaults
        alpha = nn.Variable.from_numpy_array(np.zeros(C.shape, np.float32), need_grad=True)
        probs = F.softmax(alpha + nn.Variable.from_numpy_array(
            np.where(mask, 0, -1e9).astype(np.float32)), axis=1)
        prefer = nn.Variable.from_numpy_array(np.eye(C.shape[1])[slowest].astype(np.float32))
        # in [1, 2]: the multiplicative form's pull scales with the task loss
        task = 2.0 - F.sum(probs * prefer) / len(space.decisions)
        e_lat = constraint.expected_latency(probs)
        loss = constraint.loss(task, e_lat, form=form)
        solver = S.Adam(0.05)
        solver.set_parameters({"alpha": alpha})
        for _ in range(400):
            loss.forward()
            solver.zero_grad()
            loss.backward()
            solver.update()
            constraint.update(e_lat)
        e_lat.forward()
        if lands:
            assert abs(float(e_lat.d) / budget - 1) < 0.05, (form, float(e_lat.d), budget)
            assert constraint.lam > 0
            best = derive_z(space, predictor, alpha.d, budget)[0]
            assert best.predicted_latency_ms <= budget
        else:
            assert float(e_lat.d) < budget and constraint.lam == 0.0
