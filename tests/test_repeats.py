"""Repeats over seeds: the seeds' configs, the spread and mean curves, the seed-spread sentence, and `repeat`
through the worker."""

import json

import pytest
from tinydata import TINY_FLAGS, run_cli, write_tiny_dataset

from core.base.config import ConfigError, TrainConfig
from core.results.compare import settings_table
from core.results.repeats import difference_sentence, mean_curves, seed_configs, spread
from core.store.runstore import RunRecord, RunStore


def test_seed_configs_change_only_the_seed():
    cfgs = seed_configs(TrainConfig(seed=7, epochs=3), 4)
    assert [c.seed for c in cfgs] == [7, 8, 9, 10]
    assert {c.replace(seed=0) for c in cfgs} == {TrainConfig(seed=0, epochs=3)}
    for bad in (1, 11, 2.5, True):
        with pytest.raises(ConfigError, match="from 2 to 10"):
            seed_configs(TrainConfig(), bad)


def test_spread_and_mean_curves():
    s = spread([0.5, 0.7, None, 0.6])
    assert (s["mean"], s["min"], s["max"], s["n"]) == (pytest.approx(0.6), 0.5, 0.7, 3)
    assert s["std"] == pytest.approx(0.1)
    recs = [_rec([1.0, 0.5, 0.2]), _rec([0.8, 0.7])]
    c = mean_curves(recs)["val_loss"]
    assert c == {"mean": [pytest.approx(0.9), pytest.approx(0.6)], "min": [0.8, 0.5], "max": [1.0, 0.7]}


def _rec(val_loss, val_acc=None):
    n = len(val_loss)
    return RunRecord(
        run_id="r",
        key="k",
        status="complete",
        created=0,
        source="s",
        label="l",
        data={},
        model_config={},
        train_config={"seed": 1},
        layers={},
        history={"loss": val_loss, "val_loss": val_loss, "val_accuracy": val_acc or [0.5] * n},
        epoch_seconds=[1] * n,
        best_epoch=1,
        stopped_early=False,
        stopped_by_user=False,
        restored_epoch=None,
        phases=[],
        diagnosis={},
        test={},
        seconds=1.0,
        versions={},
    )


def _summary(values):
    return {"best_val_accuracy": spread(values)}


def test_difference_sentence_says_whether_the_seeds_explain_it():
    clear = difference_sentence(_summary([0.90, 0.92, 0.91]), _summary([0.70, 0.72, 0.71]), "Dropout", "Baseline")
    assert clear.startswith("Dropout scores 20.0% higher") and "the settings make the difference" in clear
    luck = difference_sentence(_summary([0.70, 0.80]), _summary([0.72, 0.78]), "A", "B")
    assert "may be luck" in luck and "up to 10.0%" in luck and luck.count(".") <= 4
    assert difference_sentence(_summary([0.5, 0.6]), _summary([0.8, 0.9]), "A", "B").startswith("B scores 30.0%")


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    root = tmp_path_factory.mktemp("repeats")
    return write_tiny_dataset(root / "data"), root / "home"


def test_repeat_trains_k_seeds_through_the_worker_that_differ_only_in_seed(home, capsys, monkeypatch):
    data, store_home = home
    monkeypatch.setenv("CNNLAB_HOME", str(store_home))
    code, out, err = run_cli(
        capsys, "repeat", "--data", str(data), "--seeds", "3", "--seed", "5", *TINY_FLAGS, "--workers", "2", "--json"
    )
    assert code == 0, err
    d = json.loads(out)
    assert d["seeds"] == [5, 6, 7] and d["stored"] == 0 and len({r["run_id"] for r in d["runs"]}) == 3
    store = RunStore(store_home)
    records = [store.get(r["run_id"]) for r in d["runs"]]
    assert [s["key"] for s in settings_table(records)] == ["train.seed"]  # the only difference
    vals = [r["best_val_accuracy"] for r in d["runs"]]
    assert d["best_val_accuracy"]["min"] == min(vals) and d["best_val_accuracy"]["max"] == max(vals)
    assert d["test_accuracy"]["n"] == 3 and set(d["curves"]) >= {"loss", "val_loss", "accuracy", "val_accuracy"}
    assert d["curves"]["val_accuracy"]["min"][0] == min(vals)  # one epoch: the band is the seeds' range
    code, out, err = run_cli(capsys, "repeat", "--data", str(data), "--seeds", "3", "--seed", "5", *TINY_FLAGS)
    assert code == 0 and "All 3 repeats were stored already: nothing was trained." in out
    code, _, err = run_cli(capsys, "repeat", "--data", str(data), "--seeds", "11", *TINY_FLAGS)
    assert code == 2 and "from 2 to 10" in err and err.count("\n") == 1
