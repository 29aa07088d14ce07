"""End to end: data -> train -> evaluate -> diagnose -> store, and the cache."""

import numpy as np
import pytest

from core.base.config import ModelConfig, TrainConfig
from core.training.experiment import predict_images, run_experiment

TINY = ModelConfig(input_size=16, blocks=1, filters=4, dense_units=8, dropout=0.0)
FAST = TrainConfig(epochs=2, batch_size=8)


def test_a_run_is_trained_stored_and_then_served_from_the_store(tiny_folder, store):
    rec = run_experiment(str(tiny_folder), TINY, FAST, store=store)
    assert not rec.cached and rec.status == "complete"
    assert rec.model_config["num_classes"] == 3  # fitted to the data
    assert rec.data["classes"] == ["bright", "dark", "striped"]
    assert rec.data["n_train"] + rec.data["n_val"] + rec.data["n_test"] == 36
    assert len(rec.history["loss"]) == 2 and rec.diagnosis["verdict"]
    assert 0.0 <= rec.test["accuracy"] <= 1.0
    assert np.array(rec.test["confusion_matrix"]).sum() == rec.data["n_test"]
    assert rec.versions["keras"].startswith("3.")
    arrays = store.load_arrays(rec.run_id)
    assert arrays["test_images"].shape == (rec.data["n_test"], 16, 16, 3)
    assert arrays["probs"].shape == (rec.data["n_test"], 3)
    acc = float((arrays["probs"].argmax(1) == arrays["y_true"]).mean())
    assert acc == pytest.approx(rec.test["accuracy"])

    calls = []
    again = run_experiment(str(tiny_folder), TINY, FAST, store=store, progress=calls.append)
    assert again.cached and again.run_id == rec.run_id and calls == []
    assert again.history == rec.history

    probs = predict_images(store, rec, arrays["test_images"])
    np.testing.assert_allclose(probs, arrays["probs"], atol=1e-5)

    other = run_experiment(str(tiny_folder), TINY, FAST.replace(seed=7), store=store)
    assert other.run_id != rec.run_id and not other.cached
    assert len(store.list_runs()) == 2


def test_no_cache_trains_again(tiny_folder, store):
    a = run_experiment(str(tiny_folder), TINY, FAST, store=store)
    b = run_experiment(str(tiny_folder), TINY, FAST, store=store, use_cache=False)
    assert not b.cached and b.run_id == a.run_id and b.created >= a.created


def test_a_stopped_run_is_kept_but_not_served_as_the_answer(tiny_folder, store):
    import threading

    stop = threading.Event()
    stop.set()
    cfg = FAST.replace(epochs=3)
    rec = run_experiment(str(tiny_folder), TINY, cfg, store=store, stop_event=stop)
    assert rec.status == "stopped" and len(rec.history["loss"]) == 1
    assert store.get(rec.run_id) is not None
    fresh = run_experiment(str(tiny_folder), TINY, cfg, store=store)
    assert not fresh.cached and fresh.status == "complete" and len(fresh.history["loss"]) == 3
    assert fresh.run_id == rec.key


def test_a_crash_mid_training_leaves_the_store_as_it_was(tiny_folder, store, monkeypatch):
    first = run_experiment(str(tiny_folder), TINY, FAST, store=store)

    import core.training.experiment

    def crash(*a, **k):
        raise RuntimeError("power cut")

    monkeypatch.setattr(core.training.experiment, "train_model", crash)
    with pytest.raises(RuntimeError):
        run_experiment(str(tiny_folder), TINY, FAST.replace(seed=9), store=store)
    assert [r["run_id"] for r in store.list_runs()] == [first.run_id]
    assert store.get(first.run_id).history == first.history


def test_impossible_architecture_is_refused_before_training(tiny_folder, store):
    from core.models.layer_table import ArchitectureError

    with pytest.raises(ArchitectureError, match="Block 3"):
        run_experiment(str(tiny_folder), TINY.replace(blocks=3, kernel_size=5), FAST, store=store)
    assert store.list_runs() == []


def test_a_stored_run_given_back_reports_the_data_just_read(tmp_path, store, monkeypatch, capsys):
    """Folder B has folder A's images (same key: the stored run comes back) but other skipped files: B's answer
    lists B's oversized image, never A's broken file; the stored record keeps its own training's read."""
    from PIL import Image
    from tinydata import write_tiny_dataset

    from core.cli import main
    from core.jobs.worker import TrainingWorker

    monkeypatch.setenv("CNNLAB_MAX_PIXELS", "40x40")  # the tiny images are 16 x 16
    a = write_tiny_dataset(tmp_path / "A")
    (a / "dark" / "broken.png").write_bytes(b"not a png at all")
    b = write_tiny_dataset(tmp_path / "B")
    Image.new("RGB", (64, 64), (200, 10, 10)).save(b / "bright" / "huge.png")
    one = FAST.replace(epochs=1)
    ra = run_experiment(str(a), TINY, one, store=store)
    assert not ra.cached and [s["path"] for s in ra.data["skipped"]] == ["dark/broken.png"]

    rb = run_experiment(str(b), TINY, one, store=store)
    assert rb.cached and rb.run_id == ra.run_id  # the skipped files are not part of the data's identity
    assert [s["path"] for s in rb.data["skipped"]] == ["bright/huge.png"]
    assert "64 x 64 = 4,096 pixels, more than the 1,600" in rb.data["skipped"][0]["reason"]
    assert (rb.data["n_images"], rb.data["n_train"], rb.history) == (36, ra.data["n_train"], ra.history)
    assert [s["path"] for s in store.get(ra.run_id).data["skipped"]] == ["dark/broken.png"]

    worker = TrainingWorker(store, workers=1)  # the dashboard's and the batch commands' cached job
    try:
        job = worker.submit(str(b), TINY, one)
        assert job.result.cached and [s["path"] for s in job.result.data["skipped"]] == ["bright/huge.png"]
    finally:
        worker.close()

    monkeypatch.setenv("CNNLAB_HOME", str(store.home))
    flags = [
        "--input-size",
        "16",
        "--blocks",
        "1",
        "--filters",
        "4",
        "--dense",
        "8",
        "--dropout",
        "0",
        "--epochs",
        "1",
        "--batch-size",
        "8",
    ]
    assert main(["train", "--data", str(b), *flags]) == 0
    out = capsys.readouterr().out
    assert "(stored run, not retrained)" in out and "1 file skipped" in out
    assert "skipped bright/huge.png: the image is too large" in out and "broken" not in out


def test_the_architecture_is_checked_once_per_training(tiny_folder, store, monkeypatch):
    """At the submit boundary, with the data's class count; nothing below checks again (issue 17)."""
    import core.models.layer_table as A

    checked = []
    real = A.check_cost
    monkeypatch.setattr(
        A, "check_cost", lambda cfg, batch_size=None: checked.append((cfg, batch_size)) or real(cfg, batch_size)
    )
    rec = run_experiment(str(tiny_folder), TINY, FAST.replace(seed=5), store=store)
    assert checked == [(TINY.replace(num_classes=3), FAST.batch_size)] and not rec.cached


def test_a_time_budget_stops_a_real_training_keeps_its_best_epoch_and_says_why(tiny_folder, store, monkeypatch):
    from core.base.tables import plural
    from core.data import load_dataset, prepare_data
    from core.training.experiment import stop_reason
    from core.training.fit import predict_proba

    monkeypatch.setenv("CNNLAB_MAX_TRAIN_SECONDS", "3")
    cfg = FAST.replace(epochs=500, batch_size=4)  # half a minute or more without the budget
    rec = run_experiment(str(tiny_folder), TINY, cfg, store=store)
    n = len(rec.history["loss"])
    assert rec.status == "stopped" and 1 <= n < 500 and not rec.stopped_by_user
    assert rec.extra["stopped_by"] == "time budget" and rec.extra["time_budget"] == 3.0
    assert stop_reason(rec) == f"Stopped: the time budget of 3 s per training was reached after {plural(n, 'epoch')}."
    best = int(np.argmin(rec.history["val_loss"])) + 1
    assert rec.best_epoch == rec.restored_epoch == best  # the keep-best rule: the best epoch's weights

    ds = load_dataset(str(tiny_folder), image_size=16)
    data = prepare_data(ds, loss=cfg.loss, test_size=cfg.test_size, val_split=cfg.val_split, seed=cfg.seed)
    probs = predict_proba(store.load_model(rec.run_id), data.x_val)
    kept_loss = float(-np.mean(np.log(probs[np.arange(len(probs)), data.y_val_int])))
    assert kept_loss == pytest.approx(rec.history["val_loss"][best - 1], rel=1e-3)  # the stored model is that epoch's

    monkeypatch.setenv("CNNLAB_MAX_TRAIN_SECONDS", "0")  # no limit: a short run is complete and stores no budget
    short = run_experiment(str(tiny_folder), TINY, FAST.replace(seed=3), store=store)
    assert short.status == "complete" and "time_budget" not in short.extra and stop_reason(short) is None
