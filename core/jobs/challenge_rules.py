"""A challenge's budgets held against a training before it is queued: why it breaks them, per control.

The Architecture and Train pages show each reason next to the control that breaks it (:data:`CONTROLS`
says which), and :meth:`core.jobs.worker.TrainingWorker.submit_many` refuses a student's training on a
challenge's images with the same sentence (:class:`OverBudget`), so no page, sweep or link gets past them.
The parameters are the layer table's (no TensorFlow), counted for the challenge's classes.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable

from core.base.config import ModelConfig, TrainConfig
from core.base.limits import PathRefused
from core.base.tables import plural
from core.data import SAMPLE_DATA_DIR
from core.models.layer_table import layer_table
from core.store.challenges import Challenge, ChallengeError, unrevealed
from core.store.runstore import RunStore

CONTROLS = ("parameters", "epochs", "trainings")  # the reasons' keys: the controls they sit next to


class OverBudget(ChallengeError):
    """A training on a challenge's images that breaks one of its budgets."""


class SetAside(PathRefused):
    """A student's read of the data a challenge's hidden test images come from, before the teacher reveals them."""


def data_folder(source: str) -> str:
    """The folder a source's images are read from: a bundled dataset's folder, or the path itself (resolved)."""
    if "/" not in source and os.sep not in source:
        bundled = os.path.join(SAMPLE_DATA_DIR, source)
        if os.path.isdir(bundled):
            return os.path.realpath(bundled)
    return os.path.realpath(source)


def _overlaps(path: str, root: str) -> bool:
    """The same folder, one inside the other, either way."""
    return path == root or path.startswith(root + os.sep) or root.startswith(path + os.sep)


def withheld_by(store: RunStore) -> Callable[[str | None], Challenge | None]:
    """:func:`withheld` for many sources at once (a run list): the challenges are read once."""
    roots = [(data_folder(ch.source), ch) for ch in unrevealed(store)]
    seen: dict[str, Challenge | None] = {}

    def of(source: str | None) -> Challenge | None:
        if not source or not roots:
            return None
        if source not in seen:
            path = data_folder(source)
            seen[source] = next((ch for root, ch in roots if _overlaps(path, root)), None)
        return seen[source]

    return of


def withheld(store: RunStore, source: str | None) -> Challenge | None:
    """The challenge, scores not yet revealed, whose hidden test images ``source`` would let a student read:
    its teacher's data itself (a bundled name or its folder), a folder inside it or a folder holding it; else None.

    Students train on the challenge's own folder of the other images instead; the teacher reads everything.
    The runs trained on such data (anyone's, from before the challenge too) show those images with their labels
    and predictions, so a student's run list and run pages leave them out as well (:mod:`ui.resources`).
    """
    return withheld_by(store)(source)


def check_not_withheld(store: RunStore, source: str | None) -> None:
    """Refuse a student's read of a challenge's set-aside data (:class:`SetAside`, one line saying what to use)."""
    ch = withheld(store, source)
    if ch is not None:
        raise SetAside(
            f"These images are set aside for the challenge '{ch.title}' until your teacher reveals its scores: "
            "train on the challenge's images instead (pick it on the Train page)."
        )


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
