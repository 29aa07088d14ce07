"""build_model: the course's CNN or the VGG16 transfer model, held to the layer table."""

import numpy as np

import core.models.builder as M
from core.base.config import ModelConfig
from core.models.layer_table import layer_table


def test_vgg16_layer_table_equals_keras_counts_without_training():
    cfg = ModelConfig(model="vgg16", weights="none")  # 64x64, Dense 128, 5 classes: the course's
    model = M.build_model(cfg)
    table = layer_table(cfg)
    rows = M.keras_summary_rows(model)
    assert [r.name for r in table.rows] == [r["name"] for r in rows] == ["vgg16", "gap", "dense", "dropout", "output"]
    for mine, theirs in zip(table.rows, rows, strict=True):
        assert (mine.output_shape, mine.params, mine.trainable) == (
            theirs["output_shape"],
            theirs["params"],
            theirs["trainable"],
        ), mine.name
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    frozen = sum(int(np.prod(w.shape)) for w in model.non_trainable_weights)
    assert (trainable, frozen) == (66_309, 14_714_688) == (table.trainable_params, table.non_trainable_params)
    base = model.get_layer("vgg16")
    assert [layer.name for layer in base.layers[1:]] == [c.name for c in table.rows[0].children]


def test_build_model_hands_seed_and_store_to_vgg16(monkeypatch, store):
    seen = []
    monkeypatch.setattr(M, "build_transfer_model", lambda cfg, **kw: seen.append((cfg.model, kw)) or "vgg16 model")
    cfg = ModelConfig(model="vgg16", weights="offline")
    assert M.build_model(cfg, seed=7, store=store) == "vgg16 model"
    assert M.build_model(cfg) == "vgg16 model"
    assert seen == [("vgg16", {"seed": 7, "store": store}), ("vgg16", {"seed": 42, "store": None})]


def test_vgg16_seed_picks_the_random_base():
    cfg = ModelConfig(model="vgg16", input_size=32, dense_units=4, weights="none")

    def first_kernel(seed):
        return M.build_model(cfg, seed=seed).get_layer("vgg16").get_layer("block1_conv1").get_weights()[0]

    a, b, c = first_kernel(1), first_kernel(1), first_kernel(2)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_cnn_is_the_course_network():
    model = M.build_model(ModelConfig())
    assert model.name == "cnn" and model.count_params() == 683_845
    assert [r["name"] for r in M.keras_summary_rows(model)][-3:] == ["dense", "dropout", "output"]
