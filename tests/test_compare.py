"""Scratch CNN vs VGG16 transfer: the two configs, the comparison rows, and the CLI end to end."""

import json

import pytest
from tinydata import write_tiny_dataset

from core.architecture import ArchitectureError
from core.compare import compare_configs, comparison_rows
from core.config import WEIGHT_SOURCE_LABELS, ModelConfig, TrainConfig
from core.errors import UserError
from core.store import RunRecord


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
    base = dict(run_id=run_id, key=run_id, status="complete", created=0.0, source="s", label=run_id,
                data={"classes": ["a", "b"], "n_train": 8, "n_val": 2, "n_test": 2}, model_config={},
                train_config={}, layers={"trainable_params": 10, "non_trainable_params": 0},
                history={"loss": [1, 0.5, 0.4], "val_accuracy": [0.5, 0.9, 0.7]}, epoch_seconds=[1, 1, 1],
                best_epoch=2, stopped_early=False, stopped_by_user=False, restored_epoch=None, phases=[],
                diagnosis={}, test={"accuracy": 0.5, "macro": {"f1": 0.4},
                                    "per_class": [{"class": "a", "f1": 0.3}, {"class": "b", "f1": 0.5}]},
                seconds=12.5, versions={})  # fmt: skip
    base.update(kw)
    return RunRecord(**base)


def test_comparison_rows():
    scratch = _record("s")
    transfer = _record(
        "t", layers={"trainable_params": 66_309, "non_trainable_params": 14_714_688}, best_epoch=3, seconds=3.0,
        extra={"weights_label": "W", "fine_tune": {"trainable_params": 7_079_424}, "features": "cached"},
        test={"accuracy": 0.9, "macro": {"f1": 0.85},
              "per_class": [{"class": "a", "f1": 1.0}, {"class": "b", "f1": 0.7}]},
    )  # fmt: skip
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
    with pytest.raises(UserError, match="n_train is 8 for the scratch run and 9 for the transfer run"):
        comparison_rows(scratch, other)


# --------------------------------------------------------------------------- end to end, through the CLI


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_tiny_dataset(tmp_path_factory.mktemp("tc") / "tiny", per_class=8, size=32)


def test_compare_cli_runs_both_on_the_same_split(folder, capsys):
    from core.cli import main

    code = main(["compare", "--data", str(folder), "--weights", "none", "--epochs", "1", "--json"])
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

    code = main(["compare", "--data", str(folder), "--weights", "none", "--epochs", "1"])
    out, _ = capsys.readouterr()
    assert code == 0 and "F1 transfer" in out and "(stored)" in out  # both runs come back from the store


def test_compare_cli_bad_weights_is_one_line(folder, capsys, tmp_path):
    from core.cli import main

    missing = tmp_path / "nope.h5"
    code = main(["compare", "--data", str(folder), "--weights", str(missing), "--epochs", "1"])
    _, err = capsys.readouterr()
    last = err.strip().splitlines()[-1]  # after the "transfer: ..." progress line
    assert code == 2 and "Traceback" not in err  # WeightsError is a UserError: the user's error, exit 2
    assert last.startswith("python -m core compare: The weights file") and str(missing) in last
