"""The held-out images most likely mislabelled: how long the ranking takes, and whether it finds planted labels.

Run from the repository root:  python bench/bench_mislabel.py [--home DIR] [--repeats 10] [--planted 20]

1. Timing, on the course network (thin_sections, 15 epochs) and the VGG16 transfer model (offline weights,
   5 epochs), trained or, with ``--home`` holding them, fetched through ``run_experiment`` (the runs of
   bench_calibration.py): :func:`core.training.run_mislabels` for a run that kept its validation
   predictions (the dataset read again from the store's cache and split, for the validation images' files;
   NumPy ranking), median and p90 of ``--repeats`` calls; and for the same run stored before validation
   predictions were kept, the first call (load the model, score the validation images) and the second.
2. Quality: a copy of thin_sections with ``--planted`` images of one class copied into another class'
   folder (wrong labels), the course network trained on it (15 epochs), and where the planted images that
   landed in the validation and test splits rank among all held-out images.

Prints the machine, CPU flags and load average.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from benchruns import as_old_run, course_runs, median_p90, print_end, print_start  # noqa: E402

from core.base.config import ModelConfig, TrainConfig  # noqa: E402
from core.store.runstore import RunRecord, RunStore  # noqa: E402
from core.training.experiment import run_experiment  # noqa: E402
from core.training.heldout import run_mislabels  # noqa: E402


def bench_run(title: str, rec: RunRecord, store: RunStore, repeats: int) -> None:
    found = run_mislabels(store, rec)
    print(f"\n{title} ({rec.run_id}, {rec.label}): {found.counts}, {found.n_flagged} flagged")
    print(f"  kept validation predictions: {median_p90(lambda: run_mislabels(store, rec), repeats, digits=0)}")
    old = as_old_run(store, rec)
    t = time.perf_counter()
    run_mislabels(store, old)
    first = time.perf_counter() - t
    t = time.perf_counter()
    run_mislabels(store, old)
    print(f"  an older run: first call {first:.2f} s, then {(time.perf_counter() - t) * 1000:.0f} ms")
    for s in found.suspects[:5]:
        names = found.class_names
        print(
            f"  {s.split} #{s.index} {s.file}: labelled {names[s.label]} {s.own_probability:.1%}, "
            f"says {names[s.predicted]} {s.predicted_probability:.1%}{' (flagged)' if s.flagged else ''}"
        )


def planted_run(store: RunStore, n: int, work: Path) -> None:
    src = ROOT / "sample_data" / "thin_sections"
    data = work / "thin_sections_planted"
    if not data.exists():
        shutil.copytree(src, data, ignore=shutil.ignore_patterns("*.md", "*.txt", "*.json"))
        classes = sorted(p.name for p in data.iterdir() if p.is_dir())
        a, b = classes[0], classes[1]
        for f in sorted((data / a).iterdir())[:n]:
            shutil.copy(f, data / b / f"planted_{f.name}")
    t = time.perf_counter()
    rec = run_experiment(str(data), ModelConfig(), TrainConfig(epochs=15), store=store)
    print(f"\nplanted: {n} images copied into another class; trained in {time.perf_counter() - t:.0f} s")
    found = run_mislabels(store, rec, k=10_000)
    ranks = [r for r, s in enumerate(found.suspects, 1) if s.file and "/planted_" in s.file]
    flagged = sum(found.suspects[r - 1].flagged for r in ranks)
    print(
        f"  {len(ranks)} planted images among the {found.n} held-out images ({found.counts}); test accuracy "
        f"{rec.test['accuracy']:.3f}. Their ranks: {ranks}; in the top {len(ranks)}: "
        f"{sum(r <= len(ranks) for r in ranks)}; in the top 12 (the gallery): {sum(r <= 12 for r in ranks)}; "
        f"flagged {flagged} of {len(ranks)}; {found.n_flagged} flagged in all"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--home", help="a run store holding the runs already (else a fresh one under /tmp)")
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--planted", type=int, default=20, help="wrong labels to plant (0: skip the quality part)")
    args = ap.parse_args()
    work = Path(args.home or tempfile.mkdtemp(prefix="cnnlab-bench-mislabel-"))
    store = RunStore(work)
    print_start()
    for title, rec in course_runs(store).items():
        bench_run(title, rec, store, args.repeats)
    if args.planted:
        planted_run(store, args.planted, work)
    print_end()


if __name__ == "__main__":
    main()
