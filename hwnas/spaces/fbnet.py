"""The FBNet space of HW-NAS-Bench (Li et al., ICLR 2021), in its CIFAR setting.

Stem: 3x3 conv, stride 1, to 16 channels, batch norm, ReLU. Then 22 searched layers in 7
stages (layers [1, 4, 4, 4, 4, 4, 1], output channels [16, 24, 32, 64, 112, 184, 352], the
first layer of a stage with stride [1, 1, 2, 2, 1, 2, 1]), each one of 9 candidates in
HW-NAS-Bench's order: ``k3_e1, k3_e1_g2, k3_e3, k3_e6, k5_e1, k5_e1_g2, k5_e3, k5_e6,
skip``. ``kK_eE[_g2]`` is an ``fbblock`` (see ``hwnas.layers``): grouped 1x1 expansion,
channel shuffle where grouped, KxK depthwise, grouped 1x1 projection, residual where the shape
is kept. ``skip`` is the identity, or where the stride is 2 or the channels change a 1x1 conv
with the stride + batch norm + ReLU. Head: 1x1 conv to 1504 channels, batch norm, ReLU,
global average pooling, linear to the classes.

Every layer's input shape depends only on its stage (a skip that changes the shape is a
conv), so the space is additive: latency(z) = fixed + sum_d C[d, z_d]. z is written as its 22
choice indices joined by ``-``, as the shipped device tables (``hwnas.devices``) write it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from hwnas.errors import InputError
from hwnas.layers import Layer
from hwnas.spaces._base import Decision, SearchSpace

#: candidate name -> (kernel, expand ratio, groups), in HW-NAS-Bench's choice order
CANDIDATES = {"k3_e1": (3, 1, 1), "k3_e1_g2": (3, 1, 2), "k3_e3": (3, 3, 1),
              "k3_e6": (3, 6, 1), "k5_e1": (5, 1, 1), "k5_e1_g2": (5, 1, 2),
              "k5_e3": (5, 3, 1), "k5_e6": (5, 6, 1)}
SKIP = "skip"
CHOICES = (*CANDIDATES, SKIP)
#: (out channels, layers, stride of the first layer) per stage, CIFAR setting
STAGES = ((16, 1, 1), (24, 4, 1), (32, 4, 2), (64, 4, 2), (112, 4, 1), (184, 4, 2),
          (352, 1, 1))
STEM_CHANNELS = 16
HEAD_CHANNELS = 1504


def _candidates(shape: tuple[int, int, int], out: int, stride: int
                ) -> tuple[tuple[Layer, ...], ...]:
    """The layers of each choice of one searched layer, in ``CHOICES`` order."""
    groups: list[tuple[Layer, ...]] = [
        (Layer("fbblock", shape, out, kernel=k, stride=stride, expand=e, groups=g),)
        for k, e, g in CANDIDATES.values()]
    if stride == 1 and shape[0] == out:
        groups.append(())
    else:
        groups.append((Layer("conv", shape, out, kernel=1, stride=stride, act="relu"),))
    return tuple(groups)


def fbnet(input_shape: Sequence[int] = (3, 32, 32), num_classes: int = 100) -> SearchSpace:
    """HW-NAS-Bench's FBNet space (22 layers x 9 candidates), CIFAR-100 setting by default.

    Example:
        >>> space = fbnet()
        >>> len(space.decisions), space.n_choices[0], space.decisions[0].choices[1]
        (22, 9, 'k3_e1_g2')
        >>> space.parse_z("-".join(["8"] * 22)) == (8,) * 22
        True
    """
    if num_classes < 1:
        raise InputError(f"num_classes must be >= 1, got {num_classes}")
    stem = Layer("conv", cast("tuple[int, int, int]", tuple(input_shape)), STEM_CHANNELS,
                 kernel=3, stride=1, act="relu")
    shape = stem.out_shape
    decisions = []
    for stage, (out, n, first_stride) in enumerate(STAGES):
        for i in range(n):
            stride = first_stride if i == 0 else 1
            groups = _candidates(shape, out, stride)
            decisions.append(Decision(f"stage{stage + 1}_layer{i + 1}", CHOICES, groups))
            shape = groups[0][0].out_shape
    last = Layer("conv", shape, HEAD_CHANNELS, kernel=1, stride=1, act="relu")
    head = (last, Layer("gap", last.out_shape), Layer("linear", (HEAD_CHANNELS, 1, 1),
                                                      num_classes))
    return SearchSpace("fbnet", stem.in_shape, (stem,), tuple(decisions), head)
