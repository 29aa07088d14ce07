"""The parent's side of a training process: thread counts, the grace setting, how a death reads."""

import signal

import pytest

from core.base.environment import SettingError
from core.jobs.process import child_env, cores, death_message, run_child, stop_grace, threads_per_training


def test_parallel_trainings_share_the_cores_without_oversubscribing():
    n = cores()
    assert threads_per_training(1) == n and threads_per_training(n) == 1 and threads_per_training(4 * n) == 1
    env = child_env(3)
    assert env["TF_NUM_INTRAOP_THREADS"] == env["OMP_NUM_THREADS"] == "3" and env["TF_NUM_INTEROP_THREADS"] == "2"


def test_the_grace_period_is_read_from_the_environment(monkeypatch):
    monkeypatch.delenv("CNNLAB_STOP_GRACE", raising=False)
    assert stop_grace() == 5.0
    monkeypatch.setenv("CNNLAB_STOP_GRACE", "2.5")
    assert stop_grace() == 2.5
    for bad in ("0", "-1", "soon"):
        monkeypatch.setenv("CNNLAB_STOP_GRACE", bad)
        with pytest.raises(SettingError, match=f"CNNLAB_STOP_GRACE must be a number of seconds above 0. Got '{bad}'"):
            stop_grace()


def test_a_death_is_named_in_words():
    killed = death_message(-signal.SIGKILL)
    assert "killed by SIGKILL (signal 9)" in killed and "out-of-memory" in killed and "nothing" in killed
    assert "SIGSEGV" in death_message(-signal.SIGSEGV) and "crash inside TensorFlow" in death_message(-11)
    assert "exit code 3" in death_message(3)


def test_a_child_that_dies_at_once_is_a_failed_outcome_not_an_exception():
    out = run_child({"dataset": {}}, module="core.no_such_module", grace=1)
    assert out.state == "failed" and out.result is None and out.exitcode == 1
    assert "ended unexpectedly (exit code 1)" in out.error


def test_a_training_child_runs_at_a_lower_priority_than_the_server(monkeypatch):
    import os
    import subprocess
    import sys

    code = "import os; from core.jobs.child import lower_priority; print(lower_priority(), os.nice(0))"
    env = {**os.environ, "CNNLAB_TRAINING_NICE": "7"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    base = os.nice(0)
    lowered = min(base + 7, 19)  # nice values stop at 19 (a test run that is itself niced reaches it)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [str(lowered), str(lowered)]
    env["CNNLAB_TRAINING_NICE"] = "0"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["0", str(base)]
