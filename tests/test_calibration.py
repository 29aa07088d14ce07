"""core.results.calibration: reliability bins and ECE against hand computations, temperature scaling."""

import math

import numpy as np
import pytest

from core.results.calibration import (
    Reliability,
    calibrate,
    confidence_sentence,
    expected_calibration_error,
    fit_temperature,
    negative_log_likelihood,
    reliability,
    temperature_scale,
    temperature_sentence,
)

# Six images, three classes; confidences .95 .85 .55 .62 .45 .92, right, wrong, right, right, right, wrong.
Y = [0, 1, 0, 1, 2, 0]
P = [
    [0.95, 0.03, 0.02],
    [0.85, 0.10, 0.05],
    [0.55, 0.40, 0.05],
    [0.30, 0.62, 0.08],
    [0.20, 0.35, 0.45],
    [0.05, 0.92, 0.03],
]


def test_ece_equals_a_hand_computation():
    # 10 bins: (.9, 1] holds .95 (right) and .92 (wrong): |1/2 - .935| x 2/6; (.8, .9] .85 wrong: .85 x 1/6;
    # (.5, .6] .55 right: .45/6; (.6, .7] .62 right: .38/6; (.4, .5] .45 right: .55/6. Sum: 3.1/6.
    assert expected_calibration_error(Y, P) == pytest.approx(3.1 / 6, abs=1e-12)
    # One bin: |accuracy - mean confidence| = |4/6 - 4.34/6|: over- and under-confidence cancel inside a bin.
    assert expected_calibration_error(Y, P, n_bins=1) == pytest.approx(0.34 / 6, abs=1e-12)


def test_reliability_bins_hold_counts_mean_confidence_and_accuracy():
    rel = reliability(Y, P)
    assert rel.edges[0] == 0 and rel.edges[-1] == 1 and len(rel.edges) == 11
    assert rel.counts == [0, 0, 0, 0, 1, 1, 1, 0, 1, 2]
    assert rel.confidence[9] == pytest.approx(0.935) and rel.accuracy[9] == 0.5
    assert rel.confidence[8] == pytest.approx(0.85) and rel.accuracy[8] == 0.0
    assert rel.confidence[0] is None and rel.accuracy[0] is None
    assert rel.accuracy_all == pytest.approx(4 / 6) and rel.mean_confidence == pytest.approx(4.34 / 6)
    assert rel.overconfidence == pytest.approx(0.34 / 6)
    # A confidence on an edge belongs to the bin it closes: (.8, .9] holds .9.
    assert reliability([0], [[0.9, 0.1]]).counts[8] == 1


def test_bad_input_is_refused_with_what_was_wrong():
    with pytest.raises(ValueError, match="sum to 1"):
        reliability([0], [[0.5, 0.2]])
    with pytest.raises(ValueError, match="n_bins must be an integer >= 1"):
        reliability(Y, P, n_bins=0)
    with pytest.raises(ValueError, match="temperature must be a positive number"):
        temperature_scale(P, 0.0)


def over_confident(n=3000, classes=4, sharpen=3.0, seed=0):
    """Labels drawn from softmax(z) (so softmax(z) is honest), and a network that says softmax(sharpen * z)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 1.2, (n, classes))
    honest = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    y = np.array([rng.choice(classes, p=row) for row in honest])
    said = np.exp(sharpen * z) / np.exp(sharpen * z).sum(axis=1, keepdims=True)
    return y, said.astype(np.float32)


def test_temperature_recovers_the_sharpening_and_lowers_the_validation_loss():
    y, p = over_confident()
    t = fit_temperature(y, p)
    assert t == pytest.approx(3.0, rel=0.1)  # the network's logits were 3x too large
    assert negative_log_likelihood(y, p, t) < negative_log_likelihood(y, p) - 0.1
    # Independent of the search: no temperature on a fine grid does better.
    grid = np.exp(np.linspace(math.log(0.5), math.log(10), 400))
    best_on_grid = min(negative_log_likelihood(y, p, g) for g in grid)
    assert negative_log_likelihood(y, p, t) <= best_on_grid + 1e-9


def test_scaling_keeps_every_top_class_so_accuracy_is_unchanged():
    y, p = over_confident(seed=1)
    for t in (0.3, 1.0, 2.7, 15.0):
        scaled = temperature_scale(p, t)
        np.testing.assert_allclose(scaled.sum(axis=1), 1, atol=1e-9)
        assert (scaled.argmax(axis=1) == p.argmax(axis=1)).all()
    np.testing.assert_allclose(temperature_scale(p, 1.0), p, atol=1e-6)  # T = 1 is the network itself


def test_calibrate_fits_on_validation_and_measures_on_test():
    y_val, p_val = over_confident(seed=2)
    y_test, p_test = over_confident(seed=3)
    cal = calibrate(y_test, p_test, y_val, p_val)
    assert cal.temperature == pytest.approx(fit_temperature(y_val, p_val))
    assert cal.after.ece < cal.before.ece / 2  # an over-confident network made honest
    assert cal.before.overconfidence > 0.05
    assert cal.test_accuracy_after == cal.test_accuracy_before
    assert cal.val_nll_after < cal.val_nll_before
    s = cal.summary()
    assert s["ece"] == cal.before.ece and s["ece_after"] == cal.after.ece and s["n_val"] == len(y_val)
    d = cal.to_dict()
    assert d["reliability"]["counts"] == cal.before.counts and sum(d["reliability_after"]["counts"]) == len(y_test)
    text = temperature_sentence(cal)
    assert "over-confident" in text and f"T = {cal.temperature:.2f}" in text and "test accuracy stays" in text


def test_without_validation_predictions_only_the_test_bins_and_the_reason():
    cal = calibrate(Y, P, note="No temperature scaling: the images changed.")
    assert cal.temperature is None and cal.after is None and cal.n_val == 0
    assert cal.before.ece == pytest.approx(3.1 / 6)
    assert cal.summary()["ece_after"] is None
    assert temperature_sentence(cal) == "No temperature scaling: the images changed."


def test_the_sentence_quotes_the_most_confident_bin_with_enough_images():
    rel = Reliability(
        edges=[k / 10 for k in range(11)],
        counts=[0, 0, 0, 0, 0, 0, 3, 10, 12, 2],
        confidence=[None] * 6 + [0.65, 0.75, 0.86, 0.95],
        accuracy=[None] * 6 + [0.67, 0.7, 0.75, 1.0],
        ece=0.1,
        mean_confidence=0.8,
        accuracy_all=0.74,
        n=27,
    )
    # 90-100% holds only 2 images: the sentence speaks of 80-90 %.
    assert confidence_sentence(rel) == (
        "When the network says 80-90% (12 test images, 86% on average), it is right 75% of the time."
    )
    assert "1 test image," in confidence_sentence(reliability([0], [[0.9, 0.1]]))


def test_a_network_whose_confidence_means_nothing_is_flattened_as_far_as_tried():
    rng = np.random.default_rng(4)
    y = rng.integers(0, 3, 300)
    p = rng.dirichlet([0.3, 0.3, 0.3], 300)  # confident, and unrelated to the labels
    cal = calibrate(y, p, y, p)
    assert cal.temperature == pytest.approx(20.0, rel=1e-3)
    assert "says next to nothing about when it is right" in temperature_sentence(cal)
