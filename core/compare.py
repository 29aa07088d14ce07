"""Scratch CNN vs VGG16 transfer: the two configs to train, and their runs side by side.

:func:`compare_configs` gives the course's CNN and the transfer model for the
same images, split and seed; :func:`comparison_rows` turns their two stored
runs into one row each. Training them is the caller's (the worker, the CLI);
printing is the CLI's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from core.architecture import ArchitectureError, check_architecture
from core.config import ModelConfig, TrainConfig
from core.errors import UserError

if TYPE_CHECKING:  # pragma: no cover
    from core.store import RunRecord


def compare_configs(model_cfg: ModelConfig, train_cfg: TrainConfig, weights: str) -> tuple[ModelConfig, ModelConfig]:
    """The scratch CNN and the VGG16 transfer model to compare on the same images, split and seed.

    Args:
        model_cfg: the starting point: a "cnn" config is the scratch model as
            it is; a "vgg16" config gives the course's CNN at its input size.
            Both models read RGB images, so both get the same data.
        train_cfg: the training settings both runs share (fine-tuning applies
            to the transfer run only; the CNN's run key ignores it).
        weights: the transfer model's weights ("imagenet", "offline", "none" or a path).

    Returns:
        ``(scratch_cfg, transfer_cfg)``; same input size, classes, Dense units and dropout.

    Raises:
        ArchitectureError: one of the two does not fit the input size (VGG16 needs 32 or more).
    """
    shared = {
        "input_size": model_cfg.input_size,
        "channels": 3,
        "num_classes": model_cfg.num_classes,
        "dense_units": model_cfg.dense_units,
        "dropout": model_cfg.dropout,
    }
    scratch = model_cfg.replace(**shared) if model_cfg.model == "cnn" else ModelConfig(**shared)
    transfer = ModelConfig(model="vgg16", weights=weights, **shared)
    problems = check_architecture(scratch) + check_architecture(transfer)
    if problems:
        raise ArchitectureError(problems)
    del train_cfg  # the same for both runs
    return scratch, transfer


def _at(values: list[float], epoch: int) -> float | None:
    return float(values[epoch - 1]) if 0 < epoch <= len(values) else None


def _comparison_row(role: str, rec: RunRecord) -> dict[str, Any]:
    extra = rec.extra or {}
    per_class = rec.test.get("per_class", [])
    fine_tuned = (extra.get("fine_tune") or {}).get("trainable_params", 0)
    return {
        "model": role,
        "run_id": rec.run_id,
        "label": rec.label,
        "weights": extra.get("weights_label", "") if role != "scratch" else "random init, all layers trained",
        "trainable_params": int(rec.layers.get("trainable_params", 0)),
        "frozen_params": int(rec.layers.get("non_trainable_params", 0)),
        "fine_tuned_params": int(fine_tuned),
        "seconds": float(rec.seconds),
        "epochs_run": len(rec.history.get("loss", [])),
        "best_epoch": int(rec.best_epoch),
        "best_val_accuracy": _at(rec.history.get("val_accuracy", []), rec.best_epoch),
        "test_accuracy": rec.test.get("accuracy"),
        "macro_f1": (rec.test.get("macro") or {}).get("f1"),
        "f1": {c["class"]: float(c["f1"]) for c in per_class},
        "features": extra.get("features", ""),
    }


def comparison_rows(scratch_record: RunRecord, transfer_record: RunRecord) -> list[dict[str, Any]]:
    """One row per run (scratch first), ready for a table or JSON.

    Each row: parameters, training seconds, best-epoch val accuracy, test
    accuracy, macro and per-class F1 (``row["f1"]`` maps class -> F1).
    ``trainable_params``/``frozen_params`` are the layer table's (the head only
    for VGG16); ``fine_tuned_params`` counts the block5 weights a fine-tuning
    phase also trained.

    Args:
        scratch_record: the scratch CNN's run.
        transfer_record: the VGG16 transfer run.

    Returns:
        ``[scratch_row, transfer_row]``.

    Raises:
        UserError: the runs used different data or splits (the message names what differs).
    """
    a, b = scratch_record.data or {}, transfer_record.data or {}
    for k in ("classes", "n_train", "n_val", "n_test"):
        if k in a and k in b and a[k] != b[k]:
            raise UserError(
                f"The two runs are not on the same data: {k} is {a[k]!r} for the scratch run and {b[k]!r} for "
                "the transfer run. Compare runs of the same dataset, split and seed."
            )
    return [_comparison_row("scratch", scratch_record), _comparison_row("transfer", transfer_record)]
