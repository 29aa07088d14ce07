"""A split of a dataset's images by index: what :class:`core.data.PreparedData` holds instead of copies."""

from __future__ import annotations

import numpy as np


class ImageSplit:
    """Some of a dataset's uint8 images, by index, without copying them.

    Behaves like the uint8 array ``images[index]`` for what the engine needs
    (``len``, ``shape``, ``dtype``, slicing and fancy indexing, ``np.asarray``),
    but holds only the index: a batch is read from ``images`` (an array or a
    memory-mapped file) when it is asked for.
    """

    def __init__(self, images: np.ndarray, index: np.ndarray):
        self.images = images
        self.index = np.asarray(index, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.index)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.index), *self.images.shape[1:])

    @property
    def dtype(self) -> np.dtype:
        return self.images.dtype

    @property
    def ndim(self) -> int:
        return self.images.ndim

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    @property
    def nbytes(self) -> int:
        return self.size * self.images.itemsize

    def __getitem__(self, key) -> np.ndarray:
        """Images of these positions (a new uint8 array); one position gives one image."""
        return np.asarray(self.images[self.index[key]])

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = np.asarray(self.images[self.index])
        return out if dtype is None else out.astype(dtype)

    def scaled(self) -> np.ndarray:
        """All of them as float32 in [0, 1] (``x.astype("float32") / 255.0``): for small sets and tests."""
        return np.divide(self[:], np.float32(255.0), dtype=np.float32)

    def __repr__(self) -> str:
        return f"ImageSplit({len(self)} images of {self.shape[1:]}, {self.dtype})"
