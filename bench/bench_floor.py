"""How far core's training is from the arithmetic's floor: the course network on one constant batch, no pipeline.

Usage (from the repository root):
    python bench/bench_floor.py [--epochs 5] [--rounds 3]

In one process, interleaved per round, each for ``--epochs`` epochs of the course network on thin_sections (640
training and 160 validation images, batch 32: 20 steps and 5 validation batches per epoch):
- plain: the course's script (bench_engine.plain_course_script), float32: the reference;
- core float32 / core bfloat16: core.training.train.train_model as shipped (``precision`` forced);
- floor float32 / floor bfloat16: the same Keras network, compiled the same way, fitted on ONE batch of real images
  repeated (``tf.data.Dataset.from_tensors(batch).repeat(20)``, validation 5 batches the same way): every step and
  every validation batch costs what the network's arithmetic and Keras' fit loop cost, and nothing else (no
  gathering, scaling, shuffling or splitting of images, no callbacks, no best-epoch weights). What core could reach
  if everything it does besides the network were free.
Prints wall and CPU seconds (this process, all threads) per run, medians, and each one's ratio to the plain script:
if the floor is above a target ratio, no change to core's loop can reach that target; only less arithmetic (or
faster arithmetic: another CPU, another library) can.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from bench_engine import course_network, plain_course_script  # noqa: E402
from machine import cpu_flags  # noqa: E402


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def floor_fit(data, epochs: int, precision: str) -> None:
    """The course network fitted on one real batch repeated: the arithmetic and Keras' loop, nothing else."""
    import keras
    import tensorflow as tf

    from core.base.precision import precision_policy

    xb, yb = data.x01("train")[:32], data.y_train[:32]
    xv, yv = data.x01("val")[:32], data.y_val[:32]
    train = tf.data.Dataset.from_tensors((xb, yb)).repeat(len(data.y_train) // 32)
    val = tf.data.Dataset.from_tensors((xv, yv)).repeat(len(data.y_val) // 32)
    keras.utils.set_random_seed(42)
    with precision_policy(precision):
        model = course_network(xb.shape[1:], yb.shape[-1], output_dtype="float32")
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    model.fit(train, epochs=epochs, validation_data=val, verbose=0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()

    from core.base.config import ModelConfig, TrainConfig
    from core.data import load_dataset, prepare_data
    from core.training.train import train_model

    print(f"machine: {cpu_flags()}; load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    data = prepare_data(load_dataset("thin_sections", image_size=64), loss="categorical", seed=42)
    runs = {
        "plain": lambda e: plain_course_script(data, e),
        "core float32": lambda e: train_model(
            ModelConfig(), TrainConfig(epochs=e, precision="float32"), data, store=None
        ),
        "floor float32": lambda e: floor_fit(data, e, "float32"),
        "core bfloat16": lambda e: train_model(
            ModelConfig(), TrainConfig(epochs=e, precision="bfloat16"), data, store=None
        ),
        "floor bfloat16": lambda e: floor_fit(data, e, "bfloat16"),
    }
    for fn in runs.values():  # warm every path once (TensorFlow's first-use costs, oneDNN's primitives)
        fn(1)
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in runs}
    for r in range(args.rounds):
        for name, fn in runs.items():
            c, t = cpu_seconds(), time.perf_counter()
            fn(args.epochs)
            times[name].append((time.perf_counter() - t, cpu_seconds() - c))
            wall, cpu = times[name][-1]
            print(
                f"round {r + 1} {name:15s} {wall:6.2f} s, CPU {cpu:6.2f} s; load {os.getloadavg()[0]:.2f}", flush=True
            )
    ref_wall = statistics.median(w for w, _ in times["plain"])
    ref_cpu = statistics.median(c for _, c in times["plain"])
    for name, xs in times.items():
        wall, cpu = statistics.median(w for w, _ in xs), statistics.median(c for _, c in xs)
        print(
            f"{name:15s} wall median {wall:6.2f} s ({wall / ref_wall:.3f} of plain), "
            f"CPU median {cpu:6.2f} s ({cpu / ref_cpu:.3f} of plain)"
        )
    print(f"load average at the end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
