"""Hand-made Keras histories with known shapes, for the curve-reading tests (no TensorFlow)."""

import numpy as np

EPOCHS = np.arange(1, 21)


def hist(loss, acc, val_loss, val_acc):
    return {
        "loss": list(map(float, loss)),
        "accuracy": list(map(float, acc)),
        "val_loss": list(map(float, val_loss)),
        "val_accuracy": list(map(float, val_acc)),
    }


def overfitting_history():
    """Validation loss falls to 0.412 at epoch 7, then climbs to 0.655 by epoch 20.

    Training loss keeps falling all along.
    """
    t = EPOCHS
    val_loss = np.where(t <= 7, 1.4 - (1.4 - 0.412) * (t - 1) / 6, 0.412 + (0.655 - 0.412) * (t - 7) / 13)
    return hist(
        np.interp(t, [1, 7, 20], [1.5, 0.390, 0.052]),
        np.interp(t, [1, 7, 20], [0.35, 0.85, 0.98]),
        val_loss,
        np.interp(t, [1, 7, 20], [0.40, 0.81, 0.79]),
    )


def early_stopped_history():
    """14 epochs, patience 5: validation loss lowest (0.45) at epoch 9, 0.60 at epoch 14."""
    t = np.arange(1, 15)
    val_loss = np.where(t <= 9, 1.3 - (1.3 - 0.45) * (t - 1) / 8, 0.45 + 0.03 * (t - 9))
    return hist(
        np.interp(t, [1, 14], [1.4, 0.2]),
        np.interp(t, [1, 14], [0.4, 0.95]),
        val_loss,
        np.interp(t, [1, 9, 14], [0.4, 0.84, 0.82]),
    )


def underfitting_history():
    """Both losses hover just under ln 5 = 1.609 and accuracies near 1/5; validation loss is lowest at epoch 12."""
    s = 1 - np.exp(-EPOCHS / 3)
    val_loss = 1.609 - 0.015 * s + 0.0004 * np.maximum(EPOCHS - 12, 0)
    return hist(1.609 - 0.02 * s, 0.20 + 0.02 * s, val_loss, np.full(20, 0.21))


def still_improving_history():
    """Slow exponential decay: at epoch 20 validation loss is still dropping ~2.5% an epoch."""
    e = np.exp(-EPOCHS / 10)
    return hist(0.30 + 1.2 * e, 0.95 - 0.7 * e, 0.35 + 1.1 * e, 0.90 - 0.6 * e)


def good_fit_history():
    """Fast decay that has levelled off by epoch ~12 (validation loss lowest at 12, +2% by 20), small train/val gap."""
    e = np.exp(-EPOCHS / 2.5)
    return hist(0.25 + 1.3 * e, 0.93 - 0.7 * e, 0.32 + 1.1 * e + 0.001 * np.maximum(EPOCHS - 12, 0), 0.90 - 0.6 * e)


def course_printout():
    """The chapter's example output: epoch 20 at 0.9480 vs 0.7820 accuracy, loss 0.1523 vs 0.5834.

    Validation loss falls to the last epoch; the gap makes it overfitting.
    """
    e = [1, 5, 10, 20]
    return hist(
        np.interp(EPOCHS, e, [1.5423, 0.8124, 0.4215, 0.1523]),
        np.interp(EPOCHS, e, [0.3210, 0.6540, 0.8320, 0.9480]),
        np.interp(EPOCHS, e, [1.4012, 0.9235, 0.6128, 0.5834]),
        np.interp(EPOCHS, e, [0.3850, 0.5920, 0.7450, 0.7820]),
    )


def noisy(h, seed, sigma=0.03):
    """Multiplicative noise on the losses (sigma on validation, half on training), additive on accuracies."""
    rng = np.random.default_rng(seed)
    n = len(h["loss"])
    return {
        "loss": list(np.asarray(h["loss"]) * (1 + rng.normal(0, sigma / 2, n))),
        "val_loss": list(np.asarray(h["val_loss"]) * (1 + rng.normal(0, sigma, n))),
        "accuracy": list(np.clip(np.asarray(h["accuracy"]) + rng.normal(0, sigma / 2, n), 0, 1)),
        "val_accuracy": list(np.clip(np.asarray(h["val_accuracy"]) + rng.normal(0, sigma / 2, n), 0, 1)),
    }
