"""Reading a training history the way the course does, and scoring test predictions.

Two questions, two entry points, no TensorFlow:

* :func:`diagnose` reads Keras' ``history.history`` (``loss``, ``accuracy``,
  ``val_loss``, ``val_accuracy``, one value per epoch) and names what the
  curves show: ``good_fit``, ``overfitting``, ``underfitting`` or
  ``still_improving``, with the numbers behind the verdict in plain sentences
  and remedies the app can apply (:func:`apply_changes`).
* :func:`evaluate` turns the test set's softmax outputs into accuracy,
  cross-entropy, per-class precision/recall/F1, the confusion matrix and the
  test images the network got wrong most confidently.

The course's reading of the curves:

* good: both losses fall, both accuracies rise;
* overfitting: training loss keeps falling while validation loss rises after
  some epoch; training accuracy well above validation accuracy (0.95 vs 0.78);
* underfitting: both losses stay high and stop falling;
* the best epoch is the one with the lowest validation loss,
  ``np.argmin(val_loss) + 1``.

Epochs are 1-based everywhere in this module, as Keras prints them.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.config import LOSSES, AugmentConfig, ConfigError, ModelConfig, TrainConfig
from core.architecture import check_architecture, layer_table

VERDICTS = ("good_fit", "overfitting", "underfitting", "still_improving")
TITLES = {
    "good_fit": "Good fit",
    "overfitting": "Overfitting",
    "underfitting": "Underfitting",
    "still_improving": "Still improving",
}
REQUIRED_KEYS = ("loss", "accuracy", "val_loss", "val_accuracy")
# Keras names the metric after the string given to compile(): metrics=["acc"] logs "acc".
_ALIASES = {"accuracy": "acc", "val_accuracy": "val_acc"}

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
# Probabilities are clipped like Keras' cross-entropy, so log(0) never happens.
EPSILON = 1e-7
# Softmax rows must sum to 1 within this (float32 outputs are off by ~1e-6).
ROW_SUM_TOLERANCE = 1e-3


# --- Results ----------------------------------------------------------------


@dataclass(frozen=True)
class Remedy:
    """One thing to try, why, and the settings that do it.

    Args:
        label: a short imperative ("Turn on data augmentation").
        why: one or two sentences tying the remedy to this run's numbers.
        changes: dotted config keys to new values, applicable with
            :func:`apply_changes`: ``"model.dropout": 0.6``,
            ``"train.augment": "course"`` (the course's augmentation), ...
            Empty when the remedy is advice the app cannot apply by itself
            (collecting more images).
        key: a stable identifier ("augment", "dropout", ...) for widget keys.
    """

    label: str
    why: str
    changes: dict[str, Any] = field(default_factory=dict)
    key: str = ""

    def to_dict(self) -> dict[str, Any]:
        return _plain(dataclasses.asdict(self))


@dataclass(frozen=True)
class Diagnosis:
    """What the training curves show.

    Attributes:
        verdict: "good_fit", "overfitting", "underfitting" or "still_improving".
        title: the verdict for a heading ("Overfitting").
        headline: one plain sentence for a student.
        evidence: sentences with the numbers that support the verdict.
        numbers: the measurements behind them (see :func:`diagnose`).
        remedies: what to try next, most effective first.
    """

    verdict: str
    title: str
    headline: str
    evidence: list[str]
    numbers: dict[str, Any]
    remedies: list[Remedy]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types only; NaN and infinity become None."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["remedies"] = [r.to_dict() for r in self.remedies]
        return _plain(d)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Diagnosis:
        d = dict(data)
        d["remedies"] = [Remedy(**r) for r in d.get("remedies", [])]
        return cls(**d)


@dataclass(frozen=True)
class TestReport:
    """How the network did on the test set.

    Attributes:
        accuracy: fraction of test images classified correctly.
        loss: mean cross-entropy of the true class' probability (clipped at 1e-7).
        loss_name: "categorical" or "sparse": which Keras loss the number
            stands for (the two give the same value on the same predictions).
        class_names: one per probability column.
        per_class: one dict per class: class, precision, recall, f1, support.
        macro: unweighted means of precision, recall and f1 over all classes,
            plus the total support.
        weighted: the same means weighted by support.
        confusion_matrix: rows are true classes, columns predicted classes.
        y_true: the true class of each test item.
        predicted: the predicted class (argmax) of each test item.
        confidence: the probability of the predicted class.
        most_confident_wrong: indices of misclassified items, most confident first.
        notes: caveats worth showing next to the numbers (absent classes).
    """

    __test__ = False  # not a pytest test class, despite the name

    accuracy: float
    loss: float
    loss_name: str
    class_names: list[str]
    per_class: list[dict[str, Any]]
    macro: dict[str, float]
    weighted: dict[str, float]
    confusion_matrix: list[list[int]]
    y_true: list[int]
    predicted: list[int]
    confidence: list[float]
    most_confident_wrong: list[int]
    notes: list[str] = field(default_factory=list)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def to_dict(self) -> dict[str, Any]:
        return _plain({f.name: getattr(self, f.name) for f in dataclasses.fields(self)})

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TestReport:
        return cls(**dict(data))


# --- Best epoch -------------------------------------------------------------


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
    """
    history = _unwrap(history)
    values = _series(history, monitor)
    if np.isnan(values).all():
        raise ValueError(f"history[{monitor!r}] holds only NaN values: no epoch is best.")
    higher_is_better = "acc" in monitor or "auc" in monitor
    return int(np.nanargmax(values) if higher_is_better else np.nanargmin(values)) + 1


# --- Diagnosis --------------------------------------------------------------


def diagnose(
    history: Mapping[str, Sequence[float]],
    *,
    restored_epoch: int | None = None,
    stopped_epoch: int | None = None,
    num_classes: int | None = None,
    model_cfg: ModelConfig | None = None,
    train_cfg: TrainConfig | None = None,
) -> Diagnosis:
    """Read the training curves and say what they show.

    Args:
        history: Keras' ``history.history``: lists ``loss``, ``accuracy``,
            ``val_loss``, ``val_accuracy`` of equal length, one value per epoch.
        restored_epoch: the epoch whose weights early stopping restored (1-based).
        stopped_epoch: the epoch training stopped at (1-based; Keras'
            ``EarlyStopping.stopped_epoch`` is 0-based, add 1).
        num_classes: the number of classes, for the chance level ln(C);
            taken from ``model_cfg`` when not given.
        model_cfg, train_cfg: the run's settings. Remedies are computed from
            them (dropout 0.5 -> 0.6) and skipped when already in place
            (augmentation already on). The course's defaults when None.

    Returns:
        A :class:`Diagnosis`. Its ``numbers`` hold ``best_epoch``,
        ``best_val_loss``, ``best_val_accuracy`` (at the best epoch),
        ``final_loss``, ``final_val_loss``, ``final_accuracy``,
        ``final_val_accuracy``, ``gap_accuracy`` (train - val accuracy at the
        last epoch), ``gap_loss`` (val - train loss at the last epoch),
        ``overfit_start_epoch`` (the epoch after which validation loss rises
        while training loss falls, or None), ``val_loss_rise`` (final val loss
        over its minimum, minus 1), ``epochs_run``, ``chance_loss`` (ln C, or
        None), ``chance_accuracy``, ``restored_epoch``, ``stopped_epoch``,
        ``last_third_loss_change`` and ``last_third_val_loss_change`` (relative
        changes over the last third of the run), ``val_loss_trend`` (relative
        change along a line fitted to the last epochs), ``diverged_epoch`` (first
        non-finite loss, or None) and ``short`` (too few epochs to judge).
    """
    h = _unwrap(history)
    if not isinstance(h, Mapping):
        raise ValueError(
            f"history must be a dict of per-epoch lists (Keras' history.history). Got {type(h).__name__} instead."
        )
    missing = [k for k in REQUIRED_KEYS if k not in h and _ALIASES.get(k) not in h]
    if missing:
        hint = ""
        if any(k.startswith("val_") for k in missing):
            hint = " Validation metrics only exist when fit() is given validation_split or validation_data."
        if "accuracy" in missing:
            hint += ' Compile the model with metrics=["accuracy"].'
        raise ValueError(
            f"history is missing {missing}; diagnose() needs {list(REQUIRED_KEYS)}. Got keys {sorted(h)} instead.{hint}"
        )
    loss, acc, vloss, vacc = (_series(h, k) for k in REQUIRED_KEYS)
    n = len(loss)
    lengths = {k: len(s) for k, s in zip(REQUIRED_KEYS, (loss, acc, vloss, vacc), strict=True)}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"history lists must have one value per epoch, all the same length. Got lengths {lengths}.")
    if n == 0:
        raise ValueError("history is empty: no epoch was run.")
    for name, value in (("restored_epoch", restored_epoch), ("stopped_epoch", stopped_epoch)):
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 1 <= value <= n
        ):
            raise ValueError(
                f"{name} must be a 1-based epoch in [1, {n}] or None. Got {value!r} instead. "
                "(Keras' EarlyStopping.stopped_epoch is 0-based and 0 when training was not stopped.)"
            )
    if num_classes is None and model_cfg is not None:
        num_classes = model_cfg.num_classes
    model_cfg = model_cfg or ModelConfig()
    train_cfg = train_cfg or TrainConfig()
    if num_classes is not None and (
        isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 2
    ):
        raise ValueError(f"num_classes must be an integer >= 2 or None. Got {num_classes!r} instead.")

    r = _Reading(loss, acc, vloss, vacc, num_classes, restored_epoch, stopped_epoch)
    verdict, headline, evidence = r.judge()
    evidence += r.early_stopping_lines()
    remedies = _remedies(verdict, r, model_cfg, train_cfg)
    title = "Underfitting (training diverged)" if r.diverged is not None else TITLES[verdict]
    return Diagnosis(verdict, title, headline, evidence, _plain(r.numbers), remedies)


class _Reading:
    """The measurements of one history and the sentences built from them."""

    def __init__(self, loss, acc, vloss, vacc, num_classes, restored_epoch, stopped_epoch):
        self.loss, self.acc, self.vloss, self.vacc = loss, acc, vloss, vacc
        self.n = n = len(loss)
        self.C = int(num_classes) if num_classes is not None else None
        self.restored, self.stopped = restored_epoch, stopped_epoch
        bad = ~(np.isfinite(loss) & np.isfinite(vloss))
        self.diverged = int(np.argmax(bad)) + 1 if bad.any() else None
        finite = np.isfinite(vloss)
        self.best = int(np.argmin(np.where(finite, vloss, np.inf))) + 1 if finite.any() else None
        self.short = n < MIN_EPOCHS_TO_JUDGE
        smooth = n >= SMOOTH_FROM_EPOCHS
        self.s_loss = _moving_average(loss) if smooth else loss
        self.s_vloss = _moving_average(vloss) if smooth else vloss
        end = SMOOTH_WINDOW if smooth else 1
        self.end_loss = float(np.median(loss[-end:]))
        self.end_vloss = float(np.median(vloss[-end:]))
        self.end_acc = float(np.median(acc[-end:]))
        self.end_vacc = float(np.median(vacc[-end:]))
        self.third = max(1, n - max(2, round(n / 3)))  # 1-based first epoch of the last third
        self.window = int(np.clip(round(n / 3), TREND_MIN_WINDOW, TREND_MAX_WINDOW)) if n >= TREND_MIN_WINDOW else n
        self.trend, self.trend_t = _trend(vloss[-self.window :])
        chance_loss = math.log(self.C) if self.C else None
        b = self.best
        self.numbers: dict[str, Any] = {
            "best_epoch": b,
            "best_val_loss": float(vloss[b - 1]) if b else None,
            "best_val_accuracy": float(vacc[b - 1]) if b else None,
            "final_loss": float(loss[-1]),
            "final_val_loss": float(vloss[-1]),
            "final_accuracy": float(acc[-1]),
            "final_val_accuracy": float(vacc[-1]),
            "gap_accuracy": float(acc[-1] - vacc[-1]),
            "gap_loss": float(vloss[-1] - loss[-1]),
            "overfit_start_epoch": None,
            "val_loss_rise": _rel(vloss[-1], vloss[b - 1]) if b else None,
            "epochs_run": n,
            "chance_loss": chance_loss,
            "chance_accuracy": 1 / self.C if self.C else None,
            "restored_epoch": restored_epoch,
            "stopped_epoch": stopped_epoch,
            "last_third_loss_change": _change(self.s_loss, self.third),
            "last_third_val_loss_change": _change(self.s_vloss, self.third),
            "val_loss_trend": self.trend,
            "diverged_epoch": self.diverged,
            "short": self.short,
        }

    # The verdict, in the order the checks are made.
    def judge(self) -> tuple[str, str, list[str]]:
        if self.diverged is not None:
            return self._diverged()
        if self.short:
            return self._short()
        if (found := self._rise()) is not None:
            return self._overfit_by_rise(*found)
        if self._level_is_low():
            if self._still_falling():
                return self._still_improving(low=True)
            return self._underfitting()
        if self._wide_gap():
            return self._overfit_by_gap()
        if self._still_falling():
            return self._still_improving(low=False)
        return self._good_fit()

    # --- checks
    def _rise(self) -> tuple[int, float] | None:
        """(epoch of the smoothed minimum, rise) when validation loss rose after its minimum."""
        i = int(np.argmin(self.s_vloss))
        lowest = float(self.s_vloss[i])
        if i + 1 > self.n - RISE_MIN_EPOCHS_AFTER_BEST:
            return None
        rise = self.end_vloss - lowest
        if lowest <= 0 or rise / lowest <= RISE_FRACTION or rise <= RISE_ABSOLUTE:
            return None
        if self.end_loss > (1 - TRAIN_STILL_FALLING) * float(self.s_loss[i]):
            return None  # both curves went up or stalled: not the course's overfitting picture
        return i + 1, rise / lowest

    def _level_is_low(self) -> bool:
        best_acc = max(self.end_acc, self.end_vacc)
        if self.C:
            chance = 1 / self.C
            if best_acc < chance + LOW_ACCURACY_SHARE * (1 - chance):
                return True
            return min(self.end_loss, self.end_vloss) > NEAR_CHANCE_LOSS * math.log(self.C)
        return best_acc < LOW_ACCURACY_DEFAULT

    def _still_falling(self) -> bool:
        """The lowest validation loss is among the last epochs and a line through them still drops."""
        return (
            self.best > self.n - self.window
            and self.trend is not None
            and -self.trend >= STILL_FALLING
            and self.trend_t <= -TREND_T
        )

    def _wide_gap(self) -> bool:
        return self.end_acc - self.end_vacc > GAP_ACCURACY and self.end_vloss > GAP_LOSS_RATIO * self.end_loss

    # --- sentences
    def _best_line(self) -> str:
        b = self.best
        return (
            f"Validation loss was lowest at epoch {b} of {self.n} ({self.vloss[b - 1]:.3f}), "
            f"where validation accuracy was {self.vacc[b - 1]:.2f}."
        )

    def _gap_line(self) -> str:
        a, va = self.acc[-1], self.vacc[-1]
        gap = a - va
        if gap < 0:
            return (
                f"At the last epoch validation accuracy ({va:.2f}) is above training accuracy ({a:.2f}). "
                "That is common: dropout and augmentation make training harder and are switched off "
                "when the validation images are scored."
            )
        return f"At the last epoch training accuracy is {a:.2f} and validation accuracy {va:.2f}: a gap of {gap:.2f}."

    def _third_line(self) -> str:
        k, n = self.third, self.n
        lc, vc = self.numbers["last_third_loss_change"], self.numbers["last_third_val_loss_change"]
        return (
            f"Over the last third of training (epochs {k}-{n}) training loss changed by {_pct(lc)} "
            f"and validation loss by {_pct(vc)}."
        )

    def _chance_line(self) -> str | None:
        if not self.C:
            return None
        cl = math.log(self.C)
        return (
            f"A network that gives each of the {self.C} classes the same probability scores a loss of "
            f"ln {self.C} = {cl:.3f} and an accuracy of {1 / self.C:.2f}; this one ended at a training loss "
            f"of {self.loss[-1]:.3f} and validation loss of {self.vloss[-1]:.3f}."
        )

    def early_stopping_lines(self) -> list[str]:
        s, r, b = self.stopped, self.restored, self.best
        if s is None and r is None:
            return []
        if s is not None and r is not None:
            which = (
                "the epoch with the lowest validation loss"
                if r == b
                else f"while validation loss was lowest at epoch {b}"
            )
            return [
                f"Early stopping ended training at epoch {s} and restored the weights of epoch {r}, {which}. "
                f"The saved model is the epoch-{r} one, so the test set scores that model, "
                "not the last epoch's."
            ]
        if s is not None:
            return [
                f"Early stopping ended training at epoch {s} without restoring the best weights: "
                f"the saved model is the last epoch's."
            ]
        return [f"The weights of epoch {r} were restored at the end of training: the saved model is the epoch-{r} one."]

    # --- verdicts
    def _diverged(self):
        e = self.diverged
        self.numbers["overfit_start_epoch"] = None
        headline = (
            f"Training broke down at epoch {e}: the loss stopped being a number, "
            "which usually means the learning rate is too high."
        )
        which, value = (
            ("training", self.loss[e - 1]) if not np.isfinite(self.loss[e - 1]) else ("validation", self.vloss[e - 1])
        )
        what = "NaN (not a number)" if np.isnan(value) else "infinite"
        evidence = [
            f"At epoch {e} the {which} loss became {what}: the weights took a step so large "
            "that the numbers overflowed."
        ]
        if self.best is not None and self.best < e:
            evidence.insert(0, self._best_line())
        return "underfitting", headline, evidence

    def _short(self):
        n = self.n
        word = "epoch" if n == 1 else "epochs"
        note = (
            f"Only {n} {word} ran: too few epochs to judge the curves "
            f"(at least {MIN_EPOCHS_TO_JUDGE} are needed to see a trend)."
        )
        lines = [note]
        if n == 1 or self.vloss[-1] < self.vloss[0]:
            if n > 1:
                lines.append(
                    f"Validation loss fell from {self.vloss[0]:.3f} to {self.vloss[-1]:.3f} "
                    f"and training loss from {self.loss[0]:.3f} to {self.loss[-1]:.3f}."
                )
            lines.append(self._gap_line())
            return "still_improving", f"Only {n} {word} ran, too few to judge: train for more epochs.", lines
        lines.append(
            f"Validation loss went from {self.vloss[0]:.3f} to {self.vloss[-1]:.3f} while training loss went "
            f"from {self.loss[0]:.3f} to {self.loss[-1]:.3f}."
        )
        lines.append(self._gap_line())
        return "good_fit", f"Only {n} {word} ran, too few to judge the curves: train for more epochs.", lines

    def _overfit_by_rise(self, smoothed_best: int, rise: float):
        # The turning point: the lowest raw epoch among those the smoothed minimum
        # averaged, so a lone dip elsewhere does not move it.
        half = SMOOTH_WINDOW // 2 if self.n >= SMOOTH_FROM_EPOCHS else 0
        lo, hi = max(0, smoothed_best - 1 - half), min(self.n, smoothed_best + half)
        b = lo + int(np.argmin(self.vloss[lo:hi])) + 1
        self.numbers["overfit_start_epoch"] = b
        v0, v1, l0, l1 = self.vloss[b - 1], self.vloss[-1], self.loss[b - 1], self.loss[-1]
        headline = (
            f"The network started memorising the training images after epoch {b}: "
            "validation loss rises while training loss keeps falling."
        )
        if self.restored is not None and self.restored <= b:
            headline += f" Early stopping kept the weights of epoch {self.restored}, before it got worse."
        lowest = "was lowest" if b == self.best else "bottomed out"
        evidence = [
            f"Validation loss {lowest} at epoch {b} ({v0:.3f}) and rose to {v1:.3f} by epoch {self.n} "
            f"({_pct(_rel(v1, v0))}) while training loss kept falling from {l0:.3f} to {l1:.3f}.",
            self._gap_line(),
        ]
        if b != self.best:
            evidence.insert(
                1,
                f"One epoch, {self.best}, dipped lower ({self.vloss[self.best - 1]:.3f}) but the epochs "
                "around it are higher: that is epoch-to-epoch noise, not a turn of the curve.",
            )
        return "overfitting", headline, evidence

    def _overfit_by_gap(self):
        a, va, l1, v1 = self.acc[-1], self.vacc[-1], self.loss[-1], self.vloss[-1]
        headline = (
            "The network does much better on its training images than on images it has not seen: "
            f"accuracy {a:.2f} against {va:.2f}."
        )
        evidence = [
            self._gap_line(),
            f"Validation loss ({v1:.3f}) is {v1 / l1:.1f} times the training loss ({l1:.3f})."
            if l1 > 0
            else f"Validation loss is {v1:.3f} while training loss is {l1:.3f}.",
            self._best_line(),
        ]
        return "overfitting", headline, evidence

    def _underfitting(self):
        a, va = self.acc[-1], self.vacc[-1]
        lc, vc = self.numbers["last_third_loss_change"], self.numbers["last_third_val_loss_change"]
        flat = all(x is not None and abs(x) < FLAT for x in (lc, vc))
        headline = "The network is not learning much: both losses stay high" + (
            " and have stopped falling." if flat else " and validation loss has stopped falling."
        )
        evidence = [f"Training accuracy reached only {a:.2f} and validation accuracy {va:.2f}."]
        if (line := self._chance_line()) is not None:
            evidence.append(line)
        evidence.append(self._third_line() + (" The curves are flat." if flat else ""))
        return "underfitting", headline, evidence

    def _still_improving(self, low: bool):
        k = self.n - self.window + 1
        v0, v1 = self.vloss[k - 1], self.vloss[-1]
        headline = "Validation loss was still falling at the last epoch: more epochs should help."
        if low:
            headline = "Accuracy is still low, but validation loss was still falling at the end: train longer."
        evidence = [
            f"Validation loss was still falling at the end: {v0:.3f} at epoch {k}, "
            f"{v1:.3f} at epoch {self.n} ({_pct(_rel(v1, v0))}); "
            f"its lowest value came at epoch {self.best} of {self.n}.",
            self._gap_line(),
        ]
        return "still_improving", headline, evidence

    def _good_fit(self):
        headline = "Both losses fell and levelled off together: the network learned without memorising."
        evidence = [
            f"Both losses fell: training from {self.loss[0]:.3f} to {self.loss[-1]:.3f}, "
            f"validation from {self.vloss[0]:.3f} to {self.vloss[-1]:.3f}.",
            self._third_line() + " Validation loss has levelled off.",
            self._best_line(),
            self._gap_line(),
        ]
        return "good_fit", headline, evidence


# --- Remedies ---------------------------------------------------------------


def _remedies(verdict: str, r: _Reading, m: ModelConfig, t: TrainConfig) -> list[Remedy]:
    if r.diverged is not None:
        return [_lower_lr(t, diverged=True)]
    if verdict == "overfitting":
        found = [
            _augment(t),
            _more_dropout(m),
            _early_stopping(t, r),
            _more_data(t),
            _smaller_model(m),
            _transfer(m),
        ]
    elif verdict == "underfitting":
        found = [
            _bigger_model(m),
            _extra_block(m),
            _more_epochs(t, r, safety_net=False),
            _learning_rate_up(t),
            _less_dropout(m),
        ]
    elif verdict == "still_improving":
        found = [_more_epochs(t, r, safety_net=True)]
    else:
        found = []
    return [x for x in found if x is not None]


def _augment(t: TrainConfig) -> Remedy | None:
    if t.augment.enabled:
        return None
    a = AugmentConfig.course()
    return Remedy(
        "Turn on data augmentation",
        f"Random rotations (up to {a.rotation:g} degrees), shifts ({a.width_shift:.0%}), flips and zoom "
        f"({a.zoom:.0%}) show the network a new variant of every training image each epoch, so it cannot "
        "simply memorise them. Only training images are augmented, never validation or test images.",
        {"train.augment": "course"},
        "augment",
    )


def _more_dropout(m: ModelConfig) -> Remedy | None:
    if m.dropout >= 0.7:
        return None
    new = 0.5 if m.dropout < 0.5 else round(m.dropout + 0.1, 2)
    return Remedy(
        f"Raise dropout to {new:g}",
        f"Dropout switches off a random {new:.0%} of the dense layer's outputs at each training step "
        f"(now {m.dropout:.0%}), so no unit can rely on a few others to memorise an image.",
        {"model.dropout": new},
        "dropout",
    )


def _early_stopping(t: TrainConfig, r: _Reading) -> Remedy | None:
    # A run that reports a stopped or restored epoch already used early stopping,
    # whatever train_cfg says (it defaults to the course's settings).
    used = bool(t.early_stopping) or r.stopped is not None or r.restored is not None
    restores = (bool(t.early_stopping) and t.restore_best) or r.restored is not None
    if used and restores:
        return None
    patience = 5
    b = r.numbers["overfit_start_epoch"] or r.best
    when = ""
    if b is not None and b + patience < r.n:
        when = f" Here it would have stopped at epoch {b + patience} and kept epoch {b}'s weights."
    if used:
        return Remedy(
            "Restore the best weights when early stopping",
            "Early stopping is on but keeps the last epoch's weights; restoring rolls back to the epoch "
            "with the lowest validation loss." + when,
            {"train.restore_best": True},
            "early_stopping",
        )
    return Remedy(
        f"Use early stopping (patience {patience}, restore best weights)",
        f"Training stops once validation loss has not improved for {patience} epochs and the weights "
        "roll back to the best epoch." + when,
        {"train.early_stopping": patience, "train.monitor": "val_loss", "train.restore_best": True},
        "early_stopping",
    )


def _more_data(t: TrainConfig) -> Remedy:
    if t.train_fraction < 1.0:
        return Remedy(
            "Train on all the training images",
            f"This run used only {t.train_fraction:.0%} of the training images. More examples per "
            "class are the surest cure for memorising.",
            {"train.train_fraction": 1.0},
            "more_data",
        )
    return Remedy(
        "Collect more labelled images",
        "More examples per class are the surest cure for memorising; geoscience image sets are often "
        "only hundreds of images. (The app cannot do this one for you.)",
        {},
        "more_data",
    )


def _smaller_model(m: ModelConfig) -> Remedy | None:
    changes: dict[str, Any] = {}
    if m.model == "cnn":
        if m.filter_list and min(m.filter_list) >= 8:
            changes["model.filter_list"] = [f // 2 for f in m.filter_list]
        elif not m.filter_list and m.filters >= 8:
            changes["model.filters"] = m.filters // 2
    if m.dense_units >= 16:
        changes["model.dense_units"] = m.dense_units // 2
    if not changes:
        return None
    before, after = _trainable(m), _trainable(apply_changes(changes, m, TrainConfig())[0])
    sizes = f" ({before:,} -> {after:,} trainable weights)" if before and after else ""
    return Remedy(
        "Use a smaller model",
        f"Half the filters and dense units{sizes} leave fewer weights to memorise the training images with.",
        changes,
        "smaller_model",
    )


def _transfer(m: ModelConfig) -> Remedy | None:
    if m.model == "vgg16" or m.channels != 3:
        return None
    return Remedy(
        "Try transfer learning (VGG16)",
        "A VGG16 base pre-trained on ImageNet already knows edges, textures and shapes; only a small new "
        "head is trained, which suits small datasets (under about 1000 images).",
        {"model.model": "vgg16"},
        "transfer",
    )


def _bigger_model(m: ModelConfig) -> Remedy | None:
    changes: dict[str, Any] = {}
    if m.model == "cnn":
        if m.filter_list and max(m.filter_list) <= 1024:
            changes["model.filter_list"] = [f * 2 for f in m.filter_list]
        elif not m.filter_list and m.filters <= 512:
            changes["model.filters"] = m.filters * 2
    if m.dense_units <= 4096:
        changes["model.dense_units"] = m.dense_units * 2
    if not changes:
        return None
    return Remedy(
        "Use a bigger model",
        "Twice the filters and dense units give the network room to learn more patterns.",
        changes,
        "bigger_model",
    )


def _extra_block(m: ModelConfig) -> Remedy | None:
    if m.model != "cnn" or m.blocks >= 5:
        return None
    changes: dict[str, Any] = {"model.blocks": m.blocks + 1}
    if m.filter_list:
        changes["model.filter_list"] = [*m.filter_list, min(m.filter_list[-1] * 2, 2048)]
    try:
        bigger = apply_changes(changes, m, TrainConfig())[0]
    except ConfigError:
        return None
    if check_architecture(bigger):
        return None  # the feature map would shrink below 1x1
    return Remedy(
        f"Add a convolution block ({m.blocks} -> {m.blocks + 1})",
        "Another Conv -> MaxPool block lets the network combine the patterns it finds into larger ones.",
        changes,
        "extra_block",
    )


def _more_epochs(t: TrainConfig, r: _Reading, *, safety_net: bool) -> Remedy | None:
    planned = max(t.epochs, r.n)
    if planned >= 500:
        return None
    changes: dict[str, Any] = {"train.epochs": min(planned * 2, 500)}
    why = f"This run stopped after {r.n} epochs while the curves were still moving."
    label = f"Train for more epochs ({changes['train.epochs']})"
    if safety_net:
        why = f"Validation loss was still falling after {r.n} epochs, so the network has more to learn."
        if not t.early_stopping and r.stopped is None:
            changes.update({"train.early_stopping": 5, "train.monitor": "val_loss", "train.restore_best": True})
            label += " with early stopping"
            why += " Early stopping (patience 5, restore best weights) ends the run if it starts to overfit."
    elif not r.short:
        why = "Training loss may still come down with more passes over the data, especially with a small learning rate."
    return Remedy(label, why, changes, "more_epochs")


def _learning_rate_up(t: TrainConfig) -> Remedy:
    if t.learning_rate >= 0.01:
        return _lower_lr(t, diverged=False)
    new = _round(t.learning_rate * 3)
    return Remedy(
        f"Raise the learning rate to {new:g}",
        f"Larger steps ({t.learning_rate:g} -> {new:g}) move the weights faster when the loss creeps down; "
        "if the loss then jumps around instead of falling, go back down.",
        {"train.learning_rate": new},
        "learning_rate",
    )


def _lower_lr(t: TrainConfig, *, diverged: bool) -> Remedy:
    new = max(_round(t.learning_rate / 10), 1e-7)
    why = (
        "The loss overflowed: steps this large throw the weights far off. "
        "A tenth of the learning rate usually fixes it."
        if diverged
        else f"A learning rate of {t.learning_rate:g} is high for this network: the loss can bounce around "
        "instead of settling. Smaller steps let it settle."
    )
    return Remedy(f"Lower the learning rate to {new:g}", why, {"train.learning_rate": new}, "learning_rate")


def _less_dropout(m: ModelConfig) -> Remedy | None:
    if m.dropout < 0.1:
        return None
    new = round(m.dropout / 2, 2)
    return Remedy(
        f"Lower dropout to {new:g}",
        f"Dropout of {m.dropout:.0%} switches off many units at every step; a model that cannot even fit the "
        "training images needs them all.",
        {"model.dropout": new},
        "less_dropout",
    )


def apply_changes(
    changes: Remedy | Mapping[str, Any],
    model_cfg: ModelConfig | None = None,
    train_cfg: TrainConfig | None = None,
) -> tuple[ModelConfig, TrainConfig]:
    """Apply a remedy's dotted-key changes to the two configs.

    ``"train.augment"`` takes ``"course"`` (:meth:`AugmentConfig.course`),
    ``"none"`` (no augmentation) or a dict of AugmentConfig fields.

    Returns:
        New ``(ModelConfig, TrainConfig)``; the inputs are not changed.

    Raises:
        ConfigError: a key names no config field or a value is out of range.
    """
    if isinstance(changes, Remedy):
        changes = changes.changes
    model_cfg = model_cfg or ModelConfig()
    train_cfg = train_cfg or TrainConfig()
    parts: dict[str, dict[str, Any]] = {"model": {}, "train": {}}
    known = {
        "model": {f.name for f in dataclasses.fields(ModelConfig)},
        "train": {f.name for f in dataclasses.fields(TrainConfig)},
    }
    for key, value in changes.items():
        section, _, name = key.partition(".")
        if section not in parts or name not in known[section]:
            raise ConfigError(
                f"Unknown setting {key!r}: expected 'model.<field>' or 'train.<field>' with a field of "
                f"ModelConfig or TrainConfig."
            )
        if key == "train.augment":
            if value == "course":
                value = AugmentConfig.course()
            elif value in ("none", None):
                value = AugmentConfig()
            elif isinstance(value, Mapping):
                value = AugmentConfig.from_dict(dict(value))
        elif isinstance(value, list):
            value = tuple(value)
        parts[section][name] = value
    return model_cfg.replace(**parts["model"]), train_cfg.replace(**parts["train"])


def fit_summary_text(diagnosis: Diagnosis | Mapping[str, Any]) -> str:
    """One plain-text paragraph: verdict, evidence and what to try (for the CLI).

    Takes a :class:`Diagnosis` or its ``to_dict()`` (as the run store keeps it).
    """
    if isinstance(diagnosis, Mapping):
        diagnosis = Diagnosis.from_dict(diagnosis)
    text = f"{diagnosis.title}. {diagnosis.headline} " + " ".join(diagnosis.evidence)
    if diagnosis.remedies:
        labels = [r.label[:1].lower() + r.label[1:] for r in diagnosis.remedies]
        text += " Things to try: " + "; ".join(labels) + "."
    return text


# --- Test-set evaluation ----------------------------------------------------


def evaluate(
    y_true: Sequence[int] | np.ndarray,
    probs: Sequence[Sequence[float]] | np.ndarray,
    class_names: Sequence[str],
    loss: str | None = None,
    *,
    top_wrong: int = 12,
) -> TestReport:
    """Score the test set's softmax outputs.

    Args:
        y_true: the true class of each test image, integers of shape (N,)
            (``PreparedData.y_test_int``; for one-hot labels pass
            ``y.argmax(axis=1)``).
        probs: the model's softmax outputs, shape (N, C), each row summing to 1.
        class_names: C names, one per column of ``probs``.
        loss: "categorical" or "sparse" (``TrainConfig.loss``): the Keras loss
            the reported number stands for. Both are the cross-entropy of the
            true class' probability, so the value is the same; None means
            "categorical".
        top_wrong: how many of the most confidently wrong items to list.

    Returns:
        A :class:`TestReport`.
    """
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    y, p, names = _check_predictions(y_true, probs, class_names)
    if loss is None:
        loss = "categorical"
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {list(LOSSES)} or None. Got {loss!r} instead.")
    if isinstance(top_wrong, bool) or not isinstance(top_wrong, (int, np.integer)) or top_wrong < 0:
        raise ValueError(f"top_wrong must be an integer >= 0. Got {top_wrong!r} instead.")
    n, c = p.shape
    labels = list(range(c))
    pred = p.argmax(axis=1)
    conf = p[np.arange(n), pred]
    true_p = np.clip(p[np.arange(n), y], EPSILON, 1 - EPSILON)
    xent = float(np.mean(-np.log(true_p)))

    prec, rec, f1, sup = precision_recall_fscore_support(y, pred, labels=labels, zero_division=0)
    per_class = [
        {
            "class": names[k],
            "precision": float(prec[k]),
            "recall": float(rec[k]),
            "f1": float(f1[k]),
            "support": int(sup[k]),
        }
        for k in labels
    ]
    averages = {}
    for avg in ("macro", "weighted"):
        ap, ar, af, _ = precision_recall_fscore_support(y, pred, labels=labels, average=avg, zero_division=0)
        averages[avg] = {"precision": float(ap), "recall": float(ar), "f1": float(af), "support": int(n)}
    cm = confusion_matrix(y, pred, labels=labels)

    wrong = np.flatnonzero(pred != y)
    order = wrong[np.argsort(-conf[wrong], kind="stable")][:top_wrong]

    notes = []
    absent = [names[k] for k in labels if sup[k] == 0]
    if absent:
        notes.append(
            f"No test images of {', '.join(repr(a) for a in absent)}: recall and F1 of "
            f"{'that class' if len(absent) == 1 else 'those classes'} are shown as 0 and pull the macro "
            "average down."
        )
    never = [names[k] for k in labels if sup[k] > 0 and not (pred == k).any()]
    if never:
        notes.append(f"The network never predicted {', '.join(repr(a) for a in never)}: precision is shown as 0.")
    return TestReport(
        accuracy=float(np.mean(pred == y)),
        loss=xent,
        loss_name=loss,
        class_names=names,
        per_class=per_class,
        macro=averages["macro"],
        weighted=averages["weighted"],
        confusion_matrix=cm.astype(int).tolist(),
        y_true=y.tolist(),
        predicted=pred.astype(int).tolist(),
        confidence=conf.astype(float).tolist(),
        most_confident_wrong=order.astype(int).tolist(),
        notes=notes,
    )


def cell_indices(
    report_or_arrays: TestReport | tuple[Any, Any],
    true_class: int | str,
    pred_class: int | str,
) -> list[int]:
    """The test indices in one cell of the confusion matrix, in order.

    Args:
        report_or_arrays: a :class:`TestReport`, or a pair ``(y_true, y_pred)``
            where ``y_pred`` is predicted classes (N,) or probabilities (N, C).
        true_class: the row: a class index (or a class name, with a report).
        pred_class: the column, likewise.
    """
    if isinstance(report_or_arrays, TestReport):
        y = np.asarray(report_or_arrays.y_true)
        pred = np.asarray(report_or_arrays.predicted)
        names = report_or_arrays.class_names
        c = len(names)
    else:
        try:
            y_true, y_pred = report_or_arrays
        except (TypeError, ValueError):
            raise ValueError(
                "cell_indices() takes a TestReport or a pair (y_true, y_pred). "
                f"Got {type(report_or_arrays).__name__} instead."
            ) from None
        y = _int_labels(y_true, "y_true")
        pred = np.asarray(y_pred)
        if pred.ndim == 2:
            c = pred.shape[1]
            pred = pred.argmax(axis=1)
        else:
            pred = _int_labels(pred, "y_pred")
            c = int(max(y.max(initial=-1), pred.max(initial=-1))) + 1
        if len(pred) != len(y):
            raise ValueError(f"y_true and y_pred must have the same length. Got {len(y)} and {len(pred)}.")
        names = None
    row = _class_index(true_class, names, c, "true_class")
    col = _class_index(pred_class, names, c, "pred_class")
    return np.flatnonzero((y == row) & (pred == col)).astype(int).tolist()


# --- Helpers ----------------------------------------------------------------


def _unwrap(history: Any) -> Any:
    """Accept Keras' History object as well as its ``.history`` dict."""
    inner = getattr(history, "history", None)
    return inner if isinstance(inner, Mapping) else history


def _series(history: Mapping[str, Sequence[float]], key: str) -> np.ndarray:
    if not isinstance(history, Mapping) or not history:
        raise ValueError(
            "history is empty: pass Keras' history.history, a dict of per-epoch lists such as "
            f"{{'loss': [...], 'val_loss': [...]}}. Got {history!r} instead."
        )
    if key not in history:
        alias = _ALIASES.get(key)
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


def _moving_average(x: np.ndarray, window: int = SMOOTH_WINDOW) -> np.ndarray:
    """Centred moving average; the window shrinks at both ends so the length is kept."""
    kernel = np.ones(window)
    sums = np.convolve(x, kernel, mode="same")
    counts = np.convolve(np.ones_like(x), kernel, mode="same")
    return sums / counts


def _trend(tail: np.ndarray) -> tuple[float | None, float]:
    """Relative change along a straight line through ``tail`` (negative: falling), and its t-statistic."""
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


def _change(x: np.ndarray, first_epoch: int) -> float | None:
    """Relative change of x from ``first_epoch`` (1-based) to the end."""
    start, end = float(x[first_epoch - 1]), float(x[-1])
    if start == end:
        return 0.0
    if not (np.isfinite(start) and np.isfinite(end)) or start == 0:
        return None
    return end / start - 1


def _rel(new: float, old: float) -> float | None:
    """new / old - 1, or None when old is not a positive number."""
    return float(new / old - 1) if old > 0 and np.isfinite(new) else None


def _pct(x: float | None) -> str:
    """A signed whole percentage, without the "-0%" that rounding a tiny drop gives."""
    if x is None or not math.isfinite(x):
        return "n/a"
    p = round(x * 100)
    return f"{p:+d}%" if p else "0%"


def _round(x: float) -> float:
    return float(f"{x:.2g}")


def _trainable(m: ModelConfig) -> int | None:
    try:
        return layer_table(m).trainable_params
    except ValueError:
        return None


def _plain(x: Any) -> Any:
    """Make x JSON-safe: NumPy scalars to Python, tuples to lists, NaN/inf to None."""
    if isinstance(x, Mapping):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple, np.ndarray)):
        return [_plain(v) for v in x]
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(x) else None
    return x


def _int_labels(y: Any, name: str) -> np.ndarray:
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise ValueError(
            f"{name} must be integer class labels of shape (N,). Got shape {arr.shape} instead. "
            "For one-hot labels pass y.argmax(axis=1) (PreparedData.y_test_int)."
        )
    integral = np.issubdtype(arr.dtype, np.integer) or (
        np.issubdtype(arr.dtype, np.floating) and bool(np.all(arr == np.round(arr)))
    )
    if arr.size and not integral:
        raise ValueError(f"{name} must hold integer class labels. Got dtype {arr.dtype} instead.")
    return arr.astype(np.int64)


def _check_predictions(y_true, probs, class_names) -> tuple[np.ndarray, np.ndarray, list[str]]:
    y = _int_labels(y_true, "y_true")
    p = np.asarray(probs, dtype=float)
    if p.ndim != 2:
        raise ValueError(
            f"probs must have shape (N, C), one row of class probabilities per item. Got shape {p.shape} instead."
        )
    n, c = p.shape
    if n == 0:
        raise ValueError("probs is empty: there is nothing to evaluate.")
    if len(y) != n:
        raise ValueError(f"y_true has {len(y)} labels but probs has {n} rows: they must describe the same items.")
    names = [str(s) for s in class_names]
    if len(names) != c:
        raise ValueError(f"class_names has {len(names)} names but probs has {c} columns (classes). Got {names}.")
    if y.min() < 0 or y.max() >= c:
        bad = int(y[(y < 0) | (y >= c)][0])
        raise ValueError(f"y_true holds class {bad}, outside [0, {c - 1}] for {c} classes.")
    if not np.isfinite(p).all():
        raise ValueError("probs holds NaN or infinite values.")
    if p.min() < 0 or p.max() > 1 + ROW_SUM_TOLERANCE:
        raise ValueError(
            f"probs must be probabilities in [0, 1]. Got values in [{p.min():.3g}, {p.max():.3g}]. "
            "If the model outputs logits, apply softmax first."
        )
    sums = p.sum(axis=1)
    off = np.flatnonzero(np.abs(sums - 1) > ROW_SUM_TOLERANCE)
    if off.size:
        i = int(off[0])
        raise ValueError(
            f"Each row of probs must sum to 1 (softmax outputs). Row {i} sums to {sums[i]:.4f} "
            f"({off.size} of {n} rows are off). Apply softmax to the model's outputs first."
        )
    return y, p, names


def _class_index(value: int | str, names: list[str] | None, c: int, what: str) -> int:
    if isinstance(value, str):
        if names is None:
            raise ValueError(f"{what} is a class name ({value!r}); names can only be used with a TestReport.")
        if value not in names:
            raise ValueError(f"{what} {value!r} is not a class. Known classes: {names}.")
        return names.index(value)
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= value < c:
        raise ValueError(f"{what} must be a class index in [0, {c - 1}]. Got {value!r} instead.")
    return int(value)
