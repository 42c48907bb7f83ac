"""NNabla NAS's MobileNet SearchNet estimated by an hwnas predictor instead of live profiling.

    .venv/bin/python examples/nnabla_nas_estimator.py --table layers.csv [--samples 5]
"""

import argparse
import time

import nnabla as nn
import numpy as np

from hwnas import LookupPredictor, get_space, read_layer_table
from hwnas.integrations.nnabla_nas import HwnasLatencyEstimator, get_z, import_nnabla_nas


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--table", required=True, help="mobilenet layer table (hwnas.profile)")
    p.add_argument("--samples", type=int, default=5)
    p.add_argument("--bound-ms", type=float, default=5.0)
    args = p.parse_args()

    import_nnabla_nas()
    from nnabla_nas.contrib.classification.mobilenet import SearchNet

    space = get_space("mobilenet")
    estimator = HwnasLatencyEstimator(LookupPredictor().fit(read_layer_table(args.table)),
                                      bound=args.bound_ms, weight=0.1)
    net = SearchNet(num_classes=10, mode="sample")
    net.apply(training=False)
    x = nn.Variable.from_numpy_array(np.random.default_rng(0).standard_normal((1, 3, 32, 32)))
    for _ in range(args.samples):
        net(x).forward()  # samples an architecture
        start = time.perf_counter()
        latency_ms = estimator.get_estimation(net)
        took_ms = (time.perf_counter() - start) * 1e3
        reward = 0.5 * min(1.0, estimator._bound / latency_ms) ** estimator._weight
        print(f"{space.describe(get_z(net))[:60]}...  {latency_ms:.3f} ms "
              f"(estimated in {took_ms:.1f} ms), reward at accuracy 0.5: {reward:.4f}")


if __name__ == "__main__":
    main()
