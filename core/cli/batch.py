"""The CLI's batch commands train through the worker: each run in its own process, ``--workers`` at once,
here or on a Dask cluster (``--scheduler``); and ``jobs`` lists the job table.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from typing import TextIO

from core.base import ModelConfig, TrainConfig, UserError, check_workers, number, plural, print_table
from core.jobs import Job, JobState, JobTable, TrainingWorker, make_executor
from core.store import RunRecord, RunStore
from core.training import stop_reason


class TrainingFailed(RuntimeError):
    """A training ended without a run for a reason that is not the user's (a crash, a killed process)."""


def add_batch_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("where the trainings run")
    g.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="trainings at once, each in its own process (default: CNNLAB_WORKERS, else half the "
        "cores; with --scheduler, the cluster's worker threads)",
    )
    g.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="train on a Dask cluster, e.g. tcp://host:8786 (default: CNNLAB_SCHEDULER; none = here)",
    )


def make_worker(args: argparse.Namespace, store: RunStore) -> TrainingWorker:
    """A worker on ``store`` with the command's ``--workers``/``--scheduler`` (a bad one is the user's error)."""
    workers = None if args.workers is None else check_workers(args.workers)
    executor = make_executor(args.scheduler, lazy=True)  # a batch of stored runs starts no TensorFlow process
    if executor.name == "dask":
        executor.client()  # connect now: an unreachable scheduler is one line, before anything runs
    return TrainingWorker(store, workers=workers, executor=executor)


def train_all(
    worker: TrainingWorker,
    source: str,
    runs: Sequence[tuple[str, ModelConfig, TrainConfig]],
    stream: TextIO | None,
) -> list[RunRecord]:
    """Train (or fetch) ``runs`` = ``(title, model_cfg, train_cfg)`` through a worker; their records in order.

    Progress goes to ``stream`` (one line per epoch and per finished run; None: quiet).
    The first failure stops the others and raises: :class:`UserError` when the
    user can fix it (exit 2), :class:`TrainingFailed` otherwise. A run its time budget
    (``CNNLAB_MAX_TRAIN_SECONDS``) stopped is a run like the others, its line says why.
    The worker is closed at the end.
    """
    jobs: list[Job] = []
    try:
        jobs = [worker.submit(source, m, t) for _, m, t in runs]
        _follow(jobs, [title for title, _, _ in runs], stream)
        failed = next((j for j in jobs if j.state == JobState.FAILED), None)
        if failed is not None:
            raise (UserError if failed.user_error else TrainingFailed)(failed.error)
        stopped = next((j for j in jobs if j.result is None or not (j.state == JobState.DONE or _budget(j))), None)
        if stopped is not None:
            raise TrainingFailed(stopped.error or f"The run {stopped.label} was stopped before it finished.")
        return [j.result for j in jobs]
    finally:
        for j in jobs:  # Ctrl-C, or a failure: the rest stop (their processes end after the grace period)
            if j.active:
                worker.stop(j.id, admin=True)
        for j in jobs:
            worker.wait(j, timeout=300)
        worker.close()
        worker.executor.close()


def _follow(jobs: list[Job], titles: list[str], stream: TextIO | None) -> None:
    seen = [0] * len(jobs)
    ended = [False] * len(jobs)
    n = len(jobs)
    while True:
        for i, job in enumerate(jobs):
            snap = job.snapshot()
            history = snap.history
            for e in range(seen[i], len(history.get("loss", []))):
                if stream is not None and not snap.cached:
                    logs = " - ".join(f"{k}: {v[e]:.4f}" for k, v in history.items() if len(v) > e)
                    print(f"[{titles[i]}] Epoch {e + 1}/{snap.epochs} - {logs}", file=stream, flush=True)
            seen[i] = len(history.get("loss", []))
            if not job.active and not ended[i]:
                ended[i] = True
                if stream is not None:
                    rec = job.result
                    how = snap.error or ""
                    if rec is not None:
                        how = "stored run" if rec.cached else f"trained in {rec.seconds:.1f} s"
                        how = f"{plural(len(rec.history.get('loss', [])), 'epoch')}, {how}"
                        how += f" ({stop_reason(rec)})" if _budget(job) else ""
                    print(f"[{i + 1}/{n}] {titles[i]}: {how}", file=stream, flush=True)
        if all(ended) or any(j.state == JobState.FAILED for j in jobs):  # a failure: train_all stops the rest
            return
        time.sleep(0.2)


def _budget(job: Job) -> bool:
    """Whether the job's time budget stopped it (it has a run, stored as stopped, with the reason)."""
    return job.result is not None and stop_reason(job.result) is not None


JOB_COLUMNS = [
    ("id", "Job"),
    ("state", "State"),
    ("place", "Place"),
    ("epoch", "Epoch"),
    ("owner", "Owner"),
    ("label", "Run"),
    ("source", "Data"),
    ("note", "Note"),
]


def cmd_jobs(args: argparse.Namespace, store: RunStore) -> int:
    """Queued and running jobs of every server on this store, then the recent others (from the job table)."""
    rows = JobTable(store).rows(limit=args.limit)
    if args.json:
        print(json.dumps(rows))
        return 0
    if not rows:
        print("No training jobs yet: the dashboard, `lab` and `compare` add them here.")
        return 0
    cells = [
        {
            **r,
            "place": number(r["position"]),
            "epoch": f"{r['epoch']}/{r['epochs']}" if r["state"] == JobState.RUNNING else "-",
            "owner": (r["owner"] or "-")[:8],
            "source": r["source"].rsplit("/", 1)[-1],
            "note": (r["error"] or r["run_id"] or "")[:70],
        }
        for r in rows
    ]
    print_table(cells, JOB_COLUMNS, file=sys.stdout)
    return 0
