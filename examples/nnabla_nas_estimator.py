"""NNabla NAS's MobileNet SearchNet estimated by an hwnas predictor instead of live profiling.

Samples architectures, estimates each, and prints ProxylessNAS's reward for it; with
``--adaptive`` the reward's weight is a BudgetConstraint's lambda on ``--bound-ms``, updated
after every ``--samples`` estimates (here each sample stands for a search step). At the end
the most likely z of the SearchNet's alphas within the bound is derived exactly.

    .venv/bin/python examples/nnabla_nas_estimator.py --table layers.csv [--samples 5]
        [--adaptive]
"""

import argparse
import time

import nnabla as nn
import numpy as np

from hwnas import LookupPredictor, get_space, read_layer_table
from hwnas.errors import InputError
from hwnas.integrations.nnabla_nas import (
    HwnasLatencyEstimator,
    derive_searchnet_z,
    get_z,
    import_nnabla_nas,
)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--table", required=True, help="mobilenet layer table (hwnas.profile)")
    p.add_argument("--samples", type=int, default=5)
    p.add_argument("--bound-ms", type=float, default=5.0)
    p.add_argument("--adaptive", action="store_true",
                   help="the reward's weight set by dual ascent (constraint mode)")
    args = p.parse_args()

    import_nnabla_nas()
    from nnabla_nas.contrib.classification.mobilenet import SearchNet

    space = get_space("mobilenet")
    predictor = LookupPredictor().fit_table(read_layer_table(args.table))
    estimator = HwnasLatencyEstimator(predictor, bound_ms=args.bound_ms,
                                      weight="adaptive" if args.adaptive else 0.1, samples=1)
    net = SearchNet(num_classes=10, mode="sample")
    net.apply(training=False)
    x = nn.Variable.from_numpy_array(np.random.default_rng(0).standard_normal((1, 3, 32, 32)))
    for _ in range(args.samples):
        net(x).forward()  # samples an architecture
        start = time.perf_counter()
        latency_ms = estimator.get_estimation(net)
        took_ms = (time.perf_counter() - start) * 1e3
        reward = 0.5 * min(1.0, estimator.bound_ms / latency_ms) ** estimator._weight
        print(f"{space.describe(get_z(net))[:60]}...  {latency_ms:.3f} ms "
              f"(estimated in {took_ms:.1f} ms), reward at accuracy 0.5: {reward:.4f} "
              f"(weight {estimator._weight:.3f})")
    try:
        best = derive_searchnet_z(net, predictor, args.bound_ms)[0]
    except InputError as e:  # a bound under the fastest network of this device
        print(f"derived nothing: {e}")
    else:
        print(f"most likely z within {args.bound_ms:g} ms: {'-'.join(map(str, best.z))}, "
              f"predicted {best.predicted_latency_ms:.3f} ms")


if __name__ == "__main__":
    main()
