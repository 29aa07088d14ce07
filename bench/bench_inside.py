"""Inside the CNN: feature maps, Grad-CAM, occlusion and the worked convolution, after the model is loaded.

Run from the repository root:  python bench/bench_inside.py [--repeats 20]

Trains (once, 1 epoch: timings do not depend on how well a network learned) the course network
(64x64x3, 32-64-128) and the VGG16 transfer model (64x64, random base weights: the same arithmetic
as ImageNet's, nothing to download) on the bundled thin_sections, in a private CNNLAB_HOME. Then,
for each: the time to open the stored run (load model.keras + build the flat copy), and per call
for one test image: feature maps of one layer (the first conv, a middle one, the last conv),
Grad-CAM at the last conv layer (first call, which traces the gradient graph, then warm), the
worked convolution at one unit, and occlusion (10 x 10 forward passes). Median and p90 of
``--repeats`` calls, each a different test image. Prints the machine, CPU flags and load average.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ["CNNLAB_HOME"] = tempfile.mkdtemp(prefix="cnnlab-bench-inside-")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from machine import cpu_flags  # noqa: E402

from core.base.config import ModelConfig, TrainConfig  # noqa: E402
from core.inside import grad_cam, occlusion, open_run, work_convolution  # noqa: E402
from core.store.runstore import RunStore  # noqa: E402
from core.training.experiment import run_experiment  # noqa: E402


def timed(fn, images, repeats: int) -> str:
    times = []
    for i in range(repeats):
        t = time.perf_counter()
        fn(images[i % len(images)])
        times.append(time.perf_counter() - t)
    times.sort()
    p90 = times[min(len(times) - 1, round(0.9 * (len(times) - 1)))]
    return f"median {statistics.median(times) * 1000:7.1f} ms   p90 {p90 * 1000:7.1f} ms"


def bench_run(title: str, rec, store: RunStore, repeats: int) -> None:
    t = time.perf_counter()
    net = open_run(store, rec.run_id)
    opened = time.perf_counter() - t
    images = store.load_arrays(rec.run_id)["test_images"][:repeats]
    convs = net.conv_layers()
    print(
        f"\n{title} ({rec.run_id}): open the stored run (load + flat copy) {opened:.2f} s; "
        f"{len(net.layers)} spatial layers"
    )
    for layer in (convs[0], convs[len(convs) // 2], convs[-1]):
        net.feature_maps(images[0], layer.name)  # builds the sub-model once per layer
        shape = "x".join(map(str, layer.output_shape))
        figure = timed(lambda im, n=layer.name: net.feature_maps(im, n), images, repeats)
        print(f"  feature maps {layer.name:13s} {shape:>10s}: {figure}")
    t = time.perf_counter()
    grad_cam(net, images[0])
    print(f"  Grad-CAM, first call (builds the layer's model): {(time.perf_counter() - t) * 1000:.1f} ms")
    print(f"  Grad-CAM at {convs[-1].name:13s}           : {timed(lambda im: grad_cam(net, im), images, repeats)}")
    h, w, _ = convs[-1].output_shape
    unit = (convs[-1].name, h // 2, w // 2, 3)
    figure = timed(lambda im: work_convolution(net, im, *unit), images, repeats)
    print(f"  worked convolution, {unit[0]}     : {figure}")
    figure = timed(lambda im: occlusion(net, im), images, max(3, repeats // 4))
    print(f"  occlusion (<= 100 passes)          : {figure}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=20)
    args = ap.parse_args()
    print(f"machine: {cpu_flags()}; load average {os.getloadavg()[0]:.1f} {os.getloadavg()[1]:.1f} at the start")
    store = RunStore()
    one = TrainConfig(epochs=1, batch_size=32)
    runs = {
        "course CNN": run_experiment("thin_sections", ModelConfig(), one, store=store),
        "VGG16 transfer": run_experiment("thin_sections", ModelConfig(model="vgg16", weights="none"), one, store=store),
    }
    for title, rec in runs.items():
        bench_run(title, rec, store, args.repeats)
    print(f"\nload average {os.getloadavg()[0]:.1f} {os.getloadavg()[1]:.1f} at the end")


if __name__ == "__main__":
    main()
