"""Augmentation cost: per-epoch training time with all course augmentations on vs off.

Usage:
    python bench/bench_augment.py [--data thin_sections] [--epochs 4] [--repeats 2]

Trains the course network through core.training.train.train_model on the thin-section set, once with
AugmentConfig.course() (rotation 20, shifts 0.1, both flips, zoom 0.1, mapped over training
batches in the input pipeline) and once without, interleaved, and prints the median seconds per
epoch of each (the first epoch, which traces the graph, is left out) and their ratio
(target <= 1.3x). CPU seconds are printed too: on a shared machine they move less than wall time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def one_run(data, augment, epochs: int) -> tuple[list[float], float]:
    from core.base.config import ModelConfig, TrainConfig
    from core.training.train import train_model

    cpu = time.process_time()
    res = train_model(ModelConfig(), TrainConfig(epochs=epochs, augment=augment), data, store=None)
    return res.epoch_seconds[1:], (time.process_time() - cpu) / epochs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="thin_sections")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()

    from core.base.config import AugmentConfig
    from core.data import load_dataset, prepare_data

    data = prepare_data(load_dataset(args.data), seed=42)
    print(f"data: {args.data}, {len(data.x_train)} training images, {args.epochs} epochs x {args.repeats} runs each")
    walls: dict[str, list[float]] = {"off": [], "on": []}
    cpus: dict[str, list[float]] = {"off": [], "on": []}
    for _ in range(args.repeats):  # interleaved: machine load hits both sides alike
        for name, aug in (("off", AugmentConfig()), ("on", AugmentConfig.course())):
            w, c = one_run(data, aug, args.epochs)
            walls[name] += w
            cpus[name].append(c)
    off, on = statistics.median(walls["off"]), statistics.median(walls["on"])
    coff, con = statistics.median(cpus["off"]), statistics.median(cpus["on"])
    print(f"augmentation off: {off:.2f} s/epoch wall, {coff:.2f} CPU-s/epoch")
    print(f"augmentation on:  {on:.2f} s/epoch wall, {con:.2f} CPU-s/epoch")
    print(f"ratio on/off: {on / off:.2f}x wall, {con / coff:.2f}x CPU (target <= 1.3x)")


if __name__ == "__main__":
    main()
