"""The background worker: one training per configuration, progress, stop, errors."""

import time

import pytest

from core.config import ModelConfig, TrainConfig
from core.worker import DONE, FAILED, STOPPED, TrainingWorker

TINY = ModelConfig(input_size=16, blocks=1, filters=4, dense_units=8, dropout=0.0)


def test_same_configuration_shares_one_job_and_then_comes_back_cached(tiny_folder, store):
    w = TrainingWorker(store)
    cfg = TrainConfig(epochs=3, batch_size=8)
    a = w.submit(str(tiny_folder), TINY, cfg)
    b = w.submit(str(tiny_folder), TINY, cfg)
    assert a is b
    w.wait(a, timeout=120)
    snap = a.snapshot()
    assert snap["state"] == DONE and not snap["cached"] and snap["fraction"] == 1.0
    assert len(snap["history"]["val_loss"]) == 3
    assert snap["run_id"] == a.result.run_id
    c = w.submit(str(tiny_folder), TINY, cfg)
    assert c is not a and c.state == DONE and c.snapshot()["cached"]
    assert c.result.history == a.result.history


def test_progress_is_visible_while_training_and_stop_keeps_what_was_learned(tiny_folder, store):
    w = TrainingWorker(store)
    job = w.submit(str(tiny_folder), TINY, TrainConfig(epochs=200, batch_size=4))
    deadline = time.time() + 60
    while job.snapshot()["epoch"] < 2 and time.time() < deadline:
        time.sleep(0.05)
    mid = job.snapshot()
    assert mid["state"] == "running" and 0 < mid["fraction"] < 1
    assert w.running() is job
    assert w.stop(job.id)
    w.wait(job, timeout=60)
    snap = job.snapshot()
    assert snap["state"] == STOPPED and snap["run_id"].startswith(job.key + "-stopped-")
    assert 2 <= len(job.result.history["loss"]) < 200
    assert not w.stop(job.id)  # already over


def test_jobs_queue_in_order(tiny_folder, store):
    w = TrainingWorker(store)
    first = w.submit(str(tiny_folder), TINY, TrainConfig(epochs=2, batch_size=8, seed=1))
    second = w.submit(str(tiny_folder), TINY, TrainConfig(epochs=2, batch_size=8, seed=2))
    assert second.state in ("queued", "running")
    if second.state == "queued":
        assert w.stop(second.id)  # a queued job is dropped at once, before it starts
        assert second.state == STOPPED and second not in w.queued()
    w.wait(first, timeout=120)
    w.wait(second, timeout=120)
    assert first.state == DONE
    assert second.state in (STOPPED, DONE)


def test_bad_requests_fail_before_queueing_and_failures_do_not_kill_the_worker(tiny_folder, store, monkeypatch):
    from core.data import DataError
    from core.architecture import ArchitectureError

    w = TrainingWorker(store)
    with pytest.raises(DataError):
        w.submit(str(tiny_folder / "missing"), TINY, TrainConfig())
    with pytest.raises(ArchitectureError):
        w.submit(str(tiny_folder), TINY.replace(blocks=4), TrainConfig())

    import core.worker

    real = core.worker.run_experiment

    def flaky(*a, **k):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(core.worker, "run_experiment", flaky)
    bad = w.submit(str(tiny_folder), TINY, TrainConfig(epochs=1, seed=5))
    w.wait(bad, timeout=60)
    assert bad.state == FAILED and "out of memory" in bad.error and "Earlier runs are safe" in bad.error
    monkeypatch.setattr(core.worker, "run_experiment", real)
    good = w.submit(str(tiny_folder), TINY, TrainConfig(epochs=1, seed=6))
    w.wait(good, timeout=60)
    assert good.state == DONE


def test_get_worker_follows_the_store_home(tmp_path, monkeypatch):
    from core.worker import get_worker

    monkeypatch.setenv("CNNLAB_HOME", str(tmp_path / "a"))
    a = get_worker()
    assert a is get_worker() and a.store.home == tmp_path / "a"
    monkeypatch.setenv("CNNLAB_HOME", str(tmp_path / "b"))
    assert get_worker().store.home == tmp_path / "b"
