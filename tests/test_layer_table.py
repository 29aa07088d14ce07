"""The layer table against Keras' own model.summary() numbers."""

import random

import pytest

from core.base.config import COURSE_PARAMS, ModelConfig
from core.models.layer_table import ArchitectureError, check_architecture, layer_table


def test_course_network_matches_the_chapter():
    t = layer_table(ModelConfig())
    assert t.total_params == COURSE_PARAMS == 683_845
    first = t.rows[0]
    assert first.name == "block1_conv"
    assert first.output_shape == (62, 62, 32)
    assert first.params == 896
    assert first.formula.startswith("32 x (3x3x3 + 1) = 896")
    shapes = {r.name: r.output_shape for r in t.rows}
    assert shapes["block1_pool"] == (31, 31, 32)
    assert shapes["block2_conv"] == (29, 29, 64)
    assert shapes["block2_pool"] == (14, 14, 64)
    assert shapes["block3_conv"] == (12, 12, 128)
    assert shapes["block3_pool"] == (6, 6, 128)
    assert shapes["flatten"] == (4608,)
    assert t.trainable_params == COURSE_PARAMS and t.non_trainable_params == 0


def test_batchnorm_params_split_trainable_and_frozen():
    t = layer_table(ModelConfig(batchnorm=True, blocks=1, filters=16))
    bn = next(r for r in t.rows if r.type == "BatchNormalization")
    assert (bn.params, bn.trainable, bn.non_trainable) == (64, 32, 32)
    assert t.non_trainable_params == 32


def test_vgg16_counts_from_the_issue():
    t = layer_table(ModelConfig(model="vgg16"))
    assert t.trainable_params == 66_309
    assert t.non_trainable_params == 14_714_688
    base = t.rows[0]
    assert base.output_shape == (2, 2, 512)
    assert len([c for c in base.children if c.type == "Conv2D"]) == 13
    assert len([c for c in base.children if c.type == "MaxPooling2D"]) == 5


@pytest.mark.parametrize(
    "cfg, field, block",
    [
        (ModelConfig(input_size=16, blocks=5), "blocks", 3),
        (ModelConfig(input_size=8, kernel_size=9), "kernel_size", 1),
        (ModelConfig(input_size=8, pool_size=8, kernel_size=3), "pool_size", 1),
        (ModelConfig(model="vgg16", input_size=28), "input_size", None),
    ],
)
def test_impossible_configs_are_explained_before_building(cfg, field, block):
    problems = check_architecture(cfg)
    assert len(problems) == 1
    assert problems[0].field == field and problems[0].block == block
    with pytest.raises(ArchitectureError) as err:
        layer_table(cfg)
    assert "Block" in str(err.value) or "VGG16" in str(err.value)


def test_same_padding_lets_deep_stacks_fit_small_inputs():
    assert check_architecture(ModelConfig(input_size=32, blocks=5, padding="same")) == []
    t = layer_table(ModelConfig(input_size=32, blocks=5, padding="same"))
    assert t.rows[-4].output_shape == (512,)  # 1x1x512 flattened


def _random_configs(n: int, seed: int = 7) -> list[ModelConfig]:
    rng = random.Random(seed)
    out: list[ModelConfig] = []
    while len(out) < n:
        blocks = rng.randint(1, 4)
        explicit = rng.random() < 0.3
        cfg = ModelConfig(
            input_size=rng.choice([16, 24, 32, 48, 64]),
            channels=rng.choice([1, 3]),
            num_classes=rng.randint(2, 7),
            blocks=blocks,
            filters=rng.choice([2, 4, 8]),
            filter_list=tuple(rng.choice([3, 5, 8]) for _ in range(blocks)) if explicit else (),
            kernel_size=rng.choice([1, 3, 5]),
            pool_size=rng.choice([1, 2, 3]),
            padding=rng.choice(["valid", "same"]),
            batchnorm=rng.random() < 0.4,
            dense_units=rng.choice([4, 16, 33]),
            dropout=rng.choice([0.0, 0.25, 0.5]),
        )
        if not check_architecture(cfg):
            out.append(cfg)
    return out


@pytest.mark.parametrize("cfg", _random_configs(40))
def test_table_equals_keras_summary(cfg):
    from core.models.builder import build_model, keras_summary_rows

    model = build_model(cfg)
    keras_rows = keras_summary_rows(model)
    table = layer_table(cfg)
    assert [r.name for r in table.rows] == [r["name"] for r in keras_rows]
    for mine, theirs in zip(table.rows, keras_rows, strict=True):
        assert mine.output_shape == theirs["output_shape"], mine.name
        assert mine.params == theirs["params"], mine.name
        assert mine.trainable == theirs["trainable"], mine.name
    assert table.total_params == model.count_params()


def test_vgg16_base_rows_equal_keras_applications():
    import keras

    from core.models.layer_table import vgg16_base_rows

    base = keras.applications.VGG16(weights=None, include_top=False, input_shape=(64, 64, 3))
    theirs = [(layer.name, tuple(layer.output.shape[1:]), layer.count_params()) for layer in base.layers[1:]]
    mine = [(r.name, r.output_shape, r.params) for r in vgg16_base_rows(64)]
    assert mine == theirs


def _fields(cfg):
    return [(r.name, r.receptive_field, r.jump) for r in layer_table(cfg).rows]


def test_receptive_fields_of_the_course_network():
    rows = [(n, rf, j) for n, rf, j in _fields(ModelConfig()) if "conv" in n or "pool" in n]
    # conv 3x3: 1 + 2 = 3; pool 2: 3 + 1x1 = 4, jump 2; conv: 4 + 2x2 = 8; pool: 8 + 1x2 = 10, jump 4;
    # conv: 10 + 2x4 = 18; pool: 18 + 1x4 = 22, jump 8.
    assert rows == [
        ("block1_conv", 3, 1),
        ("block1_pool", 4, 2),
        ("block2_conv", 8, 2),
        ("block2_pool", 10, 4),
        ("block3_conv", 18, 4),
        ("block3_pool", 22, 8),
    ]
    assert _fields(ModelConfig())[-4:] == [
        ("flatten", None, None),
        ("dense", None, None),
        ("dropout", None, None),
        ("output", None, None),
    ]
    d = layer_table(ModelConfig()).to_dict()
    assert [(la["receptive_field"], la["jump"]) for la in d["layers"][:6]] == [
        (3, 1),
        (4, 2),
        (8, 2),
        (10, 4),
        (18, 4),
        (22, 8),
    ]


def test_receptive_fields_with_same_padding_5x5_kernels_and_batchnorm():
    cfg = ModelConfig(input_size=32, blocks=3, kernel_size=5, pool_size=2, padding="same", batchnorm=True)
    # conv 5x5: 1 + 4 = 5 (padding does not change the field); bn keeps it; pool 2: 5 + 1 = 6, jump 2;
    # conv: 6 + 4x2 = 14; pool: 14 + 1x2 = 16, jump 4; conv: 16 + 4x4 = 32; pool: 32 + 4 = 36, jump 8.
    assert _fields(cfg)[:9] == [
        ("block1_conv", 5, 1),
        ("block1_bn", 5, 1),
        ("block1_pool", 6, 2),
        ("block2_conv", 14, 2),
        ("block2_bn", 14, 2),
        ("block2_pool", 16, 4),
        ("block3_conv", 32, 4),
        ("block3_bn", 32, 4),
        ("block3_pool", 36, 8),
    ]
    assert _fields(cfg.replace(padding="valid", input_size=64))[:9] == _fields(cfg)[:9]
    # a 3x3 pooling window moving 3 pixels: 5 + 2x1 = 7, jump 3; conv 5x5: 7 + 4x3 = 19; pool: 19 + 2x3 = 25, jump 9
    assert _fields(ModelConfig(input_size=64, blocks=2, kernel_size=5, pool_size=3))[:4] == [
        ("block1_conv", 5, 1),
        ("block1_pool", 7, 3),
        ("block2_conv", 19, 3),
        ("block2_pool", 25, 9),
    ]


def test_receptive_fields_of_vgg16():
    t = layer_table(ModelConfig(model="vgg16"))
    kids = {c.name: (c.receptive_field, c.jump) for c in t.rows[0].children}
    assert kids["block1_conv1"] == (3, 1) and kids["block1_conv2"] == (5, 1) and kids["block1_pool"] == (6, 2)
    assert kids["block3_conv3"] == (40, 4) and kids["block4_pool"] == (100, 16)
    assert kids["block5_conv3"] == (196, 16) and kids["block5_pool"] == (212, 32)  # VGG16's well-known 212
    assert (t.rows[0].receptive_field, t.rows[0].jump) == (212, 32)
    assert t.to_dict(children=True)["layers"][0]["children"][-1]["receptive_field"] == 212


def test_multiply_adds_match_hand_counts_for_the_course_network():
    table = layer_table(ModelConfig())
    macs = {r.name: r.macs for r in table.rows}
    assert macs["block1_conv"] == 62 * 62 * 32 * (3 * 3 * 3)  # 3,321,216: every output value, 3x3x3 weights
    assert macs["block2_conv"] == 29 * 29 * 64 * (3 * 3 * 32)  # 15,501,312
    assert macs["block3_conv"] == 12 * 12 * 128 * (3 * 3 * 64)  # 10,616,832
    assert macs["dense"] == 4608 * 128 and macs["output"] == 128 * 5
    assert macs["block1_pool"] == macs["flatten"] == macs["dropout"] == 0
    assert table.total_macs == 30_029_824
    d = table.to_dict()
    assert d["total_macs"] == 30_029_824 and [r["macs"] for r in d["layers"]] == list(macs.values())
    bn = layer_table(ModelConfig(batchnorm=True))
    assert next(r for r in bn.rows if r.name == "block1_bn").macs == 62 * 62 * 32
    vgg = layer_table(ModelConfig(model="vgg16", input_size=224))
    assert 15.3e9 < vgg.rows[0].macs < 15.4e9  # VGG16's conv base at 224 x 224: the published ~15.4 GMACs
    assert vgg.rows[0].macs == sum(c.macs for c in vgg.rows[0].children)
