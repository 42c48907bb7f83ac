"""Export for a device where hwnas does not run: ONNX files, a manifest and a standalone runner.

``export_for_device`` writes into a folder::

    manifest.json        what to measure: one unit per network (space, z) or layer (key)
    networks/<z>.onnx    one file per network
    layers/L<i>.onnx     one file per layer
    runner.py            needs only numpy and onnxruntime (no hwnas, no nnabla)

Copy the folder to the device and run ``python runner.py --device NAME``: it times every unit
with hwnas's timing protocol and writes ``networks.csv`` and ``layers.csv`` beside the
manifest, tables that ``hwnas.fit --networks`` / ``--layers`` read back.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from hwnas.errors import InputError
from hwnas.layers import Layer
from hwnas.profile._onnxruntime import export_onnx
from hwnas.spaces import SearchSpace, unit_graph
from hwnas.tables import format_z

FORMAT = "hwnas.export"
FORMAT_VERSION = 1
RUNNER = Path(__file__).with_name("runner.py")


def export_for_device(directory: str | os.PathLike, space: SearchSpace,
                      zs: Sequence[Sequence[int]] | None = None,
                      layers: Sequence[Layer] | None = None, batch: int = 1) -> Path:
    """Write the networks ``zs`` of ``space`` and/or ``layers`` as ONNX files, with a manifest
    and the standalone runner, into ``directory``. Returns the manifest's path.

    Example:
        >>> space = get_space("nb201")  # doctest: +SKIP
        >>> export_for_device("to_phone", space, zs=space.design(10))  # doctest: +SKIP
        >>> # on the device: python to_phone/runner.py --device "Pixel 7"
    """
    if (zs is None or len(zs) == 0) and not layers:
        raise InputError("nothing to export: give networks (zs) and/or layers")
    folder = Path(directory)
    units: list[dict] = []
    for z in (space.check_z(zs) if zs is not None else []):
        arch = space.decode(z)
        key = format_z(arch.z)
        units.append({"table": "networks", "id": key, "space": space.name, "z": key,
                      "arch": space.describe(arch.z), "file": f"networks/{key}.onnx",
                      "input_shape": [batch, *space.input_shape]})
        export_onnx(arch.graph, folder / units[-1]["file"], batch)
    for i, layer in enumerate(layers or []):
        units.append({"table": "layers", "id": layer.key, "key": layer.key, "op": layer.op,
                      "macs": layer.macs, "params": layer.params,
                      "file": f"layers/L{i:04d}.onnx", "input_shape": [batch, *layer.in_shape]})
        export_onnx(unit_graph(layer), folder / units[-1]["file"], batch)
    manifest = {"format": FORMAT, "version": FORMAT_VERSION, "space": space.name,
                "space_signature": space.signature, "batch": batch, "units": units}
    path = folder / "manifest.json"
    with open(path, "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")
    shutil.copyfile(RUNNER, folder / "runner.py")
    return path
