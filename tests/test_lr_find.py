"""core.training.lr_find, core.results.lr_range and `python -m core lr-find`: the learning-rate range test.

Real trainings on a tiny real dataset (few steps), in this process (the CLI's path), through a
TrainingWorker's child process, and on a Dask cluster; the reading of the losses (smoothing, the
suggestion) checked against hand computations.
"""

import json
import math

import numpy as np
import pytest
from tinydata import run_cli, write_tiny_dataset
from vggfiles import keras_vgg_arrays, write_legacy_h5

from core.base.config import ConfigError, ModelConfig, TrainConfig
from core.jobs import JobState, TrainingWorker
from core.jobs.worker import job_from_row
from core.results.lr_range import (
    RULE_FALL_START,
    RULE_MIN_TENTH,
    beta_for,
    exploded,
    nearest,
    rates,
    smooth,
    suggest,
)
from core.store.runstore import RunStore
from core.training import lr_find as lr_find_module
from core.training.lr_find import (
    LR_FIND_KIND,
    LRRange,
    default_steps,
    find_lr,
    range_config,
    stored_lr_find,
)

CNN = ModelConfig(input_size=16, blocks=2, filters=8, dense_units=16, dropout=0.25)
TRAIN = TrainConfig(batch_size=8, seed=1)  # precision "auto": what a student's run computes in
RANGE = LRRange(start=1e-5, end=1.0, steps=40)


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    root = tmp_path_factory.mktemp("lrfind")
    data = write_tiny_dataset(root / "data", per_class=20)
    return RunStore(root / "home"), str(data)


@pytest.fixture(scope="module")
def cnn_test(home):
    store, data = home
    return find_lr(data, CNN, TRAIN, RANGE, store=store)


# -- reading the losses (NumPy, against hand computations) ----------------------------------------------


def test_rates_rise_by_one_ratio_from_start_to_end():
    lrs = rates(1e-6, 1.0, 7)
    assert lrs[0] == pytest.approx(1e-6) and lrs[-1] == pytest.approx(1.0)
    assert np.allclose(lrs[1:] / lrs[:-1], 10.0)


def test_smoothing_is_a_bias_corrected_moving_average():
    losses = [2.0, 1.0, 3.0]
    b = 0.9
    a1 = 0.1 * 2.0
    a2 = b * a1 + 0.1 * 1.0
    a3 = b * a2 + 0.1 * 3.0
    expected = [a1 / (1 - b), a2 / (1 - b**2), a3 / (1 - b**3)]
    assert np.allclose(smooth(losses, b), expected)
    assert smooth([5.0], b)[0] == pytest.approx(5.0)  # no pull towards zero at the start
    assert beta_for(100) == pytest.approx(0.8) and beta_for(300) == pytest.approx(1 - 1 / 15)


def test_explosion_is_four_times_the_lowest_or_not_finite():
    assert not exploded(np.array([1.0, 0.5, 1.9]), 1.9)
    assert exploded(np.array([1.0, 0.5, 2.1]), 2.1)
    assert exploded(np.array([1.0]), math.nan)


def test_the_suggestion_is_a_tenth_of_the_minimum_inside_the_fall():
    lrs = rates(1e-5, 1.0, 51)  # ten steps a decade
    loss = np.where(lrs < 1e-3, 2.0, 2.0 - 0.5 * np.log10(lrs / 1e-3))  # falls from 1e-3 ...
    loss = np.where(lrs > 0.1, 1.0 + 3 * np.log10(lrs / 0.1), loss)  # ... to its lowest at 0.1, then rises
    s = suggest(lrs, loss)
    assert s.min_learning_rate == pytest.approx(0.1)
    assert s.learning_rate == pytest.approx(0.01) and s.rule == RULE_MIN_TENTH
    assert s.falls_from == pytest.approx(lrs[np.argmax(loss <= 2.0 - 0.1)])  # a tenth of the fall of 1.0
    assert s.falls_from <= s.learning_rate <= s.falls_to == pytest.approx(0.1)


def test_a_cliff_suggests_where_the_fall_starts_and_a_flat_curve_nothing():
    lrs = rates(1e-5, 1.0, 51)
    cliff = np.where(lrs < 0.05, 2.0, 0.5)
    s = suggest(lrs, cliff)
    assert s.rule == RULE_FALL_START and s.learning_rate == s.falls_from == pytest.approx(lrs[lrs >= 0.05][0])
    flat = suggest(lrs, np.full(51, 2.0) + 1e-4 * np.sin(np.arange(51)))
    assert flat.learning_rate is None and flat.rule is None


def test_nearest_is_on_a_log_scale():
    assert nearest(0.0019, (1e-3, 3e-3, 1e-2)) == 3e-3  # log-nearer to 3e-3 though nearer to 1e-3 in value
    assert nearest(0.0015, (1e-3, 3e-3)) == 1e-3


def test_range_settings_are_checked():
    for bad in ({"start": 0.0}, {"start": 1.0, "end": 0.1}, {"steps": 2}, {"end": float("nan")}):
        with pytest.raises(ConfigError):
            LRRange(**bad)
    assert default_steps(640, 32) == 100 and default_steps(100_000, 32) == 300


# -- a real range test, in this process ------------------------------------------------------------------


def test_a_real_test_suggests_a_rate_where_the_smoothed_loss_falls(cnn_test):
    r = cnn_test
    assert len(r.lrs) == len(r.losses) == len(r.smoothed) <= RANGE.steps
    assert np.allclose(r.lrs[1:] / r.lrs[:-1], (RANGE.end / RANGE.start) ** (1 / (RANGE.steps - 1)))
    assert np.allclose(r.smoothed, smooth(r.losses, beta_for(RANGE.steps)))
    s = r.suggestion
    assert s.learning_rate is not None, r.sentence()
    assert s.falls_from <= s.learning_rate <= s.falls_to
    lo, hi = np.searchsorted(r.lrs, [s.falls_from, s.falls_to])
    assert r.smoothed[hi] < r.smoothed[lo]  # the loss does fall over that range
    assert r.extra["precision"] == "bfloat16" or r.extra["precision"] == "float32"
    assert f"{s.learning_rate:.2g}" in r.sentence()


def test_the_first_losses_are_the_untrained_networks(cnn_test):
    # At 1e-5 the network has barely moved: its loss is about ln(3) for three classes, as a guess is.
    assert abs(float(np.mean(cnn_test.losses[:5])) - math.log(3)) < 0.3


def test_the_same_test_twice_trains_nothing(home, cnn_test, monkeypatch):
    store, data = home

    def no_training(*a, **k):
        raise AssertionError("the range test ran again")

    monkeypatch.setattr(lr_find_module, "lr_range_test", no_training)
    # Another learning rate and epochs on the Train page: the same test (range_config), answered by the store.
    again = find_lr(data, CNN, TRAIN.replace(learning_rate=0.01, epochs=7), RANGE, store=store)
    assert again.cached and not cnn_test.cached
    assert again.created == cnn_test.created and np.array_equal(again.losses, cnn_test.losses)
    assert again.suggestion == cnn_test.suggestion
    assert (store.cache_dir / LR_FIND_KIND / f"{cnn_test.key}.npz").is_file()
    with pytest.raises(AssertionError, match="ran again"):  # another range is another test
        find_lr(data, CNN, TRAIN, LRRange(start=1e-5, end=1.0, steps=41), store=store)


def test_range_config_keeps_what_the_test_uses():
    cfg = TrainConfig(learning_rate=0.03, epochs=9, early_stopping=3, batch_size=16, seed=5, fine_tune_epochs=2)
    got = range_config(cfg)
    assert (got.learning_rate, got.epochs, got.early_stopping, got.fine_tune_epochs) == (0.001, 1, 0, 0)
    assert (got.batch_size, got.seed, got.optimizer) == (16, 5, cfg.optimizer)


def test_vgg16_transfer_model_tests_its_head_on_the_cached_features(home, tmp_path_factory):
    store, data = home
    weights = write_legacy_h5(tmp_path_factory.mktemp("weights") / "vgg16_notop.h5", keras_vgg_arrays())
    vgg = ModelConfig(model="vgg16", weights=str(weights), input_size=32, dense_units=16)
    r = find_lr(data, vgg, TrainConfig(batch_size=8), LRRange(start=1e-5, end=1.0, steps=30), store=store)
    assert "cached base features" in r.extra["features"] and len(r.lrs) >= 10
    assert r.suggestion.learning_rate is not None, r.sentence()
    assert r.suggestion.falls_from <= r.suggestion.learning_rate <= r.suggestion.falls_to
    assert stored_lr_find(store, r.key).created == r.created


# -- through the job queue: a real child process, and a Dask cluster ---------------------------------------


def test_a_range_test_runs_as_a_job_in_a_training_process_and_is_stored(home):
    store, data = home
    w = TrainingWorker(store, workers=1)
    job = w.submit(data, CNN, TRAIN, owner="ann", lr_find=LRRange(start=1e-5, end=1.0, steps=25))
    assert job.kind == "lr-find" and job.state in (JobState.QUEUED, JobState.RUNNING)
    w.wait(job, timeout=300)
    assert job.state == JobState.DONE, job.error
    snap = job.snapshot()
    assert snap.kind == "lr-find" and snap.lr_find_key == job.key and not snap.cached and snap.batch > 0
    stored = stored_lr_find(store, job.key)
    assert stored is not None and len(stored.lrs) == len(job.lr_find.lrs) > 5
    assert job.result is None and store.find(job.key) is None  # not a run

    again = w.submit(data, CNN, TRAIN.replace(learning_rate=0.03), owner="bob", lr_find=job.lr_range)
    assert again.state == JobState.DONE and again.snapshot().cached  # answered at once
    assert again.started is None and again.pid is None  # no process ran it
    assert again.lr_find.created == stored.created

    row = w.table.get(job.id)  # the job table keeps the kind: a rerun is a range test again
    assert job_from_row(row, store).lr_range == job.lr_range


def test_a_range_test_on_the_dask_cluster_lands_in_the_servers_store(cluster, tiny_folder, store):
    from core.jobs.dask_executor import DaskExecutor

    w = TrainingWorker(store, executor=DaskExecutor(cluster.scheduler_address))
    tiny = ModelConfig(input_size=16, blocks=1, filters=4, dense_units=8, dropout=0.0)
    job = w.submit(str(tiny_folder), tiny, TrainConfig(batch_size=8), lr_find=LRRange(start=1e-4, end=1.0, steps=12))
    w.wait(job, timeout=240)
    assert job.state == JobState.DONE, job.error
    assert stored_lr_find(store, job.key) is not None and len(job.lr_find.lrs) >= 5
    w.executor.close()


# -- the CLI -------------------------------------------------------------------------------------------------


def test_cli_json_is_the_stored_test(capsys, home, cnn_test, monkeypatch):
    store, data = home
    monkeypatch.setenv("CNNLAB_HOME", str(store.home))
    flags = ["--input-size", "16", "--blocks", "2", "--filters", "8", "--dense", "16", "--dropout", "0.25"]
    argv = ["lr-find", "--data", data, *flags, "--batch-size", "8", "--seed", "1", "--start", "1e-5", "--steps", "40"]
    code, out, err = run_cli(capsys, *argv, "--json")
    assert code == 0, err
    d = json.loads(out)
    assert d["cached"] is True and d["key"] == cnn_test.key
    assert d["suggestion"]["learning_rate"] == pytest.approx(cnn_test.suggestion.learning_rate)
    assert len(d["learning_rates"]) == len(d["losses"]) == len(d["smoothed_losses"]) == len(cnn_test.lrs)
    code, out, _ = run_cli(capsys, *argv)
    assert code == 0 and "stored test, not run again" in out and "suggested:" in out


def test_cli_runs_the_test_in_process_when_asked_again(capsys, home, monkeypatch):
    store, data = home
    monkeypatch.setenv("CNNLAB_HOME", str(store.home))
    argv = ["lr-find", "--data", data, "--input-size", "16", "--blocks", "1", "--filters", "4", "--dense", "8"]
    code, out, err = run_cli(capsys, *argv, "--batch-size", "8", "--start", "1e-4", "--steps", "12", "--json")
    assert code == 0, err
    first = json.loads(out)
    assert first["cached"] is False and first["steps_planned"] == 12 and 3 <= first["steps_run"] <= 12
    assert first["learning_rates"][0] == pytest.approx(1e-4)
    code, out, err = run_cli(capsys, *argv, "--batch-size", "8", "--start", "1e-4", "--steps", "12", "--json")
    again = json.loads(out)
    assert again["cached"] is True and again["created"] == first["created"]


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["--start", "1", "--end", "0.1"], "must be below its end"),
        (["--steps", "3"], "steps must be a whole number in [5, 2000]"),
        (["--blocks", "9"], ""),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_2(capsys, home, monkeypatch, argv, needle):
    store, data = home
    monkeypatch.setenv("CNNLAB_HOME", str(store.home))
    code, out, err = run_cli(capsys, "lr-find", "--data", data, "--input-size", "16", *argv)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1 and needle in err
