"""Where trainings run: the local executor trains in a child process and stores the run; the choice of executor.

The Dask executor has its own tests (test_dask_executor.py); queue positions are the worker's (test_worker.py).
"""

import os
import threading

import pytest

from core.base.config import ModelConfig, TrainConfig
from core.base.environment import SettingError
from core.base.precision import settle_precision
from core.jobs.executor import LocalExecutor, Training, default_workers, make_executor, scheduler_address
from core.jobs.process import cores
from core.training.experiment import resolve
from core.training.fit import ProgressEvent

TINY = ModelConfig(input_size=16, blocks=1, filters=4, dense_units=8, dropout=0.0)


@pytest.fixture
def training_of(tiny_folder, store):
    def _training(train_cfg: TrainConfig) -> Training:
        train_cfg = settle_precision(TINY, train_cfg)
        ds, model_cfg, key = resolve(str(tiny_folder), TINY, train_cfg, store)
        return Training(dataset=ds, model_cfg=model_cfg, train_cfg=train_cfg, key=key, source=str(tiny_folder))

    return _training


def test_a_local_training_runs_in_its_own_process_and_stores_its_run(training_of, store):
    started, events = [], []
    out = LocalExecutor().run(
        training_of(TrainConfig(epochs=2, batch_size=8)),
        store=store,
        parallel=1,
        stop=threading.Event(),
        grace=None,
        on_event=events.append,
        on_started=started.append,
    )
    assert out.state == "done" and out.error is None and out.exitcode == 0
    assert started == [out.pid] and out.pid != os.getpid()
    assert all(isinstance(e, ProgressEvent) for e in events)
    assert [e.epoch for e in events if e.kind == "epoch"] == [1, 2]
    rec = store.get(out.result["run_id"])
    assert rec.status == "complete" and len(rec.history["loss"]) == 2 and store.model_path(rec.run_id).exists()


def test_a_stop_keeps_what_was_learned_as_a_stopped_run(training_of, store):
    stop = threading.Event()

    def on_event(ev):
        if ev.kind == "epoch":
            stop.set()

    out = LocalExecutor().run(
        training_of(TrainConfig(epochs=100, batch_size=8)),
        store=store,
        parallel=1,
        stop=stop,
        grace=30.0,
        on_event=on_event,
        on_started=lambda pid: None,
    )
    assert out.state == "stopped" and not out.forced  # it stopped by itself, well within the grace period
    rec = store.get(out.result["run_id"])
    assert rec.status == "stopped" and 1 <= len(rec.history["loss"]) <= 2


def test_a_user_error_in_the_training_is_a_failed_outcome_not_an_exception(training_of, store):
    training = training_of(TrainConfig(epochs=1, batch_size=8))
    wrong = Training(**{**training.__dict__, "model_cfg": training.model_cfg.replace(num_classes=5)})
    out = LocalExecutor().run(
        wrong, store=store, parallel=1, stop=threading.Event(), grace=None, on_event=None, on_started=lambda p: None
    )
    assert out.state == "failed" and out.user_error and "Set num_classes=3" in out.error
    assert store.list_runs() == []


def test_slots_and_the_executor_come_from_the_settings(monkeypatch):
    monkeypatch.delenv("CNNLAB_WORKERS", raising=False)
    monkeypatch.delenv("CNNLAB_SCHEDULER", raising=False)
    assert LocalExecutor().slots() == default_workers() == max(1, cores() // 2)
    monkeypatch.setenv("CNNLAB_WORKERS", "3")
    assert LocalExecutor().slots() == 3
    assert scheduler_address() is None and isinstance(make_executor(), LocalExecutor)
    monkeypatch.setenv("CNNLAB_SCHEDULER", "tcp://10.0.0.5:8786")
    assert scheduler_address() == "tcp://10.0.0.5:8786"
    assert scheduler_address("127.0.0.1:8786") == "127.0.0.1:8786"  # --scheduler wins over the setting
    with pytest.raises(SettingError, match="--scheduler must be a Dask scheduler's address"):
        make_executor("not an address")
