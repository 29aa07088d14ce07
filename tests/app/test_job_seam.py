"""The one job seam, from every page that trains (AppTest, a real worker): each page starts its jobs through
ui.jobs (found under the page's key, owned by the session), draws them with the one job panel while they
wait, and its stop button cancels this session's jobs only.

Someone else's long training holds every training slot first, so the pages' own jobs stay queued and
nothing of theirs trains: the test reads the queue, not a training.
"""

from __future__ import annotations

import pytest
from apphelpers import FAST, TINY, started_ids, texts

from core.base.config import TrainConfig
from core.jobs import CANCELLED, JobState

LONG = TrainConfig(epochs=300, batch_size=4, seed=99)


def _train(open_page, data_dir, rec):
    at = open_page("pages/train.py", dataset=str(data_dir), model_cfg=TINY, train_cfg=FAST.replace(seed=5))
    at.button(key="train.start").click().run()
    return at, "train", "train.cancel"


def _lab(open_page, data_dir, rec):
    at = open_page("pages/lab.py", dataset=str(data_dir), model_cfg=TINY)
    at.radio(key="lab.network").set_value("architecture").run()
    at.button_group(key="lab.variants").set_value(["baseline", "dropout"]).run()
    at.button(key="lab.start").click().run()
    return at, "lab", "lab.stop"


def _transfer(open_page, data_dir, rec):
    at = open_page("pages/transfer.py", dataset=str(data_dir))
    at.selectbox(key="transfer.weights").set_value("none").run()
    at.slider(key="transfer.input_size").set_value(32).run()
    at.button(key="transfer.start").click().run()
    return at, "transfer", "transfer.stop"


def _compare(open_page, data_dir, rec):
    at = open_page("pages/compare.py", **{"compare.runs": [rec.run_id]})
    at.number_input(key="compare.seeds").set_value(2).run()
    at.button(key="compare.repeat").click().run()
    return at, f"repeats:{rec.run_id}", f"compare.repeats.{rec.run_id}.stop"


def _sweep(open_page, data_dir, rec):
    at = open_page("pages/sweep.py", dataset=str(data_dir), model_cfg=TINY, train_cfg=FAST)
    at.text_input(key="sweep.first_values").set_value("0.1, 0.2").run()
    at.button(key="sweep.start").click().run()
    return at, "sweep", "sweep.stop"


PAGES = {"train": _train, "lab": _lab, "transfer": _transfer, "compare": _compare, "sweep": _sweep}


@pytest.mark.parametrize("page", list(PAGES))
def test_a_page_starts_through_ui_jobs_shows_the_queue_and_stops_only_its_own(
    open_page,
    data_dir,
    trained,
    private_worker,
    page,  # trained first: it is stored in the session's store
):
    w = private_worker
    w.store.save(trained)  # the run Compare repeats (its own seed comes back from the store)
    blockers = [
        w.submit(str(data_dir), TINY, LONG.replace(seed=99 + i), owner="someone-else") for i in range(w.workers)
    ]

    at, key, stop = PAGES[page](open_page, data_dir, trained)
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    jobs = [w.get(i) for i in started_ids(at, key)]
    assert jobs and all(j is not None for j in jobs)
    assert {j.owner for j in jobs} == {at.session_state["owner"]}  # this session's, through ui.jobs
    waiting = [j for j in jobs if j.state == JobState.QUEUED]
    assert waiting and all(j.state == JobState.QUEUED or j.result.cached for j in jobs)
    shown = texts(at) + "\n".join(p.proto.text for p in at.get("progress"))
    assert "queue" in shown or " done" in shown  # the panel: its place in the queue, or the counting bar

    at.button(key=stop).click().run()
    assert not at.exception, [e.value for e in at.exception]
    for j in waiting:
        assert j.state == JobState.STOPPED and j.error == CANCELLED and j.result is None
    assert all(b.active for b in blockers), [(b.state, b.error) for b in blockers]  # not this page's to stop


def test_a_page_looks_faster_only_while_its_one_training_starts_and_runs_its_first_epoch():
    import time

    from core.jobs import JobSnapshot
    from ui.jobs import POLL_SECONDS, STARTING_POLL_SECONDS, STARTING_WINDOW_SECONDS, poll_seconds

    now = time.time()

    def snap(state, fraction=0.0, started=None, position=None, submitted=now, epoch=0, history=None):
        return JobSnapshot(
            id="j",
            key="k",
            label="run",
            source="s",
            owner=None,
            state=state,
            fraction=fraction,
            started=started,
            position=position,
            submitted=submitted,
            epoch=epoch,
            history=history or {},
        )

    starting = snap(JobState.RUNNING, started=now)
    assert poll_seconds([starting]) == STARTING_POLL_SECONDS < POLL_SECONDS
    # The first batches are in: the same pace until the first epoch ends (a change of pace reruns the whole page,
    # which would show the first batch later), then once a second.
    assert poll_seconds([snap(JobState.RUNNING, fraction=0.01, started=now, epoch=1)]) == STARTING_POLL_SECONDS
    one_epoch = {"loss": [1.2]}
    assert (
        poll_seconds([snap(JobState.RUNNING, fraction=0.34, started=now, epoch=2, history=one_epoch)]) == POLL_SECONDS
    )
    # Just pressed, next in the queue: a warm process takes it at once, so the page looks as often as when started
    # (and changes no pace, which would rerun the whole page, when it starts).
    assert poll_seconds([snap(JobState.QUEUED, position=1)]) == STARTING_POLL_SECONDS
    assert poll_seconds([snap(JobState.QUEUED, position=3)]) == POLL_SECONDS  # waiting its turn behind others
    waited = snap(JobState.QUEUED, position=1, submitted=now - STARTING_WINDOW_SECONDS - 1)  # a busy slot ahead
    assert poll_seconds([waited]) == POLL_SECONDS
    assert poll_seconds([starting, snap(JobState.QUEUED, position=1)]) == POLL_SECONDS  # a sweep's page keeps its pace
    long_ago = snap(JobState.RUNNING, started=now - STARTING_WINDOW_SECONDS - 1)  # VGG16 extracting features
    assert poll_seconds([long_ago]) == POLL_SECONDS
    assert poll_seconds([snap(JobState.DONE, fraction=1.0, started=now)]) == POLL_SECONDS
    assert poll_seconds([starting], every=0.1) == 0.1  # never slower than the page asked for
