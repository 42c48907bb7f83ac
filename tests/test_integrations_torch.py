"""The trainer integration on torch tensors: ExpectedLatency, BudgetConstraint and derive_z."""

import subprocess
import sys

import numpy as np
import pytest
from helpers import check_training_example, synthetic_table

from hwnas.errors import InputError
from hwnas.integrations import BudgetConstraint, LatencyPenalty, derive_z
from hwnas.predictors import LookupPredictor
from hwnas.spaces import get_space

pytestmark = pytest.mark.torch


@pytest.fixture(scope="module", autouse=True)
def torch():
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a thread per core crawls on a shared machine
    yield torch
    torch.set_num_threads(threads)


@pytest.fixture
def predictor(tmp_path):
    return LookupPredictor().fit_table(synthetic_table(tmp_path))


@pytest.fixture
def space():
    return get_space("mobilenet")


def softmax_np(logits, mask):
    masked = np.where(mask, logits, -np.inf)
    p = np.exp(masked - masked.max(axis=1, keepdims=True))
    return p / p.sum(axis=1, keepdims=True)


def test_expected_latency_of_logits_probabilities_and_rows(torch, space, predictor):
    from hwnas.integrations import ExpectedLatency
    latency = ExpectedLatency(space, predictor)
    penalty = LatencyPenalty(space, predictor)
    assert latency.cost.dtype == torch.float32 and latency.cost.shape == (21, 7)
    for z in space.random_z(5, seed=0):  # one-hot probabilities: the latency of z
        one_hot = torch.zeros(21, 7)
        one_hot[torch.arange(21), torch.as_tensor(z)] = 1
        assert float(latency(one_hot, logits=False)) == pytest.approx(
            predictor.predict_z(space, z)[0], rel=1e-5)
        assert latency.latency(z) == pytest.approx(predictor.predict_z(space, z)[0])
    logits = np.random.default_rng(0).normal(size=(21, 7))
    expected = penalty.expected_latency(softmax_np(logits, penalty.mask))
    moved = latency.to(torch.float64)  # the buffers follow the module's dtype
    assert moved.cost.dtype == torch.float64 and moved.fixed.dtype == torch.float64
    assert float(moved(torch.tensor(logits))) == pytest.approx(expected, rel=1e-6)
    double = ExpectedLatency(space, predictor, dtype=torch.float64)  # not rounded to float32
    assert float(double(torch.tensor(logits))) == pytest.approx(expected, rel=1e-12)
    batch = torch.tensor(np.stack([logits, 2 * logits]))  # N distributions at once
    assert double(batch).shape == (2,) and float(double(batch)[0]) == pytest.approx(expected)
    rows = torch.nn.ParameterList(torch.nn.Parameter(torch.tensor(logits[d, :n]))
                                  for d, n in enumerate(space.n_choices))
    assert float(double(rows).detach()) == pytest.approx(expected, rel=1e-12)
    # the same through the numpy-first API, on tensors
    probs = torch.tensor(softmax_np(logits, penalty.mask))
    assert float(penalty.expected_latency(probs)) == pytest.approx(expected, rel=1e-12)
    assert latency.state_dict() == {}  # derived from the predictor, not saved with a model
    with pytest.raises(InputError, match=r"scores must have shape \(21, 7\)"):
        latency(torch.zeros(21, 6))
    with pytest.raises(InputError, match="one 1-D tensor per decision"):
        latency([torch.zeros(3)] * 21)


def test_scores_that_are_not_floating_point_tensors_are_refused_in_one_line(torch, space,
                                                                           predictor):
    from hwnas.integrations import ExpectedLatency
    latency = ExpectedLatency(space, predictor)
    penalty = LatencyPenalty(space, predictor)
    for scores, got in ((torch.zeros(21, 7, dtype=torch.int64), "a torch.int64 tensor"),
                        (torch.zeros(21, 7, dtype=torch.bool), "a torch.bool tensor"),
                        (np.zeros((21, 7)), "numpy.ndarray"),
                        ([torch.zeros(n) for n in space.n_choices[:-1]] + [np.zeros(7)],
                         "numpy.ndarray")):
        with pytest.raises(InputError, match=rf"^scores must be a floating-point torch tensor, "
                                             rf"or a sequence of one per decision, got {got} "):
            latency(scores)
    with pytest.raises(InputError, match="got a torch.int64 tensor"):  # the same check
        penalty.expected_latency(torch.zeros(21, 7, dtype=torch.int64))
    # the penalty's torch path is this module, following the device and dtype of its input
    probs = latency.probs(torch.zeros(21, 7, dtype=torch.float64))
    for dtype in (torch.float64, torch.float32, torch.float64):
        e_lat = penalty.expected_latency(probs.to(dtype))
        assert e_lat.dtype == dtype
        assert float(e_lat) == pytest.approx(float(latency(probs, logits=False)), rel=1e-6)


def test_the_loss_never_reads_a_device_tensor_on_the_host(torch, space, predictor):
    """A training step on a GPU must not wait for it: on the meta device (tensors without
    values, a GPU's stand-in here), reading a value on the host is an error, so a loss that
    builds there waits for nothing."""
    from hwnas.integrations import ExpectedLatency
    latency = ExpectedLatency(space, predictor).to("meta")
    alpha = torch.nn.Parameter(torch.zeros(21, 7, device="meta"))
    ce = torch.ones((), device="meta")
    with pytest.raises(RuntimeError):  # what a host read does there
        bool(ce > 0)
    constraint = BudgetConstraint(space, predictor, 5.0)
    penalty = LatencyPenalty(space, predictor)
    for form in ("additive", "log", "multiplicative"):
        assert constraint.loss(ce, latency(alpha), form).device.type == "meta"
    e_lat = penalty.expected_latency(latency.probs(alpha))
    assert e_lat.device.type == "meta"
    for loss in (penalty.additive_loss, penalty.log_loss, penalty.multiplicative_loss):
        assert loss(ce, e_lat, 5.0).device.type == "meta"


def test_gradients_match_finite_differences(torch, space, predictor):
    """torch.autograd.gradcheck: analytical gradients against central finite differences, of
    E[lat] and of every loss form, on both sides of the budget."""
    from hwnas.integrations import ExpectedLatency
    latency = ExpectedLatency(space, predictor, dtype=torch.float64)
    logits = torch.tensor(np.random.default_rng(1).normal(size=(21, 7)), requires_grad=True)
    assert torch.autograd.gradcheck(latency, (logits,), eps=1e-6, atol=1e-6)
    e_lat = float(latency(logits).detach())
    for budget in (0.8 * e_lat, 1.25 * e_lat):
        for equality in (False, True):
            constraint = BudgetConstraint(space, predictor, budget, equality=equality)
            constraint.lam = 0.7
            for form in ("additive", "log", "multiplicative"):
                def loss(alpha, ce, constraint=constraint, form=form):
                    return constraint.loss(ce, latency(alpha), form=form)
                ce = torch.tensor(1.3, dtype=torch.float64, requires_grad=True)
                assert torch.autograd.gradcheck(loss, (logits, ce), eps=1e-6, atol=1e-6), \
                    (budget, equality, form)


def test_the_loss_on_tensors_equals_the_loss_on_numbers(torch, space, predictor):
    constraint = BudgetConstraint(space, predictor, 5.0)
    constraint.lam = 0.4
    for form in ("additive", "log", "multiplicative"):
        for e_lat in (3.0, 5.0, 7.5):
            on_tensors = constraint.loss(torch.tensor(1.3, dtype=torch.float64),
                                         torch.tensor(e_lat, dtype=torch.float64), form)
            assert isinstance(on_tensors, torch.Tensor)
            assert float(on_tensors) == pytest.approx(constraint.loss(1.3, e_lat, form))
            mixed = constraint.loss(torch.tensor(1.3, dtype=torch.float64), e_lat, form)
            assert float(mixed) == pytest.approx(float(on_tensors))
    assert float(LatencyPenalty.log_loss(torch.tensor(1.0), torch.tensor(10.0), 5.0, 0.5)) == \
        pytest.approx(1.0 + 0.5 * np.log(2.0))
    with pytest.raises(InputError, match="finite and > 0"):
        constraint.loss(torch.tensor(1.0), torch.tensor(-1.0))


def step_moves(torch, constraint, latency, alpha, lr=0.05):
    """E[lat] before and after one SGD step on the constraint's loss (a constant task loss)."""
    optimizer = torch.optim.SGD([alpha], lr=lr)
    before = latency(alpha)
    loss = constraint.loss(torch.tensor(1.0), before)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    with torch.no_grad():
        return float(before), float(latency(alpha))


def test_a_step_on_the_loss_moves_expected_latency_toward_the_budget(torch, space, predictor):
    from hwnas.integrations import ExpectedLatency
    latency = ExpectedLatency(space, predictor)
    alpha = torch.nn.Parameter(torch.zeros(21, 7))
    uniform = float(latency(alpha).detach())
    over = BudgetConstraint(space, predictor, 0.8 * uniform)  # E[lat] over the budget
    over.lam = 0.5
    before, after = step_moves(torch, over, latency, alpha)
    assert after < before
    alpha = torch.nn.Parameter(torch.zeros(21, 7))
    under = BudgetConstraint(space, predictor, 1.2 * uniform, equality=True)  # a target
    under.lam = -0.5
    before, after = step_moves(torch, under, latency, alpha)
    assert after > before
    # and in a loop with dual ascent (Adam, as a supernet trains its alphas), from lambda 0:
    # E[lat] lands near the budget from either side
    for share in (0.7, 1.1):
        alpha = torch.nn.Parameter(torch.zeros(21, 7))
        constraint = BudgetConstraint(space, predictor, share * uniform, equality=True)
        optimizer = torch.optim.Adam([alpha], lr=0.05)
        for _ in range(300):
            loss = constraint.loss(torch.tensor(1.0), latency(alpha))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            constraint.update(latency(alpha))  # a tensor, as a training loop has it
        assert float(latency(alpha).detach()) == pytest.approx(share * uniform, rel=0.03), share


def test_lambda_and_state_dict_are_saved_with_the_model(torch, space, predictor, tmp_path):
    constraint = BudgetConstraint(space, predictor, 5.0, quantile=0.9)
    constraint.lam = torch.tensor(0.25)  # a one-element tensor is a lambda
    assert constraint.lam == 0.25 and isinstance(constraint.lam, float)
    e_lat = torch.tensor([4.0, 6.0, 8.0], requires_grad=True)  # sampled latencies
    assert isinstance(constraint.update(e_lat), float) and constraint.updates == 1
    assert constraint.last_latency_ms == pytest.approx(np.quantile([4.0, 6.0, 8.0], 0.9))
    model = torch.nn.Linear(3, 2)
    torch.save({"model": model.state_dict(), "constraint": constraint.state_dict()},
               tmp_path / "checkpoint.pt")
    saved = torch.load(tmp_path / "checkpoint.pt", weights_only=True)  # plain numbers only
    resumed = BudgetConstraint(space, predictor, 5.0, quantile=0.9)
    resumed.load_state_dict(saved["constraint"])
    assert (resumed.lam, resumed.updates, resumed.last_latency_ms) == \
        (constraint.lam, 1, constraint.last_latency_ms)
    with pytest.raises(InputError, match="lam must be a finite number >= 0"):
        constraint.lam = torch.tensor(-1.0)
    with pytest.raises(InputError, match="lam must be a number"):
        constraint.lam = torch.ones(2)


def test_derive_z_takes_torch_logits(torch, space, predictor):
    logits = np.random.default_rng(3).normal(size=(21, 7))
    penalty = LatencyPenalty(space, predictor)
    budget = float(penalty.expected_latency(softmax_np(logits, penalty.mask)))
    expected = derive_z(space, predictor, logits, budget, top=3)
    alpha = torch.nn.Parameter(torch.tensor(logits))  # requires grad, as trained
    assert derive_z(space, predictor, alpha, budget, top=3) == expected
    rows = torch.nn.ParameterList(torch.nn.Parameter(torch.tensor(logits[d, :n]))
                                  for d, n in enumerate(space.n_choices))
    assert derive_z(space, predictor, rows, budget, top=3) == expected
    assert all(d.predicted_latency_ms <= budget for d in expected)


@pytest.mark.gpu
def test_expected_latency_on_a_gpu(torch, space, predictor):
    if not torch.cuda.is_available():
        pytest.skip("this torch build has no CUDA")
    from hwnas.integrations import ExpectedLatency
    latency = ExpectedLatency(space, predictor).cuda()
    alpha = torch.nn.Parameter(torch.zeros(21, 7, device="cuda"))
    e_lat = latency(alpha)
    assert e_lat.device.type == "cuda"
    e_lat.backward()
    assert alpha.grad.device.type == "cuda"
    constraint = BudgetConstraint(space, predictor, 0.9 * float(e_lat))
    assert constraint.expected_latency(latency.probs(alpha)).device.type == "cuda"
    assert derive_z(space, predictor, alpha, float(e_lat))


def test_torch_is_loaded_on_first_use_only_and_its_absence_says_what_to_install():
    code = ("import sys, hwnas, hwnas.integrations\n"
            "from hwnas.integrations import BudgetConstraint, derive_z\n"
            "import hwnas.profile\n"
            "assert 'torch' not in sys.modules, 'torch loaded'\n"
            "sys.modules['torch'] = None  # as if it were not installed\n"
            "try:\n"
            "    hwnas.integrations.ExpectedLatency\n"
            "except ImportError as e:\n"
            "    print(type(e).__name__, e)\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("MissingDependency hwnas.integrations.ExpectedLatency needs "
                                 "torch") and "pip install 'hwnas[torch]'" in run.stdout


def test_the_pytorch_example_derives_networks_within_its_budgets(torch, monkeypatch, capsys,
                                                                 tmp_path):
    """examples/train_torch_supernet.py --quick --json, as a script in this process: a real
    supernet trained on the digits at three budgets, timed with the torch backend."""
    import pathlib
    import runpy
    import tempfile
    scratch = tmp_path / "tmp"  # where the example measures its tables
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    out = tmp_path / "derived.json"
    script = pathlib.Path(__file__).parent.parent / "examples" / "train_torch_supernet.py"
    monkeypatch.setattr(sys, "argv", [str(script), "--epochs", "1", "--quick", "--json",
                                      str(out), "--plot", str(tmp_path / "a.png")])
    runpy.run_path(str(script), run_name="__main__")
    stdout = capsys.readouterr().out
    check_training_example(stdout, out, tmp_path / "a.png")
    assert "torch" in stdout.splitlines()[0]
    assert "train CE   -  " in stdout and "nan" not in stdout  # nothing trained at epoch 0
    # the folder of its tables is gone (torch keeps a folder of its own there)
    assert [p.name for p in scratch.iterdir() if p.name.startswith("tmp")] == []
