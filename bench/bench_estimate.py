"""The time estimate against real trainings: calibrate, then estimate and train several configurations.

Usage:
    python bench/bench_estimate.py [--repeat 1]

Calibrates this machine for float32 and, where the CPU has native bfloat16, for
bfloat16 (in a temporary CNNLAB_HOME, so the measurement is fresh), then for
each configuration (small to large, with and without augmentation, both
precisions) prints the estimate (:func:`core.jobs.estimate.estimate`) and the wall
time of ``core.training.train.train_model`` on the thin sections (loaded at the
configuration's input size; repeated k times for the larger sets), and the
error. The estimate scales by what other processes keep busy just before each
run, against what they kept busy while it calibrated (a shared machine).
Target (issue 14): every configuration within +-35%.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from machine import cpu_flags  # noqa: E402

from core.base.config import AugmentConfig, ModelConfig, TrainConfig  # noqa: E402
from core.base.precision import resolve_precision  # noqa: E402
from core.data import Dataset, load_dataset, prepare_data  # noqa: E402
from core.jobs.estimate import calibrate, estimate, others_busy  # noqa: E402
from core.training.train import train_model  # noqa: E402

AUG = AugmentConfig.course()
# (name, model, train, copies of the thin sections)
CONFIGS = [
    (
        "tiny: 32 px, 1 block of 8",
        ModelConfig(input_size=32, blocks=1, filters=8, dense_units=32),
        TrainConfig(epochs=8),
        1,
    ),
    ("course network", ModelConfig(), TrainConfig(epochs=5), 1),
    ("course network + augmentation", ModelConfig(), TrainConfig(epochs=4, augment=AUG), 1),
    ("course network, 4x data, batch 64", ModelConfig(), TrainConfig(epochs=2, batch_size=64), 4),
    ("wide: 64 filters, 2x data", ModelConfig(filters=64), TrainConfig(epochs=2), 2),
    (
        "128 px, 4 blocks of 16, batchnorm + augmentation",
        ModelConfig(input_size=128, blocks=4, filters=16, batchnorm=True),
        TrainConfig(epochs=2, augment=AUG),
        1,
    ),
]


def copies(ds: Dataset, k: int) -> Dataset:
    if k == 1:
        return ds
    images = np.concatenate([ds.images] * k)
    labels = np.concatenate([ds.labels] * k)
    return Dataset(images, labels, ds.class_names, [], ds.source, f"{ds.fingerprint}x{k}", ds.files * k)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="thin_sections")
    args = ap.parse_args()
    print(f"machine: {cpu_flags()}; load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    precisions = ["float32"] + (["bfloat16"] if resolve_precision("auto") == "bfloat16" else [])
    rows = []
    with tempfile.TemporaryDirectory(prefix="cnnlab-bench-estimate-") as home:
        cals = {}
        for p in precisions:
            cals[p] = calibrate(home, p)
            c = cals[p]
            print(
                f"calibration {p}: {c.seconds:.1f} s; {c.macs_per_second / 1e9:.1f} G multiply-adds/s, "
                f"{1000 * c.seconds_per_image:.3f} ms per image, "
                f"augmentation {1e9 * c.augment_seconds_per_pixel:.2f} ns per pixel, "
                f"start {c.start_seconds:.2f} s; other processes kept {c.others_cores:.2f} cores busy; "
                f"load {os.getloadavg()[0]:.2f}",
                flush=True,
            )
        for p in precisions:
            for name, m, t, k in CONFIGS:
                t = t.replace(precision=p)
                ds = copies(load_dataset(args.data, image_size=m.input_size, channels=m.channels), k)
                m = m.replace(num_classes=len(ds.class_names))
                others = others_busy()
                est = estimate(m, t, len(ds), calibration=cals[p], others=others)
                data = prepare_data(ds, seed=t.seed)
                load = os.getloadavg()[0]
                t0 = time.perf_counter()
                train_model(m, t, data, store=None)
                actual = time.perf_counter() - t0
                err = est.seconds / actual - 1
                rows.append(err)
                print(
                    f"{p:8s} {name:52s} {len(ds):5d} images x {t.epochs} epochs: estimate {est.seconds:6.1f} s, "
                    f"actual {actual:6.1f} s, error {100 * err:+5.0f}% "
                    f"(others {others:.2f} cores: x{est.load_factor:.2f}; load {load:.2f})",
                    flush=True,
                )
    inside = sum(abs(e) <= 0.35 for e in rows)
    print(
        f"{inside} of {len(rows)} within +-35%; mean |error| {100 * np.mean(np.abs(rows)):.0f}%; "
        f"load average at the end {' '.join(f'{v:.2f}' for v in os.getloadavg())} (machine shared)"
    )


if __name__ == "__main__":
    main()
