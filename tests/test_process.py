"""The parent's side of a training process: thread counts, the grace setting, how a death reads, and the
processes kept warm per slot (one training each, replaced behind it, ended by close)."""

import os
import signal
import time
from pathlib import Path

import pytest

from core.base.config import ModelConfig, TrainConfig
from core.base.environment import SettingError
from core.jobs.executor import LocalExecutor
from core.jobs.process import child_env, cores, death_message, run_child, stop_grace, threads_per_training
from core.jobs.state import JobState
from core.jobs.worker import TrainingWorker

TINY = ModelConfig(input_size=16, blocks=1, filters=4, dense_units=8, dropout=0.0)


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


# -- warm training processes (CNNLAB_WARM): through the real worker, on tiny data ---------------------------------


class RecordingExecutor(LocalExecutor):
    """The real local executor; it also remembers how each training ended (the outcome names its process)."""

    def __init__(self, *, lazy: bool = False) -> None:
        super().__init__(lazy=lazy)
        self.outcomes: list = []

    def run(self, training, **kwargs):
        out = super().run(training, **kwargs)
        self.outcomes.append(out)
        return out


def _alive(pid: int) -> bool:
    """Running (not ended, not a zombie waiting to be reaped)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def _wait_for(predicate, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


@pytest.fixture
def warm_worker(store, monkeypatch):
    """A worker with one slot and one warm training process, closed after the test."""
    monkeypatch.setenv("CNNLAB_WARM", "1")
    ex = RecordingExecutor()
    w = TrainingWorker(store, workers=1, executor=ex)
    yield w, ex
    w.close()


def test_a_job_trains_in_the_process_warmed_before_it_and_the_next_job_in_a_fresh_one(tiny_folder, warm_worker):
    w, ex = warm_worker
    assert ex.pool.wait_ready(120)
    [warm] = ex.pool.pids()  # started, TensorFlow imported, waiting: before anything was submitted
    first = w.wait(w.submit(str(tiny_folder), TINY, TrainConfig(epochs=1, batch_size=8)), timeout=120)
    assert first.state == JobState.DONE and ex.outcomes[0].pid == warm
    assert not _alive(warm)  # one training per process: it ended with its job
    [fresh] = ex.pool.pids()  # a new one warmed behind it once the slot was free
    assert fresh != warm and ex.pool.wait_ready(120)
    second = w.wait(w.submit(str(tiny_folder), TINY, TrainConfig(epochs=1, batch_size=8, seed=7)), timeout=120)
    assert second.state == JobState.DONE and ex.outcomes[1].pid == fresh
    assert second.result.run_id != first.result.run_id


def test_close_leaves_no_training_process_alive(warm_worker):
    w, ex = warm_worker
    assert ex.pool.wait_ready(120)
    pids = ex.pool.pids()
    assert len(pids) == 1 and _alive(pids[0])
    w.close()
    assert ex.pool.pids() == [] and not any(_alive(p) for p in pids)
    ex.pool.done()  # a training that ends after the close starts no new process
    assert ex.pool.pids() == []


def test_a_warm_process_that_died_is_replaced_and_the_job_still_runs(tiny_folder, warm_worker):
    w, ex = warm_worker
    assert ex.pool.wait_ready(120)
    [warm] = ex.pool.pids()
    os.kill(warm, signal.SIGKILL)  # e.g. the out-of-memory killer chose it while it waited
    _wait_for(lambda: not _alive(warm))
    job = w.wait(w.submit(str(tiny_folder), TINY, TrainConfig(epochs=1, batch_size=8)), timeout=120)
    assert job.state == JobState.DONE and job.error is None, job.error
    assert ex.outcomes[0].pid not in (warm, None)


def test_a_warm_process_started_with_other_settings_is_not_used(tiny_folder, warm_worker, monkeypatch):
    w, ex = warm_worker
    [warm] = ex.pool.pids()
    monkeypatch.setenv("CNNLAB_TRAINING_NICE", "3")  # the environment a new process would inherit changed
    job = w.wait(w.submit(str(tiny_folder), TINY, TrainConfig(epochs=1, batch_size=8)), timeout=120)
    assert job.state == JobState.DONE and ex.outcomes[0].pid != warm and not _alive(warm)


def test_a_lazy_worker_starts_no_process_before_its_first_training_then_keeps_one_warm(tiny_folder, store, monkeypatch):
    monkeypatch.setenv("CNNLAB_WARM", "1")
    ex = RecordingExecutor(lazy=True)
    w = TrainingWorker(store, workers=1, executor=ex)
    try:
        time.sleep(0.5)
        assert ex.pool.pids() == []  # a worker that never trains pays for no TensorFlow process
        job = w.wait(w.submit(str(tiny_folder), TINY, TrainConfig(epochs=1, batch_size=8)), timeout=120)
        assert job.state == JobState.DONE and job.error is None, job.error
        [warm] = ex.pool.pids()  # from the first training on, one waits behind it as in an eager pool
        assert warm != ex.outcomes[0].pid and _alive(warm)
    finally:
        w.close()
    assert not _alive(warm)


def test_with_warm_off_no_process_waits(store, monkeypatch):
    monkeypatch.setenv("CNNLAB_WARM", "0")
    w = TrainingWorker(store, workers=1)
    assert w.executor.pool.pids() == []
    w.close()


def test_the_command_lines_worker_starts_no_process_for_a_batch_of_stored_runs(store, monkeypatch):
    """`repeat`/`sweep`/`compare` submit everything at once: a batch whose runs are all stored needs no process."""
    import argparse

    from core.cli.batch import make_worker

    monkeypatch.setenv("CNNLAB_WARM", "1")
    w = make_worker(argparse.Namespace(workers=1, scheduler=None), store)
    try:
        time.sleep(0.5)
        assert w.executor.lazy and w.executor.pool.pids() == []
    finally:
        w.close()
