"""A classroom server: each student's uploads and runs are their own; logging in with a class password,
a teacher password, or the school's OIDC provider; no login when nothing is configured."""

from __future__ import annotations

import time

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


def _login(at: AppTest, password: str, name: str = "ada") -> AppTest:
    at.text_input(key="login.name").input(name)
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
    _login(student, PASSWORDS["class_password"], "ann")
    upload = _upload(student, "mine.zip", zip_of(data_dir))
    rec = run_experiment(upload, TINY, FAST, store=private_worker.store)

    teacher = _login(_session({"cnnlab": PASSWORDS}), PASSWORDS["teacher_password"], "Ms Stone")
    assert not teacher.exception
    sha = upload.rsplit("/", 1)[-1]
    assert _mentions(teacher.selectbox(key="run_id").options, sha)
    assert "Logged in as ms stone (teacher)" in texts(teacher)
    other = _login(_session({"cnnlab": PASSWORDS}), PASSWORDS["class_password"], "bob")
    assert "Logged in as bob (student)" in texts(other)
    assert not _mentions(other.selectbox(key="run_id").options if len(other.selectbox) > 1 else [], sha)
    assert rec.run_id


def test_a_class_password_keeps_the_app_closed_until_it_is_given():
    at = _session({"cnnlab": {"class_password": PASSWORDS["class_password"]}})
    assert not at.exception
    assert not at.sidebar.selectbox, "nothing of the app before the password"
    assert "Enter your name and the password your teacher gave the class." in texts(at)
    _login(at, "quartz-41")
    assert any("That password is not right" in e.value for e in at.error)
    assert not at.sidebar.selectbox
    _login(at, PASSWORDS["class_password"], name="  ")
    assert [e.value for e in at.error] == ["Enter your name: your work is kept under it."]
    _login(at, PASSWORDS["class_password"], name="<ada>")
    assert any("letters, digits, spaces and - ' . _ only; remove '<' '>'" in e.value for e in at.error)
    assert not at.sidebar.selectbox
    _login(at, PASSWORDS["class_password"])
    assert not at.exception and at.selectbox(key="dataset")
    assert at.title[0].value == "CNN Lab" and "Logged in as ada (student)" in texts(at)
    at.button(key="sidebar.logout").click().run()
    assert "Enter your name and the password" in texts(at)


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


# -- a name that outlasts the browser session: the signed cookie, log out, the teacher's renames -----------


def _cookie(at: AppTest) -> str | None:
    """The login cookie the page's script writes (a token), "" when it clears it, None when it writes none."""
    import re

    for el in at.get("html"):
        found = re.search(r'document\.cookie = "cnnlab_login=([A-Za-z0-9_.-]*); Path=/; Max-Age=(\d+)', el.proto.body)
        if found:
            assert el.proto.unsafe_allow_javascript
            return found.group(1) if int(found.group(2)) > 0 else ""
    return None


def _reload(cookie: str | None, monkeypatch, secrets: dict | None = None) -> AppTest:
    """A new session of the same browser: a new AppTest whose first request carried the login cookie.

    AppTest cannot seed cookies (they come from the session's client), so the one
    function st.context.cookies reads them through answers with this browser's cookie.
    """
    from types import SimpleNamespace

    import streamlit.runtime.context as context

    cookies = {"cnnlab_login": cookie} if cookie is not None else {}
    monkeypatch.setattr(context, "_get_client_context", lambda: SimpleNamespace(cookies=cookies, headers={}))
    return _session(secrets or {"cnnlab": PASSWORDS})


def _no_password_in(home) -> None:
    """No file the server wrote (the store, its SQLite and WAL, login.key, uploads) holds a password in clear."""
    files = [path for path in home.rglob("*") if path.is_file()]
    assert any(path.name == "login.key" for path in files) and any(path.name == "runs.db" for path in files)
    for path in files:
        data = path.read_bytes()
        assert b"quartz-42" not in data and b"granite-7" not in data, path


def _student_upload_and_run(at: AppTest, data_dir, store, name: str = "rocks.zip"):
    from core.training.experiment import run_experiment

    upload = _upload(at, name, zip_of(data_dir))
    return upload, run_experiment(upload, TINY, FAST, store=store)  # a real run on the student's upload


def test_a_named_student_is_the_same_after_a_reload_with_their_uploads_runs_and_training(
    private_worker, data_dir, monkeypatch
):
    from apphelpers import wait_for

    from core.base.config import TrainConfig

    ada = _login(_session({"cnnlab": PASSWORDS}), PASSWORDS["class_password"], "  Ada   LOVELACE ")
    assert "Logged in as ada lovelace (student)" in texts(ada)
    token = _cookie(ada)
    assert token and "quartz" not in token
    upload, rec = _student_upload_and_run(ada, data_dir, private_worker.store)
    job = private_worker.submit(upload, TINY, TrainConfig(epochs=300, batch_size=4, seed=7), owner="name:ada lovelace")
    wait_for(lambda: job.active)

    again = _reload(token, monkeypatch)  # a reload, or a new tab of the same browser
    assert not again.exception, [e.value for e in again.exception]
    assert not again.text_input(key="login.password") if len(again.text_input) else True
    assert "Logged in as ada lovelace (student)" in texts(again)
    assert "Upload: rocks.zip" in again.selectbox(key="dataset").options  # her upload, under her name for it
    assert _mentions(again.selectbox(key="run_id").options, "rocks.zip")
    assert rec.run_id in [r["run_id"] for r in private_worker.store.list_runs(viewer="name:ada lovelace")]
    again.switch_page("pages/train.py").run()
    assert not again.exception, [e.value for e in again.exception]
    labels = [b.label for b in again.button]
    assert "Stop training" in labels or "Cancel" in labels, labels  # her training, hers to stop
    assert "Started in another tab or by someone else" not in texts(again)

    # The same name typed on another browser is the same student (the class password is all that guards a name).
    other = _login(_reload(None, monkeypatch), PASSWORDS["class_password"], "ada lovelace")
    assert "Upload: rocks.zip" in other.selectbox(key="dataset").options
    bob = _login(_reload(None, monkeypatch), PASSWORDS["class_password"], "bob")
    assert not _mentions(bob.selectbox(key="dataset").options, "rocks.zip")
    private_worker.stop(job.id, admin=True)

    _no_password_in(private_worker.store.home)


def test_a_changed_or_expired_saved_login_is_refused_with_the_reason(private_worker, monkeypatch):
    from core.store import issue_token, login_secret

    ada = _login(_session({"cnnlab": PASSWORDS}), PASSWORDS["class_password"], "ada")
    token = _cookie(ada)
    parts = token.split(".")
    bob_name = issue_token("bob", "student", b"x" * 32, "x", now=0).split(".")[1]
    tampered = ".".join([parts[0], bob_name, *parts[2:]])  # the name changed, Ada's signature kept
    at = _reload(tampered, monkeypatch)
    assert not at.exception and not at.sidebar.selectbox, "not let in"
    assert any("Your saved login is not valid on this server" in w.value for w in at.warning), texts(at)
    assert _cookie(at) == "", "the refused cookie is cleared in the browser"
    assert "Enter your name and the password" in texts(at)

    secret = login_secret(private_worker.store.home)  # the server's own key: only the clock is wrong

    old = issue_token("ada", "student", secret, PASSWORDS["class_password"], now=time.time() - 13 * 3600, hours=12)
    at = _reload(old, monkeypatch)
    assert not at.sidebar.selectbox
    assert any("Your saved login ended at" in w.value for w in at.warning), texts(at)

    good = issue_token("ada", "student", secret, PASSWORDS["class_password"], now=time.time(), hours=12)
    assert "Logged in as ada (student)" in texts(_reload(good, monkeypatch))
    teacher = _reload(good, monkeypatch, {"cnnlab": {**PASSWORDS, "class_password": "basalt-9"}})
    assert not teacher.sidebar.selectbox, "a new class password ends every student's saved login"


def test_log_out_clears_the_cookie_and_ends_the_saved_login(private_worker, monkeypatch):
    ada = _login(_reload(None, monkeypatch), PASSWORDS["class_password"], "ada")
    token = _cookie(ada)
    back = _reload(token, monkeypatch)
    assert "Logged in as ada (student)" in texts(back)
    back.button(key="sidebar.logout").click().run()
    assert "Enter your name and the password" in texts(back) and not back.sidebar.selectbox
    assert _cookie(back) == ""
    back.run()  # the cookie this session opened with is not read again
    assert not back.sidebar.selectbox
    copied = _reload(token, monkeypatch)  # a copy of the old cookie, on any browser
    assert any("You logged out since this login was saved" in w.value for w in copied.warning), texts(copied)


def test_the_teacher_renames_and_merges_students_and_their_runs_follow(private_worker, data_dir, monkeypatch):
    from core.store import Students

    store = private_worker.store
    ada = _login(_reload(None, monkeypatch), PASSWORDS["class_password"], "ada")
    ada_token = _cookie(ada)  # written once, on the run after the login
    upload, rec = _student_upload_and_run(ada, data_dir, store)
    assert _cookie(ada) is None, "not written again on every run"
    bob = _login(_reload(None, monkeypatch), PASSWORDS["class_password"], "bob")
    bobs_upload = _upload(bob, "bobs.zip", zip_of(data_dir))  # the same bytes: one file, Bob its owner too

    teacher = _login(_reload(None, monkeypatch), PASSWORDS["teacher_password"], "Ms Stone")
    assert not teacher.exception
    assert "ada · last in" in texts(teacher) and "bob · last in" in texts(teacher)
    teacher.selectbox(key="students.old").set_value("name:ada")
    teacher.text_input(key="students.new").input("Ada Lovelace")
    next(b for b in teacher.button if b.label == "Rename or merge").click().run()
    assert not teacher.exception, [e.value for e in teacher.exception]
    assert "ada is now ada lovelace: 1 upload and 0 trainings moved." in texts(teacher)
    assert rec.run_id in [r["run_id"] for r in store.list_runs(viewer="name:ada lovelace")]
    assert not store.may_see(upload, "name:ada")

    ada.run()  # her open session follows the rename at once
    assert "Logged in as ada lovelace (student)" in texts(ada)
    assert _mentions(ada.selectbox(key="run_id").options, "rocks.zip")
    back = _reload(ada_token, monkeypatch)  # her saved login (for "ada") reads as the new name
    assert "Logged in as ada lovelace (student)" in texts(back)

    teacher.selectbox(key="students.old").set_value("name:bob")
    teacher.text_input(key="students.new").input("ada lovelace")
    next(b for b in teacher.button if b.label == "Rename or merge").click().run()
    assert "bob merged into ada lovelace: 1 upload and 0 trainings moved." in texts(teacher)
    assert bobs_upload == upload and store.upload_names("name:ada lovelace") == {upload: "rocks.zip"}  # hers kept
    assert store.upload_names("name:bob") == {}
    assert [r["name"] for r in Students(store).roster()] == ["ada lovelace"]  # the teacher is not a student
    _no_password_in(store.home)


def test_login_settings_that_cannot_be_used_are_named_before_anyone_logs_in(private_worker, monkeypatch):
    for bad, says in (
        ({"login_hours": "a week"}, "login_hours in the [cnnlab] section of secrets.toml must be a number of hours"),
        ({"login_hours": 0}, "above 0 and at most 720. Got 0 instead"),
        ({"login_secret": "short"}, "login_secret in the [cnnlab] section of secrets.toml must be at least 32"),
    ):
        at = _reload(None, monkeypatch, {"cnnlab": {**PASSWORDS, **bad}})
        assert not at.exception and not at.text_input, "no login form"
        assert any(says in e.value for e in at.error), [e.value for e in at.error]
    secret = "a long random string from secrets.toml, 48 chars"
    week = {"cnnlab": {**PASSWORDS, "login_secret": secret, "login_hours": 168}}
    ada = _login(_reload(None, monkeypatch, week), PASSWORDS["class_password"], "ada")
    html = next(el.proto.body for el in ada.get("html") if "cnnlab_login=" in el.proto.body)
    assert "Max-Age=604800;" in html  # a week, as the teacher set it
    from core.store import read_token

    login = read_token(_cookie(ada), secret.encode(), {"student": PASSWORDS["class_password"]}, now=time.time())
    assert login.name == "ada" and login.expires - login.issued == 168 * 3600
    assert "Logged in as ada (student)" in texts(_reload(_cookie(ada), monkeypatch, week))
