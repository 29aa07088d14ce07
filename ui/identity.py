"""Who is using this session: logging in, the user id that owns uploads and jobs, and the teacher's role.

Three ways to run, chosen by ``.streamlit/secrets.toml`` (README, "A classroom server"):

- **OIDC** (an ``[auth]`` section, Streamlit's own ``st.login`` / ``st.user``;
  needs ``streamlit[auth]``): a student logs in with the school's identity
  provider; the user id is their e-mail (or the provider's subject id).
  Addresses listed in ``[cnnlab] teachers`` are teachers.
- **Class passwords** (``[cnnlab] class_password`` and/or ``teacher_password``),
  for an offline classroom without an identity provider: compared in
  constant time (``hmac.compare_digest``). The teacher password gives the
  teacher's role. Each student types a name with the password and is that
  name (``name:ada lovelace``, :mod:`core.store.students`) in every tab and
  after a reload, through a signed cookie (:mod:`ui.login`).
- **Neither**: no login (one person on a laptop); each browser session has
  its own id.

This module only reads who the session is; :mod:`ui.login` lets people in
and out. :func:`user_id` owns uploads and jobs; :func:`viewer` is what run
lists are filtered by: None for a teacher, who sees everything.
"""

from __future__ import annotations

import hmac
import uuid
from typing import Any

import streamlit as st

from core.store import name_of

SESSION_ID = "_cnnlab_session_id"
ROLE = "_cnnlab_role"  # "student" or "teacher" after a password login
USER = "_cnnlab_user"  # the name's user id after a password login (ui.login): "name:ada", "teacher:ms stone"
SECTION = "cnnlab"  # our section of secrets.toml
# [auth] keys shared by every provider; any other key holding a table names a provider.
_SHARED_AUTH_KEYS = {
    "redirect_uri",
    "cookie_secret",
    "expose_tokens",
    "client_id",
    "client_secret",
    "server_metadata_url",
    "client_kwargs",
}


def _secrets_section(name: str) -> dict[str, Any]:
    """A section of secrets.toml as a dict; empty when there is no file or no such section."""
    try:
        section = st.secrets.get(name)
    except Exception:  # noqa: BLE001 - no secrets.toml at all: Streamlit raises its own error
        return {}
    return dict(section) if section else {}


def oidc_providers() -> list[str] | None:
    """The OIDC providers configured in ``[auth]`` (``[None]`` for the default one); None without ``[auth]``."""
    auth = _secrets_section("auth")
    if not auth:
        return None
    named = [k for k, v in auth.items() if k not in _SHARED_AUTH_KEYS and hasattr(v, "keys")]
    return named or [None]


def setting(key: str) -> Any:
    """A value of our ``[cnnlab]`` section of secrets.toml (None when not set)."""
    return _secrets_section(SECTION).get(key)


def passwords() -> tuple[str | None, str | None]:
    """``(class password, teacher password)`` from secrets.toml; None where one is not set."""
    cfg = _secrets_section(SECTION)
    return cfg.get("class_password") or None, cfg.get("teacher_password") or None


def login_mode() -> str:
    """How people get in: one of "oidc", "password" or "off"."""
    if oidc_providers() is not None:
        return "oidc"
    if any(passwords()):
        return "password"
    return "off"


def matches(given: str, secret: str | None) -> bool:
    """Whether a typed password is this one (constant time; False when it is not set)."""
    return secret is not None and hmac.compare_digest(given.encode(), str(secret).encode())


def oidc_logged_in() -> bool:
    """Whether this session is logged in with the school's identity provider."""
    try:
        return bool(st.user.is_logged_in)
    except Exception:  # noqa: BLE001 - st.user without a configured provider
        return False


def _oidc_user() -> str | None:
    if not oidc_logged_in():
        return None
    who = st.user.get("email") or st.user.get("sub")
    return str(who) if who else None


def user_id() -> str:
    """Who owns this session's uploads and jobs: the logged-in user, the named student, else this browser session."""
    who = _oidc_user()
    if who:
        return f"user:{who.lower()}"
    if st.session_state.get(USER):
        return st.session_state[USER]
    if SESSION_ID not in st.session_state:
        st.session_state[SESSION_ID] = f"session:{uuid.uuid4().hex}"
    return st.session_state[SESSION_ID]


def known() -> bool:
    """Whether this session's user outlasts it (a school login or a name), rather than being this session."""
    return not user_id().startswith("session:")


def is_teacher() -> bool:
    """The teacher password was given, or the logged-in user is listed in ``[cnnlab] teachers``."""
    if st.session_state.get(ROLE) == "teacher":
        return True
    who = _oidc_user()
    teachers = _secrets_section(SECTION).get("teachers") or []
    return who is not None and who.lower() in {str(t).lower() for t in teachers}


def viewer() -> str | None:
    """What run lists are filtered by: None for a teacher (sees everything), else :func:`user_id`."""
    return None if is_teacher() else user_id()


def who_text() -> str | None:
    """A short line for the sidebar: who is logged in, or None when login is off."""
    mode = login_mode()
    if mode == "off":
        return None
    role = "teacher" if is_teacher() else "student"
    who = _oidc_user() or name_of(st.session_state.get(USER) or "")
    return f"Logged in as {who} ({role})" if who else f"Logged in ({role})"
