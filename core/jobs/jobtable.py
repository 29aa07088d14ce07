"""The job table: every training job a server took, in the run store's SQLite, so a restart can tell.

A worker (:mod:`core.jobs.worker`) writes a row when it takes a job and again at
every change (started, each epoch, finished). Each worker is a *server* row
too, with its host, pid and a heartbeat every few seconds. When a server
dies (killed, out of memory, the machine rebooted) its queued and running
jobs stay in the table as they were; the next worker that opens the store,
and every listing, sees that their server is gone and marks them
``interrupted``: never complete, and each can be submitted again. Earlier
runs are untouched (the store writes atomically).

``python -m core jobs`` reads this table from any process, while a server runs.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
import uuid
from contextlib import closing
from typing import Any

from core.jobs.state import ACTIVE, JobState
from core.store.runstore import RunStore

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY, key TEXT NOT NULL, source TEXT NOT NULL, label TEXT NOT NULL, owner TEXT,
    state TEXT NOT NULL, model_config TEXT NOT NULL, train_config TEXT NOT NULL,
    submitted REAL NOT NULL, started REAL, finished REAL, server TEXT NOT NULL, position INTEGER,
    pid INTEGER, run_id TEXT, error TEXT, epoch INTEGER NOT NULL DEFAULT 0, epochs INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs(state, submitted);
CREATE TABLE IF NOT EXISTS servers (
    id TEXT PRIMARY KEY, host TEXT NOT NULL, pid INTEGER NOT NULL, started REAL NOT NULL, heartbeat REAL NOT NULL
);
"""
COLUMNS = (
    "id",
    "key",
    "source",
    "label",
    "owner",
    "state",
    "model_config",
    "train_config",
    "submitted",
    "started",
    "finished",
    "server",
    "position",
    "pid",
    "run_id",
    "error",
    "epoch",
    "epochs",
    "lr_range",
    "challenge",
)
HEARTBEAT = 5.0  # seconds between a live server's heartbeats
STALE = 60.0  # a server whose heartbeat is older than this is gone (even if its pid was reused)
KEEP = 1000  # finished jobs kept in the table
_ACTIVE_SQL = "(" + ", ".join(f"'{s.value}'" for s in sorted(ACTIVE)) + ")"  # the states that will still change


def interrupted_message(state: str) -> str:
    was = "training" if state == JobState.RUNNING else "waiting in the queue"
    return (
        f"The server stopped while this job was {was}, so it never finished and nothing from it was kept. "
        "Earlier runs are intact; run it again."
    )


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class JobTable:
    """The ``jobs`` and ``servers`` tables of one run store (each call opens its own connection)."""

    def __init__(self, store: RunStore):
        """On a read-only store (``store.readonly``) the table is only read: :meth:`rows` works, nothing is written."""
        self.store = store
        self.db_path = store.db_path
        if not store.readonly:
            with closing(self._connect()) as con, con:
                con.executescript(SCHEMA)
                if "lr_range" not in {r[1] for r in con.execute("PRAGMA table_info(jobs)")}:
                    con.execute("ALTER TABLE jobs ADD COLUMN lr_range TEXT")  # a range test's range (None: a training)
                if "challenge" not in {r[1] for r in con.execute("PRAGMA table_info(jobs)")}:
                    con.execute("ALTER TABLE jobs ADD COLUMN challenge TEXT")  # the challenge whose images it trains on

    def _connect(self) -> sqlite3.Connection:
        con = self.store.connect()
        con.row_factory = sqlite3.Row
        return con

    # -- servers ----------------------------------------------------------
    def register(self) -> str:
        """A new server (this process's worker); marks the jobs of dead servers interrupted. Returns its id."""
        server = uuid.uuid4().hex[:12]
        now = time.time()
        with closing(self._connect()) as con, con:
            con.execute(
                "INSERT INTO servers(id, host, pid, started, heartbeat) VALUES (?, ?, ?, ?, ?)",
                (server, socket.gethostname(), os.getpid(), now, now),
            )
        self.recover()
        return server

    def heartbeat(self, server: str) -> None:
        with closing(self._connect()) as con, con:
            con.execute("UPDATE servers SET heartbeat = ? WHERE id = ?", (time.time(), server))

    def retire(self, server: str) -> None:
        """A server that shuts down cleanly (its unfinished jobs become interrupted at the next look)."""
        with closing(self._connect()) as con, con:
            con.execute("DELETE FROM servers WHERE id = ?", (server,))

    def _dead_servers(self, con: sqlite3.Connection) -> set[str]:
        host, now = socket.gethostname(), time.time()
        alive = set()
        for row in con.execute("SELECT id, host, pid, heartbeat FROM servers"):
            if now - row["heartbeat"] > STALE or (row["host"] == host and not _pid_alive(row["pid"])):
                continue
            alive.add(row["id"])
        busy = {r[0] for r in con.execute(f"SELECT DISTINCT server FROM jobs WHERE state IN {_ACTIVE_SQL}")}
        return busy - alive

    def recover(self) -> int:
        """Mark the queued and running jobs of servers that are gone as interrupted; returns how many."""
        now, n = time.time(), 0
        with closing(self._connect()) as con, con:
            dead = self._dead_servers(con)
            for server in dead:
                rows = con.execute(
                    f"SELECT id, state FROM jobs WHERE server = ? AND state IN {_ACTIVE_SQL}", (server,)
                ).fetchall()
                for row in rows:
                    con.execute(
                        "UPDATE jobs SET state = ?, finished = ?, error = ?, position = NULL WHERE id = ?",
                        (JobState.INTERRUPTED.value, now, interrupted_message(row["state"]), row["id"]),
                    )
                    n += 1
                con.execute("DELETE FROM servers WHERE id = ?", (server,))
            con.execute(
                f"DELETE FROM jobs WHERE id IN (SELECT id FROM jobs WHERE state NOT IN {_ACTIVE_SQL} "
                "ORDER BY submitted DESC LIMIT -1 OFFSET ?)",
                (KEEP,),
            )
        return n

    # -- jobs -------------------------------------------------------------
    def put(self, row: dict[str, Any]) -> None:
        """Insert or replace a job's row (``model_config``/``train_config`` as dicts)."""
        values = {c: row.get(c) for c in COLUMNS}
        for c in ("model_config", "train_config"):
            values[c] = json.dumps(values[c])
        values["lr_range"] = None if values["lr_range"] is None else json.dumps(values["lr_range"])
        values["epoch"], values["epochs"] = int(values["epoch"] or 0), int(values["epochs"] or 0)
        with closing(self._connect()) as con, con:
            con.execute(
                f"INSERT OR REPLACE INTO jobs({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})",
                [values[c] for c in COLUMNS],
            )

    def update(self, job_id: str, **fields: Any) -> None:
        unknown = set(fields) - set(COLUMNS)
        if unknown:
            raise KeyError(f"jobs has no column(s) {sorted(unknown)}")
        sets = ", ".join(f"{k} = ?" for k in fields)
        with closing(self._connect()) as con, con:
            con.execute(f"UPDATE jobs SET {sets} WHERE id = ?", [*fields.values(), job_id])

    def move_owner(self, old: str, new: str) -> int:
        """Every job of ``old`` becomes ``new``'s (a student renamed or merged); returns how many."""
        with closing(self._connect()) as con, con:
            return con.execute("UPDATE jobs SET owner = ? WHERE owner = ?", (new, old)).rowcount

    def get(self, job_id: str) -> dict[str, Any] | None:
        self.recover()
        with closing(self._connect()) as con:
            row = con.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return _row(row) if row else None

    def run_ids_of(self, owner: str) -> set[str]:
        """The runs ``owner``'s jobs gave (trained, or a stored run given back): what they may enter in a challenge."""
        with closing(self._connect()) as con:
            if con.execute("SELECT 1 FROM sqlite_master WHERE name = 'jobs'").fetchone() is None:
                return set()
            rows = con.execute("SELECT DISTINCT run_id FROM jobs WHERE owner = ? AND run_id IS NOT NULL", (owner,))
            return {r[0] for r in rows.fetchall()}

    def trainings_of(self, owner: str, challenge: str) -> int:
        """:func:`trainings_of` in this table."""
        return trainings_of(self.store, owner, challenge)

    def rows(self, limit: int = 20) -> list[dict[str, Any]]:
        """Queued and running jobs (oldest first), then the ``limit`` most recent others (newest first).

        On a read-only store the jobs of servers that are gone read as interrupted without being written so.
        """
        if not self.store.readonly:
            self.recover()
        with closing(self._connect()) as con:
            if con.execute("SELECT 1 FROM sqlite_master WHERE name = 'jobs'").fetchone() is None:
                return []  # a read-only store no worker ever used
            dead = self._dead_servers(con) if self.store.readonly else set()
            active = con.execute(
                f"SELECT * FROM jobs WHERE state IN {_ACTIVE_SQL} ORDER BY state = ?, submitted",
                (JobState.QUEUED.value,),
            ).fetchall()
            recent = con.execute(
                f"SELECT * FROM jobs WHERE state NOT IN {_ACTIVE_SQL} "
                "ORDER BY COALESCE(finished, submitted) DESC LIMIT ?",
                (limit,),
            )
            recent = recent.fetchall()
        out = [_row(r) for r in [*active, *recent]]
        for d in out:
            if d["server"] in dead and d["state"] in ACTIVE:
                d.update(error=interrupted_message(d["state"]), state=JobState.INTERRUPTED.value, position=None)
        return out


def _row(row: sqlite3.Row) -> dict[str, Any]:
    d = dict(row)
    for c in ("model_config", "train_config"):
        d[c] = json.loads(d[c])
    d["lr_range"] = json.loads(d["lr_range"]) if d.get("lr_range") else None
    return d


def trainings_of(store: RunStore, owner: str, challenge: str) -> int:
    """How many trainings ``owner`` has started or queued on a challenge's images (its budget counts them).

    Queued, running, finished or stopped trainings count; a range test, a stored run given back (it trained
    nothing), a training cancelled before it started, a failed or an interrupted one do not. Only reads (a page
    asks on every rerun): 0 when no worker has made the table yet.
    """
    with closing(store.connect()) as con:
        if con.execute("SELECT 1 FROM sqlite_master WHERE name = 'jobs'").fetchone() is None:
            return 0
        if "challenge" not in {r[1] for r in con.execute("PRAGMA table_info(jobs)")}:
            return 0  # a table from before challenges: none of its jobs was on one
        (n,) = con.execute(
            "SELECT COUNT(*) FROM jobs WHERE owner = ? AND challenge = ? AND lr_range IS NULL "
            "AND (state IN (?, ?) OR (state IN (?, ?) AND started IS NOT NULL))",
            (
                owner,
                challenge,
                JobState.QUEUED.value,
                JobState.RUNNING.value,
                JobState.DONE.value,
                JobState.STOPPED.value,
            ),
        ).fetchone()
    return int(n)
