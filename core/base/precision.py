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

bfloat16 pays only where there is enough arithmetic to speed up: each layer
casts its inputs and weights to bfloat16 every step, and in a small network
those casts cost what the faster multiplications save (measured on an
AVX512_BF16 CPU, bench/RESULTS.md: a network of 0.3 to 8.5 million
multiply-adds per image took as much CPU time in bfloat16 as in float32; the
course network, 30 million, 0.66x; 112 million, 0.56x). So ``auto`` keeps a CNN
smaller than :data:`BF16_MIN_MACS` multiply-adds per image (the layer table's
count, :func:`network_macs`) in float32 (:func:`run_precision`);
:func:`precision_reason` says which precision ``auto`` took and why, for the
Train page.

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
# The smallest CNN, in multiply-adds per image's forward pass, for which ``auto`` picks bfloat16 on a CPU that
# has it: measured no gain at 8.5 million, 0.66x the CPU time at 30 million (bench/RESULTS.md, issue 22).
BF16_MIN_MACS = 15_000_000


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


def network_macs(model_cfg: ModelConfig) -> int:
    """Multiply-adds of one image's forward pass through the CNN ``model_cfg`` describes.

    The layer table's total (:attr:`core.models.layer_table.LayerTable.total_macs`, held equal by the tests)
    from the same shape walk (:meth:`ModelConfig.block_sides`), counted here because the precision is decided
    below the models layer. A side below 1 (a network that does not fit its input) counts as 0.
    """
    macs, c, k = 0, model_cfg.channels, model_cfg.kernel_size
    sides = model_cfg.block_sides()
    for f, (conv, _) in zip(model_cfg.block_filters(), sides, strict=True):
        values = max(conv, 0) ** 2 * f
        macs += values * k * k * c + (values if model_cfg.batchnorm else 0)  # BatchNormalization: one per value
        c = f
    side = sides[-1][1] if sides else model_cfg.input_size
    units = model_cfg.dense_units
    return macs + max(side, 0) ** 2 * c * units + units * model_cfg.num_classes


def small_for_bf16(model_cfg: ModelConfig) -> bool:
    """Whether ``model_cfg`` is a CNN too small for bfloat16 to pay (:data:`BF16_MIN_MACS`)."""
    return model_cfg.model == "cnn" and network_macs(model_cfg) < BF16_MIN_MACS


def run_precision(model_cfg: ModelConfig, train_cfg: TrainConfig, flags: Iterable[str] | None = None) -> str:
    """The precision a run of these configs actually computes in: what the run key and the record hold.

    ``auto`` is bfloat16 where the CPU has it (:func:`resolve_precision`) and the network is large enough for
    it to pay (:func:`small_for_bf16`), else float32; "float32" and "bfloat16" as asked.
    """
    if model_cfg.model == "vgg16" and not VGG16_BF16:
        return "float32"
    precision = resolve_precision(train_cfg.precision, flags)
    if train_cfg.precision == "auto" and precision == "bfloat16" and small_for_bf16(model_cfg):
        return "float32"
    return precision


def precision_reason(model_cfg: ModelConfig, train_cfg: TrainConfig, flags: Iterable[str] | None = None) -> str:
    """What a run of these configs computes in and why, in a student's words (the Train page's line)."""
    flags = cpu_flags() if flags is None else frozenset(flags)
    precision = run_precision(model_cfg, train_cfg, flags)
    native = has_native_bf16(flags)
    if train_cfg.precision != "auto":
        if precision == "bfloat16" and not native:
            return (
                "bfloat16, as chosen: this CPU has no bfloat16 arithmetic, so it is emulated and slower than float32."
            )
        return f"{precision}, as chosen."
    if model_cfg.model == "vgg16" and not VGG16_BF16:
        return "float32: the VGG16 model trains in float32."
    if not native:
        return "float32: this CPU has no bfloat16 arithmetic, so bfloat16 would be slower here."
    macs = f"{network_macs(model_cfg) / 1e6:,.1f} million multiply-adds per image"
    if precision == "float32":
        return (
            f"float32: this network is too small for bfloat16 to pay ({macs}; "
            f"bfloat16 pays from {BF16_MIN_MACS / 1e6:g} million)."
        )
    if model_cfg.model == "vgg16":
        return "bfloat16: this CPU multiplies bfloat16 natively, and VGG16's base is large enough for it to pay."
    return f"bfloat16: this CPU multiplies bfloat16 natively, and this network ({macs}) is large enough for it to pay."


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
