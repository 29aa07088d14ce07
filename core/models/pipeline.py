"""The input pipeline: uint8 images in, float batches out, one batch at a time.

Prepared data keep the dataset's images once, as uint8 (a memory-mapped file
for a folder decoded before, see :mod:`core.data.imagecache`); each split is
an index into them (:class:`core.data.ImageSplit`). :func:`image_batches`
builds the ``tf.data`` pipeline training, validation and prediction read:
the split's indices (with the labels) are shuffled (seeded) and batched, each
batch's images are gathered from the uint8 array and divided by 255 (exactly
``x.astype("float32") / 255.0``), the weights' preprocessing is applied for
VGG16, the augmentation layers run on training batches, and the next batch is
prefetched while the current one trains. Only a few batches are ever float.

Shuffling indices with the seed gives the same order a seeded shuffle of the
images themselves gave, so seeded runs repeat as before.

TensorFlow is imported inside the functions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from core.base.config import ModelConfig
from core.data import ImageSplit
from core.models.weight_sources import caffe_input, preprocess_images

Preprocess = Callable[[np.ndarray], np.ndarray]  # float32 [0, 1] batch -> what the model takes


def model_input(model_cfg: ModelConfig, x01: np.ndarray) -> np.ndarray:
    """Images in [0, 1] -> what the model takes (VGG16 weights expect their own preprocessing)."""
    if model_cfg.model == "vgg16":
        return preprocess_images(x01, model_cfg.weights)
    return x01


def differentiable_input(model_cfg: ModelConfig, x01: Any) -> Any:
    """:func:`model_input` for a TensorFlow tensor in [0, 1]: the same formula, and gradients flow through it."""
    return caffe_input(x01, model_cfg.weights) if model_cfg.model == "vgg16" else x01


def is_images(x: Any) -> bool:
    """Whether ``x`` is uint8 images (a split view or an array) that the pipeline scales per batch."""
    return getattr(x, "dtype", None) == np.uint8 and getattr(x, "ndim", 0) == 4


def image_source(x: ImageSplit | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(images, index)``: the uint8 array to gather from and the positions of ``x`` in it."""
    if isinstance(x, ImageSplit):
        return x.images, x.index
    return x, np.arange(len(x), dtype=np.int64)


def scale_batch(images: np.ndarray, index: np.ndarray, preprocess: Preprocess | None = None) -> np.ndarray:
    """The images at ``index`` as float32 in [0, 1] (then ``preprocess``ed): one batch's work."""
    x = np.divide(images[np.asarray(index)], np.float32(255.0), dtype=np.float32)
    return preprocess(x) if preprocess is not None else x


def image_batches(
    x: ImageSplit | np.ndarray,
    y: np.ndarray | None = None,
    *,
    batch_size: int,
    shuffle_seed: int | None = None,
    augment_fn: Callable | None = None,
    preprocess: Preprocess | None = None,
):
    """A ``tf.data.Dataset`` of ``(x_batch, y_batch)`` (or ``x_batch`` without ``y``) from uint8 images.

    Args:
        x: uint8 images (N, H, W, C): a :class:`~core.data.ImageSplit` or an array.
        y: the labels, aligned with ``x``; None for prediction.
        batch_size: images per batch.
        shuffle_seed: shuffle (reshuffled every epoch) with this seed; None keeps the order.
        augment_fn: a ``(x, y) -> (x, y)`` map over whole batches (:func:`core.models.augment.augment_dataset_fn`),
            applied after scaling; training only.
        preprocess: applied to each scaled batch (the VGG16 weights' preprocessing).
    """
    import tensorflow as tf

    images, index = image_source(x)
    shape = tuple(int(d) for d in images.shape[1:])
    ds = tf.data.Dataset.from_tensor_slices(index if y is None else (index, y))
    if shuffle_seed is not None:
        ds = ds.shuffle(len(index), seed=shuffle_seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)

    def load(idx):
        return scale_batch(images, idx, preprocess)

    def gather(idx, *labels):
        xb = tf.numpy_function(load, [idx], tf.float32, stateful=False)
        xb.set_shape((None, *shape))
        return (xb, *labels) if labels else xb

    # Gathering has no random state, so parallel calls keep the order and the seeded results.
    ds = ds.map(gather, num_parallel_calls=tf.data.AUTOTUNE)
    if augment_fn is not None:
        # Sequential on purpose: the random layers share state (see core.models.augment).
        ds = ds.map(augment_fn)
    return ds.prefetch(tf.data.AUTOTUNE)
