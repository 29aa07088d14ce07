"""Activation maximisation: an image grown from noise for one filter (or class) of a stored run, timed.

Run from the repository root:  python bench/bench_maximise.py [--repeats 2]
                               python bench/bench_maximise.py --home DIR --runs CNN_RUN_ID VGG_RUN_ID

Without ``--runs`` it trains (once, 1 epoch) the course network and the VGG16 transfer model (random base
weights) on the bundled thin_sections in a private CNNLAB_HOME. With ``--home`` the runs are read from that
store and the kept results are written into a copy of it (never into the store named). For each run, with
the default settings (:func:`core.inside.default_settings`): :func:`core.inside.maximise` for filter 0 of a
first, a middle and the last convolution and for class 0 (median and max of ``--repeats``, the ascent alone
and in all with the comparison over the test images), then :func:`core.inside.maximise_run` twice: the first
computes and keeps, the second reads the kept file. Prints the machine, CPU flags and load average.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from benchruns import add_run_options, one_epoch_runs, print_end, print_start  # noqa: E402


def bench_run(title: str, run_id: str, store, repeats: int) -> None:
    from core.inside import default_settings, maximise, maximise_run, open_run

    t = time.perf_counter()
    net = open_run(store, run_id)
    opened = time.perf_counter() - t
    tests = store.load_arrays(run_id)["test_images"]
    settings = default_settings(net)
    print(
        f"\n{title} ({run_id}, {store.get(run_id).label}), input {net.input_shape}: open {opened:.2f} s; "
        f"{settings.steps} steps, step {settings.step_size}, jitter {settings.jitter} px, "
        f"blur {settings.blur_sigma} px "
        f"every {settings.blur_every} steps, decay {settings.decay}; {len(tests)} test images to compare"
    )
    convs = [la.name for la in net.conv_layers()]
    targets = [(convs[0], 0, None), (convs[len(convs) // 2], 0, None), (convs[-1], 0, None), (None, None, 0)]
    for layer, f, c in targets:
        ascent, total, result = [], [], None
        for _ in range(repeats):
            t = time.perf_counter()
            result = maximise(net, layer, f, c, settings, test_images=tests)
            total.append(time.perf_counter() - t)
            ascent.append(result.seconds)
        what = f"{result.what:28s}"
        ratio = f"{result.ratio:7.1f}x" if result.ratio is not None else "      -"
        print(
            f"  {what}: ascent median {statistics.median(ascent):6.2f} s (max {max(ascent):6.2f}); with the test "
            f"images {statistics.median(total):6.2f} s; value {result.value:9.3f} vs test mean "
            f"{result.test_mean:8.3f} (max {result.test_max:8.3f}) = {ratio}"
        )
    layer = convs[len(convs) // 2]
    t = time.perf_counter()
    maximise_run(store, run_id, layer, 1, net=net)
    first = time.perf_counter() - t
    t = time.perf_counter()
    kept = maximise_run(store, run_id, layer, 1, net=net)
    print(
        f"  maximise_run {layer} filter 1: first {first:.2f} s (grown and kept), "
        f"again {1000 * (time.perf_counter() - t):.1f} ms (cached={kept.cached})"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=2)
    add_run_options(ap, "a run store to read (copied: its runs are not written to)")
    args = ap.parse_args()
    home = tempfile.mkdtemp(prefix="cnnlab-bench-maximise-")
    if args.home:
        shutil.copytree(args.home, home, dirs_exist_ok=True)
    os.environ["CNNLAB_HOME"] = home
    from core.store.runstore import RunStore

    print_start()
    store = RunStore()
    for title, run_id in one_epoch_runs(store, args.runs).items():
        bench_run(title, run_id, store, args.repeats)
    print_end()
    shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
