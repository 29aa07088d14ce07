"""Calibration of a stored run: reliability bins, ECE and temperature scaling, how long they take and what they say.

Run from the repository root:  python bench/bench_calibration.py [--home DIR] [--repeats 20]

Trains (or, with ``--home`` holding them, fetches) the course network on the bundled thin_sections for
15 epochs and the VGG16 transfer model (offline weights) for 5, at the default ("auto") precision, through
``run_experiment``. For each run:

- the calibration as a page or ``compare`` gets it for a run trained since calibration was added (its
  validation predictions are kept with it: NumPy only), median and p90 of ``--repeats`` calls;
- the same run as one stored before (its arrays without the validation predictions): the first call
  loads the model and scores the validation images once, the second reads them from the store's cache;
- the numbers: ECE before and after, T, the validation cross-entropy before and after, the test accuracy
  before and after (equal), and the page's sentence.

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

from benchruns import as_old_run, course_runs, median_p90, print_end, print_start  # noqa: E402

from core.results.calibration import confidence_sentence  # noqa: E402
from core.store.runstore import RunRecord, RunStore  # noqa: E402
from core.training.heldout import run_calibration  # noqa: E402


def bench_run(title: str, rec: RunRecord, store: RunStore, repeats: int) -> None:
    cal = run_calibration(store, rec)
    print(f"\n{title} ({rec.run_id}, {rec.label}): {cal.before.n} test images, {cal.n_val} validation images")
    print(f"  kept validation predictions (NumPy only): {median_p90(lambda: run_calibration(store, rec), repeats)}")
    old = as_old_run(store, rec)
    t = time.perf_counter()
    first = run_calibration(store, old)
    loaded = time.perf_counter() - t
    t = time.perf_counter()
    run_calibration(store, old)
    cached = time.perf_counter() - t
    print(
        f"  an older run: first call (load the model, score the validation images) {loaded:.2f} s; "
        f"then from the cache {cached * 1000:.1f} ms; same T: {abs(first.temperature - cal.temperature) < 1e-3}"
    )
    print(
        f"  ECE {cal.before.ece:.3f} -> {cal.after.ece:.3f} after T = {cal.temperature:.3f}; "
        f"validation cross-entropy {cal.val_nll_before:.3f} -> {cal.val_nll_after:.3f}; "
        f"test accuracy {cal.test_accuracy_before:.3f} -> {cal.test_accuracy_after:.3f}; "
        f"mean confidence {cal.before.mean_confidence:.3f}"
    )
    bins = zip(cal.before.counts, cal.before.confidence, cal.before.accuracy, strict=True)
    print("  bins (count, mean confidence, accuracy):", [(n, c and round(c, 3), a and round(a, 3)) for n, c, a in bins])
    print(f"  {confidence_sentence(cal.before)}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--home", help="a run store holding the runs already (else a fresh one under /tmp)")
    ap.add_argument("--repeats", type=int, default=20)
    args = ap.parse_args()
    store = RunStore(args.home or tempfile.mkdtemp(prefix="cnnlab-bench-calibration-"))
    print_start()
    for title, rec in course_runs(store).items():
        bench_run(title, rec, store, args.repeats)
    print_end()


if __name__ == "__main__":
    main()
