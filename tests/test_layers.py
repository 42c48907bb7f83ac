import numpy as np
import pytest

from hwnas.layers import OPS, Layer
from hwnas.spaces import get_space, unit_graph


def test_key_is_canonical_and_parses_back():
    layer = Layer("mbconv", (16, 16, 16), 24, kernel=5, stride=2, expand=6)
    assert layer.key == "mbconv(in=16x16x16,out=24,k=5,s=2,e=6)"
    assert Layer.from_key(layer.key) == layer
    assert hash(Layer.from_key(layer.key)) == hash(layer)
    for layer in get_space("mobilenet").unique_layers():
        assert Layer.from_key(layer.key) == layer


@pytest.mark.parametrize("key, message", [
    ("conv", "not a layer key"),
    ("pool(in=3x4x4)", "unknown op"),
    ("conv(in=3x4x4,out=8,k=3,s=1,g=1,act=tanh)", "act must be one of"),
    ("conv(in=3x4x4,out=8,k=3,s=1,g=1)", "not canonical"),
    ("linear(out=8)", "missing in="),
    ("linear(in=3x4,out=8)", "in_shape must be 3 positive ints"),
    ("linear(in=3x4x4,out=8,zz=1)", "unknown attribute 'zz'"),
])
def test_bad_keys_are_clear_errors(key, message):
    with pytest.raises(ValueError, match=message):
        Layer.from_key(key)


def test_conv_costs_by_hand():
    stem = Layer("conv", (3, 32, 32), 32, kernel=3, stride=2)
    assert stem.out_shape == (32, 16, 16)
    assert stem.macs == 16 * 16 * 32 * 3 * 3 * 3
    assert stem.params == 32 * 3 * 3 * 3 + 4 * 32
    assert stem.param_bytes == 4 * stem.params
    assert stem.input_bytes == 3 * 32 * 32 * 4 and stem.output_bytes == 32 * 16 * 16 * 4
    dw = Layer("conv", (32, 8, 8), 32, kernel=3, groups=32)
    assert dw.macs == 8 * 8 * 32 * 9 and dw.params == 32 * 9 + 4 * 32


def test_mbconv_costs_by_hand():
    # expand 16 -> 96 (1x1), depthwise 3x3 stride 2 on 16x16 -> 8x8, project 96 -> 24
    block = Layer("mbconv", (16, 16, 16), 24, kernel=3, stride=2, expand=6)
    assert block.out_shape == (24, 8, 8)
    assert block.macs == 16 * 16 * 96 * 16 + 8 * 8 * 96 * 9 + 8 * 8 * 24 * 96
    assert block.params == (96 * 16 + 4 * 96) + (96 * 9 + 4 * 96) + (24 * 96 + 4 * 24)
    # largest live pair: the 96x16x16 expansion and the 96x8x8 depthwise output
    assert block.peak_activation_bytes == 4 * (96 * 16 * 16 + 96 * 8 * 8)
    residual = Layer("mbconv", (24, 8, 8), 24, kernel=3, stride=1, expand=1)
    assert residual.peak_activation_bytes == 4 * (24 * 64 * 2 + 24 * 64)


def test_head_layers():
    gap = Layer("gap", (1280, 2, 2))
    assert gap.out_shape == (1280, 1, 1) and gap.out_channels == 1280 and gap.params == 0
    fc = Layer("linear", (1280, 1, 1), 10)
    assert fc.macs == 12800 and fc.params == 12810 and fc.flops == 25600


@pytest.mark.parametrize("kwargs, message", [
    ({"op": "conv", "in_shape": (3, 8, 8), "out_channels": 4, "groups": 2}, "groups=2"),
    ({"op": "conv", "in_shape": (3, 8, 8), "out_channels": 0}, "out_channels must be >= 1"),
    ({"op": "deconv", "in_shape": (3, 8, 8)}, "unknown op"),
])
def test_invalid_layers(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Layer(**kwargs)


@pytest.mark.nnabla
def test_same_parameter_count_and_output_shape_as_nnabla():
    import collections

    import nnabla as nn

    from hwnas.profile._nnabla import build

    for layer in _every_op():
        params = collections.OrderedDict()
        with nn.parameter_scope("check", params):
            x = nn.Variable((2,) + layer.in_shape)
            x.d = 0
            y, _ = build(unit_graph(layer), x)
            count = sum(int(np.prod(p.shape)) for p in nn.get_parameters(grad_only=False)
                        .values())
        assert count == layer.params, layer.key
        assert y.shape[0] == 2 and int(np.prod(y.shape[1:])) == int(np.prod(layer.out_shape))
        assert y.shape[1] == layer.out_shape[0], layer.key


def _every_op():
    """Every op at least once: both built-in spaces' layers and the ops they do not use."""
    extra = [Layer("bn", (8, 6, 6), act="relu"), Layer("add", (8, 6, 6)),
             Layer("conv", (8, 7, 7), 16, kernel=5, stride=2, groups=4, act="none"),
             Layer("mbconv", (8, 7, 7), 8, kernel=5, stride=1, expand=1),
             Layer("avgpool", (8, 7, 7), kernel=3, stride=2),
             Layer("fbblock", (8, 7, 7), 8, kernel=3, stride=1, expand=1, groups=2),
             Layer("fbblock", (8, 7, 7), 16, kernel=5, stride=2, expand=3, groups=1),
             Layer("mbv3", (16, 7, 7), 16, kernel=5, stride=1, expand=4, act="h_swish", se=1),
             Layer("mbv3", (8, 7, 7), 16, kernel=3, stride=2, expand=1, act="relu"),
             Layer("conv_act", (24, 1, 1), 32, act="h_swish")]
    layers = get_space("mobilenet").unique_layers() + get_space("nb201").unique_layers() + extra
    assert {layer.op for layer in layers} == set(OPS)
    return layers


def test_same_parameter_count_and_output_shape_as_onnx():
    pytest.importorskip("onnx")
    from hwnas.profile import to_onnx

    for layer in _every_op():
        model = to_onnx(unit_graph(layer), batch=2)
        count = sum(int(np.prod(t.dims)) for t in model.graph.initializer
                    if t.name not in ("zero", "six"))  # Clip's bounds, not parameters
        assert count == layer.params, layer.key
        dims = [d.dim_value for d in model.graph.output[0].type.tensor_type.shape.dim]
        assert dims[0] == 2 and np.prod(dims[1:]) == np.prod(layer.out_shape), layer.key


def test_steps_define_the_residual_and_hidden_width():
    from hwnas.layers import step_shapes, steps

    block = Layer("mbconv", (16, 8, 8), 16, kernel=5, stride=1, expand=3)
    assert [s.kind for s in steps(block)][-1] == "add"
    assert step_shapes(block)[1] == (48, 8, 8)  # the 1x1 expansion to 3 x 16 channels
    strided = Layer("mbconv", (16, 8, 8), 16, kernel=5, stride=2, expand=3)
    assert "add" not in [s.kind for s in steps(strided)]
    with pytest.raises(ValueError, match="add of shapes"):
        Layer("resblock", (8, 7, 7), 16, stride=2)  # odd size: shortcut 3x3, main path 4x4


def test_mbconv_and_fbblock_share_the_inverted_residual_and_differ_where_they_should():
    from hwnas.layers import steps

    def program(layer):
        return [(s.kind, s.inputs, s.groups, s.act) for s in steps(layer)]
    assert program(Layer("mbconv", (16, 8, 8), 16, kernel=3, expand=1)) == [
        ("conv", (0,), 16, "none"), ("bn", (1,), 1, "relu6"), ("conv", (2,), 1, "none"),
        ("bn", (3,), 1, "none"), ("add", (0, 4), 1, "none")]  # no 1x1 expansion at e=1
    assert program(Layer("fbblock", (16, 8, 8), 16, kernel=3, expand=1, groups=2)) == [
        ("conv", (0,), 2, "none"), ("bn", (1,), 1, "relu"), ("shuffle", (2,), 2, "none"),
        ("conv", (3,), 16, "none"), ("bn", (4,), 1, "relu"), ("conv", (5,), 2, "none"),
        ("bn", (6,), 1, "none"), ("add", (0, 7), 1, "none")]
    assert "shuffle" not in [s.kind for s in steps(Layer("fbblock", (16, 8, 8), 8, expand=3))]
    assert steps(Layer("mbconv", (8, 8, 8), 8, kernel=3, groups=2)) == \
        steps(Layer("mbconv", (8, 8, 8), 8, kernel=3))  # mbconv has no groups (not in its key)
