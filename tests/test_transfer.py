"""train_transfer: the head on cached features, fine-tuning block5, augmentation, stopping.

Small on purpose: 32x32 images, a few dozen of them, 1-2 epochs, a random base.
"""

import dataclasses
import threading

import numpy as np
import pytest
from tinydata import write_tiny_dataset
from vggfiles import SIZE

import core.training.transfer as T
from core.base.config import WEIGHT_SOURCE_LABELS, AugmentConfig, ModelConfig, TrainConfig
from core.base.precision import precision_policy
from core.data import load_dataset, prepare_data
from core.models.vgg16 import build_base
from core.models.weight_sources import preprocess_images
from core.training.base_features import FEATURES_KIND, cached_features


def vgg_cfg(weights="none", **kw):
    return ModelConfig(model="vgg16", input_size=SIZE, num_classes=3, dense_units=8, dropout=0.2, weights=weights, **kw)


FAST = TrainConfig(epochs=2, batch_size=8, learning_rate=0.01)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = write_tiny_dataset(tmp_path_factory.mktemp("tt") / "tiny", per_class=8, size=SIZE)
    return prepare_data(load_dataset(folder, image_size=SIZE), loss="categorical", seed=0)


@pytest.fixture
def count_extractions(monkeypatch):
    import core.training.base_features

    calls = []
    real = core.training.base_features.extract_features

    def counted(*a, **kw):
        calls.append(len(a[1]))
        return real(*a, **kw)

    monkeypatch.setattr(core.training.base_features, "extract_features", counted)
    return calls


def test_refuses_the_cnn(data, store):
    with pytest.raises(ValueError, match="Received: model='cnn'"):
        T.train_transfer(ModelConfig(num_classes=3, input_size=SIZE), FAST, data, store=store)


def test_features_come_from_the_store_the_second_time(data, store, count_extractions):
    n = len(data.dataset.images)
    first = T.train_transfer(vgg_cfg(), FAST, data, store=store)
    assert count_extractions == [n] and first.extra["features_cache_hit"] is False
    assert first.extra["features"].startswith("cached base features (computed once")
    assert first.extra["extract_seconds"] > 0
    again = T.train_transfer(vgg_cfg(), FAST, data, store=store)
    assert count_extractions == [n], "nothing changed: the features must come from the cache"
    assert again.extra["features_cache_hit"] is True and again.extra["extract_seconds"] == 0
    assert again.extra["features_key"] == first.extra["features_key"]
    assert "reused from the run store's cache" in again.extra["features"]


def test_without_a_store_features_are_computed_each_time(data, store, count_extractions):
    one = TrainConfig(epochs=1, batch_size=8)
    for _ in range(2):
        res = T.train_transfer(vgg_cfg(), one, data, store=None)
        assert res.extra["features_cache_hit"] is False
    assert count_extractions == [len(data.dataset.images)] * 2
    assert not list(store.cache_dir.iterdir())


def test_prepared_data_without_its_dataset_uses_its_own_arrays(data, store, count_extractions):
    bare = dataclasses.replace(data, dataset=None)  # e.g. arrays a notebook prepared by hand
    one = TrainConfig(epochs=1, batch_size=8)
    a = T.train_transfer(vgg_cfg(), one, bare, store=store)
    b = T.train_transfer(vgg_cfg(), one, bare, store=store)
    assert count_extractions == [len(data.x_train) + len(data.x_val)]  # train + val only, then cached
    assert (a.extra["features_cache_hit"], b.extra["features_cache_hit"]) == (False, True)
    own = store.cache_get(FEATURES_KIND, a.extra["features_key"])["pooled"]
    with precision_policy(a.extra["precision"]):  # the base as the run built it (bfloat16 where "auto" says so)
        base, info = build_base("none", SIZE, seed=one.seed)
    via_dataset = cached_features(base, info, data.dataset.images, data.dataset.fingerprint, store=store).pooled
    order = np.concatenate([data.train_index, data.val_index])
    np.testing.assert_allclose(own, via_dataset[order], rtol=1e-4, atol=1e-5)  # the same numbers either way


def test_head_trains_on_features_and_the_model_predicts_from_images(data, store, monkeypatch):
    seen = {}
    real = T.assemble_model

    def spy(base, cfg):
        model = real(base, cfg)
        seen.update(
            {
                name: w.copy()
                for name, w in zip(
                    ("dense", "b1", "b5"),
                    (
                        model.get_layer("dense").get_weights()[0],
                        base.get_layer("block1_conv1").get_weights()[0],
                        base.get_layer("block5_conv3").get_weights()[0],
                    ),
                    strict=True,
                )
            }
        )
        return model

    monkeypatch.setattr(T, "assemble_model", spy)
    events = []
    res = T.train_transfer(vgg_cfg(), FAST, data, progress=events.append, store=store)
    base = res.model.get_layer("vgg16")
    np.testing.assert_array_equal(base.get_layer("block1_conv1").get_weights()[0], seen["b1"])
    np.testing.assert_array_equal(base.get_layer("block5_conv3").get_weights()[0], seen["b5"])
    assert not np.allclose(res.model.get_layer("dense").get_weights()[0], seen["dense"])
    # the assembled model, fed images, scores what the head scored on features at its best epoch
    loss, _ = res.model.evaluate(preprocess_images(data.x01("val"), "none"), data.y_val, verbose=0)
    assert loss == pytest.approx(res.history["val_loss"][res.best_epoch - 1], rel=1e-4)
    assert res.phases == [{"name": "head", "first_epoch": 1, "epochs": 2}]
    assert [(e.kind, e.phase, e.epoch) for e in events if e.kind != "batch"] == [
        ("start", "head", 1),
        ("epoch", "head", 1),
        ("epoch", "head", 2),
        ("end", "head", 2),
    ]
    extraction = [e for e in events if e.phase == "features"]
    assert extraction and all((e.kind, e.epoch, e.epochs) == ("batch", 0, 2) for e in extraction)
    assert extraction[-1].batch == extraction[-1].batches
    assert res.extra["weights_label"] == WEIGHT_SOURCE_LABELS["none"]
    assert "preprocess_input" in res.extra["preprocessing"] and res.extra["weights_source"] == "none"


@pytest.fixture
def spy(monkeypatch):
    """Block1/block5 weights when the model is assembled and right after fine-tuning; can force the winner."""
    seen = {"winner": None}
    real_fit, real_assemble = T.fit_phase, T.assemble_model

    def layer(model, name):
        return model.get_layer("vgg16").get_layer(name) if model.name == "vgg16_transfer" else model.get_layer(name)

    def fit(model, *a, **kw):
        out = real_fit(model, *a, **kw)
        if kw["phase"] == "fine-tune":
            seen["b5_after"] = layer(model, "block5_conv1").get_weights()[0].copy()
            if seen["winner"]:  # pretend the fine-tuning's best val_loss beat the head's, or not
                out = dataclasses.replace(out, best_value=-np.inf if seen["winner"] == "fine-tune" else np.inf)
        return out

    def assemble(base, cfg):
        seen["b1"] = base.get_layer("block1_conv1").get_weights()[0].copy()
        seen["b5"] = base.get_layer("block5_conv1").get_weights()[0].copy()
        return real_assemble(base, cfg)

    monkeypatch.setattr(T, "fit_phase", fit)
    monkeypatch.setattr(T, "assemble_model", assemble)
    return seen


@pytest.mark.parametrize("winner", ["fine-tune", "head"])
def test_fine_tuning_trains_block5_not_block1(data, store, spy, winner):
    spy["winner"] = winner
    events = []
    cfg = FAST.replace(fine_tune_epochs=2, fine_tune_lr=1e-3)
    res = T.train_transfer(vgg_cfg(), cfg, data, progress=events.append, store=store)
    assert res.phases == [
        {"name": "head", "first_epoch": 1, "epochs": 2},
        {"name": "fine-tune", "first_epoch": 3, "epochs": 2},
    ]
    assert len(res.history["loss"]) == len(res.history["val_accuracy"]) == len(res.epoch_seconds) == 4
    assert [(e.phase, e.epoch, e.epochs) for e in events if e.kind == "epoch"] == [
        ("head", 1, 4),
        ("head", 2, 4),
        ("fine-tune", 3, 4),
        ("fine-tune", 4, 4),
    ]
    assert not np.allclose(spy["b5_after"], spy["b5"]), "fine-tuning must change block5"
    base = res.model.get_layer("vgg16")
    np.testing.assert_array_equal(base.get_layer("block1_conv1").get_weights()[0], spy["b1"])
    final_b5 = base.get_layer("block5_conv1").get_weights()[0]
    assert res.extra["best_phase"] == winner
    if winner == "fine-tune":
        assert res.best_epoch in (3, 4)
        np.testing.assert_array_equal(final_b5, spy["b5_after"])
    else:  # the head's epoch stayed best: its weights are handed back
        assert res.best_epoch in (1, 2)
        np.testing.assert_array_equal(final_b5, spy["b5"])
        loss, _ = res.model.evaluate(preprocess_images(data.x01("val"), "none"), data.y_val, verbose=0)
        assert loss == pytest.approx(res.history["val_loss"][res.best_epoch - 1], rel=1e-4)
    ft = res.extra["fine_tune"]
    assert ft["layers"] == ["block5_conv1", "block5_conv2", "block5_conv3"]
    assert ft["trainable_params"] == 3 * 512 * (9 * 512 + 1) and "block4_pool" in ft["on"]


def test_augmentation_trains_on_images_and_says_so(data, store, spy, count_extractions):
    cfg = TrainConfig(epochs=1, batch_size=8, augment=AugmentConfig(hflip=True), fine_tune_epochs=1, fine_tune_lr=1e-3)
    res = T.train_transfer(vgg_cfg(), cfg, data, store=store)
    assert count_extractions == []
    assert res.extra["features"].startswith("recomputed through the frozen base every epoch")
    assert "features_cache_hit" not in res.extra
    assert res.extra["fine_tune"]["on"] == "images with augmentation"
    assert [p["name"] for p in res.phases] == ["head", "fine-tune"]
    assert not np.allclose(spy["b5_after"], spy["b5"])  # fine-tuning on images changes block5 ...
    b1 = res.model.get_layer("vgg16").get_layer("block1_conv1").get_weights()[0]
    np.testing.assert_array_equal(b1, spy["b1"])  # ... and leaves block1 alone


@pytest.mark.parametrize("stop_at, phases", [(1, ["head"]), (3, ["head", "fine-tune"])])
def test_stop_works_in_both_phases(data, store, stop_at, phases):
    stop = threading.Event()

    def progress(ev):
        if ev.kind == "epoch" and ev.epoch == stop_at:
            stop.set()

    cfg = TrainConfig(epochs=2, batch_size=4, fine_tune_epochs=20)
    res = T.train_transfer(vgg_cfg(), cfg, data, progress=progress, stop_event=stop, store=store)
    assert res.stopped_by_user and [p["name"] for p in res.phases] == phases
    assert stop_at <= res.epochs_run <= stop_at + 1


class Spent:
    """A time budget that runs out when told (where training stops is what is tested, not the clock)."""

    def __init__(self):
        self.out = threading.Event()

    def reached(self) -> bool:
        return self.out.is_set()


@pytest.mark.parametrize("spent_at, phases", [(1, ["head"]), (2, ["head"]), (3, ["head", "fine-tune"])])
def test_a_time_budget_spans_both_phases_and_fine_tuning_does_not_start_once_it_is_spent(data, store, spent_at, phases):
    budget = Spent()

    def progress(ev):
        if ev.kind == "epoch" and ev.epoch == spent_at:
            budget.out.set()

    cfg = TrainConfig(epochs=2, batch_size=4, fine_tune_epochs=20)
    res = T.train_transfer(vgg_cfg(), cfg, data, progress=progress, budget=budget, store=store)
    assert res.stopped_by_budget and not res.stopped_by_user and [p["name"] for p in res.phases] == phases
    assert res.epochs_run == (2 if spent_at == 2 else spent_at + 1)  # spent in the head's last batch: no fine-tuning
