"""The sidebar app.py draws around every page: the active dataset, the run to show, training status.

Both selects use ``key=`` (``dataset``, ``run_id``), so they keep their value
across page switches, and pages read them from ``st.session_state``.
"""

from __future__ import annotations

import time
from pathlib import Path

import streamlit as st

from core.base import plural
from core.jobs import JobSnapshot, JobState
from core.results import diagnosis_of
from ui import feedback, identity, jobs, login, resources, state, students


def folder_label(source: str) -> str:
    return f"Folder: {Path(source).name or source}"


def dataset_label(source: str | None) -> str:
    if not source:
        return "(none)"
    info = resources.bundled_info(source)
    if info is not None:
        return f"{info.title} ({info.n_images} images)"
    return (st.session_state.get(state.SOURCES) or {}).get(source) or folder_label(source)


def source_name(source: str) -> str:
    """A short name for a run's data source: the bundled name, the uploaded file's name, or the folder's."""
    if resources.bundled_info(source) is not None:
        return source
    label = (st.session_state.get(state.SOURCES) or {}).get(source, "")
    if label.startswith("Upload: "):
        return label.removeprefix("Upload: ")
    return Path(source).name or source


def when(timestamp: float) -> str:
    t = time.localtime(timestamp)
    if time.strftime("%Y-%m-%d", t) == time.strftime("%Y-%m-%d"):
        return time.strftime("%H:%M", t)
    return time.strftime("%d %b %H:%M", t)


def run_label(summary: dict) -> str:
    acc = summary.get("test_accuracy")
    score = f"test {acc:.0%}" if isinstance(acc, (int, float)) else "no test score"
    stopped = " (stopped)" if summary.get("status") == "stopped" else ""
    return f"{when(summary['created'])} · {source_name(summary['source'])} · {score}{stopped} · {summary['label']}"


def unique_labels(labels: dict[str, str]) -> dict[str, str]:
    """Labels a select can tell apart: two runs of the same minute and settings get their run ids in front.

    Streamlit's select matches the chosen option by its text, so two options
    with one label would both select the first.
    """
    seen: dict[str, int] = {}
    for text in labels.values():
        seen[text] = seen.get(text, 0) + 1
    return {key: f"{key} · {text}" if seen[text] > 1 else text for key, text in labels.items()}


def render(on_train_page: bool = False) -> None:
    """The sidebar; the Train page shows its own live training panel, so no status here."""
    with st.sidebar:
        _who()
        _dataset_select()
        _run_select()
        if not on_train_page:
            _training_status()


def _who() -> None:
    """Who is logged in, and a way out (only when a login is configured)."""
    text = identity.who_text()
    if text:
        c1, c2 = st.columns([3, 2], vertical_alignment="center")
        c1.caption(text)
        c2.button("Log out", key="sidebar.logout", on_click=login.logout, width="stretch")
        students.panel()


def _dataset_select() -> None:
    ss = st.session_state
    options = [b.name for b in resources.bundled()] + [s for s in (ss.get(state.SOURCES) or {})]
    current = ss.get(state.DATASET)
    if current and current not in options:  # e.g. a run's folder, chosen by a remedy button: keep offering it
        state.add_source(current, folder_label(current))
        options.append(current)
    options = [o for o in options if not resources.set_aside(o)]  # a challenge's data, until it is revealed
    if not options:
        st.caption(feedback.NO_DATASET)
        return
    if current not in options:
        ss[state.DATASET] = options[0]
    labels = {source: dataset_label(source) for source in options}
    st.selectbox(
        "Dataset",
        options,
        key=state.DATASET,
        format_func=labels.get,
        help="The images every page works with. Upload your own or pick a folder on the Data page.",
    )


def _run_select() -> None:
    ss = st.session_state
    runs = resources.list_runs()
    if not runs:
        st.caption(feedback.NO_RUN)
        return
    labels = unique_labels({r["run_id"]: run_label(r) for r in runs})
    if ss.get(state.RUN_ID) not in labels:
        ss[state.RUN_ID] = runs[0]["run_id"]
    st.selectbox(
        "Run",
        list(labels),
        key=state.RUN_ID,
        format_func=labels.get,
        help="The trained network the Diagnostics and Predictions pages show. Newest first.",
    )
    summary = next(r for r in runs if r["run_id"] == ss[state.RUN_ID])
    with feedback.errors_shown("reading this run's verdict"):  # the sidebar is drawn outside the page's frame
        rec = resources.record(ss[state.RUN_ID])
        decided = diagnosis_of(rec) if rec is not None else None  # today's truth table, as the pages show it
        verdict = decided.title if decided is not None else ""
        st.caption(
            f"{plural(summary['epochs_run'], 'epoch')} · best epoch {summary['best_epoch']}"
            + (f" · {verdict}" if verdict else "")
        )


def _training_status() -> None:
    """This session's training, while it is queued or running (the Train page shows its own, bigger)."""
    started = jobs.following(jobs.TRAIN)
    job = jobs.find(started.ids[0]) if started else None
    if job is not None and job.active:
        jobs.follow(jobs.TRAIN, _draw_status, every=2.0, on_finish=jobs.select_runs)


def _draw_status(snaps: list[JobSnapshot | None]) -> None:
    snap = snaps[0]
    if snap is None:
        return
    if snap.state == JobState.QUEUED:
        st.caption(f"Your training is number {snap.position} in the queue: {snap.label}")
    elif snap.state == JobState.RUNNING:
        st.progress(snap.fraction, text=f"Training: {jobs.progress_text(snap)}")
