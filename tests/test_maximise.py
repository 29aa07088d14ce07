"""core.inside.maximise and `python -m core maximise`: an image grown from noise to excite one filter or class.

Checked against independent computations: the activation on the grown image from the stored Keras model
itself (not the opened float32 copy), the test images' mean from the same, the kept file's bytes and time.
The CNN run trains in bfloat16 (mixed precision; the ascent computes in float32 inside the engine); the VGG16
run at the machine's default precision. The CLI tests live here: they share this file's stored runs.
"""

import importlib
import json
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image
from tinydata import run_cli
from trainedruns import VGG, VGG_TRAIN

from core.base.config import ModelConfig, TrainConfig
from core.base.errors import UserError
from core.inside import UnknownLayerError, open_run
from core.inside.maximise import AscentSettings, blur, default_settings, maximise, maximise_run, stored_maximised
from core.store.runstore import RunStore
from core.training.experiment import run_experiment

CNN = ModelConfig(input_size=16, blocks=2, filters=8, dense_units=16, dropout=0.25)
FAST = AscentSettings(steps=40, step_size=0.03, jitter=2, blur_every=10, blur_sigma=0.5, decay=0.002)
mx = importlib.import_module("core.inside.maximise")  # the module (core.inside.maximise is also the function)
FACTOR = 3.0  # "well above": the grown image's mean activation at least 3 times the test images' mean


@pytest.fixture(scope="module")
def home(trained_runs, tmp_path_factory):
    return trained_runs.home(tmp_path_factory.mktemp("maximise"), per_class=16)


@pytest.fixture(scope="module")
def cnn_run(home):
    return home(CNN, TrainConfig(epochs=6, batch_size=8, learning_rate=3e-3, seed=1, precision="bfloat16"))


@pytest.fixture(scope="module")
def cnn(home, cnn_run):
    return home.open(cnn_run)


@pytest.fixture(scope="module")
def vgg_run(home):
    return home(VGG, VGG_TRAIN)


def _results(folder):
    """The grown images kept in a run's folder (not the test images' measures, ``tests_<layer>_...``)."""
    return [p for p in folder.glob("*.npz") if not p.name.startswith("tests_")]


def _stored_activation(store, run_id, layer, index, images_uint8):
    """The filter's mean activation per image from the stored Keras model itself, inputs scaled by hand."""
    import keras

    model = store.load_model(run_id)
    sub = keras.Model(model.inputs[0], model.get_layer(layer).output)
    return np.asarray(sub(images_uint8.astype("float32") / 255.0, training=False), dtype="float64")[..., index].mean(
        axis=(1, 2)
    )


def test_the_grown_image_excites_its_filter_well_above_the_test_images(home, cnn_run, cnn):
    store, _ = home
    tests = store.load_arrays(cnn_run.run_id)["test_images"]
    for layer in ("block1_conv", "block2_conv"):
        m = maximise(cnn, layer, 1, settings=FAST, test_images=tests)
        assert m.image.shape == (16, 16, 3) and m.image.dtype == np.uint8
        # The numbers are the stored model's own (bfloat16 there, float32 here: a few percent apart).
        on_image = _stored_activation(store, cnn_run.run_id, layer, 1, m.image[None])[0]
        on_tests = _stored_activation(store, cnn_run.run_id, layer, 1, tests)
        assert m.value == pytest.approx(on_image, rel=0.05, abs=1e-3)
        assert m.test_mean == pytest.approx(on_tests.mean(), rel=0.05, abs=1e-3) and m.test_images == len(tests)
        assert m.value > FACTOR * m.test_mean and m.value > m.test_max and m.value > m.start_value
        assert m.ratio == pytest.approx(m.value / m.test_mean)
        assert m.curve[-1] > m.curve[0]  # the ascent climbed
        assert f"filter 1 of {layer} gives a mean activation of {m.value:.3f}" in m.sentence()
        assert f"its average over the {len(tests)} test images" in m.sentence()


def test_a_class_score_is_raised_above_every_test_image(home, cnn_run, cnn):
    store, _ = home
    arrays = store.load_arrays(cnn_run.run_id)
    m = maximise(cnn, class_index=2, settings=FAST, test_images=arrays["test_images"])
    scores = cnn.scores(cnn.prepare(arrays["test_images"]))[:, 2]
    assert m.kind == "class" and m.class_name == cnn.class_names[2] and m.layer == "output"
    assert m.test_mean == pytest.approx(float(scores.mean()), abs=1e-4)
    # From noise, in 40 steps: the score climbs far above the test images' mean (the class's own images
    # included), and the network calls the grown image that class.
    assert m.value > m.test_mean + 1.0 and m.value > m.start_value + 1.0 and m.curve[-1] > m.curve[0]
    assert m.probability == pytest.approx(float(cnn.probabilities(m.image[None])[0, 2]), abs=1e-6)
    assert m.probability > 0.5
    assert f"score for {m.class_name} is {m.value:.2f} (probability {m.probability:.0%})" in m.sentence()


def test_seeded_results_are_identical_and_another_seed_differs(cnn):
    a = maximise(cnn, "block2_conv", 3, settings=FAST)
    b = maximise(cnn, "block2_conv", 3, settings=FAST)
    c = maximise(cnn, "block2_conv", 3, settings=replace(FAST, seed=7))
    assert np.array_equal(a.image, b.image) and a.value == b.value
    assert not np.array_equal(a.image, c.image)


def test_a_second_request_comes_from_the_runs_folder_without_computing(home, cnn_run, cnn, monkeypatch):
    store, _ = home
    calls, steps = [], []
    real = mx.maximise
    monkeypatch.setattr(mx, "maximise", lambda *a, **k: calls.append(a[1:3]) or real(*a, **k))
    first = maximise_run(store, cnn_run.run_id, "block1_conv", 2, settings=FAST, net=cnn)
    folder = store.runs_dir / cnn_run.run_id / "maximise"
    files = _results(folder)
    assert len(files) == 1 and calls == [("block1_conv", 2)] and not first.cached
    # The test images were measured once for the whole layer (every filter), kept beside the result.
    (layer_file,) = folder.glob("tests_block1_conv_*.npz")
    assert np.load(layer_file)["values"].shape == (len(store.load_arrays(cnn_run.run_id)["y_true"]), CNN.filters)
    mtime = files[0].stat().st_mtime_ns
    again = maximise_run(
        store, cnn_run.run_id, "block1_conv", 2, settings=FAST, net=cnn, progress=lambda *s: steps.append(s)
    )
    assert again.cached and calls == [("block1_conv", 2)] and steps == [(FAST.steps, FAST.steps)]
    assert np.array_equal(again.image, first.image) and again.value == first.value
    assert again.test_mean == first.test_mean and np.array_equal(again.curve, first.curve)
    assert files[0].stat().st_mtime_ns == mtime
    # Another filter or other settings are other files; the run opened from the store finds the same one.
    other = maximise_run(store, cnn_run.run_id, "block1_conv", 2, settings=replace(FAST, steps=41), net=cnn)
    assert not other.cached and len(calls) == 2 and other.test_mean == first.test_mean
    assert len(_results(folder)) == 2 and list(folder.glob("tests_*.npz")) == [layer_file]
    assert maximise_run(store, cnn_run.run_id, "block1_conv", 2, settings=FAST).cached


def test_a_read_only_store_computes_without_keeping(home, cnn_run, cnn):
    store, _ = home
    ro = RunStore(store.home, readonly=True)
    m = maximise_run(ro, cnn_run.run_id, "block2_conv", 5, settings=replace(FAST, steps=5), net=cnn)
    assert not m.cached and stored_maximised(store, cnn, "block2_conv", 5, settings=replace(FAST, steps=5)) is None


def test_the_cache_is_the_runs_own_and_goes_with_it(home, data_run):
    store, _ = home
    net = open_run(store, data_run.run_id)
    maximise_run(store, data_run.run_id, "block1_conv", 0, settings=replace(FAST, steps=5), net=net)
    folder = store.runs_dir / data_run.run_id / "maximise"
    assert len(_results(folder)) == 1
    assert store.delete(data_run.run_id)
    assert not folder.exists() and not (store.runs_dir / data_run.run_id).exists()
    # Nothing is written for a run that is gone (its folder is not made again).
    assert store.run_cache_put(data_run.run_id, "maximise", "x", {"a": np.zeros(1)}) is None
    assert not (store.runs_dir / data_run.run_id).exists()


@pytest.fixture
def data_run(home):
    """A run of its own (another seed), to delete."""
    store, data = home
    cfg = CNN.replace(filters=4, blocks=1)
    return run_experiment(data, cfg, TrainConfig(epochs=1, batch_size=8, seed=5), store=store)


def test_another_run_never_reuses_a_result(home, cnn_run, cnn, vgg_run):
    store, _ = home
    maximise_run(store, cnn_run.run_id, "block1_conv", 0, settings=replace(FAST, steps=5), net=cnn)
    vgg = open_run(store, vgg_run.run_id)
    assert stored_maximised(store, vgg, "block1_conv1", 0, settings=replace(FAST, steps=5)) is None
    assert not (store.runs_dir / vgg_run.run_id / "maximise").exists()


def test_wrong_requests_are_user_errors_saying_what_to_pick(cnn):
    with pytest.raises(UnknownLayerError, match="has no layer 'nope'.*block1_conv"):
        maximise(cnn, "nope", 0)
    with pytest.raises(UserError, match="block2_conv has 16 filters, numbered 0 to 15; there is no filter 16"):
        maximise(cnn, "block2_conv", 16)
    with pytest.raises(UserError, match="dense is a Dense layer: it has no filters.*block1_conv, block2_conv"):
        maximise(cnn, "dense", 0)
    with pytest.raises(UserError, match="block1_pool is a pooling layer"):
        maximise(cnn, "block1_pool", 0)
    with pytest.raises(UserError, match="Class index 3 is out of range: the run has 3 classes"):
        maximise(cnn, class_index=3)
    with pytest.raises(UserError, match="not both"):
        maximise(cnn, "block1_conv", 0, class_index=0)
    with pytest.raises(UserError, match="Name a convolution layer"):
        maximise(cnn, "block1_conv")
    with pytest.raises(UserError, match="steps 1-2000"):
        AscentSettings(steps=0)


def test_a_vgg16_transfer_run(home, vgg_run):
    store, _ = home
    net = open_run(store, vgg_run.run_id)
    assert default_settings(net).steps < default_settings(open_run(store, _cnn_id(store))).steps
    settings = replace(default_settings(net), steps=20)
    m = maximise_run(store, vgg_run.run_id, "block2_conv1", 4, settings=settings, net=net)
    assert m.image.shape == (32, 32, 3) and m.value > FACTOR * m.test_mean and m.value > m.test_max
    # VGG16's own preprocessing (BGR, mean subtracted) is on the way in: the stored model says the same.
    import keras

    model = store.load_model(vgg_run.run_id)
    base = next(la for la in model.layers if isinstance(la, keras.Model))
    sub = keras.Model(base.inputs[0], base.get_layer("block2_conv1").output)
    expected = float(np.asarray(sub(net.prepare(m.image)), dtype="float64")[..., 4].mean())
    assert m.value == pytest.approx(expected, rel=0.05)
    c = maximise_run(store, vgg_run.run_id, class_index=1, settings=settings, net=net)
    assert c.value > c.test_max


def _cnn_id(store):
    return next(r["run_id"] for r in store.list_runs() if r["model"] == "cnn")


def test_blur_keeps_a_flat_image_and_the_mean():
    flat = np.full((1, 8, 8, 3), 0.3, dtype="float32")
    np.testing.assert_allclose(blur(flat, 1.0), flat, atol=1e-6)
    rng = np.random.default_rng(0)
    noise = rng.random((1, 16, 16, 3)).astype("float32")
    smooth = blur(noise, 1.0)
    assert smooth.std() < 0.6 * noise.std() and abs(smooth.mean() - noise.mean()) < 0.01
    assert blur(noise, 0) is noise


def test_cli_maximise_writes_the_picture_and_json(home, cnn_run, capsys, tmp_path, monkeypatch):
    store, _ = home
    monkeypatch.setenv("CNNLAB_HOME", str(store.home))
    out = tmp_path / "filter.png"
    code, text, err = run_cli(
        capsys,
        "maximise",
        cnn_run.run_id,
        "--layer",
        "block2_conv",
        "--filter",
        "6",
        "--steps",
        "20",
        "--out",
        str(out),
        "--json",
    )
    assert code == 0, err
    doc = json.loads(text)
    assert doc["target"] == "filter" and doc["layer"] == "block2_conv" and doc["filter"] == 6
    assert doc["settings"]["steps"] == 20 and doc["file"] == str(out) and not doc["cached"]
    assert doc["value"] > doc["test_mean"]
    assert Image.open(out).size == (256, 256)
    code, text, _ = run_cli(capsys, "maximise", cnn_run.run_id, "--class", "striped", "--steps", "10")
    assert code == 0 and "An image for the class striped, grown in" in text and "score for striped" in text
    code, text, _ = run_cli(
        capsys, "maximise", cnn_run.run_id, "--layer", "block2_conv", "--filter", "6", "--steps", "20"
    )
    assert code == 0 and "kept from an earlier request" in text


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--layer", "block1_conv"], "Name a convolution with --layer and one of its filters with --filter"),
        (["--layer", "dense", "--filter", "0"], "dense is a Dense layer"),
        (["--layer", "block1_conv", "--filter", "99"], "block1_conv has 8 filters, numbered 0 to 7"),
        (["--layer", "conv9", "--filter", "0"], "has no layer 'conv9'"),
        (["--class", "granite"], "it has no class 'granite'"),
        (["--class", "dark", "--layer", "block1_conv"], "not both"),
        (["--class", "dark", "--out", "x.txt"], "a .png file"),
    ],
)
def test_cli_maximise_user_errors_exit_2_with_one_line(home, cnn_run, capsys, monkeypatch, argv, message):
    store, _ = home
    monkeypatch.setenv("CNNLAB_HOME", str(store.home))
    code, out, err = run_cli(capsys, "maximise", cnn_run.run_id, *argv)
    assert code == 2 and out == "" and message in err and len(err.strip().splitlines()) == 1


def test_cli_maximise_unknown_run(home, capsys, monkeypatch):
    monkeypatch.setenv("CNNLAB_HOME", str(home[0].home))
    code, _, err = run_cli(capsys, "maximise", "nope", "--class", "dark")
    assert code == 2 and "No stored run 'nope'" in err
