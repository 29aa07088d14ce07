"""Where trainings run: one interface, two places.

- :class:`LocalExecutor` (the default, nothing to start): each training in a
  new process on this machine (:func:`core.jobs.process.run_child`), which stores
  its run straight into the server's run store. The worker asks it to keep one
  process warm per slot (:meth:`LocalExecutor.prepare`, ``CNNLAB_WARM``), so a
  job starts training without waiting for Python and TensorFlow to start.
- :class:`core.jobs.dask_executor.DaskExecutor`: each training on a Dask cluster
  that someone started with Dask's own commands (``CNNLAB_SCHEDULER`` or
  ``--scheduler``). The run comes back as artifacts and the server stores it:
  the server's store is the only store.

Both run one training per call, block until it ends, and return a
:class:`~core.jobs.process.ChildOutcome` whose ``result`` names the stored run;
the worker (:mod:`core.jobs.worker`) calls them from its own threads, at most
``slots()`` at a time unless told otherwise.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from core.base.config import ModelConfig, TrainConfig
from core.base.environment import check_scheduler, settings
from core.data import Dataset
from core.jobs.child import make_task
from core.jobs.process import CHILD_MODULE, ChildOutcome, WarmPool, cores, run_child, threads_per_training
from core.store.runstore import RunStore
from core.training.lr_find import LRRange


@dataclass(frozen=True)
class Training:
    """One training to run: :func:`core.training.experiment.resolve`'s dataset, configs and key."""

    dataset: Dataset
    model_cfg: ModelConfig
    train_cfg: TrainConfig
    key: str
    source: str
    time_budget: float | None = None  # seconds it may train (None: no limit), decided at submission
    lr_range: LRRange | None = None  # a learning-rate range test over this range rather than a training


class Executor(Protocol):
    """What the worker needs of a place to train."""

    name: str

    def slots(self) -> int:
        """How many trainings fit at once when nobody says (``CNNLAB_WORKERS``, ``--workers``)."""
        ...

    def prepare(self, parallel: int) -> None:
        """Get ready for ``parallel`` trainings at once (start warm training processes where that applies)."""
        ...

    def run(
        self,
        training: Training,
        *,
        store: RunStore,
        parallel: int,
        stop: threading.Event,
        grace: float | None,
        on_event: Callable[[Any], None],
        on_started: Callable[[int], None],
    ) -> ChildOutcome:
        """Train, store the run in ``store``, and say how it ended (never raises for a failed training)."""
        ...

    def close(self) -> None:
        """Let go of what :meth:`prepare` and :meth:`run` hold (warm processes, a cluster connection)."""
        ...


def default_workers() -> int:
    """Trainings at once on this machine: ``CNNLAB_WORKERS``, else half the cores (at least 1)."""
    return settings().workers or max(1, cores() // 2)


class LocalExecutor:
    """Each training in its own process on this machine (see :mod:`core.jobs.process`).

    A process is taken from :attr:`pool` when one is warm there (after :meth:`prepare`),
    else started for the training; either way it trains that one training only.
    """

    name = "local"

    def __init__(self, module: str = CHILD_MODULE, *, lazy: bool = False):
        self.module = module  # the training process's module (tests put one that misbehaves here)
        self.lazy = lazy  # start the warm processes at the first training, not at prepare (WarmPool.keep)
        self.pool = WarmPool()

    def slots(self) -> int:
        return default_workers()

    def prepare(self, parallel: int) -> None:
        """Keep one training process warm per slot from now on (unless ``CNNLAB_WARM=0``; with ``lazy``, from
        the first training on)."""
        if settings().warm:
            self.pool.keep(parallel, threads_per_training(parallel), self.module, lazy=self.lazy)

    def run(self, training, *, store, parallel, stop, grace, on_event, on_started) -> ChildOutcome:
        t = training
        task = make_task(
            t.dataset,
            t.model_cfg,
            t.train_cfg,
            t.key,
            t.source,
            home=str(store.home),
            time_budget=t.time_budget,
            lr_range=t.lr_range,
        )
        try:
            return run_child(
                task,
                threads=threads_per_training(parallel),
                stop=stop,
                grace=grace,
                on_event=on_event,
                on_started=on_started,
                module=self.module,
                pool=self.pool,
            )
        finally:
            self.pool.done()  # the slot is free: a fresh process warms up for the next training

    def warm_ready(self) -> bool:
        """Whether a job submitted now would start in a warm process (read only, for the time estimate)."""
        return self.pool.ready_now()

    def close(self) -> None:
        """End the warm processes (a training under way goes on to its end)."""
        self.pool.close()


def scheduler_address(explicit: str | None = None) -> str | None:
    """The Dask scheduler to use: ``explicit`` (``--scheduler``), else ``CNNLAB_SCHEDULER``, else None (local).

    Raises:
        SettingError: the address is not one (checked before anything connects).
    """
    if explicit is not None:
        return check_scheduler(explicit, "--scheduler")
    return settings().scheduler


def make_executor(scheduler: str | None = None, *, lazy: bool = False) -> Executor:
    """The local executor, or a Dask one when a scheduler address is given or set in ``CNNLAB_SCHEDULER``.

    ``lazy``: the local executor warms no training process before the first training (the command line, whose
    trainings are all submitted at once, and may all be stored runs that need no process at all).
    """
    address = scheduler_address(scheduler)
    if address is None:
        return LocalExecutor(lazy=lazy)
    # distributed takes about a second to import and only a cluster needs it, so it is imported here.
    from core.jobs.dask_executor import DaskExecutor

    return DaskExecutor(address, timeout=settings().scheduler_timeout)
