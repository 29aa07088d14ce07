"""The job table: jobs of a server that is gone become interrupted; live servers' jobs do not."""

import socket
import subprocess
import sys
import time

from core.jobs.jobtable import STALE, JobTable


def _job(job_id, server, state="running", owner="ann"):
    return {
        "id": job_id,
        "key": "k" + job_id,
        "source": "thin_sections",
        "label": "a run",
        "owner": owner,
        "state": state,
        "model_config": {"model": "cnn"},
        "train_config": {"epochs": 3},
        "submitted": time.time(),
        "server": server,
        "epochs": 3,
    }


def test_jobs_of_dead_or_silent_servers_are_interrupted_and_live_ones_are_not(store):
    table = JobTable(store)
    live = table.register()
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    with table._connect() as con:
        con.execute("INSERT INTO servers VALUES ('dead', ?, ?, 0, ?)", (socket.gethostname(), gone.pid, time.time()))
        con.execute("INSERT INTO servers VALUES ('silent', 'elsewhere', 1, 0, ?)", (time.time() - STALE - 1,))
    for job_id, server, state in (
        ("a", live, "running"),
        ("b", "dead", "running"),
        ("c", "dead", "queued"),
        ("d", "silent", "running"),
        ("e", "dead", "done"),
    ):
        table.put(_job(job_id, server, state))
    rows = {r["id"]: r for r in table.rows()}
    assert {k: r["state"] for k, r in rows.items()} == {
        "a": "running",
        "b": "interrupted",
        "c": "interrupted",
        "d": "interrupted",
        "e": "done",
    }
    assert "while this job was training" in rows["b"]["error"] and "waiting in the queue" in rows["c"]["error"]
    assert rows["b"]["model_config"] == {"model": "cnn"}  # configs come back as dicts, ready to re-run
    table.retire(live)  # a clean shutdown: what it had not finished is interrupted too
    assert table.get("a")["state"] == "interrupted"
