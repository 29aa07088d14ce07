"""A class challenge (issue 20): a dataset with a hidden test split, budgets, students' entries scored by the server.

A teacher creates a :class:`Challenge` on a bundled dataset or a folder on the server. Before anything else a
stratified, seeded part of its images (``hidden_fraction`` of each class) is set aside as the **hidden test
split**. Students never get a path to those images: the challenge's data, for them, is a folder the server
writes under ``CNNLAB_HOME/challenges/<id>/`` holding copies of the *other* images only (with a
``classes.txt``, so the label order is the original's). Their runs train, validate and test on that folder
(``core.training.experiment.run_split`` splits it as any dataset), and the hidden images' file names are kept
only in the store's SQLite (the ``challenges`` table), which no page or export reads.

A run entered in a challenge (:meth:`ChallengeBoard.enter`) is checked against the budgets and scored by the
server on the hidden images: the original files read again at the run's input size, predicted by the run's
stored best model through its own preprocessing (``core.training.experiment.predict_images``). The entry
keeps the score (correct / hidden images) next to the run's validation accuracy at its best epoch (the compare
engine's argmin of the validation loss), parameters, epochs and training time.

:meth:`ChallengeBoard.board` ranks each student's best entry. Until the teacher reveals the scores, a viewer
who may not see them gets the **validation** ranking only (best entry, rank and numbers all by validation
accuracy: picking the best by the hidden score would tell which of a student's runs does better on it); after
the reveal, the ranking is by the hidden score. Ties go to fewer parameters, then the earlier entry. Students
are named by an animal per challenge (stable: the n-th student to enter gets the n-th animal of the
challenge's own shuffled list) until the teacher reveals names. Everything lives in the run store's SQLite
(``runs.db``), so challenges and their entries survive a restart.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import math
import os
import shutil
import sqlite3
import time
import uuid
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from types import EllipsisType
from typing import Any

import numpy as np

from core.base.config import ModelConfig, TrainConfig
from core.base.tables import plural
from core.data import SAMPLE_DATA_DIR, Dataset, load_dataset
from core.jobs.challenge_rules import CONTROLS, budget_reasons
from core.jobs.jobtable import trainings_of
from core.results.compare import run_metrics, settings_table
from core.store.challenges import (
    Budgets,
    Challenge,
    ChallengeError,
    challenge_for_source,
    challenge_of_row,
    challenges_home,
    connect,
    ensure_tables,
)
from core.store.runstore import RunRecord, RunStore, UnknownRunError
from core.store.students import owner_name
from core.training.experiment import predict_images

HIDDEN_FRACTION = 0.2  # of each class's images, set aside as the hidden test split
LOAD_SIZE = 32  # the size images are decoded at to make the split (only names and labels are used)
ANIMALS = tuple(
    "Albatross Badger Beaver Bison Camel Cheetah Crane Dolphin Eagle Falcon Ferret Gazelle Gecko Heron Hedgehog "
    "Ibex Jackal Koala Lemur Lynx Marmot Meerkat Narwhal Ocelot Otter Panda Pelican Puffin Quokka Raven Salamander "
    "Seal Sloth Tapir Toucan Turtle Walrus Wombat Yak Zebra".split()
)


@dataclass(frozen=True)
class BoardRow:
    """One student's line on the board, with only what the viewer may see (``score`` None before the reveal)."""

    rank: int
    name: str
    val_accuracy: float | None
    score: float | None  # accuracy on the hidden test split
    params: int
    epochs: int
    seconds: float
    entries: int
    run_id: str | None  # the teacher's view only


def _seed_of(challenge_id: str) -> int:
    return int(hashlib.sha256(challenge_id.encode()).hexdigest()[:8], 16)


def hidden_split(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """The sorted indices of the hidden test split: ``fraction`` of each class (at least one), drawn with ``seed``.

    Raises:
        ChallengeError: a class has fewer than two images (one must stay for the students).
    """
    if not 0 < fraction < 1:
        raise ChallengeError(f"The hidden part must be between 0 and 1 of the images (got {fraction}).")
    rng = np.random.default_rng(seed)
    chosen = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        if len(members) < 2:
            raise ChallengeError("Each class needs at least 2 images for a challenge (one hidden, one to train on).")
        n = min(len(members) - 1, max(1, round(fraction * len(members))))
        chosen.append(rng.choice(members, size=n, replace=False))
    return np.sort(np.concatenate(chosen))


def _data_root(ds: Dataset) -> Path:
    """The folder the dataset's files are relative to; zips are refused (a challenge copies files)."""
    bundled = Path(SAMPLE_DATA_DIR) / ds.source
    root = bundled if "/" not in ds.source and bundled.is_dir() else Path(ds.source)
    if not root.is_dir():
        raise ChallengeError(
            "A challenge's data must be a bundled dataset or a folder of class folders on the server, not a zip."
        )
    return root


def _write_public(root: Path, files: list[str], classes: list[str], target: Path) -> None:
    """Copies of ``files`` (relative to ``root``) under ``target``, written whole or not at all."""
    tmp = target.parent / f".tmp-{target.name}-{uuid.uuid4().hex[:8]}"
    try:
        tmp.mkdir(parents=True)
        for rel in files:
            dest = tmp / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(root / rel, dest)
        (tmp / "classes.txt").write_text("\n".join(classes) + "\n")
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class ChallengeBoard:
    """The challenges of one run store, their hidden splits and their entries (each call opens its own connection)."""

    def __init__(self, store: RunStore):
        self.store = store
        ensure_tables(store)  # once per store and process: pages make a board per run
        self._none = store.readonly and not self._has_tables()  # a read-only store no teacher made a challenge in

    def _connect(self) -> sqlite3.Connection:
        return connect(self.store)

    def _has_tables(self) -> bool:
        try:
            with closing(self._connect()) as con:
                return con.execute("SELECT 1 FROM sqlite_master WHERE name = 'challenges'").fetchone() is not None
        except sqlite3.OperationalError:  # no database at all
            return False

    # -- challenges -------------------------------------------------------
    def create(
        self,
        title: str,
        source: str,
        budgets: Budgets | None = None,
        *,
        brief: str = "",
        deadline: float | None = None,
        hidden_fraction: float = HIDDEN_FRACTION,
    ) -> Challenge:
        """A new challenge on ``source``: its hidden split drawn, the students' folder written, the row stored.

        Raises:
            ChallengeError: no title, a zip, a class too small, or bad budgets.
            core.data.DataError: the data cannot be read.
        """
        budgets = budgets or Budgets()
        title = title.strip()
        if not title:
            raise ChallengeError("Give the challenge a title: students pick it by its title.")
        ds = load_dataset(source, image_size=LOAD_SIZE, cache_dir=self.store.cache_dir)
        root = _data_root(ds)
        cid = uuid.uuid4().hex[:10]
        seed = _seed_of(cid)
        hidden = hidden_split(ds.labels, hidden_fraction, seed)
        shown = np.setdiff1d(np.arange(len(ds)), hidden)
        public = Path(challenges_home(self.store)) / cid  # core.base.limits.challenges_dir() on a server
        _write_public(root, [ds.files[i] for i in shown], ds.class_names, public)
        row = {
            "id": cid,
            "title": title,
            "brief": brief.strip(),
            "source": ds.source,
            "public": str(public),
            "classes": json.dumps(ds.class_names),
            "max_params": budgets.max_params,
            "max_epochs": budgets.max_epochs,
            "max_trainings": budgets.max_trainings,
            "max_seconds": budgets.max_seconds,
            "deadline": deadline,
            "created": time.time(),
            "seed": seed,
            "public_count": len(shown),
            "hidden": json.dumps([ds.files[i] for i in hidden]),
        }
        with closing(self._connect()) as con, con:
            con.execute(
                f"INSERT INTO challenges ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})", tuple(row.values())
            )
        return self.get(cid)

    def get(self, challenge_id: str) -> Challenge:
        """The challenge with this id. Raises ChallengeError when there is none."""
        if self._none:
            raise ChallengeError(f"There is no challenge '{challenge_id}'. Pick one of the challenges on the board.")
        with closing(self._connect()) as con:
            row = con.execute("SELECT * FROM challenges WHERE id = ?", (challenge_id,)).fetchone()
        if row is None:
            raise ChallengeError(f"There is no challenge '{challenge_id}'. Pick one of the challenges on the board.")
        return challenge_of_row(row)

    def list(self) -> list[Challenge]:
        """Every challenge, newest first."""
        if self._none:
            return []
        with closing(self._connect()) as con:
            rows = con.execute("SELECT * FROM challenges ORDER BY created DESC").fetchall()
        return [challenge_of_row(r) for r in rows]

    def for_source(self, source: str | None) -> Challenge | None:
        """The challenge whose students' folder ``source`` is (what the pages hold to its budgets), or None."""
        return challenge_for_source(self.store, source)

    def update(
        self,
        challenge_id: str,
        *,
        title: str | None = None,
        brief: str | None = None,
        budgets: Budgets | None = None,
        deadline: float | None | EllipsisType = ...,
    ) -> Challenge:
        """The teacher's edit: the title, the brief, the budgets or the deadline (``None``: no deadline; left
        out: unchanged). The data and its hidden split stay as they were made; entries already on the board
        stay (new budgets hold for the trainings and entries that follow).

        Raises:
            ChallengeError: no such challenge, or an empty title.
        """
        self.get(challenge_id)
        fields: dict[str, Any] = {}
        if title is not None:
            if not title.strip():
                raise ChallengeError("Give the challenge a title: students pick it by its title.")
            fields["title"] = title.strip()
        if brief is not None:
            fields["brief"] = brief.strip()
        if budgets is not None:
            fields |= dataclasses.asdict(budgets)
        if deadline is not ...:
            fields["deadline"] = deadline
        if fields:
            with closing(self._connect()) as con, con:
                sets = ", ".join(f"{k} = ?" for k in fields)
                con.execute(f"UPDATE challenges SET {sets} WHERE id = ?", (*fields.values(), challenge_id))
        return self.get(challenge_id)

    def delete(self, challenge_id: str) -> Challenge:
        """The teacher's delete: the challenge, its hidden split's names and its board go; the students' runs stay
        in the run store, and so does the folder of the images they trained on (their runs' pages read it;
        it holds none of the hidden images). Returns what was deleted.

        Raises:
            ChallengeError: no such challenge.
        """
        ch = self.get(challenge_id)
        with closing(self._connect()) as con, con:
            con.execute("DELETE FROM challenge_entries WHERE challenge = ?", (challenge_id,))
            con.execute("DELETE FROM challenges WHERE id = ?", (challenge_id,))
        return ch

    def reveal(self, challenge_id: str, *, scores: bool = True, names: bool | None = None) -> Challenge:
        """The teacher's reveal: the hidden scores (and, when ``names`` is given, the students' names) shown or not."""
        self.get(challenge_id)
        with closing(self._connect()) as con, con:
            con.execute("UPDATE challenges SET revealed = ? WHERE id = ?", (int(scores), challenge_id))
            if names is not None:
                con.execute("UPDATE challenges SET names_revealed = ? WHERE id = ?", (int(names), challenge_id))
        return self.get(challenge_id)

    def _hidden_files(self, challenge_id: str) -> list[str]:
        """The hidden images' file names: for scoring only (never shown, never exported)."""
        with closing(self._connect()) as con:
            row = con.execute("SELECT hidden FROM challenges WHERE id = ?", (challenge_id,)).fetchone()
        if row is None:
            raise ChallengeError(f"There is no challenge '{challenge_id}'.")
        return json.loads(row["hidden"])

    # -- budgets ----------------------------------------------------------
    def entries_of(self, challenge_id: str, owner: str) -> int:
        """How many runs ``owner`` has entered in the challenge."""
        with closing(self._connect()) as con:
            (n,) = con.execute(
                "SELECT COUNT(*) FROM challenge_entries WHERE challenge = ? AND owner = ?", (challenge_id, owner)
            ).fetchone()
        return int(n)

    def trainings_of(self, challenge_id: str, owner: str) -> int:
        """How many trainings ``owner`` has started on the challenge's images (the job table's count)."""
        return trainings_of(self.store, owner, challenge_id)

    def budget_reasons(
        self, challenge: Challenge, model_cfg: ModelConfig, train_cfg: TrainConfig, owner: str | None = None
    ) -> dict[str, str]:
        """Why these settings break the challenge's budgets, per control (:data:`CONTROLS`); empty when they fit.

        :func:`core.jobs.challenge_rules.budget_reasons`, with ``owner``'s trainings on the challenge's
        images counted (None: not counted); the worker refuses the same trainings with the same sentences.
        """
        used = (
            None if owner is None or challenge.budgets.max_trainings is None else self.trainings_of(challenge.id, owner)
        )
        return budget_reasons(challenge, model_cfg, train_cfg, used)

    # -- entries ----------------------------------------------------------
    def hidden_correct(self, challenge: Challenge, rec: RunRecord) -> tuple[int, int]:
        """``(correct, hidden images)`` of the run's best model on the challenge's hidden split (server side)."""
        model_cfg = ModelConfig.from_dict(rec.model_config)
        ds = load_dataset(
            challenge.source,
            image_size=model_cfg.input_size,
            channels=model_cfg.channels,
            cache_dir=self.store.cache_dir,
        )
        where = {f: i for i, f in enumerate(ds.files)}
        hidden = self._hidden_files(challenge.id)
        missing = [f for f in hidden if f not in where]
        if missing or ds.class_names != challenge.classes:
            raise ChallengeError(
                "The challenge's data changed on the server since it was made, so entries cannot be scored. "
                "Ask your teacher to make the challenge again."
            )
        index = np.array([where[f] for f in hidden], dtype=np.int64)
        probs = predict_images(self.store, rec, ds.images[index])
        return int(np.sum(np.argmax(probs, axis=1) == ds.labels[index])), len(index)

    def enter(self, challenge_id: str, owner: str, run_id: str, *, now: float | None = None) -> dict[str, Any]:
        """Enter a stored run for ``owner``: checked (data, deadline, budgets), scored on the hidden split, kept.

        Returns the entry's public numbers (validation accuracy, parameters, epochs, seconds), never its score.

        Raises:
            ChallengeError: closed, the run trained on other data, over a budget, or entered already.
        """
        ch = self.get(challenge_id)
        if ch.closed(now):
            raise ChallengeError(f"The challenge '{ch.title}' has closed: its deadline has passed.")
        rec = self.store.get(run_id)
        if rec is None:
            raise UnknownRunError.of(run_id)
        if os.path.realpath(rec.source) != os.path.realpath(ch.public):
            raise ChallengeError(
                f"That run trained on other data. Train on the challenge's images ('{ch.title}') and enter that run."
            )
        with closing(self._connect()) as con:
            again = con.execute(
                "SELECT 1 FROM challenge_entries WHERE challenge = ? AND owner = ? AND run_id = ?",
                (ch.id, owner, run_id),
            ).fetchone()
        if again:
            raise ChallengeError("You have entered this run already.")
        reasons = self.budget_reasons(
            ch, ModelConfig.from_dict(rec.model_config), TrainConfig.from_dict(rec.train_config)
        )
        if reasons:
            raise ChallengeError(" ".join(reasons[c] for c in CONTROLS if c in reasons))
        used = self.entries_of(ch.id, owner)
        if ch.budgets.max_trainings is not None and used >= ch.budgets.max_trainings:
            raise ChallengeError(
                f"You have entered {plural(used, 'run')} in this challenge, its limit; no more runs can be entered."
            )
        correct, total = self.hidden_correct(ch, rec)
        metrics = run_metrics(rec)
        entry = {
            "challenge": ch.id,
            "owner": owner,
            "run_id": rec.run_id,
            "name": self._name_for(ch.id, owner),
            "entered": time.time() if now is None else now,
            "correct": correct,
            "hidden_count": total,
            "val_accuracy": metrics["best_val_accuracy"],
            "params": int(rec.layers.get("total_params", 0)),
            "epochs": metrics["epochs_run"],
            "seconds": float(rec.seconds),
        }
        with closing(self._connect()) as con, con:
            con.execute(
                f"INSERT INTO challenge_entries ({', '.join(entry)}) VALUES ({', '.join('?' * len(entry))})",
                tuple(entry.values()),
            )
        return {k: entry[k] for k in ("run_id", "name", "val_accuracy", "params", "epochs", "seconds")}

    def _name_for(self, challenge_id: str, owner: str) -> str:
        """The owner's animal in this challenge: kept from their first entry, else the next of its shuffled list."""
        with closing(self._connect()) as con:
            row = con.execute(
                "SELECT name FROM challenge_entries WHERE challenge = ? AND owner = ? LIMIT 1", (challenge_id, owner)
            ).fetchone()
            if row:
                return row["name"]
            (n,) = con.execute(
                "SELECT COUNT(DISTINCT owner) FROM challenge_entries WHERE challenge = ?", (challenge_id,)
            ).fetchone()
        order = np.random.default_rng(_seed_of(challenge_id)).permutation(len(ANIMALS))
        animal = ANIMALS[order[n % len(ANIMALS)]]
        return animal if n < len(ANIMALS) else f"{animal} {n // len(ANIMALS) + 1}"

    # -- the board --------------------------------------------------------
    def board(self, challenge_id: str, *, teacher: bool = False, projector: bool = False) -> list[BoardRow]:
        """Each student's best entry, ranked, with what the viewer may see.

        A teacher (not on the projector) sees the hidden scores, real owner ids and run ids always; anyone
        else sees scores only once revealed (and then the ranking is by them), names only once revealed.
        """
        ch = self.get(challenge_id)
        private = teacher and not projector
        by_score = ch.revealed or private
        with closing(self._connect()) as con:
            rows = [
                dict(r)
                for r in con.execute(
                    "SELECT * FROM challenge_entries WHERE challenge = ? ORDER BY entered", (challenge_id,)
                )
            ]
        shown_names = ch.names_revealed or private
        out = []
        for rank, (r, entries) in enumerate(rank_entries(rows, by_score=by_score), start=1):
            out.append(
                BoardRow(
                    rank=rank,
                    name=owner_name(r["owner"]) if shown_names else r["name"],
                    val_accuracy=r["val_accuracy"],
                    score=r["correct"] / r["hidden_count"] if by_score else None,
                    params=r["params"],
                    epochs=r["epochs"],
                    seconds=r["seconds"],
                    entries=entries,
                    run_id=r["run_id"] if private else None,
                )
            )
        return out

    def differences(self, challenge_id: str, top: int = 3, *, now: float | None = None) -> dict[str, Any] | None:
        """What the top runs did differently, once the scores are revealed or the deadline has passed: the
        settings in which the top ``top`` runs and the class's median run differ (the compare engine's settings
        table). The runs are ranked as the board ranks them for a student: by the hidden score once revealed,
        by validation accuracy before (a deadline alone reveals nothing of the hidden split).

        Returns ``{"names", "ranks", "run_ids", "rows": [{"key", "values", "differs"}]}`` (the median run
        first, then the top runs), or None before that, or with fewer than two students on the board.
        """
        ch = self.get(challenge_id)
        if not (ch.revealed or ch.closed(now)):
            return None
        with closing(self._connect()) as con:
            rows = [dict(r) for r in con.execute("SELECT * FROM challenge_entries WHERE challenge = ?", (ch.id,))]
        ranked = [e for e, _ in rank_entries(rows, by_score=ch.revealed)]  # the students' board, in order
        if len(ranked) < 2:
            return None
        median = len(ranked) // 2
        chosen = [median, *(i for i in range(min(top, len(ranked))) if i != median)]
        records = [self.store.get(ranked[i]["run_id"]) for i in chosen]
        if any(rec is None for rec in records):
            return None  # a run was deleted from the store since it was entered
        names = [r.name for r in self.board(challenge_id)]  # the names a student may see, in the same order
        return {
            "names": [names[i] for i in chosen],
            "ranks": [i + 1 for i in chosen],
            "run_ids": [ranked[i]["run_id"] for i in chosen],
            "rows": [row for row in settings_table(records) if row["key"] != "data.source"],
        }


def rank_entries(entries: list[dict[str, Any]], *, by_score: bool) -> list[tuple[dict[str, Any], int]]:
    """Each owner's best entry with their number of entries, best first.

    Best is the highest hidden accuracy (``correct / hidden_count``) when ``by_score``, else the highest
    validation accuracy (before the reveal: the hidden score picks nothing, not even a student's best run);
    ties go to fewer parameters, then to the earlier entry.
    """

    def key(e: dict[str, Any]) -> tuple:
        value = e["correct"] / e["hidden_count"] if by_score else e["val_accuracy"]
        return (-(value if value is not None else -math.inf), e["params"], e["entered"])

    best: dict[str, dict[str, Any]] = {}
    counts: dict[str, int] = {}
    for e in entries:
        counts[e["owner"]] = counts.get(e["owner"], 0) + 1
        if e["owner"] not in best or key(e) < key(best[e["owner"]]):
            best[e["owner"]] = e
    return [(e, counts[e["owner"]]) for e in sorted(best.values(), key=key)]


def board_csv(rows: list[BoardRow]) -> str:
    """The board as CSV, with only the columns its rows hold for the viewer (no score before the reveal)."""
    with_score = any(r.score is not None for r in rows)
    with_runs = any(r.run_id is not None for r in rows)
    header = ["rank", "student", "validation accuracy"]
    header += ["hidden test accuracy"] if with_score else []
    header += ["parameters", "epochs", "training seconds", "runs entered"]
    header += ["run"] if with_runs else []
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    for r in rows:
        line: list[Any] = [r.rank, r.name, "" if r.val_accuracy is None else f"{r.val_accuracy:.4f}"]
        line += [f"{r.score:.4f}"] if with_score else []
        line += [r.params, r.epochs, f"{r.seconds:.1f}", r.entries]
        line += [r.run_id] if with_runs else []
        writer.writerow(line)
    return buf.getvalue()
