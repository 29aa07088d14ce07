"""Cached handles on core: the run store, the worker, records, arrays, models, datasets.

Streamlit's two caches, as the house style uses them:

- ``st.cache_resource`` for shared objects that must not be copied: the
  :class:`~core.store.runstore.RunStore`, the training worker, loaded Keras models.
  A model is shared by every session, so it is only ever used to predict
  (under a lock), never trained or changed.
- ``st.cache_data`` for values: run records, test arrays, preparation
  summaries, augmentation previews, and what the Inside page computes per
  (run, image, layer): feature maps, worked convolutions, Grad-CAM maps; per (run, image, class, method) the
  saliency maps and their sanity check; per (run, projection) the test images' embedding; and each run's
  calibration and its images most likely mislabelled. A run's validation images (read again from its data)
  are shared read-only (st.cache_resource).
  Each caller gets its own copy.

Activation maximisation's images are kept by the run store itself, in the run's folder (:func:`maximised`),
so every session and a server restart find them.

Everything is keyed by the store's home folder (``CNNLAB_HOME``), so tests
that point the app at another home get another store. Importing this module
does not import TensorFlow.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import streamlit as st

from core.base import AugmentConfig, ModelConfig, PathRefused, TrainConfig, UserError, data_roots
from core.data import BundledInfo, Dataset, HealthReport, bundled_datasets, data_health, load_dataset, prepare_data
from core.inside import (
    Embedding,
    Filters,
    GradCam,
    Maximised,
    ModelMissingError,
    Occlusion,
    RunNetwork,
    Saliency,
    SanityRow,
    WorkedConvolution,
    embed_run,
    filters,
    grad_cam,
    maximise_run,
    occlusion,
    saliency,
    sanity_check,
    stored_maximised,
    top_layers,
    work_convolution,
)
from core.jobs import TrainingWorker, get_worker
from core.jobs.challenge_rules import check_not_withheld, withheld, withheld_by
from core.models import preview
from core.results import Calibration, Mislabels
from core.store import RunRecord, RunStore, Students, default_home
from core.training import (
    LRFind,
    predict_images,
    resolve,
    run_calibration,
    run_mislabels,
    stored_lr_find,
    stored_validation,
    validation_images,
    validation_predictions,
)
from ui import identity


def home() -> str:
    return str(default_home())


# --------------------------------------------------------------------------- store and worker


@st.cache_resource(show_spinner=False)
def _store(home_dir: str) -> RunStore:
    return RunStore(home_dir)


def store() -> RunStore:
    """The run store under CNNLAB_HOME (one per process)."""
    return _store(home())


@st.cache_resource(show_spinner=False)
def _students(home_dir: str) -> Students:
    return Students(_store(home_dir))


def students() -> Students:
    """The students known by name in this store (class-password logins, the teacher's renames)."""
    return _students(home())


def worker() -> TrainingWorker:
    """The process-wide training worker: every session and tab shares it (on CNNLAB_HOME's store)."""
    return get_worker()


# --------------------------------------------------------------------------- runs


# Keyed by the store's stamp. Two writes within one tick of the file system's clock (a few ms) could leave it as it
# was; the worker's heartbeat (core.jobs.jobtable.HEARTBEAT, 5 s) is a write, so such a list is read again soon.
@st.cache_data(show_spinner=False, max_entries=256)
def _list_runs(home_dir: str, viewer: str | None, stamp: tuple[int, ...]) -> list[dict[str, Any]]:
    return _store(home_dir).list_runs(viewer=viewer)


def list_runs() -> list[dict[str, Any]]:
    """Summaries of the runs this session may see, newest first.

    Runs on bundled data and the teacher's folders are everyone's; runs on an
    upload only its uploaders'; a teacher sees all (:mod:`ui.identity`).
    Read once per viewer and state of the store (:meth:`RunStore.stamp`): the sidebar asks on every
    rerun of every session, and the answer changes only when the store does (a new run shows at once).
    """
    runs = _list_runs(home(), identity.viewer(), store().stamp())
    if identity.is_teacher():
        return runs
    aside = withheld_by(store())  # runs on a challenge's data show its hidden images: not before the reveal
    return [r for r in runs if aside(r["source"]) is None]


def all_runs() -> list[dict[str, Any]]:
    """Summaries of every stored run, newest first, whoever may see them: for a page that filters them itself
    (the challenge board keeps a student's own). Read as :func:`list_runs` is, once per state of the store."""
    return _list_runs(home(), None, store().stamp())


@st.cache_data(show_spinner=False, max_entries=256)
def _resolve_student(home_dir: str, user_id: str, stamp: tuple[int, ...]) -> str:
    return _students(home_dir).resolve(user_id)


def resolve_student(user_id: str) -> str:
    """The id a student's user id stands for now (:meth:`Students.resolve`: the teacher's renames and merges).

    Read once per state of the store (:meth:`RunStore.stamp`): the login asks on every rerun of every session.
    """
    return _resolve_student(home(), user_id, store().stamp())


def stored_run(source: str, model_cfg: ModelConfig, train_cfg: TrainConfig) -> RunRecord | None:
    """The stored complete run of this configuration on this data, if any: what Train would bring back at once.

    Raises DataError when the data cannot be read (the message says why).
    """
    _, _, key = resolve(source, model_cfg, train_cfg, store())
    return store().find(key)


@st.cache_data(show_spinner=False, max_entries=32)
def _lr_find(home_dir: str, key: str) -> LRFind | None:
    return stored_lr_find(_store(home_dir), key)


def lr_find(key: str | None) -> LRFind | None:
    """A stored learning-rate range test (cached: a stored test never changes), or None."""
    if not key:
        return None
    found = _lr_find(home(), key)
    if found is None:
        _lr_find.clear(home(), key)  # do not remember a miss
    elif not store().may_see(found.source, identity.viewer()):
        return None
    return found


@st.cache_data(show_spinner=False, max_entries=64)
def _record(home_dir: str, run_id: str) -> RunRecord | None:
    return _store(home_dir).get(run_id)


def record(run_id: str | None) -> RunRecord | None:
    """A stored run's record (cached: a run's record never changes once written)."""
    if not run_id:
        return None
    rec = _record(home(), run_id)
    if rec is None:
        _record.clear(home(), run_id)  # do not remember a miss: the run may be written soon
    elif not store().may_see(rec.source, identity.viewer()) or set_aside(rec.source):
        return None  # another student's upload, or a challenge's data before the reveal: not theirs to see
    return rec


@st.cache_data(show_spinner=False, max_entries=8)
def _arrays(home_dir: str, run_id: str) -> dict[str, Any]:
    return _store(home_dir).load_arrays(run_id)


def arrays(run_id: str) -> dict[str, Any]:
    """The run's test images, true labels and predicted probabilities (may be empty)."""
    return _arrays(home(), run_id)


@st.cache_resource(show_spinner=False, max_entries=4)
def _model(home_dir: str, run_id: str) -> tuple[Any, threading.Lock]:
    model = _store(home_dir).load_model(run_id)
    model.trainable = False  # shared by every session: predicted with, never trained
    return model, threading.Lock()


def predict(rec: RunRecord, images_uint8) -> Any:
    """Class probabilities from the run's saved model, loaded once per run and shared read-only."""
    model, lock = _model(home(), rec.run_id)
    with lock:
        return predict_images(store(), rec, images_uint8, model=model)


# --------------------------------------------------------------------------- inside a run's network


@st.cache_resource(show_spinner=False, max_entries=4)
def _network(home_dir: str, run_id: str) -> RunNetwork:
    model, lock = _model(home_dir, run_id)
    with lock:  # copied into a flat network of its own: the shared model is only read
        return RunNetwork(_store(home_dir).get(run_id), model)


def has_model(run_id: str) -> bool:
    return store().model_path(run_id).exists()


def network(rec: RunRecord) -> RunNetwork:
    """The run's network opened up (core.inside), built once per run from the shared loaded model.

    Raises ModelMissingError (a UserError, its message for the student) when the run has no model file.
    """
    if not has_model(rec.run_id):
        raise ModelMissingError(
            f"This run ({rec.label}) has no saved network file, so there is nothing to look inside. "
            "Pick another run in the sidebar, or train this configuration again on the Train page."
        )
    return _network(home(), rec.run_id)


# The image arrives unhashed (``_image``); ``image_key`` names it: "test:<index>" or "upload:<sha256>".
@st.cache_data(show_spinner=False, max_entries=256)
def _feature_maps(home_dir: str, run_id: str, image_key: str, layer: str, _image) -> Any:
    return _network(home_dir, run_id).feature_maps(_image, layer)


def feature_maps(rec: RunRecord, image_key: str, image, layer: str):
    """One layer's (H, W, C) output for one image."""
    return _feature_maps(home(), rec.run_id, image_key, layer, image)


@st.cache_data(show_spinner=False, max_entries=64)
def _probabilities(home_dir: str, run_id: str, image_key: str, _image) -> Any:
    return _network(home_dir, run_id).probabilities(_image[None])[0]


def probabilities(rec: RunRecord, image_key: str, image):
    return _probabilities(home(), rec.run_id, image_key, image)


@st.cache_data(show_spinner=False, max_entries=256)
def _worked(
    home_dir: str, run_id: str, image_key: str, layer: str, unit: tuple[int, int, int], _image
) -> WorkedConvolution:
    return work_convolution(_network(home_dir, run_id), _image, layer, *unit)


def worked(rec: RunRecord, image_key: str, image, layer: str, row: int, col: int, channel: int) -> WorkedConvolution:
    """One unit of a conv layer computed by hand (core.inside.work_convolution)."""
    return _worked(home(), rec.run_id, image_key, layer, (int(row), int(col), int(channel)), image)


@st.cache_data(show_spinner=False, max_entries=128)
def _grad_cam(
    home_dir: str, run_id: str, image_key: str, class_index: int | None, layer: str | None, _image
) -> GradCam:
    return grad_cam(_network(home_dir, run_id), _image, class_index, layer)


def gradcam(rec: RunRecord, image_key: str, image, class_index: int | None = None, layer: str | None = None) -> GradCam:
    return _grad_cam(home(), rec.run_id, image_key, class_index, layer, image)


@st.cache_data(show_spinner=False, max_entries=32)
def _occlusion(home_dir: str, run_id: str, image_key: str, class_index: int, _image) -> Occlusion:
    return occlusion(_network(home_dir, run_id), _image, class_index)


def occluded(rec: RunRecord, image_key: str, image, class_index: int) -> Occlusion:
    return _occlusion(home(), rec.run_id, image_key, class_index, image)


@st.cache_data(show_spinner=False, max_entries=128)
def _saliency(home_dir: str, run_id: str, image_key: str, class_index: int, method: str, _image) -> Saliency:
    return saliency(_network(home_dir, run_id), _image, method, class_index)


def saliency_map(rec: RunRecord, image_key: str, image, class_index: int, method: str) -> Saliency:
    """One saliency method's map (core.inside.saliency) for one image and class, computed once per
    (run, image, class, method)."""
    return _saliency(home(), rec.run_id, image_key, int(class_index), method, image)


@st.cache_resource(show_spinner=False, max_entries=2)
def _randomised(home_dir: str, run_id: str) -> RunNetwork:
    """The run's network with its top layers randomised (core.inside.top_layers, seeded): a copy, built once."""
    net = _network(home_dir, run_id)
    return net.randomised(top_layers(net))


@st.cache_data(show_spinner=False, max_entries=128)
def _sanity_row(home_dir: str, run_id: str, image_key: str, class_index: int, method: str, _image) -> SanityRow:
    original = _saliency(home_dir, run_id, image_key, class_index, method, _image)
    net, randomised = _network(home_dir, run_id), _randomised(home_dir, run_id)
    check = sanity_check(net, _image, class_index, [method], {method: original}, randomised=randomised)
    return check.rows[0]


def sanity_row(rec: RunRecord, image_key: str, image, class_index: int, method: str) -> SanityRow:
    """One method's map again with the top layers randomised, and its rank correlation to the original: once per
    (run, image, class, method)."""
    return _sanity_row(home(), rec.run_id, image_key, int(class_index), method, image)


@st.cache_data(show_spinner=False, max_entries=32)
def _filters(home_dir: str, run_id: str, layer: str | None) -> Filters:
    return filters(_network(home_dir, run_id), layer)


def conv_filters(rec: RunRecord, layer: str | None = None) -> Filters:
    """A conv layer's kernels (None: the first convolution's)."""
    return _filters(home(), rec.run_id, layer)


def kept_maximised(rec: RunRecord, layer: str | None, filter_index: int | None, class_index: int | None):
    """The image grown for this filter (or class) with the default settings, if one is kept in the run's
    folder (core.inside.stored_maximised); None otherwise. Nothing heavy: one small file read."""
    return stored_maximised(store(), network(rec), layer, filter_index, class_index)


def maximised(
    rec: RunRecord, layer: str | None, filter_index: int | None, class_index: int | None, progress=None
) -> Maximised:
    """Grow the image (core.inside.maximise_run on the shared network, ``progress(step, steps)`` after each
    step) and keep it in the run's folder, where :func:`kept_maximised` finds it for every session."""
    return maximise_run(store(), rec.run_id, layer, filter_index, class_index, progress=progress, net=network(rec))


@st.cache_data(show_spinner=False, max_entries=16)
def _embedding(home_dir: str, run_id: str, method: str, with_train: bool) -> Embedding:
    return embed_run(_store(home_dir), run_id, method, net=_network(home_dir, run_id), with_train=with_train)


def embedding(rec: RunRecord, method: str, with_train: bool = False) -> Embedding:
    """The run's test images (``with_train``: and its training images) in its penultimate layer's feature space,
    projected with ``method`` ("pca" or "tsne"), with the separation number: computed once per run, method and
    choice of images (core.inside.embed_run). ``rec`` comes from :func:`record`, which already hides another
    session's upload runs."""
    return _embedding(home(), rec.run_id, method, bool(with_train))


# --------------------------------------------------------------------------- datasets


@st.cache_data(show_spinner=False, ttl=30)
def bundled() -> list[BundledInfo]:
    """The datasets in sample_data/ (re-read every 30 s: they can be generated while the app runs)."""
    return bundled_datasets()


def set_aside(source: str | None) -> bool:
    """Whether a student may not read ``source`` now: a challenge's hidden images come from it (never for a teacher)."""
    return not identity.is_teacher() and withheld(store(), source) is not None


def bundled_info(source: str | None) -> BundledInfo | None:
    return next((b for b in bundled() if b.name == source), None)


_decoding_lock = threading.Lock()
_decoding: dict[tuple[str, str, int, int], threading.Lock] = {}


def _load(home_dir: str, source: str, image_size: int, channels: int) -> Dataset:
    """:func:`core.data.load_dataset` for the dashboard, one session at a time per dataset and size.

    Thirty students opening the Architecture page together after a server start all ask for the same
    dataset at once: without this, each of them decoded its 1,000 images in parallel (bench/RESULTS.md,
    issue 20); now one decodes and the others wait and get the copy core.data keeps in memory.
    """
    key = (home_dir, source, int(image_size), int(channels))
    with _decoding_lock:
        lock = _decoding.setdefault(key, threading.Lock())
    with lock:
        return load_dataset(source, image_size=image_size, channels=channels, cache_dir=_store(home_dir).cache_dir)


def _may_read(source: str) -> None:
    if bundled_info(source) is None and not store().may_see(source, identity.viewer()):
        raise PathRefused("This upload belongs to another session. Upload your own zip on the Data page.")
    if not identity.is_teacher():
        check_not_withheld(store(), source)  # a challenge's hidden images come from it: set aside until revealed


def dataset(source: str, image_size: int = 64, channels: int = 3) -> Dataset:
    """The decoded dataset (core.data keeps the last few in memory and notices changed files).

    Decoded once into the run store's cache, memory-mapped after that (also by the next server process).
    Raises PathRefused for a folder outside CNNLAB_DATA_ROOTS or another session's upload.
    """
    _may_read(source)
    return _load(home(), source, image_size, channels)


@st.cache_data(show_spinner=False, ttl=30, max_entries=64)
def _image_count(home_dir: str, source: str, image_size: int, channels: int) -> int:
    return len(_load(home_dir, source, image_size, channels))


def image_count(source: str, image_size: int = 64, channels: int = 3, *, check: bool = True) -> int:
    """How many images the dataset has (the training time estimates' number), without reading its folder again.

    Remembered for 30 seconds, like :func:`bundled`: :func:`dataset` lists the dataset's folder to notice
    changed files, and the Architecture and Train pages used to do that on every rerun of every session (for
    each training in the queue too). ``check=False`` for the jobs already queued, which may be another
    student's upload: only their number is used, for the wait. Raises DataError or PathRefused as
    :func:`dataset` does.
    """
    if check:
        _may_read(source)
    return _image_count(home(), source, int(image_size), int(channels))


def class_names(source: str, image_size: int = 64, channels: int = 3) -> list[str]:
    info = bundled_info(source)
    if info is not None:
        return list(info.classes)
    return list(dataset(source, image_size, channels).class_names)


def fit_classes(cfg: ModelConfig, source: str | None) -> ModelConfig:
    """``cfg`` with as many outputs as the dataset has classes (unchanged if the data cannot be read)."""
    if not source:
        return cfg
    try:
        n = len(class_names(source, cfg.input_size, cfg.channels))
    except ValueError:
        return cfg
    return cfg.replace(num_classes=n) if n >= 2 and n != cfg.num_classes else cfg


@st.cache_data(show_spinner=False, max_entries=16)
def _preparation(
    fingerprint: str, loss: str, test_size: float, val_split: float, seed: int, train_fraction: float, _ds: Dataset
) -> dict[str, Any]:
    prepared = prepare_data(
        _ds, loss=loss, test_size=test_size, val_split=val_split, seed=seed, train_fraction=train_fraction
    )
    return prepared.to_dict()


def preparation(
    ds: Dataset, loss: str, test_size: float, val_split: float, seed: int, train_fraction: float = 1.0
) -> dict[str, Any]:
    """``PreparedData.to_dict()`` (steps and class counts, no arrays), cached by the data's fingerprint."""
    return _preparation(ds.fingerprint, loss, float(test_size), float(val_split), int(seed), float(train_fraction), ds)


@st.cache_data(show_spinner=False, max_entries=16)
def _health(
    fingerprint: str,
    files: tuple[str, ...],
    test_size: float,
    val_split: float,
    seed: int,
    train_fraction: float,
    _ds: Dataset,
) -> HealthReport:
    return data_health(_ds, test_size=test_size, val_split=val_split, seed=seed, train_fraction=train_fraction)


def health(ds: Dataset, test_size: float, val_split: float, seed: int, train_fraction: float = 1.0) -> HealthReport:
    """:func:`core.data.data_health` with the Train page's split, cached by the data's pixels and file names."""
    return _health(
        ds.fingerprint, tuple(ds.files), float(test_size), float(val_split), int(seed), float(train_fraction), ds
    )


def sample_indices(ds: Dataset, per_class: int) -> dict[str, list[int]]:
    """The first ``per_class`` image indices of each class, for a sample grid."""
    out: dict[str, list[int]] = {name: [] for name in ds.class_names}
    for i, label in enumerate(ds.labels.tolist()):
        bucket = out[ds.class_names[label]]
        if len(bucket) < per_class:
            bucket.append(i)
    return out


def server_paths_allowed() -> bool:
    """Whether the dashboard offers folders and weights files on the server: only when the teacher
    names the folders it may read (``CNNLAB_DATA_ROOTS``; off by default)."""
    return bool(data_roots())


def save_upload(data: bytes, name: str) -> Path:
    """Keep an uploaded zip in the store's uploads folder (named by its SHA-256), owned by this session's user.

    Raises UploadQuotaError (naming the file as ``name``) when the student's uploads would pass their quota.
    """
    return store().save_upload(data, identity.user_id(), name)


def upload_dataset(path: str, name: str) -> Dataset:
    """:func:`dataset` for an upload; an error names the file as the student named it (``name``), not its
    path on the server. A refused upload is released at once (deleted unless someone else has it)."""
    try:
        return dataset(path)
    except UserError as exc:
        release_upload(path)
        raise UserError(str(exc).replace(path, name)) from None


def release_upload(path: str) -> bool:
    """This session no longer needs the upload (refused, or replaced by another): deleted unless a run uses it."""
    return store().release_upload(path, identity.user_id())


@st.cache_data(show_spinner=False, max_entries=64)
def augment_preview(_image, image_key: str, cfg: AugmentConfig, n: int, seed: int):
    """``n`` augmented versions of one image (imports TensorFlow on first use)."""
    return preview(_image, cfg, n=n, seed=seed)


# --------------------------------------------------------------------------- calibration


@st.cache_data(show_spinner=False, max_entries=32)
def _calibration(home_dir: str, run_id: str) -> Calibration:
    return _with_model(home_dir, run_id, lambda store_, rec, model: run_calibration(store_, rec, model=model))


def calibration(rec: RunRecord) -> Calibration:
    """The run's reliability, ECE and temperature scaling (core.training.run_calibration), once per run.

    Raises HeldOutUnavailable (a UserError) when the run kept no test predictions.
    """
    return _calibration(home(), rec.run_id)


# --------------------------------------------------------------------------- held-out images


def _with_model(home_dir: str, run_id: str, compute):
    """``compute(store, record, model)``: with the run's shared model, under its lock, when its validation images
    must be scored again (an older run); else with None (NumPy only, or the reason it cannot be done)."""
    store_ = _store(home_dir)
    rec = store_.get(run_id)
    if stored_validation(store_, rec) is not None or not store_.model_path(run_id).exists():
        return compute(store_, rec, None)
    model, lock = _model(home_dir, run_id)
    with lock:
        return compute(store_, rec, model)


@st.cache_data(show_spinner=False, max_entries=32)
def _mislabels(home_dir: str, run_id: str, k: int) -> Mislabels:
    return _with_model(home_dir, run_id, lambda store_, rec, model: run_mislabels(store_, rec, k=k, model=model))


def mislabels(rec: RunRecord, k: int) -> Mislabels:
    """The run's held-out images most likely mislabelled (core.training.run_mislabels), once per run and k.

    Raises HeldOutUnavailable (a UserError) when the run kept no test predictions.
    """
    return _mislabels(home(), rec.run_id, int(k))


@st.cache_resource(show_spinner=False, max_entries=4)
def _validation(home_dir: str, run_id: str) -> tuple[Any, Any, Any]:
    def compute(store_, rec, model):
        y, probs = validation_predictions(store_, rec, model)
        images = validation_images(store_, rec)
        for a in (y, probs, images):
            a.flags.writeable = False  # shared by every session
        return y, probs, images

    return _with_model(home_dir, run_id, compute)


def validation(rec: RunRecord) -> tuple[Any, Any, Any]:
    """The run's validation labels, probabilities and images (uint8), read-only and shared.

    Raises HeldOutUnavailable when its data cannot be read again or changed since the training.
    """
    return _validation(home(), rec.run_id)
