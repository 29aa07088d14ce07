"""Training: build the configured network and fit it (a CNN here, VGG16 transfer in core.training.transfer)."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from core.base.config import ModelConfig, TrainConfig
from core.base.precision import precision_policy, settle_precision
from core.models.builder import build_model
from core.training.fit import (
    Progress,
    ProgressEvent,
    TimeBudget,
    TrainResult,
    check_inputs,
    compile_model,
    fit_phase,
    set_seed,
)
from core.training.transfer import train_transfer

if TYPE_CHECKING:  # pragma: no cover
    from core.data import PreparedData
    from core.store.runstore import RunStore


def build_cnn(model_cfg: ModelConfig, train_cfg: TrainConfig):
    """The course CNN, seeded and built in the run's precision (the model keeps the policy; nothing else in
    this process does): what :func:`train_model` and the range test (:mod:`core.training.lr_find`) train."""
    set_seed(train_cfg.seed)
    with precision_policy(train_cfg.precision):
        return build_model(model_cfg)


def train_model(
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    data: PreparedData,
    *,
    store: RunStore | None,
    progress: Progress | None = None,
    stop_event: threading.Event | None = None,
    time_budget: float | None = None,
) -> TrainResult:
    """Build, compile and train the configured model on prepared data.

    Args:
        model_cfg: the network.
        train_cfg: optimizer, loss, epochs, early stopping, augmentation, seed.
        data: the output of :func:`core.data.prepare_data` with the same loss.
        store: the run store whose cache keeps derived data (VGG16 base
            features, offline weights); None computes them without caching.
        progress: called with a :class:`ProgressEvent` per batch and epoch.
        stop_event: set it to stop after the current batch.
        time_budget: seconds this training may take (:class:`core.training.fit.TimeBudget`); it then
            stops after the current batch, ``stopped_by_budget``. None or 0: no limit.

    Returns:
        A :class:`TrainResult`; ``result.model`` holds the kept weights
        (:func:`core.training.fit.keeps_best_weights`); ``result.extra["precision"]`` is
        the precision it computed in: ``train_cfg.precision``, decided where the
        job was submitted (:func:`core.base.precision.settle_precision`; a direct
        caller's "auto" is decided here).

    The network is checked against the server's limits where a job is
    submitted (:func:`core.training.experiment.run_experiment`, the worker); called
    directly, :func:`core.models.builder.build_model` still refuses a network that does
    not fit its input.
    """
    train_cfg = settle_precision(model_cfg, train_cfg)  # decided at submission already; a direct caller's "auto" here
    check_inputs(model_cfg, train_cfg, data)
    budget = TimeBudget.of(time_budget)  # counts from here: building the network is part of the training
    if model_cfg.model == "vgg16":
        return train_transfer(
            model_cfg, train_cfg, data, store=store, progress=progress, stop_event=stop_event, budget=budget
        )

    start = time.perf_counter()
    model = build_cnn(model_cfg, train_cfg)
    precision = train_cfg.precision
    compile_model(model, train_cfg)
    out = fit_phase(
        model,
        train_cfg,
        (data.x_train, data.y_train),
        (data.x_val, data.y_val),
        epochs=train_cfg.epochs,
        progress=progress,
        stop_event=stop_event,
        budget=budget,
    )
    seconds = time.perf_counter() - start
    if progress is not None:
        progress(ProgressEvent("end", epoch=len(out.history["loss"]), epochs=train_cfg.epochs))
    return TrainResult(
        history=out.history,
        epoch_seconds=out.epoch_seconds,
        best_epoch=out.best_epoch,
        stopped_early=out.stopped_early,
        stopped_by_user=out.stopped_by_user,
        restored_epoch=out.restored_epoch,
        model=model,
        phases=[{"name": "train", "first_epoch": 1, "epochs": len(out.history["loss"])}],
        seconds=seconds,
        extra={"precision": precision},
        stopped_by_budget=out.stopped_by_budget,
    )
