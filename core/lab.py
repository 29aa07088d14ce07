"""The overfitting lab: one network, one split, one seed, and the three cures side by side.

Small geoscience datasets overfit: a network with 680,000 weights can
memorise a hundred thin-section images. The course's cures are dropout, data
augmentation and early stopping. The lab trains five variants of the same
run that differ only in those settings::

    baseline        no dropout, no augmentation, no early stopping
    dropout         + Dropout(0.5) after the hidden Dense layer
    augment         + the course's augmentation (AugmentConfig.course())
    early_stopping  + early stopping (patience 5, restore best weights)
    all             + all three

Everything else (network, optimizer, learning rate, batch size, epochs, the
train/val/test split, the training-data fraction and the seed) is the same,
so any difference in the curves comes from the setting the variant names.

Every variant is an ordinary run: it goes through :func:`core.experiment.run_experiment`
(the CLI, :func:`run_lab`) or the background worker (the dashboard,
:func:`submit_lab`) and lands in the run store, so asking for the same lab
again returns stored runs at once.

Note on scoring: every run keeps its best epoch's weights (lowest validation
loss, the course's ModelCheckpoint), and the test accuracy is measured with
them. So early stopping's gain here is the epochs it does not waste after the
best one, not a different model.

Importing this module does not import TensorFlow.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from core.config import AugmentConfig, ModelConfig, TrainConfig
from core.diagnostics import apply_changes
from core.diagnostics import best_epoch as _best_epoch

if TYPE_CHECKING:  # pragma: no cover
    from core.store import RunRecord, RunStore
    from core.worker import Job, TrainingWorker

VARIANT_NAMES = ("baseline", "dropout", "augment", "early_stopping", "all")
DEFAULT_FRACTION = 0.2
DEFAULT_EPOCHS = 30
DEFAULT_SEED = 42
# The course's rate: Dropout(0.5) after the hidden Dense layer.
LAB_DROPOUT = 0.5
# The course's EarlyStopping(monitor="val_loss", patience=5, restore_best_weights=True).
LAB_PATIENCE = 5
# Learning rates the lab page offers (0.001 is Adam's default; 1e-5 is the Underfit preset's).


@dataclass(frozen=True)
class LabVariant:
    """One run of the lab.

    Attributes:
        name: one of :data:`VARIANT_NAMES`, a stable identifier.
        title: a short label for legends and tables ("+ dropout").
        changes: one sentence: what this variant changes and why it should help.
        model_cfg: the network to build.
        train_cfg: how to train it.
    """

    name: str
    title: str
    changes: str
    model_cfg: ModelConfig
    train_cfg: TrainConfig


def lab_variants(
    *,
    fraction: float = DEFAULT_FRACTION,
    epochs: int = DEFAULT_EPOCHS,
    seed: int = DEFAULT_SEED,
    model_cfg: ModelConfig | None = None,
    train_cfg: TrainConfig | None = None,
) -> list[LabVariant]:
    """The five runs of the lab, on the same split and seed.

    Args:
        fraction: fraction of the training images to use (``TrainConfig.train_fraction``).
        epochs: maximum epochs of every variant (early stopping may end one sooner).
        seed: the split, initial weights and shuffling seed shared by all variants.
        model_cfg: the network; the course's CNN when None. Its dropout is
            replaced: 0 in the baseline, :data:`LAB_DROPOUT` with dropout.
        train_cfg: the rest of the training settings (optimizer, learning rate,
            batch size, splits); the defaults when None. Its augmentation and
            early stopping are replaced by each variant's.

    Returns:
        ``[baseline, dropout, augment, early_stopping, all]``. Each differs from
        the baseline only in ``model.dropout``, ``train.augment`` and/or
        ``train.early_stopping``.

    Raises:
        core.config.ConfigError: ``fraction``, ``epochs`` or ``seed`` is out of range.
    """
    model_cfg = model_cfg or ModelConfig()
    train_cfg = train_cfg or TrainConfig()
    # The baseline: no regularisation at all. monitor/restore_best are the course's
    # values in every variant, so the early-stopping variant changes only the patience.
    base_m = model_cfg.replace(dropout=0.0)
    base_t = train_cfg.replace(
        train_fraction=fraction,
        epochs=epochs,
        seed=seed,
        augment=AugmentConfig(),
        early_stopping=0,
        monitor="val_loss",
        restore_best=True,
    )
    aug = AugmentConfig.course()
    drop_m = base_m.replace(dropout=LAB_DROPOUT)
    aug_t = base_t.replace(augment=aug)
    es_t = base_t.replace(early_stopping=LAB_PATIENCE)
    all_t = base_t.replace(augment=aug, early_stopping=LAB_PATIENCE)

    flips = " and ".join(w for w, on in (("horizontal", aug.hflip), ("vertical", aug.vflip)) if on)
    aug_text = (
        f"rotations up to {aug.rotation:g} degrees, shifts up to {aug.width_shift:.0%}, "
        f"{flips} flips, zoom up to {aug.zoom:.0%}"
    )
    return [
        LabVariant(
            "baseline",
            "baseline",
            f"Nothing added (no dropout, no augmentation, no early stopping): the yardstick that shows how "
            f"far the network memorises {fraction:.0%} of the training images in {epochs} epochs.",
            base_m,
            base_t,
        ),
        LabVariant(
            "dropout",
            "+ dropout",
            f"Adds Dropout({LAB_DROPOUT:g}) after the hidden Dense layer: {LAB_DROPOUT:.0%} of its outputs are "
            "switched off at random at every training step, so no unit can memorise an image with the help "
            "of a few others.",
            drop_m,
            base_t,
        ),
        LabVariant(
            "augment",
            "+ augmentation",
            f"Adds the course's augmentation to the training images only ({aug_text}), so each epoch shows "
            "new variants of the same few images instead of repeating them.",
            base_m,
            aug_t,
        ),
        LabVariant(
            "early_stopping",
            "+ early stopping",
            f"Adds early stopping: training ends once validation loss has not improved for {LAB_PATIENCE} "
            "epochs and the best epoch's weights are restored, so no epochs are spent memorising after the "
            "best one.",
            base_m,
            es_t,
        ),
        LabVariant(
            "all",
            "+ all three",
            f"Adds all three at once (dropout {LAB_DROPOUT:g}, the course's augmentation, early stopping with "
            f"patience {LAB_PATIENCE}): the course's full recipe against overfitting on small datasets.",
            drop_m,
            all_t,
        ),
    ]


# --- Presets ----------------------------------------------------------------


@dataclass(frozen=True)
class Preset:
    """A teaching scenario: settings that produce a lesson, and what to look for.

    Attributes:
        title: the button's label ("Make it overfit").
        description: what the preset sets, in a sentence.
        look_for: what the student should see in the curves and the table.
        model_changes: dotted ``model.<field>`` keys to values, as in
            :attr:`core.diagnostics.Remedy.changes`.
        train_changes: dotted ``train.<field>`` keys to values
            (``"train.augment"`` takes ``"course"`` or ``"none"``).
        variants: the lab variants worth running for this lesson.
    """

    title: str
    description: str
    look_for: str
    model_changes: Mapping[str, Any]
    train_changes: Mapping[str, Any]
    variants: tuple[str, ...] = VARIANT_NAMES

    def __post_init__(self) -> None:
        # Read-only views: the module-level presets are shared by every session.
        object.__setattr__(self, "model_changes", MappingProxyType(dict(self.model_changes)))
        object.__setattr__(self, "train_changes", MappingProxyType(dict(self.train_changes)))
        unknown = [n for n in self.variants if n not in VARIANT_NAMES]
        if unknown:
            raise ValueError(f"Preset variants must be among {list(VARIANT_NAMES)}. Got {unknown} instead.")

    @property
    def changes(self) -> dict[str, Any]:
        """All dotted-key changes in one dict, for :func:`core.diagnostics.apply_changes`."""
        return {**self.model_changes, **self.train_changes}

    def apply(
        self, model_cfg: ModelConfig | None = None, train_cfg: TrainConfig | None = None
    ) -> tuple[ModelConfig, TrainConfig]:
        """New ``(ModelConfig, TrainConfig)`` with the preset's changes (the inputs are not changed)."""
        return apply_changes(self.changes, model_cfg, train_cfg)


PRESETS: dict[str, Preset] = {
    "overfit": Preset(
        title="Make it overfit",
        description=(
            "10% of the training images, 60 epochs at Adam's usual learning rate (0.001), and no dropout, "
            "augmentation or early stopping: a network with hundreds of thousands of weights and a few "
            "dozen images."
        ),
        look_for=(
            "Training loss keeps falling while validation loss bottoms out after a few epochs and then rises "
            "(its lowest point is the marked best epoch). Training accuracy ends far above validation accuracy: "
            "that gap is the network memorising its training images."
        ),
        model_changes={"model.dropout": 0.0},
        train_changes={
            "train.train_fraction": 0.1,
            "train.epochs": 60,
            "train.learning_rate": 0.001,
            "train.augment": "none",
            "train.early_stopping": 0,
        },
        variants=("baseline",),
    ),
    "underfit": Preset(
        title="Underfit",
        description=(
            "A learning rate of 0.00001, a hundred times smaller than Adam's usual 0.001: every step barely "
            "moves the weights."
        ),
        look_for=(
            "Both losses stay high, close to the loss of a network that guesses (ln of the number of classes, "
            "1.61 for five), and the two curves stay together: there is no gap because the network has not "
            "learned enough to memorise anything. Dropout, augmentation and early stopping do not help; they "
            "cure overfitting, not underfitting. Raise the learning rate (or the model's size) instead."
        ),
        model_changes={},
        train_changes={"train.learning_rate": 1e-5, "train.epochs": 30},
        variants=("baseline", "all"),
    ),
    "fix": Preset(
        title="Fix it",
        description=(
            f"Dropout {LAB_DROPOUT:g}, the course's augmentation and early stopping (patience {LAB_PATIENCE}, "
            "restore the best weights), on the same small training set."
        ),
        look_for=(
            "Compare each variant with the baseline: dropout and augmentation shrink the train-val gap, early "
            "stopping ends the run a few epochs after the best one, and all three together give the smallest "
            "gap and a validation loss that no longer turns upwards."
        ),
        model_changes={"model.dropout": LAB_DROPOUT},
        train_changes={
            "train.augment": "course",
            "train.early_stopping": LAB_PATIENCE,
            "train.monitor": "val_loss",
            "train.restore_best": True,
        },
    ),
}


# --- Results ----------------------------------------------------------------


def lab_rows(variants: Sequence[LabVariant], records: Sequence[RunRecord | None]) -> list[dict[str, Any]]:
    """One table row per variant.

    Args:
        variants: the lab's variants.
        records: their runs, in the same order; None for one not finished yet.

    Returns:
        Dicts with ``variant``, ``title``, ``changes``, ``best_epoch`` (lowest
        validation loss, 1-based), ``best_val_accuracy`` (validation accuracy at
        that epoch), ``final_train_accuracy``, ``final_val_accuracy``,
        ``final_gap`` (training minus validation accuracy at the last epoch),
        ``test_accuracy`` (with the best epoch's weights), ``epochs_run``,
        ``epochs_planned``, ``stopped_early``, ``seconds`` (training time),
        ``verdict`` (the diagnosis' title), ``run_id`` and ``cached``. The
        measurements are None for a variant without a record.
    """
    if len(variants) != len(records):
        raise ValueError(
            f"lab_rows needs one record (or None) per variant. Got {len(variants)} variants and "
            f"{len(records)} records."
        )
    rows = []
    for v, rec in zip(variants, records, strict=True):
        row: dict[str, Any] = {
            "variant": v.name,
            "title": v.title,
            "changes": v.changes,
            "epochs_planned": v.train_cfg.epochs,
            "best_epoch": None,
            "best_val_accuracy": None,
            "final_train_accuracy": None,
            "final_val_accuracy": None,
            "final_gap": None,
            "test_accuracy": None,
            "epochs_run": None,
            "stopped_early": None,
            "seconds": None,
            "verdict": None,
            "run_id": None,
            "cached": None,
        }
        if rec is not None:
            h = rec.history
            acc, vacc = h.get("accuracy", []), h.get("val_accuracy", [])
            n = len(h.get("loss", []))
            best = rec.best_epoch if 0 < rec.best_epoch <= len(vacc) else _best_or_none(h)
            row.update(
                best_epoch=best,
                best_val_accuracy=vacc[best - 1] if best else None,
                final_train_accuracy=acc[-1] if acc else None,
                final_val_accuracy=vacc[-1] if vacc else None,
                final_gap=acc[-1] - vacc[-1] if acc and vacc else None,
                test_accuracy=rec.test.get("accuracy"),
                epochs_run=n,
                stopped_early=bool(rec.stopped_early),
                seconds=rec.seconds,
                verdict=rec.diagnosis.get("title") or rec.diagnosis.get("verdict"),
                run_id=rec.run_id,
                cached=bool(rec.cached),
            )
        rows.append(row)
    return rows


def _best_or_none(history: Mapping[str, Sequence[float]]) -> int | None:
    try:
        return _best_epoch(history, "val_loss")
    except (KeyError, ValueError):
        return None


def lab_curves(variants: Sequence[LabVariant], histories: Sequence[Mapping[str, Sequence[float]] | None]) -> list[dict]:
    """Validation-loss curves to overlay, with each one's best epoch (lowest validation loss).

    Args:
        variants: the lab's variants.
        histories: each variant's history so far (a finished run's, or a
            training job's partial one); None or empty when nothing is known yet.

    Returns:
        One dict per variant with history: ``variant``, ``title``, ``epochs``
        (1-based), ``val_loss``, ``loss``, ``best_epoch``, ``best_val_loss``.
    """
    out = []
    for v, h in zip(variants, histories, strict=True):
        vloss = list((h or {}).get("val_loss", []))
        if not vloss:
            continue
        best = _best_or_none({"val_loss": vloss})
        out.append(
            {
                "variant": v.name,
                "title": v.title,
                "epochs": list(range(1, len(vloss) + 1)),
                "val_loss": vloss,
                "loss": list((h or {}).get("loss", []))[: len(vloss)],
                "best_epoch": best,
                "best_val_loss": vloss[best - 1] if best else None,
            }
        )
    return out


def lab_summary(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """What the table says, in a few sentences (empty while the baseline is missing)."""
    by = {r["variant"]: r for r in rows if r.get("final_gap") is not None}
    base = by.get("baseline")
    if base is None:
        return []
    out = [
        f"The baseline ends with training accuracy {base['final_train_accuracy']:.2f} against validation "
        f"accuracy {base['final_val_accuracy']:.2f}: a gap of {base['final_gap']:+.2f}."
    ]
    others = [r for r in rows if r["variant"] != "baseline" and r.get("final_gap") is not None]
    if others:
        gaps = ", ".join(f"{r['title']} {r['final_gap']:+.2f}" for r in others)
        out.append(f"Gaps with the cures: {gaps}.")
    full = by.get("all")
    if full is not None:
        if full["final_gap"] < base["final_gap"]:
            out.append(
                f"All three together cut the gap by {base['final_gap'] - full['final_gap']:.2f}"
                + _test_change(base, full)
            )
        else:
            out.append(
                "All three together did not shrink the gap here: the baseline is not overfitting much "
                "(try the Make it overfit preset)."
            )
    es = by.get("early_stopping")
    if es is not None and es["stopped_early"]:
        out.append(
            f"Early stopping ended its run after {es['epochs_run']} of {es['epochs_planned']} epochs "
            f"(best epoch {es['best_epoch']})."
        )
    # A regularised network learns more slowly: if its best epoch is among the last few,
    # its accuracy has not caught up yet, and the table would undersell the cure.
    rising = [
        r for r in others
        if r["best_epoch"] and not r["stopped_early"] and r["best_epoch"] > r["epochs_run"] - LAB_PATIENCE
    ]  # fmt: skip
    if rising:
        names = ", ".join(f"{r['title']} (best epoch {r['best_epoch']} of {r['epochs_run']})" for r in rising)
        out.append(
            f"Still improving at the end: {names}. Regularised networks learn more slowly; give them more "
            "epochs before comparing accuracies."
        )
    under = [r for r in others if str(r.get("verdict") or "").startswith("Underfitting")]
    if under:
        names = ", ".join(f"{r['title']} ({r['final_train_accuracy']:.2f})" for r in under)
        out.append(
            f"Underfitting now, with low training accuracy at the last epoch: {names}. Their gap closed partly "
            "because they learned less; give them more epochs or more of the training images."
        )
    return out


def _test_change(base: Mapping[str, Any], other: Mapping[str, Any]) -> str:
    if base.get("test_accuracy") is None or other.get("test_accuracy") is None:
        return "."
    return f"; test accuracy {base['test_accuracy']:.2f} -> {other['test_accuracy']:.2f}."


# --- Running ----------------------------------------------------------------


def run_lab(
    source: str,
    variants: Sequence[LabVariant] | None = None,
    *,
    store: RunStore | None = None,
    use_cache: bool = True,
    on_variant: Callable[[int, LabVariant, RunRecord], None] | None = None,
) -> list[RunRecord]:
    """Train (or fetch from the store) every variant, one after another.

    Args:
        source: a bundled dataset name, a folder of class folders, or a zip.
        variants: the runs; :func:`lab_variants` with its defaults when None.
        store: the run store (default: ``RunStore()`` under CNNLAB_HOME).
        use_cache: return stored runs instead of training again.
        on_variant: called with (index, variant, record) as each one finishes.

    Returns:
        The runs' records, in the variants' order; ``record.cached`` tells
        which came from the store.
    """
    from core.experiment import run_experiment
    from core.store import RunStore

    variants = list(variants) if variants is not None else lab_variants()
    store = store or RunStore()
    records = []
    for i, v in enumerate(variants):
        rec = run_experiment(source, v.model_cfg, v.train_cfg, store=store, use_cache=use_cache)
        records.append(rec)
        if on_variant is not None:
            on_variant(i, v, rec)
    return records


def submit_lab(source: str, variants: Sequence[LabVariant], *, worker: TrainingWorker | None = None) -> list[Job]:
    """Hand every variant to the background worker (the dashboard's path); returns their jobs in order.

    Stored variants come back as finished jobs at once (``snapshot()["cached"]``).
    Raises the data and architecture errors before anything is queued.
    """
    from core.worker import get_worker

    worker = worker or get_worker()
    return [worker.submit(source, v.model_cfg, v.train_cfg) for v in variants]


__all__ = [
    "DEFAULT_EPOCHS",
    "DEFAULT_FRACTION",
    "DEFAULT_SEED",
    "LAB_DROPOUT",
    "LAB_PATIENCE",
    "PRESETS",
    "VARIANT_NAMES",
    "LabVariant",
    "Preset",
    "lab_curves",
    "lab_rows",
    "lab_summary",
    "lab_variants",
    "run_lab",
    "submit_lab",
]
