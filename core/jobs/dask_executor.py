"""Training on a Dask cluster that someone started with Dask's own commands.

CNN Lab never starts remote processes: ``dask scheduler`` runs somewhere,
``dask worker tcp://host:8786`` runs on each machine (with CNN Lab's
requirements installed and its code importable: see the README), and the
server is pointed at the scheduler with ``CNNLAB_SCHEDULER`` (or the CLI's
``--scheduler``).

A training ships what a worker needs: the dataset's decoded images, labels
and class names (scattered to the cluster once per training), the two
configs and the run key. On the Dask worker it runs in a child process
(:func:`core.jobs.process.run_child`), because Dask workers live long and
TensorFlow's per-model memory must not pile up in them. The child sends back
the artifacts (the record, the ``.keras`` file's bytes, the test arrays) and
the server writes them into its own run store: the server's store is the
only store, and a run trained on the cluster has the same key and record as
one trained here.

Each Dask worker keeps one training process warm per worker thread
(:func:`worker_pool`, started by the probe when the server connects, refilled
after each training), as the server does for local trainings.

Progress events come back through a ``distributed.Queue`` (per epoch, and
batches at most twice a second); a stop goes out through a
``distributed.Event``, which the task passes on to its child (killed after
the grace period, as locally).
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
import uuid
from typing import Any

import distributed
from distributed.core import rpc

from core.base.config import ConfigError
from core.base.environment import DEFAULT_SCHEDULER_TIMEOUT, settings
from core.jobs.child import artifacts_from_wire, make_task
from core.jobs.process import ChildOutcome, WarmPool, run_child, threads_per_training
from core.jobs.state import CANCELLED, JobState
from core.training.experiment import save_run
from core.training.fit import ProgressEvent
from core.training.lr_find import lr_find_from_arrays, save_lr_find

BATCH_EVERY = 0.5  # seconds between two batch events sent through the scheduler


class SchedulerError(ConfigError):
    """The Dask scheduler cannot be reached, or its workers cannot run CNN Lab."""


_pool: WarmPool | None = None  # this Dask worker's warm training processes (in the Dask worker's own process)
_pool_lock = threading.Lock()


def worker_pool(nthreads: int | None = None) -> WarmPool:
    """This Dask worker's pool: one training process kept warm per worker thread (``nthreads``; unless
    ``CNNLAB_WARM=0`` there).

    Made on first use (the probe when the server connects, else the first
    training); its processes end with the Dask worker (their sockets close).
    """
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = WarmPool()
            if settings().warm and nthreads:
                _pool.keep(nthreads, threads_per_training(nthreads))
        return _pool


def probe(dask_worker: distributed.Worker) -> str:
    """Runs on each Dask worker when the server connects (``client.run`` passes the worker): can it import
    CNN Lab's training code? Then its training processes start warming up."""
    import core.jobs.child  # noqa: F401  (the import is the test)

    worker_pool(dask_worker.state.nthreads)
    return "ok"


def train_on_worker(
    task: dict[str, Any], dataset: dict[str, Any], stop_name: str, events_name: str, grace: float | None
) -> dict[str, Any]:
    """A Dask task: train ``task`` in a child process on this worker; returns a ChildOutcome as a dict."""
    remote_stop = distributed.Event(stop_name)
    if remote_stop.is_set():
        cancelled = ChildOutcome(state=JobState.STOPPED, error=CANCELLED)
        return dataclasses.asdict(cancelled)
    events = distributed.Queue(events_name)
    stop, done = threading.Event(), threading.Event()

    def watch() -> None:
        while not done.is_set():
            if remote_stop.wait(timeout=0.5):
                stop.set()
                return

    threading.Thread(target=watch, name="cnnlab-dask-stop", daemon=True).start()
    last = 0.0

    def relay(ev: ProgressEvent) -> None:
        nonlocal last
        now = time.monotonic()
        if ev.kind != "batch" or now - last >= BATCH_EVERY or ev.batch == ev.batches:
            last = now
            events.put(dataclasses.asdict(ev))

    nthreads = distributed.get_worker().state.nthreads  # trainings this Dask worker runs at once
    pool = worker_pool(nthreads)
    try:
        out = run_child(
            {**task, "dataset": dataset},
            threads=threads_per_training(nthreads),
            stop=stop,
            grace=grace,
            on_event=relay,
            pool=pool,
        )
    finally:
        done.set()
        pool.done()  # the thread is free: a fresh process warms up behind this one
    return dataclasses.asdict(out)


async def _scheduler_identity(address: str, timeout: float) -> None:
    """Ask ``address`` who it is, all within ``timeout`` seconds; raise unless a Dask scheduler answers.

    Done before a ``distributed.Client`` exists: a Client that fails half-way
    blocks the exit for its own 20 s close timeout and prints "Exception ignored
    in Client.__del__", and one pointed at a port where something else listens
    (a web server) waits for its handshake for ever.
    """

    async def ask() -> dict:
        async with rpc(address, timeout=timeout) as remote:
            return await remote.identity()

    try:
        answer = await asyncio.wait_for(ask(), timeout)  # raises TimeoutError when nothing answers in time
    except (MemoryError, ValueError, TypeError, KeyError) as exc:  # its bytes read as a Dask message: nonsense
        raise SchedulerError("something answers there, but it is not a Dask scheduler") from exc
    if not isinstance(answer, dict) or answer.get("type") != "Scheduler":
        raise SchedulerError("something answers there, but it is not a Dask scheduler")


class DaskExecutor:
    """Trainings on a Dask cluster; their runs stored in the server's store (see the module docstring)."""

    name = "dask"

    def __init__(self, address: str, timeout: float = DEFAULT_SCHEDULER_TIMEOUT):
        """
        Args:
            address: the scheduler, ``tcp://host:8786`` (checked by :func:`core.base.environment.check_scheduler`).
            timeout: seconds to wait for it to answer (``CNNLAB_SCHEDULER_TIMEOUT``).
        """
        self.address = address
        self.timeout = timeout
        self._client: distributed.Client | None = None
        self._lock = threading.Lock()
        self._slots = (0.0, 1)

    def client(self) -> distributed.Client:
        """The connection to the scheduler, made on first use.

        Raises:
            SchedulerError: the scheduler cannot be reached, or a worker cannot import CNN Lab.
        """
        with self._lock:
            if self._client is None:
                try:
                    asyncio.run(_scheduler_identity(self.address, self.timeout))
                    client = distributed.Client(self.address, timeout=f"{self.timeout}s", set_as_default=False)
                except (OSError, TimeoutError, ValueError, SchedulerError) as exc:
                    why = str(exc) or f"no answer within {self.timeout:g} s, CNNLAB_SCHEDULER_TIMEOUT"
                    raise SchedulerError(
                        f"Cannot reach the Dask scheduler at {self.address} ({why}). Start it with `dask scheduler` "
                        "and `dask worker ADDRESS` on each machine, or unset CNNLAB_SCHEDULER / leave out "
                        "--scheduler to train on this machine."
                    ) from None
                try:
                    client.run(probe)
                except Exception as exc:  # noqa: BLE001 - any worker-side import problem
                    client.close()
                    raise SchedulerError(
                        f"A Dask worker of {self.address} cannot run CNN Lab ({type(exc).__name__}: {exc}). Install "
                        "requirements.txt on each worker machine and start `dask worker` with PYTHONPATH set to a "
                        "CNN Lab checkout of the same version."
                    ) from None
                self._client = client
            return self._client

    def slots(self) -> int:
        """The cluster's worker threads (looked up at most every 10 s; 1 while it cannot be reached)."""
        when, n = self._slots
        if time.monotonic() - when > 10:
            try:
                n = max(1, sum(self.client().nthreads().values()))
            except (SchedulerError, OSError):
                n = 1
            self._slots = (time.monotonic(), n)
        return n

    def prepare(self, parallel: int) -> None:
        """Nothing here: each Dask worker keeps its own training processes warm (:func:`worker_pool`)."""

    def run(self, training, *, store, parallel, stop, grace, on_event, on_started) -> ChildOutcome:
        del parallel, on_started  # the cluster's workers decide their threads; the pid is on another machine
        client = self.client()
        t = training
        task = make_task(
            t.dataset,
            t.model_cfg,
            t.train_cfg,
            t.key,
            t.source,
            home=None,
            time_budget=t.time_budget,
            lr_range=t.lr_range,
        )
        name = f"cnnlab-train-{t.key}-{uuid.uuid4().hex[:8]}"
        remote_stop = distributed.Event(name + "-stop", client=client)
        events = distributed.Queue(name + "-events", client=client)
        [dataset] = client.scatter([task.pop("dataset")], hash=False)  # one piece of data, not one per key
        fut = client.submit(train_on_worker, task, dataset, remote_stop.name, events.name, grace, key=name, pure=False)
        try:
            while True:
                if stop.is_set() and not remote_stop.is_set():
                    remote_stop.set()
                finished = fut.done()
                for ev in events.get(batch=True):  # what has come, without waiting (a timed-out get logs errors)
                    on_event(ProgressEvent(**ev))
                if finished:
                    break
                time.sleep(0.3)
            try:
                res = fut.result()
            except Exception as exc:  # noqa: BLE001 - a lost worker, a task error: the job fails, the server goes on
                return ChildOutcome(
                    state=JobState.FAILED,
                    error=(
                        f"The Dask cluster could not finish the training ({type(exc).__name__}: {exc}). Nothing from "
                        "this run was kept; earlier runs are safe."
                    ),
                )
        finally:
            fut.release()
            dataset.release()
            remote_stop.clear()
        out = ChildOutcome(**res)
        if out.result and "artifacts" in out.result:
            rec = save_run(store, artifacts_from_wire(out.result["artifacts"]))
            out.result = {"run_id": rec.run_id, "status": rec.status}
        elif out.result and "lr_find_arrays" in out.result:  # a range test: stored by the server too
            found = save_lr_find(store, lr_find_from_arrays(out.result["lr_find_arrays"]))
            out.result = {"lr_find": found.key, "status": "complete"}
        return out

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None
