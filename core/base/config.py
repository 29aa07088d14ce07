"""Run configuration: what to build, how to train it, how to augment.

Plain frozen dataclasses with plain-typed fields. They hash by value, so a
config can be a cache key (Streamlit's, and the run store's through
:func:`run_key`). Importing this module is cheap: no TensorFlow.

Range checks happen at construction, with scikit-learn style messages::

    The 'dropout' parameter of ModelConfig must be in [0, 1). Got 1.5 instead.

Whether an architecture *fits its input* (the feature map must stay at least
1x1 through every block) is a separate question answered by
:func:`core.models.layer_table.check_architecture`, because it depends on several fields
at once and the UI wants to show the reason next to the slider that caused it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from core.base.errors import UserError

# Bump when a change to the engine makes stored runs incomparable with new ones.
ENGINE_VERSION = 1

# Every choice list and its label lives here, once: the pages, the CLI and the engine read them.
MODEL_LABELS: dict[str, str] = {
    "cnn": "CNN from scratch (Conv2D -> MaxPooling2D blocks)",
    "vgg16": "VGG16 transfer learning (frozen base + new head)",
}
MODELS = tuple(MODEL_LABELS)
PADDINGS = ("valid", "same")
OPTIMIZER_LABELS: dict[str, str] = {
    "adam": "Adam (the course's choice)",
    "sgd": "SGD (plain stochastic gradient descent)",
    "rmsprop": "RMSprop",
}
OPTIMIZERS = tuple(OPTIMIZER_LABELS)
LOSS_LABELS: dict[str, str] = {
    "categorical": "categorical_crossentropy (one-hot labels)",
    "sparse": "sparse_categorical_crossentropy (integer labels)",
}
LOSSES = tuple(LOSS_LABELS)
# Each choice's name in Keras (keras.optimizers.<class>, model.compile(loss=...)): training and the exported
# script spell them from here.
KERAS_OPTIMIZERS: dict[str, str] = {"adam": "Adam", "sgd": "SGD", "rmsprop": "RMSprop"}
KERAS_LOSSES: dict[str, str] = {"categorical": "categorical_crossentropy", "sparse": "sparse_categorical_crossentropy"}
MONITOR_LABELS: dict[str, str] = {
    "val_loss": "validation loss (lower is better)",
    "val_accuracy": "validation accuracy (higher is better)",
}
MONITORS = tuple(MONITOR_LABELS)
# The learning rates offered by the Train page, the overfitting lab and remedies (adam's default 0.001).
LEARNING_RATES = (1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1)
FILL_MODES = ("nearest", "reflect", "wrap", "constant")
# The arithmetic training computes in (core.base.precision decides what "auto" means on this CPU).
PRECISION_LABELS: dict[str, str] = {
    "auto": "auto: mixed bfloat16 where this CPU multiplies bfloat16 natively, else float32",
    "float32": "float32 everywhere (the course's precision)",
    "bfloat16": "mixed bfloat16 (float32 weights, bfloat16 arithmetic, float32 softmax)",
}
PRECISIONS = tuple(PRECISION_LABELS)
# How much each class's images count in the training loss (Keras' fit(class_weight=...)); "balanced" is
# scikit-learn's rule: images / (classes x the class's images), so every class weighs the same in total.
CLASS_WEIGHT_LABELS: dict[str, str] = {
    "none": "none: every image counts the same",
    "balanced": "balanced: a class with fewer images counts more, so every class weighs the same",
}
CLASS_WEIGHTS = tuple(CLASS_WEIGHT_LABELS)
# Where a VGG16 base gets its weights; any other value of ModelConfig.weights is a path to a file.
WEIGHT_SOURCE_LABELS: dict[str, str] = {
    "imagenet": "VGG16 conv base, ImageNet weights (Keras; internet once, or a cached file)",
    "offline": "VGG16 conv base, edge-detection weights from HED/BSDS500",
    "none": "architecture only, not transfer learning",
}
WEIGHT_SOURCES = tuple(WEIGHT_SOURCE_LABELS)
WEIGHT_FILE_LABEL = "a VGG16 weights file"
# The weights a command line uses when none are named: they ship with the requirements, so they work offline
# (ModelConfig's own default stays "imagenet", the course's choice, for the dashboard and notebooks).
OFFLINE_WEIGHTS = "offline"
# Short names for settings, one table: each is a second spelling of the field's flag on the command line
# (--lr = --learning-rate) and of its name in a sweep grid (lr=0.01 = learning_rate=0.01).
SETTING_ALIASES: dict[str, str] = {
    "lr": "learning_rate",
    "dense": "dense_units",
    "kernel": "kernel_size",
    "pool": "pool_size",
    "fine_tune": "fine_tune_epochs",
    "fraction": "train_fraction",
}


@dataclass(frozen=True)
class Range:
    """The values a numeric setting may take, and how far a slider usually goes.

    Args:
        lo: the smallest valid value.
        hi: the largest valid value (excluded when ``hi_open``).
        hi_open: ``hi`` itself is not valid (a dropout rate of 1 would switch everything off).
        usual: the largest value a slider offers, when less than ``hi`` (a stored config beyond it
            still shows: the slider goes as far as the value it holds).
    """

    lo: float
    hi: float
    hi_open: bool = False
    usual: float | None = None

    @property
    def top(self) -> float:
        """A slider's usual maximum."""
        return self.hi if self.usual is None else self.usual

    @property
    def interval(self) -> str:
        """``[1, 5]``, or ``[0.0, 1.0)`` when ``hi`` is excluded."""
        return f"[{self.lo}, {self.hi}{')' if self.hi_open else ']'}"

    @property
    def span(self) -> str:
        """``1-5``, for a help text."""
        return f"{self.lo}-{self.hi}"

    def holds(self, value: float) -> bool:
        return self.lo <= value < self.hi if self.hi_open else self.lo <= value <= self.hi


# Every numeric setting's valid values, one table: the configs check them, the pages' sliders and the
# command line's help read them (keyed by the field's name in ModelConfig, AugmentConfig or TrainConfig).
RANGES: dict[str, Range] = {
    "input_size": Range(8, 512),
    "num_classes": Range(2, 1000),
    "blocks": Range(1, 5),
    "filters": Range(1, 1024),
    "filter_list": Range(1, 2048),
    "kernel_size": Range(1, 15, usual=9),
    "pool_size": Range(1, 8, usual=4),
    "dense_units": Range(1, 8192),
    "dropout": Range(0.0, 1.0, hi_open=True, usual=0.9),
    "rotation": Range(0.0, 180.0),
    "width_shift": Range(0.0, 1.0, hi_open=True, usual=0.5),
    "height_shift": Range(0.0, 1.0, hi_open=True, usual=0.5),
    "zoom": Range(0.0, 1.0, hi_open=True, usual=0.5),
    "learning_rate": Range(1e-7, 1.0),
    "epochs": Range(1, 500, usual=100),
    "batch_size": Range(1, 4096),
    "val_split": Range(0.05, 0.5),
    "test_size": Range(0.05, 0.5),
    "early_stopping": Range(0, 500, usual=20),
    "seed": Range(0, 2**31 - 1),
    "train_fraction": Range(0.05, 1.0),
    "fine_tune_epochs": Range(0, 500, usual=20),
    "fine_tune_lr": Range(1e-8, 1.0),
}


def weights_label(weights: str) -> str:
    """The label of a weight source; a path is shown as the file it names."""
    return WEIGHT_SOURCE_LABELS.get(weights) or f"{WEIGHT_FILE_LABEL}: {weights}"


# Settings the data decides, not the user (core.training.experiment.resolve sets them from the dataset read), with why:
# a sweep or a form that offered them would promise a choice that does not exist.
DATA_DECIDED: dict[str, str] = {
    "num_classes": "the number of classes is not a setting: it is the number of class folders in the dataset",
}

# The course's network: 64x64x3 -> 3 x (Conv 3x3 -> MaxPool 2x2) with 32/64/128
# filters -> Flatten -> Dense 128 -> Dropout 0.5 -> Dense 5 softmax.
COURSE_PARAMS = 683_845


class ConfigError(UserError):
    """A configuration value is out of range or of the wrong kind."""


def _fail(owner: str, name: str, expected: str, got: Any) -> None:
    raise ConfigError(f"The '{name}' parameter of {owner} must be {expected}. Got {got!r} instead.")


def _check_int(owner: str, name: str, value: Any) -> None:
    r = RANGES[name]
    if isinstance(value, bool) or not isinstance(value, int) or not r.holds(value):
        _fail(owner, name, f"an integer in {r.interval}", value)


def _check_float(owner: str, name: str, value: Any) -> None:
    r = RANGES[name]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not r.holds(value):
        _fail(owner, name, f"a number in {r.interval}", value)


def _check_choice(owner: str, name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        _fail(owner, name, "one of " + ", ".join(repr(c) for c in choices), value)


class _Serializable:
    """to_dict / from_dict / replace shared by the config classes."""

    def to_dict(self) -> dict[str, Any]:
        out = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            v = getattr(self, f.name)
            if isinstance(v, _Serializable):
                v = v.to_dict()
            elif isinstance(v, tuple):
                v = list(v)
            out[f.name] = v
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]):
        names = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = set(data) - set(names)
        if unknown:
            raise ConfigError(
                f"{cls.__name__} has no parameter(s) {sorted(unknown)}. Known parameters: {sorted(names)}."
            )
        kwargs = {}
        for k, v in data.items():
            if k == "augment" and isinstance(v, dict):
                v = AugmentConfig.from_dict(v)
            elif isinstance(v, list):
                v = tuple(v)
            kwargs[k] = v
        return cls(**kwargs)

    def replace(self, **changes: Any):
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]


@dataclass(frozen=True)
class ModelConfig(_Serializable):
    """The network to build.

    Args:
        model: "cnn" (the course's Conv->Pool stack) or "vgg16" (frozen VGG16
            base with a new head, transfer learning).
        input_size: height = width of the input images, in pixels.
        channels: 3 for RGB, 1 for grayscale.
        num_classes: number of output classes (softmax units).
        blocks: number of Conv2D -> MaxPooling2D blocks (cnn only).
        filters: filters of the first block; each next block doubles it, as in
            the course's 32-64-128 (cnn only).
        filter_list: explicit filters per block; overrides ``filters`` and
            must have ``blocks`` entries when given (cnn only).
        kernel_size: square convolution kernel size (cnn only).
        pool_size: square max-pooling window (cnn only).
        padding: "valid" (each conv shrinks by kernel-1) or "same" (cnn only).
        batchnorm: BatchNormalization after each conv (cnn only).
        dense_units: units of the hidden Dense layer of the head.
        dropout: dropout rate after the hidden Dense layer, in [0, 1).
        weights: VGG16 base weights: "imagenet", "offline" (weights that ship
            inside an installed package), "none", or a path to a weights file.
    """

    model: str = "cnn"
    input_size: int = 64
    channels: int = 3
    num_classes: int = 5
    blocks: int = 3
    filters: int = 32
    filter_list: tuple[int, ...] = ()
    kernel_size: int = 3
    pool_size: int = 2
    padding: str = "valid"
    batchnorm: bool = False
    dense_units: int = 128
    dropout: float = 0.5
    weights: str = "imagenet"

    def __post_init__(self) -> None:
        o = "ModelConfig"
        _check_choice(o, "model", self.model, MODELS)
        _check_int(o, "input_size", self.input_size)
        if self.channels not in (1, 3):
            _fail(o, "channels", "1 (grayscale) or 3 (RGB)", self.channels)
        _check_int(o, "num_classes", self.num_classes)
        _check_int(o, "blocks", self.blocks)
        _check_int(o, "filters", self.filters)
        if not isinstance(self.filter_list, tuple):
            object.__setattr__(self, "filter_list", tuple(self.filter_list))
        if self.filter_list:
            if len(self.filter_list) != self.blocks:
                _fail(
                    o,
                    "filter_list",
                    f"empty or a list of {self.blocks} filter counts (one per block)",
                    list(self.filter_list),
                )
            for f in self.filter_list:
                _check_int(o, "filter_list", f)
        _check_int(o, "kernel_size", self.kernel_size)
        _check_int(o, "pool_size", self.pool_size)
        _check_choice(o, "padding", self.padding, PADDINGS)
        if not isinstance(self.batchnorm, bool):
            _fail(o, "batchnorm", "True or False", self.batchnorm)
        _check_int(o, "dense_units", self.dense_units)
        _check_float(o, "dropout", self.dropout)
        if not isinstance(self.weights, str) or not self.weights:
            _fail(o, "weights", "'imagenet', 'offline', 'none' or a path to a weights file", self.weights)
        if self.model == "vgg16" and self.channels != 3:
            _fail(o, "channels", "3 for the VGG16 model (it was trained on RGB images)", self.channels)

    def block_filters(self) -> tuple[int, ...]:
        """Filters of each conv block: the explicit list, or doubling from ``filters``."""
        if self.filter_list:
            return self.filter_list
        return tuple(self.filters * 2**i for i in range(self.blocks))

    def block_sides(self) -> tuple[tuple[int, int], ...]:
        """Each conv block's feature-map side (cnn): ``(after its Conv2D, after its pooling)``.

        The network's one shape walk, read by the layer table (:mod:`core.models.layer_table`) and the
        precision rule (:func:`core.base.precision.network_macs`). A network that does not fit its input
        gets sides below 1 here; :func:`core.models.layer_table.check_architecture` says so.
        """
        sides, h = [], self.input_size
        for _ in self.block_filters():
            if self.padding == "valid":
                h = h - self.kernel_size + 1
            conv = h
            h //= self.pool_size
            sides.append((conv, h))
        return tuple(sides)

    def input_shape(self) -> tuple[int, int, int]:
        return (self.input_size, self.input_size, self.channels)

    def key_dict(self) -> dict[str, Any]:
        """The fields that change the network, for the run key.

        Fields a model kind ignores are dropped, so moving the kernel slider
        does not make a VGG16 run look new, nor the weights select a CNN run.
        """
        d = self.to_dict()
        if self.model == "cnn":
            d.pop("weights")
            d["filter_list"] = list(self.block_filters())
            d.pop("filters")
        else:
            for k in ("blocks", "filters", "filter_list", "kernel_size", "pool_size", "padding", "batchnorm"):
                d.pop(k)
        return d


@dataclass(frozen=True)
class AugmentConfig(_Serializable):
    """Random transformations of training images, the course's ImageDataGenerator arguments.

    All zero / False is no augmentation. Validation and test images are never
    augmented.

    Args:
        rotation: rotation range in degrees (ImageDataGenerator ``rotation_range``).
        width_shift: horizontal shift as a fraction of the width.
        height_shift: vertical shift as a fraction of the height.
        hflip: random horizontal flips.
        vflip: random vertical flips (valid for microscope images and cores).
        zoom: zoom range as a fraction (0.1 means 90% to 110%).
        fill_mode: how pixels moved in from outside the image are filled.
    """

    rotation: float = 0.0
    width_shift: float = 0.0
    height_shift: float = 0.0
    hflip: bool = False
    vflip: bool = False
    zoom: float = 0.0
    fill_mode: str = "nearest"

    def __post_init__(self) -> None:
        o = "AugmentConfig"
        _check_float(o, "rotation", self.rotation)
        _check_float(o, "width_shift", self.width_shift)
        _check_float(o, "height_shift", self.height_shift)
        _check_float(o, "zoom", self.zoom)
        for name in ("hflip", "vflip"):
            if not isinstance(getattr(self, name), bool):
                _fail(o, name, "True or False", getattr(self, name))
        _check_choice(o, "fill_mode", self.fill_mode, FILL_MODES)

    @property
    def enabled(self) -> bool:
        return bool(self.rotation or self.width_shift or self.height_shift or self.hflip or self.vflip or self.zoom)

    @classmethod
    def course(cls) -> AugmentConfig:
        """The course's ImageDataGenerator settings."""
        return cls(rotation=20, width_shift=0.1, height_shift=0.1, hflip=True, vflip=True, zoom=0.1)

    def key_dict(self) -> dict[str, Any]:
        # With nothing enabled, fill_mode changes nothing: keep it out of the key.
        return self.to_dict() if self.enabled else {}


@dataclass(frozen=True)
class TrainConfig(_Serializable):
    """How to train.

    Args:
        optimizer: "adam", "sgd" or "rmsprop".
        learning_rate: the optimizer's learning rate (adam's default is 0.001).
        loss: "categorical" (one-hot labels, categorical_crossentropy) or
            "sparse" (integer labels, sparse_categorical_crossentropy).
        epochs: maximum number of passes over the training data.
        batch_size: images per gradient step.
        val_split: fraction of the training part held out for validation.
        test_size: fraction of the whole dataset held out for the test.
        early_stopping: patience in epochs; 0 turns early stopping off.
        monitor: the metric early stopping and the checkpoint watch.
        restore_best: with early stopping, keep the best epoch's weights (True) or
            the last epoch's (False). Without early stopping the best epoch's
            weights are always kept: that is the course's checkpoint.
        seed: makes the split, the initial weights and the shuffling reproducible.
        train_fraction: use only this stratified fraction of the training part
            (the overfitting lab's small-data setting); 1.0 uses all of it.
        augment: random transformations of the training images.
        fine_tune_epochs: VGG16 only: after the head has trained, unfreeze the
            last VGG block and train this many more epochs; 0 turns it off.
        fine_tune_lr: learning rate of the fine-tuning phase.
        precision: "auto" (the default: mixed bfloat16 where the CPU has native
            bfloat16 arithmetic, else float32), "float32" or "bfloat16". See
            :mod:`core.base.precision`; the run key holds the precision actually used.
        class_weight: "none" (every image counts the same in the loss) or
            "balanced" (each class's images weighted by images / (classes x
            the class's training images), for imbalanced data). "none" is left
            out of the run key, so runs stored before the setting keep their keys.
    """

    optimizer: str = "adam"
    learning_rate: float = 0.001
    loss: str = "categorical"
    epochs: int = 20
    batch_size: int = 32
    val_split: float = 0.2
    test_size: float = 0.2
    early_stopping: int = 0
    monitor: str = "val_loss"
    restore_best: bool = True
    seed: int = 42
    train_fraction: float = 1.0
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    fine_tune_epochs: int = 0
    fine_tune_lr: float = 1e-5
    precision: str = "auto"
    class_weight: str = "none"

    def __post_init__(self) -> None:
        o = "TrainConfig"
        _check_choice(o, "optimizer", self.optimizer, OPTIMIZERS)
        _check_float(o, "learning_rate", self.learning_rate)
        _check_choice(o, "loss", self.loss, LOSSES)
        _check_int(o, "epochs", self.epochs)
        _check_int(o, "batch_size", self.batch_size)
        _check_float(o, "val_split", self.val_split)
        _check_float(o, "test_size", self.test_size)
        _check_int(o, "early_stopping", self.early_stopping)
        _check_choice(o, "monitor", self.monitor, MONITORS)
        if not isinstance(self.restore_best, bool):
            _fail(o, "restore_best", "True or False", self.restore_best)
        _check_int(o, "seed", self.seed)
        _check_float(o, "train_fraction", self.train_fraction)
        if isinstance(self.augment, dict):
            object.__setattr__(self, "augment", AugmentConfig.from_dict(self.augment))
        if not isinstance(self.augment, AugmentConfig):
            _fail(o, "augment", "an AugmentConfig", self.augment)
        _check_int(o, "fine_tune_epochs", self.fine_tune_epochs)
        _check_float(o, "fine_tune_lr", self.fine_tune_lr)
        _check_choice(o, "precision", self.precision, PRECISIONS)
        _check_choice(o, "class_weight", self.class_weight, CLASS_WEIGHTS)

    def key_dict(self) -> dict[str, Any]:
        d = self.to_dict()
        d["augment"] = self.augment.key_dict()
        if not self.early_stopping:
            d.pop("monitor")
            d.pop("restore_best")
        if not self.fine_tune_epochs:
            d.pop("fine_tune_lr")
        d.pop("precision")  # "auto" is not a precision: run_key adds the one actually used
        if self.class_weight == "none":  # the default is left out: keys from before the setting stay the same
            d.pop("class_weight")
        return d


def run_key(model: ModelConfig, train: TrainConfig, data_fingerprint: str, precision: str = "float32") -> str:
    """The run's identity: same configs, seed, data and precision give the same key.

    16 hex digits of a SHA-256 over a canonical JSON of everything that can
    change the result.

    Args:
        precision: the precision the run actually computes in, "float32" or
            "bfloat16" (:func:`core.base.precision.run_precision` resolves "auto").
            float32 is left out of the key, so every run stored before the
            precision setting existed keeps its key (they all ran in float32).
    """
    payload = {
        "engine": ENGINE_VERSION,
        "model": model.key_dict(),
        "train": _train_key(model, train),
        "data": data_fingerprint,
    }
    if precision != "float32":
        payload["precision"] = precision
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _train_key(model: ModelConfig, train: TrainConfig) -> dict[str, Any]:
    d = train.key_dict()
    if model.model != "vgg16":  # fine-tuning only exists for the transfer model
        d.pop("fine_tune_epochs", None)
        d.pop("fine_tune_lr", None)
    return d


def apply_changes(
    changes: Mapping[str, Any] | Any,
    model_cfg: ModelConfig | None = None,
    train_cfg: TrainConfig | None = None,
) -> tuple[ModelConfig, TrainConfig]:
    """Apply dotted-key changes (``{"model.dropout": 0.5, "train.epochs": 30}``) to the two configs.

    ``changes`` is a mapping, or anything with a ``changes`` mapping (a remedy,
    a lab preset). ``"train.augment"`` takes ``"course"``
    (:meth:`AugmentConfig.course`), ``"none"`` (no augmentation) or a dict of
    AugmentConfig fields.

    Returns:
        New ``(ModelConfig, TrainConfig)``; the inputs are not changed.

    Raises:
        ConfigError: a key names no config field or a value is out of range.
    """
    if not isinstance(changes, Mapping):
        changes = changes.changes
    model_cfg = model_cfg or ModelConfig()
    train_cfg = train_cfg or TrainConfig()
    parts: dict[str, dict[str, Any]] = {"model": {}, "train": {}}
    known = {
        "model": {f.name for f in dataclasses.fields(ModelConfig)},
        "train": {f.name for f in dataclasses.fields(TrainConfig)},
    }
    for key, value in changes.items():
        section, _, name = key.partition(".")
        if section not in parts or name not in known[section]:
            raise ConfigError(
                f"Unknown setting {key!r}: expected 'model.<field>' or 'train.<field>' with a field of "
                f"ModelConfig or TrainConfig."
            )
        if key == "train.augment":
            if value == "course":
                value = AugmentConfig.course()
            elif value in ("none", None):
                value = AugmentConfig()
            elif isinstance(value, Mapping):
                value = AugmentConfig.from_dict(dict(value))
        elif isinstance(value, list):
            value = tuple(value)
        parts[section][name] = value
    return model_cfg.replace(**parts["model"]), train_cfg.replace(**parts["train"])
