"""The training worker: one per process, one job at a time, off the caller's thread.

A Streamlit page must not train inside its script run (any slider rerun
would interrupt it) and two browser tabs asking for the same configuration
must share one training. So pages hand jobs to this worker and poll
``job.snapshot()``. The same worker serves the CLI's lab and notebooks.

Jobs are keyed by the run key: submitting a configuration that is queued or
running returns that job; one that is already stored returns a finished job
at once, marked cached.
"""

from __future__ import annotations

import collections
import logging
import queue
import threading
import time
import traceback
import uuid
from dataclasses import dataclass, field
from typing import Any

from core.architecture import require_buildable
from core.config import ModelConfig, TrainConfig
from core.errors import UserError
from core.experiment import resolve, run_experiment
from core.labels import describe
from core.store import RunRecord, RunStore, default_home

log = logging.getLogger(__name__)

QUEUED, RUNNING, DONE, FAILED, STOPPED = "queued", "running", "done", "failed", "stopped"


@dataclass
class Job:
    id: str
    key: str
    source: str
    model_cfg: ModelConfig
    train_cfg: TrainConfig
    label: str
    state: str = QUEUED
    submitted: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    epoch: int = 0
    epochs: int = 0
    batch: int = 0
    batches: int = 0
    phase: str = ""
    history: dict[str, list[float]] = field(default_factory=lambda: collections.defaultdict(list))
    result: RunRecord | None = None
    error: str | None = None
    detail: str | None = None  # the traceback of an unexpected failure, for a debug expander
    stop_event: threading.Event = field(default_factory=threading.Event, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def active(self) -> bool:
        return self.state in (QUEUED, RUNNING)

    @property
    def fraction(self) -> float:
        """Progress in [0, 1] over all planned batches."""
        if self.state in (DONE, STOPPED):
            return 1.0
        if not self.epochs:
            return 0.0
        done_epochs = max(0, self.epoch - 1) + (self.batch / self.batches if self.batches else 0)
        return min(1.0, done_epochs / self.epochs)

    def snapshot(self) -> dict[str, Any]:
        """A consistent copy for a page to draw from (safe to read while training goes on)."""
        with self._lock:
            return {
                "id": self.id,
                "key": self.key,
                "label": self.label,
                "source": self.source,
                "state": self.state,
                "epoch": self.epoch,
                "epochs": self.epochs,
                "batch": self.batch,
                "batches": self.batches,
                "phase": self.phase,
                "fraction": self.fraction,
                "history": {k: list(v) for k, v in self.history.items()},
                "run_id": self.result.run_id if self.result else None,
                "cached": bool(self.result and self.result.cached),
                "error": self.error,
                "detail": self.detail,
                "submitted": self.submitted,
                "started": self.started,
                "finished": self.finished,
                "stop_requested": self.stop_event.is_set(),
            }

    # called from the worker thread through core.train's progress events
    def _on_progress(self, ev) -> None:
        with self._lock:
            self.epochs = ev.epochs or self.epochs
            self.phase = ev.phase
            if ev.kind == "batch":
                self.epoch, self.batch, self.batches = ev.epoch, ev.batch, ev.batches
            elif ev.kind == "start":
                self.epoch, self.batch, self.batches = ev.epoch, 0, ev.batches
            elif ev.kind == "epoch":
                self.epoch = ev.epoch
                self.batch = self.batches
                for k, v in ev.logs.items():
                    self.history[k].append(float(v))


class TrainingWorker:
    """A queue and one daemon thread that trains the jobs in order."""

    def __init__(self, store: RunStore, keep: int = 50):
        self.store = store
        self._jobs: dict[str, Job] = {}
        self._order: collections.deque[str] = collections.deque()
        self._queue: queue.Queue[Job] = queue.Queue()
        self._lock = threading.Lock()
        self._keep = keep
        self._thread = threading.Thread(target=self._loop, name="cnnlab-worker", daemon=True)
        self._thread.start()

    def submit(
        self, source: str, model_cfg: ModelConfig, train_cfg: TrainConfig, *, use_cache: bool = True
    ) -> Job:
        """Queue a run, or join the one already queued/running for the same key.

        Raises the data and architecture errors at once (before queueing), so a
        page can show them next to the control that caused them.
        """
        _, model_cfg, key = resolve(source, model_cfg, train_cfg, self.store)
        require_buildable(model_cfg)
        with self._lock:
            for job in self._jobs.values():
                if job.key == key and job.active:
                    return job
            job = Job(
                id=uuid.uuid4().hex[:10],
                key=key,
                source=str(source),
                model_cfg=model_cfg,
                train_cfg=train_cfg,
                label=describe(model_cfg, train_cfg),
            )
            if use_cache:
                found = self.store.find(key)
                if found is not None:
                    found.cached = True
                    job.result, job.state, job.finished = found, DONE, time.time()
                    job.epochs = job.epoch = len(found.history.get("loss", []))
                    job.history.update({k: list(v) for k, v in found.history.items()})
                    self._remember(job)
                    return job
            job.epochs = train_cfg.epochs + (train_cfg.fine_tune_epochs if model_cfg.model == "vgg16" else 0)
            self._remember(job)
        self._queue.put(job)
        return job

    def _remember(self, job: Job) -> None:
        self._jobs[job.id] = job
        self._order.append(job.id)
        while len(self._order) > self._keep:
            old = self._jobs.get(self._order[0])
            if old is not None and old.active:
                break
            self._jobs.pop(self._order.popleft(), None)

    def stop(self, job_id: str) -> bool:
        """Ask a job to stop: a queued one is dropped, a running one stops after its current batch."""
        job = self._jobs.get(job_id)
        if job is None or not job.active:
            return False
        job.stop_event.set()
        with job._lock:
            if job.state == QUEUED:  # never started: drop it now, the loop will skip it
                job.state, job.finished, job.error = STOPPED, time.time(), "Cancelled before it started: nothing was trained."
        return True

    def get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    def jobs(self) -> list[Job]:
        """Jobs this process knows, oldest first."""
        with self._lock:
            return [self._jobs[i] for i in self._order if i in self._jobs]

    def queued(self) -> list[Job]:
        return [j for j in self.jobs() if j.state == QUEUED]

    def running(self) -> Job | None:
        return next((j for j in self.jobs() if j.state == RUNNING), None)

    def wait(self, job: Job, timeout: float | None = None) -> Job:
        """Block until the job ends (for the CLI, notebooks and tests)."""
        deadline = None if timeout is None else time.time() + timeout
        while job.active:
            if deadline is not None and time.time() > deadline:
                raise TimeoutError(f"Job {job.id} still {job.state} after {timeout} s.")
            time.sleep(0.05)
        return job

    def _loop(self) -> None:
        while True:
            job = self._queue.get()
            if job.stop_event.is_set():
                with job._lock:
                    if job.state == QUEUED:
                        job.state, job.finished, job.error = STOPPED, time.time(), "Cancelled before it started: nothing was trained."
                continue
            with job._lock:
                job.state, job.started = RUNNING, time.time()
            try:
                rec = run_experiment(
                    job.source,
                    job.model_cfg,
                    job.train_cfg,
                    store=self.store,
                    progress=job._on_progress,
                    stop_event=job.stop_event,
                )
                with job._lock:
                    job.result = rec
                    job.state = STOPPED if rec.status == "stopped" else DONE
            except UserError as exc:
                # Expected, explained failures (bad data, impossible config, missing weights).
                with job._lock:
                    job.state, job.error = FAILED, str(exc)
            except Exception as exc:  # noqa: BLE001 - the worker must survive any job
                log.exception("training job %s failed", job.id)
                with job._lock:
                    job.state = FAILED
                    job.error = f"Training failed unexpectedly ({type(exc).__name__}: {exc}). Earlier runs are safe."
                    job.detail = traceback.format_exc()
            finally:
                with job._lock:
                    job.finished = time.time()


_worker: TrainingWorker | None = None
_worker_lock = threading.Lock()


def get_worker() -> TrainingWorker:
    """The process-wide worker, on the store under the current ``CNNLAB_HOME``.

    Created on first use; if ``CNNLAB_HOME`` has changed since (tests, a notebook
    switching stores), a new worker serves the new store once the old one is idle.
    """
    global _worker
    with _worker_lock:
        home = default_home()
        if _worker is None or (_worker.store.home != home and _worker.running() is None and not _worker.queued()):
            _worker = TrainingWorker(RunStore(home))
        return _worker

