"""The commands of ``python -m core``: each takes the parsed flags and the run store, prints, returns 0.

Errors are not caught here: :func:`core.cli.main` turns a user's error into
one line and exit code 2, and anything else into one line and exit code 1.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from core.base import ModelConfig, TrainConfig, UserError, number, plural, print_table, run_precision
from core.data import bundled_datasets
from core.jobs import budget_warning, calibrate, estimate_text, load_calibration
from core.jobs.estimate import NEW_PROCESS, WARM, CalibrationFailed, estimate
from core.lab import LAB_COLUMNS, lab_cells, lab_rows, lab_summary, lab_variants
from core.models import ArchitectureError, check_cost
from core.models.layer_table import layer_table
from core.results import compare_configs, comparison_rows, diagnosis_of
from core.store import RunStore
from core.training import check_submission, resolve, run_experiment, stop_reason

from .batch import cmd_jobs, make_worker, train_all
from .challenge import cmd_challenge
from .embed import cmd_embed
from .explain import cmd_explain
from .exporting import cmd_export
from .health import cmd_health
from .lr_find import cmd_lr_find
from .maximise import cmd_maximise
from .output import progress_printer, run_payload
from .parser import DATA_HELP, model_config, train_config
from .saliency import cmd_saliency
from .study import cmd_compare_runs, cmd_repeat, cmd_sweep


def cmd_summary(args: argparse.Namespace, store: None) -> int:
    """The layer table; a network larger than the limits is printed, then refused (one line, exit 2)."""
    cfg = model_config(args)
    table = layer_table(cfg)
    too_big = check_cost(cfg)
    if args.json:
        print(json.dumps({**table.to_dict(), "refused": [p.message for p in too_big]}))
        if too_big:
            raise ArchitectureError(too_big)
        return 0
    rows = [
        {"name": r.name, "type": r.type, "shape": str(r.output_shape), "params": f"{r.params:,}", "formula": r.formula}
        for r in table.rows
    ]
    print_table(
        rows, [("name", "Layer"), ("type", "Type"), ("shape", "Output shape"), ("params", "Params"), ("formula", "How")]
    )
    print(
        f"Total params: {table.total_params:,}  Trainable: {table.trainable_params:,}  "
        f"Non-trainable: {table.non_trainable_params:,}"
    )
    if too_big:
        raise ArchitectureError(too_big)
    return 0


def cmd_train(args: argparse.Namespace, store: RunStore) -> int:
    model_cfg, train_cfg = model_config(args), train_config(args)
    check_submission(model_cfg, train_cfg)  # before the data is read (run_experiment checks with its classes)
    progress = None if args.json else progress_printer(sys.stderr)
    rec = run_experiment(args.data, model_cfg, train_cfg, store=store, use_cache=not args.no_cache, progress=progress)
    if args.json:
        print(json.dumps(run_payload(rec)))
        return 0
    d, t = diagnosis_of(rec), rec.test  # a run just trained or stored: its history always reads
    print(f"Run {rec.run_id}{' (stored run, not retrained)' if rec.cached else ''}: {rec.label}")
    if why := stop_reason(rec):  # its time budget (CNNLAB_MAX_TRAIN_SECONDS) ended it
        print(why)
    print(
        f"Data: {rec.data['n_train']} train / {rec.data['n_val']} val / {rec.data['n_test']} test, "
        f"classes {', '.join(rec.data['classes'])}; {plural(len(rec.data['skipped']), 'file')} skipped"
    )
    for s in rec.data["skipped"]:
        print(f"  skipped {s['path']}: {s['reason']}")
    print(f"Best epoch {rec.best_epoch}; verdict: {d.title} - {d.headline}")
    for line in d.evidence:
        print(f"  - {line}")
    print(f"Test accuracy {t['accuracy']:.3f}, loss {t['loss']:.3f}; trained in {rec.seconds:.1f} s")
    return 0


def cmd_estimate(args: argparse.Namespace, store: RunStore) -> int:
    """The time and peak memory of a training, from the layer table's multiply-adds and this machine's speed."""
    model_cfg, train_cfg = model_config(args), train_config(args)
    if args.data is not None:
        ds, model_cfg, _ = resolve(args.data, model_cfg, train_cfg, store)
        n_images = len(ds)
    elif args.images < 10:
        raise UserError(
            f"--images must be at least 10 (enough to split into train, validation and test). Got {args.images}."
        )
    else:
        n_images = args.images
    layer_table(model_cfg)  # an impossible architecture: one line, before any measuring
    too_big = check_cost(model_cfg, train_cfg.batch_size)  # what `train` would refuse: estimated, then refused
    precision = run_precision(model_cfg, train_cfg)
    cal = None if args.recalibrate else load_calibration(store.home, precision)
    if cal is None:
        print(
            f"Measuring this machine's training speed in {precision} once (about 30 s when nothing else runs; "
            f"stored under {store.home}/calibration)...",
            file=sys.stderr,
            flush=True,
        )
        try:
            cal = calibrate(store.home, precision)
        except CalibrationFailed as exc:
            raise UserError(str(exc)) from None
    # `train` starts a new process (Python, TensorFlow); the dashboard trains in its warm training process
    est = estimate(model_cfg, train_cfg, n_images, calibration=cal, where=NEW_PROCESS)
    dash = estimate(model_cfg, train_cfg, n_images, calibration=cal, where=WARM)
    if args.json:
        print(
            json.dumps(
                {
                    **est.to_dict(),
                    "n_images": n_images,
                    "text": estimate_text(est, place="this machine"),
                    "dashboard": dash.to_dict(),
                    "budget_warning": budget_warning(est),
                    "calibration": {
                        "precision": cal.precision,
                        "macs_per_second": cal.macs_per_second,
                        "seconds_per_image": cal.seconds_per_image,
                        "vgg16_macs_per_second": cal.vgg_macs_per_second,
                        "process_seconds": cal.process_seconds,
                        "measured": cal.measured,
                        "key": cal.key,
                    },
                    "refused": [p.message for p in too_big],
                }
            )
        )
        if too_big:
            raise ArchitectureError(too_big)
        return 0
    print(f"Training: {estimate_text(est, place='this machine')} (`train` starts Python and TensorFlow first).")
    print(f"In the dashboard, with its training process ready: {estimate_text(dash, place='this machine')}.")
    print(
        f"{plural(est.epochs, 'epoch').capitalize()} of {est.n_train} training and {est.n_val} validation images, "
        f"{est.macs_per_image:,} multiply-adds per image forward, {est.precision}."
    )
    print(f"Peak memory: about {est.peak_bytes / 2**20:,.0f} MB.")
    if warning := budget_warning(est):
        print(warning)
    day = time.strftime("%Y-%m-%d", time.localtime(cal.measured))
    print(
        f"This machine: {cal.macs_per_second / 1e9:.1f} G multiply-adds/s in training, "
        f"{1000 * cal.seconds_per_image:.2f} ms per image besides, {cal.process_seconds:.1f} s to start a "
        f"training process (measured {day})."
    )
    if too_big:  # as summary does: the numbers, then the refusal `train` would give (exit 2)
        raise ArchitectureError(too_big)
    return 0


def cmd_runs(args: argparse.Namespace, store: RunStore) -> int:
    runs = store.list_runs(limit=args.limit)
    if args.json:
        print(json.dumps(runs))
        return 0
    if not runs:
        print("No stored runs yet: train one with `python -m core train --data thin_sections`.")
        return 0
    rows = [{**r, "test_accuracy": number(r.get("test_accuracy"), ".3f")} for r in runs]
    print_table(
        rows,
        [
            ("run_id", "Run"),
            ("status", "Status"),
            ("source", "Data"),
            ("label", "Model"),
            ("test_accuracy", "Test acc"),
            ("verdict", "Verdict"),
        ],
    )
    return 0


def cmd_datasets(args: argparse.Namespace, store: None) -> int:
    infos = bundled_datasets()
    rows = [{"name": i.name, "title": i.title, "images": i.n_images, "classes": ", ".join(i.classes)} for i in infos]
    if args.json:
        print(json.dumps(rows))
    else:
        print_table(rows, [("name", "Name"), ("images", "Images"), ("classes", "Classes"), ("title", "Title")])
    return 0


def cmd_lab(args: argparse.Namespace, store: RunStore) -> int:
    """The overfitting lab: train (or fetch) the variants, print the table or JSON."""
    variants = lab_variants(fraction=args.train_fraction, epochs=args.epochs, seed=args.seed)
    resolve(args.data, variants[0].model_cfg, variants[0].train_cfg, store)  # a data problem: one line, before anything
    worker = make_worker(args, store)  # so are a bad --workers and an unreachable --scheduler
    quiet = bool(args.json)
    n = len(variants)
    if not quiet:
        print(
            f"Overfitting lab on {args.data}: {n} variants, {args.train_fraction:.0%} of the training images, "
            f"up to {plural(args.epochs, 'epoch')}, seed {args.seed}. Stored variants come back at once.",
            file=sys.stderr,
            flush=True,
        )

    runs = [(v.title, v.model_cfg, v.train_cfg) for v in variants]
    records = train_all(worker, args.data, runs, None if quiet else sys.stderr)
    rows = lab_rows(variants, records)
    summary = lab_summary(rows)
    if args.json:
        variants_json = [
            {**row, "history": rec.history, "model_config": rec.model_config, "train_config": rec.train_config}
            for row, rec in zip(rows, records, strict=True)
        ]
        print(
            json.dumps(
                {
                    "data": args.data,
                    "fraction": args.train_fraction,
                    "epochs": args.epochs,
                    "seed": args.seed,
                    "variants": variants_json,
                    "summary": summary,
                }
            )
        )
        return 0
    print_table([lab_cells(r) for r in rows], LAB_COLUMNS)
    print()
    for r in rows:
        print(f"{r['title']}: {r['changes']}")
    if summary:
        print()
        print(" ".join(summary))
    print("All variants are scored with their best epoch's weights (lowest validation loss).")
    return 0


def cmd_compare(args: argparse.Namespace, store: RunStore) -> int:
    """Stored runs side by side (RUN_ID...), or with --transfer (or no run ids) a scratch CNN and the VGG16
    transfer model trained on the same split and seed.

    The transfer run goes first, so unusable weights fail before minutes of CNN training.
    """
    if args.run_ids and args.transfer:
        raise UserError("Give run ids to compare stored runs, or --transfer to train scratch vs transfer; not both.")
    if args.run_ids:
        return cmd_compare_runs(args, store)
    if not args.transfer:  # nothing to compare: say how, never start a training
        raise UserError(
            "usage: python -m core compare RUN_ID RUN_ID... (python -m core runs lists them), or "
            "compare --transfer --data D to train the course CNN and VGG16 transfer and compare them."
        )
    if args.data is None:
        raise UserError("compare --transfer needs --data: " + DATA_HELP + ".")
    train_cfg = TrainConfig(epochs=args.epochs, seed=args.seed)
    scratch_cfg, transfer_cfg = compare_configs(ModelConfig(), train_cfg, args.weights)
    worker = make_worker(args, store)
    if not args.json:
        print(f"transfer: VGG16 + head, {args.weights} weights; scratch: course CNN", file=sys.stderr, flush=True)
    runs = [("transfer", transfer_cfg, train_cfg), ("scratch", scratch_cfg, train_cfg)]
    transfer, scratch = train_all(worker, args.data, runs, None if args.json else sys.stderr)
    records = {"transfer": transfer, "scratch": scratch}
    rows = comparison_rows(records["scratch"], records["transfer"])
    if args.json:
        print(
            json.dumps(
                {
                    "data": args.data,
                    "weights": args.weights,
                    "epochs": args.epochs,
                    "seed": args.seed,
                    "rows": rows,
                    "runs": {k: run_payload(r) for k, r in records.items()},
                }
            )
        )
        return 0
    table = [
        {
            "model": r["model"],
            "weights": r["weights"],
            "trainable": number(r["trainable_params"])
            + (f" (+{r['fine_tuned_params']:,} fine-tuned)" if r["fine_tuned_params"] else ""),
            "frozen": number(r["frozen_params"]),
            "seconds": number(r["seconds"]) + (" (stored)" if records[r["model"]].cached else ""),
            "best": f"{r['best_epoch']}/{r['epochs_run']}",
            "val": number(r["best_val_accuracy"], ".3f"),
            "test": number(r["test_accuracy"], ".3f"),
            "f1": number(r["macro_f1"], ".3f"),
        }
        for r in rows
    ]
    print_table(
        table,
        [
            ("model", "Model"),
            ("weights", "Weights"),
            ("trainable", "Trainable"),
            ("frozen", "Frozen"),
            ("seconds", "Seconds"),
            ("best", "Best epoch"),
            ("val", "Val acc"),
            ("test", "Test acc"),
            ("f1", "Macro F1"),
        ],
    )
    print()
    classes = list(rows[0]["f1"])
    print_table(
        [
            {
                "class": c,
                "scratch": number(rows[0]["f1"].get(c), ".3f"),
                "transfer": number(rows[1]["f1"].get(c), ".3f"),
            }
            for c in classes
        ],
        [("class", "Class"), ("scratch", "F1 scratch"), ("transfer", "F1 transfer")],
    )
    print(f"\nTransfer features: {rows[1]['features']}")
    print("Both runs: same images, split and seed; val accuracy at the best epoch (lowest val_loss).")
    return 0


COMMANDS = {
    "summary": cmd_summary,
    "train": cmd_train,
    "estimate": cmd_estimate,
    "runs": cmd_runs,
    "datasets": cmd_datasets,
    "lab": cmd_lab,
    "compare": cmd_compare,
    "repeat": cmd_repeat,
    "sweep": cmd_sweep,
    "jobs": cmd_jobs,
    "embed": cmd_embed,
    "explain": cmd_explain,
    "maximise": cmd_maximise,
    "export": cmd_export,
    "health": cmd_health,
    "saliency": cmd_saliency,
    "lr-find": cmd_lr_find,
    "challenge": cmd_challenge,
}
