"""Export for a device where hwnas does not run: ONNX files, a manifest and a standalone runner.

``export_for_device`` writes into a folder::

    manifest.json        what to measure: one unit per network (space, z, input shape; on
                         ``ofa`` also its OFA configuration, resolution included) or layer
    networks/<z>.onnx    one file per network
    layers/L<i>.onnx     one file per layer
    runner.py            needs only numpy and onnxruntime (no hwnas, no nnabla)
    hwnas_timing.py      hwnas's timing module (hwnas.profile._stats), which runner.py times with

For a device with PyTorch and no ONNX Runtime (``runtime="torch"``) each unit is instead a
JSON file of its layers' steps (``networks/<z>.json``, ``layers/L<i>.json``), and
``hwnas_torch.py`` (hwnas.profile._torch_net) lies beside the runner, which then needs only
numpy and torch and builds and times exactly what hwnas's ``torch`` backend does.

The folder must be new or empty, or hold an export of the same units (then only missing
files are written: an interrupted export resumes, and the device's tables are kept). Copy the
folder to the device and run ``python runner.py --device NAME``: it times every unit
with hwnas's timing protocol and writes ``networks.csv`` and ``layers.csv`` beside the
manifest, tables that ``hwnas.fit --networks`` / ``--layers`` read back.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hwnas._files import MAX_TABLE_BYTES, atomic_write, read_text
from hwnas.errors import InputError
from hwnas.layers import Layer
from hwnas.profile._onnxruntime import export_onnx
from hwnas.spaces import Graph, SearchSpace, unit_graph
from hwnas.tables import format_z

FORMAT = "hwnas.export"
FORMAT_VERSION = 1
#: the runtimes an export is for, and the extension of its unit files
RUNTIMES = {"onnxruntime": "onnx", "torch": "json"}
#: the format of a unit file of a torch export
TORCH_GRAPH_FORMAT = "hwnas.torch-graph"
RUNNER = Path(__file__).with_name("runner.py")
#: what the export copies beside the runner, so that a device times exactly as hwnas does
TIMING = Path(__file__).with_name("_stats.py")
#: and, for torch, builds what hwnas's torch backend builds
TORCH_NET = Path(__file__).with_name("_torch_net.py")


def export_for_device(directory: str | os.PathLike, space: SearchSpace,
                      zs: Sequence[Sequence[int]] | None = None,
                      layers: Sequence[Layer] | None = None, batch: int = 1,
                      runtime: str = "onnxruntime") -> Path:
    """Write the networks ``zs`` of ``space`` and/or ``layers`` as ONNX files (or, with
    ``runtime="torch"``, as graphs for PyTorch), with a manifest and the standalone runner,
    into ``directory``. Returns the manifest's path.

    Example:
        >>> space = get_space("nb201")  # doctest: +SKIP
        >>> export_for_device("to_phone", space, zs=space.design(10))  # doctest: +SKIP
        >>> # on the device: python to_phone/runner.py --device "Pixel 7"
    """
    if (zs is None or len(zs) == 0) and not layers:
        raise InputError("nothing to export: give networks (zs) and/or layers")
    if runtime not in RUNTIMES:
        raise InputError(f"runtime must be one of {sorted(RUNTIMES)}, got {runtime!r}")
    ext = RUNTIMES[runtime]
    folder = Path(directory)
    units: list[dict] = []
    graphs = []
    for z in (space.check_z(zs) if zs is not None else []):
        arch = space.decode(z)
        key, text = format_z(arch.z), space.format_z(arch.z)  # text: OFA's string on ofa
        unit: dict[str, Any] = {"table": "networks", "id": text, "space": space.name, "z": text,
                                "arch": space.describe(arch.z),
                                "file": f"networks/{key}.{ext}",
                                "input_shape": [batch, *arch.layers[0].in_shape]}
        config = space.config(arch.z)
        if config is not None:  # what deploys it (Once-for-All: ks, e, d and resolution r)
            unit["config"] = config
        units.append(unit)
        graphs.append(arch.graph)
    for i, layer in enumerate(layers or []):
        units.append({"table": "layers", "id": layer.key, "key": layer.key, "op": layer.op,
                      "macs": layer.macs, "params": layer.params,
                      "file": f"layers/L{i:04d}.{ext}", "input_shape": [batch, *layer.in_shape]})
        graphs.append(unit_graph(layer))
    manifest = {"format": FORMAT, "version": FORMAT_VERSION, "space": space.name,
                "space_signature": space.signature, "batch": batch, "units": units}
    if runtime != "onnxruntime":  # an ONNX export's manifest stays as it always was
        manifest["runtime"] = runtime
    text = json.dumps(manifest, indent=1) + "\n"
    path = folder / "manifest.json"
    if not _same_export(folder, path, json.loads(text)):
        raise InputError(f"{folder}: the folder is not empty and holds no export of these "
                         f"units (its manifest.json differs or is absent), so its tables "
                         f"would mix two exports: export into a new or empty folder")
    # the manifest first: an interrupted export then resumes (same manifest), writing only
    # the files still missing; every file appears whole (atomic_write: written aside, then
    # renamed; a link planted in the folder is replaced, never written through)
    folder.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        atomic_write(path, text)
    for unit, graph in zip(units, graphs):
        if not (folder / unit["file"]).is_file():
            if runtime == "torch":
                _export_torch_graph(graph, folder / unit["file"])
            else:
                export_onnx(graph, folder / unit["file"], batch=batch)
    copies = [("runner.py", RUNNER), ("hwnas_timing.py", TIMING)]
    if runtime == "torch":
        copies.append(("hwnas_torch.py", TORCH_NET))
    for name, source in copies:
        if not (folder / name).is_file():
            atomic_write(folder / name, source.read_bytes())
    return path


def _export_torch_graph(graph: Graph, path: Path) -> None:
    """A graph as the plain data that the runner's hwnas_torch.py builds (atomically)."""
    from hwnas.profile._torch import plain_graph
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps({"format": TORCH_GRAPH_FORMAT, "version": 1,
                                   "input_shape": list(graph[0][0].in_shape),
                                   "nodes": plain_graph(graph)}) + "\n")


def _same_export(folder: Path, manifest_path: Path, manifest: dict) -> bool:
    """Whether ``folder`` is new or empty, or holds an export of exactly ``manifest``."""
    if not folder.exists():
        return True
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder: export into a new or empty folder")
    if not any(folder.iterdir()):
        return True
    try:
        return json.loads(read_text(str(manifest_path), "manifest", max_bytes=MAX_TABLE_BYTES)
                          ) == manifest
    except (InputError, ValueError, RecursionError):
        return False
