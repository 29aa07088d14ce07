"""Export: the standalone script runs and builds the run's network; the CSVs, the model, the HTML report."""

import csv
import io
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from tinydata import write_tiny_dataset

from core.base.config import AugmentConfig, ModelConfig, TrainConfig
from core.cli import main
from core.models.layer_table import layer_table
from core.results.export import history_csv, script_text
from core.results.report import report_html


@pytest.fixture(scope="module")
def run_home(tmp_path_factory):
    from core.store.runstore import RunStore
    from core.training.experiment import run_experiment

    root = tmp_path_factory.mktemp("export")
    data = write_tiny_dataset(root / "data")
    store = RunStore(root / "home")
    cfg = ModelConfig(input_size=16, blocks=2, filters=4, dense_units=8, dropout=0.25, batchnorm=True)
    train = TrainConfig(epochs=2, batch_size=8, augment=AugmentConfig(rotation=10, hflip=True), early_stopping=2)
    rec = run_experiment(str(data), cfg, train, store=store)
    return root, data, store, rec


@pytest.fixture
def in_home(run_home, monkeypatch):
    monkeypatch.setenv("CNNLAB_HOME", str(run_home[2].home))
    return run_home


def _summary_rows(text):
    """(name, output shape, params) of each row of Keras' model.summary() table."""
    rows = re.findall(r"│ (\w+) \(\w+\)\s+│ \(None, ([\d, ]+)\)\s+│\s+([\d,]+) │", text)
    return [(n, tuple(int(x) for x in s.split(",")), int(p.replace(",", ""))) for n, s, p in rows]


def test_the_exported_script_runs_and_builds_the_runs_network(in_home, tmp_path, capsys):
    _, data, _, rec = in_home
    script = tmp_path / "run.py"
    code = main(["export", rec.run_id, "--code", str(script)])
    assert code == 0 and "wrote" in capsys.readouterr().out
    text = script.read_text()
    assert "import cnnlab" not in text and "from core" not in text and "model.summary()" in text
    assert "keras.layers.RandomRotation(" in text and "keras.callbacks.EarlyStopping(" in text
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    out = subprocess.run(
        [sys.executable, str(script), str(data), "--epochs", "1"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    table = layer_table(ModelConfig.from_dict(rec.model_config))
    expected = [(r.name, tuple(r.output_shape), r.params) for r in table.rows]
    assert _summary_rows(out.stdout) == expected
    total = int(re.search(r"Total params: ([\d,]+)", out.stdout).group(1).replace(",", ""))
    assert total == rec.layers["total_params"] == table.total_params
    n = rec.data
    assert f"{n['n_train']} training, {n['n_val']} validation, {n['n_test']} test images" in out.stdout
    assert re.search(r"Best epoch 1; test accuracy \d\.\d{3}", out.stdout)


def test_the_script_for_sparse_labels_and_no_augmentation_compiles(run_home):
    rec = run_home[3]
    rec2 = type(rec).from_dict(
        {**rec.to_dict(), "train_config": {**rec.train_config, "loss": "sparse", "augment": {}, "early_stopping": 0}}
    )
    text = script_text(rec2)
    compile(text, "run.py", "exec")
    assert "sparse_categorical_crossentropy" in text and "no augmentation" in text and "EarlyStopping" not in text


def test_the_script_trains_with_the_runs_class_weights(run_home):
    from core.training.fit import class_weights

    rec = run_home[3]
    assert "class_weight" not in script_text(rec)  # runs without class weights: the script is as before
    balanced = type(rec).from_dict({**rec.to_dict(), "train_config": {**rec.train_config, "class_weight": "balanced"}})
    text = script_text(balanced)
    compile(text, "run.py", "exec")
    assert text.count("class_weight=class_weight") == 1
    lines = [ln.strip() for ln in text.splitlines() if ln.strip().startswith(("counts =", "class_weight ="))]
    y, train_idx, classes = np.array([0, 0, 0, 1, 2, 2, 1, 0]), np.arange(6), ["a", "b", "c"]
    scope = {"np": np, "y": y, "train_idx": train_idx, "classes": classes}
    exec("\n".join(lines), scope)  # the script's own lines give the engine's weights
    assert scope["class_weight"] == pytest.approx(class_weights(y[train_idx], "balanced"))


def test_history_predictions_model_and_config(in_home, tmp_path, capsys):
    _, _, store, rec = in_home
    paths = {k: tmp_path / f"x.{ext}" for k, ext in (("history", "csv"), ("model", "keras"), ("config", "json"))}
    preds = tmp_path / "p.csv"
    code = main(
        [
            "export",
            rec.run_id,
            "--history",
            str(paths["history"]),
            "--predictions",
            str(preds),
            "--model-file",
            str(paths["model"]),
            "--config",
            str(paths["config"]),
        ]
    )
    assert code == 0 and capsys.readouterr().out.count("wrote") == 4
    rows = list(csv.DictReader(io.StringIO(paths["history"].read_text())))
    assert [float(r["val_loss"]) for r in rows] == rec.history["val_loss"]
    assert paths["history"].read_text() == history_csv(rec)
    p = list(csv.DictReader(io.StringIO(preds.read_text())))
    classes = rec.test["class_names"]
    assert len(p) == rec.data["n_test"] and [r["true"] for r in p] == [classes[i] for i in rec.test["y_true"]]
    probs = store.load_arrays(rec.run_id)["probs"]
    assert np.allclose([[float(r[f"p_{c}"]) for c in classes] for r in p], probs, atol=1e-6)
    assert paths["model"].read_bytes() == store.model_path(rec.run_id).read_bytes()
    assert json.loads(paths["config"].read_text()) == {"model": rec.model_config, "train": rec.train_config}


def test_the_report_is_self_contained_and_holds_the_runs_numbers(in_home, tmp_path, capsys):
    from core.training import run_calibration

    _, _, store, rec = in_home
    out = tmp_path / "run.html"
    assert main(["export", rec.run_id, "--report", str(out)]) == 0
    page = out.read_text()
    cal = run_calibration(store, rec)
    assert page == report_html(rec, cal)
    # The calibration: calibration.py's ECE before and after temperature scaling, its temperature.
    cells = [f"{cal.before.ece:.4f}", f"{cal.after.ece:.4f}", f"{cal.temperature:.3f}"]
    assert "".join(f"<td class=num>{c}</td>" for c in cells) in page
    assert page.count("<div id=reliability class=plot></div>") == 1
    assert out.stat().st_size < 5 * 2**20
    assert not re.search(r"<script[^>]+src=", page) and not re.search(r"<link[^>]+href=[\"']?http", page)
    assert page.count("<script>") == 2 and "Plotly.newPlot" in page
    best = int(np.argmin(rec.history["val_loss"]))
    assert f"{rec.history['val_accuracy'][best]:.4f}" in page and f"{rec.test['accuracy']:.4f}" in page
    assert f"best epoch {best + 1}" in page and f"Total params: {rec.layers['total_params']:,}" in page
    for c in rec.test["per_class"]:
        cells = [f"{c[k]:.4f}" for k in ("precision", "recall", "f1")]
        assert f"<td>{c['class']}</td>" + "".join(f"<td class=num>{v}</td>" for v in cells) in page
    assert json.dumps(rec.test["confusion_matrix"]) in page


def test_export_errors_are_one_line(in_home, tmp_path, capsys):
    rec = in_home[3]
    for argv, needle in (
        (["export", "nope", "--code", str(tmp_path / "a.py")], "'nope'"),
        (["export", rec.run_id], "Say what to export"),
        (["export", rec.run_id, "--model-file", str(tmp_path / "m.h5")], "must end in .keras"),
        (["export", rec.run_id, "--code", "/nonexistent/dir/run.py"], "Cannot write"),
    ):
        code = main(argv)
        err = capsys.readouterr().err
        assert code == 2 and needle in err and err.count("\n") == 1, argv


def test_the_report_shows_the_verdict_by_todays_table(run_home):
    # A run stored with the verdict the old rules gave a 2-epoch run ("Good fit" over a "too few" headline).
    import dataclasses

    _, _, _, rec = run_home
    stale = {**rec.diagnosis, "verdict": "good_fit", "title": "Good fit"}
    page = report_html(dataclasses.replace(rec, diagnosis=stale))
    assert "<b>Too few epochs to judge</b>" in page and "Good fit" not in page
