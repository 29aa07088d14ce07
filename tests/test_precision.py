"""Precision: what "auto" picks per CPU flags, the policy kept local, bf16 runs recorded and keyed."""

import numpy as np
import pytest
from tinydata import write_tiny_dataset

from core.config import ConfigError, ModelConfig, TrainConfig, run_key
from core.data import load_dataset, prepare_data
from core.errors import UserError
from core.precision import cpu_flags, has_native_bf16, precision_policy, resolve_precision, run_precision
from core.train import train_model
from core.weights import preprocess_images

TINY = ModelConfig(input_size=16, blocks=1, filters=4, dense_units=8, dropout=0.0, num_classes=3)


@pytest.mark.parametrize(
    "flags, expected",
    [
        ({"fma", "avx2"}, "float32"),  # AVX2 only: bf16 would be emulated
        ({"avx2", "avx512f", "avx512_vnni"}, "float32"),  # AVX-512 without its bf16 extension
        ({"avx2", "avx512f", "avx512_bf16"}, "bfloat16"),  # AMD EPYC Genoa, Intel Cooper Lake
        ({"avx512f", "amx_bf16", "amx_tile"}, "bfloat16"),  # Intel Sapphire Rapids
        (set(), "float32"),  # flags unknown (no /proc/cpuinfo)
    ],
)
def test_auto_follows_the_cpu_flags(flags, expected):
    assert resolve_precision("auto", flags) == expected
    assert has_native_bf16(flags) == (expected == "bfloat16")
    # an explicit choice is kept whatever the CPU
    assert resolve_precision("float32", flags) == "float32"
    assert resolve_precision("bfloat16", flags) == "bfloat16"


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: Test CPU\nflags\t\t: fpu avx2 avx512_bf16\n\n")
    assert cpu_flags(info) == {"fpu", "avx2", "avx512_bf16"}
    assert cpu_flags(tmp_path / "missing") == frozenset()


def test_bad_precision_is_refused():
    with pytest.raises(ConfigError, match="'precision' parameter of TrainConfig must be one of 'auto', 'float32'"):
        TrainConfig(precision="float16")
    with pytest.raises(UserError, match="Unknown precision"):
        resolve_precision("half")


def test_vgg16_follows_the_same_rule():
    vgg = ModelConfig(model="vgg16", weights="none")
    assert run_precision(vgg, TrainConfig(precision="bfloat16"), {"avx2"}) == "bfloat16"
    assert run_precision(vgg, TrainConfig(), {"avx512_bf16"}) == "bfloat16"
    assert run_precision(vgg, TrainConfig(), {"avx2"}) == "float32"
    assert run_precision(ModelConfig(), TrainConfig(), {"avx512_bf16"}) == "bfloat16"


def test_a_bfloat16_vgg16_base_feeds_a_float32_head(tmp_path, store):
    from core.features import FEATURES_KIND
    from core.transfer import train_transfer

    folder = write_tiny_dataset(tmp_path / "tiny", per_class=6, size=32)
    data = prepare_data(load_dataset(folder, image_size=32), seed=0)
    vgg = ModelConfig(model="vgg16", input_size=32, num_classes=3, dense_units=8, weights="none")
    res = train_transfer(vgg, TrainConfig(epochs=1, batch_size=8, precision="bfloat16"), data, store=store)
    assert res.extra["precision"] == "bfloat16"
    base = res.model.get_layer("vgg16")
    assert base.get_layer("block1_conv1").compute_dtype == "bfloat16"
    assert res.model.get_layer("dense").compute_dtype == "float32"
    probs = res.model.predict(preprocess_images(data.x01("test"), "none"), verbose=0)
    assert probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    f32 = train_transfer(vgg, TrainConfig(epochs=1, batch_size=8, precision="float32"), data, store=store)
    assert f32.extra["precision"] == "float32" and f32.extra["features_key"] != res.extra["features_key"]
    assert len(list((store.cache_dir / FEATURES_KIND).glob("*.npz"))) == 2  # one cache entry per precision


def test_the_key_holds_the_precision_used_and_float32_keys_are_unchanged():
    m, t = ModelConfig(), TrainConfig()
    # The key of the default configs on data "fp", as stored before the precision setting existed.
    assert run_key(m, t, "fp", "float32") == "7bc8ff16e64f4034"  # computed by the code before this change
    assert run_key(m.replace(model="vgg16"), t.replace(fine_tune_epochs=3), "fp") == "c059053cf6cfa8cf"
    assert run_key(m, t, "fp") == run_key(m, t.replace(precision="float32"), "fp", "float32")
    assert run_key(m, t, "fp", "bfloat16") != run_key(m, t, "fp", "float32")
    # "auto" and the explicit choice it resolves to are the same run
    assert run_key(m, t, "fp", "bfloat16") == run_key(m, t.replace(precision="bfloat16"), "fp", "bfloat16")


def test_the_policy_is_set_and_restored():
    import keras

    before = keras.config.dtype_policy().name
    with precision_policy("bfloat16"):
        assert keras.config.dtype_policy().name == "mixed_bfloat16"
        layer = keras.layers.Dense(2)
    assert keras.config.dtype_policy().name == before == "float32"
    assert layer.compute_dtype == "bfloat16" and layer.variable_dtype == "float32"
    with pytest.raises(ValueError, match="precision_policy"):
        with precision_policy("auto"):
            pass


def test_a_bfloat16_run_trains_and_gives_float32_probabilities(tiny_folder):
    import keras

    data = prepare_data(load_dataset(tiny_folder, image_size=16), loss="categorical", seed=0)
    res = train_model(TINY, TrainConfig(epochs=2, batch_size=8, precision="bfloat16"), data, store=None)
    assert res.extra["precision"] == "bfloat16"
    assert res.model.get_layer("block1_conv").compute_dtype == "bfloat16"
    assert keras.config.dtype_policy().name == "float32"  # not leaked to the next training
    out = res.model.predict(data.x01("test"), verbose=0)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-5)
    assert all(np.isfinite(v) for v in res.history["loss"])
    f32 = train_model(TINY, TrainConfig(epochs=1, batch_size=8, precision="float32"), data, store=None)
    assert f32.extra["precision"] == "float32"
    assert f32.model.get_layer("block1_conv").compute_dtype == "float32"
