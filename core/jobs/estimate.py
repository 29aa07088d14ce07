"""How long a training will take, and how much memory it needs, before it starts.

The layer table counts every layer's multiply-adds for one image's forward
pass (:attr:`core.models.layer_table.LayerTable.total_macs`). A training step costs
about three forward passes (forward, and the backward pass's two products),
a validation image one. What a multiply-add costs, and what every image costs
besides (reading, scaling, the step's fixed work), differs per machine,
precision and library version, so it is measured once: :func:`calibrate`
trains two networks of very different sizes for a few seconds on random
images, with and without augmentation and batch normalisation (after a
warm-up training: a process's first training pays TensorFlow's set-up once),
interleaved over two rounds, and solves for

    seconds per epoch = (3 x train + val images) x (MACs / rate + batchnorm values x per_bn_value)
                        + (train + val images) x per_image
                        + train images x pixels x augment_per_pixel (when augmenting)

plus a fixed start (building the model, tracing the first epoch). Batch
normalisation gets its own price: it does one multiply-add per value but moves
every value through memory several times (a 128 px network took 2-3x as long
with it, bench/RESULTS.md); it is priced from the course network trained with
and without it. The result
is stored under ``CNNLAB_HOME/calibration/`` in a file named by the CPU (model
and flags), the core count, the precision and the TensorFlow and Keras
versions, so a new CPU or a library upgrade measures again.

:func:`estimate` then prices a configuration: seconds and peak memory, and,
with the trainings queued before it, when it will be done. Other work on a
shared machine slows training down: the calibration records how many cores
other processes kept busy while it measured, an estimate samples that again
(:func:`others_busy`, from /proc/stat less this process's own CPU time) and
scales the time by :func:`load_factor`. It does not train and does not
import TensorFlow unless it has to calibrate.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import resource
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.base.config import AugmentConfig, ModelConfig, TrainConfig
from core.base.environment import settings
from core.base.precision import cpu_flags, run_precision
from core.base.tables import plural
from core.data import Dataset, prepare_data
from core.models.layer_table import VGG16_BLOCKS, layer_table
from core.store.runstore import RunStore, default_home
from core.training.train import train_model

# How much of the CPU other processes use (Linux /proc/stat; elsewhere other work reads as none): a shared
# machine slows a training down, and an estimate scales by it.


def cpu_times() -> tuple[float, float, float]:
    """(wall clock, seconds of CPU busy on all cores, this process's CPU seconds) now; busy is 0 without /proc."""
    busy = 0.0
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
        user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
        busy = (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError):
        pass
    return time.perf_counter(), busy, time.process_time()


def others_between(before: tuple[float, float, float], after: tuple[float, float, float]) -> float:
    """Cores other processes kept busy between two :func:`cpu_times`."""
    wall = after[0] - before[0]
    if wall <= 0 or not after[1]:
        return 0.0
    return max(0.0, ((after[1] - before[1]) - (after[2] - before[2])) / wall)


_sample: dict[str, float] = {}
_SAMPLE_SECONDS, _SAMPLE_TTL = 0.25, 5.0


def others_busy() -> float:
    """Cores other processes keep busy now (a 0.25 s sample, reused for 5 s): they slow a training down."""
    now = time.monotonic()
    if now - _sample.get("at", -1e9) > _SAMPLE_TTL:
        before = cpu_times()
        time.sleep(_SAMPLE_SECONDS)
        _sample.update(at=now, cores=others_between(before, cpu_times()))
    return _sample["cores"]


def load_factor(others_now: float, others_then: float, cores: int | None = None) -> float:
    """How much slower a training that wants every core runs now than it did when calibrated.

    With ``x`` cores busy elsewhere, a training that keeps all ``n`` cores busy gets about
    ``n / (n + x)`` of them, so its time scales with ``(n + x)``.
    """
    n = cores or os.cpu_count() or 1
    return (n + max(0.0, others_now)) / (n + max(0.0, others_then))


CALIBRATION_VERSION = 2


@dataclass(frozen=True)
class CalibrationRuns:
    """What :func:`calibrate` trains. A large and a small network separate the cost of a multiply-add from the
    cost of an image; the large one again with augmentation prices augmentation per pixel, and with batch
    normalisation prices a normalised value. Each run trains ``images`` random images for ``epochs`` epochs
    (the first is set-up), and all of them are repeated ``rounds`` times."""

    big: ModelConfig = ModelConfig()
    small: ModelConfig = ModelConfig(input_size=32, blocks=1, filters=8, dense_units=16, dropout=0.0)
    images: int = 400
    epochs: int = 3
    rounds: int = 2


# The runs calibrate() measures unless it is given others (the CLI's `estimate` and the Train page's button).
CALIBRATION_RUNS = CalibrationRuns()


@dataclass(frozen=True)
class Calibration:
    """This machine's measured training speed for one precision."""

    key: str
    precision: str
    macs_per_second: float  # effective multiply-adds per second in training steps
    seconds_per_image: float  # what an image costs besides its multiply-adds
    seconds_per_bn_value: float  # what a BatchNormalization output value costs, per image pass
    augment_seconds_per_pixel: float
    start_seconds: float  # building, compiling and the first epoch's tracing
    others_cores: float  # cores other processes kept busy while it measured (/proc/stat less this process)
    baseline_bytes: int  # peak resident memory of the process after the calibration runs
    machine: dict[str, Any]
    measured: float  # time.time()
    seconds: float  # how long calibrating took


@dataclass(frozen=True)
class QueuedRun:
    """A training ahead in the queue: its configs, its dataset's size, and how much of it is done."""

    model_cfg: ModelConfig
    train_cfg: TrainConfig
    n_images: int
    done: float = 0.0  # fraction already trained (the running job)


@dataclass(frozen=True)
class Estimate:
    """What :func:`estimate` predicts for one training."""

    seconds: float  # this training alone
    wait_seconds: float  # the trainings queued before it
    peak_bytes: int  # resident memory of the training process at its peak
    precision: str
    macs_per_image: int  # forward, from the layer table
    epochs: int
    n_train: int
    n_val: int
    calibrated: bool  # False: no calibration for this machine yet (use calibrate())
    load_factor: float = 1.0  # how much slower other processes make it now than during the calibration

    @property
    def finish_seconds(self) -> float:
        return self.wait_seconds + self.seconds

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "finish_seconds": self.finish_seconds}


def machine_identity(precision: str) -> dict[str, Any]:
    """What a calibration holds for: CPU model and flags, cores, precision, library versions."""
    import importlib.metadata as md

    def version(name: str) -> str:
        try:
            return md.version(name)
        except md.PackageNotFoundError:
            return "none"

    model = "?"
    try:
        text = Path("/proc/cpuinfo").read_text()
        model = next((ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("model name")), "?")
    except OSError:
        model = platform.processor() or platform.machine()
    return {
        "cpu": model,
        "flags_sha": hashlib.sha256(" ".join(sorted(cpu_flags())).encode()).hexdigest()[:12],
        "cores": os.cpu_count(),
        "precision": precision,
        "tensorflow": version("tensorflow"),
        "keras": version("keras"),
        "numpy": version("numpy"),
        "version": CALIBRATION_VERSION,
    }


def calibration_key(precision: str) -> str:
    return hashlib.sha256(json.dumps(machine_identity(precision), sort_keys=True).encode()).hexdigest()[:16]


def _path(home: Path, precision: str) -> Path:
    return Path(home) / "calibration" / f"{calibration_key(precision)}.json"


def load_calibration(home: str | Path, precision: str) -> Calibration | None:
    """The stored calibration for this machine, precision and library versions; None if there is none."""
    try:
        return Calibration(**json.loads(_path(Path(home), precision).read_text()))
    except (OSError, ValueError, TypeError):
        return None


def _random_dataset(cfg: ModelConfig, n: int, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, *cfg.input_shape()), dtype=np.uint8)
    labels = np.arange(n, dtype=np.int64) % cfg.num_classes
    return Dataset(images, labels, [f"c{i}" for i in range(cfg.num_classes)], [], "calibration", f"random-{n}", [])


def _timed(
    cfg: ModelConfig, augment: AugmentConfig, precision: str, images: int, epochs: int
) -> tuple[float, list[float], int, int]:
    """(start: building + tracing, the later epochs' seconds, train images, val images) of one short training."""
    data = prepare_data(_random_dataset(cfg, images), seed=0)
    train_cfg = TrainConfig(epochs=epochs, augment=augment, precision=precision, seed=0)
    t0 = time.perf_counter()
    res = train_model(cfg, train_cfg, data, store=None)
    total = time.perf_counter() - t0
    later = [float(v) for v in res.epoch_seconds[1:]]
    return total - sum(later) - float(np.median(later)), later, len(data.x_train), len(data.x_val)


def batchnorm_values(cfg: ModelConfig) -> int:
    """Values the BatchNormalization layers output for one image."""
    return sum(math.prod(r.output_shape) for r in layer_table(cfg).rows if r.type == "BatchNormalization")


def calibrate(home: str | Path, precision: str = "float32", runs: CalibrationRuns | None = None) -> Calibration:
    """Measure this machine's training speed in ``precision`` and store it under ``home``.

    ``runs`` are the trainings it times (None: :data:`CALIBRATION_RUNS`, about 40 s on 2 cores). They are
    interleaved over ``runs.rounds`` and their median epochs kept, so a burst of other work on a shared machine
    moves them all alike instead of one of them.
    """
    r = runs or CALIBRATION_RUNS
    t0 = time.perf_counter()
    cpu0 = cpu_times()
    with_bn = r.big.replace(batchnorm=True)
    big, small = layer_table(r.big).total_macs, layer_table(r.small).total_macs
    # warm-up: the process's first training pays TensorFlow's set-up
    _timed(r.small, AugmentConfig(), precision, r.images, r.epochs)
    timed = {
        "big": (r.big, AugmentConfig()),
        "small": (r.small, AugmentConfig()),
        "aug": (r.big, AugmentConfig.course()),
        "bn": (with_bn, AugmentConfig()),
    }
    epochs: dict[str, list[float]] = {k: [] for k in timed}
    starts: list[float] = []
    for _ in range(r.rounds):
        for name, (cfg, aug) in timed.items():
            start, later, nt, nv = _timed(cfg, aug, precision, r.images, r.epochs)
            epochs[name] += later
            starts.append(start)
    e_big, e_small, e_aug, e_bn = (float(np.median(epochs[k])) for k in ("big", "small", "aug", "bn"))
    # e = (3 nt + nv) * macs * c + (nt + nv) * o, for the two networks: solve for c (1/rate) and o.
    w = 3 * nt + nv
    a = np.array([[w * big, nt + nv], [w * small, nt + nv]], dtype=float)
    c, o = np.linalg.solve(a, np.array([e_big, e_small]))
    c = max(c, 1e-13)
    o = max(o, 0.0)
    aug = max(e_aug - e_big, 0.0) / (nt * math.prod(r.big.input_shape()))
    # batch normalisation: its extra time, less its few extra multiply-adds, per value it outputs
    bn = max(e_bn - e_big - w * (layer_table(with_bn).total_macs - big) * c, 0.0) / (w * batchnorm_values(with_bn))
    cal = Calibration(
        key=calibration_key(precision),
        precision=precision,
        macs_per_second=1.0 / c,
        seconds_per_image=o,
        seconds_per_bn_value=bn,
        augment_seconds_per_pixel=aug,
        start_seconds=max(min(starts), 0.0),  # the fixed cost every training pays (bigger ones trace longer)
        others_cores=others_between(cpu0, cpu_times()),
        baseline_bytes=int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024),
        machine=machine_identity(precision),
        measured=time.time(),
        seconds=time.perf_counter() - t0,
    )
    path = _path(Path(home), precision)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(asdict(cal), indent=1))
    os.replace(tmp, path)
    return cal


_background: dict[str, threading.Thread] = {}
_background_lock = threading.Lock()


def calibrate_in_background(home: str | Path, precision: str) -> bool:
    """Start :func:`calibrate` on a daemon thread unless one runs; True while one is running."""
    key = f"{home}:{precision}"
    with _background_lock:
        t = _background.get(key)
        if t is not None and t.is_alive():
            return True
        if load_calibration(home, precision) is not None:
            return False
        t = threading.Thread(target=calibrate, args=(home, precision), name="cnnlab-calibrate", daemon=True)
        _background[key] = t
        t.start()
        return True


def calibrating(home: str | Path, precision: str) -> bool:
    """Whether :func:`calibrate_in_background` is measuring ``precision`` for ``home`` now."""
    t = _background.get(f"{home}:{precision}")
    return t is not None and t.is_alive()


def _split_sizes(n_images: int, train_cfg: TrainConfig) -> tuple[int, int]:
    rest = n_images - math.ceil(n_images * train_cfg.test_size)
    n_val = math.floor(rest * train_cfg.val_split)
    n_train = rest - math.ceil(rest * train_cfg.val_split)
    return max(1, round(n_train * train_cfg.train_fraction)), max(1, n_val)


def _vgg_block5_macs(input_size: int) -> int:
    side, c, macs = input_size // 16, 512, 0
    for _ in range(VGG16_BLOCKS[-1][1]):
        macs += side * side * 512 * 9 * c
    return macs


def _seconds(model_cfg: ModelConfig, train_cfg: TrainConfig, n_images: int, cal: Calibration) -> float:
    table = layer_table(model_cfg)
    n_train, n_val = _split_sizes(n_images, train_cfg)
    pixels = math.prod(model_cfg.input_shape())
    per_mac = 1.0 / cal.macs_per_second
    o = cal.seconds_per_image
    augment = train_cfg.augment.enabled
    aug = n_train * pixels * cal.augment_seconds_per_pixel if augment else 0.0
    if model_cfg.model == "cnn":
        per_image = table.total_macs * per_mac + batchnorm_values(model_cfg) * cal.seconds_per_bn_value
        epoch = (3 * n_train + n_val) * per_image + (n_train + n_val) * o + aug
        return cal.start_seconds + train_cfg.epochs * epoch
    # VGG16: the frozen base runs forward only; without augmentation once per image (cached features)
    base = table.rows[0].macs
    head = table.total_macs - base
    if augment:
        epoch = (n_train + n_val) * base * per_mac + (3 * n_train + n_val) * head * per_mac
        epoch += (n_train + n_val) * o + aug
        seconds = cal.start_seconds + train_cfg.epochs * epoch
    else:
        # extraction once (the whole estimate if the features are cached already), then the head on 512
        # numbers per image: its multiply-adds and a tenth of an image's overhead (a guess, not calibrated)
        seconds = cal.start_seconds + (n_train + n_val) * (base * per_mac + o)
        seconds += train_cfg.epochs * ((3 * n_train + n_val) * head * per_mac + (n_train + n_val) * o * 0.1)
    if train_cfg.fine_tune_epochs:
        b5 = _vgg_block5_macs(model_cfg.input_size)
        fwd = 0 if not augment else base - b5  # cached block4 maps without augmentation
        ft = (n_train + n_val) * fwd * per_mac + (3 * n_train + n_val) * (b5 + head) * per_mac
        seconds += train_cfg.fine_tune_epochs * (ft + (n_train + n_val) * o + aug)
    return seconds


def _peak_bytes(model_cfg: ModelConfig, train_cfg: TrainConfig, n_images: int, cal: Calibration | None) -> int:
    """TensorFlow's baseline + the uint8 images + weights, gradients and Adam's two slots + a batch's activations."""
    table = layer_table(model_cfg)
    data = n_images * math.prod(model_cfg.input_shape())
    weights = 4 * (table.total_params + 3 * table.trainable_params)
    acts = sum(math.prod(r.output_shape) for r in table.rows for r in (r.children or (r,)))
    batch = 3 * 4 * train_cfg.batch_size * (acts + math.prod(model_cfg.input_shape()))  # forward + backward + input
    baseline = cal.baseline_bytes if cal is not None else 700 * 2**20
    return int(baseline + data + weights + batch)


def estimate(
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    n_images: int,
    *,
    queued_before: Sequence[QueuedRun] = (),
    home: str | Path | None = None,
    store: RunStore | None = None,
    calibration: Calibration | None = None,
    others: float | None = None,
) -> Estimate:
    """The training time and peak memory of a run of these configs on ``n_images`` images.

    Args:
        model_cfg, train_cfg: the run; the precision is the one it would use here.
        n_images: images in the dataset (split as ``train_cfg`` says).
        queued_before: trainings the worker runs first; their estimates are the wait.
        home, store: where calibrations are stored (``store.home`` or ``home``; else ``CNNLAB_HOME``).
        calibration: use this one instead of the stored one.
        others: cores other processes keep busy now; None samples them (:func:`others_busy`). The
            time is scaled from the calibration's conditions to these (:func:`load_factor`).

    Returns:
        An :class:`Estimate`. Without a calibration (``calibrated=False``) the
        seconds are 0: run :func:`calibrate` first (``python -m core estimate`` does).
    """
    precision = run_precision(model_cfg, train_cfg)
    if calibration is None:
        if home is None:
            home = store.home if store is not None else default_home()
        calibration = load_calibration(home, precision)
    n_train, n_val = _split_sizes(n_images, train_cfg)
    seconds = wait = 0.0
    factor = 1.0
    if calibration is not None:
        factor = load_factor(others_busy() if others is None else others, calibration.others_cores)
        seconds = _seconds(model_cfg, train_cfg, n_images, calibration)
        for q in queued_before:
            qcal = calibration
            if run_precision(q.model_cfg, q.train_cfg) != precision and home is not None:
                qcal = load_calibration(home, run_precision(q.model_cfg, q.train_cfg)) or calibration
            wait += (1.0 - q.done) * _seconds(q.model_cfg, q.train_cfg, q.n_images, qcal)
    return Estimate(
        seconds=seconds * factor,
        wait_seconds=wait * factor,
        peak_bytes=_peak_bytes(model_cfg, train_cfg, n_images, calibration),
        precision=precision,
        macs_per_image=layer_table(model_cfg).total_macs,
        epochs=train_cfg.epochs + (train_cfg.fine_tune_epochs if model_cfg.model == "vgg16" else 0),
        n_train=n_train,
        n_val=n_val,
        calibrated=calibration is not None,
        load_factor=factor,
    )


def duration_text(seconds: float) -> str:
    """40 -> "about 40 s", 170 -> "about 3 min", 5400 -> "about 1.5 h"."""
    if seconds < 90:
        return f"about {max(1, round(seconds / 5) * 5 if seconds >= 10 else round(seconds))} s"
    if seconds < 90 * 60:
        return f"about {round(seconds / 60)} min"
    return f"about {seconds / 3600:.1f} h"


def estimate_text(est: Estimate, queued: int = 0) -> str:
    """ "about 40 s on this server; about 3 min with the 2 trainings queued before it"."""
    if not est.calibrated:
        return "no time estimate yet: this server's speed has not been measured"
    text = f"{duration_text(est.seconds)} on this server"
    if queued:
        text += (
            f"; {duration_text(est.finish_seconds)} with the {queued} training{'s' if queued > 1 else ''} "
            "queued before it"
        )
    return text


def budget_warning(est: Estimate, budget: float | None = None) -> str | None:
    """One line when the training would not fit its time budget; None when it fits (or nothing is known).

    Args:
        est: the training's :class:`Estimate` (its own time, not the wait before it).
        budget: seconds one training may take; None: ``CNNLAB_MAX_TRAIN_SECONDS`` (0: no limit).
    """
    budget = settings().max_train_seconds if budget is None else budget
    if not budget or not est.calibrated or est.seconds <= budget or not est.epochs:
        return None
    fit = int(budget / (est.seconds / est.epochs))
    where = f"after about {plural(fit, 'epoch')} of its {est.epochs}" if fit else "during its first epoch"
    return (
        f"This training needs {duration_text(est.seconds)}, more than the {budget:g} s a training may take on "
        f"this server: it would stop {where}. Fewer epochs, fewer images or a smaller network fit."
    )
