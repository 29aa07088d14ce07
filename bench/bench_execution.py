"""Trainings in child processes: the server's memory, the overhead, 1 vs 2 workers, and a Dask cluster.

Usage:
    python bench/bench_execution.py [memory] [overhead] [throughput] [scaleout]   (default: all four)
        [--n 30] [--inprocess-n 10] [--epochs 20]

Prints, each figure with the load average at the time (other programs may share the CPU):
- memory: the serving process's resident memory (VmRSS) before and after ``--n`` consecutive small
  trainings through the worker (each in its own process; target: growth < 100 MB), and the same
  for ``--inprocess-n`` trainings in one process (the old path), extrapolated to ``--n``;
- overhead: a ``--epochs``-epoch course training (the course CNN, thin_sections, 1,000 images)
  in-process with TensorFlow already imported vs through the worker's child process, which
  imports TensorFlow itself (target: <= 1.1x wall);
- throughput: 4 small trainings with 1 worker and with 2 workers (wall);
- scaleout: a LocalCluster of 2 worker processes on 127.0.0.1 runs 4 tiny trainings; their keys
  against the local ones; the same 4 again (must train nothing).
"""

from __future__ import annotations

import argparse
import os
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

SMALL = ModelConfig(input_size=64, blocks=2, filters=8, dense_units=16, dropout=0.0)
SMALL_TRAIN = TrainConfig(epochs=2, batch_size=32, train_fraction=0.3)
TINY = ModelConfig(input_size=64, blocks=1, filters=4, dense_units=8, dropout=0.0)
TINY_TRAIN = TrainConfig(epochs=1, batch_size=32, train_fraction=0.2)


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def load() -> str:
    return "load " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def run_jobs(w: TrainingWorker, configs, source="thin_sections"):
    jobs = [w.submit(source, m, t) for m, t in configs]
    for j in jobs:
        w.wait(j)
        if j.state != JobState.DONE:
            raise SystemExit(f"job {j.id} {j.state}: {j.error}")
    return jobs


def memory(n: int, inprocess_n: int) -> None:
    home = tempfile.mkdtemp(prefix="bench-exec-mem-")
    w = TrainingWorker(RunStore(home), workers=1)
    resolve("thin_sections", SMALL, SMALL_TRAIN)  # the dataset decoded once, as a server would have it
    run_jobs(w, [(SMALL, SMALL_TRAIN.replace(seed=1000))])  # one first job: the worker's own threads exist
    before = rss_mb()
    t = time.perf_counter()
    run_jobs(w, [(SMALL, SMALL_TRAIN.replace(seed=i)) for i in range(n)])
    after = rss_mb()
    print(
        f"memory, worker: {n} trainings in {time.perf_counter() - t:.0f} s; server RSS {before:.0f} -> "
        f"{after:.0f} MB, growth {after - before:+.0f} MB (target < 100); TensorFlow imported in the server: "
        f"{'tensorflow' in sys.modules}; {load()}",
        flush=True,
    )
    out = subprocess.run(
        [sys.executable, __file__, "_inprocess", str(inprocess_n)], capture_output=True, text=True, cwd=ROOT, check=True
    )
    first, last = (float(x) for x in out.stdout.split())
    per = (last - first) / max(1, inprocess_n - 1)
    print(
        f"memory, in-process (the old path): RSS after training 1 {first:.0f} MB, after {inprocess_n} "
        f"{last:.0f} MB: {per:+.1f} MB per training, {per * (n - 1):+.0f} MB over {n} (extrapolated); {load()}",
        flush=True,
    )


def _inprocess(n: int) -> None:
    from core.training.experiment import run_experiment

    store = RunStore(tempfile.mkdtemp(prefix="bench-exec-inproc-"))
    marks = []
    for i in range(n):
        run_experiment("thin_sections", SMALL, SMALL_TRAIN.replace(seed=i), store=store)
        marks.append(rss_mb())
    print(marks[0], marks[-1])


def overhead(epochs: int) -> None:
    cfg = TrainConfig(epochs=epochs)
    model = ModelConfig()
    out = subprocess.run(
        [sys.executable, __file__, "_inprocess_course", str(epochs)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    inproc = float(out.stdout.split()[-1])
    print(f"overhead, in-process (TensorFlow already imported): {inproc:.1f} s; {load()}", flush=True)
    w = TrainingWorker(RunStore(tempfile.mkdtemp(prefix="bench-exec-over-")), workers=1)
    resolve("thin_sections", model, cfg)  # the server has the dataset decoded (the in-process run did too)
    t = time.perf_counter()
    run_jobs(w, [(model, cfg)])
    child = time.perf_counter() - t
    print(
        f"overhead, child process (spawn + TensorFlow import + data + train + save): {child:.1f} s; "
        f"ratio {child / inproc:.3f} (target <= 1.1); {load()}",
        flush=True,
    )


def _inprocess_course(epochs: int) -> None:
    import tensorflow as tf  # noqa: F401  (a server that trains in-process has it imported already)

    from core.training.experiment import run_experiment

    store = RunStore(tempfile.mkdtemp(prefix="bench-exec-course-"))
    run_experiment("thin_sections", TINY, TINY_TRAIN, store=store)  # warm: the first fit builds TF's runtime
    resolve("thin_sections", ModelConfig(), TrainConfig(epochs=epochs))
    t = time.perf_counter()
    run_experiment("thin_sections", ModelConfig(), TrainConfig(epochs=epochs), store=store)
    print(time.perf_counter() - t)


def throughput() -> None:
    configs = [(SMALL, SMALL_TRAIN.replace(epochs=4, train_fraction=1.0, seed=200 + i)) for i in range(4)]
    for workers in (1, 2):
        w = TrainingWorker(RunStore(tempfile.mkdtemp(prefix=f"bench-exec-tp{workers}-")), workers=workers)
        resolve("thin_sections", SMALL, SMALL_TRAIN)
        t = time.perf_counter()
        jobs = run_jobs(w, configs)
        wall = time.perf_counter() - t
        train = sum(j.result.seconds for j in jobs)
        print(
            f"throughput, {workers} worker(s) x {max(1, (os.cpu_count() or 1) // workers)} thread(s): 4 trainings "
            f"in {wall:.1f} s wall ({train:.1f} s of fit time in the children); {load()}",
            flush=True,
        )


def scaleout() -> None:
    from distributed import LocalCluster

    from core.jobs.dask_executor import DaskExecutor

    configs = [(TINY, TINY_TRAIN.replace(seed=300 + i)) for i in range(4)]
    local_keys = [resolve("thin_sections", m, t)[2] for m, t in configs]
    store = RunStore(tempfile.mkdtemp(prefix="bench-exec-dask-"))
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    ) as cluster:
        ex = DaskExecutor(cluster.scheduler_address)
        w = TrainingWorker(store, executor=ex)
        t = time.perf_counter()
        jobs = run_jobs(w, configs)
        wall = time.perf_counter() - t
        keys = [store.get(j.result.run_id).key for j in jobs]
        t = time.perf_counter()
        again = run_jobs(w, configs)
        repeat = time.perf_counter() - t
        ex.close()
    print(
        f"scaleout: LocalCluster 2 workers on 127.0.0.1, 4 tiny trainings in {wall:.1f} s wall; keys equal to "
        f"the local executor's: {keys == local_keys}; runs in the server's store: {len(store.list_runs())}; "
        f"repeat: {sum(j.snapshot().cached for j in again)}/4 from the store, trained nothing, "
        f"{repeat:.2f} s; {load()}",
        flush=True,
    )


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "_inprocess":
        return _inprocess(int(sys.argv[2]))
    if len(sys.argv) > 2 and sys.argv[1] == "_inprocess_course":
        return _inprocess_course(int(sys.argv[2]))
    p = argparse.ArgumentParser()
    p.add_argument("parts", nargs="*", default=["memory", "overhead", "throughput", "scaleout"])
    p.add_argument("--n", type=int, default=30)
    p.add_argument("--inprocess-n", type=int, default=10)
    p.add_argument("--epochs", type=int, default=20)
    a = p.parse_args()
    print(f"machine: {cpu_flags()}; python {sys.version.split()[0]}; {load()}", flush=True)
    for part in a.parts:
        if part == "memory":
            memory(a.n, a.inprocess_n)
        elif part == "overhead":
            overhead(a.epochs)
        elif part == "throughput":
            throughput()
        elif part == "scaleout":
            scaleout()


if __name__ == "__main__":
    main()
