"""core.jobs.overview: the class at a glance (the teacher's page), and the verdict in a few words."""

from __future__ import annotations

import math

import pytest

from core.base.config import ModelConfig, TrainConfig
from core.jobs import JobSnapshot, JobState, by_student, counts_text, owner_name, run_rows
from core.results import diagnose, in_few_words


@pytest.fixture
def trained_record(tiny_folder, store):
    """A real tiny run, trained and stored."""
    from core.training.experiment import run_experiment

    cfg = ModelConfig(input_size=16, blocks=1, filters=4, dense_units=8, dropout=0.0)
    return run_experiment(str(tiny_folder), cfg, TrainConfig(epochs=2, batch_size=8), store=store)


def _snap(job_id: str, owner: str | None, state: JobState, **kw) -> JobSnapshot:
    return JobSnapshot(
        id=job_id, key=job_id, label=f"run {job_id}", source="/data/rocks", owner=owner, state=state, **kw
    )


def test_owner_names_are_the_login_name_or_a_short_tab_id():
    assert owner_name("user:ann@school.org") == "ann@school.org"
    assert owner_name("name:ann") == "ann" and owner_name("teacher:ms stone") == "ms stone (teacher)"
    assert owner_name("session:3f2a9c0011") == "browser tab 3f2a9c"
    assert owner_name("9b8e7d6c5b4a") == "browser tab 9b8e7d"  # a tab's own id (ui.state.owner)
    assert owner_name(None) == "Command line and notebooks"


def test_jobs_are_grouped_by_student_running_then_queue_order_then_newest_ended():
    snaps = [
        _snap("a1", "user:zoe", JobState.DONE, finished=10.0, run_id="r1"),
        _snap("a2", "user:zoe", JobState.QUEUED, position=3),
        _snap("b1", "user:ann", JobState.QUEUED, position=2),
        _snap("a3", "user:zoe", JobState.RUNNING, started=5.0),
        _snap("a4", "user:zoe", JobState.FAILED, finished=20.0),
        _snap("c1", None, JobState.QUEUED, position=1),
        _snap("a5", "user:zoe", JobState.QUEUED, position=1),
    ]
    groups = by_student(snaps)
    assert list(groups) == ["user:ann", "user:zoe", None]  # by name, owner-less last
    assert [s.id for s in groups["user:zoe"]] == ["a3", "a5", "a2", "a4", "a1"]
    assert counts_text(groups["user:zoe"]) == "1 training, 2 waiting, 1 finished, 1 failed"
    assert counts_text([]) == "no trainings"


def _history(val_acc: list[float], val_loss: list[float], acc: list[float], loss: list[float]) -> dict:
    return {"loss": loss, "accuracy": acc, "val_loss": val_loss, "val_accuracy": val_acc}


def test_the_verdict_in_a_few_words_names_runs_stuck_at_chance():
    k = 3
    flat = [math.log(k)] * 6
    stuck = diagnose(_history([0.33, 0.34, 0.35, 0.33, 0.36, 0.34], flat, [0.34] * 6, flat), num_classes=k)
    assert in_few_words(stuck) == "Stuck at chance"  # best 0.36 <= 1/3 + 10% of 2/3 = 0.40
    overfit = diagnose(
        _history(
            [0.42, 0.55, 0.64, 0.7, 0.69, 0.68, 0.66, 0.65],
            [1.05, 0.8, 0.62, 0.55, 0.6, 0.7, 0.82, 0.95],
            [0.45, 0.6, 0.72, 0.8, 0.87, 0.92, 0.95, 0.97],
            [1.0, 0.7, 0.5, 0.35, 0.25, 0.18, 0.12, 0.08],
        ),
        num_classes=k,
    )
    assert overfit.verdict == "overfitting" and in_few_words(overfit) == "Overfitting"
    # Just above the line is judged by its verdict, not called stuck.
    above = diagnose(_history([0.41] * 6, flat, [0.41] * 6, flat), num_classes=k)
    assert in_few_words(above) == above.title != "Stuck at chance"


def test_run_rows_read_each_finished_run_once_with_its_test_accuracy_and_verdict(trained_record):
    rec = trained_record
    snaps = [
        _snap("a1", "user:ann", JobState.DONE, run_id=rec.run_id, finished=3.0),
        _snap("a2", "user:ann", JobState.DONE, run_id=rec.run_id, finished=2.0, cached=True),  # the same run again
        _snap("a3", "user:ann", JobState.FAILED, finished=4.0),
        _snap("b1", "user:bob", JobState.RUNNING, started=1.0),
        _snap("b2", "user:bob", JobState.DONE, run_id="gone", finished=1.0),  # deleted since
    ]
    rows = run_rows(by_student(snaps), {rec.run_id: rec}.get)
    assert [(r.student, r.run_id) for r in rows] == [("ann", rec.run_id)]
    assert rows[0].test_accuracy == rec.test["accuracy"] and rows[0].label == rec.label
    from core.results import diagnosis_of

    assert rows[0].verdict == in_few_words(diagnosis_of(rec)) and rows[0].verdict
