"""The frozen base's features: what they are, the cache key, and the store passed in (or none)."""

import dataclasses

import numpy as np
import pytest
from tinydata import write_tiny_dataset
from vggfiles import SIZE, keras_vgg_arrays, write_legacy_h5

import core.training.base_features as FT
from core.data import load_dataset, prepare_data
from core.models.vgg16 import build_base
from core.models.weight_sources import preprocess_images


def prepared(root, size=SIZE):
    return prepare_data(load_dataset(root, image_size=size), loss="categorical", seed=0)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_tiny_dataset(tmp_path_factory.mktemp("tf") / "tiny", per_class=8, size=SIZE)


@pytest.fixture(scope="module")
def data(folder):
    return prepared(folder)


@pytest.fixture(scope="module")
def random_base():
    return build_base("none", SIZE, seed=3)


@pytest.fixture
def count_extractions(monkeypatch):
    calls = []
    real = FT.extract_features

    def counted(*a, **kw):
        calls.append(len(a[1]))
        return real(*a, **kw)

    monkeypatch.setattr(FT, "extract_features", counted)
    return calls


def test_features_key_changes_with_each_input():
    k = FT.features_key("fp", 64, "w", "pre")
    assert k == FT.features_key("fp", 64, "w", "pre") and len(k) == 24
    assert (
        len(
            {
                k,
                FT.features_key("fp2", 64, "w", "pre"),
                FT.features_key("fp", 48, "w", "pre"),
                FT.features_key("fp", 64, "w2", "pre"),
                FT.features_key("fp", 64, "w", "pre2"),
            }
        )
        == 5
    )


def test_cached_features_are_the_bases_pooled_output(data, store, random_base):
    import keras

    base, info = random_base
    seen = []
    feats = FT.cached_features(
        base,
        info,
        data.dataset.images,
        data.dataset.fingerprint,
        store=store,
        batch_size=5,
        progress=lambda b, n: seen.append((b, n)),
    )
    x = preprocess_images(data.dataset.images / np.float32(255), "none")
    direct = keras.layers.GlobalAveragePooling2D()(base(x)).numpy()
    assert feats.pooled.shape == (len(x), 512) and not feats.cache_hit and feats.seconds > 0
    np.testing.assert_allclose(feats.pooled, direct, rtol=1e-4, atol=1e-5)
    assert (np.std(feats.pooled, axis=0) > 0).mean() > 0.5  # images differ, and so do their features
    n_batches = -(-len(x) // 5)
    assert seen == [(i, n_batches) for i in range(1, n_batches + 1)]


def test_feature_cache_is_reused_and_invalidated(folder, data, store, tmp_path, count_extractions):
    def features(weights, d=data, size=SIZE, seed=42):
        base, info = build_base(weights, size, seed=seed)
        return FT.cached_features(base, info, d.dataset.images, d.dataset.fingerprint, store=store)

    n = len(data.dataset.images)
    first = features("none")
    assert count_extractions == [n] and not first.cache_hit
    again = features("none")
    assert count_extractions == [n] and again.cache_hit and again.seconds == 0 and again.key == first.key
    np.testing.assert_array_equal(again.pooled, first.pooled)

    arrays = keras_vgg_arrays(seed=4)
    doubled = {k: [v[0] * 2, v[1]] for k, v in arrays.items()}
    other = prepared(write_tiny_dataset(tmp_path / "other", per_class=8, size=SIZE, seed=5))
    changes = {
        "dataset": lambda: features("none", d=other),
        "input size": lambda: features("none", d=prepared(folder, size=48), size=48),
        "random base seed": lambda: features("none", seed=7),
        "weights file": lambda: features(str(write_legacy_h5(tmp_path / "w.h5", arrays))),
        "file contents": lambda: features(str(write_legacy_h5(tmp_path / "w.h5", doubled))),
    }
    for i, (what, compute) in enumerate(changes.items(), start=2):
        assert not compute().cache_hit, f"{what} changed: the features must be computed again"
        assert len(count_extractions) == i
        assert compute().cache_hit, f"{what}: computed once, then cached"
        assert len(count_extractions) == i


def test_without_a_store_nothing_is_cached(data, store, random_base, count_extractions):
    base, info = random_base
    images, fp = data.dataset.images, data.dataset.fingerprint
    a = FT.cached_features(base, info, images, fp, store=None, block4=True)
    b = FT.cached_features(base, info, images, fp, store=None, block4=True)
    assert count_extractions == [len(images)] * 2 and not (a.cache_hit or b.cache_hit)
    assert a.block4 is not None and not list(store.cache_dir.iterdir())
    np.testing.assert_array_equal(a.pooled, b.pooled)


def test_block4_maps_are_cached_under_the_limit(data, store, random_base, count_extractions, monkeypatch):
    import keras

    base, info = random_base
    images, fp = data.dataset.images, data.dataset.fingerprint
    n, side = len(images), SIZE // 16
    feats = FT.cached_features(base, info, images, fp, store=store, block4=True)
    assert feats.block4.shape == (n, side, side, 512) and feats.extra == {}
    block4 = keras.Model(base.input, base.get_layer("block4_pool").output)
    direct = block4(preprocess_images(images / np.float32(255), "none")).numpy()
    np.testing.assert_allclose(feats.block4, direct, rtol=1e-4, atol=1e-5)
    pooled_only = FT.cached_features(base, info, images, fp, store=store)
    assert pooled_only.cache_hit and pooled_only.block4 is None
    assert FT.cached_features(base, info, images, fp, store=store, block4=True).cache_hit
    assert count_extractions == [n]
    monkeypatch.setattr(FT, "BLOCK4_CACHE_LIMIT", 0)
    over = FT.cached_features(base, info, images, fp, store=store, block4=True)
    assert over.cache_hit and over.block4 is None and over.extra["block4"].startswith("not cached:")
    assert count_extractions == [n]


def test_feature_source_without_a_dataset_uses_the_arrays(data):
    images, fp, train_idx, val_idx = FT.feature_source(data)
    assert images is data.dataset.images and fp == data.dataset.fingerprint
    np.testing.assert_array_equal(train_idx, data.train_index)
    bare = dataclasses.replace(data, dataset=None)
    images, fp2, train_idx, val_idx = FT.feature_source(bare)
    n1 = len(data.x_train)
    assert len(images) == n1 + len(data.x_val) and fp2 != fp
    np.testing.assert_array_equal(images[val_idx], data.x_val)
    assert (train_idx.tolist(), FT.feature_source(bare)[1]) == (list(range(n1)), fp2)
