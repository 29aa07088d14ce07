"""What a learning-rate range test's losses say (NumPy only): the schedule, the smoothed curve, when it
exploded, where the loss falls, and the suggested learning rate with its rule.

The range test (Smith 2017, "Cyclical learning rates"; fastai's ``lr_find``, keras_lr_finder) trains a
fresh network for a few hundred steps while the learning rate rises exponentially, and reads the loss
against the learning rate. :mod:`core.training.lr_find` runs it; this module only reads its numbers.

Decisions, each with its reason:

- **The rates** rise exponentially: step ``i`` of ``n`` uses ``start * (end / start) ** (i / (n - 1))``,
  so every step multiplies the rate by the same ratio and a log axis shows the steps evenly spaced.
- **Smoothing**: one step's loss is one batch's, noisy; the curve is its exponential moving average
  with bias correction, as fastai does (``avg = b * avg + (1 - b) * loss``; ``avg / (1 - b ** (i + 1))``),
  so the first steps are not pulled towards zero. fastai's ``b`` = 0.98 averages over ~50 steps, half of
  a 100-step test: the minimum then shows decades late. Here the average spans a twentieth of the steps
  (:func:`beta_for`: ``b = 1 - 1 / max(2, steps / SPAN)``, :data:`SPAN` = 20; 0.8 for 100 steps, 0.93 for
  300), which lags about a quarter of a decade over six decades and still cuts the noise about threefold.
- **Explosion**: the test stops once the smoothed loss is more than :data:`EXPLODE` = 4 times its lowest
  value so far (fastai's factor), or a loss is not finite: beyond that the network is diverging and the
  remaining steps would only cost time.
- **Where the loss falls**: from the first rate after the highest smoothed loss before the minimum at
  which a tenth (:data:`FALL_START`) of the whole fall (from that peak to the minimum) has happened, to
  the rate of the minimum. A fall of less than :data:`MIN_FALL` (2%) of the peak is no fall: there is no
  suggestion then.
- **The suggestion**: a tenth of the rate at the smoothed loss's minimum (:data:`RULE_MIN_TENTH`; fastai's
  ``lr_min``, keras_lr_finder's advice). At the minimum the loss is about to blow up; one order of
  magnitude below keeps a margin, and it is read off the most reliable point of a noisy curve (the
  steepest slope, the other usual rule, is a derivative of that noise and moves from one test to the next
  with a hundred steps). Where a tenth of the minimum lies before the loss starts to fall (a curve flat
  until a cliff), the start of the fall is suggested instead (:data:`RULE_FALL_START`), and the rule says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

SPAN = 20  # the moving average spans a twentieth of the steps
EXPLODE = 4.0  # stop when the smoothed loss exceeds this many times its lowest value so far (fastai's)
FALL_START = 0.1  # the fall starts where a tenth of the whole fall has happened
MIN_FALL = 0.02  # a fall smaller than this fraction of the first smoothed loss is no fall
RULE_MIN_TENTH = "a tenth of the learning rate at the lowest smoothed loss"
RULE_FALL_START = (
    "where the smoothed loss starts to fall (a tenth of the learning rate at its lowest point comes before that)"
)


def rates(start: float, end: float, steps: int) -> np.ndarray:
    """The learning rate of each step: ``start`` to ``end`` in ``steps`` equal ratios (exponential)."""
    if steps < 2:
        return np.array([float(start)])
    return start * (end / start) ** (np.arange(steps) / (steps - 1))


def beta_for(steps: int) -> float:
    """The moving average's weight on the past for a test of ``steps`` steps (see the module docstring)."""
    return 1 - 1 / max(2.0, steps / SPAN)


def smooth(losses, beta: float) -> np.ndarray:
    """The exponential moving average of ``losses`` with bias correction (fastai's), one value per step."""
    out = np.empty(len(losses))
    avg = 0.0
    for i, loss in enumerate(losses):
        avg = beta * avg + (1 - beta) * float(loss)
        out[i] = avg / (1 - beta ** (i + 1))
    return out


def exploded(smoothed: np.ndarray, loss: float, factor: float = EXPLODE) -> bool:
    """Whether the test should stop after this step: a loss that is not finite, or the smoothed loss above
    ``factor`` times its lowest value so far."""
    return not math.isfinite(loss) or (len(smoothed) > 1 and smoothed[-1] > factor * float(np.min(smoothed)))


@dataclass(frozen=True)
class Suggestion:
    """The suggested learning rate (None when the loss never fell), its rule, and the falling range."""

    learning_rate: float | None
    rule: str | None
    falls_from: float | None  # the range where the smoothed loss falls: from this rate...
    falls_to: float | None  # ...to the rate of its minimum
    min_learning_rate: float | None  # the rate at the lowest smoothed loss

    def to_dict(self) -> dict:
        return {
            "learning_rate": self.learning_rate,
            "rule": self.rule,
            "falls_from": self.falls_from,
            "falls_to": self.falls_to,
            "min_learning_rate": self.min_learning_rate,
        }


def suggest(lrs, smoothed) -> Suggestion:
    """The suggestion and the falling range of a range test's smoothed losses (see the module docstring)."""
    lrs, smoothed = np.asarray(lrs, dtype=float), np.asarray(smoothed, dtype=float)
    finite = np.isfinite(smoothed)
    n = len(smoothed) if finite.all() else int(np.argmax(~finite))  # up to the first loss that is not finite
    if n < 3:
        return Suggestion(None, None, None, None, None)
    lrs, smoothed = lrs[:n], smoothed[:n]
    lowest = int(np.argmin(smoothed))
    peak = int(np.argmax(smoothed[: lowest + 1]))
    top = float(smoothed[peak])
    fall = top - float(smoothed[lowest])
    if lowest == 0 or fall < MIN_FALL * abs(top):
        return Suggestion(None, None, None, None, float(lrs[lowest]))
    begins = peak + int(np.argmax(smoothed[peak : lowest + 1] <= top - FALL_START * fall))
    falls_from, falls_to = float(lrs[begins]), float(lrs[lowest])
    tenth = falls_to / 10
    if tenth >= falls_from:
        return Suggestion(tenth, RULE_MIN_TENTH, falls_from, falls_to, falls_to)
    return Suggestion(falls_from, RULE_FALL_START, falls_from, falls_to, falls_to)


def nearest(value: float, choices) -> float:
    """The choice nearest ``value`` on a log scale (a learning rate onto a select's fixed values)."""
    choices = list(choices)
    return min(choices, key=lambda c: abs(math.log(c) - math.log(value)))
