"""A stored run as things to take away: a standalone script in the course's style, the history and the
test predictions as CSV, and the best model's ``.keras`` file.

The script (:func:`script_text`) needs only TensorFlow, NumPy, scikit-learn and
Pillow: it reads a folder of class folders with Pillow as CNN Lab does (RGB or
gray, Lanczos resize), splits with the same ``train_test_split`` calls and
seed, builds the same ``Sequential`` (same layer names), maps the same
augmentation layers over the training batches only, and fits with the same
callbacks (the best epoch's weights kept, as ``ModelCheckpoint(save_best_only=True)``;
early stopping when the run had it). ``python run.py FOLDER [--epochs N]``.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from core.base.config import KERAS_LOSSES, KERAS_OPTIMIZERS, AugmentConfig, ModelConfig, TrainConfig
from core.base.errors import UserError
from core.models.augment import layer_calls
from core.results.curves import HISTORY_KEYS

if TYPE_CHECKING:  # pragma: no cover
    from core.store.runstore import RunRecord, RunStore

_HEAD = '''"""{title}

Exported by CNN Lab from run {run_id} ({label}).
Needs only TensorFlow, NumPy, scikit-learn and Pillow:

    python {name} FOLDER [--epochs N]

FOLDER holds one sub-folder of images per class (a classes.txt, one name per line, fixes the order).
"""

import argparse
from pathlib import Path

import numpy as np
import tensorflow as tf
from PIL import Image
from sklearn.metrics import classification_report
from sklearn.model_selection import train_test_split
from tensorflow import keras

IMAGE_SIZE = {input_size}
CHANNELS = {channels}
SEED = {seed}
TEST_SIZE = {test_size}
VAL_SPLIT = {val_split}
TRAIN_FRACTION = {train_fraction}
BATCH_SIZE = {batch_size}
EPOCHS = {epochs}
LEARNING_RATE = {learning_rate}
EXTENSIONS = {{".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}}


def load_images(folder):
    """Every image of every class folder, as uint8 (N, IMAGE_SIZE, IMAGE_SIZE, CHANNELS), and its label."""
    folder = Path(folder)
    order = folder / "classes.txt"
    if order.exists():
        classes = [c.strip() for c in order.read_text().splitlines() if c.strip()]
    else:
        classes = sorted(d.name for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
    images, labels = [], []
    for label, name in enumerate(classes):
        for path in sorted((folder / name).rglob("*")):
            if path.suffix.lower() not in EXTENSIONS or path.name.startswith("."):
                continue
            with Image.open(path) as im:
                im = im.convert("L" if CHANNELS == 1 else "RGB")
                if im.size != (IMAGE_SIZE, IMAGE_SIZE):
                    im = im.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.LANCZOS, reducing_gap=3.0)
                a = np.asarray(im, dtype=np.uint8)
            images.append(a[:, :, None] if CHANNELS == 1 else a)
            labels.append(label)
    return np.stack(images), np.array(labels, dtype=np.int64), classes


def split(labels):
    """Stratified train / validation / test indices, the same calls and seed as the run."""
    idx = np.arange(len(labels))
    train_full, test_idx = train_test_split(idx, test_size=TEST_SIZE, random_state=SEED, stratify=labels)
    train_idx, val_idx = train_test_split(train_full, test_size=VAL_SPLIT, random_state=SEED,
                                          stratify=labels[train_full])
    if TRAIN_FRACTION < 1:  # a stratified part of the training images (the overfitting lab's setting)
        rng = np.random.default_rng(SEED)
        keep = np.zeros(len(labels), bool)
        for c in np.unique(labels):
            members = train_idx[labels[train_idx] == c]
            take = max(1, int(np.floor(TRAIN_FRACTION * len(members) + 0.5)))
            keep[rng.choice(members, size=take, replace=False)] = True
        train_idx = train_idx[keep[train_idx]]
    return train_idx, val_idx, test_idx
'''

_CNN = """

def build_model(num_classes):
    model = keras.Sequential(name="cnn")
    model.add(keras.Input(shape=(IMAGE_SIZE, IMAGE_SIZE, CHANNELS), name="image"))
{blocks}    model.add(keras.layers.Flatten(name="flatten"))
    model.add(keras.layers.Dense({dense}, activation="relu", name="dense"))
    model.add(keras.layers.Dropout({dropout}, name="dropout"))
    model.add(keras.layers.Dense(num_classes, activation="softmax", name="output"))
    return model


def prepare(x):
    return x.astype("float32") / 255.0
"""

_VGG = """

def build_model(num_classes):
    # The run used {weights_label}; this script takes Keras' ImageNet weights ({keras_weights}).
    base = keras.applications.VGG16(weights={keras_weights!r}, include_top=False,
                                    input_shape=(IMAGE_SIZE, IMAGE_SIZE, 3))
    base.trainable = False
    return keras.Sequential([
        keras.Input(shape=(IMAGE_SIZE, IMAGE_SIZE, 3), name="image"),
        base,
        keras.layers.GlobalAveragePooling2D(name="gap"),
        keras.layers.Dense({dense}, activation="relu", name="dense"),
        keras.layers.Dropout({dropout}, name="dropout"),
        keras.layers.Dense(num_classes, activation="softmax", name="output"),
    ], name="vgg16_transfer")


def prepare(x):
    return keras.applications.vgg16.preprocess_input(x.astype("float32"))  # RGB -> BGR, ImageNet mean
"""

_FIT = """

def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", help="a folder with one sub-folder of images per class")
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    args = parser.parse_args()
    keras.utils.set_random_seed(SEED)

    x, y, classes = load_images(args.folder)
    train_idx, val_idx, test_idx = split(y)
    onehot = np.eye(len(classes), dtype="float32")
    y_train, y_val, y_test = ({labels_expr})
    print(f"{{len(train_idx)}} training, {{len(val_idx)}} validation, {{len(test_idx)}} test images; "
          f"classes {{classes}}")

    model = build_model(len(classes))
    model.summary()
    model.compile(optimizer=keras.optimizers.{optimizer}(learning_rate=LEARNING_RATE), loss="{loss}",
                  metrics=["accuracy"])

{augment}
    train_ds = (tf.data.Dataset.from_tensor_slices((prepare(x[train_idx]), y_train))
                .shuffle(len(train_idx), seed=SEED).batch(BATCH_SIZE){augment_map}.prefetch(tf.data.AUTOTUNE))
    callbacks = [
        # the best epoch's weights are the ones kept and scored (the course's checkpoint)
        keras.callbacks.ModelCheckpoint("best.keras", monitor="{monitor}", save_best_only=True),
{early}    ]
{class_weight}    history = model.fit(train_ds, validation_data=(prepare(x[val_idx]), y_val), epochs=args.epochs,
                        callbacks=callbacks, verbose=2{cw_arg})
{fine_tune}{restore}
    probs = model.predict(prepare(x[test_idx]), verbose=0)
    loss, accuracy = model.evaluate(prepare(x[test_idx]), y_test, verbose=0)
    best = int(np.argmin(history.history["val_loss"])) + 1
    print(f"Best epoch {{best}}; test accuracy {{accuracy:.3f}}, loss {{loss:.3f}}")
    print(classification_report(y[test_idx], probs.argmax(1), labels=list(range(len(classes))),
                                target_names=classes, zero_division=0))


if __name__ == "__main__":
    main()
"""


def script_text(rec: RunRecord, name: str = "run.py") -> str:
    """The standalone Python script that reproduces ``rec``'s configuration on a folder of images."""
    m = ModelConfig.from_dict(rec.model_config)
    t = TrainConfig.from_dict(rec.train_config)
    head = _HEAD.format(
        title=f"Train the CNN Lab run {rec.run_id} again, on any folder of images.",
        run_id=rec.run_id,
        label=rec.label,
        name=name,
        input_size=m.input_size,
        channels=m.channels,
        seed=t.seed,
        test_size=t.test_size,
        val_split=t.val_split,
        train_fraction=t.train_fraction,
        batch_size=t.batch_size,
        epochs=t.epochs,
        learning_rate=t.learning_rate,
    )
    if m.model == "cnn":
        blocks = ""
        for i, f in enumerate(m.block_filters(), start=1):
            k, p = m.kernel_size, m.pool_size
            blocks += (
                f'    model.add(keras.layers.Conv2D({f}, ({k}, {k}), padding="{m.padding}", activation="relu", '
                f'name="block{i}_conv"))\n'
            )
            if m.batchnorm:
                blocks += f'    model.add(keras.layers.BatchNormalization(name="block{i}_bn"))\n'
            blocks += f'    model.add(keras.layers.MaxPooling2D(pool_size=({p}, {p}), name="block{i}_pool"))\n'
        body = _CNN.format(blocks=blocks, dense=m.dense_units, dropout=m.dropout)
    else:
        extra = rec.extra or {}
        keras_weights = "imagenet" if m.weights != "none" else None
        body = _VGG.format(
            weights_label=extra.get("weights_label", m.weights),
            keras_weights=keras_weights,
            dense=m.dense_units,
            dropout=m.dropout,
        )
    return head + body + _fit_text(m, t)


def _fit_text(m: ModelConfig, t: TrainConfig) -> str:
    calls = layer_calls(t.augment if isinstance(t.augment, AugmentConfig) else AugmentConfig(), seed="SEED")
    if calls:
        inner = "".join(f"        {c},\n" for c in calls)
        augment = (
            "    # random changes of the training images only; validation and test images are never changed\n"
            f'    augment = keras.Sequential([\n{inner}    ], name="augment")\n'
        )
        augment_map = ".map(lambda a, b: (augment(a, training=True), b))"
    else:
        augment, augment_map = "    # no augmentation: the training images are used as they are\n", ""
    early = ""
    if t.early_stopping:
        early = (
            f'        keras.callbacks.EarlyStopping(monitor="{t.monitor}", patience={t.early_stopping}, '
            f"restore_best_weights={t.restore_best}),\n"
        )
    keep_best = not t.early_stopping or t.restore_best
    restore = '    model = keras.models.load_model("best.keras")  # the best epoch\'s model\n' if keep_best else ""
    class_weight, cw_arg = "", ""
    if t.class_weight == "balanced":
        class_weight = (
            "    # balanced class weights: a class with fewer training images counts more in the loss\n"
            "    counts = np.bincount(y[train_idx], minlength=len(classes))\n"
            "    class_weight = {c: len(train_idx) / (len(classes) * n) for c, n in enumerate(counts.tolist()) if n}\n"
        )
        cw_arg = ", class_weight=class_weight"
    fine_tune = ""
    if m.model == "vgg16" and t.fine_tune_epochs:
        fine_tune = (
            "    # fine-tuning: unfreeze the last VGG16 block and train a little more, slowly\n"
            "    base = model.layers[0]\n    base.trainable = True\n"
            '    for layer in base.layers:\n        layer.trainable = layer.name.startswith("block5")\n'
            f"    model.compile(optimizer=keras.optimizers.{KERAS_OPTIMIZERS[t.optimizer]}"
            f"(learning_rate={t.fine_tune_lr}), "
            f'loss="{KERAS_LOSSES[t.loss]}", metrics=["accuracy"])\n'
            f"    model.fit(train_ds, validation_data=(prepare(x[val_idx]), y_val), epochs={t.fine_tune_epochs}, "
            f"callbacks=callbacks, verbose=2{cw_arg})\n"
        )
    labels = (
        "onehot[y[train_idx]], onehot[y[val_idx]], onehot[y[test_idx]]"
        if t.loss == "categorical"
        else "y[train_idx], y[val_idx], y[test_idx]"
    )
    return _FIT.format(
        labels_expr=labels,
        optimizer=KERAS_OPTIMIZERS[t.optimizer],
        loss=KERAS_LOSSES[t.loss],
        augment=augment,
        augment_map=augment_map,
        monitor=t.monitor,
        early=early,
        restore=restore,
        fine_tune=fine_tune,
        class_weight=class_weight,
        cw_arg=cw_arg,
    )


def history_csv(rec: RunRecord) -> str:
    """The history as CSV: epoch, loss, accuracy, val_loss, val_accuracy, seconds (one row per epoch)."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["epoch", *HISTORY_KEYS, "seconds"])
    n = len(rec.history.get("loss", []))
    for e in range(n):
        row = [rec.history.get(k, [None] * n)[e] if e < len(rec.history.get(k, [])) else "" for k in HISTORY_KEYS]
        secs = rec.epoch_seconds[e] if e < len(rec.epoch_seconds) else ""
        w.writerow([e + 1, *row, secs])
    return out.getvalue()


def predictions_csv(rec: RunRecord, store: RunStore) -> str:
    """The test predictions as CSV: index, true class, predicted class, confidence, then one probability per class."""
    classes = list(rec.test.get("class_names") or rec.data.get("classes", []))
    probs = store.load_arrays(rec.run_id).get("probs")
    y, pred = rec.test.get("y_true", []), rec.test.get("predicted", [])
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["index", "true", "predicted", "confidence", *(f"p_{c}" for c in classes)])
    for i, (a, b) in enumerate(zip(y, pred, strict=True)):
        p = [] if probs is None else [f"{float(v):.6f}" for v in probs[i]]
        w.writerow([i, classes[a], classes[b], f"{float(rec.test['confidence'][i]):.6f}", *p])
    return out.getvalue()


def copy_model(rec: RunRecord, store: RunStore, dest: str | Path) -> Path:
    """The run's best model (the ``.keras`` file the store wrote) copied to ``dest``."""
    src = store.model_path(rec.run_id)
    if not src.exists():
        raise UserError(f"The run {rec.run_id} has no stored model file to export.")
    dest = Path(dest)
    if dest.suffix != ".keras":
        raise UserError(f"The model file must end in .keras (Keras 3's format). Got {str(dest)!r}.")
    shutil.copyfile(src, dest)
    return dest


def config_json(rec: RunRecord) -> str:
    """The run's two configs as JSON (what the dashboard's configuration upload reads)."""
    return json.dumps({"model": rec.model_config, "train": rec.train_config}, indent=2)
