"""The class challenge as the Architecture and Train pages see it: the one the student trains for, picked on the
Train page or opened from the teacher's link (``?challenge=<id>``), and why the current settings break its
budgets (core.lab's reasons, shown by the pages next to the control that breaks each).

A student trains for a challenge by training on its images (its students' folder is the active dataset), so
the active dataset says which challenge holds the settings to its budgets; the worker refuses the same
trainings with the same sentences.
"""

from __future__ import annotations

import datetime as dt

import streamlit as st

from core.base import plural
from core.base.config import ModelConfig, TrainConfig
from core.lab import Challenge, ChallengeBoard, ChallengeError
from ui import jobs, resources, state

LINK = "challenge"  # the query parameter of the teacher's link
_FOLLOWED = "challenge.followed"  # the link already followed in this session (a later pick wins over it)
_BEFORE = "challenge.before"  # the dataset the student had before picking a challenge
PICK = "train.challenge"  # the Train page's picker


def board() -> ChallengeBoard:
    return ChallengeBoard(resources.store())


def active() -> Challenge | None:
    """The challenge whose images are the active dataset, or None."""
    return board().for_source(state.dataset())


def label(ch: Challenge) -> str:
    return f"Challenge: {ch.title}"


def follow_link() -> None:
    """Open the challenge of the page's ``?challenge=<id>`` (once per session and link): its images become the
    active dataset. An unknown id is said in one line."""
    cid = st.query_params.get(LINK)
    if not cid or st.session_state.get(_FOLLOWED) == cid:
        return
    st.session_state[_FOLLOWED] = cid
    try:
        ch = board().get(cid)
    except ChallengeError as exc:
        st.warning(str(exc), icon=":material/flag:")
        return
    if state.dataset() != ch.public:
        st.session_state[_BEFORE] = state.dataset()
        state.use_dataset(ch.public, label(ch))  # reruns


def reasons(model_cfg: ModelConfig, cfg: TrainConfig | None) -> dict[str, str]:
    """Why these settings break the active challenge's budgets, per control (empty: no challenge, or they fit)."""
    ch = active()
    if ch is None or cfg is None:
        return {}
    return board().budget_reasons(ch, model_cfg, cfg, jobs.owner())


def _switch() -> None:
    """The picker's callback: train on the picked challenge's images, or go back to the data from before."""
    cid = st.session_state[PICK]
    if cid is None:
        before = st.session_state.pop(_BEFORE, None)
        state.request(**{state.DATASET: before})  # None: the first bundled dataset
        st.query_params.pop(LINK, None)
        return
    ch = board().get(cid)
    if active() is None:
        st.session_state[_BEFORE] = state.dataset()
    state.add_source(ch.public, label(ch))
    state.request(**{state.DATASET: ch.public})
    st.query_params[LINK] = cid
    st.session_state[_FOLLOWED] = cid


def picker() -> Challenge | None:
    """The Train page's "Train for a challenge" select (only when there are challenges); returns the active one."""
    challenges = board().list()
    if not challenges:
        return None
    ch = active()
    ids: list[str | None] = [None, *(c.id for c in challenges)]
    titles = {c.id: c.title for c in challenges}
    st.session_state[PICK] = ch.id if ch is not None else None  # the select follows the active dataset
    st.selectbox(
        "Train for a challenge",
        ids,
        key=PICK,
        format_func=lambda c: "No challenge: train on any data" if c is None else titles[c],
        on_change=_switch,
        help="A challenge's images, budgets and board: your teacher sets them on the Challenge board page.",
    )
    if ch is not None:
        st.caption(" ".join(budget_lines(ch)))
    return ch


def budget_lines(ch: Challenge) -> list[str]:
    """The challenge's budgets in a few short sentences (the board page and the Train page)."""
    b = ch.budgets
    lines = [
        f"{plural(ch.public_count, 'image')} to train on; {plural(ch.hidden_count, 'image')} kept hidden to score "
        "the runs entered."
    ]
    if b.max_params:
        lines.append(f"At most {b.max_params:,} parameters.")
    if b.max_epochs:
        lines.append(f"At most {plural(b.max_epochs, 'epoch')} per training.")
    if b.max_seconds:
        lines.append(f"At most {b.max_seconds:g} s per training.")
    if b.max_trainings:
        lines.append(f"At most {plural(b.max_trainings, 'training')} and runs entered per student.")
    if ch.deadline:
        when = dt.datetime.fromtimestamp(ch.deadline).strftime("%Y-%m-%d %H:%M")
        lines.append(f"Closed since {when}." if ch.closed() else f"Open until {when}.")
    return lines
