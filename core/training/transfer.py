"""Transfer learning: a frozen VGG16 base with a new head, the course's model, trained fast.

The course fits ``VGG16(include_top=False)``, frozen, + GlobalAveragePooling2D
-> Dense(128, relu) -> Dropout(0.5) -> Dense(5, softmax) on images. With the
base frozen and no augmentation, every epoch pushes the same images through
the same 14.7 million frozen weights and gets the same numbers out. So here the
base runs once per (dataset, input size, weight source) (:mod:`core.training.base_features`
caches its pooled 512-number features in the run store), and only the head
(66,309 weights for Dense 128 and 5 classes) trains on them. Training the head
on cached features is the same computation as the course's
``model_transfer.fit`` (GAP has no weights; Dropout and Dense come after it),
at a fraction of the cost: ``bench/bench_transfer.py`` measures both. After
training, base and head are one model that predicts from images.

With augmentation on, the training images change every epoch, so features
cannot be cached: the full model then trains on images, and
``TrainResult.extra["features"]`` says so.

Fine-tuning unfreezes block5 only, so blocks 1-4 still give the same output
every epoch: without augmentation it trains block5 + head on cached block4_pool
maps, again the same computation as training the whole model on images.

Weight sources and preprocessing: :mod:`core.models.weight_sources`; the models: :mod:`core.models.vgg16`.
Keras is imported inside :func:`train_transfer`.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np

from core.base.config import ModelConfig, TrainConfig
from core.base.precision import precision_policy, settle_precision
from core.models.vgg16 import FINE_TUNE_LAYERS, assemble_model, build_base, unfreeze_last_block
from core.models.weight_sources import preprocess_images
from core.training.base_features import cached_features, feature_source
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

if TYPE_CHECKING:  # pragma: no cover
    import keras

    from core.data import PreparedData
    from core.store.runstore import RunStore


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


@dataclass
class HeadSetup:
    """The transfer model built and its head's training input ready: what :func:`head_setup` gives the head's
    training (:func:`train_transfer`) and the learning-rate range test (:mod:`core.training.lr_find`)."""

    base: Any  # the frozen VGG16 base
    model: Any  # base + head: predicts from images
    trainee: Any  # what the head's fit trains: the head on cached features, or the whole model on images
    train_xy: tuple[Any, Any]
    val: tuple[Any, Any]
    feats: Any  # the cached base features (None with augmentation)
    train_idx: Any
    val_idx: Any
    extra: dict[str, Any]
    on_images: Any  # the preprocessing of image batches (features pass as they are)
    augment: bool


def head_setup(
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    data: PreparedData,
    *,
    store: RunStore | None,
    progress: Progress | None,
    planned: int,
    block4: bool = False,
) -> HeadSetup:
    """Steps 1 and 2 of :func:`train_transfer`: seed, build the base with its weights and the head, and the
    head's training input (the cached pooled features, or images with augmentation). ``planned`` is the
    epochs the progress events count; ``block4`` also caches the block4_pool maps (for fine-tuning)."""
    import keras

    set_seed(train_cfg.seed)
    precision = train_cfg.precision
    with precision_policy(precision):  # the frozen base only: the head is built after, in float32
        base, info = build_base(model_cfg.weights, model_cfg.input_size, seed=train_cfg.seed, store=store)
    model = assemble_model(base, model_cfg)
    augment = train_cfg.augment.enabled
    extra: dict[str, Any] = {
        "precision": precision,  # the base's arithmetic (core.base.precision); the head is float32
        "weights": model_cfg.weights,
        "weights_source": info.source,
        "weights_label": info.label,
        "weights_detail": info.detail,
        "weights_identity": info.identity,
        "preprocessing": info.preprocessing,
        "base_seconds": round(info.seconds, 3),
    }
    val = (data.x_val, data.y_val)
    feats, train_idx, val_idx = None, None, None
    if augment:
        extra["features"] = (
            "recomputed through the frozen base every epoch: augmentation changes the training images "
            "each epoch, so base features cannot be cached (slow: every epoch runs all 13 conv layers)"
        )
        trainee, train_xy = model, (data.x_train, data.y_train)  # scaled and preprocessed per batch
    else:
        images, fingerprint, train_idx, val_idx = feature_source(data)

        def batch_done(batch: int, batches: int) -> None:
            progress(ProgressEvent("batch", epochs=planned, batch=batch, batches=batches, phase="features"))

        feats = cached_features(
            base,
            info,
            images,
            fingerprint,
            store=store,
            block4=block4,
            progress=None if progress is None else batch_done,
        )
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

    on_images = partial(preprocess_images, weights=model_cfg.weights)  # for image batches; features pass as they are
    return HeadSetup(base, model, trainee, train_xy, val, feats, train_idx, val_idx, extra, on_images, augment)


def train_transfer(
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    data: PreparedData,
    *,
    store: RunStore | None,
    progress: Progress | None = None,
    stop_event: threading.Event | None = None,
    budget: TimeBudget | None = None,
) -> TrainResult:
    """Train the VGG16 transfer model: the head on cached base features, then optional fine-tuning.

    1. Build the base with ``model_cfg.weights`` (a :class:`~core.models.weight_sources.WeightsError`
       here, before anything trains, if they cannot be used).
    2. Without augmentation: the base's pooled features of every image of the
       dataset, from the run store's cache or computed once (progress events
       with phase "features"); the head (dense, dropout, output) trains on them
       with :func:`core.training.fit.fit_phase` (phase "head"). With augmentation the
       full model trains on images, the base recomputed every epoch.
    3. With ``train_cfg.fine_tune_epochs``: block5_conv1..3 unfrozen, recompiled
       with ``fine_tune_lr``, trained that many more epochs (phase "fine-tune"),
       on cached block4_pool maps when there is no augmentation (blocks 1-4
       are frozen, so what they give block5 never changes), else on images.

    The history concatenates the phases; ``phases`` says where each starts;
    progress events count epochs across both. ``stop_event`` stops either
    phase after its current batch (an extraction in progress finishes first,
    so its features are kept). The returned model takes preprocessed images
    (:func:`core.models.weight_sources.preprocess_images`) and holds the best epoch's weights
    over both phases. ``extra`` records the weights, preprocessing and feature strategy.

    Args:
        model_cfg: ``model == "vgg16"``; ``weights`` picks the base's weights.
        train_cfg, data, progress, stop_event: as :func:`core.training.train.train_model`.
        budget: the training's time budget over both phases (None: no limit); once reached, training
            stops after the current batch, and fine-tuning does not start.
        store: the run store whose cache keeps the features and the offline
            weights; None: compute them, cache nothing.

    Returns:
        A :class:`~core.training.fit.TrainResult`.

    Raises:
        ValueError: ``model_cfg.model`` is not "vgg16", or the data do not fit
            (see :func:`core.training.fit.check_inputs`).
        WeightsError: the weights cannot be used (raised before any training).
    """
    if model_cfg.model != "vgg16":
        raise ValueError(f"train_transfer trains the VGG16 transfer model. Received: model={model_cfg.model!r}")
    train_cfg = settle_precision(model_cfg, train_cfg)  # decided at submission already; a direct caller's "auto" here
    check_inputs(model_cfg, train_cfg, data)
    start = time.perf_counter()
    n_ft = train_cfg.fine_tune_epochs
    planned = train_cfg.epochs + n_ft
    setup = head_setup(model_cfg, train_cfg, data, store=store, progress=progress, planned=planned, block4=n_ft > 0)
    base, model, trainee, train_xy, val = setup.base, setup.model, setup.trainee, setup.train_xy, setup.val
    feats, train_idx, val_idx, extra = setup.feats, setup.train_idx, setup.val_idx, setup.extra
    on_images, augment = setup.on_images, setup.augment
    import keras

    compile_model(trainee, train_cfg)
    t_head = time.perf_counter()
    head = fit_phase(
        trainee,
        train_cfg,
        train_xy,
        val,
        epochs=train_cfg.epochs,
        total_epochs=planned,
        phase="head",
        augment=augment,
        progress=progress,
        stop_event=stop_event,
        preprocess=on_images,
        budget=budget,
    )
    extra["head_seconds"] = round(time.perf_counter() - t_head, 3)
    n1 = len(head.history["loss"])
    history = {k: list(v) for k, v in head.history.items()}
    epoch_seconds = list(head.epoch_seconds)
    phases = [{"name": "head", "first_epoch": 1, "epochs": n1}]
    best_epoch, stopped_early, stopped_by_user = head.best_epoch, head.stopped_early, head.stopped_by_user
    restored, last_phase = head.restored_epoch, "head"
    extra["best_phase"] = "head"
    stopped_by_budget = head.stopped_by_budget or bool(n_ft and budget is not None and budget.reached())

    if n_ft and not head.stopped_by_user and not stopped_by_budget:
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
                train_xy, val = (data.x_train, data.y_train), (data.x_val, data.y_val)
            on = "images" + (" with augmentation" if augment else "")
        compile_model(trainee, train_cfg, learning_rate=train_cfg.fine_tune_lr)
        t_ft = time.perf_counter()
        ft = fit_phase(
            trainee,
            train_cfg,
            train_xy,
            val,
            epochs=n_ft,
            first_epoch=n1,
            total_epochs=n1 + n_ft,
            phase="fine-tune",
            augment=augment,
            progress=progress,
            stop_event=stop_event,
            preprocess=on_images,
            budget=budget,
        )
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
        stopped_early, stopped_by_user, stopped_by_budget = ft.stopped_early, ft.stopped_by_user, ft.stopped_by_budget
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
        stopped_by_budget=stopped_by_budget,
    )
