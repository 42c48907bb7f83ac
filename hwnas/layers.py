"""Layer: a frozen, hashable description of one measurable unit, with analytic costs.

A Layer carries its own input shape, so its cost and its measured latency never depend on
hidden state. Its canonical key (``Layer.key``) is what measurement tables are indexed by:
it is stable across runs and versions and ``Layer.from_key`` parses it back.

Shapes are (channels, height, width) of one sample; costs are per sample, float32.
"""

from __future__ import annotations

import functools
import math
import numbers
import re
from dataclasses import dataclass, field
from typing import Any

from hwnas.errors import InputError

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
    # FBNet block (HW-NAS-Bench's ConvBlock): 1x1 conv (groups g) to in x e channels,
    # bn-relu, channel shuffle when g > 1, kxk depthwise conv with the stride, bn-relu, 1x1
    # conv (groups g) to out, bn, plus the residual add when stride is 1 and channels match
    "fbblock": ("out", "k", "s", "e", "g"),
    # Once-for-All's MobileNetV3 block (MBConvLayer): 1x1 conv to make_divisible(in x e, 8)
    # channels, bn-act (none where e is 1); kxk depthwise conv with the stride, bn-act;
    # squeeze-and-excite where se is 1; 1x1 conv to out, bn; the residual add where the
    # block keeps the shape
    "mbv3": ("out", "k", "s", "e", "act", "se"),
    # convolution (no bias) + activation, no batch norm (OFA's feature mix layer)
    "conv_act": ("out", "k", "s", "act"),
}
#: how many input tensors an op takes
ARITY = {"add": 2}
ACTIVATIONS = ("none", "relu", "relu6", "h_swish")
#: squeeze-and-excite's reduction and every hidden width of ``mbv3``: Once-for-All's
SE_REDUCTION, DIVISOR = 4, 8

_KEY = re.compile(r"^(?P<op>[a-z0-9_]+)\((?P<args>[^()]*)\)$")
#: key attribute -> Layer field (layer keys and space files use the short names)
ATTR_FIELDS = {"out": "out_channels", "k": "kernel", "s": "stride", "g": "groups",
               "e": "expand", "act": "act", "se": "se"}


def make_divisible(value: float, divisor: int = DIVISOR) -> int:
    """Once-for-All's (and MobileNet's) channel rounding: to the nearest multiple of
    ``divisor`` (at least ``divisor``), plus one more where that lost over 10 %.

    Example:
        >>> make_divisible(16 * 1.2), make_divisible(112 * 1.2), make_divisible(144 // 4)
        (24, 136, 40)
    """
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


@dataclass(frozen=True)
class Step:
    """One primitive of an op: what every backend builds and the analytic costs count.

    ``inputs`` are tensor indices: the layer's inputs come first (0, and 1 for ``add``), then
    step i's output is tensor ``arity + i``. The last step's output is the layer's output.

    Kinds: ``conv`` (no bias, padded by ``pad``; depthwise when ``groups`` equals its input
    channels), ``bn`` (batch norm in inference form, then ``act``), ``relu``, ``avgpool``
    (padding not counted), ``gap`` (global average pooling), ``linear`` (fully connected with
    bias over the flattened input), ``add`` (element-wise sum of two tensors) and ``shuffle``
    (channel shuffle of ``groups`` groups: (C, H, W) seen as (g, C / g, H, W), the first two
    axes swapped, as ShuffleNet), ``act`` (the activation ``act`` alone) and ``se``
    (squeeze-and-excite to ``out`` hidden channels: global average pooling, 1x1 conv with
    bias, ReLU, 1x1 conv with bias back to the input channels, h_sigmoid = relu6(x + 3) / 6,
    and the input multiplied channel-wise by the result). ``h_swish`` is x * h_sigmoid(x).
    """

    kind: str
    inputs: tuple[int, ...]
    out: int = 0
    kernel: int = 1
    stride: int = 1
    groups: int = 1
    pad: int = 0
    act: str = "none"


def _conv(i: int, out: int, k: int, s: int, g: int = 1) -> Step:
    return Step("conv", (i,), out, k, s, g, pad=(k - 1) // 2)


def _inverted_residual(layer: Layer) -> tuple[Step, ...]:
    """mbconv (MobileNetV2: relu6, no 1x1 expansion where expand is 1) and fbblock (FBNet:
    relu, 1x1 convs of ``groups`` groups with a channel shuffle after the first): 1x1 conv to
    in x e channels, bn-act, kxk depthwise conv with the stride, bn-act, 1x1 conv to out, bn,
    and the residual add where the block keeps the shape."""
    c, out, k, s = layer.in_shape[0], layer.out_channels, layer.kernel, layer.stride
    mbconv = layer.op == "mbconv"
    hidden, act, g = c * layer.expand, "relu6" if mbconv else "relu", 1 if mbconv else layer.groups
    program = [] if mbconv and layer.expand == 1 else \
        [_conv(0, hidden, 1, 1, g), Step("bn", (1,), act=act)]
    if g > 1:
        program.append(Step("shuffle", (2,), groups=g))
    n = len(program)
    program += [_conv(n, hidden, k, s, hidden),
                Step("bn", (n + 1,), act=act),
                _conv(n + 2, out, 1, 1, g),
                Step("bn", (n + 3,))]
    if s == 1 and c == out:  # the residual: only where the block keeps the shape
        program.append(Step("add", (0, n + 4)))
    return tuple(program)


def _mbv3(layer: Layer) -> tuple[Step, ...]:
    """Once-for-All's MobileNetV3 block (see OPS["mbv3"])."""
    c, out, k, s, act = layer.in_shape[0], layer.out_channels, layer.kernel, layer.stride, \
        layer.act
    hidden = c if layer.expand == 1 else make_divisible(c * layer.expand)
    program = [] if layer.expand == 1 else [_conv(0, hidden, 1, 1), Step("bn", (1,), act=act)]
    n = len(program)
    program += [_conv(n, hidden, k, s, hidden), Step("bn", (n + 1,), act=act)]
    if layer.se:
        program.append(Step("se", (n + 2,), make_divisible(hidden // SE_REDUCTION)))
    n = len(program)
    program += [_conv(n, out, 1, 1), Step("bn", (n + 1,))]
    if s == 1 and c == out:
        program.append(Step("add", (0, n + 2)))
    return tuple(program)


def steps(layer: Layer) -> tuple[Step, ...]:
    """The primitive steps of a layer, in order: the one definition of what each op computes
    (hidden widths, residual rule, shapes), read by the costs and by every backend.

    Example:
        >>> [s.kind for s in steps(Layer("mbconv", (16, 8, 8), 16, kernel=3, expand=6))]
        ['conv', 'bn', 'conv', 'bn', 'conv', 'bn', 'add']
    """
    out, k, s = layer.out_channels, layer.kernel, layer.stride
    if layer.op == "conv":
        return (_conv(0, out, k, s, layer.groups), Step("bn", (1,), act=layer.act))
    if layer.op in ("mbconv", "fbblock"):
        return _inverted_residual(layer)
    if layer.op == "mbv3":
        return _mbv3(layer)
    if layer.op == "conv_act":
        return (_conv(0, out, k, s), Step("act", (1,), act=layer.act))
    if layer.op == "relu_conv_bn":
        return (Step("relu", (0,)), _conv(1, out, k, s), Step("bn", (2,)))
    if layer.op == "avgpool":
        return (Step("avgpool", (0,), kernel=k, stride=s, pad=(k - 1) // 2),)
    if layer.op == "resblock":
        return (Step("relu", (0,)), _conv(1, out, 3, s), Step("bn", (2,)),  # a
                Step("relu", (3,)), _conv(4, out, 3, 1), Step("bn", (5,)),  # b
                Step("avgpool", (0,), kernel=2, stride=2), Step("conv", (7,), out),  # shortcut
                Step("add", (8, 6)))
    if layer.op == "bn":
        return (Step("bn", (0,), act=layer.act),)
    if layer.op == "add":
        return (Step("add", (0, 1)),)
    if layer.op == "gap":
        return (Step("gap", (0,)),)
    return (Step("linear", (0,), out),)  # linear


#: the largest dimension or attribute of a layer (a runtime's int32 shapes), and the largest
#: cost hwnas counts (cost matrices are int64, regressors' features float32): a key written
#: with a number beyond them is refused where it is read, not in a fit
MAX_DIMENSION = 2**31 - 1
MAX_COST = 2**62


def _short(value: int) -> str:
    """An integer as a message shows it: its digits, or how many there are."""
    text = str(value)
    return text if len(text) <= 20 else f"a {len(text)}-digit number"


@dataclass(frozen=True)
class Layer:
    """One measurable unit of a network.

    Args:
        op: the op kind, one of ``OPS``.
        in_shape: input (C, H, W) of one sample.
        out_channels: output channels (for ``gap``: the input channels).
        kernel: square kernel size.
        stride: stride.
        groups: convolution groups (``conv``; the 1x1 convs of ``fbblock``).
        expand: expansion ratio (``mbconv``, ``fbblock``).
        act: activation after batch norm (``conv``, ``mbv3``; ``conv_act``: after the conv).
        se: 1 for squeeze-and-excite in an ``mbv3`` block, else 0.

    Example:
        >>> Layer("conv", (3, 32, 32), 32, kernel=3, stride=2).key
        'conv(in=3x32x32,out=32,k=3,s=2,g=1,act=relu6)'
    """

    op: str
    in_shape: tuple[int, int, int]
    out_channels: int = 0
    kernel: int = 1
    stride: int = 1
    groups: int = 1
    expand: int = 1
    act: str = "relu6"
    #: not in the repr, so that the signatures of spaces without ``mbv3`` stay as they were
    se: int = field(default=0, repr=False)
    _costs: dict = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        if not isinstance(self.op, str) or self.op not in OPS:
            raise InputError(f"unknown op {self.op!r}: expected one of {sorted(OPS)}")
        try:
            if len(self.in_shape) != 3 or not all(_is_int(v) and v >= 1 for v in self.in_shape):
                raise TypeError
        except TypeError:
            raise InputError(f"{self.op}: in_shape must be 3 positive ints (C, H, W), "
                             f"got {self.in_shape!r}") from None
        shape = tuple(int(v) for v in self.in_shape)
        object.__setattr__(self, "in_shape", shape)
        if self.op in ("gap", "avgpool", "bn", "add"):
            object.__setattr__(self, "out_channels", shape[0])
        for name in ("out_channels", "kernel", "stride", "groups", "expand"):
            value = getattr(self, name)
            if not (_is_int(value) and value >= 1):
                raise InputError(f"{self.op}: {name} must be >= 1 and an integer, got {value!r}")
            object.__setattr__(self, name, int(value))
        if not (_is_int(self.se) and self.se in (0, 1)) or (self.se and self.op != "mbv3"):
            raise InputError(f"{self.op}: se must be 0 or 1 (1 only for mbv3), got {self.se!r}")
        object.__setattr__(self, "se", int(self.se))
        if not isinstance(self.act, str) or self.act not in ACTIVATIONS:
            raise InputError(f"{self.op}: act must be one of {ACTIVATIONS}, got {self.act!r}")
        if self.op in ("conv", "fbblock") and (shape[0] % self.groups or
                                                self.out_channels % self.groups):
            raise InputError(f"{self.op}: groups={self.groups} must divide in channels "
                             f"{shape[0]} and out channels {self.out_channels}")
        numbers = {"in_shape": max(shape), **{n: getattr(self, n) for n in (
            "out_channels", "kernel", "stride", "groups", "expand")}}
        for name, value in numbers.items():  # before any cost is computed from them
            if value > MAX_DIMENSION:
                raise InputError(f"{self.op}: {name} {_short(value)} is over {MAX_DIMENSION} "
                                 f"(the largest a runtime's shape takes)")
        costs = _costs(self)
        for name in ("macs", "params", "peak_activation_bytes"):
            if costs[name] > MAX_COST:  # numpy's cost matrices are int64, trees float32
                raise InputError(f"{self.op} layer of input {shape}: its {name} "
                                 f"({_short(costs[name])}) are over {MAX_COST:.3g}, more "
                                 f"than hwnas can count")
        object.__setattr__(self, "_costs", costs)

    @functools.cached_property
    def key(self) -> str:
        """Canonical key, e.g. ``mbconv(in=16x16x16,out=24,k=5,s=2,e=6)``."""
        c, h, w = self.in_shape
        args = [f"in={c}x{h}x{w}"]
        args += [f"{a}={getattr(self, ATTR_FIELDS[a])}" for a in OPS[self.op]]
        return f"{self.op}({','.join(args)})"

    @classmethod
    def from_key(cls, key: str) -> Layer:
        """Parse a canonical key back into a Layer; raises InputError naming the key (also
        for blanks around it: tables and predictors store keys exactly, so a padded one would
        never be found)."""
        if key != key.strip():
            raise InputError(f"layer key {key!r} has blanks around it: write it without them")
        m = _KEY.match(key)
        if not m:
            raise InputError(f"not a layer key: {key!r} (expected e.g. 'conv(in=3x32x32,...)')")
        op = m["op"]
        if op not in OPS:
            raise InputError(f"layer key {key!r}: unknown op {op!r}, expected one of "
                             f"{sorted(OPS)}")
        kwargs: dict[str, Any] = {}
        try:
            for part in m["args"].split(","):
                name, _, value = part.partition("=")
                if name == "in":
                    kwargs["in_shape"] = tuple(int(v) for v in value.split("x"))
                elif name == "act":
                    kwargs["act"] = value
                elif name in OPS[op]:
                    kwargs[ATTR_FIELDS[name]] = int(value)
                else:
                    raise InputError(f"unknown attribute {name!r}")
            if "in_shape" not in kwargs:
                raise InputError("missing in=CxHxW")
            layer = cls(op, **kwargs)
        except ValueError as e:
            raise InputError(f"layer key {key!r}: {e}") from None
        if layer.key != key:
            raise InputError(f"layer key {key!r} is not canonical: expected {layer.key!r}")
        return layer

    @property
    def out_shape(self) -> tuple[int, int, int]:
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


def step_shapes(layer: Layer) -> list:
    """The shape of every tensor of ``steps(layer)``: the layer's inputs, then each step's
    output; raises InputError if a step does not fit its input."""
    program = steps(layer)
    shapes = [layer.in_shape] * ARITY.get(layer.op, 1)
    for step in program:
        c, h, w = shapes[step.inputs[0]]
        if step.kind in ("conv", "avgpool"):
            size = [(v + 2 * step.pad - step.kernel) // step.stride + 1 for v in (h, w)]
            shapes.append((step.out if step.kind == "conv" else c, size[0], size[1]))
        elif step.kind == "gap":
            shapes.append((c, 1, 1))
        elif step.kind == "linear":
            shapes.append((step.out, 1, 1))
        else:  # bn, relu, act, se, add, shuffle: element-wise (se scales its input)
            if any(shapes[i] != shapes[step.inputs[0]] for i in step.inputs):
                raise InputError(f"{layer.op}: add of shapes {[shapes[i] for i in step.inputs]}")
            shapes.append((c, h, w))
    return shapes


def _is_int(value) -> bool:
    """An integer (Python or numpy), not a bool and not 16.0."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _costs(layer: Layer) -> dict:
    program = steps(layer)
    shapes = step_shapes(layer)
    first = len(shapes) - len(program)
    size = math.prod(layer.in_shape)
    macs = params = 0
    for i, step in enumerate(program):
        cin, out = shapes[step.inputs[0]][0], shapes[first + i]
        if step.kind == "conv":
            macs += math.prod(out) * (cin // step.groups) * step.kernel ** 2
            params += step.out * (cin // step.groups) * step.kernel ** 2
        elif step.kind == "bn":
            params += 4 * cin  # beta, gamma, running mean and variance
        elif step.kind == "avgpool":
            macs += math.prod(out) * step.kernel ** 2
        elif step.kind == "gap":
            macs += math.prod(shapes[step.inputs[0]])
        elif step.kind == "linear":
            macs += math.prod(shapes[step.inputs[0]]) * step.out
            params += math.prod(shapes[step.inputs[0]]) * step.out + step.out
        elif step.kind == "se":  # the pooling, then two 1x1 convs with bias on (C, 1, 1)
            macs += math.prod(shapes[step.inputs[0]]) + 2 * cin * step.out
            params += 2 * cin * step.out + step.out + cin
    if macs == 0 and layer.op in ("bn", "add"):
        macs = size  # one per element; inside a block, element-wise steps are not counted
    out = shapes[-1]
    if layer.op in ("mbconv", "fbblock", "mbv3"):
        # the block input stays alive to the residual add; otherwise only neighbours coexist
        tensors = [size] + [math.prod(shapes[first + i]) for i, step in enumerate(program)
                            if step.kind in ("conv", "shuffle", "se")]
        residual = program[-1].kind == "add"
        peak = max(a + b for a, b in zip(tensors, tensors[1:])) + (size if residual else 0)
    elif layer.op == "resblock":
        peak = size + 2 * math.prod(out)
    elif layer.op == "add":
        peak = 3 * size
    elif layer.op == "bn":
        peak = 2 * size
    else:
        peak = size + math.prod(out)
    return {"out_shape": out, "macs": macs, "params": params,
            "peak_activation_bytes": peak * DTYPE_BYTES}
