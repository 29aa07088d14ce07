"""The curve reading: the verdicts, their evidence, and which weights the saved model holds (no TensorFlow).

The truth table itself, row by row, and the property tests are in tests/test_verdict_table.py.
"""

import math

import numpy as np
import pytest
from histories import (
    EPOCHS,
    course_printout,
    early_stopped_history,
    good_fit_history,
    hist,
    noisy,
    overfitting_history,
    still_improving_history,
    underfitting_history,
)

from core.base.config import TrainConfig
from core.results.diagnosis import diagnose


def text_of(d) -> str:
    return " ".join([d.headline, *d.evidence])


# --- the four verdicts ----------------------------------------------------------


def test_overfitting_curve_is_read_like_the_course():
    d = diagnose(overfitting_history(), num_classes=5)
    assert d.verdict == "overfitting" and d.title == "Overfitting"
    n = d.numbers
    assert n["best_epoch"] == 7 and n["overfit_start_epoch"] == 7
    assert n["best_val_loss"] == pytest.approx(0.412)
    assert n["best_val_accuracy"] == pytest.approx(0.81)
    assert n["val_loss_rise"] == pytest.approx(0.655 / 0.412 - 1)
    assert n["gap_accuracy"] == pytest.approx(0.98 - 0.79)
    assert n["gap_loss"] == pytest.approx(0.655 - 0.052)
    assert n["chance_loss"] == pytest.approx(math.log(5))
    assert n["epochs_run"] == 20
    text = " ".join(d.evidence)
    assert (
        "Validation loss was lowest at epoch 7 (0.412) and rose to 0.655 by epoch 20 (+59%) "
        "while training loss kept falling from 0.390 to 0.052." in text
    )
    assert "training accuracy is 0.98 and validation accuracy 0.79: a gap of 0.19" in text
    assert "epoch 7" in d.headline


def test_underfitting_flat_near_chance():
    d = diagnose(underfitting_history(), num_classes=5)
    assert d.verdict == "underfitting" and d.title == "Underfitting"
    assert d.numbers["overfit_start_epoch"] is None
    assert d.numbers["chance_loss"] == pytest.approx(1.6094, abs=1e-4)
    assert abs(d.numbers["last_third_loss_change"]) < 0.01
    text = " ".join(d.evidence)
    assert "ln 5 = 1.609" in text and "The curves are flat" in text


def test_underfitting_without_knowing_the_classes_uses_accuracy():
    # Accuracy stuck at ~0.45 (below 0.6) and flat, loss well below ln 5: still underfitting.
    # (Validation loss is lowest at epoch 15: lowest at the last epoch would be "still improving".)
    s = 1 - np.exp(-EPOCHS / 2)
    vloss = 1.32 - 0.08 * s + 0.002 * np.maximum(EPOCHS - 15, 0)
    d = diagnose(hist(1.3 - 0.1 * s, 0.40 + 0.05 * s, vloss, 0.42 + 0.03 * s))
    assert d.verdict == "underfitting"
    assert d.numbers["chance_loss"] is None


def test_still_improving():
    d = diagnose(still_improving_history(), num_classes=5)
    assert d.verdict == "still_improving" and d.title == "Still improving"
    assert d.numbers["best_epoch"] == 20
    assert d.numbers["val_loss_trend"] < -0.05
    assert "still falling at the last epoch" in d.headline and "slowly" not in d.headline
    assert d.evidence[0].startswith("Over epochs 14-20 validation loss fell from 0.621 (epoch 14) to 0.499 (epoch 20)")


def test_good_fit():
    d = diagnose(good_fit_history(), num_classes=5)
    assert d.verdict == "good_fit" and d.title == "Good fit"
    assert d.remedies == []
    assert d.numbers["overfit_start_epoch"] is None
    assert abs(d.numbers["last_third_val_loss_change"]) < 0.05
    assert d.headline.startswith("Validation loss levelled off near its lowest value (epoch 15 of 20)")
    assert "At the last epoch validation loss is +1% from its lowest." in d.evidence[1]


def test_the_course_printout_is_overfitting_by_the_gap():
    d = diagnose(course_printout(), num_classes=5)
    assert d.verdict == "overfitting"
    assert d.numbers["overfit_start_epoch"] is None  # validation loss never turned up
    assert d.numbers["gap_accuracy"] == pytest.approx(0.166)
    text = " ".join(d.evidence)
    assert "a gap of 0.17" in text and "3.8 times the training loss (0.152)" in text


# --- noise ------------------------------------------------------------------


@pytest.mark.parametrize(
    "make, verdict, at_least",
    [
        (overfitting_history, "overfitting", 50),
        (underfitting_history, "underfitting", 40),
        (still_improving_history, "still_improving", 49),
        (good_fit_history, "good_fit", 40),
    ],
)
def test_verdicts_survive_epoch_to_epoch_noise(make, verdict, at_least):
    # 3% noise on validation loss: a plateau sometimes looks like a slope, but rarely. On a flat end the noise
    # makes the last epoch the lowest in about 1 run in 10: then the table says "still improving" (the minimum
    # has not been seen yet). Nothing else is ever mistaken: a miss is "still improving" with its lowest
    # validation loss among the last epochs (14-20).
    got = [diagnose(noisy(make(), seed), num_classes=5) for seed in range(50)]
    assert [d.verdict for d in got].count(verdict) >= at_least, [d.verdict for d in got]
    others = [d for d in got if d.verdict != verdict]
    assert all(d.verdict == "still_improving" and d.numbers["best_epoch"] >= 14 for d in others)


def test_one_bad_last_epoch_is_not_overfitting():
    h = good_fit_history()
    h["val_loss"][-1] *= 1.4  # one unlucky epoch at the very end
    assert diagnose(h, num_classes=5).verdict == "good_fit"


def test_one_lucky_epoch_does_not_move_the_minimum():
    h = overfitting_history()
    h["val_loss"][15] = 0.40  # a single dip, lower than the real minimum at epoch 7
    d = diagnose(h, num_classes=5)
    assert d.verdict == "overfitting"
    assert d.numbers["best_epoch"] == 16  # the course's argmin reports the dip ...
    assert d.numbers["overfit_start_epoch"] == 7  # ... the turn of the curve stays at epoch 7
    assert "bottomed out at epoch 7 (0.412)" in d.evidence[0] and "One epoch, 16, dipped lower" in d.evidence[1]


# --- short and broken histories ---------------------------------------------------


def test_one_epoch_is_too_few_to_judge():
    d = diagnose(hist([1.5], [0.3], [1.4], [0.35]))
    assert d.verdict == "too_few_epochs" and d.title == "Too few epochs to judge"
    assert d.numbers["short"] and d.numbers["best_epoch"] == 1 and d.numbers["epochs_run"] == 1
    assert d.headline.startswith("Only 1 epoch ran, too few to judge the curves (at least 3 are needed)")
    assert [r.key for r in d.remedies] == ["more_epochs"]


def test_two_epochs_with_rising_validation_loss_is_not_called_overfitting():
    d = diagnose(hist([1.5, 1.0], [0.9, 0.95], [1.4, 1.6], [0.85, 0.8]))
    assert d.verdict == "too_few_epochs" and d.title == "Too few epochs to judge"  # one title, not "Good fit"
    assert d.headline.startswith("Only 2 epochs ran, too few to judge the curves: at least 3 are needed")
    assert d.evidence[0] == (
        "Over epochs 1-2 validation loss rose from 1.400 (epoch 1) to 1.600 (epoch 2) "
        "and training loss fell from 1.500 (epoch 1) to 1.000 (epoch 2)."
    )


def test_diverged_training_names_the_epoch_it_broke():
    d = diagnose(hist([1.5, 9.0, float("nan")], [0.3, 0.2, 0.2], [1.4, 20.0, float("nan")], [0.3, 0.2, 0.2]))
    assert d.verdict == "diverged" and d.title == "Diverged" and "Lower the learning rate" in d.headline
    assert [r.key for r in d.remedies] == ["learning_rate"]
    assert d.numbers["diverged_epoch"] == 3 and d.numbers["final_loss"] is None
    assert "At epoch 3 the training loss became NaN (not a number)" in " ".join(d.evidence)


# --- which weights the saved model holds -------------------------------------------


def test_early_stopping_with_restore_best_says_the_best_epoch_is_saved():
    train = TrainConfig(early_stopping=5, restore_best=True)
    d = diagnose(early_stopped_history(), stopped_epoch=14, restored_epoch=9, num_classes=5, train_cfg=train)
    assert d.verdict == "overfitting"  # 0.60 vs 0.45: +33% after epoch 9
    assert d.numbers["overfit_start_epoch"] == 9
    assert (d.numbers["stopped_epoch"], d.numbers["restored_epoch"], d.numbers["saved_epoch"]) == (14, 9, 9)
    assert d.evidence[-1] == (
        "Early stopping ended training at epoch 14 and restored the weights of epoch 9, the epoch with the "
        "lowest validation loss. The saved model is the epoch-9 one, so the test set scores that model, "
        "not the last epoch's."
    )
    assert d.headline.endswith("Early stopping kept the weights of epoch 9, from before it got worse.")


def test_early_stopping_that_ran_to_the_end_still_restores():
    train = TrainConfig(early_stopping=30, restore_best=True)
    d = diagnose(overfitting_history(), restored_epoch=7, train_cfg=train)
    assert d.evidence[-1].startswith(
        "Early stopping was on but did not end training; after the last epoch it restored the weights of epoch 7, "
        "the epoch with the lowest validation loss. The saved model is the epoch-7 one"
    )
    assert d.numbers["saved_epoch"] == 7


def test_early_stopping_without_restore_best_says_the_last_epoch_is_saved_and_worse():
    train = TrainConfig(early_stopping=5, restore_best=False)
    d = diagnose(early_stopped_history(), stopped_epoch=14, restored_epoch=None, num_classes=5, train_cfg=train)
    assert d.verdict == "overfitting"
    assert d.numbers["saved_epoch"] == 14 and d.numbers["restored_epoch"] is None
    assert d.evidence[-2:] == [
        "Early stopping ended training at epoch 14 without restoring the best weights (restore_best is off): "
        "the saved model holds the last epoch's weights (epoch 14).",
        "The last epoch is worse than the best one, epoch 9: validation loss 0.600 against 0.450 "
        "(validation accuracy 0.82 against 0.84). The test set scores the last epoch's model.",
    ]
    assert d.headline.endswith("The saved model holds the last epoch's weights, from after it got worse.")
    assert "restored the weights" not in text_of(d) and "epoch-9 one" not in text_of(d)


def test_restore_best_off_when_the_last_epoch_is_the_best_says_nothing_is_lost():
    train = TrainConfig(early_stopping=5, restore_best=False)
    d = diagnose(still_improving_history(), train_cfg=train)  # lowest validation loss at epoch 20
    assert d.evidence[-2:] == [
        "Early stopping did not end training and does not restore the best weights (restore_best is off): "
        "the saved model holds the last epoch's weights (epoch 20).",
        "The last epoch was also the best one (lowest validation loss), so nothing is lost.",
    ]


def test_without_early_stopping_the_checkpoint_keeps_the_best_epoch():
    d = diagnose(overfitting_history(), restored_epoch=7, num_classes=5, train_cfg=TrainConfig())
    assert d.evidence[-1] == (
        "There was no early stopping; the checkpoint kept the weights of epoch 7, the epoch with the lowest "
        "validation loss. The saved model is the epoch-7 one, so the test set scores that model, not the last epoch's."
    )
    assert d.headline.endswith("The checkpoint kept the weights of epoch 7, from before it got worse.")
    assert "Early stopping" not in text_of(d) and d.numbers["saved_epoch"] == 7


def test_checkpoint_on_validation_accuracy_names_what_it_kept():
    h = overfitting_history()
    h["val_accuracy"][9] = 0.83  # accuracy peaks at epoch 10, loss is lowest at epoch 7
    d = diagnose(h, restored_epoch=10, train_cfg=TrainConfig(monitor="val_accuracy"))
    assert d.evidence[-1].startswith(
        "There was no early stopping; the checkpoint kept the weights of epoch 10, the epoch with the highest "
        "validation accuracy (validation loss was lowest at epoch 7). The saved model is the epoch-10 one"
    )
    assert "kept the weights" not in d.headline  # epoch 10 is after the turn: no "before it got worse"


def test_checkpoint_at_the_last_epoch_says_so():
    d = diagnose(still_improving_history(), restored_epoch=20, train_cfg=TrainConfig())
    assert d.evidence[-1].endswith(
        "The saved model is the epoch-20 one, so the test set scores that model, which is also the last epoch's."
    )


def test_restored_epoch_without_settings_does_not_name_the_mechanism():
    d = diagnose(overfitting_history(), restored_epoch=7)
    assert d.evidence[-1].startswith("At the end of training the weights of epoch 7 were put back")
    assert d.headline.endswith("The saved model holds the weights of epoch 7, from before it got worse.")
    assert "Early stopping" not in text_of(d) and "checkpoint" not in text_of(d)


def test_nothing_is_said_about_weights_when_nothing_is_known():
    d = diagnose(overfitting_history())
    assert "saved model" not in text_of(d) and d.numbers["saved_epoch"] is None
