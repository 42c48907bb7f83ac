"""The MobileNetV2 search space of NNabla NAS (``nnabla_nas.contrib.classification.mobilenet``).

Same stages, candidates and candidate order as that framework's ``SearchNet`` with its
defaults (width 1, skip_connect on), so z[i] is the index that its i-th ChoiceBlock picks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from hwnas.errors import InputError
from hwnas.layers import Layer
from hwnas.spaces._base import Decision, SearchSpace

#: (out channels, blocks, first stride) per stage, after the stem and the MB1 block.
STAGES = ((24, 4, 2), (32, 4, 2), (64, 4, 2), (96, 4, 1), (160, 4, 2), (320, 1, 1))
#: (name, expand ratio, kernel) in NNabla NAS's default order; "skip_connect" comes last.
CANDIDATES = (("MB3 3x3", 3, 3), ("MB6 3x3", 6, 3), ("MB3 5x5", 3, 5),
              ("MB6 5x5", 6, 5), ("MB3 7x7", 3, 7), ("MB6 7x7", 6, 7))
SKIP = "skip_connect"


def mobilenet(input_shape: Sequence[int] = (3, 32, 32), num_classes: int = 10,
              stages: Sequence[tuple[int, int, int]] = STAGES) -> SearchSpace:
    """MobileNetV2 space: 3x3/2 stem to 32, MB1 3x3 to 16, searched stages, 1x1 to 1280, pool,
    linear. Each searched block picks MB{3,6} x {3x3,5x5,7x7}, or skip where stride is 1 and
    channels match.

    Example:
        >>> space = mobilenet()
        >>> len(space.decisions), space.n_choices[:3]
        (21, (6, 7, 7))
    """
    if num_classes < 1:
        raise InputError(f"num_classes must be >= 1, got {num_classes}")
    # Layer checks that input_shape is 3 positive ints
    stem_conv = Layer("conv", cast("tuple[int, int, int]", tuple(input_shape)), 32, kernel=3,
                      stride=2)
    first = Layer("mbconv", stem_conv.out_shape, 16, kernel=3, stride=1, expand=1)
    shape = first.out_shape
    decisions = []
    for stage, (c, n, s) in enumerate(stages):
        for i in range(n):
            stride = s if i == 0 else 1
            names = [name for name, _, _ in CANDIDATES]
            groups: list[tuple[Layer, ...]] = [
                (Layer("mbconv", shape, c, kernel=k, stride=stride, expand=e),)
                for _, e, k in CANDIDATES]
            if stride == 1 and shape[0] == c:
                names.append(SKIP)
                groups.append(())
            decisions.append(Decision(f"stage{stage + 1}_block{i + 1}", tuple(names),
                                      tuple(groups)))
            shape = groups[0][0].out_shape
    last = Layer("conv", shape, 1280, kernel=1, stride=1)
    head = (last, Layer("gap", last.out_shape), Layer("linear", (1280, 1, 1), num_classes))
    return SearchSpace("mobilenet", stem_conv.in_shape, (stem_conv, first),
                       tuple(decisions), head)
