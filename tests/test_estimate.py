"""Time and memory estimates: from the layer table's multiply-adds and a calibration of this machine."""

import json
import os

import pytest

import core.jobs.estimate as E
from core.base.config import AugmentConfig, ModelConfig, TrainConfig
from core.cli import main
from core.models.layer_table import layer_table

F32 = TrainConfig(precision="float32", epochs=10)


def _cal(**kw):
    values = dict(
        key="k",
        precision="float32",
        macs_per_second=2e10,
        seconds_per_image=1e-3,
        seconds_per_bn_value=0.0,
        augment_seconds_per_pixel=1e-8,
        start_seconds=2.0,
        others_cores=0.0,
        baseline_bytes=600 * 2**20,
        machine={},
        measured=0.0,
        seconds=0.0,
    )
    values.update(kw)
    return E.Calibration(**values)


def test_the_estimate_prices_the_tables_multiply_adds():
    cal = _cal()
    est = E.estimate(ModelConfig(), F32, 1000, calibration=cal, others=0.0)
    assert est.macs_per_image == layer_table(ModelConfig()).total_macs == 30_029_824
    assert (est.n_train, est.n_val) == (640, 160)  # the app's split of 1000 images
    per_epoch = (3 * 640 + 160) * 30_029_824 / 2e10 + 800 * 1e-3
    assert est.seconds == pytest.approx(2.0 + 10 * per_epoch)
    assert est.calibrated and est.precision == "float32" and est.wait_seconds == 0
    # a network with twice the multiply-adds costs about twice as much
    wide = E.estimate(ModelConfig(filters=64), F32, 1000, calibration=cal, others=0.0)
    assert wide.macs_per_image > 3 * est.macs_per_image and wide.seconds > 2.5 * est.seconds
    # batch normalisation is priced per value it outputs, on top of its multiply-adds
    bn_cfg = ModelConfig(batchnorm=True)
    assert E.batchnorm_values(bn_cfg) == 62 * 62 * 32 + 29 * 29 * 64 + 12 * 12 * 128
    assert E.batchnorm_values(ModelConfig()) == 0
    plain_bn = E.estimate(bn_cfg, F32, 1000, calibration=cal, others=0.0)
    priced = E.estimate(bn_cfg, F32, 1000, calibration=_cal(seconds_per_bn_value=1e-8), others=0.0)
    assert priced.seconds == pytest.approx(plain_bn.seconds + 10 * (3 * 640 + 160) * E.batchnorm_values(bn_cfg) * 1e-8)


def test_a_training_over_the_time_budget_is_warned_of_with_the_epochs_that_fit(monkeypatch):
    est = E.estimate(ModelConfig(), F32, 1000, calibration=_cal(), others=0.0)  # 2 + 10 x 3.923 = 41.2 s
    assert E.budget_warning(est, 60) is None and E.budget_warning(est, 0) is None
    assert E.budget_warning(est, 20) == (
        "This training needs about 40 s, more than the 20 s a training may take on this server: it would stop "
        "after about 4 epochs of its 10. Fewer epochs, fewer images or a smaller network fit."
    )
    assert "it would stop during its first epoch." in E.budget_warning(est, 3)
    uncalibrated = E.estimate(ModelConfig(), F32, 1000, calibration=None, home="/nonexistent", others=0.0)
    assert E.budget_warning(uncalibrated, 1) is None  # nothing known: no warning
    monkeypatch.setenv("CNNLAB_MAX_TRAIN_SECONDS", "30")
    assert "more than the 30 s" in E.budget_warning(est)  # the server's setting by default
    monkeypatch.setenv("CNNLAB_MAX_TRAIN_SECONDS", "0")
    assert E.budget_warning(est) is None


def test_it_scales_with_images_epochs_and_augmentation():
    cal = _cal()
    one = E.estimate(ModelConfig(), F32, 1000, calibration=cal, others=0.0)
    ten = E.estimate(ModelConfig(), F32, 10_000, calibration=cal, others=0.0)
    assert (ten.seconds - 2.0) == pytest.approx(10 * (one.seconds - 2.0), rel=0.01)
    twice = E.estimate(ModelConfig(), F32.replace(epochs=20), 1000, calibration=cal, others=0.0)
    assert (twice.seconds - 2.0) == pytest.approx(2 * (one.seconds - 2.0))
    aug = E.estimate(ModelConfig(), F32.replace(augment=AugmentConfig.course()), 1000, calibration=cal, others=0.0)
    assert aug.seconds == pytest.approx(one.seconds + 10 * 640 * 64 * 64 * 3 * 1e-8)
    assert ten.peak_bytes - one.peak_bytes == 9000 * 64 * 64 * 3  # the uint8 images, once
    queued = E.estimate(
        ModelConfig(),
        F32,
        1000,
        calibration=cal,
        others=0.0,
        queued_before=[E.QueuedRun(ModelConfig(), F32, 1000, done=0.5), E.QueuedRun(ModelConfig(), F32, 1000)],
    )
    assert queued.wait_seconds == pytest.approx(1.5 * one.seconds) and queued.seconds == one.seconds
    text = E.estimate_text(queued, 2)
    assert text.startswith("about ") and "on this server; about " in text and "the 2 trainings queued" in text


def test_other_work_on_the_machine_scales_the_time():
    assert E.load_factor(0.0, 0.0, cores=2) == 1.0
    assert E.load_factor(2.0, 0.0, cores=2) == 2.0  # two busy cores elsewhere: half the machine
    assert E.load_factor(1.0, 1.0, cores=2) == 1.0  # as busy as when it was measured
    quiet = E.estimate(ModelConfig(), F32, 1000, calibration=_cal(), others=0.0)
    busy = E.estimate(ModelConfig(), F32, 1000, calibration=_cal(), others=1.0)
    assert busy.load_factor == pytest.approx(E.load_factor(1.0, 0.0)) and busy.load_factor > 1
    assert busy.seconds == pytest.approx(quiet.seconds * busy.load_factor)
    assert 0.0 <= E.others_busy() <= (os.cpu_count() or 1) + 0.5  # a real sample of this machine


def test_without_a_calibration_it_says_so(tmp_path):
    est = E.estimate(ModelConfig(), F32, 1000, home=tmp_path)
    assert not est.calibrated and est.seconds == 0
    assert "not been measured" in E.estimate_text(est)


def test_durations_read_as_people_say_them():
    assert E.duration_text(4) == "about 4 s" and E.duration_text(41) == "about 40 s"
    assert E.duration_text(170) == "about 3 min" and E.duration_text(5400) == "about 1.5 h"


# Calibration runs on tiny networks and images: the real measurement, in seconds.
QUICK = E.CalibrationRuns(
    big=ModelConfig(input_size=16, blocks=2, filters=16),
    small=ModelConfig(input_size=16, blocks=1, filters=2, dense_units=4),
    images=60,
    epochs=2,
    rounds=1,
)


def test_calibration_is_measured_stored_and_keyed_by_machine_and_versions(tmp_path, monkeypatch):
    cal = E.calibrate(tmp_path, "float32", runs=QUICK)
    assert cal.macs_per_second > 1e6 and cal.seconds_per_image >= 0 and cal.seconds_per_bn_value >= 0
    assert cal.baseline_bytes > 100 * 2**20 and cal.others_cores >= 0
    assert E.load_calibration(tmp_path, "float32") == cal
    assert E.load_calibration(tmp_path, "bfloat16") is None  # another precision is measured on its own
    files = list((tmp_path / "calibration").glob("*.json"))
    assert len(files) == 1 and json.loads(files[0].read_text())["machine"]["precision"] == "float32"
    est = E.estimate(ModelConfig(input_size=16, blocks=2, filters=16), F32, 100, home=tmp_path)
    assert est.calibrated and est.seconds > 0
    # a TensorFlow upgrade (or another CPU) is another machine: measured again
    real = E.machine_identity
    monkeypatch.setattr(E, "machine_identity", lambda p: {**real(p), "tensorflow": "99.0"})
    assert E.load_calibration(tmp_path, "float32") is None


def test_the_default_calibration_times_the_course_network_against_a_far_smaller_one():
    r = E.CALIBRATION_RUNS
    assert r.big == ModelConfig() and r.epochs >= 2  # the first epoch is set-up: at least one more is timed
    # the two unknowns (a multiply-add's cost, an image's) are solved from two sizes far apart
    assert layer_table(r.small).total_macs < layer_table(r.big).total_macs / 10
    assert layer_table(QUICK.small).total_macs < layer_table(QUICK.big).total_macs / 10  # the tests' runs too


def test_the_cli_prints_the_estimate(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CNNLAB_HOME", str(tmp_path))
    # `estimate` measures the default runs (it has no flag for others): the tiny ones here
    monkeypatch.setattr(E, "CALIBRATION_RUNS", QUICK)
    code = main(["estimate", "--images", "2000", "--epochs", "5", "--precision", "float32", "--json"])
    out, err = capsys.readouterr()
    assert code == 0 and "Measuring this machine's training speed" in err
    d = json.loads(out)
    assert d["macs_per_image"] == 30_029_824 and d["n_images"] == 2000 and d["epochs"] == 5
    assert d["calibrated"] and d["seconds"] > 0 and d["peak_bytes"] > 2000 * 64 * 64 * 3
    assert d["text"].startswith("about ")
    code = main(["estimate", "--images", "2000", "--epochs", "10", "--precision", "float32"])
    out, err = capsys.readouterr()
    assert code == 0 and err == "" and out.startswith("Training: about ") and "Peak memory: about" in out
    assert "a training may take on this server" not in out and d["budget_warning"] is None
    monkeypatch.setenv("CNNLAB_MAX_TRAIN_SECONDS", "0.5")
    code = main(["estimate", "--images", "2000", "--epochs", "10", "--precision", "float32"])
    out = capsys.readouterr().out
    assert code == 0 and "more than the 0.5 s a training may take on this server: it would stop" in out
    assert main(["estimate", "--images", "3"]) == 2
    assert "--images must be at least 10" in capsys.readouterr().err
