"""Students known by name: normalised names, signed login tokens (tampered, expired, logged out, other
passwords), the server's secret, and the teacher's renames and merges moving a real run's upload and jobs."""

import os
import stat
import time
import zipfile

import pytest

from core.base.config import ModelConfig, TrainConfig
from core.base.errors import UserError
from core.jobs.jobtable import JobTable
from core.jobs.worker import TrainingWorker
from core.store import (
    LoginRefused,
    NameRefused,
    RunStore,
    Students,
    issue_token,
    login_secret,
    normalise_name,
    read_token,
    user_id_of,
)
from core.training.experiment import run_experiment

SECRET = b"k" * 32
PASSWORDS = {"student": "quartz-42", "teacher": "granite-7"}
NOW = 1_800_000_000.0
TINY = ModelConfig(input_size=16, blocks=1, filters=4, dense_units=8, dropout=0.0)
FAST = TrainConfig(epochs=1, batch_size=8)


def test_a_name_is_case_and_space_insensitive_and_limited():
    assert normalise_name("  Ada   LOVELACE ") == normalise_name("ada lovelace") == "ada lovelace"
    assert normalise_name("Zoë O'Neil-Smith") == "zoë o'neil-smith"  # any alphabet, and - ' . _
    assert normalise_name("ＡＤＡ") == "ada"  # full-width letters are the same letters (NFKC)
    assert normalise_name("Li Na") != normalise_name("Lina")  # one space still separates two names
    with pytest.raises(NameRefused, match="Enter your name"):
        normalise_name("   ")
    with pytest.raises(NameRefused, match="at most 40 characters; that one has 41"):
        normalise_name("a" * 41)
    with pytest.raises(NameRefused, match=r"remove '/' '<' '>'"):
        normalise_name("<b>ada</b>")


def test_a_token_reads_back_as_its_name_and_role():
    token = issue_token("Ada  Lovelace", "student", SECRET, PASSWORDS["student"], now=NOW, hours=12)
    login = read_token(token, SECRET, PASSWORDS, now=NOW + 11 * 3600)
    assert (login.name, login.role, login.user_id) == ("ada lovelace", "student", "name:ada lovelace")
    assert login.expires - login.issued == 12 * 3600
    assert PASSWORDS["student"] not in token and "quartz" not in token  # no password in it
    teacher = issue_token("Ms Stone", "teacher", SECRET, PASSWORDS["teacher"], now=NOW)
    assert read_token(teacher, SECRET, PASSWORDS, now=NOW).user_id == "teacher:ms stone"  # not a student's id
    assert set(token) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")  # cookie-safe


def test_a_changed_token_is_refused():
    token = issue_token("ada", "student", SECRET, PASSWORDS["student"], now=NOW)
    parts = token.split(".")
    other = issue_token("bob", "student", SECRET, PASSWORDS["student"], now=NOW).split(".")
    tampered = [
        ".".join([parts[0], other[1], *parts[2:]]),  # Bob's name, Ada's signature
        ".".join([*parts[:2], "teacher", *parts[3:]]),  # promoted to teacher
        ".".join([*parts[:4], str(int(NOW) + 10**6), parts[5]]),  # a longer life
        token[:-2] + ("AA" if not token.endswith("AA") else "BB"),  # a different signature
        "v1.garbage",
        "",
    ]
    for bad in tampered:
        with pytest.raises(LoginRefused, match="not valid on this server"):
            read_token(bad, SECRET, PASSWORDS, now=NOW)
    with pytest.raises(LoginRefused, match="not valid"):  # another server's secret
        read_token(token, b"x" * 32, PASSWORDS, now=NOW)
    with pytest.raises(LoginRefused, match="not valid"):  # the teacher set a new class password
        read_token(token, SECRET, {**PASSWORDS, "student": "basalt-9"}, now=NOW)
    teacher = issue_token("ms stone", "teacher", SECRET, PASSWORDS["teacher"], now=NOW)
    with pytest.raises(LoginRefused, match="not valid"):  # teacher logins end when the teacher password goes
        read_token(teacher, SECRET, {"student": PASSWORDS["student"], "teacher": None}, now=NOW)


def test_an_expired_token_is_refused():
    token = issue_token("ada", "student", SECRET, PASSWORDS["student"], now=NOW, hours=12)
    assert read_token(token, SECRET, PASSWORDS, now=NOW + 12 * 3600 - 1).name == "ada"
    with pytest.raises(LoginRefused, match="Your saved login ended at .* log in again"):
        read_token(token, SECRET, PASSWORDS, now=NOW + 12 * 3600)


def test_the_secret_is_made_once_readable_only_by_the_server(tmp_path):
    first = login_secret(tmp_path)
    path = tmp_path / "login.key"
    assert len(first) == 32 and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert login_secret(tmp_path) == first  # the same after a restart: logins stay valid
    os.chmod(path, 0o644)
    assert login_secret(tmp_path) == first and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert login_secret(tmp_path, "s" * 32) == b"s" * 32  # [cnnlab] login_secret in secrets.toml wins
    with pytest.raises(UserError, match="must be at least 32 characters .*; it has 6"):
        login_secret(tmp_path, "hunter")
    path.write_bytes(b"short")
    with pytest.raises(UserError, match="is damaged"):
        login_secret(tmp_path)


def test_logging_out_ends_the_tokens_issued_before(tmp_path):
    students = Students(RunStore(tmp_path / "home"))
    before = read_token(issue_token("ada", "student", SECRET, "pw", now=NOW), SECRET, {"student": "pw"}, now=NOW)
    assert students.check(before) == "name:ada"
    students.log_out("name:ada", now=NOW + 60)
    with pytest.raises(LoginRefused, match="You logged out"):
        students.check(before)
    after = read_token(issue_token("ada", "student", SECRET, "pw", now=NOW + 61), SECRET, {"student": "pw"}, now=NOW)
    assert students.check(after) == "name:ada"


def _zip(folder, path):
    with zipfile.ZipFile(path, "w") as zf:
        for f in sorted(folder.rglob("*.png")):
            zf.write(f, f.relative_to(folder))
    return path.read_bytes()


def test_a_rename_moves_a_real_runs_upload_and_jobs_and_outlives_a_restart(tiny_folder, tmp_path):
    home = tmp_path / "home"
    store = RunStore(home)
    ada, lovelace = user_id_of("ada"), user_id_of("ada lovelace")
    upload = store.save_upload(_zip(tiny_folder, tmp_path / "rocks.zip"), ada, "my rocks.zip")
    rec = run_experiment(str(upload), TINY, FAST, store=store)  # a real training on Ada's upload
    students = Students(store)
    students.seen(ada)
    worker = TrainingWorker(store)
    job = worker.submit(str(upload), TINY, FAST, owner=ada)  # stored already: done at once, in the job table
    assert [r["run_id"] for r in store.list_runs(viewer=ada)] == [rec.run_id]

    assert students.move(ada, lovelace) == (lovelace, 1)
    assert worker.move_owner(ada, lovelace) == 1 and job.owner == lovelace
    assert [r["run_id"] for r in store.list_runs(viewer=lovelace)] == [rec.run_id]
    assert store.list_runs(viewer=ada) == [] and not store.may_see(str(upload), ada)
    assert store.upload_names(lovelace) == {str(upload): "my rocks.zip"}

    restarted = Students(RunStore(home))  # the mapping is in the store: a token for "ada" reads as the new name
    token = issue_token("Ada", "student", SECRET, "pw", now=time.time())
    assert restarted.check(read_token(token, SECRET, {"student": "pw"}, now=time.time())) == lovelace
    assert [s["name"] for s in restarted.roster()] == ["ada lovelace"]
    assert JobTable(RunStore(home)).get(job.id)["owner"] == lovelace


def test_a_merge_joins_two_students_and_renames_never_chain(tmp_path):
    store = RunStore(tmp_path / "home")
    students = Students(store)
    a, b, c = (user_id_of(n) for n in ("ann", "bob", "cat"))
    for who, data in ((a, b"ann's zip"), (b, b"bob's zip")):
        students.seen(who)
        store.save_upload(data, who, f"{who}.zip")
    assert students.move(a, b) == (b, 1)  # Bob already exists: a merge
    assert sorted(store.upload_names(b).values()) == ["name:ann.zip", "name:bob.zip"]
    assert [s["id"] for s in students.roster()] == [b]
    assert students.move(b, c) == (c, 2)
    assert students.resolve(a) == students.resolve(b) == c  # one step from every old name
    with pytest.raises(UserError, match="already that student's name"):
        students.move(c, c)
    assert students.move(c, b) == (b, 2)  # back to an earlier name: undone, not a loop
    assert students.resolve(b) == b and students.resolve(c) == b and students.resolve(a) == b


def test_a_renamed_students_running_training_is_theirs_to_stop_under_the_new_name(tiny_folder, tmp_path):
    from core.jobs.worker import NotYourJob

    worker = TrainingWorker(RunStore(tmp_path / "home"), workers=1)
    running = worker.submit(str(tiny_folder), TINY, TrainConfig(epochs=300, batch_size=4, seed=1), owner="name:ada")
    waiting = worker.submit(str(tiny_folder), TINY, TrainConfig(epochs=300, batch_size=4, seed=2), owner="name:ada")
    try:
        deadline = time.monotonic() + 120
        while running.state != "running" and time.monotonic() < deadline:  # the first has left the queue
            time.sleep(0.05)
        assert worker.move_owner("name:ada", "name:ada lovelace") == 2
        assert running.owner == waiting.owner == "name:ada lovelace" and waiting.position == 1
        with pytest.raises(NotYourJob):
            worker.stop(waiting.id, by="name:ada")  # the old name is nobody now
        assert worker.stop(waiting.id, by="name:ada lovelace") and worker.stop(running.id, by="name:ada lovelace")
    finally:
        for job in (running, waiting):
            worker.stop(job.id, admin=True)
            worker.wait(job, timeout=120)
