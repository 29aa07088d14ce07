"""Which held-out images are most likely mislabelled? Ranked by the probability the network gives their own label.

A network trained on mostly right labels learns what each class looks like; an image filed under the wrong
class then gets a low probability for the label it carries. Ranking images the network did **not** train on
(its validation and test splits) by that probability, lowest first, is cleanlab's *self-confidence* ranking
(Northcutt et al., "Confident learning", 2021): the top of the list is where a person should look first.

An image is also **flagged** when the network is as sure of another class there as it is, on average, of that
class on the images labelled with it (cleanlab's per-class threshold: the class' mean self-confidence over
the held-out images). A low probability alone can be a hard image; a flag says the network recognises it as
another class with the confidence it has for real images of that class. The ranking stays by self-confidence;
the flag is a second, stricter reading. NumPy only; the predictions come from the caller (a stored run's:
:func:`core.training.heldout.run_mislabels`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from core.base.tables import plural
from core.data.health import SPLIT_WORDS
from core.results.evaluation import _check_predictions

TOP_K = 12  # images listed (the gallery and the CLI)
SPLITS = ("val", "test")  # held-out splits, in the order images of equal probability are listed


@dataclass(frozen=True)
class Suspect:
    """One held-out image on the list.

    Attributes:
        split: "val" or "test".
        index: its number in that split (test: the test image Inside and Predictions show as #index).
        label: the class it is filed under (index into the class names).
        predicted: the network's top class.
        own_probability: the probability the network gives ``label`` (the self-confidence; the ranking's key).
        predicted_probability: the probability of ``predicted``.
        flagged_as: the other class the network is confidently sure of (see the module), or None.
        file: its file, relative to the dataset (None when the dataset could not be read again).
    """

    split: str
    index: int
    label: int
    predicted: int
    own_probability: float
    predicted_probability: float
    flagged_as: int | None
    file: str | None = None

    @property
    def flagged(self) -> bool:
        return self.flagged_as is not None

    def to_dict(self, class_names: Sequence[str]) -> dict[str, Any]:
        return {
            **asdict(self),
            "split_name": SPLIT_WORDS[self.split],
            "label_name": class_names[self.label],
            "predicted_name": class_names[self.predicted],
            "flagged": self.flagged,
            "flagged_as_name": None if self.flagged_as is None else class_names[self.flagged_as],
        }


@dataclass(frozen=True)
class Mislabels:
    """The held-out images most likely mislabelled, lowest probability of their own label first.

    Attributes:
        class_names: the run's classes.
        suspects: the first ``k`` images of the ranking.
        thresholds: per class, the mean probability of that class over the held-out images labelled with it
            (None for a class with no held-out image: nothing is flagged as it).
        counts: held-out images per split ({"val": n, "test": n}; a split left out has 0).
        n_flagged: flagged images among all the held-out ones (not only those listed).
        note: why a split is missing, in a student's words ("" when both are there).
    """

    class_names: list[str]
    suspects: list[Suspect]
    thresholds: list[float | None]
    counts: dict[str, int]
    n_flagged: int
    note: str = ""
    run_id: str = ""

    @property
    def n(self) -> int:
        return sum(self.counts.values())

    def sentence(self) -> str:
        """One sentence a student reads above the list."""
        where = " and ".join(plural(self.counts[s], f"{SPLIT_WORDS[s]} image") for s in SPLITS if self.counts.get(s))
        if not self.n:
            return "There are no held-out images to check."
        flagged = (
            f"{plural(self.n_flagged, 'image')} the network confidently calls another class (flagged)"
            if self.n_flagged
            else "none the network confidently calls another class"
        )
        return (
            f"Of the {where} the network never trained on, these give their own label the lowest probability; "
            f"{flagged}. Look at them first: a wrong label, an odd image, or a class the network has not learned."
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "class_names": list(self.class_names),
            "counts": dict(self.counts),
            "n_flagged": self.n_flagged,
            "thresholds": list(self.thresholds),
            "note": self.note,
            "sentence": self.sentence(),
            "suspects": [s.to_dict(self.class_names) for s in self.suspects],
        }


def class_thresholds(y: np.ndarray, probs: np.ndarray) -> list[float | None]:
    """Per class, the mean probability of that class over the images labelled with it (None: no image)."""
    return [float(probs[y == c, c].mean()) if np.any(y == c) else None for c in range(probs.shape[1])]


def flagged_classes(y: np.ndarray, probs: np.ndarray, thresholds: Sequence[float | None]) -> np.ndarray:
    """Per image, the other class the network is confidently sure of, or -1.

    cleanlab's confident joint: among the classes whose probability reaches their threshold, the most
    probable one; the image is flagged when that class is not its label.
    """
    t = np.array([np.inf if v is None else v for v in thresholds], dtype=np.float64)
    above = probs >= t[None, :]
    masked = np.where(above, probs, -np.inf)
    confident = masked.argmax(axis=1)
    hit = above.any(axis=1) & (confident != y)
    return np.where(hit, confident, -1)


def rank_mislabels(
    class_names: Sequence[str],
    heldout: Mapping[str, tuple[Any, Any]],
    *,
    k: int = TOP_K,
    files: Mapping[str, Sequence[str]] | None = None,
    note: str = "",
    run_id: str = "",
) -> Mislabels:
    """Rank held-out images by the probability of their own label, lowest first, and keep the first ``k``.

    Args:
        class_names: the classes, in label order.
        heldout: per split ("val", "test"), ``(labels, probabilities)`` of its images: shapes (N,), (N, C).
        k: how many images to list (an integer >= 1).
        files: per split, each image's file (optional).
        note: why a split is missing, kept with the result.
        run_id: the run the predictions are of, kept with the result.

    Raises:
        ValueError: an unknown split, ``k`` not a positive integer, or labels and probabilities that do not
            fit together (as :func:`core.results.evaluate` says).
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be an integer >= 1. Got {k!r} instead.")
    unknown = set(heldout) - set(SPLITS)
    if unknown:
        raise ValueError(f"heldout splits must be among {list(SPLITS)}. Got {sorted(unknown)} instead.")
    names = [str(c) for c in class_names]
    ys, ps, where, index = [], [], [], []
    for split in SPLITS:
        if split not in heldout or not len(heldout[split][0]):
            continue
        y, p, _ = _check_predictions(*heldout[split], names)
        ys.append(y)
        ps.append(p)
        where += [split] * len(y)
        index.append(np.arange(len(y)))
    y = np.concatenate(ys) if ys else np.zeros(0, dtype=np.int64)
    p = np.concatenate(ps) if ps else np.zeros((0, len(names)))
    idx = np.concatenate(index) if index else np.zeros(0, dtype=np.int64)
    counts = {s: int(len(heldout[s][0])) if s in heldout else 0 for s in SPLITS}
    if not len(y):
        return Mislabels(names, [], [None] * len(names), counts, 0, note, run_id)
    own = p[np.arange(len(y)), y]
    thresholds = class_thresholds(y, p)
    flags = flagged_classes(y, p, thresholds)
    order = np.lexsort((idx, [SPLITS.index(s) for s in where], own))[: int(k)]  # stable: ties by split, then number
    files = files or {}
    suspects = []
    for i in order:
        split, n = where[i], int(idx[i])
        split_files = files.get(split)
        suspects.append(
            Suspect(
                split=split,
                index=n,
                label=int(y[i]),
                predicted=int(p[i].argmax()),
                own_probability=float(own[i]),
                predicted_probability=float(p[i].max()),
                flagged_as=None if flags[i] < 0 else int(flags[i]),
                file=str(split_files[n]) if split_files is not None and n < len(split_files) else None,
            )
        )
    return Mislabels(names, suspects, thresholds, counts, int((flags >= 0).sum()), note, run_id)
