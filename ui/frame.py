"""Every page runs inside app.py's frame: its navigation menu and its sidebar.

Why this exists: a ``pages/`` folder sits next to app.py, so until some session
of the process has called ``st.navigation``, Streamlit serves requests in its
legacy pages-folder mode. The first request after a server start on a deep
link (``/train``: thirty browsers reconnecting after the teacher restarts the
server) then runs ``pages/train.py`` on its own, without app.py. The page
notices (:func:`ensure_app`) and runs app.py instead, which routes the same
URL back to it through ``st.navigation``, with the sidebar, and switches the
process out of legacy mode for everyone.
"""

from __future__ import annotations

import runpy
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import streamlit as st

APP = Path(__file__).resolve().parent.parent / "app.py"
_local = threading.local()  # script runs of one session happen on one thread at a time


@contextmanager
def app_frame() -> Iterator[None]:
    """Mark the page run app.py makes (``with app_frame(): page.run()``)."""
    _local.depth = getattr(_local, "depth", 0) + 1
    try:
        yield
    finally:
        _local.depth -= 1


def in_app() -> bool:
    return getattr(_local, "depth", 0) > 0


def ensure_app() -> None:
    """Run app.py (which runs this page inside its frame) if the page was started on its own."""
    if in_app():
        return
    runpy.run_path(str(APP), run_name="__main__")
    st.stop()
