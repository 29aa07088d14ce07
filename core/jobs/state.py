"""What a training job is, as everyone outside the worker reads it: its state and a frozen snapshot.

:class:`JobState` is the one list of job states. Its values are the words the
job table in ``runs.db`` and ``python -m core jobs --json`` have always held
("queued", "running", "done", "failed", "stopped", "interrupted"), so stored
rows read back unchanged. :class:`JobSnapshot` is a consistent, frozen copy of
a job (:meth:`core.jobs.worker.Job.snapshot`) for a page, the CLI or a notebook
to draw from while the training goes on.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

CANCELLED = "Cancelled before it started: nothing was trained."


class JobState(StrEnum):
    """Where a job is. A ``StrEnum``: each member equals (and prints as) its value."""

    QUEUED = "queued"  # waiting for a free training slot
    RUNNING = "running"  # training in its process
    DONE = "done"  # its run is stored (trained, or found in the store)
    FAILED = "failed"  # ended without a run: ``error`` says why
    STOPPED = "stopped"  # by a person or its time budget: a run with what it learned, or nothing (cancelled, forced)
    INTERRUPTED = "interrupted"  # its server stopped while it waited or trained (core.jobs.jobtable)

    @property
    def active(self) -> bool:
        """Whether the job will still change (queued or running)."""
        return self in ACTIVE

    @property
    def ended_with_run(self) -> bool:
        """Whether the job may have produced a run (done, or stopped with what it learned)."""
        return self in (JobState.DONE, JobState.STOPPED)


ACTIVE = frozenset({JobState.QUEUED, JobState.RUNNING})


@dataclass(frozen=True)
class JobSnapshot:
    """A job as it was at one moment (safe to keep and read while the training goes on).

    Attributes:
        id, key, label, source, owner: which job, for which run, whose.
        state: a :class:`JobState`.
        position: 1 = next to start, while queued; else None.
        pid: the training process's, while running.
        epoch, epochs, batch, batches, phase: where the training is.
        fraction: progress in [0, 1] over all planned batches.
        history: the curves so far, ``{"loss": [...], "val_loss": [...], ...}``.
        run_id, cached: the run it produced (None when none), and whether it came from the store.
        error, detail: why it failed or stopped (for the student: a time budget says so), a traceback (for
            the teacher).
        submitted, started, finished: times (seconds since the epoch).
        stop_requested: someone asked it to stop.
        kind, lr_find_key: "train", or "lr-find" (a learning-rate range test) with its stored result's key
            (:func:`core.training.lr_find.stored_lr_find`) once it has one.
    """

    id: str
    key: str
    label: str
    source: str
    owner: str | None
    state: JobState
    position: int | None = None
    pid: int | None = None
    epoch: int = 0
    epochs: int = 0
    batch: int = 0
    batches: int = 0
    phase: str = ""
    fraction: float = 0.0
    history: dict[str, list[float]] = field(default_factory=dict)
    run_id: str | None = None
    cached: bool = False
    error: str | None = None
    detail: str | None = None
    submitted: float = 0.0
    started: float | None = None
    finished: float | None = None
    stop_requested: bool = False
    kind: str = "train"
    lr_find_key: str | None = None

    @property
    def active(self) -> bool:
        return self.state.active

    def as_dict(self) -> dict[str, Any]:
        """The snapshot as plain JSON-ready values (the state as its word)."""
        d = asdict(self)
        d["state"] = self.state.value
        return d
