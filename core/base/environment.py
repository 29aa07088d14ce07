"""Every ``CNNLAB_*`` setting, read from the environment and checked once, in one place.

A teacher or an administrator sets these in the environment of
``streamlit run app.py`` or ``python -m core``. Each entry point (the
dashboard, every CLI command, the worker, a training child) calls
:func:`settings` at start-up: a value that cannot be used is a
:class:`SettingError` naming the variable, the value received and what is
allowed (the CLI exits 2 with that line; the dashboard shows it on every page
and keeps serving). Nothing falls back silently.

The other modules take their values from the :class:`Settings` returned here
(``core.base.limits`` the limits and data roots, ``core.jobs.executor`` the worker
count and scheduler, ``core.jobs.process`` the stop grace, ``core.jobs.child`` the
niceness) instead of reading the environment themselves. The values are read
once per process and environment: :func:`settings` keeps the last result and
reads again only when a ``CNNLAB_*`` variable has changed (a test, or a
notebook that sets one), so a value never changes half-way through a job.

============================== ============================== ===================================
``CNNLAB_SERVING`` is not a setting: the dashboard sets it to ``1`` in its own
process (``core.base.limits.mark_serving``) so that its children confine paths too.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from core.base.errors import UserError

DEFAULT_MAX_PIXELS = 4096 * 4096
DEFAULT_MAX_PARAMS = 25_000_000
DEFAULT_MAX_ACTIVATION_MB = 2048
DEFAULT_MAX_UPLOAD_MB = 200
DEFAULT_UPLOAD_QUOTA_MB = 1000
DEFAULT_STOP_GRACE = 5.0
DEFAULT_TRAINING_NICE = 10
DEFAULT_SCHEDULER_TIMEOUT = 10.0
# As many as the largest single action on a page queues (a sweep of sweeps.MAX_POINTS = 25 points), so any one
# sweep fits; the fair queue (core.jobs.fairqueue), not the cap, keeps a long list from delaying the others.
DEFAULT_MAX_QUEUED_PER_STUDENT = 25
SERVING_ENV = "CNNLAB_SERVING"
SCHEMES = ("tcp", "tls", "inproc", "ucx", "ws", "wss")  # what distributed.Client connects to


class SettingError(UserError):
    """A ``CNNLAB_*`` environment variable whose value cannot be used."""


@dataclass(frozen=True)
class Settings:
    """The checked ``CNNLAB_*`` settings of this process (see the module docstring for each)."""

    home: Path
    data_roots: tuple[Path, ...]
    max_pixels: int
    max_params: int
    max_activation_mb: int
    max_upload_mb: int
    upload_quota_mb: int
    workers: int | None  # None: half the cores
    stop_grace: float
    training_nice: int
    warm: bool  # keep a training process ready per slot (core.jobs.process.WarmPool)
    measure_speed: bool  # measure the training speed in the background when the server starts (core.jobs.estimate)
    warm_at_start: bool  # start the training worker (and its warm process) when the server first serves a page
    scheduler: str | None  # None: train on this machine
    scheduler_timeout: float
    max_queued_per_student: int  # 0: no cap
    max_train_seconds: float  # 0: no limit
    serving: bool


def _bad(name: str, value: str, allowed: str) -> SettingError:
    fix = "" if name.startswith("--") else "; fix or unset it"  # a flag is fixed on the command line
    return SettingError(f"{name} must be {allowed}. Got {value!r} instead{fix}.")


def _whole(name: str, text: str, default: int, allowed: str, low: int = 1, high: int | None = None) -> int:
    clean = text.strip().replace("_", "").replace(",", "")
    if not clean:
        return default
    try:
        value = int(clean)
    except ValueError:
        raise _bad(name, text, allowed) from None
    if value < low or (high is not None and value > high):
        raise _bad(name, text, allowed)
    return value


def _seconds(name: str, text: str, default: float, allowed: str) -> float:
    if not text.strip():
        return default
    try:
        value = float(text)
    except ValueError:
        raise _bad(name, text, allowed) from None
    if not (0 < value < float("inf")):
        raise _bad(name, text, allowed)
    return value


def _budget(text: str) -> float:
    """``CNNLAB_MAX_TRAIN_SECONDS``: seconds above 0, or 0 (or nothing) for no limit."""
    name, allowed = "CNNLAB_MAX_TRAIN_SECONDS", "a number of seconds above 0, or 0 for no limit"
    if not text.strip():
        return 0.0
    try:
        value = float(text)
    except ValueError:
        raise _bad(name, text, allowed) from None
    if not (0 <= value < float("inf")):
        raise _bad(name, text, allowed)
    return value


def _pixels(text: str) -> int:
    allowed = "a pixel count or WIDTHxHEIGHT like 4096x4096"
    clean = text.strip().lower()
    if "x" in clean:
        w, _, h = clean.partition("x")
        if w.strip().isdigit() and h.strip().isdigit() and int(w) * int(h) > 0:
            return int(w) * int(h)
        raise _bad("CNNLAB_MAX_PIXELS", text, allowed)
    return _whole("CNNLAB_MAX_PIXELS", text, DEFAULT_MAX_PIXELS, allowed)


def _home(env: Mapping[str, str]) -> Path:
    text = env.get("CNNLAB_HOME", "")
    if text:
        if not text.strip():
            raise _bad("CNNLAB_HOME", text, "the path of a folder for the run store")
        return Path(text).expanduser()
    base = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cnnlab"


def _roots(text: str) -> tuple[Path, ...]:
    roots = []
    for part in text.split(os.pathsep):
        if not part.strip():
            continue
        p = Path(part.strip()).expanduser().resolve()
        if not p.is_dir():
            raise SettingError(
                f"CNNLAB_DATA_ROOTS must be existing folders separated by '{os.pathsep}'. Got {text!r}, in which "
                f"'{part.strip()}' is not a folder; fix or remove it."
            )
        roots.append(p)
    return tuple(roots)


def check_scheduler(text: str, name: str = "CNNLAB_SCHEDULER") -> str:
    """A Dask scheduler address as given (``tcp://host:8786``, or ``host:8786``), or :class:`SettingError`."""
    allowed = "a Dask scheduler's address like tcp://192.168.1.10:8786 (start one with `dask scheduler`)"
    address = text.strip()
    parts = urlsplit(address if "://" in address else "tcp://" + address)
    if parts.scheme == "inproc" and parts.netloc:
        return address
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme not in SCHEMES or not parts.hostname or port is None or " " in address or parts.path:
        raise _bad(name, text, allowed)
    return address


def check_workers(value: object, name: str = "--workers") -> int:
    """A number of trainings at once (1 or more), or :class:`SettingError` naming ``name``."""
    text = str(value)
    return _whole(name, text if text.strip() else "?", 0, "a whole number of trainings at once, 1 or more")


READERS: dict[str, Callable[[str], object]] = {
    "CNNLAB_MAX_PIXELS": _pixels,
    "CNNLAB_MAX_PARAMS": lambda t: _whole(
        "CNNLAB_MAX_PARAMS", t, DEFAULT_MAX_PARAMS, "a positive whole number (parameters of one network)"
    ),
    "CNNLAB_MAX_ACTIVATION_MB": lambda t: _whole(
        "CNNLAB_MAX_ACTIVATION_MB", t, DEFAULT_MAX_ACTIVATION_MB, "a positive whole number (megabytes of one batch)"
    ),
    "CNNLAB_MAX_UPLOAD_MB": lambda t: _whole(
        "CNNLAB_MAX_UPLOAD_MB", t, DEFAULT_MAX_UPLOAD_MB, "a positive whole number (megabytes of one upload)"
    ),
    "CNNLAB_UPLOAD_QUOTA_MB": lambda t: _whole(
        "CNNLAB_UPLOAD_QUOTA_MB",
        t,
        DEFAULT_UPLOAD_QUOTA_MB,
        "a positive whole number (megabytes of one student's uploads)",
    ),
    "CNNLAB_WORKERS": lambda t: check_workers(t, "CNNLAB_WORKERS") if t.strip() else None,
    "CNNLAB_STOP_GRACE": lambda t: _seconds("CNNLAB_STOP_GRACE", t, DEFAULT_STOP_GRACE, "a number of seconds above 0"),
    "CNNLAB_TRAINING_NICE": lambda t: _whole(
        "CNNLAB_TRAINING_NICE", t, DEFAULT_TRAINING_NICE, "a whole number from 0 (off) to 19", low=0, high=19
    ),
    "CNNLAB_WARM": lambda t: bool(
        _whole("CNNLAB_WARM", t, 1, "1 (keep a training process ready) or 0 (off)", low=0, high=1)
    ),
    "CNNLAB_MEASURE_SPEED": lambda t: bool(
        _whole("CNNLAB_MEASURE_SPEED", t, 1, "1 (measure when the server starts) or 0 (when asked)", low=0, high=1)
    ),
    "CNNLAB_WARM_AT_START": lambda t: bool(
        _whole(
            "CNNLAB_WARM_AT_START", t, 1, "1 (when the server starts) or 0 (when a page first trains)", low=0, high=1
        )
    ),
    "CNNLAB_SCHEDULER": lambda t: check_scheduler(t) if t.strip() else None,
    "CNNLAB_SCHEDULER_TIMEOUT": lambda t: _seconds(
        "CNNLAB_SCHEDULER_TIMEOUT", t, DEFAULT_SCHEDULER_TIMEOUT, "a number of seconds above 0"
    ),
    "CNNLAB_MAX_QUEUED_PER_STUDENT": lambda t: _whole(
        "CNNLAB_MAX_QUEUED_PER_STUDENT",
        t,
        DEFAULT_MAX_QUEUED_PER_STUDENT,
        "a whole number of trainings one student may have waiting, or 0 for no cap",
        low=0,
    ),
    "CNNLAB_MAX_TRAIN_SECONDS": _budget,
    "CNNLAB_DATA_ROOTS": _roots,
}
NAMES = ("CNNLAB_HOME", *READERS)  # every setting a user sets; the test over bad values walks this list


def read_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read and check every setting from ``env`` (default: ``os.environ``); the first bad one raises."""
    env = os.environ if env is None else env
    v = {name: read(env.get(name, "")) for name, read in READERS.items()}
    return Settings(
        home=_home(env),
        data_roots=v["CNNLAB_DATA_ROOTS"],
        max_pixels=v["CNNLAB_MAX_PIXELS"],
        max_params=v["CNNLAB_MAX_PARAMS"],
        max_activation_mb=v["CNNLAB_MAX_ACTIVATION_MB"],
        max_upload_mb=v["CNNLAB_MAX_UPLOAD_MB"],
        upload_quota_mb=v["CNNLAB_UPLOAD_QUOTA_MB"],
        workers=v["CNNLAB_WORKERS"],
        stop_grace=v["CNNLAB_STOP_GRACE"],
        training_nice=v["CNNLAB_TRAINING_NICE"],
        warm=v["CNNLAB_WARM"],
        measure_speed=v["CNNLAB_MEASURE_SPEED"],
        warm_at_start=v["CNNLAB_WARM_AT_START"],
        scheduler=v["CNNLAB_SCHEDULER"],
        scheduler_timeout=v["CNNLAB_SCHEDULER_TIMEOUT"],
        max_queued_per_student=v["CNNLAB_MAX_QUEUED_PER_STUDENT"],
        max_train_seconds=v["CNNLAB_MAX_TRAIN_SECONDS"],
        serving=env.get(SERVING_ENV) == "1",
    )


_lock = threading.Lock()
_cached: tuple[tuple, Settings] | None = None


def settings() -> Settings:
    """This process's settings, read and checked once (again only after a ``CNNLAB_*`` variable changed).

    Raises:
        SettingError: a variable's value cannot be used (the message names it, its value and what is allowed).
    """
    global _cached
    seen = tuple(os.environ.get(n) for n in (*NAMES, SERVING_ENV, "XDG_CACHE_HOME"))
    with _lock:
        if _cached is not None and _cached[0] == seen:
            return _cached[1]
    value = read_settings()
    with _lock:
        _cached = (seen, value)
    return value
