"""The class at a glance, for the teacher's page: every student's jobs grouped and ordered, and one row per
finished run with its test accuracy and its verdict in a few words.

Plain functions over :class:`~core.jobs.state.JobSnapshot` and stored :class:`~core.store.RunRecord` s (no
worker, no Streamlit), so the page only draws what these return.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from core.jobs.state import JobSnapshot, JobState
from core.results.diagnosis import diagnosis_of, in_few_words
from core.store.runstore import RunRecord
from core.store.students import owner_name

_ORDER = {JobState.RUNNING: 0, JobState.QUEUED: 1}  # then the ended ones, newest first


def _rank(snap: JobSnapshot) -> tuple:
    if snap.state == JobState.QUEUED:
        return (1, snap.position or 0)
    if snap.state == JobState.RUNNING:
        return (0, snap.started or 0.0)
    return (2, -(snap.finished or snap.submitted))


def by_student(snaps: Iterable[JobSnapshot]) -> dict[str | None, list[JobSnapshot]]:
    """The jobs grouped by owner: owners by name (no owner last), each one's jobs running first, then waiting in
    queue order (their fair-queue positions), then the ended ones, newest first."""
    groups: dict[str | None, list[JobSnapshot]] = {}
    for snap in snaps:
        groups.setdefault(snap.owner, []).append(snap)
    owners = sorted(groups, key=lambda o: (o is None, owner_name(o).lower()))
    return {o: sorted(groups[o], key=_rank) for o in owners}


def counts_text(snaps: Iterable[JobSnapshot]) -> str:
    """How a student's jobs stand, in a few words: "1 training, 2 waiting, 3 finished, 1 failed"."""
    snaps = list(snaps)
    parts = []
    for state, word in (
        (JobState.RUNNING, "training"),
        (JobState.QUEUED, "waiting"),
        (JobState.DONE, "finished"),
        (JobState.STOPPED, "stopped"),
        (JobState.FAILED, "failed"),
        (JobState.INTERRUPTED, "interrupted"),
    ):
        n = sum(1 for s in snaps if s.state == state)
        if n:
            parts.append(f"{n} {word}")
    return ", ".join(parts) or "no trainings"


@dataclass(frozen=True)
class RunRow:
    """A finished run in the class's table.

    Attributes:
        student: :func:`owner_name` of the job's owner.
        label: the run's label (its settings in words).
        test_accuracy: on the run's test images; None when the run has none.
        verdict: :func:`core.results.diagnosis.in_few_words`, or "" when the curves cannot be read.
        run_id: the stored run.
    """

    student: str
    label: str
    test_accuracy: float | None
    verdict: str
    run_id: str


def run_rows(groups: dict[str | None, list[JobSnapshot]], record: Callable[[str], RunRecord | None]) -> list[RunRow]:
    """One row per job of :func:`by_student` that ended with a stored run, in the same order (each run once
    per student). ``record(run_id)`` reads a stored run (the page's cached reader)."""
    rows = []
    for owner, snaps in groups.items():
        seen: set[str] = set()
        for snap in snaps:
            if not snap.state.ended_with_run or snap.run_id is None or snap.run_id in seen:
                continue
            rec = record(snap.run_id)
            if rec is None:
                continue
            seen.add(snap.run_id)
            diagnosis = diagnosis_of(rec)
            rows.append(
                RunRow(
                    student=owner_name(owner),
                    label=rec.label,
                    test_accuracy=rec.test.get("accuracy"),
                    verdict=in_few_words(diagnosis) if diagnosis is not None else "",
                    run_id=rec.run_id,
                )
            )
    return rows
