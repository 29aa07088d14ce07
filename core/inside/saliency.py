"""Saliency maps beside Grad-CAM and occlusion, and the check that a map explains the model, not the image.

Two gradient maps, written with ``tf.GradientTape`` on the run's flat float32 network (:class:`RunNetwork`;
a bfloat16 run is differentiated in float32 too, so the maps are not rounded to bfloat16's 8 bits):

- **SmoothGrad** (Smilkov et al., 2017): the gradient of the class score with respect to the image,
  averaged over :data:`SAMPLES` copies of the image with Gaussian noise added (standard deviation
  :data:`NOISE` of the input's range, black to white; drawn from :data:`SEED`, so the map is the same every
  time). The plain gradient is noisy from pixel to pixel; the average keeps what is stable. With noise 0 it
  *is* the plain gradient map.
- **Integrated Gradients** (Sundararajan et al., 2017): the gradients along the straight path from a
  **baseline image** to the image, averaged (trapezoid rule, :data:`STEPS` steps) and multiplied by
  (image - baseline). The baseline is a **black image** (every pixel 0): the usual choice for photographs,
  where black means "no signal"; it is named on the page. Its known cost: a pixel that is black in the image
  gets no attribution whatever its role. The attributions add up to f(image) - f(baseline) (completeness);
  the gap that remains is the path integral's numerical error, reported with every map.

Every map is (H, W) in [0, 1] like Grad-CAM's heatmap: the absolute attribution summed over the colour
channels, divided by its largest value (for SmoothGrad and Integrated Gradients by its 99th percentile,
:data:`CLIP`, and clipped at 1, as Smilkov et al. display them).

**The sanity check** (Adebayo et al., 2018, model-parameter randomisation): the *top* of the network
(:func:`top_layers`: the last convolution block and the classifier head) gets the weights Keras would
start from, drawn from :data:`SEED`, on a copy (:meth:`RunNetwork.randomised`; the stored model and the
open network are untouched); every map is computed again for the same image and class, and compared with
the original by **Spearman's rank correlation** over the pixels. A map that still ranks the pixels as it
did (correlation at least :data:`THRESHOLD`) does not depend on what the model learned there: it explains
the image, not the model. :data:`THRESHOLD` is 0.5: above it, a map keeps most of its ordering of the
pixels, so a student would read the same story off it; Adebayo et al.'s failing methods (guided
backpropagation, gradient x input) stay near 1 and the passing ones fall towards 0. An original map that is
empty (Grad-CAM with no evidence for the class) gets no verdict ("no map"): there is nothing to compare. The **control**
(:func:`edge_map`: the image's own brightness gradient, a Sobel filter) reads no weight at all and must fail.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.base.errors import UserError
from core.inside.gradcam import _class, default_layer, grad_cam, occlusion
from core.inside.network import RunNetwork

NOISE = 0.15  # SmoothGrad: the noise's standard deviation, as a fraction of the input's range (Smilkov et al.: 10-20%)
SAMPLES = 25  # SmoothGrad: noisy copies averaged
STEPS = 50  # Integrated Gradients: steps along the path from the baseline
BASELINE = "black"  # Integrated Gradients' starting image: every pixel 0
SEED = 0  # SmoothGrad's noise and the sanity check's random weights: the same every time
CLIP = 99.0  # SmoothGrad and Integrated Gradients: 1 on the map is this percentile of the pixels' attributions
THRESHOLD = 0.5  # the sanity check: a map whose rank correlation stays at or above this fails

# The methods, by their CLI name: their name on the page.
SALIENCY_METHODS = {
    "gradcam": "Grad-CAM",
    "occlusion": "Occlusion",
    "smoothgrad": "SmoothGrad",
    "ig": "Integrated Gradients",
    "edges": "Edges (control)",
}


@dataclass(frozen=True)
class Completeness:
    """Integrated Gradients' check: the attributions add up to f(image) - f(baseline)."""

    total: float  # the sum of all attributions
    score: float  # f(image): the class score (logit)
    baseline_score: float  # f(baseline)

    @property
    def difference(self) -> float:
        return self.score - self.baseline_score

    @property
    def gap(self) -> float:
        """|sum of attributions - (f(image) - f(baseline))|, in score units."""
        return abs(self.total - self.difference)

    @property
    def relative_gap(self) -> float:
        """The gap as a fraction of |f(image) - f(baseline)| (0 when that is 0 and so is the gap)."""
        scale = abs(self.difference)
        return self.gap / scale if scale > 0 else (0.0 if self.gap == 0 else float("inf"))

    def to_dict(self) -> dict[str, float]:
        return {
            "sum_of_attributions": self.total,
            "score": self.score,
            "baseline_score": self.baseline_score,
            "gap": self.gap,
            "relative_gap": self.relative_gap,
        }


@dataclass(frozen=True)
class Saliency:
    """One method's map of one image for one class."""

    method: str  # a key of SALIENCY_METHODS
    class_index: int
    class_name: str
    heatmap: np.ndarray  # (H, W) float32 in [0, 1]; all 0 when the method found nothing
    settings: dict[str, Any] = field(default_factory=dict)  # the method's named parameters
    attributions: np.ndarray | None = None  # Integrated Gradients: (H, W, C), in score units
    completeness: Completeness | None = None  # Integrated Gradients only

    @property
    def name(self) -> str:
        return SALIENCY_METHODS[self.method]

    def to_dict(self, digits: int = 4) -> dict[str, Any]:
        out: dict[str, Any] = {
            "method": self.method,
            "name": self.name,
            "class": self.class_name,
            "class_index": self.class_index,
            "settings": self.settings,
            "map": np.round(self.heatmap.astype("float64"), digits).tolist(),
        }
        if self.completeness is not None:
            out["completeness"] = self.completeness.to_dict()
        return out


def _normalised(values: np.ndarray, percentile: float = 100.0) -> np.ndarray:
    """|attribution| summed over channels (H, W, C) -> (H, W) in [0, 1]; all 0 when everything is 0.

    Divided by its ``percentile``-th percentile and clipped at 1: the gradient maps use :data:`CLIP` (as
    Smilkov et al. display them: a few extreme pixels would otherwise leave the rest of the map dark); the
    largest value when that percentile is 0.
    """
    v = np.abs(np.asarray(values, dtype="float64"))
    v = v.sum(axis=-1) if v.ndim == 3 else v
    peak = float(np.percentile(v, percentile)) if v.size else 0.0
    peak = peak if peak > 0 else float(v.max(initial=0.0))
    return (np.clip(v / peak, 0, 1) if peak > 0 else np.zeros_like(v)).astype("float32")


def _input_range(net: RunNetwork) -> float:
    """The prepared input's span from a black to a white image (1 after /255; 255 after VGG16's caffe
    preprocessing): the unit SmoothGrad's noise is a fraction of."""
    shape = net.input_shape
    black, white = net.prepare(np.zeros(shape, np.uint8)), net.prepare(np.full(shape, 255, np.uint8))
    return float(np.abs(white - black).max())


def _chosen(net: RunNetwork, x: np.ndarray, class_index: int | None) -> int:
    return _class(net, class_index, net.scores(x)[0])


def smoothgrad(
    net: RunNetwork,
    image_uint8: np.ndarray,
    class_index: int | None = None,
    noise: float = NOISE,
    samples: int = SAMPLES,
    seed: int = SEED,
) -> Saliency:
    """SmoothGrad of one image for one class (None: the predicted one).

    Args:
        noise: the noise's standard deviation as a fraction of the input's range (0: the plain gradient).
        samples: the noisy copies averaged (at least 1).
        seed: the noise's seed.
    """
    if not 0 <= noise <= 1:
        raise UserError(f"SmoothGrad's noise level must be in [0, 1] (a fraction of the input's range). Got {noise}.")
    if int(samples) < 1:
        raise UserError(f"SmoothGrad needs at least 1 sample. Got {samples}.")
    x = net.prepare(image_uint8)
    chosen = _chosen(net, x, class_index)
    rng = np.random.default_rng(seed)
    sigma = noise * _input_range(net)
    noisy = x + rng.normal(0.0, 1.0, (int(samples), *x.shape[1:])).astype("float32") * np.float32(sigma)
    grads, _ = net.input_gradients(noisy, chosen)
    return Saliency(
        "smoothgrad",
        chosen,
        net.class_names[chosen],
        _normalised(grads.mean(axis=0), CLIP),
        {"noise": float(noise), "samples": int(samples), "seed": int(seed)},
    )


def integrated_gradients(
    net: RunNetwork, image_uint8: np.ndarray, class_index: int | None = None, steps: int = STEPS
) -> Saliency:
    """Integrated Gradients of one image for one class (None: the predicted one), from a black baseline.

    The path integral is the trapezoid rule over ``steps`` equal steps (``steps + 1`` gradients, in batches);
    :class:`Completeness` says how close the attributions' sum comes to f(image) - f(black).
    """
    if int(steps) < 1:
        raise UserError(f"Integrated Gradients needs at least 1 step. Got {steps}.")
    x = net.prepare(image_uint8)
    chosen = _chosen(net, x, class_index)
    base = net.prepare(np.zeros(net.input_shape, np.uint8))  # the black image, as the network reads it
    alphas = np.linspace(0.0, 1.0, int(steps) + 1, dtype="float32")[:, None, None, None]
    grads, scores = net.input_gradients(base + alphas * (x - base), chosen)
    average = ((grads[:-1] + grads[1:]) / 2).mean(axis=0)  # the trapezoid rule
    attributions = ((x[0] - base[0]) * average).astype("float32")
    check = Completeness(float(attributions.sum(dtype="float64")), float(scores[-1]), float(scores[0]))
    return Saliency(
        "ig",
        chosen,
        net.class_names[chosen],
        _normalised(attributions, CLIP),
        {"baseline": BASELINE, "steps": int(steps)},
        attributions,
        check,
    )


def edge_map(image_uint8: np.ndarray) -> np.ndarray:
    """The control: where the image's brightness changes (Sobel gradient magnitude of its grey levels), (H, W) in
    [0, 1]. It reads no weight of any network, so randomising them cannot change it."""
    grey = np.asarray(image_uint8, dtype="float64").mean(axis=-1)
    p = np.pad(grey, 1, mode="edge")
    gx = (p[:-2, 2:] + 2 * p[1:-1, 2:] + p[2:, 2:]) - (p[:-2, :-2] + 2 * p[1:-1, :-2] + p[2:, :-2])
    gy = (p[2:, :-2] + 2 * p[2:, 1:-1] + p[2:, 2:]) - (p[:-2, :-2] + 2 * p[:-2, 1:-1] + p[:-2, 2:])
    return _normalised(np.hypot(gx, gy))


def saliency(net: RunNetwork, image_uint8: np.ndarray, method: str, class_index: int | None = None) -> Saliency:
    """One method's map (a key of :data:`SALIENCY_METHODS`) with its default settings, for a class (None: the
    predicted one). Grad-CAM at the last convolution; occlusion as :func:`~core.inside.gradcam.occlusion`,
    its probability drop with the rises set to 0."""
    if method not in SALIENCY_METHODS:
        raise UserError(f"Unknown saliency method {method!r}: choose one of {', '.join(SALIENCY_METHODS)}.")
    if method == "smoothgrad":
        return smoothgrad(net, image_uint8, class_index)
    if method == "ig":
        return integrated_gradients(net, image_uint8, class_index)
    if method == "gradcam":
        cam = grad_cam(net, image_uint8, class_index)
        return Saliency("gradcam", cam.class_index, cam.class_name, cam.heatmap, {"layer": cam.layer})
    if method == "occlusion":
        occ = occlusion(net, image_uint8, class_index)
        drop = np.clip(occ.drop, 0, None)
        return Saliency(
            "occlusion",
            occ.class_index,
            occ.class_name,
            _normalised(drop),
            {"patch": occ.patch, "stride": occ.stride},
        )
    chosen = _chosen(net, net.prepare(image_uint8), class_index)
    return Saliency("edges", chosen, net.class_names[chosen], edge_map(image_uint8), {"filter": "Sobel"})


# --------------------------------------------------------------------------- the sanity check


def rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation of two maps over their pixels (ties share their average rank).

    A flat map orders no pixel: its correlation with anything is 0 (1 when both are flat and equal).
    """
    x, y = np.asarray(a, dtype="float64").ravel(), np.asarray(b, dtype="float64").ravel()
    if x.shape != y.shape:
        raise ValueError(f"The maps differ in size: {np.shape(a)} and {np.shape(b)}.")
    rx, ry = _ranks(x), _ranks(y)
    if rx.std() == 0 or ry.std() == 0:
        return 1.0 if np.array_equal(x, y) else 0.0
    return float(np.corrcoef(rx, ry)[0, 1])


def _ranks(v: np.ndarray) -> np.ndarray:
    """1-based ranks, tied values sharing the average of their ranks."""
    values, inverse, counts = np.unique(v, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    return ((ends - counts + 1 + ends) / 2.0)[inverse.ravel()]


def top_layers(net: RunNetwork) -> list[str]:
    """The layers the sanity check randomises: every layer with weights from the last convolution block on
    (for the course CNN the last block's convolution and batch normalisation, then the Dense head; for
    VGG16 block5's three convolutions and the new head)."""
    last = default_layer(net)
    block = last.split("_")[0] + "_"
    weighted = net.weighted_layers()
    first = next((i for i, name in enumerate(weighted) if name.startswith(block)), weighted.index(last))
    return weighted[first:]


@dataclass(frozen=True)
class SanityRow:
    """One method before and after the top layers were randomised."""

    method: str
    original: np.ndarray  # (H, W) in [0, 1]
    randomised: np.ndarray  # (H, W) in [0, 1]
    correlation: float  # Spearman's rank correlation of the two maps
    threshold: float

    @property
    def name(self) -> str:
        return SALIENCY_METHODS[self.method]

    @property
    def informative(self) -> bool:
        """The original map orders the pixels at all (an empty map, e.g. Grad-CAM with no evidence for the class,
        has nothing to compare: the check cannot tell)."""
        return bool(self.original.max() > self.original.min())

    @property
    def passed(self) -> bool:
        """The map changed when the weights did: it depends on what the model learned."""
        return self.informative and self.correlation < self.threshold

    @property
    def verdict(self) -> str:
        """ "passed", "failed" or "no map" (the original map is empty: nothing to compare)."""
        return "no map" if not self.informative else "passed" if self.passed else "failed"


@dataclass(frozen=True)
class SanityCheck:
    """Adebayo et al.'s model-parameter randomisation check of several methods for one image and class."""

    class_index: int
    class_name: str
    layers: list[str]  # the randomised layers, input side first
    seed: int
    threshold: float
    rows: list[SanityRow]

    def passed(self) -> list[str]:
        return [row.method for row in self.rows if row.passed]

    def failed(self) -> list[str]:
        return [row.method for row in self.rows if row.verdict == "failed"]

    def to_dict(self, digits: int = 4) -> dict[str, Any]:
        return {
            "class": self.class_name,
            "class_index": self.class_index,
            "randomised_layers": self.layers,
            "seed": self.seed,
            "threshold": self.threshold,
            "methods": [
                {
                    "method": r.method,
                    "name": r.name,
                    "rank_correlation": round(r.correlation, 6),
                    "passed": r.passed,
                    "verdict": r.verdict,
                    "randomised_map": np.round(r.randomised.astype("float64"), digits).tolist(),
                }
                for r in self.rows
            ],
        }


def sanity_check(
    net: RunNetwork,
    image_uint8: np.ndarray,
    class_index: int | None = None,
    methods: list[str] | tuple[str, ...] | None = None,
    originals: dict[str, Saliency] | None = None,
    layers: list[str] | None = None,
    seed: int = SEED,
    threshold: float = THRESHOLD,
    randomised: RunNetwork | None = None,
) -> SanityCheck:
    """Randomise the top layers (a copy), compute each method's map again, compare by rank correlation.

    Args:
        net: the run's network (not changed).
        class_index: the class explained, before and after (None: the one ``net`` predicts).
        methods: keys of :data:`SALIENCY_METHODS` (None: all of them).
        originals: maps already computed on ``net`` for this image and class (the page's cache), by method.
        layers: the layers to randomise (None: :func:`top_layers`).
        randomised: the randomised copy if the caller built it already (with ``layers`` and ``seed``).
    """
    methods = list(methods or SALIENCY_METHODS)
    unknown = [m for m in methods if m not in SALIENCY_METHODS]
    if unknown:
        raise UserError(f"Unknown saliency method {unknown[0]!r}: choose from {', '.join(SALIENCY_METHODS)}.")
    chosen = _chosen(net, net.prepare(image_uint8), class_index)
    layers = list(layers or top_layers(net))
    randomised = randomised or net.randomised(layers, seed)
    originals = originals or {}
    rows = []
    for method in methods:
        before = originals.get(method)
        before = before if before is not None and before.class_index == chosen else None
        before = before or saliency(net, image_uint8, method, chosen)
        after = saliency(randomised, image_uint8, method, chosen)
        rows.append(
            SanityRow(method, before.heatmap, after.heatmap, rank_correlation(before.heatmap, after.heatmap), threshold)
        )
    return SanityCheck(chosen, net.class_names[chosen], layers, int(seed), float(threshold), rows)
