"""``python -m core health``: a dataset's health before training (class counts, imbalance, duplicates, leakage),
or with ``--run`` a run's held-out images most likely mislabelled."""

from __future__ import annotations

import argparse
import json

from core.base import ModelConfig, TrainConfig, UserError, print_table
from core.data import data_health, load_dataset
from core.data.health import SPLIT_WORDS
from core.results import get_runs
from core.store import RunStore
from core.training import run_mislabels

PLACES = ("all", "train", "val", "test")


def cmd_health(args: argparse.Namespace, store: RunStore) -> int:
    """Read the images as training would (input size, channels) and split them as training will (seed, sizes).

    With ``--run``: the run's validation and test images ranked by the probability of their own label."""
    if args.run is not None:
        if args.data is not None:
            raise UserError(
                "Give --data (a dataset, before training) or --run (a trained run's held-out images), not both."
            )
        return _mislabelled(args, store)
    if args.data is None:
        raise UserError(
            "Say what to check: --data FOLDER (a dataset, before training) or --run RUN_ID (a trained run)."
        )
    model_cfg = ModelConfig(input_size=args.input_size, channels=args.channels)  # checked: a bad value is one line
    train_cfg = TrainConfig(
        test_size=args.test_size, val_split=args.val_split, seed=args.seed, train_fraction=args.train_fraction
    )
    ds = load_dataset(
        args.data, image_size=model_cfg.input_size, channels=model_cfg.channels, cache_dir=store.cache_dir
    )
    report = data_health(
        ds,
        test_size=train_cfg.test_size,
        val_split=train_cfg.val_split,
        seed=train_cfg.seed,
        train_fraction=train_cfg.train_fraction,
    )
    if args.json:
        print(json.dumps(report.to_dict()))
        return 0
    places = [p for p in PLACES if p in report.counts]
    rows = [
        {"class": name, **{p: f"{report.counts[p][i]:,}" for p in places}} for i, name in enumerate(report.class_names)
    ]
    print(f"{ds.source}: images per class and split")
    print_table(rows, [("class", "Class"), *((p, SPLIT_WORDS[p].capitalize()) for p in places)])
    print()
    for line in report.sentences():
        print(line)
    pairs = [*report.exact.pairs, *report.near.pairs]
    if pairs:
        print()
        print_table(
            [
                {
                    "kind": "identical" if p.exact else f"near ({p.distance} bits)",
                    "a": f"{p.a.file} ({SPLIT_WORDS[p.a.split]})",
                    "b": f"{p.b.file} ({SPLIT_WORDS[p.b.split]})",
                }
                for p in pairs
            ],
            [("kind", "Duplicates"), ("a", "Image"), ("b", "Copy")],
        )
        listed, total = len(pairs), report.exact.total + report.near.total
        if listed < total:
            print(f"({listed} of {total} pairs listed; --json has the same list.)")
    return 0


def _mislabelled(args: argparse.Namespace, store: RunStore) -> int:
    if args.top < 1:
        raise UserError(f"--top is how many images to list, at least 1. Got {args.top} instead.")
    (rec,) = get_runs(store, [args.run])
    found = run_mislabels(store, rec, k=args.top)
    if args.json:
        print(json.dumps({**found.to_dict(), "label": rec.label}))
        return 0
    names = found.class_names
    print(f"Run {rec.run_id}: {rec.label}")
    print(found.sentence())
    if found.note:
        print(found.note)
    if not found.suspects:
        return 0
    print()
    print_table(
        [
            {
                "rank": f"{n}",
                "image": f"{SPLIT_WORDS[s.split]} #{s.index}",
                "file": s.file or "-",
                "label": names[s.label],
                "own": f"{s.own_probability:.0%}",
                "says": f"{names[s.predicted]} {s.predicted_probability:.0%}",
                "flag": f"looks like {names[s.flagged_as]}" if s.flagged else "",
            }
            for n, s in enumerate(found.suspects, 1)
        ],
        [
            ("rank", "#"),
            ("image", "Image"),
            ("file", "File"),
            ("label", "Labelled"),
            ("own", "Its label's probability"),
            ("says", "Network says"),
            ("flag", "Flag"),
        ],
    )
    return 0
