"""Following training jobs from a page: the one polling loop, and how a job's progress reads.

Training never runs in a page's script run (any slider would interrupt it):
core's process-wide worker (:mod:`core.jobs.worker`) trains each job in its own
process, at most ``CNNLAB_WORKERS`` at once (the others wait, numbered), and
every session and tab shares it. A job belongs to the tab that started it
(:func:`ui.state.owner`): only that tab may stop it. A page keeps the ids of the jobs it started
and hands them to :func:`follow` with a function that draws their snapshots.
While a job is queued or running, only that part of the page reruns, once a
second; when the last one ends, the whole page reruns once so the sidebar and
the rest of the page show the result, and the polling stops.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import streamlit as st

from core.base import ModelConfig, TrainConfig
from core.jobs import Estimate, Job, NotYourJob, QueuedRun, calibrate_in_background, calibrating
from core.jobs.estimate import estimate
from core.store import RunRecord
from ui import identity, resources, state
from ui.feedback import job_error

POLL_SECONDS = 1.0
ACTIVE = ("queued", "running")  # core.jobs.worker's job states that will still change
INTERRUPTED = "interrupted"  # the server stopped while the job waited or trained (core.jobs.jobtable)
PHASES = {  # ProgressEvent.phase -> what the student reads
    "train": "",
    "head": "training the new head",
    "fine-tune": "fine-tuning VGG16's last block",
    "fine_tune": "fine-tuning VGG16's last block",
}

WATCHING = "watching_job"  # session key: the server's job a session without one of its own is shown

Snapshot = dict[str, Any]


def find(job_id: str | None) -> Job | None:
    """The worker's job with this id; None if there is none (or the server restarted since)."""
    return resources.worker().get(job_id) if job_id else None


def snapshots(job_ids: Sequence[str]) -> list[Snapshot | None]:
    """``Job.snapshot()`` of each job, None for a job the worker no longer knows."""
    jobs = [find(job_id) for job_id in job_ids]
    return [job.snapshot() if job is not None else None for job in jobs]


def is_active(snap: Snapshot | None) -> bool:
    return snap is not None and snap["state"] in ACTIVE


def results(snaps: Sequence[Snapshot | None]) -> list[RunRecord | None]:
    """The run each finished (or stopped) job produced, as the worker returned it (``.cached`` set); else None."""
    jobs = [find(s["id"]) if s is not None and s["state"] in ("done", "stopped") else None for s in snaps]
    return [job.result if job is not None else None for job in jobs]


def follow(
    job_ids: Sequence[str],
    draw: Callable[[list[Snapshot | None]], None],
    *,
    every: float = POLL_SECONDS,
    on_finish: Callable[[list[Snapshot | None]], None] | None = None,
) -> None:
    """Draw the jobs with ``draw(snapshots)``, again every ``every`` seconds while any is active.

    Args:
        job_ids: the jobs to follow, in the order ``draw`` gets their snapshots.
        draw: draws the jobs; it runs inside an ``st.fragment``, so its widgets
            rerun only the fragment (call ``st.rerun()`` for the whole page).
        every: seconds between two looks while a job is queued or running.
        on_finish: called with the final snapshots when the last active job
            ends, just before the whole page reruns (e.g. :func:`select_runs`).
    """
    ids = tuple(job_ids)
    polling = any(is_active(s) for s in snapshots(ids))
    st.fragment(run_every=every if polling else None)(_look)(ids, draw, polling, on_finish)


def _look(ids: tuple[str, ...], draw, polling: bool, on_finish) -> None:
    snaps = snapshots(ids)
    if polling and not any(is_active(s) for s in snaps):
        if on_finish is not None:
            on_finish(snaps)
        st.rerun()  # the whole page, once: the sidebar and the results follow, the polling ends
    draw(snaps)


def owner() -> str:
    """Who this session's jobs belong to: the logged-in user (every tab, every reload), else this tab.

    Without a login, a tab's id (:func:`ui.state.owner`, kept in the URL as
    ``?sid=`` by the Train page) is all there is to know a student by.
    """
    uid = identity.user_id()
    return uid if uid.startswith("user:") else state.owner()


def start(source: str, model_cfg: ModelConfig, train_cfg: TrainConfig) -> Job:
    """Hand a training to the worker as this session's job (the same configuration joins the running one).

    A configuration already in the run store comes back finished at once; its
    run is selected in the sidebar. Call it from a button callback (it sets the
    sidebar's run before the sidebar is drawn).

    Raises:
        DataError, ArchitectureError, ConfigError: before anything is queued; the
        message says what to change.
    """
    job = resources.worker().submit(source, model_cfg, train_cfg, owner=owner())
    ss = st.session_state
    ss[state.JOB_ID] = job.id
    ss.pop(WATCHING, None)
    if job.state == "done" and job.result is not None:
        ss[state.RUN_ID] = job.result.run_id
        state.mark_announced(job.id)
    return job


def stop(job_id: str) -> None:
    """Ask the worker to stop this session's job: a queued one is dropped, a running one ends after its batch.

    Another student's job is not stopped (the student reads why, in a toast); the teacher may stop any.
    """
    try:
        resources.worker().stop(job_id, by=owner(), admin=identity.is_teacher())
    except NotYourJob as exc:
        st.toast(str(exc), icon=":material/block:")


def mine(job: Job | None) -> bool:
    """Whether this session (its user, or this tab) started the job."""
    return job is not None and job.owner == owner()


def rerun(job_id: str) -> None:
    """Train an interrupted (or failed) job's configuration again as this tab's job (a button callback)."""
    job = resources.worker().rerun(job_id, owner=owner())
    st.session_state[state.JOB_ID] = job.id
    st.session_state.pop(WATCHING, None)


def shown_job() -> tuple[Job | None, bool]:
    """The job the Train page shows, and whether this session started it.

    This session's job is in session state, or in the URL (``?job=``) after a
    reload. Without one, the page shows what the server is training (another
    tab's job, or this student's own from before the session was lost).
    """
    ss = st.session_state
    job = find(ss.get(state.JOB_ID)) or find(st.query_params.get("job"))
    if job is not None and (mine(job) or job.owner is None):
        ss[state.JOB_ID] = job.id
        return job, True
    w = resources.worker()
    job = job or next(iter(w.running() + w.queued()), None) or find(ss.get(WATCHING))
    if job is not None:
        ss[WATCHING] = job.id
    return job, False


def select_runs(snaps: Sequence[Snapshot | None]) -> None:
    """Select a finished job's run in the sidebar, once per job (an ``on_finish`` for :func:`follow`)."""
    for snap in snaps:
        if snap is not None:
            state.select_finished_run(snap["id"], snap["run_id"])


def queue_rows() -> list[dict[str, str]]:
    """The trainer's work: the running job, then the waiting ones, as table rows."""
    w = resources.worker()
    rows = []
    for job in w.running() + w.queued():
        s = job.snapshot()
        running = s["state"] == "running"
        rows.append(
            {
                "": "training" if running else "waiting",
                "place": "–" if running else str(s["position"]),
                "run": s["label"],
                "dataset": s["source"].rsplit("/", 1)[-1],
                "epoch": f"{s['epoch']}/{s['epochs']}" if running else "–",
            }
        )
    return rows


def training_estimate(source: str, model_cfg: ModelConfig, train_cfg: TrainConfig) -> tuple[Estimate, int]:
    """``(estimate, trainings ahead)`` for this training after the worker's running and queued jobs.

    ``estimate.calibrated`` is False until this server's speed has been measured (:func:`measure_speed`).
    Raises DataError when the data cannot be read.
    """
    w = resources.worker()
    running = w.running()
    ahead = []
    for job in running + w.queued():  # running is a list (several trainings at once), not one job
        s = job.snapshot()
        n = len(resources.dataset(job.source, job.model_cfg.input_size, job.model_cfg.channels))
        ahead.append(QueuedRun(job.model_cfg, job.train_cfg, n, done=s["fraction"] if job in running else 0.0))
    n_images = len(resources.dataset(source, model_cfg.input_size, model_cfg.channels))
    return estimate(model_cfg, train_cfg, n_images, queued_before=ahead, store=resources.store()), len(ahead)


def measure_speed(precision: str) -> None:
    """Measure this server's training speed in ``precision`` off the script thread (about 30 s, stored)."""
    calibrate_in_background(resources.home(), precision)


def measuring_speed(precision: str) -> bool:
    return calibrating(resources.home(), precision)


def progress_text(snap: Snapshot) -> str:
    """Where a running job is: ``epoch 3/20 · batch 5/12 · fine-tuning VGG16's last block``."""
    batch = f" · batch {snap['batch']}/{snap['batches']}" if snap["batches"] else ""
    if snap["phase"] == "features":  # VGG16: the frozen base's outputs, computed once per dataset and kept
        return f"computing the VGG16 base's features (once per dataset){batch}"
    phase = PHASES.get(snap["phase"], snap["phase"].replace("_", "-"))
    return f"epoch {snap['epoch']}/{snap['epochs']}{batch}" + (f" · {phase}" if phase else "")


def status_line(title: str, snap: Snapshot | None, retry: str) -> None:
    """One job as a progress bar: queued, training (where), stopped, cached or trained; or its error.

    ``snap`` is None when the worker no longer knows the job (a server restart);
    ``retry`` tells the student what to press again then.
    """
    if snap is None:
        st.warning(f"{title}: the trainer no longer tracks this job (was the server restarted?). {retry}")
        return
    job_state = snap["state"]
    if job_state == INTERRUPTED:
        st.warning(f"{title}: {snap['error']} {retry}", icon=":material/restart_alt:")
        return
    if job_state == "failed":
        st.error(f"{title}: {job_error(snap['error'])}", icon=":material/error:")
        if snap.get("detail"):
            with st.expander("Details (for the teacher)"):
                st.code(snap["detail"], language="text")
        return
    if job_state == "queued":
        text = f"{title}: queued (number {snap['position']} in the queue)"
    elif job_state == "running":
        text = f"{title}: training, {progress_text(snap)}"
    elif job_state == "stopped":
        text = f"{title}: stopped" + (f" ({snap['error']})" if snap["error"] else "")
    elif snap["cached"]:
        text = f"{title}: cached (stored run, not retrained)"
    else:
        text = f"{title}: trained"
    st.progress(float(snap["fraction"]), text=text)


def can_stop(snap: Snapshot) -> bool:
    """Whether this session may stop the job: its own, or any for the teacher."""
    return snap.get("owner") in (None, owner()) or identity.is_teacher()
