"""What a class challenge adds to a page's rerun and to a submission (issue 20): the set-aside check over a
student's run list and the per-challenge time budget read where a job is submitted.

    python bench/bench_challenge.py [--runs 200] [--challenges 3]

A throwaway store with ``--challenges`` challenges on tiny folders; the run list is ``--runs`` distinct
sources (the worst case: every run on its own upload or folder), checked as ui.resources.list_runs checks
them for a student. Prints medians in milliseconds.
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
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "bench")]

from machine import cpu_flags  # noqa: E402
from tinydata import write_tiny_dataset  # noqa: E402


def median_ms(f, n: int) -> float:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        f()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=200)
    p.add_argument("--challenges", type=int, default=3)
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp())
    os.environ["CNNLAB_HOME"] = str(tmp / "home")
    from core.jobs.challenge_rules import withheld_by
    from core.lab import Budgets, ChallengeBoard
    from core.store.challenges import time_budget_for
    from core.store.runstore import RunStore

    print(f"{cpu_flags()}; load average {os.getloadavg()[0]:.1f}")
    store = RunStore(tmp / "home")
    board = ChallengeBoard(store)
    empty = median_ms(lambda: withheld_by(store)("thin_sections"), 200)
    made = [
        board.create(f"C{i}", str(write_tiny_dataset(tmp / f"d{i}", per_class=6)), Budgets(max_seconds=30))
        for i in range(args.challenges)
    ]
    sources = ["drill_core", "thin_sections", *(str(tmp / f"upload{i}") for i in range(args.runs - 2))]

    def run_list() -> None:
        aside = withheld_by(store)
        [aside(s) for s in sources]

    listed = median_ms(run_list, 50)
    on_public = median_ms(lambda: time_budget_for(store, made[0].public), 200)
    elsewhere = median_ms(lambda: time_budget_for(store, "thin_sections"), 200)
    print(f"set-aside check, no challenge: {empty:.2f} ms")
    print(f"set-aside check of {len(sources)} distinct run sources, {len(made)} challenges: {listed:.2f} ms")
    print(f"time budget at a submission, a challenge's images: {on_public:.3f} ms; other data: {elsewhere:.3f} ms")
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
