"""Regenerate the shipped catalogue (``hwnas/devices/data``) from the redistributed tables.

Run by hand, from the repository root::

    python -m hwnas.devices._build [../shared/devices]

It reads ``manifest.json`` and its gzip CSV tables (``space,z,latency_ms,device``; z in each
space's notation, ``ofa``'s configuration strings included), writes one
``<space>.npz`` per space (``z``: uint8, networks x decisions, sorted; ``devices``: names;
``latency_ms``: float64, devices x networks) and ``index.json`` (one entry per device, the
sources and the licence notice), then reads the catalogue back through ``hwnas.devices`` and
checks that it reproduces every value of every table exactly. float64, not float32: the
tables hold float64 values (and float32 would change most of them in the 8th digit), and it
costs 0.4 MB more.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import sys
from collections.abc import Sequence

import numpy as np

from hwnas._files import atomic_write, read_bytes, write_json
from hwnas.devices._catalogue import DATA, FORMAT_VERSION, LICENSE_FILE, SOURCES, device_matrix
from hwnas.errors import InputError
from hwnas.spaces import get_space

#: device name (without its batch suffix) -> (kind, source)
KINDS = {
    "1080ti": ("GPU", "BRP-NAS LatBench"), "2080ti": ("GPU", "BRP-NAS LatBench"),
    "titan_rtx": ("GPU", "BRP-NAS LatBench"), "titanx": ("GPU", "BRP-NAS LatBench"),
    "titanxp": ("GPU", "BRP-NAS LatBench"),
    "gold_6240": ("CPU", "BRP-NAS LatBench"), "silver_4114": ("CPU", "BRP-NAS LatBench"),
    "silver_4210r": ("CPU", "BRP-NAS LatBench"),
    "essential_ph": ("phone", "BRP-NAS LatBench"), "samsung_a50": ("phone", "BRP-NAS LatBench"),
    "samsung_s7": ("phone", "BRP-NAS LatBench"), "pixel3": ("phone", "HW-NAS-Bench"),
    "v100": ("GPU", "HELP"), "titan_xp": ("GPU", "HELP"),
}
#: spaces whose tables all come from one source, whatever their device (the Once-for-All
#: tables are HELP's, on GPUs that LatBench measured the other spaces on)
SPACE_SOURCES = {"ofa": "HELP"}
BATCHES = (1, 32, 64, 256)

MIT = """MIT License

Copyright (c) 2024 HayeonLee

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
"""


def kind_batch(name: str, space: str | None = None) -> tuple[str, int, str]:
    """(kind, batch, source) of a device name (of ``space``: see SPACE_SOURCES): a
    ``_1``/``_32``/``_64``/``_256`` suffix is the batch size, no suffix batch 1."""
    base, _, suffix = name.rpartition("_")
    batch = int(suffix) if base and suffix.isdigit() and int(suffix) in BATCHES else 1
    if batch != 1 or name.endswith("_1"):
        name = base
    if name not in KINDS:
        raise InputError(f"device {name!r}: no kind and source known (add it to KINDS)")
    kind, source = KINDS[name]
    return kind, batch, SPACE_SOURCES.get(space or "", source)


def read_table(path: str, space_name: str) -> tuple[np.ndarray, np.ndarray]:
    """(Z, latency_ms) of one gzip CSV table, rows sorted by z."""
    space = get_space(space_name)
    text = gzip.decompress(read_bytes(path, "device table")).decode()
    rows = list(csv.DictReader(io.StringIO(text)))
    if not rows or set(rows[0]) != {"space", "z", "latency_ms", "device"}:
        raise InputError(f"{path}: expected columns space,z,latency_ms,device")
    Z = np.array([space.parse_z(r["z"]) for r in rows], dtype=np.int64)
    latency = np.array([float(r["latency_ms"]) for r in rows])
    if not (np.isfinite(latency).all() and (latency > 0).all()):
        raise InputError(f"{path}: latencies must be finite and > 0")
    order = np.lexsort(Z.T[::-1])
    return Z[order], latency[order]


def build(source: str, out: str = str(DATA)) -> dict:
    """Write the catalogue from ``source`` (a folder with manifest.json) into ``out``, check
    it and return the index."""
    manifest = json.loads(read_bytes(os.path.join(source, "manifest.json"), "manifest"))
    by_space: dict[str, list[tuple[str, str, dict]]] = {}
    for file, entry in sorted(manifest["tables"].items()):
        by_space.setdefault(entry["space"], []).append((entry["device"], file, entry))
    devices = []
    for space_name, tables in sorted(by_space.items()):
        ref, latencies = None, []
        for device, file, entry in tables:
            Z, latency = read_table(os.path.join(source, file), space_name)
            if ref is None:
                ref = Z
            elif not np.array_equal(Z, ref):
                raise InputError(f"{file}: its networks differ from the space's other tables")
            if len(Z) != entry["rows"] or latency.min() != entry["min_ms"] or \
                    latency.max() != entry["max_ms"]:
                raise InputError(f"{file}: rows or range differ from manifest.json")
            kind, batch, origin = kind_batch(device, space_name)
            devices.append({"name": device, "space": space_name, "kind": kind, "batch": batch,
                            "source": origin, "rows": len(Z), "min_ms": float(latency.min()),
                            "max_ms": float(latency.max()),
                            "whole_ms": bool(np.all(latency == np.round(latency)))})
            latencies.append(latency)
        assert ref is not None
        names = np.array([device for device, _, _ in tables])
        matrix = np.array(latencies)

        def write(f, ref=ref, names=names, matrix=matrix):
            np.savez_compressed(f, z=ref.astype(np.uint8), devices=names, latency_ms=matrix)
        atomic_write(os.path.join(out, f"{space_name}.npz"), write)
    index = {"format": "hwnas.devices", "format_version": FORMAT_VERSION,
             "units": "milliseconds per forward pass of the batch",
             "sources": SOURCES, "origin": manifest["source"],
             **({"ofa_origin": manifest["ofa_source"]} if "ofa_source" in manifest else {}),
             "licence": "MIT (HELP), see "
             f"{LICENSE_FILE}", "devices": devices}
    write_json(os.path.join(out, "index.json"), index)
    atomic_write(os.path.join(out, LICENSE_FILE),
                 f"The device tables in this folder are derived from:\n\n{SOURCES}\n\n"
                 f"({manifest['source']}), distributed under this licence:\n\n{MIT}")
    check(source, manifest, out)
    return index


def check(source: str, manifest: dict, folder: str) -> None:
    """Raise AssertionError unless the catalogue in ``folder`` reproduces every value."""
    for file, entry in manifest["tables"].items():
        Z, latency = read_table(os.path.join(source, file), entry["space"])
        matrix = device_matrix(entry["space"], folder)
        row = matrix.devices.index(entry["device"])
        assert np.array_equal(matrix.z, Z), file
        assert np.array_equal(matrix.latency_ms[row], latency), file


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    source = args[0] if args else os.path.join("..", "shared", "devices")
    index = build(source)
    size = sum(os.path.getsize(os.path.join(DATA, f)) for f in os.listdir(DATA))
    print(f"wrote {len(index['devices'])} device tables to {DATA} ({size / 1e6:.2f} MB); "
          f"every value reproduced exactly")
    return 0


if __name__ == "__main__":
    sys.exit(main())
