import numpy as np
import pytest
from helpers import SPACE_YAML

from hwnas.spaces import get_space, mobilenet
from hwnas.spaces.mobilenet import SKIP


def test_mobilenet_matches_nnabla_nas_searchnet():
    space = get_space("mobilenet")
    assert len(space.decisions) == 21 and space.input_shape == (3, 32, 32)
    # skip only where stride is 1 and channels match: every block but a stage's first
    firsts = {0, 4, 8, 12, 16, 20}
    for i, d in enumerate(space.decisions):
        assert (SKIP in d.choices) == (i not in firsts), d.name
        assert d.choices[:6] == ("MB3 3x3", "MB6 3x3", "MB3 5x5", "MB6 5x5", "MB3 7x7",
                                 "MB6 7x7")
    stem, first = space.stem
    assert stem.key == "conv(in=3x32x32,out=32,k=3,s=2,g=1,act=relu6)"
    assert first.key == "mbconv(in=32x16x16,out=16,k=3,s=1,e=1)"
    assert [layer.op for layer in space.head] == ["conv", "gap", "linear"]
    assert space.head[-1].out_channels == 10
    arch = space.decode([1] * 21)
    assert arch.layers[-1].out_shape == (10, 1, 1) and arch.layers[-2].out_shape == (1280, 1, 1)
    channels = [layer.out_channels for layer in arch.layers[2:-3]]
    assert channels == [24] * 4 + [32] * 4 + [64] * 4 + [96] * 4 + [160] * 4 + [320]


def test_layers_chain_for_every_z():
    space = mobilenet(input_shape=(3, 64, 64), num_classes=100)
    for z in space.random_z(20, seed=0):
        arch = space.decode(z)
        for a, b in zip(arch.layers, arch.layers[1:]):
            assert a.out_shape == b.in_shape or b.op == "linear"
        assert arch.z == tuple(z)
        assert arch.macs == sum(layer.macs for layer in arch.layers)
    assert space.head[-1].out_channels == 100


def test_unique_layers_grow_linearly_with_decisions():
    space = get_space("mobilenet")
    layers = space.unique_layers()
    assert len({layer.key for layer in layers}) == len(layers)
    # 5 fixed layers; 6 candidates per stage's first block, 6 more shared by its other blocks
    assert len(layers) == 5 + 6 * 11
    assert space.size == 6 ** 6 * 7 ** 15


def test_cost_matrix_equals_per_architecture_sum():
    space = get_space("mobilenet")

    def cost(layers):
        return np.array([layer.macs / 1e6 + layer.params / 1e5 for layer in layers])

    fixed, C = space.cost_matrix(cost)
    assert C.shape == (21, 7) and np.isnan(C[0, 6]) and C[1, 6] == 0.0
    Z = space.random_z(50, seed=1)
    batch = space.evaluate_z(Z, fixed, C)
    for z, value in zip(Z, batch):
        assert value == pytest.approx(cost(list(space.decode(z).layers)).sum())
    z_min, least = space.min_z(fixed, C)
    assert least == pytest.approx(cost(list(space.decode(z_min).layers)).sum())
    assert least <= batch.min()


@pytest.mark.parametrize("z, message", [
    ([0] * 20, "must have 21 entries"),
    ([6] + [0] * 20, r"z\[0\] = 6 is out of range 0..5"),
    ([-1] + [0] * 20, "out of range"),
    ([0.5] + [0] * 20, "must be integers"),
])
def test_bad_z(z, message):
    with pytest.raises(ValueError, match=message):
        get_space("mobilenet").decode(z)


def test_unknown_space():
    with pytest.raises(ValueError, match="unknown space 'resnet'"):
        get_space("resnet")



ARCH = ("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|"
        "+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|")


def test_nb201_arch_strings_both_ways():
    space = get_space("nb201")
    assert space.n_choices == (5,) * 6 and space.size == 15625
    z = space.parse_z(ARCH)
    assert z == (3, 3, 4, 1, 3, 1) and space.describe(z) == ARCH
    assert space.parse_z("3-3-4-1-3-1") == z
    for z in space.random_z(30, seed=0):
        assert space.parse_z(space.describe(z)) == tuple(z)


@pytest.mark.parametrize("text, message", [
    ("|conv~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|none~0|none~1|none~2|", "unknown op 'conv'"),
    ("|none~0|+|none~0|+|none~0|none~1|none~2|", "node 2 needs 2 edges"),
    ("|none~0|+|none~1|none~1|+|none~0|none~1|none~2|", "must come from node 0"),
    ("none", "choice indices joined by"),
    ("5-0-0-0-0-0", r"z\[0\] = 5 is out of range"),
])
def test_nb201_bad_arch_strings(text, message):
    with pytest.raises(ValueError, match=message):
        get_space("nb201").parse_z(text)


def test_nb201_graph_uses_exactly_the_decoded_layers():
    from collections import Counter
    space = get_space("nb201")
    for z in list(space.random_z(40, seed=2)) + [(0,) * 6, (1,) * 6]:
        arch = space.decode(z)
        assert Counter(layer.key for layer in arch.layers) == \
            Counter(layer.key for layer, _ in arch.graph)
        for i, (_layer, inputs) in enumerate(arch.graph):
            assert all(j is None or -1 <= j < i for j in inputs)
    # an all-"none" cell feeds zeros to the next stage
    empty = space.decode((0,) * 6)
    assert [layer.op for layer, _ in empty.graph] == ["conv", "resblock", "resblock", "bn",
                                                      "gap", "linear"]
    assert empty.graph[1][1] == (None,)


def test_nb201_costs_are_additive_over_edges():
    space = get_space("nb201")
    fixed, C = space.cost_matrix(lambda layers: np.array([1.0 + layer.macs / 1e6
                                                          for layer in layers]))
    assert C.shape == (6, 5) and (C[:, 0] == 0).all()  # "none" costs nothing
    for z in space.random_z(20, seed=3):
        expected = sum(1.0 + layer.macs / 1e6 for layer, _ in space.decode(z).graph)
        assert space.evaluate_z(z, fixed, C)[0] == pytest.approx(expected)


def test_space_from_yaml_and_json(tmp_path):
    import json

    import yaml

    from hwnas.spaces import load_space
    (tmp_path / "tiny.yaml").write_text(SPACE_YAML)
    space = load_space(str(tmp_path / "tiny.yaml"))
    assert space.name == "tiny" and space.n_choices == (2, 2)
    assert space.decisions[1].choices == ("MB3 3x3", "skip")
    arch = space.decode([1, 1])
    assert [layer.op for layer in arch.layers] == ["conv", "mbconv", "conv", "gap", "linear"]
    assert arch.layers[-1].out_shape == (5, 1, 1)
    (tmp_path / "tiny.json").write_text(json.dumps(yaml.safe_load(SPACE_YAML)))
    assert load_space(str(tmp_path / "tiny.json")) == space


@pytest.mark.parametrize("change, message", [
    (("op: mbconv, out: 16, k: 5", "op: mbconvv, out: 16, k: 5"),
     r"decisions\[0\].choices\['MB6 5x5'\]\[0\]: unknown op 'mbconvv'"),
    (("{op: gap}", "{op: gap, k: 3}"), r"head\[1\].k: not an attribute of gap"),
    (("MB6 5x5: [{op: mbconv, out: 16, k: 5, s: 2, e: 6}]",
      "MB6 5x5: [{op: mbconv, out: 24, k: 5, s: 2, e: 6}]"),
     r"decisions\[0\].choices: choices give different output shapes"),
    (("input_shape: [3, 16, 16]", "input_shape: [3, 16]"), "input_shape: must be 3 positive"),
    (("in=16x4x4", "in=16x8x8"), r"head\[0\]: input shape \(16, 8, 8\) does not follow"),
    (("name: tiny", "name: tiny\nlayers: []"), "layers: unknown key"),
    (("  - name: block2", "  - name: [block2"), r"line \d+: not valid YAML"),
])
def test_bad_space_files_name_the_key_or_line(tmp_path, change, message):
    from hwnas.spaces import SpaceFileError, load_space
    path = tmp_path / "bad.yaml"
    path.write_text(SPACE_YAML.replace(*change))
    with pytest.raises(SpaceFileError, match=message) as e:
        load_space(str(path))
    assert str(path) in str(e.value)
