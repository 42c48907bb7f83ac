"""Layer: a frozen, hashable description of one measurable unit, with analytic costs.

A Layer carries its own input shape, so its cost and its measured latency never depend on
hidden state. Its canonical key (``Layer.key``) is what measurement tables are indexed by:
it is stable across runs and versions and ``Layer.from_key`` parses it back.

Shapes are (channels, height, width) of one sample; costs are per sample, float32.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Tuple

DTYPE_BYTES = 4  # float32

#: op kind -> the attributes that define it (and appear in its key), in key order.
OPS = {
    # convolution (no bias) + batch norm + activation; depthwise when groups == in channels
    "conv": ("out", "k", "s", "g", "act"),
    # MobileNetV2 inverted residual: [1x1 expand conv-bn-relu6] -> kxk depthwise conv-bn-relu6
    # -> 1x1 project conv-bn, plus the residual add when stride is 1 and channels match
    "mbconv": ("out", "k", "s", "e"),
    # global average pooling to (C, 1, 1)
    "gap": (),
    # fully connected layer with bias over the flattened input
    "linear": ("out",),
    # NAS-Bench-201 ops: ReLU -> conv (no bias) -> batch norm
    "relu_conv_bn": ("out", "k", "s"),
    # average pooling padded by (k - 1) // 2, padding not counted
    "avgpool": ("k", "s"),
    # NAS-Bench-201's residual reduction block: relu_conv_bn 3x3/s, relu_conv_bn 3x3/1,
    # plus a shortcut of 2x2/2 average pooling and a 1x1 conv (no batch norm)
    "resblock": ("out", "s"),
    # batch norm + activation
    "bn": ("act",),
    # element-wise sum of two tensors of in_shape
    "add": (),
}
#: how many input tensors an op takes
ARITY = {"add": 2}
ACTIVATIONS = ("none", "relu", "relu6")

_KEY = re.compile(r"^(?P<op>[a-z0-9_]+)\((?P<args>[^()]*)\)$")
_ATTR_FIELDS = {"out": "out_channels", "k": "kernel", "s": "stride", "g": "groups",
                "e": "expand", "act": "act"}


@dataclass(frozen=True)
class Layer:
    """One measurable unit of a network.

    Args:
        op: the op kind, one of ``OPS``.
        in_shape: input (C, H, W) of one sample.
        out_channels: output channels (for ``gap``: the input channels).
        kernel: square kernel size.
        stride: stride.
        groups: convolution groups (``conv``).
        expand: expansion ratio (``mbconv``).
        act: activation after batch norm (``conv``).

    Example:
        >>> Layer("conv", (3, 32, 32), 32, kernel=3, stride=2).key
        'conv(in=3x32x32,out=32,k=3,s=2,g=1,act=relu6)'
    """

    op: str
    in_shape: Tuple[int, int, int]
    out_channels: int = 0
    kernel: int = 1
    stride: int = 1
    groups: int = 1
    expand: int = 1
    act: str = "relu6"
    _costs: dict = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        if self.op not in OPS:
            raise ValueError(f"unknown op {self.op!r}: expected one of {sorted(OPS)}")
        shape = tuple(int(v) for v in self.in_shape)
        if len(shape) != 3 or min(shape) < 1:
            raise ValueError(f"{self.op}: in_shape must be 3 positive ints (C, H, W), "
                             f"got {self.in_shape!r}")
        object.__setattr__(self, "in_shape", shape)
        if self.op in ("gap", "avgpool", "bn", "add"):
            object.__setattr__(self, "out_channels", shape[0])
        for name in ("out_channels", "kernel", "stride", "groups", "expand"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{self.op}: {name} must be >= 1, got {getattr(self, name)!r}")
        if self.act not in ACTIVATIONS:
            raise ValueError(f"{self.op}: act must be one of {ACTIVATIONS}, got {self.act!r}")
        if self.op == "conv" and (shape[0] % self.groups or self.out_channels % self.groups):
            raise ValueError(f"conv: groups={self.groups} must divide in channels {shape[0]} "
                             f"and out channels {self.out_channels}")
        object.__setattr__(self, "_costs", _costs(self))

    @property
    def key(self) -> str:
        """Canonical key, e.g. ``mbconv(in=16x16x16,out=24,k=5,s=2,e=6)``."""
        c, h, w = self.in_shape
        args = [f"in={c}x{h}x{w}"]
        args += [f"{a}={getattr(self, _ATTR_FIELDS[a])}" for a in OPS[self.op]]
        return f"{self.op}({','.join(args)})"

    @classmethod
    def from_key(cls, key: str) -> "Layer":
        """Parse a canonical key back into a Layer; raises ValueError naming the key."""
        m = _KEY.match(key.strip())
        if not m:
            raise ValueError(f"not a layer key: {key!r} (expected e.g. 'conv(in=3x32x32,...)')")
        op = m["op"]
        if op not in OPS:
            raise ValueError(f"layer key {key!r}: unknown op {op!r}, expected one of {sorted(OPS)}")
        kwargs = {}
        try:
            for part in m["args"].split(","):
                name, _, value = part.partition("=")
                if name == "in":
                    kwargs["in_shape"] = tuple(int(v) for v in value.split("x"))
                elif name == "act":
                    kwargs["act"] = value
                elif name in OPS[op]:
                    kwargs[_ATTR_FIELDS[name]] = int(value)
                else:
                    raise ValueError(f"unknown attribute {name!r}")
            if "in_shape" not in kwargs:
                raise ValueError("missing in=CxHxW")
            layer = cls(op, **kwargs)
        except ValueError as e:
            raise ValueError(f"layer key {key!r}: {e}") from None
        if layer.key != key.strip():
            raise ValueError(f"layer key {key!r} is not canonical: expected {layer.key!r}")
        return layer

    @property
    def out_shape(self) -> Tuple[int, int, int]:
        return self._costs["out_shape"]

    @property
    def macs(self) -> int:
        """Multiply-accumulates of one forward pass (batch norm and activations excluded)."""
        return self._costs["macs"]

    @property
    def flops(self) -> int:
        return 2 * self.macs

    @property
    def params(self) -> int:
        """Stored parameter values, batch-norm running statistics included (as nnabla stores)."""
        return self._costs["params"]

    @property
    def param_bytes(self) -> int:
        return self.params * DTYPE_BYTES

    @property
    def input_bytes(self) -> int:
        return math.prod(self.in_shape) * DTYPE_BYTES

    @property
    def output_bytes(self) -> int:
        return math.prod(self.out_shape) * DTYPE_BYTES

    @property
    def peak_activation_bytes(self) -> int:
        """Largest sum of live tensors inside the unit during one forward pass."""
        return self._costs["peak_activation_bytes"]


def conv_out_size(size: int, kernel: int, stride: int) -> int:
    """Output size of a convolution padded by (kernel - 1) // 2, as the spaces here pad."""
    pad = (kernel - 1) // 2
    return (size + 2 * pad - kernel) // stride + 1


def _conv_bn(cin: int, h: int, w: int, cout: int, k: int, s: int, g: int):
    ho, wo = conv_out_size(h, k, s), conv_out_size(w, k, s)
    macs = ho * wo * cout * (cin // g) * k * k
    params = cout * (cin // g) * k * k + 4 * cout  # weight; bn beta, gamma, mean, var
    return (cout, ho, wo), macs, params


def _costs(layer: Layer) -> dict:
    c, h, w = layer.in_shape
    size = math.prod(layer.in_shape)
    if layer.op == "conv":
        out, macs, params = _conv_bn(c, h, w, layer.out_channels, layer.kernel, layer.stride,
                                     layer.groups)
        peak = size + math.prod(out)
    elif layer.op == "mbconv":
        hidden = int(round(c * layer.expand))
        macs = params = 0
        shape, tensors = (c, h, w), [size]
        steps = [] if layer.expand == 1 else [(hidden, 1, 1, 1)]
        steps += [(hidden, layer.kernel, layer.stride, hidden), (layer.out_channels, 1, 1, 1)]
        for cout, k, s, g in steps:
            shape, m, p = _conv_bn(shape[0], shape[1], shape[2], cout, k, s, g)
            macs, params = macs + m, params + p
            tensors.append(math.prod(shape))
        out = shape
        # the block input stays alive to the residual add; otherwise only neighbours coexist
        residual = layer.stride == 1 and c == layer.out_channels
        pairs = [a + b for a, b in zip(tensors, tensors[1:])]
        peak = max(pairs) + (size if residual else 0)
    elif layer.op == "relu_conv_bn":
        out, macs, params = _conv_bn(c, h, w, layer.out_channels, layer.kernel, layer.stride, 1)
        peak = size + math.prod(out)
    elif layer.op == "avgpool":
        out = (c, conv_out_size(h, layer.kernel, layer.stride),
               conv_out_size(w, layer.kernel, layer.stride))
        macs, params = math.prod(out) * layer.kernel ** 2, 0
        peak = size + math.prod(out)
    elif layer.op == "resblock":
        a, macs_a, params_a = _conv_bn(c, h, w, layer.out_channels, 3, layer.stride, 1)
        out, macs_b, params_b = _conv_bn(a[0], a[1], a[2], layer.out_channels, 3, 1, 1)
        pooled = (c, h // 2, w // 2)
        shortcut_macs = math.prod(pooled) * 4 + math.prod(out) * c
        macs = macs_a + macs_b + shortcut_macs
        params = params_a + params_b + layer.out_channels * c
        peak = size + 2 * math.prod(out)
    elif layer.op == "gap":
        out, macs, params = (c, 1, 1), size, 0
        peak = size + c
    elif layer.op in ("bn", "add"):
        out, macs, params = layer.in_shape, size, 4 * c if layer.op == "bn" else 0
        peak = 3 * size if layer.op == "add" else 2 * size
    else:  # linear
        out = (layer.out_channels, 1, 1)
        macs = size * layer.out_channels
        params = macs + layer.out_channels
        peak = size + layer.out_channels
    return {"out_shape": out, "macs": macs, "params": params,
            "peak_activation_bytes": peak * DTYPE_BYTES}
