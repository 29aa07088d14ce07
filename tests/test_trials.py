"""Repeats over seeds and grid sweeps: the configs, the summaries, and the CLI through the worker."""

import json

import pytest
from tinydata import write_tiny_dataset

from core.base.config import AugmentConfig, ConfigError, ModelConfig, TrainConfig
from core.cli import main
from core.results.compare import settings_table
from core.results.repeats import difference_sentence, mean_curves, seed_configs, spread
from core.results.sweeps import SWEEPABLE, grid_from_json, parse_grid, sweep_points
from core.store.runstore import RunRecord, RunStore

TINY = [
    "--input-size",
    "16",
    "--blocks",
    "1",
    "--filters",
    "4",
    "--dense",
    "8",
    "--batch-size",
    "8",
    "--epochs",
    "1",
    "--precision",
    "float32",
]


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


def test_sweep_points_and_refusals():
    names, values, points = sweep_points(
        parse_grid(["dropout=0,0.25,0.5", "filters=16,32"]), ModelConfig(), TrainConfig()
    )
    assert names == ["dropout", "filters"] and values == [[0.0, 0.25, 0.5], [16, 32]] and len(points) == 6
    assert [(p.model_cfg.dropout, p.model_cfg.filters) for p in points][:3] == [(0.0, 16), (0.0, 32), (0.25, 16)]
    _, _, pts = sweep_points(
        grid_from_json('{"lr": [0.01, 0.001], "train.augment.zoom": [0, 0.1]}'), ModelConfig(), TrainConfig()
    )
    assert {(p.train_cfg.learning_rate, p.train_cfg.augment.zoom) for p in pts} == {
        (0.01, 0.0),
        (0.01, 0.1),
        (0.001, 0.0),
        (0.001, 0.1),
    }
    bad = [
        (["colour=1,2"], "Unknown setting 'colour'"),
        (["dropout=0,1.5"], "'dropout' parameter of ModelConfig must be"),
        (["filters=a,b"], "Bad value 'a' for filters"),
        (["dropout"], "NAME=V1,V2"),
        (["dropout=0,0"], "repeat"),
        (["dropout=0.1,0.2,0.3,0.4,0.45,0.5", "filters=1,2,3,4,5"], "30 points; at most 25"),
        (["dropout=0", "filters=4", "epochs=2"], "one or two settings"),
        # each setting once, whatever it is called: lr=0.01 must not be trained at 0.1 and shown as 0.01
        (["lr=0.1,0.01", "learning_rate=0.1"], "'learning_rate' is given twice, as 'lr' and as 'learning_rate'"),
        (["model.dropout=0,0.5", "dropout=0.25"], "given twice, as 'model.dropout' and as 'dropout'"),
        # the data decides the number of classes: every point would be the same run
        (["num_classes=2,7"], "'num_classes' cannot be swept: the number of classes is not a setting"),
        (["model.num_classes=3,4"], "cannot be swept"),
        # values that change nothing for this configuration: one run under two labels
        (["fill_mode=nearest,reflect"], "fill_mode=nearest and fill_mode=reflect would train exactly the same run"),
        (["monitor=val_loss,val_accuracy"], "monitor makes no difference"),
    ]
    for spec, needle in bad:
        with pytest.raises(ConfigError, match=needle.replace("(", r"\(")):
            sweep_points(parse_grid(spec), ModelConfig(), TrainConfig())
    for text in ("[1, 2]", "{not json", '{"dropout": []}'):
        with pytest.raises(ConfigError):
            grid_from_json(text)
    with pytest.raises(ConfigError, match="gives 'dropout' twice"):
        grid_from_json('{"dropout": [0], "dropout": [0.5]}')  # json.loads alone keeps the last one silently
    with pytest.raises(ConfigError, match="given twice, as 'lr' and as 'learning_rate'"):
        sweep_points(grid_from_json('{"lr": [0.1, 0.01], "learning_rate": [0.1]}'), ModelConfig(), TrainConfig())
    assert "num_classes" not in SWEEPABLE and "dropout" in SWEEPABLE  # what the Sweep page offers
    # VGG16 has no kernel size of its own; with course augmentation the fill mode does change the run
    with pytest.raises(ConfigError, match="kernel_size makes no difference"):
        sweep_points({"kernel_size": [3, 5]}, ModelConfig(model="vgg16"), TrainConfig())
    _, _, pts = sweep_points(
        {"fill_mode": ["nearest", "reflect"]}, ModelConfig(), TrainConfig(augment=AugmentConfig.course())
    )
    assert [p.train_cfg.augment.fill_mode for p in pts] == ["nearest", "reflect"]


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    root = tmp_path_factory.mktemp("trials")
    return write_tiny_dataset(root / "data"), root / "home"


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_repeat_trains_k_seeds_through_the_worker_that_differ_only_in_seed(home, capsys, monkeypatch):
    data, store_home = home
    monkeypatch.setenv("CNNLAB_HOME", str(store_home))
    code, out, err = run(
        capsys, "repeat", "--data", str(data), "--seeds", "3", "--seed", "5", *TINY, "--workers", "2", "--json"
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
    code, out, err = run(capsys, "repeat", "--data", str(data), "--seeds", "3", "--seed", "5", *TINY)
    assert code == 0 and "All 3 repeats were stored already: nothing was trained." in out
    code, _, err = run(capsys, "repeat", "--data", str(data), "--seeds", "11", *TINY)
    assert code == 2 and "from 2 to 10" in err and err.count("\n") == 1


def test_a_sweep_trains_only_new_points_and_a_repeated_sweep_nothing(home, capsys, monkeypatch):
    data, store_home = home
    monkeypatch.setenv("CNNLAB_HOME", str(store_home))
    code, out, err = run(capsys, "sweep", "--data", str(data), "--grid", "dropout=0,0.5", *TINY, "--json")
    assert code == 0, err
    first = json.loads(out)
    assert (first["trained"], first["stored"]) == (2, 0)
    n_runs = len(RunStore(store_home).list_runs())
    code, out, err = run(capsys, "sweep", "--data", str(data), "--grid", "dropout=0,0.25,0.5", *TINY, "--json")
    second = json.loads(out)
    assert code == 0 and (second["trained"], second["stored"]) == (1, 2)
    assert second["run_ids"][0][0] == first["run_ids"][0][0] and second["run_ids"][0][2] == first["run_ids"][0][1]
    assert len(RunStore(store_home).list_runs()) == n_runs + 1
    code, out, err = run(capsys, "sweep", "--data", str(data), "--grid", "dropout=0,0.25,0.5", *TINY)
    assert code == 0 and "All 3 points were stored already: nothing was trained." in out
    assert "stored run" in err and len(RunStore(store_home).list_runs()) == n_runs + 1
    row = out.splitlines()[1].split()
    assert row[0] == "val" and row[2:] == [f"{z:.3f}" for z in second["z"][0]]


def test_a_two_setting_sweep_is_a_grid(home, capsys, monkeypatch, tmp_path):
    data, store_home = home
    monkeypatch.setenv("CNNLAB_HOME", str(store_home))
    grid = tmp_path / "grid.json"
    grid.write_text('{"dropout": [0, 0.5], "dense_units": [4, 8]}')
    code, out, err = run(
        capsys, "sweep", "--data", str(data), "--grid-file", str(grid), *TINY, "--json", "--workers", "2"
    )
    assert code == 0, err
    d = json.loads(out)
    assert d["settings"] == ["dropout", "dense_units"] and len(d["z"]) == 2 and len(d["z"][0]) == 2
    store = RunStore(store_home)
    rec = store.get(d["run_ids"][1][0])
    assert (rec.model_config["dropout"], rec.model_config["dense_units"]) == (0.5, 4)
    assert d["z"][1][0] == d["runs"][2]["best_val_accuracy"]


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["--grid", "colour=1,2"], "Unknown setting 'colour'"),
        (["--grid", "dropout=0,2"], "'dropout' parameter"),
        (["--grid", "blocks=1,5"], "Block"),
        ([], "--grid NAME=V1,V2"),
        (["--grid", "lr=0.1,0.01", "--grid", "learning_rate=0.1"], "given twice, as 'lr' and as 'learning_rate'"),
        (["--grid", "num_classes=2,7"], "is the number of class folders in the dataset"),
        (["--grid-file", "/nonexistent/g.json"], "Cannot read the grid file"),
    ],
)
def test_bad_sweeps_are_refused_up_front(home, capsys, monkeypatch, argv, needle):
    data, store_home = home
    monkeypatch.setenv("CNNLAB_HOME", str(store_home))
    before = len(RunStore(store_home).list_runs())
    code, _, err = run(capsys, "sweep", "--data", str(data), *TINY, *argv)
    assert code == 2 and needle in err and err.count("\n") == 1 and "Traceback" not in err
    assert len(RunStore(store_home).list_runs()) == before
