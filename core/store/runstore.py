"""The run store: an SQLite index plus one folder of artifacts per run, on disk.

Layout under ``CNNLAB_HOME`` (default ``~/.cache/cnnlab``)::

    runs.db               index: one row per finished run (SQLite, WAL mode)
    runs/<run_id>/        record.json, model.keras (the best epoch), arrays.npz
    runs/<run_id>/<kind>/<key>.npz  derived from this run alone (e.g. activation maximisation's images):
                          kept with the run, deleted with it, and gone when the run is stored again
    cache/<kind>/<key>.npz  derived data worth keeping, e.g. VGG16 base features
    uploads/              zips people uploaded through the dashboard (named by SHA-256; who uploaded
                          each is in runs.db, and runs on an upload are listed only to them)
    tmp/                  runs being written

Writes are atomic. A run is written into ``tmp/`` first, renamed into
``runs/`` in one step, and only then indexed in ``runs.db`` in one
transaction. A crash or kill at any point leaves either the old state or the
new one: never a half-written run that looks complete, and never a damaged
earlier run. Leftovers in ``tmp/`` are removed the next time a store opens.

Nothing here unpickles: arrays are loaded with ``allow_pickle=False`` and the
only models loaded are ones this store wrote.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import sqlite3
import time
import uuid
from contextlib import closing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.base.environment import settings
from core.base.errors import UserError
from core.base.limits import bytes_text, default_home, special_kind
from core.base.naming import with_precision

__all__ = ["RunRecord", "RunStore", "StoreError", "UploadQuotaError", "default_home"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id   TEXT PRIMARY KEY,
    key      TEXT NOT NULL,
    status   TEXT NOT NULL,
    created  REAL NOT NULL,
    source   TEXT NOT NULL,
    model    TEXT NOT NULL,
    summary  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_key ON runs(key, status);
CREATE TABLE IF NOT EXISTS upload_owners (
    upload   TEXT NOT NULL,
    owner    TEXT NOT NULL,
    created  REAL NOT NULL,
    name     TEXT,
    PRIMARY KEY (upload, owner)
);
"""


@dataclass
class RunRecord:
    """Everything a finished run is: what was asked, what happened, what it scored."""

    run_id: str
    key: str
    status: str  # "complete", or "stopped" when a person stopped it early
    created: float
    source: str
    label: str
    data: dict[str, Any]
    model_config: dict[str, Any]
    train_config: dict[str, Any]
    layers: dict[str, Any]  # total_params, trainable_params, non_trainable_params
    history: dict[str, list[float]]
    epoch_seconds: list[float]
    best_epoch: int
    stopped_early: bool
    stopped_by_user: bool
    restored_epoch: int | None
    phases: list[dict[str, Any]]
    diagnosis: dict[str, Any]
    test: dict[str, Any]
    seconds: float
    versions: dict[str, str]
    extra: dict[str, Any] = field(default_factory=dict)
    cached: bool = False  # set when the record came back from the store instead of training

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("cached")
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunRecord:
        known = {f for f in cls.__dataclass_fields__}
        rec = cls(**{k: v for k, v in d.items() if k in known})
        rec.label = with_precision(rec.label, rec.extra.get("precision"))  # a bfloat16 run stored before labels said so
        return rec

    def summary(self) -> dict[str, Any]:
        """A short row for run lists and the sidebar selector."""
        return {
            "run_id": self.run_id,
            "status": self.status,
            "created": self.created,
            "source": self.source,
            "label": self.label,
            "model": self.model_config.get("model", "cnn"),
            "epochs_run": len(self.history.get("loss", [])),
            "best_epoch": self.best_epoch,
            "best_val_accuracy": _at(self.history.get("val_accuracy", []), self.best_epoch),
            "test_accuracy": self.test.get("accuracy"),
            "verdict": self.diagnosis.get("verdict"),
            "precision": self.extra.get("precision") or "float32",  # runs from before the setting computed in float32
            "seconds": self.seconds,
            "params": self.layers.get("total_params"),
        }


def _at(values: list[float], epoch: int) -> float | None:
    return values[epoch - 1] if 0 < epoch <= len(values) else None


_ALREADY_STORED = object()  # _swap_in's answer when another process stored the same run id first


class UnknownRunError(UserError):
    """No stored run has this id."""

    @classmethod
    def of(cls, run_id: str) -> UnknownRunError:
        return cls(f"No stored run {run_id!r}. `python -m core runs` lists the stored runs.")


class UploadQuotaError(UserError):
    """A student's uploads would take more space than ``CNNLAB_UPLOAD_QUOTA_MB`` allows."""


class StoreError(UserError):
    """The run store's folder cannot be used: not a folder, not writable, or its disk is full."""


def _unusable(home: Path, why: str, fix: str = "Point CNNLAB_HOME at a folder you can write to") -> StoreError:
    return StoreError(f"The run store's folder '{home}' (CNNLAB_HOME) {why}. {fix}.")


def check_home(home: Path) -> None:
    """Raise :class:`StoreError` when ``home`` exists but is not a folder (a file, /dev/null, a FIFO)."""
    if home.exists() and not home.is_dir():
        raise _unusable(
            home,
            f"is {special_kind(home) or 'a file'}, not a folder",
            "Point CNNLAB_HOME at a folder (it is created if missing)",
        )


class RunStore:
    """Runs on disk. Safe to share between threads; each call opens its own connection.

    ``readonly=True`` (the commands that only read: ``runs``, ``compare``,
    ``export``, ``jobs``, ``explain``) never writes: no folders are made, no
    schema or migration runs, SQLite is opened read-only (``immutable`` when the
    folder itself cannot be written), and a store that does not exist yet reads
    as empty. Otherwise a folder that cannot be written is a :class:`StoreError`
    (one line: which folder and why) before anything else happens.
    """

    def __init__(self, home: str | Path | None = None, *, readonly: bool = False):
        self.home = Path(home) if home is not None else default_home()
        self.readonly = readonly
        self.runs_dir = self.home / "runs"
        self.tmp_dir = self.home / "tmp"
        self.cache_dir = self.home / "cache"
        self.uploads_dir = self.home / "uploads"
        self.db_path = self.home / "runs.db"
        self._ro_uri: str | None = None  # how a read-only store opens its SQLite (None: not there, read as empty)
        check_home(self.home)
        if readonly:
            if self.db_path.is_file():
                self._ro_uri = self._readable_uri()
            return
        try:
            for d in (self.runs_dir, self.tmp_dir, self.cache_dir, self.uploads_dir):
                d.mkdir(parents=True, exist_ok=True)
            probe = self.tmp_dir / f"probe-{uuid.uuid4().hex}"
            probe.write_bytes(b"x" * 4096)  # a read-only folder or file system, or a full disk, fails here
            probe.unlink()
            with closing(self._connect()) as con, con:
                con.executescript(SCHEMA)
                self._migrate(con)
        except OSError as exc:
            full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
            raise _unusable(
                self.home,
                f"cannot be written ({exc.strerror or exc})",
                "Free some space on its disk, or point CNNLAB_HOME at another folder"
                if full
                else "Point CNNLAB_HOME at a folder you can write to",
            ) from None
        except sqlite3.OperationalError as exc:
            raise _unusable(self.home, f"cannot be written (SQLite: {exc})") from None
        self._recover()
        self._clean_tmp()
        self.clean_uploads()

    # -- plumbing ---------------------------------------------------------
    def _readable_uri(self) -> str:
        """``mode=ro``, or ``immutable=1`` where SQLite cannot even make its shared-memory file (a read-only folder)."""
        base = f"file:{self.db_path.resolve()}?mode=ro"
        for uri in (base, base + "&immutable=1"):
            try:
                with closing(sqlite3.connect(uri, uri=True, timeout=30)) as con:
                    con.execute("SELECT count(*) FROM runs").fetchone()
                return uri
            except sqlite3.OperationalError as exc:
                why = exc
        raise _unusable(self.home, f"holds a runs.db that cannot be read (SQLite: {why})")

    def stamp(self) -> tuple[int, ...]:
        """Something that changes whenever the index does: the size and modification time (ns) of ``runs.db`` and
        of its write-ahead log. Every committed write (a run stored or deleted, a job's progress, a rename) appends
        to the log or, at a checkpoint, rewrites it and the database: a cache of a read keyed by the stamp is read
        again after any write, and not before. Nothing is opened: two ``stat`` calls."""
        out: list[int] = []
        for path in (self.db_path, self.db_path.with_name(self.db_path.name + "-wal")):
            try:
                st = path.stat()
            except OSError:
                out += [-1, -1]
            else:
                out += [st.st_size, st.st_mtime_ns]
        return tuple(out)

    def connect(self) -> sqlite3.Connection:
        """A new connection to the index (read-only for a read-only store; an empty one where none exists yet)."""
        if self.readonly:
            if self._ro_uri is None:
                con = sqlite3.connect(":memory:")
                con.executescript(SCHEMA + "ALTER TABLE runs ADD COLUMN upload TEXT;")
                return con
            return sqlite3.connect(self._ro_uri, uri=True, timeout=30)
        con = sqlite3.connect(self.db_path, timeout=30)
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=NORMAL")
        return con

    _connect = connect

    def _clean_tmp(self, older_than: float = 6 * 3600) -> None:
        """Remove folders a crashed writer left behind (older than a few hours, so a live writer is safe)."""
        now = time.time()
        for p in self.tmp_dir.iterdir():
            try:
                if now - p.stat().st_mtime > older_than:
                    shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink()
            except OSError:
                pass

    def _migrate(self, con: sqlite3.Connection) -> None:
        """Bring a runs.db from before owners up to date: add ``runs.upload`` and fill it in.

        Runs on uploads made before then have no owner on record: only a teacher sees them.
        """
        cols = {row[1] for row in con.execute("PRAGMA table_info(runs)")}
        if "upload" not in cols:
            con.execute("ALTER TABLE runs ADD COLUMN upload TEXT")
            for run_id, source in con.execute("SELECT run_id, source FROM runs").fetchall():
                upload = self.upload_of(source)
                if upload:
                    con.execute("UPDATE runs SET upload = ? WHERE run_id = ?", (upload, run_id))
        con.execute("CREATE INDEX IF NOT EXISTS runs_upload ON runs(upload)")
        if "name" not in {row[1] for row in con.execute("PRAGMA table_info(upload_owners)")}:
            con.execute("ALTER TABLE upload_owners ADD COLUMN name TEXT")  # what the uploader called the file
        self._migrate_summaries(con)

    def _migrate_summaries(self, con: sqlite3.Connection) -> None:
        """Rows written before run lists named a run's precision get it, and their labels its mark, from the record.

        A bfloat16 run stored before then would otherwise share its label with
        the float32 run of the same settings in ``runs`` and the sidebar. Only a
        store opened for writing migrates; a read-only one lists rows as they are.
        """
        rows = con.execute("SELECT run_id FROM runs WHERE summary NOT LIKE '%\"precision\"%'").fetchall()
        for (run_id,) in rows:
            try:
                with open(self.runs_dir / run_id / "record.json") as fh:
                    rec = RunRecord.from_dict(json.load(fh))
            except (OSError, ValueError, TypeError):
                continue  # a half-written run: _recover deals with it
            con.execute("UPDATE runs SET summary = ? WHERE run_id = ?", (json.dumps(rec.summary()), run_id))

    # -- uploads and who may see them ------------------------------------
    def save_upload(self, data: bytes, owner: str, name: str = "the upload") -> Path:
        """Keep an uploaded file in ``uploads/``, named by its SHA-256, and note ``owner`` as one who has it.

        The same bytes uploaded twice are one file with two owners, so an
        identical run on them is trained once and seen by both. ``name`` (the
        owner's own name for the file) is kept with the owner, so that a student
        who comes back finds it under that name (:meth:`upload_names`).

        Raises:
            UploadQuotaError: ``owner``'s uploads would take more than ``CNNLAB_UPLOAD_QUOTA_MB``
                (``name`` is how the message calls this file: the user's own name for it).
        """
        target = self.uploads_dir / f"{hashlib.sha256(data).hexdigest()}.zip"
        quota = settings().upload_quota_mb << 20
        held = sum(size for upload, size in self.uploads_of(owner).items() if upload != target.name)
        if held + len(data) > quota:
            raise UploadQuotaError(
                f"'{name}' ({bytes_text(len(data))}) would bring your uploads on this server to "
                f"{bytes_text(held + len(data))}, more than the {bytes_text(quota)} each student may keep "
                "(CNNLAB_UPLOAD_QUOTA_MB). Uploads you trained nothing on are removed when you replace them; "
                "ask your teacher to delete runs you no longer need."
            )
        with closing(self._connect()) as con, con:  # the owner first: clean_uploads never sees it unowned
            con.execute(
                "INSERT INTO upload_owners(upload, owner, created, name) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(upload, owner) DO UPDATE SET name = excluded.name",
                (target.name, owner, time.time(), name),
            )
        if not target.exists():
            tmp = self.tmp_dir / f"upload-{uuid.uuid4().hex}.part"
            tmp.write_bytes(data)
            os.replace(tmp, target)
        return target

    def uploads_of(self, owner: str) -> dict[str, int]:
        """``owner``'s uploads still on disk: file name -> bytes."""
        with closing(self._connect()) as con:
            names = [r[0] for r in con.execute("SELECT upload FROM upload_owners WHERE owner = ?", (owner,))]
        sizes = {}
        for n in names:
            try:
                sizes[n] = (self.uploads_dir / n).stat().st_size
            except OSError:
                pass
        return sizes

    def upload_names(self, owner: str) -> dict[str, str]:
        """``owner``'s uploads still on disk: path -> the name they gave the file, oldest first."""
        with closing(self._connect()) as con:
            rows = con.execute(
                "SELECT upload, name FROM upload_owners WHERE owner = ? ORDER BY created", (owner,)
            ).fetchall()
        paths = {str(self.uploads_dir / upload): name or upload for upload, name in rows}
        return {path: name for path, name in paths.items() if Path(path).is_file()}

    def release_upload(self, path: str | Path, owner: str) -> bool:
        """``owner`` no longer needs this upload (rejected, or replaced by another): forget it unless a run uses it.

        The owner keeps an upload with runs on it (so the runs stay theirs); otherwise their claim is dropped
        and the file deleted once nobody else has it (:meth:`clean_uploads`). Returns whether it was released.
        """
        upload = self.upload_of(str(path))
        if upload is None:
            return False
        with closing(self._connect()) as con, con:
            if con.execute("SELECT 1 FROM runs WHERE upload = ? LIMIT 1", (upload,)).fetchone():
                return False
            con.execute("DELETE FROM upload_owners WHERE upload = ? AND owner = ?", (upload, owner))
        self.clean_uploads()
        return True

    def clean_uploads(self) -> list[str]:
        """Delete the uploads nobody owns any more and no run uses; returns their file names."""
        with closing(self._connect()) as con:
            kept = {
                r[0]
                for r in con.execute(
                    "SELECT upload FROM upload_owners UNION SELECT upload FROM runs WHERE upload IS NOT NULL"
                )
            }
        removed = []
        for p in self.uploads_dir.glob("*.zip"):
            if p.name not in kept:
                try:
                    p.unlink()
                    removed.append(p.name)
                except OSError:
                    pass
        return removed

    def upload_of(self, source: str) -> str | None:
        """The upload's file name when ``source`` is a file in ``uploads/``; None for any other data."""
        path = Path(os.path.realpath(source))
        return path.name if path.parent == self.uploads_dir.resolve() else None

    def may_see(self, source: str, viewer: str | None) -> bool:
        """Whether ``viewer`` may use this data or see its runs (None: everyone's, as the CLI and a teacher)."""
        upload = self.upload_of(source)
        if viewer is None or upload is None:
            return True
        with closing(self._connect()) as con:
            row = con.execute("SELECT 1 FROM upload_owners WHERE upload = ? AND owner = ?", (upload, viewer)).fetchone()
        return row is not None

    # -- runs -------------------------------------------------------------
    def save(
        self,
        record: RunRecord,
        model: Any | None = None,
        arrays: dict[str, np.ndarray] | None = None,
    ) -> Path:
        """Write a run atomically; replaces an earlier run with the same id.

        ``model`` is a Keras model, or the bytes of a ``.keras`` file a training
        process or a cluster worker wrote (:class:`core.training.experiment.RunArtifacts`).
        """
        tmp = self.tmp_dir / f"{record.run_id}.{uuid.uuid4().hex[:8]}"
        tmp.mkdir(parents=True)
        try:
            if isinstance(model, bytes | bytearray):
                (tmp / "model.keras").write_bytes(model)
            elif model is not None:
                model.save(tmp / "model.keras")
            if arrays:
                with open(tmp / "arrays.npz", "wb") as fh:
                    np.savez_compressed(fh, **arrays)
            with open(tmp / "record.json", "w") as fh:
                json.dump(record.to_dict(), fh)
                fh.flush()
                os.fsync(fh.fileno())
            final = self.runs_dir / record.run_id
            old = self._swap_in(tmp, final, record.run_id)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        if old is _ALREADY_STORED:
            # Another process stored this run id at the same moment: its copy is the run; keep it and index it.
            shutil.rmtree(tmp, ignore_errors=True)
            old = None
            with open(final / "record.json") as fh:
                record = RunRecord.from_dict(json.load(fh))
        with closing(self._connect()) as con, con:
            con.execute(
                "INSERT OR REPLACE INTO runs(run_id, key, status, created, source, model, summary, upload) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.run_id,
                    record.key,
                    record.status,
                    record.created,
                    record.source,
                    record.model_config.get("model", "cnn"),
                    json.dumps(record.summary()),
                    self.upload_of(record.source),
                ),
            )
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return final

    def _swap_in(self, tmp: Path, final: Path, run_id: str) -> Path | None | object:
        """Put the finished folder ``tmp`` at ``final``; returns the replaced folder to delete, if any.

        Replacing takes two renames (final -> old, tmp -> final). A process killed
        between them leaves no folder at ``final`` but a complete ``old-<run_id>.*``
        in tmp/; :meth:`_recover` puts it back, so the run stays readable. Two
        processes saving the same run id at once race for ``final``: the one that
        loses finds a complete run there and returns ``_ALREADY_STORED``.
        """
        for _ in range(3):
            old = None
            try:
                if final.exists():
                    old = self.tmp_dir / f"old-{run_id}.{uuid.uuid4().hex[:8]}"
                    final.rename(old)
                tmp.rename(final)
                return old
            except OSError:
                if old is not None and old.exists() and not final.exists():
                    old.rename(final)  # undo our half of the swap
                    old = None
                if (final / "record.json").exists():
                    if old is None:
                        return _ALREADY_STORED
                    # Someone put a run there between our renames: the one we moved aside is superseded
                    # (else it would stay in tmp/ for good); replace theirs again.
                    shutil.rmtree(old, ignore_errors=True)
                    continue
                self._recover(run_id)
        raise OSError(f"Could not store run {run_id}: its folder kept changing under another writer.")

    def _recover(self, run_id: str | None = None) -> None:
        """Put back a run folder that a writer killed mid-replace left in tmp/ (see :meth:`_swap_in`)."""
        pattern = f"old-{run_id}.*" if run_id else "old-*"
        for old in sorted(self.tmp_dir.glob(pattern), key=lambda p: p.stat().st_mtime, reverse=True):
            rid = old.name[len("old-") :].rsplit(".", 1)[0]
            final = self.runs_dir / rid
            try:
                if not final.exists() and (old / "record.json").exists():
                    old.rename(final)
            except OSError:
                pass  # another process recovered it first

    def get(self, run_id: str) -> RunRecord | None:
        """The run with this id, or None. A folder without an index row is not a run."""
        with closing(self._connect()) as con:
            row = con.execute("SELECT run_id FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        if row is None:
            return None
        path = self.runs_dir / run_id / "record.json"
        # Another process replacing this run renames its folder away and the new one in (_swap_in): a read
        # that falls between the two renames finds no file for a moment. Look again briefly before saying None.
        for attempt in range(20):
            if not path.exists():
                self._recover(run_id)
            try:
                with open(path) as fh:
                    return RunRecord.from_dict(json.load(fh))
            except FileNotFoundError:
                time.sleep(0.002 * (attempt + 1) if attempt < 5 else 0.01)
            except (OSError, ValueError):
                return None
        return None

    def find(self, key: str) -> RunRecord | None:
        """The complete run for a run key (stopped runs never count as the answer)."""
        with closing(self._connect()) as con:
            row = con.execute(
                "SELECT run_id FROM runs WHERE key = ? AND status = 'complete' ORDER BY created DESC LIMIT 1",
                (key,),
            ).fetchone()
        return self.get(row[0]) if row else None

    def list_runs(self, limit: int | None = None, *, viewer: str | None = None) -> list[dict[str, Any]]:
        """Summaries of stored runs, newest first.

        With ``viewer`` (a session or user id), only the runs it may see: every
        run on shared data (bundled datasets, the teacher's folders), and runs on
        uploads it made. None lists every run (the CLI, a teacher).
        """
        sql = "SELECT summary FROM runs ORDER BY created DESC"
        params: tuple = ()
        if viewer is not None:
            sql = (
                "SELECT summary FROM runs WHERE upload IS NULL OR upload IN "
                "(SELECT upload FROM upload_owners WHERE owner = ?) ORDER BY created DESC"
            )
            params = (viewer,)
        if limit:
            sql += " LIMIT ?"
            params = (*params, limit)
        with closing(self._connect()) as con:
            return [json.loads(r[0]) for r in con.execute(sql, params).fetchall()]

    def delete(self, run_id: str) -> bool:
        with closing(self._connect()) as con, con:
            n = con.execute("DELETE FROM runs WHERE run_id = ?", (run_id,)).rowcount
        shutil.rmtree(self.runs_dir / run_id, ignore_errors=True)
        return bool(n)

    def model_path(self, run_id: str) -> Path:
        return self.runs_dir / run_id / "model.keras"

    def load_model(self, run_id: str):
        """The run's best-epoch model (a file this store wrote)."""
        path = self.model_path(run_id)
        if not path.exists():
            raise FileNotFoundError(f"Run {run_id} has no saved model at {path}.")
        import keras

        return keras.models.load_model(path, compile=False)

    def load_arrays(self, run_id: str) -> dict[str, np.ndarray]:
        path = self.runs_dir / run_id / "arrays.npz"
        if not path.exists():
            return {}
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}

    # -- derived data of one run, kept in its folder ------------------------
    def _run_cache_path(self, run_id: str, kind: str, key: str) -> Path:
        safe = "".join(ch for ch in kind if ch.isalnum() or ch in "-_")
        name = "".join(ch for ch in key if ch.isalnum() or ch in "-_")
        if not safe or not name:
            raise ValueError(f"Not a name for a run's derived file: {kind!r}/{key!r}")
        return self.runs_dir / run_id / safe / f"{name}.npz"

    def run_cache_get(self, run_id: str, kind: str, key: str) -> dict[str, np.ndarray] | None:
        """Arrays kept in the run's own folder under ``kind``/``key`` (:meth:`run_cache_put`), or None."""
        path = self._run_cache_path(run_id, kind, key)
        if not path.exists():
            return None
        try:
            with np.load(path, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        except (OSError, ValueError):
            return None  # unreadable: a miss, rewritten next time

    def run_cache_put(self, run_id: str, kind: str, key: str, arrays: dict[str, np.ndarray]) -> Path | None:
        """Keep arrays derived from one run in its folder (atomic: a file in tmp/, then a rename).

        They go with the run: :meth:`delete` removes them, and a run stored again under the same id starts
        without them. Nothing is written (None) by a read-only store, or when the run's folder is gone.
        """
        path = self._run_cache_path(run_id, kind, key)
        if self.readonly or not (path.parent.parent / "record.json").exists():
            return None
        tmp = self.tmp_dir / f"runcache-{uuid.uuid4().hex}.npz"
        try:
            path.parent.mkdir(exist_ok=True)  # never the run's folder itself: a deleted run is not made again
            with open(tmp, "wb") as fh:
                np.savez(fh, **arrays)
            os.replace(tmp, path)
        except FileNotFoundError:  # the run was deleted or replaced meanwhile
            tmp.unlink(missing_ok=True)
            return None
        return path

    # -- derived-data cache ----------------------------------------------
    def _cache_path(self, kind: str, key: str) -> Path:
        safe = "".join(ch for ch in kind if ch.isalnum() or ch in "-_")
        return self.cache_dir / safe / f"{key}.npz"

    def cache_get(self, kind: str, key: str) -> dict[str, np.ndarray] | None:
        path = self._cache_path(kind, key)
        if not path.exists():
            return None
        try:
            with np.load(path, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        except (OSError, ValueError):
            return None  # unreadable: treat as a miss, it will be rewritten

    def cache_put(self, kind: str, key: str, arrays: dict[str, np.ndarray]) -> Path:
        path = self._cache_path(kind, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.tmp_dir / f"cache-{uuid.uuid4().hex}.npz"
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
        os.replace(tmp, path)
        return path
