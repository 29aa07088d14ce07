"""The teacher's view: every student's trainings (waiting with their place in the fair queue, training, ended)
with live curves, the verdict of each finished run, stopping any job, and a link that sends a run's settings
to the class.

Only the teacher sees it (the teacher password, or a listed OIDC user): a student who opens its address reads
one line. The jobs are the worker's (:func:`ui.jobs.class_snapshots`), grouped by :mod:`core.jobs.overview`;
the live part is a fragment that redraws every few seconds while anything waits or trains.
"""

import pandas as pd
import streamlit as st

from core.base import ModelConfig, TrainConfig
from core.base.tables import plural
from core.jobs import JobSnapshot, by_student, counts_text, owner_name, run_rows
from ui import charts, identity, jobs, resources, share
from ui.feedback import header
from ui.frame import run_page
from ui.job_panel import status_line

K = "teacher."
CONFIRM = K + "confirm"  # session key: the job the teacher asked to stop, waiting for "Yes, stop it"
STUDENTS_PER_PAGE = 6  # students whose jobs (and curves) are drawn at once
CURVES_PER_STUDENT = 3  # small multiples per student: the trainings under way, then the newest ended ones
POLL_ACTIVE, POLL_IDLE = 2.0, 10.0  # seconds between two looks: while anything waits or trains / else
REFUSED = "This page is for the teacher: log in with the teacher password to see the whole class."


def main() -> None:
    if not identity.is_teacher():
        st.info(REFUSED, icon=":material/lock:")
        return
    header(
        "Teacher's view",
        "Every student's trainings as they wait, train and end; the verdict of each finished run; a link that "
        "sends a run's settings to the class.",
    )
    snaps = jobs.class_snapshots()  # read once for this run of the page; the live part reads its own
    groups = by_student(snaps)
    if not groups:
        st.info(
            "No trainings yet: students' trainings appear here as soon as they press Train.", icon=":material/info:"
        )
        return
    owners = _page_of_students(list(groups))
    show_curves = st.toggle("Show the curves", value=True, key=K + "curves")
    ended = frozenset(s.id for s in snaps if not s.active)
    every = POLL_ACTIVE if any(s.active for s in snaps) else POLL_IDLE
    st.fragment(run_every=every)(_live)(tuple(owners), show_curves, ended)

    st.header("Finished runs", divider="gray")
    rows = run_rows(groups, resources.record)
    if not rows:
        st.caption("No finished runs yet.")
        return
    _verdicts(rows)
    _send_settings(rows)


def _page_of_students(owners: list[str | None]) -> list[str | None]:
    """The students shown now: all of them, or one page of ``STUDENTS_PER_PAGE`` in a larger class."""
    if len(owners) <= STUDENTS_PER_PAGE:
        return owners
    pages = [owners[i : i + STUDENTS_PER_PAGE] for i in range(0, len(owners), STUDENTS_PER_PAGE)]
    labels = [f"{owner_name(p[0])} – {owner_name(p[-1])}" for p in pages]
    chosen = st.segmented_control("Students", range(len(pages)), format_func=lambda i: labels[i], key=K + "page")
    return pages[chosen or 0]


def _live(owners: tuple[str | None, ...], show_curves: bool, ended: frozenset[str]) -> None:
    """The shown students' jobs as they are now (a fragment: it redraws alone every few seconds)."""
    snaps = jobs.class_snapshots()
    if any(s.id not in ended for s in snaps if not s.active):
        st.rerun()  # a job ended since the page was drawn: the whole page, so the verdicts follow
    groups = by_student(snaps)
    for who in owners:
        mine = groups.get(who, [])
        st.subheader(f"{owner_name(who)} · {counts_text(mine)}", divider="gray")
        for snap in mine:
            _job_line(snap)
        if show_curves:
            _curves(mine)


def _job_line(snap: JobSnapshot) -> None:
    """One job: its status line, and a Stop button (with a confirmation) while it waits or trains."""
    if not snap.active:
        status_line(snap.label, snap, retry="")
        return
    line, button = st.columns([6, 1], vertical_alignment="center")
    with line:
        status_line(snap.label, snap, retry="")
    if st.session_state.get(CONFIRM) != snap.id:
        button.button("Stop", key=f"{K}stop.{snap.id}", icon=":material/stop:", on_click=_ask, args=(snap.id,))
        return
    doing = "training" if snap.state == "running" else "waiting training"
    st.warning(
        f"Stop {owner_name(snap.owner)}'s {doing} ({snap.label})? A training keeps what it has learned so far; "
        "a waiting one is dropped.",
        icon=":material/help:",
    )
    yes, no = st.columns(2)
    yes.button("Yes, stop it", key=f"{K}yes.{snap.id}", type="primary", on_click=_stop, args=(snap.id,))
    no.button("Keep it", key=f"{K}no.{snap.id}", on_click=_ask, args=(None,))


def _ask(job_id: str | None) -> None:
    st.session_state[CONFIRM] = job_id


def _stop(job_id: str) -> None:
    jobs.stop(job_id)  # the teacher's session: the worker's admin stop
    st.session_state[CONFIRM] = None


def _curves(snaps: list[JobSnapshot]) -> None:
    """Small multiples: the curves of a student's trainings under way and newest ended runs, side by side."""
    with_curves = [s for s in snaps if s.history.get("loss")][:CURVES_PER_STUDENT]
    if not with_curves:
        return
    for col, snap in zip(st.columns(CURVES_PER_STUDENT), with_curves, strict=False):
        with col:
            st.caption(snap.label)
            fig = charts.history_figure(snap.history, planned_epochs=snap.epochs, height=220)
            st.plotly_chart(fig, config=charts.CONFIG, key=f"{K}curve.{snap.id}")


def _verdicts(rows) -> None:
    table = pd.DataFrame(
        {
            "Student": [r.student for r in rows],
            "Run": [r.label for r in rows],
            "Test accuracy": [r.test_accuracy for r in rows],
            "Verdict": [r.verdict for r in rows],
        }
    )
    st.dataframe(
        table,
        hide_index=True,
        width="stretch",
        column_config={"Test accuracy": st.column_config.NumberColumn(format="%.2f")},
    )
    stuck = sum(1 for r in rows if r.verdict == "Stuck at chance")
    over = sum(1 for r in rows if r.verdict == "Overfitting")
    st.caption(f"{plural(over, 'run')} overfitting, {plural(stuck, 'run')} stuck at chance.")


def _send_settings(rows) -> None:
    """A finished run's settings as links that open the Architecture and Train pages with them."""
    st.header("Send these settings to everyone", divider="gray")
    chosen = st.selectbox(
        "Run",
        range(len(rows)),
        format_func=lambda i: f"{rows[i].student} · {rows[i].label}",
        key=K + "share",
    )
    rec = resources.record(rows[chosen or 0].run_id)
    if rec is None:
        return
    model_cfg, train_cfg = ModelConfig.from_dict(rec.model_config), TrainConfig.from_dict(rec.train_config)
    st.markdown("Copy this link to the class: it opens the **Train** page with this run's network and training.")
    st.code(share.page_link("train", model_cfg, train_cfg), language=None, wrap_lines=True)
    st.markdown("Or the **Architecture** page with its network only:")
    st.code(share.page_link("architecture", model_cfg), language=None, wrap_lines=True)
    st.caption(f"Students pick the dataset themselves: this run was trained on {rec.source.rsplit('/', 1)[-1]}.")


run_page(main)
