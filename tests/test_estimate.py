"""Time and memory estimates: from the layer table's multiply-adds and a calibration of this machine."""

import dataclasses
import json
import sys

import pytest
from calibrations import QUICK_RUNS, fake_calibration

import core.jobs.estimate as E
from core.base.config import AugmentConfig, ModelConfig, TrainConfig
from core.cli import main
from core.models.layer_table import layer_table

F32 = TrainConfig(precision="float32", epochs=10)


def _cal(**kw):
    return fake_calibration(key="k", **kw)


def test_the_estimate_prices_the_tables_multiply_adds():
    cal = _cal()
    est = E.estimate(ModelConfig(), F32, 1000, calibration=cal, others=0.0)
    assert est.macs_per_image == layer_table(ModelConfig()).total_macs == 30_029_824
    assert (est.n_train, est.n_val) == (640, 160)  # the app's split of 1000 images
    per_epoch = (3 * 640 + 160) * 30_029_824 / 2e10 + 800 * 1e-3
    assert est.epochs_seconds == pytest.approx(10 * per_epoch)
    assert est.build_seconds == 2.0 and est.start_seconds == 0.0  # this calibration measured no process start
    assert est.test_seconds == pytest.approx((160 + 200) * 30_029_824 / 2e10)  # the predictions' multiply-adds
    assert est.seconds == pytest.approx(2.0 + 10 * per_epoch + est.test_seconds)
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


# A calibration with every part of the wait measured (the numbers a real one has on 2 cores, roughly).
PARTS = dict(process_seconds=5.0, first_fit_seconds=1.5, finish_seconds=0.4, save_seconds_per_param=1e-7)


def test_the_parts_add_up_to_the_whole_wait():
    cal = _cal(**PARTS)
    est = E.estimate(ModelConfig(), F32.replace(epochs=8), 1000, calibration=cal, others=0.0)
    parts = (est.start_seconds, est.build_seconds, est.epochs_seconds, est.test_seconds)
    assert all(p > 0 for p in parts) and est.seconds == pytest.approx(sum(parts))
    table = layer_table(ModelConfig())
    assert est.test_seconds == pytest.approx(0.4 + 360 * table.total_macs / 2e10 + table.total_params * 1e-7)
    assert est.train_seconds == pytest.approx(est.build_seconds + est.epochs_seconds)  # what a time budget counts
    d = est.to_dict()
    assert d["finish_seconds"] == pytest.approx(est.seconds) and d["where"] == E.NEW_PROCESS
    assert d["text"] == E.estimate_text(est)
    # the sentence names each part in the student's words, the total first
    assert E.estimate_text(est) == (
        f"{E.duration_text(est.seconds)} on this server: {E.part_text(est.start_seconds + est.build_seconds)} to "
        f"start, {E.part_text(est.epochs_seconds)} for 8 epochs, {E.part_text(est.test_seconds)} to test and save"
    )
    one = E.estimate(ModelConfig(), F32.replace(epochs=1), 1000, calibration=cal, others=0.0)
    assert "for 1 epoch," in E.estimate_text(one)
    busy = E.estimate(ModelConfig(), F32.replace(epochs=8), 1000, calibration=cal, others=1.0)  # load scales each part
    assert busy.test_seconds == pytest.approx(est.test_seconds * busy.load_factor)
    assert busy.seconds == pytest.approx(est.seconds * busy.load_factor)
    assert E.part_text(0.3) == "under 1 s" and E.part_text(4.4) == "4 s" and E.part_text(170) == "3 min"


def test_the_start_differs_between_a_new_process_a_cold_and_a_warm_one():
    cal = _cal(**PARTS)
    at = {w: E.estimate(ModelConfig(), F32, 1000, calibration=cal, others=0.0, where=w) for w in E.WHERE}
    # the CLI's `train` and a cold training process start Python and TensorFlow, then pay a first fit's costs
    for w in (E.NEW_PROCESS, E.COLD):
        assert at[w].start_seconds == 5.0 and at[w].build_seconds == 2.0 + 1.5
    # a warm process (or this process, trained before) has paid both: only the network's own build and trace
    for w in (E.WARM, E.HERE):
        assert at[w].start_seconds == 0.0 and at[w].build_seconds == 2.0
    assert at[E.COLD].seconds - at[E.WARM].seconds == pytest.approx(6.5)
    assert at[E.WARM].epochs_seconds == at[E.COLD].epochs_seconds and at[E.WARM].test_seconds == at[E.COLD].test_seconds
    assert "to start" in E.estimate_text(at[E.WARM]) and at[E.WARM].where == E.WARM
    with pytest.raises(ValueError, match="where must be one of"):
        E.estimate(ModelConfig(), F32, 1000, calibration=cal, others=0.0, where="somewhere")


def test_the_queue_ahead_is_the_jobs_the_fair_order_starts_first_each_by_its_own_estimate():
    from types import SimpleNamespace

    from core.jobs.fairqueue import fair_order

    cal = _cal(**PARTS)
    small, big = F32.replace(epochs=2), F32.replace(epochs=30)
    # Ann's sweep waits (3 big ones), Bob's one small job waits; Ann has had a start already (her running job).
    waiting = [SimpleNamespace(owner="ann", cfg=big) for _ in range(3)] + [SimpleNamespace(owner="bob", cfg=small)]
    newcomer = SimpleNamespace(owner="cat", cfg=small)
    order = fair_order([*waiting, newcomer], {"ann": 1})
    ahead = order[: order.index(newcomer)]
    assert [j.owner for j in ahead] == ["bob"]  # the round robin: Ann's sweep does not come before Cat
    running = E.QueuedRun(ModelConfig(), big, 1000, done=0.5)
    queued = [running, *(E.QueuedRun(ModelConfig(), j.cfg, 1000) for j in ahead)]
    est = E.estimate(ModelConfig(), small, 1000, calibration=cal, others=0.0, queued_before=queued, where=E.WARM)
    alone = E.estimate(ModelConfig(), big, 1000, calibration=cal, others=0.0, where=E.COLD)
    bob = E.estimate(ModelConfig(), small, 1000, calibration=cal, others=0.0, where=E.COLD)
    # the running one's other half and its test, then Bob's whole training (its process starts cold)
    assert est.wait_seconds == pytest.approx(0.5 * alone.epochs_seconds + alone.test_seconds + bob.seconds)
    assert est.queued == 2 and est.finish_seconds == pytest.approx(est.wait_seconds + est.seconds)
    # behind a queue the warm process goes to the first of them: this one starts cold
    assert est.where == E.COLD and est.start_seconds == 5.0
    assert "for the 2 trainings before it, " in E.estimate_text(est)
    # Ann, submitting now, waits for everything before her fourth job: her own three too
    mine = fair_order([*waiting, SimpleNamespace(owner="ann", cfg=small)], {"ann": 1})
    assert [j.owner for j in mine] == ["bob", "ann", "ann", "ann", "ann"]
    # two slots: the two trainings ahead run side by side, so the wait is the longer of them
    two = E.estimate(
        ModelConfig(), small, 1000, calibration=cal, others=0.0, queued_before=queued, where=E.WARM, slots=2
    )
    assert two.wait_seconds == pytest.approx(min(0.5 * alone.epochs_seconds + alone.test_seconds, bob.seconds))
    assert E.queue_start([], 1) == (0.0, True) and E.queue_start([3.0], 2) == (0.0, True)
    assert E.queue_start([3.0, 5.0, 1.0], 2) == (4.0, False)


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
    assert (ten.seconds - 2.0) == pytest.approx(10 * (one.seconds - 2.0), rel=0.01)  # the test images too
    twice = E.estimate(ModelConfig(), F32.replace(epochs=20), 1000, calibration=cal, others=0.0)
    assert twice.epochs_seconds == pytest.approx(2 * one.epochs_seconds) and twice.test_seconds == one.test_seconds
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
    # the running one's other half and its test, then the waiting one whole
    assert queued.wait_seconds == pytest.approx(0.5 * one.epochs_seconds + one.test_seconds + one.seconds)
    assert queued.seconds == one.seconds
    text = E.estimate_text(queued, 2)
    assert (
        text.startswith("about ") and " on this server: " in text and ": 60 s for the 2 trainings before it, " in text
    )


def test_other_work_on_the_machine_scales_the_time():
    assert E.load_factor(0.0, 0.0, cores=2) == 1.0
    assert E.load_factor(2.0, 0.0, cores=2) == 2.0  # two busy cores elsewhere: half the machine
    assert E.load_factor(1.0, 1.0, cores=2) == 1.0  # as busy as when it was measured
    quiet = E.estimate(ModelConfig(), F32, 1000, calibration=_cal(), others=0.0)
    busy = E.estimate(ModelConfig(), F32, 1000, calibration=_cal(), others=1.0)
    assert busy.load_factor == pytest.approx(E.load_factor(1.0, 0.0)) and busy.load_factor > 1
    assert busy.seconds == pytest.approx(quiet.seconds * busy.load_factor)
    assert E.others_busy() >= 0.0 and E.others_running() >= 0  # a real sample of this machine
    assert E._own_running() >= 1  # this thread runs while it counts: it is not counted as another's


def test_without_a_calibration_it_says_so(tmp_path):
    est = E.estimate(ModelConfig(), F32, 1000, home=tmp_path)
    assert not est.calibrated and est.seconds == 0
    assert "not been measured" in E.estimate_text(est)


def test_durations_read_as_people_say_them():
    assert E.duration_text(4) == "about 4 s" and E.duration_text(41) == "about 40 s"
    assert E.duration_text(170) == "about 3 min" and E.duration_text(5400) == "about 1.5 h"


# Prices a calibration could hold (round, of this machine's order); the timed runs below are made from them.
TRUE = dict(
    macs_per_second=5e10,
    seconds_per_image=2e-4,
    seconds_per_bn_value=1e-9,
    augment_seconds_per_pixel=5e-8,
    start_seconds=0.3,
    start_seconds_per_layer=0.1,
    augment_start_seconds=0.2,
    finish_seconds=0.2,
    save_seconds_per_param=1e-7,
    vgg_macs_per_second=2e11,
    vgg_head_epoch_seconds=0.05,
    vgg_tune_macs_per_second=4e10,
    vgg_start_seconds=1.0,
    vgg_tune_start_seconds=0.9,
    vgg_finish_seconds=0.8,
)


def _timed_runs(r: E.CalibrationRuns, p: dict) -> tuple[dict, E._TimedVgg]:
    """What the calibration's runs would time on a machine with prices ``p`` (the estimate's model, forward)."""
    nt, nv, ns = 180, 60, 60
    c = 1 / p["macs_per_second"]
    cfgs = {"big": r.big, "small": r.small, "aug": r.big, "bn": r.big.replace(batchnorm=True)}
    timed = {}
    for name, cfg in cfgs.items():
        t = layer_table(cfg)
        epoch = (3 * nt + nv) * (t.total_macs * c + E.batchnorm_values(cfg) * p["seconds_per_bn_value"])
        epoch += (nt + nv) * p["seconds_per_image"]
        start = p["start_seconds"] + E.layers_of(cfg) * p["start_seconds_per_layer"]
        if name == "aug":
            epoch += nt * 64 * 64 * 3 * p["augment_seconds_per_pixel"]
            start += p["augment_start_seconds"]
        finish = p["finish_seconds"] + (nv + ns) * t.total_macs * c + t.total_params * p["save_seconds_per_param"]
        timed[name] = [E._Timed(start, [epoch, epoch], finish, nt, nv, ns)]
    vt = layer_table(r.vgg)
    base, head = vt.rows[0].macs, vt.total_macs - vt.rows[0].macs
    n, nt, nv, ns = 128, 81, 21, 26
    per_image = base / p["vgg_macs_per_second"]
    tune = (3 * nt + nv) * (E._vgg_block5_macs(64) + head) / p["vgg_tune_macs_per_second"]
    head_epochs = [p["vgg_head_epoch_seconds"] + 0.4, p["vgg_head_epoch_seconds"]]  # the first traces
    tunes = [tune + p["vgg_tune_start_seconds"], tune]
    seconds = p["vgg_start_seconds"] + n * per_image + 2 * p["vgg_head_epoch_seconds"] + sum(tunes)
    finish = p["vgg_finish_seconds"] + (nv + ns) * per_image
    ends = [i * 32 * per_image for i in range(4)]
    return timed, E._TimedVgg(seconds, ends, 32, head_epochs, tunes, finish, n, nt, nv, ns)


def test_the_calibrations_fit_solves_the_prices_its_runs_were_timed_with():
    timed, vgg = _timed_runs(E.CALIBRATION_RUNS, TRUE)
    fitted = E.fit_calibration(E.CALIBRATION_RUNS, timed, vgg)
    assert set(fitted) == set(TRUE)
    for name, value in TRUE.items():
        assert fitted[name] == pytest.approx(value, rel=1e-6), name
    # without a VGG16 run (a calibration that left it out) the CNN's prices are solved alike
    assert E.fit_calibration(E.CALIBRATION_RUNS, timed, None) == {k: v for k, v in fitted.items() if "vgg" not in k}


def test_epochs_that_other_work_slowed_do_not_set_the_price():
    # On a shared host some epochs run at half speed; the rate is solved from the difference of two networks'
    # epochs, so such an epoch among the few timed must not move it (a median of four moved it by half).
    timed, vgg = _timed_runs(E.CALIBRATION_RUNS, TRUE)
    paused = {
        k: [dataclasses.replace(x, later=[2 * x.later[0], x.later[0], 2 * x.later[0], 2 * x.later[0]]) for x in runs]
        for k, runs in timed.items()
    }
    fitted = E.fit_calibration(E.CALIBRATION_RUNS, paused, vgg)
    for name in ("macs_per_second", "seconds_per_image", "seconds_per_bn_value", "augment_seconds_per_pixel"):
        assert fitted[name] == pytest.approx(TRUE[name], rel=1e-6), name


def test_a_small_network_builds_and_traces_in_less_time_than_the_course_network():
    cal = _cal(**E.fit_calibration(E.CALIBRATION_RUNS, *_timed_runs(E.CALIBRATION_RUNS, TRUE)))
    tiny_cfg = ModelConfig(input_size=32, blocks=1, filters=8)
    tiny = E.estimate(tiny_cfg, F32, 600, calibration=cal, others=0.0, where=E.WARM)
    course = E.estimate(ModelConfig(), F32, 600, calibration=cal, others=0.0, where=E.WARM)
    assert E.layers_of(tiny_cfg) == 6 and E.layers_of(ModelConfig()) == 10  # conv, pool per block; the head's 4
    assert tiny.build_seconds == pytest.approx(0.3 + 6 * 0.1) and course.build_seconds == pytest.approx(0.3 + 10 * 0.1)
    aug = E.estimate(ModelConfig(), F32.replace(augment=AugmentConfig.course()), 600, calibration=cal, others=0.0)
    assert aug.build_seconds == pytest.approx(course.build_seconds + 0.2 + cal.first_fit_seconds)
    # a line fitted through few noisy points may cross 0 before the smallest network: a build is never below 0
    assert E.estimate(tiny_cfg, F32, 600, calibration=_cal(start_seconds=-5.0), others=0.0).build_seconds == 0.0


def test_vgg16_is_priced_by_its_own_run_not_the_course_networks_rates():
    cal = _cal(**E.fit_calibration(E.CALIBRATION_RUNS, *_timed_runs(E.CALIBRATION_RUNS, TRUE)))
    vgg = ModelConfig(model="vgg16", weights="offline")
    table = layer_table(vgg)
    base, head = table.rows[0].macs, table.total_macs - table.rows[0].macs
    est = E.estimate(vgg, F32.replace(epochs=20), 1000, calibration=cal, others=0.0, where=E.WARM)
    # the features of every image of the dataset once at VGG16's own rate, then 20 head epochs
    head_epoch = 0.05 + 800 * (3 * head / 5e10 + 0.1 * 2e-4)
    assert est.epochs_seconds == pytest.approx(1000 * base / 2e11 + 20 * head_epoch)
    assert est.build_seconds == pytest.approx(1.0)  # its own build and traces, not the per-layer line
    assert est.test_seconds == pytest.approx(0.8 + 360 * table.total_macs / 2e11)  # saved at its measured price
    tuned = E.estimate(vgg, F32.replace(epochs=20, fine_tune_epochs=3), 1000, calibration=cal, others=0.0, where=E.WARM)
    tune_epoch = (3 * 640 + 160) * (E._vgg_block5_macs(64) + head) / 4e10
    assert tuned.epochs_seconds == pytest.approx(est.epochs_seconds + 3 * tune_epoch)
    assert tuned.build_seconds == pytest.approx(1.0 + 0.9)  # fine-tuning's own compile and trace
    # the course network's rate would have made the extraction 4x as long
    slow = E.estimate(
        vgg, F32.replace(epochs=20), 1000, calibration=_cal(**{**TRUE, "vgg_macs_per_second": 5e10}), others=0.0
    )
    assert slow.epochs_seconds - est.epochs_seconds == pytest.approx(1000 * base * (1 / 5e10 - 1 / 2e11))


def test_with_early_stopping_the_estimate_is_an_upper_bound_and_says_so():
    cal = _cal(**PARTS)
    plain = E.estimate(ModelConfig(), F32.replace(epochs=20), 1000, calibration=cal, others=0.0)
    early = E.estimate(ModelConfig(), F32.replace(epochs=20, early_stopping=5), 1000, calibration=cal, others=0.0)
    assert early.seconds == plain.seconds  # every planned epoch counted
    assert early.upper_bound and not plain.upper_bound and early.to_dict()["upper_bound"] is True
    assert not E.estimate_text(plain).startswith("at most") and "early stopping" not in E.estimate_text(plain)
    start, epochs, test = (
        E.part_text(v) for v in (early.start_seconds + early.build_seconds, early.epochs_seconds, early.test_seconds)
    )
    assert E.estimate_text(early) == (
        f"at most {E.duration_text(early.seconds)} on this server: {start} to start, {epochs} for up to 20 epochs, "
        f"{test} to test and save; early stopping may end it sooner"
    )
    assert E.budget_warning(early, 20).startswith("This training needs up to about ")


QUICK = QUICK_RUNS  # the real measurement, on tiny networks and images: in seconds


def test_calibration_is_measured_stored_and_keyed_by_machine_and_versions(tmp_path, monkeypatch):
    had_tensorflow = "tensorflow" in sys.modules  # an earlier test in the same run may have imported it
    cal = E.calibrate(tmp_path, "float32", runs=QUICK)  # in a new process, which times its own start
    assert cal.macs_per_second > 1e6 and cal.seconds_per_image >= 0 and cal.seconds_per_bn_value >= 0
    assert cal.baseline_bytes > 100 * 2**20 and cal.others_cores >= 0
    assert cal.process_seconds > 0 and cal.seconds > cal.process_seconds
    assert cal.start_seconds + E.layers_of(QUICK.small) * cal.start_seconds_per_layer > 0  # the line's smallest
    assert cal.first_fit_seconds >= 0 and cal.finish_seconds >= 0 and cal.save_seconds_per_param >= 0
    assert cal.start_seconds_per_layer >= 0 and cal.augment_start_seconds >= 0
    # the VGG16 transfer run: its own forward rate, head epoch, fine-tuning rate, build and save
    assert cal.vgg_macs_per_second > 1e6 and cal.vgg_tune_macs_per_second > 1e6 and cal.vgg_head_epoch_seconds > 0
    assert cal.vgg_start_seconds > 0 and cal.vgg_tune_start_seconds >= 0 and cal.vgg_finish_seconds >= 0
    assert 0 < cal.vgg_run_seconds < cal.seconds - cal.process_seconds
    assert had_tensorflow or "tensorflow" not in sys.modules  # the measuring never imports it here
    assert not E.calibrate_in_background(tmp_path, "float32")  # stored: nothing is measured again
    assert E.load_calibration(tmp_path, "float32") == cal
    assert E.load_calibration(tmp_path, "bfloat16") is None  # another precision is measured on its own
    files = list((tmp_path / "calibration").glob("*.json"))
    assert len(files) == 1 and json.loads(files[0].read_text())["machine"]["precision"] == "float32"
    est = E.estimate(ModelConfig(input_size=16, blocks=2, filters=16), F32, 100, home=tmp_path)
    assert est.calibrated and est.seconds > 0
    vgg = E.estimate(
        ModelConfig(model="vgg16", weights="none", input_size=32), F32, 100, home=tmp_path, others=0, where=E.WARM
    )
    assert vgg.build_seconds == pytest.approx(cal.vgg_start_seconds * vgg.load_factor)
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
    assert d["text"].startswith("about ") and " on this machine: " in d["text"]
    assert "for 5 epochs, " in d["text"] and d["text"].endswith("to test and save")
    # `train` starts a new process; the dashboard's warm training process has done that already
    assert d["where"] == "new process" and d["dashboard"]["where"] == "warm"
    assert d["start_seconds"] > 0 == d["dashboard"]["start_seconds"] and d["seconds"] > d["dashboard"]["seconds"]
    assert d["seconds"] == pytest.approx(
        d["start_seconds"] + d["build_seconds"] + d["epochs_seconds"] + d["test_seconds"]
    )
    assert d["upper_bound"] is False and d["dashboard"]["upper_bound"] is False
    # with early stopping the time is an upper bound: the field says so, and the sentence in words
    code = main(
        ["estimate", "--images", "2000", "--epochs", "5", "--precision", "float32", "--early-stopping", "3", "--json"]
    )
    early = json.loads(capsys.readouterr().out)
    assert code == 0 and early["upper_bound"] is True and early["seconds"] == pytest.approx(d["seconds"], rel=0.5)
    assert early["text"].startswith("at most about ") and early["text"].endswith("; early stopping may end it sooner")
    code = main(["estimate", "--images", "2000", "--epochs", "5", "--precision", "float32", "--early-stopping", "3"])
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith("Training: at most about ") and "for up to 5 epochs, " in first
    code = main(["estimate", "--images", "2000", "--epochs", "10", "--precision", "float32"])
    out, err = capsys.readouterr()
    assert code == 0 and err == "" and out.startswith("Training: about ") and "Peak memory: about" in out
    first, dash = out.splitlines()[:2]
    assert (
        "to start, " in first and "for 10 epochs, " in first and first.endswith("starts Python and TensorFlow first).")
    )
    assert dash.startswith("In the dashboard, with its training process ready: about ")
    assert "a training may take on this server" not in out and d["budget_warning"] is None
    monkeypatch.setenv("CNNLAB_MAX_TRAIN_SECONDS", "0.5")
    code = main(["estimate", "--images", "2000", "--epochs", "10", "--precision", "float32"])
    out = capsys.readouterr().out
    assert code == 0 and "more than the 0.5 s a training may take on this server: it would stop" in out
    assert main(["estimate", "--images", "3"]) == 2
    assert "--images must be at least 10" in capsys.readouterr().err


def test_the_worker_says_whether_a_warm_training_process_is_ready(tmp_path, monkeypatch):
    from core.jobs import TrainingWorker
    from core.store import RunStore

    monkeypatch.setenv("CNNLAB_WARM", "0")
    cold = TrainingWorker(RunStore(tmp_path / "cold"), workers=1)
    try:
        assert not cold.warm_start()  # no warm process kept: a job starts one (a cold start)
    finally:
        cold.close()
    monkeypatch.setenv("CNNLAB_WARM", "1")
    warm = TrainingWorker(RunStore(tmp_path / "warm"), workers=1)
    try:
        assert warm.executor.pool.wait_ready(300)
        assert warm.warm_start()  # ready: the Train page estimates a warm start
    finally:
        warm.close()
    assert not warm.warm_start()  # closed: its warm process has ended


def test_a_measurement_that_fails_says_why_and_is_not_started_again_by_itself(tmp_path):
    import time

    bad = E.CalibrationRuns(big=QUICK.big, small=QUICK.small, images=3, epochs=2, rounds=1)  # too few to split
    with pytest.raises(E.CalibrationFailed, match=r"^Measuring this machine's training speed failed \(exit code 1\): "):
        E.calibrate(tmp_path, "float32", runs=bad)
    assert E.load_calibration(tmp_path, "float32") is None
    assert not E.calibration_failed(tmp_path, "float32")  # not measured in the background yet
    assert E.calibrate_in_background(tmp_path, "float32", runs=bad)
    deadline = time.time() + 600
    while E.calibrating(tmp_path, "float32") and time.time() < deadline:
        time.sleep(0.1)
    assert E.calibration_failed(tmp_path, "float32")  # the page then offers the button instead of trying again
