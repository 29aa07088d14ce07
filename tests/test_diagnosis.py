"""diagnose(): checked inputs, the Diagnosis record, the CLI's summary, and no TensorFlow on import."""

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from histories import early_stopped_history, hist, overfitting_history

from core.base.config import TrainConfig
from core.results.diagnosis import CLASS_WEIGHT_NOTE, TITLES, VERDICTS, Diagnosis, diagnose, fit_summary_text
from core.results.remedies import Remedy


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
        (hist([1, 0.9], [0.5, 0.6], [1, 0.9], [0.5, 0.6]), {"stopped_epoch": True}, "stopped_epoch"),
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


def test_every_verdict_has_a_title():
    assert set(TITLES) == set(VERDICTS)


def test_diagnosis_round_trips_through_json():
    h = {k: np.asarray(v, dtype=np.float32) for k, v in overfitting_history().items()}
    d = diagnose(h, restored_epoch=np.int64(7), stopped_epoch=12, num_classes=np.int64(5))
    blob = json.dumps(d.to_dict(), allow_nan=False)
    back = Diagnosis.from_dict(json.loads(blob))
    assert back == Diagnosis.from_dict(d.to_dict())
    assert back.verdict == "overfitting" and isinstance(back.remedies[0], Remedy)
    assert type(back.numbers["best_val_loss"]) is float and back.numbers["restored_epoch"] == 7
    assert back.numbers["saved_epoch"] == 7


def test_fit_summary_text_is_one_paragraph_with_the_numbers():
    d = diagnose(overfitting_history(), num_classes=5)
    text = fit_summary_text(d)
    assert text.startswith("Overfitting. ") and "\n" not in text
    assert "0.412" in text and "turn on data augmentation" in text
    assert fit_summary_text(d.to_dict()) == text  # the stored form works too


def test_fit_summary_text_says_which_weights_were_saved():
    train = TrainConfig(early_stopping=5, restore_best=False)
    text = fit_summary_text(diagnose(early_stopped_history(), stopped_epoch=14, train_cfg=train))
    assert "the saved model holds the last epoch's weights (epoch 14)" in text
    assert "restore the best weights when early stopping" in text


def test_importing_the_diagnosis_does_not_import_tensorflow():
    code = (
        "import sys, core.results.diagnosis, core.results.evaluation; "
        "heavy = ('tensorflow', 'keras', 'streamlit', 'sklearn'); "
        "bad = [m for m in sys.modules if m.split('.')[0] in heavy]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1])


def test_the_verdict_says_when_class_weights_were_used():
    h = overfitting_history()
    plain = diagnose(h, train_cfg=TrainConfig())
    weighted = diagnose(h, train_cfg=TrainConfig(class_weight="balanced"))
    assert CLASS_WEIGHT_NOTE not in plain.evidence
    assert weighted.evidence == [*plain.evidence, CLASS_WEIGHT_NOTE] and weighted.verdict == plain.verdict
    assert "balanced class weights" in CLASS_WEIGHT_NOTE
