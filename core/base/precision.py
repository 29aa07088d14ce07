"""Which arithmetic a training computes in: float32, or mixed bfloat16 where the CPU has it.

Server CPUs with AVX512_BF16 or AMX multiply bfloat16 natively, much faster
than float32; elsewhere bfloat16 is emulated and no faster (or slower). So
``TrainConfig.precision="auto"`` (the default) means mixed bfloat16 exactly
when the CPU's flags say it has native bfloat16 arithmetic, else float32.
:func:`resolve_precision` is that decision, a pure function of a flag set.
It is taken once per job, where the job is submitted (:func:`settle_precision`):
the decided value travels in the ``TrainConfig`` to whoever trains, the run key
names it, the record keeps it (``extra["precision"]``), and a result computed
in another precision than its key names is refused when it is stored
(:func:`core.training.experiment.save_run`).

Mixed bfloat16 is Keras' ``mixed_bfloat16`` policy: weights stay float32, the
layers compute in bfloat16, and the softmax output layer is built with
``dtype="float32"`` (:mod:`core.models.builder`), so probabilities are float32 and sum
to 1. :func:`precision_policy` sets the policy around model building only and
puts the previous one back (Keras keeps it per thread), so no other training
in the process inherits it. Measured in ``bench/bench_engine.py``
(bench/RESULTS.md).

The VGG16 transfer model follows the same rule for its frozen base (feature
extraction, and block5 when fine-tuning); its head stays float32 (it trains on
512 cached numbers per image, where bfloat16 buys nothing). Measured on an
AVX512_BF16 CPU (bench/RESULTS.md): extraction 3x faster, features within
0.6% of float32, the head's test accuracy -0.2 points over 3 seeds (noise).
:data:`VGG16_BF16` switches it off.

Keras is imported inside :func:`precision_policy` only.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from core.base.config import PRECISIONS, ModelConfig, TrainConfig
from core.base.errors import UserError

# /proc/cpuinfo flags that mean native bfloat16 arithmetic (dot products / matrix tiles).
NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
# Whether the VGG16 transfer model's base may use bfloat16: measured, accuracy held (bench/RESULTS.md).
VGG16_BF16 = True
KERAS_POLICY = {"float32": "float32", "bfloat16": "mixed_bfloat16"}


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> frozenset[str]:
    """This CPU's feature flags (empty where /proc/cpuinfo cannot be read, e.g. macOS)."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):  # x86 / ARM
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def has_native_bf16(flags: Iterable[str]) -> bool:
    """Whether a CPU with these flags multiplies bfloat16 natively."""
    return bool(NATIVE_BF16_FLAGS & set(flags))


def resolve_precision(requested: str, flags: Iterable[str] | None = None) -> str:
    """``"auto"`` -> ``"bfloat16"`` where ``flags`` have native bf16, else ``"float32"``; the others as given.

    Args:
        requested: ``TrainConfig.precision``: "auto", "float32" or "bfloat16".
        flags: the CPU's flags; None reads this machine's (:func:`cpu_flags`).
    """
    if requested not in PRECISIONS:
        raise UserError(f"Unknown precision {requested!r}; expected one of {', '.join(PRECISIONS)}.")
    if requested != "auto":
        return requested
    return "bfloat16" if has_native_bf16(cpu_flags() if flags is None else flags) else "float32"


def run_precision(model_cfg: ModelConfig, train_cfg: TrainConfig, flags: Iterable[str] | None = None) -> str:
    """The precision a run of these configs actually computes in: what the run key and the record hold."""
    if model_cfg.model == "vgg16" and not VGG16_BF16:
        return "float32"
    return resolve_precision(train_cfg.precision, flags)


def settle_precision(model_cfg: ModelConfig, train_cfg: TrainConfig, flags: Iterable[str] | None = None) -> TrainConfig:
    """``train_cfg`` with its precision decided: "auto" replaced by what these configs compute in on this machine.

    Called once, where a job is submitted (:meth:`core.jobs.worker.TrainingWorker.submit`,
    :func:`core.training.experiment.run_experiment`); the decided config is what the run
    key is made from and what is sent to whoever trains (a child process, a
    Dask worker on another machine), so nothing below decides again from its
    own CPU. A config already decided comes back as it is (no flags are read).
    """
    precision = run_precision(model_cfg, train_cfg, flags)
    return train_cfg if precision == train_cfg.precision else train_cfg.replace(precision=precision)


def decided_precision(train_cfg: TrainConfig) -> str:
    """The precision of a config settled at submission (:func:`settle_precision`); "auto" here is a bug."""
    if train_cfg.precision not in KERAS_POLICY:
        raise ValueError(
            "A training below the submit boundary takes a decided precision ('float32' or 'bfloat16'): "
            f"settle_precision() decides 'auto' where the job is submitted. Received: precision={train_cfg.precision!r}"
        )
    return train_cfg.precision


@contextmanager
def precision_policy(precision: str) -> Iterator[None]:
    """Build models inside this block to give them ``precision``; the previous global policy comes back after.

    Keras reads the global policy when a layer is created; a built model keeps
    its layers' policies, so training and predicting after the block use them.
    """
    import keras

    if precision not in KERAS_POLICY:
        raise ValueError(f"precision_policy takes 'float32' or 'bfloat16'. Received: precision={precision!r}")
    before = keras.config.dtype_policy()
    keras.config.set_dtype_policy(KERAS_POLICY[precision])
    try:
        yield
    finally:
        keras.config.set_dtype_policy(before)
