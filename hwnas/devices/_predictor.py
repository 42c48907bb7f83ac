"""A latency predictor for a shipped device: exact where its table covers the space, else
fitted from its measured networks (and cached)."""

from __future__ import annotations

import hashlib

from hwnas._files import write_json
from hwnas.devices._catalogue import device_info, device_matrix, load_device
from hwnas.errors import InputError
from hwnas.predictors import AdditivePredictor, MeasuredPredictor, Predictor, load_predictor
from hwnas.profile import cache_dir
from hwnas.spaces import SearchSpace, get_space


def device_predictor(name: str, space: str | SearchSpace | None = None) -> Predictor:
    """The latency predictor of the shipped device ``name`` (``python -m hwnas.devices``).

    Where the device's table holds every z of the space (``nb201``: 15,625 cells), a
    ``measured`` predictor: each z's measured latency, exact. Otherwise (``fbnet``: 5,000 of
    9^22 architectures) an ``additive`` predictor fitted on all its measured networks (about
    a second; cached under the hwnas cache folder, ``$HWNAS_CACHE/devices``). Its fingerprint
    is the table's (backend ``catalogue``): a search with it cannot be verified here.

    Args:
        name: a shipped device name, e.g. ``pixel3``.
        space: its space (a name or the built-in space itself); needed where the device has
            tables for several spaces.

    Returns:
        The fitted predictor.

    Example:
        >>> p = device_predictor("titan_rtx_1", "nb201")
        >>> p.kind, p.fingerprint_.backend
        ('measured', 'catalogue')
    """
    space_name = space.name if isinstance(space, SearchSpace) else space
    info = device_info(name, space_name)
    built_in = get_space(info.space)
    if isinstance(space, SearchSpace) and space.signature != built_in.signature:
        raise InputError(f"device {name!r} was measured on the built-in space {info.space!r}; "
                         f"the space given differs from it (another input size or classes)")
    table = load_device(info.name, info.space)
    if len(table.z) == built_in.size:
        return MeasuredPredictor().fit_table(table, built_in)
    matrix = device_matrix(info.space)
    digest = hashlib.sha1(b"|".join([
        built_in.signature.encode(), info.name.encode(), matrix.z.tobytes(),
        matrix.latency_ms[matrix.devices.index(info.name)].tobytes()])).hexdigest()[:12]
    path = cache_dir() / "devices" / f"{info.space}-{info.name}-additive-{digest}.json"
    if path.is_file():
        try:
            return load_predictor(path)
        except InputError:  # a damaged cache file is refitted and replaced
            pass
    predictor = AdditivePredictor().fit_table(table, built_in)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, predictor.to_dict())
    return predictor
