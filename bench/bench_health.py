"""Data health: class counts per split, imbalance, exact and near-duplicate pairs (core.data.health).

Run from the repository root:  python bench/bench_health.py [--repeats 5]

For each bundled dataset (decoded once at 64 px, as the Data page and `train` read it): the time of
``data_health`` with the default split (median and max of ``--repeats`` calls; the first call of the
process also imports scikit-learn for the split and is shown apart), and what it found. Then a stress
case: thin_sections ten times over (10,000 images), each copy with a little pixel noise (+-3 levels),
so every image has 9 near-identical copies (45,000 near pairs to confirm and count). Prints the machine,
CPU flags and load average.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import numpy as np  # noqa: E402
from machine import cpu_flags  # noqa: E402

from core.data import Dataset, data_health, load_dataset  # noqa: E402
from core.data.dataset import fingerprint  # noqa: E402


def timed(ds: Dataset, repeats: int) -> tuple[list[float], object]:
    times, report = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        report = data_health(ds)
        times.append(time.perf_counter() - t)
    return times, report


def line(name: str, ds: Dataset, times: list[float], report) -> str:
    return (
        f"{name:<16} {len(ds):>6,} images  median {statistics.median(times) * 1000:8.1f} ms  "
        f"max {max(times) * 1000:8.1f} ms   identical {report.exact.total:,}, near {report.near.total:,} "
        f"({report.near.across:,} across splits), imbalance {report.imbalance.ratio:.2f}"
    )


def noisy_copies(ds: Dataset, copies: int, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    parts = [np.clip(ds.images.astype(np.int16) + rng.integers(-3, 4, ds.images.shape), 0, 255) for _ in range(copies)]
    images = np.concatenate(parts).astype(np.uint8)
    labels = np.tile(ds.labels, copies)
    files = [f"copy{c}/{f}" for c in range(copies) for f in ds.files]
    return Dataset(images, labels, ds.class_names, [], "stress", fingerprint(ds.class_names, labels, images), files)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    print(f"machine: {cpu_flags()}; load average {os.getloadavg()[0]:.2f}")
    first = True
    for name in ("thin_sections", "seismic_facies", "drill_core"):
        ds = load_dataset(name)
        if first:
            t = time.perf_counter()
            data_health(ds)
            print(f"first call of the process (imports scikit-learn): {(time.perf_counter() - t) * 1000:.0f} ms")
            first = False
        times, report = timed(ds, args.repeats)
        print(line(name, ds, times, report))
    stress = noisy_copies(load_dataset("thin_sections"), 10)
    times, report = timed(stress, max(1, args.repeats // 2))
    print(line("10x thin (noisy)", stress, times, report))
    print(f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
