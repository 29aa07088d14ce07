"""Transfer learning speed: the course's model_transfer.fit on images vs core's cached features + head.

Usage:
    python bench/bench_transfer.py [--data thin_sections] [--epochs 20] [--course-epochs N]
                                   [--random N] [--no-variants | --variants-only]
                                   [--variant-images 256] [--rounds 3]
    python bench/bench_transfer.py --bf16-features [--epochs 20]

Prints, in one run on the same images and the same offline (HED) VGG16 weights:
- the course's approach: VGG16 base frozen inside Sequential -> GAP -> Dense 128 -> Dropout 0.5
  -> Dense, ``fit`` on images for --epochs epochs (or --course-epochs measured and the rest
  extrapolated from the mean of the measured epochs after the first, said so in the output);
- core's: ``core.training.transfer.train_transfer`` with an empty feature cache (the one-time extraction
  of every image of the dataset, then the head for --epochs epochs), and again with the cache warm;
- the ratio core/course (target: at most 0.125 for 20 epochs, extraction included);
- extraction variants (batch size, XLA, bfloat16): seconds and the largest feature difference
  from the float32 reference, timed in interleaved rounds.

Wall seconds depend on what else runs on the machine; each line also gives CPU seconds (all
threads of this process) and the load average, and core/course is printed for both.

The dataset is sample_data/thin_sections (1,000 64x64 images). While it does not exist yet,
--random N measures on N random 64x64 images (5 classes) instead.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from core.base.config import ModelConfig, TrainConfig  # noqa: E402
from core.data import SAMPLE_DATA_DIR, Dataset, load_dataset, prepare_data  # noqa: E402
from core.models.vgg16 import build_base  # noqa: E402
from core.models.weight_sources import preprocess_images  # noqa: E402
from core.store.runstore import RunStore  # noqa: E402
from core.training.base_features import extract_features  # noqa: E402
from core.training.transfer import train_transfer  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import cpu_flags  # noqa: E402


def load_data(args):
    """(PreparedData, description) of the bundled dataset, or of random images with --random."""
    if args.random:
        rng = np.random.default_rng(0)
        n = args.random
        images = rng.integers(0, 256, (n, 64, 64, 3), dtype=np.uint8)
        labels = np.arange(n, dtype=np.int64) % 5
        ds = Dataset(
            images,
            labels,
            [f"class{i}" for i in range(5)],
            [],
            "random",
            f"random-{n}-seed0",
            [f"{i}.png" for i in range(n)],
        )
        what = f"{n} random 64x64 RGB images (5 classes): NOT the thin sections"
    else:
        if not (Path(args.data).exists() or (SAMPLE_DATA_DIR / args.data).is_dir()):
            print(
                f"The dataset {args.data!r} does not exist yet ({SAMPLE_DATA_DIR / args.data}): it is being "
                "generated (python -m synth). Measure on random images meanwhile with --random 1000.",
                file=sys.stderr,
            )
            raise SystemExit(1)
        ds = load_dataset(args.data, image_size=64)
        what = f"{args.data}: {len(ds)} images {ds.image_shape}"
    return prepare_data(ds, loss="categorical", seed=42), what


class EpochTimer:
    """Wall and CPU seconds (all threads of this process) of each epoch."""

    def __init__(self):
        self.seconds: list[float] = []
        self.cpu: list[float] = []

    def callback(self):
        import keras

        timer = self

        class _T(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                self.t0, self.c0 = time.perf_counter(), time.process_time()

            def on_epoch_end(self, epoch, logs=None):
                timer.seconds.append(time.perf_counter() - self.t0)
                timer.cpu.append(time.process_time() - self.c0)

        return _T()


def course_approach(data, base_weights, epochs: int, measured: int, seed: int = 42) -> dict:
    """The chapter's code: base frozen in a Sequential, fit on (preprocessed) images."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)
    base_model = keras.applications.VGG16(weights=None, include_top=False, input_shape=(64, 64, 3))
    base_model.set_weights(base_weights)
    base_model.trainable = False
    model_transfer = keras.Sequential(
        [
            keras.Input((64, 64, 3)),
            base_model,
            layers.GlobalAveragePooling2D(),
            layers.Dense(128, activation="relu"),
            layers.Dropout(0.5),
            layers.Dense(data.num_classes, activation="softmax"),
        ]
    )
    model_transfer.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    x_train = preprocess_images(data.x01("train"), "offline")
    x_val = preprocess_images(data.x01("val"), "offline")
    timer = EpochTimer()
    t0, c0 = time.perf_counter(), time.process_time()
    hist = model_transfer.fit(
        x_train,
        data.y_train,
        epochs=measured,
        batch_size=32,
        validation_data=(x_val, data.y_val),
        callbacks=[timer.callback()],
        verbose=0,
    )
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0

    def extrapolate(total, per):
        if measured == epochs:
            return total, float(np.mean(per[1:] or per))
        mean = float(np.mean(per[1:])) if measured > 1 else per[0]
        return per[0] + mean * (epochs - 1) + (total - sum(per)), mean

    total, per_epoch = extrapolate(wall, timer.seconds)
    total_cpu, per_epoch_cpu = extrapolate(cpu, timer.cpu)
    return {
        "seconds": total,
        "cpu": total_cpu,
        "per_epoch_cpu": per_epoch_cpu,
        "measured_epochs": measured,
        "epoch_seconds": timer.seconds,
        "per_epoch": per_epoch,
        "extrapolated": measured != epochs,
        "val_accuracy": hist.history["val_accuracy"][-1],
        "test_accuracy": test_accuracy(model_transfer, data),
    }


def test_accuracy(model, data) -> float:
    """Accuracy on the test split of a model that takes preprocessed (offline-weights) images."""
    probs = model.predict(preprocess_images(data.x01("test"), "offline"), batch_size=64, verbose=0)
    return float((probs.argmax(axis=1) == data.y_test_int).mean())


def core_approach(data, epochs: int, store, seed: int = 42, precision: str = "auto") -> dict:
    cfg = ModelConfig(model="vgg16", input_size=64, num_classes=data.num_classes, weights="offline")
    t0, c0 = time.perf_counter(), time.process_time()
    res = train_transfer(cfg, TrainConfig(epochs=epochs, seed=seed, precision=precision), data, store=store)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {
        "seconds": wall,
        "cpu": cpu,
        "extract": res.extra["extract_seconds"],
        "head": res.extra["head_seconds"],
        "base": res.extra["base_seconds"],
        "hit": res.extra["features_cache_hit"],
        "val_accuracy": res.history["val_accuracy"],
        "precision": res.extra["precision"],
        "test_accuracy": test_accuracy(res.model, data),
    }


def seeds_compare(data, base, args, measured: int, seeds: list[int]) -> None:
    """Course vs core (precision "auto", features extracted anew each seed: a fresh store) over seeds."""
    rows = []
    for seed in seeds:
        course = course_approach(data, base.get_weights(), args.epochs, measured, seed)
        with tempfile.TemporaryDirectory(prefix="bench-transfer-seed-") as tmp:
            core = core_approach(data, args.epochs, RunStore(tmp), seed)
        rows.append((seed, course, core))
        how = f"extrapolated from {measured} epochs" if course["extrapolated"] else "measured"
        print(
            f"seed {seed}: course {course['seconds']:.1f} s ({how}), test acc {course['test_accuracy']:.3f} "
            f"after {measured} epoch(s); core ({core['precision']}) {core['seconds']:.1f} s (extraction "
            f"{core['extract']:.1f} s), test acc {core['test_accuracy']:.3f} after {args.epochs} epochs; "
            f"core/course {core['seconds'] / course['seconds']:.3f} ({load()})",
            flush=True,
        )
    ratios = [c["seconds"] / k["seconds"] for _, k, c in rows]
    print(
        f"\ncore/course over seeds {seeds}: median {float(np.median(ratios)):.3f} "
        f"({', '.join(f'{r:.3f}' for r in ratios)})"
    )
    course_acc = [k["test_accuracy"] for _, k, _ in rows]
    core_acc = [c["test_accuracy"] for _, _, c in rows]
    print(
        f"test accuracy, course after {measured} epoch(s): {', '.join(f'{a:.3f}' for a in course_acc)} "
        f"(mean {np.mean(course_acc):.3f}); core after {args.epochs}: {', '.join(f'{a:.3f}' for a in core_acc)} "
        f"(mean {np.mean(core_acc):.3f})"
    )


def bf16_base(base):
    """The same base computing in bfloat16 (mixed precision: bfloat16 maths, float32 variables)."""
    import keras

    def clone(layer):
        cfg = layer.get_config()
        if "dtype" in cfg and not isinstance(layer, keras.layers.InputLayer):
            cfg["dtype"] = "mixed_bfloat16"
        return layer.__class__.from_config(cfg)

    m = keras.models.clone_model(base, clone_function=clone)
    m.set_weights(base.get_weights())
    return m


def variants(base, images, batch_sizes, rounds: int) -> list[dict]:
    """Each variant timed ``rounds`` times, interleaved (so load from other work hits all alike); min kept."""
    ref, _ = extract_features(base, images, "offline", batch_size=64)
    scale = float(np.abs(ref).max())
    runs = [(f"batch {b}", base, {"batch_size": b}) for b in batch_sizes]
    runs += [("XLA, batch 64", base, {"batch_size": 64, "jit_compile": True})]
    runs += [("XLA, batch 256", base, {"batch_size": 256, "jit_compile": True})]
    runs += [("bfloat16, batch 64", bf16_base(base), {"batch_size": 64})]
    times: dict[str, list[float]] = {name: [] for name, _, _ in runs}
    cpus: dict[str, list[float]] = {name: [] for name, _, _ in runs}
    diffs: dict[str, float] = {}
    for _name, b, kw in runs:  # trace / compile outside the timing
        extract_features(b, images[: kw["batch_size"]], "offline", **kw)
    order = list(runs)
    for _ in range(rounds):
        random.Random(len(times)).shuffle(order)
        for name, b, kw in order:
            t0, c0 = time.perf_counter(), time.process_time()
            out, _ = extract_features(b, images, "offline", **kw)
            times[name].append(time.perf_counter() - t0)
            cpus[name].append(time.process_time() - c0)
            diffs[name] = float(np.abs(out - ref).max())
    return [
        {
            "variant": name,
            "seconds": min(times[name]),
            "all": times[name],
            "cpu": min(cpus[name]),
            "max_diff": diffs[name],
            "rel": diffs[name] / scale,
        }
        for name, _, _ in runs
    ]


def bf16_features(data, base, epochs: int, seeds: list[int]) -> None:
    """Is bfloat16 good enough for the feature extraction? Time it, then train the head on each set of features."""
    import keras

    images = data.dataset.images
    b16 = bf16_base(base)
    extract_features(base, images[:32], "offline")
    extract_features(b16, images[:32], "offline")
    t0 = time.perf_counter()
    f32, _ = extract_features(base, images, "offline")
    t32 = time.perf_counter() - t0
    t0 = time.perf_counter()
    f16, _ = extract_features(b16, images, "offline")
    t16 = time.perf_counter() - t0
    rel = float(np.abs(f16 - f32).max() / np.abs(f32).max())
    print(
        f"\nExtraction of {len(images)} images: float32 {t32:.1f} s, bfloat16 {t16:.1f} s ({t16 / t32:.2f}x); "
        f"max |difference| {rel:.1e} of the largest feature ({load()})"
    )
    accs: dict[str, list[float]] = {"float32": [], "bfloat16": []}
    for seed in seeds:
        for name, feats in (("float32", f32), ("bfloat16", f16)):
            keras.utils.set_random_seed(seed)
            head = keras.Sequential(
                [
                    keras.Input(shape=(512,)),
                    keras.layers.Dense(128, activation="relu"),
                    keras.layers.Dropout(0.5),
                    keras.layers.Dense(5, activation="softmax"),
                ]
            )
            head.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
            head.fit(
                feats[data.train_index],
                data.y_train,
                epochs=epochs,
                batch_size=32,
                validation_data=(feats[data.val_index], data.y_val),
                verbose=0,
            )
            pred = head.predict(feats[data.test_index], verbose=0).argmax(1)
            accs[name].append(float(np.mean(pred == data.y_test_int)))
    for name, a in accs.items():
        print(
            f"head on {name} features, {epochs} epochs, seeds {seeds}: test accuracy "
            f"{', '.join(f'{v:.3f}' for v in a)} (mean {np.mean(a):.3f})"
        )
    print(f"bfloat16 - float32: {100 * (np.mean(accs['bfloat16']) - np.mean(accs['float32'])):+.1f} points")


def load() -> str:
    try:
        return f"load {os.getloadavg()[0]:.1f}"
    except OSError:
        return "load ?"


def compare(data, base, args, measured: int, store) -> None:
    course = course_approach(data, base.get_weights(), args.epochs, measured)
    how = (
        f"measured {measured} epoch(s), extrapolated to {args.epochs} from the mean of epochs 2..{measured}"
        if course["extrapolated"]
        else f"measured all {args.epochs} epochs"
    )
    if course["extrapolated"] and measured < 2:
        how = f"measured 1 epoch (with tracing), extrapolated to {args.epochs} from it: an overestimate"
    print(
        f"\nCourse (model_transfer.fit on images, frozen base): {course['seconds']:.1f} s for {args.epochs} "
        f"epochs [{how}]; {course['per_epoch']:.2f} s per epoch; first epoch {course['epoch_seconds'][0]:.2f} s; "
        f"CPU {course['cpu']:.1f} s, {course['per_epoch_cpu']:.2f} s per epoch ({load()})"
    )

    cold = core_approach(data, args.epochs, store)
    print(
        f"Core (cached features + head), empty cache: {cold['seconds']:.1f} s = base {cold['base']:.1f} s "
        f"+ extraction {cold['extract']:.1f} s + head {cold['head']:.1f} s ({args.epochs} epochs) + assembly; "
        f"CPU {cold['cpu']:.1f} s ({load()})"
    )
    warm = core_approach(data, args.epochs, store)
    print(
        f"Core, features in the cache: {warm['seconds']:.1f} s (head {warm['head']:.1f} s, cache hit "
        f"{warm['hit']}) ({load()})"
    )
    ratio = cold["seconds"] / course["seconds"]
    print(f"\ncore/course = {ratio:.3f} (target <= 0.125, extraction included){'' if ratio <= 0.125 else '  MISSED'}")
    print(
        f"core/course in CPU seconds (less sensitive to other work on the machine) = {cold['cpu'] / course['cpu']:.3f}"
    )
    print(f"core/course with the cache warm = {warm['seconds'] / course['seconds']:.3f}")
    print(
        f"val accuracy after {measured} epoch(s): course {course['val_accuracy']:.3f}, core "
        f"{cold['val_accuracy'][measured - 1]:.3f} (same model and data, other random draws); core after "
        f"{args.epochs}: {cold['val_accuracy'][-1]:.3f}"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="thin_sections")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument(
        "--course-epochs",
        type=int,
        default=None,
        help="epochs of the course's approach to measure (default: --epochs); the rest is extrapolated",
    )
    p.add_argument("--random", type=int, default=0, metavar="N", help="N random 64x64 images instead of --data")
    p.add_argument("--no-variants", action="store_true")
    p.add_argument("--variant-images", type=int, default=256, help="images for the variants (default 256; 0: all)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved timed rounds of the variants (fastest shown)")
    p.add_argument("--variants-only", action="store_true", help="skip the course/core comparison")
    p.add_argument(
        "--seeds",
        default=None,
        metavar="S,S,...",
        help="course vs core over these seeds (core in 'auto' precision, a fresh cache per seed)",
    )
    p.add_argument(
        "--bf16-features",
        action="store_true",
        help="only: bfloat16 vs float32 feature extraction, time and the head's test accuracy",
    )
    args = p.parse_args()
    measured = min(args.course_epochs or args.epochs, args.epochs)

    data, what = load_data(args)  # first: a missing dataset is said before TensorFlow loads

    import keras
    import tensorflow as tf

    print(f"CPU: {cpu_flags()}; TensorFlow {tf.__version__}, Keras {keras.__version__}")
    try:
        print(
            f"load average now: {' '.join(f'{v:.1f}' for v in os.getloadavg())} on {os.cpu_count()} cores "
            "(other work here slows the timings; lines below show the 1-minute load)"
        )
    except OSError:
        pass
    print(f"Data: {what}; {len(data.x_train)} train / {len(data.x_val)} val / {len(data.x_test)} test")

    with tempfile.TemporaryDirectory(prefix="bench-transfer-") as tmp:
        store = RunStore(tmp)
        t0 = time.perf_counter()
        base, info = build_base("offline", 64, store=store)
        print(
            f"Offline weights ({info.label}): base built in {time.perf_counter() - t0:.1f} s "
            "(first build in a process reads HED's weights; later builds reuse them)"
        )

        if args.bf16_features:
            bf16_features(data, base, args.epochs, [42, 1, 2])
            return
        if args.seeds:
            seeds_compare(data, base, args, measured, [int(x) for x in args.seeds.split(",")])
            return
        if not args.variants_only:
            compare(data, base, args, measured, store)

        if not args.no_variants:
            images = data.dataset.images
            if args.variant_images:
                images = images[: args.variant_images]
            print(
                f"\nExtraction variants on {len(images)} images (fastest of {args.rounds} interleaved rounds; "
                "max |difference| from float32 batch 64):"
            )
            for r in variants(base, images, (16, 32, 64, 128, 256), args.rounds):
                times = ", ".join(f"{t:.1f}" for t in r["all"])
                print(
                    f"  {r['variant']:<20s} {r['seconds']:6.1f} s (CPU {r['cpu']:6.1f} s)   "
                    f"max diff {r['max_diff']:.2e} ({r['rel']:.1e} of the largest feature)   runs: {times}"
                )


if __name__ == "__main__":
    main()
