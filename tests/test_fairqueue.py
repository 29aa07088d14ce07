"""The fair queue: round robin by owner, from the rule alone and from a real worker's queue and dispatch."""

from dataclasses import dataclass

import pytest
from test_worker import TINY, wait_for

from core.base.config import TrainConfig
from core.base.environment import DEFAULT_MAX_QUEUED_PER_STUDENT
from core.jobs.fairqueue import fair_order
from core.jobs.state import JobState
from core.jobs.worker import QueueFull, TrainingWorker
from core.results.sweeps import MAX_POINTS

LONG = TrainConfig(epochs=300, batch_size=4)


@dataclass(eq=False)
class Waiting:
    owner: str | None
    name: str


def names(jobs):
    return [j.name for j in jobs]


def test_owners_take_turns_the_ones_never_started_first():
    # ann's sweep of 25 was submitted first; bob and carl one job each, later; ann's first job already started.
    waiting = [Waiting("ann", f"a{i}") for i in range(2, 26)] + [Waiting("bob", "b1"), Waiting("carl", "c1")]
    assert names(fair_order(waiting, {"ann": 1})) == ["b1", "c1", *[f"a{i}" for i in range(2, 26)]]


def test_round_robin_over_three_owners_with_long_lists():
    waiting = [Waiting("ann", f"a{i}") for i in range(1, 7)]
    waiting += [Waiting("bob", f"b{i}") for i in range(1, 4)]
    waiting += [Waiting(None, f"n{i}") for i in range(1, 3)]  # the command line: one owner among the others
    assert names(fair_order(waiting, {})) == ["a1", "b1", "n1", "a2", "b2", "n2", "a3", "b3", "a4", "a5", "a6"]
    # bob started last, ann before him, nobody without an owner yet: the never-started first, then ann, then bob
    assert names(fair_order(waiting, {"ann": 4, "bob": 7})) == [
        *["n1", "a1", "b1", "n2", "a2", "b2"],
        *["a3", "b3", "a4", "a5", "a6"],
    ]


def test_an_owner_keeps_their_own_order_and_nothing_is_lost():
    waiting = [Waiting(o, f"{o}{i}") for i in range(5) for o in ("x", "y", "z")]
    order = fair_order(waiting, {"z": 3, "x": 9})
    assert sorted(names(order)) == sorted(names(waiting)) and len(order) == len(waiting)
    for owner in ("x", "y", "z"):
        assert [j.name for j in order if j.owner == owner] == [f"{owner}{i}" for i in range(5)]
    assert names(order[:3]) == ["y0", "z0", "x0"]  # y never started; z's last start is older than x's


def test_the_default_cap_lets_one_whole_sweep_wait():
    assert DEFAULT_MAX_QUEUED_PER_STUDENT == MAX_POINTS


def test_the_worker_queues_three_owners_fairly_and_starts_them_in_that_order(tiny_folder, store):
    w = TrainingWorker(store, workers=1)
    src = str(tiny_folder)
    first = w.submit(src, TINY, LONG.replace(seed=100), owner="ann")  # ann's long training holds the only slot
    wait_for(lambda: first.state == JobState.RUNNING)
    short = TrainConfig(epochs=1, batch_size=8)
    ann = [w.submit(src, TINY, short.replace(seed=110 + i), owner="ann") for i in range(5)]  # her sweep, first
    bob = [w.submit(src, TINY, short.replace(seed=120 + i), owner="bob") for i in range(2)]
    carl = [w.submit(src, TINY, short.replace(seed=130 + i), owner="carl") for i in range(2)]

    fair = [bob[0], carl[0], ann[0], bob[1], carl[1], *ann[1:]]
    assert w.queued() == fair
    assert [j.snapshot().position for j in fair] == list(range(1, 10))
    assert [r["position"] for r in map(w.table.get, [j.id for j in fair])] == list(range(1, 10))  # the job table too
    assert w.ahead_of("dan") == [first, bob[0], carl[0]]  # a newcomer waits for the running one and two
    assert w.ahead_of("ann") == [first, *fair]  # ann's next job goes behind her own five

    assert w.stop(bob[1].id, by="bob")  # a cancel renumbers the queue
    assert [j.position for j in (bob[0], carl[0], ann[0], carl[1], ann[1])] == [1, 2, 3, 4, 5]

    for j in [*ann[1:], carl[1]]:  # keep three to watch the real dispatch order
        w.stop(j.id, by=j.owner)
    assert w.stop(first.id, by="ann")
    for j in (first, bob[0], carl[0], ann[0]):
        w.wait(j, timeout=240)
    started = sorted((bob[0], carl[0], ann[0]), key=lambda j: j.started)
    assert started == [bob[0], carl[0], ann[0]] and all(j.state == JobState.DONE for j in started)


def test_a_student_past_the_cap_is_refused_with_what_to_do(tiny_folder, store, monkeypatch):
    monkeypatch.setenv("CNNLAB_MAX_QUEUED_PER_STUDENT", "2")
    w = TrainingWorker(store, workers=1)
    src = str(tiny_folder)
    first = w.submit(src, TINY, LONG.replace(seed=200), owner="ann")
    wait_for(lambda: first.state == JobState.RUNNING)  # a running job does not count: it no longer waits
    a1, a2 = (w.submit(src, TINY, LONG.replace(seed=201 + i), owner="ann") for i in range(2))
    with pytest.raises(QueueFull) as refused:
        w.submit(src, TINY, LONG.replace(seed=203), owner="ann")
    assert str(refused.value) == (
        "You already have 2 trainings waiting in the queue, and each student may have at most 2 waiting. "
        "Wait until some of yours have started, or cancel the ones you no longer need."
    )
    assert w.submit(src, TINY, LONG.replace(seed=201), owner="ann") is a1  # already queued: joins, adds nothing
    teacher = w.submit(src, TINY, LONG.replace(seed=204), owner="teacher", admin=True)
    cli = w.submit(src, TINY, LONG.replace(seed=205))  # no owner: the command line, a notebook
    b1 = w.submit(src, TINY, LONG.replace(seed=206), owner="bob")
    with pytest.raises(QueueFull, match=r"You already have 1 training waiting in the queue \(this asks for 2 more\)"):
        w.submit_many(src, [(TINY, LONG.replace(seed=207)), (TINY, LONG.replace(seed=208))], owner="bob")
    assert [j.owner for j in w.queued()].count("bob") == 1  # all or nothing: the sweep queued none of its points
    assert w.stop(a2.id, by="ann")
    a3 = w.submit(src, TINY, LONG.replace(seed=203), owner="ann")  # room again after a cancel
    assert a3.state == JobState.QUEUED
    for j in (a1, a3, teacher, cli, b1):
        w.stop(j.id, admin=True)
    w.stop(first.id, by="ann")
    w.wait(first, timeout=60)
