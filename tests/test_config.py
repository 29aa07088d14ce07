"""Configuration validation, serialisation and run keys."""

import pytest

from core.base.config import AugmentConfig, ConfigError, ModelConfig, TrainConfig, run_key


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


def test_configs_hash_by_value():
    assert hash(ModelConfig()) == hash(ModelConfig())
    assert {TrainConfig(): 1}[TrainConfig()] == 1
