"""Grid sweeps: grids parsed and checked, the points, and `sweep` through the worker (only new points are trained)."""

import json

import pytest
from tinydata import TINY_FLAGS, run_cli, write_tiny_dataset

from core.base.config import AugmentConfig, ConfigError, ModelConfig, TrainConfig
from core.results.sweeps import SWEEPABLE, grid_from_json, parse_grid, sweep_points
from core.store.runstore import RunStore


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
    root = tmp_path_factory.mktemp("sweeps")
    return write_tiny_dataset(root / "data"), root / "home"


def test_a_sweep_trains_only_new_points_and_a_repeated_sweep_nothing(home, capsys, monkeypatch):
    data, store_home = home
    monkeypatch.setenv("CNNLAB_HOME", str(store_home))
    code, out, err = run_cli(capsys, "sweep", "--data", str(data), "--grid", "dropout=0,0.5", *TINY_FLAGS, "--json")
    assert code == 0, err
    first = json.loads(out)
    assert (first["trained"], first["stored"]) == (2, 0)
    n_runs = len(RunStore(store_home).list_runs())
    code, out, err = run_cli(
        capsys, "sweep", "--data", str(data), "--grid", "dropout=0,0.25,0.5", *TINY_FLAGS, "--json"
    )
    second = json.loads(out)
    assert code == 0 and (second["trained"], second["stored"]) == (1, 2)
    assert second["run_ids"][0][0] == first["run_ids"][0][0] and second["run_ids"][0][2] == first["run_ids"][0][1]
    assert len(RunStore(store_home).list_runs()) == n_runs + 1
    code, out, err = run_cli(capsys, "sweep", "--data", str(data), "--grid", "dropout=0,0.25,0.5", *TINY_FLAGS)
    assert code == 0 and "All 3 points were stored already: nothing was trained." in out
    assert "stored run" in err and len(RunStore(store_home).list_runs()) == n_runs + 1
    row = out.splitlines()[1].split()
    assert row[0] == "val" and row[2:] == [f"{z:.3f}" for z in second["z"][0]]


def test_a_two_setting_sweep_is_a_grid(home, capsys, monkeypatch, tmp_path):
    data, store_home = home
    monkeypatch.setenv("CNNLAB_HOME", str(store_home))
    grid = tmp_path / "grid.json"
    grid.write_text('{"dropout": [0, 0.5], "dense_units": [4, 8]}')
    code, out, err = run_cli(
        capsys, "sweep", "--data", str(data), "--grid-file", str(grid), *TINY_FLAGS, "--json", "--workers", "2"
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
    code, _, err = run_cli(capsys, "sweep", "--data", str(data), *TINY_FLAGS, *argv)
    assert code == 2 and needle in err and err.count("\n") == 1 and "Traceback" not in err
    assert len(RunStore(store_home).list_runs()) == before
