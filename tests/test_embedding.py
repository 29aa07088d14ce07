"""core.inside.embedding and `python -m core embed`: test images in the penultimate layer's feature space.

Checked against independent computations: the features from the stored Keras model itself (not the flat
copy), PCA as a NumPy SVD, and k-NN as a brute-force loop. The CLI tests live here rather than in
test_cli.py: they share this file's stored runs.
"""

import json

import numpy as np
import pytest
from PIL import Image
from tinydata import run_cli
from trainedruns import VGG, VGG_TRAIN

from core.base.config import ModelConfig, TrainConfig
from core.base.errors import UserError
from core.inside import UnknownRunError, embed, embed_run, open_run
from core.inside.embedding import K, features_from_cache, knn_accuracy, project, training_split
from core.inside.pictures import class_color, scatter_picture
from core.store.runstore import RunStore

CNN = ModelConfig(input_size=16, blocks=2, filters=8, dense_units=16, dropout=0.25)
TRAIN = TrainConfig(epochs=8, batch_size=8, learning_rate=3e-3, seed=1)  # precision "auto": this machine's default
# The numbers are checked in both precisions, bfloat16 forced (TensorFlow emulates it on a CPU without it).
PRECISIONS = ("bfloat16", "float32")


@pytest.fixture(scope="module")
def home(trained_runs, tmp_path_factory):
    return trained_runs.home(tmp_path_factory.mktemp("embedding"), per_class=20)


@pytest.fixture(scope="module")
def trained(home):
    """``trained(model_cfg, train_cfg)``: the run in this module's store, trained once per session
    (tests/trainedruns.py; an "auto" run is the same run as the precision it resolves to on this machine)."""
    return home


@pytest.fixture(scope="module")
def cnn_run(home):
    return home(CNN, TRAIN)


@pytest.fixture(scope="module")
def vgg_run(home):
    return home(VGG, VGG_TRAIN)


def _keras_features(store: RunStore, run_id: str, images: np.ndarray) -> np.ndarray:
    """The penultimate layer's output straight from the stored Keras model (an independent path to the features),
    computed as the model computes when it predicts: ``predict``, in the run's own precision (a bfloat16 run's
    features are bfloat16 numbers). Calling the model outside ``predict`` rounds a bfloat16 network op by op
    instead of fused, one bfloat16 step (2^-7 of a value) apart from the stored predictions."""
    import keras

    from core.models.pipeline import model_input

    model = store.load_model(run_id)
    x = model_input(ModelConfig.from_dict(store.get(run_id).model_config), images.astype("float32") / 255.0)
    sub = keras.Model(model.inputs[0], model.get_layer("dense").output)  # the VGG16 head's: the base is one layer
    return np.asarray(sub.predict(x, verbose=0), dtype="float64")


@pytest.mark.parametrize("precision", PRECISIONS)
def test_pca_coordinates_equal_an_svd_of_the_stored_models_own_features(home, trained, precision):
    store, _ = home
    cnn_run = trained(CNN, TRAIN.replace(precision=precision))
    arrays = store.load_arrays(cnn_run.run_id)
    em = embed_run(store, cnn_run.run_id, "pca")
    features = _keras_features(store, cnn_run.run_id, arrays["test_images"])
    # That path is the stored predictions' own: the whole model on it gives the stored probabilities.
    model = store.load_model(cnn_run.run_id)
    np.testing.assert_allclose(
        model.predict(arrays["test_images"].astype("float32") / 255.0, verbose=0), arrays["probs"], atol=1e-6
    )
    assert cnn_run.extra["precision"] == precision
    assert features.shape == (len(arrays["y_true"]), CNN.dense_units) and em.units == CNN.dense_units
    centred = features - features.mean(axis=0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    expected = centred @ vt[:2].T
    for axis in range(2):  # an axis' direction is a convention: compare up to its sign
        sign = np.sign(expected[:, axis] @ em.coords[:, axis]) or 1.0
        np.testing.assert_allclose(
            em.coords[:, axis], sign * expected[:, axis], atol=1e-3 * (1 + np.abs(expected).max())
        )
    variance = s**2 / (s**2).sum()
    assert em.explained == pytest.approx(tuple(variance[:2]), abs=1e-4)
    from sklearn.decomposition import PCA

    np.testing.assert_allclose(em.coords, PCA(n_components=2).fit_transform(features), atol=1e-3)
    assert em.layer == "dense" and em.method == "pca" and em.axis_titles()[0].startswith("PCA 1 (")


def test_labels_predictions_and_the_models_accuracy_are_the_stored_ones(home, cnn_run):
    store, _ = home
    arrays = store.load_arrays(cnn_run.run_id)
    em = embed_run(store, cnn_run.run_id)
    np.testing.assert_array_equal(em.labels, arrays["y_true"])
    np.testing.assert_array_equal(em.predicted, arrays["probs"].argmax(axis=1))
    assert em.model_accuracy == pytest.approx(cnn_run.test["accuracy"])
    assert int(em.wrong.sum()) == int((arrays["probs"].argmax(axis=1) != arrays["y_true"]).sum())
    assert em.class_names == cnn_run.data["classes"]


@pytest.mark.parametrize("precision", PRECISIONS)
def test_the_last_layer_on_the_features_gives_the_networks_probabilities(home, trained, precision):
    store, _ = home
    for rec in (trained(CNN, TRAIN.replace(precision=precision)), trained(VGG, VGG_TRAIN.replace(precision=precision))):
        net = open_run(store, rec.run_id)
        images = store.load_arrays(rec.run_id)["test_images"]
        from_features = net.probabilities_from_features(net.features(images))
        np.testing.assert_allclose(from_features, net.probabilities(images), atol=1e-5)
        assert from_features.shape == (len(images), 3)


def test_tsne_draws_the_same_picture_twice(home, cnn_run):
    store, _ = home
    first = embed_run(store, cnn_run.run_id, "tsne")
    second = embed_run(store, cnn_run.run_id, "tsne")
    np.testing.assert_array_equal(first.coords, second.coords)
    assert first.explained is None and first.axis_titles() == ("t-SNE 1", "t-SNE 2")
    assert np.ptp(first.coords, axis=0).min() > 0  # spread out, not collapsed onto a point
    assert first.knn_accuracy == embed_run(store, cnn_run.run_id, "pca").knn_accuracy  # measured in the features


def _brute_knn(x: np.ndarray, y: np.ndarray, k: int) -> float:
    right = 0
    for i in range(len(x)):
        d = np.linalg.norm(x - x[i], axis=1)
        d[i] = np.inf
        near = np.argsort(d, kind="stable")[:k]
        votes = np.bincount(y[near], minlength=y.max() + 1)
        tied = {c for c in range(len(votes)) if votes[c] == votes.max()}
        guess = next(y[j] for j in near if y[j] in tied)
        right += guess == y[i]
    return right / len(x)


def test_knn_accuracy_equals_a_brute_force_leave_one_out():
    rng = np.random.default_rng(4)
    y = np.repeat(np.arange(3), 12)
    x = rng.normal(size=(36, 6)) + y[:, None] * 0.9  # overlapping groups: neither 0 nor 1
    acc, k = knn_accuracy(x, y)
    assert k == K and acc == pytest.approx(_brute_knn(x, y, K))
    assert 0.4 < acc < 1.0
    # Two clean groups far apart: every neighbour agrees.
    clean = np.concatenate([rng.normal(size=(8, 2)), rng.normal(size=(8, 2)) + 50])
    assert knn_accuracy(clean, np.repeat([0, 1], 8)) == (1.0, K)
    # Fewer images than neighbours: k shrinks; a single image has no neighbour at all.
    assert knn_accuracy(x[:3], np.array([0, 0, 1]))[1] == 2
    assert knn_accuracy(x[:1], np.array([0])) == (None, 0)


def test_the_sentence_sets_the_number_beside_the_networks_accuracy(home, cnn_run):
    store, _ = home
    em = embed_run(store, cnn_run.run_id)
    n = len(em.labels)
    text = em.sentence()
    assert (
        f"an image's 5 nearest neighbours name its true class for {em.knn_accuracy:.0%} of the {n} test images" in text
    )
    assert f"the network itself is right on {em.model_accuracy:.0%}" in text
    from dataclasses import replace

    assert "in groups about as clean as" in replace(em, knn_accuracy=0.8, model_accuracy=0.82).sentence()
    assert "overlap there more than its answers suggest" in replace(em, knn_accuracy=0.5, model_accuracy=0.9).sentence()
    assert "the neighbours do better" in replace(em, knn_accuracy=0.9, model_accuracy=0.6).sentence()


@pytest.mark.parametrize("precision", PRECISIONS)
def test_vgg16_features_are_the_heads_hidden_layer(home, trained, precision):
    store, _ = home
    vgg_run = trained(VGG, VGG_TRAIN.replace(precision=precision))
    arrays = store.load_arrays(vgg_run.run_id)
    net = open_run(store, vgg_run.run_id)
    assert net.feature_layer == "dense"
    em = embed(net, arrays["test_images"], arrays["y_true"], arrays["probs"], "pca")
    assert em.coords.shape == (len(arrays["y_true"]), 2) and em.units == 8
    expected = _keras_features(store, vgg_run.run_id, arrays["test_images"])
    np.testing.assert_allclose(net.features(arrays["test_images"]), expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("precision", PRECISIONS)
def test_vgg16_features_come_from_the_runs_cached_base_features(home, trained, precision):
    from dataclasses import replace

    store, _ = home
    vgg_run = trained(VGG, VGG_TRAIN.replace(precision=precision))
    arrays = store.load_arrays(vgg_run.run_id)
    net = open_run(store, vgg_run.run_id)
    assert vgg_run.extra["features_key"]  # the training cached the base's pooled features of the dataset
    cached = features_from_cache(store, vgg_run, net, arrays["test_index"])
    assert cached is not None and cached[1] is None
    np.testing.assert_allclose(cached[0], net.features(arrays["test_images"]), rtol=1e-4, atol=1e-4)
    em = embed_run(store, vgg_run.run_id, "pca", net=net)
    from sklearn.decomposition import PCA

    np.testing.assert_allclose(em.coords, PCA(n_components=2).fit_transform(cached[0].astype("float64")), atol=1e-3)
    # Fine-tuned (the base changed after the features were cached), or the cache gone: computed from the images.
    tuned = replace(vgg_run, phases=[*vgg_run.phases, {"name": "fine-tune", "first_epoch": 2, "epochs": 1}])
    assert features_from_cache(store, tuned, net, arrays["test_index"]) is None
    gone = replace(vgg_run, extra={**vgg_run.extra, "features_key": "0" * 24})
    assert features_from_cache(store, gone, net, arrays["test_index"]) is None


def test_unknown_method_unknown_run_and_a_run_without_test_images(home, cnn_run, tmp_path):
    store, _ = home
    with pytest.raises(UserError, match="must be one of pca, tsne. Got 'umap'"):
        embed_run(store, cnn_run.run_id, "umap")
    with pytest.raises(UnknownRunError):
        embed_run(store, "nope")
    with pytest.raises(UserError, match="at least 3 images"):
        project(np.zeros((2, 4)), "pca")
    (store.runs_dir / cnn_run.run_id / "arrays.npz").rename(tmp_path / "arrays.npz")
    try:
        with pytest.raises(UserError, match="has no stored test images"):
            embed_run(store, cnn_run.run_id)
    finally:
        (tmp_path / "arrays.npz").rename(store.runs_dir / cnn_run.run_id / "arrays.npz")


@pytest.mark.parametrize("precision", PRECISIONS)
def test_training_images_are_the_runs_own_split_in_the_same_projection(home, trained, precision):
    store, _ = home
    cnn_run = trained(CNN, TRAIN.replace(precision=precision))
    arrays = store.load_arrays(cnn_run.run_id)
    em = embed_run(store, cnn_run.run_id, "pca", with_train=True)
    n_test, n_train = len(arrays["y_true"]), cnn_run.data["n_train"]
    assert em.n_test == n_test and len(em.labels) == n_test + n_train and em.is_test.sum() == n_test
    # The training split found again: the counts the training recorded, and no test image among them.
    assert np.bincount(em.labels[n_test:], minlength=3).tolist() == cnn_run.data["class_counts"]["train"]
    train_images, _, _ = training_split(store, cnn_run)
    test_bytes = {im.tobytes() for im in arrays["test_images"]}
    assert not any(im.tobytes() in test_bytes for im in train_images)
    # One PCA over both sets, as an SVD of the stored model's own features of both.
    features = np.concatenate(
        [
            _keras_features(store, cnn_run.run_id, arrays["test_images"]),
            _keras_features(store, cnn_run.run_id, train_images),
        ]
    )
    centred = features - features.mean(axis=0)
    expected = centred @ np.linalg.svd(centred, full_matrices=False)[2][:2].T
    for axis in range(2):
        sign = np.sign(expected[:, axis] @ em.coords[:, axis]) or 1.0
        np.testing.assert_allclose(
            em.coords[:, axis], sign * expected[:, axis], atol=1e-3 * (1 + np.abs(expected).max())
        )
    # The number and the mistakes stay the test images'.
    test_only = embed_run(store, cnn_run.run_id, "pca")
    assert (em.knn_accuracy, em.model_accuracy, em.mistakes) == (
        test_only.knn_accuracy,
        test_only.model_accuracy,
        test_only.mistakes,
    )


def test_training_images_of_changed_data_are_refused(home, cnn_run):
    from dataclasses import replace

    store, _ = home
    changed = replace(cnn_run, data={**cnn_run.data, "fingerprint": "0" * 64})
    with pytest.raises(UserError, match="have changed since it was trained"):
        training_split(store, changed)
    with pytest.raises(UserError, match="have changed since it was trained"):
        training_split(store, cnn_run, test_index=np.arange(3))


def test_the_picture_colours_each_class_and_crosses_the_mistakes():
    coords = np.array([[0.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    picture = scatter_picture(coords, np.array([0, 1, 2]), np.array([False, False, True]), ["a", "b", "c"], "t")
    colours = {tuple(int(v) for v in c) for c in picture.reshape(-1, 3)}
    for c in range(3):
        rgb = tuple(int(class_color(c)[i : i + 2], 16) for i in (1, 3, 5))
        assert rgb in colours
    assert picture.shape[2] == 3 and picture.shape[1] > picture.shape[0]  # the legend sits on the right


# --------------------------------------------------------------------------- python -m core embed


@pytest.fixture
def in_home(home, cnn_run, monkeypatch):
    monkeypatch.setenv("CNNLAB_HOME", str(home[0].home))
    return home[0], cnn_run


def test_embed_json_has_coordinates_labels_and_predictions(capsys, in_home, tmp_path):
    store, rec = in_home
    out = tmp_path / "embed.png"
    code, text, err = run_cli(capsys, "embed", rec.run_id, "--method", "pca", "--out", str(out), "--json")
    assert code == 0, err
    d = json.loads(text)
    em = embed_run(store, rec.run_id, "pca")
    arrays = store.load_arrays(rec.run_id)
    assert d["method"] == "pca" and d["layer"] == "dense" and d["units"] == CNN.dense_units and d["file"] == str(out)
    assert len(d["points"]) == len(arrays["y_true"])
    np.testing.assert_allclose([[p["x"], p["y"]] for p in d["points"]], em.coords, atol=1e-4)
    names = rec.data["classes"]
    assert [p["true"] for p in d["points"]] == [names[i] for i in arrays["y_true"]]
    assert [p["predicted"] for p in d["points"]] == [names[i] for i in arrays["probs"].argmax(axis=1)]
    assert d["knn_accuracy"] == pytest.approx(em.knn_accuracy, abs=1e-4) and d["k"] == 5
    assert d["model_accuracy"] == pytest.approx(rec.test["accuracy"], abs=1e-4)
    with Image.open(out) as im:
        assert im.format == "PNG" and im.size[0] >= 640


def test_embed_with_training_images(capsys, in_home, tmp_path):
    _, rec = in_home
    out = tmp_path / "both.png"
    code, text, err = run_cli(capsys, "embed", rec.run_id, "--train-images", "--out", str(out), "--json")
    assert code == 0, err
    d = json.loads(text)
    assert d["training_images"] == rec.data["n_train"] and d["test_images"] == rec.data["n_test"]
    splits = [p["split"] for p in d["points"]]
    assert splits == ["test"] * rec.data["n_test"] + ["train"] * rec.data["n_train"]
    assert [p["index"] for p in d["points"] if p["split"] == "train"] == list(range(rec.data["n_train"]))
    assert out.exists()


def test_embed_text_names_the_layer_and_the_separation(capsys, in_home):
    store, rec = in_home
    code, text, err = run_cli(capsys, "embed", rec.run_id, "--method", "tsne")
    assert code == 0, err
    n = len(store.load_arrays(rec.run_id)["y_true"])
    assert f"t-SNE of the dense layer ({CNN.dense_units} numbers per image) for {n} test images" in text
    assert embed_run(store, rec.run_id, "tsne").sentence() in text and "Wrote" not in text


@pytest.mark.parametrize(
    "out, needle",
    [("embed.jpg", "a .png file. Got 'embed.jpg'"), ("/no/such/folder/e.png", "the folder '/no/such/folder' does not")],
)
def test_embed_a_bad_out_is_one_line_and_exit_2(capsys, in_home, out, needle):
    _, rec = in_home
    code, text, err = run_cli(capsys, "embed", rec.run_id, "--out", out)
    assert code == 2 and text == "" and err.count("\n") == 1 and needle in err


def test_embed_an_unknown_method_is_refused_by_the_parser(capsys, in_home):
    with pytest.raises(SystemExit) as exc:
        run_cli(capsys, "embed", in_home[1].run_id, "--method", "umap")
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1 and "invalid choice: 'umap'" in err


def test_embed_an_unknown_run_is_one_line_and_exit_2(capsys, in_home):
    code, text, err = run_cli(capsys, "embed", "0123456789abcdef")
    assert code == 2 and text == "" and err.count("\n") == 1 and "0123456789abcdef" in err
