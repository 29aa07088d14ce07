"""What the benchmarks that read stored runs share (bench_embedding, bench_saliency, bench_maximise,
bench_calibration, bench_mislabel): the lines they print first and last (machine, CPU flags, load average), the
timing helpers, and the two runs they measure, the course network and the VGG16 transfer model on the bundled
thin_sections, trained once or read from a store that has them.

core is imported inside the functions: a benchmark may point CNNLAB_HOME at its own store before core reads it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

from machine import cpu_flags

TITLES = ("course CNN", "VGG16 transfer")


def load_line(when: str) -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} {five:.1f} at the {when}"


def print_start() -> None:
    """The first line: the machine, its CPU flags and the load average."""
    print(f"machine: {cpu_flags()}; {load_line('start')}")


def print_end() -> None:
    print(f"\n{load_line('end')}")


def timed(fn: Callable[[], Any], repeats: int) -> tuple[str, Any]:
    """``fn`` called ``repeats`` times: its median and max in seconds, and its last answer."""
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return f"median {statistics.median(times):6.2f} s   max {max(times):6.2f} s  ({repeats}x)", out


def median_p90(fn: Callable[[], Any], repeats: int, digits: int = 1) -> str:
    """``fn`` called ``repeats`` times: its median and 90th percentile in milliseconds."""
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    times.sort()
    p90 = times[min(len(times) - 1, round(0.9 * (len(times) - 1)))]
    return f"median {statistics.median(times) * 1000:.{digits}f} ms, p90 {p90 * 1000:.{digits}f} ms"


def add_run_options(ap: argparse.ArgumentParser, home_help: str) -> None:
    """``--home DIR`` and ``--runs CNN_RUN VGG_RUN``: measure runs a store has instead of training them."""
    ap.add_argument("--home", default=None, help=home_help)
    ap.add_argument("--runs", nargs=2, metavar=("CNN_RUN", "VGG_RUN"), default=None)


def one_epoch_runs(store, run_ids: list[str] | None = None) -> dict[str, str]:
    """``{title: run id}``: the given runs, else the course network and the VGG16 transfer model (random base
    weights: the same arithmetic as ImageNet's) trained for 1 epoch on thin_sections (the timings of looking
    inside a run hardly depend on its weights)."""
    if run_ids:
        return dict(zip(TITLES, run_ids, strict=True))
    from core.base.config import ModelConfig, TrainConfig
    from core.training.experiment import run_experiment

    one = TrainConfig(epochs=1, batch_size=32)
    models = (ModelConfig(), ModelConfig(model="vgg16", weights="none"))
    return {
        title: run_experiment("thin_sections", m, one, store=store).run_id
        for title, m in zip(TITLES, models, strict=True)
    }


def course_runs(store) -> dict[str, Any]:
    """``{title: RunRecord}``: the course network (15 epochs) and the VGG16 transfer model (offline ImageNet
    weights, 5 epochs) on thin_sections at the default precision, trained or fetched from ``store``."""
    from core.base.config import ModelConfig, TrainConfig
    from core.training.experiment import run_experiment

    runs = (
        (ModelConfig(), TrainConfig(epochs=15)),
        (ModelConfig(model="vgg16", weights="offline"), TrainConfig(epochs=5)),
    )
    return {
        title: run_experiment("thin_sections", m, t, store=store) for title, (m, t) in zip(TITLES, runs, strict=True)
    }


def as_old_run(store, rec):
    """The run as if stored before validation predictions were kept (a copy under its own id)."""
    from core.store.runstore import RunRecord

    arrays = store.load_arrays(rec.run_id)
    old = RunRecord.from_dict({**rec.to_dict(), "run_id": rec.run_id + "-old", "created": time.time()})
    store.save(old, model=store.load_model(rec.run_id), arrays={k: v for k, v in arrays.items() if "val" not in k})
    return store.get(old.run_id)
