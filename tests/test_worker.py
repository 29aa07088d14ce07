"""The worker: each training in its own process, a bounded queue, owners, stop and kill, deaths, restarts."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from core.base.config import ModelConfig, TrainConfig
from core.jobs.executor import LocalExecutor
from core.jobs.state import JobState
from core.jobs.worker import NotYourJob, TrainingWorker
from core.training.experiment import run_experiment

ROOT = Path(__file__).resolve().parents[1]
TINY = ModelConfig(input_size=16, blocks=1, filters=4, dense_units=8, dropout=0.0)
LONG = TrainConfig(epochs=300, batch_size=4)


def wait_for(predicate, timeout=90.0):
    deadline = time.time() + timeout
    while not predicate():
        if time.time() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_child_process_training_stores_the_same_record_as_in_process(tiny_folder, store, tmp_path):
    from core.store.runstore import RunStore

    w = TrainingWorker(store)
    cfg = TrainConfig(epochs=2, batch_size=8)
    a = w.submit(str(tiny_folder), TINY, cfg)
    assert w.submit(str(tiny_folder), TINY, cfg) is a  # one job per key
    w.wait(a, timeout=120)
    snap = a.snapshot()
    assert snap.state == JobState.DONE and not snap.cached and snap.fraction == 1.0
    assert len(snap.history["val_loss"]) == 2  # the curves came from the child's progress events
    rec = store.get(snap.run_id)
    assert rec is not None and store.load_model(rec.run_id) is not None

    ref = run_experiment(str(tiny_folder), TINY, cfg, store=RunStore(tmp_path / "in-process"))
    assert rec.run_id == rec.key == ref.key
    assert {k: len(v) for k, v in rec.history.items()} == {k: len(v) for k, v in ref.history.items()}
    assert set(rec.test) == set(ref.test) and 0 <= rec.test["accuracy"] <= 1
    assert rec.data == ref.data and rec.model_config == ref.model_config and rec.train_config == ref.train_config
    assert set(store.load_arrays(rec.run_id)) == {"test_images", "y_true", "probs", "test_index", "y_val", "val_probs"}

    again = w.submit(str(tiny_folder), TINY, cfg)
    assert again is not a and again.state == JobState.DONE and again.snapshot().cached


def test_cooperative_stop_keeps_what_was_learned(tiny_folder, store):
    w = TrainingWorker(store)
    job = w.submit(str(tiny_folder), TINY, LONG, owner="ann")
    wait_for(lambda: job.snapshot().epoch >= 2)
    mid = job.snapshot()
    assert mid.state == JobState.RUNNING and 0 < mid.fraction < 1 and mid.pid and _alive(mid.pid)
    assert w.running() == [job]
    assert w.stop(job.id, by="ann")
    w.wait(job, timeout=60)
    snap = job.snapshot()
    assert snap.state == JobState.STOPPED and snap.run_id.startswith(job.key + "-stopped-") and not snap.error
    assert 2 <= len(job.result.history["loss"]) < 300 and job.result.status == "stopped"
    assert not w.stop(job.id, by="ann")  # already over


def test_a_training_that_ignores_stop_is_killed_after_the_grace_period(tiny_folder, store):
    w = TrainingWorker(store, executor=LocalExecutor(module="tests.stubborn_child"), grace=1.0)
    job = w.submit(str(tiny_folder), TINY, LONG)
    wait_for(lambda: job.snapshot().batch >= 1)
    pid = job.pid
    w.stop(job.id)
    w.wait(job, timeout=60)
    snap = job.snapshot()
    assert snap.state == JobState.STOPPED and snap.run_id is None
    assert snap.error.startswith("Stopped by force after 1 s") and "nothing from this run was kept" in snap.error
    assert not _alive(pid) and store.list_runs() == []


def test_a_killed_training_fails_its_job_and_the_worker_serves_the_next(tiny_folder, store):
    w = TrainingWorker(store, workers=1)
    doomed = w.submit(str(tiny_folder), TINY, LONG.replace(seed=3))
    nxt = w.submit(str(tiny_folder), TINY, TrainConfig(epochs=1, batch_size=8, seed=4))
    wait_for(lambda: doomed.snapshot().epoch >= 1)
    assert nxt.snapshot().position == 1
    os.kill(doomed.pid, signal.SIGKILL)
    w.wait(doomed, timeout=30)
    snap = doomed.snapshot()
    assert snap.state == JobState.FAILED and "killed by SIGKILL (signal 9)" in snap.error and snap.run_id is None
    assert "Earlier runs are safe" in snap.error and "Traceback" not in snap.error
    w.wait(nxt, timeout=120)
    assert nxt.state == JobState.DONE and store.get(nxt.result.run_id) is not None


def test_the_queue_never_runs_more_than_its_workers_and_numbers_the_waiting(tiny_folder, store, monkeypatch):
    monkeypatch.setenv("CNNLAB_WORKERS", "2")
    w = TrainingWorker(store)
    assert w.workers == 2
    jobs = [w.submit(str(tiny_folder), TINY, TrainConfig(epochs=2, batch_size=8, seed=20 + i)) for i in range(3)]
    wait_for(lambda: len(w.running()) == 2)
    assert [j.snapshot().position for j in jobs] == [None, None, 1] and w.queued() == [jobs[2]]
    for j in jobs:
        w.wait(j, timeout=180)
    assert all(j.state == JobState.DONE for j in jobs)
    spans = sorted((j.started, j.finished) for j in jobs)
    most = max(sum(1 for s, f in spans if s <= t < f) for t, _ in spans)
    assert most == 2  # two at once (the first two), never three
    assert spans[2][0] >= min(f for _, f in spans[:2])  # the third started when one of the first two ended


def test_only_the_owner_or_an_admin_can_stop_a_job(tiny_folder, store):
    w = TrainingWorker(store, workers=1)
    first = w.submit(str(tiny_folder), TINY, LONG.replace(seed=30), owner="ann")
    second = w.submit(str(tiny_folder), TINY, LONG.replace(seed=31), owner="bob")
    wait_for(lambda: first.state == "running")
    assert second.state == "queued" and second.position == 1
    with pytest.raises(NotYourJob, match="started by someone else"):
        w.stop(second.id, by="ann")
    with pytest.raises(NotYourJob):
        w.stop(second.id)  # nobody in particular
    assert second.state == "queued"
    assert w.stop(second.id, by="teacher", admin=True)
    assert second.state == JobState.STOPPED and second.error.startswith("Cancelled before it started")
    assert w.stop(first.id, by="ann")
    w.wait(first, timeout=60)


SERVER = textwrap.dedent(
    """
    import json, sys, time
    from core.base.config import ModelConfig, TrainConfig
    from core.store.runstore import RunStore
    from core.jobs.worker import TrainingWorker

    home, data = sys.argv[1], sys.argv[2]
    tiny = ModelConfig(input_size=16, blocks=1, filters=4, dense_units=8, dropout=0.0)
    w = TrainingWorker(RunStore(home), workers=1)
    done = w.wait(w.submit(data, tiny, TrainConfig(epochs=1, batch_size=8, seed=40)), timeout=120)
    long = w.submit(data, tiny, TrainConfig(epochs=300, batch_size=4, seed=41), owner="ann")
    queued = w.submit(data, tiny, TrainConfig(epochs=300, batch_size=4, seed=42), owner="ann")
    print(json.dumps({"done": done.result.run_id, "state": done.state, "long": long.id, "queued": queued.id,
                      "tensorflow": "tensorflow" in sys.modules}), flush=True)
    time.sleep(600)
    """
)


def test_a_killed_server_leaves_earlier_runs_and_marks_its_jobs_interrupted(tiny_folder, tmp_path):
    from core.store.runstore import RunStore

    home = tmp_path / "home"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(home), str(tiny_folder)], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        info = json.loads(server.stdout.readline())
        assert info["state"] == JobState.DONE and info["tensorflow"] is False  # the server never imported TensorFlow
        # Another process lists the server's jobs while it runs.
        listed = subprocess.run(
            [sys.executable, "-m", "core", "jobs", "--json"],
            capture_output=True,
            text=True,
            env={**env, "CNNLAB_HOME": str(home)},
            cwd=ROOT,
            timeout=60,
        )
        assert listed.returncode == 0, listed.stderr
        rows = {r["id"]: r for r in json.loads(listed.stdout)}
        assert rows[info["queued"]]["state"] == "queued" and rows[info["queued"]]["position"] == 1
        assert rows[info["long"]]["state"] in ("queued", "running")

        wait_for(lambda: _row(home, info["long"])["epoch"] >= 1)
        child = _row(home, info["long"])["pid"]
        assert child and _alive(child)
        server.send_signal(signal.SIGKILL)
        server.wait(timeout=10)
        wait_for(lambda: not _alive(child), timeout=15)  # the orphaned training ends by itself
    finally:
        if server.poll() is None:
            server.kill()
    w = TrainingWorker(RunStore(home), workers=1)
    earlier = w.store.get(info["done"])
    assert earlier is not None and earlier.status == "complete" and w.store.load_arrays(info["done"])
    for job_id, was in ((info["long"], "training"), (info["queued"], "waiting in the queue")):
        job = w.get(job_id)
        assert job.state == "interrupted" and not job.active and job.result is None
        assert f"while this job was {was}" in job.error
    assert [r["status"] for r in w.store.list_runs()] == ["complete"]  # nothing of the interrupted jobs
    assert {j.id for j in w.interrupted(owner="ann")} == {info["long"], info["queued"]}
    again = w.rerun(info["queued"])
    assert again.owner == "ann" and again.state in ("queued", "running") and again.train_cfg.seed == 42
    w.stop(again.id, by="ann")
    w.wait(again, timeout=60)


def _row(home, job_id):
    from core.jobs.jobtable import JobTable
    from core.store.runstore import RunStore

    return JobTable(RunStore(home)).get(job_id)


def test_use_worker_makes_a_worker_the_process_wide_one_and_gives_back_the_previous(store, tmp_path, monkeypatch):
    from core.jobs.worker import get_worker, use_worker

    monkeypatch.setenv("CNNLAB_HOME", str(store.home))
    mine = TrainingWorker(store)
    previous = use_worker(mine)
    try:
        assert get_worker() is mine and get_worker() is mine  # kept, not replaced: its store is CNNLAB_HOME's
    finally:
        assert use_worker(previous) is mine
    assert get_worker() is not mine


def test_a_time_budget_travels_with_the_job_and_the_job_says_why_it_stopped(tiny_folder, store, monkeypatch):
    from core.base.tables import plural
    from core.training.experiment import stop_reason

    monkeypatch.setenv("CNNLAB_MAX_TRAIN_SECONDS", "2")
    w = TrainingWorker(store)
    job = w.submit(str(tiny_folder), TINY, LONG.replace(seed=50), owner="ann")
    assert job.time_budget == 2.0  # decided where it was submitted
    w.wait(job, timeout=180)
    snap, rec = job.snapshot(), job.result
    n = len(rec.history["loss"])
    assert snap.state == JobState.STOPPED and rec.status == "stopped" and 1 <= n < 300
    assert rec.extra["stopped_by"] == "time budget" and rec.extra["time_budget"] == 2.0
    assert (
        snap.error
        == stop_reason(rec)
        == (f"Stopped: the time budget of 2 s per training was reached after {plural(n, 'epoch')}.")
    )
