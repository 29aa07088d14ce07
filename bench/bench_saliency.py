"""Saliency maps and their sanity check on a stored run, timed: Grad-CAM, occlusion, SmoothGrad, Integrated
Gradients, the edge-map control, then the randomisation check.

Run from the repository root:  python bench/bench_saliency.py [--repeats 3] [--images 8]
                               python bench/bench_saliency.py --home DIR --runs CNN_RUN_ID VGG_RUN_ID

Without ``--runs`` it trains (once, 1 epoch) the course network and the VGG16 transfer model (random base weights:
the same arithmetic as ImageNet's) on the bundled thin_sections in a private CNNLAB_HOME. For each run: opening it,
each method's map for test image 0 and its predicted class (median and max of ``--repeats`` calls, after one
warm-up call that builds TensorFlow's graphs), the randomised copy of the top layers, one sanity check of all five
methods (originals included, as `python -m core saliency --sanity` does), and over ``--images`` test images: each
method's rank correlation (mean) and how many images it passed on, Integrated Gradients' completeness gap at the
default steps and at 4 times as many.
Prints the machine, CPU flags and load average.
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


def bench_run(title: str, run_id: str, store, repeats: int, images: int) -> None:
    import numpy as np

    from core.inside import SALIENCY_METHODS, integrated_gradients, open_run, saliency, sanity_check, top_layers
    from core.inside.saliency import STEPS

    t = time.perf_counter()
    net = open_run(store, run_id)
    opened = time.perf_counter() - t
    arrays = store.load_arrays(run_id)
    image = arrays["test_images"][0]
    print(f"\n{title} ({run_id}, {store.get(run_id).label}): open the stored run {opened:.2f} s")
    for method, name in SALIENCY_METHODS.items():
        saliency(net, image, method)  # warm-up: builds the graphs
        figure, m = timed(lambda method=method: saliency(net, image, method), repeats)
        extra = ""
        if m.completeness is not None:
            extra = f"   completeness gap {m.completeness.gap:.4f} ({m.completeness.relative_gap:.2%})"
        print(f"  {name:22s}: {figure}{extra}")
    layers = top_layers(net)
    figure, randomised = timed(lambda: net.randomised(layers), repeats)
    print(f"  randomised copy of {', '.join(layers)}: {figure}")
    figure, _ = timed(lambda: sanity_check(net, image), repeats)
    print(f"  sanity check, all five methods (originals and randomised maps): {figure}")
    rows: dict[str, list[float]] = {m: [] for m in SALIENCY_METHODS}
    gaps = []
    for i in range(min(images, len(arrays["y_true"]))):
        check = sanity_check(net, arrays["test_images"][i], randomised=randomised, layers=layers)
        for r in check.rows:
            rows[r.method].append(r.correlation)
        gaps.append(
            [
                integrated_gradients(net, arrays["test_images"][i], steps=steps).completeness
                for steps in (STEPS, 4 * STEPS)
            ]
        )
    n = len(gaps)
    for method, values in rows.items():
        passed = sum(v < check.threshold for v in values)
        print(
            f"  {SALIENCY_METHODS[method]:22s}: rank correlation mean {np.mean(values):+.2f} (min {min(values):+.2f}, "
            f"max {max(values):+.2f}); passed on {passed} of {n} images"
        )
    for k, steps in enumerate((STEPS, 4 * STEPS)):
        absolute, relative = [g[k].gap for g in gaps], [g[k].relative_gap for g in gaps]
        print(
            f"  Integrated Gradients' completeness gap, {steps} steps, {n} images: median {np.median(absolute):.3f} "
            f"({np.median(relative):.1%} of f(image) - f(black)), max {max(absolute):.3f} ({max(relative):.1%}); "
            f"|f(image) - f(black)| from {min(abs(g[k].difference) for g in gaps):.2f} to "
            f"{max(abs(g[k].difference) for g in gaps):.2f}"
        )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--images", type=int, default=8)
    add_run_options(ap, "a run store to read (default: a new one, with runs trained here)")
    args = ap.parse_args()
    os.environ["CNNLAB_HOME"] = args.home or tempfile.mkdtemp(prefix="cnnlab-bench-saliency-")
    from core.store.runstore import RunStore

    print_start()
    store = RunStore()
    for title, run_id in one_epoch_runs(store, args.runs).items():
        bench_run(title, run_id, store, args.repeats, args.images)
    print_end()


if __name__ == "__main__":
    main()
