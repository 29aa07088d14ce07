"""Engine overhead and speed: the course's plain Keras script vs core's training.

Usage:
    python bench/bench_engine.py [--data thin_sections] [--epochs 10] [--repeats 2]
    python bench/bench_engine.py --precision [--epochs 20] [--seeds 42,1,2]

Prints, on the same images and the same network (the course's defaults):
- seconds for the plain script (Sequential, compile adam, fit(X, y, epochs,
  batch_size=32, validation_split=0.2)) and for core.training.train.train_model, and
  their ratio core/plain (target <= 1.05);
- what the alternatives measured here buy (--variants): XLA (jit_compile=True),
  and arrays straight into fit() instead of core's tf.data pipeline with prefetch;
- achieved training GFLOP/s next to this machine's fp32 matrix-multiply rate;
- the layer table's time per configuration (the Architecture page's budget: 50 ms);
- with --precision: for each seed, interleaved, the plain script (float32) and core in float32 and in
  mixed bfloat16; the ratio core/plain-float32 of each precision and the test accuracy of every run
  (targets on a CPU with native bf16, issue 22: bfloat16 ratio <= 0.5, float32 ratio <= 0.8; mean test accuracy
  within 2 points of float32); CPU seconds next to the wall seconds.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import cpu_flags  # noqa: E402


def forward_flops(cfg) -> int:
    """Multiply-adds x 2 of one image's forward pass through the configured CNN."""
    from core.models.layer_table import layer_table

    flops, c = 0, cfg.channels
    for row in layer_table(cfg).rows:
        if row.type == "Conv2D":
            h, w, f = row.output_shape
            flops += 2 * h * w * f * cfg.kernel_size * cfg.kernel_size * c
            c = f
        elif row.type == "Dense":
            flops += 2 * (row.params - row.output_shape[0])
    return flops


def matmul_gflops(n: int = 2048, reps: int = 10) -> float:
    import tensorflow as tf

    a = tf.random.normal((n, n))
    b = tf.random.normal((n, n))
    tf.matmul(a, b).numpy()
    t = time.perf_counter()
    for _ in range(reps):
        c = tf.matmul(a, b)
    c.numpy()
    return 2 * n**3 * reps / (time.perf_counter() - t) / 1e9


def course_network(input_shape: tuple[int, ...], classes: int, output_dtype: str | None = None):
    """The chapter's network as its script writes it: three Conv2D -> MaxPooling2D blocks (32, 64, 128 filters of
    3x3), Flatten, Dense 128, Dropout 0.5, Dense softmax (``output_dtype``: the softmax's, e.g. float32 under a
    mixed policy)."""
    import keras
    from keras import layers

    return keras.Sequential(
        [
            keras.Input(shape=input_shape),
            layers.Conv2D(32, (3, 3), activation="relu"),
            layers.MaxPooling2D((2, 2)),
            layers.Conv2D(64, (3, 3), activation="relu"),
            layers.MaxPooling2D((2, 2)),
            layers.Conv2D(128, (3, 3), activation="relu"),
            layers.MaxPooling2D((2, 2)),
            layers.Flatten(),
            layers.Dense(128, activation="relu"),
            layers.Dropout(0.5),
            layers.Dense(classes, activation="softmax", dtype=output_dtype),
        ]
    )


def plain_course_script(data, epochs: int, seed: int = 42, accuracy: bool = False):
    """The chapter's code, verbatim in spirit: Sequential, compile, fit with validation_split."""
    import keras

    x = np.concatenate([data.x01("train"), data.x01("val")])  # the course's X / 255.0, float32
    y = np.concatenate([data.y_train, data.y_val])
    split = len(data.x_val) / len(x)  # fit() validates on the last `split` of x: exactly data.x_val
    keras.utils.set_random_seed(seed)
    t = time.perf_counter()
    model = course_network((64, 64, 3), 5)
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=epochs, batch_size=32, validation_split=split, verbose=0)
    seconds = time.perf_counter() - t
    if not accuracy:
        return seconds
    probs = model.predict(data.x01("test"), verbose=0)
    return seconds, float(np.mean(probs.argmax(axis=1) == data.y_test_int))


def core_training(data, epochs: int, **variant) -> float:
    import core.training.fit as fit
    import core.training.train as train
    from core.base.config import ModelConfig, TrainConfig

    old = dict(fit.ENGINE_OPTIONS)
    fit.ENGINE_OPTIONS.update(variant)
    try:
        t = time.perf_counter()
        events = []
        cfg = TrainConfig(epochs=epochs, precision="float32")
        train.train_model(ModelConfig(), cfg, data, store=None, progress=events.append)
        return time.perf_counter() - t
    finally:
        fit.ENGINE_OPTIONS.clear()
        fit.ENGINE_OPTIONS.update(old)


def core_precision_run(data, epochs: int, seed: int, precision: str) -> tuple[float, float, str]:
    """Seconds, test accuracy and the precision used, for one core training of the course network."""
    from core.base.config import ModelConfig, TrainConfig
    from core.training.fit import predict_proba
    from core.training.train import train_model

    t = time.perf_counter()
    res = train_model(ModelConfig(), TrainConfig(epochs=epochs, seed=seed, precision=precision), data, store=None)
    seconds = time.perf_counter() - t
    probs = predict_proba(res.model, data.x_test)
    return seconds, float(np.mean(probs.argmax(axis=1) == data.y_test_int)), res.extra["precision"]


def precision_bench(data, epochs: int, seeds: list[int]) -> None:
    """Interleaved per seed: plain float32, core float32, core bfloat16; ratios and test accuracies."""
    from core.base.config import ModelConfig, TrainConfig
    from core.base.precision import cpu_flags, run_precision

    print(
        f"auto resolves to {run_precision(ModelConfig(), TrainConfig())} here for the course network (native bf16: "
        f"{sorted(cpu_flags() & {'avx512_bf16', 'amx_bf16'}) or 'none'})"
    )
    core_precision_run(data, 1, 0, "bfloat16")  # warm both precisions
    core_precision_run(data, 1, 0, "float32")
    # per run: (wall seconds, test accuracy, CPU seconds of this process: less sensitive to other work here)
    rows: dict[str, list[tuple[float, float, float]]] = {"plain float32": [], "core float32": [], "core bfloat16": []}
    for seed in seeds:
        load = os.getloadavg()[0]
        c = cpu_seconds()
        sec, acc = plain_course_script(data, epochs, seed=seed, accuracy=True)
        rows["plain float32"].append((sec, acc, cpu_seconds() - c))
        for precision in ("float32", "bfloat16"):
            c = cpu_seconds()
            sec, acc, used = core_precision_run(data, epochs, seed, precision)
            assert used == precision
            rows[f"core {precision}"].append((sec, acc, cpu_seconds() - c))
        print(
            f"seed {seed} (load {load:.2f} -> {os.getloadavg()[0]:.2f}): "
            + "; ".join(f"{k} {v[-1][0]:.2f} s (CPU {v[-1][2]:.2f} s) acc {v[-1][1]:.3f}" for k, v in rows.items()),
            flush=True,
        )
    plain = statistics.median(s for s, _, _ in rows["plain float32"])
    plain_cpu = statistics.median(c for _, _, c in rows["plain float32"])
    base_acc = statistics.mean(a for _, a, _ in rows["core float32"])
    for name, runs in rows.items():
        sec = statistics.median(s for s, _, _ in runs)
        cpu = statistics.median(c for _, _, c in runs)
        accs = [a for _, a, _ in runs]
        print(
            f"{name:14s}: median {sec:.2f} s, ratio to plain float32 {sec / plain:.3f}; CPU median {cpu:.2f} s, "
            f"ratio {cpu / plain_cpu:.3f}; test accuracy {', '.join(f'{a:.3f}' for a in accs)} "
            f"(mean {statistics.mean(accs):.3f}, {100 * (statistics.mean(accs) - base_acc):+.1f} points vs float32)"
        )
    print(
        "targets on a bf16 CPU (issue 22): core bfloat16 / plain <= 0.5, core float32 / plain <= 0.8; "
        "mean accuracy within 2 points of float32"
    )


def cpu_seconds() -> float:
    """CPU seconds of this process so far, all threads."""
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def layer_table_ms(n: int = 2000) -> tuple[float, float]:
    from core.base.config import ModelConfig
    from core.models.layer_table import check_architecture, layer_table

    rng = random.Random(0)
    cfgs = []
    while len(cfgs) < n:
        c = ModelConfig(
            input_size=rng.choice([32, 64, 96, 128]),
            blocks=rng.randint(1, 5),
            filters=rng.choice([8, 16, 32, 64]),
            kernel_size=rng.choice([3, 5, 7]),
            pool_size=rng.choice([2, 3]),
            padding=rng.choice(["valid", "same"]),
            batchnorm=rng.random() < 0.5,
        )
        if not check_architecture(c):
            cfgs.append(c)
    times = []
    for c in cfgs:
        t = time.perf_counter()
        layer_table(c)
        times.append((time.perf_counter() - t) * 1000)
    return statistics.mean(times), max(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="thin_sections")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--variants", action="store_true", help="also time XLA and arrays without the pipeline")
    ap.add_argument("--precision", action="store_true", help="float32 vs mixed bfloat16: ratios and accuracy")
    ap.add_argument("--seeds", default="42,1,2", help="seeds of the --precision runs")
    args = ap.parse_args()

    from core.base.config import ModelConfig
    from core.data import load_dataset, prepare_data

    print(f"machine: {cpu_flags()}; load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    mean_ms, max_ms = layer_table_ms()
    print(f"layer table: {mean_ms:.3f} ms mean, {max_ms:.3f} ms max per config (budget 50 ms)")

    ds = load_dataset(args.data, image_size=64)
    data = prepare_data(ds, loss="categorical", seed=42)
    print(f"data: {args.data}, {len(data.x_train)} train / {len(data.x_val)} val images, epochs {args.epochs}")

    import tensorflow as tf

    print(f"tensorflow {tf.__version__}, intra-op threads {tf.config.threading.get_intra_op_parallelism_threads()}")
    if args.precision:
        precision_bench(data, args.epochs, [int(s) for s in args.seeds.split(",")])
        print(f"load average at the end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
        return
    plain_core_first = core_training(data, 1)  # warm both paths (graph tracing caches, allocator)
    plain_course_script(data, 1)
    del plain_core_first

    plain, core = [], []
    for _ in range(args.repeats):  # interleaved, so drift in machine load hits both alike
        plain.append(plain_course_script(data, args.epochs))
        core.append(core_training(data, args.epochs))
    p, c = min(plain), min(core)
    print(f"plain course script: {p:.2f} s   (runs: {', '.join(f'{v:.2f}' for v in plain)})")
    print(f"core.train_model:    {c:.2f} s   (runs: {', '.join(f'{v:.2f}' for v in core)})")
    print(f"ratio core/plain: {c / p:.3f}  (target <= 1.05)")

    fwd = forward_flops(ModelConfig())
    total = args.epochs * (3 * fwd * len(data.x_train) + fwd * len(data.x_val))
    print(
        f"training: {total / c / 1e9:.1f} GFLOP/s achieved ({fwd / 1e6:.1f} MFLOP forward per image); "
        f"fp32 matmul on this machine: {matmul_gflops():.1f} GFLOP/s"
    )

    if args.variants:
        for name, opts in (
            ("XLA jit_compile=True", {"jit_compile": True}),
            ("arrays straight into fit(), no pipeline", {"pipeline": False}),
        ):
            t = min(core_training(data, args.epochs, **opts) for _ in range(args.repeats))
            print(f"variant {name}: {t:.2f} s, {t / p:.3f} x plain")


if __name__ == "__main__":
    main()
