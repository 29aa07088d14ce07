"""CNN Lab: routes only. The page list, st.navigation, the shared sidebar, then the page.

Run it with ``streamlit run app.py``. Settings for a classroom server live in
``.streamlit/config.toml``; runs are stored under ``CNNLAB_HOME``. Each page's
URL is its file name (/train is pages/train.py): ui/frame.py says why.
"""

import streamlit as st

from core.base import SettingError, mark_serving, settings
from ui import frame, identity, sidebar, state

mark_serving()  # this process serves browsers: data is read only inside CNNLAB_DATA_ROOTS (core.base.limits)
st.set_page_config(page_title="CNN Lab", page_icon=":material/landscape:", layout="wide")
try:
    settings()  # every CNNLAB_* setting checked at start-up (and again only if one changes)
except SettingError as exc:  # the server keeps serving this message until its settings are fixed
    st.error(f"CNN Lab cannot start on this server until its settings are fixed: {exc}", icon=":material/settings:")
    st.stop()
identity.gate()  # the class or teacher password, or the school's login, when secrets.toml configures one
state.init()


def page(key: str, title: str, icon: str, default: bool = False) -> st.Page:
    """One entry of the menu: the file in pages/, its title and icon."""
    return st.Page(state.PAGES[key], title=title, icon=icon, default=default)


current = st.navigation(
    {
        "": [page("home", "Home", ":material/home:", default=True)],
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
        "The class": [page("board", "Challenge board", ":material/leaderboard:")],
    }
)
sidebar.render(on_train_page=current.url_path == "train")
frame.run(current)
