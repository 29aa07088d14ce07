"""The fair queue, the per-student cap and the time budget as students read them on the Train page."""

from __future__ import annotations

from apphelpers import LONG, TINY, texts, wait_for
from calibrations import store_calibration


def test_a_newcomer_goes_before_a_long_list_and_the_cap_is_said_next_to_the_button(
    open_page, data_dir, one_slot, monkeypatch
):
    monkeypatch.setenv("CNNLAB_MAX_QUEUED_PER_STUDENT", "3")
    src = str(data_dir)
    running = one_slot.submit(src, TINY, LONG.replace(seed=70), owner="ann")
    wait_for(lambda: running.state == "running")
    anns = [one_slot.submit(src, TINY, LONG.replace(seed=71 + i), owner="ann") for i in range(3)]  # her cap

    bob = open_page("pages/train.py", owner="bob", dataset=src, model_cfg=TINY, train_cfg=LONG.replace(seed=80))
    bob.button(key="train.start").click().run()
    assert not bob.exception
    job = one_slot.jobs()[-1]
    assert job.owner == "bob" and job.position == 1 and [j.position for j in anns] == [2, 3, 4]
    assert any("number **1** in the queue" in i.value for i in bob.info)  # not number 4: ann's list waits
    assert bob.dataframe[0].value["place"].tolist() == ["–", "1", "2", "3", "4"]

    ann = open_page("pages/train.py", owner="ann", dataset=src, model_cfg=TINY, train_cfg=LONG.replace(seed=90))
    ann.button(key="train.start").click().run()
    assert not ann.exception
    assert [e.value for e in ann.error] == [
        "You already have 3 trainings waiting in the queue, and each student may have at most 3 waiting. "
        "Wait until some of yours have started, or cancel the ones you no longer need."
    ]
    assert not [j for j in one_slot.jobs() if j.train_cfg.seed == 90]  # nothing was queued


def test_a_training_stopped_by_its_time_budget_says_so_on_the_train_page(open_page, data_dir, one_slot, monkeypatch):
    from core.base.tables import plural

    monkeypatch.setenv("CNNLAB_MAX_TRAIN_SECONDS", "2")
    at = open_page("pages/train.py", dataset=str(data_dir), model_cfg=TINY, train_cfg=LONG.replace(seed=95))
    at.button(key="train.start").click().run()
    job = one_slot.jobs()[-1]
    one_slot.wait(job, timeout=180)
    at.run()
    assert not at.exception
    n = len(job.result.history["loss"])
    assert job.state == "stopped" and 1 <= n < 300
    said = f"Stopped: the time budget of 2 s per training was reached after {plural(n, 'epoch')}. The run keeps"
    assert any(w.value.startswith(said) for w in at.warning), texts(at)
    assert "Stopped by you" not in texts(at)


def test_diagnostics_says_a_run_was_stopped_by_its_time_budget_not_by_hand(
    open_page, data_dir, empty_home, monkeypatch
):
    from core.store.runstore import RunStore
    from core.training.experiment import run_experiment, stop_reason

    monkeypatch.setenv("CNNLAB_MAX_TRAIN_SECONDS", "2")
    rec = run_experiment(str(data_dir), TINY, LONG.replace(seed=96), store=RunStore(empty_home))
    assert rec.status == "stopped" and stop_reason(rec)
    at = open_page("pages/diagnostics.py", run_id=rec.run_id, dataset=str(data_dir))
    assert not at.exception
    assert stop_reason(rec) in texts(at) and "stopped by hand" not in texts(at)


def _stored_speed(home) -> None:
    """A calibration for both precisions (a made-up speed: what is tested is which trainings are counted)."""
    store_calibration(home, process_seconds=5.0, first_fit_seconds=1.0, finish_seconds=0.5)


def test_the_estimate_counts_the_trainings_the_fair_order_starts_first(open_page, data_dir, one_slot):
    _stored_speed(one_slot.store.home)
    src = str(data_dir)
    running = one_slot.submit(src, TINY, LONG.replace(seed=70), owner="ann")
    wait_for(lambda: running.state == "running")
    [one_slot.submit(src, TINY, LONG.replace(seed=71 + i), owner="ann") for i in range(2)]

    def line(owner: str) -> str:
        at = open_page("pages/train.py", owner=owner, dataset=src, model_cfg=TINY, train_cfg=LONG.replace(seed=99))
        assert not at.exception
        return next(c.value for c in at.caption if "on this server" in c.value)

    # Cat has had no turn: only Ann's running training is before her; Ann waits for her own two as well
    assert " for the 1 training before it, " in line("cat")
    assert " for the 3 trainings before it, " in line("ann")
