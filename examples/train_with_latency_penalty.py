"""Differentiable architecture search on real data, with hwnas's latency penalty in the loss.

A small MobileNetV2-like space at 1x8x8 (hwnas's ``mobilenet`` space with three short stages)
is built in nnabla as a supernet: each searched block runs all of its candidates (inverted
residuals MB{3,6} {3x3,5x5,7x7}, and skip where shapes allow) and mixes their outputs by
softmax(alpha). Weights and alpha train together on scikit-learn's 8x8 handwritten digits
(1,797 real images, shipped with scikit-learn) with the loss CE * (E[lat] / ref)^beta, where
E[lat] = fixed + sum_d sum_c softmax(alpha)[d, c] C[d, c] comes from this space's layer table,
measured here first with hwnas's nnabla backend: no device is timed while training. Each
epoch prints the test accuracy and E[latency]; at the end the most likely z is derived,
predicted from the table and measured end to end. Test accuracy is that of the mixture
(the supernet), on 400 held-out images.

    .venv/bin/python examples/train_with_latency_penalty.py [--epochs 8] [--beta 0.6] [--quick]
"""

import argparse
import os
import tempfile

import nnabla as nn
import nnabla.functions as F
import nnabla.solvers as S
import numpy as np
from sklearn.datasets import load_digits

from hwnas import LookupPredictor
from hwnas.integrations import LatencyPenalty
from hwnas.profile import TimingProtocol, get_backend, profile_layers
from hwnas.profile._nnabla import build
from hwnas.spaces import chain
from hwnas.spaces.mobilenet import mobilenet

#: (out channels, blocks, first stride): five searched blocks at 4x4 and 2x2
STAGES = ((16, 2, 1), (24, 2, 2), (32, 1, 1))


def supernet(space, x, probs):
    """The space's network on x with every searched block a softmax(alpha)-weighted sum of
    its candidates' outputs; parameters are shared between the train and test graphs.

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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--beta", type=float, default=0.6, help="exponent of the latency ratio")
    p.add_argument("--ref-ms", type=float, default=None, help="reference latency (default: "
                   "E[latency] of the uniform mixture, where the loss equals CE)")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--quick", action="store_true",
                   help="fewer training and test images, fewer timing runs and no pause "
                        "before a noisy layer is measured again (for the tests)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    rng = np.random.default_rng(args.seed)
    nn.seed(args.seed)
    space = mobilenet(input_shape=(1, 8, 8), num_classes=10, stages=STAGES)
    backend = get_backend("nnabla")
    protocol = TimingProtocol(warmup=1, runs=5, min_runs=3, max_seconds=0.05, pause_s=0) \
        if args.quick else TimingProtocol()
    folder = tempfile.mkdtemp()
    table = profile_layers(backend, space.unique_layers(), os.path.join(folder, "layers.csv"),
                           protocol, show_progress=False)
    penalty = LatencyPenalty(space, LookupPredictor().fit(table))
    print(f"space: {len(space.decisions)} searched blocks, {space.size:,} architectures, "
          f"{len(space.unique_layers())} layers "
          f"measured on {table.fingerprint.describe()}")

    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)[:, None]
    order = rng.permutation(len(images))
    test, train = order[:400], order[400:]
    if args.quick:
        test, train = test[:200], train[:320]
    x_test = nn.Variable.from_numpy_array(images[test])

    alpha = nn.Variable.from_numpy_array(np.zeros(penalty.C.shape, np.float32), need_grad=True)
    impossible = nn.Variable.from_numpy_array(np.where(penalty.mask, 0, -1e9).astype(np.float32))
    probs = F.softmax(alpha + impossible, axis=1)
    x = nn.Variable((args.batch, 1, 8, 8))
    t = nn.Variable((args.batch, 1))
    with nn.parameter_scope("net"):
        logits = supernet(space, x, probs)
        test_logits = supernet(space, x_test, probs)
    ce = F.mean(F.softmax_cross_entropy(logits, t))
    expected_ms = penalty.expected_latency(probs)
    expected_ms.forward()
    ref_ms = args.ref_ms or float(expected_ms.d)
    loss = penalty.multiplicative_loss(ce, expected_ms, ref_ms=ref_ms, beta=args.beta)

    weights = S.Adam(0.01)
    with nn.parameter_scope("net"):
        weights.set_parameters(nn.get_parameters())
    architecture = S.Adam(0.05)
    architecture.set_parameters({"alpha": alpha})

    def report(epoch: int, train_ce: float) -> None:
        test_logits.forward(clear_buffer=True)
        accuracy = float(np.mean(test_logits.d.argmax(axis=1) == digits.target[test]))
        expected_ms.forward()
        print(f"epoch {epoch:2d}  train CE {train_ce:.3f}  test accuracy {accuracy:.3f}  "
              f"E[latency] {float(expected_ms.d):.4f} ms", flush=True)

    report(0, float("nan"))
    for epoch in range(1, args.epochs + 1):
        shuffled = rng.permutation(train)
        losses = []
        for start in range(0, len(shuffled) - args.batch + 1, args.batch):
            rows = shuffled[start:start + args.batch]
            x.d, t.d = images[rows], digits.target[rows, None]
            loss.forward()
            weights.zero_grad()
            architecture.zero_grad()
            loss.backward()
            weights.update()
            architecture.update()
            losses.append(float(ce.d))
        report(epoch, float(np.mean(losses)))

    z = np.where(penalty.mask, alpha.d, -np.inf).argmax(axis=1)
    fastest = penalty.fixed + np.where(penalty.mask, penalty.C, np.inf).min(axis=1).sum()
    slowest = penalty.fixed + penalty.C.max(axis=1).sum()
    true_ms = backend.time_architecture(space.decode(z), protocol).latency_ms
    print(f"derived z {'-'.join(map(str, z))} ({space.describe(z)}): predicted "
          f"{penalty.latency(z):.4f} ms (the space spans {fastest:.4f}-{slowest:.4f} ms), "
          f"true {true_ms:.4f} ms")


if __name__ == "__main__":
    main()
