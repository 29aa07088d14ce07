"""What a shared server allows: where data may be read from, and how large inputs and networks may be.

A teacher sets these in the environment of ``streamlit run app.py``
(``CNNLAB_DATA_ROOTS``, ``CNNLAB_MAX_PIXELS``, ``CNNLAB_MAX_PARAMS``,
``CNNLAB_MAX_ACTIVATION_MB``, ``CNNLAB_MAX_UPLOAD_MB``); they are read and
checked once, with every other setting, by :mod:`core.base.environment`, and this
module gives them their meaning: the one message for each limit. Defaults fit
a 2-core, 24 GB classroom server shared by about thirty students.

**Serving.** The dashboard marks its process as serving browsers
(:func:`mark_serving`, from app.py); from then on, in that process and in any
child it starts, a path read as data must resolve (links followed) inside
``CNNLAB_DATA_ROOTS``, the bundled sample data or the store's uploads. The CLI
and notebooks, run by the machine's own user, never set it and read any path.

Nothing here imports TensorFlow; :func:`resource_message` recognises its
out-of-memory error by name.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path

from core.base.environment import SERVING_ENV, SettingError, settings
from core.base.errors import UserError

LimitError = SettingError  # a limit setting that cannot be read (the older name)


class PathRefused(UserError):
    """A path outside the folders this server lets the dashboard read."""


def default_home() -> Path:
    """``$CNNLAB_HOME``, else the user's cache folder: never inside the source tree (the run store's home)."""
    return settings().home


def max_pixels() -> int:
    """Pixels one dataset image may have (``CNNLAB_MAX_PIXELS``: a count, or ``WIDTHxHEIGHT``)."""
    return settings().max_pixels


def max_params() -> int:
    return settings().max_params


def max_activation_bytes() -> int:
    return settings().max_activation_mb << 20


def max_upload_bytes() -> int:
    return settings().max_upload_mb << 20


def bytes_text(n: int) -> str:
    """``1.5 GiB``, ``200.0 MiB``, ``12 bytes``."""
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} bytes"


def upload_too_large(name: str, size: int) -> str | None:
    """The one message for an uploaded file over ``CNNLAB_MAX_UPLOAD_MB`` (None when it is within it)."""
    limit = max_upload_bytes()
    if size <= limit:
        return None
    return (
        f"The uploaded file '{name}' is {bytes_text(size)}, more than the {bytes_text(limit)} this server takes "
        "(CNNLAB_MAX_UPLOAD_MB). Zip fewer or smaller images: 64 x 64 pixel PNGs are plenty for this course."
    )


def too_many_pixels(width: int, height: int) -> str | None:
    """The one message for an image over the pixel limit (None when it is within it)."""
    limit = max_pixels()
    if width * height <= limit:
        return None
    side = int(limit**0.5)
    square = f" ({side} x {side})" if side * side == limit else ""
    return (
        f"the image is too large: {width} x {height} = {width * height:,} pixels, more than the {limit:,}{square} "
        "this app reads (CNNLAB_MAX_PIXELS); shrink it first, 64 x 64 pixels is plenty for this course"
    )


# --------------------------------------------------------------------------- where data may be read from


def serving() -> bool:
    """Whether this process serves browsers (the dashboard), so data paths are confined."""
    return settings().serving


def mark_serving() -> None:
    """Confine data paths in this process and its children (the dashboard calls it; the CLI never does)."""
    os.environ[SERVING_ENV] = "1"


def data_roots() -> tuple[Path, ...]:
    """The folders named by ``CNNLAB_DATA_ROOTS`` (resolved; checked to be folders when the settings are read)."""
    return settings().data_roots


def inside(path: str | Path, roots: Iterable[Path]) -> bool:
    """Whether ``path``, resolved with its links followed, is one of ``roots`` or inside one."""
    real = Path(os.path.realpath(path))
    return any(real == r or r in real.parents for r in roots)


def refusal(path: str | Path, what: str = "folder") -> PathRefused:
    """The one message for a path the dashboard may not read."""
    roots = data_roots()
    if not roots:
        return PathRefused(
            f"Reading a {what} on the server is turned off here, so '{path}' was not read. Use a bundled dataset "
            "or upload a zip; a teacher can allow server folders by starting the app with "
            "CNNLAB_DATA_ROOTS=/folder/one:/folder/two."
        )
    allowed = ", ".join(f"'{r}'" for r in roots)
    return PathRefused(
        f"'{path}' is not inside the folders this server shares ({allowed}), so it was not read "
        f"(links are followed to where they point). Choose a {what} inside one of them."
    )


def check_readable(path: str | Path, also: Iterable[Path] = (), what: str = "folder") -> None:
    """When serving, raise :class:`PathRefused` unless ``path`` resolves inside the data roots or ``also``."""
    if serving() and not inside(path, (*data_roots(), *also)):
        raise refusal(path, what)


class SpecialFile(UserError):
    """A path that is a device, a named pipe or a socket (or a folder where a file is needed, or the reverse)."""


def special_kind(path: str | Path) -> str | None:
    """``"a device"``, ``"a named pipe (FIFO)"`` or ``"a socket"`` for such a path (links followed), else None.

    Reading one could hang (a FIFO nobody writes to) or never end (``/dev/zero``),
    so it is looked at with ``stat`` only, never opened.
    """
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return None


def check_kind(path: str | Path, expected: str, *, file: bool = True, folder: bool = False) -> None:
    """Raise :class:`SpecialFile` unless ``path`` (when it exists) is a regular file / a folder, as allowed.

    Args:
        path: the path a user gave.
        expected: what it should have been, for the message ("a .zip or a folder of class folders").
        file, folder: which of the two the command reads.
    """
    kind = special_kind(path)
    if kind is None:
        if os.path.isdir(path) and not folder:
            kind = "a folder"
        elif os.path.isfile(path) and not file:
            kind = "a file"
    if kind is not None:
        raise SpecialFile(f"'{path}' is {kind}, not {expected}: nothing was read from it. Give the path of {expected}.")


def read_bounded(path: str | Path, limit: int, what: str) -> bytes:
    """A regular file's bytes, refusing one larger than ``limit`` (checked before and while reading)."""
    check_kind(path, what)
    with open(path, "rb") as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise SpecialFile(f"'{path}' is larger than the {bytes_text(limit)} {what} may have; nothing was used.")
    return data


def uploads_dir() -> Path:
    """Where the dashboard keeps uploads (the run store's ``uploads/``), resolved."""
    return (default_home() / "uploads").resolve()


def challenges_dir() -> Path:
    """Where each challenge's students' images are kept (the run store's ``challenges/``), resolved.

    Only the images students may train on are ever written here; a challenge's hidden test images stay
    where the teacher's data is, named only in the store's SQLite (:mod:`core.lab.challenge`).
    """
    return (default_home() / "challenges").resolve()


# --------------------------------------------------------------------------- out of memory


def resource_message(exc: BaseException) -> str | None:
    """One clear line for TensorFlow's ResourceExhaustedError or a MemoryError; None for anything else."""
    names = {t.__name__ for t in type(exc).__mro__}
    if "ResourceExhaustedError" in names or isinstance(exc, MemoryError):
        return (
            "The computer ran out of memory for this network (TensorFlow could not allocate its tensors). "
            "Use a smaller input size, fewer filters or dense units, or a smaller batch size; stored runs are safe."
        )
    return None
