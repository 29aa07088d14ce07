"""Press -> first batch: how long a training submitted to the worker waits before its first batch's progress.

Usage:
    python bench/bench_first_batch.py [presses] [parts] [--presses 10] [--epochs 3] [--gap 10]
        [--modes default|warm|cold|warm,cold]

- presses: the dashboard's path. One :class:`core.jobs.TrainingWorker` (1 slot, a fresh run store, the
  bundled thin_sections already decoded, as on a running server) gets ``--presses`` trainings of the
  course network (``--epochs`` epochs, a new seed each, so nothing comes from the store), one after the
  other with ``--gap`` seconds between the end of one and the next press (a student reading the result).
  For each press: submit -> the first batch's progress event (the job's snapshot polled every 5 ms),
  submit -> the first epoch's end, submit -> the job's end, and the sum of the run's own epoch times.
  ``--modes warm,cold`` runs two workers (``CNNLAB_WARM=1`` and ``=0``) with their presses interleaved,
  so both see the same load; ``default`` leaves ``CNNLAB_WARM`` as it is (the code before it existed).
- parts: what stands between the press and the first batch, each part timed once in a fresh interpreter
  with the worker's thread settings, cold and then warmed up as a warm training process is (scikit-learn
  and the throwaway training of :func:`core.jobs.child.first_trace` before the press): Python's start,
  importing the training code and TensorFlow, threads, the dataset read and hand-over (the memory-mapped
  cache), the split, then building the network, its pipeline and the first batch (tracing), through
  :func:`core.training.train.train_model`.

Prints the machine, the load average with every figure, then median and p90 per mode.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
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
from core.jobs import JobState, TrainingWorker  # noqa: E402
from core.store.runstore import RunStore  # noqa: E402
from core.training.experiment import resolve  # noqa: E402


def load() -> str:
    return "load " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def p90(xs: list[float]) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, round(0.9 * (len(s) - 1)))]


def press(w: TrainingWorker, epochs: int, seed: int) -> dict[str, float]:
    """One press: submit, then follow the job's snapshot until it ends."""
    t0 = time.perf_counter()
    job = w.submit("thin_sections", ModelConfig(), TrainConfig(epochs=epochs, seed=seed))
    first_batch = first_epoch = None
    while job.active:
        snap = job.snapshot()
        now = time.perf_counter() - t0
        if first_batch is None and (snap.batch >= 1 or snap.history.get("loss")):
            first_batch = now
        if first_epoch is None and snap.history.get("loss"):
            first_epoch = now
        time.sleep(0.005)
    total = time.perf_counter() - t0
    if job.state != JobState.DONE or job.result is None:
        raise SystemExit(f"job {job.id} {job.state}: {job.error}")
    epochs_sum = float(sum(job.result.epoch_seconds))
    return {
        "first_batch": first_batch if first_batch is not None else total,
        "first_epoch": first_epoch if first_epoch is not None else total,
        "total": total,
        "epochs_sum": epochs_sum,
    }


def presses(n: int, epochs: int, gap: float, modes: list[str]) -> None:
    workers = {}
    for mode in modes:
        if mode != "default":
            os.environ["CNNLAB_WARM"] = "1" if mode == "warm" else "0"
        w = TrainingWorker(RunStore(tempfile.mkdtemp(prefix=f"bench-first-{mode}-")), workers=1)
        resolve("thin_sections", ModelConfig(), TrainConfig(epochs=epochs), w.store)  # decoded, as on a server
        workers[mode] = w
    time.sleep(gap)  # the server has been up a while before the first press
    got: dict[str, list[dict[str, float]]] = {m: [] for m in modes}
    for i in range(n):
        for mode in modes:
            r = press(workers[mode], epochs, seed=1000 + i)
            got[mode].append(r)
            print(
                f"press {i + 1} {mode}: first batch {r['first_batch']:.2f} s, first epoch {r['first_epoch']:.2f} s, "
                f"done {r['total']:.2f} s, epochs {r['epochs_sum']:.2f} s; {load()}",
                flush=True,
            )
            time.sleep(gap)
    for w in workers.values():
        w.close()  # its warm training process ends
    for mode, rs in got.items():
        fb = [r["first_batch"] for r in rs]
        fe = [r["first_epoch"] for r in rs]
        tot = [r["total"] for r in rs]
        ratio = [r["total"] / r["epochs_sum"] for r in rs]
        print(
            f"{mode}: press -> first batch median {statistics.median(fb):.2f} s, p90 {p90(fb):.2f} s "
            f"(min {min(fb):.2f}, max {max(fb):.2f}); first epoch median {statistics.median(fe):.2f} s; "
            f"done median {statistics.median(tot):.2f} s; wall / sum of epochs median {statistics.median(ratio):.2f} "
            f"(n={len(rs)}); {load()}",
            flush=True,
        )


def parts() -> None:
    """Time each part of a start in a fresh interpreter (the child's environment): cold, then warmed up."""
    from core.jobs.process import child_env, threads_per_training

    resolve("thin_sections", ModelConfig(), TrainConfig(epochs=3))
    env = child_env(threads_per_training(1))
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True, env=env)
    bare = time.perf_counter() - t
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import core.jobs.child"], check=True, cwd=ROOT, env=env)
    core_import = time.perf_counter() - t - bare
    print(f"part python start (bare interpreter): {bare:.2f} s; {load()}")
    print(f"part importing core.jobs.child (numpy, the engine; not TensorFlow): {core_import:.2f} s")
    for how in ("cold", "warm"):
        out = subprocess.run(
            [sys.executable, __file__, "_parts", how], capture_output=True, text=True, cwd=ROOT, check=True, env=env
        )
        marks = json.loads(out.stdout.strip().splitlines()[-1])
        for name, sec in marks.items():
            print(f"part ({how}) {name}: {sec:.2f} s")
        print(f"{how}: {load()}")


def _parts(how: str) -> None:
    marks: dict[str, float] = {}
    t = time.perf_counter()

    def mark(name: str) -> None:
        nonlocal t
        now = time.perf_counter()
        marks[name] = now - t
        t = now

    import tensorflow as tf

    mark("tensorflow import")
    import keras  # noqa: F401

    mark("keras import")
    n = int(os.environ.get("TF_NUM_INTRAOP_THREADS") or 0)
    tf.config.threading.set_intra_op_parallelism_threads(n)
    tf.config.threading.set_inter_op_parallelism_threads(int(os.environ.get("TF_NUM_INTEROP_THREADS") or n))
    mark("threads")
    from core.jobs.child import dataset_from_payload, dataset_payload, first_trace, warm_up

    if how == "warm":
        warm_up()
        mark("warm-up: scikit-learn (before the press)")
        first_trace()
        mark("warm-up: the throwaway training (before the press)")
    from core.base.precision import settle_precision
    from core.data import prepare_data
    from core.training.train import train_model

    model_cfg, cfg = ModelConfig(), settle_precision(ModelConfig(), TrainConfig(epochs=1))
    ds, model_cfg, _ = resolve("thin_sections", model_cfg, cfg)
    payload = dataset_payload(ds, same_machine=True)
    mark("dataset read on the server (memory-mapped cache)")
    ds = dataset_from_payload(payload)
    data = prepare_data(ds)
    mark("dataset hand-over and split")
    first: list[float] = []

    def progress(ev) -> None:
        if ev.kind == "batch" and not first:
            first.append(time.perf_counter())

    t0 = t
    train_model(model_cfg, cfg, data, store=None, progress=progress)
    marks["build, compile, the pipeline and the first batch (tracing)"] = first[0] - t0
    print(json.dumps(marks))


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "_parts":
        return _parts(sys.argv[2])
    p = argparse.ArgumentParser()
    p.add_argument("what", nargs="*", default=["presses", "parts"])
    p.add_argument("--presses", type=int, default=10)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--gap", type=float, default=10.0)
    p.add_argument("--modes", default="default")
    a = p.parse_args()
    print(f"machine: {cpu_flags()}; python {sys.version.split()[0]}; {load()}", flush=True)
    if "parts" in a.what:
        parts()
    if "presses" in a.what:
        presses(a.presses, a.epochs, a.gap, a.modes.split(","))


if __name__ == "__main__":
    main()
