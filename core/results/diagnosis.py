"""Diagnosing a training run from its curves: the verdict, the evidence and what to try next.

:func:`diagnose` reads Keras' ``history.history`` (``loss``, ``accuracy``,
``val_loss``, ``val_accuracy``, one value per epoch) and names what the curves
show, by the truth table of :mod:`core.results.verdict` (docs/VERDICT.md):
``diverged``, ``too_few_epochs``, ``overfitting``, ``still_improving``,
``underfitting`` or ``good_fit``, with the numbers behind the verdict in plain sentences,
which epoch's weights the saved model holds, and remedies the app can apply
(:mod:`core.results.remedies`, :func:`core.base.config.apply_changes`). No TensorFlow.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.base.config import ConfigError, ModelConfig, TrainConfig
from core.results.curves import json_safe, read_history
from core.results.remedies import Remedy, remedies_for
from core.results.verdict import AT_CHANCE_SHARE, TITLES, VERDICTS, Curves, Reading, RunFacts
from core.store.runstore import RunRecord

# The verdict's last sentence for a run trained with class weights: its training curve is a weighted loss.
CLASS_WEIGHT_NOTE = (
    "Trained with balanced class weights: an image of a class with fewer training images counted more in the "
    "training loss, so every class weighed the same; the validation loss is the plain average over images."
)

__all__ = [
    "CLASS_WEIGHT_NOTE",
    "TITLES",
    "VERDICTS",
    "Diagnosis",
    "diagnose",
    "diagnosis_of",
    "fit_summary_text",
    "in_few_words",
]


@dataclass(frozen=True)
class Diagnosis:
    """What the training curves show.

    Attributes:
        verdict: one of :data:`core.results.verdict.VERDICTS` ("overfitting", ...).
        title: the verdict for a heading ("Overfitting", "Still improving (underfitting so far)").
        headline: one plain sentence for a student.
        evidence: sentences with the numbers that support the verdict, ending
            with which epoch's weights the saved model holds (when known), and then,
            for a run trained with balanced class weights, :data:`CLASS_WEIGHT_NOTE`.
        numbers: the measurements behind them (see :func:`diagnose`).
        remedies: what to try next, most effective first.
    """

    verdict: str
    title: str
    headline: str
    evidence: list[str]
    numbers: dict[str, Any]
    remedies: list[Remedy]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types only; NaN and infinity become None."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["remedies"] = [r.to_dict() for r in self.remedies]
        return json_safe(d)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Diagnosis:
        """The inverse of :meth:`to_dict` (as the run store keeps it)."""
        d = dict(data)
        d["remedies"] = [Remedy(**r) for r in d.get("remedies", [])]
        return cls(**d)


def diagnose(
    history: Mapping[str, Sequence[float]],
    *,
    restored_epoch: int | None = None,
    stopped_epoch: int | None = None,
    num_classes: int | None = None,
    model_cfg: ModelConfig | None = None,
    train_cfg: TrainConfig | None = None,
) -> Diagnosis:
    """Read the training curves and say what they show.

    Args:
        history: Keras' ``history.history``: lists ``loss``, ``accuracy``,
            ``val_loss``, ``val_accuracy`` of equal length, one value per epoch.
        restored_epoch: the epoch (1-based) whose weights were put back at the
            end of training: the best epoch, restored by early stopping or kept
            by the checkpoint. None when the model keeps its last epoch's
            weights (early stopping with ``restore_best=False``).
        stopped_epoch: the epoch training stopped at (1-based; Keras'
            ``EarlyStopping.stopped_epoch`` is 0-based, add 1).
        num_classes: the number of classes, for the chance level ln(C);
            taken from ``model_cfg`` when not given.
        model_cfg, train_cfg: the run's settings. Remedies are computed from
            them (dropout 0.5 -> 0.6) and skipped when already in place
            (augmentation already on) or when they would change nothing. The
            course's defaults when None; with no ``train_cfg``,
            ``restored_epoch`` or ``stopped_epoch`` nothing is said about which
            weights were saved.

    Returns:
        A :class:`Diagnosis`. Its ``numbers`` hold ``best_epoch``,
        ``best_val_loss``, ``best_val_accuracy`` (at the best epoch),
        ``final_loss``, ``final_val_loss``, ``final_accuracy``,
        ``final_val_accuracy``, ``gap_accuracy`` (train - val accuracy at the
        last epoch), ``gap_loss`` (val - train loss at the last epoch),
        ``overfit_start_epoch`` (the epoch after which validation loss rises
        while training loss falls, or None), ``val_loss_rise`` (final val loss
        over its minimum, minus 1), ``epochs_run``, ``chance_loss`` (ln C, or
        None), ``chance_accuracy``, ``restored_epoch``, ``stopped_epoch``,
        ``saved_epoch`` (the epoch whose weights the saved model holds, or None
        when unknown), ``compared_from_epoch`` (the first epoch the evidence
        compares: the last third of the run, or epoch 1 for a short run),
        ``last_third_loss_change`` and ``last_third_val_loss_change`` (relative
        changes from that epoch to the end), ``val_loss_trend`` (relative change along a line fitted to
        the last epochs), ``diverged_epoch`` (first non-finite loss, or None)
        and ``short`` (too few epochs to judge).

    Raises:
        ValueError: the history is not a dict of equal-length per-epoch lists
            with the four keys, or an epoch or ``num_classes`` is out of range.
    """
    loss, acc, vloss, vacc = read_history(history)
    n = len(loss)
    for name, value in (("restored_epoch", restored_epoch), ("stopped_epoch", stopped_epoch)):
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 1 <= value <= n
        ):
            raise ValueError(
                f"{name} must be a 1-based epoch in [1, {n}] or None. Got {value!r} instead. "
                "(Keras' EarlyStopping.stopped_epoch is 0-based and 0 when training was not stopped.)"
            )
    if num_classes is None and model_cfg is not None:
        num_classes = model_cfg.num_classes
    if num_classes is not None and (
        isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 2
    ):
        raise ValueError(f"num_classes must be an integer >= 2 or None. Got {num_classes!r} instead.")

    r = Reading(Curves(loss, acc, vloss, vacc), RunFacts(num_classes, restored_epoch, stopped_epoch, train_cfg))
    headline, evidence = r.judge()
    if train_cfg is not None and train_cfg.class_weight == "balanced":
        evidence = [*evidence, CLASS_WEIGHT_NOTE]
    remedies = remedies_for(r, model_cfg or ModelConfig(), train_cfg or TrainConfig())
    d = r.decision
    return Diagnosis(d.verdict, d.title, headline, evidence, json_safe(r.numbers), remedies)


def diagnosis_of(rec: RunRecord) -> Diagnosis | None:
    """A stored run's diagnosis by today's truth table, as every page, the CLI, the lab and the report show it.

    Read again from the run's history and settings (no TensorFlow, a few
    milliseconds), so a run stored before the rules changed shows the same
    verdict as a new one. Falls back to the stored diagnosis only when the
    history or settings no longer read (a run from an older version); None
    when neither does.
    """
    n = len(rec.history.get("loss", []))
    try:
        model_cfg = ModelConfig.from_dict(rec.model_config) if rec.model_config else None
        train_cfg = TrainConfig.from_dict(rec.train_config) if rec.train_config else None
        classes = (rec.data or {}).get("classes") or []
        restored = rec.restored_epoch if rec.restored_epoch and 1 <= rec.restored_epoch <= n else None
        return diagnose(
            rec.history,
            restored_epoch=restored,
            stopped_epoch=n if rec.stopped_early and n else None,
            num_classes=len(classes) if len(classes) >= 2 else None,
            model_cfg=model_cfg,
            train_cfg=train_cfg,
        )
    except (ValueError, TypeError, ConfigError):
        try:
            return Diagnosis.from_dict(rec.diagnosis or {})
        except TypeError:
            return None


def in_few_words(diagnosis: Diagnosis) -> str:
    """The verdict in a few words, for a table of a whole class: "Stuck at chance" for a run whose best validation
    accuracy has not covered ``AT_CHANCE_SHARE`` of the way from guessing (1/K) to perfect, else its title
    ("Overfitting", "Good fit", ...)."""
    n = diagnosis.numbers
    chance = n.get("chance_accuracy")
    best = n.get("best_val_accuracy")
    if best is None:
        best = n.get("final_val_accuracy")
    if chance is not None and best is not None and best <= chance + AT_CHANCE_SHARE * (1 - chance):
        return "Stuck at chance"
    return diagnosis.title


def fit_summary_text(diagnosis: Diagnosis | Mapping[str, Any]) -> str:
    """One plain-text paragraph: verdict, evidence and what to try (for the CLI).

    Args:
        diagnosis: a :class:`Diagnosis` or its ``to_dict()`` (as the run store keeps it).

    Returns:
        "Overfitting. <headline> <evidence> Things to try: turn on data augmentation; ..."
    """
    if isinstance(diagnosis, Mapping):
        diagnosis = Diagnosis.from_dict(diagnosis)
    text = f"{diagnosis.title}. {diagnosis.headline} " + " ".join(diagnosis.evidence)
    if diagnosis.remedies:
        labels = [r.label[:1].lower() + r.label[1:] for r in diagnosis.remedies]
        text += " Things to try: " + "; ".join(labels) + "."
    return text
