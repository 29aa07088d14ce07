"""What a loaded dataset is: :class:`Dataset`, :class:`SkippedFile`, the fingerprint, the summary.

No reading here: :mod:`core.data.loading` builds datasets,
:mod:`core.data.prepare` splits them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.base.limits import max_pixels, too_many_pixels


@dataclass(frozen=True)
class SkippedFile:
    """A file that was not used, and why (in words a student can act on).

    ``size`` is ``(width, height)`` of an image skipped for the pixel limit
    (None for any other reason): what :func:`under_limits` checks again.
    """

    path: str
    reason: str
    size: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if self.size is not None:
            object.__setattr__(self, "size", tuple(int(v) for v in self.size))

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"path": self.path, "reason": self.reason}
        if self.size is not None:
            d["size"] = list(self.size)
        return d


@dataclass(frozen=True, eq=False)
class Dataset:
    """Decoded images and their labels.

    Attributes:
        images: uint8 array (N, H, W, C), read-only.
        labels: int64 array (N,), read-only; ``labels[i]`` indexes ``class_names``.
        class_names: class names in label order.
        skipped: files that were not used, with the reason.
        source: the bundled name, or the absolute path that was loaded.
        fingerprint: SHA-256 hex of the class names, labels and pixels; equal
            content gives an equal fingerprint wherever it was loaded from.
        files: path of each image relative to the source, aligned with ``images``.
        largest: pixels (width x height, before resizing) of the largest image read; None when not known
            (a dataset made in memory, or sent to a training process after it was read).
    """

    images: np.ndarray
    labels: np.ndarray
    class_names: list[str]
    skipped: list[SkippedFile]
    source: str
    fingerprint: str
    files: list[str]
    largest: int | None = None

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(int(d) for d in self.images.shape[1:])  # type: ignore[return-value]

    @property
    def counts(self) -> list[int]:
        """Images per class, in label order."""
        return np.bincount(self.labels, minlength=len(self.class_names)).tolist()

    def __repr__(self) -> str:
        return (
            f"Dataset(source={self.source!r}, n_images={len(self)}, classes={self.class_names}, "
            f"image_shape={self.image_shape}, skipped={len(self.skipped)}, fingerprint={self.fingerprint[:12]}...)"
        )


def fingerprint(class_names: list[str], labels: np.ndarray, images: np.ndarray) -> str:
    """``Dataset.fingerprint``: SHA-256 hex of the class names, the image shape, the labels and the pixels."""
    h = hashlib.sha256()
    h.update(json.dumps({"v": 1, "classes": class_names, "shape": list(images.shape)}).encode())
    h.update(labels.astype("<i8").tobytes())
    h.update(np.ascontiguousarray(images).tobytes())
    return h.hexdigest()


def under_limits(ds: Dataset) -> Dataset | None:
    """A kept read (memory or disk cache) held to the pixel limit in force now (``CNNLAB_MAX_PIXELS``).

    Returns ``ds`` when reading the files again would give the same images
    (the oversized files' reasons worded for the limit now), or None when it
    would not: an image read then is over the limit now, a file skipped then is
    within it now, or the read does not say how large its images were.
    """
    limit = max_pixels()
    if ds.largest is None or ds.largest > limit:
        return None
    if any(s.size is not None and s.size[0] * s.size[1] <= limit for s in ds.skipped):
        return None
    skipped = [dataclasses.replace(s, reason=too_many_pixels(*s.size) or s.reason) if s.size else s for s in ds.skipped]
    return ds if skipped == ds.skipped else dataclasses.replace(ds, skipped=skipped)


def dataset_summary(ds: Dataset) -> dict[str, Any]:
    """A JSON-friendly description of a dataset (no pixels)."""
    return {
        "source": ds.source,
        "fingerprint": ds.fingerprint,
        "n_images": len(ds),
        "n_classes": len(ds.class_names),
        "classes": list(ds.class_names),
        "counts": dict(zip(ds.class_names, ds.counts, strict=True)),
        "image_shape": list(ds.image_shape),
        "n_skipped": len(ds.skipped),
        "skipped": [s.to_dict() for s in ds.skipped],
    }
