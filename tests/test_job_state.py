"""Job states and snapshots (core.jobs.state): the table's words unchanged, snapshots frozen and JSON-ready."""

import dataclasses
import json
import socket
import subprocess
import sys
import time

import pytest

from core.base.config import ModelConfig, TrainConfig
from core.jobs import ACTIVE, CANCELLED, Job, JobSnapshot, JobState, JobTable
from core.jobs.worker import job_from_row

# The words runs.db's job table and `python -m core jobs --json` have always held.
WORDS = ["queued", "running", "done", "failed", "stopped", "interrupted"]


def _job(state: JobState, **kw) -> Job:
    return Job(
        id="j1",
        key="k1",
        source="thin_sections",
        model_cfg=ModelConfig(),
        train_cfg=TrainConfig(epochs=3),
        label="a run",
        owner="ann",
        state=state,
        **kw,
    )


def test_the_states_are_the_words_the_job_table_always_held():
    assert [s.value for s in JobState] == WORDS
    assert [f"{s}" for s in JobState] == WORDS  # f-strings and messages read the word, not JobState.DONE
    assert json.dumps([JobState.RUNNING]) == '["running"]'
    assert ACTIVE == {"queued", "running"}
    assert [s.active for s in JobState] == [True, True, False, False, False, False]
    assert JobState("stopped") is JobState.STOPPED


def test_a_job_row_is_stored_as_its_word_and_read_back_as_the_enum(store):
    table = JobTable(store)
    server = table.register()
    table.put(_job(JobState.STOPPED, error=CANCELLED).row(server))
    with table._connect() as con:
        raw = con.execute("SELECT state, typeof(state) FROM jobs WHERE id = 'j1'").fetchone()
    assert tuple(raw) == ("stopped", "text")
    row = table.get("j1")
    assert row["state"] == "stopped" and type(row["state"]) is str  # the JSON of `python -m core jobs` as before
    job = job_from_row(row, store)
    assert job.state is JobState.STOPPED and not job.active and job.error == CANCELLED


def test_a_dead_servers_running_job_reads_back_interrupted(store):
    table = JobTable(store)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    with table._connect() as con:
        con.execute("INSERT INTO servers VALUES ('dead', ?, ?, 0, ?)", (socket.gethostname(), gone.pid, time.time()))
    table.put(_job(JobState.RUNNING, submitted=time.time()).row("dead"))
    [row] = table.rows()
    assert row["state"] == "interrupted" and "while this job was training" in row["error"]
    job = job_from_row(row, store)
    assert job.state is JobState.INTERRUPTED and not job.active


def test_a_snapshot_is_frozen_a_copy_and_json_ready():
    job = _job(JobState.RUNNING, epoch=2, epochs=4, batch=3, batches=6)
    job.history["loss"].extend([1.0, 0.5])
    snap = job.snapshot()
    assert isinstance(snap, JobSnapshot) and snap.active
    assert snap.fraction == pytest.approx((1 + 3 / 6) / 4)
    with pytest.raises(dataclasses.FrozenInstanceError):
        snap.state = JobState.DONE
    job.history["loss"].append(0.25)  # the training goes on: the snapshot stays as it was
    assert snap.history == {"loss": [1.0, 0.5]}
    d = snap.as_dict()
    assert d["state"] == "running" and type(d["state"]) is str
    assert json.loads(json.dumps(d))["history"] == {"loss": [1.0, 0.5]}
    assert set(d) == {
        "id",
        "key",
        "label",
        "source",
        "owner",
        "state",
        "position",
        "pid",
        "epoch",
        "epochs",
        "batch",
        "batches",
        "phase",
        "fraction",
        "history",
        "run_id",
        "cached",
        "error",
        "detail",
        "submitted",
        "started",
        "finished",
        "stop_requested",
        "kind",
        "lr_find_key",
    }


def test_a_finished_jobs_progress_is_whole_and_a_failed_ones_is_not():
    assert _job(JobState.DONE, epoch=1, epochs=4).snapshot().fraction == 1.0
    assert _job(JobState.STOPPED, epoch=1, epochs=4).snapshot().fraction == 1.0
    assert _job(JobState.FAILED, epoch=2, epochs=4).snapshot().fraction == pytest.approx(0.25)
