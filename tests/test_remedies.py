"""Remedies: the course's fixes for each verdict, computed from the run's settings, applied with apply_changes."""

import json
import math

import pytest
from histories import (
    course_printout,
    early_stopped_history,
    hist,
    overfitting_history,
    still_improving_history,
    underfitting_history,
)

from core.base.config import RANGES, AugmentConfig, ConfigError, ModelConfig, TrainConfig, apply_changes
from core.models.layer_table import layer_table
from core.results.diagnosis import Diagnosis, diagnose
from core.results.remedies import Remedy


def keys(d: Diagnosis) -> list[str]:
    return [r.key for r in d.remedies]


def remedy(d: Diagnosis, key: str) -> Remedy:
    return next(r for r in d.remedies if r.key == key)


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
    assert "would have stopped at epoch 12 of 20 and kept epoch 7's weights." in by_key["early_stopping"].why
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


# --- early stopping: only what would change something ---------------------------------


def test_restore_best_off_offers_restoring_the_best_weights():
    train = TrainConfig(early_stopping=5, restore_best=False)
    d = diagnose(early_stopped_history(), stopped_epoch=14, num_classes=5, train_cfg=train)
    r = remedy(d, "early_stopping")
    assert r.label == "Restore the best weights when early stopping"
    assert r.changes == {"train.restore_best": True}
    assert r.why == (
        "Early stopping is on but restore_best is off, so the saved model holds the last epoch's weights "
        "(epoch 14, validation loss 0.600) rather than the best epoch's (epoch 9, validation loss 0.450). "
        "Restoring would have kept epoch 9's weights."
    )
    _, t = apply_changes(r, ModelConfig(), train)
    assert (t.early_stopping, t.restore_best) == (5, True)


def test_restore_best_on_offers_no_early_stopping_remedy():
    train = TrainConfig(early_stopping=5, restore_best=True)
    d = diagnose(early_stopped_history(), stopped_epoch=14, restored_epoch=9, num_classes=5, train_cfg=train)
    assert d.verdict == "overfitting" and "early_stopping" not in keys(d)


def test_restore_best_off_with_the_best_epoch_last_offers_no_restore():
    train = TrainConfig(early_stopping=5, restore_best=False)
    d = diagnose(course_printout(), num_classes=5, train_cfg=train)  # overfitting by the gap; loss lowest at 20
    assert d.verdict == "overfitting" and "early_stopping" not in keys(d)


def test_stopped_run_with_unknown_settings_offers_no_restore():
    # The run used early stopping without restoring, but its settings were not passed: a change to the
    # course's default settings (no early stopping) would not restore anything.
    d = diagnose(early_stopped_history(), stopped_epoch=14, num_classes=5)
    assert "early_stopping" not in keys(d)


def test_without_early_stopping_the_checkpoint_already_kept_the_best_epoch():
    d = diagnose(overfitting_history(), restored_epoch=7, num_classes=5, train_cfg=TrainConfig())
    r = remedy(d, "early_stopping")
    assert r.changes == {"train.early_stopping": 5, "train.monitor": "val_loss", "train.restore_best": True}
    assert r.why.endswith(
        "Here it would have stopped at epoch 12 of 20 and kept epoch 7's weights, the ones this run already kept: "
        "the test score stays the same, but the 8 epochs after epoch 12 are not run."
    )


def test_early_stopping_remedy_names_both_epochs_when_it_would_keep_another_one():
    h = overfitting_history()
    h["val_loss"][15] = 0.40  # a lone dip at epoch 16: the checkpoint keeps it, early stopping stops before it
    d = diagnose(h, restored_epoch=16, num_classes=5, train_cfg=TrainConfig())
    assert remedy(d, "early_stopping").why.endswith(
        "Here it would have stopped at epoch 12 of 20 and kept epoch 7's weights (this run kept epoch 16's)."
    )


def test_no_early_stopping_remedy_when_it_would_not_stop():
    # Overfitting by the gap, but validation loss falls to the last epoch: patience 5 never runs out.
    d = diagnose(course_printout(), restored_epoch=20, num_classes=5, train_cfg=TrainConfig())
    assert d.verdict == "overfitting" and "early_stopping" not in keys(d)


# --- the other verdicts ------------------------------------------------------------


def test_underfitting_remedies():
    d = diagnose(underfitting_history(), num_classes=5)
    assert keys(d) == ["bigger_model", "extra_block", "more_epochs", "learning_rate", "less_dropout"]
    m0, t0 = ModelConfig(), TrainConfig()
    changed = {r.key: apply_changes(r, m0, t0) for r in d.remedies}
    assert changed["bigger_model"][0].block_filters() == (64, 128, 256)
    assert changed["bigger_model"][0].dense_units == 256
    assert changed["extra_block"][0].blocks == 4
    assert changed["more_epochs"][1].epochs == 40
    assert changed["learning_rate"][1].learning_rate > t0.learning_rate
    assert changed["less_dropout"][0].dropout < m0.dropout


def test_no_extra_block_when_the_map_would_vanish():
    d = diagnose(underfitting_history(), model_cfg=ModelConfig(blocks=4))  # 64px, 'valid': block 5 does not fit
    assert "extra_block" not in keys(d) and "bigger_model" in keys(d)


def test_still_improving_trains_longer_with_a_safety_net():
    d = diagnose(still_improving_history(), num_classes=5)
    (r,) = d.remedies
    assert r.key == "more_epochs"
    _, t = apply_changes(r, ModelConfig(), TrainConfig())
    assert t.epochs == 40 and t.early_stopping == 5 and t.restore_best
    d = diagnose(still_improving_history(), train_cfg=TrainConfig(early_stopping=3))
    assert remedy(d, "more_epochs").changes == {"train.epochs": 40}  # early stopping is already on


def test_one_epoch_asks_for_more_epochs():
    assert keys(diagnose(hist([1.5], [0.3], [1.4], [0.35]))) == ["more_epochs"]


def test_diverged_training_blames_the_learning_rate():
    d = diagnose(
        hist([1.5, 9.0, float("nan")], [0.3, 0.2, 0.2], [1.4, 20.0, float("nan")], [0.3, 0.2, 0.2]),
        train_cfg=TrainConfig(learning_rate=0.5),
    )
    assert [r.changes for r in d.remedies] == [{"train.learning_rate": 0.05}]


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


def test_remedies_stay_inside_the_config_ranges():
    """A remedy never proposes a value its config would refuse (the bounds are core.base.config.RANGES)."""
    top = ModelConfig(filters=RANGES["filters"].hi // 2 + 1, dense_units=RANGES["dense_units"].hi // 2 + 1)
    long = TrainConfig(epochs=300)
    d = diagnose(underfitting_history(), model_cfg=top, train_cfg=long)
    assert "bigger_model" not in keys(d)  # doubling 513 filters or 4097 units is beyond the ranges
    _, t = apply_changes(remedy(d, "more_epochs"), top, long)
    assert t.epochs == RANGES["epochs"].hi == 500
    d = diagnose(underfitting_history(), model_cfg=ModelConfig(filters=512, dense_units=4096))
    assert apply_changes(remedy(d, "bigger_model"), ModelConfig(filters=512, dense_units=4096))[0].dense_units == 8192
