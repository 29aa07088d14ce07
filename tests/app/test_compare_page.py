"""The Compare page (AppTest): runs picked and filtered, differences only, best-epoch numbers, overlaid
curves with each best epoch, repeats over seeds through the worker and the seed-spread sentence."""

import datetime
import time

import numpy as np
import pytest
from apphelpers import FAST, TINY, chart_specs, started_ids, texts

from ui.study import filter_runs

PAGE = "pages/compare.py"


@pytest.fixture
def two_runs(private_worker, data_dir):
    from core.training.experiment import run_experiment

    store = private_worker.store
    fast = FAST.replace(epochs=2)
    a = run_experiment(str(data_dir), TINY, fast, store=store)
    b = run_experiment(str(data_dir), TINY.replace(dropout=0.5), fast, store=store)
    return a, b


def test_no_runs_is_a_sentence(open_page, empty_home):
    at = open_page(PAGE)
    assert not at.exception and "No stored runs yet" in texts(at)


def test_two_runs_side_by_side(open_page, two_runs):
    a, b = two_runs
    at = open_page(PAGE)
    assert not at.exception, [e.value for e in at.exception]
    assert set(at.multiselect(key="compare.runs").value) == {a.run_id, b.run_id}
    settings = at.dataframe[0].value
    assert list(settings["Setting"]) == ["model.dropout"]  # exactly the differing key
    at.toggle(key="compare.diff").set_value(False).run()
    assert len(at.dataframe[0].value) > 30 and not at.exception
    metrics = at.dataframe[1].value
    by_run = {row["Run"].split(". ")[1]: row for _, row in metrics.iterrows()}
    for rec in (a, b):
        i = int(np.argmin(rec.history["val_loss"]))
        assert by_run[rec.run_id]["Val acc (best)"] == pytest.approx(rec.history["val_accuracy"][i])
        assert by_run[rec.run_id]["Best epoch"] == f"{i + 1} of 2"
    loss, acc = chart_specs(at)[:2]
    stars = [t for t in loss["data"] if t.get("marker", {}).get("symbol") == "star"]
    assert len(stars) == 2 and {s["x"][0] for s in stars} <= {1, 2}
    at.multiselect(key="compare.kinds").set_value(["cnn"]).run()
    assert not at.exception and set(at.multiselect(key="compare.runs").value) == {a.run_id, b.run_id}
    at.multiselect(key="compare.runs").set_value([]).run()
    assert not at.exception and "Pick runs above" in texts(at)


def test_each_run_s_calibration_error_and_temperature(open_page, two_runs, private_worker):
    from core.results.calibration import fit_temperature, reliability

    at = open_page(PAGE)
    assert not at.exception, [e.value for e in at.exception]
    table = next(d.value for d in at.dataframe if "Calibration error" in d.value.columns)
    by_run = {row["Run"].split(". ")[1]: row for _, row in table.iterrows()}
    for rec in two_runs:
        arrays = private_worker.store.load_arrays(rec.run_id)
        assert by_run[rec.run_id]["Calibration error"] == pytest.approx(
            reliability(arrays["y_true"], arrays["probs"]).ece
        )
        assert by_run[rec.run_id]["T"] == pytest.approx(fit_temperature(arrays["y_val"], arrays["val_probs"]))
        assert by_run[rec.run_id]["Test acc"] == pytest.approx(rec.test["accuracy"])
        assert f"{rec.run_id}: When the network says" in texts(at)


def test_runs_on_two_datasets_get_one_note_in_words_and_named_times(
    open_page, private_worker, data_dir, five_class_dir
):
    from core.training.experiment import run_experiment

    store = private_worker.store
    a = run_experiment(str(data_dir), TINY, FAST.replace(epochs=2), store=store)
    b = run_experiment(str(five_class_dir), TINY, FAST.replace(epochs=1), store=store)
    at = open_page(PAGE, **{"compare.runs": [a.run_id, b.run_id]})
    assert not at.exception, [e.value for e in at.exception]
    assert [w.value for w in at.warning] == [
        "These runs were trained and tested on different datasets (tiny, rocks), so their scores are not measured "
        "on the same images."
    ]
    metrics = at.dataframe[1].value
    by_run = {row["Run"].split(". ")[1]: row for _, row in metrics.iterrows()}
    for rec in (a, b):
        row = by_run[rec.run_id]
        assert row["s / epoch"] == pytest.approx(sum(rec.epoch_seconds) / len(rec.epoch_seconds))
        assert row["Set-up (s)"] == pytest.approx(rec.seconds - sum(rec.epoch_seconds))
        assert row["Total (s)"] == pytest.approx(rec.seconds)


def test_the_filters_keep_the_chosen_datasets_and_kinds():
    old, new = time.mktime((2025, 1, 1, 12, 0, 0, 0, 0, -1)), time.mktime((2026, 6, 1, 12, 0, 0, 0, 0, -1))
    runs = [
        {"run_id": "a", "source": "x", "model": "cnn", "created": old},
        {"run_id": "b", "source": "y", "model": "vgg16", "created": new},
        {"run_id": "c", "source": "y", "model": "cnn", "created": new},
    ]
    assert [r["run_id"] for r in filter_runs(runs, [], [])] == ["a", "b", "c"]
    assert [r["run_id"] for r in filter_runs(runs, ["y"], [])] == ["b", "c"]
    assert [r["run_id"] for r in filter_runs(runs, ["y"], ["cnn"])] == ["c"]
    assert [r["run_id"] for r in filter_runs(runs, [], [], datetime.date(2026, 1, 1))] == ["b", "c"]
    assert [r["run_id"] for r in filter_runs(runs, [], [], datetime.date(2026, 6, 1))] == ["b", "c"]
    assert [r["run_id"] for r in filter_runs(runs, [], [], datetime.date(2026, 6, 2))] == []


def test_repeat_over_seeds_and_the_sentence(open_page, two_runs, private_worker):
    a, b = two_runs
    at = open_page(PAGE)
    at.number_input(key="compare.seeds").set_value(2).run()
    for run_id in (a.run_id, b.run_id):
        at.selectbox(key="compare.target").set_value(run_id).run()
        at.button(key="compare.repeat").click().run()
        assert not at.exception, [e.value for e in at.exception]
    repeats = {r: started_ids(at, f"repeats:{r}") for r in (a.run_id, b.run_id)}
    assert all(len(v) == 2 for v in repeats.values())
    for ids in repeats.values():
        for job_id in ids:
            private_worker.wait(private_worker.get(job_id), timeout=300)
    seeds = {private_worker.get(j).train_cfg.seed for j in repeats[a.run_id]}
    assert seeds == {a.train_config["seed"], a.train_config["seed"] + 1}
    assert private_worker.get(repeats[a.run_id][0]).result.cached  # its own seed: the stored run
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    spread = next(d.value for d in at.dataframe if "Seeds" in d.value.columns)  # after the calibration table
    assert len(spread) == 4 and set(spread["Seeds"]) == {2}
    sentence = "\n".join(i.value for i in at.info)
    assert f"run {a.run_id}" in sentence or f"run {b.run_id}" in sentence
    assert "seeds" in sentence and ("may be luck" in sentence or "the settings make the difference" in sentence)


def test_repeat_over_seeds_from_the_train_page(open_page, data_dir, private_worker):
    at = open_page("pages/train.py", dataset=str(data_dir), model_cfg=TINY, train_cfg=FAST.replace(epochs=1))
    at.button(key="train.start").click().run()
    job = private_worker.jobs()[-1]
    private_worker.wait(job, timeout=300)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    at.number_input(key="train.seeds").set_value(2).run()
    at.button(key="train.repeat").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == "Compare runs"
    rec = job.result
    ids = started_ids(at, f"repeats:{rec.run_id}")
    assert len(ids) == 2 and at.multiselect(key="compare.runs").value == [rec.run_id]
    for job_id in ids:
        private_worker.wait(private_worker.get(job_id), timeout=300)
    at.switch_page("pages/compare.py").run()  # AppTest reruns the page it was switched to last; a browser stays
    assert not at.exception and at.title[0].value == "Compare runs"
    spread = at.dataframe[-1].value
    assert list(spread["Seeds"]) == [2, 2] and "Repeat a second run too" in texts(at)
