"""Training jobs from a page: the one way to start them, the one record of them, the one polling loop.

Training never runs in a page's script run (any slider would interrupt it):
core's process-wide worker (:mod:`core.jobs.worker`) trains each job in its own
process, at most ``CNNLAB_WORKERS`` at once (the others wait, numbered), and
every session and tab shares it. A job belongs to the session that started it
(:func:`owner`): only that session (or the teacher) may stop it.

Every page starts its trainings with :func:`start` (one) or :func:`start_many`
(several), under its own page key; this module records the job ids for that
key in session state in one shape (:class:`Started`), and the page reads them
back with :func:`following`. Pages never keep job ids themselves. :func:`follow`
redraws a page's jobs (:mod:`ui.job_panel` draws them): while one is queued or
running, only that part of the page reruns, once a second; when the last one
ends, the whole page reruns once so the sidebar and the rest of the page show
the result, and the polling stops.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import streamlit as st

from core.base import ModelConfig, TrainConfig, resolve_precision, settings
from core.jobs import Estimate, Job, JobSnapshot, JobState, NotYourJob, QueuedRun, calibrate_in_background, calibrating
from core.jobs.estimate import COLD, WARM, calibration_failed, estimate
from core.store import RunRecord
from core.training import LRRange
from ui import identity, resources, state

POLL_SECONDS = 1.0
# A student who pressed Train waits for the first batch (issue 22: within 2 s); looking once a second would add
# up to a second to it, so a page looks this often while its one training starts and runs its first epoch.
STARTING_POLL_SECONDS = 0.25
STARTING_WINDOW_SECONDS = 10.0  # no faster than POLL_SECONDS after this (a VGG16 run extracting its features)
PHASES = {  # ProgressEvent.phase -> what the student reads
    "train": "",
    "head": "training the new head",
    "fine-tune": "fine-tuning VGG16's last block",
    "fine_tune": "fine-tuning VGG16's last block",
    "lr-find": "learning-rate range test",
}

STARTED = "jobs.started"  # session key: {page key: Started}, the jobs each page started last
WATCHING = "watching_job"  # session key: the server's job a session without one of its own is shown
TRAIN = "train"  # the Train page's key (its one training; also the sidebar's status)
LAB, TRANSFER, SWEEP = "lab", "transfer", "sweep"
LR_FIND = "lr_find"  # the Train page's learning-rate range test


def repeats_key(run_id: str) -> str:
    """The key the repeats of a run are started under (by the Train or the Compare page; Compare shows them)."""
    return f"repeats:{run_id}"


@dataclass(frozen=True)
class Started:
    """The jobs a page started last, and what the page needs to read them (its settings line, ...)."""

    ids: tuple[str, ...]
    about: Mapping[str, Any] = field(default_factory=dict)


def find(job_id: str | None) -> Job | None:
    """The worker's job with this id; None if there is none (or the server restarted since)."""
    return resources.worker().get(job_id) if job_id else None


def snapshots(job_ids: Sequence[str]) -> list[JobSnapshot | None]:
    """``Job.snapshot()`` of each job, None for a job the worker no longer knows."""
    jobs = [find(job_id) for job_id in job_ids]
    return [job.snapshot() if job is not None else None for job in jobs]


def is_active(snap: JobSnapshot | None) -> bool:
    return snap is not None and snap.active


def results(snaps: Sequence[JobSnapshot | None]) -> list[RunRecord | None]:
    """The run each finished (or stopped) job produced, as the worker returned it (``.cached`` set); else None."""
    jobs = [find(s.id) if s is not None and s.state.ended_with_run else None for s in snaps]
    return [job.result if job is not None else None for job in jobs]


def owner() -> str:
    """Who this session's jobs belong to: the logged-in user or named student (every tab, every reload), else this tab.

    Without a login, a tab's id (:func:`ui.state.owner`, kept in the URL as
    ``?sid=`` by the Train page) is all there is to know a student by.
    """
    return identity.user_id() if identity.known() else state.owner()


# -- starting, and the one record of what each page started ------------------------------------------------


def start(
    page: str,
    source: str,
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    /,
    *,
    lr_find: LRRange | None = None,
    **about: Any,
) -> Job:
    """Hand one training to the worker as this session's job, recorded under ``page`` (see :func:`start_many`).

    With ``lr_find``, the job is a learning-rate range test over that range instead (the worker's
    ``submit(lr_find=)``): queued, followed and stopped like a training; a stored test comes back at once.

    A configuration already in the run store comes back finished at once; for
    the Train page its run is then selected in the sidebar (call it from a
    button callback: it sets the sidebar's run before the sidebar is drawn).
    """
    [job] = start_many(page, source, [(model_cfg, train_cfg)], lr_find=lr_find, **about)
    if page == TRAIN and job.state == JobState.DONE and job.result is not None:
        st.session_state[state.RUN_ID] = job.result.run_id
        state.mark_announced(job.id)
    return job


def start_many(
    page: str,
    source: str,
    configs: Sequence[tuple[ModelConfig, TrainConfig]],
    /,
    *,
    lr_find: LRRange | None = None,
    **about: Any,
) -> list[Job]:
    """Hand trainings to the worker as this session's jobs, in order; record them as ``page``'s.

    ``about`` is kept with the ids (what the page needs to draw them: its
    settings line, the lab's variants, the sweep's grid). Each configuration
    already queued or running joins that job; one already stored comes back
    finished at once.

    Raises:
        DataError, ArchitectureError, WeightsError, ConfigError: the message says what
        to change. QueueFull: this student already has as many trainings waiting as
        ``CNNLAB_MAX_QUEUED_PER_STUDENT`` allows (the teacher is not counted). Either way
        nothing is queued (all or nothing) and nothing is recorded.
    """
    worker = resources.worker()
    started = worker.submit_many(source, list(configs), owner=owner(), admin=identity.is_teacher(), lr_find=lr_find)
    ss = st.session_state
    ss[STARTED] = {**(ss.get(STARTED) or {}), page: Started(tuple(j.id for j in started), dict(about))}
    if page == TRAIN:
        ss.pop(WATCHING, None)
    return started


def found_again(page: str) -> bool:
    """Whether ``page``'s job was found among the student's own after a reload or in a new tab (not pressed here)."""
    started = following(page)
    return started is not None and bool(started.about.get("found"))


def following(page: str) -> Started | None:
    """The jobs ``page`` started last in this session (None: none yet)."""
    return (st.session_state.get(STARTED) or {}).get(page)


def stop(job_id: str) -> None:
    """Ask the worker to stop this session's job: a queued one is dropped, a running one ends after its batch.

    Another student's job is not stopped (the student reads why, in a toast); the teacher may stop any.
    """
    try:
        resources.worker().stop(job_id, by=owner(), admin=identity.is_teacher())
    except NotYourJob as exc:
        st.toast(str(exc), icon=":material/block:")


def mine(job: Job | JobSnapshot | None) -> bool:
    """Whether this session (its user, or this tab) started the job."""
    return job is not None and job.owner == owner()


def can_stop(snap: JobSnapshot) -> bool:
    """Whether this session may stop the job: its own (or one nobody owns), or any for the teacher."""
    return snap.owner in (None, owner()) or identity.is_teacher()


def rerun(job_id: str) -> None:
    """Train an interrupted (or failed) job's configuration again as this session's Train job (a callback)."""
    job = resources.worker().rerun(job_id, owner=owner(), admin=identity.is_teacher())
    ss = st.session_state
    ss[STARTED] = {**(ss.get(STARTED) or {}), TRAIN: Started((job.id,))}
    ss.pop(WATCHING, None)


def shown_job() -> tuple[Job | None, bool]:
    """The job the Train page shows, and whether this session started it.

    This session's job is the one it started last (:func:`following`), the
    one in the URL (``?job=``) after a reload, or (a student known by a login or
    a name) their own queued or running one. Without one, the page shows what
    the server is training (another tab's job, or this student's own from before
    the session was lost).
    """
    ss = st.session_state
    own = following(TRAIN)
    job = find(own.ids[0] if own else None) or find(st.query_params.get("job"))
    if job is not None and (mine(job) or job.owner is None):
        if own is None or own.ids != (job.id,):
            ss[STARTED] = {**(ss.get(STARTED) or {}), TRAIN: Started((job.id,))}
        return job, True
    w = resources.worker()
    active = [j for j in w.running() + w.queued() if j.kind == "train"]  # a range test shows in its own section
    yours = next((j for j in active if mine(j)), None)  # a named student back after a reload: their own training
    if job is None and yours is not None:
        # Shown as theirs (they may stop it), but not as this tab's own press: it may be one point of their sweep,
        # so the Train button stays (the per-student cap still says when they have too many waiting).
        ss[STARTED] = {**(ss.get(STARTED) or {}), TRAIN: Started((yours.id,), {"found": True})}
        return yours, True
    job = job or next(iter(active), None) or find(ss.get(WATCHING))
    if job is not None:
        ss[WATCHING] = job.id
    return job, False


# -- following ---------------------------------------------------------------------------------------------


def follow(
    pages: str | Sequence[str],
    draw: Callable[[list[JobSnapshot | None]], None],
    *,
    job_ids: Sequence[str] | None = None,
    every: float = POLL_SECONDS,
    on_finish: Callable[[list[JobSnapshot | None]], None] | None = None,
) -> None:
    """Draw the jobs of ``pages`` with ``draw(snapshots)``, again every ``every`` seconds while any is active.

    Args:
        pages: a page key, or several (their jobs one after the other): whose jobs (:func:`following`).
        draw: draws the jobs (with :func:`ui.job_panel.job_panel`); it runs inside an
            ``st.fragment``, so its widgets rerun only the fragment (call ``st.rerun()``
            for the whole page).
        job_ids: other jobs to follow instead (the Train page showing another tab's training).
        every: seconds between two looks while a job is queued or running.
        on_finish: called with the final snapshots when the last active job
            ends, just before the whole page reruns (e.g. :func:`select_runs`).
    """
    if job_ids is None:
        keys = [pages] if isinstance(pages, str) else list(pages)
        job_ids = [job_id for k in keys if (started := following(k)) is not None for job_id in started.ids]
    ids = tuple(job_ids)
    if not ids:
        return
    snaps = snapshots(ids)
    polling = any(is_active(s) for s in snaps)
    cadence = poll_seconds(snaps, every) if polling else None
    st.fragment(run_every=cadence)(_look)(ids, draw, polling, on_finish, cadence, every)


def poll_seconds(snaps: Sequence[JobSnapshot | None], every: float = POLL_SECONDS) -> float:
    """Seconds between two looks at active jobs: :data:`STARTING_POLL_SECONDS` while the one job followed is a
    training in its first epoch (a student who just pressed Train waits for its first batch): next in the queue
    (a warm process takes it at once) or started, for at most :data:`STARTING_WINDOW_SECONDS` since it was
    submitted or started; else ``every``.

    The pace changes once the first epoch is over, not at the first batch: a change of pace reruns the whole
    page (a fragment's ``run_every`` is fixed when it is drawn), and Streamlit drops what the fragment drew
    when it asks for that rerun, so a change at the first batch would put the first batch on the screen a
    whole page's run later. A page following several jobs (a sweep, repeats) keeps ``every``: its later
    trainings' first batches are not what anyone waits for."""
    if len(snaps) != 1 or (s := snaps[0]) is None or s.epoch > 1 or s.history.get("loss"):
        return every
    if s.state == JobState.RUNNING and s.started is not None:
        since = s.started
    elif s.state == JobState.QUEUED and s.position == 1:
        since = s.submitted
    else:
        return every
    if time.time() - since > STARTING_WINDOW_SECONDS:
        return every
    return min(STARTING_POLL_SECONDS, every)


def _look(ids: tuple[str, ...], draw, polling: bool, on_finish, cadence: float | None, every: float) -> None:
    snaps = snapshots(ids)
    if polling and not any(is_active(s) for s in snaps):
        if on_finish is not None:
            on_finish(snaps)
        st.rerun()  # the whole page, once: the sidebar and the results follow, the polling ends
    if polling and poll_seconds(snaps, every) != cadence:
        st.rerun()  # the training started or finished its first epoch: the page looks at it at its new pace
    draw(snaps)


def select_runs(snaps: Sequence[JobSnapshot | None]) -> None:
    """Select a finished job's run in the sidebar, once per job (an ``on_finish`` for :func:`follow`)."""
    for snap in snaps:
        if snap is not None:
            state.select_finished_run(snap.id, snap.run_id)


def class_snapshots() -> list[JobSnapshot]:
    """Every student's jobs the worker remembers (the active ones and the latest ended), as snapshots: for the
    teacher's page only (a student's pages show their own, through :func:`following`)."""
    return [job.snapshot() for job in resources.worker().jobs()]


def queue_rows() -> list[dict[str, str]]:
    """The trainer's work: the running job, then the waiting ones, as table rows."""
    w = resources.worker()
    rows = []
    for job in w.running() + w.queued():
        s = job.snapshot()
        running = s.state == JobState.RUNNING
        rows.append(
            {
                "": "training" if running else "waiting",
                "place": "–" if running else str(s.position),
                "run": s.label,
                "dataset": s.source.rsplit("/", 1)[-1],
                "epoch": f"{s.epoch}/{s.epochs}" if running else "–",
            }
        )
    return rows


def training_estimate(source: str, model_cfg: ModelConfig, train_cfg: TrainConfig) -> tuple[Estimate, int]:
    """``(estimate, trainings ahead)``: the whole wait for this training if this student pressed Train now.

    The trainings ahead are the running ones and the waiting ones the fair queue puts before a job this
    student submits now (:meth:`core.jobs.TrainingWorker.ahead_of`), not every waiting job; its start is
    the worker's warm training process when one is ready (:meth:`core.jobs.TrainingWorker.warm_start`),
    else a process that starts for it. ``estimate.calibrated`` is False until this server's speed has been
    measured (:func:`measure_speed`). Raises DataError when the data cannot be read.
    """
    w = resources.worker()
    running = w.running()
    ahead = []
    for job in w.ahead_of(owner()):  # running ones first (several trainings at once), then the waiting ones
        s = job.snapshot()
        n = resources.image_count(job.source, job.model_cfg.input_size, job.model_cfg.channels, check=False)
        ahead.append(QueuedRun(job.model_cfg, job.train_cfg, n, done=s.fraction if job in running else 0.0))
    n_images = resources.image_count(source, model_cfg.input_size, model_cfg.channels)
    est = estimate(
        model_cfg,
        train_cfg,
        n_images,
        queued_before=ahead,
        store=resources.store(),
        where=WARM if w.warm_start() else COLD,
        slots=w.workers,
    )
    return est, len(ahead)


def measure_speed(precision: str) -> None:
    """Measure this server's training speed in ``precision`` in the background (a process of its own, about
    15 s on 2 quiet cores; stored, once per machine, precision and library versions)."""
    calibrate_in_background(resources.home(), precision)


def start_worker_at_start() -> None:
    """When the server starts: start the training worker, whose training process (``CNNLAB_WARM``) then gets
    ready while the first students read Home, Data and Architecture, instead of when a page first needs the
    worker (a press on Train would wait for Python and TensorFlow to load). Unless ``CNNLAB_WARM_AT_START=0``."""
    if settings().warm_at_start:
        resources.worker()


def measure_speed_at_start() -> None:
    """When the server starts: measure its speed in this CPU's precision in the background, unless it is
    stored or ``CNNLAB_MEASURE_SPEED=0`` (then the Train page offers a button). Once per store."""
    if settings().measure_speed:
        _measured_at_start(resources.home(), resolve_precision("auto"))


@st.cache_resource(show_spinner=False)
def _measured_at_start(home: str, precision: str) -> bool:
    return calibrate_in_background(home, precision)


def measuring_speed(precision: str) -> bool:
    return calibrating(resources.home(), precision)


def measuring_failed(precision: str) -> bool:
    """The measurement ran in this server and stored nothing: it is not started again without a press."""
    return calibration_failed(resources.home(), precision)


def progress_text(snap: JobSnapshot) -> str:
    """Where a running job is: ``epoch 3/20 · batch 5/12 · fine-tuning VGG16's last block``."""
    batch = f" · batch {snap.batch}/{snap.batches}" if snap.batches else ""
    if snap.phase == "features":  # VGG16: the frozen base's outputs, computed once per dataset and kept
        return f"computing the VGG16 base's features (once per dataset){batch}"
    phase = PHASES.get(snap.phase, snap.phase.replace("_", "-"))
    return f"epoch {snap.epoch}/{snap.epochs}{batch}" + (f" · {phase}" if phase else "")
