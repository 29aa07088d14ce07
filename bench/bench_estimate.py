"""The estimate of the whole wait against real trainings, on both paths a student uses.

Usage:
    python bench/bench_estimate.py [--only 1,4] [--paths cli,child] [--repeats 1] [--out rows.jsonl]

Calibrates this machine (:func:`core.jobs.estimate.calibrate`: a new process, timed from its start) for
float32 and this CPU's ``auto`` precision in a temporary CNNLAB_HOME, so the measurement is fresh; then for
each configuration, interleaved:

- **cli**: the estimate for a new process (``where="new process"``), then the wall time of
  ``python -m core train ... --no-cache --json`` run as a command (Python, TensorFlow, the data read from
  the store's decoded cache, building, the epochs, testing, saving: what a student at a terminal waits for);
- **child**: the estimate for the dashboard's path (``where`` = warm when the worker's training process is
  ready), then the wall time from :meth:`core.jobs.TrainingWorker.submit` to the job's end, through the real
  worker and its warm training process (``CNNLAB_WARM=1``, one slot; the bench waits until the warm process
  is ready before each press, as a student's next press usually finds it).

Each path has its own store (so VGG16's features are extracted in both); the bundled datasets are decoded
into both stores' caches and the offline VGG16 weights are put in both before anything is timed (the first
read of a dataset at a new size, and the first use of the offline weights on a server, are not estimated).
The estimate samples how many cores other processes keep busy just before each run and scales by
:func:`core.jobs.estimate.load_factor`. Target (issue 22): every configuration within +-35% of the wall time.
``--repeats N`` runs the configurations N times in turn after the one calibration and prints, per configuration
and path, how far its real waits spread (the largest over the smallest): what no estimate made before a run can
know.
"""

from __future__ import annotations

import argparse
import json
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

import numpy as np  # noqa: E402
from machine import cpu_flags  # noqa: E402

from core.base.precision import run_precision  # noqa: E402
from core.cli.parser import build_parser, model_config, train_config  # noqa: E402
from core.data import load_dataset  # noqa: E402
from core.jobs.estimate import COLD, NEW_PROCESS, WARM, calibrate, estimate, estimate_text, others_busy  # noqa: E402
from core.store.runstore import RunStore  # noqa: E402

# (name, the `train` command's flags), about 3 s to about 3 min (quiet machine), small to large.
CONFIGS = [
    (
        "tiny: 32 px, 1 block of 8, seismic_facies, 3 epochs",
        "--data seismic_facies --input-size 32 --blocks 1 --filters 8 --epochs 3",
    ),
    ("the issue's: seismic_facies, 16 filters, 8 epochs", "--data seismic_facies --filters 16 --epochs 8"),
    ("course network, drill_core, 10 epochs", "--data drill_core --epochs 10"),
    ("course network, thin_sections, 3 epochs", "--data thin_sections --epochs 3"),
    ("course network + augmentation, 5 epochs", "--data thin_sections --epochs 5 --augment"),
    ("course network, float32, 8 epochs", "--data thin_sections --epochs 8 --precision float32"),
    ("course network, 20 epochs (the course's run)", "--data thin_sections --epochs 20"),
    ("wide: 64 filters, 4 epochs", "--data thin_sections --filters 64 --epochs 4"),
    (
        "128 px, 4 blocks of 16, batchnorm + augmentation, 3 epochs",
        "--data thin_sections --input-size 128 --blocks 4 --filters 16 --batchnorm --augment --epochs 3",
    ),
    ("VGG16 transfer, offline weights, 20 epochs", "--data thin_sections --model vgg16 --weights offline --epochs 20"),
    ("course network, seismic_facies at 128 px, 10 epochs", "--data seismic_facies --input-size 128 --epochs 10"),
    (
        "VGG16 transfer + 3 epochs fine-tuning, offline weights",
        "--data thin_sections --model vgg16 --weights offline --epochs 5 --fine-tune-epochs 3",
    ),
    (
        "course network at 128 px + augmentation, float32, 20 epochs",
        "--data thin_sections --input-size 128 --augment --precision float32 --epochs 20",
    ),
]


def configs_of(flags: str):
    args = build_parser().parse_args(["train", *flags.split()])
    return args.data, model_config(args), train_config(args)


def prepare_store(home: Path, data_sizes: set[tuple[str, int]], vgg: bool) -> None:
    """The decoded datasets and the offline VGG16 weights in ``home``'s store, as on a server that has run."""
    store = RunStore(home)
    for source, size in data_sizes:
        load_dataset(source, image_size=size, cache_dir=store.cache_dir)
    if vgg:
        from core.models.weight_files import offline_weights

        offline_weights(store)


def run_cli(flags: str, home: Path) -> float:
    env = {**os.environ, "CNNLAB_HOME": str(home), "PYTHONPATH": str(ROOT)}
    t0 = time.perf_counter()
    p = subprocess.run(
        [sys.executable, "-m", "core", "train", *flags.split(), "--no-cache", "--json"],
        env=env,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    seconds = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"train failed: {p.stderr.strip().splitlines()[-1:]}")
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="", help="comma-separated config numbers (from 1)")
    ap.add_argument("--paths", default="cli,child")
    ap.add_argument("--out", default=None, help="append one JSON line per measurement here")
    ap.add_argument("--repeats", type=int, default=1, help="run the configurations this many times in turn")
    args = ap.parse_args()
    paths = args.paths.split(",")
    picked = [int(i) for i in args.only.split(",") if i] or list(range(1, len(CONFIGS) + 1))
    configs = [(i, *CONFIGS[i - 1]) for i in picked]
    print(f"machine: {cpu_flags()}; load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="cnnlab-bench-estimate-") as tmp:
        tmp = Path(tmp)
        cal_home, homes = tmp / "calibration", {"cli": tmp / "cli", "child": tmp / "child"}
        parsed = {i: configs_of(flags) for i, _, flags in configs}
        precisions = sorted({run_precision(m, t) for _, m, t in parsed.values()})
        cals = {}
        for p in precisions:
            load = os.getloadavg()[0]
            t0 = time.perf_counter()
            cals[p] = c = calibrate(cal_home, p)
            print(
                f"calibration {p}: {time.perf_counter() - t0:.1f} s wall (the new process's start "
                f"{c.process_seconds:.1f} s, the VGG16 run {c.vgg_run_seconds:.1f} s); "
                f"{c.macs_per_second / 1e9:.1f} G multiply-adds/s, "
                f"{1000 * c.seconds_per_image:.3f} ms per image, augmentation {1e9 * c.augment_seconds_per_pixel:.2f} "
                f"ns per pixel, build + trace {c.start_seconds:.2f} s + {c.start_seconds_per_layer:.3f} s per layer "
                f"(+ {c.augment_start_seconds:.2f} s augmenting), a first fit {c.first_fit_seconds:.2f} s, "
                f"test and save {c.finish_seconds:.2f} s + {1e6 * c.save_seconds_per_param:.2f} s per M parameters; "
                f"VGG16: base forward {c.vgg_macs_per_second / 1e9:.1f} G multiply-adds/s, a head epoch "
                f"{c.vgg_head_epoch_seconds:.3f} s, fine-tuning {c.vgg_tune_macs_per_second / 1e9:.1f} G/s, build + "
                f"traces {c.vgg_start_seconds:.2f} s (+ {c.vgg_tune_start_seconds:.2f} s fine-tuning), test and save "
                f"{c.vgg_finish_seconds:.2f} s; "
                f"other processes had {c.others_cores:.1f} threads ready to run; load {load:.2f}",
                flush=True,
            )
        sizes = {(src, m.input_size) for src, m, _ in parsed.values()}
        vgg = any(m.model == "vgg16" for _, m, _ in parsed.values())
        for home in homes.values():
            prepare_store(home, sizes, vgg)
        worker = None
        if "child" in paths:
            os.environ["CNNLAB_HOME"] = str(homes["child"])
            os.environ["CNNLAB_WARM"] = "1"
            from core.jobs import TrainingWorker

            worker = TrainingWorker(RunStore(homes["child"]), workers=1)
        try:
            for repeat, (i, name, flags) in ((r, c) for r in range(args.repeats) for c in configs):
                source, m, t = parsed[i]
                ds = load_dataset(source, image_size=m.input_size, cache_dir=RunStore(homes["cli"]).cache_dir)
                n, m = len(ds), m.replace(num_classes=len(ds.class_names))
                cal = cals[run_precision(m, t)]
                for path in paths:
                    if worker is not None:  # its fresh warm process imports TensorFlow: not during a timed run
                        worker.executor.pool.wait_ready(180)
                    others = others_busy()
                    where = NEW_PROCESS if path == "cli" else (WARM if worker.warm_start() else COLD)
                    est = estimate(m, t, n, calibration=cal, others=others, where=where)
                    load = os.getloadavg()[0]
                    if path == "cli":
                        actual = run_cli(flags, homes["cli"])
                    else:
                        t0 = time.perf_counter()
                        job = worker.submit(source, m, t, use_cache=False)
                        worker.wait(job)
                        actual = time.perf_counter() - t0
                        if job.state != "done":
                            raise SystemExit(f"job {job.state}: {job.error}")
                    err = est.seconds / actual - 1
                    row = {
                        "config": i,
                        "repeat": repeat + 1,
                        "name": name,
                        "path": path,
                        "where": where,
                        "flags": flags,
                        "images": n,
                        "estimate": est.seconds,
                        "actual": actual,
                        "error": err,
                        "start": est.start_seconds,
                        "build": est.build_seconds,
                        "epochs": est.epochs_seconds,
                        "test": est.test_seconds,
                        "load_factor": est.load_factor,
                        "others": others,
                        "load": load,
                        "text": estimate_text(est),
                    }
                    rows.append(row)
                    if args.out:
                        with open(args.out, "a") as f:
                            f.write(json.dumps(row) + "\n")
                    print(
                        f"{i:2d} {path:5s} {where:11s} {name:60s} {n:5d} images: estimate {est.seconds:6.1f} s "
                        f"(start {est.start_seconds:.1f} + build {est.build_seconds:.1f} + epochs "
                        f"{est.epochs_seconds:.1f} + test {est.test_seconds:.1f}), actual {actual:6.1f} s, error "
                        f"{100 * err:+4.0f}% (others {others:.1f} threads: x{est.load_factor:.2f}; load {load:.2f})",
                        flush=True,
                    )
        finally:
            if worker is not None:
                worker.close()
    errs = np.array([r["error"] for r in rows])
    if args.repeats > 1:
        for i, name, _ in configs:
            for path in paths:
                waits = [r["actual"] for r in rows if r["config"] == i and r["path"] == path]
                print(
                    f"{i:2d} {path:5s} {name:60s} real waits {' '.join(f'{w:.1f}' for w in waits)} s: "
                    f"the largest {max(waits) / min(waits):.2f}x the smallest"
                )
    for path in paths:
        e = np.array([r["error"] for r in rows if r["path"] == path])
        print(
            f"{path}: {int(np.sum(np.abs(e) <= 0.35))} of {len(e)} within +-35%; "
            f"mean |error| {100 * np.mean(np.abs(e)):.0f}%"
        )
    print(
        f"all: {int(np.sum(np.abs(errs) <= 0.35))} of {len(errs)} within +-35%; load average at the end "
        f"{' '.join(f'{v:.2f}' for v in os.getloadavg())} (machine shared)"
    )


if __name__ == "__main__":
    main()
