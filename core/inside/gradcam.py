"""Why the network chose a class: Grad-CAM, and occlusion as a second view.

**Grad-CAM** (Selvaraju et al., 2017), written with ``tf.GradientTape``:
the gradient of the class *score* (before the softmax) with respect to a conv
layer's output A (h x w x K), averaged over the map, gives one weight per
channel; the weighted sum of A's channels, through a ReLU, is where that layer
saw evidence for the class. It is normalised to [0, 1] and resized (bilinear)
to the input. The default layer is the last convolution: the most abstract
maps that still have a spatial layout (12x12 in the course's network; 4x4 in
VGG16 at 64x64, hence a coarse map).

**Occlusion** (Zeiler and Fergus, 2014) is the second view, chosen over
guided backpropagation or plain gradient saliency because it answers the
question in the units students already read, the class probability: "cover
this part of the image with its average colour, and the probability of
basalt drops by 0.4". It needs no gradients, only forward passes, and it
depends on the trained weights: Adebayo et al. (2018) showed that guided
backpropagation's maps barely change when the weights are randomised (they
look like an edge detector of the image), so they would teach the wrong
lesson. Its cost is one forward pass per patch position (at most 10 x 10).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.base.errors import UserError
from core.inside.network import RunNetwork, softmax

MAX_POSITIONS = 10  # occlusion: at most 10 x 10 positions of the covering square


@dataclass(frozen=True)
class GradCam:
    """A Grad-CAM map of one image for one class."""

    class_index: int
    class_name: str
    layer: str
    probabilities: np.ndarray  # (classes,): the network's answer for the image
    coarse: np.ndarray  # (h, w) at the layer's resolution, in [0, 1]
    heatmap: np.ndarray  # (H, W) at the input's resolution, in [0, 1]
    peak: float  # the largest value before normalising; 0: no positive evidence at this layer

    @property
    def probability(self) -> float:
        return float(self.probabilities[self.class_index])

    def to_dict(self, digits: int = 4) -> dict[str, Any]:
        return {
            "class": self.class_name,
            "class_index": self.class_index,
            "layer": self.layer,
            "probability": round(self.probability, 6),
            "peak": self.peak,
            "map": np.round(self.heatmap.astype("float64"), digits).tolist(),
        }


@dataclass(frozen=True)
class Occlusion:
    """How much covering each part of the image changes one class's probability."""

    class_index: int
    class_name: str
    probability: float  # with nothing covered
    patch: int  # the covered square's side, in pixels
    stride: int
    drop: np.ndarray  # (H, W): probability without cover minus with cover, averaged over the patches covering
    # each pixel; positive where the image holds evidence for the class


def default_layer(net: RunNetwork) -> str:
    """The last convolution: Grad-CAM's usual layer."""
    convs = net.conv_layers()
    if not convs:
        raise UserError("This network has no convolution layer, so Grad-CAM has nothing to look at.")
    return convs[-1].name


def _class(net: RunNetwork, class_index: int | None, scores: np.ndarray) -> int:
    if class_index is None:
        return int(np.argmax(scores))
    if not 0 <= class_index < len(net.class_names):
        raise UserError(f"Class index {class_index} is out of range: the run has {len(net.class_names)} classes.")
    return int(class_index)


def grad_cam(
    net: RunNetwork, image_uint8: np.ndarray, class_index: int | None = None, layer: str | None = None
) -> GradCam:
    """Grad-CAM of one image for one class.

    Args:
        net: the run's network.
        image_uint8: one image (H, W, C) at the run's size.
        class_index: the class to explain; None: the predicted one.
        layer: a Conv2D (or other spatial) layer; None: the last convolution.

    Returns:
        A :class:`GradCam` whose maps are non-negative and at most 1.
    """
    import tensorflow as tf

    layer = layer or default_layer(net)
    net.layer(layer)
    model = net.score_model(layer)
    x = tf.constant(net.prepare(image_uint8))
    with net.lock:
        with tf.GradientTape() as tape:
            maps, scores = model(x, training=False)
            chosen = _class(net, class_index, scores.numpy()[0])
            score = scores[:, chosen]
        grads = tape.gradient(score, maps)
    weights = tf.reduce_mean(grads, axis=(1, 2))  # (1, K): one weight per channel
    cam = tf.nn.relu(tf.reduce_sum(maps * weights[:, None, None, :], axis=-1))[0]  # (h, w)
    peak = float(tf.reduce_max(cam))
    coarse = (cam / peak).numpy() if peak > 0 else np.zeros(cam.shape, dtype="float32")
    height, width = net.input_shape[:2]
    heat = tf.image.resize(coarse[:, :, None], (height, width), method="bilinear")[:, :, 0].numpy()
    return GradCam(
        class_index=chosen,
        class_name=net.class_names[chosen],
        layer=layer,
        probabilities=softmax(scores.numpy()[0]),
        coarse=np.clip(coarse, 0, 1).astype("float32"),
        heatmap=np.clip(heat, 0, 1).astype("float32"),
        peak=peak,
    )


def occlusion(
    net: RunNetwork, image_uint8: np.ndarray, class_index: int | None = None, patch: int | None = None
) -> Occlusion:
    """Cover the image with a square of its mean colour at each position; record the class probability's drop.

    Args:
        net, image_uint8, class_index: as :func:`grad_cam`.
        patch: the square's side in pixels; None: an eighth of the image (at least 2).

    The square moves by half its side, and by more on large images so that at
    most 10 x 10 positions are tried (one batch of forward passes).
    """
    image = np.asarray(image_uint8)
    height, width = image.shape[:2]
    patch = int(patch or max(2, min(height, width) // 8))
    if not 1 <= patch <= min(height, width):
        raise UserError(f"The occlusion patch must be 1..{min(height, width)} pixels. Got {patch} instead.")
    stride = max(1, patch // 2, math.ceil((min(height, width) - patch) / (MAX_POSITIONS - 1)))
    rows = list(range(0, height - patch + 1, stride))
    cols = list(range(0, width - patch + 1, stride))
    fill = image.reshape(-1, image.shape[-1]).mean(axis=0).round().astype(image.dtype)
    batch = np.repeat(image[None], len(rows) * len(cols) + 1, axis=0)
    for n, (r, c) in enumerate((r, c) for r in rows for c in cols):
        batch[n + 1, r : r + patch, c : c + patch] = fill
    probs = net.probabilities(batch)  # the stored model's answer, as the page shows it
    chosen = _class(net, class_index, probs[0])
    drops = probs[0, chosen] - probs[1:, chosen]
    total = np.zeros((height, width), dtype="float64")
    count = np.zeros((height, width), dtype="float64")
    for d, (r, c) in zip(drops, ((r, c) for r in rows for c in cols), strict=True):
        total[r : r + patch, c : c + patch] += d
        count[r : r + patch, c : c + patch] += 1
    drop = np.divide(total, count, out=np.zeros_like(total), where=count > 0)
    return Occlusion(chosen, net.class_names[chosen], float(probs[0, chosen]), patch, stride, drop.astype("float32"))
