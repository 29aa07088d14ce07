"""The parent's side of a training process: start it, follow it, stop it, kill it, read how it ended.

:class:`TrainingProcess` starts ``python -m core.jobs FD`` (a fresh interpreter:
never a fork, TensorFlow is not fork-safe; the program is :mod:`core.jobs.__main__`),
which warms up at once (TensorFlow imported, threads set) and waits for one
task; :meth:`TrainingProcess.run` hands it the task, relays its progress
events and returns a :class:`ChildOutcome`. :func:`run_child` does both, with a
process taken from a :class:`WarmPool` when it is given one: the worker keeps
one process warm per slot (``CNNLAB_WARM``), so a job starts training without
waiting for Python and TensorFlow to start. The caller never imports TensorFlow.

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
CHILD_MODULE = "core.jobs"  # python -m core.jobs FD: the training process (core/jobs/__main__.py)
FINISH_ALLOWANCE = 120.0
SETTING_PREFIXES = (
    "CNNLAB_",
    "TF_",
    "KERAS_",
    "OMP_",
    "PYTHON",
    "XDG_",
)  # what a training process reads  # once training has ended: time to evaluate and store before a stop kills it


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
    took_task: bool = False  # the process said it had the task: it may have trained (or crashed) on it

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


def _settings_in(env: dict[str, str]) -> dict[str, str]:
    """The variables of a child's environment that change how it trains (a warm one must have the current ones)."""
    return {k: v for k, v in env.items() if k.startswith(SETTING_PREFIXES) or k in ("HOME", "PATH")}


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


class TrainingProcess:
    """A started training process (``python -m MODULE FD``) and the parent's end of its socket.

    The process warms up by itself as soon as it starts (TensorFlow imported,
    threads set: :mod:`core.jobs.__main__`), says ``("ready", info)`` and waits
    for one task; :meth:`run` hands it the task and follows it to the end. A
    process trains one task only: TensorFlow's memory is never reused.
    """

    def __init__(self, *, threads: int = 1, module: str = CHILD_MODULE):
        self.threads = threads
        self.module = module
        self.env = child_env(threads)
        mine, theirs = socket.socketpair()
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", module, str(theirs.fileno())],
                pass_fds=[theirs.fileno()],
                env=self.env,
                stdin=subprocess.DEVNULL,
            )
        finally:
            theirs.close()
        self.conn = Connection(mine.detach())
        self.pid = self.proc.pid
        self._ready = False
        self._taken = False  # handed a task: from then on only run() reads its messages

    def alive(self) -> bool:
        return self.proc.poll() is None

    def ready(self, timeout: float = 0.0) -> bool:
        """Has it said it is warm and waiting for its task? (reads its first message; waits up to ``timeout``)"""
        if not self._ready and not self._taken and self.alive():
            try:
                if self.conn.poll(timeout):
                    self._ready = self.conn.recv()[0] == "ready"
            except (EOFError, OSError):
                return False
        return self._ready

    def fits(self, threads: int, module: str) -> bool:
        """Was it started the way a new one would be now (threads, module, the settings it inherits)?"""
        same = (self.threads, self.module, _settings_in(self.env)) == (
            threads,
            module,
            _settings_in(child_env(threads)),
        )
        return same and self.alive()

    def kill(self) -> None:
        """End it now (a warm process that will not be used; it has no task, so nothing is lost)."""
        self.conn.close()
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    def run(
        self,
        task: dict[str, Any],
        *,
        stop: threading.Event | None = None,
        grace: float | None = None,
        on_event: Callable[[Any], None] | None = None,
        on_started: Callable[[int], None] | None = None,
    ) -> ChildOutcome:
        """Hand it ``task`` and follow it to the end (see :func:`run_child` for the arguments)."""
        grace = stop_grace() if grace is None else grace
        self._taken = True
        if on_started is not None:
            on_started(self.pid)
        try:
            return _follow(self.proc, self.conn, task, stop, grace, on_event)
        finally:
            self.kill()  # an error in this thread: never leave a training behind


def run_child(
    task: dict[str, Any],
    *,
    threads: int = 1,
    stop: threading.Event | None = None,
    grace: float | None = None,
    on_event: Callable[[Any], None] | None = None,
    on_started: Callable[[int], None] | None = None,
    module: str = CHILD_MODULE,
    pool: WarmPool | None = None,
) -> ChildOutcome:
    """Train ``task`` in a process of its own and wait for it (see the module docstring).

    Args:
        task: :func:`core.jobs.child.make_task`'s dict.
        threads: TensorFlow's and OpenMP's threads in the child.
        stop: set it to stop the training (cooperatively, then by force after ``grace``).
        grace: seconds; None reads ``CNNLAB_STOP_GRACE``.
        on_event: called with each :class:`core.training.fit.ProgressEvent`.
        on_started: called with the child's pid as soon as it runs.
        module: the child's module (tests use a child that misbehaves).
        pool: take a warm process from it (a new one is started if it has none that fits); None: start one.
    """
    child = pool.take(threads, module) if pool is not None else TrainingProcess(threads=threads, module=module)
    was_warm = child.ready()
    out = child.run(task, stop=stop, grace=grace, on_event=on_event, on_started=on_started)
    if was_warm and not out.took_task and out.result is None and not (stop is not None and stop.is_set()):
        # It died while it waited (the out-of-memory killer, say), before it had the task: nothing of this
        # training ran, so it starts again in a fresh process instead of failing a job that never began.
        child = TrainingProcess(threads=threads, module=module)
        out = child.run(task, stop=stop, grace=grace, on_event=on_event, on_started=on_started)
    return out


class WarmPool:
    """Training processes started ahead of their task, so that a submitted job starts training at once.

    The worker asks for ``size`` (its slots) with :meth:`keep`; :meth:`take`
    hands out a warm process (never a used one: each trains one task) and
    :meth:`refill` starts a fresh one behind it once its slot is free again,
    so a new process never competes for the CPU with the training it
    replaces. A warm process that died, or was started with other threads or
    another environment than a new one would get now, is dropped and replaced.
    A warm process ends with :meth:`close`, or by itself when this process
    goes away (its socket closes).

    ``keep(lazy=True)`` starts none until the first :meth:`take`: for a worker
    that may never train (a command whose runs are all stored, a test that
    reads a queue), which then pays for no TensorFlow process; from the first
    training on it keeps them warm as usual.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle: list[TrainingProcess] = []
        self._size = 0
        self._threads = 1
        self._module = CHILD_MODULE
        self._busy = 0
        self._closed = False
        self._lazy = False  # keep(lazy=True) until the first take(): nothing started yet

    def keep(self, size: int, threads: int, module: str = CHILD_MODULE, *, lazy: bool = False) -> None:
        """Keep ``size`` processes ready (``threads`` each) from now on, and start the missing ones
        (``lazy``: only from the first :meth:`take` on)."""
        with self._lock:
            self._size, self._threads, self._module, self._closed = size, threads, module, False
            self._lazy = lazy
        self.refill()

    def take(self, threads: int, module: str = CHILD_MODULE) -> TrainingProcess:
        """A warm process for one training (a new one when none fits); the caller runs it, then calls :meth:`done`."""
        with self._lock:
            self._busy += 1
            self._lazy = False  # a training was asked for: from now on processes are kept warm
            stale = [p for p in self._idle if not p.fits(threads, module)]
            self._idle = [p for p in self._idle if p not in stale]
            ready = [p for p in self._idle if p.ready()]
            child = (ready or self._idle or [None])[0]  # a ready one first, else one still warming up
            if child is not None:
                self._idle.remove(child)
        for p in stale:
            p.kill()
        return child if child is not None else TrainingProcess(threads=threads, module=module)

    def done(self) -> None:
        """A training taken from the pool ended: its slot is free, so a fresh process warms up for it."""
        with self._lock:
            self._busy = max(0, self._busy - 1)
        self.refill()

    def refill(self) -> None:
        """Start processes until ``size`` are warm or training (none after :meth:`close`)."""
        with self._lock:
            if self._closed or self._lazy:
                return
            dead = [p for p in self._idle if not p.alive()]
            self._idle = [p for p in self._idle if p not in dead]
            for p in dead:
                p.kill()  # reaps it
            missing = self._size - self._busy - len(self._idle)
            for _ in range(missing):
                self._idle.append(TrainingProcess(threads=self._threads, module=self._module))

    def pids(self) -> list[int]:
        """The warm processes' pids (started, not yet given a task)."""
        with self._lock:
            return [p.pid for p in self._idle]

    def ready_now(self) -> bool:
        """Whether a warm process is ready for a task now (it does not wait; for the time estimate)."""
        with self._lock:
            return any(p.ready() for p in self._idle)

    def wait_ready(self, timeout: float) -> bool:
        """Wait until every warm process has said it is ready (True), or ``timeout`` seconds (False)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            idle = list(self._idle)
        for p in idle:
            while not p.ready(0.1):
                if not p.alive() or time.monotonic() > deadline:
                    return False
        return bool(idle)

    def close(self) -> None:
        """End the warm processes and start no more (trainings under way are not touched)."""
        with self._lock:
            self._closed, idle, self._idle = True, self._idle, []
        for p in idle:
            p.kill()


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
        if kind == "took":
            out.took_task = True
        elif kind == "progress":
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
