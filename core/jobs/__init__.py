"""Jobs: the training worker and its queue, executors (a child process per training, kept warm, or a Dask
cluster), the job table in the store, the queue's fair order, the class at a glance for the teacher (overview.py),
and estimates of time and memory before a training starts.

``python -m core.jobs FD`` is the training process itself (:mod:`core.jobs.__main__`). ``DaskExecutor`` is
imported on first use: ``distributed`` takes about a second to import and only a cluster needs it.
"""

from typing import Any

from core.jobs.child import run_task
from core.jobs.estimate import (
    Estimate,
    QueuedRun,
    budget_warning,
    calibrate,
    calibrate_in_background,
    calibrating,
    estimate_text,
    load_calibration,
    others_busy,
)
from core.jobs.executor import LocalExecutor, make_executor
from core.jobs.fairqueue import fair_order
from core.jobs.jobtable import STALE, JobTable
from core.jobs.overview import RunRow, by_student, counts_text, owner_name, run_rows
from core.jobs.process import (
    TrainingProcess,
    WarmPool,
    child_env,
    cores,
    death_message,
    run_child,
    stop_grace,
    threads_per_training,
)
from core.jobs.state import ACTIVE, CANCELLED, JobSnapshot, JobState
from core.jobs.worker import Job, NotYourJob, QueueFull, TrainingWorker, get_worker

__all__ = [
    "ACTIVE",
    "CANCELLED",
    "DaskExecutor",
    "Estimate",
    "Job",
    "JobSnapshot",
    "JobState",
    "JobTable",
    "LocalExecutor",
    "NotYourJob",
    "QueueFull",
    "QueuedRun",
    "RunRow",
    "STALE",
    "TrainingProcess",
    "TrainingWorker",
    "WarmPool",
    "budget_warning",
    "by_student",
    "calibrate",
    "calibrate_in_background",
    "calibrating",
    "child_env",
    "cores",
    "counts_text",
    "death_message",
    "estimate_text",
    "fair_order",
    "get_worker",
    "load_calibration",
    "make_executor",
    "others_busy",
    "owner_name",
    "run_child",
    "run_rows",
    "run_task",
    "stop_grace",
    "threads_per_training",
]


def __getattr__(name: str) -> Any:
    if name == "DaskExecutor":
        from core.jobs.dask_executor import DaskExecutor

        return DaskExecutor
    raise AttributeError(f"module 'core.jobs' has no attribute {name!r}")
