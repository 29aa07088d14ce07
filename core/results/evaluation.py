"""Scoring the test set: accuracy, cross-entropy, per-class precision/recall/F1, the confusion matrix.

:func:`evaluate` turns the test set's softmax outputs into a :class:`TestReport`,
including the test images the network got wrong most confidently;
:func:`cell_indices` lists the test items in one cell of the confusion matrix,
:func:`worst_confusion` finds its most frequent mistake and :func:`top_classes` ranks one image's classes.
No TensorFlow (scikit-learn is imported when :func:`evaluate` runs).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from core.base.config import LOSSES

# Probabilities are clipped like Keras' cross-entropy, so log(0) never happens.
EPSILON = 1e-7
# Softmax rows must sum to 1 within this (float32 outputs are off by ~1e-6).
ROW_SUM_TOLERANCE = 1e-3


@dataclass(frozen=True)
class TestReport:
    """How the network did on the test set.

    Attributes:
        accuracy: fraction of test images classified correctly.
        loss: mean cross-entropy of the true class' probability (clipped at 1e-7).
        loss_name: "categorical" or "sparse": which Keras loss the number
            stands for (the two give the same value on the same predictions).
        class_names: one per probability column.
        per_class: one dict per class: class, precision, recall, f1, support.
        macro: unweighted means of precision, recall and f1 over all classes,
            plus the total support.
        weighted: the same means weighted by support.
        confusion_matrix: rows are true classes, columns predicted classes.
        y_true: the true class of each test item.
        predicted: the predicted class (argmax) of each test item.
        confidence: the probability of the predicted class.
        most_confident_wrong: indices of misclassified items, most confident first.
        notes: caveats worth showing next to the numbers (absent classes).
    """

    __test__ = False  # not a pytest test class, despite the name

    accuracy: float
    loss: float
    loss_name: str
    class_names: list[str]
    per_class: list[dict[str, Any]]
    macro: dict[str, float]
    weighted: dict[str, float]
    confusion_matrix: list[list[int]]
    y_true: list[int]
    predicted: list[int]
    confidence: list[float]
    most_confident_wrong: list[int]
    notes: list[str] = field(default_factory=list)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types (:func:`evaluate` builds every field from Python numbers and lists)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TestReport:
        """The inverse of :meth:`to_dict` (as the run store keeps it)."""
        return cls(**dict(data))


def evaluate(
    y_true: Sequence[int] | np.ndarray,
    probs: Sequence[Sequence[float]] | np.ndarray,
    class_names: Sequence[str],
    loss: str | None = None,
    *,
    top_wrong: int = 12,
) -> TestReport:
    """Score the test set's softmax outputs.

    Args:
        y_true: the true class of each test image, integers of shape (N,)
            (``PreparedData.y_test_int``; for one-hot labels pass
            ``y.argmax(axis=1)``).
        probs: the model's softmax outputs, shape (N, C), each row summing to 1.
        class_names: C names, one per column of ``probs``.
        loss: "categorical" or "sparse" (``TrainConfig.loss``): the Keras loss
            the reported number stands for. Both are the cross-entropy of the
            true class' probability, so the value is the same; None means
            "categorical".
        top_wrong: how many of the most confidently wrong items to list.

    Returns:
        A :class:`TestReport`.

    Raises:
        ValueError: the labels, probabilities and names do not describe the
            same items and classes, a row is not a softmax output (logits, NaN),
            or ``loss``/``top_wrong`` is out of range; the message says which.
    """
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    y, p, names = _check_predictions(y_true, probs, class_names)
    if loss is None:
        loss = "categorical"
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {list(LOSSES)} or None. Got {loss!r} instead.")
    if isinstance(top_wrong, bool) or not isinstance(top_wrong, (int, np.integer)) or top_wrong < 0:
        raise ValueError(f"top_wrong must be an integer >= 0. Got {top_wrong!r} instead.")
    n, c = p.shape
    labels = list(range(c))
    pred = p.argmax(axis=1)
    conf = p[np.arange(n), pred]
    true_p = np.clip(p[np.arange(n), y], EPSILON, 1 - EPSILON)
    xent = float(np.mean(-np.log(true_p)))

    prec, rec, f1, sup = precision_recall_fscore_support(y, pred, labels=labels, zero_division=0)
    per_class = [
        {
            "class": names[k],
            "precision": float(prec[k]),
            "recall": float(rec[k]),
            "f1": float(f1[k]),
            "support": int(sup[k]),
        }
        for k in labels
    ]
    averages = {}
    for avg in ("macro", "weighted"):
        ap, ar, af, _ = precision_recall_fscore_support(y, pred, labels=labels, average=avg, zero_division=0)
        averages[avg] = {"precision": float(ap), "recall": float(ar), "f1": float(af), "support": int(n)}
    cm = confusion_matrix(y, pred, labels=labels)

    wrong = np.flatnonzero(pred != y)
    order = wrong[np.argsort(-conf[wrong], kind="stable")][:top_wrong]

    notes = []
    absent = [names[k] for k in labels if sup[k] == 0]
    if absent:
        notes.append(
            f"No test images of {', '.join(repr(a) for a in absent)}: recall and F1 of "
            f"{'that class' if len(absent) == 1 else 'those classes'} are shown as 0 and pull the macro "
            "average down."
        )
    never = [names[k] for k in labels if sup[k] > 0 and not (pred == k).any()]
    if never:
        notes.append(f"The network never predicted {', '.join(repr(a) for a in never)}: precision is shown as 0.")
    return TestReport(
        accuracy=float(np.mean(pred == y)),
        loss=xent,
        loss_name=loss,
        class_names=names,
        per_class=per_class,
        macro=averages["macro"],
        weighted=averages["weighted"],
        confusion_matrix=cm.astype(int).tolist(),
        y_true=y.tolist(),
        predicted=pred.astype(int).tolist(),
        confidence=conf.astype(float).tolist(),
        most_confident_wrong=order.astype(int).tolist(),
        notes=notes,
    )


def cell_indices(
    report_or_arrays: TestReport | tuple[Any, Any],
    true_class: int | str,
    pred_class: int | str,
) -> list[int]:
    """The test indices in one cell of the confusion matrix, in order.

    Args:
        report_or_arrays: a :class:`TestReport`, or a pair ``(y_true, y_pred)``
            where ``y_pred`` is predicted classes (N,) or probabilities (N, C).
        true_class: the row: a class index (or a class name, with a report).
        pred_class: the column, likewise.

    Returns:
        The indices of the items of class ``true_class`` predicted as ``pred_class``.

    Raises:
        ValueError: a class is out of range or unknown, a name is used without
            a report, or the two arrays differ in length.
    """
    if isinstance(report_or_arrays, TestReport):
        y = np.asarray(report_or_arrays.y_true)
        pred = np.asarray(report_or_arrays.predicted)
        names = report_or_arrays.class_names
        c = len(names)
    else:
        try:
            y_true, y_pred = report_or_arrays
        except (TypeError, ValueError):
            raise ValueError(
                "cell_indices() takes a TestReport or a pair (y_true, y_pred). "
                f"Got {type(report_or_arrays).__name__} instead."
            ) from None
        y = _int_labels(y_true, "y_true")
        pred = np.asarray(y_pred)
        if pred.ndim == 2:
            c = pred.shape[1]
            pred = pred.argmax(axis=1)
        else:
            pred = _int_labels(pred, "y_pred")
            c = int(max(y.max(initial=-1), pred.max(initial=-1))) + 1
        if len(pred) != len(y):
            raise ValueError(f"y_true and y_pred must have the same length. Got {len(y)} and {len(pred)}.")
        names = None
    row = _class_index(true_class, names, c, "true_class")
    col = _class_index(pred_class, names, c, "pred_class")
    return np.flatnonzero((y == row) & (pred == col)).astype(int).tolist()


def worst_confusion(matrix: Sequence[Sequence[int]]) -> tuple[int, int]:
    """The most frequent mistake in a confusion matrix: ``(true class, predicted class)`` of its largest
    off-diagonal cell (of equal cells, the last in reading order); ``(0, 0)`` when nothing was confused."""
    m = np.asarray(matrix)
    off = [(int(m[r, c]), r, c) for r in range(m.shape[0]) for c in range(m.shape[1]) if r != c]
    count, row, col = max(off, default=(0, 0, 0))
    return (row, col) if count else (0, 0)


def top_classes(probs: Sequence[float], k: int = 3) -> list[int]:
    """The ``k`` most probable classes of one softmax row, most probable first (equal ones in class order)."""
    return np.argsort(-np.asarray(probs, dtype=float), kind="stable")[:k].astype(int).tolist()


def _int_labels(y: Any, name: str) -> np.ndarray:
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise ValueError(
            f"{name} must be integer class labels of shape (N,). Got shape {arr.shape} instead. "
            "For one-hot labels pass y.argmax(axis=1) (PreparedData.y_test_int)."
        )
    integral = np.issubdtype(arr.dtype, np.integer) or (
        np.issubdtype(arr.dtype, np.floating) and bool(np.all(arr == np.round(arr)))
    )
    if arr.size and not integral:
        raise ValueError(f"{name} must hold integer class labels. Got dtype {arr.dtype} instead.")
    return arr.astype(np.int64)


def _check_predictions(y_true, probs, class_names) -> tuple[np.ndarray, np.ndarray, list[str]]:
    y = _int_labels(y_true, "y_true")
    p = np.asarray(probs, dtype=float)
    if p.ndim != 2:
        raise ValueError(
            f"probs must have shape (N, C), one row of class probabilities per item. Got shape {p.shape} instead."
        )
    n, c = p.shape
    if n == 0:
        raise ValueError("probs is empty: there is nothing to evaluate.")
    if len(y) != n:
        raise ValueError(f"y_true has {len(y)} labels but probs has {n} rows: they must describe the same items.")
    names = [str(s) for s in class_names]
    if len(names) != c:
        raise ValueError(f"class_names has {len(names)} names but probs has {c} columns (classes). Got {names}.")
    if y.min() < 0 or y.max() >= c:
        bad = int(y[(y < 0) | (y >= c)][0])
        raise ValueError(f"y_true holds class {bad}, outside [0, {c - 1}] for {c} classes.")
    if not np.isfinite(p).all():
        raise ValueError("probs holds NaN or infinite values.")
    if p.min() < 0 or p.max() > 1 + ROW_SUM_TOLERANCE:
        raise ValueError(
            f"probs must be probabilities in [0, 1]. Got values in [{p.min():.3g}, {p.max():.3g}]. "
            "If the model outputs logits, apply softmax first."
        )
    sums = p.sum(axis=1)
    off = np.flatnonzero(np.abs(sums - 1) > ROW_SUM_TOLERANCE)
    if off.size:
        i = int(off[0])
        raise ValueError(
            f"Each row of probs must sum to 1 (softmax outputs). Row {i} sums to {sums[i]:.4f} "
            f"({off.size} of {n} rows are off). Apply softmax to the model's outputs first."
        )
    return y, p, names


def _class_index(value: int | str, names: list[str] | None, c: int, what: str) -> int:
    if isinstance(value, str):
        if names is None:
            raise ValueError(f"{what} is a class name ({value!r}); names can only be used with a TestReport.")
        if value not in names:
            raise ValueError(f"{what} {value!r} is not a class. Known classes: {names}.")
        return names.index(value)
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= value < c:
        raise ValueError(f"{what} must be a class index in [0, {c - 1}]. Got {value!r} instead.")
    return int(value)
