"""Are the network's probabilities honest? Reliability bins, expected calibration error, temperature scaling.

A network that says "90 %" should be right on about 90 % of the images it says it of. :func:`reliability`
sorts the test images by their top class' probability (the *confidence*) into equal-width bins and gives
each bin's count, mean confidence and accuracy; the **expected calibration error** (ECE, Guo et al. 2017)
is the gap between confidence and accuracy averaged over the bins, each weighted by its share of the
images. :func:`fit_temperature` finds the one number T that makes the validation images' probabilities
most likely (lowest cross-entropy) when every row is recomputed as ``softmax(log p / T)``: T > 1 softens
an over-confident network, T < 1 sharpens an under-confident one. Dividing by a positive T never changes
which class is largest, so the accuracy is the same before and after: only the confidence moves.
:func:`calibrate` puts the two together: T fitted on the validation split, the bins and ECE on the test
split before and after. NumPy only; the predictions come from the caller (a stored run's:
:mod:`core.training.heldout`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from core.results.evaluation import _check_predictions

N_BINS = 10  # equal-width confidence bins (0-10 %, ..., 90-100 %), as in Guo et al. (2017)
# log(0) never happens: probabilities below this (float32 softmax underflow) count as this.
LOG_FLOOR = 1e-30
# The temperature is searched in [T_MIN, T_MAX]: wider than any network here needs (an over-confident
# course CNN fits T ~ 1.5-3), narrow enough that the search ends in a few dozen steps.
T_MIN, T_MAX = 0.05, 20.0
SEARCH_STEPS = 80  # golden-section steps on log T: the bracket shrinks by 0.618 each, far below 1e-6
# The sentence quotes a bin only if it holds at least this many images (fewer say little).
SENTENCE_MIN_COUNT = 5


@dataclass(frozen=True)
class Reliability:
    """Confidence bins against accuracy: the reliability diagram's numbers.

    Attributes:
        edges: ``n_bins + 1`` bin edges from 0 to 1; bin k holds confidences in ``(edges[k], edges[k+1]]``.
        counts: images per bin.
        confidence: the bin's mean confidence (None for an empty bin).
        accuracy: the share of the bin's images whose top class is right (None for an empty bin).
        ece: expected calibration error: sum over bins of count/n x |accuracy - confidence|.
        mean_confidence: the mean confidence over all images.
        accuracy_all: the accuracy over all images.
        n: the number of images.
    """

    edges: list[float]
    counts: list[int]
    confidence: list[float | None]
    accuracy: list[float | None]
    ece: float
    mean_confidence: float
    accuracy_all: float
    n: int

    @property
    def overconfidence(self) -> float:
        """Mean confidence minus accuracy: > 0 when the network claims more than it delivers."""
        return self.mean_confidence - self.accuracy_all

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def reliability(y_true: Sequence[int] | np.ndarray, probs: Any, n_bins: int = N_BINS) -> Reliability:
    """Bin the images by confidence (their top class' probability) and compare each bin's accuracy.

    Args:
        y_true: the true class of each image, shape (N,).
        probs: softmax outputs, shape (N, C), rows summing to 1.
        n_bins: equal-width bins over [0, 1].

    Raises:
        ValueError: the labels and probabilities do not fit together (as :func:`core.results.evaluate`
            says), or ``n_bins`` is not a positive integer.
    """
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise ValueError(f"n_bins must be an integer >= 1. Got {n_bins!r} instead.")
    y, p, _ = _check_predictions(y_true, probs, [str(k) for k in range(np.shape(probs)[-1])])
    n = len(y)
    conf = p.max(axis=1)
    correct = p.argmax(axis=1) == y
    # Bin k holds (k/n_bins, (k+1)/n_bins]; a confidence of exactly 0 (impossible for a softmax) joins bin 0.
    idx = np.clip(np.ceil(conf * n_bins).astype(int) - 1, 0, n_bins - 1)
    counts = np.bincount(idx, minlength=n_bins)
    conf_sum = np.bincount(idx, weights=conf, minlength=n_bins)
    right = np.bincount(idx, weights=correct.astype(float), minlength=n_bins)
    mean_conf = [float(conf_sum[k] / counts[k]) if counts[k] else None for k in range(n_bins)]
    acc = [float(right[k] / counts[k]) if counts[k] else None for k in range(n_bins)]
    ece = sum(counts[k] / n * abs(acc[k] - mean_conf[k]) for k in range(n_bins) if counts[k])
    return Reliability(
        edges=[k / n_bins for k in range(n_bins + 1)],
        counts=counts.astype(int).tolist(),
        confidence=mean_conf,
        accuracy=acc,
        ece=float(ece),
        mean_confidence=float(conf.mean()),
        accuracy_all=float(correct.mean()),
        n=int(n),
    )


def expected_calibration_error(y_true: Sequence[int] | np.ndarray, probs: Any, n_bins: int = N_BINS) -> float:
    """The ECE of :func:`reliability`: 0 for a perfectly calibrated network, at most 1."""
    return reliability(y_true, probs, n_bins).ece


def _log_probs(probs: Any) -> np.ndarray:
    return np.log(np.maximum(np.asarray(probs, dtype=np.float64), LOG_FLOOR))


def _softmax_rows(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def temperature_scale(probs: Any, temperature: float) -> np.ndarray:
    """Each row recomputed as ``softmax(log p / T)``: the network's logits divided by T (the softmax
    forgets a constant per row, so the log-probabilities stand for the logits exactly)."""
    if not temperature > 0 or not math.isfinite(temperature):
        raise ValueError(f"temperature must be a positive number. Got {temperature!r} instead.")
    return _softmax_rows(_log_probs(probs) / float(temperature))


def negative_log_likelihood(y_true: Sequence[int] | np.ndarray, probs: Any, temperature: float = 1.0) -> float:
    """The mean cross-entropy of the true class after scaling by ``temperature`` (1: the network's own)."""
    y = np.asarray(y_true, dtype=np.int64)
    z = _log_probs(probs) / float(temperature)
    zmax = z.max(axis=1)
    log_norm = zmax + np.log(np.exp(z - zmax[:, None]).sum(axis=1))
    return float(np.mean(log_norm - z[np.arange(len(y)), y]))


def fit_temperature(y_true: Sequence[int] | np.ndarray, probs: Any) -> float:
    """The temperature T in [T_MIN, T_MAX] that minimises the cross-entropy of ``probs`` scaled by T.

    The cross-entropy is convex in 1/T, so it has one minimum along log T and a golden-section search
    finds it (no SciPy). Fit it on images the network was not trained on: the validation split.

    Raises:
        ValueError: as :func:`reliability` for labels and probabilities that do not fit together.
    """
    y, p, _ = _check_predictions(y_true, probs, [str(k) for k in range(np.shape(probs)[-1])])
    lo, hi = math.log(T_MIN), math.log(T_MAX)
    golden = (math.sqrt(5) - 1) / 2

    def loss(log_t: float) -> float:
        return negative_log_likelihood(y, p, math.exp(log_t))

    a, b = hi - golden * (hi - lo), lo + golden * (hi - lo)
    fa, fb = loss(a), loss(b)
    for _ in range(SEARCH_STEPS):
        if fa <= fb:
            hi, b, fb = b, a, fa
            a = hi - golden * (hi - lo)
            fa = loss(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + golden * (hi - lo)
            fb = loss(b)
    return float(math.exp((lo + hi) / 2))


@dataclass(frozen=True)
class Calibration:
    """How honest a run's probabilities are on its test images, before and after temperature scaling.

    Attributes:
        before: the test images' :class:`Reliability` as the network gives them.
        after: the same after temperature scaling (None when no temperature could be fitted).
        temperature: T fitted on the validation split (None: see ``note``).
        val_nll_before, val_nll_after: the validation images' cross-entropy at T = 1 and at T.
        test_accuracy_before, test_accuracy_after: equal, since scaling keeps every image's top class.
        n_val: validation images T was fitted on (0 when none).
        note: why there is no temperature, in a student's words ("" when there is one).
    """

    before: Reliability
    after: Reliability | None
    temperature: float | None
    val_nll_before: float | None
    val_nll_after: float | None
    test_accuracy_before: float
    test_accuracy_after: float | None
    n_val: int
    note: str = ""

    @property
    def n_bins(self) -> int:
        return len(self.before.counts)

    def summary(self) -> dict[str, Any]:
        """The numbers ``compare --json`` lists per run (flat, JSON-ready)."""
        return {
            "bins": self.n_bins,
            "ece": self.before.ece,
            "temperature": self.temperature,
            "ece_after": self.after.ece if self.after else None,
            "test_accuracy": self.test_accuracy_before,
            "test_accuracy_after": self.test_accuracy_after,
            "val_nll": self.val_nll_before,
            "val_nll_after": self.val_nll_after,
            "mean_confidence": self.before.mean_confidence,
            "n_test": self.before.n,
            "n_val": self.n_val,
            "sentence": confidence_sentence(self.before),
            "note": self.note,
        }

    def to_dict(self) -> dict[str, Any]:
        """Everything, the bins included (``compare --json``'s ``calibration``)."""
        return {
            **self.summary(),
            "reliability": self.before.to_dict(),
            "reliability_after": self.after.to_dict() if self.after else None,
        }


def calibrate(
    y_test: Sequence[int] | np.ndarray,
    probs_test: Any,
    y_val: Sequence[int] | np.ndarray | None = None,
    probs_val: Any = None,
    *,
    n_bins: int = N_BINS,
    note: str = "",
) -> Calibration:
    """The test split's reliability before and after a temperature fitted on the validation split.

    Without validation predictions (``y_val`` None) only the test split's bins are given, with ``note``
    saying why. Raises ValueError for predictions that do not fit their labels.
    """
    before = reliability(y_test, probs_test, n_bins)
    if y_val is None or probs_val is None or len(y_val) == 0:
        return Calibration(before, None, None, None, None, before.accuracy_all, None, 0, note)
    t = fit_temperature(y_val, probs_val)
    scaled = temperature_scale(probs_test, t)
    after = reliability(y_test, scaled, n_bins)
    return Calibration(
        before=before,
        after=after,
        temperature=t,
        val_nll_before=negative_log_likelihood(y_val, probs_val),
        val_nll_after=negative_log_likelihood(y_val, probs_val, t),
        test_accuracy_before=before.accuracy_all,
        test_accuracy_after=after.accuracy_all,
        n_val=len(y_val),
        note="",
    )


def confidence_sentence(rel: Reliability) -> str:
    """One sentence a student reads: how often the network is right when it is most sure.

    It quotes the most confident bin holding at least ``SENTENCE_MIN_COUNT`` images (else the fullest bin),
    e.g. "When the network says 90-100% (41 test images, 97% on average), it is right 78% of the time."
    """
    filled = [k for k, c in enumerate(rel.counts) if c]
    if not filled:
        return "There are no test images to measure."
    solid = [k for k in filled if rel.counts[k] >= SENTENCE_MIN_COUNT]
    k = max(solid) if solid else max(filled, key=lambda i: rel.counts[i])
    lo, hi = round(rel.edges[k] * 100), round(rel.edges[k + 1] * 100)
    count = rel.counts[k]
    images = f"{count} test image" + ("" if count == 1 else "s")
    return (
        f"When the network says {lo}-{hi}% ({images}, {rel.confidence[k]:.0%} on average), "
        f"it is right {rel.accuracy[k]:.0%} of the time."
    )


def temperature_sentence(cal: Calibration) -> str:
    """What temperature scaling did, in words (or why it was not done)."""
    if cal.temperature is None:
        return cal.note or "No validation images: no temperature could be fitted."
    t = cal.temperature
    if t >= T_MAX * 0.99:
        kind = (
            "the network's confidence says next to nothing about when it is right, so its probabilities are "
            f"flattened almost to equal (T = {t:.2f}, the largest tried)"
        )
    elif t <= T_MIN * 1.01:
        kind = f"the network was far too unsure, so its probabilities are sharpened as far as tried (T = {t:.2f})"
    elif t > 1.05:
        kind = f"the network was over-confident, so its probabilities are softened (T = {t:.2f} > 1)"
    elif t < 0.95:
        kind = f"the network was under-confident, so its probabilities are sharpened (T = {t:.2f} < 1)"
    else:
        kind = f"the network's probabilities were about right already (T = {t:.2f})"
    return (
        f"Fitted on the {cal.n_val} validation images, {kind}: the calibration error on the test images goes "
        f"from {cal.before.ece:.1%} to {cal.after.ece:.1%}. The test accuracy stays {cal.test_accuracy_before:.1%}: "
        "dividing by T never changes which class is largest, only how sure the network says it is."
    )
