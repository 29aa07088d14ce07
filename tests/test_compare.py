"""Scratch CNN vs VGG16 transfer: the two configs, the comparison rows, and the CLI end to end."""

import json

import pytest
from tinydata import write_tiny_dataset

import core.inside
import core.results.compare
from core.base.config import WEIGHT_SOURCE_LABELS, ModelConfig, TrainConfig
from core.base.errors import UserError
from core.models.layer_table import ArchitectureError
from core.results.compare import compare_configs, compare_runs, comparison_rows, run_metrics, run_settings
from core.store.runstore import RunRecord, UnknownRunError


def test_compare_configs_share_input_and_head():
    scratch, transfer = compare_configs(ModelConfig(channels=1, dense_units=64), TrainConfig(), "offline")
    assert scratch.model == "cnn" and transfer.model == "vgg16" and transfer.weights == "offline"
    for f in ("input_size", "channels", "num_classes", "dense_units", "dropout"):
        assert getattr(scratch, f) == getattr(transfer, f), f
    assert scratch.channels == 3 and scratch.dense_units == 64
    s2, _ = compare_configs(ModelConfig(model="vgg16", weights="none"), TrainConfig(), "none")
    assert s2 == ModelConfig()  # the course's CNN
    with pytest.raises(ArchitectureError, match="at least 32x32"):
        compare_configs(ModelConfig(input_size=28), TrainConfig(), "none")


def _record(run_id, **kw):
    base = dict(
        run_id=run_id,
        key=run_id,
        status="complete",
        created=0.0,
        source="s",
        label=run_id,
        data={"classes": ["a", "b"], "n_train": 8, "n_val": 2, "n_test": 2},
        model_config={},
        train_config={},
        layers={"trainable_params": 10, "non_trainable_params": 0},
        history={"loss": [1, 0.5, 0.4], "val_accuracy": [0.5, 0.9, 0.7]},
        epoch_seconds=[1, 1, 1],
        best_epoch=2,
        stopped_early=False,
        stopped_by_user=False,
        restored_epoch=None,
        phases=[],
        diagnosis={},
        test={
            "accuracy": 0.5,
            "macro": {"f1": 0.4},
            "per_class": [{"class": "a", "f1": 0.3}, {"class": "b", "f1": 0.5}],
        },
        seconds=12.5,
        versions={},
    )
    base.update(kw)
    return RunRecord(**base)


def test_comparison_rows():
    scratch = _record("s")
    transfer = _record(
        "t",
        layers={"trainable_params": 66_309, "non_trainable_params": 14_714_688},
        best_epoch=3,
        seconds=3.0,
        extra={"weights_label": "W", "fine_tune": {"trainable_params": 7_079_424}, "features": "cached"},
        test={
            "accuracy": 0.9,
            "macro": {"f1": 0.85},
            "per_class": [{"class": "a", "f1": 1.0}, {"class": "b", "f1": 0.7}],
        },
    )
    rows = comparison_rows(scratch, transfer)
    assert [r["model"] for r in rows] == ["scratch", "transfer"]
    s, t = rows
    assert (s["best_val_accuracy"], t["best_val_accuracy"]) == (0.9, 0.7)
    assert (t["trainable_params"], t["frozen_params"], t["fine_tuned_params"]) == (66_309, 14_714_688, 7_079_424)
    assert (s["seconds"], t["seconds"], s["test_accuracy"], t["test_accuracy"]) == (12.5, 3.0, 0.5, 0.9)
    assert s["f1"] == {"a": 0.3, "b": 0.5} and t["f1"] == {"a": 1.0, "b": 0.7} and t["macro_f1"] == 0.85
    assert t["weights"] == "W" and s["weights"] == "random init, all layers trained" and s["fine_tuned_params"] == 0
    assert (s["epochs_run"], t["features"], s["features"]) == (3, "cached", "")
    json.dumps(rows)
    other = _record("x", data={"classes": ["a", "b"], "n_train": 9, "n_val": 2, "n_test": 2})
    with pytest.raises(UserError, match="the number of training images is 8 for the scratch run and 9 for the"):
        comparison_rows(scratch, other)


def test_the_verdict_column_reads_the_curves_by_todays_table():
    # Stored with the old rules' "Underfitting" although the lowest validation loss is the last epoch's.
    history = {
        "loss": [1.2, 1.1, 1.0],
        "accuracy": [0.4, 0.45, 0.5],
        "val_loss": [1.1, 1.15, 0.9],
        "val_accuracy": [0.45, 0.4, 0.55],
    }  # two classes: 0.55 is barely above guessing (0.5)
    rec = _record("v", history=history, diagnosis={"verdict": "underfitting", "title": "Underfitting"})
    row = run_metrics(rec)
    assert (row["verdict"], row["verdict_title"]) == ("still_improving", "Still improving (underfitting so far)")
    assert run_metrics(_record("w"))["verdict"] is None  # a history without losses: no verdict, no error


# --------------------------------------------------------------------------- end to end, through the CLI


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_tiny_dataset(tmp_path_factory.mktemp("tc") / "tiny", per_class=8, size=32)


def test_compare_cli_runs_both_on_the_same_split(folder, capsys):
    from core.cli import main

    code = main(["compare", "--transfer", "--data", str(folder), "--weights", "none", "--epochs", "1", "--json"])
    out, _ = capsys.readouterr()
    assert code == 0
    d = json.loads(out)
    scratch, transfer = d["rows"]
    assert (scratch["model"], transfer["model"]) == ("scratch", "transfer")
    assert scratch["frozen_params"] == 0 and transfer["frozen_params"] == 14_714_688
    assert transfer["trainable_params"] == 128 * 513 + 3 * 129
    runs = d["runs"]
    assert runs["scratch"]["data"]["fingerprint"] == runs["transfer"]["data"]["fingerprint"]
    assert runs["scratch"]["data"]["n_test"] == runs["transfer"]["data"]["n_test"]
    assert runs["transfer"]["extra"]["weights_label"] == WEIGHT_SOURCE_LABELS["none"]

    code = main(["compare", "--transfer", "--data", str(folder), "--weights", "none", "--epochs", "1"])
    out, _ = capsys.readouterr()
    assert code == 0 and "F1 transfer" in out and "(stored)" in out  # both runs come back from the store

    # the same pair as stored runs, through the general comparison: the rows are the same numbers
    ids = [runs["scratch"]["run_id"], runs["transfer"]["run_id"]]
    code = main(["compare", *ids, "--json"])
    out, _ = capsys.readouterr()
    general = json.loads(out)
    assert code == 0 and [r["run_id"] for r in general["runs"]] == ids
    for row, old in zip(general["runs"], d["rows"], strict=True):
        for k in (
            "best_epoch",
            "best_val_accuracy",
            "test_accuracy",
            "macro_f1",
            "f1",
            "trainable_params",
            "frozen_params",
            "seconds",
        ):
            assert row[k] == old[k], k
    keys = {s["key"] for s in general["settings"]}
    assert "model.model" in keys and "train.seed" not in keys and not general["notes"]


def test_compare_cli_bad_weights_is_one_line(folder, capsys, tmp_path):
    from core.cli import main

    missing = tmp_path / "nope.h5"
    code = main(["compare", "--transfer", "--data", str(folder), "--weights", str(missing), "--epochs", "1"])
    _, err = capsys.readouterr()
    last = err.strip().splitlines()[-1]  # after the "transfer: ..." progress line
    assert code == 2 and "Traceback" not in err  # WeightsError is a UserError: the user's error, exit 2
    assert last.startswith("python -m core compare: The weights file") and str(missing) in last


# --------------------------------------------------------------------------- any runs


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """Two real runs on the same tiny data that differ in dropout and epochs, and one on other data."""
    from core.store.runstore import RunStore
    from core.training.experiment import run_experiment

    root = tmp_path_factory.mktemp("anyruns")
    data = write_tiny_dataset(root / "data")
    other = write_tiny_dataset(root / "other", classes=("a", "b", "c"), seed=3)
    store = RunStore(root / "home")
    cfg = ModelConfig(input_size=16, blocks=1, filters=4, dense_units=8, dropout=0.0)
    a = run_experiment(str(data), cfg, TrainConfig(epochs=3, batch_size=8), store=store)
    b = run_experiment(str(data), cfg.replace(dropout=0.25), TrainConfig(epochs=2, batch_size=8), store=store)
    c = run_experiment(str(other), cfg, TrainConfig(epochs=1, batch_size=8), store=store)
    return store, a, b, c


def test_differences_only_shows_exactly_the_differing_keys(two_runs):
    store, a, b, _ = two_runs
    result = compare_runs([a, b])
    assert [s["key"] for s in result["settings"]] == ["model.dropout", "train.epochs"]
    assert [s["values"] for s in result["settings"]] == [[0.0, 0.25], [3, 2]]
    assert result["notes"] == []
    every = compare_runs([a, b], all_keys=True)["settings"]
    assert {s["key"] for s in every} == set(run_settings(a)) and len(every) > 30
    assert {s["key"] for s in every if s["differs"]} == {"model.dropout", "train.epochs"}
    assert "train.augment.zoom" in set(run_settings(a)) and "model.filters" in set(run_settings(a))


def test_best_epoch_metrics_equal_the_history_at_argmin_val_loss(two_runs):
    import numpy as np

    _, a, b, _ = two_runs
    for rec in (a, b):
        row = run_metrics(rec)
        i = int(np.argmin(rec.history["val_loss"]))
        assert row["best_epoch"] == i + 1
        assert row["best_val_loss"] == rec.history["val_loss"][i]
        assert row["best_val_accuracy"] == rec.history["val_accuracy"][i]
        assert row["test_accuracy"] == rec.test["accuracy"] and row["macro_f1"] == rec.test["macro"]["f1"]
        assert set(row["f1"]) == set(rec.data["classes"])
        assert row["seconds_per_epoch"] == pytest.approx(sum(rec.epoch_seconds) / len(rec.history["loss"]))
        assert row["setup_seconds"] == pytest.approx(rec.seconds - sum(rec.epoch_seconds))
        assert row["trainable_params"] + row["frozen_params"] == rec.layers["total_params"]
    # a history where the last epoch is not the best: the row reads the best one
    h = {"loss": [1.0, 0.5, 0.2], "val_loss": [0.9, 0.4, 0.7], "val_accuracy": [0.3, 0.8, 0.6]}
    row = run_metrics(_record("h", history=h, best_epoch=3))
    assert (row["best_epoch"], row["best_val_loss"], row["best_val_accuracy"]) == (2, 0.4, 0.8)


def test_time_per_epoch_is_the_epochs_own_time_and_set_up_is_shown_apart():
    """Issue 17: 2 epochs of 3.4 s and 2.1 s in a 10.54 s run were shown as 5.27 s per epoch."""
    rec = _record("t", history={"loss": [1, 0.5], "val_loss": [0.9, 0.8]}, epoch_seconds=[3.4, 2.1], seconds=10.54)
    row = run_metrics(rec)
    assert row["seconds_per_epoch"] == pytest.approx(2.75) and row["setup_seconds"] == pytest.approx(5.04)
    assert row["seconds"] == 10.54
    old = run_metrics(_record("o", epoch_seconds=[]))  # epoch times that do not match the history: not guessed
    assert old["seconds_per_epoch"] is None and old["setup_seconds"] is None and old["seconds"] == 12.5


def test_runs_on_different_data_are_compared_with_one_note_in_words(two_runs):
    _, a, _, c = two_runs
    result = compare_runs([a, c])  # other dataset, other classes, other split sizes: one note says it
    assert "data.source" in {s["key"] for s in result["settings"]}
    assert result["notes"] == [
        "These runs were trained and tested on different datasets (data, other), so their "
        "scores are not measured on the same images."
    ]
    split = [_record("a"), _record("b", data={"classes": ["a", "b"], "n_train": 7, "n_val": 3, "n_test": 2})]
    assert compare_runs(split)["notes"] == [
        "These runs use the same dataset with different numbers of training / validation / test images "
        "(8 / 2 / 2, 7 / 3 / 2), so their scores are not measured on the same images."
    ]
    old = _record("c", data={"classes": ["a", "b"]})  # a record without the split sizes is not a difference
    assert compare_runs([_record("a"), old])["notes"] == []


def test_compare_cli_any_runs_and_an_unknown_id(two_runs, capsys, monkeypatch):
    from core.cli import main

    store, a, b, _ = two_runs
    monkeypatch.setenv("CNNLAB_HOME", str(store.home))
    code = main(["compare", a.run_id, b.run_id])
    out, err = capsys.readouterr()
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["Setting", a.run_id, b.run_id]
    assert [ln.split()[0] for ln in lines[1:3]] == ["model.dropout", "train.epochs"] and lines[3] == ""
    code = main(["compare", a.run_id, b.run_id, "--all-keys", "--json"])
    assert code == 0 and len(json.loads(capsys.readouterr().out)["settings"]) > 30
    code = main(["compare", a.run_id, "nosuchrun"])
    _, err = capsys.readouterr()
    assert code == 2 and err.count("\n") == 1 and "'nosuchrun'" in err and "Traceback" not in err
    # One message for an unknown run id, wherever it is looked up (compare, explain, the Inside page).
    assert "No stored run 'nosuchrun'. `python -m core runs` lists the stored runs." in err
    assert core.inside.UnknownRunError is core.results.compare.UnknownRunError is UnknownRunError
    code = main(["compare", a.run_id, "--transfer"])
    assert code == 2 and "not both" in capsys.readouterr().err


def test_compare_cli_gives_each_run_s_calibration_for_one_run_or_several(two_runs, capsys, monkeypatch):
    from core.cli import main
    from core.results.calibration import fit_temperature, reliability

    store, a, b, _ = two_runs
    monkeypatch.setenv("CNNLAB_HOME", str(store.home))
    code = main(["compare", a.run_id, b.run_id, "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    for row, rec in zip(json.loads(out)["runs"], (a, b), strict=True):
        arrays = store.load_arrays(rec.run_id)
        cal = row["calibration"]
        assert cal["ece"] == pytest.approx(reliability(arrays["y_true"], arrays["probs"]).ece)
        assert cal["temperature"] == pytest.approx(fit_temperature(arrays["y_val"], arrays["val_probs"]))
        assert cal["test_accuracy_after"] == cal["test_accuracy"] == pytest.approx(rec.test["accuracy"])
        assert sum(cal["reliability"]["counts"]) == rec.data["n_test"] and cal["n_val"] == rec.data["n_val"]
    code = main(["compare", a.run_id])  # one run: its calibration too, as a table and a sentence
    out, err = capsys.readouterr()
    assert code == 0, err
    head = next(ln for ln in out.splitlines() if ln.startswith("Run") and "ECE after T" in ln)
    assert head.split()[:3] == ["Run", "Mean", "confidence"]
    assert f"{a.run_id}: When the network says" in out and "leaves the test accuracy unchanged" in out


def test_compare_cli_says_why_a_run_without_test_predictions_has_no_calibration(two_runs, capsys, monkeypatch):
    from core.cli import main
    from core.store.runstore import RunRecord

    store, a, _, _ = two_runs
    bare = RunRecord.from_dict({**a.to_dict(), "run_id": "bare00000000001", "key": "bare00000000001"})
    store.save(bare)  # a record alone: no model, no arrays
    monkeypatch.setenv("CNNLAB_HOME", str(store.home))
    code = main(["compare", bare.run_id, "--json"])
    out, err = capsys.readouterr()
    cal = json.loads(out)["runs"][0]["calibration"]
    assert code == 0 and cal["ece"] is None and cal["temperature"] is None
    assert cal["note"] == "This run has no saved test predictions, so its calibration cannot be measured."
    code = main(["compare", bare.run_id])
    out, _ = capsys.readouterr()
    assert code == 0 and f"{bare.run_id}: This run has no saved test predictions" in out
