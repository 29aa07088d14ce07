"""Who is using this session: logging in, the user id that owns uploads and jobs, and the teacher's role.

Three ways to run, chosen by ``.streamlit/secrets.toml`` (README, "A classroom server"):

- **OIDC** (an ``[auth]`` section, Streamlit's own ``st.login`` / ``st.user``;
  needs ``streamlit[auth]``): a student logs in with the school's identity
  provider; the user id is their e-mail (or the provider's subject id).
  Addresses listed in ``[cnnlab] teachers`` are teachers.
- **Class passwords** (``[cnnlab] class_password`` and/or ``teacher_password``),
  for an offline classroom without an identity provider: compared in
  constant time (``hmac.compare_digest``). The teacher password gives the
  teacher's role. Students get a per-session id.
- **Neither**: no login (one person on a laptop); each browser session has
  its own id.

:func:`user_id` owns uploads (and, once wired, jobs); :func:`viewer` is what
run lists are filtered by: None for a teacher, who sees everything.
"""

from __future__ import annotations

import hmac
import uuid
from typing import Any

import streamlit as st

SESSION_ID = "_cnnlab_session_id"
ROLE = "_cnnlab_role"  # "student" or "teacher" after a password login
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


def _passwords() -> tuple[str | None, str | None]:
    cfg = _secrets_section(SECTION)
    return cfg.get("class_password") or None, cfg.get("teacher_password") or None


def login_mode() -> str:
    """How people get in: one of "oidc", "password" or "off"."""
    if oidc_providers() is not None:
        return "oidc"
    if any(_passwords()):
        return "password"
    return "off"


def _matches(given: str, secret: str | None) -> bool:
    return secret is not None and hmac.compare_digest(given.encode(), str(secret).encode())


def _logged_in_oidc() -> bool:
    try:
        return bool(st.user.is_logged_in)
    except Exception:  # noqa: BLE001 - st.user without a configured provider
        return False


def gate() -> None:
    """Show the login and stop the script until this session is let in (app.py calls it first)."""
    mode = login_mode()
    if mode == "off" or (mode == "oidc" and _logged_in_oidc()) or st.session_state.get(ROLE):
        return
    st.title("CNN Lab")
    if mode == "oidc":
        st.markdown("Log in with your school account to use CNN Lab.")
        for provider in oidc_providers() or [None]:
            label = f"Log in with {provider}" if provider else "Log in"
            if st.button(label, key=f"login.{provider or 'default'}", type="primary"):
                if provider:
                    st.login(provider)
                else:
                    st.login()
        st.stop()
    class_pw, teacher_pw = _passwords()
    with st.form("login"):
        st.markdown("Enter the password your teacher gave the class.")
        given = st.text_input("Password", type="password", key="login.password")
        if st.form_submit_button("Enter", type="primary"):
            if _matches(given, teacher_pw):
                st.session_state[ROLE] = "teacher"
            elif _matches(given, class_pw):
                st.session_state[ROLE] = "student"
            else:
                st.error("That password is not right. Ask your teacher for the class password.")
    if not st.session_state.get(ROLE):
        st.stop()
    st.rerun()


def logout() -> None:
    """Forget this session's login (OIDC: Streamlit's logout, which also starts a new session)."""
    if login_mode() == "oidc" and _logged_in_oidc():
        st.logout()
    st.session_state.pop(ROLE, None)
    st.session_state.pop(SESSION_ID, None)


def _oidc_user() -> str | None:
    if not _logged_in_oidc():
        return None
    who = st.user.get("email") or st.user.get("sub")
    return str(who) if who else None


def user_id() -> str:
    """Who owns this session's uploads and jobs: the logged-in user, else an id for this browser session."""
    who = _oidc_user()
    if who:
        return f"user:{who.lower()}"
    if SESSION_ID not in st.session_state:
        st.session_state[SESSION_ID] = f"session:{uuid.uuid4().hex}"
    return st.session_state[SESSION_ID]


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
    who = _oidc_user()
    return f"Logged in as {who} ({role})" if who else f"Logged in ({role})"
