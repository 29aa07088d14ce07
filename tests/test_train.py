"""Training: history, best weights, progress, stop, early stopping, seeds."""

import threading

import numpy as np
import pytest

from core.base.config import ModelConfig, TrainConfig
from core.data import load_dataset, prepare_data
from core.training.train import train_model

TINY = ModelConfig(input_size=16, blocks=1, filters=4, dense_units=8, dropout=0.0, num_classes=3)


@pytest.fixture
def data(tiny_folder):
    return prepare_data(load_dataset(tiny_folder, image_size=16), loss="categorical", seed=0)


def test_history_timing_and_best_weights(data):
    events = []
    res = train_model(TINY, TrainConfig(epochs=3, batch_size=8), data, store=None, progress=events.append)
    assert set(res.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(len(v) == 3 for v in res.history.values())
    assert len(res.epoch_seconds) == 3 and all(s > 0 for s in res.epoch_seconds)
    assert res.best_epoch == int(np.argmin(res.history["val_loss"])) + 1
    # the returned model holds the best epoch's weights: its val loss is that epoch's
    loss, _ = res.model.evaluate(data.x01("val"), data.y_val, verbose=0)
    assert loss == pytest.approx(res.history["val_loss"][res.best_epoch - 1], rel=1e-4)
    kinds = [e.kind for e in events]
    assert kinds[0] == "start" and kinds[-1] == "end" and kinds.count("epoch") == 3
    assert [e.epoch for e in events if e.kind == "epoch"] == [1, 2, 3]
    assert any(e.kind == "batch" and e.batch == e.batches for e in events)
    # without early stopping the course's checkpoint is kept: the best epoch's weights, put back at the end
    assert not res.stopped_by_user and not res.stopped_early and res.restored_epoch == res.best_epoch


def test_stop_request_keeps_history_and_best_weights(data):
    stop = threading.Event()

    def progress(ev):
        if ev.kind == "epoch" and ev.epoch == 2:
            stop.set()

    res = train_model(TINY, TrainConfig(epochs=50, batch_size=8), data, store=None, progress=progress, stop_event=stop)
    assert res.stopped_by_user
    assert 2 <= res.epochs_run <= 3  # stops within the batch after the request
    assert len(res.history["val_loss"]) == res.epochs_run
    assert res.model is not None


def test_early_stopping_restores_the_best_epoch(data):
    cfg = TrainConfig(epochs=40, batch_size=8, early_stopping=2, monitor="val_accuracy", learning_rate=0.01)
    res = train_model(TINY, cfg, data, store=None)
    assert res.stopped_early and res.epochs_run < 40
    best = int(np.argmax(res.history["val_accuracy"])) + 1
    assert res.restored_epoch == best == res.best_epoch
    assert res.epochs_run == best + 2  # patience epochs without improvement


def test_restore_best_off_keeps_and_evaluates_the_last_epoch(data):
    cfg = TrainConfig(
        epochs=40, batch_size=8, early_stopping=2, monitor="val_accuracy", learning_rate=0.01, restore_best=False
    )
    res = train_model(TINY, cfg, data, store=None)
    assert res.stopped_early and res.restored_epoch is None
    best = int(np.argmax(res.history["val_accuracy"])) + 1
    assert res.best_epoch == best and res.epochs_run == best + 2
    # the model holds the LAST epoch's weights: its val loss is the last epoch's, not the best one's
    loss, _ = res.model.evaluate(data.x01("val"), data.y_val, verbose=0)
    assert loss == pytest.approx(res.history["val_loss"][-1], rel=1e-4)
    assert res.history["val_loss"][-1] != pytest.approx(res.history["val_loss"][best - 1], rel=1e-4)
    # the same settings with restore_best=True keep the best epoch's weights instead
    kept = train_model(TINY, cfg.replace(restore_best=True), data, store=None)
    assert kept.history == res.history and kept.restored_epoch == best
    loss, _ = kept.model.evaluate(data.x01("val"), data.y_val, verbose=0)
    assert loss == pytest.approx(kept.history["val_loss"][best - 1], rel=1e-4)


def test_same_seed_same_run_other_seed_other_run(data):
    cfg = TrainConfig(epochs=2, batch_size=8, seed=3)
    a = train_model(TINY, cfg, data, store=None).history
    b = train_model(TINY, cfg, data, store=None).history
    c = train_model(TINY, cfg.replace(seed=4), data, store=None).history
    assert a == b
    assert a != c


def test_sparse_labels_train_too(tiny_folder):
    d = prepare_data(load_dataset(tiny_folder, image_size=16), loss="sparse", seed=0)
    assert d.y_train.ndim == 1
    res = train_model(TINY, TrainConfig(epochs=1, loss="sparse", batch_size=8), d, store=None)
    assert len(res.history["loss"]) == 1


def test_mismatched_loss_or_classes_are_explained(data):
    with pytest.raises(ValueError, match="prepared for loss='categorical'"):
        train_model(TINY, TrainConfig(loss="sparse"), data, store=None)
    with pytest.raises(ValueError, match="Set num_classes=3"):
        train_model(TINY.replace(num_classes=5), TrainConfig(), data, store=None)
    with pytest.raises(ValueError, match="image_size=32"):
        train_model(TINY.replace(input_size=32), TrainConfig(), data, store=None)


def test_augmentation_runs_in_training(data):
    from core.base.config import AugmentConfig

    res = train_model(TINY, TrainConfig(epochs=1, batch_size=8, augment=AugmentConfig.course()), data, store=None)
    assert len(res.history["loss"]) == 1 and np.isfinite(res.history["val_loss"][0])
