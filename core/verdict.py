"""The course's reading of the training curves: a verdict, a headline and the evidence, with its numbers.

* good: both losses fall, both accuracies rise;
* overfitting: training loss keeps falling while validation loss rises after
  some epoch; training accuracy well above validation accuracy (0.95 vs 0.78);
* underfitting: both losses stay high and stop falling;
* still improving: validation loss is still falling at the last epoch.

The thresholds live in :mod:`core.curves`. The evidence also says which
epoch's weights the saved model holds: the best epoch's (early stopping
restored them, or the checkpoint kept them) or the last epoch's.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from core import curves
from core.config import TrainConfig
from core.curves import best_of, change, higher_is_better, moving_average, percent, relative, trend

# What the best epoch is best at, by the monitored value.
_BEST_WORDS = {"val_loss": "lowest validation loss", "val_accuracy": "highest validation accuracy"}


class Reading:
    """The measurements of one history and the sentences built from them.

    Args:
        loss, acc, vloss, vacc: the four per-epoch series, checked
            (:func:`core.curves.read_history`).
        num_classes: for the chance level ln(C); None when unknown.
        restored_epoch: the epoch whose weights were put back at the end of
            training (1-based), or None when the model kept its last epoch's.
        stopped_epoch: the epoch early stopping ended training at, or None.
        train_cfg: the run's settings; None when unknown (then nothing is said
            about the saved weights unless an epoch above says it).

    Attributes:
        numbers: the measurements (see :func:`core.diagnosis.diagnose`).
        best: the epoch with the lowest validation loss (None if all are NaN).
        monitor_best: the best epoch by ``train_cfg.monitor`` (what a restore keeps).
        early_stopping: whether the run used early stopping.
        saved_epoch: the epoch whose weights the saved model holds, or None when unknown.
    """

    def __init__(self, loss, acc, vloss, vacc, num_classes, restored_epoch, stopped_epoch, train_cfg=None):
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
        self.short = n < curves.MIN_EPOCHS_TO_JUDGE
        smooth = n >= curves.SMOOTH_FROM_EPOCHS
        self.s_loss = moving_average(loss) if smooth else loss
        self.s_vloss = moving_average(vloss) if smooth else vloss
        end = curves.SMOOTH_WINDOW if smooth else 1
        self.end_loss = float(np.median(loss[-end:]))
        self.end_vloss = float(np.median(vloss[-end:]))
        self.end_acc = float(np.median(acc[-end:]))
        self.end_vacc = float(np.median(vacc[-end:]))
        self.third = max(1, n - max(2, round(n / 3)))  # 1-based first epoch of the last third
        lo, hi = curves.TREND_MIN_WINDOW, curves.TREND_MAX_WINDOW
        self.window = int(np.clip(round(n / 3), lo, hi)) if n >= lo else n
        self.trend, self.trend_t = trend(vloss[-self.window :])
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
            "last_third_loss_change": change(self.s_loss, self.third),
            "last_third_val_loss_change": change(self.s_vloss, self.third),
            "val_loss_trend": self.trend,
            "diverged_epoch": self.diverged,
            "short": self.short,
        }

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

    def judge(self) -> tuple[str, str, list[str]]:
        """Returns ``(verdict, headline, evidence)``; the evidence ends with which weights were saved."""
        verdict, headline, evidence = self._verdict()
        return verdict, headline, evidence + self.weights_lines()

    # The verdict, in the order the checks are made.
    def _verdict(self) -> tuple[str, str, list[str]]:
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
        if i + 1 > self.n - curves.RISE_MIN_EPOCHS_AFTER_BEST:
            return None
        rise = self.end_vloss - lowest
        if lowest <= 0 or rise / lowest <= curves.RISE_FRACTION or rise <= curves.RISE_ABSOLUTE:
            return None
        if self.end_loss > (1 - curves.TRAIN_STILL_FALLING) * float(self.s_loss[i]):
            return None  # both curves went up or stalled: not the course's overfitting picture
        return i + 1, rise / lowest

    def _level_is_low(self) -> bool:
        best_acc = max(self.end_acc, self.end_vacc)
        if self.C:
            chance = 1 / self.C
            if best_acc < chance + curves.LOW_ACCURACY_SHARE * (1 - chance):
                return True
            return min(self.end_loss, self.end_vloss) > curves.NEAR_CHANCE_LOSS * math.log(self.C)
        return best_acc < curves.LOW_ACCURACY_DEFAULT

    def _still_falling(self) -> bool:
        """The lowest validation loss is among the last epochs and a line through them still drops."""
        return (
            self.best > self.n - self.window
            and self.trend is not None
            and -self.trend >= curves.STILL_FALLING
            and self.trend_t <= -curves.TREND_T
        )

    def _wide_gap(self) -> bool:
        wide = self.end_acc - self.end_vacc > curves.GAP_ACCURACY
        return wide and self.end_vloss > curves.GAP_LOSS_RATIO * self.end_loss

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
        last = f"the saved model holds the last epoch's weights (epoch {n})"
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
            f"Over the last third of training (epochs {k}-{n}) training loss changed by {percent(lc)} "
            f"and validation loss by {percent(vc)}."
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

    # --- verdicts
    def _diverged(self):
        e = self.diverged
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
        lines = [
            f"Only {n} {word} ran: too few epochs to judge the curves "
            f"(at least {curves.MIN_EPOCHS_TO_JUDGE} are needed to see a trend)."
        ]
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
        half = curves.SMOOTH_WINDOW // 2 if self.n >= curves.SMOOTH_FROM_EPOCHS else 0
        lo, hi = max(0, smoothed_best - 1 - half), min(self.n, smoothed_best + half)
        b = lo + int(np.argmin(self.vloss[lo:hi])) + 1
        self.numbers["overfit_start_epoch"] = b
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
        flat = all(x is not None and abs(x) < curves.FLAT for x in (lc, vc))
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
            f"{v1:.3f} at epoch {self.n} ({percent(relative(v1, v0))}); "
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

