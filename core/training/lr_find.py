"""The learning-rate range test: a short training of a fresh network with the learning rate rising
exponentially, the loss of every step against its rate, a suggested rate, kept in the run store.

The network, the data and the training are a real training's: the same split (:func:`run_split`), the
same build (the course CNN through :func:`core.training.train.build_cnn`; VGG16's head on the cached base
features, or the whole model on images with augmentation, through :func:`core.training.transfer.head_setup`),
the same pipeline, augmentation, class weights and precision (:func:`core.training.fit.fit_phase`). Only the
learning rate changes every step (:class:`LRSweep`), there is no validation, and the weights are thrown
away. How the losses are read (the schedule, the smoothing, the explosion, the suggestion) is
:mod:`core.results.lr_range`.

Steps: :class:`LRRange`'s ``steps``, or by default :func:`default_steps` = min(:data:`MAX_STEPS` = 300,
:data:`EPOCHS` = 5 epochs' batches): a few hundred steps where the data has them (the shape of the curve
needs them), at most five passes over a small dataset (more would train the network on the same images
again and again, and cost CPU time). On the bundled thin sections at batch 32 that is 100 steps.

Stored: one result per key (:func:`lr_find_key`: the run key of the configuration, whose training settings
the test does not use are reset by :func:`range_config`, and the range), in the run store's cache
(``cache/lr-find/<key>.npz``: the rates, the losses, the smoothed losses and the facts as JSON). The same
test twice trains nothing: :func:`find_lr` (in-process: the CLI, notebooks) and the job queue
(:meth:`core.jobs.worker.TrainingWorker.submit` with ``lr_find=``) answer from the store. A stopped test
(by a person or the time budget) keeps nothing.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.base.config import ConfigError, ModelConfig, TrainConfig
from core.base.errors import UserError
from core.base.naming import describe
from core.base.precision import decided_precision, settle_precision
from core.data import Dataset
from core.results.lr_range import EXPLODE, SPAN, Suggestion, beta_for, exploded, rates, smooth, suggest
from core.store.challenges import time_budget_for
from core.store.runstore import RunStore
from core.training.experiment import check_submission, resolve, run_split
from core.training.fit import Progress, TimeBudget, check_inputs, compile_model, fit_phase
from core.training.train import build_cnn
from core.training.transfer import head_setup

LR_FIND_KIND = "lr-find"  # the run store's cache kind
LR_FIND_VERSION = 1  # bump when what the test computes changes
MAX_STEPS = 300
EPOCHS = 5
PHASE = "lr-find"  # the progress events' phase


@dataclass(frozen=True)
class LRRange:
    """The range a test sweeps: from ``start`` to ``end`` in ``steps`` (None: :func:`default_steps`)."""

    start: float = 1e-6
    end: float = 1.0
    steps: int | None = None

    def __post_init__(self) -> None:
        for name in ("start", "end"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | float) or not (0 < v <= 10) or not math.isfinite(v):
                raise ConfigError(f"The range test's {name} learning rate must be in (0, 10]. Got {v!r} instead.")
        if self.start >= self.end:
            raise ConfigError(
                f"The range test's start learning rate ({self.start:g}) must be below its end ({self.end:g})."
            )
        if self.steps is not None and (
            isinstance(self.steps, bool) or not isinstance(self.steps, int) or not 5 <= self.steps <= 2000
        ):
            raise ConfigError(
                f"The range test's steps must be a whole number in [5, 2000]. Got {self.steps!r} instead."
            )

    def to_dict(self) -> dict[str, Any]:
        return {"start": float(self.start), "end": float(self.end), "steps": self.steps}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LRRange:
        return cls(start=float(d["start"]), end=float(d["end"]), steps=d.get("steps"))


def default_steps(n_train: int, batch_size: int) -> int:
    """min(:data:`MAX_STEPS`, :data:`EPOCHS` epochs' batches) for ``n_train`` training inputs."""
    return min(MAX_STEPS, EPOCHS * max(1, math.ceil(n_train / batch_size)))


def range_config(train_cfg: TrainConfig) -> TrainConfig:
    """``train_cfg`` with what the range test does not use set to its defaults: the learning rate (it sweeps
    its own), the epochs, early stopping and fine-tuning. Two Train page settings that differ only there
    share one test (pressing "use this" and then the button again answers from the store)."""
    plain = TrainConfig()
    return train_cfg.replace(
        learning_rate=plain.learning_rate,
        epochs=1,
        early_stopping=0,
        monitor=plain.monitor,
        restore_best=plain.restore_best,
        fine_tune_epochs=0,
        fine_tune_lr=plain.fine_tune_lr,
    )


def lr_find_key(run_key: str, lr_range: LRRange) -> str:
    """A test's identity: the run key of its (:func:`range_config`) configuration and data, and the range."""
    d = {"v": LR_FIND_VERSION, "run": run_key, "range": lr_range.to_dict(), "span": SPAN, "explode": EXPLODE}
    return "lr-" + hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:20]


@dataclass
class LRFind:
    """One range test's result: the rate, loss and smoothed loss of every step, and what they suggest."""

    key: str
    source: str
    label: str
    model_config: dict[str, Any]
    train_config: dict[str, Any]
    lr_range: dict[str, Any]
    lrs: np.ndarray
    losses: np.ndarray
    smoothed: np.ndarray
    steps_planned: int
    exploded: bool  # stopped early because the loss exploded
    suggestion: Suggestion
    created: float
    seconds: float
    cached: bool = False  # this answer came from the store
    extra: dict[str, Any] = field(default_factory=dict)

    def facts(self) -> dict[str, Any]:
        """Everything but the arrays, as JSON values."""
        return {
            "key": self.key,
            "source": self.source,
            "label": self.label,
            "model_config": self.model_config,
            "train_config": self.train_config,
            "lr_range": self.lr_range,
            "steps_planned": self.steps_planned,
            "exploded": self.exploded,
            "suggestion": self.suggestion.to_dict(),
            "created": self.created,
            "seconds": self.seconds,
            "extra": self.extra,
        }

    def as_dict(self) -> dict[str, Any]:
        """For ``--json``: the facts, the steps (rate, loss, smoothed loss) and whether the store answered."""
        finite = [None if not math.isfinite(v) else float(v) for v in self.losses]
        return {
            **self.facts(),
            "cached": self.cached,
            "steps_run": int(len(self.lrs)),
            "learning_rates": [float(v) for v in self.lrs],
            "losses": finite,
            "smoothed_losses": [None if not math.isfinite(v) else float(v) for v in self.smoothed],
        }

    def sentence(self) -> str:
        """What the test found, in one sentence for the student."""
        s = self.suggestion
        ran = f"{len(self.lrs)} of {self.steps_planned} steps" if self.exploded else f"{len(self.lrs)} steps"
        end = ", stopped when the loss exploded" if self.exploded else ""
        if s.learning_rate is None:
            return (
                f"The loss did not fall over {ran} from {self.lr_range['start']:g} to {self.lr_range['end']:g}{end}: "
                "no learning rate to suggest. Try a wider range or more steps."
            )
        return (
            f"The smoothed loss falls from a learning rate of {s.falls_from:.2g} to {s.falls_to:.2g} ({ran}{end}); "
            f"suggested: {s.learning_rate:.2g}, {s.rule}."
        )


def _sweep_class():
    import keras

    class LRSweep(keras.callbacks.Callback):
        """Sets each step's learning rate before its batch, reads its batch's loss after, and stops the fit
        after the last step or once the loss exploded (:func:`core.results.lr_range.exploded`).

        Keras' batch logs hold the epoch's running mean of the loss (weighted by the batch's size), so a
        batch's own loss is read back from two consecutive means."""

        def __init__(self, lrs: np.ndarray, n_train: int, batch_size: int):
            super().__init__()
            self.lrs, self.n_train, self.batch_size = lrs, n_train, batch_size
            self.beta = beta_for(len(lrs))
            self.losses: list[float] = []
            self.smoothed = np.empty(0)
            self.exploded = False
            self._seen, self._mean = 0, 0.0

        def on_epoch_begin(self, epoch, logs=None):
            self._seen, self._mean = 0, 0.0

        def on_train_batch_begin(self, batch, logs=None):
            self.model.optimizer.learning_rate = float(self.lrs[len(self.losses)])

        def on_train_batch_end(self, batch, logs=None):
            size = min(self.batch_size, self.n_train - batch * self.batch_size)
            mean = float((logs or {}).get("loss", math.nan))
            seen = self._seen + size
            loss = (mean * seen - self._mean * self._seen) / size
            self._seen, self._mean = seen, mean
            self.losses.append(loss)
            self.smoothed = smooth(self.losses, self.beta)
            if exploded(self.smoothed, loss):
                self.exploded = True
                self.model.stop_training = True
            elif len(self.losses) >= len(self.lrs):
                self.model.stop_training = True

    return LRSweep


@dataclass
class Sweep:
    """What :func:`lr_range_test` gives back before the result is made (the steps, how it ended)."""

    lrs: np.ndarray
    losses: np.ndarray
    steps_planned: int
    exploded: bool
    stopped_by_user: bool
    stopped_by_budget: bool
    extra: dict[str, Any]


def lr_range_test(
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    data,
    lr_range: LRRange,
    *,
    store: RunStore | None,
    progress: Progress | None = None,
    stop_event: threading.Event | None = None,
    budget: TimeBudget | None = None,
) -> Sweep:
    """Train a fresh network (as :func:`core.training.train.train_model` would build it) for the range's
    steps with the learning rate rising exponentially; returns each step's rate and loss (see the module
    docstring). ``data`` is :func:`core.training.experiment.run_split`'s."""
    train_cfg = settle_precision(model_cfg, train_cfg)
    check_inputs(model_cfg, train_cfg, data)
    n_train, bs = len(data.y_train), train_cfg.batch_size
    batches = max(1, math.ceil(n_train / bs))
    steps = lr_range.steps or default_steps(n_train, bs)
    epochs = math.ceil(steps / batches)
    extra: dict[str, Any] = {"precision": train_cfg.precision}
    if model_cfg.model == "vgg16":
        setup = head_setup(model_cfg, train_cfg, data, store=store, progress=progress, planned=epochs)
        trainee, train_xy, preprocess, augment = setup.trainee, setup.train_xy, setup.on_images, setup.augment
        extra.update({k: setup.extra[k] for k in ("weights_label", "features") if k in setup.extra})
    else:
        trainee, train_xy, preprocess, augment = (
            build_cnn(model_cfg, train_cfg),
            (data.x_train, data.y_train),
            None,
            True,
        )
    lrs = rates(lr_range.start, lr_range.end, steps)
    sweep = _sweep_class()(lrs, n_train, bs)
    compile_model(trainee, train_cfg, learning_rate=float(lrs[0]))
    out = fit_phase(
        trainee,
        train_cfg,
        train_xy,
        None,
        epochs=epochs,
        phase=PHASE,
        augment=augment,
        progress=progress,
        stop_event=stop_event,
        preprocess=preprocess,
        budget=budget,
        callbacks=[sweep],
    )
    ran = len(sweep.losses)
    done = ran >= steps or sweep.exploded
    return Sweep(
        lrs=lrs[:ran],
        losses=np.asarray(sweep.losses, dtype=float),
        steps_planned=steps,
        exploded=sweep.exploded,
        stopped_by_user=out.stopped_by_user and not done,
        stopped_by_budget=out.stopped_by_budget and not done,
        extra=extra,
    )


class RangeTestStopped(UserError):
    """A range test that did not run to its end (a person or the time budget stopped it): nothing is kept."""


def stopped_text(by_budget: bool, time_budget: float | None, steps: int) -> str:
    """Why a range test kept nothing."""
    if by_budget and time_budget:
        return (
            f"Stopped: the time budget of {time_budget:g} s per training was reached before the range test's "
            f"{steps} steps ended, so nothing was kept. Ask for fewer steps."
        )
    return "Stopped: a range test is kept only when it runs to its end, so nothing was kept."


def compute_lr_find(
    ds: Dataset,
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    key: str,
    lr_range: LRRange,
    *,
    source: str,
    store: RunStore | None,
    progress: Progress | None = None,
    stop_event: threading.Event | None = None,
    time_budget: float | None = None,
) -> LRFind:
    """Split ``ds`` as a run would, run the test and read it (nothing stored); :func:`resolve`'s dataset and
    model config, the key of :func:`lr_find_key`, the configs checked and the precision decided where it was
    submitted (as :func:`core.training.experiment.compute_run`).

    Raises:
        RangeTestStopped: stopped by a person or the time budget before its end (the message says which).
    """
    decided_precision(train_cfg)
    started = time.time()
    t0 = time.perf_counter()
    data = run_split(ds, train_cfg)
    sweep = lr_range_test(
        model_cfg,
        train_cfg,
        data,
        lr_range,
        store=store,
        progress=progress,
        stop_event=stop_event,
        budget=TimeBudget.of(time_budget),
    )
    if sweep.stopped_by_user or sweep.stopped_by_budget:
        raise RangeTestStopped(stopped_text(sweep.stopped_by_budget, time_budget, sweep.steps_planned))
    smoothed = smooth(sweep.losses, beta_for(sweep.steps_planned))
    return LRFind(
        key=key,
        source=source,
        label=describe(model_cfg, train_cfg),
        model_config=model_cfg.to_dict(),
        train_config=train_cfg.to_dict(),
        lr_range=lr_range.to_dict(),
        lrs=sweep.lrs,
        losses=sweep.losses,
        smoothed=smoothed,
        steps_planned=sweep.steps_planned,
        exploded=sweep.exploded,
        suggestion=suggest(sweep.lrs, smoothed),
        created=started,
        seconds=time.perf_counter() - t0,
        extra={**sweep.extra, "n_train": int(len(data.y_train))},
    )


def lr_find_arrays(result: LRFind) -> dict[str, np.ndarray]:
    """A result as arrays only (no pickles): what the store keeps and a cluster worker sends back."""
    return {
        "lrs": np.asarray(result.lrs, dtype=np.float64),
        "losses": np.asarray(result.losses, dtype=np.float64),
        "smoothed": np.asarray(result.smoothed, dtype=np.float64),
        "facts": np.array(json.dumps(result.facts())),
    }


def lr_find_from_arrays(arrays: dict[str, np.ndarray], *, cached: bool = False) -> LRFind:
    f = json.loads(str(arrays["facts"]))
    return LRFind(
        key=f["key"],
        source=f["source"],
        label=f["label"],
        model_config=f["model_config"],
        train_config=f["train_config"],
        lr_range=f["lr_range"],
        lrs=np.asarray(arrays["lrs"]),
        losses=np.asarray(arrays["losses"]),
        smoothed=np.asarray(arrays["smoothed"]),
        steps_planned=int(f["steps_planned"]),
        exploded=bool(f["exploded"]),
        suggestion=Suggestion(**f["suggestion"]),
        created=float(f["created"]),
        seconds=float(f["seconds"]),
        cached=cached,
        extra=f.get("extra") or {},
    )


def save_lr_find(store: RunStore, result: LRFind) -> LRFind:
    """Keep a result in the run store's cache under its key (atomic: a temporary file, then a rename)."""
    store.cache_put(LR_FIND_KIND, result.key, lr_find_arrays(result))
    return result


def stored_lr_find(store: RunStore, key: str) -> LRFind | None:
    """The stored result with this key (``cached`` set), or None."""
    found = store.cache_get(LR_FIND_KIND, key)
    if found is None or "facts" not in found:
        return None
    return lr_find_from_arrays(found, cached=True)


def resolve_lr_find(
    source: str, model_cfg: ModelConfig, train_cfg: TrainConfig, lr_range: LRRange, store: RunStore | None
) -> tuple[Dataset, ModelConfig, TrainConfig, str]:
    """What a range test is, decided where it is submitted (the worker, :func:`find_lr`): the configs it uses
    (:func:`range_config`, the precision settled), the dataset, and its key. Checks the network as a
    training's submission does (:func:`core.training.experiment.check_submission`)."""
    train_cfg = settle_precision(model_cfg, range_config(train_cfg))
    ds, model_cfg, run_key = resolve(source, model_cfg, train_cfg, store)
    check_submission(model_cfg, train_cfg)
    return ds, model_cfg, train_cfg, lr_find_key(run_key, lr_range)


def find_lr(
    source: str,
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    lr_range: LRRange | None = None,
    *,
    store: RunStore | None = None,
    use_cache: bool = True,
    progress: Progress | None = None,
    stop_event: threading.Event | None = None,
) -> LRFind:
    """Run (or fetch) a range test and store it, in this process (the CLI, notebooks, tests): the in-process
    path, as :func:`core.training.experiment.run_experiment` is for a training.

    Raises:
        DataError, ArchitectureError, WeightsError, ConfigError: as a training's.
        RangeTestStopped: stopped before its end (nothing kept).
    """
    store = store if store is not None else RunStore()
    lr_range = lr_range or LRRange()
    ds, model_cfg, train_cfg, key = resolve_lr_find(source, model_cfg, train_cfg, lr_range, store)
    if use_cache:
        found = stored_lr_find(store, key)
        if found is not None:
            return found
    result = compute_lr_find(
        ds,
        model_cfg,
        train_cfg,
        key,
        lr_range,
        source=str(source),
        store=store,
        progress=progress,
        stop_event=stop_event,
        time_budget=time_budget_for(store, source)[0],  # CNNLAB_MAX_TRAIN_SECONDS or the challenge's
    )
    return save_lr_find(store, result)
