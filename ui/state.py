"""The dashboard's session state: keys, defaults, and configs that survive page switches.

``st.session_state`` holds the source of truth for what a student has set up:

===============  =====================================================================
``dataset``      the active data source (bundled name, server folder, saved upload)
                 -- also the key of the sidebar's dataset select
``run_id``       the run shown by the result pages -- also the sidebar's run select
``model_cfg``    the :class:`core.base.config.ModelConfig` built on the Architecture page
``train_cfg``    the :class:`core.base.config.TrainConfig` built on the Train page
``jobs.started`` ``{page key: ui.jobs.Started}``: the jobs each page started last (only
                 :mod:`ui.jobs` writes it)
``sources``      ``{source: label}`` of the uploads and server folders used this session
``owner``        this browser tab's opaque id: the owner of the jobs it starts (only the
                 owner may stop them); kept in the URL (``?sid=``) so a reload keeps it
===============  =====================================================================

The Architecture and Train widgets do not own their values: the configs do.
Each widget starts from the config (:func:`bind`) and the page rebuilds the
config from the widgets on every run, so a slider is where the student left it
after a trip to another page, and a remedy or lab preset that changes the
config (:func:`set_configs`) moves the slider too. Widgets that mirror no
config (the lab's, the transfer page's) get first values from
:func:`start_widgets` and keep them with Streamlit's ``persist_state="session"``.

Two keys belong to sidebar widgets, which are drawn before the page runs; a
page cannot assign them directly in the same run. :func:`request` queues the
change and :func:`init` applies it at the start of the next run.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import streamlit as st

from core.base import ModelConfig, TrainConfig

DATASET = "dataset"
RUN_ID = "run_id"
MODEL_CFG = "model_cfg"
TRAIN_CFG = "train_cfg"
SOURCES = "sources"
OWNER = "owner"
_PENDING = "_pending"
_ANNOUNCED = "_announced_jobs"

# Widget-key prefixes of the pages whose widgets mirror a config.
ARCH = "arch."
TRAIN = "train."

# Page files (st.Page, st.switch_page and st.page_link take these), as absolute paths.
_PAGES_DIR = Path(__file__).resolve().parent.parent / "pages"
PAGES = {
    key: str(_PAGES_DIR / f"{key}.py")
    for key in (
        "home",
        "data",
        "architecture",
        "train",
        "diagnostics",
        "predictions",
        "inside",
        "lab",
        "transfer",
        "compare",
        "sweep",
        "teacher",
        "board",
    )
}


def owner() -> str:
    """This tab's owner id for the jobs it starts (an opaque random id; logins may replace it).

    Read from the URL's ``?sid=`` when the tab was reloaded (the Train page puts
    it there next to ``?job=``), so the student can still stop a training
    started before the reload.
    """
    ss = st.session_state
    if not ss.get(OWNER):
        sid = st.query_params.get("sid")
        ss[OWNER] = sid if sid and len(sid) <= 64 and sid.isalnum() else uuid.uuid4().hex
    return ss[OWNER]


def init() -> None:
    """Fill in defaults and apply queued changes. Call it first, on every run (idempotent)."""
    ss = st.session_state
    pending = ss.get(_PENDING)
    if pending:
        del ss[_PENDING]
        for key, value in pending.items():
            ss[key] = value
    if MODEL_CFG not in ss:
        ss[MODEL_CFG] = ModelConfig()
    if TRAIN_CFG not in ss:
        ss[TRAIN_CFG] = TrainConfig()
    if SOURCES not in ss:
        ss[SOURCES] = {}
    if ss.get(DATASET) is None:
        from ui.resources import bundled

        names = [b.name for b in bundled()]
        ss[DATASET] = names[0] if names else None


def request(**values: Any) -> None:
    """Set keys at the start of the next run (for keys owned by sidebar widgets)."""
    pending = dict(st.session_state.get(_PENDING) or {})
    pending.update(values)
    st.session_state[_PENDING] = pending


def select_finished_run(job_id: str, run_id: str | None) -> bool:
    """Select a finished job's run in the sidebar, once per job (from the next run on).

    Returns True when a selection was queued: the caller should ``st.rerun()``.
    """
    done = st.session_state.get(_ANNOUNCED) or []
    if not run_id or job_id in done:
        return False
    st.session_state[_ANNOUNCED] = [*done[-49:], job_id]
    request(**{RUN_ID: run_id})
    return True


def mark_announced(job_id: str) -> None:
    """Note that a job's run was already selected (e.g. directly, in a button callback)."""
    done = st.session_state.get(_ANNOUNCED) or []
    st.session_state[_ANNOUNCED] = [*done[-49:], job_id]


def model_cfg() -> ModelConfig:
    return st.session_state[MODEL_CFG]


def train_cfg() -> TrainConfig:
    return st.session_state[TRAIN_CFG]


def dataset() -> str | None:
    return st.session_state.get(DATASET)


def run_id() -> str | None:
    return st.session_state.get(RUN_ID)


def bind(widget_key: str, value: Any) -> None:
    """Start a widget from the config value unless the student has already moved it."""
    if widget_key not in st.session_state:
        st.session_state[widget_key] = value


def forget(prefix: str) -> None:
    """Drop the widget values under ``prefix`` so they are read again from the configs."""
    for key in [k for k in st.session_state.keys() if isinstance(k, str) and k.startswith(prefix)]:
        del st.session_state[key]


def start_widgets(defaults: Mapping[str, Any]) -> None:
    """Give a page's own widgets their first values (widget key -> value); later values are the student's.

    For widgets that mirror no config (the lab's, the transfer page's). Draw
    them with ``persist_state="session"``: Streamlit then keeps their values
    across page switches, so they are where the student left them.
    """
    for key, value in defaults.items():
        st.session_state.setdefault(key, value)


def set_configs(model: ModelConfig | None = None, train: TrainConfig | None = None) -> None:
    """Replace the configs (e.g. after a remedy); their pages' widgets follow on the next visit."""
    if model is not None:
        st.session_state[MODEL_CFG] = model
        forget(ARCH)
    if train is not None:
        st.session_state[TRAIN_CFG] = train
        forget(TRAIN)


def add_source(source: str, label: str) -> None:
    """Remember an upload or server folder so the sidebar's dataset select can offer it."""
    sources = dict(st.session_state.get(SOURCES) or {})
    sources[source] = label
    st.session_state[SOURCES] = sources


def drop_source(source: str) -> None:
    """Stop offering an upload in the sidebar (it was replaced and deleted)."""
    sources = dict(st.session_state.get(SOURCES) or {})
    if sources.pop(source, None) is not None:
        st.session_state[SOURCES] = sources


def use_dataset(source: str, label: str | None = None) -> None:
    """Make ``source`` the active dataset from the next run on (then rerun)."""
    if label:
        add_source(source, label)
    request(**{DATASET: source})
    st.rerun()
