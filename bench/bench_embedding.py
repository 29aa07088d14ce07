"""The embedding view: a run's test images in its penultimate layer's feature space (PCA, t-SNE), timed.

Run from the repository root:  python bench/bench_embedding.py [--repeats 5]
                               python bench/bench_embedding.py --home DIR --runs CNN_RUN_ID VGG_RUN_ID

Without ``--runs`` it trains (once, 1 epoch: the timings hardly depend on the weights) the course network
and the VGG16 transfer model (random base weights: the same arithmetic as ImageNet's) on the bundled
thin_sections in a private CNNLAB_HOME. For each run: opening it (load + flat copy), then
:func:`core.inside.embed_run` as the dashboard calls it once per (run, projection, images) - the features
of the test images, the projection, the k-NN separation number - with PCA and with t-SNE, for the test
images and with the training images too (the dataset read from the store's cache and split again).
Median and max of ``--repeats`` calls (t-SNE: at most 3). Prints the machine, CPU flags and load average.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from benchruns import add_run_options, one_epoch_runs, print_end, print_start, timed  # noqa: E402


def bench_run(title: str, run_id: str, store, repeats: int) -> None:
    from core.inside import embed_run, open_run

    t = time.perf_counter()
    net = open_run(store, run_id)
    opened = time.perf_counter() - t
    arrays = store.load_arrays(run_id)
    t = time.perf_counter()
    net.features(arrays["test_images"])
    first = time.perf_counter() - t
    print(
        f"\n{title} ({run_id}, {store.get(run_id).label}): open the stored run {opened:.2f} s; "
        f"features of {len(arrays['y_true'])} test images, first call (builds the sub-model) {first:.2f} s"
    )
    figure, _ = timed(lambda: net.features(arrays["test_images"]), repeats)
    print(f"  features of the test images ({net.feature_layer}) : {figure}")
    for method, with_train in (("pca", False), ("tsne", False), ("pca", True), ("tsne", True)):
        n = repeats if method == "pca" else min(3, repeats)
        figure, em = timed(lambda m=method, w=with_train: embed_run(store, run_id, m, net=net, with_train=w), n)
        what = f"{method:4s} {'test + training' if with_train else 'test':15s} ({len(em.labels):4d} images)"
        print(f"  embed {what}: {figure}   k-NN {em.knn_accuracy:.3f} vs model {em.model_accuracy:.3f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    add_run_options(ap, "a run store to read (default: a new one, with runs trained here)")
    args = ap.parse_args()
    os.environ["CNNLAB_HOME"] = args.home or tempfile.mkdtemp(prefix="cnnlab-bench-embed-")
    from core.store.runstore import RunStore

    print_start()
    store = RunStore()
    for title, run_id in one_epoch_runs(store, args.runs).items():
        bench_run(title, run_id, store, args.repeats)
    print_end()


if __name__ == "__main__":
    main()
