"""The command line's flags: their defaults are the configs' own, and help texts that state a range or a
default read it from where it is defined (core.base.config, core.results, core.lab)."""

import pytest

from core.base.config import RANGES, AugmentConfig, ModelConfig, TrainConfig
from core.cli.parser import REPEAT_SEEDS, build_parser, model_config, train_config
from core.lab import DEFAULT_EPOCHS, DEFAULT_FRACTION, DEFAULT_SEED
from core.results import MAX_POINTS, MAX_SEEDS, MIN_SEEDS


@pytest.fixture
def helps(monkeypatch):
    """``helps("train")``: a command's --help text, one flag per line (no wrapping)."""
    monkeypatch.setenv("COLUMNS", "2000")
    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    return lambda name: commands[name].format_help()


def _line(text: str, flag: str) -> str:
    """The flag's entry: its line and the help below it when the flag's spellings fill the first."""
    lines = text.splitlines()
    i = next(i for i, line in enumerate(lines) if line.strip().startswith(flag + " ") or line.strip() == flag)
    rest = lines[i + 1 :]
    end = next((j for j, line in enumerate(rest) if line.lstrip().startswith("-") or not line.strip()), len(rest))
    return " ".join([lines[i], *rest[:end]])


def test_no_flags_build_the_configs_defaults():
    args = build_parser().parse_args(["train", "--data", "rocks"])
    assert train_config(args) == TrainConfig()
    assert model_config(args) == ModelConfig()  # a CNN keeps the default weights (the flag's are for VGG16)


def test_every_setting_flag_shows_the_configs_default(helps):
    text = helps("train")
    for cfg, fields in (
        (TrainConfig(), ("epochs", "batch_size", "val_split", "learning_rate", "seed", "fine_tune_lr")),
        (ModelConfig(), ("input_size", "blocks", "kernel_size", "dense_units", "dropout")),
        (AugmentConfig(), ("fill_mode",)),  # the zero defaults (off) are not shown
    ):
        for name in fields:
            assert f"(default: {getattr(cfg, name)})" in _line(text, "--" + name.replace("_", "-")), name


def test_ranges_and_limits_in_help_come_from_where_they_are_defined(helps):
    assert f"Conv->Pool blocks, {RANGES['blocks'].lo}-{RANGES['blocks'].hi} (default: 3)" in helps("train")
    repeat = _line(helps("repeat"), "--seeds")
    assert f"how many seeds, {MIN_SEEDS}-{MAX_SEEDS}:" in repeat and f"(default: {REPEAT_SEEDS})" in repeat
    assert (MIN_SEEDS, MAX_SEEDS) == (2, 10)
    assert f"at most {MAX_POINTS} points" in helps("sweep") and MAX_POINTS == 25
    c = AugmentConfig.course()
    augment = _line(helps("train"), "--augment")
    assert f"rotation {c.rotation:g}, shifts {c.width_shift:g}, flips, zoom {c.zoom:g}" in augment
    assert "rotation 20, shifts 0.1, flips, zoom 0.1" in augment


def test_compare_transfer_and_lab_defaults_are_the_engines(helps):
    args = build_parser().parse_args(["compare", "--transfer", "--data", "rocks"])
    assert (args.epochs, args.seed) == (TrainConfig().epochs, TrainConfig().seed) == (20, 42)
    assert f"(default: {TrainConfig().epochs})" in _line(helps("compare"), "--epochs")
    lab = build_parser().parse_args(["lab", "--data", "rocks"])
    assert (lab.train_fraction, lab.epochs, lab.seed) == (DEFAULT_FRACTION, DEFAULT_EPOCHS, DEFAULT_SEED)
    assert DEFAULT_SEED == TrainConfig().seed


def test_class_weight_flag(helps):
    args = build_parser().parse_args(["train", "--data", "rocks", "--class-weight", "balanced"])
    assert train_config(args) == TrainConfig(class_weight="balanced")
    assert "(default: none)" in _line(helps("train"), "--class-weight")
