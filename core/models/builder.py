"""Model builders: the course's CNN, or the VGG16 transfer model (:mod:`core.models.vgg16`).

``compile`` and ``fit`` live in :mod:`core.training.fit`, not here. Layer names are
explicit and equal the names in :func:`core.models.layer_table.layer_table`, so the
table and Keras' ``model.summary()`` can be compared row by row
(:func:`keras_summary_rows`). Keras is imported inside the builders.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from core.base.config import ModelConfig
from core.models.layer_table import ArchitectureError, check_architecture
from core.models.vgg16 import build_transfer_model

if TYPE_CHECKING:  # pragma: no cover
    import keras

    from core.store.runstore import RunStore


def build_model(cfg: ModelConfig, *, seed: int = 42, store: RunStore | None = None) -> keras.Model:
    """Build (not compile) the network described by ``cfg``.

    Args:
        cfg: the model configuration; ``cfg.model`` picks the course's CNN or
            the VGG16 transfer model.
        seed: seeds the random VGG16 base of ``weights="none"`` (the CNN's
            initial weights follow Keras' global seed instead).
        store: the run store whose cache keeps VGG16's offline weights between
            processes; None: no store cache. Unused for the CNN.

    Returns:
        An uncompiled ``keras.Model``.

    Raises:
        ArchitectureError: the configuration shrinks the feature map below 1x1
            (checked before any layer is built).
        WeightsError: VGG16's weights cannot be used; the message says what to do.
    """
    problems = check_architecture(cfg)
    if problems:
        raise ArchitectureError(problems)
    if cfg.model == "vgg16":
        return build_transfer_model(cfg, seed=seed, store=store)
    return _build_cnn(cfg)


def _build_cnn(cfg: ModelConfig) -> keras.Model:
    import keras
    from keras import layers

    model = keras.Sequential(name="cnn")
    model.add(keras.Input(shape=cfg.input_shape(), name="image"))
    for i, f in enumerate(cfg.block_filters(), start=1):
        k, p = cfg.kernel_size, cfg.pool_size
        model.add(layers.Conv2D(f, (k, k), padding=cfg.padding, activation="relu", name=f"block{i}_conv"))
        if cfg.batchnorm:
            model.add(layers.BatchNormalization(name=f"block{i}_bn"))
        model.add(layers.MaxPooling2D(pool_size=(p, p), name=f"block{i}_pool"))
    model.add(layers.Flatten(name="flatten"))
    model.add(layers.Dense(cfg.dense_units, activation="relu", name="dense"))
    model.add(layers.Dropout(cfg.dropout, name="dropout"))
    # float32 whatever the global policy: under mixed bfloat16 the probabilities stay float32 and sum to 1.
    model.add(layers.Dense(cfg.num_classes, activation="softmax", name="output", dtype="float32"))
    return model


def keras_summary_rows(model: keras.Model) -> list[dict]:
    """Keras' own view of each top-level layer: name, output shape, params, trainable.

    Used by the tests to hold :func:`core.models.layer_table.layer_table` to Keras.
    """
    rows = []
    for layer in model.layers:
        trainable = int(sum(np.prod(w.shape) for w in layer.trainable_weights))
        rows.append(
            {
                "name": layer.name,
                "output_shape": tuple(int(d) for d in layer.output.shape[1:]),
                "params": int(layer.count_params()),
                "trainable": trainable,
            }
        )
    return rows
