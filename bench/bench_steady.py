"""How steady is a calibration's multiply-add rate? The same short trainings timed in several new processes.

Usage (from the repository root):
    python bench/bench_steady.py [--processes 6] [--epochs 7] [--images 300] [--precision bfloat16]

Each process is started as the measuring process is (``python -m core.jobs.measure``'s warm-up: TensorFlow,
Keras, scikit-learn, the threads, then two throwaway first trainings) and times, through the calibration's own
path (:func:`core.jobs.estimate._timed`), the calibration's two networks (the course network, "big", and the
32 px one-block network, "small") and a network with 4x the course network's multiply-adds (64 filters, "wide"),
each for ``--epochs`` epochs on ``--images`` random images. Printed per process: every steady epoch (all but
the first), the rate the calibration solves from big and small when it keeps each run's median epoch and when it
keeps the fastest (:func:`core.jobs.estimate.epoch_prices`), and what each predicts for the wide network's epoch
against that network's mean epoch in the same process (the estimate extrapolates from the calibration's networks
to larger ones like this).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from machine import cpu_flags  # noqa: E402

NETWORKS = ("big", "small", "wide")


def child(precision: str, images: int, epochs: int) -> None:
    """One process: warmed as the measuring process is, then the three networks timed; one JSON line out."""
    sys.path.insert(0, str(ROOT))
    from core.jobs.child import first_trace, warm_up

    warm_up()
    from core.base.config import AugmentConfig, ModelConfig
    from core.jobs.estimate import CALIBRATION_RUNS, _timed

    first_trace()
    first_trace()
    cfgs = {"big": CALIBRATION_RUNS.big, "small": CALIBRATION_RUNS.small, "wide": ModelConfig(filters=64)}
    out = {}
    with tempfile.TemporaryDirectory(prefix="cnnlab-steady-") as tmp:
        for name, cfg in cfgs.items():
            t = _timed(cfg, AugmentConfig(), precision, images, epochs, Path(tmp))
            out[name] = t.later
            out["split"] = [t.n_train, t.n_val]
    print(json.dumps(out), flush=True)
    os._exit(0)  # skip TensorFlow's teardown


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--processes", type=int, default=6)
    ap.add_argument("--epochs", type=int, default=7)
    ap.add_argument("--images", type=int, default=300)
    ap.add_argument("--precision", default="bfloat16")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.precision, args.images, args.epochs)
        return
    sys.path.insert(0, str(ROOT))
    from core.base.config import ModelConfig
    from core.jobs.estimate import CALIBRATION_RUNS, epoch_prices
    from core.models.layer_table import layer_table

    macs = {
        k: layer_table(c).total_macs
        for k, c in (
            ("big", CALIBRATION_RUNS.big),
            ("small", CALIBRATION_RUNS.small),
            ("wide", ModelConfig(filters=64)),
        )
    }
    print(f"machine: {cpu_flags()}; load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(f"{args.processes} processes, {args.precision}, {args.images} random images, {args.epochs} epochs a network")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    cmd = [sys.executable, __file__, "--child", "--precision", args.precision]
    cmd += ["--images", str(args.images), "--epochs", str(args.epochs)]
    keep = {"median": statistics.median, "fastest": min}
    rates: dict[str, list[float]] = {k: [] for k in keep}
    errors: dict[str, list[float]] = {k: [] for k in keep}
    for i in range(args.processes):
        p = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, check=True)
        got = json.loads(p.stdout.strip().splitlines()[-1])
        nt, nv = got["split"]
        wide_mean = statistics.mean(got["wide"])
        print(f"process {i + 1}: load {os.getloadavg()[0]:.2f}")
        for k in NETWORKS:
            print(f"  {k:5s} steady epochs (s): {' '.join(f'{e:.3f}' for e in got[k])}")
        for name, f in keep.items():
            c, o = epoch_prices(macs["big"], f(got["big"]), macs["small"], f(got["small"]), nt, nv)
            wide = (3 * nt + nv) * macs["wide"] * c + (nt + nv) * o
            rates[name].append(1 / c / 1e9)
            errors[name].append(100 * (wide / wide_mean - 1))
            print(
                f"  {name:7s} epoch kept: rate {1 / c / 1e9:6.1f} G multiply-adds/s, {o * 1e3:.3f} ms an image; "
                f"wide epoch predicted {wide:.3f} s against its mean {wide_mean:.3f} s ({errors[name][-1]:+.0f}%)"
            )
    for name in keep:
        r, e = rates[name], errors[name]
        print(
            f"{name:7s} epoch kept: rate {min(r):.0f}-{max(r):.0f} G/s (median {statistics.median(r):.0f}); "
            f"wide predicted {min(e):+.0f}% to {max(e):+.0f}% of its mean epoch"
        )
    print(f"load average at the end {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
