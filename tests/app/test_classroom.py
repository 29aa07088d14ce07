"""A classroom server: each student's uploads and runs are their own; logging in with a class password,
a teacher password, or the school's OIDC provider; no login when nothing is configured."""

from __future__ import annotations

from apphelpers import APP, FAST, TIMEOUT, TINY, texts, zip_of
from streamlit.testing.v1 import AppTest

PASSWORDS = {"class_password": "quartz-42", "teacher_password": "granite-7"}


def _session(secrets: dict | None = None, **state) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    for key, value in (secrets or {}).items():
        at.secrets[key] = value
    for key, value in state.items():
        at.session_state[key] = value
    return at.run()


def _upload(at: AppTest, name: str, data: bytes) -> str:
    at.switch_page("pages/data.py").run()
    at.segmented_control(key="data.kind").set_value("Upload a zip").run()
    at.file_uploader(key="data.upload").upload(name, data, "application/zip").run()
    assert not at.exception, [e.value for e in at.exception]
    return at.session_state["dataset"]


def _mentions(options: list[str], *words: str) -> bool:
    """Whether any option's label (the selects show labels) mentions any of the words."""
    return any(w in o for o in options for w in words)


def _login(at: AppTest, password: str) -> AppTest:
    at.text_input(key="login.password").input(password)
    at.button[0].click().run()  # the form's submit button
    return at


def test_uploads_and_their_runs_are_seen_only_by_the_session_that_made_them(private_worker, data_dir, monkeypatch):
    from core.training.experiment import run_experiment

    alice, bob = _session(), _session()
    upload = _upload(alice, "alices_rocks.zip", zip_of(data_dir))
    sha = upload.rsplit("/", 1)[-1]
    rec = run_experiment(upload, TINY, FAST, store=private_worker.store)  # a real run on Alice's upload
    shared = run_experiment(str(data_dir), TINY, FAST.replace(seed=3), store=private_worker.store)

    alice.run()
    bob.run()
    assert "Upload: alices_rocks.zip" in alice.selectbox(key="dataset").options
    assert not _mentions(bob.selectbox(key="dataset").options, "alices_rocks", sha)
    assert _mentions(alice.selectbox(key="run_id").options, "alices_rocks.zip")
    assert not _mentions(bob.selectbox(key="run_id").options, "alices_rocks", sha)
    for at in (alice, bob):  # runs on shared data are everyone's
        assert _mentions(at.selectbox(key="run_id").options, f"· {data_dir.name} ·")

    # Nor by its id or path (a crafted session state).
    from ui import identity, resources

    with monkeypatch.context() as m:
        m.setattr(identity, "viewer", lambda: "session:bob")
        assert resources.record(rec.run_id) is None and resources.record(shared.run_id) is not None
    crafted = _session(dataset=upload)
    crafted.switch_page("pages/data.py").run()
    assert not crafted.exception
    assert any("belongs to another session" in e.value for e in crafted.error), texts(crafted)[:600]

    # The same bytes uploaded by Bob are one file, now his too: the run trained once is his as well.
    assert _upload(bob, "same.zip", zip_of(data_dir)) == upload
    bob.run()
    assert _mentions(bob.selectbox(key="run_id").options, "same.zip")


def test_the_teacher_sees_every_run(private_worker, data_dir):
    from core.training.experiment import run_experiment

    student = _session({"cnnlab": PASSWORDS})
    _login(student, PASSWORDS["class_password"])
    upload = _upload(student, "mine.zip", zip_of(data_dir))
    rec = run_experiment(upload, TINY, FAST, store=private_worker.store)

    teacher = _login(_session({"cnnlab": PASSWORDS}), PASSWORDS["teacher_password"])
    assert not teacher.exception
    sha = upload.rsplit("/", 1)[-1]
    assert _mentions(teacher.selectbox(key="run_id").options, sha)
    assert "Logged in (teacher)" in texts(teacher)
    other = _login(_session({"cnnlab": PASSWORDS}), PASSWORDS["class_password"])
    assert "Logged in (student)" in texts(other)
    assert not _mentions(other.selectbox(key="run_id").options if len(other.selectbox) > 1 else [], sha)
    assert rec.run_id


def test_a_class_password_keeps_the_app_closed_until_it_is_given():
    at = _session({"cnnlab": {"class_password": PASSWORDS["class_password"]}})
    assert not at.exception
    assert not at.sidebar.selectbox, "nothing of the app before the password"
    assert "Enter the password your teacher gave the class." in texts(at)
    _login(at, "quartz-41")
    assert any("That password is not right" in e.value for e in at.error)
    assert not at.sidebar.selectbox
    _login(at, PASSWORDS["class_password"])
    assert not at.exception and at.selectbox(key="dataset")
    assert at.title[0].value == "CNN Lab" and "Logged in (student)" in texts(at)
    at.button(key="sidebar.logout").click().run()
    assert "Enter the password" in texts(at)


def test_without_any_login_configured_the_app_opens_at_once():
    at = _session()
    assert not at.exception and at.selectbox(key="dataset")
    assert not at.text_input and "Logged in" not in texts(at)


OIDC = {
    "redirect_uri": "http://localhost:8501/oauth2callback",
    "cookie_secret": "a-long-random-string-for-the-test",
    "client_id": "cnnlab",
    "client_secret": "secret",
    "server_metadata_url": "https://idp.example.org/.well-known/openid-configuration",
}


def test_with_an_oidc_provider_the_login_button_starts_streamlits_login(monkeypatch):
    import streamlit as st

    calls = []  # the redirect itself needs a browser and the provider: stop at Streamlit's call
    monkeypatch.setattr(st, "login", lambda *a: calls.append(a))
    at = _session({"auth": OIDC})
    assert not at.exception
    assert not at.sidebar.selectbox and "Log in with your school account" in texts(at)
    at.button(key="login.default").click().run()
    assert calls == [()], "st.login was called: Streamlit redirects the browser to the provider from here"
    assert not at.exception, [e.value for e in at.exception]


def test_oidc_users_listed_as_teachers_are_teachers(monkeypatch):
    from ui import identity

    monkeypatch.setattr(identity, "_oidc_user", lambda: "Ms.Stone@school.org")
    monkeypatch.setattr(
        identity, "_secrets_section", lambda name: {"teachers": ["ms.stone@school.org"]} if name == "cnnlab" else {}
    )
    assert identity.is_teacher() and identity.viewer() is None
    assert identity.user_id() == "user:ms.stone@school.org"
