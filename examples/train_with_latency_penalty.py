"""Differentiable architecture search on real data under a hard latency budget.

A small MobileNetV2-like space at 1x8x8 (hwnas's ``mobilenet`` space with three short stages)
is built in nnabla as a supernet: each searched block runs all of its candidates (inverted
residuals MB{3,6} {3x3,5x5,7x7}, and skip where shapes allow) and mixes their outputs by
softmax(alpha). Weights and alpha train together on scikit-learn's 8x8 handwritten digits
(1,797 real images, shipped with scikit-learn). The latency term is a ``BudgetConstraint``:
CE + psi(E[lat] / budget - 1), whose weight lambda rises by dual ascent while the expected
latency E[lat] = fixed + sum_d sum_c softmax(alpha)[d, c] C[d, c] is over the budget and falls
while it is under (below 0: the budget is a target, ``equality``, since the task loss of a
supernet hardly moves E[lat] by itself), so E[lat] lands on the budget without tuning a
weight.

C comes from this space's layer table, measured here first with hwnas's nnabla backend and
calibrated on a few whole networks measured in the same process (so that a budget means
end-to-end latency): no device is timed while training. At the end the most likely z within
the budget is derived exactly (``derive_z``), fine-tuned alone, tested and measured end to end.
By default this runs at three budgets spread over the space's latency range (25, 50 and 75 %);
``--budget-ms`` gives one. Accuracy is on 400 held-out images.

    .venv/bin/python examples/train_with_latency_penalty.py [--epochs 8] [--budget-ms B]
        [--json out.json] [--plot out.png] [--quick]
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Any, Callable

import nnabla as nn
import nnabla.functions as F
import nnabla.solvers as S
import numpy as np
from sklearn.datasets import load_digits

from hwnas import LookupPredictor, _cli
from hwnas._files import check_figure_path, save_figure, write_json
from hwnas._imports import pyplot
from hwnas.errors import InputError
from hwnas.integrations import BudgetConstraint, derive_z
from hwnas.predictors import CalibratedPredictor, Predictor
from hwnas.profile import TimingProtocol, get_backend, profile_layers, profile_networks
from hwnas.profile._base import Backend
from hwnas.profile._nnabla import build
from hwnas.search import BudgetError
from hwnas.spaces import SearchSpace, chain
from hwnas.spaces.mobilenet import mobilenet

#: (out channels, blocks, first stride): five searched blocks at 4x4 and 2x2
STAGES = ((16, 2, 1), (24, 2, 2), (32, 1, 1))
#: where the default budgets sit in the space's predicted latency range
SHARES = (0.25, 0.5, 0.75)


def supernet(space, x, probs):
    """The space's network on x with every searched block a probs-weighted sum of its
    candidates' outputs; parameters are shared between graphs built under one scope.

    Batch norm normalises with the statistics of the batch, in the test graph too: the
    running statistics of a mixture whose weights move every step lag behind it."""
    h = x
    with nn.parameter_scope("stem"):
        h, _ = build(chain(space.stem), h, batch_norm_stats=True)
    for d, decision in enumerate(space.decisions):
        mixed = None
        for c, layers in enumerate(decision.layers):
            with nn.parameter_scope(f"block{d}/choice{c}"):
                out = build(chain(layers), h, batch_norm_stats=True)[0] if layers else h
            weight = F.reshape(F.slice(probs, (d, c), (d + 1, c + 1)), (1, 1, 1, 1))
            mixed = out * weight if mixed is None else mixed + out * weight
        h = mixed
    with nn.parameter_scope("head"):
        return build(chain(space.head), h, batch_norm_stats=True)[0]


@dataclass(frozen=True)
class Setup:
    """The space, its calibrated predictor, the backend that measured it, and the data."""

    space: SearchSpace
    predictor: Predictor
    backend: Backend
    protocol: TimingProtocol
    images: np.ndarray
    labels: np.ndarray
    train: np.ndarray
    test: np.ndarray
    fastest_ms: float
    slowest_ms: float

    def budgets(self) -> list[float]:
        """Budgets at SHARES of the predicted latency range."""
        return [round(self.fastest_ms + s * (self.slowest_ms - self.fastest_ms), 4)
                for s in SHARES]


def prepare(quick: bool, seed: int = 0, train_images: int | None = None,
            log: Callable[[str], None] = print) -> Setup:
    """Measure the space's layers and a covering design of whole networks (plus the fastest
    and slowest) with nnabla, fit the calibrated lookup predictor, load the digits (all but
    the 400 test images for training, or the first ``train_images`` of them)."""
    space = mobilenet(input_shape=(1, 8, 8), num_classes=10, stages=STAGES)
    backend = get_backend("nnabla")
    protocol = TimingProtocol(warmup=1, runs=5, min_runs=3, max_round_s=0.05, pause_s=0) \
        if quick else TimingProtocol()
    folder = tempfile.mkdtemp()
    table = profile_layers(backend, space.unique_layers(), os.path.join(folder, "layers.csv"),
                           protocol, show_progress=False)
    lookup = LookupPredictor().fit_table(table)
    fixed, C = lookup.cost_matrix(space)
    zs = [*space.design(max(space.n_choices) + 1, seed=0), space.min_z(fixed, C)[0],
          np.nanargmax(C, axis=1)]
    networks = profile_networks(backend, space, zs, os.path.join(folder, "networks.csv"),
                                protocol, show_progress=False)
    predictor = CalibratedPredictor(lookup).fit_table(networks, space)
    fixed, C = predictor.cost_matrix(space)
    fastest = float(space.min_z(fixed, C)[1])
    slowest = float(fixed + np.nanmax(C, axis=1).sum())
    log(f"space: {len(space.decisions)} searched blocks, {space.size:,} architectures, "
        f"{len(space.unique_layers())} layers and {len(networks.z)} networks measured on "
        f"{table.fingerprint.describe()}; predicted latency {fastest:.4f}-{slowest:.4f} ms "
        f"(layer sum x {predictor.a_:.2f} + {predictor.b_:.4f} ms)")
    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)[:, None]
    order = np.random.default_rng(seed).permutation(len(images))
    test, train = order[:400], order[400:]
    if quick:
        test, train = test[:100], train[:320]
    train = train[:train_images]
    return Setup(space, predictor, backend, protocol, images, digits.target, train, test,
                 fastest, slowest)


def train(setup: Setup, budget_ms: float, *, epochs: int, weight: float | None = None,
          finetune_epochs: int = 2, batch: int = 32, seed: int = 0,
          log: Callable[[str], None] = print) -> dict[str, Any]:
    """Search at one budget and return what it derived.

    ``weight`` None: the adaptive BudgetConstraint, and z derived exactly within the budget.
    A number: the soft penalty CE + weight * (E[lat] / budget - 1) with that fixed weight,
    and z = argmax(alpha) (what a soft penalty gives). The derived network is then trained
    alone (its one-hot supernet) for ``finetune_epochs``, tested and measured end to end."""
    space = setup.space
    rng = np.random.default_rng(seed)
    nn.seed(seed)
    nn.clear_parameters()
    adaptive = weight is None
    if adaptive:
        constraint = BudgetConstraint(space, setup.predictor, budget_ms, equality=True)
    else:  # the soft penalty: a fixed weight, never updated
        constraint = BudgetConstraint(space, setup.predictor, budget_ms, damping=0.0)
        constraint.lam = weight
    mask = constraint.penalty.mask

    x_test = nn.Variable.from_numpy_array(setup.images[setup.test])
    alpha = nn.Variable.from_numpy_array(np.zeros(mask.shape, np.float32), need_grad=True)
    impossible = nn.Variable.from_numpy_array(np.where(mask, 0, -1e9).astype(np.float32))
    probs = F.softmax(alpha + impossible, axis=1)
    one_hot = nn.Variable(mask.shape)  # the derived network, for fine-tuning and testing
    x = nn.Variable((batch, 1, 8, 8))
    t = nn.Variable((batch, 1))
    with nn.parameter_scope("net"):
        logits = supernet(space, x, probs)
        test_logits = supernet(space, x_test, probs)
        derived_logits = supernet(space, x, one_hot)
        derived_test = supernet(space, x_test, one_hot)
    ce = F.mean(F.softmax_cross_entropy(logits, t))
    expected_ms = constraint.expected_latency(probs)
    loss = constraint.loss(ce, expected_ms)
    derived_ce = F.mean(F.softmax_cross_entropy(derived_logits, t))

    weights = S.Adam(0.01)
    with nn.parameter_scope("net"):
        weights.set_parameters(nn.get_parameters())
    architecture = S.Adam(0.05)
    architecture.set_parameters({"alpha": alpha})

    def accuracy(graph) -> float:
        graph.forward(clear_buffer=True)
        return float(np.mean(graph.d.argmax(axis=1) == setup.labels[setup.test]))

    def batches():
        shuffled = rng.permutation(setup.train)
        for start in range(0, len(shuffled) - batch + 1, batch):
            rows = shuffled[start:start + batch]
            x.d, t.d = setup.images[rows], setup.labels[rows, None]
            yield

    history: list[dict[str, float]] = []

    def report(epoch: int, train_ce: float) -> None:
        expected_ms.forward()
        row = {"epoch": epoch, "train_ce": train_ce, "accuracy": accuracy(test_logits),
               "expected_latency_ms": float(expected_ms.d), "lambda": constraint.lam}
        history.append(row)
        log(f"epoch {epoch:2d}  train CE {train_ce:.3f}  test accuracy {row['accuracy']:.3f}  "
            f"E[latency] {row['expected_latency_ms']:.4f} ms "
            f"({row['expected_latency_ms'] / budget_ms:.3f} x budget)  lambda "
            f"{constraint.lam:.3f}")

    start = time.perf_counter()
    report(0, float("nan"))
    for epoch in range(1, epochs + 1):
        losses = []
        for _ in batches():
            loss.forward()
            weights.zero_grad()
            architecture.zero_grad()
            loss.backward()
            weights.update()
            architecture.update()
            if adaptive:
                constraint.update(expected_ms)
            losses.append(float(ce.d))
        report(epoch, float(np.mean(losses)))
    search_s = time.perf_counter() - start
    expected_ms.forward()
    final_expected_ms = float(expected_ms.d)

    scores = [alpha.d[d, :n] for d, n in enumerate(space.n_choices)]
    start = time.perf_counter()
    if adaptive:
        z = derive_z(space, setup.predictor, scores, budget_ms)[0].z
    else:
        z = tuple(int(np.argmax(s)) for s in scores)
    derive_ms = (time.perf_counter() - start) * 1e3
    one_hot.d = np.eye(mask.shape[1])[list(z)]
    for _ in range(finetune_epochs):
        for _ in batches():
            derived_ce.forward()
            weights.zero_grad()
            derived_ce.backward()
            weights.update()
    predicted_ms = constraint.latency(z)
    measured_ms = setup.backend.time_architecture(space.decode(z), setup.protocol).latency_ms
    result = {"budget_ms": budget_ms, "weight": "adaptive" if adaptive else weight,
              "z": list(z), "description": space.describe(z),
              "predicted_latency_ms": predicted_ms, "measured_latency_ms": measured_ms,
              "accuracy": accuracy(derived_test), "supernet_accuracy": accuracy(test_logits),
              "expected_latency_ms": final_expected_ms, "lambda": constraint.lam,
              "epochs": epochs, "search_s": search_s, "derive_ms": derive_ms,
              "history": history}
    log(f"derived z {'-'.join(map(str, z))} ({space.describe(z)}): predicted "
        f"{predicted_ms:.4f} ms, measured {measured_ms:.4f} ms, budget {budget_ms:.4f} ms; "
        f"test accuracy {result['accuracy']:.3f} (after {finetune_epochs} epochs alone)")
    return result


def plot(results: list[dict[str, Any]], path: str) -> None:
    """Accuracy against predicted and measured latency of the derived networks, with their
    budgets."""
    plt = pyplot("--plot")

    fig, ax = plt.subplots(figsize=(6, 4.5))
    for i, r in enumerate(results):
        ax.axvline(r["budget_ms"], color=f"C{i}", ls="--", lw=1,
                   label=f"budget {r['budget_ms']:.3f} ms")
        ax.plot(r["predicted_latency_ms"], r["accuracy"], "o", color=f"C{i}")
        ax.plot(r["measured_latency_ms"], r["accuracy"], "x", color=f"C{i}")
    ax.plot([], [], "ok", label="predicted")
    ax.plot([], [], "xk", label="measured")
    ax.set(xlabel="latency of the derived network (ms)", ylabel="test accuracy",
           title="digits supernet under a BudgetConstraint")
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


PROG = "train_with_latency_penalty.py"


def main(argv=None) -> int:
    """Parse, measure, then train at each budget; a budget below the least reachable latency
    is one line (exit 1), bad input one line (exit 2), as hwnas's commands do."""
    p = _cli.ArgumentParser(prog=PROG, description=__doc__.split("\n")[0])
    p.add_argument("--epochs", type=_cli.positive_int, default=8)
    p.add_argument("--budget-ms", type=_cli.positive_float, default=None,
                   help="one budget (default: three over the space's latency range)")
    p.add_argument("--finetune-epochs", type=_cli.int_in(0, 10**6), default=2,
                   help="epochs that train the derived network alone before it is tested")
    p.add_argument("--batch", type=_cli.positive_int, default=32)
    p.add_argument("--json", help="write per budget the derived z, budget_ms, "
                   "predicted_latency_ms, measured_latency_ms and accuracy")
    p.add_argument("--plot", help="draw accuracy against latency (PNG; needs matplotlib)")
    p.add_argument("--quick", action="store_true",
                   help="fewer training and test images, fewer timing runs and no pause "
                        "before a noisy layer is measured again (for the tests)")
    p.add_argument("--seed", type=_cli.seed, default=0)
    args = p.parse_args(argv)
    check_figure_path("--plot", args.plot)
    for option, path in (("--json", args.json), ("--plot", args.plot)):  # before minutes of work
        if path and not os.path.isdir(os.path.dirname(os.path.abspath(path))):
            raise InputError(f"{option} {path}: the folder {os.path.dirname(path) or '.'} does "
                             f"not exist")

    setup = prepare(args.quick, args.seed)
    if args.budget_ms is not None and args.budget_ms < setup.fastest_ms:
        print(f"{PROG}: {BudgetError(args.budget_ms, setup.fastest_ms)} (on "
              f"{setup.backend.fingerprint().describe()})", file=sys.stderr)
        return 1
    budgets = [args.budget_ms] if args.budget_ms is not None else setup.budgets()
    results = []
    for budget_ms in budgets:
        print(f"budget {budget_ms:.4f} ms")
        results.append(train(setup, budget_ms, epochs=args.epochs, batch=args.batch,
                             finetune_epochs=0 if args.quick else args.finetune_epochs,
                             seed=args.seed))
    if args.json:
        write_json(args.json, results)  # an unknown (NaN) as null: valid JSON
        print(f"wrote {args.json}")
    if args.plot:
        plot(results, args.plot)
        print(f"wrote {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(_cli.run(main, PROG))
