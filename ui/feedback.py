"""Messages: page headers, empty states, and errors without tracebacks.

Expected problems (a bad zip, an architecture that does not fit, a missing
weights file) arrive from core as ``ValueError`` subclasses whose message
already says what happened and what to do: they are shown as they are.
Anything else is a bug: students get a calm sentence, the teacher gets the
details in an expander.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterator
from contextlib import contextmanager

import streamlit as st

from core.base import resource_message
from ui import state

log = logging.getLogger("cnnlab.ui")


def show_error(exc: BaseException) -> None:
    """An expected problem: its message is written for the student."""
    st.error(str(exc), icon=":material/error:")


def show_unexpected(exc: BaseException, doing: str = "drawing this page") -> None:
    log.exception("unexpected error while %s", doing)
    st.error(
        f"Something went wrong while {doing}. Your stored runs are safe. "
        "Try again, or pick another run or dataset; if it keeps happening, show the details below to your teacher.",
        icon=":material/sentiment_dissatisfied:",
    )
    with st.expander("Details (for the teacher)"):
        st.code("".join(traceback.format_exception(exc)), language="text")


@contextmanager
def errors_shown(doing: str = "drawing this part of the page") -> Iterator[None]:
    """Show an exception raised inside the block as a message; the rest of the page still draws.

    Streamlit's own rerun/stop/switch-page signals are BaseExceptions and pass through.
    """
    try:
        yield
    except ValueError as exc:  # DataError, ArchitectureError, ConfigError, WeightsError, ...
        show_error(exc)
    except Exception as exc:  # noqa: BLE001 - no traceback reaches a student
        out_of_memory = resource_message(exc)  # TensorFlow's ResourceExhaustedError: one line, the fix
        if out_of_memory:
            st.error(out_of_memory, icon=":material/memory:")
        else:
            show_unexpected(exc, doing)


def job_error(error: str | None) -> str | None:
    """A failed job's message for a student: TensorFlow's out-of-memory error becomes one clear line.

    The worker records unexpected failures as ``"Training failed unexpectedly (ResourceExhaustedError: ...)"``.
    """
    if error and "ResourceExhaustedError" in error:
        return resource_message(MemoryError())
    return error


def header(title: str, intro: str = "") -> None:
    """The page's title and its one-paragraph introduction."""
    st.title(title)
    if intro:
        st.markdown(intro)


def empty_state(message: str, page: str | None = None, label: str | None = None, icon: str | None = None) -> None:
    """Say why there is nothing to show and where to go instead."""
    st.info(message, icon=":material/info:")
    if page:
        st.page_link(page, label=label or "Go there", icon=icon)


NO_DATASET = "No dataset yet: pick or upload one on the Data page."
NO_RUN = "No run yet: train one on the Train page."


def no_dataset() -> None:
    """The empty state of a page that needs a dataset picked first."""
    empty_state(NO_DATASET, state.PAGES["data"], "Go to the Data page", ":material/photo_library:")


def no_run(then: str) -> None:
    """The empty state of a page that reads a stored run; ``then`` says what to come back for."""
    message = f"{NO_RUN.removesuffix('.')}, then {then}."
    empty_state(message, state.PAGES["train"], "Go to the Train page", ":material/model_training:")


_FLASH = "_flash"


def set_flash(message: str) -> None:
    """A message for the next page the student lands on (e.g. after a remedy button)."""
    st.session_state[_FLASH] = message


def flash() -> None:
    """Show (once) the message another page left for this one."""
    message = st.session_state.pop(_FLASH, None)
    if message:
        st.success(message, icon=":material/auto_fix_high:")
