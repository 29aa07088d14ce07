"""CNN Lab: routes only. The page list, st.navigation, the shared sidebar, then the page.

Run it with ``streamlit run app.py``. Settings for a classroom server live in
``.streamlit/config.toml``; runs are stored under ``CNNLAB_HOME``.
"""

from pathlib import Path

import streamlit as st

from ui import frame, sidebar, state
from ui.feedback import errors_shown

st.set_page_config(page_title="CNN Lab", page_icon=":material/landscape:", layout="wide")
state.init()

# The URL of each of our pages is its file name (/train for pages/train.py), so Streamlit's
# legacy pages-folder mode, which serves the first requests after a start, finds the file;
# the page then re-enters through this file (ui/frame.py). The two experiment pages, written
# by others, get URLs that are not file names: legacy mode falls back to this file for them.
URL_PATHS = {"lab": "overfitting-lab", "transfer": "transfer-learning"}


def page(key: str, title: str, icon: str, default: bool = False) -> st.Page:
    """One entry of the menu: the file in pages/, its title and icon."""
    return st.Page(state.PAGES[key], title=title, icon=icon, url_path=URL_PATHS.get(key), default=default)


sections = {
    "": [page("home", "Home", ":material/home:", default=True)],
    "Build and train": [
        page("data", "Data", ":material/photo_library:"),
        page("architecture", "Architecture", ":material/account_tree:"),
        page("train", "Train", ":material/model_training:"),
    ],
    "Read the results": [
        page("diagnostics", "Diagnostics", ":material/monitoring:"),
        page("predictions", "Predictions", ":material/grid_view:"),
    ],
    # Written by other engineers; listed as soon as their file exists.
    "Experiments": [
        page(key, title, icon)
        for key, title, icon in (
            ("lab", "Overfitting lab", ":material/science:"),
            ("transfer", "Transfer learning", ":material/move_up:"),
        )
        if Path(state.PAGES[key]).is_file()
    ],
}
current = st.navigation({name: pages for name, pages in sections.items() if pages})
sidebar.render(on_train_page=current.url_path == "train")
with frame.app_frame(), errors_shown("drawing this page"):
    current.run()
