"""core.models.augment: the course's ImageDataGenerator arguments as Keras 3 preprocessing layers."""

import ast
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from core.base.config import FILL_MODES, AugmentConfig
from core.models.augment import (
    CONTROLS,
    augment_dataset_fn,
    build_augmentation,
    course_code,
    describe,
    keras_code,
    preview,
)

ROOT = Path(__file__).resolve().parents[1]
COURSE = AugmentConfig.course()


def _classes(aug):
    return [type(layer).__name__ for layer in aug.layers]


def _dot_image(size=33, row=None, col=None, half=1):
    """Black (size, size, 1) uint8 image with a white (2*half+1)^2 square at (row, col)."""
    c = size // 2
    row, col = (c if row is None else row), (c if col is None else col)
    img = np.zeros((size, size, 1), np.uint8)
    img[row - half : row + half + 1, col - half : col + half + 1] = 255
    return img


def _centroids(batch):
    """(n, 2) intensity centroids (row, col) of a (n, H, W, 1) batch."""
    b = batch[..., 0].astype(np.float64)
    rows, cols = np.mgrid[: b.shape[1], : b.shape[2]]
    mass = b.sum(axis=(1, 2))
    return np.stack([(b * rows).sum(axis=(1, 2)) / mass, (b * cols).sum(axis=(1, 2)) / mass], axis=1)


# --- which layers a config builds ---------------------------------------------------------


def test_module_import_does_not_import_tensorflow():
    code = "import sys, core.models.augment; print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


@pytest.mark.parametrize("cfg", [AugmentConfig(), AugmentConfig(fill_mode="constant")])
def test_nothing_on_builds_nothing(cfg):
    assert not cfg.enabled
    assert build_augmentation(cfg) is None
    assert augment_dataset_fn(cfg, seed=0) is None
    assert keras_code(cfg).startswith("# No augmentation")


@pytest.mark.parametrize("degrees", [20, 90, 12.5])
def test_rotation_factor_is_a_fraction_of_a_full_turn(degrees):
    aug = build_augmentation(AugmentConfig(rotation=degrees), seed=0)
    assert _classes(aug) == ["RandomRotation"]
    rot = aug.layers[0]
    assert rot.factor == pytest.approx((-degrees / 360, degrees / 360))
    assert rot.fill_mode == "nearest"  # ImageDataGenerator's default, not the layer's "reflect"
    assert rot.interpolation == "bilinear"
    assert rot.name == "random_rotation"


def test_width_and_height_shift_map_to_one_translation_layer():
    aug = build_augmentation(AugmentConfig(width_shift=0.2), seed=0)
    assert _classes(aug) == ["RandomTranslation"]
    t = aug.layers[0]
    assert (t.width_lower, t.width_upper) == pytest.approx((-0.2, 0.2))
    assert (t.height_lower, t.height_upper) == (0.0, 0.0)

    t = build_augmentation(AugmentConfig(height_shift=0.3, width_shift=0.1), seed=0).layers[0]
    assert (t.height_lower, t.height_upper) == pytest.approx((-0.3, 0.3))
    assert (t.width_lower, t.width_upper) == pytest.approx((-0.1, 0.1))
    assert t.fill_mode == "nearest"


@pytest.mark.parametrize(
    "cfg, modes",
    [
        (AugmentConfig(hflip=True), ["horizontal"]),
        (AugmentConfig(vflip=True), ["vertical"]),
        # Two layers, not "horizontal_and_vertical" (see test_both_flips_reach_all_four_orientations).
        (AugmentConfig(hflip=True, vflip=True), ["horizontal", "vertical"]),
    ],
)
def test_flips(cfg, modes):
    aug = build_augmentation(cfg, seed=0)
    assert _classes(aug) == ["RandomFlip"] * len(modes)
    assert [layer.mode for layer in aug.layers] == modes


def test_zoom_range_is_symmetric_on_both_axes():
    z = build_augmentation(AugmentConfig(zoom=0.1), seed=0).layers[0]
    assert type(z).__name__ == "RandomZoom"
    assert (z.height_lower, z.height_upper) == pytest.approx((-0.1, 0.1))
    # An explicit width_factor: None would keep the aspect ratio, ImageDataGenerator does not.
    assert z.width_factor is not None
    assert (z.width_lower, z.width_upper) == pytest.approx((-0.1, 0.1))


def test_course_config_builds_every_layer_in_order_with_its_own_seed():
    aug = build_augmentation(COURSE, seed=7)
    assert aug.name == "augment"
    assert _classes(aug) == ["RandomRotation", "RandomTranslation", "RandomFlip", "RandomFlip", "RandomZoom"]
    assert [layer.name for layer in aug.layers] == [
        "random_rotation",
        "random_translation",
        "random_flip_horizontal",
        "random_flip_vertical",
        "random_zoom",
    ]
    assert [layer.seed for layer in aug.layers] == [7, 8, 9, 10, 11]


def test_zero_settings_add_no_layer():
    for name, value, gone in [
        ("rotation", 0, "RandomRotation"),
        ("hflip", False, "RandomFlip"),
        ("vflip", False, "RandomFlip"),
        ("zoom", 0.0, "RandomZoom"),
    ]:
        classes = _classes(build_augmentation(COURSE.replace(**{name: value})))
        assert len(classes) == 4
        assert classes.count(gone) == (1 if gone == "RandomFlip" else 0)
    # One shift still needs the translation layer; it goes only when both are zero.
    assert len(build_augmentation(COURSE.replace(width_shift=0.0)).layers) == 5
    no_shift = COURSE.replace(width_shift=0.0, height_shift=0.0)
    assert "RandomTranslation" not in _classes(build_augmentation(no_shift))


@pytest.mark.parametrize("fill_mode", FILL_MODES)
def test_fill_mode_passes_through_to_every_layer_that_moves_pixels(fill_mode):
    aug = build_augmentation(COURSE.replace(fill_mode=fill_mode), seed=0)
    movers = [layer for layer in aug.layers if type(layer).__name__ != "RandomFlip"]
    assert len(movers) == 3
    assert {layer.fill_mode for layer in movers} == {fill_mode}
    assert {layer.fill_value for layer in movers} == {0.0}


def test_constant_fill_is_black():
    img = np.full((17, 17, 1), 200, np.uint8)
    out = preview(img, AugmentConfig(width_shift=0.4, fill_mode="constant"), n=16, seed=0)
    assert out.min() == 0  # moved-in pixels are fill_value 0, not a copy of the edge
    out = preview(img, AugmentConfig(width_shift=0.4, fill_mode="nearest"), n=16, seed=0)
    assert out.min() == 200


# --- what the layers do --------------------------------------------------------------------


def test_inference_returns_the_input_unchanged():
    # This is why validation and test images stay untouched even inside a model.
    x = np.random.default_rng(0).random((4, 16, 16, 3), dtype=np.float32)
    aug = build_augmentation(COURSE, seed=0)
    np.testing.assert_array_equal(np.asarray(aug(x, training=False)), x)
    assert not np.allclose(np.asarray(aug(x, training=True)), x)


def test_both_flips_reach_all_four_orientations():
    # RandomFlip("horizontal_and_vertical") flips both axes on one coin: it would only
    # ever give the original and the 180-degree turn. ImageDataGenerator gives all four.
    img = (np.arange(64).reshape(8, 8, 1) * 4).astype(np.uint8)
    out = preview(img, AugmentConfig(hflip=True, vflip=True), n=64, seed=0)
    orientations = {"same": img, "lr": img[:, ::-1], "ud": img[::-1], "both": img[::-1, ::-1]}
    seen = [next(k for k, v in orientations.items() if np.array_equal(o, v)) for o in out]
    assert set(seen) == set(orientations)


def test_rotation_stays_in_the_degree_range():
    # A dot 12 px right of the centre: its angle after rotation is the rotation angle.
    img = _dot_image(33, row=16, col=28)
    for degrees in (90, 20):
        out = preview(img, AugmentConfig(rotation=degrees, fill_mode="constant"), n=200, seed=0)
        cy, cx = _centroids(out).T
        angles = np.degrees(np.arctan2(-(cy - 16), cx - 16))
        assert np.abs(angles).max() <= degrees + 3
        assert angles.max() > 0.6 * degrees and angles.min() < -0.6 * degrees  # both ways, most of the range
        radius = np.hypot(cy - 16, cx - 16)
        np.testing.assert_allclose(radius, 12, atol=1)  # rotation about the centre: the dot is not moved in
        mass = out.astype(float).sum(axis=(1, 2, 3))
        np.testing.assert_allclose(mass, img.astype(float).sum(), rtol=0.2)  # pixel statistics kept


def test_shift_moves_by_at_most_the_fraction_of_the_width():
    img = _dot_image(33)
    out = preview(img, AugmentConfig(width_shift=0.25, fill_mode="constant"), n=100, seed=0)
    cy, cx = _centroids(out).T
    dx = cx - 16
    assert np.abs(dx).max() <= 0.25 * 33 + 0.5
    assert dx.max() > 4 and dx.min() < -4
    np.testing.assert_allclose(cy, 16, atol=0.1)  # no vertical shift asked for


def test_zoom_draws_each_axis_in_one_minus_to_one_plus_zoom():
    # A 9 px square: zoom 0.5 scales each axis by 0.5..1.5, i.e. the square is seen
    # 9 / 1.5 = 6 to 9 / 0.5 = 18 px wide, and width and height vary independently.
    img = _dot_image(33, half=4)
    out = preview(img, AugmentConfig(zoom=0.5, fill_mode="constant"), n=100, seed=0)[..., 0] > 127
    widths = out.any(axis=1).sum(axis=1)
    heights = out.any(axis=2).sum(axis=1)
    for size in (widths, heights):
        assert size.min() >= 5 and size.max() <= 19
        assert size.max() > 12 and size.min() < 8  # zooms in and out
    assert np.abs(widths - heights).max() >= 3


# --- preview --------------------------------------------------------------------------------


def test_preview_shape_dtype_and_determinism():
    img = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    a = preview(img, COURSE, n=8, seed=0)
    assert a.shape == (8, 16, 16, 3) and a.dtype == np.uint8
    b = preview(img, COURSE, n=8, seed=1)
    assert not np.array_equal(a, b)
    # Same seed, same images, however many previews ran in between.
    np.testing.assert_array_equal(preview(img, COURSE, n=8, seed=0), a)
    assert all(not np.array_equal(o, img) for o in a)
    assert not np.array_equal(a[0], a[1])  # n different versions, not n copies of one


def test_preview_accepts_float_images_in_0_1():
    img = np.random.default_rng(0).integers(0, 256, (16, 16, 1), dtype=np.uint8)
    a = preview(img, COURSE, n=4, seed=3)
    b = preview(img.astype(np.float32) / 255, COURSE, n=4, seed=3)
    np.testing.assert_array_equal(a, b)


def test_preview_without_augmentation_repeats_the_image():
    img = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    out = preview(img, AugmentConfig(), n=3)
    assert out.shape == (3, 8, 8, 3)
    assert all(np.array_equal(o, img) for o in out)


@pytest.mark.parametrize("bad", [np.zeros((8, 8)), np.zeros((2, 8, 8, 3))])
def test_preview_wants_one_image(bad):
    with pytest.raises(ValueError, match="one \\(H, W, C\\) image"):
        preview(bad, COURSE)


# --- the tf.data contract -------------------------------------------------------------------


def _flip_dataset(seed, n=16):
    x = np.random.default_rng(0).random((n, 8, 8, 1), dtype=np.float32)
    y = np.arange(n)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(n)
    fn = augment_dataset_fn(AugmentConfig(hflip=True), seed=seed)
    xa, ya = next(iter(ds.map(fn)))
    return x, y, xa.numpy(), ya.numpy()


def test_augment_dataset_fn_flips_some_training_images_and_keeps_labels():
    x, y, xa, ya = _flip_dataset(seed=0)
    assert xa.dtype == np.float32 and xa.shape == x.shape
    np.testing.assert_array_equal(ya, y)
    flipped = [np.array_equal(a, o[:, ::-1]) for a, o in zip(xa, x, strict=True)]
    same = [np.array_equal(a, o) for a, o in zip(xa, x, strict=True)]
    assert all(f or s for f, s in zip(flipped, same, strict=True))  # each image is itself or its mirror
    assert any(flipped) and any(same)
    np.testing.assert_array_equal(_flip_dataset(seed=0)[2], xa)  # reproducible by seed


def test_training_pipeline_is_reproducible_by_seed():
    # The recommended pipeline: batch, then a sequential map (num_parallel_calls would
    # race the layers' seed generators and break reproducibility), then prefetch.
    x = np.random.default_rng(0).random((40, 8, 8, 1), dtype=np.float32)

    def epochs(seed, n=2):
        ds = tf.data.Dataset.from_tensor_slices((x, np.arange(40))).shuffle(40, seed=1).batch(8)
        ds = ds.map(augment_dataset_fn(COURSE, seed=seed)).prefetch(tf.data.AUTOTUNE)
        return [np.concatenate([xb.numpy() for xb, _ in ds]) for _ in range(n)]

    a = epochs(seed=0)
    for got, want in zip(epochs(seed=0), a, strict=True):
        np.testing.assert_array_equal(got, want)
    assert not np.allclose(epochs(seed=1, n=1)[0], a[0])


def test_augment_dataset_fn_draws_new_transformations_every_epoch():
    x = np.random.default_rng(0).random((8, 8, 8, 1), dtype=np.float32)
    ds = tf.data.Dataset.from_tensors((x, np.zeros(8))).map(augment_dataset_fn(COURSE, seed=0))
    epoch1, epoch2 = (next(iter(ds))[0].numpy() for _ in range(2))
    assert not np.allclose(epoch1, epoch2)


# --- code and explanations ------------------------------------------------------------------


def _layer_configs(aug):
    drop = {"name", "seed", "dtype", "trainable"}
    return [{k: v for k, v in layer.get_config().items() if k not in drop} for layer in aug.layers]


@pytest.mark.parametrize(
    "cfg",
    [
        COURSE,
        AugmentConfig(rotation=12.5, fill_mode="constant"),
        AugmentConfig(height_shift=0.05, vflip=True, fill_mode="wrap"),
        AugmentConfig(zoom=0.3, fill_mode="reflect"),
    ],
)
def test_keras_code_builds_the_same_layers(cfg):
    code = keras_code(cfg)
    namespace = {}
    exec(code, namespace)  # noqa: S102 - our own generated snippet
    assert _layer_configs(namespace["augment"]) == _layer_configs(build_augmentation(cfg))
    assert "training=True" in code.splitlines()[-1]
    assert "never" in code.splitlines()[-1]


def test_keras_code_shows_the_values():
    code = keras_code(COURSE)
    for text in (
        'RandomRotation(factor=20 / 360, fill_mode="nearest")',
        "RandomTranslation(height_factor=0.1, width_factor=0.1",
        'RandomFlip("horizontal")',
        'RandomFlip("vertical")',
        "RandomZoom(height_factor=(-0.1, 0.1), width_factor=(-0.1, 0.1)",
    ):
        assert text in code
    assert "fill_value=0.0" in keras_code(AugmentConfig(rotation=5, fill_mode="constant"))


def test_course_code_is_the_image_data_generator_call():
    code = course_code(COURSE.replace(vflip=False, rotation=35, fill_mode="reflect"))
    ast.parse(code)
    for text in (
        "ImageDataGenerator(",
        "rotation_range=35,",
        "width_shift_range=0.1,",
        "height_shift_range=0.1,",
        "horizontal_flip=True,",
        "vertical_flip=False,",
        "zoom_range=0.1,",
        'fill_mode="reflect",',
    ):
        assert text in code


def test_describe_rows():
    rows = describe(COURSE)
    assert [r["control"] for r in rows] == list(CONTROLS)
    by = {r["control"]: r for r in rows}
    assert by["rotation"]["layer"] == "RandomRotation" and by["rotation"]["argument"] == "factor"
    assert by["rotation"]["value"] == 20 and by["rotation"]["layer_value"] == 0.0556
    assert by["rotation"]["note"].startswith("20 degrees = 20/360 of a full turn")
    assert (by["width_shift"]["argument"], by["width_shift"]["layer_value"]) == ("width_factor", 0.1)
    assert "up to 10% of the width" in by["width_shift"]["note"]
    assert (by["height_shift"]["argument"], by["height_shift"]["layer_value"]) == ("height_factor", 0.1)
    assert (by["hflip"]["layer"], by["hflip"]["layer_value"]) == ("RandomFlip", "horizontal")
    assert (by["vflip"]["layer"], by["vflip"]["layer_value"]) == ("RandomFlip", "vertical")
    assert by["zoom"]["layer_value"] == (-0.1, 0.1) and "0.9 to 1.1" in by["zoom"]["note"]
    assert by["fill_mode"]["layer_value"] == "nearest"
    assert all(r["active"] for r in rows)


def test_describe_percentages_are_clean():
    by = {r["control"]: r for r in describe(AugmentConfig(width_shift=0.07, height_shift=0.15))}
    assert "up to 7% of the width" in by["width_shift"]["note"]
    assert "up to 15% of the height" in by["height_shift"]["note"]


def test_describe_marks_what_is_off():
    by = {r["control"]: r for r in describe(AugmentConfig(hflip=True, fill_mode="wrap"))}
    assert [c for c, r in by.items() if r["active"]] == ["hflip"]
    assert by["rotation"]["layer_value"] == 0.0
    assert "unused" in by["fill_mode"]["note"]  # flips move no pixel in from outside
