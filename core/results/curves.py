"""Reading a Keras training history: the per-epoch series, the best epoch, and the thresholds the verdict uses.

Keras' ``history.history`` is a dict of per-epoch lists (``loss``,
``accuracy``, ``val_loss``, ``val_accuracy``). The course reads the best
epoch as the one with the lowest validation loss, ``np.argmin(val_loss) + 1``.
Epochs are 1-based everywhere, as Keras prints them. No TensorFlow here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

# The four per-epoch series a run's history keeps, in this order (training keeps them, the CSV export writes
# them, repeats average them, a diagnosis needs all four).
HISTORY_KEYS = ("loss", "accuracy", "val_loss", "val_accuracy")
# Keras names the metric after the string given to compile(): metrics=["acc"] logs "acc".
ALIASES = {"accuracy": "acc", "val_accuracy": "val_acc"}

# --- Thresholds -------------------------------------------------------------
# Fewer epochs than this and there is no curve to read, only a start.
MIN_EPOCHS_TO_JUDGE = 3
# Validation curves are noisy (a few % from epoch to epoch on small sets). From
# this many epochs on, minima are taken on a centred 3-epoch moving average and
# "the end" is the median of the last 3 epochs, so one lucky or unlucky epoch can
# neither make nor hide a verdict. Shorter histories are read raw.
# (The median of the last 3 ignores a single spike in the final epoch, which a
# mean would spread into a 10% "rise".)
SMOOTH_FROM_EPOCHS = 6
SMOOTH_WINDOW = 3
# Overfitting by the curve: at the end, validation loss is more than 10% above
# its (smoothed) minimum ...
RISE_FRACTION = 0.10
# ... and at least 0.02 above it in absolute terms: when the loss is tiny
# (0.03 -> 0.04 is +33%) the difference is noise, not memorisation ...
RISE_ABSOLUTE = 0.02
# ... the minimum came at least 2 epochs before the end (a rise over the last
# epoch alone is noise) ...
RISE_MIN_EPOCHS_AFTER_BEST = 2
# ... and training loss fell by at least 5% after that minimum ("train loss
# decreases but val_loss increases", the course's definition).
TRAIN_STILL_FALLING = 0.05
# Overfitting by the gap (the course's "0.95 vs 0.78"): final training accuracy
# more than 0.10 above validation accuracy AND validation loss more than 1.5
# times the training loss. Either alone is common in a healthy run (dropout
# lowers training accuracy, a few hard validation images raise the loss ratio).
GAP_ACCURACY = 0.10
GAP_LOSS_RATIO = 1.5
# Underfitting: "both losses are high". The better of the two final accuracies
# has not covered half the way from guessing (1/C) to perfect (0.6 for the
# course's 5 classes, 0.75 for 2) ...
LOW_ACCURACY_SHARE = 0.5
LOW_ACCURACY_DEFAULT = 0.6  # when the number of classes is unknown (the 5-class value)
# ... or the better of the two final losses is still above 80% of ln(C), the
# loss of a network that gives every class the same probability.
NEAR_CHANCE_LOSS = 0.8
# Still improving: the lowest validation loss is inside the last third of the
# run (at least 3, at most 10 epochs) and a straight line fitted to those
# epochs drops by at least 5% of their mean across them (slower than that is a
# plateau) ...
TREND_MIN_WINDOW, TREND_MAX_WINDOW = 3, 10
STILL_FALLING = 0.05
# ... with a slope at least 2 standard errors below zero, so the scatter of a
# flat but noisy curve does not pass for a downward trend.
TREND_T = 2.0
# Evidence wording only: changes under 5% over the last third read as "flat".
FLAT = 0.05


def unwrap(history: Any) -> Any:
    """Accept Keras' History object as well as its ``.history`` dict."""
    inner = getattr(history, "history", None)
    return inner if isinstance(inner, Mapping) else history


def series(history: Mapping[str, Sequence[float]], key: str) -> np.ndarray:
    """One per-epoch series as a float array, accepting Keras' "acc" for "accuracy".

    Raises:
        ValueError: the history is empty, has no such key, or the value is not
            a flat, non-empty list of numbers.
    """
    if not isinstance(history, Mapping) or not history:
        raise ValueError(
            "history is empty: pass Keras' history.history, a dict of per-epoch lists such as "
            f"{{'loss': [...], 'val_loss': [...]}}. Got {history!r} instead."
        )
    if key not in history:
        alias = ALIASES.get(key)
        if alias in history:
            key = alias
        else:
            raise ValueError(f"history has no {key!r} key. Got keys {sorted(history)} instead.")
    try:
        values = np.asarray(history[key], dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"history[{key!r}] must be a list of numbers, one per epoch.") from None
    if values.ndim != 1:
        raise ValueError(f"history[{key!r}] must be a flat list, one number per epoch. Got shape {values.shape}.")
    if values.size == 0:
        raise ValueError(f"history[{key!r}] is empty: no epoch was run.")
    return values


def read_history(history: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The four series a diagnosis reads, checked: same length, at least one epoch.

    Args:
        history: Keras' ``history.history`` (or the History object itself).

    Returns:
        ``(loss, accuracy, val_loss, val_accuracy)`` as float arrays.

    Raises:
        ValueError: a series is missing (with a hint on how Keras makes it),
            empty, or of a different length than the others.
    """
    h = unwrap(history)
    if not isinstance(h, Mapping):
        raise ValueError(
            f"history must be a dict of per-epoch lists (Keras' history.history). Got {type(h).__name__} instead."
        )
    missing = [k for k in HISTORY_KEYS if k not in h and ALIASES.get(k) not in h]
    if missing:
        hint = ""
        if any(k.startswith("val_") for k in missing):
            hint = " Validation metrics only exist when fit() is given validation_split or validation_data."
        if "accuracy" in missing:
            hint += ' Compile the model with metrics=["accuracy"].'
        raise ValueError(
            f"history is missing {missing}; diagnose() needs {list(HISTORY_KEYS)}. Got keys {sorted(h)} instead.{hint}"
        )
    loss, acc, vloss, vacc = (series(h, k) for k in HISTORY_KEYS)
    lengths = {k: len(s) for k, s in zip(HISTORY_KEYS, (loss, acc, vloss, vacc), strict=True)}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"history lists must have one value per epoch, all the same length. Got lengths {lengths}.")
    return loss, acc, vloss, vacc


def higher_is_better(monitor: str) -> bool:
    """True for accuracies (and AUC), False for losses: Keras' ``mode="auto"``."""
    return "acc" in monitor or "auc" in monitor


def best_epoch(history: Mapping[str, Sequence[float]], monitor: str = "val_loss") -> int:
    """The epoch (1-based) with the best value of ``monitor``.

    The lowest value for losses, the highest for accuracies (as Keras'
    EarlyStopping decides in ``mode="auto"``). Ties go to the earliest epoch;
    NaN epochs are skipped.

    Args:
        history: Keras' ``history.history`` (or the History object itself).
        monitor: the key to read, "val_loss" by default.

    Returns:
        ``np.argmin(history["val_loss"]) + 1`` for the default monitor.

    Raises:
        ValueError: the series is missing, empty or only NaN.
    """
    epoch = best_of(series(unwrap(history), monitor), higher=higher_is_better(monitor))
    if epoch is None:
        raise ValueError(f"history[{monitor!r}] holds only NaN or infinite values: no epoch is best.")
    return epoch


def best_of(values: np.ndarray, *, higher: bool = False) -> int | None:
    """The 1-based best epoch of a series (lowest, or highest when ``higher``), ties to the first.

    Returns:
        The epoch, skipping NaN and infinite values; None when no value is finite.
    """
    finite = np.isfinite(values)
    if not finite.any():
        return None
    masked = np.where(finite, values, -np.inf if higher else np.inf)
    return int(np.argmax(masked) if higher else np.argmin(masked)) + 1


def early_stopping_epochs(
    values: Sequence[float] | np.ndarray, patience: int, *, higher_is_better: bool = False
) -> tuple[int | None, int | None]:
    """Where Keras' ``EarlyStopping(patience=patience)`` would have acted on this series.

    Keras counts epochs without a strict improvement of the best value so far
    (NaN never improves) and stops at the epoch where that count reaches
    ``patience``.

    Args:
        values: the monitored value per epoch.
        patience: epochs without improvement before stopping (>= 1).
        higher_is_better: True for accuracies.

    Returns:
        ``(stop, best)``: the 1-based epoch training would have stopped at (None
        when it would have run to the end) and the best epoch up to then (None
        when no value was a number).
    """
    best_value, best, wait = (-math.inf if higher_is_better else math.inf), None, 0
    for epoch, v in enumerate(np.asarray(values, dtype=float), start=1):
        if (v > best_value) if higher_is_better else (v < best_value):
            best_value, best, wait = float(v), epoch, 0
            continue
        wait += 1
        if wait >= patience and epoch > 1:
            return epoch, best
    return None, best


def moving_average(x: np.ndarray, window: int = SMOOTH_WINDOW) -> np.ndarray:
    """Centred moving average; the window shrinks at both ends so the length is kept."""
    kernel = np.ones(window)
    sums = np.convolve(x, kernel, mode="same")
    counts = np.convolve(np.ones_like(x), kernel, mode="same")
    return sums / counts


def trend(tail: np.ndarray) -> tuple[float | None, float]:
    """Relative change along a straight line through ``tail`` (negative: falling), and its t-statistic.

    Returns:
        ``(change, t)``: the line's drop over the window as a fraction of the
        window's mean (None when the tail has non-finite values or a mean
        <= 0), and the slope over its standard error (0.0 below 3 points).
    """
    w = len(tail)
    if w < 2 or not np.isfinite(tail).all() or np.mean(tail) <= 0:
        return None, 0.0
    x = np.arange(w, dtype=float)
    slope, intercept = np.polyfit(x, tail, 1)
    rel = float(slope * (w - 1) / np.mean(tail))
    if w < 3:
        return rel, 0.0
    residual = tail - (slope * x + intercept)
    se = math.sqrt(float(residual @ residual) / (w - 2) / float(((x - x.mean()) ** 2).sum()))
    if se == 0:
        return rel, -math.inf if slope < 0 else (math.inf if slope > 0 else 0.0)
    return rel, float(slope / se)


def change(x: np.ndarray, first_epoch: int) -> float | None:
    """Relative change of x from ``first_epoch`` (1-based) to the end, or None when it has no meaning."""
    start, end = float(x[first_epoch - 1]), float(x[-1])
    if start == end:
        return 0.0
    if not (np.isfinite(start) and np.isfinite(end)) or start == 0:
        return None
    return end / start - 1


def relative(new: float, old: float) -> float | None:
    """new / old - 1, or None when old is not a positive number."""
    return float(new / old - 1) if old > 0 and np.isfinite(new) else None


def percent(x: float | None) -> str:
    """A signed whole percentage ("+59%"), without the "-0%" that rounding a tiny drop gives; "n/a" for None."""
    if x is None or not math.isfinite(x):
        return "n/a"
    p = round(x * 100)
    return f"{p:+d}%" if p else "0%"


def json_safe(x: Any) -> Any:
    """Make x JSON-safe: NumPy scalars to Python, tuples to lists, NaN/inf to None."""
    if isinstance(x, Mapping):
        return {str(k): json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple, np.ndarray)):
        return [json_safe(v) for v in x]
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(x) else None
    return x
