"""What a run and its network are called, in the run list, on the pages and in the CLI: one wording everywhere."""

from __future__ import annotations

from core.base.config import WEIGHT_SOURCE_LABELS, ModelConfig, TrainConfig

PRECISION_MARKS = {"bfloat16": "bfloat16"}  # precision -> its word in a label (float32 says nothing)


def describe(model_cfg: ModelConfig, train_cfg: TrainConfig) -> str:
    """A run's short label: what distinguishes it at a glance (the run list, the pages, the CLI)."""
    if model_cfg.model == "vgg16":
        arch = f"VGG16 ({model_cfg.weights}) + Dense {model_cfg.dense_units}"
        if train_cfg.fine_tune_epochs:
            arch += f", fine-tune {train_cfg.fine_tune_epochs}"
    else:
        filters = "-".join(str(f) for f in model_cfg.block_filters())
        arch = f"CNN {filters} k{model_cfg.kernel_size}"
        if model_cfg.padding == "same":
            arch += " same"
        if model_cfg.batchnorm:
            arch += " BN"
        arch += f" · Dense {model_cfg.dense_units}"
    parts = [
        arch,
        f"drop {model_cfg.dropout:g}",
        f"{train_cfg.optimizer} {train_cfg.learning_rate:g}",
        f"{train_cfg.epochs} ep",
    ]
    if train_cfg.augment.enabled:
        parts.append("aug")
    if train_cfg.early_stopping:
        parts.append(f"ES{train_cfg.early_stopping}")
        if not train_cfg.restore_best:
            parts.append("last weights")
    if train_cfg.train_fraction < 1:
        parts.append(f"{train_cfg.train_fraction:.0%} data")
    if train_cfg.class_weight != "none":
        parts.append(f"{train_cfg.class_weight} classes")
    if train_cfg.seed != 42:
        parts.append(f"seed {train_cfg.seed}")
    return with_precision(" · ".join(parts), train_cfg.precision)


def with_precision(label: str, precision: str | None) -> str:
    """``label`` naming its arithmetic when it is not float32 (two runs differing only in it must not look alike).

    float32 (the course's) and "auto" (not decided yet: the job's label has
    the decided one) add nothing, so labels of float32 runs read as before.
    """
    mark = PRECISION_MARKS.get(precision or "")
    if mark is None or label.endswith(" · " + mark):
        return label
    return f"{label} · {mark}"


def network_text(model_cfg: ModelConfig) -> str:
    """The network in one readable sentence (the Train and lab pages' "Network:" line)."""
    m = model_cfg
    if m.model == "vgg16":
        source = m.weights if m.weights in WEIGHT_SOURCE_LABELS else "file"
        body = f"VGG16 base ({source} weights) + Dense {m.dense_units}"
    else:
        filters = "-".join(str(f) for f in m.block_filters())
        blocks = f"{m.blocks} block{'s' if m.blocks > 1 else ''}"
        extra = ", batch norm" if m.batchnorm else ""
        body = (
            f"CNN with {blocks} ({filters} filters, {m.kernel_size}×{m.kernel_size} kernels, {m.padding} padding"
            f"{extra}) + Dense {m.dense_units}"
        )
    return f"{body}, dropout {m.dropout:g} · input {m.input_size}×{m.input_size} · {m.num_classes} classes"
