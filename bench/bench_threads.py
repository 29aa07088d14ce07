"""TensorFlow's thread pools as a lever: the course script and core under each intra/inter-op setting.

Usage (from the repository root):
    python bench/bench_threads.py [--settings 0:0,2:1,1:2,1:1] [--precisions float32,bfloat16] [--epochs 5]
                                  [--rounds 3]

A thread pool's size is fixed when TensorFlow starts, so each setting runs in a process of its own
(``bench/bench_levers.py --variants plain,core --rounds 1 --intra A --inter B``: the course's plain script in
float32, then core in the given precision, each for ``--epochs`` epochs after a 1-epoch warm-up of both), and the
processes are interleaved: round 1 runs every setting once, then round 2... ``0:0`` is TensorFlow's default
(as many threads as cores in both pools; core's training process sets intra = its share of the cores and
inter = min(2, intra), the same on this machine). Prints per setting and precision the median over rounds of the
wall and CPU seconds of both sides and core's ratio to the plain script under the default setting.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from machine import cpu_flags  # noqa: E402

LINE = re.compile(r"round 0 (\w+): ([\d.]+) s, epoch (\S+) s, CPU ([\d.]+) s")


def one(setting: str, precision: str, epochs: int) -> dict[str, tuple[float, float]]:
    intra, inter = setting.split(":")
    cmd = [sys.executable, str(HERE / "bench_levers.py"), "--variants", "plain,core", "--rounds", "1"]
    cmd += ["--epochs", str(epochs), "--precision", precision, "--intra", intra, "--inter", inter]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=HERE.parent, check=True).stdout
    return {m[1]: (float(m[2]), float(m[4])) for m in LINE.finditer(out)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--settings", default="0:0,2:1,1:2,1:1", help="intra:inter pairs (0: TensorFlow's default)")
    ap.add_argument("--precisions", default="float32,bfloat16")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    settings, precisions = args.settings.split(","), args.precisions.split(",")
    print(f"machine: {cpu_flags()}; load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    runs: dict[tuple[str, str], list[dict]] = {(s, p): [] for s in settings for p in precisions}
    for r in range(args.rounds):
        for p in precisions:
            for s in settings:
                got = one(s, p, args.epochs)
                runs[(s, p)].append(got)
                print(
                    f"round {r + 1} {p} intra:inter {s}: plain {got['plain'][0]:.2f} s (CPU {got['plain'][1]:.2f}), "
                    f"core {got['core'][0]:.2f} s (CPU {got['core'][1]:.2f}); load {os.getloadavg()[0]:.2f}",
                    flush=True,
                )
    for p in precisions:
        base = runs[(settings[0], p)]
        plain_wall = statistics.median(g["plain"][0] for g in base)
        plain_cpu = statistics.median(g["plain"][1] for g in base)
        for s in settings:
            med = {
                side: [statistics.median(g[side][i] for g in runs[(s, p)]) for i in (0, 1)]
                for side in ("plain", "core")
            }
            print(
                f"{p:8s} intra:inter {s}: plain {med['plain'][0]:.2f} s (CPU {med['plain'][1]:.2f}), core "
                f"{med['core'][0]:.2f} s (CPU {med['core'][1]:.2f}); core / plain at {settings[0]}: wall "
                f"{med['core'][0] / plain_wall:.3f}, CPU {med['core'][1] / plain_cpu:.3f}"
            )
    print(f"load average at the end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
