"""A challenge's budgets held against a training before it is queued: why it breaks them, per control.

The Architecture and Train pages show each reason next to the control that breaks it (:data:`CONTROLS`
says which), and :meth:`core.jobs.worker.TrainingWorker.submit_many` refuses a student's training on a
challenge's images with the same sentence (:class:`OverBudget`), so no page, sweep or link gets past them.
The parameters are the layer table's (no TensorFlow), counted for the challenge's classes.
"""

from __future__ import annotations

import dataclasses

from core.base.config import ModelConfig, TrainConfig
from core.base.tables import plural
from core.models.layer_table import layer_table
from core.store.challenges import Challenge, ChallengeError

CONTROLS = ("parameters", "epochs", "trainings")  # the reasons' keys: the controls they sit next to


class OverBudget(ChallengeError):
    """A training on a challenge's images that breaks one of its budgets."""


def total_epochs(train_cfg: TrainConfig, model_cfg: ModelConfig | None = None) -> int:
    """The epochs a training may run: its own, plus VGG16's fine-tuning epochs."""
    fine = int(train_cfg.fine_tune_epochs or 0) if model_cfg is None or model_cfg.model == "vgg16" else 0
    return int(train_cfg.epochs) + fine


def parameters_control(model_cfg: ModelConfig) -> str:
    """The Architecture control that moves the parameter count most: the dense layer's units or the filters."""
    table = layer_table(model_cfg)
    heaviest = max(table.rows, key=lambda r: r.params)
    return "dense_units" if heaviest.type == "Dense" or model_cfg.model == "vgg16" else "filters"


def budget_reasons(
    challenge: Challenge, model_cfg: ModelConfig, train_cfg: TrainConfig, trainings: int | None = None
) -> dict[str, str]:
    """Why these settings break the challenge's budgets, per control (:data:`CONTROLS`); empty when they fit.

    Args:
        challenge: the challenge whose images the training is on.
        model_cfg, train_cfg: the training's settings.
        trainings: how many trainings the student has started on the challenge's images already
            (None: not counted, e.g. for the teacher).
    """
    b = challenge.budgets
    reasons: dict[str, str] = {}
    if b.max_params is not None:
        params = layer_table(dataclasses.replace(model_cfg, num_classes=len(challenge.classes))).total_params
        if params > b.max_params:
            fix = "a smaller dense layer" if parameters_control(model_cfg) == "dense_units" else "fewer filters"
            reasons["parameters"] = (
                f"This network has {params:,} parameters; the challenge allows at most {b.max_params:,}. "
                f"Use {fix}, or more blocks to shrink the map before the dense layer."
            )
    if b.max_epochs is not None and (epochs := total_epochs(train_cfg, model_cfg)) > b.max_epochs:
        reasons["epochs"] = (
            f"This training runs up to {plural(epochs, 'epoch')}; the challenge allows at most "
            f"{plural(b.max_epochs, 'epoch')}."
        )
    if b.max_trainings is not None and trainings is not None and trainings >= b.max_trainings:
        reasons["trainings"] = (
            f"You have started {plural(trainings, 'training')} on this challenge's images, the most it allows "
            "each student: enter your best run on the board."
        )
    return reasons
