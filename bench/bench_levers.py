"""Levers on core's training loop, one at a time, against core as shipped and the course's plain script.

Usage (from the repository root):
    python bench/bench_levers.py [--epochs 5] [--rounds 3] [--precision float32] [--variants plain,core,graph,spe4]
    python bench/bench_levers.py --intra 1 --inter 1 ...   (TensorFlow's thread pools for the whole process)

Variants:
- plain: the course's script (bench_engine.plain_course_script), float32;
- core: core.training.train.train_model as shipped;
- graph: the uint8 batch gathered and scaled inside the graph (tf.gather on the images as a constant, cast,
  divide) instead of core's numpy_function (core.models.pipeline.scale_batch);
- par1: the gather map with num_parallel_calls=1 (core: AUTOTUNE); graph_par1: both;
- valcache: the scaled validation batches cached after the first epoch;
- spe4: Keras' steps_per_execution=4 (4 batches per call into the graph).
Each line: the training's wall seconds, its median epoch (the first, tracing, left out) and the CPU seconds
of this process (all threads: less sensitive than wall time to other work on a shared machine), in
interleaved rounds; the summary gives each variant's ratios to the first variant.
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
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from bench_engine import plain_course_script  # noqa: E402
from machine import cpu_flags  # noqa: E402

VARIANTS = {
    "plain": {},
    "core": {},
    "graph": {"graph": True},
    "par1": {"par": 1},
    "graph_par1": {"graph": True, "par": 1},
    "valcache": {"valcache": True},
    "spe4": {"spe": 4},
}
KNOBS: dict = {}


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def install_knobs() -> None:
    """Route core's pipeline and compile through the knobs of the variant being timed."""
    import tensorflow as tf

    import core.models.pipeline as pipeline
    import core.training.fit as fit
    import core.training.train as train

    shipped_batches, shipped_compile = pipeline.image_batches, fit.compile_model

    def image_batches(x, y=None, *, batch_size, shuffle_seed=None, augment_fn=None, preprocess=None):
        if not ({"graph", "par", "valcache"} & KNOBS.keys()):
            return shipped_batches(
                x, y, batch_size=batch_size, shuffle_seed=shuffle_seed, augment_fn=augment_fn, preprocess=preprocess
            )
        images, index = pipeline.image_source(x)
        shape = tuple(int(d) for d in images.shape[1:])
        ds = tf.data.Dataset.from_tensor_slices(index if y is None else (index, y))
        if shuffle_seed is not None:
            ds = ds.shuffle(len(index), seed=shuffle_seed, reshuffle_each_iteration=True)
        ds = ds.batch(batch_size)
        if KNOBS.get("graph"):
            const = tf.constant(np.asarray(images))

            def gather(idx, *labels):
                xb = tf.cast(tf.gather(const, idx), tf.float32) / 255.0
                return (xb, *labels) if labels else xb
        else:

            def gather(idx, *labels):
                xb = tf.numpy_function(lambda i: pipeline.scale_batch(images, i, preprocess), [idx], tf.float32)
                xb.set_shape((None, *shape))
                return (xb, *labels) if labels else xb

        ds = ds.map(gather, num_parallel_calls=KNOBS.get("par", tf.data.AUTOTUNE))
        if augment_fn is not None:
            ds = ds.map(augment_fn)
        if KNOBS.get("valcache") and shuffle_seed is None:
            ds = ds.cache()
        return ds.prefetch(tf.data.AUTOTUNE)

    def compile_model(model, train_cfg, learning_rate=None):
        if not KNOBS.get("spe"):
            return shipped_compile(model, train_cfg, learning_rate)
        model.compile(
            optimizer=fit.make_optimizer(train_cfg.optimizer, learning_rate or train_cfg.learning_rate),
            loss=fit.loss_name(train_cfg.loss),
            metrics=["accuracy"],
            steps_per_execution=KNOBS["spe"],
        )

    pipeline.image_batches = fit.image_batches = image_batches
    fit.compile_model = train.compile_model = compile_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--precision", default="float32")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--intra", type=int, default=0, help="intra-op threads (0: TensorFlow's default)")
    ap.add_argument("--inter", type=int, default=0, help="inter-op threads (0: TensorFlow's default)")
    args = ap.parse_args()
    names = args.variants.split(",")

    import tensorflow as tf

    if args.intra:
        tf.config.threading.set_intra_op_parallelism_threads(args.intra)
    if args.inter:
        tf.config.threading.set_inter_op_parallelism_threads(args.inter)
    install_knobs()
    from core.base.config import ModelConfig, TrainConfig
    from core.data import load_dataset, prepare_data
    from core.training.train import train_model

    print(f"machine: {cpu_flags()}; load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    data = prepare_data(load_dataset("thin_sections", image_size=64), loss="categorical", seed=42)

    def run(name: str, epochs: int) -> tuple[float, float, float]:
        c, t = cpu_seconds(), time.perf_counter()
        if name == "plain":
            plain_course_script(data, epochs)
            return time.perf_counter() - t, float("nan"), cpu_seconds() - c
        KNOBS.clear()
        KNOBS.update(VARIANTS[name])
        res = train_model(ModelConfig(), TrainConfig(epochs=epochs, precision=args.precision), data, store=None)
        return time.perf_counter() - t, statistics.median(res.epoch_seconds[1:] or [0.0]), cpu_seconds() - c

    for name in names:  # warm every path (tracing caches, allocator)
        run(name, 1)
    runs: dict[str, list[tuple[float, float, float]]] = {n: [] for n in names}
    for r in range(args.rounds):
        for name in names:
            runs[name].append(run(name, args.epochs))
            wall, epoch, cpu = runs[name][-1]
            print(
                f"round {r} {name}: {wall:.2f} s, epoch {epoch:.3f} s, CPU {cpu:.2f} s, load {os.getloadavg()[0]:.2f}",
                flush=True,
            )
    ref = runs[names[0]]
    for name in names:
        wall = statistics.median(w for w, _, _ in runs[name])
        cpu = statistics.median(c for _, _, c in runs[name])
        print(
            f"{name:12s} wall median {wall:.2f} s ({wall / statistics.median(w for w, _, _ in ref):.3f}), "
            f"CPU median {cpu:.2f} s ({cpu / statistics.median(c for _, _, c in ref):.3f})"
        )
    print(f"load average at the end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
