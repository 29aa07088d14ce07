"""The parent's side of a training process: start it, follow it, stop it, kill it, read how it ended.

:func:`run_child` starts ``python -m core.jobs.child`` (a fresh interpreter: never
a fork, TensorFlow is not fork-safe), hands it one task, relays its progress
events and returns a :class:`ChildOutcome`. The caller never imports
TensorFlow.

Why a subprocess and not ``multiprocessing``'s spawn context: the same code
runs inside Dask workers, which Dask starts as daemonic processes, and
``multiprocessing`` refuses to let a daemonic process have children; spawn
would also re-run the parent's main script (``streamlit``'s) in every child.
The messages are still ``multiprocessing.connection`` ones, over a private
socket pair (see :mod:`core.jobs.child`).

Stop: a stop request is passed on at once (the child stops after its current
batch and stores what it has, as in-process training does). A child still
training ``grace`` seconds later is killed, and the outcome says so. A child
that dies (killed, out of memory, a crash in native code) gives a failed
outcome naming the signal; the caller goes on.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from core.base.environment import settings
from core.jobs.state import JobState

ROOT = Path(__file__).resolve().parents[2]  # the checkout: the child imports core from here
FINISH_ALLOWANCE = 120.0  # once training has ended: time to evaluate and store before a stop kills it


@dataclass
class ChildOutcome:
    """How a training process ended.

    state: DONE, STOPPED (by a person; ``result`` is None when nothing was
    kept) or FAILED (a :class:`core.jobs.state.JobState`). ``result`` is the child's answer (:mod:`core.jobs.child`);
    ``error`` a sentence for the student, ``detail`` a traceback for the teacher.
    """

    state: JobState
    result: dict[str, Any] | None = None
    error: str | None = None
    detail: str | None = None
    pid: int | None = None
    forced: bool = False
    exitcode: int | None = None
    user_error: bool = False  # the error is the user's to fix (a UserError in the child): the CLI exits 2

    def __post_init__(self) -> None:
        self.state = JobState(self.state)  # also when it comes back from a Dask worker as a dict


def stop_grace() -> float:
    """Seconds a stopped training may take before it is killed: ``CNNLAB_STOP_GRACE``, default 5."""
    return settings().stop_grace


def cores() -> int:
    """CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def threads_per_training(parallel: int) -> int:
    """Threads each of ``parallel`` trainings should use so that together they do not oversubscribe the CPU."""
    return max(1, cores() // max(1, parallel))


def child_env(threads: int) -> dict[str, str]:
    env = dict(os.environ)
    for name in ("TF_NUM_INTRAOP_THREADS", "OMP_NUM_THREADS"):
        env[name] = str(threads)
    env["TF_NUM_INTEROP_THREADS"] = str(min(2, threads))
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    return env


def death_message(exitcode: int) -> str:
    """Why a training process ended without an answer, in words."""
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        why = {
            "SIGKILL": " (the system's out-of-memory killer, or someone, ended it)",
            "SIGSEGV": " (a crash inside TensorFlow)",
            "SIGABRT": " (TensorFlow aborted)",
        }.get(name, "")
        return (
            f"The training process was killed by {name} (signal {-exitcode}){why} before it finished; nothing "
            "from this run was kept. Earlier runs are safe and other trainings go on; try again, with a smaller "
            "model or batch if it happens again."
        )
    return (
        f"The training process ended unexpectedly (exit code {exitcode}) before it finished; nothing from this "
        "run was kept. Earlier runs are safe and other trainings go on."
    )


def run_child(
    task: dict[str, Any],
    *,
    threads: int = 1,
    stop: threading.Event | None = None,
    grace: float | None = None,
    on_event: Callable[[Any], None] | None = None,
    on_started: Callable[[int], None] | None = None,
    module: str = "core.jobs.child",
) -> ChildOutcome:
    """Train ``task`` in a new process and wait for it (see the module docstring).

    Args:
        task: :func:`core.jobs.child.make_task`'s dict.
        threads: TensorFlow's and OpenMP's threads in the child.
        stop: set it to stop the training (cooperatively, then by force after ``grace``).
        grace: seconds; None reads ``CNNLAB_STOP_GRACE``.
        on_event: called with each :class:`core.training.fit.ProgressEvent`.
        on_started: called with the child's pid as soon as it runs.
        module: the child's module (tests use a child that misbehaves).
    """
    grace = stop_grace() if grace is None else grace
    mine, theirs = socket.socketpair()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", module, str(theirs.fileno())],
            pass_fds=[theirs.fileno()],
            env=child_env(threads),
            stdin=subprocess.DEVNULL,
        )
    finally:
        theirs.close()
    conn = Connection(mine.detach())
    if on_started is not None:
        on_started(proc.pid)
    try:
        return _follow(proc, conn, task, stop, grace, on_event)
    finally:
        conn.close()
        if proc.poll() is None:  # an error in this thread: never leave a training behind
            proc.kill()
        proc.wait()


def _follow(proc: subprocess.Popen, conn: Connection, task, stop, grace: float, on_event) -> ChildOutcome:
    out = ChildOutcome(state=JobState.FAILED, pid=proc.pid)
    error: dict[str, Any] | None = None
    stopped_at: float | None = None
    finishing = False
    try:
        conn.send(("task", task))
    except OSError:
        pass  # it died at start: its exit code says how, below
    while True:
        if stop is not None and stop.is_set() and stopped_at is None:
            stopped_at = time.monotonic()
            try:
                conn.send(("stop", None))
            except OSError:
                pass
        if stopped_at is not None and proc.poll() is None:
            allowed = grace + (FINISH_ALLOWANCE if finishing else 0.0)
            if time.monotonic() - stopped_at > allowed:
                proc.kill()
                out.forced = True
        try:
            ready = conn.poll(0.1)
            if not ready:
                if proc.poll() is not None and not conn.poll(0.2):
                    break
                continue
            kind, payload = conn.recv()
        except (EOFError, OSError):
            break
        if kind == "progress":
            finishing = finishing or payload.kind == "end"
            if on_event is not None:
                on_event(payload)
        elif kind == "result":
            out.result = payload
        elif kind == "error":
            error = payload
    out.exitcode = proc.wait()
    if out.result is not None:
        out.state = JobState.STOPPED if out.result.get("status") == "stopped" else JobState.DONE
    elif out.forced:
        out.state = JobState.STOPPED
        out.error = (
            f"Stopped by force after {grace:g} s: the training did not stop by itself in time, so it was ended "
            "and nothing from this run was kept."
        )
    elif error is not None and error["kind"] == "nothing" and stopped_at is not None:
        out.state, out.error = (
            JobState.STOPPED,
            "Stopped before the first epoch ended: nothing was trained, nothing kept.",
        )
    elif error is not None and error["kind"] in ("user", "nothing"):
        out.error, out.user_error = error["message"], True
    elif error is not None:
        out.error = f"Training failed unexpectedly ({error['message']}). Earlier runs are safe."
        out.detail = error["detail"]
    else:
        out.error = death_message(out.exitcode)
    return out
