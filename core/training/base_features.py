"""The frozen VGG16 base's output for every image of a dataset, computed once and cached.

With the base frozen and no augmentation, every epoch pushes the same images
through the same frozen weights and gets the same numbers out. So the base
runs once per (dataset, input size, weight source, preprocessing): its pooled
512-number features (and, for fine-tuning, its block4_pool maps) go to the run
store's cache, and :mod:`core.training.transfer` trains on them.

The run store is passed in; ``store=None`` computes without caching.
TensorFlow and Keras are imported inside :func:`extract_features`.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from core.models.vgg16 import BaseInfo
from core.models.weight_sources import preprocess_images

if TYPE_CHECKING:  # pragma: no cover
    import keras

    from core.data import PreparedData
    from core.store.runstore import RunStore

FEATURES_KIND = "vgg16-features"  # run store cache: pooled base features, (N, 512)
BLOCK4_KIND = "vgg16-block4"  # block4_pool maps, (N, s/16, s/16, 512), for fast fine-tuning
FEATURES_VERSION = 1  # bump when the extraction changes what it computes
# Measured with bench/bench_transfer.py on the 2-core AVX2 CPU (CPU seconds for 256 images): batch sizes
# 16-256 within ~15% of each other (16 and 32 lowest); XLA bought nothing; bfloat16 (no AVX-512 BF16 there)
# bought nothing and changed features by ~1%. So: no XLA, batch 32. On a CPU with AVX512_BF16 a base built
# in bfloat16 (core.base.precision) extracts 3x faster with the head's accuracy unchanged (bench/RESULTS.md).
EXTRACT_BATCH = 32
EXTRACT_JIT = False
BLOCK4_CACHE_LIMIT = 512 << 20  # bytes; larger block4 maps fine-tune on images instead

BatchProgress = Callable[[int, int], None]  # called with (batch, batches) after each batch


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


def features_key(
    fingerprint: str, input_size: int, identity: str, preprocessing: str, precision: str = "float32"
) -> str:
    """The feature cache's key: changes with the dataset, the input size, the weights, the preprocessing and
    the precision the base computed in (float32 left out, so features cached before keep their keys)."""
    d = {"v": FEATURES_VERSION, "data": fingerprint, "size": input_size, "weights": identity, "pre": preprocessing}
    if precision != "float32":
        d["precision"] = precision
    blob = json.dumps(d, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def _as01(images: np.ndarray) -> np.ndarray:
    if images.dtype == np.uint8:  # exactly what core.data.prepare_data does
        return np.divide(images, np.float32(255.0), dtype=np.float32)
    return np.asarray(images, dtype=np.float32)


def extract_features(
    base: keras.Model,
    images: np.ndarray,
    weights: str,
    *,
    batch_size: int = EXTRACT_BATCH,
    block4: bool = False,
    jit_compile: bool = EXTRACT_JIT,
    progress: BatchProgress | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Run images through the frozen base once.

    Args:
        base: the VGG16 base from :func:`core.models.vgg16.build_base`.
        images: uint8 (N, H, W, 3), or float in [0, 1].
        weights: the weight source (picks the preprocessing).
        batch_size: images per forward pass.
        block4: also return the block4_pool maps (for fine-tuning block5 on them).
        jit_compile: compile the forward pass with XLA.
        progress: called with ``(batch, batches)`` after each batch.

    Returns:
        ``(pooled (N, 512), block4 maps or None)``, float32.
    """
    import keras
    import tensorflow as tf

    outs = [base.get_layer("block5_pool").output]
    if block4:
        outs.append(base.get_layer("block4_pool").output)
    extractor = keras.Model(base.input, outs)

    @tf.function(jit_compile=jit_compile, reduce_retracing=True, autograph=False)  # plain Python ifs only
    def forward(x):
        y = extractor(x, training=False)
        last, maps = (y[0], y[1]) if block4 else (y, None)  # one output comes back as a tensor, not a list
        # float32 first, as the head's float32 GlobalAveragePooling2D takes a bfloat16 base's output
        pooled = tf.reduce_mean(tf.cast(last, tf.float32), axis=(1, 2))
        return (pooled, tf.cast(maps, tf.float32)) if block4 else (pooled,)

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
            progress(i + 1, batches)
    return pooled_out, b4_out


def _block4_bytes(n: int, input_size: int) -> int:
    side = input_size // 16
    return n * side * side * 512 * 4


def _weights_arg(info: BaseInfo) -> str:
    """The weights string whose preprocessing :func:`preprocess_images` applies for this base."""
    return "offline" if info.source == "offline" else "imagenet"


def cached_features(
    base: keras.Model,
    info: BaseInfo,
    images: np.ndarray,
    fingerprint: str,
    *,
    store: RunStore | None,
    block4: bool = False,
    batch_size: int = EXTRACT_BATCH,
    progress: BatchProgress | None = None,
) -> BaseFeatures:
    """The base's features for all ``images``: from the run store's cache, else computed once and cached.

    The key (:func:`features_key`) covers the dataset fingerprint, the input
    size, the weights' identity (a file's SHA-256, the package version, the
    random seed) and the preprocessing; any change there computes new features.

    Args:
        base: the frozen base from :func:`core.models.vgg16.build_base`; ``info`` is its BaseInfo.
        images: all images of the dataset, uint8 (N, H, W, 3) or float in [0, 1].
        fingerprint: the dataset's fingerprint.
        store: the run store whose cache keeps the features; None: compute, cache nothing.
        block4: also provide the block4_pool maps (for fine-tuning), if they
            stay under ``BLOCK4_CACHE_LIMIT`` bytes.
        batch_size: images per forward pass of the extraction.
        progress: called with ``(batch, batches)`` after each extraction batch.

    Returns:
        A :class:`BaseFeatures`; ``cache_hit`` says whether nothing had to be computed.
    """
    n, size = len(images), int(base.input_shape[1])
    precision = "bfloat16" if base.get_layer("block1_conv1").compute_dtype == "bfloat16" else "float32"
    key = features_key(fingerprint, size, info.identity, info.preprocessing, precision)
    want_b4 = block4 and _block4_bytes(n, size) <= BLOCK4_CACHE_LIMIT
    pooled = maps = None
    if store is not None:
        hit = store.cache_get(FEATURES_KIND, key)
        pooled = hit.get("pooled") if hit else None
        if pooled is not None and pooled.shape != (n, 512):
            pooled = None
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
            base, images, _weights_arg(info), batch_size=batch_size, block4=want_b4, progress=progress
        )
        seconds = time.perf_counter() - t0
        if pooled is None:
            pooled = new_pooled
            if store is not None:
                store.cache_put(FEATURES_KIND, key, {"pooled": pooled})
        if want_b4:
            maps = new_maps
            if store is not None:
                store.cache_put(BLOCK4_KIND, key, {"block4": maps})
    return BaseFeatures(pooled, maps, key, cache_hit, seconds, batch_size, extra)


def feature_source(data: PreparedData) -> tuple[np.ndarray, str, np.ndarray, np.ndarray]:
    """All images the features are computed for, their fingerprint, and where train and val sit among them.

    Args:
        data: prepared data; with its dataset, the features cover the whole
            dataset (so every split of it reuses them); without one (arrays a
            notebook prepared by hand), its train and val arrays are the dataset.

    Returns:
        ``(images, fingerprint, train_index, val_index)``.
    """
    ds = getattr(data, "dataset", None)
    if ds is not None:
        return ds.images, ds.fingerprint, np.asarray(data.train_index), np.asarray(data.val_index)
    images = np.concatenate([data.x_train, data.x_val])
    h = hashlib.sha256(b"arrays")
    for a in (data.x_train, data.x_val):
        h.update(str(a.shape).encode())
        h.update(np.ascontiguousarray(a).tobytes())
    n1 = len(data.x_train)
    return images, h.hexdigest(), np.arange(n1), np.arange(n1, len(images))
