"""What a filter wants to see: activation maximisation, an input image grown by gradient ascent from noise.

For a chosen convolution filter, the number reported is the filter's **mean activation** over its whole map
(the layer's output after its ReLU, as the next layer reads it); the image is grown along the same mean with
the ReLU made leaky (slope ``LEAK`` below 0, on the filter's sums before its activation), which keeps a
gradient where the filter is still off: after a plain ReLU, a filter that is 0 everywhere on the starting
noise has no gradient at all. (The plain mean of the sums would not do: for a first-layer filter it depends
only on the image's mean colour, so its best image is one flat colour.) For a class it is the class
**score** (the last Dense layer before the softmax, reachable because
:class:`~core.inside.network.RunNetwork` ends in logits; a probability saturates and stops giving a gradient
once the class is sure). Starting from seeded noise
around mid-grey, each step moves the image along the objective's gradient (divided by its standard
deviation, so a step's size is the same for every layer and model), with three regularisers that keep the
picture from becoming high-frequency noise (Olah et al., "Feature Visualization", Distill 2017; the Keras
example "Visualizing what convnets learn"):

- **jitter**: the image is shifted by a random number of pixels (up to ``jitter``, wrapped around) before
  each gradient and shifted back after, so the pattern must work wherever it sits;
- **blur**: every ``blur_every`` steps a Gaussian blur of ``blur_sigma`` pixels removes what is finer than
  the filter can use;
- **L2 decay**: each step pulls every pixel towards mid-grey by the fraction ``decay``, so only what the
  filter needs grows.

The image lives in the pixel scale [0, 1] (clipped after every step) and goes to the network through the
same preprocessing as the run's images (/255 for the scratch CNN; VGG16's BGR and mean subtraction,
:func:`core.models.pipeline.differentiable_input`), so the result is a real image the network would read.
The gradients are computed in float32 whatever precision the run trained in (the opened network is a
float32 copy). The numbers reported are measured on the final 8-bit image through the network's ordinary
path (:meth:`RunNetwork.prepare`), beside the same number for each of the run's stored test images.

:func:`maximise_run` keeps each result in the run's own folder of the store (``runs/<id>/maximise/``), per
(run, layer, filter or class, settings): asked again it comes back from the file; a different run never
shares it, and deleting the run deletes it. The test images' numbers are measured once per layer (every
filter at once) and kept there too. Each step is one compiled ``tf.function`` per network and layer.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from core.base.errors import UserError
from core.inside.network import RunNetwork, UnknownRunError, open_run
from core.models.pipeline import differentiable_input
from core.store.runstore import RunStore

CACHE_KIND = "maximise"  # the folder under the run's own folder that keeps the results
LEAK = 0.1  # the objective's slope below 0: a filter that is off everywhere still has a gradient to follow
Progress = Callable[[int, int], None]  # (steps done, steps in all)


@dataclass(frozen=True)
class AscentSettings:
    """How the image is grown. Every field is part of the cache key."""

    steps: int = 150  # gradient steps
    step_size: float = 0.02  # pixels (in [0, 1]) moved per step, per standard deviation of the gradient
    jitter: int = 4  # random shift in pixels before each step (wrapped around)
    blur_every: int = 10  # a Gaussian blur every this many steps (0: never)
    blur_sigma: float = 0.5  # the blur's standard deviation, in pixels
    decay: float = 0.002  # L2 decay: the fraction of each pixel's distance to mid-grey removed per step
    noise: float = 0.1  # the starting noise's standard deviation around mid-grey (0.5)
    seed: int = 0  # the starting noise and the jitter

    def __post_init__(self) -> None:
        checks = {
            "steps": 1 <= self.steps <= 2000,
            "step size": 0 < self.step_size <= 1,
            "jitter": 0 <= self.jitter <= 32,
            "blur every": self.blur_every >= 0,
            "blur sigma": 0 <= self.blur_sigma <= 8,
            "decay": 0 <= self.decay < 1,
            "noise": 0 <= self.noise <= 0.5,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise UserError(
                f"Activation maximisation's {', '.join(bad)} is out of range: steps 1-2000, step size above 0 "
                "up to 1, jitter 0-32 pixels, blur sigma 0-8 pixels, decay 0 up to 1, noise 0-0.5."
            )


def default_settings(net: RunNetwork, seed: int = 0) -> AscentSettings:
    """The settings for this run's network: the scratch CNN's defaults, with a jitter of a sixteenth of the image
    (4 pixels at 64 px); for VGG16 fewer steps (each costs about ten times as much at 64 px), larger ones, and a
    jitter of three thirty-seconds (6 pixels at 64 px): its deep filters answer to textures larger than a few
    pixels."""
    side = net.input_shape[0]
    if net.cfg.model == "vgg16":
        return AscentSettings(steps=100, step_size=0.03, jitter=max(1, side * 3 // 32), seed=seed)
    return AscentSettings(jitter=max(1, side // 16), seed=seed)


@dataclass(frozen=True)
class Maximised:
    """An image grown to excite one filter (or one class), and how much it does."""

    run_id: str
    layer: str  # the convolution, or the output layer for a class
    filter: int | None  # the filter's index in its layer; None for a class
    class_index: int | None
    class_name: str | None
    image: np.ndarray  # (H, W, C) uint8 at the run's input size
    value: float  # the filter's mean activation (or the class score) on the image
    start_value: float  # the same on the starting noise
    test_mean: float | None  # its mean over the run's test images (None: the run kept none)
    test_max: float | None  # the largest over those test images
    test_images: int
    probability: float | None  # a class: its probability on the image
    curve: np.ndarray  # the objective at each step (a filter: its mean through the leaky ReLU)
    settings: AscentSettings
    seconds: float  # the time the ascent took (when it was computed)
    cached: bool = False  # True when it came back from the run's folder
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return "class" if self.class_index is not None else "filter"

    @property
    def what(self) -> str:
        """ "filter 3 of block2_conv" or "the class basalt"."""
        return f"the class {self.class_name}" if self.kind == "class" else f"filter {self.filter} of {self.layer}"

    @property
    def measure(self) -> str:
        return "score" if self.kind == "class" else "mean activation"

    @property
    def ratio(self) -> float | None:
        """The value on the image over the test images' mean (None when that mean is not above 0)."""
        if self.test_mean is None or self.test_mean <= 0:
            return None
        return self.value / self.test_mean

    def sentence(self) -> str:
        """One sentence for a student, from the numbers."""
        if self.kind == "class":
            head = (
                f"On this image the network's score for {self.class_name} is {self.value:.2f} "
                f"(probability {self.probability:.0%})"
            )
        else:
            head = f"On this image {self.what} gives a mean activation of {self.value:.3f}"
        if self.kind == "filter" and self.value <= 0 and self.start_value <= 0:
            never = "" if self.test_mean is None or self.test_max > 0 else " nor on any test image"
            return (
                f"{self.what.capitalize()} stayed at 0 on the starting noise{never}: its ReLU never lets anything "
                "through, so there was no gradient to follow (a dead filter). Try another filter."
            )
        if self.test_mean is None:
            return head + "; the run kept no test images to compare with."
        compared = f"{self.ratio:.1f} times" if self.ratio is not None else "against"
        return (
            f"{head}: {compared} its average over the {self.test_images} test images ({self.test_mean:.3f}), "
            f"and {'above' if self.value > self.test_max else 'below'} the highest of them ({self.test_max:.3f})."
        )

    def to_dict(self, with_image: bool = False) -> dict[str, Any]:
        d = {
            "run_id": self.run_id,
            "target": self.kind,
            "layer": self.layer,
            "filter": self.filter,
            "class": self.class_name,
            "class_index": self.class_index,
            "measure": self.measure,
            "value": round(self.value, 6),
            "start_value": round(self.start_value, 6),
            "test_mean": None if self.test_mean is None else round(self.test_mean, 6),
            "test_max": None if self.test_max is None else round(self.test_max, 6),
            "test_images": self.test_images,
            "ratio": None if self.ratio is None else round(self.ratio, 3),
            "probability": None if self.probability is None else round(self.probability, 6),
            "settings": asdict(self.settings),
            "seconds": round(self.seconds, 3),
            "cached": self.cached,
            "sentence": self.sentence(),
        }
        if with_image:
            d["image"] = self.image.tolist()
        return d


# --------------------------------------------------------------------------- the target


@dataclass(frozen=True)
class _Target:
    layer: str
    filter: int | None
    class_index: int | None


def _target(net: RunNetwork, layer: str | None, filter_index: int | None, class_index: int | None) -> _Target:
    """Check what is asked; UserError in the student's words when it cannot be done."""
    convs = [la.name for la in net.conv_layers()]
    if class_index is not None:
        if layer is not None or filter_index is not None:
            raise UserError("Ask for a class or for a layer's filter, not both.")
        if not 0 <= class_index < len(net.class_names):
            raise UserError(
                f"Class index {class_index} is out of range: the run has {len(net.class_names)} classes "
                f"({', '.join(net.class_names)})."
            )
        return _Target(net.output_layer, None, int(class_index))
    if layer is None or filter_index is None:
        raise UserError("Name a convolution layer and one of its filters, or a class.")
    kind = net.layer_type(layer)
    if kind is not None and kind != "Conv2D":
        what = {
            "Dense": "a Dense layer",
            "MaxPooling2D": "a pooling layer",
            "BatchNormalization": "a normalisation layer",
        }
        raise UserError(
            f"{layer} is {what.get(kind, f'a {kind} layer')}: it has no filters to look at. Pick a convolution "
            f"({', '.join(convs)}), or a class for the output."
        )
    info = net.layer(layer)  # an unknown name: UnknownLayerError with the names
    count = info.output_shape[-1]
    if not 0 <= filter_index < count:
        raise UserError(f"{layer} has {count} filters, numbered 0 to {count - 1}; there is no filter {filter_index}.")
    return _Target(info.name, int(filter_index), None)


# --------------------------------------------------------------------------- the ascent


def blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """A Gaussian blur of (..., H, W, C) images over H and W (reflected edges), separable, in NumPy."""
    if sigma <= 0:
        return image
    radius = max(1, int(np.ceil(2 * sigma)))
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    taps = (taps / taps.sum()).astype(image.dtype)
    out = image
    for axis in (-3, -2):
        pad = [(0, 0)] * out.ndim
        pad[axis] = (radius, radius)
        padded = np.pad(out, pad, mode="reflect")
        size = out.shape[axis]
        out = sum(w * np.take(padded, np.arange(i, i + size), axis=axis) for i, w in enumerate(taps))
    return out.astype(image.dtype)


_STEPS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # network -> {"filter:<layer>" | "class": step}
_STEPS_LOCK = threading.Lock()


def _gradient_step(net: RunNetwork, target: _Target) -> Callable[[Any, Any], tuple[Any, Any]]:
    """A compiled TensorFlow function ``(image batch in [0, 1], filter or class index) -> (objective, its
    gradient with respect to the image)``, traced once per network and layer (or once for the classes) and
    kept while the network lives: a step then costs a few milliseconds for the course network instead of
    ~30 ms run eagerly (measured: bench/RESULTS.md)."""
    import tensorflow as tf

    key = "class" if target.class_index is not None else f"filter:{target.layer}"
    with _STEPS_LOCK:
        steps = _STEPS.setdefault(net, {})
        if key in steps:
            return steps[key]
    cfg = net.cfg
    if target.class_index is None:
        model = net.pre_activation_model(target.layer)

        def objective(x01, index):
            sums = tf.gather(model(differentiable_input(cfg, x01), training=False), index, axis=-1)
            return tf.reduce_mean(tf.nn.leaky_relu(sums, alpha=LEAK), axis=(1, 2))

    else:
        model = net.score_model(net.conv_layers()[-1].name)

        def objective(x01, index):
            return tf.gather(model(differentiable_input(cfg, x01), training=False)[1], index, axis=1)

    @tf.function(
        input_signature=[tf.TensorSpec((1, *net.input_shape), tf.float32), tf.TensorSpec((), tf.int32)],
        reduce_retracing=True,
    )
    def step(x01, index):
        with tf.GradientTape() as tape:
            tape.watch(x01)
            value = objective(x01, index)
        return value, tape.gradient(value, x01)

    with _STEPS_LOCK:
        return _STEPS.setdefault(net, {}).setdefault(key, step)


def _measure_all(net: RunNetwork, target: _Target, images_uint8: np.ndarray) -> np.ndarray:
    """(N, F): every filter's mean activation in the target's layer (or every class's score) for each of (N, H, W,
    C) uint8 images, through the network's ordinary path, in batches of 64."""
    out = []
    for start in range(0, len(images_uint8), 64):
        x = net.prepare(images_uint8[start : start + 64])
        if target.class_index is None:
            model = net.layer_model(target.layer)  # built under the network's lock: taken before it is held
            with net.lock:
                maps = np.asarray(model(x, training=False))
            out.append(maps.mean(axis=(1, 2)).astype("float64"))
        else:
            out.append(net.scores(x).astype("float64"))
    return np.concatenate(out) if out else np.zeros((0, 0), dtype="float64")


def _column(target: _Target, values: np.ndarray) -> np.ndarray:
    return values[:, target.filter if target.class_index is None else target.class_index]


def maximise(
    net: RunNetwork,
    layer: str | None = None,
    filter_index: int | None = None,
    class_index: int | None = None,
    settings: AscentSettings | None = None,
    progress: Progress | None = None,
    test_images: np.ndarray | None = None,
    test_values: np.ndarray | None = None,
) -> Maximised:
    """Grow an image that excites one filter of a convolution (or one class's score) as much as it can.

    Args:
        net: the run's opened network.
        layer, filter_index: a Conv2D layer and one of its filters; or
        class_index: a class (its score, before the softmax).
        settings: how to grow it; None: :func:`default_settings` for this network.
        progress: called with (step, steps) after each step.
        test_images: (N, H, W, C) uint8 to compare with (the run's test images); None: no comparison.
        test_values: instead of ``test_images``, the objective already measured on each of them (N,).

    Raises:
        UserError: an unknown layer, a layer that is not a convolution, a filter or class out of range.
    """
    import tensorflow as tf

    target = _target(net, layer, filter_index, class_index)
    settings = settings or default_settings(net)
    gradient_step = _gradient_step(net, target)
    index = tf.constant(target.filter if target.class_index is None else target.class_index, dtype=tf.int32)
    rng = np.random.default_rng(settings.seed)
    x = np.clip(0.5 + settings.noise * rng.standard_normal((1, *net.input_shape)), 0, 1).astype("float32")
    start = np.clip(np.round(x[0] * 255), 0, 255).astype(np.uint8)
    curve = np.zeros(settings.steps, dtype="float32")
    t0 = time.perf_counter()
    for step in range(settings.steps):
        dy, dx = (int(v) for v in rng.integers(-settings.jitter, settings.jitter + 1, size=2))
        shifted = tf.constant(np.roll(x, (dy, dx), axis=(1, 2)))
        with net.lock:  # one step at a time: other views of this run may compute in between
            value, grad = gradient_step(shifted, index)
        g = np.roll(np.asarray(grad), (-dy, -dx), axis=(1, 2))
        curve[step] = float(np.asarray(value)[0])
        x = x + settings.step_size * g / (g.std() + 1e-8)
        x = x - settings.decay * (x - 0.5)
        if settings.blur_every and (step + 1) % settings.blur_every == 0:
            x = blur(x, settings.blur_sigma)
        x = np.clip(x, 0, 1).astype("float32")
        if progress is not None:
            progress(step + 1, settings.steps)
    seconds = time.perf_counter() - t0
    image = np.clip(np.round(x[0] * 255), 0, 255).astype(np.uint8)
    value, start_value = (float(v) for v in _column(target, _measure_all(net, target, np.stack([image, start]))))
    tests = test_values
    if tests is None and test_images is not None and len(test_images):
        tests = _column(target, _measure_all(net, target, test_images))
    tests = None if tests is None or not len(tests) else np.asarray(tests, dtype="float64")
    probability = None
    if target.class_index is not None:
        probability = float(net.probabilities(image[None])[0, target.class_index])
    return Maximised(
        run_id=net.record.run_id,
        layer=target.layer,
        filter=target.filter,
        class_index=target.class_index,
        class_name=None if target.class_index is None else net.class_names[target.class_index],
        image=image,
        value=value,
        start_value=start_value,
        test_mean=None if tests is None else float(tests.mean()),
        test_max=None if tests is None else float(tests.max()),
        test_images=0 if tests is None else len(tests),
        probability=probability,
        curve=curve,
        settings=settings,
        seconds=seconds,
    )


# --------------------------------------------------------------------------- a stored run, cached


def cache_key(net: RunNetwork, target: _Target, settings: AscentSettings) -> str:
    """The result's file name: the run (and when it was stored), the target and every setting."""
    what = {
        "run": net.record.run_id,
        "created": net.record.created,
        "layer": target.layer,
        "filter": target.filter,
        "class": target.class_index,
        "settings": asdict(settings),
    }
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:24]


def _to_arrays(m: Maximised) -> dict[str, np.ndarray]:
    numbers = {k: getattr(m, k) for k in ("run_id", "layer", "filter", "class_index", "class_name", "value")}
    numbers.update({k: getattr(m, k) for k in ("start_value", "test_mean", "test_max", "test_images", "probability")})
    numbers["seconds"] = m.seconds  # unrounded: a kept result is the computed one exactly
    return {"image": m.image, "curve": m.curve, "numbers": np.array(json.dumps(numbers))}


def _from_arrays(arrays: dict[str, np.ndarray], settings: AscentSettings) -> Maximised:
    n = json.loads(str(arrays["numbers"]))
    return Maximised(
        run_id=n["run_id"],
        layer=n["layer"],
        filter=n["filter"],
        class_index=n["class_index"],
        class_name=n["class_name"],
        image=arrays["image"],
        value=n["value"],
        start_value=n["start_value"],
        test_mean=n["test_mean"],
        test_max=n["test_max"],
        test_images=n["test_images"],
        probability=n["probability"],
        curve=arrays["curve"],
        settings=settings,
        seconds=n["seconds"],
        cached=True,
    )


def stored_maximised(
    store: RunStore,
    net: RunNetwork,
    layer: str | None = None,
    filter_index: int | None = None,
    class_index: int | None = None,
    settings: AscentSettings | None = None,
) -> Maximised | None:
    """The result kept in the run's folder for exactly this request, or None (nothing is computed)."""
    target = _target(net, layer, filter_index, class_index)
    settings = settings or default_settings(net)
    kept = store.run_cache_get(net.record.run_id, CACHE_KIND, cache_key(net, target, settings))
    if kept is None or not {"image", "curve", "numbers"} <= set(kept):
        return None
    return _from_arrays(kept, settings)


def maximise_run(
    store: RunStore,
    run_id: str,
    layer: str | None = None,
    filter_index: int | None = None,
    class_index: int | None = None,
    settings: AscentSettings | None = None,
    progress: Progress | None = None,
    net: RunNetwork | None = None,
) -> Maximised:
    """:func:`maximise` for a stored run, compared with its stored test images, kept in its folder.

    Asked again with the same layer, filter (or class) and settings, the kept result comes back without any
    computing (``cached`` True). A read-only store computes without keeping.

    Raises:
        UnknownRunError, ModelMissingError: no such run, or no network file.
        UserError: as :func:`maximise`.
    """
    if net is None:
        net = open_run(store, run_id)
    elif net.record.run_id != run_id:
        raise UnknownRunError(f"The network given is run {net.record.run_id}'s, not run {run_id}'s.")
    settings = settings or default_settings(net)
    kept = stored_maximised(store, net, layer, filter_index, class_index, settings)
    if kept is not None:
        if progress is not None:
            progress(settings.steps, settings.steps)
        return kept
    target = _target(net, layer, filter_index, class_index)
    tests = _test_values(store, net, target)
    result = maximise(net, layer, filter_index, class_index, settings, progress, test_values=tests)
    store.run_cache_put(run_id, CACHE_KIND, cache_key(net, target, settings), _to_arrays(result))
    return replace(result, cached=False)


def _test_values(store: RunStore, net: RunNetwork, target: _Target) -> np.ndarray | None:
    """The objective on each of the run's stored test images (None: it kept none), measured once per layer (every
    filter at once; or every class) and kept in the run's folder beside the images grown: the next filter of the
    same layer is compared at no cost (for a deep VGG16 layer this pass took longer than the ascent itself)."""
    key = f"tests-{target.layer}-{int(net.record.created * 1000)}"
    kept = store.run_cache_get(net.record.run_id, CACHE_KIND, "".join(c if c.isalnum() else "_" for c in key))
    if kept is not None and "values" in kept:
        return _column(target, kept["values"])
    images = store.load_arrays(net.record.run_id).get("test_images")
    if images is None or not len(images):
        return None
    values = _measure_all(net, target, images)
    store.run_cache_put(
        net.record.run_id, CACHE_KIND, "".join(c if c.isalnum() else "_" for c in key), {"values": values}
    )
    return _column(target, values)
