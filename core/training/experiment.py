"""One experiment, end to end: data -> key -> (stored run | train, evaluate, diagnose, save).

This is the single path every caller goes through: the dashboard's worker,
the CLI, the overfitting lab, notebooks. Asking twice for the same
configuration on the same data returns the stored run without training.
"""

from __future__ import annotations

import platform
import threading
import time
import uuid
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from core.base.config import WEIGHT_SOURCES, ModelConfig, TrainConfig, run_key
from core.base.errors import UserError
from core.base.naming import describe
from core.base.precision import decided_precision, run_precision, settle_precision
from core.data import Dataset, PreparedData, load_dataset, prepare_data
from core.models.layer_table import layer_table, require_buildable
from core.models.pipeline import model_input
from core.models.weight_sources import WeightsError, file_digest, weight_kind, weights_status
from core.results.diagnosis import diagnose
from core.results.evaluation import evaluate
from core.store.challenges import by_challenge, challenge_for_source, time_budget_for
from core.store.runstore import RunRecord, RunStore
from core.training.fit import BUDGET_STOP, budget_stop_text, predict_proba
from core.training.train import train_model


def versions() -> dict[str, str]:
    import keras
    import sklearn
    import tensorflow as tf

    return {
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "scikit-learn": sklearn.__version__,
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
    }


def resolve(
    source: str, model_cfg: ModelConfig, train_cfg: TrainConfig, store: RunStore | None = None
) -> tuple[Dataset, ModelConfig, str]:
    """Load the dataset and fit the model's class count to it. Returns (dataset, model_cfg, key).

    With a ``store``, the decoded images are kept in its cache and memory-mapped (:mod:`core.data.imagecache`).
    """
    cache_dir = store.cache_dir if store is not None else None
    ds = load_dataset(source, image_size=model_cfg.input_size, channels=model_cfg.channels, cache_dir=cache_dir)
    if model_cfg.num_classes != len(ds.class_names):
        model_cfg = model_cfg.replace(num_classes=len(ds.class_names))
    identity = ds.fingerprint
    if model_cfg.model == "vgg16" and model_cfg.weights not in WEIGHT_SOURCES:
        # A weights file is known by its content, not its path: new weights at the same path are a new run.
        if Path(model_cfg.weights).is_file():
            identity += ":" + file_digest(model_cfg.weights)
    return ds, model_cfg, run_key(model_cfg, train_cfg, identity, run_precision(model_cfg, train_cfg))


def check_submission(model_cfg: ModelConfig, train_cfg: TrainConfig) -> None:
    """What is checked once per job, where it is submitted (:func:`run_experiment`, the worker, the CLI).

    The network against its input and this server's limits (:func:`core.models.layer_table.require_buildable`),
    and a VGG16 weights file that cannot be used (cheap: no TensorFlow; its layers are checked when the
    base is built). What trains below takes the configs as checked.

    Raises:
        ArchitectureError: the network cannot be built or is larger than this server allows.
        WeightsError: the weights file is missing, a folder, unreadable or not HDF5.
    """
    require_buildable(model_cfg, batch_size=train_cfg.batch_size)
    if model_cfg.model == "vgg16" and weight_kind(model_cfg.weights) == "file":
        status = weights_status(model_cfg.weights)
        if not status.ok:
            raise WeightsError(status.message)


def data_report(ds: Dataset) -> dict[str, Any]:
    """What reading the data found: its classes, the images read, the files skipped and why.

    A run's record holds its training's read; a stored run given back as an
    answer carries the read just made (:func:`stored_answer`). Skipped files do
    not change the pixels, so they are not part of the run key.
    """
    return {
        "classes": list(ds.class_names),
        "n_images": int(len(ds.labels)),
        "skipped": [s.to_dict() for s in ds.skipped],
        "fingerprint": ds.fingerprint,
        "image_shape": list(ds.images.shape[1:]),
    }


def stored_answer(store: RunStore, key: str, ds: Dataset) -> RunRecord | None:
    """The stored complete run with this key, as the answer to a request that has just read ``ds``; else None.

    The store supplies the model, the history and the scores; the data report
    is ``ds``'s (another folder with the same images but other broken files has
    the same key, and must not be told the first folder's skipped files). The
    split sizes and class counts are the stored run's: the key fixes them.
    """
    found = store.find(key)
    if found is None:
        return None
    found.data = {**found.data, **data_report(ds)}
    found.cached = True
    return found


class NothingToKeep(UserError):
    """Training was stopped before its first epoch ended: there is no run to store."""


@dataclass
class RunArtifacts:
    """What one training produced, before it is stored: the record, the model and the test arrays.

    ``model`` is a Keras model (in-process) or the bytes of its ``.keras`` file
    (shipped back from another process or machine); :func:`save_run` takes either.
    """

    record: RunRecord
    model: Any
    arrays: dict[str, np.ndarray]


def run_split(ds: Dataset, train_cfg: TrainConfig) -> PreparedData:
    """``ds`` prepared and split as a training with ``train_cfg`` splits it: the same data and settings give
    the same training, validation and test images (a stored run's split, made again: core.training.heldout)."""
    return prepare_data(
        ds,
        loss=train_cfg.loss,
        test_size=train_cfg.test_size,
        val_split=train_cfg.val_split,
        seed=train_cfg.seed,
        train_fraction=train_cfg.train_fraction,
    )


def model_preprocess(model_cfg: ModelConfig):
    """What a batch of images in [0, 1] goes through before the model (None: nothing), for the pipeline."""
    return partial(model_input, model_cfg) if model_cfg.model == "vgg16" else None


def run_experiment(
    source: str,
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    *,
    store: RunStore | None = None,
    use_cache: bool = True,
    progress=None,
    stop_event: threading.Event | None = None,
) -> RunRecord:
    """Train (or fetch) one run and store it, in this process.

    The dashboard and the CLI's batch commands train in child processes
    (:mod:`core.jobs.worker`); this is the same path in-process, for notebooks,
    scripts and the CLI's ``train``.

    Args:
        source: a bundled dataset name, a folder of class folders, or a zip.
        model_cfg: the network; ``num_classes`` is set from the data.
        train_cfg: how to train.
        store: where runs live; None means the store under ``CNNLAB_HOME``.
            It is passed down to training (its cache keeps VGG16 features).
        use_cache: return a stored complete run with the same key if any.
        progress: a callable taking :class:`core.training.train.ProgressEvent`.
        stop_event: set it to stop training early; the run is then stored
            with status "stopped" and never served as a cached answer.
            ``CNNLAB_MAX_TRAIN_SECONDS`` stops it the same way (:func:`stop_reason` says why).

    Returns:
        The :class:`RunRecord`; ``record.cached`` tells whether it was stored before.

    Raises:
        core.data.DataError: the dataset cannot be used (the message says why).
        ArchitectureError: the network does not fit its input (before any training).
        NothingToKeep: stopped before the first epoch ended.
    """
    store = store if store is not None else RunStore()  # the one place a default store is chosen
    train_cfg = settle_precision(model_cfg, train_cfg)  # "auto" decided once, here: the key and the training use it
    ds, model_cfg, key = resolve(source, model_cfg, train_cfg, store)
    check_submission(model_cfg, train_cfg)  # checked once, with the data's class count
    if use_cache:
        found = stored_answer(store, key, ds)
        if found is not None:
            return found
    artifacts = compute_run(
        ds,
        model_cfg,
        train_cfg,
        key,
        source=str(source),
        store=store,
        progress=progress,
        stop_event=stop_event,
        time_budget=time_budget_for(store, source)[0],  # decided once, here, like the precision
    )
    return save_run(store, artifacts)


def compute_run(
    ds: Dataset,
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    key: str,
    *,
    source: str,
    store: RunStore | None,
    progress=None,
    stop_event: threading.Event | None = None,
    time_budget: float | None = None,
) -> RunArtifacts:
    """Prepare, train, evaluate and diagnose one run; nothing is stored.

    ``ds``, ``model_cfg`` and ``key`` are :func:`resolve`'s; ``store`` only
    lends its cache (VGG16 features; None on a cluster worker, which has no store).
    The configs come checked from where the job was submitted (:func:`run_experiment`,
    :meth:`core.jobs.worker.TrainingWorker.submit`): the network against the server's
    limits, and the precision decided (:func:`core.base.precision.settle_precision`);
    nothing here decides either again. ``time_budget`` (seconds, None: no limit) is decided there
    too (``CNNLAB_MAX_TRAIN_SECONDS``); a run it stops is stored as stopped, with
    ``extra["stopped_by"] == "time budget"`` and ``extra["time_budget"]``.
    """
    decided_precision(train_cfg)  # "auto" here would be decided again from this machine's CPU: a bug
    table = layer_table(model_cfg)
    started = time.time()
    data = run_split(ds, train_cfg)
    result = train_model(
        model_cfg, train_cfg, data, store=store, progress=progress, stop_event=stop_event, time_budget=time_budget
    )
    if not result.history.get("loss"):
        raise NothingToKeep(
            "Training was stopped before its first epoch ended, so there is nothing to keep. "
            "Earlier runs are untouched; start it again and let it run at least one epoch."
        )
    probs = predict_proba(result.model, data.x_test, preprocess=model_preprocess(model_cfg))  # streamed in batches
    # The validation images' probabilities too: temperature scaling is fitted on them (core.training.heldout).
    val_probs = predict_proba(result.model, data.x_val, preprocess=model_preprocess(model_cfg))
    report = evaluate(data.y_test_int, probs, data.class_names)
    epochs_run = len(result.history["loss"])
    diagnosis = diagnose(
        result.history,
        restored_epoch=result.restored_epoch,
        stopped_epoch=epochs_run if result.stopped_early else None,
        num_classes=len(data.class_names),
        model_cfg=model_cfg,
        train_cfg=train_cfg,
    )
    status = "stopped" if result.stopped_by_user or result.stopped_by_budget else "complete"
    extra = dict(getattr(result, "extra", None) or {})
    if time_budget:
        extra["time_budget"] = float(time_budget)
    if result.stopped_by_budget:
        extra["stopped_by"] = BUDGET_STOP
    run_id = key if status == "complete" else f"{key}-stopped-{uuid.uuid4().hex[:6]}"
    record = RunRecord(
        run_id=run_id,
        key=key,
        status=status,
        created=started,
        source=source,
        label=describe(model_cfg, train_cfg),
        data={
            **data_report(ds),
            "n_train": int(len(data.y_train_int)),
            "n_val": int(len(data.y_val_int)),
            "n_test": int(len(data.y_test_int)),
            "class_counts": {k: [int(v) for v in vs] for k, vs in data.class_counts.items()},
        },
        model_config=model_cfg.to_dict(),
        train_config=train_cfg.to_dict(),
        layers={
            "total_params": table.total_params,
            "trainable_params": table.trainable_params,
            "non_trainable_params": table.non_trainable_params,
        },
        history=result.history,
        epoch_seconds=[float(s) for s in result.epoch_seconds],
        best_epoch=int(result.best_epoch),
        stopped_early=bool(result.stopped_early),
        stopped_by_user=bool(result.stopped_by_user),
        restored_epoch=result.restored_epoch,
        phases=result.phases,
        diagnosis=diagnosis.to_dict(),
        test=report.to_dict(),
        seconds=float(result.seconds),
        versions=versions(),
        extra=extra,
    )
    arrays = {
        "test_images": np.ascontiguousarray(ds.images[data.test_index]),
        "y_true": np.asarray(data.y_test_int, dtype=np.int64),
        "probs": probs.astype(np.float32),
        "test_index": np.asarray(data.test_index, dtype=np.int64),
        "y_val": np.asarray(data.y_val_int, dtype=np.int64),
        "val_probs": val_probs.astype(np.float32),
    }
    return RunArtifacts(record=record, model=result.model, arrays=arrays)


def stop_reason(record: RunRecord) -> str | None:
    """Why a stopped run ended before its last planned epoch, when not by a person (its time budget); else None."""
    if record.extra.get("stopped_by") != BUDGET_STOP:
        return None
    whose = "the challenge's" if record.extra.get("time_budget_by") == "challenge" else "the"
    return budget_stop_text(record.extra["time_budget"], len(record.history.get("loss", [])), whose=whose)


class PrecisionMismatch(UserError):
    """A result computed in another precision than the one its run key names: it is not stored."""


def check_precision(record: RunRecord) -> None:
    """Refuse a record whose training computed in another precision than its key names (``train_config``)."""
    named = record.train_config.get("precision")
    computed = record.extra.get("precision")
    if computed != named:
        raise PrecisionMismatch(
            f"This training ran in {computed} although it was started as a {named} run, so it was not stored "
            "(a run is kept under the precision it computed in). Start it again; earlier runs are untouched."
        )


def save_run(store: RunStore, artifacts: RunArtifacts) -> RunRecord:
    """Store a computed run (same run id, same record, wherever it was trained); returns its record.

    Raises:
        PrecisionMismatch: the run computed in another precision than its key names.
    """
    check_precision(artifacts.record)
    ch = challenge_for_source(store, artifacts.record.source)
    if ch is not None:  # trained on a challenge's images: the run carries the challenge (and whose budget stopped it)
        artifacts.record.extra["challenge"] = ch.id
        if by_challenge(artifacts.record.extra.get("time_budget"), ch):
            artifacts.record.extra["time_budget_by"] = "challenge"
    store.save(artifacts.record, model=artifacts.model, arrays=artifacts.arrays)
    return artifacts.record


def predict_images(store: RunStore, record: RunRecord, images_uint8: np.ndarray, model: Any = None) -> np.ndarray:
    """Class probabilities of a run's best model for new images (N, H, W, C) uint8 at the run's size."""
    model_cfg = ModelConfig.from_dict(record.model_config)
    if model is None:
        model = store.load_model(record.run_id)
    return predict_proba(model, np.asarray(images_uint8, dtype=np.uint8), preprocess=model_preprocess(model_cfg))
