"""Differentiable architecture search in PyTorch on real data under a hard latency budget.

The PyTorch twin of train_with_latency_penalty.py (nnabla). A small MobileNetV2-like space at
1x8x8 (hwnas's ``mobilenet`` space with three short stages) is built as a supernet of torch
modules (``hwnas.profile.torch_module``: the very modules the torch backend times): each
searched block runs all of its candidates (inverted residuals MB{3,6} {3x3,5x5,7x7}, and skip
where shapes allow) and mixes their outputs by softmax(alpha). Weights and alpha train
together on scikit-learn's 8x8 handwritten digits (1,797 real images, shipped with
scikit-learn). The latency term is a ``BudgetConstraint`` on torch tensors: CE + psi(E[lat] /
budget - 1), with E[lat] from ``ExpectedLatency`` (the cost matrix as a torch module), whose
weight lambda rises by dual ascent while E[lat] is over the budget and falls while it is
under (below 0: the budget is a target, ``equality``), so E[lat] lands on the budget without
tuning a weight.

The costs come from this space's layer table, measured here first with hwnas's torch backend
on the CPU and calibrated on a few whole networks measured in the same process: no device is
timed while training. At the end the most likely z within the budget is derived exactly
(``derive_z`` on the torch logits), fine-tuned alone, tested and measured end to end. By
default at three budgets spread over the space's latency range (25, 50 and 75 %);
``--budget-ms`` gives one. Accuracy is on 400 held-out images.

    python examples/train_torch_supernet.py [--epochs 3] [--budget-ms B] [--json out.json]
        [--plot out.png] [--quick] [--threads 1]

About a minute of one CPU core at the defaults (a training step of the supernet, forward and
backward through all 35 candidates, takes about 0.1 s; the accuracy of the mixture is 0.93-0.97
after two epochs).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
from sklearn.datasets import load_digits
from torch import nn

from hwnas import LookupPredictor
from hwnas.integrations import BudgetConstraint, ExpectedLatency, derive_z
from hwnas.predictors import CalibratedPredictor, Predictor
from hwnas.profile import (
    Backend,
    TimingProtocol,
    get_backend,
    profile_layers,
    profile_networks,
    torch_module,
)
from hwnas.spaces import SearchSpace, chain
from hwnas.spaces.mobilenet import mobilenet

#: (out channels, blocks, first stride): five searched blocks at 4x4 and 2x2
STAGES = ((16, 2, 1), (24, 2, 2), (32, 1, 1))
#: where the default budgets sit in the space's predicted latency range
SHARES = (0.25, 0.5, 0.75)


class Supernet(nn.Module):
    """The space's network with every searched block a probs-weighted sum of its candidates'
    outputs (or, given z, the chosen candidates alone).

    Batch norm normalises with the statistics of the batch, in testing too: the running
    statistics of a mixture whose weights move every step lag behind it."""

    def __init__(self, space: SearchSpace):
        super().__init__()

        def module(layers) -> nn.Module:
            return torch_module(chain(layers), seed=None, batch_stats=True) if layers else \
                nn.Identity()

        self.stem, self.head = module(space.stem), module(space.head)
        self.blocks = nn.ModuleList(nn.ModuleList(module(layers) for layers in d.layers)
                                    for d in space.decisions)

    def forward(self, x: torch.Tensor, probs: torch.Tensor | None = None,
                z: tuple[int, ...] | None = None) -> torch.Tensor:
        h = self.stem(x)
        for d, choices in enumerate(self.blocks):
            if z is not None:
                h = choices[z[d]](h)
            else:
                assert probs is not None
                h = sum(probs[d, c] * choice(h) for c, choice in enumerate(choices))
        return self.head(h)


@dataclass(frozen=True)
class Setup:
    """The space, its calibrated predictor, the backend that measured it, and the data."""

    space: SearchSpace
    predictor: Predictor
    backend: Backend
    protocol: TimingProtocol
    images: torch.Tensor
    labels: torch.Tensor
    train: np.ndarray
    test: np.ndarray
    fastest_ms: float
    slowest_ms: float

    def budgets(self) -> list[float]:
        """Budgets at SHARES of the predicted latency range."""
        return [round(self.fastest_ms + s * (self.slowest_ms - self.fastest_ms), 4)
                for s in SHARES]


def prepare(quick: bool, seed: int = 0, threads: int = 1,
            log: Callable[[str], None] = print) -> Setup:
    """Measure the space's layers and a covering design of whole networks (plus the fastest
    and slowest) with the torch backend on the CPU, fit the calibrated lookup predictor, load
    the digits (all but the 400 test images for training)."""
    space = mobilenet(input_shape=(1, 8, 8), num_classes=10, stages=STAGES)
    backend = get_backend("torch", threads=threads)
    protocol = TimingProtocol(warmup=1, runs=5, min_runs=3, max_round_s=0.05, pause_s=0) \
        if quick else TimingProtocol()
    with tempfile.TemporaryDirectory() as folder:  # the tables are read: the files can go
        table = profile_layers(backend, space.unique_layers(),
                               os.path.join(folder, "layers.csv"), protocol, show_progress=False)
        lookup = LookupPredictor().fit_table(table)
        fixed, C = lookup.cost_matrix(space)
        zs = [*space.design(max(space.n_choices) + 1, seed=0), space.min_z(fixed, C)[0],
              np.nanargmax(C, axis=1)]
        networks = profile_networks(backend, space, zs, os.path.join(folder, "networks.csv"),
                                    protocol, show_progress=False)
    predictor = CalibratedPredictor(lookup, slope_bounds=backend.calibration_slope).fit_table(
        networks, space)
    fixed, C = predictor.cost_matrix(space)
    fastest = float(space.min_z(fixed, C)[1])
    slowest = float(fixed + np.nanmax(C, axis=1).sum())
    log(f"space: {len(space.decisions)} searched blocks, {space.size:,} architectures, "
        f"{len(space.unique_layers())} layers and {len(networks.z)} networks measured on "
        f"{table.fingerprint.describe()}; predicted latency {fastest:.4f}-{slowest:.4f} ms "
        f"(layer sum x {predictor.a_:.2f} + {predictor.b_:.4f} ms)")
    digits = load_digits()
    images = torch.tensor(digits.images / 16.0, dtype=torch.float32)[:, None]
    order = np.random.default_rng(seed).permutation(len(images))
    test, train = order[:400], order[400:]
    if quick:
        test, train = test[:100], train[:320]
    return Setup(space, predictor, backend, protocol, images, torch.tensor(digits.target),
                 train, test, fastest, slowest)


def train(setup: Setup, budget_ms: float, *, epochs: int, finetune_epochs: int = 2,
          batch: int = 32, seed: int = 0, log: Callable[[str], None] = print
          ) -> dict[str, Any]:
    """Search at one budget with the adaptive BudgetConstraint, derive z exactly within the
    budget, train that network alone for ``finetune_epochs``, test and measure it."""
    space = setup.space
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    constraint = BudgetConstraint(space, setup.predictor, budget_ms, equality=True)
    latency = ExpectedLatency(space, setup.predictor)
    net = Supernet(space)
    alpha = nn.Parameter(torch.zeros(latency.cost.shape))
    weights = torch.optim.Adam(net.parameters(), lr=0.01)
    architecture = torch.optim.Adam([alpha], lr=0.05)
    x_test, t_test = setup.images[setup.test], setup.labels[setup.test]

    def accuracy(z: tuple[int, ...] | None = None) -> float:
        with torch.no_grad():
            logits = net(x_test, latency.probs(alpha), z)
        return float((logits.argmax(dim=1) == t_test).float().mean())

    def batches():
        shuffled = rng.permutation(setup.train)
        for start in range(0, len(shuffled) - batch + 1, batch):
            rows = shuffled[start:start + batch]
            yield setup.images[rows], setup.labels[rows]

    history: list[dict[str, float | None]] = []

    def report(epoch: int, train_ce: float | None) -> None:
        expected = float(latency(alpha).detach())
        row = {"epoch": epoch, "train_ce": train_ce, "accuracy": accuracy(),
               "expected_latency_ms": expected, "lambda": constraint.lam}
        history.append(row)
        ce = "  -  " if train_ce is None else f"{train_ce:.3f}"  # none before training
        log(f"epoch {epoch:2d}  train CE {ce}  test accuracy {row['accuracy']:.3f}  "
            f"E[latency] {expected:.4f} ms ({expected / budget_ms:.3f} x budget)  lambda "
            f"{constraint.lam:.3f}")

    start = time.perf_counter()
    report(0, None)
    for epoch in range(1, epochs + 1):
        losses = []
        for x, t in batches():
            expected_ms = latency(alpha)
            ce = nn.functional.cross_entropy(net(x, latency.probs(alpha)), t)
            loss = constraint.loss(ce, expected_ms)
            weights.zero_grad()
            architecture.zero_grad()
            loss.backward()
            weights.step()
            architecture.step()
            constraint.update(expected_ms)
            losses.append(float(ce.detach()))
        report(epoch, float(np.mean(losses)))
    search_s = time.perf_counter() - start
    final_expected_ms = float(latency(alpha).detach())
    supernet_accuracy = accuracy()

    start = time.perf_counter()
    z = derive_z(space, setup.predictor, alpha, budget_ms)[0].z
    derive_ms = (time.perf_counter() - start) * 1e3
    for _ in range(finetune_epochs):
        for x, t in batches():
            weights.zero_grad()
            nn.functional.cross_entropy(net(x, z=z), t).backward()
            weights.step()
    predicted_ms = latency.latency(z)
    measured_ms = setup.backend.time_architecture(space.decode(z), setup.protocol).latency_ms
    result = {"budget_ms": budget_ms, "weight": "adaptive", "z": list(z),
              "description": space.describe(z), "predicted_latency_ms": predicted_ms,
              "measured_latency_ms": measured_ms, "accuracy": accuracy(z),
              "supernet_accuracy": supernet_accuracy, "expected_latency_ms": final_expected_ms,
              "lambda": constraint.lam, "epochs": epochs, "search_s": search_s,
              "derive_ms": derive_ms, "history": history}
    log(f"derived z {'-'.join(map(str, z))} ({space.describe(z)}): predicted "
        f"{predicted_ms:.4f} ms, measured {measured_ms:.4f} ms, budget {budget_ms:.4f} ms; "
        f"test accuracy {result['accuracy']:.3f} (after {finetune_epochs} epochs alone)")
    return result


def plot(results: list[dict[str, Any]], path: str) -> None:
    """Accuracy against predicted and measured latency of the derived networks, with their
    budgets."""
    import matplotlib
    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for i, r in enumerate(results):
        ax.axvline(r["budget_ms"], color=f"C{i}", ls="--", lw=1,
                   label=f"budget {r['budget_ms']:.3f} ms")
        ax.plot(r["predicted_latency_ms"], r["accuracy"], "o", color=f"C{i}")
        ax.plot(r["measured_latency_ms"], r["accuracy"], "x", color=f"C{i}")
    ax.plot([], [], "ok", label="predicted")
    ax.plot([], [], "xk", label="measured")
    ax.set(xlabel="latency of the derived network (ms)", ylabel="test accuracy",
           title="digits supernet in PyTorch under a BudgetConstraint")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--budget-ms", type=float, default=None,
                   help="one budget (default: three over the space's latency range)")
    p.add_argument("--finetune-epochs", type=int, default=2,
                   help="epochs that train the derived network alone before it is tested")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--threads", type=int, default=1,
                   help="PyTorch intra-op threads, for training and measuring (default: 1)")
    p.add_argument("--json", help="write per budget the derived z, budget_ms, "
                   "predicted_latency_ms, measured_latency_ms and accuracy")
    p.add_argument("--plot", help="draw accuracy against latency (PNG; needs matplotlib)")
    p.add_argument("--quick", action="store_true",
                   help="fewer training and test images, fewer timing runs and no pause "
                        "before a noisy layer is measured again (for the tests)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    setup = prepare(args.quick, args.seed, args.threads)
    budgets = [args.budget_ms] if args.budget_ms is not None else setup.budgets()
    results = []
    for budget_ms in budgets:
        print(f"budget {budget_ms:.4f} ms")
        results.append(train(setup, budget_ms, epochs=args.epochs, batch=args.batch,
                             finetune_epochs=0 if args.quick else args.finetune_epochs,
                             seed=args.seed))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
        print(f"wrote {args.json}")
    if args.plot:
        plot(results, args.plot)
        print(f"wrote {args.plot}")


if __name__ == "__main__":
    main()
