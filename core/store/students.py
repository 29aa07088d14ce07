"""Students known by name, for a classroom with a class password and no identity provider.

A student types their name with the class password (the dashboard's login form).
Their user id is the name, normalised (:func:`normalise_name`: case, composed
accents and extra spaces do not make another student): ``name:ada lovelace``
(a teacher's is ``teacher:ms stone``: no student becomes the teacher's user by typing that name).
It owns their uploads (and so the runs trained on them) and their jobs, as an
e-mail address does with the school's login. The same name typed on another
browser is the same student: with a class password the password is all that
protects a name, which is the trade-off of a classroom without accounts.

The browser keeps a signed **login token** (a cookie) so that a reload or a
new tab is the same student without typing again::

    v1.<name, base64url>.<role>.<issued>.<expires>.<signature, base64url>

The signature is HMAC-SHA256 over everything before it, keyed by
HMAC-SHA256(the server's secret, the role's password). So a token cannot be
made or changed without the secret (a name edited in the cookie breaks the
signature, checked with :func:`hmac.compare_digest`); a new class password ends
every student login, a new teacher password every teacher login; and the token
carries no password, nor does any file. The secret is ``[cnnlab]
login_secret`` in secrets.toml when set, else 32 random bytes made once in the
store's folder (``login.key``, mode 0600: :func:`login_secret`).

The roster (:class:`Students`) lives in the run store's SQLite: who logged in
when, when each last logged out (tokens issued before a log-out are refused:
logging out ends that name's saved logins everywhere), and the teacher's
renames (``old id -> new id``, applied whenever a token is read, so they survive
restarts). :meth:`Students.move` is a rename, or a merge when the new name is
already a student's: their uploads (and so the runs on them) go with them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import sqlite3
import time
import unicodedata
from collections.abc import Mapping
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from core.base.errors import UserError
from core.store.runstore import RunStore

__all__ = [
    "LOGIN_HOURS",
    "Login",
    "LoginRefused",
    "NameRefused",
    "Students",
    "issue_token",
    "login_secret",
    "name_of",
    "normalise_name",
    "read_token",
    "user_id_of",
]

NAME_MAX = 40  # characters of a normalised name
NAME_PUNCTUATION = " -'._"  # besides letters (any alphabet) and digits
PREFIX = "name:"  # a named student's user id starts with this
TEACHER_PREFIX = "teacher:"  # a teacher's: a student who types the teacher's name is not the teacher's user
ROLES = ("student", "teacher")
LOGIN_HOURS = 12.0  # a login lasts a class day; a student on a shared computer the next day types their name again
SECRET_FILE = "login.key"
_VERSION = "v1"

SCHEMA = """
CREATE TABLE IF NOT EXISTS students (
    id          TEXT PRIMARY KEY,
    first_seen  REAL NOT NULL,
    last_seen   REAL NOT NULL,
    logged_out  REAL
);
CREATE TABLE IF NOT EXISTS student_aliases (
    old    TEXT PRIMARY KEY,
    new    TEXT NOT NULL,
    moved  REAL NOT NULL
);
"""


class NameRefused(UserError):
    """A name typed at the login that cannot be a student's name."""


class LoginRefused(UserError):
    """A saved login (token) that is not accepted: changed, expired, logged out, or from other passwords."""


NO_OWNER = "Command line and notebooks"  # jobs submitted without an owner


def owner_name(owner: str | None) -> str:
    """A job owner's id as the teacher reads it: the login or the student's name (``user:ann@school.org`` ->
    ``ann@school.org``, ``name:ann`` -> ``ann``, ``teacher:ms stone`` -> ``ms stone (teacher)``), or
    "browser tab 3f2a9c" for a student who gave none (an anonymous tab's id, shortened)."""
    if owner is None:
        return NO_OWNER
    kind, _, rest = owner.partition(":")
    if kind in ("user", "name") and rest:
        return rest
    if kind == "teacher" and rest:
        return f"{rest} (teacher)"
    tab = rest if kind == "session" and rest else owner
    return f"browser tab {tab[:6]}"


def normalise_name(text: str) -> str:
    """The name a student is known by: NFKC, case-folded, spaces collapsed; letters, digits and `` -'._`` only.

    Raises:
        NameRefused: empty, longer than 40 characters, or with other characters (the message names them).
    """
    name = " ".join(unicodedata.normalize("NFKC", text).casefold().split())
    if not name:
        raise NameRefused("Enter your name: your work is kept under it.")
    if len(name) > NAME_MAX:
        raise NameRefused(f"A name has at most {NAME_MAX} characters; that one has {len(name)}. Shorten it.")
    odd = sorted({c for c in name if not (c.isalnum() or c in NAME_PUNCTUATION)})
    if odd:
        shown = " ".join(repr(c) for c in odd)
        raise NameRefused(f"A name may hold letters, digits, spaces and - ' . _ only; remove {shown}.")
    return name


def user_id_of(name: str, role: str = "student") -> str:
    """The user id of a (normalised) name: ``name:ada lovelace`` (a teacher's: ``teacher:ms stone``)."""
    return (TEACHER_PREFIX if role == "teacher" else PREFIX) + name


def name_of(user_id: str) -> str | None:
    """The name in a named student's (or teacher's) user id; None for any other id."""
    for prefix in (PREFIX, TEACHER_PREFIX):
        if user_id.startswith(prefix):
            return user_id.removeprefix(prefix)
    return None


@dataclass(frozen=True)
class Login:
    """What a valid token says: who, in which role, from when to when (seconds since the epoch)."""

    name: str
    role: str
    issued: int
    expires: int

    @property
    def user_id(self) -> str:
        return user_id_of(self.name, self.role)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _key(secret: bytes, role: str, password: str) -> bytes:
    """The signing key of a role: changes when the server's secret or that role's password changes."""
    return hmac.new(secret, f"cnnlab-login|{role}|{password}".encode(), hashlib.sha256).digest()


def _signature(body: str, secret: bytes, role: str, password: str) -> str:
    return _b64(hmac.new(_key(secret, role, password), body.encode(), hashlib.sha256).digest())


def issue_token(name: str, role: str, secret: bytes, password: str, *, now: float, hours: float = LOGIN_HOURS) -> str:
    """A signed token for ``name`` (normalised) in ``role``, valid for ``hours`` from ``now``.

    ``password`` is the role's password (the class or the teacher password): it
    keys the signature and is not in the token.
    """
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}. Received: role={role!r}")
    body = ".".join([_VERSION, _b64(normalise_name(name).encode()), role, str(int(now)), str(int(now + hours * 3600))])
    return f"{body}.{_signature(body, secret, role, password)}"


def read_token(token: str, secret: bytes, passwords: Mapping[str, str | None], *, now: float) -> Login:
    """The login a token holds, after checking its signature and its expiry.

    Args:
        token: the cookie's value.
        secret: the server's secret (:func:`login_secret`).
        passwords: each role's password as configured now (None: that role has no password any more).
        now: the time to check the expiry against.

    Raises:
        LoginRefused: the token was changed, is not a CNN Lab login, is for a role
            without a password now (or the password changed), or has expired.
    """
    changed = LoginRefused(
        "Your saved login is not valid on this server (it was changed, or the class password or the server changed): "
        "enter your name and the password again."
    )
    parts = token.split(".")
    if len(parts) != 6 or parts[0] != _VERSION or parts[2] not in ROLES:
        raise changed
    body, given = ".".join(parts[:5]), parts[5]
    password = passwords.get(parts[2])
    if not password or not hmac.compare_digest(given.encode(), _signature(body, secret, parts[2], password).encode()):
        raise changed
    try:  # signed by this server, so well formed; still, never trust a parse
        name, issued, expires = normalise_name(_unb64(parts[1]).decode()), int(parts[3]), int(parts[4])
    except (ValueError, UnicodeDecodeError):
        raise changed from None
    if now >= expires:
        when = time.strftime("%d %b %H:%M", time.localtime(expires))
        raise LoginRefused(f"Your saved login ended at {when} (a login lasts a class day): log in again.")
    return Login(name=name, role=parts[2], issued=issued, expires=expires)


def login_secret(home: str | Path, configured: str | None = None) -> bytes:
    """The server's secret for signing logins: ``configured`` (secrets.toml) if given, else the store's ``login.key``.

    The file is made once, with 32 random bytes, readable by the server's user
    only (0600; a wider mode found on it is narrowed). Kept in the store's
    folder, it survives restarts (logins stay valid) and goes with the store;
    deleting it ends every saved login.
    """
    if configured:
        if len(str(configured)) < 32:
            raise UserError(
                "login_secret in the [cnnlab] section of secrets.toml must be at least 32 characters (a random "
                f"string); it has {len(str(configured))}. Make a longer one, or remove it to let the server make one."
            )
        return str(configured).encode()
    path = Path(home) / SECRET_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        if path.stat().st_mode & 0o077:
            os.chmod(path, 0o600)
    else:
        with os.fdopen(fd, "wb") as fh:
            fh.write(secrets.token_bytes(32))
    data = path.read_bytes()
    if len(data) < 32:  # a half-written or emptied file: a weak key signs nothing
        raise UserError(f"The login secret {path} is damaged ({len(data)} bytes); delete it and restart the server.")
    return data


class Students:
    """The named students of a run store: when they logged in and out, and the teacher's renames and merges."""

    def __init__(self, store: RunStore):
        self.store = store
        if not store.readonly:
            with closing(store.connect()) as con, con:
                con.executescript(SCHEMA)

    def resolve(self, user_id: str) -> str:
        """The id a user id stands for now: its rename's (or merge's) target, else itself."""
        with closing(self.store.connect()) as con:
            row = con.execute("SELECT new FROM student_aliases WHERE old = ?", (user_id,)).fetchone()
        return row[0] if row else user_id

    def seen(self, user_id: str, now: float | None = None) -> None:
        """Note that ``user_id`` logged in (or came back with a saved login)."""
        now = time.time() if now is None else now
        with closing(self.store.connect()) as con, con:
            con.execute(
                "INSERT INTO students(id, first_seen, last_seen) VALUES (?, ?, ?) "
                "ON CONFLICT(id) DO UPDATE SET last_seen = excluded.last_seen",
                (user_id, now, now),
            )

    def log_out(self, user_id: str, now: float | None = None) -> None:
        """``user_id`` logged out: every token issued to them before now is refused (:meth:`check`)."""
        now = time.time() if now is None else now
        with closing(self.store.connect()) as con, con:
            con.execute(
                "INSERT INTO students(id, first_seen, last_seen, logged_out) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(id) DO UPDATE SET logged_out = excluded.logged_out",
                (user_id, now, now, now),
            )

    def check(self, login: Login) -> str:
        """The user id a valid token's login stands for now (renames applied).

        Raises:
            LoginRefused: the student logged out after this token was issued.
        """
        user_id = self.resolve(login.user_id)
        with closing(self.store.connect()) as con:
            rows = con.execute(
                "SELECT logged_out FROM students WHERE id IN (?, ?) AND logged_out IS NOT NULL",
                (login.user_id, user_id),
            ).fetchall()
        if any(login.issued < int(out) for (out,) in rows):
            raise LoginRefused("You logged out since this login was saved: enter your name and the password again.")
        return user_id

    def roster(self) -> list[dict[str, object]]:
        """The named students (not renamed away), by name: ``id``, ``name``, ``last_seen``, ``uploads``."""
        with closing(self.store.connect()) as con:
            rows = con.execute(
                "SELECT s.id, s.last_seen, (SELECT count(*) FROM upload_owners u WHERE u.owner = s.id) FROM students s "
                "WHERE s.id LIKE ? AND s.id NOT IN (SELECT old FROM student_aliases) ORDER BY s.id",
                (PREFIX + "%",),
            ).fetchall()
        return [{"id": i, "name": name_of(i), "last_seen": seen, "uploads": n} for i, seen, n in rows]

    def move(self, old: str, new: str, now: float | None = None) -> tuple[str, int]:
        """Rename ``old`` to ``new`` (a merge when ``new`` is already a student): their uploads, and so the
        runs on them, become the new id's, and a token for ``old`` reads as it from now on. ``new`` is itself
        followed to its current id (merging into an earlier name merges into whom it became), except when
        that is ``old``: renaming back to an earlier name. The jobs move with
        :meth:`core.jobs.TrainingWorker.move_owner`.

        Returns:
            ``(the id the work now belongs to, how many uploads moved)``.

        Raises:
            UserError: ``old`` and ``new`` are the same student.
        """
        target = self.resolve(new)
        if target == old:
            target = new  # back to an earlier name: the alias new -> old is undone below
        if target == old:
            raise UserError(f"'{name_of(new) or new}' is already that student's name: type another one.")
        new = target
        now = time.time() if now is None else now
        with closing(self.store.connect()) as con, con:
            moved = con.execute("SELECT count(*) FROM upload_owners WHERE owner = ?", (old,)).fetchone()[0]
            con.execute(
                "INSERT OR IGNORE INTO upload_owners(upload, owner, created, name) "
                "SELECT upload, ?, created, name FROM upload_owners WHERE owner = ?",
                (new, old),
            )
            con.execute("DELETE FROM upload_owners WHERE owner = ?", (old,))
            # One step from any old id to its current one: no chains, no cycles (a rename back undoes the alias).
            con.execute("UPDATE student_aliases SET new = ?, moved = ? WHERE new = ?", (new, now, old))
            con.execute("DELETE FROM student_aliases WHERE old = ?", (new,))
            con.execute("INSERT OR REPLACE INTO student_aliases(old, new, moved) VALUES (?, ?, ?)", (old, new, now))
            _merge_rows(con, old, new, now)
        return new, moved


def _merge_rows(con: sqlite3.Connection, old: str, new: str, now: float) -> None:
    """The roster row of ``new`` after a move: seen since the earlier of the two; ``old``'s row goes."""
    row = con.execute("SELECT first_seen, last_seen FROM students WHERE id = ?", (old,)).fetchone()
    first, last = row if row else (now, now)
    con.execute(
        "INSERT INTO students(id, first_seen, last_seen) VALUES (?, ?, ?) ON CONFLICT(id) DO UPDATE SET "
        "first_seen = min(first_seen, excluded.first_seen), last_seen = max(last_seen, excluded.last_seen)",
        (new, first, last),
    )
    con.execute("DELETE FROM students WHERE id = ?", (old,))
