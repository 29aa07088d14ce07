"""``compare RUN_ID...``, ``repeat`` and ``sweep``: stored runs side by side, a configuration over seeds,
a small grid of settings. Repeats and sweeps train through the worker (``--workers``, ``--scheduler``)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from core.base import UserError, number, plural, print_table, read_bounded, stored_line
from core.results import (
    compare_runs,
    get_runs,
    grid_from_json,
    parse_grid,
    repeat_summary,
    seed_configs,
    sweep_grid,
    sweep_points,
)
from core.store import RunStore
from core.training import HeldOutUnavailable, check_submission, resolve, run_calibration

from .batch import make_worker, train_all
from .parser import model_config, train_config

GRID_FILE_LIMIT = 1 << 20  # a grid file is a few lines of JSON; more is not one

METRIC_COLUMNS = [
    ("run_id", "Run"),
    ("label", "Model"),
    ("best", "Best epoch"),
    ("val_loss", "Val loss"),
    ("val_acc", "Val acc"),
    ("test", "Test acc"),
    ("f1", "Macro F1"),
    ("trainable", "Trainable"),
    ("frozen", "Frozen"),
    ("per_epoch", "s/epoch"),
    ("setup", "Set-up s"),
    ("seconds", "Total s"),
    ("verdict", "Verdict"),
]


def metric_cells(row: dict[str, Any]) -> dict[str, str]:
    """One run's metrics as text cells."""
    return {
        "run_id": row["run_id"],
        "label": row["label"][:40],
        "best": f"{row['best_epoch']}/{row['epochs_run']}",
        "verdict": row["verdict_title"] or "-",
        "val_loss": number(row["best_val_loss"], ".3f"),
        "val_acc": number(row["best_val_accuracy"], ".3f"),
        "test": number(row["test_accuracy"], ".3f"),
        "f1": number(row["macro_f1"], ".3f"),
        "trainable": number(row["trainable_params"]),
        "frozen": number(row["frozen_params"]),
        "per_epoch": number(row["seconds_per_epoch"], ".2f"),  # the epochs' own times, on average
        "setup": number(row["setup_seconds"]),  # outside the epochs: building the network, VGG16's features
        "seconds": number(row["seconds"]),
    }


CALIBRATION_COLUMNS = [
    ("run_id", "Run"),
    ("confidence", "Mean confidence"),
    ("accuracy", "Test acc"),
    ("ece", "ECE"),
    ("temperature", "T"),
    ("ece_after", "ECE after T"),
]


def calibration_of(store: RunStore, rec) -> dict[str, Any]:
    """A run's calibration for ``compare`` (core.results.calibration), or its reason in ``note``."""
    try:
        return run_calibration(store, rec).to_dict()
    except HeldOutUnavailable as exc:  # no test predictions kept: nothing to measure
        return {"ece": None, "temperature": None, "ece_after": None, "sentence": "", "note": str(exc)}


def print_calibration(runs: list[dict[str, Any]]) -> None:
    """The calibration table, each run's sentence, and what the columns mean."""
    rows = []
    for r in runs:
        c = r["calibration"]
        rows.append(
            {
                "run_id": r["run_id"],
                "confidence": number(c.get("mean_confidence"), ".3f"),
                "accuracy": number(c.get("test_accuracy"), ".3f"),
                "ece": number(c["ece"], ".3f"),
                "temperature": number(c["temperature"], ".2f"),
                "ece_after": number(c["ece_after"], ".3f"),
            }
        )
    print_table(rows, CALIBRATION_COLUMNS)
    for r in runs:
        for text in (r["calibration"]["sentence"], r["calibration"]["note"]):
            if text:
                print(f"{r['run_id']}: {text}")
    print(
        "ECE is the expected calibration error on the test images: the gap between how sure the network says it "
        "is and how often it is right, over 10 confidence bins. T is the temperature fitted on the validation "
        "images (above 1: the run was over-confident); dividing by it leaves the test accuracy unchanged."
    )


def cmd_compare_runs(args: argparse.Namespace, store: RunStore) -> int:
    """Stored runs side by side: the settings that differ (all with --all-keys), metrics at the best epoch,
    and how honest each run's probabilities are (calibration before and after temperature scaling)."""
    records = get_runs(store, args.run_ids)
    result = compare_runs(records, all_keys=args.all_keys)
    for row, rec in zip(result["runs"], records, strict=True):
        row["calibration"] = calibration_of(store, rec)
    if args.json:
        print(json.dumps(result))
        return 0
    for note in result["notes"]:
        print(f"Note: {note}")
    runs = result["runs"]
    if result["settings"]:
        cols = [("key", "Setting")] + [(f"r{i}", r["run_id"]) for i, r in enumerate(runs)]
        print_table(
            [{"key": s["key"], **{f"r{i}": number(v) for i, v in enumerate(s["values"])}} for s in result["settings"]],
            cols,
        )
    else:
        print("The runs have the same settings." if len(runs) > 1 else "One run: nothing to set against it.")
    print()
    print_table([metric_cells(r) for r in runs], METRIC_COLUMNS)
    classes = sorted({c for r in runs for c in r["f1"]})
    if classes:
        print()
        f1_cols = [("class", "F1")] + [(f"r{i}", r["run_id"]) for i, r in enumerate(runs)]
        print_table(
            [{"class": c, **{f"r{i}": number(r["f1"].get(c), ".3f") for i, r in enumerate(runs)}} for c in classes],
            f1_cols,
        )
    print(
        "\nValidation numbers are at each run's best epoch (lowest val_loss), not the last. s/epoch is the epochs' "
        "own time on average; Set-up s is the time outside them (building the network, VGG16's features); "
        "Total s is the whole training."
    )
    print()
    print_calibration(runs)
    return 0


def _check_all(source: str, configs: list[tuple[str, Any, Any]], store: RunStore) -> None:
    """Every configuration buildable on the data, before any training starts (a bad one: one line, exit 2)."""
    for _, m, t in configs:
        _, m2, _ = resolve(source, m, t, store)
        check_submission(m2, t)


def cmd_repeat(args: argparse.Namespace, store: RunStore) -> int:
    """One configuration over k seeds: mean curves with a min-max band, the spread of the scores."""
    model_cfg, train_cfg = model_config(args), train_config(args)
    runs = [(f"seed {t.seed}", model_cfg, t) for t in seed_configs(train_cfg, args.seeds)]
    _check_all(args.data, runs[:1], store)
    worker = make_worker(args, store)
    records = train_all(worker, args.data, runs, None if args.json else sys.stderr)
    stored = sum(r.cached for r in records)
    summary = {
        **repeat_summary(records),
        "data": args.data,
        "stored": stored,
        "message": stored_line(len(records), stored, "repeat"),
    }
    if args.json:
        print(json.dumps(summary))
        return 0
    print_table(
        [{**metric_cells(r), "seed": str(r["seed"])} for r in summary["runs"]], [("seed", "Seed"), *METRIC_COLUMNS[2:7]]
    )
    print()
    for key, title in (("best_val_accuracy", "Best-epoch val accuracy"), ("test_accuracy", "Test accuracy")):
        s = summary[key]
        print(
            f"{title}: mean {number(s['mean'], '.3f')}, std {number(s['std'], '.3f')}, "
            f"min {number(s['min'], '.3f')}, max {number(s['max'], '.3f')} "
            f"over {plural(s['n'], 'seed')}"
        )
    print(summary["message"])
    return 0


def cmd_sweep(args: argparse.Namespace, store: RunStore) -> int:
    """One or two settings over a few values each: a grid of best-epoch validation accuracy."""
    if bool(args.grid) == bool(args.grid_file):
        raise UserError("Give the sweep as --grid NAME=V1,V2 (once or twice) or as --grid-file FILE, not both.")
    if args.grid_file:
        try:
            data = read_bounded(Path(args.grid_file).expanduser(), GRID_FILE_LIMIT, "a JSON grid file")
        except OSError as exc:
            raise UserError(f"Cannot read the grid file {args.grid_file!r}: {exc.strerror}.") from None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise UserError(
                f"The grid file {args.grid_file!r} is not UTF-8 text (byte {exc.start} is not): save it "
                'as plain JSON like {"dropout": [0, 0.5]}.'
            ) from None
        grid = grid_from_json(text)
    else:
        grid = parse_grid(args.grid)
    names, values, points = sweep_points(grid, model_config(args), train_config(args))
    runs = [(p.title, p.model_cfg, p.train_cfg) for p in points]
    _check_all(args.data, runs, store)
    worker = make_worker(args, store)
    records = train_all(worker, args.data, runs, None if args.json else sys.stderr)
    stored = sum(r.cached for r in records)
    result = {
        **sweep_grid(names, values, records),
        "data": args.data,
        "stored": stored,
        "trained": len(records) - stored,
        "message": stored_line(len(records), stored, "point"),
    }
    if args.json:
        print(json.dumps(result))
        return 0
    first = values[1] if len(values) > 1 else values[0]
    head = names[1] if len(names) > 1 else names[0]
    corner = f"{names[0]} \\ {head}" if len(names) > 1 else ""
    cols = [("row", corner)] + [(f"c{j}", str(v)) for j, v in enumerate(first)]
    labels = values[0] if len(values) > 1 else ["val acc"]
    print_table(
        [
            {"row": str(labels[i]), **{f"c{j}": number(z, ".3f") for j, z in enumerate(row)}}
            for i, row in enumerate(result["z"])
        ],
        cols,
    )
    print(f"\nBest-epoch validation accuracy of each point. {result['message']}")
    return 0
