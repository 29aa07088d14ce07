"""How learnable are the bundled datasets? Four numbers per dataset.

For each dataset in sample_data/ this prints:

1. ``cnn_test_acc``: test accuracy of the course's CNN (64x64x3 -> Conv32 -> Pool
   -> Conv64 -> Pool -> Conv128 -> Pool -> Flatten -> Dense128 -> Dropout 0.5 ->
   softmax; adam 1e-3, categorical cross-entropy, batch 32, 20 epochs) on a
   stratified 80/20 train/test split (random_state=42), with 20% of the
   training part held out for validation.
2. ``colour_test_acc``: test accuracy of a logistic regression (standardised
   features) on six colour statistics per image: the mean and standard
   deviation of each RGB channel. If this is close to the CNN, colour alone
   solves the task and the lesson about learned spatial features is lost.
3. ``gap_small``: final-epoch train accuracy minus validation accuracy when the
   CNN trains on 20% of the training images with dropout 0 (visible overfitting).
4. ``gap_small_aug``: the same with the course's augmentation (rotation 20 deg,
   shift 0.1, horizontal and vertical flips, zoom 0.1) on training batches only.

Usage (from the repository root)::

    python bench/bench_datasets.py                       # all three datasets
    python bench/bench_datasets.py --dataset thin_sections --epochs 20
    python bench/bench_datasets.py --data-dir /tmp/variant   # a generated variant

Every CNN is trained by the engine (core.training.experiment.run_experiment, the defaults of
``python -m core train``), on the app's split: test = 20% (stratified,
random_state=seed), validation = 20% of the rest, and for the small-data runs a
stratified 20% of the remaining training images (TrainConfig.train_fraction).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

REPO = Path(__file__).resolve().parents[1]
DATASETS = ("thin_sections", "seismic_facies", "drill_core")
sys.path.insert(0, str(REPO))


def colour_stats_accuracy(images: np.ndarray, labels: np.ndarray, train: np.ndarray, test: np.ndarray) -> float:
    """Test accuracy of a logistic regression on per-channel mean and std (6 features)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = images.astype(np.float64) / 255.0
    feats = np.concatenate([x.mean(axis=(1, 2)), x.std(axis=(1, 2))], axis=1)
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    clf.fit(feats[train], labels[train])
    return float(clf.score(feats[test], labels[test]))


def bench_dataset(root: Path, *, epochs: int, seed: int, store) -> dict[str, float]:
    """The four numbers (and timings) for one dataset folder, trained by the engine itself.

    The CNN runs are ``python -m core train``'s defaults (the course's network, adam,
    batch 32, validation 20% of the training part) through core.training.experiment.run_experiment,
    on the same stratified split the app uses.
    """
    from core.base.config import AugmentConfig, ModelConfig, TrainConfig
    from core.data import load_dataset, prepare_data
    from core.training.experiment import run_experiment

    ds = load_dataset(root)
    data = prepare_data(ds, seed=seed)
    k = len(ds.class_names)
    out: dict[str, float] = {"images": len(ds.labels), "classes": k}
    train_val = np.concatenate([data.train_index, data.val_index])
    out["colour_test_acc"] = colour_stats_accuracy(ds.images, ds.labels, train_val, data.test_index)

    base = TrainConfig(epochs=epochs, seed=seed)
    t = time.perf_counter()
    rec = run_experiment(str(root), ModelConfig(), base, store=store, use_cache=False)
    out["cnn_test_acc"] = float(rec.test["accuracy"])
    out["cnn_seconds"] = time.perf_counter() - t

    small = base.replace(train_fraction=0.2)
    for key, cfg in (("gap_small", small), ("gap_small_aug", small.replace(augment=AugmentConfig.course()))):
        t = time.perf_counter()
        rec = run_experiment(str(root), ModelConfig(dropout=0.0), cfg, store=store, use_cache=False)
        hist = rec.history
        out[key] = float(hist["accuracy"][-1] - hist["val_accuracy"][-1])
        out[key + "_train"] = float(hist["accuracy"][-1])
        out[key + "_val"] = float(hist["val_accuracy"][-1])
        out[key + "_test"] = float(rec.test["accuracy"])
        out[key + "_seconds"] = time.perf_counter() - t
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", choices=[*DATASETS, "all"], default="all")
    parser.add_argument("--data-dir", type=Path, default=REPO / "sample_data")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    names = DATASETS if args.dataset == "all" else (args.dataset,)

    import tempfile

    from core.store.runstore import RunStore

    store = RunStore(tempfile.mkdtemp(prefix="cnnlab-bench-datasets-"))  # a fresh store: always trains
    start = time.perf_counter()
    rows = []
    for name in names:
        t = time.perf_counter()
        r = bench_dataset(args.data_dir / name, epochs=args.epochs, seed=args.seed, store=store)
        r["seconds"] = time.perf_counter() - t
        rows.append((name, r))
        print(
            f"{name}: {r['images']} images, {r['classes']} classes | CNN test acc {r['cnn_test_acc']:.3f} | "
            f"colour-stats logreg test acc {r['colour_test_acc']:.3f} | "
            f"gap at 20% no dropout {r['gap_small']:+.3f} (train {r['gap_small_train']:.3f}, "
            f"val {r['gap_small_val']:.3f}) | gap at 20% + augmentation {r['gap_small_aug']:+.3f} "
            f"(train {r['gap_small_aug_train']:.3f}, val {r['gap_small_aug_val']:.3f}) | {r['seconds']:.0f} s",
            flush=True,
        )
    print()
    print(f"{'dataset':16s} {'cnn_test':>9s} {'colour':>7s} {'gap20':>7s} {'gap20+aug':>10s} {'seconds':>8s}")
    for name, r in rows:
        print(
            f"{name:16s} {r['cnn_test_acc']:9.3f} {r['colour_test_acc']:7.3f} {r['gap_small']:+7.3f} "
            f"{r['gap_small_aug']:+10.3f} {r['seconds']:8.0f}"
        )
    print(f"total wall time {time.perf_counter() - start:.0f} s (epochs={args.epochs}, seed={args.seed})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
