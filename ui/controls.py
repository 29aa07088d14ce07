"""Controls several pages draw the same way: the VGG16 weight source, and the slider steps and bounds they share.

The choices, their labels and the valid ranges come from :mod:`core.base.config` (the CLI shows the
same ones); what is defined here is only how the dashboard offers them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import streamlit as st

from core.base import RANGES, WEIGHT_FILE_LABEL, WEIGHT_SOURCE_LABELS, WEIGHT_SOURCES
from core.models import weights_status
from ui import resources, state

# Slider steps (any value in range is valid; these are the ones a slider offers).
DENSE_UNITS = (8, 16, 32, 64, 128, 256, 512)
FINE_TUNE_RATES = (1e-6, 3e-6, 1e-5, 3e-5, 1e-4)
FILE = "file"  # the weight-source select's value for "a VGG16 weights file on the server"


def steps(values: Sequence, current: Any) -> list:
    """A select slider's options: the usual steps, plus the current value if it is not one of them.

    A config from a stored run, the CLI or the lab can hold any valid value; the slider still shows it.
    """
    return sorted(set(values) | {current})


def slider_max(name: str, key: str) -> float:
    """The maximum of the slider ``key`` for the setting ``name``: its usual one (``core.base.config.RANGES``),
    or the widget's current value if a stored config holds more."""
    return max(RANGES[name].top, st.session_state[key])


def valid_range(name: str) -> tuple[float, float]:
    """The setting ``name``'s whole valid ``(minimum, maximum)`` (``core.base.config.RANGES``), for a number input."""
    r = RANGES[name]
    return r.lo, r.hi


def slider_range(name: str, key: str) -> tuple[float, float]:
    """The slider's ``(minimum, maximum)`` for the setting ``name``: the valid minimum, and :func:`slider_max`."""
    return RANGES[name].lo, slider_max(name, key)


def weights_picker(key: str, current: str, persist_state: str | None = None) -> str | None:
    """The VGG16 weight source: core's sources (plus a file on the server, when allowed) and its status.

    Args:
        key: the select's widget key; the path's is ``key + "_path"``.
        current: the weights the widgets start from ("imagenet", "offline",
            "none" or a path) until the student moves them.
        persist_state: passed to both widgets ("session": keep them across page switches).

    Returns:
        The chosen weights, or None while the path of a weights file is still empty.
    """
    options = [*WEIGHT_SOURCES] + ([FILE] if resources.server_paths_allowed() else [])
    start = current if current in WEIGHT_SOURCES else FILE
    state.bind(key, start if start in options else options[0])
    choice = st.selectbox(
        "VGG16 weights",
        options,
        key=key,
        persist_state=persist_state,
        format_func=lambda w: WEIGHT_SOURCE_LABELS.get(w, WEIGHT_FILE_LABEL + " on the server"),
        help="Where the frozen convolution base's weights come from. Without internet, ImageNet weights need a "
        "cached copy.",
    )
    weights = choice
    if choice == FILE:
        state.bind(key + "_path", "" if current in WEIGHT_SOURCES else current)
        weights = st.text_input(
            "Path of a VGG16 weights file (.h5 or .weights.h5) on the server",
            key=key + "_path",
            persist_state=persist_state,
        ).strip()
        if not weights:
            st.caption("Enter the path of a VGG16 weights file (include_top=False).")
            return None
    status = weights_status(weights)
    if status.ok:
        st.success(status.message, icon=":material/check_circle:")
    else:
        st.warning(status.message, icon=":material/warning:")
    st.caption(f"Images go through: {status.preprocessing}.")
    return weights
