"""Configuration validation, serialisation and run keys."""

from dataclasses import fields

import pytest

from core.base.config import (
    KERAS_LOSSES,
    KERAS_OPTIMIZERS,
    LOSSES,
    OPTIMIZERS,
    RANGES,
    AugmentConfig,
    ConfigError,
    ModelConfig,
    Range,
    TrainConfig,
    run_key,
)


def test_defaults_are_the_course_network():
    m, t = ModelConfig(), TrainConfig()
    assert m.input_shape() == (64, 64, 3)
    assert m.block_filters() == (32, 64, 128)
    assert (m.dense_units, m.dropout, m.num_classes) == (128, 0.5, 5)
    assert (t.optimizer, t.epochs, t.batch_size, t.val_split) == ("adam", 20, 32, 0.2)
    assert not t.augment.enabled


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"dropout": 1.5}, "The 'dropout' parameter of ModelConfig must be a number in [0.0, 1.0). Got 1.5 instead."),
        ({"blocks": 6}, "'blocks' parameter of ModelConfig must be an integer in [1, 5]. Got 6"),
        ({"padding": "full"}, "'padding' parameter of ModelConfig must be one of 'valid', 'same'. Got 'full'"),
        ({"filter_list": (8, 16)}, "list of 3 filter counts"),
        ({"model": "vgg16", "channels": 1}, "3 for the VGG16 model"),
    ],
)
def test_bad_model_values_say_what_and_got(kwargs, message):
    with pytest.raises(ConfigError) as err:
        ModelConfig(**kwargs)
    assert message in str(err.value)


def test_bad_train_and_augment_values():
    with pytest.raises(ConfigError, match="'optimizer'"):
        TrainConfig(optimizer="adagrad")
    with pytest.raises(ConfigError, match="'epochs'"):
        TrainConfig(epochs=0)
    with pytest.raises(ConfigError, match="'fill_mode'"):
        AugmentConfig(fill_mode="mirror")
    with pytest.raises(ConfigError, match="'zoom'"):
        AugmentConfig(zoom=1.0)


def test_round_trip_through_dicts():
    m = ModelConfig(blocks=2, filter_list=(8, 24), batchnorm=True)
    t = TrainConfig(augment=AugmentConfig.course(), early_stopping=3)
    assert ModelConfig.from_dict(m.to_dict()) == m
    assert TrainConfig.from_dict(t.to_dict()) == t
    with pytest.raises(ConfigError, match="no parameter"):
        ModelConfig.from_dict({"layers": 3})


def test_run_key_changes_with_what_matters_only():
    m, t = ModelConfig(), TrainConfig()
    k = run_key(m, t, "fp")
    assert k == run_key(ModelConfig(), TrainConfig(), "fp")
    assert len(k) == 16
    assert run_key(m, t, "other data") != k
    assert run_key(m.replace(dropout=0.25), t, "fp") != k
    assert run_key(m, t.replace(seed=1), "fp") != k
    assert run_key(m, t.replace(augment=AugmentConfig(hflip=True)), "fp") != k
    # explicit filters equal to the doubling rule are the same network
    assert run_key(m.replace(filter_list=(32, 64, 128)), t, "fp") == k
    # settings that do nothing for this model or this run do not change the key
    assert run_key(m.replace(weights="none"), t, "fp") == k
    assert run_key(m, t.replace(monitor="val_accuracy"), "fp") == k  # early stopping off
    assert run_key(m, t.replace(fine_tune_epochs=3), "fp") == k  # cnn has no fine-tuning
    assert run_key(m, t.replace(augment=AugmentConfig(fill_mode="wrap")), "fp") == k
    v = m.replace(model="vgg16")
    assert run_key(v, t.replace(fine_tune_epochs=3), "fp") != run_key(v, t, "fp")
    assert run_key(v.replace(kernel_size=5), t, "fp") == run_key(v, t, "fp")


# Run keys computed by the code on main before the class-weight setting existed (the same configs, data
# fingerprint "fp" x 8, float32 and bfloat16): every stored run must keep its key.
OLD_KEYS = {
    "default": ("57715574dc8292e3", "13ac0162451daf94"),
    "vgg16_ft": ("81bde1fce8daa123", "497f32af2f86f379"),
    "sparse_es_aug": ("2ce2d1a0500feece", "19912d86f748ea6c"),
}


def _old_configs():
    return {
        "default": (ModelConfig(), TrainConfig()),
        "vgg16_ft": (ModelConfig(model="vgg16", weights="offline"), TrainConfig(fine_tune_epochs=3, epochs=5)),
        "sparse_es_aug": (
            ModelConfig(dropout=0.3, batchnorm=True),
            TrainConfig(loss="sparse", early_stopping=3, augment=AugmentConfig.course(), seed=7),
        ),
    }


@pytest.mark.parametrize("name", sorted(OLD_KEYS))
def test_class_weight_none_leaves_every_older_run_key_unchanged(name):
    m, t = _old_configs()[name]
    assert t.class_weight == "none"
    assert (run_key(m, t, "fp" * 8), run_key(m, t, "fp" * 8, "bfloat16")) == OLD_KEYS[name]
    # a record stored before the setting (no class_weight in its train_config) reads back to the same key
    old_record = {k: v for k, v in t.to_dict().items() if k != "class_weight"}
    assert run_key(m, TrainConfig.from_dict(old_record), "fp" * 8) == OLD_KEYS[name][0]
    balanced = t.replace(class_weight="balanced")
    assert run_key(m, balanced, "fp" * 8) not in OLD_KEYS[name]  # a run with class weights is another run


def test_class_weight_is_checked():
    with pytest.raises(ConfigError, match="class_weight"):
        TrainConfig(class_weight="inverse")


def test_configs_hash_by_value():
    assert hash(ModelConfig()) == hash(ModelConfig())
    assert {TrainConfig(): 1}[TrainConfig()] == 1


def _config_of(name):
    """The config class that has the field ``name``."""
    return next(cls for cls in (ModelConfig, AugmentConfig, TrainConfig) if name in {f.name for f in fields(cls)})


def test_every_numeric_setting_has_one_range_and_the_configs_check_it():
    numeric = {
        f.name
        for cls in (ModelConfig, AugmentConfig, TrainConfig)
        for f in fields(cls)
        if f.type in ("int", "float", "tuple[int, ...]")
    }
    assert numeric - {"channels"} == set(RANGES)  # channels is a choice: 1 or 3
    for name, r in RANGES.items():
        cls = _config_of(name)
        value = (r.lo,) * ModelConfig().blocks if name == "filter_list" else r.lo
        assert getattr(cls(**{name: value}), name) == value
        beyond = r.hi if r.hi_open else (r.hi + 1 if isinstance(r.hi, int) else r.hi * 1.01)
        below = r.lo - 1 if isinstance(r.lo, int) else r.lo / 2 if r.lo else -0.1
        for bad in (beyond, below):
            value = (bad,) * ModelConfig().blocks if name == "filter_list" else bad
            with pytest.raises(ConfigError) as err:
                cls(**{name: value})
            assert f"The '{name}' parameter of {cls.__name__} must be " in str(err.value)
            assert r.interval in str(err.value)
        assert r.lo <= r.top <= r.hi and (r.top < r.hi or not r.hi_open)  # a slider's usual maximum is valid


def test_a_range_reads_as_the_messages_and_help_say_it():
    assert RANGES["blocks"].interval == "[1, 5]" and RANGES["blocks"].span == "1-5"
    assert RANGES["dropout"].interval == "[0.0, 1.0)" and RANGES["dropout"].top == 0.9
    assert RANGES["epochs"].top == 100 and RANGES["epochs"].hi == 500
    assert RANGES["seed"].hi == 2**31 - 1
    assert Range(0.0, 1.0, hi_open=True).holds(0.99) and not Range(0.0, 1.0, hi_open=True).holds(1.0)


def test_every_optimizer_and_loss_has_its_keras_name():
    import keras

    assert tuple(KERAS_OPTIMIZERS) == OPTIMIZERS and tuple(KERAS_LOSSES) == LOSSES
    for name in KERAS_OPTIMIZERS.values():
        assert issubclass(getattr(keras.optimizers, name), keras.optimizers.Optimizer), name
    for name in KERAS_LOSSES.values():
        assert keras.losses.get(name) is not None, name
    assert KERAS_LOSSES["sparse"] == "sparse_categorical_crossentropy"
