"""The forms' sliders and number inputs take their bounds from the config's table (core.base.config.RANGES):
the valid minimum, the usual maximum (raised to a stored value beyond it), and the whole valid range for seeds."""

import pytest
from apphelpers import TINY

from core.base.config import LEARNING_RATES, RANGES, AugmentConfig, TrainConfig
from ui.controls import DENSE_UNITS, FINE_TUNE_RATES

pytestmark = pytest.mark.usefixtures("private_worker")


def _bounds(widget) -> tuple:
    return widget.min, widget.max


def test_train_form_bounds_are_the_table(open_page, data_dir):
    at = open_page("pages/train.py", dataset=str(data_dir), model_cfg=TINY)
    assert not at.exception, [e.value for e in at.exception]
    for name in ("epochs", "val_split", "test_size", "train_fraction"):
        assert _bounds(at.slider(key="train." + name)) == (RANGES[name].lo, RANGES[name].top), name
    for name in ("rotation", "width_shift", "height_shift", "zoom"):
        assert _bounds(at.slider(key="train.aug." + name)) == (RANGES[name].lo, RANGES[name].top), name
    assert _bounds(at.slider(key="train.patience")) == (1, RANGES["early_stopping"].top)  # 0 is the toggle's off
    assert _bounds(at.number_input(key="train.seed")) == (0, 2**31 - 1)
    assert (RANGES["epochs"].top, RANGES["width_shift"].top) == (100, 0.5)


def test_train_form_shows_a_stored_config_beyond_the_usual_maximum(open_page, data_dir):
    odd = TrainConfig(epochs=300, early_stopping=40, augment=AugmentConfig(zoom=0.8))
    at = open_page("pages/train.py", dataset=str(data_dir), model_cfg=TINY, train_cfg=odd)
    assert not at.exception, [e.value for e in at.exception]
    assert at.slider(key="train.epochs").value == 300 and at.slider(key="train.epochs").max == 300
    assert at.slider(key="train.patience").max == 40 and at.slider(key="train.aug.zoom").max == 0.8


def test_lab_and_transfer_forms_bounds_are_the_table(open_page):
    at = open_page("pages/lab.py")
    assert not at.exception, [e.value for e in at.exception]
    assert at.slider(key="lab.epochs").max == RANGES["epochs"].top
    assert _bounds(at.number_input(key="lab.seed")) == (RANGES["seed"].lo, RANGES["seed"].hi)
    at.switch_page("pages/transfer.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert _bounds(at.slider(key="transfer.dropout")) == (0.0, RANGES["dropout"].top)
    assert _bounds(at.slider(key="transfer.ft_epochs")) == (0, RANGES["fine_tune_epochs"].top)
    assert _bounds(at.number_input(key="transfer.seed")) == (RANGES["seed"].lo, RANGES["seed"].hi)


def test_every_slider_step_is_a_valid_value():
    for name, values in (
        ("dense_units", DENSE_UNITS),
        ("fine_tune_lr", FINE_TUNE_RATES),
        ("learning_rate", LEARNING_RATES),
    ):
        assert all(RANGES[name].holds(v) for v in values), name
