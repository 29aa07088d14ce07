"""The training process's side: its tasks and :func:`main`, run as ``python -m core.jobs FD``
(:mod:`core.jobs.__main__`), started by :mod:`core.jobs.process`.

One process per training, a fresh interpreter each time: TensorFlow keeps
about 12-15 MB per trained model that nothing gives back (keras-team/keras
#20552), and a crash or an out-of-memory kill inside it must not take the
server down. The process trains one task and exits, and its memory goes
with it. It is started before its task is known (the worker keeps one warm
per slot, :class:`core.jobs.process.WarmPool`): it imports TensorFlow, sets its
threads and priority, says it is ready, and waits.

The parent and the child talk over a private socket pair (file descriptor
``FD``, inherited), with :class:`multiprocessing.connection.Connection`'s
messages; both ends are this program, so the pickles are our own::

    parent -> child   ("task", task)             once, first (whenever the parent has one)
                      ("stop", None)             stop after the current batch
    child -> parent   ("ready", info)            pid, threads: warm (TensorFlow imported), waiting for its task
                      ("took", None)             it has the task: a death from now on is this training's
                      ("progress", ProgressEvent)  per batch (at most ~10 a second) and per epoch
                      ("result", result)         {"run_id", "status"} or the artifacts (see below); a range
                                                 test's: {"lr_find": key, "status"} (or its arrays)
                      ("error", error)           {"kind": "user" | "nothing" | "unexpected", "message", "detail"}

A task is a dict: the dataset's arrays (``dataset_payload``), the two configs,
the run key and the source, and ``home``: with a store home, the child saves
the run there (the store is safe to share between processes) and answers its
run id; without one (a cluster worker, which has no store), it answers the
artifacts: the record, the ``.keras`` file's bytes and the test arrays.

If the parent dies, the connection closes and the child exits at once
without storing anything: a killed server leaves no training behind.
"""

from __future__ import annotations

import os
import queue
import tempfile
import threading
import traceback
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np

from core.base.config import ModelConfig, TrainConfig
from core.base.environment import settings
from core.base.errors import UserError, plain_message
from core.base.limits import resource_message
from core.base.precision import run_precision
from core.data import Dataset
from core.data.dataset import SkippedFile
from core.store.runstore import RunRecord, RunStore
from core.training.experiment import NothingToKeep, RunArtifacts, compute_run, save_run
from core.training.lr_find import LRRange, RangeTestStopped, compute_lr_find, lr_find_arrays, save_lr_find

EXIT_ORPHANED = 70  # the parent went away: nothing was stored
THREAD_ENV = ("TF_NUM_INTRAOP_THREADS", "OMP_NUM_THREADS")


def dataset_payload(ds: Dataset, *, same_machine: bool = False) -> dict[str, Any]:
    """What a training process needs of a dataset: its arrays, names and fingerprint (no files are read again).

    On the same machine, images already memory-mapped from the run store's
    cache (:mod:`core.data.imagecache`) travel as the path of their ``.npy``
    file, so a large dataset is neither copied through the socket nor held
    twice: the child maps the same file.
    """
    images = ds.images
    mapped = isinstance(images, np.memmap) and str(images.filename or "").endswith(".npy")
    return {
        "images": None if same_machine and mapped else np.ascontiguousarray(images),
        "images_npy": str(images.filename) if same_machine and mapped else None,
        "images_shape": list(images.shape),
        "labels": np.asarray(ds.labels),
        "class_names": list(ds.class_names),
        "skipped": [s.to_dict() for s in ds.skipped],
        "source": ds.source,
        "fingerprint": ds.fingerprint,
        "files": list(ds.files),
    }


def dataset_from_payload(d: dict[str, Any]) -> Dataset:
    if d.get("images_npy"):
        images = np.load(d["images_npy"], mmap_mode="r")
        if list(images.shape) != list(d["images_shape"]):
            raise RuntimeError(f"The cached images at {d['images_npy']} changed while the training started.")
    else:
        images = np.asarray(d["images"])
        images.flags.writeable = False
    labels = np.asarray(d["labels"])
    labels.flags.writeable = False
    return Dataset(
        images=images,
        labels=labels,
        class_names=list(d["class_names"]),
        skipped=[SkippedFile(**s) for s in d["skipped"]],
        source=d["source"],
        fingerprint=d["fingerprint"],
        files=list(d["files"]),
    )


def make_task(
    ds: Dataset,
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    key: str,
    source: str,
    home: str | None,
    time_budget: float | None = None,
    lr_range: LRRange | None = None,
) -> dict[str, Any]:
    """A training task for :func:`run_task` (in a child process, here or on a cluster worker).

    ``time_budget`` (seconds, None: no limit) travels with the task, decided where the job was
    submitted: a child started before the job, or a cluster worker, has not read the server's setting.
    With ``lr_range`` the task is a learning-rate range test (kind "lr-find",
    :mod:`core.training.lr_find`) rather than a training (kind "train"): the same data, configs and
    key travel the same way, and only what the child runs and answers differs.
    """
    return {
        "kind": "train" if lr_range is None else "lr-find",
        "lr_range": None if lr_range is None else lr_range.to_dict(),
        "dataset": dataset_payload(ds, same_machine=home is not None),
        "model_config": model_cfg.to_dict(),
        "train_config": train_cfg.to_dict(),
        "key": key,
        "source": str(source),
        "home": home,
        "time_budget": time_budget,
    }


def artifacts_to_wire(art: RunArtifacts) -> dict[str, Any]:
    """Artifacts as plain values: the record as a dict, the model as its ``.keras`` file's bytes."""
    with tempfile.TemporaryDirectory(prefix="cnnlab-model-") as tmp:
        path = Path(tmp) / "model.keras"
        art.model.save(path)
        model_bytes = path.read_bytes()
    return {"record": art.record.to_dict(), "model": model_bytes, "arrays": art.arrays}


def artifacts_from_wire(d: dict[str, Any]) -> RunArtifacts:
    return RunArtifacts(record=RunRecord.from_dict(d["record"]), model=d["model"], arrays=dict(d["arrays"]))


def run_task(task: dict[str, Any], *, progress=None, stop_event: threading.Event | None = None) -> dict[str, Any]:
    """Train one task; store it under ``task["home"]`` or return its artifacts (see the module docstring)."""
    ds = dataset_from_payload(task["dataset"])
    model_cfg = ModelConfig.from_dict(task["model_config"])
    train_cfg = TrainConfig.from_dict(task["train_config"])
    store = RunStore(task["home"]) if task.get("home") else None
    if task.get("kind") == "lr-find":
        return run_lr_find_task(task, ds, model_cfg, train_cfg, store, progress=progress, stop_event=stop_event)
    art = compute_run(
        ds,
        model_cfg,
        train_cfg,
        task["key"],
        source=task["source"],
        store=store,
        progress=progress,
        stop_event=stop_event,
        time_budget=task.get("time_budget"),
    )
    if store is not None:
        rec = save_run(store, art)
        return {"run_id": rec.run_id, "status": rec.status}
    return {"artifacts": artifacts_to_wire(art), "run_id": art.record.run_id, "status": art.record.status}


def run_lr_find_task(task, ds, model_cfg, train_cfg, store, *, progress, stop_event) -> dict[str, Any]:
    """A range test's task: its result stored under the task's home (answering its key), or sent back as
    arrays (a cluster worker); a stopped test answers "stopped" with why, and keeps nothing."""
    try:
        result = compute_lr_find(
            ds,
            model_cfg,
            train_cfg,
            task["key"],
            LRRange.from_dict(task["lr_range"]),
            source=task["source"],
            store=store,
            progress=progress,
            stop_event=stop_event,
            time_budget=task.get("time_budget"),
        )
    except RangeTestStopped as exc:
        return {"status": "stopped", "lr_find": None, "message": str(exc)}
    if store is not None:
        save_lr_find(store, result)
        return {"status": "complete", "lr_find": result.key}
    return {"status": "complete", "lr_find": result.key, "lr_find_arrays": lr_find_arrays(result)}


def _use_threads() -> int:
    """Tell TensorFlow how many threads to use (the parent sets the environment before this process starts)."""
    n = int(os.environ.get("TF_NUM_INTRAOP_THREADS") or 0)
    import tensorflow as tf

    if n > 0:
        tf.config.threading.set_intra_op_parallelism_threads(n)
        tf.config.threading.set_inter_op_parallelism_threads(int(os.environ.get("TF_NUM_INTEROP_THREADS") or n))
    return n


def lower_priority() -> int:
    """Let the server answer browsers first: a training runs at a lower CPU priority (``nice``, default 10).

    On an idle machine a training gets the whole CPU all the same; when thirty
    students move sliders while it runs, their page reruns are scheduled before
    its batches. ``CNNLAB_TRAINING_NICE=0`` turns it off (:mod:`core.base.environment`
    checks it is 0-19). Returns the niceness.
    """
    wanted = settings().training_nice
    if wanted <= 0 or not hasattr(os, "nice"):
        return 0
    return os.nice(wanted)


def warm_up() -> int:
    """What a training needs before its task: the priority, TensorFlow and its threads, the libraries its
    split and scores use. Returns the threads."""
    lower_priority()  # reads and checks the settings: a bad one is the user's error, reported with the task
    threads = _use_threads()
    import keras  # noqa: F401  (imported with TensorFlow's first use otherwise: here, before the task)
    import sklearn.metrics  # noqa: F401  (the scores; imported at the first use otherwise, after the task came)
    import sklearn.model_selection  # noqa: F401  (the stratified split)

    return threads


def first_trace() -> None:
    """Train a throwaway 1-block network for one epoch on 32 random 16x16 images, through the engine's own
    path (:func:`core.training.experiment.compute_run`, nothing stored), in the precision the course's network
    takes on this CPU.

    It pays TensorFlow's once-per-process costs of a first ``fit`` (autograph, tf.data, Keras' trainer)
    while the process waits for its task, so the task's first batch traces only its own network. It
    leaves nothing a run could see: a run seeds Python, NumPy and TensorFlow itself
    (:func:`core.training.fit.set_seed`), and Keras' session is cleared (tests/test_child.py compares).
    """
    import keras

    rng = np.random.default_rng(0)
    n = 32
    ds = Dataset(
        images=rng.integers(0, 256, (n, 16, 16, 3), dtype=np.uint8),
        labels=np.arange(n) % 2,
        class_names=["a", "b"],
        skipped=[],
        source="warm-up",
        fingerprint="warm-up",
        files=[f"{i}.png" for i in range(n)],
    )
    model_cfg = ModelConfig(input_size=16, blocks=1, filters=4, dense_units=8, dropout=0.0, num_classes=2)
    # the precision the course's network takes here (bfloat16 on a bf16 CPU): the throwaway network is too small
    # for "auto" to give it bfloat16, and the first bfloat16 fit pays its own once-per-process costs
    train_cfg = TrainConfig(epochs=1, batch_size=8, precision=run_precision(ModelConfig(), TrainConfig()))
    compute_run(ds, model_cfg, train_cfg, "warm-up", source="warm-up", store=None)
    keras.backend.clear_session()


def main(fd: int) -> int:
    """The training process: warm up, say ``ready``, train the one task that comes, answer, exit.

    A listening thread reads every message from the start: the task (handed
    to the main thread), ``stop`` (sets the stop event) and the end of the
    connection (the parent went away: exit at once, whether warm or training).
    """
    conn = Connection(fd)
    lock = threading.Lock()
    stop = threading.Event()
    tasks: queue.Queue[dict[str, Any]] = queue.Queue()

    def send(msg: tuple) -> None:
        with lock:
            conn.send(msg)

    def listen() -> None:
        try:
            while True:
                what, payload = conn.recv()
                if what == "task":
                    tasks.put(payload)
                elif what == "stop":
                    stop.set()
        except (EOFError, OSError):
            os._exit(EXIT_ORPHANED)  # the parent died: store nothing, leave nothing running

    threading.Thread(target=listen, name="cnnlab-child-listen", daemon=True).start()
    failure: Exception | None = None
    threads = 0
    try:
        threads = warm_up()
    except Exception as exc:  # noqa: BLE001 - reported once the task has come, as the task's error
        failure = exc
    if failure is None and tasks.empty():  # warm ahead of its task: time to spare (started for a waiting task: none)
        try:
            first_trace()
        except Exception:  # noqa: BLE001 - only a head start: the task trains (or fails) on its own terms
            pass
    send(("ready", {"pid": os.getpid(), "threads": threads}))
    task = tasks.get()
    send(("took", None))  # from here on, what happens is this task's: the parent no longer starts it elsewhere
    try:
        if failure is not None:
            raise failure
        result = run_task(task, progress=lambda ev: send(("progress", ev)), stop_event=stop)
        send(("result", result))
    except NothingToKeep as exc:
        send(("error", {"kind": "nothing", "message": str(exc), "detail": None}))
    except UserError as exc:
        send(("error", {"kind": "user", "message": str(exc), "detail": None}))
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which marks the job failed
        oom = resource_message(exc)  # out of memory: the user's to fix (a smaller network or batch), one line
        message = oom or f"{type(exc).__name__}: {plain_message(exc)}"
        send(
            (
                "error",
                {
                    "kind": "user" if oom else "unexpected",
                    "message": message,
                    "detail": None if oom else traceback.format_exc(),
                },
            )
        )
    return 0
