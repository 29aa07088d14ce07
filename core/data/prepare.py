"""Preparing a dataset the way the course's notebook does before ``model.fit``.

:func:`prepare_data` encodes the labels (one-hot or integers) and makes a
stratified train / validation / test split, recording each step's numbers
(a :class:`PrepStep` each) so the dashboard can show them, the scaling of
pixels to [0, 1] included. The images are not copied: each split is an
:class:`ImageSplit`, the dataset's uint8 images seen through the split's
indices, and the training pipeline (:mod:`core.models.pipeline`) divides by 255 one
batch at a time, exactly as ``x.astype("float32") / 255.0`` would. A float32
copy of every split (4 bytes a pixel, three arrays at once) was what kept
large datasets out of memory. :func:`images_needed` says how many images a
class needs for a split.

scikit-learn is imported only when data is split: it is slow to import.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np

from core.base.config import LOSSES
from core.data.dataset import Dataset
from core.data.errors import DataError
from core.data.split import ImageSplit


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.ndarray):
        return _jsonable(v.tolist())
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    if isinstance(v, np.bool_):
        return bool(v)
    return v


@dataclass(frozen=True)
class PrepStep:
    """One preparation step, with the numbers before and after it.

    Attributes:
        title: short name, e.g. "Scale pixels to [0, 1]".
        what: one sentence for students on what the step does and why.
        before: numbers describing the data before the step (shape, dtype, min, max, counts...).
        after: the same numbers after the step.
        key: a stable identifier: tensor, scale, encode, split_test, split_val, subsample.
    """

    title: str
    what: str
    before: dict[str, Any]
    after: dict[str, Any]
    key: str = ""

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(
            {"key": self.key, "title": self.title, "what": self.what, "before": self.before, "after": self.after}
        )


@dataclass(eq=False)
class PreparedData:
    """The splits ready for training, and how they were made.

    ``x_*`` are :class:`ImageSplit` views of the dataset's uint8 images (no
    copy); the training pipeline scales them to [0, 1] per batch, and
    :meth:`x01` gives a split as float32 in [0, 1] for small sets.
    ``y_*`` are one-hot float32 (loss="categorical") or int64 (loss="sparse");
    ``y_*_int`` are always the integer labels. ``*_index`` index the dataset
    the splits came from. ``class_counts`` maps "train", "val", "test" to the
    number of images per class.
    """

    x_train: ImageSplit
    y_train: np.ndarray
    x_val: ImageSplit
    y_val: np.ndarray
    x_test: ImageSplit
    y_test: np.ndarray
    y_train_int: np.ndarray
    y_val_int: np.ndarray
    y_test_int: np.ndarray
    train_index: np.ndarray
    val_index: np.ndarray
    test_index: np.ndarray
    class_names: list[str]
    loss: str
    steps: list[PrepStep]
    class_counts: dict[str, list[int]]
    seed: int = 42
    test_size: float = 0.2
    val_split: float = 0.2
    train_fraction: float = 1.0
    # The dataset the arrays came from (uint8 images, fingerprint), for work done once per
    # dataset rather than per split, such as the VGG16 feature cache.
    dataset: Dataset | None = field(default=None, repr=False, compare=False)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def x01(self, split: str) -> np.ndarray:
        """The "train", "val" or "test" images as float32 in [0, 1]: a copy, for small sets and tests."""
        return {"train": self.x_train, "val": self.x_val, "test": self.x_test}[split].scaled()

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(int(d) for d in self.x_train.shape[1:])  # type: ignore[return-value]

    def to_dict(self) -> dict[str, Any]:
        """Everything but the arrays, JSON-friendly (for the CLI and the UI)."""
        return _jsonable(
            {
                "class_names": self.class_names,
                "loss": self.loss,
                "input_shape": self.input_shape,
                "sizes": {"train": len(self.x_train), "val": len(self.x_val), "test": len(self.x_test)},
                "class_counts": self.class_counts,
                "params": {
                    "seed": self.seed,
                    "test_size": self.test_size,
                    "val_split": self.val_split,
                    "train_fraction": self.train_fraction,
                },
                "steps": [s.to_dict() for s in self.steps],
            }
        )

    def __repr__(self) -> str:
        return (
            f"PreparedData(loss={self.loss!r}, train={len(self.x_train)}, val={len(self.x_val)}, "
            f"test={len(self.x_test)}, classes={self.class_names})"
        )


@dataclass(frozen=True)
class _Settings:
    """What :func:`prepare_data` was asked for: the label encoding, the split's fractions and its seed."""

    loss: str
    test_size: float
    val_split: float
    seed: int
    train_fraction: float


@dataclass(frozen=True)
class _Splits:
    """The split as it was made, one step at a time: indices into the dataset's images."""

    train_full: np.ndarray  # the training part left by the test split
    test: np.ndarray
    before_subsample: np.ndarray  # the training part left by the validation split
    val: np.ndarray
    train: np.ndarray  # the training images kept (all of before_subsample unless train_fraction < 1)


def _per_class(labels: np.ndarray, k: int, idx: np.ndarray) -> list[int]:
    """Images per class among ``labels[idx]``."""
    return np.bincount(labels[idx], minlength=k).tolist()


def _check_fraction(name: str, value: Any, hi_closed: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    ok = ok and (0 < value <= 1 if hi_closed else 0 < value < 1)
    if not ok:
        raise DataError(
            f"The '{name}' parameter of prepare_data must be a number in (0, 1{']' if hi_closed else ')'}. "
            f"Got {value!r} instead."
        )


def images_needed(test_size: float, val_split: float) -> int:
    """The fewest images a class needs so that train, validation and test each get one."""
    for n in range(2, 100_000):
        test = math.floor(n * test_size)
        rest = n - math.ceil(n * test_size)
        val = math.floor(rest * val_split)
        train = rest - math.ceil(rest * val_split)
        if test >= 1 and val >= 1 and train >= 1:
            return n
    return 100_000


def _too_small(names, counts, split_name, zero_class, test_size, val_split) -> DataError:
    need = images_needed(test_size, val_split)
    c = int(counts[zero_class])
    need = max(need, c + 1)
    name = names[zero_class]
    return DataError(
        f"Class '{name}' has {c} image{'' if c == 1 else 's'}, too few to split: the {split_name} set would get "
        f"none of them. With test_size={test_size} and val_split={val_split}, a class needs {need} or more images "
        f"to be sure of at least one in every split. Add {need - c} or more images to '{name}'."
    )


def prepare_data(
    ds: Dataset,
    *,
    loss: str = "categorical",
    test_size: float = 0.2,
    val_split: float = 0.2,
    seed: int = 42,
    train_fraction: float = 1.0,
) -> PreparedData:
    """Scale, encode and split a dataset the way the course prepares data for a CNN.

    1. pixels / 255 -> float32 in [0, 1] (recorded here, done per batch by the
       training pipeline: the splits stay uint8 views of the dataset);
    2. labels one-hot (``loss="categorical"``) or kept as integers (``"sparse"``);
    3. ``train_test_split(test_size=test_size, random_state=seed, stratify=labels)``,
       the course's call, so the test set is the one the course's code gives;
    4. a stratified validation split of ``val_split`` of the training part (same seed);
    5. with ``train_fraction < 1``, a stratified fraction of the remaining training
       images (at least 1 per class); validation and test stay the same.

    Args:
        ds: a loaded :class:`Dataset`.
        loss: "categorical" (one-hot labels) or "sparse" (integer labels).
        test_size: fraction of all images held out for the test, in (0, 1).
        val_split: fraction of the training part held out for validation, in (0, 1).
        seed: random seed of the splits.
        train_fraction: fraction of the training images to keep, in (0, 1].

    Returns:
        A :class:`PreparedData` with the arrays and the steps' numbers.

    Raises:
        DataError: a parameter is out of range, or a class is too small for a split.
    """
    if loss not in LOSSES:
        raise DataError(
            f"The 'loss' parameter of prepare_data must be one of {', '.join(repr(x) for x in LOSSES)}. "
            f"Got {loss!r} instead."
        )
    _check_fraction("test_size", test_size)
    _check_fraction("val_split", val_split)
    _check_fraction("train_fraction", train_fraction, hi_closed=True)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**32:
        raise DataError(f"The 'seed' parameter of prepare_data must be an integer in [0, 2**32). Got {seed!r} instead.")
    images, labels, names = ds.images, np.asarray(ds.labels, dtype=np.int64), list(ds.class_names)
    n, k = len(labels), len(names)
    if images.ndim != 4 or images.shape[0] != n or images.dtype != np.uint8:
        raise DataError(
            "The dataset's images must be uint8 (N, H, W, C) with one label each. "
            f"Got {images.dtype} {images.shape} and {n} labels."
        )
    if k < 2 or n == 0 or labels.min() < 0 or labels.max() >= k:
        raise DataError(
            f"The dataset needs at least 2 classes and labels in [0, {k - 1}]. Got {k} class(es) and {n} label(s)."
        )
    counts = np.bincount(labels, minlength=k)

    from sklearn.model_selection import train_test_split  # imported here: it is slow to import

    def split(idx: np.ndarray, size: float, split_name: str) -> tuple[np.ndarray, np.ndarray]:
        try:
            a, b = train_test_split(idx, test_size=size, random_state=seed, stratify=labels[idx])
        except ValueError:  # too few images for a stratified split: name the smallest class
            raise _too_small(names, counts, split_name, int(np.argmin(counts)), test_size, val_split) from None
        for part, part_name in ((a, "training"), (b, split_name)):
            got = np.bincount(labels[part], minlength=k)
            if (got == 0).any():
                zero = int(np.argmin(np.where(got == 0, counts, counts.max() + 1)))
                raise _too_small(names, counts, part_name, zero, test_size, val_split)
        return np.asarray(a, np.int64), np.asarray(b, np.int64)

    all_idx = np.arange(n, dtype=np.int64)
    train_full, test_idx = split(all_idx, test_size, "test")
    train_idx, val_idx = split(train_full, val_split, "validation")
    before_sub = train_idx
    if train_fraction < 1:
        rng = np.random.default_rng(seed)
        keep = np.zeros(n, bool)
        for c in range(k):
            members = train_idx[labels[train_idx] == c]
            take = max(1, int(math.floor(train_fraction * len(members) + 0.5)))
            keep[rng.choice(members, size=take, replace=False)] = True
        train_idx = train_idx[keep[train_idx]]  # keeps the split's shuffled order

    eye = np.eye(k, dtype=np.float32)

    def enc(idx: np.ndarray) -> np.ndarray:
        return eye[labels[idx]] if loss == "categorical" else labels[idx].copy()

    per_class = partial(_per_class, labels, k)
    settings = _Settings(loss, test_size, val_split, seed, train_fraction)
    splits = _Splits(train_full, test_idx, before_sub, val_idx, train_idx)
    return PreparedData(
        x_train=ImageSplit(images, train_idx),
        y_train=enc(train_idx),
        x_val=ImageSplit(images, val_idx),
        y_val=enc(val_idx),
        x_test=ImageSplit(images, test_idx),
        y_test=enc(test_idx),
        y_train_int=labels[train_idx].copy(),
        y_val_int=labels[val_idx].copy(),
        y_test_int=labels[test_idx].copy(),
        train_index=train_idx,
        val_index=val_idx,
        test_index=test_idx,
        class_names=names,
        loss=loss,
        steps=_steps(images, labels, names, settings, splits),
        class_counts={"train": per_class(train_idx), "val": per_class(val_idx), "test": per_class(test_idx)},
        seed=int(seed),
        test_size=float(test_size),
        val_split=float(val_split),
        train_fraction=float(train_fraction),
        dataset=ds,
    )


def _pixel_range(images: np.ndarray, splits, lo_hi: tuple[int, int], chunk: int = 1024) -> tuple[int, int]:
    """Min and max pixel of the images the splits use (``lo_hi`` when they use all), a chunk at a time."""
    used = np.unique(np.concatenate(splits))
    if len(used) == len(images):
        return lo_hi
    if not used.size:
        return 0, 0
    lo, hi = 255, 0
    for start in range(0, len(used), chunk):
        part = images[used[start : start + chunk]]
        lo, hi = min(lo, int(part.min())), max(hi, int(part.max()))
    return lo, hi


def _steps(
    images: np.ndarray, labels: np.ndarray, names: list[str], settings: _Settings, splits: _Splits
) -> list[PrepStep]:
    """Each preparation step with its numbers before and after, in the order :func:`prepare_data` makes them."""
    n, k = len(labels), len(names)
    per_class = partial(_per_class, labels, k)
    shape = list(images.shape)
    lo, hi = (int(images.min()), int(images.max())) if images.size else (0, 0)
    used = (splits.train, splits.val, splits.test)
    used_lo, used_hi = _pixel_range(images, used, (lo, hi))  # what the batches will hold after / 255
    ex = 2 if k > 2 else k - 1  # the course prints class 2's one-hot label
    steps = [
        PrepStep(
            "Images as a 4D tensor",
            "A CNN reads a batch of images as one 4D array: (images, height, width, colour channels).",
            {"images": n, "image_shape": shape[1:]},
            {"shape": shape, "dtype": str(images.dtype), "min": lo, "max": hi},
            "tensor",
        ),
        PrepStep(
            "Scale pixels to [0, 1]",
            "Divide every pixel by 255 so values run from 0 to 1 instead of 0 to 255; "
            "small inputs of similar size make training steadier.",
            {"shape": shape, "dtype": str(images.dtype), "min": lo, "max": hi},
            {
                "shape": shape,
                "dtype": "float32",
                "min": float(np.float32(used_lo) / np.float32(255.0)),
                "max": float(np.float32(used_hi) / np.float32(255.0)),
            },
            "scale",
        ),
    ]
    label_before = {
        "shape": [n],
        "dtype": "int64",
        "min": int(labels.min()),
        "max": int(labels.max()),
        "example_class": names[ex],
        "example_label": ex,
    }
    if settings.loss == "categorical":
        steps.append(
            PrepStep(
                "Encode labels (one-hot)",
                "Turn each class number into a vector with a 1 in that class's position and 0 elsewhere, "
                "the form categorical_crossentropy compares with the softmax output.",
                label_before,
                {
                    "shape": [n, k],
                    "dtype": "float32",
                    "min": 0.0,
                    "max": 1.0,
                    "example_class": names[ex],
                    "example_label": np.eye(k, dtype=int)[ex].tolist(),
                },
                "encode",
            )
        )
    else:
        steps.append(
            PrepStep(
                "Keep integer labels (sparse)",
                "sparse_categorical_crossentropy takes the class number itself (0, 1, 2, ...), "
                "so the labels stay integers.",
                label_before,
                dict(label_before),
                "encode",
            )
        )
    steps.append(
        PrepStep(
            "Stratified train/test split",
            f"Hold back {settings.test_size:.0%} of the images for the final test, keeping each class's share "
            "the same in both parts (stratify), so no class is missing from the test.",
            {"images": n, "per_class": per_class(np.arange(n))},
            {
                "train": len(splits.train_full),
                "test": len(splits.test),
                "train_per_class": per_class(splits.train_full),
                "test_per_class": per_class(splits.test),
                "test_size": settings.test_size,
                "seed": settings.seed,
            },
            "split_test",
        )
    )
    steps.append(
        PrepStep(
            "Validation split",
            f"Set aside {settings.val_split:.0%} of the training part to check the model after every epoch; "
            "the model never learns from these images, so they show overfitting.",
            {"train": len(splits.train_full), "train_per_class": per_class(splits.train_full)},
            {
                "train": len(splits.before_subsample),
                "val": len(splits.val),
                "train_per_class": per_class(splits.before_subsample),
                "val_per_class": per_class(splits.val),
                "val_split": settings.val_split,
                "seed": settings.seed,
            },
            "split_val",
        )
    )
    if settings.train_fraction < 1:
        steps.append(
            PrepStep(
                "Use a fraction of the training images",
                f"Keep only {settings.train_fraction:.0%} of the training images (at least one per class) to see what "
                "training on little data does; validation and test stay the same.",
                {"train": len(splits.before_subsample), "train_per_class": per_class(splits.before_subsample)},
                {
                    "train": len(splits.train),
                    "train_per_class": per_class(splits.train),
                    "train_fraction": settings.train_fraction,
                },
                "subsample",
            )
        )
    return steps
