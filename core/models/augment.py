"""Data augmentation: the course's ImageDataGenerator arguments as Keras 3 layers.

Keras 3 removed ``ImageDataGenerator``. Its random transformations are now
preprocessing layers, stacked in a ``keras.Sequential``::

    ImageDataGenerator argument    Keras 3 layer and argument
    rotation_range=20              RandomRotation(factor=20 / 360)   (a fraction of a full turn)
    width_shift_range=0.1          RandomTranslation(width_factor=0.1)
    height_shift_range=0.1         RandomTranslation(height_factor=0.1)
    horizontal_flip=True           RandomFlip("horizontal")
    vertical_flip=True             RandomFlip("vertical")
    zoom_range=0.1                 RandomZoom(height_factor=(-0.1, 0.1), width_factor=(-0.1, 0.1))
    fill_mode="nearest"            fill_mode="nearest" on every layer that moves pixels

Three details make the layers behave like the generator rather than merely look like it:

- ``fill_mode`` is always passed: the layers default to "reflect", the generator to "nearest".
- Both flips are two layers, not ``RandomFlip("horizontal_and_vertical")``: that mode
  draws one coin per image and applies both flips together (the image is unchanged or
  turned by 180 degrees), while the generator flips each axis on its own coin.
- Each layer gets its own seed (``seed + i``). Layers with the same seed draw the same
  numbers, so two flip layers would again always flip together.

The layers only transform with ``training=True``; with ``training=False`` they return
their input. The contract with the training engine: map :func:`augment_dataset_fn` over
the *training* dataset only, never over validation or test.

Importing this module is cheap: Keras is imported inside the functions.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from core.base.config import AugmentConfig

if TYPE_CHECKING:
    import keras

# The controls of AugmentConfig, in the order of describe()'s rows.
CONTROLS = ("rotation", "width_shift", "height_shift", "hflip", "vflip", "zoom", "fill_mode")


def _layer_specs(cfg: AugmentConfig) -> list[tuple[str, str, dict[str, Any]]]:
    """(layer class, layer name, keyword arguments) of every layer ``cfg`` turns on.

    The single source of truth for :func:`build_augmentation` and :func:`keras_code`.
    """
    fill: dict[str, Any] = {"fill_mode": cfg.fill_mode}
    if cfg.fill_mode == "constant":
        fill["fill_value"] = 0.0  # ImageDataGenerator's cval default
    specs: list[tuple[str, str, dict[str, Any]]] = []
    if cfg.rotation:
        specs.append(("RandomRotation", "random_rotation", {"factor": cfg.rotation / 360, **fill}))
    if cfg.width_shift or cfg.height_shift:
        specs.append(
            (
                "RandomTranslation",
                "random_translation",
                {"height_factor": float(cfg.height_shift), "width_factor": float(cfg.width_shift), **fill},
            )
        )
    if cfg.hflip:
        specs.append(("RandomFlip", "random_flip_horizontal", {"mode": "horizontal"}))
    if cfg.vflip:
        specs.append(("RandomFlip", "random_flip_vertical", {"mode": "vertical"}))
    if cfg.zoom:
        z = float(cfg.zoom)
        # Negative zooms in, positive zooms out: (-z, z) draws a scale in [1 - z, 1 + z]
        # per axis, independently, as ImageDataGenerator's zoom_range does.
        specs.append(("RandomZoom", "random_zoom", {"height_factor": (-z, z), "width_factor": (-z, z), **fill}))
    return specs


def build_augmentation(cfg: AugmentConfig, seed: int | None = None) -> keras.Sequential | None:
    """The augmentation layers for ``cfg``, or None when it turns nothing on.

    Args:
        cfg: the augmentation settings.
        seed: makes the random transformations reproducible; layer ``i`` gets
            ``seed + i``. None draws a fresh random seed.

    Returns:
        A ``keras.Sequential`` named "augment" holding only the layers whose setting is
        non-zero / True, in the order rotation, translation, flips, zoom. It transforms
        only when called with ``training=True``.
    """
    if not isinstance(cfg, AugmentConfig):
        raise TypeError(f"cfg must be an AugmentConfig. Received: cfg={cfg!r}")
    specs = _layer_specs(cfg)
    if not specs:
        return None
    import keras

    layers = [
        getattr(keras.layers, cls)(**kwargs, seed=None if seed is None else seed + i, name=name)
        for i, (cls, name, kwargs) in enumerate(specs)
    ]
    return keras.Sequential(layers, name="augment")


def augment_dataset_fn(cfg: AugmentConfig, seed: int | None = None) -> Callable | None:
    """A ``tf.data`` map function ``(x, y) -> (augmented x, y)``, or None when disabled.

    ``x`` is a float32 batch ``(B, H, W, C)`` in [0, 1] (a single image works too).
    Map it over the training dataset only, after ``.batch()`` and before ``.prefetch()``::

        train_ds = train_ds.shuffle(n, seed=seed).batch(32).map(fn).prefetch(tf.data.AUTOTUNE)

    Keep the map sequential: the layers draw from stateful seed generators, and with
    ``num_parallel_calls`` the batches race for them, so a seeded run no longer repeats
    (it was not faster either on 2 cores). Each call of this function builds its own
    layers, so two trainings never share random state.
    """
    aug = build_augmentation(cfg, seed)
    if aug is None:
        return None

    def augment(x, y):
        return aug(x, training=True), y

    return augment


@functools.lru_cache(maxsize=32)
def _preview_layers(cfg: AugmentConfig, seed: int) -> tuple[Any, threading.Lock]:
    return build_augmentation(cfg, seed), threading.Lock()


def preview(image: np.ndarray, cfg: AugmentConfig, n: int = 8, seed: int = 0) -> np.ndarray:
    """``n`` random augmentations of one image, the same ones for the same seed.

    Args:
        image: ``(H, W, C)``, uint8 in [0, 255] or float in [0, 1].
        cfg: the augmentation settings. When nothing is on, the result is ``n``
            copies of the image.
        n: how many versions.
        seed: which versions.

    Returns:
        uint8 array ``(n, H, W, C)``.
    """
    image = np.asarray(image)
    if image.ndim != 3:
        raise ValueError(f"image must be one (H, W, C) image. Received: image.shape={image.shape}")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer. Received: n={n!r}")
    if image.dtype == np.uint8:
        x = image.astype(np.float32) / 255.0
    else:
        x = np.clip(image.astype(np.float32), 0.0, 1.0)
    batch = np.repeat(x[None], n, axis=0)
    aug, lock = _preview_layers(cfg, int(seed))
    if aug is not None:
        # One batched eager call: no tf.function, so nothing to retrace when the
        # image size or n changes. Rewinding every layer's seed generator to its
        # initial state makes the result depend on the seed only, not on how many
        # previews came before; the lock keeps two sessions from interleaving.
        with lock:
            for i, layer in enumerate(aug.layers):
                layer.generator.state.assign(np.array([int(seed) + i, 0], dtype="int64"))
            batch = np.asarray(aug(batch, training=True))
    return np.round(np.clip(batch, 0.0, 1.0) * 255.0).astype(np.uint8)


def _num(v: float) -> str:
    """20.0 -> '20', 0.1 -> '0.1'."""
    v = float(v)
    return str(int(v)) if v.is_integer() else repr(v)


def _kwargs_code(cls: str, kwargs: dict[str, Any], cfg: AugmentConfig) -> str:
    parts = []
    for k, v in kwargs.items():
        if cls == "RandomFlip" and k == "mode":
            parts.append(repr(v).replace("'", '"'))
        elif k == "factor":
            parts.append(f"factor={_num(cfg.rotation)} / 360")
        elif k == "fill_value":
            parts.append(f"fill_value={float(v)!r}")
        elif isinstance(v, tuple):
            parts.append(f"{k}=({_num(v[0])}, {_num(v[1])})")
        elif isinstance(v, str):
            parts.append(f'{k}="{v}"')
        else:
            parts.append(f"{k}={_num(v)}")
    return f"keras.layers.{cls}({', '.join(parts)})"


def layer_calls(cfg: AugmentConfig, seed: str | None = None) -> list[str]:
    """The Keras 3 layer calls ``cfg`` turns on, as code; with ``seed`` (an expression such as "SEED"),
    each layer gets ``seed=<seed> + i`` as :func:`build_augmentation` gives it."""
    calls = []
    for i, (cls, name, kwargs) in enumerate(_layer_specs(cfg)):
        code = _kwargs_code(cls, kwargs, cfg)
        extra = f', name="{name}"' + (f", seed={seed} + {i}" if seed else "")
        calls.append(code[:-1] + extra + ")")
    return calls


def keras_code(cfg: AugmentConfig) -> str:
    """The Keras 3 code for ``cfg``: a ``keras.Sequential`` a student can paste."""
    specs = _layer_specs(cfg)
    if not specs:
        return "# No augmentation: every control is off, the training images are used as they are."
    lines = ["import keras", "", "augment = keras.Sequential(", "    ["]
    lines += [f"        {_kwargs_code(cls, kwargs, cfg)}," for cls, _, kwargs in specs]
    lines += ["    ],", '    name="augment",', ")"]
    lines.append(
        "# Training data only: train_ds = train_ds.map(lambda x, y: (augment(x, training=True), y))"
        " -- never map validation or test data."
    )
    return "\n".join(lines)


def course_code(cfg: AugmentConfig) -> str:
    """The course's ``ImageDataGenerator(...)`` call with the same values (pre-Keras 3)."""
    args = [
        ("rotation_range", _num(cfg.rotation)),
        ("width_shift_range", _num(cfg.width_shift)),
        ("height_shift_range", _num(cfg.height_shift)),
        ("horizontal_flip", str(cfg.hflip)),
        ("vertical_flip", str(cfg.vflip)),
        ("zoom_range", _num(cfg.zoom)),
        ("fill_mode", f'"{cfg.fill_mode}"'),
    ]
    lines = [
        "from tensorflow.keras.preprocessing.image import ImageDataGenerator  # gone in Keras 3",
        "",
        "datagen = ImageDataGenerator(",
    ]
    lines += [f"    {k}={v}," for k, v in args]
    lines.append(")")
    return "\n".join(lines)


def describe(cfg: AugmentConfig) -> list[dict[str, Any]]:
    """One row per control: how the course's argument becomes a layer argument.

    Keys: ``control``, ``value`` (the AugmentConfig value), ``layer``, ``argument``,
    ``layer_value`` (what the layer receives), ``active`` (whether the control adds
    or configures a layer) and ``note``.
    """
    rot, ws, hs, z = float(cfg.rotation), float(cfg.width_shift), float(cfg.height_shift), float(cfg.zoom)
    moves = bool(rot or ws or hs or z)
    return [
        {
            "control": "rotation",
            "value": cfg.rotation,
            "layer": "RandomRotation",
            "argument": "factor",
            "layer_value": round(rot / 360, 4),
            "active": bool(rot),
            "note": f"{_num(rot)} degrees = {_num(rot)}/360 of a full turn: a random angle in "
            f"[-{_num(rot)}, +{_num(rot)}] degrees"
            if rot
            else "0 degrees: no rotation layer",
        },
        {
            "control": "width_shift",
            "value": cfg.width_shift,
            "layer": "RandomTranslation",
            "argument": "width_factor",
            "layer_value": ws,
            "active": bool(ws),
            "note": f"shift left or right by up to {_num(round(ws * 100, 4))}% of the width"
            if ws
            else "no horizontal shift",
        },
        {
            "control": "height_shift",
            "value": cfg.height_shift,
            "layer": "RandomTranslation",
            "argument": "height_factor",
            "layer_value": hs,
            "active": bool(hs),
            "note": f"shift up or down by up to {_num(round(hs * 100, 4))}% of the height"
            if hs
            else "no vertical shift",
        },
        {
            "control": "hflip",
            "value": cfg.hflip,
            "layer": "RandomFlip",
            "argument": "mode",
            "layer_value": "horizontal",
            "active": cfg.hflip,
            "note": "mirror left-right for half of the images" if cfg.hflip else "no horizontal flip layer",
        },
        {
            "control": "vflip",
            "value": cfg.vflip,
            "layer": "RandomFlip",
            "argument": "mode",
            "layer_value": "vertical",
            "active": cfg.vflip,
            "note": "mirror top-bottom for half of the images, on its own coin (a second layer)"
            if cfg.vflip
            else "no vertical flip layer",
        },
        {
            "control": "zoom",
            "value": cfg.zoom,
            "layer": "RandomZoom",
            "argument": "height_factor, width_factor",
            "layer_value": (-z, z),
            "active": bool(z),
            "note": f"scale each axis by {_num(round(1 - z, 6))} to {_num(round(1 + z, 6))}; "
            "negative factors zoom in, positive zoom out"
            if z
            else "no zoom layer",
        },
        {
            "control": "fill_mode",
            "value": cfg.fill_mode,
            "layer": "RandomRotation, RandomTranslation, RandomZoom",
            "argument": "fill_mode",
            "layer_value": cfg.fill_mode,
            "active": moves,
            "note": _FILL_NOTES[cfg.fill_mode] + ("" if moves else " (unused: no rotation, shift or zoom is on)"),
        },
    ]


_FILL_NOTES = {
    "nearest": "pixels moved in from outside copy the nearest edge pixel (aaa|abcd|ddd)",
    "reflect": "pixels moved in from outside mirror the image at its edge (dcba|abcd|dcba)",
    "wrap": "pixels moved in from outside come from the opposite edge (abcd|abcd|abcd)",
    "constant": "pixels moved in from outside are black, fill_value=0.0 (000|abcd|000)",
}
