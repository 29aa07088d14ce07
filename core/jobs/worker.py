"""The training worker: a bounded queue of jobs, each trained in its own process.

A Streamlit page must not train inside its script run (any slider rerun
would interrupt it), the server must not grow by every model TensorFlow
trains, and one training's crash must not take the server down. So pages,
the CLI's batch commands and notebooks hand jobs to this worker and poll
``job.snapshot()``; each job trains in a child process (an executor's:
:mod:`core.jobs.executor`), at most ``workers`` at once, the others wait in order
and know their position.

Jobs are keyed by the run key: submitting a configuration that is queued or
running returns that job; one that is already stored returns a finished job
at once, marked cached. Every job has an ``owner`` (an opaque id: the
dashboard's session); only its owner, or an admin, may stop it.

The queue is fair between owners (:mod:`core.jobs.fairqueue`): round robin by
owner, not first come first served, and the positions follow that order. An
owner may have at most ``CNNLAB_MAX_QUEUED_PER_STUDENT`` jobs waiting
(:class:`QueueFull`; admins and jobs without an owner are not counted). Each
job carries the time budget in force where it was submitted
(``CNNLAB_MAX_TRAIN_SECONDS``, :class:`core.training.fit.TimeBudget`) to
wherever it trains.

Every job is also a row of the run store's job table (:mod:`core.jobs.jobtable`),
so that after the server dies a new one shows its jobs as interrupted and
can run them again (:meth:`TrainingWorker.rerun`).
"""

from __future__ import annotations

import collections
import threading
import time
import types
import uuid
from dataclasses import dataclass, field
from typing import Any

from core.base.config import ModelConfig, TrainConfig
from core.base.environment import check_workers, settings
from core.base.errors import UserError, plain_message
from core.base.limits import resource_message
from core.base.naming import describe
from core.base.precision import settle_precision
from core.base.tables import plural
from core.data import Dataset
from core.jobs.challenge_rules import OverBudget, budget_reasons, check_not_withheld
from core.jobs.executor import Executor, Training, make_executor
from core.jobs.fairqueue import fair_order
from core.jobs.jobtable import HEARTBEAT, JobTable
from core.jobs.process import ChildOutcome
from core.jobs.state import CANCELLED, JobSnapshot, JobState
from core.store.challenges import time_budget_for
from core.store.runstore import RunRecord, RunStore, default_home
from core.training.experiment import check_submission, resolve, stop_reason, stored_answer
from core.training.lr_find import LRFind, LRRange, resolve_lr_find, stored_lr_find


class NotYourJob(UserError):
    """A stop asked for by someone who did not start the job."""


class QueueFull(UserError):
    """A student's submission beyond ``CNNLAB_MAX_QUEUED_PER_STUDENT`` waiting jobs."""


def queue_full_message(waiting: int, cap: int, adding: int = 1) -> str:
    """Why a submission was refused: how many of the student's trainings wait, and what to do."""
    asked = "" if adding == 1 else f" (this asks for {adding} more)"
    return (
        f"You already have {plural(waiting, 'training')} waiting in the queue{asked}, and each student may have at "
        f"most {cap} waiting. Wait until some of yours have started, or cancel the ones you no longer need."
    )


@dataclass
class Job:
    id: str
    key: str
    source: str
    model_cfg: ModelConfig
    train_cfg: TrainConfig
    label: str
    owner: str | None = None
    state: JobState = JobState.QUEUED
    submitted: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    position: int | None = None  # 1 = next to start, while queued
    pid: int | None = None  # the training process's, while running
    epoch: int = 0
    epochs: int = 0
    batch: int = 0
    batches: int = 0
    phase: str = ""
    history: dict[str, list[float]] = field(default_factory=lambda: collections.defaultdict(list))
    result: RunRecord | None = None
    error: str | None = None
    detail: str | None = None  # the traceback of an unexpected failure, for a debug expander
    user_error: bool = False  # the failure is the user's to fix (bad weights, data): the CLI exits 2
    time_budget: float | None = None  # seconds of training allowed, decided at submission (None: no limit)
    challenge: str | None = None  # the challenge whose images it trains on (core.store.challenges), if any
    lr_range: LRRange | None = None  # a learning-rate range test over this range (kind "lr-find"), not a training
    lr_find: LRFind | None = None  # the range test's result, once there is one
    stop_event: threading.Event = field(default_factory=threading.Event, repr=False)
    dataset: Dataset | None = field(default=None, repr=False)  # handed to the training, then dropped
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def active(self) -> bool:
        return self.state.active

    @property
    def kind(self) -> str:
        """What the job runs: "train" (a run) or "lr-find" (a learning-rate range test)."""
        return "train" if self.lr_range is None else "lr-find"

    @property
    def fraction(self) -> float:
        """Progress in [0, 1] over all planned batches."""
        if self.state.ended_with_run:
            return 1.0
        if not self.epochs:
            return 0.0
        done_epochs = max(0, self.epoch - 1) + (self.batch / self.batches if self.batches else 0)
        return min(1.0, done_epochs / self.epochs)

    def snapshot(self) -> JobSnapshot:
        """A consistent, frozen copy for a page to draw from (safe to read while training goes on)."""
        with self._lock:
            return JobSnapshot(
                id=self.id,
                key=self.key,
                label=self.label,
                source=self.source,
                owner=self.owner,
                state=self.state,
                position=self.position,
                pid=self.pid,
                epoch=self.epoch,
                epochs=self.epochs,
                batch=self.batch,
                batches=self.batches,
                phase=self.phase,
                fraction=self.fraction,
                history={k: list(v) for k, v in self.history.items()},
                run_id=self.result.run_id if self.result else None,
                cached=bool(self.result and self.result.cached or self.lr_find and self.lr_find.cached),
                kind=self.kind,
                lr_find_key=self.lr_find.key if self.lr_find else None,
                error=self.error,
                detail=self.detail,
                submitted=self.submitted,
                started=self.started,
                finished=self.finished,
                stop_requested=self.stop_event.is_set(),
            )

    def row(self, server: str) -> dict[str, Any]:
        """This job as a row of the job table."""
        return {
            "id": self.id,
            "key": self.key,
            "source": self.source,
            "label": self.label,
            "owner": self.owner,
            "state": self.state.value,
            "model_config": self.model_cfg.to_dict(),
            "train_config": self.train_cfg.to_dict(),
            "lr_range": None if self.lr_range is None else self.lr_range.to_dict(),
            "challenge": self.challenge,
            "submitted": self.submitted,
            "started": self.started,
            "finished": self.finished,
            "server": server,
            "position": self.position,
            "pid": self.pid,
            "run_id": self.result.run_id if self.result else None,
            "error": self.error,
            "epoch": self.epoch,
            "epochs": self.epochs,
        }

    # called from the job's thread with the training process's progress events
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


def job_from_row(row: dict[str, Any], store: RunStore) -> Job:
    """A job of the table (an earlier server's, or this one's past jobs): for reading and re-running."""
    model_cfg, train_cfg = ModelConfig.from_dict(row["model_config"]), TrainConfig.from_dict(row["train_config"])
    job = Job(
        id=row["id"],
        key=row["key"],
        source=row["source"],
        label=row["label"],
        owner=row["owner"],
        model_cfg=model_cfg,
        train_cfg=train_cfg,
        state=JobState(row["state"]),
        submitted=row["submitted"],
        started=row["started"],
        finished=row["finished"],
        error=row["error"],
        epoch=row["epoch"],
        epochs=row["epochs"],
        lr_range=LRRange.from_dict(row["lr_range"]) if row.get("lr_range") else None,
        challenge=row.get("challenge"),
    )
    if job.lr_range is not None:
        job.lr_find = stored_lr_find(store, job.key) if job.state.ended_with_run else None
    elif row["run_id"]:
        job.result = store.get(row["run_id"])
        if job.result is not None:
            job.history.update({k: list(v) for k, v in job.result.history.items()})
    return job


class TrainingWorker:
    """A bounded queue: at most ``workers`` trainings at once, each in its own process."""

    def __init__(
        self,
        store: RunStore,
        *,
        workers: int | None = None,
        executor: Executor | None = None,
        grace: float | None = None,
        keep: int = 50,
    ):
        """
        Args:
            store: the run store every run lands in (the only one, with a cluster too).
            workers: trainings at once; None: the executor's default (``CNNLAB_WORKERS``, or
                half the cores; a Dask cluster's worker threads).
            executor: where trainings run; None: :func:`core.jobs.executor.make_executor`
                (local, or Dask when ``CNNLAB_SCHEDULER`` is set).
            grace: seconds a stopped training has before it is killed; None: ``CNNLAB_STOP_GRACE`` or 5.
            keep: finished jobs remembered in memory (all are in the job table).
        """
        settings()  # every CNNLAB_* setting checked here, not later in the dispatching thread
        self.store = store
        self.executor = executor if executor is not None else make_executor()
        self._workers = None if workers is None else check_workers(workers)
        self.workers  # noqa: B018 - the executor's default too, before the thread that uses it starts
        self.grace = grace
        self.table = JobTable(store)
        self.server = self.table.register()  # also marks the jobs of servers that died as interrupted
        self._jobs: dict[str, Job] = {}
        self._order: collections.deque[str] = collections.deque()
        self._waiting: list[Job] = []
        self._running: set[str] = set()
        self._starts = 0  # jobs started so far; an owner's last start is the count when it began
        self._last_start: dict[str | None, int] = {}
        self._lock = threading.RLock()
        self._wake = threading.Condition(self._lock)
        self._keep = keep
        self._closed = False  # close(): the dispatcher starts nothing more and ends
        self._thread = threading.Thread(target=self._dispatch, name="cnnlab-worker", daemon=True)
        self._thread.start()
        self.executor.prepare(self.workers)  # one training process warm per slot, before the first submit

    @property
    def workers(self) -> int:
        """Trainings that may run at once."""
        return self._workers or self.executor.slots()

    def submit(
        self,
        source: str,
        model_cfg: ModelConfig,
        train_cfg: TrainConfig,
        *,
        use_cache: bool = True,
        owner: str | None = None,
        admin: bool = False,
        lr_find: LRRange | None = None,
    ) -> Job:
        """Queue a run, or join the one already queued/running for the same key.

        With ``lr_find``, the job is a learning-rate range test over that range
        (:mod:`core.training.lr_find`) instead of a training: queued, capped, run and
        followed like one; keyed by :func:`core.training.lr_find.lr_find_key`, so a stored
        test comes back finished at once (``job.lr_find``, ``cached``).

        Raises the data and architecture errors at once (before queueing), so a
        page can show them next to the control that caused them. This is where
        a job's facts are decided, once: the precision ("auto" resolved on this
        machine, :func:`core.base.precision.settle_precision`), the architecture
        check and the time budget; the job carries them to wherever it trains.

        Raises:
            QueueFull: ``owner`` already has ``CNNLAB_MAX_QUEUED_PER_STUDENT`` jobs waiting
                (not for an ``admin``, nor for jobs without an owner).
        """
        [job] = self.submit_many(
            source, [(model_cfg, train_cfg)], use_cache=use_cache, owner=owner, admin=admin, lr_find=lr_find
        )
        return job

    def submit_many(
        self,
        source: str,
        configs: list[tuple[ModelConfig, TrainConfig]],
        *,
        use_cache: bool = True,
        owner: str | None = None,
        admin: bool = False,
        lr_find: LRRange | None = None,
    ) -> list[Job]:
        """:meth:`submit` for several configurations on one source, all or nothing.

        Every configuration is checked before any is queued, and the per-student
        cap counts only the jobs this would add (configurations already queued,
        running or stored add none), so a sweep is either queued whole or refused
        with one message.
        """
        if owner is not None and not admin:  # a student: not on the data a challenge's hidden images come from
            check_not_withheld(self.store, str(source))
        prepared = []
        for model_cfg, train_cfg in configs:
            if lr_find is not None:  # a range test: its configs and key (precision settled, network checked)
                ds, model_cfg, train_cfg, key = resolve_lr_find(source, model_cfg, train_cfg, lr_find, self.store)
                prepared.append((ds, model_cfg, train_cfg, key))
                continue
            train_cfg = settle_precision(model_cfg, train_cfg)  # "auto" decided here, once: whoever trains gets it
            ds, model_cfg, key = resolve(source, model_cfg, train_cfg, self.store)
            check_submission(model_cfg, train_cfg)  # impossible, too costly or unusable weights: say so now, once
            prepared.append((ds, model_cfg, train_cfg, key))
        budget, challenge = time_budget_for(self.store, source)  # CNNLAB_MAX_TRAIN_SECONDS or the challenge's
        with self._lock:
            answers: list[Job | RunRecord | LRFind | None] = []
            for ds, _, _, key in prepared:
                active = next((j for j in self._jobs.values() if j.key == key and j.active), None)
                found = None
                if active is None and use_cache:
                    found = stored_lr_find(self.store, key) if lr_find else stored_answer(self.store, key, ds)
                answers.append(active or found)
            new_keys = {key for (_, _, _, key), a in zip(prepared, answers, strict=True) if a is None}
            self._check_room(owner, len(new_keys), admin)
            if challenge is not None and lr_find is None and not admin:
                self._check_challenge(challenge, prepared, owner, len(new_keys))
            jobs: list[Job] = []
            for (ds, model_cfg, train_cfg, key), answer in zip(prepared, answers, strict=True):
                if isinstance(answer, Job):
                    jobs.append(answer)
                    continue
                same = next((j for j in jobs if j.key == key and j.active), None)  # twice in one call
                if same is not None:
                    jobs.append(same)
                    continue
                job = Job(
                    id=uuid.uuid4().hex[:10],
                    key=key,
                    source=str(source),
                    model_cfg=model_cfg,
                    train_cfg=train_cfg,
                    label=describe(model_cfg, train_cfg),
                    owner=owner,
                    time_budget=budget,
                    lr_range=lr_find,
                    challenge=challenge.id if challenge is not None else None,
                )
                if lr_find is not None:
                    job.label = f"learning-rate range test: {job.label}"
                if isinstance(answer, LRFind):  # a stored range test: finished, cached
                    job.lr_find, job.state, job.finished = answer, JobState.DONE, time.time()
                elif answer is not None:  # stored: a finished, cached job (the data report is this read's)
                    job.result, job.state, job.finished = answer, JobState.DONE, time.time()
                    job.epochs = job.epoch = len(answer.history.get("loss", []))
                    job.history.update({k: list(v) for k, v in answer.history.items()})
                else:
                    job.epochs = 0 if lr_find else train_cfg.epochs
                    job.epochs += train_cfg.fine_tune_epochs if model_cfg.model == "vgg16" and not lr_find else 0
                    job.dataset = ds
                    self._waiting.append(job)
                self._remember(job)
                jobs.append(job)
            self._number_queue()
            self._wake.notify_all()
        return jobs

    def _check_room(self, owner: str | None, adding: int, admin: bool) -> None:
        """Refuse ``adding`` more waiting jobs for ``owner`` past the per-student cap (:class:`QueueFull`)."""
        cap = settings().max_queued_per_student
        if owner is None or admin or not cap or not adding:
            return
        waiting = sum(1 for j in self._waiting if j.owner == owner)
        if waiting + adding > cap:
            raise QueueFull(queue_full_message(waiting, cap, adding))

    def _check_challenge(self, challenge, prepared: list, owner: str | None, adding: int) -> None:
        """Refuse a student's trainings on a challenge's images that break its budgets (:class:`OverBudget`, the
        reason the pages show next to the control). The trainings this call adds count with the earlier ones."""
        started = self.table.trainings_of(owner, challenge.id) if owner is not None else None
        counted = None if started is None else started + adding - 1  # the last one added must still fit
        for _, model_cfg, train_cfg, _ in prepared:
            reasons = budget_reasons(challenge, model_cfg, train_cfg, counted if adding else None)
            if reasons:
                raise OverBudget(next(iter(reasons.values())))

    def ahead_of(self, owner: str | None) -> list[Job]:
        """The jobs that would train before a job ``owner`` submitted now: the running ones, then the
        waiting ones the fair order puts before it (for the estimated wait)."""
        with self._lock:
            newcomer = types.SimpleNamespace(owner=owner)  # all the order needs to know of a job
            order = fair_order([*self._waiting, newcomer], self._last_start)
            return self.running() + order[: next(i for i, j in enumerate(order) if j is newcomer)]

    def warm_start(self) -> bool:
        """Whether a training process is warm and ready for a job now (the local executor's pool; a cluster's
        workers are not asked: False). For the time estimate's start."""
        ready = getattr(self.executor, "warm_ready", None)  # LocalExecutor's; DaskExecutor has none
        return bool(ready is not None and ready())

    def rerun(self, job_id: str, *, owner: str | None = None, admin: bool = False) -> Job:
        """Submit an interrupted (or failed, or stopped) job's configuration again, as ``owner``'s job."""
        job = self.get(job_id)
        if job is None:
            raise UserError(f"There is no job {job_id!r} in this run store: start the training again instead.")
        who = owner if owner is not None else job.owner
        return self.submit(job.source, job.model_cfg, job.train_cfg, owner=who, admin=admin, lr_find=job.lr_range)

    def _remember(self, job: Job) -> None:
        self._jobs[job.id] = job
        self._order.append(job.id)
        self.table.put(job.row(self.server))
        while len(self._order) > self._keep:
            old = self._jobs.get(self._order[0])
            if old is not None and old.active:
                break
            self._jobs.pop(self._order.popleft(), None)

    def _fair(self) -> list[Job]:
        """The waiting jobs, next first (``_waiting`` itself keeps the order they were submitted in)."""
        return fair_order(self._waiting, self._last_start)

    def _number_queue(self) -> None:
        """Put the waiting jobs in the fair order and give them their positions (1 = next), in memory and
        in the job table (on every submit, start and stop)."""
        for i, job in enumerate(self._fair(), start=1):
            if job.position != i:
                job.position = i
                self.table.update(job.id, position=i)

    def stop(self, job_id: str, *, by: str | None = None, admin: bool = False) -> bool:
        """Stop a job: a queued one is dropped, a running one stops after its current batch (killed if it
        has not ended ``grace`` seconds later). Returns False when the job is not active (or unknown).

        Raises:
            NotYourJob: ``by`` is not the job's owner and ``admin`` is False.
        """
        job = self._jobs.get(job_id)
        if job is None or not job.active:
            return False
        if job.owner is not None and by != job.owner and not admin:
            raise NotYourJob("This training was started by someone else: only they (or a teacher) can stop it.")
        with self._lock:
            job.stop_event.set()
            if job.state == JobState.QUEUED:  # never started: drop it now
                self._waiting.remove(job)
                with job._lock:
                    job.state, job.finished, job.error, job.position = JobState.STOPPED, time.time(), CANCELLED, None
                job.dataset = None
                self._number_queue()
                self.table.put(job.row(self.server))
        return True

    def move_owner(self, old: str, new: str) -> int:
        """Every job of ``old``, here and in the job table, becomes ``new``'s (a student renamed or merged,
        :meth:`core.store.Students.move`): from then on ``new`` may stop them. Returns how many rows moved."""
        with self._lock:
            for job in self._jobs.values():
                if job.owner == old:
                    with job._lock:
                        job.owner = new
            if old in self._last_start:  # their last turn goes with them: a rename is not a new place in the round
                self._last_start[new] = max(self._last_start.pop(old), self._last_start.get(new, -1))
            self._number_queue()  # the queue's order follows owners
            return self.table.move_owner(old, new)

    def get(self, job_id: str) -> Job | None:
        """This worker's job, else one from the job table (an earlier server's: shown, never run again as is)."""
        job = self._jobs.get(job_id)
        if job is not None:
            return job
        row = self.table.get(job_id)
        return job_from_row(row, self.store) if row else None

    def jobs(self) -> list[Job]:
        """Jobs this worker remembers, oldest first."""
        with self._lock:
            return [self._jobs[i] for i in self._order if i in self._jobs]

    def queued(self) -> list[Job]:
        """Waiting jobs, next first (the fair order: :mod:`core.jobs.fairqueue`)."""
        with self._lock:
            return self._fair()

    def running(self) -> list[Job]:
        """Jobs training now, oldest first."""
        with self._lock:
            return [j for j in self.jobs() if j.id in self._running]

    def interrupted(self, owner: str | None = None, limit: int = 20) -> list[Job]:
        """Recent jobs an earlier server never finished (``owner``'s only, if given), newest first."""
        rows = [r for r in self.table.rows(limit) if r["state"] == JobState.INTERRUPTED]
        return [job_from_row(r, self.store) for r in rows if owner is None or r["owner"] == owner]

    def wait(self, job: Job, timeout: float | None = None) -> Job:
        """Block until the job ends (for the CLI, notebooks and tests)."""
        deadline = None if timeout is None else time.time() + timeout
        while job.active:
            if deadline is not None and time.time() > deadline:
                raise TimeoutError(f"Job {job.id} still {job.state} after {timeout} s.")
            time.sleep(0.05)
        return job

    # -- the dispatcher and the jobs' threads ------------------------------
    def _dispatch(self) -> None:
        beat = time.monotonic()
        while True:
            with self._wake:
                while not (self._waiting and len(self._running) < self.workers) or self._closed:
                    if self._closed:
                        return  # closed: no more starts, no more heartbeats (its store may be gone)
                    self._wake.wait(timeout=HEARTBEAT)
                    if time.monotonic() - beat >= HEARTBEAT and not self._closed:
                        self.table.heartbeat(self.server)
                        beat = time.monotonic()
                job = self._fair()[0]
                self._waiting.remove(job)
                self._starts += 1
                self._last_start[job.owner] = self._starts
                self._running.add(job.id)
                with job._lock:
                    job.state, job.started, job.position = JobState.RUNNING, time.time(), None
                self._number_queue()
                self.table.update(job.id, state=JobState.RUNNING.value, started=job.started, position=None)
            threading.Thread(target=self._run, args=(job,), name=f"cnnlab-job-{job.id}", daemon=True).start()

    def _run(self, job: Job) -> None:
        def on_event(ev) -> None:
            job._on_progress(ev)
            if ev.kind == "epoch":
                self.table.update(job.id, epoch=ev.epoch, epochs=job.epochs)

        def on_started(pid: int) -> None:
            job.pid = pid
            self.table.update(job.id, pid=pid)

        training = Training(
            job.dataset, job.model_cfg, job.train_cfg, job.key, job.source, job.time_budget, lr_range=job.lr_range
        )
        job.dataset = None
        try:
            out = self.executor.run(
                training,
                store=self.store,
                parallel=self.workers,
                stop=job.stop_event,
                grace=self.grace,
                on_event=on_event,
                on_started=on_started,
            )
        except Exception as exc:  # noqa: BLE001 - the worker must survive anything an executor does
            user = isinstance(exc, UserError)
            msg = (
                str(exc)
                if user
                else (
                    resource_message(exc) or f"The training could not run ({type(exc).__name__}: {plain_message(exc)})."
                )
            )
            out = ChildOutcome(state=JobState.FAILED, error=msg, user_error=user)
        self._finish(job, out)

    def _finish(self, job: Job, out: ChildOutcome) -> None:
        if job.lr_range is not None:
            self._finish_lr_find(job, out)
            return
        rec = self.store.get(out.result["run_id"]) if out.result else None
        if out.result and rec is None:
            out.state, out.error = (
                JobState.FAILED,
                "The training ended but its run is not in the store. Earlier runs are safe.",
            )
        if rec is not None and out.state == JobState.STOPPED and out.error is None:
            out.error = stop_reason(rec)  # its time budget, said on every page that shows the job
        with job._lock:
            job.result, job.state, job.error, job.detail = rec, out.state, out.error, out.detail
            job.user_error = out.user_error
            job.finished, job.pid = time.time(), None
        self._ended(job)

    def _finish_lr_find(self, job: Job, out: ChildOutcome) -> None:
        """A range test's end: its stored result, or why there is none (stopped: nothing is kept)."""
        found = stored_lr_find(self.store, out.result["lr_find"]) if out.result and out.result.get("lr_find") else None
        if found is not None:
            found.cached = False  # just computed by this job (read back from where the child stored it)
        if out.result and out.state == JobState.STOPPED:
            out.error = out.result.get("message") or out.error
        elif out.result and found is None:
            out.state, out.error = JobState.FAILED, "The range test ended but its result is not in the store."
        with job._lock:
            job.lr_find, job.state, job.error, job.detail = found, out.state, out.error, out.detail
            job.user_error = out.user_error
            job.finished, job.pid = time.time(), None
        self._ended(job)

    def _ended(self, job: Job) -> None:
        with self._wake:
            self._running.discard(job.id)
            self.table.put(job.row(self.server))
            self._wake.notify_all()

    def close(self) -> None:
        """Retire this server from the job table (what it had not finished reads as interrupted), end its
        dispatching thread (a job still waiting never starts) and let go of its executor (warm training
        processes end; trainings under way go on to their end). Closing twice does nothing more."""
        with self._wake:
            if self._closed:
                return
            self._closed = True
            self._wake.notify_all()
        self._thread.join(timeout=HEARTBEAT)  # at most one heartbeat's write away
        self.table.retire(self.server)
        self.executor.close()


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
        if _worker is None or (_worker.store.home != home and not _worker.running() and not _worker.queued()):
            if _worker is not None:
                _worker.close()  # its thread and warm training processes: nobody will submit to it again
            _worker = TrainingWorker(RunStore(home))
        return _worker


def use_worker(worker: TrainingWorker | None) -> TrainingWorker | None:
    """Make ``worker`` the process-wide one (what :func:`get_worker` returns) and return the one it replaces.

    For a test or a notebook that wants a worker on a store of its own: ``previous = use_worker(mine)``, then
    ``use_worker(previous)`` to put it back. None lets :func:`get_worker` make a new one on first use.
    """
    global _worker
    with _worker_lock:
        previous, _worker = _worker, worker
        return previous
