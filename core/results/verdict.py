"""The course's reading of the training curves: a truth table of curve shapes, one decision, and its sentences.

docs/VERDICT.md is the table in words a teacher reads; :data:`THRESHOLDS` below
holds every number it uses, each with its reason, and the doc's threshold table
is generated from it (:func:`thresholds_markdown`; a test checks they agree).

The rows, checked in this order (the first that applies decides):

1. **diverged**: a loss is NaN or infinite at any epoch; or (from
   ``MIN_EPOCHS_TO_JUDGE`` epochs) training loss ends higher than it started, or
   jumps up sharply at least twice. Remedy: lower the learning rate.
2. **too_few_epochs**: fewer than ``MIN_EPOCHS_TO_JUDGE`` epochs.
3. **overfitting**: validation loss has a minimum at least
   ``RISE_MIN_EPOCHS_AFTER_BEST`` epochs before the end, ends more than
   ``RISE_FRACTION`` (and ``RISE_ABSOLUTE``) above it, and training loss fell by
   ``TRAIN_STILL_FALLING`` after it. Names the epoch of the minimum.
4. **still_improving**: the lowest validation loss is at the last epoch, or in
   the last few epochs with a line through them still falling. When the losses
   are also high (row 5's level), one sentence says both.
5. **underfitting**: the losses are high (near chance ``ln K`` or low accuracy)
   and validation loss no longer reaches new lows.
6. **overfitting** (by the gap): training accuracy well above validation
   accuracy and validation loss well above training loss.
7. **good_fit**: none of the above: validation loss levelled off near its
   minimum with a small gap.

Title, headline, evidence (:class:`Reading`) and remedies (:mod:`core.results.remedies`)
are all built from the one :class:`Decision`. The evidence also says which
epoch's weights the saved model holds (the rule of :func:`core.training.fit.keeps_best_weights`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.base.config import TrainConfig
from core.results.curves import best_of, change, higher_is_better, moving_average, percent, relative, trend

# The title of a run still improving while its losses are high (the lab groups its variants by it).
UNDERFITTING_SO_FAR = "Still improving (underfitting so far)"


def last_weights_text(epochs: int) -> str:
    """What a run keeps when no best epoch was restored (the verdict's sentence, the curves' note)."""
    return f"the saved model holds the last epoch's weights (epoch {epochs})"


# --- Thresholds: the one place the verdict's numbers live ----------------------------------------
@dataclass(frozen=True)
class Threshold:
    """One number of the truth table.

    Attributes:
        name: the constant's name in this module.
        value: its value.
        shown: the value as docs/VERDICT.md shows it ("10%", "3 epochs").
        kind: "relative" (unchanged when every loss is multiplied by a constant),
            "absolute loss", "accuracy" or "epochs".
        reason: why this value, in one or two sentences.
    """

    name: str
    value: float
    shown: str
    kind: str
    reason: str


THRESHOLDS: dict[str, Threshold] = {}


def _threshold(name: str, value, fmt: str, kind: str, reason: str):
    THRESHOLDS[name] = Threshold(name, value, fmt.format(value), kind, reason)
    return value


MIN_EPOCHS_TO_JUDGE = _threshold(
    "MIN_EPOCHS_TO_JUDGE",
    3,
    "{} epochs",
    "epochs",
    "A trend needs two steps: after 2 epochs validation loss has taken one step, and one step of a noisy "
    "curve cannot be told from noise. The third epoch shows whether it keeps falling or turns.",
)
SMOOTH_FROM_EPOCHS = _threshold(
    "SMOOTH_FROM_EPOCHS",
    6,
    "{} epochs",
    "epochs",
    "Validation loss moves a few % from epoch to epoch on small sets. From this many epochs on, its minimum is "
    "taken on a 3-epoch moving average and 'the end' is the median of the last 3 epochs, so one lucky or "
    "unlucky epoch can neither make nor hide a verdict. Shorter runs are read epoch by epoch.",
)
SMOOTH_WINDOW = _threshold(
    "SMOOTH_WINDOW",
    3,
    "{} epochs",
    "epochs",
    "The moving average and the median of the end span 3 epochs: the median of 3 ignores one spike.",
)
RISE_FRACTION = _threshold(
    "RISE_FRACTION",
    0.10,
    "{:.0%}",
    "relative",
    "Overfitting: at the end validation loss is more than this far above its minimum. Smaller rises are "
    "within the epoch-to-epoch noise of a few hundred validation images.",
)
RISE_ABSOLUTE = _threshold(
    "RISE_ABSOLUTE",
    0.02,
    "{:.2f}",
    "absolute loss",
    "... and at least this much above it: when the loss is tiny (0.03 -> 0.04 is +33%) the difference is "
    "noise, not memorising.",
)
RISE_MIN_EPOCHS_AFTER_BEST = _threshold(
    "RISE_MIN_EPOCHS_AFTER_BEST",
    2,
    "{} epochs",
    "epochs",
    "... and the minimum came at least this many epochs before the end: a rise over the last epoch alone is "
    "noise, not a turn of the curve.",
)
TRAIN_STILL_FALLING = _threshold(
    "TRAIN_STILL_FALLING",
    0.05,
    "{:.0%}",
    "relative",
    "... while training loss fell by at least this much after the minimum (the course's 'training loss "
    "decreases while validation loss increases'). If both rose, it is not memorising.",
)
GAP_ACCURACY = _threshold(
    "GAP_ACCURACY",
    0.10,
    "{:.2f}",
    "accuracy",
    "Overfitting by the gap (the course's 0.95 against 0.78): final training accuracy more than this above "
    "validation accuracy ...",
)
GAP_LOSS_RATIO = _threshold(
    "GAP_LOSS_RATIO",
    1.5,
    "{:g} times",
    "relative",
    "... and final validation loss more than this multiple of training loss. Either alone is common in a "
    "healthy run (dropout lowers training accuracy; a few hard validation images raise the loss).",
)
LOW_ACCURACY_SHARE = _threshold(
    "LOW_ACCURACY_SHARE",
    0.5,
    "{:.0%}",
    "accuracy",
    "High losses: the better final accuracy has not covered this share of the way from guessing (1/K) to "
    "perfect: below 0.60 for 5 classes, 0.75 for 2.",
)
LOW_ACCURACY_DEFAULT = _threshold(
    "LOW_ACCURACY_DEFAULT",
    0.6,
    "{:.2f}",
    "accuracy",
    "The same line when the number of classes is unknown (the 5-class value).",
)
NEAR_CHANCE_LOSS = _threshold(
    "NEAR_CHANCE_LOSS",
    0.8,
    "{:.0%} of ln K",
    "absolute loss",
    "High losses: the better final loss is above this share of ln K, the loss of a network that gives each "
    "of K classes the same probability. Absolute: it does not scale with the losses.",
)
TREND_MIN_WINDOW = _threshold(
    "TREND_MIN_WINDOW",
    3,
    "{} epochs",
    "epochs",
    "'Near the end' is the last third of the run, at least this many epochs ...",
)
TREND_MAX_WINDOW = _threshold(
    "TREND_MAX_WINDOW",
    10,
    "{} epochs",
    "epochs",
    "... and at most this many: in a long run, 'still improving' is about the last few epochs.",
)
STILL_FALLING = _threshold(
    "STILL_FALLING",
    0.05,
    "{:.0%}",
    "relative",
    "Still improving when the lowest validation loss is a little before the last epoch: a straight line "
    "through the last epochs drops by at least this share of their mean (slower than that is a plateau). When "
    "the lowest value is the last epoch's it is still improving whatever the speed; below this speed the "
    "verdict adds that it falls slowly.",
)
TREND_T = _threshold(
    "TREND_T",
    2.0,
    "{:g} standard errors",
    "relative",
    "... with a slope at least this many standard errors below zero, so the scatter of a flat but noisy curve "
    "does not pass for a downward trend.",
)
FLAT = _threshold(
    "FLAT",
    0.05,
    "{:.0%}",
    "relative",
    "Wording only: a loss that changed by less than this over the compared epochs is called flat.",
)
UNSTABLE_RISE = _threshold(
    "UNSTABLE_RISE",
    0.10,
    "{:.0%}",
    "relative",
    "Unstable: training loss at the end is more than this above its first epoch's. Training loss is measured "
    "on the images the network learns from; it only ends higher than it started when the steps are too big.",
)
JUMP_FRACTION = _threshold(
    "JUMP_FRACTION",
    0.25,
    "{:.0%} of the first epoch's training loss",
    "relative",
    "Unstable: a rise of training loss from one epoch to the next larger than this counts as a jump. Measured "
    "against the first epoch's loss (the size of the whole descent), so small wiggles of a tiny loss do not count.",
)
JUMPS_UNSTABLE = _threshold(
    "JUMPS_UNSTABLE",
    2,
    "{} jumps",
    "epochs",
    "Unstable when training loss jumps at least this often: one jump can be a hard batch; two is a pattern.",
)
AT_CHANCE_SHARE = _threshold(
    "AT_CHANCE_SHARE",
    0.1,
    "{:.0%}",
    "accuracy",
    "Wording only (the teacher's table): a run whose best validation accuracy has not covered this share of the "
    "way from guessing (1/K) to perfect is 'stuck at chance', whatever its verdict: at most 0.28 for 5 classes, "
    "0.40 for 3.",
)


def thresholds_markdown() -> str:
    """The thresholds as the Markdown table docs/VERDICT.md quotes."""
    lines = ["| Threshold | Value | Kind | Why |", "|---|---|---|---|"]
    lines += [f"| `{t.name}` | {t.shown} | {t.kind} | {t.reason} |" for t in THRESHOLDS.values()]
    return "\n".join(lines)


# --- The decision ------------------------------------------------------------------------------
VERDICTS = ("diverged", "too_few_epochs", "overfitting", "still_improving", "underfitting", "good_fit")
TITLES = {
    "diverged": "Diverged",
    "too_few_epochs": "Too few epochs to judge",
    "overfitting": "Overfitting",
    "still_improving": "Still improving",
    "underfitting": "Underfitting",
    "good_fit": "Good fit",
}
# What the best epoch is best at, by the monitored value.
_BEST_WORDS = {"val_loss": "lowest validation loss", "val_accuracy": "highest validation accuracy"}


@dataclass(frozen=True)
class Decision:
    """Which row of the truth table a history falls in, and the facts that put it there.

    Attributes:
        verdict: one of :data:`VERDICTS`.
        title: the heading ("Still improving (underfitting so far)").
        high: the losses are high (near chance or low accuracy): underfitting, alone
            or with still improving / too few epochs.
        high_by: "loss" or "accuracy": which measure said high (None when not high).
        unstable: for "diverged": "nan", "rising" or "jumps"; None otherwise.
        overfit_start: the epoch after which validation loss rose (overfitting by the curve).
        by_gap: overfitting by the train/validation gap.
        best_at_end: the lowest validation loss is at the last epoch.
        slow: still improving with the lowest value at the last epoch, but by less than STILL_FALLING over the
            last few epochs.
    """

    verdict: str
    title: str
    high: bool = False
    high_by: str | None = None
    unstable: str | None = None
    overfit_start: int | None = None
    by_gap: bool = False
    best_at_end: bool = False
    slow: bool = False


def _plural(n: int, word: str = "epoch") -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _small_percent(x: float | None) -> str:
    """The size of a small relative change: "1.4%", "less than 0.1%"."""
    x = abs(x or 0.0)
    return f"{x:.1%}" if x >= 0.001 else "less than 0.1%"


def _epochs(a: int, b: int) -> str:
    return f"epoch {a}" if a == b else f"epochs {a}-{b}"


@dataclass(frozen=True, eq=False)
class Curves:
    """The four per-epoch series a verdict reads, checked (:func:`core.results.curves.read_history`)."""

    loss: np.ndarray
    acc: np.ndarray
    vloss: np.ndarray
    vacc: np.ndarray


@dataclass(frozen=True)
class RunFacts:
    """What is known of a run besides its curves.

    Attributes:
        num_classes: for the chance level ln(K); None when unknown.
        restored_epoch: the epoch whose weights were put back at the end of
            training (1-based), or None when the model kept its last epoch's.
        stopped_epoch: the epoch early stopping ended training at, or None.
        train_cfg: the run's settings; None when unknown (then nothing is said
            about the saved weights unless an epoch above says it).
    """

    num_classes: int | None = None
    restored_epoch: int | None = None
    stopped_epoch: int | None = None
    train_cfg: TrainConfig | None = None


class Reading:
    """The measurements of one history, its :class:`Decision`, and the sentences built from it.

    Args:
        curves: the history's four series.
        facts: what else is known of the run (classes, restored and stopped epochs, settings).

    Attributes:
        numbers: the measurements (see :func:`core.results.diagnosis.diagnose`).
        decision: the row of the truth table.
        best: the epoch with the lowest validation loss (None if all are NaN).
        monitor_best: the best epoch by ``train_cfg.monitor`` (what a restore keeps).
        early_stopping: whether the run used early stopping.
        saved_epoch: the epoch whose weights the saved model holds, or None when unknown.
    """

    def __init__(self, curves: Curves, facts: RunFacts):
        loss, acc, vloss, vacc = curves.loss, curves.acc, curves.vloss, curves.vacc
        num_classes, train_cfg = facts.num_classes, facts.train_cfg
        restored_epoch, stopped_epoch = facts.restored_epoch, facts.stopped_epoch
        self.loss, self.acc, self.vloss, self.vacc = loss, acc, vloss, vacc
        self.n = n = len(loss)
        self.C = int(num_classes) if num_classes is not None else None
        self.restored, self.stopped, self.train_cfg = restored_epoch, stopped_epoch, train_cfg
        t = train_cfg or TrainConfig()  # the course's settings: no early stopping, the checkpoint
        self.early_stopping = stopped_epoch is not None or bool(t.early_stopping)
        self.monitor = t.monitor
        bad = ~(np.isfinite(loss) & np.isfinite(vloss))
        self.diverged = int(np.argmax(bad)) + 1 if bad.any() else None
        self.best = best_of(vloss)
        self.monitor_best = best_of(self.monitored, higher=higher_is_better(self.monitor))
        known = restored_epoch is not None or stopped_epoch is not None or train_cfg is not None
        self.saved_epoch = restored_epoch if restored_epoch is not None else (n if known else None)
        self.short = n < MIN_EPOCHS_TO_JUDGE
        smooth = n >= SMOOTH_FROM_EPOCHS
        self.s_loss = moving_average(loss) if smooth else loss
        self.s_vloss = moving_average(vloss) if smooth else vloss
        end = SMOOTH_WINDOW if smooth else 1
        self.end_loss = float(np.median(loss[-end:]))
        self.end_vloss = float(np.median(vloss[-end:]))
        self.end_acc = float(np.median(acc[-end:]))
        self.end_vacc = float(np.median(vacc[-end:]))
        # The epochs the evidence compares and "still improving" reads: the last third of the run, at least
        # TREND_MIN_WINDOW and at most TREND_MAX_WINDOW epochs (the whole run when it is that short).
        lo, hi = TREND_MIN_WINDOW, TREND_MAX_WINDOW
        self.window = int(np.clip(round(n / 3), lo, hi)) if n >= lo else n
        self.trend, self.trend_t = trend(vloss[-self.window :])
        self.window_start = n - self.window + 1
        self.window_change = relative(float(vloss[-1]), float(vloss[self.window_start - 1]))
        self.jumps = self._jumps()
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
            "val_loss_rise": relative(vloss[-1], vloss[b - 1]) if b else None,
            "epochs_run": n,
            "chance_loss": chance_loss,
            "chance_accuracy": 1 / self.C if self.C else None,
            "restored_epoch": restored_epoch,
            "stopped_epoch": stopped_epoch,
            "saved_epoch": self.saved_epoch,
            "compared_from_epoch": self.window_start,
            "last_third_loss_change": change(self.s_loss, self.window_start),
            "last_third_val_loss_change": change(self.s_vloss, self.window_start),
            "val_loss_trend": self.trend,
            "diverged_epoch": self.diverged,
            "short": self.short,
        }
        self.decision = self._decide()
        self.numbers["overfit_start_epoch"] = self.decision.overfit_start

    @property
    def monitored(self) -> np.ndarray:
        """The series early stopping and the checkpoint watch."""
        return self.vacc if self.monitor == "val_accuracy" else self.vloss

    def last_is_worse(self) -> bool:
        """The last epoch scores worse than the best epoch on the monitored value."""
        mb, v = self.monitor_best, self.monitored
        if mb is None or mb == self.n:
            return False
        return not (v[-1] >= v[mb - 1] if higher_is_better(self.monitor) else v[-1] <= v[mb - 1])

    # --- the truth table
    def _decide(self) -> Decision:
        def made(verdict: str, title: str | None = None, **facts) -> Decision:
            return Decision(verdict, title or TITLES[verdict], best_at_end=self.best == self.n, **facts)

        if self.diverged is not None:
            return made("diverged", unstable="nan")
        high_by = self._high()
        high = {"high": high_by is not None, "high_by": high_by}
        if self.short:
            return made("too_few_epochs", **high)
        if self.end_loss > (1 + UNSTABLE_RISE) * float(self.loss[0]):
            return made("diverged", "Unstable", unstable="rising")
        if len(self.jumps) >= JUMPS_UNSTABLE:
            return made("diverged", "Unstable", unstable="jumps")
        if (start := self._rise()) is not None:
            return made("overfitting", overfit_start=start)
        if high_by is not None:
            if self._still_falling():
                return made("still_improving", UNDERFITTING_SO_FAR, slow=self._slow(), **high)
            return made("underfitting", **high)
        if self._wide_gap():
            return made("overfitting", by_gap=True)
        if self._still_falling():
            return made("still_improving", slow=self._slow())
        return made("good_fit")

    def _slow(self) -> bool:
        c = self.window_change
        return self.best == self.n and (c is None or -c < STILL_FALLING)

    def _jumps(self) -> list[int]:
        """Epochs (1-based) at which training loss rose by more than JUMP_FRACTION of its first value."""
        if not np.isfinite(self.loss).all() or self.loss[0] <= 0:
            return []
        up = np.diff(self.loss) > JUMP_FRACTION * float(self.loss[0])
        return [int(i) + 2 for i in np.flatnonzero(up)]

    def _rise(self) -> int | None:
        """The epoch after which validation loss rose past the margin while training loss fell, or None."""
        if self.best == self.n:
            return None  # the last epoch is the lowest: whatever the average says, it did not rise
        i = int(np.argmin(self.s_vloss))
        lowest = float(self.s_vloss[i])
        if i + 1 > self.n - RISE_MIN_EPOCHS_AFTER_BEST:
            return None
        rise = self.end_vloss - lowest
        if lowest <= 0 or rise / lowest <= RISE_FRACTION or rise <= RISE_ABSOLUTE:
            return None
        if self.end_loss > (1 - TRAIN_STILL_FALLING) * float(self.s_loss[i]):
            return None  # both curves went up or stalled: not the course's overfitting picture
        # The turning point: the lowest raw epoch among those the smoothed minimum
        # averaged, so a lone dip elsewhere does not move it.
        half = SMOOTH_WINDOW // 2 if self.n >= SMOOTH_FROM_EPOCHS else 0
        lo, hi = max(0, i - half), min(self.n, i + 1 + half)
        return lo + int(np.argmin(self.vloss[lo:hi])) + 1

    def _high(self) -> str | None:
        """ "accuracy" or "loss" when the losses are high (underfitting's level), else None."""
        best_acc = max(self.end_acc, self.end_vacc)
        if self.C:
            chance = 1 / self.C
            if best_acc < chance + LOW_ACCURACY_SHARE * (1 - chance):
                return "accuracy"
            return "loss" if min(self.end_loss, self.end_vloss) > NEAR_CHANCE_LOSS * math.log(self.C) else None
        return "accuracy" if best_acc < LOW_ACCURACY_DEFAULT else None

    def _still_falling(self) -> bool:
        """The lowest validation loss is at the last epoch, or near it with a line through the last epochs still
        dropping by STILL_FALLING."""
        if self.best == self.n:
            return True  # the minimum has not been seen yet, however slowly it falls
        return (
            self.best > self.n - self.window
            and self.trend is not None
            and -self.trend >= STILL_FALLING
            and self.trend_t <= -TREND_T
        )

    def _wide_gap(self) -> bool:
        wide = self.end_acc - self.end_vacc > GAP_ACCURACY
        return wide and self.end_vloss > GAP_LOSS_RATIO * self.end_loss

    # --- sentences
    def judge(self) -> tuple[str, list[str]]:
        """Returns ``(headline, evidence)`` for the decision; the evidence ends with which weights were saved."""
        v = self.decision.verdict
        if v == "diverged":
            headline, evidence = self._diverged()
        elif v == "too_few_epochs":
            headline, evidence = self._short()
        elif v == "overfitting":
            headline, evidence = self._overfit_by_gap() if self.decision.by_gap else self._overfit_by_rise()
        elif v == "still_improving":
            headline, evidence = self._still_improving()
        elif v == "underfitting":
            headline, evidence = self._underfitting()
        else:
            headline, evidence = self._good_fit()
        return headline, evidence + self.weights_lines()

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

    def _window_line(self) -> str:
        k, n = self.window_start, self.n
        lc, vc = self.numbers["last_third_loss_change"], self.numbers["last_third_val_loss_change"]
        span = f"Over the whole run (epochs 1-{n})" if k == 1 else f"Over epochs {k}-{n}"
        smoothed = " (each a 3-epoch average)" if n >= SMOOTH_FROM_EPOCHS else ""
        return f"{span} training loss changed by {percent(lc)} and validation loss by {percent(vc)}{smoothed}."

    def _chance_line(self) -> str | None:
        if not self.C:
            return None
        cl = math.log(self.C)
        return (
            f"A network that gives each of the {self.C} classes the same probability scores a loss of "
            f"ln {self.C} = {cl:.3f} and an accuracy of {1 / self.C:.2f}; this one ended at a training loss "
            f"of {self.loss[-1]:.3f} and validation loss of {self.vloss[-1]:.3f}."
        )

    def _high_clause(self) -> str:
        """Why the losses count as high, as a clause: "the losses are still near chance (...)"."""
        if self.decision.high_by == "loss":
            low = min(self.end_loss, self.end_vloss)
            return (
                f"the losses are still near the guessing level (the lower one is {low:.3f}; "
                f"ln {self.C} = {math.log(self.C):.3f} is what a network that guesses scores)"
            )
        best_acc = max(self.end_acc, self.end_vacc)
        guess = f"; guessing scores {1 / self.C:.2f}" if self.C else ""
        return f"accuracy is still low (at best {best_acc:.2f} at the end{guess})"

    def _moved(self, what: str, series: np.ndarray, a: int, b: int) -> str:
        """ "training loss fell from 1.500 (epoch 1) to 0.300 (epoch 20)", with the right verb."""
        x, y = float(series[a - 1]), float(series[b - 1])
        verb = "fell" if y < x else ("rose" if y > x else "stayed")
        if verb == "stayed":
            return f"{what} stayed at {x:.3f} from epoch {a} to epoch {b}"
        digits = next((d for d in range(3, 9) if f"{x:.{d}f}" != f"{y:.{d}f}"), 3)  # a tiny change still shows
        return f"{what} {verb} from {x:.{digits}f} (epoch {a}) to {y:.{digits}f} (epoch {b})"

    # --- one builder per row
    def _diverged(self) -> tuple[str, list[str]]:
        u, n = self.decision.unstable, self.n
        if u == "nan":
            e = self.diverged
            which, value = (
                ("training", self.loss[e - 1])
                if not np.isfinite(self.loss[e - 1])
                else ("validation", self.vloss[e - 1])
            )
            what = "NaN (not a number)" if np.isnan(value) else "infinite"
            headline = (
                f"Training broke down at epoch {e}: the loss stopped being a number, which means the steps were "
                "far too big. Lower the learning rate."
            )
            evidence = [
                f"At epoch {e} the {which} loss became {what}: the weights took a step so large "
                "that the numbers overflowed."
            ]
            if self.best is not None and self.best < e:
                evidence.insert(0, self._best_line())
            return headline, evidence
        if u == "rising":
            headline = (
                f"Training is unstable: training loss ended higher than it started ({self.loss[0]:.3f} at epoch 1, "
                f"{self.loss[-1]:.3f} at epoch {n}), so the steps are too big for the network to settle. "
                "Lower the learning rate."
            )
            evidence = [
                "Training loss is measured on the images the network learns from; in a healthy run it falls. "
                f"Here {self._moved('it', self.loss, 1, n)}."
            ]
        else:
            at = ", ".join(str(j) for j in self.jumps)
            headline = (
                f"Training is unstable: training loss jumped up at epochs {at} instead of falling steadily. "
                "Lower the learning rate."
            )
            evidence = [
                f"Training loss rose at epochs {at} by more than {JUMP_FRACTION:.0%} of its first-epoch value "
                f"({self.loss[0]:.3f}): "
                + "; ".join(f"{self.loss[j - 2]:.3f} -> {self.loss[j - 1]:.3f}" for j in self.jumps)
                + ".",
            ]
        evidence.append(self._best_line())
        return headline, evidence

    def _short(self) -> tuple[str, list[str]]:
        n = self.n
        need = MIN_EPOCHS_TO_JUDGE
        headline = (
            f"Only {_plural(n)} ran, too few to judge the curves: at least {need} are needed, because one step of "
            "a noisy curve cannot be told from a trend. Train for more epochs."
        )
        if self.decision.high:
            headline = (
                f"Only {_plural(n)} ran, too few to judge the curves (at least {need} are needed), and "
                f"{self._high_clause()}: train for more epochs."
            )
        evidence = []
        if n > 1:
            evidence.append(
                f"Over epochs 1-{n} {self._moved('validation loss', self.vloss, 1, n)} "
                f"and {self._moved('training loss', self.loss, 1, n)}."
            )
        evidence.append(self._gap_line())
        return headline, evidence

    def _overfit_by_rise(self) -> tuple[str, list[str]]:
        b = self.decision.overfit_start
        v0, v1, l0, l1 = self.vloss[b - 1], self.vloss[-1], self.loss[b - 1], self.loss[-1]
        headline = (
            f"The network started memorising the training images after epoch {b}: "
            "validation loss rises while training loss keeps falling."
        )
        r = self.restored
        if r is not None and r <= b:
            if self.early_stopping:
                headline += f" Early stopping kept the weights of epoch {r}, from before it got worse."
            elif self.train_cfg is not None:
                headline += f" The checkpoint kept the weights of epoch {r}, from before it got worse."
            else:  # the settings are unknown: do not name what kept them
                headline += f" The saved model holds the weights of epoch {r}, from before it got worse."
        elif r is None and self.saved_epoch is not None and self.last_is_worse():
            headline += " The saved model holds the last epoch's weights, from after it got worse."
        lowest = "was lowest" if b == self.best else "bottomed out"
        evidence = [
            f"Validation loss {lowest} at epoch {b} ({v0:.3f}) and rose to {v1:.3f} by epoch {self.n} "
            f"({percent(relative(v1, v0))}) while training loss kept falling from {l0:.3f} to {l1:.3f}.",
            self._gap_line(),
        ]
        if b != self.best:
            evidence.insert(
                1,
                f"One epoch, {self.best}, dipped lower ({self.vloss[self.best - 1]:.3f}) but the epochs "
                "around it are higher: that is epoch-to-epoch noise, not a turn of the curve.",
            )
        return headline, evidence

    def _overfit_by_gap(self) -> tuple[str, list[str]]:
        a, va, l1, v1 = self.acc[-1], self.vacc[-1], self.loss[-1], self.vloss[-1]
        headline = (
            "The network does much better on its training images than on images it has not seen: "
            f"accuracy {a:.2f} against {va:.2f}"
        )
        if self.decision.best_at_end:
            headline += ", even though validation loss was still at its lowest at the last epoch"
        headline += "."
        evidence = [
            self._gap_line(),
            f"Validation loss ({v1:.3f}) is {v1 / l1:.1f} times the training loss ({l1:.3f})."
            if l1 > 0
            else f"Validation loss is {v1:.3f} while training loss is {l1:.3f}.",
            self._best_line(),
        ]
        return headline, evidence

    def _underfitting(self) -> tuple[str, list[str]]:
        a, va, b, n = self.acc[-1], self.vacc[-1], self.best, self.n
        lc, vc = self.numbers["last_third_loss_change"], self.numbers["last_third_val_loss_change"]
        flat = all(x is not None and abs(x) < FLAT for x in (lc, vc))
        if flat:
            how = f"both losses stay high and barely moved over {_epochs(self.window_start, n)}"
        else:
            how = (
                f"{self._high_clause()}, and validation loss has gone no lower than its epoch-{b} value "
                f"({self.vloss[b - 1]:.3f}) in the {_plural(n - b)} since"
            )
        headline = f"The network is not learning much: {how}."
        evidence = [f"Training accuracy reached only {a:.2f} and validation accuracy {va:.2f}."]
        if (line := self._chance_line()) is not None:
            evidence.append(line)
        evidence.append(self._window_line() + (" The curves are flat." if flat else ""))
        evidence.append(self._best_line())
        return headline, evidence

    def _still_improving(self) -> tuple[str, list[str]]:
        n, b = self.n, self.best
        if self.decision.best_at_end:
            lowest = f"its lowest, {self.vloss[-1]:.3f}, came at epoch {n} of {n}"
            where = f"validation loss was still falling at the last epoch ({lowest})"
            if self.decision.slow:
                k = self.window_start
                where += f", though slowly: by {_small_percent(self.window_change)} over {_epochs(k, n)}"
        else:
            k = n - self.window + 1
            where = (
                f"validation loss was still falling near the end: a line through epochs {k}-{n} drops by "
                f"{percent(-self.trend)[1:]} and its lowest value came at epoch {b} of {n}"
            )
        if self.decision.high:
            more = (
                " If it keeps creeping down this slowly, a bigger network or a larger learning rate will help more."
                if self.decision.slow
                else ""
            )
            headline = (
                f"The network is underfitting so far: {self._high_clause()}, but {where}. Train for more epochs.{more}"
            )
        elif self.decision.slow:
            headline = f"{where[0].upper()}{where[1:]}: it is close to its lowest, and more epochs will gain a little."
        else:
            headline = f"{where[0].upper()}{where[1:]}: more epochs should help."
        k = self.n - self.window + 1
        evidence = [
            f"Over {_epochs(k, n)} {self._moved('validation loss', self.vloss, k, n)}; "
            f"its lowest value came at epoch {b} of {n}.",
            self._gap_line(),
        ]
        if self.decision.high and (line := self._chance_line()) is not None:
            evidence.append(line)
        return headline, evidence

    def _good_fit(self) -> tuple[str, list[str]]:
        n, b = self.n, self.best
        above = relative(float(self.vloss[-1]), float(self.vloss[b - 1]))
        headline = (
            f"Validation loss levelled off near its lowest value (epoch {b} of {n}), and the gap to training loss is "
            "small: the network learned without memorising."
        )
        last = f" At the last epoch validation loss is {percent(above)} from its lowest."
        evidence = [
            f"{self._moved('Training loss', self.loss, 1, n)}; {self._moved('validation loss', self.vloss, 1, n)}.",
            self._window_line() + last,
            self._best_line(),
            self._gap_line(),
        ]
        return headline, evidence

    # --- which weights the saved model holds
    def weights_lines(self) -> list[str]:
        """One or two sentences on the saved model's weights; none when nothing is known about them."""
        s, r, n = self.stopped, self.restored, self.n
        if self.saved_epoch is None:
            return []
        if r is not None:
            if s is not None:
                how = f"Early stopping ended training at epoch {s} and restored the weights of epoch {r}"
            elif self.train_cfg is None:
                how = f"At the end of training the weights of epoch {r} were put back"
            elif self.early_stopping:
                how = (
                    "Early stopping was on but did not end training; after the last epoch it restored "
                    f"the weights of epoch {r}"
                )
            else:
                how = f"There was no early stopping; the checkpoint kept the weights of epoch {r}"
            tail = "not the last epoch's" if r != n else "which is also the last epoch's"
            saved = f"The saved model is the epoch-{r} one, so the test set scores that model, {tail}."
            return [f"{how}{self._which(r)}. {saved}"]
        last = last_weights_text(n)
        if self.early_stopping and not (self.train_cfg and self.train_cfg.restore_best):
            off = " (restore_best is off)" if self.train_cfg is not None else ""
            if s is not None:
                first = f"Early stopping ended training at epoch {s} without restoring the best weights{off}: {last}."
            else:
                first = f"Early stopping did not end training and does not restore the best weights{off}: {last}."
        else:
            first = last[0].upper() + last[1:] + "."
        mb = self.monitor_best
        if self.last_is_worse():
            loss = f"validation loss {self.vloss[-1]:.3f} against {self.vloss[mb - 1]:.3f}"
            acc = f"validation accuracy {self.vacc[-1]:.2f} against {self.vacc[mb - 1]:.2f}"
            main, aside = (acc, loss) if self.monitor == "val_accuracy" else (loss, acc)  # the monitored one first
            return [
                first,
                f"The last epoch is worse than the best one, epoch {mb}: {main} ({aside}). "
                "The test set scores the last epoch's model.",
            ]
        if mb == n:
            return [first, f"The last epoch was also the best one ({_BEST_WORDS[self.monitor]}), so nothing is lost."]
        return [first]

    def _which(self, epoch: int) -> str:
        """Why ``epoch`` was kept, as a clause: ", the epoch with the lowest validation loss", or ""."""
        b = self.best
        if epoch == b:
            return ", the epoch with the lowest validation loss"
        if self.monitor == "val_accuracy" and epoch == self.monitor_best:
            more = f" (validation loss was lowest at epoch {b})" if b is not None else ""
            return ", the epoch with the highest validation accuracy" + more
        return f", while validation loss was lowest at epoch {b}" if b is not None else ""


def truth_table_text() -> str:
    """docs/VERDICT.md, the truth table in words (the Diagnostics page shows it)."""
    return _TRUTH_TABLE.read_text(encoding="utf-8")


_TRUTH_TABLE = Path(__file__).resolve().parents[2] / "docs" / "VERDICT.md"
