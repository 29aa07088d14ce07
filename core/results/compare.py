"""Comparing stored runs: the settings that differ, and each run's numbers at its best epoch.

:func:`compare_runs` takes any stored runs and gives a settings table (only
the keys that differ, unless asked for all), one metrics row per run (taken at
``argmin(val_loss)``, not the last epoch) and notes (e.g. runs on different
datasets). The scratch-vs-transfer comparison is one case of it:
:func:`compare_configs` gives the two configs to train and
:func:`comparison_rows` the two rows. Training is the caller's; printing the CLI's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from core.base.config import ModelConfig, TrainConfig
from core.base.errors import UserError
from core.models.layer_table import ArchitectureError, check_architecture
from core.results.curves import best_of, series
from core.results.diagnosis import diagnosis_of
from core.store.runstore import UnknownRunError

if TYPE_CHECKING:  # pragma: no cover
    from core.store.runstore import RunRecord, RunStore

DATA_KEYS = ("classes", "n_train", "n_val", "n_test")
# The data facts above in a student's words (for messages; the keys are the record's).
DATA_WORDS = {
    "classes": "the classes",
    "n_train": "the number of training images",
    "n_val": "the number of validation images",
    "n_test": "the number of test images",
}


def get_runs(store: RunStore, run_ids: Sequence[str]) -> list[RunRecord]:
    """The stored runs, in order; an unknown id is one :class:`UnknownRunError` naming it."""
    records = []
    for run_id in run_ids:
        rec = store.get(run_id)
        if rec is None:
            raise UnknownRunError.of(run_id)
        records.append(rec)
    return records


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested settings as dotted keys: ``{"train": {"augment": {"zoom": 0.1}}}`` -> ``{"train.augment.zoom": 0.1}``."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten(v, key + "."))
        else:
            out[key] = list(v) if isinstance(v, tuple) else v
    return out


def run_settings(rec: RunRecord) -> dict[str, Any]:
    """One run's settings, flattened: ``data.source``, ``model.<f>``, ``train.<f>``, ``train.augment.<f>``."""
    model = ModelConfig.from_dict(rec.model_config).to_dict() if rec.model_config else {}
    train = TrainConfig.from_dict(rec.train_config).to_dict() if rec.train_config else {}
    return {"data.source": rec.source, **flatten({"model": model, "train": train})}


def settings_table(records: Sequence[RunRecord], all_keys: bool = False) -> list[dict[str, Any]]:
    """Rows ``{"key": k, "values": [one per run], "differs": bool}``; only differing keys unless ``all_keys``."""
    flat = [run_settings(r) for r in records]
    keys = sorted({k for f in flat for k in f})
    rows = []
    for k in keys:
        values = [f.get(k) for f in flat]
        differs = any(v != values[0] for v in values[1:])
        if differs or all_keys:
            rows.append({"key": k, "values": values, "differs": differs})
    return rows


def val_loss_best_epoch(history: Mapping[str, Sequence[float]], fallback: int = 0) -> int:
    """The epoch (1-based) of the lowest validation loss; ``fallback`` when there is none."""
    if not history.get("val_loss"):
        return fallback
    return best_of(series(history, "val_loss")) or fallback


def _at(values: Sequence[float], epoch: int) -> float | None:
    return float(values[epoch - 1]) if 0 < epoch <= len(values) else None


def run_metrics(rec: RunRecord) -> dict[str, Any]:
    """A run's numbers: best epoch (argmin val_loss) and its val loss/accuracy, test scores, parameters, time."""
    h = rec.history
    best = val_loss_best_epoch(h, rec.best_epoch)
    epochs = len(h.get("loss", []))
    per_class = rec.test.get("per_class", [])
    extra = rec.extra or {}
    return {
        "run_id": rec.run_id,
        "label": rec.label,
        "source": rec.source,
        "model": (rec.model_config or {}).get("model", "cnn"),
        "seed": (rec.train_config or {}).get("seed"),
        "epochs_run": epochs,
        "best_epoch": best,
        "best_val_loss": _at(h.get("val_loss", []), best),
        "best_val_accuracy": _at(h.get("val_accuracy", []), best),
        "best_train_accuracy": _at(h.get("accuracy", []), best),
        "test_accuracy": rec.test.get("accuracy"),
        "macro_f1": (rec.test.get("macro") or {}).get("f1"),
        "f1": {c["class"]: float(c["f1"]) for c in per_class},
        "trainable_params": int(rec.layers.get("trainable_params", 0)),
        "frozen_params": int(rec.layers.get("non_trainable_params", 0)),
        "fine_tuned_params": int((extra.get("fine_tune") or {}).get("trainable_params", 0)),
        **run_times(rec),
        "verdict": (verdict := diagnosis_of(rec)) and verdict.verdict,
        "verdict_title": verdict and verdict.title,
    }


def run_times(rec: RunRecord) -> dict[str, float | None]:
    """Where a run's time went, each figure named for what it measures.

    ``seconds``: the whole training, start to end. ``seconds_per_epoch``: the
    mean of the epochs' own times (``epoch_seconds``, measured per epoch), not
    the whole over the epochs. ``setup_seconds``: the time outside the epochs
    (building the network, VGG16's base features, setting up a fine-tuning
    phase). Both None for a run whose epoch times do not match its history.
    """
    epochs = len(rec.history.get("loss", []))
    times = [float(t) for t in (rec.epoch_seconds or [])]
    timed = bool(epochs) and len(times) == epochs
    return {
        "seconds": float(rec.seconds),
        "seconds_per_epoch": sum(times) / epochs if timed else None,
        "setup_seconds": max(0.0, float(rec.seconds) - sum(times)) if timed else None,
    }


def _differ(values: Sequence[Any]) -> bool:
    known = [v for v in values if v is not None]  # a run stored before a fact was recorded does not count
    return any(v != known[0] for v in known[1:])


def data_notes(records: Sequence[RunRecord]) -> list[str]:
    """One sentence, in a student's words, when the runs' scores are not measured on the same images; else [].

    Different datasets say it all (their classes and split sizes differ with
    them); on one dataset the note names what differs: the classes, or how many
    images each split holds.
    """
    if len(records) < 2:
        return []
    sources = list(dict.fromkeys(r.source for r in records))
    if len(sources) > 1:
        names = ", ".join(s.rstrip("/").rsplit("/", 1)[-1] for s in sources)
        return [
            f"These runs were trained and tested on different datasets ({names}), so their scores are not "
            "measured on the same images."
        ]
    data = [r.data or {} for r in records]
    what = []
    if _differ([d.get("classes") for d in data]):
        kinds = dict.fromkeys(", ".join(d["classes"]) for d in data if d.get("classes") is not None)
        what.append(f"different classes ({'; '.join(kinds)})")
    sizes = [tuple(d.get(k) for k in DATA_KEYS[1:]) for d in data]
    if _differ([s if None not in s else None for s in sizes]):
        shown = dict.fromkeys(" / ".join(map(str, s)) for s in sizes if None not in s)
        what.append(f"different numbers of training / validation / test images ({', '.join(shown)})")
    if not what:
        return []
    return [
        f"These runs use the same dataset with {' and '.join(what)}, so their scores are not measured on the "
        "same images."
    ]


def compare_runs(records: Sequence[RunRecord], all_keys: bool = False) -> dict[str, Any]:
    """Any stored runs side by side.

    Returns:
        ``{"runs": [run_metrics per run], "settings": settings_table(...), "notes": data_notes(...),
        "all_keys": bool}``, JSON-ready.
    """
    if not records:
        raise UserError("Pick at least one run to compare.")
    return {
        "runs": [run_metrics(r) for r in records],
        "settings": settings_table(records, all_keys),
        "notes": data_notes(records),
        "all_keys": all_keys,
    }


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


def comparison_rows(scratch_record: RunRecord, transfer_record: RunRecord) -> list[dict[str, Any]]:
    """Scratch vs transfer: :func:`run_metrics` of each (scratch first), with its role and weights.

    ``trainable_params``/``frozen_params`` are the layer table's (the head only
    for VGG16); ``fine_tuned_params`` counts the block5 weights a fine-tuning
    phase also trained.

    Raises:
        UserError: the runs used different data or splits (the message names what differs).
    """
    a, b = scratch_record.data or {}, transfer_record.data or {}
    for k in DATA_KEYS:
        if k in a and k in b and a[k] != b[k]:
            raise UserError(
                f"The two runs are not on the same data: {DATA_WORDS[k]} is {a[k]!r} for the scratch run and "
                f"{b[k]!r} for the transfer run. Compare runs of the same dataset, split and seed."
            )
    rows = []
    for role, rec in (("scratch", scratch_record), ("transfer", transfer_record)):
        extra = rec.extra or {}
        weights = extra.get("weights_label", "") if role != "scratch" else "random init, all layers trained"
        rows.append({**run_metrics(rec), "model": role, "weights": weights, "features": extra.get("features", "")})
    return rows
