"""core.inside: feature maps, the worked convolution, filters, Grad-CAM and occlusion on real Keras models."""

import random

import numpy as np
import pytest
from trainedruns import VGG, VGG_TRAIN

from core.base.config import ModelConfig, TrainConfig
from core.base.errors import UserError
from core.inside import (
    ModelMissingError,
    RunNetwork,
    UnknownClassError,
    UnknownLayerError,
    UnknownRunError,
    filters,
    grad_cam,
    occlusion,
    open_run,
    work_convolution,
)
from core.inside.pictures import colorize, grid_picture, overlay, tile
from core.models.layer_table import check_architecture, layer_table
from core.training.experiment import run_experiment

CNN = ModelConfig(input_size=16, blocks=2, filters=8, dense_units=16, dropout=0.0)
# float32: Grad-CAM is compared with a plain TensorFlow Grad-CAM on the stored model itself, whose gradients a
# bfloat16 run would round to 8 bits; a bfloat16 run is looked inside below
TRAIN = TrainConfig(epochs=12, batch_size=8, learning_rate=3e-3, seed=1, precision="float32")


@pytest.fixture(scope="module")
def home(trained_runs, tmp_path_factory):
    return trained_runs.home(tmp_path_factory.mktemp("inside"), per_class=16)


@pytest.fixture(scope="module")
def cnn_run(home):
    """A small CNN that has learned the tiny dataset (dark, horizontal stripes, vertical stripes)."""
    return home(CNN, TRAIN, min_accuracy=0.9)


@pytest.fixture(scope="module")
def cnn(home, cnn_run):
    return home.open(cnn_run)


@pytest.fixture(scope="module")
def images(home, cnn_run):
    return home.test_images(cnn_run)


@pytest.fixture(scope="module")
def vgg_run(home):
    return home(VGG, VGG_TRAIN.replace(precision="float32"))


@pytest.fixture(scope="module")
def vgg(home, vgg_run):
    return home.open(vgg_run)


def network(cfg: ModelConfig, seed: int = 0, names=None) -> RunNetwork:
    """A RunNetwork on a freshly built model (random weights; batch norm statistics made non-trivial)."""
    import keras

    from core.models.builder import build_model
    from core.store.runstore import RunRecord

    keras.utils.set_random_seed(seed)
    model = build_model(cfg)
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if type(layer).__name__ == "BatchNormalization":
            n = layer.get_weights()[0].shape[0]
            layer.set_weights(
                [rng.uniform(0.5, 2, n), rng.normal(0, 0.3, n), rng.normal(0, 0.2, n), rng.uniform(0.2, 3, n)]
            )
    names = names or [f"c{i}" for i in range(cfg.num_classes)]
    record = RunRecord(
        run_id="fresh",
        key="fresh",
        status="complete",
        created=0.0,
        source="-",
        label="fresh",
        data={"classes": names},
        model_config=cfg.to_dict(),
        train_config={},
        layers={},
        history={},
        epoch_seconds=[],
        best_epoch=0,
        stopped_early=False,
        stopped_by_user=False,
        restored_epoch=None,
        phases=[],
        diagnosis={},
        test={},
        seconds=0.0,
        versions={},
    )
    return RunNetwork(record, model)


def random_image(cfg: ModelConfig, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, cfg.input_shape(), dtype=np.uint8)


def _configs(n: int, seed: int = 3) -> list[ModelConfig]:
    rng = random.Random(seed)
    out = []
    while len(out) < n:
        blocks = rng.randint(1, 3)
        cfg = ModelConfig(
            input_size=rng.choice([16, 24, 32]),
            channels=rng.choice([1, 3]),
            num_classes=3,
            blocks=blocks,
            filters=rng.choice([2, 4]),
            kernel_size=rng.choice([1, 3, 5]),
            pool_size=rng.choice([1, 2, 3]),
            padding=rng.choice(["valid", "same"]),
            batchnorm=rng.random() < 0.5,
            dense_units=4,
            dropout=0.0,
        )
        if not check_architecture(cfg):
            out.append(cfg)
    return out


# --------------------------------------------------------------------------- feature maps


@pytest.mark.parametrize("cfg", _configs(6))
def test_feature_maps_have_the_layer_tables_shapes(cfg):
    net = network(cfg)
    rows = {r.name: r for r in layer_table(cfg).rows if len(r.output_shape) == 3}
    assert [la.name for la in net.layers] == list(rows)
    image = random_image(cfg)
    acts = net.activations(image)
    for info in net.layers:
        assert info.output_shape == rows[info.name].output_shape
        assert net.feature_maps(image, info.name).shape == rows[info.name].output_shape
        np.testing.assert_allclose(acts[info.name], net.feature_maps(image, info.name), atol=1e-5)
        assert (info.receptive_field, info.jump) == (rows[info.name].receptive_field, rows[info.name].jump)


def test_vgg16_feature_maps_reach_inside_the_nested_base(vgg, home, vgg_run):
    kids = {c.name: c.output_shape for c in layer_table(vgg.cfg).rows[0].children}
    assert [la.name for la in vgg.layers] == list(kids)
    image = home[0].load_arrays(vgg_run.run_id)["test_images"][0]
    for name in ("block1_conv1", "block3_pool", "block5_conv3"):
        assert vgg.feature_maps(image, name).shape == kids[name]
    assert vgg.layer("block5_pool").receptive_field == 212


def test_the_flat_copy_answers_as_the_stored_model_and_leaves_it_untouched(home, cnn_run, vgg_run):
    store = home[0]
    for rec in (cnn_run, vgg_run):
        model = store.load_model(rec.run_id)
        before = [w.copy() for w in model.get_weights()]
        net = open_run(store, rec.run_id, model=model)
        arrays = store.load_arrays(rec.run_id)
        np.testing.assert_allclose(net.probabilities(arrays["test_images"]), arrays["probs"], atol=1e-5)
        grad_cam(net, arrays["test_images"][0])
        for a, b in zip(before, model.get_weights(), strict=True):
            np.testing.assert_array_equal(a, b)
        assert model.layers[-1].get_config()["activation"] == "softmax"  # the stored model keeps its softmax


def test_unknown_run_missing_model_unknown_layer_and_class_are_user_errors(home, cnn, cnn_run, images):
    store = home[0]
    with pytest.raises(UnknownRunError, match="No stored run 'nope'"):
        open_run(store, "nope")
    with pytest.raises(UnknownLayerError, match="block1_conv, block1_pool"):
        cnn.layer("dense")
    with pytest.raises(UnknownClassError, match="no class 'granite'"):
        cnn.class_index("granite")
    with pytest.raises(UserError, match="16x16x3"):
        cnn.feature_maps(np.zeros((20, 20, 3), np.uint8), "block1_conv")
    # the same run, stored again without its network file
    rec = store.get(cnn_run.run_id)
    rec.run_id = "nomodel"
    store.save(rec, arrays=store.load_arrays(cnn_run.run_id))
    with pytest.raises(ModelMissingError, match="no saved network file"):
        open_run(store, "nomodel")
    assert issubclass(ModelMissingError, UserError) and issubclass(UnknownRunError, UserError)


# --------------------------------------------------------------------------- the worked convolution


@pytest.mark.parametrize("padding", ["valid", "same"])
@pytest.mark.parametrize("batchnorm", [False, True])
@pytest.mark.parametrize("kernel", [3, 4, 5])
def test_worked_convolution_equals_the_models_activation(padding, batchnorm, kernel):
    cfg = ModelConfig(
        input_size=24,
        blocks=2,
        filters=4,
        kernel_size=kernel,
        padding=padding,
        batchnorm=batchnorm,
        num_classes=3,
        dense_units=4,
    )
    net = network(cfg, seed=kernel)
    image = random_image(cfg, seed=kernel)
    acts = net.activations(image)
    rng = np.random.default_rng(0)
    for layer in ("block1_conv", "block2_conv"):
        h, w, f = net.layer(layer).output_shape
        units = [(0, 0, 0), (h - 1, w - 1, f - 1), (0, w - 1, 1)] + [
            (int(rng.integers(h)), int(rng.integers(w)), int(rng.integers(f))) for _ in range(5)
        ]
        for row, col, ch in units:
            wc = work_convolution(net, image, layer, row, col, ch, activations=acts)
            assert abs(wc.value - wc.model_value) < 1e-4, (layer, row, col, ch)
            assert wc.model_value == pytest.approx(float(acts[layer][row, col, ch]))
            assert wc.patch.shape == wc.kernel.shape == (kernel, kernel, 4 if layer == "block2_conv" else 3)
            assert wc.total == pytest.approx(float((wc.patch * wc.kernel).sum()))
            assert wc.per_channel().sum() == pytest.approx(wc.total)
            assert wc.value == max(wc.pre_activation, 0.0)
            if padding == "valid":
                assert wc.inside.all()
            if batchnorm:
                assert wc.batchnorm is not None and abs(wc.batchnorm.value - wc.batchnorm.model_value) < 1e-4
            else:
                assert wc.batchnorm is None
            if wc.pool is not None:
                assert wc.pool.value == pytest.approx(wc.pool.model_value, abs=1e-6)
                assert wc.pool.top <= row < wc.pool.top + 2 and wc.pool.left <= col < wc.pool.left + 2
    # 'same' at a corner reads the zero border: a 3x3 window hangs one pixel over on two sides.
    corner = work_convolution(net, image, "block1_conv", 0, 0, 0, activations=acts)
    if padding == "same":
        assert not corner.inside.all() and (corner.patch[~corner.inside] == 0).all()


def test_the_course_formula_and_a_unit_dropped_by_pooling():
    # 16 -> conv 3 valid -> 14 -> pool 3 -> 4: rows 12 and 13 fall in no pooling window
    cfg = ModelConfig(input_size=16, blocks=1, filters=32, pool_size=3, num_classes=3, dense_units=4)
    net = network(cfg)
    image = random_image(cfg)
    wc = work_convolution(net, image, "block1_conv", 13, 2, 5)
    assert wc.pool is None and "drops the last" in wc.pool_note
    assert wc.weights_per_filter == 28 and wc.to_dict()["formula"] == "32 x (3x3x3 + 1) = 896"
    inside = work_convolution(net, image, "block1_conv", 11, 2, 5)
    assert (inside.pool.out_row, inside.pool.out_col, inside.pool.top) == (3, 0, 9)
    with pytest.raises(UserError, match="in 0..13. Got 14"):
        work_convolution(net, image, "block1_conv", 14, 0, 0)
    with pytest.raises(UserError, match="not a convolution"):
        work_convolution(net, image, "block1_pool", 0, 0, 0)


def test_worked_convolution_in_vgg16(vgg, home, vgg_run):
    image = home[0].load_arrays(vgg_run.run_id)["test_images"][1]
    wc = work_convolution(vgg, image, "block1_conv2", 5, 9, 17)
    assert wc.input_name == "block1_conv1" and wc.patch.shape == (3, 3, 64)
    assert wc.value == pytest.approx(wc.model_value, rel=1e-4, abs=1e-4)
    assert wc.pool is not None and wc.pool.layer == "block1_pool"
    assert wc.pool.value == pytest.approx(wc.pool.model_value, rel=1e-6)
    first = work_convolution(vgg, image, "block1_conv1", 0, 0, 3)
    assert first.input_name == "input" and abs(first.patch[first.inside]).max() > 1  # caffe-style, 0-255 scale
    assert "another convolution" in first.pool_note


# --------------------------------------------------------------------------- filters


def test_first_layer_filters_are_rgb_patches_and_deeper_ones_per_input_channel(cnn, vgg):
    fs = filters(cnn)
    rgb = fs.rgb()
    assert fs.layer == "block1_conv" and rgb.shape == (8, 3, 3, 3)
    assert 0 <= rgb.min() and rgb.max() <= 1
    k = fs.kernel[:, :, :, 2]
    np.testing.assert_allclose(rgb[2], 0.5 + k / (2 * np.abs(k).max()), atol=1e-6)  # grey = a zero weight
    deep = filters(cnn, "block2_conv")
    assert deep.rgb() is None and deep.slices(3).shape == (8, 3, 3)
    with pytest.raises(UserError, match="no filters"):
        filters(cnn, "block1_pool")
    v = filters(vgg)
    assert v.bgr and v.count == 64
    k = v.kernel[:, :, :, 7]
    np.testing.assert_allclose(v.rgb()[7][:, :, 0], 0.5 + k[:, :, 2] / (2 * np.abs(k).max()), atol=1e-6)  # R = BGR[2]


# --------------------------------------------------------------------------- Grad-CAM and occlusion


def test_grad_cam_maps_have_the_input_size_and_differ_between_classes(cnn, images):
    x, y = images
    differences = []
    for image in x[:6]:
        cams = [grad_cam(cnn, image, c) for c in range(3)]
        for cam in cams:
            assert cam.heatmap.shape == (16, 16) and cam.coarse.shape == (5, 5)  # 16 -> 14 -> 7 -> 5
            assert cam.heatmap.min() >= 0 and cam.heatmap.max() <= 1
            assert cam.layer == "block2_conv"
        predicted = grad_cam(cnn, image)
        assert predicted.class_index == int(cnn.probabilities(image[None])[0].argmax())
        differences.append(
            np.abs(cams[0].heatmap - cams[1].heatmap).mean() + np.abs(cams[1].heatmap - cams[2].heatmap).mean()
        )
    assert np.mean(differences) > 0.3, differences  # measured: 1.4


def _plain_tf_grad_cam(model, image01, class_index, conv_name):
    """Grad-CAM written from scratch on the stored Sequential: its layers called one by one under a tape.

    (A sub-model ``keras.Model(model.inputs, [layer.output, ...])`` of a loaded Sequential builds, but its
    intermediate output is not on the path to the later ones in Keras 3.15: the gradient comes back None.)
    """
    import tensorflow as tf

    out = model.get_layer("output")
    with tf.GradientTape() as tape:
        h = tf.constant(image01[None])
        for layer in model.layers[:-1]:
            h = layer(h, training=False)
            if layer.name == conv_name:
                conv = h
        logits = tf.matmul(h, out.kernel) + out.bias  # the class score, before the softmax
        score = logits[:, class_index]
    grads = tape.gradient(score, conv)
    pooled = tf.reduce_mean(grads, axis=(0, 1, 2))
    cam = tf.nn.relu(conv[0] @ pooled[..., tf.newaxis])[..., 0]
    if tf.reduce_max(cam) > 0:  # else no positive evidence for the class: an all-zero map
        cam = cam / tf.reduce_max(cam)
    return cam.numpy(), tf.image.resize(cam[..., None], image01.shape[:2])[..., 0].numpy()


def test_an_independent_plain_tensorflow_grad_cam_agrees(home, cnn, cnn_run, images):
    model = home[0].load_model(cnn_run.run_id)
    shown = 0
    for image in images[0][:4]:
        for c in range(3):
            mine = grad_cam(cnn, image, c)
            coarse, fine = _plain_tf_grad_cam(model, image.astype("float32") / 255, c, "block2_conv")
            np.testing.assert_allclose(mine.coarse, coarse, atol=1e-4)
            np.testing.assert_allclose(mine.heatmap, fine, atol=1e-4)
            shown += mine.peak > 0
    assert shown >= 6  # most maps are not empty: the comparison is not between zeros


def test_vgg16_grad_cam_equals_running_the_nested_base_and_the_head_in_two_steps(home, vgg, vgg_run):
    import keras
    import tensorflow as tf

    from core.models.pipeline import model_input

    model = home[0].load_model(vgg_run.run_id)
    base = model.get_layer("vgg16")
    to_conv = keras.Model(base.inputs[0], base.get_layer("block5_conv2").output)
    image = home[0].load_arrays(vgg_run.run_id)["test_images"][2]
    x = model_input(vgg.cfg, image[None].astype("float32") / 255)
    conv = to_conv(x)
    with tf.GradientTape() as tape:
        tape.watch(conv)
        h = base.get_layer("block5_pool")(base.get_layer("block5_conv3")(conv))
        h = model.get_layer("dense")(model.get_layer("gap")(h))
        logits = tf.matmul(h, model.get_layer("output").kernel) + model.get_layer("output").bias
        score = logits[:, 1]
    grads = tape.gradient(score, conv)
    cam = tf.nn.relu(tf.reduce_sum(conv * tf.reduce_mean(grads, axis=(1, 2))[:, None, None, :], -1))[0].numpy()
    mine = grad_cam(vgg, image, 1, layer="block5_conv2")
    assert mine.coarse.shape == (2, 2)
    if cam.max() > 0:
        np.testing.assert_allclose(mine.coarse, cam / cam.max(), atol=1e-4)
    else:
        assert mine.peak == 0 and not mine.coarse.any()


def test_grad_cam_of_the_trained_model_differs_from_re_initialised_weights(cnn, cnn_run, images):
    """Adebayo et al. (2018): a saliency method must depend on what the model learned."""
    fresh = network(ModelConfig.from_dict(cnn_run.model_config), seed=99, names=cnn.class_names)
    trained_vs_random, trained_vs_trained = [], []
    for image, label in zip(*images, strict=True):
        trained = grad_cam(cnn, image, int(label)).heatmap
        random_ = grad_cam(fresh, image, int(label)).heatmap
        trained_vs_random.append(np.abs(trained - random_).mean())
        trained_vs_trained.append(np.abs(trained - grad_cam(cnn, image, int(label)).heatmap).mean())
    assert np.mean(trained_vs_random) > 0.25, np.mean(trained_vs_random)  # measured: 0.6
    assert max(trained_vs_trained) == 0


def test_occlusion_measures_the_probability_drop(cnn, images):
    image = images[0][0]
    occ = occlusion(cnn, image)
    assert occ.drop.shape == (16, 16) and occ.patch == 2 and occ.stride == 2
    assert occ.probability == pytest.approx(float(cnn.probabilities(image[None])[0].max()), abs=1e-5)
    assert np.abs(occ.drop).max() > 0
    # one square over the whole image: every pixel's drop is p(image) - p(the image's mean colour everywhere)
    whole = occlusion(cnn, image, occ.class_index, patch=16)
    flat = np.broadcast_to(image.reshape(-1, 3).mean(axis=0).round().astype(np.uint8), image.shape)
    want = occ.probability - cnn.probabilities(flat[None])[0, occ.class_index]
    np.testing.assert_allclose(whole.drop, np.full((16, 16), want), atol=1e-5)


# --------------------------------------------------------------------------- pictures


def test_pictures_tile_channels_on_one_colour_scale():
    maps = np.arange(2 * 3 * 5, dtype="float32").reshape(2, 3, 5)
    values, channel = tile(maps, gap=1)
    assert values.shape == (2 * 2 + 1, 3 * 3 + 2)  # 5 channels: 2 rows of 3 tiles
    np.testing.assert_array_equal(values[0:2, 4:7], maps[:, :, 1])
    assert channel[3, 0] == 3 and channel[2, 0] == -1 and np.isnan(values[2, 0])
    rgb = colorize(np.array([0.0, 1.0, np.nan]))
    assert rgb[0].tolist() == [68, 1, 84] and rgb[1].tolist() == [253, 231, 37] and rgb[2].tolist() == [255] * 3
    assert grid_picture(np.random.rand(4, 4, 10)).shape[2] == 3
    image = np.zeros((8, 8, 3), np.uint8)
    hot = overlay(image, np.ones((8, 8)))
    assert hot.shape == (8, 8, 3) and hot.mean() > overlay(image, np.zeros((8, 8))).mean()


def test_a_bfloat16_run_answers_in_bfloat16_and_is_looked_inside_in_float32(home):
    store, data = home
    rec = run_experiment(data, CNN, TrainConfig(epochs=2, batch_size=8, seed=3, precision="bfloat16"), store=store)
    assert rec.extra["precision"] == "bfloat16"
    net = open_run(store, rec.run_id)
    arrays = store.load_arrays(rec.run_id)
    probs = net.probabilities(arrays["test_images"])
    assert probs.dtype == np.float32
    np.testing.assert_allclose(probs, arrays["probs"], atol=1e-5)  # the stored answer, computed as it was
    occ = occlusion(net, arrays["test_images"][0])
    assert occ.probability == pytest.approx(float(probs[0].max()), abs=1e-5)  # read in the same probabilities
    image = arrays["test_images"][0]
    unit = work_convolution(net, image, "block1_conv", 3, 4, 0)
    assert unit.model_value == pytest.approx(unit.value, abs=1e-4)
