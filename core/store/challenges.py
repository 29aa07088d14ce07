"""How a class challenge is kept in the run store's SQLite, and what anyone below the lab needs to know of one.

A challenge (:mod:`core.lab.challenge` makes, scores and ranks them) is a row of the ``challenges`` table;
its entries are rows of ``challenge_entries``. The worker and the training path read a challenge here, by
the folder of images its students train on (``CNNLAB_HOME/challenges/<id>``), to apply its budgets where a
job is submitted (the per-challenge time budget among them: :func:`time_budget_for`) and to mark the runs
trained on it (``record.extra["challenge"]``). What is here never holds the hidden images' names: they
are read only by :mod:`core.lab.challenge`, to score.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from contextlib import closing
from dataclasses import dataclass

from core.base.environment import settings
from core.base.errors import UserError
from core.store.runstore import RunStore

SCHEMA = """
CREATE TABLE IF NOT EXISTS challenges (
    id TEXT PRIMARY KEY, title TEXT NOT NULL, brief TEXT NOT NULL, source TEXT NOT NULL, public TEXT NOT NULL,
    classes TEXT NOT NULL, max_params INTEGER, max_epochs INTEGER, max_trainings INTEGER, deadline REAL,
    revealed INTEGER NOT NULL DEFAULT 0, names_revealed INTEGER NOT NULL DEFAULT 0, created REAL NOT NULL,
    seed INTEGER NOT NULL, public_count INTEGER NOT NULL, hidden TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS challenge_entries (
    challenge TEXT NOT NULL, owner TEXT NOT NULL, run_id TEXT NOT NULL, name TEXT NOT NULL, entered REAL NOT NULL,
    correct INTEGER NOT NULL, hidden_count INTEGER NOT NULL, val_accuracy REAL, params INTEGER NOT NULL,
    epochs INTEGER NOT NULL, seconds REAL NOT NULL,
    PRIMARY KEY (challenge, owner, run_id)
);
"""
_MADE: set[str] = set()  # the stores whose tables this process has made


class ChallengeError(UserError):
    """A challenge cannot be made, found, entered, changed or scored as asked: the message says why."""


_WORDS = {
    "max_params": "maximum parameters",
    "max_epochs": "maximum epochs",
    "max_trainings": "maximum trainings per student",
    "max_seconds": "time budget per training (seconds)",
}


@dataclass(frozen=True)
class Budgets:
    """What a challenge allows each run and each student (None: no limit).

    ``max_trainings`` counts the trainings a student starts on the challenge's images (and the runs they
    may enter); ``max_seconds`` is a time budget per training, applied like ``CNNLAB_MAX_TRAIN_SECONDS``
    (the smaller of the two wins).
    """

    max_params: int | None = None
    max_epochs: int | None = None
    max_trainings: int | None = None
    max_seconds: float | None = None

    def __post_init__(self) -> None:
        for name in ("max_params", "max_epochs", "max_trainings"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ChallengeError(
                    f"A challenge's {_WORDS[name]} must be a whole number of at least 1 (got {value!r})."
                )
        s = self.max_seconds
        if s is not None and (isinstance(s, bool) or not isinstance(s, (int, float)) or not s > 0):
            raise ChallengeError(f"A challenge's {_WORDS['max_seconds']} must be above 0 (got {s!r}).")


@dataclass(frozen=True)
class Challenge:
    """What anyone may know of a challenge (the hidden images' names are not here)."""

    id: str
    title: str
    brief: str
    source: str  # the teacher's data: a bundled name or a folder on the server
    public: str  # the folder students train on: ``source`` without the hidden images
    classes: list[str]
    budgets: Budgets
    deadline: float | None
    revealed: bool
    names_revealed: bool
    created: float
    public_count: int
    hidden_count: int

    def closed(self, now: float | None = None) -> bool:
        """Whether the deadline has passed (no more entries)."""
        return self.deadline is not None and (time.time() if now is None else now) > self.deadline


def ensure_tables(store: RunStore) -> None:
    """Make the challenge tables (once per store and process; older tables get the newer columns)."""
    if store.readonly or str(store.db_path) in _MADE:
        return
    with closing(store.connect()) as con, con:
        con.executescript(SCHEMA)
        if "max_seconds" not in {r[1] for r in con.execute("PRAGMA table_info(challenges)")}:
            con.execute("ALTER TABLE challenges ADD COLUMN max_seconds REAL")
    _MADE.add(str(store.db_path))


def connect(store: RunStore) -> sqlite3.Connection:
    """A connection to the store's SQLite whose rows read by column name."""
    con = store.connect()
    con.row_factory = sqlite3.Row
    return con


def challenge_of_row(row: sqlite3.Row) -> Challenge:
    """A ``challenges`` row as a :class:`Challenge` (its hidden images counted, not named)."""
    return Challenge(
        id=row["id"],
        title=row["title"],
        brief=row["brief"],
        source=row["source"],
        public=row["public"],
        classes=json.loads(row["classes"]),
        budgets=Budgets(row["max_params"], row["max_epochs"], row["max_trainings"], row["max_seconds"]),
        deadline=row["deadline"],
        revealed=bool(row["revealed"]),
        names_revealed=bool(row["names_revealed"]),
        created=row["created"],
        public_count=row["public_count"],
        hidden_count=len(json.loads(row["hidden"])),
    )


def challenges_home(store: RunStore) -> str:
    """The folder under which each challenge's students' images are written."""
    return str((store.home / "challenges").resolve())


def challenge_for_source(store: RunStore, source: str | None) -> Challenge | None:
    """The challenge whose students' folder ``source`` is, or None (any other data, or no challenge table yet)."""
    if not source:
        return None
    public = os.path.realpath(source)
    if os.path.dirname(public) != challenges_home(store):
        return None
    ensure_tables(store)
    try:
        with closing(connect(store)) as con:
            row = con.execute("SELECT * FROM challenges WHERE public = ?", (public,)).fetchone()
    except sqlite3.OperationalError:  # a read-only store without the table: no challenge
        return None
    return challenge_of_row(row) if row else None


def unrevealed(store: RunStore) -> list[Challenge]:
    """The challenges whose hidden test scores the teacher has not revealed yet (their data is set aside)."""
    ensure_tables(store)
    try:
        with closing(connect(store)) as con:
            rows = con.execute("SELECT * FROM challenges WHERE revealed = 0").fetchall()
    except sqlite3.OperationalError:  # a read-only store without the table: none
        return []
    return [challenge_of_row(r) for r in rows]


def time_budget_for(store: RunStore, source: str | None) -> tuple[float | None, Challenge | None]:
    """The time budget of one training on ``source`` (seconds, None: no limit), and the source's challenge.

    ``CNNLAB_MAX_TRAIN_SECONDS`` and the challenge's own budget, the smaller of the two.
    """
    server = settings().max_train_seconds or None
    ch = challenge_for_source(store, source)
    own = ch.budgets.max_seconds if ch is not None else None
    budgets = [b for b in (server, own) if b]
    return (float(min(budgets)) if budgets else None), ch


def by_challenge(seconds: float | None, ch: Challenge | None) -> bool:
    """Whether a time budget of ``seconds`` is the challenge's (not only the server's)."""
    return bool(seconds and ch is not None and ch.budgets.max_seconds and seconds == float(ch.budgets.max_seconds))
