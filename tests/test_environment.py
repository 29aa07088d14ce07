"""Every CNNLAB_* setting is read and checked once, at start-up: a bad value is one line naming the variable,
the value and what is allowed (the CLI exits 2, never hangs), and nothing falls back silently."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.base.environment import NAMES, SettingError, check_scheduler, read_settings, settings

ROOT = Path(__file__).resolve().parents[1]

# (variable, a bad value, the words of what is allowed, the command that tried it in the issue)
BAD = [
    ("CNNLAB_WORKERS", "abc", "a whole number of trainings at once, 1 or more", "lab"),
    ("CNNLAB_WORKERS", "0", "a whole number of trainings at once, 1 or more", "lab"),
    ("CNNLAB_WORKERS", "abc", "a whole number of trainings at once, 1 or more", "train"),
    ("CNNLAB_STOP_GRACE", "soon", "a number of seconds above 0", "lab"),
    ("CNNLAB_TRAINING_NICE", "abc", "a whole number from 0 (off) to 19", "train"),
    ("CNNLAB_TRAINING_NICE", "25", "a whole number from 0 (off) to 19", "lab"),
    ("CNNLAB_WARM", "yes", "1 (keep a training process ready) or 0 (off)", "lab"),
    ("CNNLAB_MEASURE_SPEED", "soon", "1 (measure when the server starts) or 0 (when asked)", "runs"),
    ("CNNLAB_WARM_AT_START", "2", "1 (when the server starts) or 0 (when a page first trains)", "runs"),
    ("CNNLAB_MAX_PIXELS", "foo", "a pixel count or WIDTHxHEIGHT like 4096x4096", "train"),
    ("CNNLAB_MAX_PARAMS", "-5", "a positive whole number (parameters of one network)", "summary"),
    ("CNNLAB_MAX_ACTIVATION_MB", "lots", "a positive whole number (megabytes of one batch)", "summary"),
    ("CNNLAB_MAX_UPLOAD_MB", "1.5", "a positive whole number (megabytes of one upload)", "runs"),
    ("CNNLAB_UPLOAD_QUOTA_MB", "none", "a positive whole number (megabytes of one student's uploads)", "runs"),
    ("CNNLAB_SCHEDULER", "garbage", "a Dask scheduler's address like tcp://", "lab"),
    ("CNNLAB_SCHEDULER", "not a url", "a Dask scheduler's address like tcp://", "runs"),
    ("CNNLAB_SCHEDULER_TIMEOUT", "0", "a number of seconds above 0", "lab"),
    ("CNNLAB_DATA_ROOTS", "/no/such/folder", "existing folders separated by ':'", "datasets"),
    ("CNNLAB_HOME", " ", "the path of a folder for the run store", "summary"),
    ("CNNLAB_MAX_QUEUED_PER_STUDENT", "ten", "a whole number of trainings one student may have waiting, or 0", "lab"),
    ("CNNLAB_MAX_TRAIN_SECONDS", "-5", "a number of seconds above 0, or 0 for no limit", "train"),
    ("CNNLAB_MAX_TRAIN_SECONDS", "1 min", "a number of seconds above 0, or 0 for no limit", "lab"),
]
ARGS = {
    "lab": ["lab", "--data", "thin_sections", "--epochs", "1"],
    "train": ["train", "--data", "thin_sections", "--epochs", "1"],
    "summary": ["summary"],
    "runs": ["runs"],
    "datasets": ["datasets"],
}


def cli(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    """``python -m core ARGS`` in a subprocess; the timeout only guards against a hang (no timing is asserted)."""
    return subprocess.run(
        [sys.executable, "-m", "core", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_the_table_covers_every_setting():
    assert {name for name, *_ in BAD} == set(NAMES)


@pytest.mark.parametrize(("name", "value", "allowed", "command"), BAD)
def test_a_bad_setting_is_one_line_and_exit_2(name, value, allowed, command, tmp_path):
    env = {"CNNLAB_HOME": str(tmp_path / "home"), name: value}
    p = cli(*ARGS[command], env=env)
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert p.returncode == 2 and len(lines) == 1, p.stderr
    assert lines[0].startswith(f"python -m core {command}: {name} must be {allowed}"), lines[0]
    assert f"Got {value!r}" in lines[0]
    assert p.stdout == ""  # refused before anything ran


def test_good_values_are_read_as_meant(tmp_path):
    env = {
        "CNNLAB_HOME": str(tmp_path),
        "CNNLAB_MAX_PIXELS": "32x32",
        "CNNLAB_MAX_PARAMS": "1_000_000",
        "CNNLAB_WORKERS": "3",
        "CNNLAB_STOP_GRACE": "2.5",
        "CNNLAB_TRAINING_NICE": "0",
        "CNNLAB_WARM": "0",
        "CNNLAB_MEASURE_SPEED": "0",
        "CNNLAB_WARM_AT_START": "0",
        "CNNLAB_SCHEDULER": "tcp://10.0.0.5:8786",
        "CNNLAB_SCHEDULER_TIMEOUT": "4",
        "CNNLAB_DATA_ROOTS": f"{tmp_path}:",
        "CNNLAB_MAX_QUEUED_PER_STUDENT": "0",
        "CNNLAB_MAX_TRAIN_SECONDS": "90.5",
    }
    s = read_settings(env)
    assert (s.home, s.max_pixels, s.max_params, s.workers, s.stop_grace) == (tmp_path, 1024, 10**6, 3, 2.5)
    assert (s.training_nice, s.warm, s.scheduler, s.scheduler_timeout) == (0, False, "tcp://10.0.0.5:8786", 4.0)
    assert s.data_roots == (tmp_path.resolve(),) and s.serving is False and s.measure_speed is False
    assert s.warm_at_start is False
    assert (s.max_queued_per_student, s.max_train_seconds) == (0, 90.5)
    d = read_settings({})
    assert (d.max_pixels, d.max_upload_mb, d.workers, d.stop_grace, d.training_nice) == (4096**2, 200, None, 5.0, 10)
    assert d.scheduler is None and d.data_roots == () and d.warm is True and d.measure_speed is True
    assert d.warm_at_start is True
    assert (d.max_queued_per_student, d.max_train_seconds) == (25, 0.0)


def test_scheduler_addresses():
    assert check_scheduler("127.0.0.1:8786") == "127.0.0.1:8786"
    assert check_scheduler("tls://host.school:8786") == "tls://host.school:8786"
    for bad in ("not a url", "http://host:8786", "tcp://host", "tcp://:8786", "tcp://host:99999"):
        with pytest.raises(SettingError, match="--scheduler must be a Dask scheduler's address"):
            check_scheduler(bad, "--scheduler")


def test_settings_are_read_once_and_again_only_when_one_changes(monkeypatch):
    monkeypatch.setenv("CNNLAB_WORKERS", "2")
    first = settings()
    assert settings() is first and first.workers == 2
    monkeypatch.setenv("CNNLAB_WORKERS", "nope")
    with pytest.raises(SettingError, match="CNNLAB_WORKERS"):
        settings()
    monkeypatch.setenv("CNNLAB_WORKERS", "2")
    assert settings() == first


def test_the_worker_refuses_a_bad_setting_before_its_thread_starts(monkeypatch, tmp_path):
    from core.jobs.worker import TrainingWorker
    from core.store.runstore import RunStore

    monkeypatch.setenv("CNNLAB_WORKERS", "0")
    with pytest.raises(SettingError, match="CNNLAB_WORKERS must be a whole number"):
        TrainingWorker(RunStore(tmp_path / "home"))


def test_an_unreachable_scheduler_is_one_line_within_its_timeout(tmp_path):
    """Nothing listens on port 1: the connection is refused, retried until CNNLAB_SCHEDULER_TIMEOUT, then one line
    and no "Exception ignored in Client.__del__" at exit."""
    p = cli(
        "lab",
        "--data",
        "thin_sections",
        "--epochs",
        "1",
        "--scheduler",
        "tcp://127.0.0.1:1",
        env={"CNNLAB_HOME": str(tmp_path / "home"), "CNNLAB_SCHEDULER_TIMEOUT": "2"},
        timeout=90,
    )
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert p.returncode == 2 and len(lines) == 1, p.stderr
    assert "Cannot reach the Dask scheduler at tcp://127.0.0.1:1" in lines[0]
    p = cli("lab", "--data", "thin_sections", "--scheduler", "not a url", env={"CNNLAB_HOME": str(tmp_path / "home")})
    assert p.returncode == 2 and p.stderr.strip().endswith(
        "--scheduler must be a Dask scheduler's address like "
        "tcp://192.168.1.10:8786 (start one with `dask scheduler`). "
        "Got 'not a url' instead."
    ), p.stderr


def test_a_scheduler_port_where_something_else_listens_is_refused(tmp_path):
    """A web server on the port: Dask's own Client would wait for its handshake for ever."""
    import socket
    import threading

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    port = srv.getsockname()[1]

    def serve() -> None:
        try:
            conn, _ = srv.accept()
            conn.recv(1024)
            conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nhi")
            threading.Event().wait(60)
        except OSError:
            pass

    threading.Thread(target=serve, daemon=True).start()
    try:
        p = cli(
            "lab",
            "--data",
            "thin_sections",
            "--scheduler",
            f"tcp://127.0.0.1:{port}",
            env={"CNNLAB_HOME": str(tmp_path / "home"), "CNNLAB_SCHEDULER_TIMEOUT": "3"},
            timeout=90,
        )
    finally:
        srv.close()
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert p.returncode == 2 and len(lines) == 1 and "Cannot reach the Dask scheduler" in lines[0], p.stderr


def test_the_dashboard_shows_a_bad_setting_and_keeps_serving(monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("CNNLAB_SERVING", "0")  # app.py marks the process as serving: undone after the test
    monkeypatch.setenv("CNNLAB_MAX_UPLOAD_MB", "lots")
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    [error] = [e.value for e in at.error]
    assert error.startswith(
        "CNN Lab cannot start on this server until its settings are fixed: "
        "CNNLAB_MAX_UPLOAD_MB must be a positive whole number (megabytes of one upload). "
        "Got 'lots' instead"
    )
    monkeypatch.setenv("CNNLAB_MAX_UPLOAD_MB", "100")  # fixed: the next rerun serves the app
    at.run()
    assert not at.exception and not at.error
