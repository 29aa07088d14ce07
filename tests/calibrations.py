"""A made-up calibration of this machine's speed, for tests that check what an estimate counts, not how fast
this machine is (tests/test_estimate.py measures a real one).

``fake_calibration(**prices)``: a :class:`core.jobs.estimate.Calibration` with round prices (20 G multiply-adds
per second, 1 ms per image, 2 s to build; every other part 0 unless given); ``store_calibration(home)`` writes one
where :func:`core.jobs.estimate.load_calibration` finds it, for each precision, so `estimate` and the Train page
do not spend seconds measuring. ``QUICK_RUNS``: the real measurement on tiny networks (and VGG16 at 32 px on
64 images), so that a test that calibrates takes seconds.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import core.jobs.estimate as E
from core.base.config import ModelConfig

QUICK_RUNS = E.CalibrationRuns(
    big=ModelConfig(input_size=16, blocks=2, filters=16),
    small=ModelConfig(input_size=16, blocks=1, filters=2, dense_units=4),
    images=60,
    epochs=2,
    rounds=1,
    vgg=ModelConfig(model="vgg16", weights="none", input_size=32),
    vgg_images=64,
)


def fake_calibration(precision: str = "float32", **prices) -> E.Calibration:
    values = dict(
        key=E.calibration_key(precision),
        precision=precision,
        macs_per_second=2e10,
        seconds_per_image=1e-3,
        seconds_per_bn_value=0.0,
        augment_seconds_per_pixel=1e-8,
        start_seconds=2.0,
        others_cores=0.0,
        baseline_bytes=600 * 2**20,
        machine={},
        measured=0.0,
        seconds=0.0,
    )
    values.update(prices)
    return E.Calibration(**values)


def store_calibration(home: Path, precisions: tuple[str, ...] = ("float32", "bfloat16"), **prices) -> None:
    """:func:`fake_calibration` stored under ``home`` for each of ``precisions``."""
    for precision in precisions:
        cal = fake_calibration(precision, **prices)
        path = Path(home) / "calibration" / f"{cal.key}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(dataclasses.asdict(cal)))
