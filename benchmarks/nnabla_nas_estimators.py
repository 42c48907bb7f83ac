"""NNabla NAS's own estimators against hwnas on the same SearchNet architectures.

Its LatencyGraphEstimator gets each architecture as an nnabla graph built by hwnas.

For N random architectures of NNabla NAS's MobileNet SearchNet (seeded z), in one process:
its LatencyEstimator (module-based, summed over the active leaf modules; run on a separate
SearchNet, since it zeroes the weights of what it profiles), hwnas's HwnasLatencyEstimator
(lookup, and lookup calibrated on --calibration networks), and the true latency (hwnas's
nnabla backend, whole network). Prints a table with the time each took and writes JSON.

    .venv/bin/python benchmarks/nnabla_nas_estimators.py [--networks 10] [--calibration 8]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np
from _results import write_results

from hwnas.integrations.nnabla_nas import HwnasLatencyEstimator, import_nnabla_nas, set_z
from hwnas.predictors import CalibratedPredictor, LookupPredictor
from hwnas.profile import TimingProtocol, get_backend, profile_layers, profile_networks
from hwnas.spaces import get_space


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--networks", type=int, default=10)
    p.add_argument("--calibration", type=int, default=8,
                   help="networks measured to calibrate the lookup predictor")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=os.path.join(os.path.dirname(__file__), "results",
                                                  "nnabla_nas_estimators.json"))
    args = p.parse_args()
    nnas = import_nnabla_nas()
    import nnabla as nn
    from nnabla_nas.contrib.classification.mobilenet import SearchNet
    from nnabla_nas.utils.estimator.estimator import Estimator
    from nnabla_nas.utils.estimator.latency import LatencyEstimator, LatencyGraphEstimator

    from hwnas.profile._nnabla import build

    space, backend = get_space("mobilenet"), get_backend("nnabla")
    folder = tempfile.mkdtemp()
    t0 = time.perf_counter()
    table = profile_layers(backend, space.unique_layers(), os.path.join(folder, "l.csv"),
                           show_progress=False)
    t_table = time.perf_counter() - t0
    t0 = time.perf_counter()
    cal_z = space.random_z(args.calibration, args.seed + 100)
    cal = profile_networks(backend, space, cal_z, os.path.join(folder, "c.csv"),
                           show_progress=False)
    t_cal = time.perf_counter() - t0
    lookup = LookupPredictor().fit_table(table)
    calibrated = CalibratedPredictor(lookup).fit_table(cal, space)
    adapters = {"hwnas lookup": HwnasLatencyEstimator(lookup),
                "hwnas calibrated": HwnasLatencyEstimator(calibrated)}
    theirs = LatencyEstimator(device_id=0, ext_name="cpu", n_run=10, n_warmup=2)
    their_graph = LatencyGraphEstimator(device_id=0, ext_name="cpu", n_run=10, n_warmup=2)
    # mode "full" calls every candidate once, so each module records its input shape
    ours_net, their_net = (SearchNet(num_classes=10, mode="full") for _ in range(2))
    x = nn.Variable((1, 3, 32, 32))
    for net in (ours_net, their_net):
        net.apply(training=False)
        net(x)
    Z = space.random_z(args.networks, args.seed)
    t0 = time.perf_counter()
    true = profile_networks(backend, space, Z, os.path.join(folder, "n.csv"),
                            show_progress=False)
    t_true = (time.perf_counter() - t0) / len(Z)
    rows = []
    for z, timing in zip(Z, true.timings):
        row = {"z": z.tolist(), "true_ms": timing.latency_ms, "true_s": t_true}
        for name, est in adapters.items():
            set_z(ours_net, z)
            t0 = time.perf_counter()
            row[f"{name}_ms"] = est.get_estimation(ours_net)
            row[f"{name}_s"] = time.perf_counter() - t0
        set_z(their_net, z)
        t0 = time.perf_counter()
        # the Estimator base class's sum over active leaf modules (LatencyEstimator's own
        # get_estimation ignores which candidate is active)
        row["nnabla_nas_ms"] = Estimator.get_estimation(theirs, their_net)
        row["nnabla_nas_s"] = time.perf_counter() - t0
        # the graph estimator gets the same architecture as an nnabla graph (built by hwnas)
        with nn.parameter_scope(f"graph{len(rows)}"):
            out, _ = build(space.decode(z).graph, nn.Variable((1, 3, 32, 32)))
        t0 = time.perf_counter()
        row["nnabla_nas_graph_ms"] = their_graph.get_estimation(out)
        row["nnabla_nas_graph_s"] = time.perf_counter() - t0
        rows.append(row)
    names = ["nnabla_nas", "nnabla_nas_graph", "hwnas lookup", "hwnas calibrated"]
    print(f"{'z':<44} {'true ms':>8} " + " ".join(f"{n + ' ms':>19} {'s':>6}" for n in names))
    for r in rows:
        print(f"{'-'.join(map(str, r['z'])):<44} {r['true_ms']:>8.3f} " +
              " ".join(f"{r[n + '_ms']:>19.3f} {r[n + '_s']:>6.3f}" for n in names))
    true_ms = np.array([r["true_ms"] for r in rows])
    from scipy.stats import kendalltau
    print()
    for n in names:
        est = np.array([r[n + "_ms"] for r in rows])
        err = np.abs(est / true_ms - 1)
        print(f"{n:<18} estimate/true {np.mean(est / true_ms):.3f}, MAPE {100 * err.mean():.1f} %,"
              f" tau {kendalltau(est, true_ms).statistic:.2f}, "
              f"{np.mean([r[n + '_s'] for r in rows]):.3f} s per network")
    print(f"\nhwnas one-off costs: layer table {t_table:.1f} s, {len(cal.z)} calibration networks "
          f"{t_cal:.1f} s; true latency {t_true:.2f} s per network "
          f"({TimingProtocol().rounds} rounds)")
    print(f"device: {table.fingerprint.describe()}; nnabla-nas {nnas.__version__}")
    write_results(args.json, "nnabla_nas_estimators",
                  {"rows": rows, "layer_table_s": t_table, "calibration_s": t_cal,
                   "calibration_networks": len(cal.z), "rounds": TimingProtocol().rounds})


if __name__ == "__main__":
    main()
