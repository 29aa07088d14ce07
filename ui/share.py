"""Shareable settings: the Architecture and Train controls in the page's URL and in a JSON file.

Each page owns one query parameter (:data:`core.base.config_codec.MODEL_PARAM` on Architecture,
:data:`core.base.config_codec.TRAIN_PARAM` on Train): it reads it once when it changes (a link
someone opened) and writes it after every change of its controls, so the address bar
is always a link to what the student sees. A malformed link or file is refused with a
message and the controls stay as they were.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import streamlit as st

from core.base import (
    MODEL_PARAM,
    TRAIN_PARAM,
    ConfigError,
    ModelConfig,
    TrainConfig,
    configs_from_json,
    configs_json,
    encode_model,
    encode_train,
)
from ui import state

_SEEN = "_share_seen."  # session keys: the last value of each query parameter this session has read or written


def follow_link(param: str, decode: Callable[[str], Any], current: Any, apply: Callable[[Any], None]) -> None:
    """Apply ``?param=`` once when it differs from what this session last read or wrote (then rerun)."""
    text = st.query_params.get(param)
    if text is None or text == st.session_state.get(_SEEN + param):
        return
    st.session_state[_SEEN + param] = text
    try:
        cfg = decode(text)
    except (ConfigError, ValueError) as exc:
        st.error(f"This link's settings were not used: {exc}", icon=":material/link_off:")
        return
    if cfg != current:
        apply(cfg)
        st.rerun()


def write_link(param: str, text: str) -> None:
    """Put the page's settings in its URL (the defaults: no parameter at all)."""
    st.session_state[_SEEN + param] = text or None
    if not text:
        if param in st.query_params:
            del st.query_params[param]
    elif st.query_params.get(param) != text:
        st.query_params[param] = text


def page_link(page: str, model_cfg: ModelConfig, train_cfg: TrainConfig | None = None) -> str:
    """The address of this app's ``page`` ("architecture", "train") opened with these settings: what the teacher
    sends to the class. The Train page reads both ``?model=`` and ``?train=``; Architecture reads ``?model=``.

    Made from the address the browser is on now (``st.context.url``: scheme, host, port and any base path), so
    it works behind the school's proxy too; a path from the server's root when the browser's address is unknown.
    """
    params = {MODEL_PARAM: encode_model(model_cfg)}
    if train_cfg is not None:
        params[TRAIN_PARAM] = encode_train(train_cfg)
    query = urlencode({k: v for k, v in params.items() if v}, safe=":,")
    here = urlsplit(st.context.url or "")
    path = here.path.rsplit("/", 1)[0] + "/" + page  # the current page's address, its last part replaced
    return urlunsplit((here.scheme, here.netloc, path, query, ""))


def settings_file(key: str) -> None:
    """Download the model and training settings as JSON, or upload such a file to set both."""
    with st.expander("Share these settings", icon=":material/share:"):
        st.caption(
            "The address of this page is a link to these settings. Or save them as a file, and load a file "
            "someone gave you."
        )
        st.download_button(
            "Download the settings (JSON)",
            configs_json(state.model_cfg(), state.train_cfg()),
            "cnnlab_settings.json",
            "application/json",
            key=key + ".download",
            icon=":material/download:",
            on_click="ignore",
        )
        up = st.file_uploader("Load settings (JSON)", type=["json"], key=key + ".upload")
        if up is None or st.session_state.get(key + ".loaded") == up.file_id:
            return
        st.session_state[key + ".loaded"] = up.file_id
        try:
            model_cfg, train_cfg = configs_from_json(up.getvalue())
        except ConfigError as exc:
            st.error(f"These settings were not loaded: {exc}", icon=":material/error:")
            return
        state.set_configs(model_cfg, train_cfg)
        st.rerun()
