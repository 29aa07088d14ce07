"""The VGG16 transfer model: a frozen VGG16 conv base with the course's new head.

The course's network is ``VGG16(include_top=False)``, frozen, then
GlobalAveragePooling2D -> Dense(128, relu) -> Dropout(0.5) -> Dense(5, softmax).
:func:`build_base` builds the base with the weights of a source
(:mod:`core.models.weight_sources` says which sources there are), :func:`assemble_model` puts
the head on it, :func:`build_transfer_model` does both, and
:func:`unfreeze_last_block` opens block5 for fine-tuning. Training is
:mod:`core.training.transfer`.

TensorFlow and Keras are imported inside the functions that build models.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from core.base.config import WEIGHT_SOURCE_LABELS, ModelConfig
from core.models.weight_files import Arrays, file_weights, imagenet_weights, offline_weights, random_weights
from core.models.weight_sources import preprocessing_for, weight_kind

if TYPE_CHECKING:  # pragma: no cover
    import keras

    from core.store.runstore import RunStore

FINE_TUNE_LAYERS = ("block5_conv1", "block5_conv2", "block5_conv3")


@dataclass(frozen=True)
class BaseInfo:
    """What a built VGG16 base holds: which weights, from where, and how inputs are prepared."""

    source: str  # "imagenet", "offline", "none" or "file"
    label: str
    detail: str  # file path, package version or seed
    identity: str  # changes whenever the weights can change; part of the feature cache key
    preprocessing: str
    seconds: float = 0.0


def load_base_weights(weights: str, *, seed: int = 42, store: RunStore | None = None) -> tuple[Arrays, BaseInfo]:
    """The 13 conv layers' arrays for a weight source, and what they are.

    Args:
        weights: "imagenet", "offline", "none" or the path of a VGG16 weights file.
        seed: seeds the random weights of ``weights="none"``.
        store: the run store whose cache keeps the offline weights between
            processes; None: no store cache.

    Returns:
        ``(arrays, BaseInfo)``; ``arrays`` maps block1_conv1 ... block5_conv3 to [kernel, bias].

    Raises:
        WeightsError: the source cannot be used here; the message says what to do.
    """
    kind = weight_kind(weights)
    if kind == "imagenet":
        arrays, identity, detail = imagenet_weights()
    elif kind == "offline":
        arrays, identity, detail = offline_weights(store)
    elif kind == "none":
        arrays, identity, detail = random_weights(seed), f"none:glorot-uniform:seed={seed}", f"seed {seed}"
    else:
        arrays, identity, detail = file_weights(weights)
    label = WEIGHT_SOURCE_LABELS.get(kind) or f"VGG16 conv base, weights from {Path(weights).expanduser().name}"
    return arrays, BaseInfo(kind, label, detail, identity, preprocessing_for(weights))


def build_base(
    weights: str, input_size: int, *, seed: int = 42, store: RunStore | None = None
) -> tuple[keras.Model, BaseInfo]:
    """VGG16's conv base (include_top=False), named "vgg16", weights loaded, frozen.

    Args:
        weights, seed, store: as :func:`load_base_weights`.
        input_size: height = width of the input images (32 or more).

    Returns:
        ``(base, BaseInfo)``; ``BaseInfo.seconds`` is the time taken.

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


def assemble_model(base: keras.Model, cfg: ModelConfig) -> keras.Model:
    """The course's Sequential around a built base: image, base, gap, dense, dropout, output.

    Args:
        base: from :func:`build_base`; it becomes the nested model "vgg16".
        cfg: the head's ``dense_units``, ``dropout``, ``num_classes`` and the input shape.

    Returns:
        An uncompiled ``keras.Sequential`` named "vgg16_transfer".
    """
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
        store: run store whose cache keeps the offline weights; None: no store cache.

    Returns:
        An uncompiled ``keras.Sequential``; the base is the nested model named "vgg16".

    Raises:
        ValueError: ``cfg.model`` is not "vgg16".
        WeightsError: the weights cannot be used; the message says what to do instead.
    """
    if cfg.model != "vgg16":
        raise ValueError(f"build_transfer_model builds the VGG16 transfer model. Received: model={cfg.model!r}")
    base, _ = build_base(cfg.weights, cfg.input_size, seed=seed, store=store)
    return assemble_model(base, cfg)


def unfreeze_last_block(model: keras.Model) -> list[str]:
    """Make block5_conv1..3 of the "vgg16" base trainable (the rest of the base stays frozen).

    Returns:
        The names of the layers made trainable.
    """
    base = model.get_layer("vgg16")
    base.trainable = True
    for layer in base.layers:
        layer.trainable = layer.name in FINE_TUNE_LAYERS
    return list(FINE_TUNE_LAYERS)
