"""A short nnabla training loop with hwnas's latency penalty in the loss.

Architecture logits alpha (decisions x choices) are learned beside the weights of a small
classifier on random data; the loss is CE * (log E[lat] / log ref)^beta (ProxylessNAS), where
E[lat] comes from a fitted predictor, so no device is timed while training.

    .venv/bin/python examples/train_with_latency_penalty.py --table layers.csv [--steps 30]
"""

import argparse

import nnabla as nn
import nnabla.functions as F
import nnabla.parametric_functions as PF
import nnabla.solvers as S
import numpy as np

from hwnas import LookupPredictor, get_space, read_layer_table
from hwnas.integrations import LatencyPenalty


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--table", required=True, help="mobilenet layer table (hwnas.profile)")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--ref-ms", type=float, default=None, help="reference latency "
                   "(default: the expected latency at the start)")
    args = p.parse_args()

    space = get_space("mobilenet")
    penalty = LatencyPenalty(space, LookupPredictor().fit(read_layer_table(args.table)))
    rng = np.random.default_rng(0)
    x = nn.Variable.from_numpy_array(rng.standard_normal((16, 3, 32, 32)).astype(np.float32))
    t = nn.Variable.from_numpy_array(rng.integers(0, 10, (16, 1)))
    alpha = nn.Variable.from_numpy_array(np.zeros(penalty.C.shape, np.float32), need_grad=True)
    impossible = nn.Variable.from_numpy_array(np.where(penalty.mask, 0, -1e9).astype(np.float32))

    with nn.parameter_scope("classifier"):
        logits = PF.affine(F.average_pooling(x, (4, 4)), 10)
    ce = F.mean(F.softmax_cross_entropy(logits, t))
    expected_ms = penalty.expected_latency(F.softmax(alpha + impossible, axis=1))
    expected_ms.forward()
    ref_ms = args.ref_ms or float(expected_ms.d)
    loss = penalty.proxyless_loss(ce, expected_ms, ref_ms=ref_ms, beta=0.6)

    solver = S.Adam(0.05)
    solver.set_parameters({"alpha": alpha, **nn.get_parameters()})
    for step in range(args.steps):
        loss.forward()
        solver.zero_grad()
        loss.backward()
        solver.update()
        if step % 10 == 0 or step == args.steps - 1:
            print(f"step {step:3d}  loss {float(loss.d):.4f}  CE {float(ce.d):.4f}  "
                  f"E[latency] {float(expected_ms.d):.3f} ms")
    z = np.where(penalty.mask, alpha.d, -np.inf).argmax(axis=1)
    print(f"most likely z: {'-'.join(map(str, z))}, predicted {penalty.latency(z):.3f} ms")


if __name__ == "__main__":
    main()
