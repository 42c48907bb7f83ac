"""Command-line options that choose and configure a profiler backend (profile and search)."""

from __future__ import annotations

import argparse

from hwnas._cli import int_in
from hwnas.profile._base import Backend
from hwnas.profile._onnxruntime import OPTIMIZATION_LEVELS


def add_backend_options(parser: argparse.ArgumentParser, default: str | None) -> None:
    """Add --backend, --context, --device-id, --batch, --threads and --optimization."""
    from hwnas.profile import BACKENDS
    parser.add_argument("--backend", choices=sorted(BACKENDS), default=default,
                        help="profiler runtime (default: %(default)s)")
    parser.add_argument("--context", default="cpu",
                        help="device: cpu, or the GPU's (nnabla: cudnn; onnxruntime: cuda) "
                             "(default: cpu)")
    parser.add_argument("--device-id", type=int_in(0, 1023), default=0, help="GPU index")
    parser.add_argument("--batch", type=int_in(1, 65536), default=1,
                        help="batch size to measure (default: 1)")
    parser.add_argument("--threads", type=int_in(1, 1024), default=1,
                        help="onnxruntime intra-op threads (default: 1; nnabla's CPU context "
                             "always uses one)")
    parser.add_argument("--optimization", choices=OPTIMIZATION_LEVELS, default="all",
                        help="onnxruntime graph optimisation (default: all, as deployed)")


def backend_from_args(name: str, args: argparse.Namespace) -> Backend:
    """The backend ``name`` configured by the options of ``add_backend_options``."""
    from hwnas.profile import get_backend
    options = {"context": args.context, "device_id": args.device_id, "batch": args.batch}
    if name == "onnxruntime":
        options.update(threads=args.threads, optimization=args.optimization)
    return get_backend(name, **options)
