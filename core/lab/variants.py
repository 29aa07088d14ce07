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

Every variant is an ordinary run: it goes through :func:`core.training.experiment.run_experiment`
(in this process: :func:`run_lab`) or the background worker (the dashboard and the CLI:
:meth:`core.jobs.worker.TrainingWorker.submit`, the one way a job is submitted) and lands in the
run store, so asking for the same lab again returns stored runs at once.

Note on scoring: every run keeps its best epoch's weights (lowest validation
loss, the course's ModelCheckpoint), and the test accuracy is measured with
them. So early stopping's gain here is the epochs it does not waste after the
best one, not a different model.

The table, the curves and the takeaway of a finished lab are in
:mod:`core.lab.results`. Importing this module does not import TensorFlow.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from core.base.config import AugmentConfig, ModelConfig, TrainConfig, apply_changes
from core.base.errors import UserError
from core.base.tables import plural
from core.store.runstore import RunRecord, RunStore
from core.training.experiment import run_experiment

VARIANT_NAMES = ("baseline", "dropout", "augment", "early_stopping", "all")
DEFAULT_FRACTION = 0.2
DEFAULT_EPOCHS = 30
DEFAULT_SEED = TrainConfig().seed  # the course's seed
# The course's rate: Dropout(0.5) after the hidden Dense layer.
LAB_DROPOUT = 0.5
# The course's EarlyStopping(monitor="val_loss", patience=5, restore_best_weights=True).
LAB_PATIENCE = 5


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
        core.base.config.ConfigError: ``fraction``, ``epochs`` or ``seed`` is out of range.
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
            f"far the network memorises {fraction:.0%} of the training images in {plural(epochs, 'epoch')}.",
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
            :attr:`core.results.remedies.Remedy.changes`.
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
            raise UserError(f"Preset variants must be among {list(VARIANT_NAMES)}. Got {unknown} instead.")

    @property
    def changes(self) -> dict[str, Any]:
        """All dotted-key changes in one dict, for :func:`core.base.config.apply_changes`."""
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


# --- Running ----------------------------------------------------------------


def run_lab(
    source: str,
    variants: Sequence[LabVariant] | None = None,
    *,
    store: RunStore,
    use_cache: bool = True,
    on_variant: Callable[[int, LabVariant, RunRecord], None] | None = None,
) -> list[RunRecord]:
    """Train (or fetch from the store) every variant, one after another.

    Args:
        source: a bundled dataset name, a folder of class folders, or a zip.
        variants: the runs; :func:`lab_variants` with its defaults when None.
        store: the run store the variants are looked up in and saved to.
        use_cache: return stored runs instead of training again.
        on_variant: called with (index, variant, record) as each one finishes.

    Returns:
        The runs' records, in the variants' order; ``record.cached`` tells
        which came from the store.
    """
    variants = list(variants) if variants is not None else lab_variants()
    records = []
    for i, v in enumerate(variants):
        rec = run_experiment(source, v.model_cfg, v.train_cfg, store=store, use_cache=use_cache)
        records.append(rec)
        if on_variant is not None:
            on_variant(i, v, rec)
    return records
