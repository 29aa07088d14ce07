"""What to try next after a verdict: remedies the app can apply, computed from the run's settings.

Each :class:`Remedy` carries dotted-key changes for
:func:`core.base.config.apply_changes` (``{"model.dropout": 0.6}``). A remedy
already in place is not suggested again (augmentation already on), nor one
that would change nothing for this run.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from core.base.config import RANGES, AugmentConfig, ConfigError, ModelConfig, TrainConfig, apply_changes
from core.models.layer_table import check_architecture, layer_table
from core.results.curves import early_stopping_epochs, json_safe
from core.results.verdict import MIN_EPOCHS_TO_JUDGE, Reading

# The patience the remedies suggest (epochs without improvement before stopping).
PATIENCE = 5


@dataclass(frozen=True)
class Remedy:
    """One thing to try, why, and the settings that do it.

    Args:
        label: a short imperative ("Turn on data augmentation").
        why: one or two sentences tying the remedy to this run's numbers.
        changes: dotted config keys to new values, applicable with
            :func:`core.base.config.apply_changes`: ``"model.dropout": 0.6``,
            ``"train.augment": "course"`` (the course's augmentation), ...
            Empty when the remedy is advice the app cannot apply by itself
            (collecting more images).
        key: a stable identifier ("augment", "dropout", ...) for widget keys.
    """

    label: str
    why: str
    changes: dict[str, Any] = field(default_factory=dict)
    key: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types only."""
        return json_safe(dataclasses.asdict(self))


def remedies_for(reading: Reading, model_cfg: ModelConfig, train_cfg: TrainConfig) -> list[Remedy]:
    """The remedies for the reading's decision, most effective first.

    Args:
        reading: the curves' :class:`core.results.verdict.Reading`; its ``decision`` picks the remedies
            (lower the learning rate when diverged, train longer when still improving or too short, ...).
        model_cfg, train_cfg: the run's settings, which the changes start from.

    Returns:
        The remedies that apply; none for a good fit.
    """
    r, m, t = reading, model_cfg, train_cfg
    d = r.decision
    if d.verdict == "diverged":
        return [_lower_lr(t, unstable=d.unstable)]
    if d.verdict == "overfitting":
        found = [_augment(t), _more_dropout(m), _early_stopping(t, r), _more_data(t), _smaller_model(m), _transfer(m)]
    elif d.verdict == "underfitting":
        found = [
            _bigger_model(m),
            _extra_block(m),
            _more_epochs(t, r, safety_net=False),
            _learning_rate_up(t),
            _less_dropout(m),
        ]
    elif d.verdict in ("still_improving", "too_few_epochs"):
        found = [_more_epochs(t, r, safety_net=True)]
        if d.high and d.verdict == "still_improving":
            found.append(_learning_rate_up(t))
    else:
        found = []
    return [x for x in found if x is not None]


def _augment(t: TrainConfig) -> Remedy | None:
    if t.augment.enabled:
        return None
    a = AugmentConfig.course()
    return Remedy(
        "Turn on data augmentation",
        f"Random rotations (up to {a.rotation:g} degrees), shifts ({a.width_shift:.0%}), flips and zoom "
        f"({a.zoom:.0%}) show the network a new variant of every training image each epoch, so it cannot "
        "simply memorise them. Only training images are augmented, never validation or test images.",
        {"train.augment": "course"},
        "augment",
    )


def _more_dropout(m: ModelConfig) -> Remedy | None:
    if m.dropout >= 0.7:
        return None
    new = 0.5 if m.dropout < 0.5 else round(m.dropout + 0.1, 2)
    return Remedy(
        f"Raise dropout to {new:g}",
        f"Dropout switches off a random {new:.0%} of the dense layer's outputs at each training step "
        f"(now {m.dropout:.0%}), so no unit can rely on a few others to memorise an image.",
        {"model.dropout": new},
        "dropout",
    )


def _early_stopping(t: TrainConfig, r: Reading) -> Remedy | None:
    """Restore the best weights (early stopping on, restore_best off), or turn early stopping on.

    Offered only when it would change something for this run: restoring, when
    the last epoch is worse than the best one; early stopping, when it would
    have ended this run before its last epoch.
    """
    n = r.n
    if r.early_stopping:
        # The settings must say restore_best is off: a remedy on settings we do not know changes nothing.
        if not t.early_stopping or t.restore_best or r.restored is not None or not r.last_is_worse():
            return None
        b = r.monitor_best
        return Remedy(
            "Restore the best weights when early stopping",
            f"Early stopping is on but restore_best is off, so the saved model holds the last epoch's weights "
            f"(epoch {n}, {_monitored(r, n)}) rather than the best epoch's (epoch {b}, {_monitored(r, b)}). "
            f"Restoring would have kept epoch {b}'s weights.",
            {"train.restore_best": True},
            "early_stopping",
        )
    stop, kept = early_stopping_epochs(r.vloss, PATIENCE)
    if stop is None or kept is None or (stop == n and r.restored == kept):
        return None  # it would have run to the end and kept the same weights: nothing changes
    at = f"epoch {stop} of {n}" if stop < n else f"the last epoch ({n})"
    why = (
        f"Training stops once validation loss has not improved for {PATIENCE} epochs and the weights roll back "
        f"to the best epoch. Here it would have stopped at {at} and kept epoch {kept}'s weights"
    )
    if r.restored == kept:
        why += (
            f", the ones this run already kept: the test score stays the same, but the {n - stop} epochs "
            f"after epoch {stop} are not run."
        )
    elif r.restored is not None:
        why += f" (this run kept epoch {r.restored}'s)."
    else:
        why += f" instead of the last epoch's ({n})." if r.saved_epoch is not None else "."
    return Remedy(
        f"Use early stopping (patience {PATIENCE}, restore best weights)",
        why,
        {"train.early_stopping": PATIENCE, "train.monitor": "val_loss", "train.restore_best": True},
        "early_stopping",
    )


def _monitored(r: Reading, epoch: int) -> str:
    """The monitored value at an epoch, in words: "validation loss 0.412"."""
    if r.monitor == "val_accuracy":
        return f"validation accuracy {r.vacc[epoch - 1]:.2f}"
    return f"validation loss {r.vloss[epoch - 1]:.3f}"


def _more_data(t: TrainConfig) -> Remedy:
    if t.train_fraction < 1.0:
        return Remedy(
            "Train on all the training images",
            f"This run used only {t.train_fraction:.0%} of the training images. More examples per "
            "class are the surest cure for memorising.",
            {"train.train_fraction": 1.0},
            "more_data",
        )
    return Remedy(
        "Collect more labelled images",
        "More examples per class are the surest cure for memorising; geoscience image sets are often "
        "only hundreds of images. (The app cannot do this one for you.)",
        {},
        "more_data",
    )


def _smaller_model(m: ModelConfig) -> Remedy | None:
    changes: dict[str, Any] = {}
    if m.model == "cnn":
        if m.filter_list and min(m.filter_list) >= 8:
            changes["model.filter_list"] = [f // 2 for f in m.filter_list]
        elif not m.filter_list and m.filters >= 8:
            changes["model.filters"] = m.filters // 2
    if m.dense_units >= 16:
        changes["model.dense_units"] = m.dense_units // 2
    if not changes:
        return None
    before, after = _trainable(m), _trainable(apply_changes(changes, m, TrainConfig())[0])
    sizes = f" ({before:,} -> {after:,} trainable weights)" if before and after else ""
    return Remedy(
        "Use a smaller model",
        f"Half the filters and dense units{sizes} leave fewer weights to memorise the training images with.",
        changes,
        "smaller_model",
    )


def _transfer(m: ModelConfig) -> Remedy | None:
    if m.model == "vgg16" or m.channels != 3:
        return None
    return Remedy(
        "Try transfer learning (VGG16)",
        "A VGG16 base pre-trained on ImageNet already knows edges, textures and shapes; only a small new "
        "head is trained, which suits small datasets (under about 1000 images).",
        {"model.model": "vgg16"},
        "transfer",
    )


def _bigger_model(m: ModelConfig) -> Remedy | None:
    changes: dict[str, Any] = {}
    if m.model == "cnn":
        if m.filter_list and max(m.filter_list) * 2 <= RANGES["filter_list"].hi:
            changes["model.filter_list"] = [f * 2 for f in m.filter_list]
        elif not m.filter_list and m.filters * 2 <= RANGES["filters"].hi:
            changes["model.filters"] = m.filters * 2
    if m.dense_units * 2 <= RANGES["dense_units"].hi:
        changes["model.dense_units"] = m.dense_units * 2
    if not changes:
        return None
    return Remedy(
        "Use a bigger model",
        "Twice the filters and dense units give the network room to learn more patterns.",
        changes,
        "bigger_model",
    )


def _extra_block(m: ModelConfig) -> Remedy | None:
    if m.model != "cnn" or m.blocks >= 5:
        return None
    changes: dict[str, Any] = {"model.blocks": m.blocks + 1}
    if m.filter_list:
        changes["model.filter_list"] = [*m.filter_list, min(m.filter_list[-1] * 2, 2048)]
    try:
        bigger = apply_changes(changes, m, TrainConfig())[0]
    except ConfigError:
        return None
    if check_architecture(bigger):
        return None  # the feature map would shrink below 1x1
    return Remedy(
        f"Add a convolution block ({m.blocks} -> {m.blocks + 1})",
        "Another Conv -> MaxPool block lets the network combine the patterns it finds into larger ones.",
        changes,
        "extra_block",
    )


def _more_epochs(t: TrainConfig, r: Reading, *, safety_net: bool) -> Remedy | None:
    planned = max(t.epochs, r.n)
    most = RANGES["epochs"].hi
    if planned >= most:
        return None
    changes: dict[str, Any] = {"train.epochs": min(planned * 2, most)}
    label = f"Train for more epochs ({changes['train.epochs']})"
    if r.decision.verdict == "too_few_epochs":
        why = (
            f"Only {r.n} epoch{'s' if r.n != 1 else ''} ran: at least {MIN_EPOCHS_TO_JUDGE} are needed to tell "
            "a trend of the curves from epoch-to-epoch noise."
        )
    elif r.decision.verdict == "still_improving":
        why = f"Validation loss was still falling after {r.n} epochs, so the network has more to learn."
    else:
        why = "Training loss may still come down with more passes over the data, especially with a small learning rate."
    if safety_net and not r.early_stopping:
        changes.update({"train.early_stopping": PATIENCE, "train.monitor": "val_loss", "train.restore_best": True})
        label += " with early stopping"
        why += f" Early stopping (patience {PATIENCE}, restore best weights) ends the run if it starts to overfit."
    return Remedy(label, why, changes, "more_epochs")


def _learning_rate_up(t: TrainConfig) -> Remedy:
    if t.learning_rate >= 0.01:
        return _lower_lr(t, unstable=None)
    new = _round(t.learning_rate * 3)
    return Remedy(
        f"Raise the learning rate to {new:g}",
        f"Larger steps ({t.learning_rate:g} -> {new:g}) move the weights faster when the loss creeps down; "
        "if the loss then jumps around instead of falling, go back down.",
        {"train.learning_rate": new},
        "learning_rate",
    )


def _lower_lr(t: TrainConfig, *, unstable: str | None) -> Remedy:
    """A tenth of the learning rate; ``unstable`` is the decision's reason ("nan", "rising", "jumps") or None."""
    new = max(_round(t.learning_rate / 10), 1e-7)
    if unstable == "nan":
        why = (
            "The loss overflowed: steps this large throw the weights far off. "
            "A tenth of the learning rate usually fixes it."
        )
    elif unstable is not None:
        what = "ended higher than it started" if unstable == "rising" else "jumped up instead of falling"
        why = (
            f"Training loss {what} with a learning rate of {t.learning_rate:g}: the steps overshoot. "
            "Smaller steps let it settle."
        )
    else:
        why = (
            f"A learning rate of {t.learning_rate:g} is high for this network: the loss can bounce around "
            "instead of settling. Smaller steps let it settle."
        )
    return Remedy(f"Lower the learning rate to {new:g}", why, {"train.learning_rate": new}, "learning_rate")


def _less_dropout(m: ModelConfig) -> Remedy | None:
    if m.dropout < 0.1:
        return None
    new = round(m.dropout / 2, 2)
    return Remedy(
        f"Lower dropout to {new:g}",
        f"Dropout of {m.dropout:.0%} switches off many units at every step; a model that cannot even fit the "
        "training images needs them all.",
        {"model.dropout": new},
        "less_dropout",
    )


def _round(x: float) -> float:
    """Two significant digits: 0.0030000000000000005 -> 0.003."""
    return float(f"{x:.2g}")


def _trainable(m: ModelConfig) -> int | None:
    try:
        return layer_table(m).trainable_params
    except ValueError:
        return None
