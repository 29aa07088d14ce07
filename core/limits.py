"""What a shared server allows: where data may be read from, and how large inputs and networks may be.

A teacher sets these in the environment of ``streamlit run app.py``; each is
read at call time, so a test (or a notebook) can change it with the
environment. Defaults fit a 2-core, 24 GB classroom server shared by about
thirty students.

========================== ============================== ==========================================
variable                   default                        what
========================== ============================== ==========================================
CNNLAB_DATA_ROOTS          (none: server folders off)     folders the dashboard may read datasets and
                                                          weights files from, separated by ``:``
CNNLAB_MAX_PIXELS          4096x4096 (16,777,216)         pixels of one dataset image, from its header
CNNLAB_MAX_PARAMS          25,000,000                     parameters of a network (weights, frozen too)
CNNLAB_MAX_ACTIVATION_MB   2048                           activation memory of one training batch
CNNLAB_MAX_UPLOAD_MB       200                            one uploaded file
========================== ============================== ==========================================

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
from collections.abc import Iterable
from pathlib import Path

from core.errors import UserError

SERVING_ENV = "CNNLAB_SERVING"
ROOTS_ENV = "CNNLAB_DATA_ROOTS"
DEFAULT_MAX_PIXELS = 4096 * 4096
DEFAULT_MAX_PARAMS = 25_000_000
DEFAULT_MAX_ACTIVATION_MB = 2048
DEFAULT_MAX_UPLOAD_MB = 200


class LimitError(UserError):
    """A limit setting (an environment variable) that cannot be read."""


class PathRefused(UserError):
    """A path outside the folders this server lets the dashboard read."""


def default_home() -> Path:
    """``$CNNLAB_HOME``, else the user's cache folder: never inside the source tree (the run store's home)."""
    env = os.environ.get("CNNLAB_HOME")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cnnlab"


def _int_env(name: str, default: int, what: str) -> int:
    text = os.environ.get(name, "").strip().replace("_", "").replace(",", "")
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise LimitError(f"{name} must be a positive whole number ({what}). Got {os.environ[name]!r} instead.")
    return value


def max_pixels() -> int:
    """Pixels one dataset image may have (``CNNLAB_MAX_PIXELS``: a count, or ``WIDTHxHEIGHT``)."""
    text = os.environ.get("CNNLAB_MAX_PIXELS", "").strip().lower()
    if "x" in text:
        w, _, h = text.partition("x")
        if w.strip().isdigit() and h.strip().isdigit() and int(w) * int(h) > 0:
            return int(w) * int(h)
        raise LimitError(f"CNNLAB_MAX_PIXELS must be a pixel count or WIDTHxHEIGHT like 4096x4096. Got {text!r}.")
    return _int_env("CNNLAB_MAX_PIXELS", DEFAULT_MAX_PIXELS, "pixels of one image, or WIDTHxHEIGHT")


def max_params() -> int:
    return _int_env("CNNLAB_MAX_PARAMS", DEFAULT_MAX_PARAMS, "parameters of one network")


def max_activation_bytes() -> int:
    return _int_env("CNNLAB_MAX_ACTIVATION_MB", DEFAULT_MAX_ACTIVATION_MB, "megabytes of one batch") << 20


def max_upload_bytes() -> int:
    return _int_env("CNNLAB_MAX_UPLOAD_MB", DEFAULT_MAX_UPLOAD_MB, "megabytes of one upload") << 20


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
    return os.environ.get(SERVING_ENV) == "1"


def mark_serving() -> None:
    """Confine data paths in this process and its children (the dashboard calls it; the CLI never does)."""
    os.environ[SERVING_ENV] = "1"


def data_roots() -> tuple[Path, ...]:
    """The folders named by ``CNNLAB_DATA_ROOTS`` (resolved; ones that do not exist are left out)."""
    roots = []
    for part in os.environ.get(ROOTS_ENV, "").split(os.pathsep):
        if part.strip():
            p = Path(part.strip()).expanduser().resolve()
            if p.is_dir():
                roots.append(p)
    return tuple(roots)


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


def uploads_dir() -> Path:
    """Where the dashboard keeps uploads (the run store's ``uploads/``), resolved."""
    return (default_home() / "uploads").resolve()


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
