"""How long a training will take, all of it, and how much memory it needs, before it starts.

What a student waits for, from the press (or the command) to the result, in parts (:class:`Estimate`):

- **the queue ahead**: the trainings the fair queue starts before this one (:mod:`core.jobs.fairqueue`),
  each by its own estimate, on the worker's slots;
- **the start**: a new process (Python, TensorFlow and Keras imported: the CLI's ``train``, or the
  dashboard's training process when no warm one is ready) or nearly nothing (a warm process,
  :class:`core.jobs.process.WarmPool`, or this process when it has trained before); then building the
  network and tracing its first epoch, plus a process's first ``fit``'s once-only costs where the
  process has not trained yet (a warm process paid them while it waited);
- **the epochs**: the layer table counts every layer's multiply-adds for one image's forward pass
  (:attr:`core.models.layer_table.LayerTable.total_macs`); a training step costs about three forward
  passes, a validation image one;
- **testing and saving**: the test and validation images' predictions, the scores, and the run written
  to the store (its size grows with the parameters).

What a multiply-add costs, and what every image costs besides (reading, scaling, the step's fixed work),
differs per machine, precision and library version, so it is measured once: :func:`calibrate` runs a
fresh process (``python -m core.jobs.measure``; it times its own start and import) that trains two
networks of very different sizes for a few seconds on random images, with and without augmentation and
batch normalisation, after a throwaway training timed twice (a process's first ``fit`` pays TensorFlow's
set-up once: :func:`core.jobs.child.first_trace`), tests and saves each run, and solves for

    seconds per epoch = (3 x train + val images) x (MACs / rate + batchnorm values x per_bn_value)
                        + (train + val images) x per_image
                        + train images x pixels x augment_per_pixel (when augmenting)
    testing and saving = fixed + (val + test images) x MACs / rate + parameters x per_parameter
    building and the first trace = fixed + layers x per_layer (+ augmentation's own trace)

(the last from the course network, the small one and the course network with batch normalisation: a 1-block
network builds and traces in a fraction of the course network's time). Then it trains one VGG16 transfer run
on random images (random weights: the time does not depend on their values, nothing is downloaded): VGG16's
large convolutions run faster per multiply-add than the course network's small ones, and its 14.7 M
parameters are saved at a price of their own, so the transfer model is priced from that run, not extrapolated:
the frozen base's forward rate (timed over the extraction's batches after the first), a head epoch, the
fine-tuning's rate (block5 and the head trained on cached block4 maps), its build and traces, and its test
and save.

Batch normalisation gets its own price: it does one multiply-add per value but moves every value through
memory several times (a 128 px network took 2-3x as long with it, bench/RESULTS.md). The result is stored
under ``CNNLAB_HOME/calibration/`` in a file named by the CPU (model and flags), the core count, the
precision and the TensorFlow and Keras versions, so a new CPU or a library upgrade measures again. The
dashboard measures in the background when its worker starts (:func:`calibrate_in_background`; the
Train page says "measuring" until then); the CLI's ``estimate`` measures in the foreground.

:func:`estimate` then prices a configuration. Other work on a shared machine slows training down: the
calibration records how many threads of other processes wanted the CPU while it measured, an estimate
samples that again (:func:`others_busy`: /proc/stat's running threads less this process's own) and scales
the time by :func:`load_factor`. It does not train and never imports TensorFlow (the measuring process does).
"""

from __future__ import annotations

import functools
import hashlib
import heapq
import json
import math
import os
import platform
import resource
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.base.config import AugmentConfig, ModelConfig, TrainConfig
from core.base.environment import settings
from core.base.precision import cpu_flags, run_precision
from core.base.tables import plural
from core.data import Dataset
from core.jobs.child import first_trace
from core.jobs.process import child_env, cores
from core.models.layer_table import VGG16_BLOCKS, layer_table
from core.store.runstore import RunStore, default_home
from core.training.experiment import compute_run, save_run

# How many threads of other processes want the CPU (Linux /proc; elsewhere other work reads as none): on a
# shared machine they take their share of it, and an estimate scales by them. Counted as threads ready to
# run, not as busy cores: busy cores stop at the core count, and at a load of 10 on 2 cores a training gets
# a fifth of what it gets at a load of 2, though both keep every core busy.


def _procs_running() -> int:
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("procs_running"):
            return int(line.split()[1])
    return 0


def _own_running() -> int:
    """This process's threads running or ready to run now."""
    n = 0
    for task in Path("/proc/self/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except OSError:  # the thread ended
            continue
        n += stat[stat.rindex(")") + 2] == "R"
    return n


def others_running() -> int:
    """Threads of other processes running or ready to run now (0 without /proc)."""
    try:
        return max(0, _procs_running() - _own_running())
    except (OSError, ValueError):
        return 0


_sample: dict[str, float] = {}
_SAMPLES, _SAMPLE_SECONDS, _SAMPLE_TTL = 10, 0.25, 5.0


def others_busy() -> float:
    """Threads of other processes that want the CPU now, on average over 0.25 s (reused for 5 s)."""
    now = time.monotonic()
    if now - _sample.get("at", -1e9) > _SAMPLE_TTL:
        counts = []
        for _ in range(_SAMPLES):
            counts.append(others_running())
            time.sleep(_SAMPLE_SECONDS / _SAMPLES)
        _sample.update(at=now, threads=float(np.mean(counts)))
    return _sample["threads"]


class _Sampler:
    """:func:`others_running`, sampled every ``every`` seconds on a thread of its own while it is open."""

    def __init__(self, every: float = 0.2):
        self.every, self.counts = every, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cnnlab-load-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self.counts.append(others_running())

    def __enter__(self) -> _Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def mean(self) -> float:
        return float(np.mean(self.counts)) if self.counts else 0.0


def load_factor(others_now: float, others_then: float, cores: int | None = None) -> float:
    """How much slower a training that wants every core runs now than it did when calibrated.

    With ``x`` threads of other processes ready to run, a training whose ``n`` threads want all ``n`` cores
    gets about ``n / (n + x)`` of them (the scheduler shares the CPU by thread), so its time scales with
    ``(n + x)``.
    """
    n = cores or os.cpu_count() or 1
    return (n + max(0.0, others_now)) / (n + max(0.0, others_then))


# 4: build + trace per layer, a VGG16 transfer run; 5: the fastest of 4 steady epochs, the small network at 64 px
CALIBRATION_VERSION = 5


_VGG = ModelConfig(model="vgg16", weights="none")  # random weights: the timing does not depend on their values


@dataclass(frozen=True)
class CalibrationRuns:
    """What :func:`calibrate` trains. A large and a small network separate the cost of a multiply-add from the
    cost of an image (and, testing and saving them, the fixed cost of that from a parameter's; building and
    tracing them, the fixed cost of that from a layer's); the large one again with augmentation prices
    augmentation per pixel, and with batch normalisation prices a normalised value. Each run trains ``images``
    random images for ``epochs`` epochs (the first is set-up), tests and saves; all of them are repeated
    ``rounds`` times. Then one VGG16 transfer run (``vgg``; None: none) on ``vgg_images`` random images, its
    head and its fine-tuning ``vgg_epochs`` epochs each (the first traces): VGG16's large convolutions run
    faster per multiply-add than the course network's, and its 14.7 M parameters are saved at a price of
    their own."""

    big: ModelConfig = ModelConfig()
    # at the course's 64 px: what an image costs besides its multiply-adds grows with the image, and nearly every
    # training is at 64 px; measured at 32 px, that price made narrow 64 px networks' estimates short (the
    # 16-filter network's by 21-46%; bench/RESULTS.md)
    small: ModelConfig = ModelConfig(input_size=64, blocks=1, filters=8, dense_units=16, dropout=0.0)
    images: int = 300
    epochs: int = 5  # 4 steady epochs a run, of which the fastest counts
    rounds: int = 1
    vgg: ModelConfig | None = _VGG
    vgg_images: int = 128
    vgg_epochs: int = 2

    def to_dict(self) -> dict[str, Any]:
        return {
            "big": self.big.to_dict(),
            "small": self.small.to_dict(),
            "images": self.images,
            "epochs": self.epochs,
            "rounds": self.rounds,
            "vgg": None if self.vgg is None else self.vgg.to_dict(),
            "vgg_images": self.vgg_images,
            "vgg_epochs": self.vgg_epochs,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CalibrationRuns:
        return cls(
            big=ModelConfig.from_dict(d["big"]),
            small=ModelConfig.from_dict(d["small"]),
            images=int(d["images"]),
            epochs=int(d["epochs"]),
            rounds=int(d["rounds"]),
            vgg=None if d.get("vgg") is None else ModelConfig.from_dict(d["vgg"]),
            vgg_images=int(d.get("vgg_images", 0)),
            vgg_epochs=int(d.get("vgg_epochs", 2)),
        )


# The runs calibrate() measures unless it is given others (the CLI's `estimate` and the dashboard).
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
    start_seconds: float  # building, compiling and the first epoch's tracing, in a process that has trained: the
    # fixed part (a line's intercept, with start_seconds_per_layer: it may be below 0)
    others_cores: float  # threads of other processes ready to run while it measured, on average
    baseline_bytes: int  # peak resident memory of the process after the calibration runs
    machine: dict[str, Any]
    measured: float  # time.time()
    seconds: float  # how long calibrating took, the new process's start included
    process_seconds: float = 0.0  # a new process: Python started, TensorFlow, Keras and scikit-learn imported
    first_fit_seconds: float = 0.0  # what a process's first training pays once besides its own start
    finish_seconds: float = 0.0  # testing and saving: the fixed part (tracing the predictions, writing the run)
    save_seconds_per_param: float = 0.0  # testing and saving: what a parameter adds (the saved model's size)
    start_seconds_per_layer: float = 0.0  # building and tracing: what a layer (a layer table row) adds
    augment_start_seconds: float = 0.0  # building and tracing: what augmentation adds (its ops traced)
    # VGG16 transfer (0: not measured; then priced as the course network's multiply-adds)
    vgg_macs_per_second: float = 0.0  # the frozen base's forward pass (extraction, predictions), everything included
    vgg_head_epoch_seconds: float = 0.0  # an epoch of the head on cached features (Keras' own work per epoch, mostly)
    vgg_tune_macs_per_second: float = 0.0  # fine-tuning block5 + the head on cached block4 maps (3 passes per step)
    vgg_start_seconds: float = 0.0  # building the base (its weights) and the head, tracing extraction and head
    vgg_tune_start_seconds: float = 0.0  # fine-tuning's own compile and trace
    vgg_finish_seconds: float = 0.0  # testing and saving a transfer run, less its predictions (the model's 59 MB)
    vgg_run_seconds: float = 0.0  # how long the VGG16 run took (of ``seconds``)


@dataclass(frozen=True)
class QueuedRun:
    """A training ahead in the queue: its configs, its dataset's size, and how much of it is done."""

    model_cfg: ModelConfig
    train_cfg: TrainConfig
    n_images: int
    done: float = 0.0  # fraction already trained (the running job)


# Where a training runs, for its start (:func:`estimate`'s ``where``):
NEW_PROCESS = "new process"  # the CLI's `train`: Python and TensorFlow start for it (an in-process training)
COLD = "cold"  # the dashboard, no warm training process ready: one starts for the job (or is still warming)
WARM = "warm"  # the dashboard, a warm training process ready: TensorFlow imported, a first fit done
HERE = "here"  # this process, which has TensorFlow imported and has trained before (a notebook, a benchmark)
WHERE = (NEW_PROCESS, COLD, WARM, HERE)


@dataclass(frozen=True)
class Estimate:
    """What :func:`estimate` predicts for one training: the whole wait, in parts (seconds, load included)."""

    seconds: float  # this training alone: start + build + epochs + test and save
    wait_seconds: float  # the trainings that start before it (the queue ahead)
    peak_bytes: int  # resident memory of the training process at its peak
    precision: str
    macs_per_image: int  # forward, from the layer table
    epochs: int
    n_train: int
    n_val: int
    calibrated: bool  # False: no calibration for this machine yet (use calibrate())
    load_factor: float = 1.0  # how much slower other processes make it now than during the calibration
    where: str = NEW_PROCESS  # how it starts (WHERE)
    start_seconds: float = 0.0  # the process: Python and TensorFlow started (0 in a warm or trained process)
    build_seconds: float = 0.0  # building the network and tracing its first epoch (a first fit's costs too)
    epochs_seconds: float = 0.0  # the epochs themselves (VGG16: the base's features and the fine-tuning too)
    test_seconds: float = 0.0  # the test and validation predictions, the scores, saving the run
    queued: int = 0  # trainings ahead of it
    upper_bound: bool = False  # early stopping is on: every planned epoch is counted, it may end sooner

    @property
    def finish_seconds(self) -> float:
        """From now until its result: the queue ahead and the training."""
        return self.wait_seconds + self.seconds

    @property
    def train_seconds(self) -> float:
        """What a time budget counts (:class:`core.training.fit.TimeBudget`): building and the epochs."""
        return self.build_seconds + self.epochs_seconds

    def to_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "finish_seconds": self.finish_seconds,
            "train_seconds": self.train_seconds,
            "text": estimate_text(self),
        }


def machine_identity(precision: str) -> dict[str, Any]:
    """What a calibration holds for: CPU model and flags, cores, precision, library versions."""
    return {**_machine(), "precision": precision, "version": CALIBRATION_VERSION}


@functools.cache
def _machine() -> dict[str, Any]:
    """This machine and its libraries, read once per process (5 ms: a Train page rerun asks for it)."""
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
        "tensorflow": version("tensorflow"),
        "keras": version("keras"),
        "numpy": version("numpy"),
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
    files = [f"{i}.png" for i in range(n)]
    return Dataset(images, labels, [f"c{i}" for i in range(cfg.num_classes)], [], "calibration", f"random-{n}", files)


@dataclass(frozen=True)
class _Timed:
    start: float  # building + the first epoch's tracing (what it took beyond a steady epoch)
    later: list[float]  # the later epochs' seconds
    finish: float  # testing and saving
    n_train: int
    n_val: int
    n_test: int


def _timed(cfg: ModelConfig, augment: AugmentConfig, precision: str, images: int, epochs: int, home: Path) -> _Timed:
    """One short training through the engine's own path (:func:`compute_run`, then :func:`save_run` into a
    store under ``home``), timed in its parts."""
    ds = _random_dataset(cfg, images)
    train_cfg = TrainConfig(epochs=epochs, augment=augment, precision=precision, seed=0)
    key = f"calibration-{uuid.uuid4().hex[:8]}"
    t0 = time.perf_counter()
    art = compute_run(ds, cfg, train_cfg, key, source="calibration", store=None)
    save_run(RunStore(home), art)
    total = time.perf_counter() - t0
    rec = art.record
    later = [float(v) for v in rec.epoch_seconds[1:]]
    start = rec.seconds - sum(later) - float(np.median(later))
    return _Timed(start, later, total - rec.seconds, rec.data["n_train"], rec.data["n_val"], rec.data["n_test"])


@dataclass(frozen=True)
class _TimedVgg:
    """A VGG16 transfer run, timed: the training, the extraction's batches, the two phases' epochs, the rest."""

    seconds: float  # the training (building, extraction, head, fine-tuning)
    batch_ends: list[float]  # when each extraction batch ended, seconds from the first batch's end
    batch_size: int
    head: list[float]  # the head's epochs
    tune: list[float]  # the fine-tuning's epochs
    finish: float  # testing and saving
    n_images: int
    n_train: int
    n_val: int
    n_test: int


def _timed_vgg(cfg: ModelConfig, precision: str, images: int, epochs: int, home: Path) -> _TimedVgg:
    """One short VGG16 transfer run (the head on extracted features, then fine-tuning block5 on cached block4 maps)
    through the engine's path, the extraction timed batch by batch."""
    from core.training.base_features import EXTRACT_BATCH

    ds = _random_dataset(cfg, images)
    train_cfg = TrainConfig(epochs=epochs, fine_tune_epochs=epochs, precision=precision, seed=0)
    ends: list[float] = []

    def progress(event) -> None:
        if event.kind == "batch" and event.phase == "features":
            ends.append(time.perf_counter())

    key = f"calibration-{uuid.uuid4().hex[:8]}"
    t0 = time.perf_counter()
    art = compute_run(ds, cfg, train_cfg, key, source="calibration", store=None, progress=progress)
    save_run(RunStore(home), art)
    total = time.perf_counter() - t0
    rec = art.record
    secs = [float(v) for v in rec.epoch_seconds]
    return _TimedVgg(
        seconds=rec.seconds,
        batch_ends=[t - ends[0] for t in ends],
        batch_size=EXTRACT_BATCH,
        head=secs[:epochs],
        tune=secs[epochs:],
        finish=total - rec.seconds,
        n_images=images,
        n_train=rec.data["n_train"],
        n_val=rec.data["n_val"],
        n_test=rec.data["n_test"],
    )


def _clock(fn) -> float:
    """Seconds ``fn()`` takes."""
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def batchnorm_values(cfg: ModelConfig) -> int:
    """Values the BatchNormalization layers output for one image."""
    return sum(math.prod(r.output_shape) for r in layer_table(cfg).rows if r.type == "BatchNormalization")


def layers_of(cfg: ModelConfig) -> int:
    """The layers a network's build and first trace go through (the layer table's rows)."""
    return len(layer_table(cfg).rows)


def _line(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float]:
    """``(intercept, slope)`` of the least-squares line through the points; the slope not below 0. The intercept
    may be: the line holds over the networks measured (5 layers and more), not at none."""
    x, y = np.asarray(xs, float), np.asarray(ys, float)
    slope = max(float(np.polyfit(x, y, 1)[0]), 0.0) if np.ptp(x) > 0 else 0.0
    return float(np.mean(y - slope * x)), slope


def epoch_prices(big_macs: int, e_big: float, small_macs: int, e_small: float, nt: int, nv: int) -> tuple[float, float]:
    """``(seconds per multiply-add, seconds per image)`` from a steady epoch of two networks on ``nt`` training
    and ``nv`` validation images: an epoch is ``(3 nt + nv) x macs x c + (nt + nv) x o`` (a training image's
    forward and backward passes, a validation image's forward pass, and what an image costs besides)."""
    w = 3 * nt + nv
    a = np.array([[w * big_macs, nt + nv], [w * small_macs, nt + nv]], dtype=float)
    c, o = np.linalg.solve(a, np.array([e_big, e_small]))
    return max(float(c), 1e-13), max(float(o), 0.0)


def fit_calibration(r: CalibrationRuns, timed: dict[str, list[_Timed]], vgg: _TimedVgg | None) -> dict[str, float]:
    """The prices a calibration holds, solved from its timed runs (``timed``: "big", "small", "aug", "bn",
    each run's rounds; ``vgg``: the transfer run, or None). Only the measured prices: :func:`measure` adds
    the machine, the start of its process and the load."""
    t = timed["big"][0]
    nt, nv, ns = t.n_train, t.n_val, t.n_test
    with_bn = r.big.replace(batchnorm=True)
    big, small = layer_table(r.big), layer_table(r.small)
    # The fastest steady epoch of each network, not the median: on a shared host some epochs run at half speed
    # (other work takes a core for a while), and the rate is solved from the DIFFERENCE of two short epochs, so a
    # median over a few epochs moved it by half between calibrations (68-151 G/s on a quiet machine). Kept, the
    # fastest predicted a 4x larger network's mean epoch with a mean error of 11% and 26% in two sets of six
    # processes, the median 51% and 38% (bench/bench_steady.py, bench/RESULTS.md). What the pauses add to a real
    # training is its load, not the machine's price.
    e_big, e_small, e_aug, e_bn = (min(e for x in timed[k] for e in x.later) for k in ("big", "small", "aug", "bn"))
    c, o = epoch_prices(big.total_macs, e_big, small.total_macs, e_small, nt, nv)
    w = 3 * nt + nv
    aug = max(e_aug - e_big, 0.0) / (nt * math.prod(r.big.input_shape()))
    # batch normalisation: its extra time, less its few extra multiply-adds, per value it outputs
    bn = max(e_bn - e_big - w * (layer_table(with_bn).total_macs - big.total_macs) * c, 0.0) / (
        w * batchnorm_values(with_bn)
    )
    # testing and saving, less the predictions' multiply-adds: fixed + parameters x per_param, from the two sizes
    f_big = float(np.median([x.finish for x in timed["big"]])) - (nv + ns) * big.total_macs * c
    f_small = float(np.median([x.finish for x in timed["small"]])) - (nv + ns) * small.total_macs * c
    per_param = max((f_big - f_small) / max(big.total_params - small.total_params, 1), 0.0)
    fixed = max(f_small - small.total_params * per_param, 0.0)
    # building and the first trace: fixed + layers x per_layer, from the runs without augmentation; augmentation's
    # own trace on top
    cfgs = {"big": r.big, "small": r.small, "bn": with_bn}
    starts = {k: float(np.median([x.start for x in timed[k]])) for k in timed}
    start, per_layer = _line([layers_of(cfgs[k]) for k in cfgs], [starts[k] for k in cfgs])
    out = {
        "macs_per_second": 1.0 / c,
        "seconds_per_image": o,
        "seconds_per_bn_value": bn,
        "augment_seconds_per_pixel": aug,
        "start_seconds": start,
        "start_seconds_per_layer": per_layer,
        "augment_start_seconds": max(starts["aug"] - starts["big"], 0.0),
        "finish_seconds": fixed,
        "save_seconds_per_param": per_param,
    }
    if vgg is not None:
        out.update(_fit_vgg(r.vgg, vgg))
    return out


def _fit_vgg(cfg: ModelConfig, v: _TimedVgg) -> dict[str, float]:
    """The VGG16 prices from one timed transfer run (see :class:`Calibration`)."""
    base = layer_table(cfg).rows[0].macs
    head = layer_table(cfg).total_macs - base
    # the extraction's batches after the first (which traces): the base's forward rate, preprocessing included
    per_image = v.batch_ends[-1] / max(v.n_images - v.batch_size, 1)
    rate = base / max(per_image, 1e-12)
    head_epoch = float(np.median(v.head[1:]))
    tune_epoch = float(np.median(v.tune[1:]))
    nt, nv, ns = v.n_train, v.n_val, v.n_test
    tune_rate = (3 * nt + nv) * (_vgg_block5_macs(cfg.input_size) + head) / max(tune_epoch, 1e-12)
    tune_start = max(v.tune[0] - tune_epoch, 0.0)
    steady = v.n_images * per_image + len(v.head) * head_epoch + sum(v.tune)
    return {
        "vgg_macs_per_second": rate,
        "vgg_head_epoch_seconds": head_epoch,
        "vgg_tune_macs_per_second": tune_rate,
        "vgg_start_seconds": max(v.seconds - steady, 0.0),
        "vgg_tune_start_seconds": tune_start,
        "vgg_finish_seconds": max(v.finish - (nv + ns) * base / rate, 0.0),
    }


def measure(
    home: str | Path, precision: str, runs: CalibrationRuns | None = None, process_seconds: float = 0.0
) -> Calibration:
    """Measure this machine's training speed in ``precision`` in this process and store it under ``home``.

    What :func:`calibrate`'s new process runs (``python -m core.jobs.measure``); ``process_seconds`` is its
    start, as that process measured it. The runs are interleaved over ``runs.rounds``; of their steady epochs
    the fastest is kept (:func:`fit_calibration`), so an epoch other work slowed does not set the price.
    """
    r = runs or CALIBRATION_RUNS
    t0 = time.perf_counter()
    timed_cfgs = {
        "big": (r.big, AugmentConfig()),
        "small": (r.small, AugmentConfig()),
        "aug": (r.big, AugmentConfig.course()),
        "bn": (r.big.replace(batchnorm=True), AugmentConfig()),
    }
    timed: dict[str, list[_Timed]] = {k: [] for k in timed_cfgs}
    vgg, vgg_run = None, 0.0
    # A process's first training pays TensorFlow's set-up once: the warm training process's throwaway training
    # (:func:`core.jobs.child.first_trace`), timed the first time and again. Other work is sampled meanwhile.
    with _Sampler() as sampler, tempfile.TemporaryDirectory(prefix="cnnlab-calibration-") as tmp:
        first, again = _clock(first_trace), _clock(first_trace)
        for _ in range(r.rounds):
            for name, (cfg, aug) in timed_cfgs.items():
                timed[name].append(_timed(cfg, aug, precision, r.images, r.epochs, Path(tmp)))
        # a training process's memory at its peak, without the VGG16 run's (VGG16's own is added by _peak_bytes)
        baseline = int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
        if r.vgg is not None:
            t_vgg = time.perf_counter()
            vgg = _timed_vgg(r.vgg, precision, r.vgg_images, r.vgg_epochs, Path(tmp))
            vgg_run = time.perf_counter() - t_vgg
    cal = Calibration(
        key=calibration_key(precision),
        precision=precision,
        others_cores=sampler.mean,
        baseline_bytes=baseline,
        machine=machine_identity(precision),
        measured=time.time(),
        seconds=process_seconds + time.perf_counter() - t0,
        process_seconds=process_seconds,
        first_fit_seconds=max(first - again, 0.0),
        vgg_run_seconds=vgg_run,
        **fit_calibration(r, timed, vgg),
    )
    path = _path(Path(home), precision)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = path.with_suffix(f".{os.getpid()}.tmp")
    tmp_path.write_text(json.dumps(asdict(cal), indent=1))
    os.replace(tmp_path, path)
    return cal


MEASURE_MODULE = "core.jobs.measure"  # python -m core.jobs.measure: the measuring process (core/jobs/measure.py)


class CalibrationFailed(RuntimeError):
    """The measuring process ended without a calibration (its last line of output says why)."""


def calibrate(home: str | Path, precision: str = "float32", runs: CalibrationRuns | None = None) -> Calibration:
    """Measure this machine's training speed in ``precision`` in a new process, store it under ``home``, return it.

    A new process, started as a training process is (:func:`core.jobs.process.child_env`, every core), so the
    calibration also measures what starting one costs (Python, TensorFlow, Keras and scikit-learn imported),
    and the caller never imports TensorFlow (the dashboard's server stays small). ``runs``: the trainings it
    times (None: :data:`CALIBRATION_RUNS`: 22-31 s on 2 nearly quiet cores, the start (3.5-5 s) and the VGG16
    run (3.9-5.8 s) included; bench/RESULTS.md).
    """
    r = runs or CALIBRATION_RUNS
    env = child_env(cores())
    env["CNNLAB_TRAINING_NICE"] = "0"  # the machine's own speed; the dashboard's trainings share its load factor
    args = [sys.executable, "-m", MEASURE_MODULE, str(home), precision, json.dumps(r.to_dict()), repr(time.time())]
    p = subprocess.run(args, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False)
    cal = load_calibration(home, precision)
    if p.returncode != 0 or cal is None:
        lines = [ln for ln in (p.stderr or p.stdout).splitlines() if ln.strip()]
        raise CalibrationFailed(
            f"Measuring this machine's training speed failed (exit code {p.returncode}): "
            f"{lines[-1] if lines else 'no output'}"
        )
    return cal


_background: dict[str, threading.Thread] = {}
_background_lock = threading.Lock()


def calibrate_in_background(home: str | Path, precision: str, runs: CalibrationRuns | None = None) -> bool:
    """Start :func:`calibrate` on a daemon thread unless one runs or one is stored; True while one is running.

    ``runs``: None takes :data:`CALIBRATION_RUNS` as it is now (read here, on the caller's thread).
    """
    key = f"{home}:{precision}"
    with _background_lock:
        t = _background.get(key)
        if t is not None and t.is_alive():
            return True
        if load_calibration(home, precision) is not None:
            return False

        def run() -> None:
            try:
                calibrate(home, precision, runs or CALIBRATION_RUNS)
            except CalibrationFailed:
                pass  # no calibration stored: the page offers to measure again

        t = threading.Thread(target=run, name="cnnlab-calibrate", daemon=True)
        _background[key] = t
        t.start()
        return True


def calibrating(home: str | Path, precision: str) -> bool:
    """Whether :func:`calibrate_in_background` is measuring ``precision`` for ``home`` now."""
    t = _background.get(f"{home}:{precision}")
    return t is not None and t.is_alive()


def calibration_failed(home: str | Path, precision: str) -> bool:
    """Whether :func:`calibrate_in_background` measured ``precision`` for ``home`` in this process and stored
    nothing (then it is not started again by itself: each try costs seconds of CPU; a person may ask)."""
    t = _background.get(f"{home}:{precision}")
    return t is not None and not t.is_alive() and load_calibration(home, precision) is None


def _split_sizes(n_images: int, train_cfg: TrainConfig) -> tuple[int, int, int]:
    """(train, validation, test) images of ``n_images`` split as ``train_cfg`` says."""
    n_test = math.ceil(n_images * train_cfg.test_size)
    rest = n_images - n_test
    n_val = math.floor(rest * train_cfg.val_split)
    n_train = rest - math.ceil(rest * train_cfg.val_split)
    return max(1, round(n_train * train_cfg.train_fraction)), max(1, n_val), n_test


def _vgg_block5_macs(input_size: int) -> int:
    side, c, macs = input_size // 16, 512, 0
    for _ in range(VGG16_BLOCKS[-1][1]):
        macs += side * side * 512 * 9 * c
    return macs


@dataclass(frozen=True)
class _Parts:
    start: float
    build: float
    epochs: float
    test: float

    @property
    def total(self) -> float:
        return self.start + self.build + self.epochs + self.test


def _epochs_seconds(model_cfg: ModelConfig, train_cfg: TrainConfig, n_images: int, cal: Calibration) -> float:
    """The epochs (VGG16: the base's features once, the head's epochs, the fine-tuning)."""
    table = layer_table(model_cfg)
    n_train, n_val, _ = _split_sizes(n_images, train_cfg)
    pixels = math.prod(model_cfg.input_shape())
    per_mac = 1.0 / cal.macs_per_second
    o = cal.seconds_per_image
    augment = train_cfg.augment.enabled
    aug = n_train * pixels * cal.augment_seconds_per_pixel if augment else 0.0
    if model_cfg.model == "cnn":
        per_image = table.total_macs * per_mac + batchnorm_values(model_cfg) * cal.seconds_per_bn_value
        epoch = (3 * n_train + n_val) * per_image + (n_train + n_val) * o + aug
        return train_cfg.epochs * epoch
    # VGG16: the frozen base runs forward only, at its own rate; without augmentation once per image of the
    # dataset (the features are cached), with it every epoch
    base = table.rows[0].macs
    head = table.total_macs - base
    per_base_mac = 1.0 / (cal.vgg_macs_per_second or cal.macs_per_second)
    per_tune_mac = 1.0 / (cal.vgg_tune_macs_per_second or cal.macs_per_second)
    b5 = _vgg_block5_macs(model_cfg.input_size)
    if augment:  # the whole model on images, the base forward only
        epoch = (n_train + n_val) * base * per_base_mac + (3 * n_train + n_val) * head * per_mac
        seconds = train_cfg.epochs * (epoch + (n_train + n_val) * o + aug)
        tune = (n_train + n_val) * (base - b5) * per_base_mac + (n_train + n_val) * o + aug
    else:  # extraction once, then the head on 512 numbers per image, then block5 on cached block4 maps
        seconds = n_images * base * per_base_mac
        # a head epoch: as measured (Keras' own work per epoch, the most of it), and per image its multiply-adds
        # and a tenth of an image's overhead (512 numbers, not an image: a guess, not calibrated)
        head_epoch = cal.vgg_head_epoch_seconds + (n_train + n_val) * (3 * head * per_mac + 0.1 * o)
        seconds += train_cfg.epochs * head_epoch
        tune = 0.0
    if train_cfg.fine_tune_epochs:
        tune += (3 * n_train + n_val) * (b5 + head) * per_tune_mac
        seconds += train_cfg.fine_tune_epochs * tune
    return seconds


def _build_seconds(model_cfg: ModelConfig, train_cfg: TrainConfig, cal: Calibration) -> float:
    """Building the network and tracing its first epoch, in a process that has trained before."""
    if model_cfg.model == "vgg16" and cal.vgg_macs_per_second:
        tune = cal.vgg_tune_start_seconds if train_cfg.fine_tune_epochs else 0.0
        return cal.vgg_start_seconds + tune
    build = max(cal.start_seconds + layers_of(model_cfg) * cal.start_seconds_per_layer, 0.0)
    return build + (cal.augment_start_seconds if train_cfg.augment.enabled else 0.0)


def _test_seconds(model_cfg: ModelConfig, train_cfg: TrainConfig, n_images: int, cal: Calibration) -> float:
    """The test and validation images' predictions, the scores, the run saved."""
    table = layer_table(model_cfg)
    _, n_val, n_test = _split_sizes(n_images, train_cfg)
    if model_cfg.model == "vgg16" and cal.vgg_macs_per_second:
        return cal.vgg_finish_seconds + (n_val + n_test) * table.total_macs / cal.vgg_macs_per_second
    test = cal.finish_seconds + (n_val + n_test) * table.total_macs / cal.macs_per_second
    return test + table.total_params * cal.save_seconds_per_param


def _parts(model_cfg: ModelConfig, train_cfg: TrainConfig, n_images: int, cal: Calibration, where: str) -> _Parts:
    """The four parts of one training's own time, before the load factor."""
    fresh = where in (NEW_PROCESS, COLD)  # a process that has not trained yet pays a first fit's costs
    start = cal.process_seconds if fresh else 0.0
    build = _build_seconds(model_cfg, train_cfg, cal) + (cal.first_fit_seconds if fresh else 0.0)
    test = _test_seconds(model_cfg, train_cfg, n_images, cal)
    return _Parts(start, build, _epochs_seconds(model_cfg, train_cfg, n_images, cal), test)


def _seconds(model_cfg: ModelConfig, train_cfg: TrainConfig, n_images: int, cal: Calibration, where: str) -> float:
    """One training's own time (start, build, epochs, test and save), before the load factor."""
    return _parts(model_cfg, train_cfg, n_images, cal, where).total


def _peak_bytes(model_cfg: ModelConfig, train_cfg: TrainConfig, n_images: int, cal: Calibration | None) -> int:
    """TensorFlow's baseline + the uint8 images + weights, gradients and Adam's two slots + a batch's activations."""
    table = layer_table(model_cfg)
    data = n_images * math.prod(model_cfg.input_shape())
    weights = 4 * (table.total_params + 3 * table.trainable_params)
    acts = sum(math.prod(r.output_shape) for r in table.rows for r in (r.children or (r,)))
    batch = 3 * 4 * train_cfg.batch_size * (acts + math.prod(model_cfg.input_shape()))  # forward + backward + input
    baseline = cal.baseline_bytes if cal is not None else 700 * 2**20
    return int(baseline + data + weights + batch)


def queue_start(remaining: Sequence[float], slots: int = 1) -> tuple[float, bool]:
    """``(seconds until a slot is free for the next training, whether one is free now)``.

    ``remaining`` are the trainings ahead, in the order they start (the running ones first): each takes the
    slot that frees first, as the worker's dispatcher gives them out.
    """
    free = [0.0] * max(1, slots)
    for seconds in remaining:
        at = heapq.heappop(free)
        heapq.heappush(free, at + seconds)
    first = min(free)
    return first, first == 0.0


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
    where: str = NEW_PROCESS,
    slots: int = 1,
) -> Estimate:
    """The whole wait and the peak memory of a run of these configs on ``n_images`` images.

    Args:
        model_cfg, train_cfg: the run; the precision is the one it would use here.
        n_images: images in the dataset (split as ``train_cfg`` says).
        queued_before: trainings the worker starts first (the running ones first, then the waiting ones in
            the fair order); each by its own estimate: a running one's rest, a waiting one whole with a cold
            start (its process starts warming only when a slot frees).
        home, store: where calibrations are stored (``store.home`` or ``home``; else ``CNNLAB_HOME``).
        calibration: use this one instead of the stored one.
        others: cores other processes keep busy now; None samples them (:func:`others_busy`). The
            time is scaled from the calibration's conditions to these (:func:`load_factor`).
        where: how it starts (:data:`WHERE`): a ``NEW_PROCESS`` (the CLI's ``train``), the dashboard's
            training process ``WARM`` or ``COLD``, or ``HERE`` (a process that has trained before).
            A ``WARM`` start behind a queue is ``COLD``: the warm process goes to the first of them.
        slots: trainings the worker runs at once.

    Returns:
        An :class:`Estimate`. Without a calibration (``calibrated=False``) the
        seconds are 0: run :func:`calibrate` first (``python -m core estimate`` does).
    """
    if where not in WHERE:
        raise ValueError(f"where must be one of {', '.join(WHERE)}, not {where!r}")
    precision = run_precision(model_cfg, train_cfg)
    if calibration is None:
        if home is None:
            home = store.home if store is not None else default_home()
        calibration = load_calibration(home, precision)
    n_train, n_val, _ = _split_sizes(n_images, train_cfg)
    parts = _Parts(0.0, 0.0, 0.0, 0.0)
    wait = 0.0
    factor = 1.0
    if calibration is not None:
        factor = load_factor(others_busy() if others is None else others, calibration.others_cores)
        remaining = []
        for q in queued_before:
            qcal = calibration
            if run_precision(q.model_cfg, q.train_cfg) != precision and home is not None:
                qcal = load_calibration(home, run_precision(q.model_cfg, q.train_cfg)) or calibration
            p = _parts(q.model_cfg, q.train_cfg, q.n_images, qcal, COLD)
            if q.done > 0:  # running: the rest of its epochs, then its test and save
                remaining.append((1.0 - q.done) * p.epochs + p.test)
            else:
                remaining.append(p.total)
        wait, free_now = queue_start(remaining, slots)
        if where == WARM and not free_now:
            where = COLD
        parts = _parts(model_cfg, train_cfg, n_images, calibration, where)
    return Estimate(
        seconds=parts.total * factor,
        wait_seconds=wait * factor,
        peak_bytes=_peak_bytes(model_cfg, train_cfg, n_images, calibration),
        precision=precision,
        macs_per_image=layer_table(model_cfg).total_macs,
        epochs=train_cfg.epochs + (train_cfg.fine_tune_epochs if model_cfg.model == "vgg16" else 0),
        n_train=n_train,
        n_val=n_val,
        calibrated=calibration is not None,
        load_factor=factor,
        where=where,
        start_seconds=parts.start * factor,
        build_seconds=parts.build * factor,
        epochs_seconds=parts.epochs * factor,
        test_seconds=parts.test * factor,
        queued=len(queued_before),
        upper_bound=bool(train_cfg.early_stopping),
    )


def duration_text(seconds: float) -> str:
    """40 -> "about 40 s", 170 -> "about 3 min", 5400 -> "about 1.5 h"."""
    if seconds < 90:
        return f"about {max(1, round(seconds / 5) * 5 if seconds >= 10 else round(seconds))} s"
    if seconds < 90 * 60:
        return f"about {round(seconds / 60)} min"
    return f"about {seconds / 3600:.1f} h"


def part_text(seconds: float) -> str:
    """A part of the whole, without "about": 0.3 -> "under 1 s", 4.4 -> "4 s", 170 -> "3 min"."""
    if seconds < 0.5:
        return "under 1 s"
    return duration_text(seconds).removeprefix("about ")


def estimate_text(est: Estimate, queued: int | None = None, place: str = "this server") -> str:
    """The whole wait in one sentence, in its parts.

    "about 15 s on this server: 5 s to start, 10 s for 8 epochs, 1 s to test and save"; with trainings ahead,
    "about 2 min on this server: 1.5 min for the 2 trainings before it, 5 s to start, ..."; with early stopping
    on, "at most about 15 s on this server: 5 s to start, 10 s for up to 8 epochs, 1 s to test and save; early
    stopping may end it sooner". ``queued``: trainings ahead (None: ``est.queued``); ``place``: where it
    trains, in words.
    """
    if not est.calibrated:
        return f"no time estimate yet: {place}'s speed has not been measured"
    queued = est.queued if queued is None else queued
    up_to = "up to " if est.upper_bound else ""
    parts = [
        f"{part_text(est.start_seconds + est.build_seconds)} to start",
        f"{part_text(est.epochs_seconds)} for {up_to}{plural(est.epochs, 'epoch')}",
        f"{part_text(est.test_seconds)} to test and save",
    ]
    if queued:
        ahead = f"{part_text(est.wait_seconds)} for the {plural(queued, 'training')} before it"
        parts = [ahead, *parts]
    if est.upper_bound:
        return f"at most {duration_text(est.finish_seconds)} on {place}: {', '.join(parts)}; {EARLY_STOP_TEXT}"
    return f"{duration_text(est.finish_seconds)} on {place}: {', '.join(parts)}"


EARLY_STOP_TEXT = "early stopping may end it sooner"


def budget_warning(est: Estimate, budget: float | None = None) -> str | None:
    """One line when the training would not fit its time budget; None when it fits (or nothing is known).

    Args:
        est: the training's :class:`Estimate` (the budget counts its building and epochs, not the start,
            the test or the wait before it).
        budget: seconds one training may take; None: ``CNNLAB_MAX_TRAIN_SECONDS`` (0: no limit).
    """
    budget = settings().max_train_seconds if budget is None else budget
    if not budget or not est.calibrated or est.train_seconds <= budget or not est.epochs:
        return None
    fit = int(max(budget - est.build_seconds, 0.0) / (est.epochs_seconds / est.epochs))
    where = f"after about {plural(fit, 'epoch')} of its {est.epochs}" if fit else "during its first epoch"
    needs = f"{'up to ' if est.upper_bound else ''}{duration_text(est.train_seconds)}"
    return (
        f"This training needs {needs}, more than the {budget:g} s a training may take "
        f"on this server: it would stop {where}. Fewer epochs, fewer images or a smaller network fit."
    )
