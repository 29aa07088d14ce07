"""The one job panel: how every page draws the trainings it follows (:func:`ui.jobs.follow`).

One job (the Train page): its place in the queue and the queue while it waits,
a progress bar with epoch, batch and phase while it trains, the live curves,
and Cancel/Stop for whoever may stop it. Several jobs (the Overfitting lab's
variants, Transfer's two runs, Compare's repeats, a Sweep's points): one status
line each, or one bar counting the finished ones, and one button that stops
those this session may stop. A job that ended reads the same everywhere:
failed (why; the details for the teacher), stopped, cancelled, interrupted.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pandas as pd
import streamlit as st

from core.jobs import JobSnapshot, JobState
from ui import charts, jobs
from ui.feedback import job_error

Snaps = Sequence[JobSnapshot | None]


def job_panel(
    snaps: Snaps,
    *,
    key: str,
    titles: Sequence[str] | None = None,
    retry: str = "",
    stop_label: str = "Stop",
    summary: Callable[[int, int], str] | None = None,
) -> None:
    """Draw jobs as they are now (call it from the ``draw`` of :func:`ui.jobs.follow`).

    Args:
        snaps: the jobs' snapshots (None: the worker no longer knows the job).
        key: the page's widget-key prefix (for the buttons).
        titles: one title per job, for a status line each; None with one job: the Train page's
            full view (queue, progress, stop, live curves).
        retry: what to press again when a job is gone or interrupted.
        stop_label: the button that stops every active job this session may stop.
        summary: instead of a line per job, one bar: ``summary(done, n)`` is its text while any is active.
    """
    if titles is None and summary is None:
        [snap] = snaps
        _one(snap, key)
        return
    if summary is not None:
        done = sum(1 for s in snaps if s is not None and s.state == JobState.DONE)
        if any(jobs.is_active(s) for s in snaps):
            st.progress(done / len(snaps), text=summary(done, len(snaps)))
    else:
        for title, snap in zip(titles, snaps, strict=True):
            status_line(title, snap, retry)
    stoppable = [s for s in snaps if jobs.is_active(s) and jobs.can_stop(s)]  # a shared run may be another's
    if stoppable and st.button(stop_label, key=key + "stop", icon=":material/stop:"):
        for s in stoppable:
            jobs.stop(s.id)
        st.rerun()


def ended_text(snap: JobSnapshot) -> str | None:
    """Why a job ended without a run to show (failed, stopped, cancelled, interrupted); None when it has one."""
    if snap.state == JobState.FAILED:
        return job_error(snap.error) or "Training failed."
    if snap.state in (JobState.STOPPED, JobState.INTERRUPTED) and snap.run_id is None:
        return snap.error
    return None


def failure_details(snap: JobSnapshot) -> None:
    """The traceback of an unexpected failure, folded away (for the teacher)."""
    if snap.detail:
        with st.expander("Details (for the teacher)"):
            st.code(snap.detail, language="text")


def status_line(title: str, snap: JobSnapshot | None, retry: str) -> None:
    """One job as a progress bar: queued, training (where), stopped, cached or trained; or its error.

    ``snap`` is None when the worker no longer knows the job (a server restart);
    ``retry`` tells the student what to press again then.
    """
    if snap is None:
        st.warning(f"{title}: the trainer no longer tracks this job (was the server restarted?). {retry}")
        return
    if snap.state == JobState.INTERRUPTED:
        st.warning(f"{title}: {snap.error} {retry}", icon=":material/restart_alt:")
        return
    if snap.state == JobState.FAILED:
        st.error(f"{title}: {ended_text(snap)}", icon=":material/error:")
        failure_details(snap)
        return
    if snap.state == JobState.QUEUED:
        text = f"{title}: queued (number {snap.position} in the queue)"
    elif snap.state == JobState.RUNNING:
        text = f"{title}: training, {jobs.progress_text(snap)}"
    elif snap.state == JobState.STOPPED:
        text = f"{title}: {snap.error or 'stopped'}"  # why, when it says: cancelled, a time budget, by force
    elif snap.cached:
        text = f"{title}: cached (stored run, not retrained)"
    else:
        text = f"{title}: trained"
    st.progress(float(snap.fraction), text=text)


def queue_table() -> None:
    """The trainer's work now: the running trainings, then the waiting ones with their places."""
    rows = jobs.queue_rows()
    if rows:
        st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")


def _one(snap: JobSnapshot | None, key: str) -> None:
    """One job, in full: redrawn once a second while it is queued or running."""
    if not jobs.is_active(snap):
        st.rerun()  # it ended between two looks: the whole page shows the result
    can_stop = jobs.can_stop(snap)  # a student stops only their own training; the teacher any
    if snap.state == JobState.QUEUED:
        whose = "Your run" if jobs.mine(snap) or snap.owner is None else "This run"
        st.info(
            f"{whose} is number **{snap.position}** in the queue: it starts when a training before it ends.",
            icon=":material/hourglass_top:",
        )
        queue_table()
        if can_stop:
            st.button("Cancel", key=key + "cancel", on_click=jobs.stop, args=(snap.id,), icon=":material/close:")
        return
    st.progress(snap.fraction, text=f"**Training** {snap.label} — {jobs.progress_text(snap)}")
    c1, c2 = st.columns([1, 4], vertical_alignment="center")
    if not can_stop:
        c2.caption("Started in another tab or by someone else: only they (or the teacher) can stop it.")
    elif snap.stop_requested:
        c1.button("Stopping…", key=key + "stopping", disabled=True, width="stretch")
        c2.caption("Training stops after the current batch; the run is saved with what it has learned.")
    else:
        c1.button(
            "Stop training",
            key=key + "stop",
            on_click=jobs.stop,
            args=(snap.id,),
            icon=":material/stop:",
            width="stretch",
        )
        c2.caption("Stopping keeps what the network has learned: the run is saved and can be read like any other.")
    if snap.history.get("loss"):
        st.plotly_chart(charts.history_figure(snap.history, planned_epochs=snap.epochs), config=charts.CONFIG)
    else:
        st.caption("The curves appear when the first epoch ends.")
