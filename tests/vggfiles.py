"""VGG16 weights for tests: random arrays in the shapes of the real file, written in Keras' layouts.

Nothing is downloaded: "imagenet" is tested with a file written here into a
temporary Keras cache, in the layout Keras distributes.
"""

import h5py
import numpy as np

from core.models.weight_sources import CONV_LAYERS

SIZE = 32  # the smallest input VGG16 takes: fast
CONV = [name for name, _ in CONV_LAYERS]


def keras_vgg_arrays(seed=123):
    """The 13 conv layers of a randomly initialised Keras VGG16 (Keras' shapes, not ours)."""
    import keras

    keras.utils.set_random_seed(seed)
    m = keras.applications.VGG16(weights=None, include_top=False, input_shape=(SIZE, SIZE, 3))
    return {name: m.get_layer(name).get_weights() for name in CONV}


def write_legacy_h5(path, arrays, extra_layers=()):
    """The layout of Keras' distributed vgg16_..._notop.h5: layer_names, weight_names, one group per layer."""
    names = ["input_1"]
    for b, n in ((1, 2), (2, 2), (3, 3), (4, 3), (5, 3)):
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
            for w, a in zip(wnames, ws, strict=True):
                g.create_dataset(w, data=a)
    return path


def conv_weights(model_or_base):
    """{conv layer name: [kernel, bias]} of a base or of a model holding one named "vgg16"."""
    base = model_or_base.get_layer("vgg16") if model_or_base.name != "vgg16" else model_or_base
    return {name: base.get_layer(name).get_weights() for name in CONV}


def assert_same_weights(got, expected):
    assert set(got) == set(CONV)
    for name in CONV:
        np.testing.assert_array_equal(got[name][0], expected[name][0], err_msg=name)
        np.testing.assert_array_equal(got[name][1], expected[name][1], err_msg=name)
