"""Does mixed bfloat16 pay for small networks? float32 vs bfloat16 per network size (issue 22).

Usage (from the repository root):
    python bench/bench_bf16_size.py [--epochs 4] [--rounds 3]

For CNNs from 0.3 to 112 million multiply-adds per image, on thin_sections, interleaved per round: the
median epoch (the first, tracing, left out) and the CPU seconds of the whole training (all threads of this
process: less sensitive than wall time to other work on a shared machine) in float32 and in bfloat16, and
the medians over rounds of their ratios bfloat16/float32. core.base.precision.BF16_MIN_MACS is set from these.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import cpu_flags  # noqa: E402

from core.base.config import ModelConfig, TrainConfig  # noqa: E402

NETWORKS = {
    "1 block, 8 filters, 32 px": ModelConfig(input_size=32, blocks=1, filters=8, dense_units=32),
    "2 blocks, 8 filters, 64 px": ModelConfig(blocks=2, filters=8, dense_units=64),
    "3 blocks, 8 filters, 64 px": ModelConfig(blocks=3, filters=8),
    "3 blocks, 16 filters, 64 px": ModelConfig(blocks=3, filters=16),
    "course 32-64-128, 64 px": ModelConfig(),
    "3 blocks, 64 filters, 64 px": ModelConfig(blocks=3, filters=64),
}


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()

    from core.base.precision import network_macs
    from core.data import load_dataset, prepare_data
    from core.training.train import train_model

    print(f"machine: {cpu_flags()}; load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    data = {
        size: prepare_data(load_dataset("thin_sections", image_size=size), loss="categorical", seed=42)
        for size in {cfg.input_size for cfg in NETWORKS.values()}
    }

    def run(cfg: ModelConfig, precision: str) -> tuple[float, float]:
        c = cpu_seconds()
        res = train_model(cfg, TrainConfig(epochs=args.epochs, precision=precision), data[cfg.input_size], store=None)
        return statistics.median(res.epoch_seconds[1:]), cpu_seconds() - c

    first = next(iter(NETWORKS.values()))
    run(first, "float32")  # warm both precisions
    run(first, "bfloat16")
    runs: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for r in range(args.rounds):
        for name, cfg in NETWORKS.items():
            for precision in ("float32", "bfloat16"):
                runs.setdefault((name, precision), []).append(run(cfg, precision))
            f, b = runs[(name, "float32")][-1], runs[(name, "bfloat16")][-1]
            print(
                f"round {r} {name}: float32 epoch {f[0]:.3f} s, CPU {f[1]:.2f} s; bfloat16 epoch {b[0]:.3f} s, "
                f"CPU {b[1]:.2f} s; load {os.getloadavg()[0]:.1f}",
                flush=True,
            )
    for name, cfg in NETWORKS.items():
        f, b = runs[(name, "float32")], runs[(name, "bfloat16")]
        epoch = statistics.median(y[0] / x[0] for x, y in zip(f, b, strict=True))
        cpu = statistics.median(y[1] / x[1] for x, y in zip(f, b, strict=True))
        print(
            f"{name:28s} {network_macs(cfg) / 1e6:6.1f} M multiply-adds/image: bfloat16/float32 epoch {epoch:.2f}, "
            f"CPU {cpu:.2f}"
        )
    print(f"load average at the end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
