"""How steady and how right is a calibration's price of an epoch? Short trainings timed in several new processes.

Usage (from the repository root):
    python bench/bench_steady.py [--processes 6] [--epochs 7] [--images 300] [--precision bfloat16]
                                 [--networks course,small32,wide] [--smalls small32]

Each process is started as the measuring process is (``python -m core.jobs.measure``'s warm-up: TensorFlow,
Keras, scikit-learn, the threads, then two throwaway first trainings) and times, through the calibration's own
path (:func:`core.jobs.estimate._timed`), each of ``--networks`` (names below) for ``--epochs`` epochs on
``--images`` random images. Printed per process: every steady epoch (all but the first); then, for each
``--smalls`` network, the rate and per-image price the calibration solves from the course network and that small
one (:func:`core.jobs.estimate.epoch_prices`) when it keeps each run's median epoch and when it keeps the fastest,
and what each predicts for every other network's epoch against that network's mean epoch in the same process
(the estimate extrapolates from the calibration's networks like this). At the end, per small network and way of
keeping: the rates' range and the predictions' mean |error|.
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
sys.path.insert(0, str(ROOT))
from machine import cpu_flags  # noqa: E402

from core.base.config import ModelConfig  # noqa: E402

NETWORKS = {
    "course": ModelConfig(),  # the calibration's large network
    "small32": ModelConfig(input_size=32, blocks=1, filters=8, dense_units=16, dropout=0.0),  # its small one to v4
    "small64": ModelConfig(input_size=64, blocks=1, filters=8, dense_units=16, dropout=0.0),  # its small one since
    "wide": ModelConfig(filters=64),  # 4x the course network's multiply-adds
    "f8": ModelConfig(filters=8),
    "f16": ModelConfig(filters=16),  # the example network
    "f24": ModelConfig(filters=24),
    "f48": ModelConfig(filters=48),
    "p128f16": ModelConfig(input_size=128, blocks=4, filters=16),
}
KEEP = {"median": statistics.median, "fastest": min}


def child(names: list[str], precision: str, images: int, epochs: int) -> None:
    """One process: warmed as the measuring process is, then the networks timed; one JSON line out."""
    from core.jobs.child import first_trace, warm_up

    warm_up()
    from core.base.config import AugmentConfig
    from core.jobs.estimate import _timed

    first_trace()
    first_trace()
    out = {}
    with tempfile.TemporaryDirectory(prefix="cnnlab-steady-") as tmp:
        for name in names:
            t = _timed(NETWORKS[name], AugmentConfig(), precision, images, epochs, Path(tmp))
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
    ap.add_argument("--networks", default="course,small32,wide", help=f"of {', '.join(NETWORKS)}")
    ap.add_argument("--smalls", default="small32", help="the small networks to solve the prices with")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    names, smalls = args.networks.split(","), args.smalls.split(",")
    if args.child:
        child(names, args.precision, args.images, args.epochs)
        return
    if "course" not in names or not set(smalls) <= set(names) or not set(names) <= set(NETWORKS):
        raise SystemExit(f"--networks must hold course and every --smalls network, from: {', '.join(NETWORKS)}")
    from core.jobs.estimate import epoch_prices
    from core.models.layer_table import layer_table

    macs = {k: layer_table(NETWORKS[k]).total_macs for k in names}
    print(f"machine: {cpu_flags()}; load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(f"{args.processes} processes, {args.precision}, {args.images} random images, {args.epochs} epochs a network")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    cmd = [sys.executable, __file__, "--child", "--precision", args.precision, "--networks", args.networks]
    cmd += ["--images", str(args.images), "--epochs", str(args.epochs)]
    rates: dict[tuple[str, str], list[float]] = {(s, k): [] for s in smalls for k in KEEP}
    errors: dict[tuple[str, str], list[float]] = {(s, k): [] for s in smalls for k in KEEP}
    for i in range(args.processes):
        p = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, check=True)
        got = json.loads(p.stdout.strip().splitlines()[-1])
        nt, nv = got["split"]
        print(f"process {i + 1}: load {os.getloadavg()[0]:.2f}")
        for k in names:
            print(f"  {k:8s} steady epochs (s): {' '.join(f'{e:.3f}' for e in got[k])}")
        for small in smalls:
            for keep, f in KEEP.items():
                c, o = epoch_prices(macs["course"], f(got["course"]), macs[small], f(got[small]), nt, nv)
                rates[(small, keep)].append(1 / c / 1e9)
                said = []
                for k in names:
                    if k in ("course", small):
                        continue
                    predicted = (3 * nt + nv) * macs[k] * c + (nt + nv) * o
                    err = 100 * (predicted / statistics.mean(got[k]) - 1)
                    errors[(small, keep)].append(err)
                    said.append(f"{k} {predicted:.3f} s ({err:+.0f}%)")
                print(
                    f"  from {small}, {keep} epoch kept: rate {1 / c / 1e9:6.1f} G multiply-adds/s, {o * 1e3:.3f} ms "
                    f"an image; predicted against the mean epoch: {', '.join(said)}"
                )
    for (small, keep), r in rates.items():
        e = errors[(small, keep)]
        print(
            f"from {small}, {keep} epoch kept: rate {min(r):.0f}-{max(r):.0f} G/s (median {statistics.median(r):.0f}); "
            f"predictions {min(e):+.0f}% to {max(e):+.0f}% of the mean epoch, mean |error| "
            f"{statistics.mean(abs(x) for x in e):.0f}%"
        )
    print(f"load average at the end {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
