"""CNN Lab: routes only. The page list, st.navigation, the shared sidebar, then the page.

Run it with ``streamlit run app.py``. Settings for a classroom server live in
``.streamlit/config.toml``; runs are stored under ``CNNLAB_HOME``. Each page's
URL is its file name (/train is pages/train.py): ui/frame.py says why.
"""

import streamlit as st

from core.base import SettingError, mark_serving, settings
from ui import frame, jobs, login, sidebar, state
from ui.identity import is_teacher

mark_serving()  # this process serves browsers: data is read only inside CNNLAB_DATA_ROOTS (core.base.limits)
st.set_page_config(page_title="CNN Lab", page_icon=":material/landscape:", layout="wide")
try:
    settings()  # every CNNLAB_* setting checked at start-up (and again only if one changes)
except SettingError as exc:  # the server keeps serving this message until its settings are fixed
    st.error(f"CNN Lab cannot start on this server until its settings are fixed: {exc}", icon=":material/settings:")
    st.stop()
login.gate()  # a name and the class (or teacher) password, or the school's login, when secrets.toml asks
state.init()
jobs.start_worker_at_start()  # the worker and its warm training process, so a first press trains at once
jobs.measure_speed_at_start()  # the time estimates' calibration, in the background, once per store


def page(key: str, title: str, icon: str, default: bool = False, visible: bool = True) -> st.Page:
    """One entry of the menu: the file in pages/, its title and icon (a hidden page has an address, no entry)."""
    return st.Page(
        state.PAGES[key], title=title, icon=icon, default=default, visibility="visible" if visible else "hidden"
    )


# The teacher's view is in the teacher's menu only (under "The class"); for a student it keeps its address
# (/teacher reads one line, pages/teacher.py) without an entry, in the first section.
teacher = is_teacher()
teaching = [page("teacher", "Teacher's view", ":material/co_present:", visible=teacher)]
current = st.navigation(
    {
        "": [page("home", "Home", ":material/home:", default=True), *([] if teacher else teaching)],
        "Build and train": [
            page("data", "Data", ":material/photo_library:"),
            page("architecture", "Architecture", ":material/account_tree:"),
            page("train", "Train", ":material/model_training:"),
        ],
        "Read the results": [
            page("diagnostics", "Diagnostics", ":material/monitoring:"),
            page("predictions", "Predictions", ":material/grid_view:"),
            page("inside", "Inside the CNN", ":material/layers:"),
        ],
        "Experiments": [
            page("lab", "Overfitting lab", ":material/science:"),
            page("transfer", "Transfer learning", ":material/move_up:"),
            page("compare", "Compare runs", ":material/compare_arrows:"),
            page("sweep", "Sweep", ":material/grid_on:"),
        ],
        "The class": [page("board", "Challenge board", ":material/leaderboard:"), *(teaching if teacher else [])],
    }
)
sidebar.render(on_train_page=current.url_path == "train")
frame.run(current)
