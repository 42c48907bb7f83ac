"""The fbnet space: HW-NAS-Bench's FBNet structure, costs counted by hand, and its layers built
and timed in both backends."""

import numpy as np
import pytest
from helpers import FAST, HAVE_NNABLA

from hwnas.layers import Layer, step_shapes, steps
from hwnas.spaces import get_space
from hwnas.spaces.fbnet import CHOICES

#: (in, out, stride) of the 22 searched layers, as HW-NAS-Bench's fbnet_get_metrics walks them
LAYERS = [(16, 16, 1)] + [(16, 24, 1)] + [(24, 24, 1)] * 3 + [(24, 32, 2)] + [(32, 32, 1)] * 3 \
    + [(32, 64, 2)] + [(64, 64, 1)] * 3 + [(64, 112, 1)] + [(112, 112, 1)] * 3 \
    + [(112, 184, 2)] + [(184, 184, 1)] * 3 + [(184, 352, 1)]


def block_params(c, out, k, e, g):
    """An FBNet block by hand: 1x1 c -> c*e (groups g) + BN, kxk depthwise + BN, 1x1 c*e ->
    out (groups g) + BN; a BN stores 4 values per channel (nnabla keeps running stats)."""
    h = c * e
    return (c // g) * h + 4 * h + h * k * k + 4 * h + (h // g) * out + 4 * out


def skip_params(c, out, s):
    return 0 if (c == out and s == 1) else c * out + 4 * out


STEM = 3 * 16 * 9 + 4 * 16  # 3x3 conv 3 -> 16 + BN
HEAD = 352 * 1504 + 4 * 1504 + 1504 * 100 + 100  # 1x1 conv + BN, linear with bias


def test_structure_follows_hw_nas_bench():
    space = get_space("fbnet")
    assert len(space.decisions) == 22 and space.n_choices == (9,) * 22
    assert space.decisions[0].choices == CHOICES == (
        "k3_e1", "k3_e1_g2", "k3_e3", "k3_e6", "k5_e1", "k5_e1_g2", "k5_e3", "k5_e6", "skip")
    shapes = [d.layers[0][0].in_shape[0] for d in space.decisions]
    assert shapes == [c for c, _, _ in LAYERS]
    assert [d.layers[0][0].stride for d in space.decisions] == [s for _, _, s in LAYERS]
    assert space.head[0].in_shape == (352, 4, 4) and space.additive
    z = space.parse_z("7-8-1-8-4-8-8-8-7-4-1-4-7-3-2-7-3-2-4-2-4-5")  # a row of a shipped table
    assert space.describe(z).split(" | ")[:3] == ["k5_e6", "skip", "k3_e1_g2"]


def test_parameter_counts_match_a_hand_computation():
    space = get_space("fbnet")
    # every layer skipped: the stem, the six shape-changing skips (1x1 conv + BN), the head
    assert space.decode([8] * 22).params == STEM + HEAD + (
        (16 * 24 + 96) + (24 * 32 + 128) + (32 * 64 + 256) + (64 * 112 + 448)
        + (112 * 184 + 736) + (184 * 352 + 1408)) == 785_236
    # the first layer alone as k3_e1_g2: 16*16/2 + 64 + 16*9 + 64 + 16*16/2 + 64
    assert space.decode([1] + [8] * 21).params - 785_236 == 128 + 64 + 144 + 64 + 128 + 64
    kinds = {"k3_e1": (3, 1, 1), "k3_e1_g2": (3, 1, 2), "k3_e3": (3, 3, 1),
             "k3_e6": (3, 6, 1), "k5_e1": (5, 1, 1), "k5_e1_g2": (5, 1, 2),
             "k5_e3": (5, 3, 1), "k5_e6": (5, 6, 1)}
    for z in ([0] * 22, [3] * 22, list(range(9)) * 2 + [1, 5, 7, 2]):
        expected = STEM + HEAD
        for (c, out, s), choice in zip(LAYERS, z):
            name = CHOICES[choice]
            expected += skip_params(c, out, s) if name == "skip" else \
                block_params(c, out, *kinds[name])
        assert space.decode(z).params == expected, z


def test_block_steps_shuffle_and_residual():
    grouped = Layer("fbblock", (24, 8, 8), 24, kernel=5, stride=1, expand=1, groups=2)
    assert [s.kind for s in steps(grouped)] == ["conv", "bn", "shuffle", "conv", "bn", "conv",
                                                "bn", "add"]
    strided = Layer("fbblock", (24, 8, 8), 32, kernel=3, stride=2, expand=6)
    assert "add" not in [s.kind for s in steps(strided)] and strided.out_shape == (32, 4, 4)
    assert step_shapes(strided)[1] == (144, 8, 8)
    assert strided.macs == 8 * 8 * 24 * 144 + 4 * 4 * 144 * 9 + 4 * 4 * 144 * 32
    with pytest.raises(ValueError, match="groups=2 must divide"):
        Layer("fbblock", (3, 8, 8), 4, groups=2)


def _onnx_shuffle(x, groups):
    """Run the shuffle step alone in ONNX Runtime, through the backend's own graph builder."""
    onnxruntime = pytest.importorskip("onnxruntime")
    from hwnas.profile import to_onnx
    layer = Layer("fbblock", x.shape[1:], x.shape[1], expand=1, groups=groups)
    model = to_onnx(((layer, (-1,)),), batch=x.shape[0])
    shuffled = next(n.output[0] for n in model.graph.node if n.op_type == "Reshape"
                    and n.output[0].endswith(".shuffle"))
    conv_out = next(n.output[0] for n in model.graph.node if n.op_type == "Relu")
    # feed the shuffle's input directly: cut the graph at the first ReLU
    import onnx
    # newer onnx's Extractor needs the intermediate tensors' shapes
    model = onnx.shape_inference.infer_shapes(model)
    sub = onnx.utils.Extractor(model).extract_model([conv_out], [shuffled])
    session = onnxruntime.InferenceSession(sub.SerializeToString(),
                                           providers=["CPUExecutionProvider"])
    return session.run(None, {conv_out: x})[0]


def test_channel_shuffle_is_shufflenets_in_onnx():
    x = np.arange(2 * 8 * 2 * 2, dtype=np.float32).reshape(2, 8, 2, 2)
    expected = x.reshape(2, 2, 4, 2, 2).transpose(0, 2, 1, 3, 4).reshape(2, 8, 2, 2)
    assert np.array_equal(_onnx_shuffle(x, 2), expected)
    assert _onnx_shuffle(x, 2)[0, :, 0, 0].tolist() == [0, 16, 4, 20, 8, 24, 12, 28]


@pytest.mark.parametrize("backend_name", [
    "onnxruntime", pytest.param("nnabla", marks=pytest.mark.nnabla)])
def test_both_backends_build_and_time_fbnet_layers_and_networks(backend_name, tmp_path):
    if backend_name == "nnabla" and not HAVE_NNABLA:
        pytest.skip("nnabla is not installed")
    pytest.importorskip(backend_name)
    from hwnas.profile import get_backend, profile_layers, profile_networks
    space = get_space("fbnet")
    backend = get_backend(backend_name)
    layers = [space.decisions[1].layers[c][0] for c in (1, 7, 8)]  # g2, k5_e6, a 1x1 skip
    layers.append(space.decisions[12].layers[5][0])  # a grouped block with its residual
    table = profile_layers(backend, layers, tmp_path / "layers.csv", FAST, show_progress=False)
    assert set(table.timings) == {layer.key for layer in layers}
    assert all(t.latency_ms > 0 for t in table.timings.values())
    zs = [[8] * 22, [1, 5] * 11]
    nets = profile_networks(backend, space, zs, tmp_path / "nets.csv", FAST, show_progress=False)
    assert sorted(nets.z) == sorted(map(tuple, zs)) and all(t.latency_ms > 0
                                                             for t in nets.timings)
