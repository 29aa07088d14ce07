"""A stored run's validation predictions, and from them its calibration (:mod:`core.results.calibration`) and
the held-out images most likely mislabelled (:mod:`core.results.mislabel`).

Runs trained since calibration was added keep their validation images' probabilities in their arrays
(``y_val``, ``val_probs``, written by :func:`core.training.experiment.compute_run`). For an older run they
are computed once from its stored best model on its own validation split (the run's data, test size,
validation split, seed and training fraction give the same split the training saw; the data's fingerprint
and the stored test indices are checked against the run's) and kept in the store's cache, so the next
look costs no TensorFlow. A read-only store computes them without keeping them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from core.base.config import ModelConfig, TrainConfig
from core.base.errors import UserError
from core.data import Dataset, PreparedData, load_dataset
from core.results.calibration import N_BINS, Calibration, calibrate
from core.results.mislabel import TOP_K, Mislabels, rank_mislabels
from core.store.runstore import RunRecord, RunStore
from core.training.experiment import model_preprocess, run_split
from core.training.fit import predict_proba

CACHE_KIND = "validation"  # the store's cache folder for computed validation predictions


class HeldOutUnavailable(UserError):
    """A run's validation predictions cannot be had (no model file, data gone or changed): the message says why."""


def _cache_key(rec: RunRecord) -> str:
    return f"{rec.run_id}-{int(rec.created * 1000)}"  # a run trained again under the same id is a new entry


def stored_validation(store: RunStore, rec: RunRecord) -> tuple[np.ndarray, np.ndarray] | None:
    """``(y_val, val_probs)`` kept with the run or in the cache, without TensorFlow; None when not kept."""
    arrays = store.load_arrays(rec.run_id)
    if {"y_val", "val_probs"} <= set(arrays):
        return arrays["y_val"], arrays["val_probs"]
    cached = store.cache_get(CACHE_KIND, _cache_key(rec))
    if cached is not None and {"y_val", "val_probs"} <= set(cached):
        return cached["y_val"], cached["val_probs"]
    return None


def _split_again(store: RunStore, rec: RunRecord) -> tuple[Dataset, PreparedData]:
    """The run's dataset read again and split as its training split it, checked against what it trained on.

    Raises:
        HeldOutUnavailable: the data cannot be read, changed since the training, or splits otherwise.
    """
    model_cfg = ModelConfig.from_dict(rec.model_config)
    cache_dir = None if store.readonly else store.cache_dir
    try:
        ds = load_dataset(rec.source, image_size=model_cfg.input_size, channels=model_cfg.channels, cache_dir=cache_dir)
    except UserError as exc:
        raise HeldOutUnavailable(f"The run's images cannot be read again ({exc})") from None
    trained_on = (rec.data or {}).get("fingerprint")
    if trained_on and ds.fingerprint != trained_on:
        raise HeldOutUnavailable(
            f"The images in {rec.source} changed since this run was trained, so its validation split is gone. "
            "Train the run again to measure it."
        )
    data = run_split(ds, TrainConfig.from_dict(rec.train_config))
    stored_test = store.load_arrays(rec.run_id).get("test_index")
    if stored_test is not None and not np.array_equal(np.asarray(stored_test), np.asarray(data.test_index)):
        raise HeldOutUnavailable(
            "The split made again from this run's settings is not the one it was trained on. Train the run again "
            "to measure it."
        )
    return ds, data


def _require_model(store: RunStore, rec: RunRecord, model: Any) -> None:
    if model is None and not store.model_path(rec.run_id).exists():
        raise HeldOutUnavailable("This run has no saved network file, so its validation images cannot be scored again.")


def _score_validation(store: RunStore, rec: RunRecord, data: PreparedData, model: Any) -> tuple[np.ndarray, np.ndarray]:
    """The validation images of ``data`` scored by the run's model, kept in the cache (unless read-only)."""
    _require_model(store, rec, model)
    if model is None:
        model = store.load_model(rec.run_id)
    probs = predict_proba(model, data.x_val, preprocess=model_preprocess(ModelConfig.from_dict(rec.model_config)))
    y_val = np.asarray(data.y_val_int, dtype=np.int64)
    if not store.readonly:
        store.cache_put(CACHE_KIND, _cache_key(rec), {"y_val": y_val, "val_probs": probs.astype(np.float32)})
    return y_val, probs


def validation_predictions(store: RunStore, rec: RunRecord, model: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """The run's validation labels and its best model's probabilities for them: ``(y_val, val_probs)``.

    Args:
        store: the run's store (its cache keeps what is computed, unless the store is read-only).
        rec: the stored run.
        model: the run's loaded model (a page's shared copy); None loads it from the store when needed.

    Raises:
        HeldOutUnavailable: the run has no model file, its data cannot be read, or the data changed
            since the training (the message says which, and what to do).
    """
    kept = stored_validation(store, rec)
    if kept is not None:
        return kept
    _require_model(store, rec, model)
    _, data = _split_again(store, rec)
    return _score_validation(store, rec, data, model)


def validation_images(store: RunStore, rec: RunRecord) -> np.ndarray:
    """The run's validation images (uint8, the run's size), in the order of its validation predictions.

    Raises:
        HeldOutUnavailable: the data cannot be read again or changed since the training.
    """
    _, data = _split_again(store, rec)
    return np.ascontiguousarray(data.x_val[:])


def run_mislabels(store: RunStore, rec: RunRecord, k: int = TOP_K, model: Any = None) -> Mislabels:
    """The run's held-out images (validation and test) most likely mislabelled (:mod:`core.results.mislabel`).

    The test predictions are the run's stored ones; the validation ones as :func:`validation_predictions`
    gives them. Each image's file comes from the dataset read again; when it cannot be (gone, changed), the
    test images alone are ranked, without files, and the result's note says why.

    Raises:
        HeldOutUnavailable: the run has no stored test predictions.
    """
    arrays = store.load_arrays(rec.run_id)
    if not {"y_true", "probs"} <= set(arrays):
        raise HeldOutUnavailable("This run has no saved test predictions, so its images cannot be ranked.")
    names = list(rec.test.get("class_names") or rec.data.get("classes", []))
    heldout = {"test": (arrays["y_true"], arrays["probs"])}
    try:
        ds, data = _split_again(store, rec)
        kept = stored_validation(store, rec)
        heldout["val"] = kept if kept is not None else _score_validation(store, rec, data, model)
    except HeldOutUnavailable as exc:
        return rank_mislabels(names, heldout, k=k, note=f"Only the test images: {exc}", run_id=rec.run_id)
    files = {
        split: [ds.files[i] for i in index] for split, index in (("val", data.val_index), ("test", data.test_index))
    }
    return rank_mislabels(names, heldout, k=k, files=files, run_id=rec.run_id)


def run_calibration(store: RunStore, rec: RunRecord, model: Any = None, n_bins: int = N_BINS) -> Calibration:
    """The run's calibration: its test images' reliability before and after a temperature fitted on its
    validation images. When those cannot be had, the test images' bins alone, with a note saying why.

    Raises:
        HeldOutUnavailable: the run has no stored test predictions (nothing to measure).
    """
    arrays = store.load_arrays(rec.run_id)
    if not {"y_true", "probs"} <= set(arrays):
        raise HeldOutUnavailable("This run has no saved test predictions, so its calibration cannot be measured.")
    try:
        y_val, val_probs = validation_predictions(store, rec, model)
    except HeldOutUnavailable as exc:
        note = f"No temperature scaling: {exc}"
        return calibrate(arrays["y_true"], arrays["probs"], n_bins=n_bins, note=note)
    return calibrate(arrays["y_true"], arrays["probs"], y_val, val_probs, n_bins=n_bins)
