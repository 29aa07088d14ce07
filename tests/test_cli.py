"""python -m core: JSON outputs, cached runs, one-line errors."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from calibrations import store_calibration

from core.base.config import ModelConfig, TrainConfig
from core.cli import main

ROOT = Path(__file__).resolve().parent.parent


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_summary_json_is_the_course_network(capsys):
    code, out, _ = run(capsys, "summary", "--json")
    assert code == 0
    d = json.loads(out)
    assert d["total_params"] == 683_845 and d["trainable_params"] == 683_845 and d["non_trainable_params"] == 0
    assert d["layers"][0] == {
        "name": "block1_conv",
        "type": "Conv2D",
        "output_shape": [62, 62, 32],
        "params": 896,
        "trainable": 896,
        "formula": d["layers"][0]["formula"],
        "receptive_field": 3,
        "jump": 1,
        "macs": 62 * 62 * 32 * 3 * 3 * 3,
    }
    assert [layer["output_shape"] for layer in d["layers"]][-4:] == [[4608], [128], [128], [5]]
    assert d["total_macs"] == 30_029_824 == sum(layer["macs"] for layer in d["layers"])


def test_summary_flags_change_the_table(capsys):
    code, out, _ = run(
        capsys,
        "summary",
        "--json",
        "--blocks",
        "2",
        "--filters",
        "16,48",
        "--batchnorm",
        "--classes",
        "3",
        "--padding",
        "same",
    )
    d = json.loads(out)
    convs = [la for la in d["layers"] if la["type"] == "Conv2D"]
    assert [c["output_shape"] for c in convs] == [[64, 64, 16], [32, 32, 48]]
    assert d["layers"][-1]["output_shape"] == [3]
    assert d["non_trainable_params"] == 2 * (16 + 48)


def test_vgg16_summary_counts(capsys):
    code, out, _ = run(capsys, "summary", "--model", "vgg16", "--json")
    d = json.loads(out)
    assert (d["trainable_params"], d["non_trainable_params"]) == (66_309, 14_714_688)


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["summary", "--dropout", "1.5"], "'dropout'"),
        (["summary", "--blocks", "five"], "invalid int value"),
        (["summary", "--padding", "full"], "invalid choice"),
        (["summary", "--filters", "a,b"], "--filters"),
        (["summary", "--input-size", "16", "--blocks", "5"], "Block 3"),
        (["train"], "--data"),
        (["fly"], "invalid choice"),
        (["lab", "--data", "thin_sections", "--workers", "0"], "--workers must be a whole number of trainings at once"),
        (["compare", "--workers", "two"], "invalid int value"),
        (["lab"], "the following arguments are required: --data"),
        (["train", "--data", "x", "--lr", "0.1", "--learning-rate", "0.2"], "--lr and --learning-rate are one setting"),
        (["train", "--data", "x", "--epochs", "1", "--epochs", "2"], "--epochs is given twice: give it once"),
        (["compare"], "usage: python -m core compare RUN_ID RUN_ID..."),
        (["compare", "--transfer"], "compare --transfer needs --data"),
        (["export", "abc", "--model", "m.keras"], "export names the model file with --model-file now"),
        (
            ["lab", "--data", "thin_sections", "--scheduler", "tcp://127.0.0.1:9"],
            "Cannot reach the Dask scheduler at tcp://127.0.0.1:9",
        ),
    ],
)
def test_bad_flags_get_one_line_and_exit_2(capsys, argv, needle):
    with pytest.raises(SystemExit) as e:
        code = main(argv)
        raise SystemExit(code)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and "\n" not in err and "Traceback" not in err


def test_train_json_then_cached_then_listed(capsys, tiny_folder):
    args = [
        "train",
        "--data",
        str(tiny_folder),
        "--input-size",
        "16",
        "--blocks",
        "1",
        "--filters",
        "4",
        "--dense",
        "8",
        "--epochs",
        "2",
        "--batch-size",
        "8",
        "--json",
    ]
    code, out, _ = run(capsys, *args)
    assert code == 0
    d = json.loads(out)
    for key in ("run_id", "cached", "history", "best_epoch", "diagnosis", "test", "data", "seconds"):
        assert key in d
    assert set(d["history"]) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert set(d["test"]) >= {"accuracy", "loss", "per_class", "confusion_matrix"}
    assert set(d["data"]) >= {"classes", "n_train", "n_val", "n_test", "skipped"}
    assert d["cached"] is False
    code, out, _ = run(capsys, *args)
    again = json.loads(out)
    assert again["cached"] is True and again["run_id"] == d["run_id"]
    code, out, _ = run(capsys, "runs", "--json")
    assert d["run_id"] in [r["run_id"] for r in json.loads(out)]


def test_train_prints_one_verdict_with_one_title(capsys, tiny_folder):
    # `train --epochs 2` printed "Good fit" with a headline saying too few epochs ran to judge.
    args = ["train", "--data", str(tiny_folder), "--epochs", "2", "--batch-size", "8"]
    args += ["--input-size", "16", "--blocks", "1", "--filters", "4", "--dense", "8"]
    code, out, _ = run(capsys, *args)
    assert code == 0
    line = next(x for x in out.splitlines() if "verdict:" in x)
    assert "verdict: Too few epochs to judge - Only 2 epochs ran, too few to judge the curves" in line
    assert "Good fit" not in out and "Still improving" not in out


def test_train_says_when_its_time_budget_stopped_it(capsys, tiny_folder, monkeypatch):
    monkeypatch.setenv("CNNLAB_MAX_TRAIN_SECONDS", "2")
    args = ["train", "--data", str(tiny_folder), "--epochs", "500", "--batch-size", "4"]
    args += ["--input-size", "16", "--blocks", "1", "--filters", "4", "--dense", "8"]
    code, out, _ = run(capsys, *args, "--seed", "77", "--json")
    d = json.loads(out)
    n = len(d["history"]["loss"])
    assert code == 0 and d["status"] == "stopped" and 1 <= n < 500
    epochs = "1 epoch" if n == 1 else f"{n} epochs"
    assert d["stop_reason"] == f"Stopped: the time budget of 2 s per training was reached after {epochs}."
    code, out, _ = run(capsys, *args, "--seed", "78")  # the text output: the same sentence, second line
    assert code == 0 and out.splitlines()[1].startswith("Stopped: the time budget of 2 s per training was reached")


def _cli(tmp_path, *argv, timeout=240):
    """``python -m core ...`` as a user runs it: a real process, TensorFlow's logs left to the CLI to silence."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env.update(CNNLAB_HOME=str(tmp_path / "home"), KERAS_HOME=str(tmp_path / "keras"))
    return subprocess.run(
        [sys.executable, "-m", "core", *argv], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


def _one_clean_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got:\n{stderr}"
    for noise in ("Traceback", "oneDNN", "cuInit", "cuda drivers", "absl::", ".cc:", "I0000", "E0000", "W0000"):
        assert noise not in stderr, f"{noise!r} on stderr:\n{stderr}"
    return lines[0]


def test_module_entry_point_exits_2_without_traceback(tmp_path):
    p = _cli(tmp_path, "summary", "--kernel", "0")
    assert p.returncode == 2 and "'kernel_size'" in _one_clean_line(p.stderr)


def test_missing_data_folder_is_a_users_error(tmp_path):
    p = _cli(tmp_path, "train", "--data", str(tmp_path / "nowhere"), "--epochs", "1")
    assert p.returncode == 2, p.stderr
    assert "nowhere" in _one_clean_line(p.stderr) and p.stdout == ""


VGG_FLAGS = ("--model", "vgg16", "--input-size", "32", "--dense", "8", "--epochs", "1", "--batch-size", "8")


def test_missing_weights_file_is_a_users_error(tmp_path, tiny_folder):
    missing = tmp_path / "my_vgg16_notop.h5"
    p = _cli(tmp_path, "train", "--data", str(tiny_folder), *VGG_FLAGS, "--weights", str(missing))
    assert p.returncode == 2, p.stderr
    assert "my_vgg16_notop.h5" in _one_clean_line(p.stderr)


def test_unavailable_imagenet_weights_are_a_users_error(tmp_path, tiny_folder):
    # KERAS_HOME is empty and this machine has no internet: the download cannot happen, and the message says
    # which file to put where.
    p = _cli(tmp_path, "train", "--data", str(tiny_folder), *VGG_FLAGS, "--weights", "imagenet")
    assert p.returncode == 2, p.stderr
    line = _one_clean_line(p.stderr)
    assert "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5" in line


def test_a_training_run_prints_no_tensorflow_noise(tmp_path, tiny_folder):
    p = _cli(
        tmp_path,
        "train",
        "--data",
        str(tiny_folder),
        "--input-size",
        "16",
        "--blocks",
        "1",
        "--filters",
        "4",
        "--dense",
        "8",
        "--epochs",
        "1",
        "--batch-size",
        "8",
    )
    assert p.returncode == 0, p.stderr
    assert p.stderr.strip().startswith("Epoch 1/1 [train]") and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert "Test accuracy" in p.stdout


def test_an_unexpected_error_is_one_line_with_a_hint_and_exit_1(capsys, monkeypatch):
    import core.cli.commands as commands

    def broken(args, store):
        raise RuntimeError("disk on fire")

    monkeypatch.setitem(commands.COMMANDS, "runs", broken)
    code, _, err = run(capsys, "runs")
    assert code == 1 and err.count("\n") == 1 and "disk on fire" in err and "--debug" in err
    assert "Traceback" not in err
    code, _, err = run(capsys, "runs", "--debug")
    assert code == 1 and "Traceback" in err and "disk on fire" in err


def test_lab_trains_its_variants_in_worker_processes_and_jobs_lists_them(capsys, monkeypatch, tmp_path, tiny_folder):
    import core.cli.commands
    from core.base.config import ModelConfig, TrainConfig
    from core.lab.variants import lab_variants

    tiny, fast = ModelConfig(input_size=16, blocks=1, filters=4, dense_units=8), TrainConfig(batch_size=8)
    monkeypatch.setattr(
        core.cli.commands, "lab_variants", lambda **kw: lab_variants(**kw, model_cfg=tiny, train_cfg=fast)
    )
    monkeypatch.setenv("CNNLAB_HOME", str(tmp_path / "home"))
    code, out, err = run(capsys, "jobs")
    assert code == 0 and out.startswith("No training jobs yet")

    argv = ["lab", "--data", str(tiny_folder), "--fraction", "0.5", "--epochs", "1", "--workers", "2"]
    code, out, err = run(capsys, *argv, "--json")
    assert code == 0, err
    variants = json.loads(out)["variants"]
    assert len(variants) == 5 and not any(v["cached"] for v in variants)

    code, out, _ = run(capsys, "jobs", "--json")
    rows = json.loads(out)
    assert code == 0 and len(rows) == 5 and {r["state"] for r in rows} == {"done"}
    assert {r["run_id"] for r in rows} == {v["run_id"] for v in variants}
    spans = sorted((r["started"], r["finished"]) for r in rows)
    assert max(sum(1 for s, f in spans if s <= t < f) for t, _ in spans) <= 2  # --workers 2: never more at once

    code, out, err = run(capsys, *argv)  # again: every variant comes back from the store
    assert code == 0 and out.count("(stored)") == 5 and err.count("stored run") == 5
    code, out, _ = run(capsys, "jobs")
    assert code == 0 and out.splitlines()[0].split()[:3] == ["Job", "State", "Place"]


# --------------------------------------------------------------------------- explain


@pytest.fixture(scope="module")
def explain_home(tmp_path_factory):
    """A store of its own with one small trained CNN, and one of its test images as a PNG file."""
    from PIL import Image
    from tinydata import write_tiny_dataset

    from core.store.runstore import RunStore
    from core.training.experiment import run_experiment

    root = tmp_path_factory.mktemp("explain")
    data = write_tiny_dataset(root / "data")
    store = RunStore(root / "home")
    cfg = ModelConfig(input_size=16, blocks=2, filters=4, dense_units=8, dropout=0.0)
    rec = run_experiment(str(data), cfg, TrainConfig(epochs=3, batch_size=8), store=store)
    image = root / "a rock.png"
    Image.fromarray(store.load_arrays(rec.run_id)["test_images"][0]).save(image)
    return root / "home", rec, image


@pytest.fixture
def in_explain_home(explain_home, monkeypatch):
    monkeypatch.setenv("CNNLAB_HOME", str(explain_home[0]))
    return explain_home


def test_explain_writes_the_feature_maps_and_the_grad_cam_overlay(capsys, in_explain_home, tmp_path):
    from PIL import Image

    _, rec, image = in_explain_home
    out = tmp_path / "out"
    code, text, err = run(capsys, "explain", rec.run_id, "--image", str(image), "--out", str(out))
    assert code == 0, err
    assert "Layer block1_conv (Conv2D): output shape 14x14x4; one unit sees 3x3 input pixels (jump 1)" in text
    assert "Predicted: " in text and all(name in text for name in rec.data["classes"])
    assert "Grad-CAM for " in text and " at block2_conv" in text
    predicted = text.split("Predicted: ")[1].split()[0]
    maps, cam = out / "a_rock-block1_conv-maps.png", out / f"a_rock-gradcam-{predicted}.png"
    assert f"  {maps}" in text and f"  {cam}" in text
    for path in (maps, cam):
        with Image.open(path) as im:
            assert im.format == "PNG" and min(im.size) >= 256


def test_explain_json_has_the_grad_cam_map_at_the_images_size(capsys, in_explain_home, tmp_path):
    from core.data import read_image_bytes
    from core.inside import grad_cam, open_run
    from core.store.runstore import RunStore

    _, rec, image = in_explain_home
    name = rec.data["classes"][1]
    code, text, err = run(
        capsys,
        "explain",
        rec.run_id,
        "--image",
        str(image),
        "--out",
        str(tmp_path),
        "--layer",
        "block1_pool",
        "--class",
        name,
        "--json",
    )
    assert code == 0, err
    d = json.loads(text)
    assert d["layer"]["name"] == "block1_pool" and d["layer"]["output_shape"] == [7, 7, 4]
    assert (d["layer"]["receptive_field"], d["layer"]["jump"]) == (4, 2)
    assert d["gradcam"]["class"] == name and d["gradcam"]["layer"] == "block2_conv"
    heat = np.array(d["gradcam"]["map"])
    assert heat.shape == (16, 16) and heat.min() >= 0 and heat.max() <= 1
    assert sum(d["probabilities"].values()) == pytest.approx(1, abs=1e-5)
    assert d["predicted"] == max(d["probabilities"], key=d["probabilities"].get)
    net = open_run(RunStore(), rec.run_id)
    pixels = read_image_bytes(image.read_bytes(), image_size=16, channels=3)
    np.testing.assert_allclose(heat, grad_cam(net, pixels, 1).heatmap, atol=1e-4)
    assert all(Path(f).is_file() for f in d["files"].values())
    assert Path(d["files"]["feature_maps"]).name == "a_rock-block1_pool-maps.png"


@pytest.mark.parametrize(
    "extra, needle",
    [
        (
            ["--layer", "dense"],
            "has no layer 'dense' to look inside. Its convolution, normalisation and pooling "
            "layers are: block1_conv, block1_pool, block2_conv, block2_pool.",
        ),
        (["--class", "granite"], "it has no class 'granite'"),
    ],
)
def test_explain_unknown_layer_or_class_is_one_line_and_exit_2(capsys, in_explain_home, tmp_path, extra, needle):
    _, rec, image = in_explain_home
    code, text, err = run(capsys, "explain", rec.run_id, "--image", str(image), "--out", str(tmp_path / "o"), *extra)
    assert code == 2 and text == "" and err.count("\n") == 1 and needle in err
    assert not (tmp_path / "o").exists()


def test_explain_an_unknown_run_in_a_real_process(explain_home, tmp_path):
    home, _, image = explain_home
    env = {**os.environ, "CNNLAB_HOME": str(home)}
    p = subprocess.run(
        [sys.executable, "-m", "core", "explain", "nope", "--image", str(image), "--out", str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 2 and p.stdout == ""
    assert "No stored run 'nope'" in _one_clean_line(p.stderr)
    p = subprocess.run(
        [sys.executable, "-m", "core", "explain", "nope", "--out", str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 2 and "--image" in _one_clean_line(p.stderr)


def test_estimate_says_when_train_would_refuse_the_network(tmp_path, monkeypatch, capsys):
    """The estimate is printed (it shows why), then train's own refusal: one line, exit 2, as `summary` does."""
    monkeypatch.setenv("CNNLAB_HOME", str(tmp_path))
    store_calibration(tmp_path, ("float32",))
    big = [
        "estimate",
        "--images",
        "1000",
        "--input-size",
        "256",
        "--filters",
        "64",
        "--batch-size",
        "256",
        "--precision",
        "float32",
        "--json",
    ]
    assert main(big) == 2
    out, err = capsys.readouterr()
    payload = json.loads(out)
    assert payload["seconds"] > 0 and payload["refused"][0].startswith("This network has 29,862,789 parameters")
    assert err.startswith("python -m core estimate: This network has ") and "(CNNLAB_MAX_PARAMS)" in err
    assert main(["estimate", "--images", "1000", "--precision", "float32", "--json"]) == 0  # the course's network
    assert json.loads(capsys.readouterr().out)["refused"] == []


def test_train_with_balanced_class_weights_is_its_own_run_and_the_verdict_says_so(tmp_path, capsys, monkeypatch):
    from tinydata import TINY_FLAGS, write_tiny_dataset

    from core.results.diagnosis import CLASS_WEIGHT_NOTE

    monkeypatch.setenv("CNNLAB_HOME", str(tmp_path / "home"))
    data = write_tiny_dataset(tmp_path / "imbalanced", per_class=12)
    for i in range(6):
        (data / "bright" / f"bright_{i:02d}.png").unlink()
    runs = {}
    for how in ("none", "balanced"):
        code, out, err = run(capsys, "train", "--data", str(data), *TINY_FLAGS, "--class-weight", how, "--json")
        assert code == 0, err
        runs[how] = json.loads(out)
    assert runs["none"]["run_id"] != runs["balanced"]["run_id"]
    assert " · balanced classes" in runs["balanced"]["label"] and "classes" not in runs["none"]["label"]
    assert runs["balanced"]["diagnosis"]["evidence"][-1] == CLASS_WEIGHT_NOTE
    assert CLASS_WEIGHT_NOTE not in runs["none"]["diagnosis"]["evidence"]
    assert runs["none"]["history"]["loss"] != runs["balanced"]["history"]["loss"]  # the weights changed the training


def test_a_batch_takes_a_run_its_time_budget_stopped_and_says_why(tiny_folder, store, monkeypatch):
    import io

    from core.cli.batch import train_all
    from core.jobs import TrainingWorker

    monkeypatch.setenv("CNNLAB_MAX_TRAIN_SECONDS", "2")
    tiny = ModelConfig(input_size=16, blocks=1, filters=4, dense_units=8, dropout=0.0)
    stream = io.StringIO()
    [rec] = train_all(
        TrainingWorker(store, workers=1), str(tiny_folder), [("long", tiny, TrainConfig(epochs=500))], stream
    )
    assert rec.status == "stopped" and rec.extra["stopped_by"] == "time budget"  # a run, not a failure
    last = stream.getvalue().splitlines()[-1]
    assert last.startswith("[1/1] long: ") and "(Stopped: the time budget of 2 s per training was reached after" in last
