"""Reading a Keras history: series, the best epoch, early stopping's epochs, the small numeric helpers."""

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
from histories import early_stopped_history, overfitting_history

from core.results.curves import (
    best_epoch,
    best_of,
    change,
    early_stopping_epochs,
    json_safe,
    moving_average,
    percent,
    read_history,
    relative,
    series,
    trend,
)


def test_best_epoch_is_one_based_like_the_course():
    h = {"val_loss": [0.9, 0.5, 0.4, 0.45], "val_accuracy": [0.5, 0.8, 0.7, 0.7]}
    assert best_epoch(h) == int(np.argmin(h["val_loss"])) + 1 == 3
    assert best_epoch(h, monitor="val_accuracy") == 2  # highest, not lowest
    assert best_epoch({"val_loss": [0.5, 0.4, 0.4]}) == 2  # ties: the first, as EarlyStopping keeps it
    assert best_epoch({"val_loss": [0.5, float("nan"), 0.45]}) == 3  # NaN is never best
    assert best_epoch(SimpleNamespace(history=h)) == 3  # Keras' History object works too
    assert best_epoch({"val_acc": [0.5, 0.7, 0.6]}, monitor="val_accuracy") == 2  # metrics=["acc"]


@pytest.mark.parametrize(
    "history, match",
    [
        ({}, "empty"),
        (None, "empty"),
        ({"loss": [1.0]}, "no 'val_loss' key"),
        ({"val_loss": []}, "empty"),
        ({"val_loss": [float("nan")]}, "only NaN"),
        ({"val_loss": [[0.1, 0.2]]}, "flat list"),
        ({"val_loss": ["a"]}, "list of numbers"),
    ],
)
def test_best_epoch_rejects_empty_or_missing_history(history, match):
    with pytest.raises(ValueError, match=match):
        best_epoch(history)


def test_best_of_skips_non_finite_values():
    assert best_of(np.array([0.5, np.inf, 0.4, np.nan])) == 3
    assert best_of(np.array([0.5, 0.9, 0.9]), higher=True) == 2
    assert best_of(np.array([np.nan, np.nan])) is None


def test_read_history_returns_the_four_series_and_accepts_keras_aliases():
    h = overfitting_history()
    h["acc"], h["val_acc"] = h.pop("accuracy"), h.pop("val_accuracy")
    loss, acc, vloss, vacc = read_history(SimpleNamespace(history=h))
    assert len(loss) == len(acc) == len(vloss) == len(vacc) == 20
    assert vloss[6] == pytest.approx(0.412) and acc[-1] == pytest.approx(0.98)
    assert series(h, "val_accuracy")[-1] == pytest.approx(0.79)


def test_early_stopping_epochs_follow_keras_patience():
    # Lowest at epoch 9, then 5 epochs without improvement: Keras stops at epoch 14 and restores epoch 9.
    assert early_stopping_epochs(early_stopped_history()["val_loss"], 5) == (14, 9)
    assert early_stopping_epochs(overfitting_history()["val_loss"], 5) == (12, 7)
    assert early_stopping_epochs(overfitting_history()["val_loss"], 13) == (20, 7)
    assert early_stopping_epochs(overfitting_history()["val_loss"], 14) == (None, 7)  # runs to the end
    assert early_stopping_epochs([0.5, 0.5, 0.5], 2) == (3, 1)  # an equal value is no improvement
    assert early_stopping_epochs([0.5, 0.6, 0.7], 2, higher_is_better=True) == (None, 3)
    assert early_stopping_epochs([float("nan")] * 3, 5) == (None, None)


def test_moving_average_keeps_the_length_and_shrinks_at_the_ends():
    x = np.array([1.0, 2.0, 3.0, 10.0])
    assert moving_average(x) == pytest.approx([1.5, 2.0, 5.0, 6.5])


def test_trend_and_change():
    rel, t = trend(np.array([1.0, 0.9, 0.8, 0.7]))
    assert rel == pytest.approx(-0.3 / 0.85) and t < -1e6  # a straight line: (almost) no scatter at all
    rel, t = trend(np.array([1.0, 1.02, 0.99, 1.01]))
    assert abs(t) < 2  # a flat, noisy tail is no trend
    assert trend(np.array([1.0, np.nan, 0.5])) == (None, 0.0)
    assert change(np.array([1.0, 0.8, 0.5]), 2) == pytest.approx(0.5 / 0.8 - 1)
    assert change(np.array([0.0, 1.0]), 1) is None


def test_relative_and_percent_wording():
    assert relative(0.655, 0.412) == pytest.approx(0.5898, abs=1e-4)
    assert relative(1.0, 0.0) is None and relative(float("nan"), 1.0) is None
    assert percent(0.5898) == "+59%" and percent(-0.004) == "0%" and percent(-0.25) == "-25%"
    assert percent(None) == "n/a" and percent(math.inf) == "n/a"


def test_json_safe_makes_numpy_and_nan_plain():
    out = json_safe({"a": np.float32(0.5), "b": (np.int64(3), np.nan), "c": np.bool_(True), 1: np.array([1.0, np.inf])})
    assert out == {"a": 0.5, "b": [3, None], "c": True, "1": [1.0, None]}
    assert type(out["b"][0]) is int
    json.dumps(out, allow_nan=False)
