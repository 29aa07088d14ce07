"""Data health, before training: class counts per split, imbalance, and duplicate images within and across splits.

:func:`data_health` looks at a loaded :class:`~core.data.Dataset` through the
split training will make of it (:func:`core.data.prepare_data` with the same
test size, validation split, seed and training fraction), so "across splits"
means what the model will see: a copy of a training image in the test set is
an image the model is tested on after learning it, and the test score is too
high (leakage).

- **Class counts** per split, and an imbalance warning when the training
  split's largest class has more than :data:`IMBALANCE_RATIO` times the
  images of its smallest.
- **Exact duplicates**: images whose decoded pixels (at the network's input
  size, as training reads them) are identical, byte for byte.
- **Near duplicates**: a perceptual hash, dHash (:func:`dhash`: the image in
  grey, shrunk to 9 x 8, one bit per pair of horizontal neighbours, "is the
  right one brighter"), 64 bits per image; two images whose hashes differ in
  at most :data:`NEAR_BITS` bits are candidates, confirmed when their grey
  16 x 16 thumbnails (brightness removed) differ by at most :data:`NEAR_LEVELS`
  grey levels on average: a resized, re-encoded or slightly brighter copy.
  Crops and rotations are not caught.

Every pair is listed with both file names, classes and splits; the pairs that
cross splits come first. NumPy and Pillow only.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from core.base.tables import plural
from core.data.dataset import Dataset
from core.data.errors import DataError
from core.data.prepare import prepare_data

# The training split's largest class over its smallest above this is called imbalanced: 1.5 means the
# largest class has half as many images again as the smallest, where a model that favours it already gains
# accuracy visibly (and the bundled datasets, exactly balanced, stay quiet).
IMBALANCE_RATIO = 1.5
# Near duplicates: dHashes differing in at most this many of 64 bits. Measured on thin_sections (every 10th
# image copied as JPEG quality 60, upscaled to 100 px, downscaled to 40 px as JPEG, 10% brighter): a copy
# moved 0-7 bits; two different bundled images are never closer than 11 bits (any of the three datasets).
NEAR_BITS = 8
# ... and whose grey 16 x 16 thumbnails, each less its mean brightness, differ by at most this many grey levels (of
# 255) on average: dHash alone calls two pictures with the same strong pattern alike (the tests' striped images,
# 6.5+ levels apart, have hashes within 8 bits of each other). Measured as above: resized or re-encoded copies
# 0.3-3.3 levels, 10% brighter ones up to 5.4; the closest different bundled images (by dHash) 16 or more.
NEAR_LEVELS = 5.0
# Pairs listed per kind (identical, near) and per place (across splits, within a split); all are counted.
MAX_PAIRS = 200
SPLITS = ("train", "val", "test")
SPLIT_WORDS = {"train": "training", "val": "validation", "test": "test", "unused": "not used", "all": "not split"}
_LEAKS = ({"train", "val"}, {"train", "test"})  # images dropped by train_fraction ("unused") leak nothing
_THUMB = 16
_CONFIRM = 20_000  # candidate pairs whose thumbnails are compared at once (about 40 MB)
_CELLS = 4_000_000  # hash comparisons per chunk (rows x images): about 32 MB of uint64 at a time


def signatures(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each uint8 image (N, H, W, C) in grey, shrunk twice (box filter), in one pass: its 64-bit difference hash
    (9 x 8, one bit per pair of horizontal neighbours: is the right one brighter) and its 16 x 16 thumbnail less its
    mean brightness (float32, grey levels)."""
    hashes = np.empty(len(images), dtype=np.uint64)
    thumbs = np.empty((len(images), _THUMB, _THUMB), dtype=np.float32)
    for i, img in enumerate(images):
        grey = Image.fromarray(np.ascontiguousarray(img[..., 0] if img.shape[-1] == 1 else img)).convert("L")
        small = np.asarray(grey.resize((9, 8), Image.Resampling.BOX), dtype=np.int16)
        hashes[i] = np.packbits(small[:, 1:] > small[:, :-1]).view(">u8")[0]
        thumbs[i] = np.asarray(grey.resize((_THUMB, _THUMB), Image.Resampling.BOX), dtype=np.float32)
    return hashes, thumbs - thumbs.mean(axis=(1, 2), keepdims=True)


def dhash(images: np.ndarray) -> np.ndarray:
    """The 64-bit difference hash of each image (:func:`signatures`)."""
    return signatures(images)[0]


def pixel_digests(images: np.ndarray) -> np.ndarray:
    """One integer per image, equal exactly when the decoded pixels are (BLAKE2b of the bytes, as codes 0..)."""
    digests = [hashlib.blake2b(np.ascontiguousarray(img).tobytes(), digest_size=16).digest() for img in images]
    return np.unique(np.array(digests, dtype=object), return_inverse=True)[1].astype(np.int64)


@dataclass(frozen=True)
class ImageRef:
    """One image of a pair: its index in the dataset, file (relative to the source), class and split."""

    index: int
    file: str
    label: str
    split: str

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "file": self.file, "class": self.label, "split": self.split}


@dataclass(frozen=True)
class DuplicatePair:
    """Two images that are identical (``exact``) or near identical (``distance`` bits of the dHash apart)."""

    a: ImageRef
    b: ImageRef
    distance: int
    exact: bool

    @property
    def across(self) -> bool:
        """In two different splits: a leak when one of them is training."""
        return self.a.split != self.b.split

    @property
    def same_class(self) -> bool:
        return self.a.label == self.b.label

    def to_dict(self) -> dict[str, Any]:
        return {
            "a": self.a.to_dict(),
            "b": self.b.to_dict(),
            "exact": self.exact,
            "distance": self.distance,
            "across_splits": self.across,
            "same_class": self.same_class,
        }


@dataclass(frozen=True)
class Duplicates:
    """The pairs of one kind: those listed (across splits first, then by distance) and how many there are."""

    pairs: list[DuplicatePair]
    total: int
    across: int

    @property
    def within(self) -> int:
        return self.total - self.across


@dataclass(frozen=True)
class Imbalance:
    """The training split's largest and smallest class and their ratio; ``warning`` is None when balanced."""

    largest: str
    largest_count: int
    smallest: str
    smallest_count: int
    threshold: float
    counted: str = "training image"  # "image" when the dataset could not be split (the whole dataset's counts)

    @property
    def ratio(self) -> float:
        return self.largest_count / self.smallest_count if self.smallest_count else float("inf")

    @property
    def imbalanced(self) -> bool:
        return self.ratio > self.threshold

    @property
    def warning(self) -> str | None:
        if not self.imbalanced:
            return None
        return (
            f"The classes are imbalanced: '{self.largest}' has {plural(self.largest_count, self.counted)}, "
            f"'{self.smallest}' only {self.smallest_count} ({self.ratio:.1f} to 1). A model can score well by "
            f"favouring '{self.largest}': read the recall of '{self.smallest}', add images of it, or train with "
            "balanced class weights."
        )

    def sentence(self) -> str:
        if self.imbalanced:
            return self.warning or ""
        if self.largest_count == self.smallest_count:
            return f"The classes are balanced: every class has {plural(self.largest_count, self.counted)}."
        return (
            f"The classes are balanced enough: the largest, '{self.largest}', has {self.ratio:.2f} times the "
            f"{self.counted}s of the smallest, '{self.smallest}' (a warning comes above {self.threshold:g})."
        )

    def to_dict(self) -> dict[str, Any]:
        ratio = self.ratio if np.isfinite(self.ratio) else None
        return {
            "largest": self.largest,
            "largest_count": self.largest_count,
            "smallest": self.smallest,
            "smallest_count": self.smallest_count,
            "ratio": ratio,
            "threshold": self.threshold,
            "imbalanced": self.imbalanced,
            "warning": self.warning,
        }


@dataclass(frozen=True)
class HealthReport:
    """What :func:`data_health` found. ``counts`` maps "all", "train", "val", "test" to images per class
    (only "all" when the dataset cannot be split; ``split_problem`` then says why)."""

    source: str
    class_names: list[str]
    counts: dict[str, list[int]]
    imbalance: Imbalance
    exact: Duplicates
    near: Duplicates
    near_bits: int
    split: dict[str, Any]
    near_levels: float = NEAR_LEVELS
    split_problem: str | None = None

    @property
    def leaks(self) -> list[DuplicatePair]:
        """The listed pairs (identical or near) with one image in training and the other in validation or test."""
        return [p for p in (*self.exact.pairs, *self.near.pairs) if {p.a.split, p.b.split} in _LEAKS]

    @property
    def mislabelled(self) -> list[DuplicatePair]:
        """The listed pairs whose two images carry different classes: one of the labels is wrong."""
        return [p for p in (*self.exact.pairs, *self.near.pairs) if not p.same_class]

    def drop_list(self) -> list[str]:
        """One file of each listed pair that crosses splits, to remove before training: the one in the later
        split (training, then validation, then test), so training keeps its image and the test loses the copy."""
        later = {name: i for i, name in enumerate(SPLITS)}
        pairs = [
            p for p in (*self.exact.pairs, *self.near.pairs) if p.across and p.a.split in later and p.b.split in later
        ]
        return sorted({max((p.a, p.b), key=lambda r: later[r.split]).file for p in pairs})

    def problems(self) -> list[str]:
        """The duplicates' consequences to act on: leakage into validation/test, and one picture under two labels."""
        out = []
        leaks, wrong = len(self.leaks), len(self.mislabelled)
        if leaks:
            out.append(
                f"{plural(leaks, 'pair')} {'puts' if leaks == 1 else 'put'} the same picture in training and in "
                "validation or test: the model is scored on images it has learned, so those scores are too high. "
                "Remove one image of each pair."
            )
        if wrong:
            out.append(
                f"{plural(wrong, 'pair')} of duplicates {'carries' if wrong == 1 else 'carry'} different classes: "
                "the same picture under two labels; check which one is right."
            )
        return out

    def sentences(self) -> list[str]:
        """What the report says, one fact per sentence, for the page and the CLI."""
        out = []
        if self.split_problem:
            out.append(f"The images cannot be split as training would: {self.split_problem}")
        out.append(self.imbalance.sentence())
        for dup, what in ((self.exact, "identical images"), (self.near, "near-identical images")):
            if not dup.total:
                out.append(f"No {what}.")
                continue
            text = f"{plural(dup.total, 'pair')} of {what}"
            if dup.across:
                text += f", {dup.across} of them across splits"
            if dup is self.near:
                text += f" (resized or re-encoded copies: perceptual hashes at most {self.near_bits} of 64 bits apart)"
            out.append(text + ".")
        return out + self.problems()

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly: counts per class and split, the imbalance, both kinds of pairs, the sentences."""
        counts = {split: dict(zip(self.class_names, values, strict=True)) for split, values in self.counts.items()}
        return {
            "source": self.source,
            "classes": list(self.class_names),
            "n_images": int(sum(self.counts["all"])),
            "split": dict(self.split),
            "split_problem": self.split_problem,
            "counts": counts,
            "imbalance": self.imbalance.to_dict(),
            "near_bits": self.near_bits,
            "near_levels": self.near_levels,
            "exact_duplicates": _dup_dict(self.exact),
            "near_duplicates": _dup_dict(self.near),
            "leaks": len(self.leaks),
            "drop": self.drop_list(),
            "sentences": self.sentences(),
        }


def _dup_dict(dup: Duplicates) -> dict[str, Any]:
    return {
        "total": dup.total,
        "across_splits": dup.across,
        "within_split": dup.within,
        "pairs": [p.to_dict() for p in dup.pairs],
    }


def _splits(ds: Dataset, test_size: float, val_split: float, seed: int, train_fraction: float):
    """Each image's split ("train", "val", "test" or "unused"), the counts per split, and a problem (or None)."""
    n = len(ds)
    labels = np.asarray(ds.labels, dtype=np.int64)
    counts = {"all": np.bincount(labels, minlength=len(ds.class_names)).tolist()}
    try:
        prep = prepare_data(
            ds, loss="sparse", test_size=test_size, val_split=val_split, seed=seed, train_fraction=train_fraction
        )
    except DataError as exc:  # a class too small to split: the duplicates are still worth finding
        return np.full(n, "all", dtype=object), counts, str(exc)
    where = np.full(n, "unused", dtype=object)
    for name, idx in (("train", prep.train_index), ("val", prep.val_index), ("test", prep.test_index)):
        where[idx] = name
    counts.update({name: list(prep.class_counts[name]) for name in SPLITS})
    return where, counts, None


def _imbalance(names: list[str], counts: dict[str, list[int]], threshold: float) -> Imbalance:
    """The training split's classes (the whole dataset's when it could not be split)."""
    values, counted = (counts["train"], "training image") if "train" in counts else (counts["all"], "image")
    hi, lo = int(np.argmax(values)), int(np.argmin(values))
    return Imbalance(names[hi], int(values[hi]), names[lo], int(values[lo]), threshold, counted)


def _confirmed(thumbs: np.ndarray, i: np.ndarray, j: np.ndarray, near_levels: float) -> np.ndarray:
    """Which candidate pairs (i, j) look alike pixel by pixel: mean |difference| of the thumbnails <= near_levels."""
    keep = np.zeros(len(i), dtype=bool)
    for s in range(0, len(i), _CONFIRM):
        a, b = thumbs[i[s : s + _CONFIRM]], thumbs[j[s : s + _CONFIRM]]
        keep[s : s + _CONFIRM] = np.abs(a - b).mean(axis=(1, 2)) <= near_levels
    return keep


def _pairs(images: np.ndarray, where, near_bits: int, near_levels: float, max_pairs: int) -> tuple[dict, dict]:
    """(kept pairs, totals) per kind ("exact", "near") and place ("across", "within"), a chunk of rows at a time."""
    n = len(images)
    (hashes, thumbs), codes = signatures(images), pixel_digests(images)
    kept: dict[tuple[str, str], list[tuple[int, int, int]]] = {
        (kind, place): [] for kind in ("exact", "near") for place in ("across", "within")
    }
    totals = dict.fromkeys(kept, 0)
    split_code = np.unique(where.astype(str), return_inverse=True)[1]
    rows = max(1, _CELLS // max(n, 1))
    cols = np.arange(n)
    for start in range(0, n, rows):
        stop = min(n, start + rows)
        dist = np.bitwise_count(hashes[start:stop, None] ^ hashes[None, :]).astype(np.int64)
        upper = cols[None, :] > np.arange(start, stop)[:, None]
        same = codes[start:stop, None] == codes[None, :]
        for kind, mask in (("exact", same & upper), ("near", ~same & upper & (dist <= near_bits))):
            i, j = np.nonzero(mask)
            if kind == "near" and len(i):
                ok = _confirmed(thumbs, i + start, j, near_levels)
                i, j = i[ok], j[ok]
            across = split_code[i + start] != split_code[j]
            for place, part in (("across", across), ("within", ~across)):
                a, b = i[part], j[part]
                totals[(kind, place)] += len(a)
                room = max_pairs - len(kept[(kind, place)])
                if room > 0 and len(a):
                    order = np.argsort(dist[a, b], kind="stable")[:room]
                    kept[(kind, place)].extend(
                        (int(start + x), int(y), int(dist[x, y])) for x, y in zip(a[order], b[order], strict=True)
                    )
    return kept, totals


def data_health(
    ds: Dataset,
    *,
    test_size: float = 0.2,
    val_split: float = 0.2,
    seed: int = 42,
    train_fraction: float = 1.0,
    near_bits: int = NEAR_BITS,
    near_levels: float = NEAR_LEVELS,
    imbalance_ratio: float = IMBALANCE_RATIO,
    max_pairs: int = MAX_PAIRS,
) -> HealthReport:
    """The health of ``ds`` as training with these split settings will see it.

    Args:
        ds: a loaded dataset (decoded at the network's input size, as training reads it).
        test_size, val_split, seed, train_fraction: the training's split (``TrainConfig``'s fields).
        near_bits: the largest dHash distance (of 64 bits) that makes two images near duplicates, in [0, 64].
        near_levels: the largest mean difference of their grey thumbnails (grey levels, brightness removed), >= 0.
        imbalance_ratio: the training split's largest/smallest class ratio above which it warns, >= 1.
        max_pairs: pairs listed per kind and place (across splits, within one); all are counted.

    Returns:
        A :class:`HealthReport`.

    Raises:
        DataError: a parameter is out of range.
    """
    if isinstance(near_bits, bool) or not isinstance(near_bits, (int, np.integer)) or not 0 <= near_bits <= 64:
        raise DataError(
            f"The 'near_bits' parameter of data_health must be an integer in [0, 64]. Got {near_bits!r} instead."
        )
    if isinstance(near_levels, bool) or not isinstance(near_levels, (int, float)) or not near_levels >= 0:
        raise DataError(
            f"The 'near_levels' parameter of data_health must be a number >= 0. Got {near_levels!r} instead."
        )
    if isinstance(imbalance_ratio, bool) or not isinstance(imbalance_ratio, (int, float)) or not imbalance_ratio >= 1:
        raise DataError(
            f"The 'imbalance_ratio' parameter of data_health must be a number >= 1. Got {imbalance_ratio!r} instead."
        )
    where, counts, problem = _splits(ds, test_size, val_split, seed, train_fraction)
    names = list(ds.class_names)
    imbalance = _imbalance(names, counts, float(imbalance_ratio))
    kept, totals = _pairs(ds.images, where, int(near_bits), float(near_levels), int(max_pairs))

    def ref(i: int) -> ImageRef:
        return ImageRef(i, ds.files[i] if i < len(ds.files) else f"image {i}", names[int(ds.labels[i])], str(where[i]))

    def dups(kind: str) -> Duplicates:
        listed = [
            DuplicatePair(ref(i), ref(j), d, kind == "exact")
            for place in ("across", "within")
            for i, j, d in sorted(kept[(kind, place)], key=lambda t: (t[2], t[0], t[1]))
        ]
        return Duplicates(listed, totals[(kind, "across")] + totals[(kind, "within")], totals[(kind, "across")])

    split = {"test_size": test_size, "val_split": val_split, "seed": seed, "train_fraction": train_fraction}
    return HealthReport(
        source=ds.source,
        class_names=names,
        counts=counts,
        imbalance=imbalance,
        exact=dups("exact"),
        near=dups("near"),
        near_bits=int(near_bits),
        split=split,
        near_levels=float(near_levels),
        split_problem=problem,
    )
