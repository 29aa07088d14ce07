"""Compile and fit, the course's way, with progress, stop and checkpoint hooks.

:func:`fit_phase` is the course's ``model.compile(...)`` + ``model.fit(...)``
with three additions that cost nothing measurable (see ``bench/bench_engine.py``):

- a progress callable, told about every batch and epoch, so a page or a
  notebook can draw live curves;
- a ``threading.Event`` that stops training after the current batch, keeping
  the history so far and the weights the run keeps;
- a time budget (:class:`TimeBudget`, ``CNNLAB_MAX_TRAIN_SECONDS``): once the
  training has taken that long it stops after the current batch, as a stop
  request does, and says so (:func:`budget_stop_text`);
- the best epoch's weights (by ``monitor``), held in memory as training goes.
  Keras' ``ModelCheckpoint(save_best_only=True)`` writes a file at every
  improvement instead; holding the weights gives the same checkpoint without
  disk writes inside the timed loop.

Which weights the model keeps at the end is one rule, :func:`keeps_best_weights`:
the best epoch's, unless early stopping runs with ``restore_best=False``, in
which case the last epoch's (as Keras' ``EarlyStopping`` leaves them). The test
metrics and predictions are computed from the kept weights.

:mod:`core.training.train` (CNN) and :mod:`core.training.transfer` (VGG16 head and fine-tuning)
build on it.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from core.base.config import KERAS_LOSSES, KERAS_OPTIMIZERS, OPTIMIZERS, ModelConfig, TrainConfig
from core.base.errors import UserError
from core.base.tables import plural
from core.models.augment import augment_dataset_fn
from core.models.pipeline import Preprocess, image_batches, is_images
from core.results.curves import HISTORY_KEYS

if TYPE_CHECKING:  # pragma: no cover
    import keras
    import numpy as np

    from core.data import PreparedData

# Engine-wide choices measured in bench/bench_engine.py (see bench/RESULTS.md):
# jit_compile: Keras' "auto" leaves XLA off on CPU-only machines.
# jit_compile=True (XLA) measured ~2.9x slower here; "auto" leaves it off on CPU.
# pipeline: feed fit() from a shuffled, batched tf.data pipeline with prefetch, so the next
# batch is ready while the current one trains; measured ~0.9x the time of arrays into fit().
ENGINE_OPTIONS: dict[str, Any] = {"jit_compile": "auto", "pipeline": True}


@dataclass(frozen=True)
class ProgressEvent:
    """One step of training, for whoever follows it.

    kind: "start" (before the first batch of a phase), "batch", "epoch" (with
    the epoch's logs), "end". ``epoch`` is 1-based across all phases;
    ``epochs`` is the planned total.
    """

    kind: str
    epoch: int = 0
    epochs: int = 0
    batch: int = 0
    batches: int = 0
    logs: dict[str, float] = field(default_factory=dict)
    phase: str = "train"


Progress = Callable[[ProgressEvent], None]

BUDGET_STOP = "time budget"  # a run's ``extra["stopped_by"]`` when its time budget stopped it


@dataclass(frozen=True)
class TimeBudget:
    """Seconds one training may take, counted from when it began (building the network and VGG16's features
    included, preparing the data and evaluating after it not).

    Checked after every batch, like a stop request: the training then stops after that batch (the last,
    shortened epoch is validated and counts like the others) and the run keeps the weights the keep-best
    rule says (:func:`keeps_best_weights`). After a batch, not an epoch: an epoch of a large network can
    take minutes, and the budget is the server's time.
    """

    seconds: float
    started: float = field(default_factory=time.perf_counter)

    @classmethod
    def of(cls, seconds: float | None) -> TimeBudget | None:
        """A budget starting now, or None for no limit (None or 0)."""
        return cls(float(seconds)) if seconds else None

    def reached(self) -> bool:
        return time.perf_counter() - self.started >= self.seconds


def budget_stop_text(seconds: float, epochs: int, *, whose: str = "the") -> str:
    """Why a run ended early: ``Stopped: the time budget of 60 s per training was reached after 3 epochs.``

    ``whose``: "the" (the server's, ``CNNLAB_MAX_TRAIN_SECONDS``) or "the challenge's".
    """
    return f"Stopped: {whose} time budget of {seconds:g} s per training was reached after {plural(epochs, 'epoch')}."


@dataclass
class TrainResult:
    history: dict[str, list[float]]
    epoch_seconds: list[float]
    best_epoch: int  # 1-based, by train_cfg.monitor
    stopped_early: bool  # early stopping ended training before the last epoch
    stopped_by_user: bool
    restored_epoch: int | None  # epoch whose weights were put back at the end; None: the last epoch's are kept
    model: Any  # keras.Model holding the kept weights (see keeps_best_weights)
    phases: list[dict[str, Any]]
    seconds: float
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. the weight source a transfer run used
    stopped_by_budget: bool = False  # its time budget ended it before its last planned batch

    @property
    def epochs_run(self) -> int:
        return len(self.history["loss"])


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and TensorFlow: same seed, same run on the same machine."""
    import keras

    keras.utils.set_random_seed(seed)


def make_optimizer(name: str, learning_rate: float):
    import keras

    if name not in OPTIMIZERS:
        raise UserError(f"Unknown optimizer {name!r}; expected one of {', '.join(OPTIMIZERS)}.")
    return getattr(keras.optimizers, KERAS_OPTIMIZERS[name])(learning_rate=learning_rate)


def loss_name(loss: str) -> str:
    """'categorical' -> 'categorical_crossentropy' (one-hot labels); 'sparse' -> integer labels."""
    return KERAS_LOSSES[loss]


def compile_model(model: keras.Model, train_cfg: TrainConfig, learning_rate: float | None = None) -> None:
    model.compile(
        optimizer=make_optimizer(train_cfg.optimizer, learning_rate or train_cfg.learning_rate),
        loss=loss_name(train_cfg.loss),
        metrics=["accuracy"],
        jit_compile=ENGINE_OPTIONS["jit_compile"],
    )


def _callback_classes():
    """Keras callbacks, defined lazily so importing this module stays cheap."""
    import keras

    class Hooks(keras.callbacks.Callback):
        """Progress, stop requests, epoch timing and best-weights tracking in one callback."""

        def __init__(self, *, monitor, progress, stop_event, first_epoch, total_epochs, epochs, batches, phase, budget):
            super().__init__()
            self.monitor = monitor
            self.mode_max = monitor.endswith("accuracy")
            self.progress = progress
            self.stop_event = stop_event
            self.first_epoch = first_epoch
            self.total_epochs = total_epochs
            self.epochs = epochs  # of this phase
            self.batches = batches
            self.budget = budget
            self.stopped_by_budget = False
            self.phase = phase
            self.best_value = -math.inf if self.mode_max else math.inf
            self.best_weights = None
            self.best_epoch = 0  # 1-based within this phase
            self.epoch_seconds: list[float] = []
            self.stopped_by_user = False
            self._t0 = 0.0
            self._epoch = 0
            self._last_batch_report = 0.0

        def _emit(self, kind, **kw):
            if self.progress is not None:
                self.progress(ProgressEvent(kind, epochs=self.total_epochs, phase=self.phase, **kw))

        def on_epoch_begin(self, epoch, logs=None):
            self._epoch = epoch
            self._t0 = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            if self.stop_event is not None and self.stop_event.is_set():
                self.stopped_by_user = True
                self.model.stop_training = True
            last = self._epoch + 1 == self.epochs and batch + 1 == self.batches  # nothing left to cut
            if self.budget is not None and not self.stopped_by_user and not last and self.budget.reached():
                self.stopped_by_budget = True
                self.model.stop_training = True
            if self.progress is not None:
                # At most ~10 reports a second: a report is cheap, a UI redraw is not.
                now = time.perf_counter()
                if now - self._last_batch_report > 0.1 or batch + 1 == self.batches:
                    self._last_batch_report = now
                    self._emit("batch", epoch=self.first_epoch + self._epoch + 1, batch=batch + 1, batches=self.batches)

        def on_epoch_end(self, epoch, logs=None):
            self.epoch_seconds.append(time.perf_counter() - self._t0)
            logs = {k: float(v) for k, v in (logs or {}).items()}
            value = logs.get(self.monitor)
            if value is not None and (value > self.best_value if self.mode_max else value < self.best_value):
                self.best_value = value
                self.best_weights = self.model.get_weights()
                self.best_epoch = epoch + 1
            self._emit("epoch", epoch=self.first_epoch + epoch + 1, logs=logs)

    return Hooks


@dataclass
class PhaseOutcome:
    history: dict[str, list[float]]
    epoch_seconds: list[float]
    best_epoch: int
    best_value: float
    stopped_early: bool
    stopped_by_user: bool
    restored_epoch: int | None
    stopped_by_budget: bool = False


def class_weights(y_train, how: str) -> dict[int, float] | None:
    """Keras' ``class_weight`` for these training labels (one-hot or integers): None for "none"; for "balanced",
    scikit-learn's rule, images / (classes x the class's images), so every class weighs the same in the loss."""
    if how == "none":
        return None
    import numpy as np

    y = np.asarray(y_train)
    labels = y.argmax(axis=1) if y.ndim == 2 else y.astype(np.int64)
    k = y.shape[1] if y.ndim == 2 else int(labels.max()) + 1
    counts = np.bincount(labels, minlength=k)
    return {c: float(len(labels) / (k * n)) for c, n in enumerate(counts.tolist()) if n}


def keeps_best_weights(train_cfg: TrainConfig) -> bool:
    """The one rule for which weights a run keeps.

    Without early stopping, the best epoch's (the course's checkpoint,
    ``ModelCheckpoint(save_best_only=True)``). With early stopping, the best
    epoch's when ``restore_best`` (``restore_best_weights=True``), else the
    last epoch's, exactly as Keras' ``EarlyStopping`` would leave the model.
    """
    return not train_cfg.early_stopping or train_cfg.restore_best


def fit_phase(
    model: keras.Model,
    train_cfg: TrainConfig,
    train_data: tuple[np.ndarray, np.ndarray],
    val_data: tuple[np.ndarray, np.ndarray] | None,
    *,
    epochs: int,
    first_epoch: int = 0,
    total_epochs: int | None = None,
    phase: str = "train",
    augment: bool = True,
    progress: Progress | None = None,
    stop_event: threading.Event | None = None,
    preprocess: Preprocess | None = None,
    budget: TimeBudget | None = None,
    callbacks: Sequence[keras.callbacks.Callback] = (),
) -> PhaseOutcome:
    """One ``model.fit``; the model is compiled and left with its best weights.

    ``train_data`` and ``val_data`` are ``(x, y)``: uint8 images (a
    :class:`core.data.ImageSplit` or an array), scaled to [0, 1] and
    ``preprocess``ed one batch at a time by :func:`core.models.pipeline.image_batches`,
    or float arrays taken as they are (cached VGG16 features).
    Reused by :mod:`core.training.transfer` for the head (on cached features, with
    ``augment=False``) and for fine-tuning. ``budget`` stops it after the batch in which the
    training's time budget runs out (``stopped_by_budget``). ``callbacks`` run after the engine's own
    (the learning-rate range test's schedule, :mod:`core.training.lr_find`); ``val_data`` None validates nothing.
    """
    import keras

    x_train, y_train = train_data
    batches = max(1, math.ceil(len(x_train) / train_cfg.batch_size))
    Hooks = _callback_classes()
    hooks = Hooks(
        monitor=train_cfg.monitor,
        progress=progress,
        stop_event=stop_event,
        first_epoch=first_epoch,
        total_epochs=total_epochs or epochs,
        epochs=epochs,
        batches=batches,
        phase=phase,
        budget=budget,
    )
    callbacks = [hooks, *callbacks]
    early = None
    if train_cfg.early_stopping:
        # Early stopping only decides when to stop; which weights are kept is decided once, below.
        early = keras.callbacks.EarlyStopping(
            monitor=train_cfg.monitor,
            patience=train_cfg.early_stopping,
            restore_best_weights=False,
        )
        callbacks.append(early)

    x = _training_input(x_train, y_train, train_cfg, augment, preprocess)
    if val_data is not None and is_images(val_data[0]):
        val_data = image_batches(val_data[0], val_data[1], batch_size=train_cfg.batch_size, preprocess=preprocess)
    if hooks.progress is not None:
        hooks._emit("start", epoch=first_epoch + 1, batches=batches)
    hist = model.fit(
        x if x is not None else x_train,
        None if x is not None else y_train,
        epochs=epochs,
        batch_size=None if x is not None else train_cfg.batch_size,
        validation_data=val_data,
        callbacks=callbacks,
        shuffle=x is None,  # a tf.data pipeline shuffles itself
        class_weight=class_weights(y_train, train_cfg.class_weight),
        verbose=0,
    )
    history = {k: [float(v) for v in hist.history.get(k, [])] for k in HISTORY_KEYS}
    ran = len(history["loss"])
    stopped_early = bool(
        early is not None and early.stopped_epoch > 0 and not (hooks.stopped_by_user or hooks.stopped_by_budget)
    )
    restored = None
    if keeps_best_weights(train_cfg) and hooks.best_weights is not None:
        model.set_weights(hooks.best_weights)
        restored = hooks.best_epoch
    return PhaseOutcome(
        history=history,
        epoch_seconds=hooks.epoch_seconds[:ran],
        best_epoch=hooks.best_epoch or ran,
        best_value=hooks.best_value,
        stopped_early=stopped_early,
        stopped_by_user=hooks.stopped_by_user,
        restored_epoch=restored,
        stopped_by_budget=hooks.stopped_by_budget,
    )


def _training_input(x_train, y_train, train_cfg: TrainConfig, augment: bool, preprocess: Preprocess | None = None):
    """A tf.data pipeline; None means: let ``fit`` take the arrays (float arrays with the pipeline option off).

    uint8 images always go through :func:`core.models.pipeline.image_batches` (scaled per batch).

    The pipeline shuffles (seeded), batches and prefetches, so the next batch
    is ready while the current one trains: faster than the course's arrays
    into ``fit`` (bench/bench_engine.py). With augmentation, the random layers
    run on whole training batches inside it; validation data goes to ``fit``
    as arrays, so it never passes through them.
    """
    augmenting = augment and train_cfg.augment.enabled
    fn = augment_dataset_fn(train_cfg.augment, seed=train_cfg.seed) if augmenting else None
    if is_images(x_train):
        return image_batches(
            x_train,
            y_train,
            batch_size=train_cfg.batch_size,
            shuffle_seed=train_cfg.seed,
            augment_fn=fn,
            preprocess=preprocess,
        )
    if not (augmenting or ENGINE_OPTIONS["pipeline"]):
        return None
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((x_train, y_train))
    ds = ds.shuffle(len(x_train), seed=train_cfg.seed, reshuffle_each_iteration=True)
    ds = ds.batch(train_cfg.batch_size)
    if fn is not None:
        # Sequential map on purpose: the random layers share state, and parallel calls race
        # for it, so a seeded run would no longer repeat. Parallel bought no speed here either.
        ds = ds.map(fn)
    return ds.prefetch(tf.data.AUTOTUNE)


def check_inputs(model_cfg: ModelConfig, train_cfg: TrainConfig, data: PreparedData) -> None:
    """Refuse, with the fix in the message, data that do not fit the model or the loss."""
    if data.loss != train_cfg.loss:
        raise UserError(
            f"The data were prepared for loss={data.loss!r} but training asks for loss={train_cfg.loss!r}; "
            "prepare them again with the same loss (one-hot labels for 'categorical', integers for 'sparse')."
        )
    if model_cfg.num_classes != len(data.class_names):
        raise UserError(
            f"The model has {model_cfg.num_classes} outputs but the data have {len(data.class_names)} classes "
            f"({', '.join(data.class_names)}). Set num_classes={len(data.class_names)}."
        )
    if tuple(data.input_shape) != model_cfg.input_shape():
        raise UserError(
            f"The images are {data.input_shape} but the model takes {model_cfg.input_shape()}: load the dataset "
            f"with image_size={model_cfg.input_size} and channels={model_cfg.channels}."
        )


# Images per prediction batch: a batch's activations are the memory prediction needs (the course network at
# 64 px: ~1 MB an image), so 256 held ~370 MB more than 64 did (bench/bench_memory.py), for no speed here.
PREDICT_BATCH = 64


def predict_proba(
    model: keras.Model, x: Any, batch_size: int = PREDICT_BATCH, preprocess: Preprocess | None = None
) -> np.ndarray:
    """Softmax probabilities, float32.

    Args:
        x: uint8 images (a :class:`core.data.ImageSplit` or an array), streamed
            in batches, each scaled to [0, 1] and ``preprocess``ed; or float
            inputs already as the model expects them.
    """
    import numpy as np

    if is_images(x):
        x = image_batches(x, batch_size=batch_size, preprocess=preprocess)
        return np.asarray(model.predict(x, verbose=0), dtype="float32")
    return np.asarray(model.predict(x, batch_size=batch_size, verbose=0), dtype="float32")
