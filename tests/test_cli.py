"""python -m core: JSON outputs, cached runs, one-line errors."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

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
        "macs": 62 * 62 * 32 * 3 * 3 * 3,
    }
    assert [layer["output_shape"] for layer in d["layers"]][-4:] == [[4608], [128], [128], [5]]
    assert d["total_macs"] == 30_029_824 == sum(layer["macs"] for layer in d["layers"])


def test_summary_flags_change_the_table(capsys):
    code, out, _ = run(capsys, "summary", "--json", "--blocks", "2", "--filters", "16,48", "--batchnorm",
                       "--classes", "3", "--padding", "same")
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
    args = ["train", "--data", str(tiny_folder), "--input-size", "16", "--blocks", "1", "--filters", "4",
            "--dense", "8", "--epochs", "2", "--batch-size", "8", "--json"]
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


def _cli(tmp_path, *argv, timeout=240):
    """``python -m core ...`` as a user runs it: a real process, TensorFlow's logs left to the CLI to silence."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env.update(CNNLAB_HOME=str(tmp_path / "home"), KERAS_HOME=str(tmp_path / "keras"))
    return subprocess.run([sys.executable, "-m", "core", *argv], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


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
    p = _cli(tmp_path, "train", "--data", str(tiny_folder), "--input-size", "16", "--blocks", "1", "--filters", "4",
             "--dense", "8", "--epochs", "1", "--batch-size", "8")
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
