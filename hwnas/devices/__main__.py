"""python -m hwnas.devices: list the shipped device tables."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from hwnas import _cli
from hwnas.devices._catalogue import DATA, LICENSE_FILE, SOURCES, list_devices

PROG = "python -m hwnas.devices"


def parser() -> _cli.ArgumentParser:
    p = _cli.ArgumentParser(prog=PROG, description=__doc__.split("\n")[0],
                            epilog="Search for one offline: python -m hwnas.search --space "
                                   "fbnet --device pixel3 --budget-ms 15")
    p.add_argument("--space", help="only the tables of this space (nb201, fbnet, ofa)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    devices = list_devices(args.space)
    print(f"{'name':<16} {'space':<6} {'kind':<6} {'batch':>5}  {'source':<17} "
          f"{'min_ms':>8} {'max_ms':>8} {'rows':>6}")
    for d in devices:
        whole = "  (whole ms)" if d.whole_ms else ""
        print(f"{d.name:<16} {d.space:<6} {d.kind:<6} {d.batch:>5}  {d.source:<17} "
              f"{d.min_ms:>8.3f} {d.max_ms:>8.3f} {d.rows:>6}{whole}")
    print(f"{len(devices)} tables; from {SOURCES}; licence: {DATA / LICENSE_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(_cli.run(main, PROG))
