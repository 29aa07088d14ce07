"""Home: what CNN Lab is for, the path through the pages, what is active now.

Deliberately light: no plotly, no TensorFlow, so it opens in about a second.
"""

import streamlit as st

from core.base import describe, plural
from core.models import check_architecture
from core.models.layer_table import layer_table
from core.results import diagnosis_of
from ui import resources, state
from ui.feedback import NO_RUN
from ui.frame import run_page
from ui.sidebar import dataset_label

STEPS = (
    (
        "data",
        "1 · Data",
        ":material/photo_library:",
        "Look at the images, count them per class, and see how they are scaled, encoded and split.",
    ),
    (
        "architecture",
        "2 · Architecture",
        ":material/account_tree:",
        "Stack convolution and pooling blocks; watch the shapes and the parameter count change.",
    ),
    (
        "train",
        "3 · Train",
        ":material/model_training:",
        "Choose optimizer, epochs, early stopping and augmentation, then train and watch the curves grow.",
    ),
    (
        "diagnostics",
        "4 · Diagnostics",
        ":material/monitoring:",
        "Read the curves: good fit, overfitting or underfitting, and what to try next.",
    ),
    (
        "predictions",
        "5 · Predictions",
        ":material/grid_view:",
        "See which images the network gets right, which it confuses, and test it on your own picture.",
    ),
)


def main() -> None:
    st.title("CNN Lab")
    st.markdown(
        "A workbench for **convolutional neural networks on geoscience images**: rock thin sections, "
        "seismic facies and drill core. Build the course's network block by block, train it here, and learn "
        "to read what the training curves and the test results say. Everything runs on this server; "
        "nothing needs the internet."
    )

    left, right = st.columns([3, 2], gap="large")
    with left:
        st.subheader("The path through the lab")
        for key, label, icon, text in STEPS:
            with st.container(border=True):
                st.page_link(state.PAGES[key], label=label, icon=icon)
                st.caption(text)
        st.caption(
            "The **Overfitting lab** and **Transfer learning** pages (in the menu under *Experiments*) "
            "compare several trainings side by side."
        )

    with right:
        st.subheader("Right now")
        _active_dataset()
        _active_model()
        _active_run()


def _active_dataset() -> None:
    source = state.dataset()
    with st.container(border=True):
        st.markdown("**Dataset**")
        if not source:
            st.caption("None yet: the bundled sample data is missing. Upload a zip of class folders on the Data page.")
            return
        st.markdown(dataset_label(source))
        info = resources.bundled_info(source)
        if info is not None:
            st.caption(", ".join(f"{c} ({n})" for c, n in zip(info.classes, info.counts, strict=True)))


def _active_model() -> None:
    m, t = resources.fit_classes(state.model_cfg(), state.dataset()), state.train_cfg()
    with st.container(border=True):
        st.markdown("**Model and training settings**")
        st.markdown(describe(m, t))
        if check_architecture(m):
            st.caption("This architecture does not fit its input yet: fix it on the Architecture page.")
        else:
            st.caption(f"{layer_table(m).total_params:,} parameters")


def _active_run() -> None:
    rec = resources.record(state.run_id())
    with st.container(border=True):
        st.markdown("**Run shown on the result pages**")
        if rec is None:
            st.caption(NO_RUN)
            return
        st.markdown(rec.label)
        acc = rec.test.get("accuracy")
        verdict = d.title if (d := diagnosis_of(rec)) else ""
        st.caption(
            f"{plural(len(rec.history.get('loss', [])), 'epoch')} · test accuracy {acc:.0%} · {verdict}"
            if acc is not None
            else verdict
        )


run_page(main)
