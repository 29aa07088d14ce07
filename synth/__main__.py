"""Command line: ``python -m synth [--dataset NAME|all] [--out DIR] ...``.

With no options it regenerates the shipped ``sample_data/`` byte for byte
(``--jobs`` only changes how many processes draw the images, never the files).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from core.base.config import ConfigError
from synth import DATASETS, DEFAULT_SEED, SAMPLE_DATA_DIR, generate_all, generate_dataset


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m synth",
        description=(
            "Generate CNN Lab's synthetic geoscience sample datasets "
            "(class folders of PNGs + classes.txt + README.md datasheet). "
            "Without options, regenerates the shipped sample_data/ exactly."
        ),
    )
    parser.add_argument("--dataset", default="all", choices=[*DATASETS, "all"], help="dataset to write (default: all)")
    parser.add_argument(
        "--out",
        type=Path,
        default=SAMPLE_DATA_DIR,
        help="root folder; each dataset goes in <out>/<dataset>/ (default: the repository's sample_data/)",
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"random seed (default: {DEFAULT_SEED})")
    parser.add_argument(
        "--per-class",
        type=int,
        default=None,
        help="images per class (default: the shipped count: "
        + ", ".join(f"{k} {v.per_class}" for k, v in DATASETS.items())
        + ")",
    )
    parser.add_argument("--size", type=int, default=64, help="image height = width in pixels (default: 64)")
    parser.add_argument(
        "--noise", type=float, default=1.0, help="noise multiplier, 0 = clean, 1 = shipped (default: 1)"
    )
    parser.add_argument(
        "--overlap",
        type=float,
        default=0.0,
        help="class overlap in [0, 1]: 0 = shipped, 1 = all classes share parameter ranges (default: 0)",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=min(2, os.cpu_count() or 1),
        help="worker processes; the output is identical for any value (default: %(default)s)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    knobs = dict(
        seed=args.seed,
        per_class=args.per_class,
        image_size=args.size,
        noise=args.noise,
        overlap=args.overlap,
        jobs=args.jobs,
    )
    start = time.perf_counter()
    try:
        if args.dataset == "all":
            infos = generate_all(args.out, **knobs)
        else:
            infos = [generate_dataset(args.dataset, args.out, **knobs)]
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for info in infos:
        print(
            f"{info['name']}: {info['images']} images ({len(info['classes'])} classes x {info['per_class']}), "
            f"{info['image_size']}x{info['image_size']} {info['mode']} -> {info['path']} ({info['seconds']:.1f} s)"
        )
    print(f"done in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
