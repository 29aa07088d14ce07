"""The overfitting lab on the bundled thin sections: do the cures close the train-val gap?

Usage:
    python bench/bench_lab.py [--data thin_sections] [--fraction 0.2] [--epochs 30] [--seed 42] [--home DIR]

Trains the lab's five variants (the course CNN; baseline, + dropout, + augmentation,
+ early stopping, + all three) on the same split and seed, in a fresh run store (a
temporary folder unless --home is given, so every variant really trains and its time
is real). Prints:

- the lab's table (best-epoch validation accuracy, train-val gap at the last epoch,
  test accuracy, epochs run, training time) and its summary;
- the check the lab exists to show: the baseline's gap is clearly larger (by at least
  --margin, default 0.10) than the fully regularised variant's;
- how long the same lab takes the second time (every variant from the store).

Exit code 1 when the check fails. Trains five models: a few minutes on a laptop CPU.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="thin_sections")
    p.add_argument("--fraction", type=float, default=0.2)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--home", default=None, help="run store folder (default: a fresh temporary one)")
    p.add_argument("--margin", type=float, default=0.10, help="how much larger the baseline's gap must be")
    args = p.parse_args(argv)

    from core.base.tables import print_table
    from core.lab.results import LAB_COLUMNS, lab_cells, lab_rows, lab_summary
    from core.lab.variants import lab_variants, run_lab
    from core.store.runstore import RunStore

    home = args.home or tempfile.mkdtemp(prefix="cnnlab-bench-lab-")
    store = RunStore(home)
    variants = lab_variants(fraction=args.fraction, epochs=args.epochs, seed=args.seed)
    print(
        f"Overfitting lab: {args.data}, {args.fraction:.0%} of the training images, up to {args.epochs} epochs, "
        f"seed {args.seed}, the course CNN; store {home}"
    )
    print(f"Machine: {platform.machine()}, {os.cpu_count()} cores (shared), Python {platform.python_version()}")

    def report(i: int, v, rec) -> None:
        how = "stored" if rec.cached else f"{rec.seconds:.1f} s"
        print(f"  [{i + 1}/{len(variants)}] {v.title}: {len(rec.history['loss'])} epochs, {how}", flush=True)

    t0 = time.perf_counter()
    records = run_lab(args.data, variants, store=store, on_variant=report)
    wall = time.perf_counter() - t0
    rec0 = records[0]
    print(
        f"Data: {rec0.data['n_train']} training / {rec0.data['n_val']} validation / {rec0.data['n_test']} test "
        f"images; {rec0.layers['total_params']:,} weights (baseline)"
    )
    print()
    rows = lab_rows(variants, records)
    print_table([lab_cells(r) for r in rows], LAB_COLUMNS)
    print()
    for line in lab_summary(rows):
        print(line)
    print()
    import tensorflow as tf

    print(
        f"First lab: {wall:.1f} s wall time (TensorFlow {tf.__version__}); "
        f"{sum(not r.cached for r in records)} of {len(records)} variants trained"
    )

    t0 = time.perf_counter()
    again = run_lab(args.data, variants, store=store)
    print(
        f"Same lab again: {time.perf_counter() - t0:.2f} s, {sum(r.cached for r in again)} of {len(again)} "
        "variants from the store"
    )

    by = {r["variant"]: r for r in rows}
    base, full = by["baseline"]["final_gap"], by["all"]["final_gap"]
    ok = base - full >= args.margin
    print(
        f"Check: baseline gap {base:+.3f} vs all three {full:+.3f} (difference {base - full:.3f}, "
        f"needs >= {args.margin:.2f}): {'PASS' if ok else 'FAIL'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
