"""The command line's flags, and the configs they build."""

from __future__ import annotations

import argparse
from typing import Any

from core.config import (
    FILL_MODES,
    LOSSES,
    MODELS,
    MONITORS,
    OPTIMIZERS,
    PADDINGS,
    PRECISIONS,
    WEIGHT_SOURCES,
    AugmentConfig,
    ConfigError,
    ModelConfig,
    TrainConfig,
)
from core.lab import DEFAULT_EPOCHS, DEFAULT_FRACTION, DEFAULT_SEED

from .batch import add_batch_flags

EXIT_USAGE = 2  # the user's error: a bad flag, value, dataset, architecture or weights source
EXIT_FAILED = 1  # anything else: a bug or a broken installation


class Parser(argparse.ArgumentParser):
    """argparse with a one-line error instead of usage + error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def _model_flags(p: argparse.ArgumentParser, classes: bool) -> None:
    d = ModelConfig()
    g = p.add_argument_group("model")
    g.add_argument("--model", choices=MODELS, default=d.model, help="cnn (default) or vgg16 transfer")
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
    g.add_argument("--padding", choices=PADDINGS, default=d.padding)
    g.add_argument("--batchnorm", action="store_true", help="BatchNormalization after each conv")
    g.add_argument("--dense", type=int, default=d.dense_units, help="units of the hidden Dense layer (default 128)")
    g.add_argument("--dropout", type=float, default=d.dropout, help="dropout rate (default 0.5)")
    g.add_argument(
        "--weights",
        default=d.weights,
        help=f"vgg16 base weights: {', '.join(WEIGHT_SOURCES)} (see the README), or the path of a weights file",
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
    g.add_argument("--optimizer", choices=OPTIMIZERS, default=d.optimizer)
    g.add_argument("--lr", type=float, default=d.learning_rate, help="learning rate (default 0.001)")
    g.add_argument("--loss", choices=LOSSES, default=d.loss)
    g.add_argument("--early-stopping", type=int, default=d.early_stopping, metavar="PATIENCE", help="0 = off")
    g.add_argument("--monitor", choices=MONITORS, default=d.monitor)
    g.add_argument("--no-restore-best", action="store_true", help="with early stopping, keep and evaluate the last epoch's weights instead of the best epoch's")
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
    g.add_argument(
        "--precision", choices=PRECISIONS, default=d.precision,
        help="auto (default): mixed bfloat16 where the CPU multiplies bfloat16 natively (AVX512_BF16, AMX), "
        "else float32; results can differ in the last digits",
    )  # fmt: skip
    a = p.add_argument_group("augmentation (training images only)")
    a.add_argument("--rotation", type=float, default=0.0, metavar="DEGREES")
    a.add_argument("--width-shift", type=float, default=0.0, metavar="F")
    a.add_argument("--height-shift", type=float, default=0.0, metavar="F")
    a.add_argument("--hflip", action="store_true")
    a.add_argument("--vflip", action="store_true")
    a.add_argument("--zoom", type=float, default=0.0, metavar="F")
    a.add_argument("--fill-mode", choices=FILL_MODES, default="nearest")
    a.add_argument("--augment", action="store_true", help="the course's settings (rotation 20, shifts 0.1, flips, zoom 0.1)")


def model_config(args: argparse.Namespace) -> ModelConfig:
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


def train_config(args: argparse.Namespace) -> TrainConfig:
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
        precision=args.precision,
    )


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show the traceback of an unexpected error, and TF's logs")
    p = Parser(
        prog="python -m core", description="CNN Lab engine: layer tables, training, stored runs.", parents=[common]
    )
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser)

    s = sub.add_parser("summary", parents=[common], help="layer-by-layer table with parameter counts (no training)")
    _model_flags(s, classes=True)
    s.add_argument("--json", action="store_true")

    t = sub.add_parser("train", parents=[common], help="train a model (or return the stored run)")
    t.add_argument("--data", required=True, help="bundled name (thin_sections...), a folder of class folders, or a .zip")
    _model_flags(t, classes=False)
    _train_flags(t)
    t.add_argument("--no-cache", action="store_true", help="train again even if this run is stored")
    t.add_argument("--json", action="store_true")

    e = sub.add_parser("estimate", parents=[common], help="how long a training will take and its peak memory (no training)")
    src = e.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", help="the dataset to train on (its image count): bundled name, folder or .zip")
    src.add_argument("--images", type=int, help="or just the number of images")
    _model_flags(e, classes=True)
    _train_flags(e)
    e.add_argument("--recalibrate", action="store_true", help="measure this machine's speed again first")
    e.add_argument("--json", action="store_true")

    r = sub.add_parser("runs", parents=[common], help="list stored runs")
    r.add_argument("--limit", type=int, default=None)
    r.add_argument("--json", action="store_true")

    ds = sub.add_parser("datasets", parents=[common], help="list the bundled sample datasets")
    ds.add_argument("--json", action="store_true")

    lab = sub.add_parser("lab", parents=[common], help="the overfitting lab: baseline vs dropout, augmentation, early stopping")
    lab.add_argument("--data", default="thin_sections")
    lab.add_argument("--fraction", type=float, default=DEFAULT_FRACTION, help="fraction of the training data")
    lab.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS)
    lab.add_argument("--seed", type=int, default=DEFAULT_SEED)
    lab.add_argument("--json", action="store_true")
    add_batch_flags(lab)

    cmp_ = sub.add_parser("compare", parents=[common],
                          help="stored runs side by side (settings that differ, best-epoch metrics); "
                               "--transfer: scratch CNN vs VGG16 transfer on the same split and seed")  # fmt: skip
    cmp_.add_argument("run_ids", nargs="*", metavar="RUN_ID", help="stored runs to compare (python -m core runs)")
    cmp_.add_argument("--all-keys", action="store_true", help="every setting, not only the ones that differ")
    cmp_.add_argument("--transfer", action="store_true",
                      help="train (or fetch) the course CNN and the VGG16 transfer model on --data and compare them")
    cmp_.add_argument("--data", default="thin_sections")
    cmp_.add_argument("--weights", default="offline")
    cmp_.add_argument("--epochs", type=int, default=20)
    cmp_.add_argument("--seed", type=int, default=42)
    cmp_.add_argument("--json", action="store_true")
    add_batch_flags(cmp_)

    rp = sub.add_parser("repeat", parents=[common], help="one configuration over k seeds: the spread of its scores")
    rp.add_argument("--data", required=True, help="bundled name, a folder of class folders, or a .zip")
    rp.add_argument("--seeds", type=int, default=5, help="how many seeds, 2-10 (default 5): --seed, --seed+1, ...")
    _model_flags(rp, classes=False)
    _train_flags(rp)
    rp.add_argument("--json", action="store_true")
    add_batch_flags(rp)

    sw = sub.add_parser("sweep", parents=[common], help="one or two settings over a few values: a grid of scores")
    sw.add_argument("--data", required=True, help="bundled name, a folder of class folders, or a .zip")
    sw.add_argument("--grid", action="append", default=[], metavar="NAME=V1,V2",
                    help="a setting (any ModelConfig/TrainConfig field, e.g. dropout, filters, lr) and its values; "
                         "once or twice, at most 25 points")  # fmt: skip
    sw.add_argument("--grid-file", default=None, metavar="FILE", help='a JSON grid instead: {"dropout": [0, 0.5]}')
    _model_flags(sw, classes=False)
    _train_flags(sw)
    sw.add_argument("--json", action="store_true")
    add_batch_flags(sw)

    xp = sub.add_parser("export", parents=[common],
                        help="a stored run as a standalone script, its model, CSVs or a self-contained HTML report")
    xp.add_argument("run_id", metavar="RUN_ID", help="a stored run (python -m core runs lists them)")
    xp.add_argument("--code", metavar="run.py", help="a script needing only TensorFlow, NumPy, scikit-learn and "
                    "Pillow: python run.py FOLDER [--epochs N]")  # fmt: skip
    xp.add_argument("--model", metavar="out.keras", help="the best epoch's model")
    xp.add_argument("--history", metavar="h.csv", help="loss and accuracy per epoch")
    xp.add_argument("--predictions", metavar="p.csv", help="the test set's predictions and probabilities")
    xp.add_argument("--report", metavar="run.html", help="one HTML file that opens with no network")
    xp.add_argument("--config", metavar="c.json", help="the run's settings (the dashboard can load them)")

    j = sub.add_parser("jobs", parents=[common],
                       help="training jobs: queued, running and recent (any server on this store)")  # fmt: skip
    j.add_argument("--limit", type=int, default=20, help="recent finished jobs to show (default 20)")
    j.add_argument("--json", action="store_true")

    ex = sub.add_parser("explain", parents=[common],
                        help="inside a stored run for one image: feature maps and Grad-CAM as PNGs")  # fmt: skip
    ex.add_argument("run_id", metavar="RUN_ID", help="a stored run (python -m core runs lists them)")
    ex.add_argument("--image", required=True, help="an image file; it is resized as the run's training images were")
    ex.add_argument("--layer", default=None, help="the layer whose feature maps are drawn (default: the first "
                    "convolution); Grad-CAM always uses the last convolution")  # fmt: skip
    ex.add_argument("--class", dest="class_name", default=None, metavar="NAME",
                    help="the class Grad-CAM explains (default: the predicted one)")
    ex.add_argument("--out", required=True, help="folder for the PNG files (created if missing)")
    ex.add_argument("--json", action="store_true", help="also the Grad-CAM map itself, at the image's size")
    return p
