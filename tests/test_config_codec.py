"""Shareable settings: URL values and JSON files round-trip every field; malformed ones are refused."""

import dataclasses
import json

import pytest

from core.base.config import AugmentConfig, ConfigError, ModelConfig, TrainConfig
from core.base.config_codec import (
    configs_from_json,
    configs_json,
    decode_model,
    decode_train,
    encode_model,
    encode_train,
)

ODD_MODEL = ModelConfig(
    model="cnn",
    input_size=48,
    channels=1,
    num_classes=7,
    blocks=2,
    filters=8,
    filter_list=(8, 24),
    kernel_size=5,
    pool_size=3,
    padding="same",
    batchnorm=True,
    dense_units=64,
    dropout=0.3,
    weights="/data/w, odd:name%20.h5",
)
ODD_TRAIN = TrainConfig(
    optimizer="rmsprop",
    learning_rate=0.0003,
    loss="sparse",
    epochs=7,
    batch_size=16,
    val_split=0.25,
    test_size=0.15,
    early_stopping=3,
    monitor="val_accuracy",
    restore_best=False,
    seed=123,
    train_fraction=0.5,
    augment=AugmentConfig(
        rotation=15, width_shift=0.05, height_shift=0.2, hflip=True, vflip=True, zoom=0.3, fill_mode="reflect"
    ),
    fine_tune_epochs=2,
    fine_tune_lr=1e-4,
    precision="float32",
    class_weight="balanced",
)


def test_every_field_differs_from_its_default_in_the_odd_configs():
    for cfg, default in ((ODD_MODEL, ModelConfig()), (ODD_TRAIN, TrainConfig()), (ODD_TRAIN.augment, AugmentConfig())):
        same = [f.name for f in dataclasses.fields(cfg) if getattr(cfg, f.name) == getattr(default, f.name)]
        assert same in ([], ["model"]), same  # "vgg16" needs 3 channels: the VGG16 case is checked below


def test_url_values_round_trip_every_field():
    assert decode_model(encode_model(ODD_MODEL)) == ODD_MODEL
    assert decode_train(encode_train(ODD_TRAIN)) == ODD_TRAIN
    assert encode_model(ModelConfig()) == "" and decode_model("") == ModelConfig()
    assert encode_train(TrainConfig()) == "" and decode_train("") == TrainConfig()
    assert encode_model(ModelConfig(dropout=0.25)) == "dropout:0.25"  # compact: only what differs
    vgg = ModelConfig(model="vgg16", weights="offline", input_size=32)
    assert decode_model(encode_model(vgg)) == vgg


def test_json_round_trips_every_field():
    text = configs_json(ODD_MODEL, ODD_TRAIN)
    assert configs_from_json(text) == (ODD_MODEL, ODD_TRAIN)
    assert configs_from_json(text.encode()) == (ODD_MODEL, ODD_TRAIN)


@pytest.mark.parametrize(
    "text, needle",
    [
        ("dropout:1.5", "'dropout' parameter of ModelConfig"),
        ("colour:red", "not a setting:value pair"),
        ("dropout", "not a setting:value pair"),
        ("blocks:three", "bad value 'three'"),
        ("batchnorm:yes", "bad value 'yes'"),
        ("filter_list:16-x", "bad value '16-x'"),
        ("blocks:2,filter_list:8-16-32", "filter_list"),
        ("x" * 5000, "too long"),
    ],
)
def test_malformed_model_links_are_refused(text, needle):
    with pytest.raises(ConfigError, match=needle):
        decode_model(text)


@pytest.mark.parametrize(
    "text, needle",
    [
        ("epochs:0", "'epochs' parameter of TrainConfig"),
        ("zoom:2", "'zoom' parameter of AugmentConfig"),
        ("optimizer:lbfgs", "'optimizer' parameter"),
        ("augment:1", "not a setting:value pair"),
        ("dropout:0.5", "not a setting:value pair"),  # a model setting in the training link
    ],
)
def test_malformed_train_links_are_refused(text, needle):
    with pytest.raises(ConfigError, match=needle):
        decode_train(text)


@pytest.mark.parametrize(
    "data, needle",
    [
        (b"\xff\xfe not json", "not JSON"),
        ("[1, 2]", "two objects"),
        ('{"model": {}}', "two objects"),
        ('{"model": {"colour": 1}, "train": {}}', "no parameter"),
        ('{"model": {"dropout": "high"}, "train": {}}', "dropout"),
        ('{"model": {}, "train": {"augment": {"zoom": 5}}}', "zoom"),
        ("{" + " " * 300000 + "}", "too large"),
    ],
)
def test_malformed_settings_files_are_refused(data, needle):
    with pytest.raises(ConfigError, match=needle):
        configs_from_json(data)


def test_a_run_exported_settings_file_loads(tmp_path):
    from core.results.export import config_json
    from core.store.runstore import RunRecord

    rec = RunRecord(
        run_id="r",
        key="k",
        status="complete",
        created=0,
        source="s",
        label="l",
        data={},
        model_config=ODD_MODEL.to_dict(),
        train_config=ODD_TRAIN.to_dict(),
        layers={},
        history={},
        epoch_seconds=[],
        best_epoch=1,
        stopped_early=False,
        stopped_by_user=False,
        restored_epoch=None,
        phases=[],
        diagnosis={},
        test={},
        seconds=0,
        versions={},
    )
    assert configs_from_json(config_json(rec)) == (ODD_MODEL, ODD_TRAIN)
    assert json.loads(config_json(rec))["model"]["filter_list"] == [8, 24]
