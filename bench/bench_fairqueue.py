"""The fair queue: how long classmates wait behind one student's sweep, fair order vs first come first served.

Usage:
    python bench/bench_fairqueue.py [--sweep 10] [--classmates 5]

One real worker with one training slot (``workers=1``), real trainings in their own processes (a tiny
CNN, 1 epoch on 20 % of thin_sections at 64 px). One student submits a sweep of ``--sweep`` trainings; a
moment later ``--classmates`` other students press Train once each. Twice, on fresh stores, with the same
configurations: once with each job owned by its student (the fair order, core.jobs.fairqueue), once with
every job owned by nobody, which is first come first served (one owner keeps the order of submission).
Prints, for the classmates: their place in the queue when they pressed Train, the seconds from the
press to their training's start (median and max), and those waits in units of one training's time (the
two runs may see different loads); when the sweep and everything ended; the load average.
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

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import cpu_flags  # noqa: E402

from core.base.config import ModelConfig, TrainConfig  # noqa: E402
from core.jobs import TrainingWorker  # noqa: E402
from core.store.runstore import RunStore  # noqa: E402

TINY = ModelConfig(input_size=64, blocks=1, filters=4, dense_units=8, dropout=0.0)
TINY_TRAIN = TrainConfig(epochs=1, batch_size=32, train_fraction=0.2)


def load() -> str:
    return "load " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def one_class(sweep: int, classmates: int, fair: bool, home: str) -> dict:
    w = TrainingWorker(RunStore(home), workers=1)
    t0 = time.time()
    mine = w.submit_many(
        "thin_sections",
        [(TINY, TINY_TRAIN.replace(seed=1000 + i)) for i in range(sweep)],
        owner="sweeper" if fair else None,
    )
    others = [
        w.submit("thin_sections", TINY, TINY_TRAIN.replace(seed=2000 + k), owner=f"student{k}" if fair else None)
        for k in range(classmates)
    ]
    places = [j.position or 0 for j in others]
    for j in mine + others:
        w.wait(j, timeout=1800)
    waits = [j.started - j.submitted for j in others]
    per_training = statistics.median(j.finished - j.started for j in mine + others)
    result = {
        "places": places,
        "median": statistics.median(waits),
        "max": max(waits),
        "sweep_done": max(j.finished for j in mine) - t0,
        "all_done": max(j.finished for j in mine + others) - t0,
        "per_training": per_training,
        "in_trainings": [round(x / per_training, 1) for x in sorted(waits)],
    }
    w.close()
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sweep", type=int, default=10)
    ap.add_argument("--classmates", type=int, default=5)
    args = ap.parse_args()
    print(f"# {cpu_flags()}; {time.strftime('%Y-%m-%d %H:%M')}; {load()}")
    print(f"# one sweep of {args.sweep} trainings, then {args.classmates} classmates press Train once; 1 slot")
    homes = [tempfile.mkdtemp(prefix="cnnlab-fairq-") for _ in range(2)]  # kept until the end: a worker's
    for fair, home in zip((True, False), homes, strict=True):  # thread still beats its heartbeat there
        r = one_class(args.sweep, args.classmates, fair, home)
        name = "fair (round robin by student)" if fair else "first come first served"
        print(
            f"{name}: classmates' places {r['places']}; wait to start median {r['median']:.1f} s, "
            f"max {r['max']:.1f} s; the sweep's last training ended at {r['sweep_done']:.1f} s, everything at "
            f"{r['all_done']:.1f} s; one training {r['per_training']:.1f} s (median), so the waits are "
            f"{r['in_trainings']} trainings' time; {load()}",
            flush=True,
        )
    for home in homes:
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
