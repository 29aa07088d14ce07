"""The teacher's list of the students who logged in by name, and renaming or merging them.

Drawn in the sidebar for the teacher when the class logs in with a password
(:mod:`ui.login`). A rename moves everything a student has (uploads, the runs
trained on them, their queued, running and past trainings) to the new name;
renaming to a name another student already has merges the two. The change is
kept in the store (:class:`core.store.Students`), so it survives a restart, and
the student's next page (or their next reload) shows the new name.
"""

from __future__ import annotations

import time

import streamlit as st

from core.base import UserError, plural
from core.store import name_of, normalise_name, user_id_of
from ui import identity, resources

_DONE = "students.done"  # the last rename's sentence, shown once


def panel() -> None:
    """The teacher's "Students" expander (nothing for anyone else, or without class passwords)."""
    if identity.login_mode() != "password" or not identity.is_teacher():
        return
    roster = resources.students().roster()
    with st.expander(f"Students ({len(roster)})", icon=":material/group:"):
        done = st.session_state.pop(_DONE, None)
        if done:
            st.success(done)
        if not roster:
            st.caption("No student has logged in with a name yet.")
            return
        for row in roster:
            seen = time.strftime("%d %b %H:%M", time.localtime(row["last_seen"]))
            st.caption(f"{row['name']} · last in {seen} · {plural(row['uploads'], 'upload')}")
        ids = [row["id"] for row in roster]
        with st.form("students.rename", border=False):
            old = st.selectbox("Student", ids, format_func=name_of, key="students.old")
            new = st.text_input(
                "New name",
                key="students.new",
                help="Their uploads, runs and trainings move to this name. A name another student has "
                "merges the two into one.",
            )
            if st.form_submit_button("Rename or merge"):
                _rename(old, new, ids)


def _rename(old: str, typed: str, ids: list[str]) -> None:
    """Move ``old``'s work to the typed name (a merge when it is another listed student's), and say what moved."""
    try:
        new = user_id_of(normalise_name(typed))
        now = resources.students().resolve(new)
        target, uploads = resources.students().move(old, new)
    except UserError as exc:  # not a name, or the same student
        st.error(str(exc))
        return
    jobs = resources.worker().move_owner(old, target)
    what = f"{plural(uploads, 'upload')} and {plural(jobs, 'training')} moved"
    if now in ids and now != old:
        st.session_state[_DONE] = f"{name_of(old)} merged into {name_of(target)}: {what}."
    else:
        st.session_state[_DONE] = f"{name_of(old)} is now {name_of(target)}: {what}."
    st.rerun()
