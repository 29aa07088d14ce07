"""Reading training curves and scoring test predictions, on hand-made numbers (no TensorFlow)."""

import json
import math
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from core.config import AugmentConfig, ConfigError, ModelConfig, TrainConfig
from core.diagnostics import (
    Diagnosis,
    Remedy,
    TestReport,
    apply_changes,
    best_epoch,
    cell_indices,
    diagnose,
    evaluate,
    fit_summary_text,
)
from core.architecture import layer_table

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


def underfitting_history():
    """Both losses hover just under ln 5 = 1.609 and accuracies near 1/5."""
    s = 1 - np.exp(-EPOCHS / 3)
    return hist(1.609 - 0.02 * s, 0.20 + 0.02 * s, 1.609 - 0.015 * s, np.full(20, 0.21))


def still_improving_history():
    """Slow exponential decay: at epoch 20 validation loss is still dropping ~2.5% an epoch."""
    e = np.exp(-EPOCHS / 10)
    return hist(0.30 + 1.2 * e, 0.95 - 0.7 * e, 0.35 + 1.1 * e, 0.90 - 0.6 * e)


def good_fit_history():
    """Fast decay that has levelled off by epoch ~12, small train/val gap."""
    e = np.exp(-EPOCHS / 2.5)
    return hist(0.25 + 1.3 * e, 0.93 - 0.7 * e, 0.32 + 1.1 * e, 0.90 - 0.6 * e)


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


def keys(d: Diagnosis) -> list[str]:
    return [r.key for r in d.remedies]


# --- best_epoch ---------------------------------------------------------------


def test_best_epoch_is_one_based_like_the_course():
    h = {"val_loss": [0.9, 0.5, 0.4, 0.45], "val_accuracy": [0.5, 0.8, 0.7, 0.7]}
    assert best_epoch(h) == int(np.argmin(h["val_loss"])) + 1 == 3
    assert best_epoch(h, monitor="val_accuracy") == 2  # highest, not lowest
    assert best_epoch({"val_loss": [0.5, 0.4, 0.4]}) == 2  # ties: the first, as EarlyStopping keeps it
    assert best_epoch({"val_loss": [0.5, float("nan"), 0.45]}) == 3  # NaN is never best
    assert best_epoch(SimpleNamespace(history=h)) == 3  # Keras' History object works too


@pytest.mark.parametrize(
    "history, match",
    [
        ({}, "empty"),
        (None, "empty"),
        ({"loss": [1.0]}, "no 'val_loss' key"),
        ({"val_loss": []}, "empty"),
        ({"val_loss": [float("nan")]}, "only NaN"),
    ],
)
def test_best_epoch_rejects_empty_or_missing_history(history, match):
    with pytest.raises(ValueError, match=match):
        best_epoch(history)


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


def test_overfitting_remedies_are_the_courses_and_can_be_applied():
    d = diagnose(overfitting_history(), num_classes=5)
    assert keys(d) == ["augment", "dropout", "early_stopping", "more_data", "smaller_model", "transfer"]
    by_key = {r.key: r for r in d.remedies}
    m0, t0 = ModelConfig(), TrainConfig()

    _, t = apply_changes(by_key["augment"], m0, t0)
    assert t.augment == AugmentConfig.course() and by_key["augment"].changes == {"train.augment": "course"}
    m, _ = apply_changes(by_key["dropout"], m0, t0)
    assert m.dropout == pytest.approx(0.6)
    _, t = apply_changes(by_key["early_stopping"], m0, t0)
    assert (t.early_stopping, t.monitor, t.restore_best) == (5, "val_loss", True)
    assert "stopped at epoch 12 and kept epoch 7's weights" in by_key["early_stopping"].why
    assert by_key["more_data"].changes == {}  # all the training images were used: advice only
    m, _ = apply_changes(by_key["smaller_model"], m0, t0)
    assert layer_table(m).trainable_params < layer_table(m0).trainable_params
    m, _ = apply_changes(by_key["transfer"], m0, t0)
    assert m.model == "vgg16"
    for r in d.remedies:  # every key names a real field, and JSON can carry it
        apply_changes(r.changes, m0, t0)
        json.dumps(r.to_dict())


def test_remedies_already_in_place_are_not_suggested_again():
    model = ModelConfig(dropout=0.7, channels=1)  # grayscale: VGG16 needs RGB
    train = TrainConfig(augment=AugmentConfig.course(), early_stopping=5, train_fraction=0.3)
    d = diagnose(overfitting_history(), model_cfg=model, train_cfg=train)
    assert keys(d) == ["more_data", "smaller_model"]
    assert d.remedies[0].changes == {"train.train_fraction": 1.0}
    assert d.numbers["chance_loss"] == pytest.approx(math.log(5))  # num_classes from the model config


def test_underfitting_flat_near_chance():
    d = diagnose(underfitting_history(), num_classes=5)
    assert d.verdict == "underfitting" and d.title == "Underfitting"
    assert d.numbers["overfit_start_epoch"] is None
    assert d.numbers["chance_loss"] == pytest.approx(1.6094, abs=1e-4)
    assert abs(d.numbers["last_third_loss_change"]) < 0.01
    text = " ".join(d.evidence)
    assert "ln 5 = 1.609" in text and "The curves are flat" in text
    assert keys(d) == ["bigger_model", "extra_block", "more_epochs", "learning_rate", "less_dropout"]
    m0, t0 = ModelConfig(), TrainConfig()
    changed = {r.key: apply_changes(r, m0, t0) for r in d.remedies}
    assert changed["bigger_model"][0].block_filters() == (64, 128, 256)
    assert changed["bigger_model"][0].dense_units == 256
    assert changed["extra_block"][0].blocks == 4
    assert changed["more_epochs"][1].epochs == 40
    assert changed["learning_rate"][1].learning_rate > t0.learning_rate
    assert changed["less_dropout"][0].dropout < m0.dropout


def test_underfitting_without_knowing_the_classes_uses_accuracy():
    # Accuracy stuck at ~0.45 (below 0.6) and flat, loss well below ln 5: still underfitting.
    s = 1 - np.exp(-EPOCHS / 2)
    d = diagnose(hist(1.3 - 0.1 * s, 0.40 + 0.05 * s, 1.32 - 0.08 * s, 0.42 + 0.03 * s))
    assert d.verdict == "underfitting"
    assert d.numbers["chance_loss"] is None


def test_no_extra_block_when_the_map_would_vanish():
    d = diagnose(underfitting_history(), model_cfg=ModelConfig(blocks=4))  # 64px, 'valid': block 5 does not fit
    assert "extra_block" not in keys(d) and "bigger_model" in keys(d)


def test_still_improving():
    d = diagnose(still_improving_history(), num_classes=5)
    assert d.verdict == "still_improving" and d.title == "Still improving"
    assert d.numbers["best_epoch"] == 20
    assert d.numbers["val_loss_trend"] < -0.05
    assert "still falling" in d.evidence[0]
    (r,) = d.remedies
    assert r.key == "more_epochs"
    _, t = apply_changes(r, ModelConfig(), TrainConfig())
    assert t.epochs == 40 and t.early_stopping == 5 and t.restore_best


def test_good_fit():
    d = diagnose(good_fit_history(), num_classes=5)
    assert d.verdict == "good_fit" and d.title == "Good fit"
    assert d.remedies == []
    assert d.numbers["overfit_start_epoch"] is None
    assert abs(d.numbers["last_third_val_loss_change"]) < 0.05
    assert "levelled off" in " ".join(d.evidence)


def test_the_course_printout_is_overfitting_by_the_gap():
    # The chapter's example output: epoch 20 at 0.9480 vs 0.7820 accuracy, loss 0.1523 vs 0.5834.
    e = [1, 5, 10, 20]
    h = hist(
        np.interp(EPOCHS, e, [1.5423, 0.8124, 0.4215, 0.1523]),
        np.interp(EPOCHS, e, [0.3210, 0.6540, 0.8320, 0.9480]),
        np.interp(EPOCHS, e, [1.4012, 0.9235, 0.6128, 0.5834]),
        np.interp(EPOCHS, e, [0.3850, 0.5920, 0.7450, 0.7820]),
    )
    d = diagnose(h, num_classes=5)
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
        (underfitting_history, "underfitting", 47),
        (still_improving_history, "still_improving", 49),
        (good_fit_history, "good_fit", 45),
    ],
)
def test_verdicts_survive_epoch_to_epoch_noise(make, verdict, at_least):
    # 3% noise on validation loss: a plateau sometimes looks like a slope, but rarely.
    got = [diagnose(noisy(make(), seed), num_classes=5).verdict for seed in range(50)]
    assert got.count(verdict) >= at_least, got


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


# --- early stopping, short and broken histories ----------------------------------


def test_early_stopped_history_reports_the_restored_epoch():
    t = np.arange(1, 15)  # patience 5: best at 9, stopped at 14
    val_loss = np.where(t <= 9, 1.3 - (1.3 - 0.45) * (t - 1) / 8, 0.45 + 0.03 * (t - 9))
    h = hist(
        np.interp(t, [1, 14], [1.4, 0.2]),
        np.interp(t, [1, 14], [0.4, 0.95]),
        val_loss,
        np.interp(t, [1, 9, 14], [0.4, 0.84, 0.82]),
    )
    d = diagnose(h, stopped_epoch=14, restored_epoch=9, num_classes=5)
    assert d.verdict == "overfitting"  # 0.60 vs 0.45: +33% after epoch 9
    assert d.numbers["overfit_start_epoch"] == 9
    assert (d.numbers["stopped_epoch"], d.numbers["restored_epoch"]) == (14, 9)
    assert any(
        "Early stopping ended training at epoch 14 and restored the weights of epoch 9, "
        "the epoch with the lowest validation loss" in e
        for e in d.evidence
    )
    assert "kept the weights of epoch 9" in d.headline
    assert "early_stopping" not in keys(d)  # it is already on


def test_early_stopping_without_restore_suggests_restoring():
    h = overfitting_history()
    d = diagnose(h, stopped_epoch=20, train_cfg=TrainConfig(early_stopping=13, restore_best=False))
    r = next(r for r in d.remedies if r.key == "early_stopping")
    assert r.changes == {"train.restore_best": True}
    assert any("without restoring the best weights" in e for e in d.evidence)


def test_one_epoch_is_too_few_to_judge():
    d = diagnose(hist([1.5], [0.3], [1.4], [0.35]))
    assert d.verdict == "still_improving"
    assert d.numbers["short"] and d.numbers["best_epoch"] == 1 and d.numbers["epochs_run"] == 1
    assert "too few epochs to judge" in d.evidence[0]
    assert keys(d) == ["more_epochs"]


def test_two_epochs_with_rising_validation_loss_is_not_called_overfitting():
    d = diagnose(hist([1.5, 1.0], [0.3, 0.5], [1.4, 1.6], [0.35, 0.3]))
    assert d.verdict == "good_fit"
    assert "too few epochs to judge" in d.evidence[0]


def test_diverged_training_blames_the_learning_rate():
    d = diagnose(
        hist([1.5, 9.0, float("nan")], [0.3, 0.2, 0.2], [1.4, 20.0, float("nan")], [0.3, 0.2, 0.2]),
        train_cfg=TrainConfig(learning_rate=0.5),
    )
    assert d.verdict == "underfitting" and "diverged" in d.title
    assert d.numbers["diverged_epoch"] == 3 and d.numbers["final_loss"] is None
    assert [r.changes for r in d.remedies] == [{"train.learning_rate": 0.05}]
    json.dumps(d.to_dict(), allow_nan=False)


@pytest.mark.parametrize(
    "history, kwargs, match",
    [
        ({"loss": [1.0], "accuracy": [0.5]}, {}, r"missing \['val_loss', 'val_accuracy'\].*validation_split"),
        ({"loss": [1.0], "val_loss": [1.0]}, {}, 'metrics=\\["accuracy"\\]'),
        ({"loss": [], "accuracy": [], "val_loss": [], "val_accuracy": []}, {}, "empty"),
        ({}, {}, "missing"),
        (hist([1, 0.9], [0.5, 0.6], [1.0], [0.5]), {}, "same length"),
        (
            hist([1, 0.9], [0.5, 0.6], [1, 0.9], [0.5, 0.6]),
            {"restored_epoch": 0},
            r"1-based epoch in \[1, 2\]",
        ),
        (hist([1, 0.9], [0.5, 0.6], [1, 0.9], [0.5, 0.6]), {"stopped_epoch": 3}, "stopped_epoch"),
        (hist([1, 0.9], [0.5, 0.6], [1, 0.9], [0.5, 0.6]), {"num_classes": 1}, "num_classes"),
        ([1.0, 0.9], {}, "dict of per-epoch lists"),
    ],
)
def test_bad_histories_get_clear_errors(history, kwargs, match):
    with pytest.raises(ValueError, match=match):
        diagnose(history, **kwargs)


def test_keras_acc_alias_and_history_object():
    h = overfitting_history()
    h["acc"], h["val_acc"] = h.pop("accuracy"), h.pop("val_accuracy")
    assert diagnose(SimpleNamespace(history=h)).verdict == "overfitting"


def test_diagnosis_round_trips_through_json():
    h = {k: np.asarray(v, dtype=np.float32) for k, v in overfitting_history().items()}
    d = diagnose(h, restored_epoch=np.int64(7), stopped_epoch=12, num_classes=np.int64(5))
    blob = json.dumps(d.to_dict(), allow_nan=False)
    back = Diagnosis.from_dict(json.loads(blob))
    assert back == Diagnosis.from_dict(d.to_dict())
    assert back.verdict == "overfitting" and isinstance(back.remedies[0], Remedy)
    assert type(back.numbers["best_val_loss"]) is float and back.numbers["restored_epoch"] == 7


def test_fit_summary_text_is_one_paragraph_with_the_numbers():
    d = diagnose(overfitting_history(), num_classes=5)
    text = fit_summary_text(d)
    assert text.startswith("Overfitting. ") and "\n" not in text
    assert "0.412" in text and "turn on data augmentation" in text
    assert fit_summary_text(d.to_dict()) == text  # the stored form works too


def test_apply_changes_rejects_unknown_keys_and_bad_values():
    with pytest.raises(ConfigError, match="Unknown setting 'model.colour'"):
        apply_changes({"model.colour": "red"})
    with pytest.raises(ConfigError, match="dropout"):
        apply_changes({"model.dropout": 1.5})
    m, t = apply_changes(
        {"train.augment": "none", "model.filter_list": [8, 16, 32]},
        ModelConfig(),
        TrainConfig(augment=AugmentConfig.course()),
    )
    assert not t.augment.enabled and m.block_filters() == (8, 16, 32)


def test_importing_diagnostics_does_not_import_tensorflow():
    code = (
        "import sys, core.diagnostics; "
        "heavy = ('tensorflow', 'keras', 'streamlit', 'sklearn'); "
        "bad = [m for m in sys.modules if m.split('.')[0] in heavy]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1])


# --- evaluate ---------------------------------------------------------------------

# Nine test items, three classes. Rows are the softmax outputs; the argmax is the prediction.
Y3 = [0, 0, 0, 0, 1, 2, 2, 2, 2]
P3 = [
    [0.80, 0.10, 0.10],  # 0: true 0, pred 0
    [0.60, 0.30, 0.10],  # 1: true 0, pred 0
    [0.50, 0.25, 0.25],  # 2: true 0, pred 0
    [0.30, 0.60, 0.10],  # 3: true 0, pred 1  (wrong, 0.60 sure)
    [0.20, 0.70, 0.10],  # 4: true 1, pred 1
    [0.90, 0.05, 0.05],  # 5: true 2, pred 0  (wrong, 0.90 sure)
    [0.55, 0.15, 0.30],  # 6: true 2, pred 0  (wrong, 0.55 sure)
    [0.10, 0.50, 0.40],  # 7: true 2, pred 1  (wrong, 0.50 sure)
    [0.20, 0.10, 0.70],  # 8: true 2, pred 2
]
NAMES3 = ["sandstone", "shale", "granite"]


def test_evaluate_matches_hand_computed_numbers():
    r = evaluate(np.array(Y3), np.array(P3), NAMES3)
    assert r.accuracy == pytest.approx(5 / 9)
    # Cross-entropy: mean of -ln(probability given to the true class).
    true_p = [0.80, 0.60, 0.50, 0.30, 0.70, 0.05, 0.30, 0.40, 0.70]
    assert r.loss == pytest.approx(-sum(math.log(p) for p in true_p) / 9)
    assert r.loss == pytest.approx(0.94005, abs=1e-5)
    # Rows are the true class, columns the predicted one.
    assert r.confusion_matrix == [[3, 1, 0], [0, 1, 0], [2, 1, 1]]
    # precision = diagonal / column sum (5, 3, 1); recall = diagonal / row sum (4, 1, 4).
    expected = {
        "sandstone": (3 / 5, 3 / 4, 2 / 3, 4),  # f1 = 2*0.6*0.75/1.35
        "shale": (1 / 3, 1 / 1, 1 / 2, 1),  # f1 = 2*(1/3)*1/(4/3)
        "granite": (1 / 1, 1 / 4, 2 / 5, 4),  # f1 = 2*1*0.25/1.25
    }
    for row in r.per_class:
        p, rec, f1, sup = expected[row["class"]]
        assert (row["precision"], row["recall"], row["f1"]) == pytest.approx((p, rec, f1))
        assert row["support"] == sup
    assert r.macro["precision"] == pytest.approx((0.6 + 1 / 3 + 1) / 3)
    assert r.macro["recall"] == pytest.approx((0.75 + 1 + 0.25) / 3)
    assert r.macro["f1"] == pytest.approx((2 / 3 + 0.5 + 0.4) / 3)
    assert r.weighted["precision"] == pytest.approx((4 * 0.6 + 1 / 3 + 4 * 1) / 9)
    assert r.weighted["recall"] == pytest.approx(5 / 9)
    assert r.weighted["f1"] == pytest.approx((4 * 2 / 3 + 0.5 + 4 * 0.4) / 9)
    assert r.predicted == [0, 0, 0, 1, 1, 0, 0, 1, 2]
    assert r.confidence == pytest.approx([0.8, 0.6, 0.5, 0.6, 0.7, 0.9, 0.55, 0.5, 0.7])
    assert r.most_confident_wrong == [5, 3, 6, 7]
    assert r.loss_name == "categorical" and r.notes == []


def test_most_confident_wrong_is_capped_and_stable_on_ties():
    assert evaluate(Y3, P3, NAMES3, top_wrong=2).most_confident_wrong == [5, 3]
    assert evaluate(Y3, P3, NAMES3, top_wrong=0).most_confident_wrong == []
    y = [0, 0, 1, 1]
    p = [[0.3, 0.7], [0.3, 0.7], [0.7, 0.3], [0.4, 0.6]]  # items 0-2 wrong, 0.7 sure each
    assert evaluate(y, p, ["a", "b"]).most_confident_wrong == [0, 1, 2]


def test_cell_indices():
    r = evaluate(Y3, P3, NAMES3)
    assert cell_indices(r, 2, 0) == [5, 6]
    assert cell_indices(r, "sandstone", "shale") == [3]
    assert cell_indices(r, 1, 2) == []
    for i in range(3):
        for j in range(3):
            assert len(cell_indices(r, i, j)) == r.confusion_matrix[i][j]
    assert cell_indices((Y3, P3), 2, 0) == [5, 6]  # probabilities ...
    assert cell_indices((Y3, r.predicted), 2, 1) == [7]  # ... or predicted classes
    with pytest.raises(ValueError, match="not a class"):
        cell_indices(r, "basalt", 0)
    with pytest.raises(ValueError, match=r"class index in \[0, 2\]"):
        cell_indices(r, 3, 0)
    with pytest.raises(ValueError, match="names can only be used with a TestReport"):
        cell_indices((Y3, P3), "shale", 0)
    with pytest.raises(ValueError, match="same length"):
        cell_indices((Y3, r.predicted[:4]), 0, 0)


def test_absent_class_still_gets_a_row_and_a_note():
    y = [0, 0, 1, 1]
    p = [[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.1, 0.8, 0.1], [0.1, 0.2, 0.7]]
    r = evaluate(y, p, ["a", "b", "c"])
    assert [row["class"] for row in r.per_class] == ["a", "b", "c"]
    c = r.per_class[2]
    assert (c["precision"], c["recall"], c["f1"], c["support"]) == (0.0, 0.0, 0.0, 0)
    assert r.confusion_matrix == [[1, 1, 0], [0, 1, 1], [0, 0, 0]]
    assert r.macro["recall"] == pytest.approx((0.5 + 0.5 + 0) / 3)  # sklearn counts the absent class as 0
    assert r.weighted["recall"] == pytest.approx(0.5)  # support 0 weighs nothing
    assert any("No test images of 'c'" in n for n in r.notes)


def test_never_predicted_class_is_noted():
    r = evaluate([0, 1, 1], [[0.9, 0.1], [0.8, 0.2], [0.6, 0.4]], ["a", "b"])
    assert r.per_class[1]["precision"] == 0.0 and r.per_class[1]["recall"] == 0.0
    assert any("never predicted 'b'" in n for n in r.notes)


def test_loss_is_clipped_like_keras():
    r = evaluate([0, 1], [[1.0, 0.0], [1.0, 0.0]], ["a", "b"])
    # -ln(1 - 1e-7) ~ 1e-7 for the sure right answer, -ln(1e-7) = 16.118 for the sure wrong one.
    assert r.loss == pytest.approx((16.11809565 + 1e-7) / 2)
    assert math.isfinite(r.loss)


def test_test_report_round_trips_through_json():
    r = evaluate(np.array(Y3, dtype=np.int32), np.array(P3, dtype=np.float32), NAMES3, loss="sparse")
    back = TestReport.from_dict(json.loads(json.dumps(r.to_dict(), allow_nan=False)))
    assert back.confusion_matrix == r.confusion_matrix and back.loss_name == "sparse"
    assert back.num_classes == 3 and cell_indices(back, 2, 0) == [5, 6]


@pytest.mark.parametrize(
    "y, p, names, kwargs, match",
    [
        (Y3, [row[:2] for row in P3], NAMES3, {}, "3 names but probs has 2 columns"),
        (Y3[:5], P3, NAMES3, {}, "5 labels but probs has 9 rows"),
        ([0, 3], [[0.5, 0.5, 0], [0.5, 0.5, 0]], NAMES3, {}, r"class 3, outside \[0, 2\]"),
        ([0, 1], [[2.0, 1.0, 0.5], [0.1, 3.0, 0.2]], NAMES3, {}, "softmax first"),
        ([0, 1], [[0.5, 0.4, 0.0], [0.3, 0.3, 0.4]], NAMES3, {}, "Row 0 sums to 0.9000"),
        (np.eye(3)[[0, 1]], [[0.5, 0.5, 0], [0.5, 0.5, 0]], NAMES3, {}, r"argmax\(axis=1\)"),
        ([0, 1], [0.5, 0.5], NAMES3, {}, r"shape \(N, C\)"),
        ([0.5, 1], [[0.5, 0.5, 0], [0.5, 0.5, 0]], NAMES3, {}, "integer class labels"),
        ([0, 1], [[np.nan, 0.5, 0.5], [0.5, 0.5, 0]], NAMES3, {}, "NaN"),
        ([], np.zeros((0, 3)), NAMES3, {}, "empty"),
        (Y3, P3, NAMES3, {"top_wrong": -1}, "top_wrong"),
        (Y3, P3, NAMES3, {"loss": "mse"}, "loss must be one of"),
    ],
)
def test_evaluate_rejects_bad_inputs_with_clear_messages(y, p, names, kwargs, match):
    with pytest.raises(ValueError, match=match):
        evaluate(y, p, names, **kwargs)
