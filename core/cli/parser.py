"""The command line's flags, and the configs they build."""

from __future__ import annotations

import argparse
from typing import Any

from core.base.config import (
    CLASS_WEIGHTS,
    FILL_MODES,
    LOSSES,
    MODELS,
    MONITORS,
    OFFLINE_WEIGHTS,
    OPTIMIZERS,
    PADDINGS,
    PRECISIONS,
    RANGES,
    SETTING_ALIASES,
    WEIGHT_SOURCES,
    AugmentConfig,
    ConfigError,
    ModelConfig,
    TrainConfig,
)
from core.inside.embedding import METHODS
from core.inside.saliency import SALIENCY_METHODS
from core.lab import DEFAULT_EPOCHS, DEFAULT_FRACTION, DEFAULT_SEED
from core.results import MAX_POINTS, MAX_SEEDS, MIN_SEEDS, TOP_K
from core.training.lr_find import EPOCHS as LR_EPOCHS
from core.training.lr_find import MAX_STEPS, LRRange

from .batch import add_batch_flags

EXIT_USAGE = 2  # the user's error: a bad flag, value, dataset, architecture or weights source
EXIT_FAILED = 1  # anything else: a bug or a broken installation
FINE_TUNE_EPOCHS = 5  # --fine-tune-epochs given without a number
REPEAT_SEEDS = 5  # repeat's seeds when --seeds is not given
# Help texts several commands share.
EPOCHS_HELP = "passes over the training images"
SEED_HELP = "the seed of the split, the weights and the shuffling"
FRACTION_HELP = "use part of the training data"
RUN_ID_HELP = "a stored run (python -m core runs lists them)"


class _Defaults(argparse.HelpFormatter):
    """Each flag's help ends with its default, taken from the configs the flag is built from (never restated)."""

    def _get_help_string(self, action):
        text = action.help or ""
        if action.default in (None, False, argparse.SUPPRESS) or "%(default)" in text or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)"


class Parser(argparse.ArgumentParser):
    """argparse with a one-line error instead of usage + error, and every flag's default in its help."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", _Defaults)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


class _Once(argparse.Action):
    """Store a setting given once; the same setting under two spellings (or twice) is refused."""

    def __call__(self, parser, namespace, values, option_string=None):
        given = namespace.__dict__.setdefault("_given", {})
        if self.dest in given:
            first = given[self.dest]
            same = first == option_string
            twice = f"{first} is given twice" if same else f"{first} and {option_string} are one setting"
            parser.error(f"{twice}: give it once")
        given[self.dest] = option_string
        setattr(namespace, self.dest, values)


def setting_flags(field: str) -> list[str]:
    """A setting's flags: ``--field-name`` first, then its short names (``core.base.config.SETTING_ALIASES``)."""
    return [f"--{name.replace('_', '-')}" for name in (field, *(a for a, f in SETTING_ALIASES.items() if f == field))]


def _setting(g, field: str, **kw) -> None:
    """One flag for a config field, spelled as the field (and its short names), refused when given twice."""
    if kw.get("action") is None:
        kw["action"] = _Once
    g.add_argument(*setting_flags(field), dest=field, **kw)


def _model_flags(p: argparse.ArgumentParser, classes: bool) -> None:
    d = ModelConfig()
    g = p.add_argument_group("model")
    g.add_argument("--model", choices=MODELS, default=d.model, help="the model kind: the course CNN or VGG16 transfer")
    _setting(g, "input_size", type=int, default=d.input_size, help="image height = width, in pixels")
    _setting(g, "channels", type=int, choices=[1, 3], default=d.channels, help="3 = RGB, 1 = gray")
    _setting(g, "blocks", type=int, default=d.blocks, help=f"Conv->Pool blocks, {RANGES['blocks'].span}")
    _setting(
        g,
        "filters",
        type=str,
        default=str(d.filters),
        help="filters of block 1, doubling per block, or a list per block: 16,32,64",
    )
    _setting(g, "kernel_size", type=int, default=d.kernel_size, help="convolution kernel size")
    _setting(g, "pool_size", type=int, default=d.pool_size, help="max-pooling window size")
    _setting(g, "padding", choices=PADDINGS, default=d.padding, help="convolution padding")
    g.add_argument("--batchnorm", action="store_true", help="BatchNormalization after each conv")
    _setting(g, "dense_units", type=int, default=d.dense_units, help="units of the hidden Dense layer")
    _setting(g, "dropout", type=float, default=d.dropout, help="dropout rate before the last layer")
    _setting(
        g,
        "weights",
        default=OFFLINE_WEIGHTS,
        help=f"vgg16 base weights: {', '.join(WEIGHT_SOURCES)} (see the README), or the path of a weights "
        "file; the default works offline",
    )
    if classes:
        g.add_argument("--classes", type=int, default=d.num_classes, help="number of classes")


def _train_flags(p: argparse.ArgumentParser) -> None:
    d = TrainConfig()
    g = p.add_argument_group("training")
    _setting(g, "epochs", type=int, default=d.epochs, help=EPOCHS_HELP)
    _setting(g, "batch_size", type=int, default=d.batch_size, help="images per training step")
    _setting(g, "val_split", type=float, default=d.val_split, help="validation part of the training data")
    _setting(g, "test_size", type=float, default=d.test_size, help="test part of the whole dataset")
    _setting(g, "optimizer", choices=OPTIMIZERS, default=d.optimizer, help="the optimizer")
    _setting(g, "learning_rate", type=float, default=d.learning_rate, help="the optimizer's learning rate")
    _setting(g, "loss", choices=LOSSES, default=d.loss, help="categorical (one-hot labels) or sparse (integers)")
    _setting(
        g,
        "early_stopping",
        type=int,
        default=d.early_stopping,
        metavar="PATIENCE",
        help="stop after PATIENCE epochs without improvement; 0 = off",
    )
    _setting(g, "monitor", choices=MONITORS, default=d.monitor, help="what early stopping and the best epoch watch")
    g.add_argument(
        "--no-restore-best",
        action="store_true",
        help="with early stopping, keep and evaluate the last epoch's weights instead of the best epoch's",
    )
    _setting(g, "seed", type=int, default=d.seed, help=SEED_HELP)
    _setting(g, "train_fraction", type=float, default=d.train_fraction, help=FRACTION_HELP)
    _setting(
        g,
        "fine_tune_epochs",
        type=int,
        nargs="?",
        const=FINE_TUNE_EPOCHS,
        default=d.fine_tune_epochs,
        metavar="EPOCHS",
        help=f"vgg16: then unfreeze the last block and train EPOCHS more "
        f"({FINE_TUNE_EPOCHS} when given without a number)",
    )
    _setting(g, "fine_tune_lr", type=float, default=d.fine_tune_lr, help="the learning rate of fine-tuning")
    _setting(
        g,
        "precision",
        choices=PRECISIONS,
        default=d.precision,
        help="auto: mixed bfloat16 where the CPU multiplies bfloat16 natively (AVX512_BF16, AMX), "
        "else float32; results can differ in the last digits",
    )
    _setting(
        g,
        "class_weight",
        choices=CLASS_WEIGHTS,
        default=d.class_weight,
        help="balanced: a class with fewer training images counts more in the loss (for imbalanced data; "
        "python -m core health shows the balance)",
    )
    a = p.add_argument_group("augmentation (training images only)")
    n = AugmentConfig()
    _setting(a, "rotation", type=float, default=n.rotation, metavar="DEGREES", help="random rotation, +- degrees")
    _setting(
        a, "width_shift", type=float, default=n.width_shift, metavar="F", help="random horizontal shift, +- F x width"
    )
    _setting(
        a, "height_shift", type=float, default=n.height_shift, metavar="F", help="random vertical shift, +- F x height"
    )
    a.add_argument("--hflip", action="store_true", help="random horizontal flips")
    a.add_argument("--vflip", action="store_true", help="random vertical flips")
    _setting(a, "zoom", type=float, default=n.zoom, metavar="F", help="random zoom, +- F")
    _setting(
        a, "fill_mode", choices=FILL_MODES, default=n.fill_mode, help="how pixels moved in from outside are filled"
    )
    c = AugmentConfig.course()
    flips = "flips" if c.hflip and c.vflip else "horizontal flips" if c.hflip else "vertical flips"
    a.add_argument(
        "--augment",
        action="store_true",
        help=f"the course's settings (rotation {c.rotation:g}, shifts {c.width_shift:g}, {flips}, zoom {c.zoom:g})",
    )


def model_config(args: argparse.Namespace) -> ModelConfig:
    kw: dict[str, Any] = {}
    text = str(args.filters)
    try:
        parts = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(
            f"--filters must be a whole number or a comma-separated list like 16,32,64. Got {text!r}."
        ) from None
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
        kernel_size=args.kernel_size,
        pool_size=args.pool_size,
        padding=args.padding,
        batchnorm=args.batchnorm,
        dense_units=args.dense_units,
        dropout=args.dropout,
        # a CNN has no base to load weights into: its config keeps the default, as in a notebook or the pages
        weights=args.weights if args.model == "vgg16" else ModelConfig().weights,
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
        learning_rate=args.learning_rate,
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
        fine_tune_epochs=args.fine_tune_epochs,
        fine_tune_lr=args.fine_tune_lr,
        precision=args.precision,
        class_weight=args.class_weight,
    )


DATA_HELP = "the images: a bundled dataset's name (python -m core datasets), a folder of class folders, or a .zip"
JSON_HELP = "print one JSON document instead of tables"


def _data_flag(p: argparse.ArgumentParser, required: bool = True) -> None:
    """The one --data rule: every command that reads images names them (no command picks a dataset for you)."""
    p.add_argument("--data", required=required, default=None, help=DATA_HELP)


def build_parser(prog: str = "python -m core") -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show the traceback of an unexpected error, and TF's logs",
    )
    p = Parser(prog=prog, description="CNN Lab engine: layer tables, training, stored runs.", parents=[common])
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser)

    s = sub.add_parser("summary", parents=[common], help="layer-by-layer table with parameter counts (no training)")
    _model_flags(s, classes=True)
    s.add_argument("--json", action="store_true", help=JSON_HELP)

    t = sub.add_parser("train", parents=[common], help="train a model (or return the stored run)")
    _data_flag(t)
    _model_flags(t, classes=False)
    _train_flags(t)
    t.add_argument("--no-cache", action="store_true", help="train again even if this run is stored")
    t.add_argument("--json", action="store_true", help=JSON_HELP)

    e = sub.add_parser(
        "estimate", parents=[common], help="how long a training will take and its peak memory (no training)"
    )
    src = e.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", help=DATA_HELP + " (its image count)")
    src.add_argument("--images", type=int, help="or just the number of images")
    _model_flags(e, classes=True)
    _train_flags(e)
    e.add_argument("--recalibrate", action="store_true", help="measure this machine's speed again first")
    e.add_argument("--json", action="store_true", help=JSON_HELP)

    r = sub.add_parser("runs", parents=[common], help="list stored runs")
    r.add_argument("--limit", type=int, default=None, help="the newest LIMIT runs only (default: all)")
    r.add_argument("--json", action="store_true", help=JSON_HELP)

    ds = sub.add_parser("datasets", parents=[common], help="list the bundled sample datasets")
    ds.add_argument("--json", action="store_true", help=JSON_HELP)

    lab = sub.add_parser(
        "lab", parents=[common], help="the overfitting lab: baseline vs dropout, augmentation, early stopping"
    )
    _data_flag(lab)
    _setting(lab, "train_fraction", type=float, default=DEFAULT_FRACTION, help=FRACTION_HELP)
    _setting(lab, "epochs", type=int, default=DEFAULT_EPOCHS, help=EPOCHS_HELP)
    _setting(lab, "seed", type=int, default=DEFAULT_SEED, help=SEED_HELP)
    lab.add_argument("--json", action="store_true", help=JSON_HELP)
    add_batch_flags(lab)

    d = TrainConfig()
    cmp_ = sub.add_parser(
        "compare",
        parents=[common],
        help="stored runs side by side (settings that differ, best-epoch metrics, calibration); "
        "--transfer: scratch CNN vs VGG16 transfer on the same split and seed",
    )
    cmp_.add_argument("run_ids", nargs="*", metavar="RUN_ID", help="stored runs to compare (python -m core runs)")
    cmp_.add_argument("--all-keys", action="store_true", help="every setting, not only the ones that differ")
    cmp_.add_argument(
        "--transfer",
        action="store_true",
        help="train (or fetch) the course CNN and the VGG16 transfer model on --data and compare them",
    )
    _data_flag(cmp_, required=False)  # required with --transfer (checked by the command)
    _setting(cmp_, "weights", default=OFFLINE_WEIGHTS, help="--transfer: the VGG16 base weights (as in train)")
    _setting(cmp_, "epochs", type=int, default=d.epochs, help="--transfer: " + EPOCHS_HELP)
    _setting(cmp_, "seed", type=int, default=d.seed, help="--transfer: the seed of both runs")
    cmp_.add_argument("--json", action="store_true", help=JSON_HELP)
    add_batch_flags(cmp_)

    rp = sub.add_parser("repeat", parents=[common], help="one configuration over k seeds: the spread of its scores")
    _data_flag(rp)
    rp.add_argument(
        "--seeds",
        type=int,
        default=REPEAT_SEEDS,
        help=f"how many seeds, {MIN_SEEDS}-{MAX_SEEDS}: --seed, --seed+1, ...",
    )
    _model_flags(rp, classes=False)
    _train_flags(rp)
    rp.add_argument("--json", action="store_true", help=JSON_HELP)
    add_batch_flags(rp)

    sw = sub.add_parser("sweep", parents=[common], help="one or two settings over a few values: a grid of scores")
    _data_flag(sw)
    sw.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="NAME=V1,V2",
        help="a setting (any ModelConfig/TrainConfig field, or its flag's short name: lr, dense...) "
        f"and its values; once or twice, at most {MAX_POINTS} points",
    )
    sw.add_argument("--grid-file", default=None, metavar="FILE", help='a JSON grid instead: {"dropout": [0, 0.5]}')
    _model_flags(sw, classes=False)
    _train_flags(sw)
    sw.add_argument("--json", action="store_true", help=JSON_HELP)
    add_batch_flags(sw)

    xp = sub.add_parser(
        "export",
        parents=[common],
        help="a stored run as a standalone script, its model, CSVs or a self-contained HTML report",
    )
    xp.add_argument("run_id", metavar="RUN_ID", help=RUN_ID_HELP)
    xp.add_argument(
        "--code",
        metavar="run.py",
        help="a script needing only TensorFlow, NumPy, scikit-learn and Pillow: python run.py FOLDER [--epochs N]",
    )
    xp.add_argument("--model-file", metavar="out.keras", help="the best epoch's model (a .keras file)")
    xp.add_argument("--model", dest="old_model_flag", default=None, help=argparse.SUPPRESS)  # refused with a hint
    xp.add_argument("--history", metavar="h.csv", help="loss and accuracy per epoch")
    xp.add_argument("--predictions", metavar="p.csv", help="the test set's predictions and probabilities")
    xp.add_argument("--report", metavar="run.html", help="one HTML file that opens with no network")
    xp.add_argument("--config", metavar="c.json", help="the run's settings (the dashboard can load them)")

    j = sub.add_parser(
        "jobs", parents=[common], help="training jobs: queued, running and recent (any server on this store)"
    )
    j.add_argument("--limit", type=int, default=20, help="recent finished jobs to show")
    j.add_argument("--json", action="store_true", help=JSON_HELP)

    em = sub.add_parser(
        "embed",
        parents=[common],
        help="a stored run's test images in its last hidden layer's feature space, in 2-D (PCA or t-SNE)",
    )
    em.add_argument("run_id", metavar="RUN_ID", help=RUN_ID_HELP)
    em.add_argument(
        "--method",
        choices=list(METHODS),
        default="pca",
        help="the projection to 2-D (both seeded: the same every time)",
    )
    em.add_argument("--out", metavar="embed.png", default=None, help="also draw the picture as a PNG file")
    em.add_argument(
        "--train-images",
        action="store_true",
        help="also the run's training images (its dataset is read again and split as the training split it)",
    )
    em.add_argument(
        "--json", action="store_true", help="one JSON document: per image its coordinates, class and prediction"
    )

    mx = sub.add_parser(
        "maximise",
        parents=[common],
        help="what a filter (or a class) of a stored run wants to see: an image grown from noise by gradient ascent",
    )
    mx.add_argument("run_id", metavar="RUN_ID", help=RUN_ID_HELP)
    mx.add_argument("--layer", default=None, help="a convolution layer (python -m core explain names them)")
    mx.add_argument("--filter", type=int, default=None, metavar="F", help="the filter's index in that layer, from 0")
    mx.add_argument(
        "--class",
        dest="class_name",
        default=None,
        metavar="NAME",
        help="instead of a filter: a class (its score before the softmax is raised)",
    )
    mx.add_argument("--steps", type=int, default=None, help="gradient steps (default: 150, 100 for VGG16)")
    mx.add_argument("--seed", type=int, default=0, help="the starting noise and the jitter")
    mx.add_argument("--out", metavar="filter.png", default=None, help="write the image as a PNG file")
    mx.add_argument("--json", action="store_true", help="one JSON document: the numbers and the settings")
    mx.add_argument("--with-image", action="store_true", help="with --json: the image's pixels too")

    ex = sub.add_parser(
        "explain", parents=[common], help="inside a stored run for one image: feature maps and Grad-CAM as PNGs"
    )
    ex.add_argument("run_id", metavar="RUN_ID", help=RUN_ID_HELP)
    ex.add_argument("--image", required=True, help="an image file; it is resized as the run's training images were")
    ex.add_argument(
        "--layer",
        default=None,
        help="the layer whose feature maps are drawn (default: the first "
        "convolution); Grad-CAM always uses the last convolution",
    )
    ex.add_argument(
        "--class",
        dest="class_name",
        default=None,
        metavar="NAME",
        help="the class Grad-CAM explains (default: the predicted one)",
    )
    ex.add_argument("--out", required=True, help="folder for the PNG files (created if missing)")
    ex.add_argument("--json", action="store_true", help="also the Grad-CAM map itself, at the image's size")

    sa = sub.add_parser(
        "saliency",
        parents=[common],
        help="why a stored run chose a class for one test image: Grad-CAM, occlusion, SmoothGrad, Integrated "
        "Gradients, an edge map as a control; --sanity randomises the top layers and compares",
    )
    sa.add_argument("run_id", metavar="RUN_ID", help=RUN_ID_HELP)
    sa.add_argument("--image", type=int, required=True, metavar="N", help="the test image's number (0, 1, ...)")
    sa.add_argument(
        "--class",
        dest="class_name",
        default=None,
        metavar="NAME",
        help="the class explained (default: the predicted one)",
    )
    sa.add_argument(
        "--method",
        default="all",
        metavar="M1,M2",
        help=f"all (default) or some of {', '.join(SALIENCY_METHODS)}, separated by commas",
    )
    sa.add_argument(
        "--sanity",
        action="store_true",
        help="also randomise the top layers' weights (a copy) and say which maps changed (Adebayo et al.)",
    )
    sa.add_argument("--out", metavar="maps.png", default=None, help="also draw the maps over the image as a PNG file")
    sa.add_argument("--json", action="store_true", help="one JSON document: every map, and the check's correlations")

    lf = sub.add_parser(
        "lr-find",
        parents=[common],
        help="the learning-rate range test: the loss as the learning rate rises, and a suggested rate (stored)",
    )
    _data_flag(lf)
    _model_flags(lf, classes=False)
    _train_flags(lf)
    r = LRRange()
    lf.add_argument("--start", type=float, default=r.start, help="the first step's learning rate")
    lf.add_argument("--end", type=float, default=r.end, help="the last step's learning rate")
    lf.add_argument(
        "--steps",
        type=int,
        default=r.steps,
        help=f"steps of the test, in [5, 2000] (default: min({MAX_STEPS}, {LR_EPOCHS} epochs' batches))",
    )
    lf.add_argument("--no-cache", action="store_true", help="run the test again even if it is stored")
    lf.add_argument("--json", action="store_true", help=JSON_HELP)

    hl = sub.add_parser(
        "health",
        parents=[common],
        help="a dataset before training: images per class and split, imbalance, duplicate images across splits; "
        "after a run (--run): its held-out images most likely mislabelled",
    )
    _data_flag(hl, required=False)
    hl.add_argument(
        "--run",
        metavar="RUN_ID",
        default=None,
        help="instead of --data: rank this run's validation and test images by the probability of their own label",
    )
    hl.add_argument(
        "--top", type=int, default=TOP_K, metavar="K", help=f"with --run: how many images to list (default {TOP_K})"
    )
    m, t = ModelConfig(), TrainConfig()
    _setting(hl, "input_size", type=int, default=m.input_size, help="image height = width, as training reads them")
    _setting(hl, "channels", type=int, choices=[1, 3], default=m.channels, help="3 = RGB, 1 = gray")
    _setting(hl, "test_size", type=float, default=t.test_size, help="test part of the whole dataset, as in train")
    _setting(hl, "val_split", type=float, default=t.val_split, help="validation part of the training data, as in train")
    _setting(hl, "seed", type=int, default=t.seed, help="the seed of the split, as in train")
    _setting(hl, "train_fraction", type=float, default=t.train_fraction, help=FRACTION_HELP)
    hl.add_argument("--json", action="store_true", help=JSON_HELP)

    ch = sub.add_parser(
        "challenge",
        parents=[common],
        help="the class challenges, as the teacher sees them: list, show one, or its board (scores and names)",
    )
    ch.add_argument("action", choices=["list", "show", "board"], help="list them, show one, or print its board")
    ch.add_argument("challenge_id", metavar="ID", nargs="?", default=None, help="a challenge (from 'challenge list')")
    ch.add_argument("--csv", action="store_true", help="with board: the board as CSV, the dashboard's download")
    ch.add_argument("--json", action="store_true", help=JSON_HELP)
    return p
