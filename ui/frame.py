"""How a page runs: always inside app.py (its navigation menu and sidebar), with friendly errors.

app.py ends with ``frame.run(page)``; every page file ends with ``run_page(main)``
and draws nothing outside ``main``. That pair is all a page author needs to know.

Why the pair exists -- Streamlit's legacy pages-folder mode
-----------------------------------------------------------

A folder named ``pages/`` sits next to app.py (the layout the course's users
asked for). Streamlit 1.67 decides once per server process, when the first
browser session starts, whether the app is an old-style "pages folder" app:
``PagesManager.uses_pages_directory`` becomes True because ``pages/`` exists.
Only a call to ``st.navigation`` sets it back to False, for the whole process,
and no config option or earlier hook does. So every script run that starts
before some session has run app.py's ``st.navigation`` is served in legacy
mode: Streamlit builds its own menu from the files in ``pages/`` and runs the
file whose name matches the URL on its own (``/train`` runs ``pages/train.py``,
without app.py), or app.py itself for ``/``. That is the first request after
every server start: thirty browsers reconnecting to ``/train`` after the
teacher restarts the server.

:func:`run_page` notices that its page was started without app.py and runs
app.py instead. app.py calls ``st.navigation``, which routes the same URL back
to the same page, now with the sidebar, and switches the process out of legacy
mode for everyone. The page's module-level code (imports, constants) has run
once more than usual; that is why pages draw only inside ``main``.

One rule follows: **a page's URL is its file name** (app.py gives no
``url_path``). Legacy mode only knows file names; a URL it cannot match falls
back to app.py with a "Page not found" dialog. tests/app/test_navigation.py
checks the rule, and the browser test opens ``/train`` and ``/lab`` as the
first request of a fresh server.
"""

from __future__ import annotations

import runpy
import threading
from collections.abc import Callable
from pathlib import Path

import streamlit as st

from ui.feedback import errors_shown

APP = Path(__file__).resolve().parent.parent / "app.py"
_local = threading.local()  # a session's script runs happen on one thread, one at a time


def run(page: st.Page) -> None:
    """Run the page ``st.navigation`` chose, inside app.py's frame (app.py's last line)."""
    _local.depth = getattr(_local, "depth", 0) + 1
    try:
        with errors_shown("drawing this page"):
            page.run()
    finally:
        _local.depth -= 1


def run_page(main: Callable[[], None]) -> None:
    """Draw a page: ``main()`` inside app.py's frame, expected problems shown as messages.

    Every page file ends with ``run_page(main)``. Started on its own (legacy
    mode, see above), the page runs app.py instead, which runs it again inside
    its frame; this run then stops.
    """
    if getattr(_local, "depth", 0) == 0:
        runpy.run_path(str(APP), run_name="__main__")
        st.stop()
    with errors_shown("drawing this page"):
        main()
