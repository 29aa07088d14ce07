"""Scale-out: trainings on a real Dask cluster (2 worker processes on 127.0.0.1, started and closed here)."""

import time

from core.base.config import ModelConfig, TrainConfig
from core.jobs import JobState, TrainingWorker
from core.jobs.dask_executor import DaskExecutor
from core.training.experiment import resolve

TINY = ModelConfig(input_size=16, blocks=1, filters=4, dense_units=8, dropout=0.0)


def test_runs_trained_on_the_cluster_land_in_the_servers_store_with_the_local_keys(cluster, tiny_folder, store):
    executor = DaskExecutor(cluster.scheduler_address)
    w = TrainingWorker(store, executor=executor)
    assert w.workers == 2  # the cluster's worker threads
    configs = [TrainConfig(epochs=2, batch_size=8, seed=s) for s in (1, 2)]
    jobs = [w.submit(str(tiny_folder), TINY, cfg) for cfg in configs]
    for job in jobs:
        w.wait(job, timeout=180)
    assert [j.state for j in jobs] == [JobState.DONE, JobState.DONE], [j.error for j in jobs]
    for job, cfg in zip(jobs, configs, strict=True):
        _, _, key = resolve(str(tiny_folder), TINY, cfg)  # the local executor's key
        rec = store.get(job.result.run_id)
        assert rec.run_id == rec.key == key and rec.status == "complete"
        assert len(rec.history["loss"]) == 2 and len(job.snapshot().history["loss"]) == 2  # progress came back
        assert store.load_model(rec.run_id) is not None and store.load_arrays(rec.run_id)["probs"].shape[1] == 3
    assert len({j.started for j in jobs}) == 2

    again = [w.submit(str(tiny_folder), TINY, cfg) for cfg in configs]  # the sweep repeated: nothing trains
    assert all(j.state == JobState.DONE and j.snapshot().cached for j in again)
    assert [j.result.run_id for j in again] == [j.result.run_id for j in jobs]
    executor.close()


def test_a_stop_reaches_the_training_on_the_cluster(cluster, tiny_folder, store):
    w = TrainingWorker(store, executor=DaskExecutor(cluster.scheduler_address))
    job = w.submit(str(tiny_folder), TINY, TrainConfig(epochs=300, batch_size=4, seed=9), owner="ann")
    deadline = time.time() + 120
    while job.snapshot().epoch < 2 and time.time() < deadline:
        time.sleep(0.1)
    assert w.stop(job.id, by="ann")
    w.wait(job, timeout=60)
    assert job.state == "stopped" and job.result.status == "stopped" and 2 <= len(job.result.history["loss"]) < 300
    w.executor.close()


def test_the_time_budget_travels_with_the_task_to_a_cluster_worker(cluster, tiny_folder, store, monkeypatch):
    # The cluster's workers started before this setting: only the task can have told them.
    monkeypatch.setenv("CNNLAB_MAX_TRAIN_SECONDS", "2")
    w = TrainingWorker(store, executor=DaskExecutor(cluster.scheduler_address))
    job = w.submit(str(tiny_folder), TINY, TrainConfig(epochs=300, batch_size=4, seed=19), owner="ann")
    w.wait(job, timeout=240)
    rec = store.get(job.result.run_id)
    assert job.state == JobState.STOPPED and rec.status == "stopped" and 1 <= len(rec.history["loss"]) < 300
    assert rec.extra["stopped_by"] == "time budget" and rec.extra["time_budget"] == 2.0
    assert job.error.startswith("Stopped: the time budget of 2 s per training was reached after")


class RecordingDaskExecutor(DaskExecutor):
    """The real Dask executor; it also remembers how each training ended (the outcome names its process)."""

    def __init__(self, address: str) -> None:
        super().__init__(address)
        self.outcomes: list = []

    def run(self, training, **kwargs):
        out = super().run(training, **kwargs)
        self.outcomes.append(out)
        return out


def _warm_pids(client) -> set[int]:
    """Every Dask worker's warm training processes (each worker keeps one per worker thread)."""
    per_worker = client.run(lambda: __import__("core.jobs.dask_executor", fromlist=["_"]).worker_pool().pids())
    assert all(len(pids) == 1 for pids in per_worker.values()), per_worker
    return {pid for pids in per_worker.values() for pid in pids}


def test_a_dask_worker_trains_in_the_process_it_kept_warm_and_warms_a_fresh_one(cluster, tiny_folder, store):
    ex = RecordingDaskExecutor(cluster.scheduler_address)
    warm = _warm_pids(ex.client())  # started by the probe when the server connected
    w = TrainingWorker(store, executor=ex, workers=1)
    job = w.wait(w.submit(str(tiny_folder), TINY, TrainConfig(epochs=1, batch_size=8, seed=21)), timeout=180)
    assert job.state == JobState.DONE, job.error
    [out] = ex.outcomes
    assert out.pid in warm  # it trained in a process started before the submit
    assert out.pid not in _warm_pids(ex.client())  # and a fresh one waits in its place
    w.close()
