"""The input pipeline: uint8 splits in, batches exactly /255 out, in the seeded order."""

import numpy as np

from core.data import ImageSplit, load_dataset, prepare_data
from core.models.pipeline import image_batches, is_images, scale_batch
from core.models.weight_sources import preprocess_images


def _images(n=37, size=8, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def test_batches_are_the_images_divided_by_255_exactly():
    images = _images()
    split = ImageSplit(images, np.arange(3, 30))
    labels = np.arange(27)
    batches = list(image_batches(split, labels, batch_size=8))
    assert [len(b[0]) for b in batches] == [8, 8, 8, 3]
    x = np.concatenate([b[0].numpy() for b in batches])
    y = np.concatenate([b[1].numpy() for b in batches])
    assert x.dtype == np.float32 and np.array_equal(y, labels)
    np.testing.assert_array_equal(x, images[3:30].astype("float32") / 255.0)  # the course's formula, bit for bit


def test_shuffled_batches_keep_images_and_labels_together_and_repeat_by_seed():
    images = _images()
    labels = np.arange(len(images))
    split = ImageSplit(images, labels)

    def epoch(seed):
        out = [(b[0].numpy(), b[1].numpy()) for b in image_batches(split, labels, batch_size=10, shuffle_seed=seed)]
        return np.concatenate([o[0] for o in out]), np.concatenate([o[1] for o in out])

    x, y = epoch(1)
    assert sorted(y.tolist()) == labels.tolist() and y.tolist() != labels.tolist()
    np.testing.assert_array_equal(x, images[y] / np.float32(255.0))  # each image with its own label
    np.testing.assert_array_equal(epoch(1)[1], y)  # same seed, same order


def test_prediction_batches_and_preprocessing():
    images = _images(n=5)
    x = np.concatenate([b.numpy() for b in image_batches(images, batch_size=2, preprocess=lambda b: b * 2)])
    np.testing.assert_array_equal(x, images.astype("float32") / 255.0 * 2)
    vgg = scale_batch(images, np.array([4, 0]), lambda b: preprocess_images(b, "imagenet"))
    np.testing.assert_array_equal(vgg, preprocess_images(images[[4, 0]].astype("float32") / 255.0, "imagenet"))
    assert is_images(images) and is_images(ImageSplit(images, [0])) and not is_images(images / 255.0)


def test_prepared_data_hold_uint8_only(tiny_folder):
    ds = load_dataset(tiny_folder, image_size=16)
    p = prepare_data(ds, seed=0)
    for x in (p.x_train, p.x_val, p.x_test):
        assert x.dtype == np.uint8 and x.images is ds.images
    # nothing float the size of the images anywhere in the prepared data
    floats = [v for v in vars(p).values() if isinstance(v, np.ndarray) and v.dtype.kind == "f"]
    assert all(v.size < ds.images.size / 10 for v in floats), [v.shape for v in floats]
