"""Letting people in and out: the login form, the cookie that keeps a named student, log out.

app.py calls :func:`gate` first on every run. With the school's identity
provider (OIDC) it offers Streamlit's own ``st.login``. With class passwords a
student types a name and the class password (the teacher: a name and the
teacher password) and is that name from then on (:mod:`core.store.students`).

**The cookie.** Streamlit reads the cookies a browser sent when the session
opened (``st.context.cookies``) but has no API to write one. ``st.html`` with
``unsafe_allow_javascript=True`` (Streamlit 1.67) runs a script in the page
itself, not in an iframe, so the script after a login sets ``document.cookie``
on the app's own address: ``cnnlab_login=<signed token>; Path=/;
Max-Age=<the login's lifetime>; SameSite=Strict`` (and ``Secure`` over HTTPS).
A reload or a new tab sends it, and :func:`gate` reads it back: the signature
is checked, then its expiry, then whether the student logged out since, and the
teacher's renames are applied. A token refused says why above the login form
and is cleared. The token never goes in the URL (an address is copied,
bookmarked and logged; a cookie is not). The script's only content is the
token, which is base64url and digits, checked before it is written.

**Log out** forgets the session (every key: the next person at this browser
starts fresh), clears the cookie, and notes the time in the store: any token
of that name issued before is refused from then on, on any browser.
"""

from __future__ import annotations

import re
import time

import streamlit as st

from core.base import UserError
from core.store import (
    LOGIN_HOURS,
    LoginRefused,
    NameRefused,
    issue_token,
    login_secret,
    normalise_name,
    read_token,
    user_id_of,
)
from ui import identity, resources, state

COOKIE = "cnnlab_login"
_FORGET = "_cnnlab_forget_cookie"  # this session no longer reads the cookie it opened with (logged out, refused)
_COOKIE_OUT = "_cnnlab_cookie_out"  # the cookie to write on the next run: (token, seconds), or ("", 0) to clear it
_TOKEN_CHARS = re.compile(r"[A-Za-z0-9_.-]*")
MAX_LOGIN_HOURS = 24 * 30


class LoginSettingError(UserError):
    """``[cnnlab] login_hours`` in secrets.toml is not a number of hours that can be used."""


def login_hours() -> float:
    """How long a saved login lasts: ``[cnnlab] login_hours`` in secrets.toml, else a class day (12 hours)."""
    value = identity.setting("login_hours")
    if value is None:
        return LOGIN_HOURS
    try:
        hours = float(value)
    except (TypeError, ValueError):
        hours = -1.0
    if not 0 < hours <= MAX_LOGIN_HOURS:
        raise LoginSettingError(
            f"login_hours in the [cnnlab] section of secrets.toml must be a number of hours above 0 and at most "
            f"{MAX_LOGIN_HOURS}. Got {value!r} instead; fix or remove it."
        )
    return hours


def _secret() -> bytes:
    return login_secret(resources.home(), identity.setting("login_secret"))


def _role_passwords() -> dict[str, str | None]:
    class_pw, teacher_pw = identity.passwords()
    return {"student": class_pw, "teacher": teacher_pw}


def gate() -> None:
    """Show the login and stop the script until this session is let in (app.py calls it first)."""
    mode = identity.login_mode()
    if mode == "off" or (mode == "oidc" and identity.oidc_logged_in()):
        return
    if mode == "oidc":
        _school_login()
        st.stop()
    ss = st.session_state
    if ss.get(identity.ROLE):
        _follow_renames()
        _write_cookie()
        return
    try:
        hours = login_hours()
        _secret()  # made, or checked, before anyone types a name
    except UserError as exc:
        st.error(f"CNN Lab cannot let anyone in until this is fixed: {exc}", icon=":material/settings:")
        st.stop()
    refused = _come_back()
    if not ss.get(identity.ROLE):
        _password_form(refused, hours)


def _school_login() -> None:
    st.title("CNN Lab")
    st.markdown("Log in with your school account to use CNN Lab.")
    for provider in identity.oidc_providers() or [None]:
        label = f"Log in with {provider}" if provider else "Log in"
        if st.button(label, key=f"login.{provider or 'default'}", type="primary"):
            if provider:
                st.login(provider)
            else:
                st.login()


def _come_back() -> str | None:
    """Let in the student whose saved login this browser sent; the reason it was refused, if it was."""
    ss = st.session_state
    token = None if ss.get(_FORGET) else st.context.cookies.get(COOKIE)
    if not token:
        return None
    try:
        login = read_token(token, _secret(), _role_passwords(), now=time.time())
        user = resources.students().check(login)
    except LoginRefused as exc:
        ss[_FORGET], ss[_COOKIE_OUT] = True, ("", 0)  # not read again in this session, and cleared in the browser
        return str(exc)
    _enter(login.role, user)
    return None


def _enter(role: str, user: str) -> None:
    """This session is ``user`` in ``role`` from now on; their uploads are offered in the dataset select again."""
    ss = st.session_state
    ss[identity.ROLE], ss[identity.USER] = role, user
    resources.students().seen(user)
    for path, name in resources.store().upload_names(user).items():
        state.add_source(path, f"Upload: {name}")


def _follow_renames() -> None:
    """A student the teacher renamed (or merged) while logged in is the new name from this run on."""
    ss = st.session_state
    user = ss.get(identity.USER)
    if user:
        now = resources.resolve_student(user)
        if now != user:
            _enter(ss[identity.ROLE], now)


def _password_form(refused: str | None, hours: float) -> None:
    ss = st.session_state
    st.title("CNN Lab")
    if refused:
        st.warning(refused, icon=":material/lock_clock:")
    _write_cookie()  # a refused login, or a log-out: cleared now
    class_pw, teacher_pw = identity.passwords()
    with st.form("login"):
        st.markdown("Enter your name and the password your teacher gave the class.")
        typed = st.text_input(
            "Your name",
            key="login.name",
            max_chars=80,
            help="Your work is kept under this name: type the same one next time (capitals and extra spaces "
            "do not matter). Letters, digits, spaces and - ' . _",
        )
        given = st.text_input("Password", type="password", key="login.password")
        if st.form_submit_button("Enter", type="primary"):
            role, password = (
                ("teacher", teacher_pw)
                if identity.matches(given, teacher_pw)
                else ("student", class_pw)
                if identity.matches(given, class_pw)
                else (None, None)
            )
            if role is None:
                st.error("That password is not right. Ask your teacher for the class password.")
            else:
                try:
                    name = normalise_name(typed)
                except NameRefused as exc:
                    st.error(str(exc))
                else:
                    _enter(role, resources.students().resolve(user_id_of(name, role)))
                    token = issue_token(name, role, _secret(), password, now=time.time(), hours=hours)
                    ss[_COOKIE_OUT] = (token, int(hours * 3600))
    if not ss.get(identity.ROLE):
        st.stop()
    st.rerun()


def _write_cookie() -> None:
    """Write (or clear) the login cookie in the browser, once, when a login or log-out asked for it."""
    out = st.session_state.pop(_COOKIE_OUT, None)
    if out is None:
        return
    token, age = out
    if not _TOKEN_CHARS.fullmatch(token):  # only ever a token made here; never anything else in a script
        raise ValueError(f"Not a login token: {token[:20]!r}")
    script = (
        f'<script>document.cookie = "{COOKIE}={token}; Path=/; Max-Age={age}; SameSite=Strict"'
        ' + (location.protocol === "https:" ? "; Secure" : "");</script>'
    )
    where = st.sidebar if token else st.container()
    where.html(script, unsafe_allow_javascript=True)


def logout() -> None:
    """Log this session out (a button's callback): Streamlit's logout with OIDC; with a name, every saved
    login of that name ends, the cookie is cleared, and the session starts afresh."""
    if identity.login_mode() == "oidc" and identity.oidc_logged_in():
        st.logout()
    ss = st.session_state
    user = ss.get(identity.USER)
    if user:
        resources.students().log_out(user)
    for key in list(ss.keys()):
        del ss[key]
    ss[_FORGET], ss[_COOKIE_OUT] = True, ("", 0)
