"""The learning-rate range test on the bundled thin_sections: how long it takes, what it suggests against the
course's 1e-3.

Run from the repository root:  python bench/bench_lr_find.py [--home DIR]

For the course network (``ModelConfig()``) and the VGG16 transfer model (offline weights), at the default
settings (batch 32, "auto" precision) and the default range (1e-6 to 1, min(300, 5 epochs' batches) steps),
through ``core.training.lr_find.find_lr`` (the CLI's path; a job runs the same function in a training process):

- the first test in a fresh store (for VGG16 this includes computing the base's features once);
- the test again with ``use_cache=False`` (VGG16: its features now from the store's cache);
- the test asked a third time: the store's answer (nothing trained).

Prints the machine, CPU flags and load average, the steps run, whether the loss exploded, the falling range
and the suggestion with its rule.
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

from machine import cpu_flags  # noqa: E402

from core.base.config import ModelConfig, TrainConfig  # noqa: E402
from core.store.runstore import RunStore  # noqa: E402
from core.training.lr_find import LRRange, find_lr  # noqa: E402

COURSE_LR = 1e-3


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--home", help="a run store to use (else a fresh one under /tmp)")
    args = ap.parse_args()
    store = RunStore(args.home or tempfile.mkdtemp(prefix="cnnlab-bench-lrfind-"))
    print(f"machine: {cpu_flags()}; load average {os.getloadavg()[0]:.1f} {os.getloadavg()[1]:.1f} at the start")
    models = {
        "course CNN": ModelConfig(),
        "VGG16 transfer (offline)": ModelConfig(model="vgg16", weights="offline"),
    }
    for title, m in models.items():

        def run(use_cache: bool, m=m):
            return find_lr("thin_sections", m, TrainConfig(), LRRange(), store=store, use_cache=use_cache)

        first, t1 = timed(lambda: run(False))
        second, t2 = timed(lambda: run(False))
        third, t3 = timed(lambda: run(True))
        s = first.suggestion
        print(f"\n{title}: {first.label}")
        print(
            f"  {len(first.lrs)} of {first.steps_planned} steps ({first.extra['n_train']} training images, "
            f"precision {first.extra['precision']}), exploded: {first.exploded}"
        )
        print(
            f"  first test {t1:.1f} s (in-test {first.seconds:.1f} s); again, not from the store {t2:.1f} s; "
            f"from the store {t3 * 1000:.0f} ms (cached: {third.cached})"
        )
        print(f"  {first.sentence()}")
        print(f"  second test's suggestion {second.suggestion.learning_rate}")
        if s.learning_rate:
            print(f"  suggestion / course's 1e-3 = {s.learning_rate / COURSE_LR:.2f}")
    print(f"\nload average {os.getloadavg()[0]:.1f} {os.getloadavg()[1]:.1f} at the end")


if __name__ == "__main__":
    main()
