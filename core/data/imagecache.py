"""Decoded datasets kept on disk as uint8 ``.npy`` files, memory-mapped when opened again.

Decoding 10,000 PNGs takes about a minute; reading them back from one uint8
file mapped into memory takes well under a second (the operating system pages
the pixels in as they are used and can drop them again: they are not the
process's own memory). So :func:`core.data.load_dataset`, given the run
store's cache folder, decodes a source once into
``<cache>/images/<slot>-<stamp>.npy`` and opens that file on every later load.

- The *slot* names the source and the load settings (path or upload digest,
  image size, channels); the *stamp* covers what was read (the folder's file
  names, sizes and modification times, or the zip's size and time). Changed
  files give a new stamp: the source is decoded again and the slot's older
  file deleted.
- ``<slot>.json`` holds what else a :class:`~core.data.Dataset` needs (labels,
  class names, files, skipped files, the fingerprint) and the stamp of the
  ``.npy`` it describes; it is written last, with an atomic rename, so a
  reader sees a complete pair or none.
- Limits apply to a cached read as to a fresh one: the json also keeps the
  pixel count of the largest image read and the size of each image skipped for
  the pixel limit, and :func:`core.data.dataset.under_limits` (called by the
  loader on every open) decodes the source again when the limit in force now
  would read it differently. Not the limit in the file name: a server and the
  CLI with different limits on one store would then decode by turns, each
  deleting the other's file, though every image is within both.

Nothing here decodes: :mod:`core.data.loading` fills the array that
:meth:`ImageCache.writer` hands out.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from core.data.dataset import Dataset, SkippedFile

CACHE_VERSION = 1
SUBDIR = "images"  # under the run store's cache folder


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps([CACHE_VERSION, value], default=str).encode()).hexdigest()[:24]


class ImageCache:
    """The decoded-images cache in ``<cache_dir>/images``."""

    def __init__(self, cache_dir: str | Path):
        self.folder = Path(cache_dir) / SUBDIR

    def _paths(self, slot: str, stamp: str) -> tuple[Path, Path]:
        return self.folder / f"{slot}-{stamp}.npy", self.folder / f"{slot}.json"

    @staticmethod
    def names(source_key: tuple, what_was_read: Any) -> tuple[str, str]:
        """``(slot, stamp)`` for a source (kind, path or digest, size, channels) and what was read from it."""
        return _digest(list(source_key)), _digest(what_was_read)

    def get(self, slot: str, stamp: str) -> Dataset | None:
        """The cached dataset, its images memory-mapped read-only; None if not cached or out of date."""
        npy, meta_path = self._paths(slot, stamp)
        try:
            meta = json.loads(meta_path.read_text())
            if meta.get("stamp") != stamp:
                return None
            images = np.load(npy, mmap_mode="r")
        except (OSError, ValueError):
            return None
        labels = np.asarray(meta["labels"], dtype=np.int64)
        if images.shape != tuple(meta["shape"]) or len(labels) != len(images):
            return None
        labels.flags.writeable = False
        skipped = [SkippedFile(s["path"], s["reason"], s.get("size")) for s in meta["skipped"]]
        return Dataset(
            images,
            labels,
            list(meta["class_names"]),
            skipped,
            meta["source"],
            meta["fingerprint"],
            list(meta["files"]),
            meta.get("largest"),
        )

    @contextlib.contextmanager
    def writer(self, slot: str, stamp: str, n_max: int, image_shape: tuple[int, ...]) -> Iterator[np.ndarray]:
        """A writable uint8 array of ``n_max`` images on disk to decode into; :meth:`put` keeps it.

        Removed again if the block raises or :meth:`put` is not called.
        """
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.folder / f".{slot}-{uuid.uuid4().hex}.tmp.npy"
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(n_max, *image_shape))
        try:
            yield out
        finally:
            del out
            tmp.unlink(missing_ok=True)

    def put(self, slot: str, stamp: str, buffer: np.ndarray, count: int, ds: Dataset) -> Dataset:
        """Keep the first ``count`` images of a :meth:`writer` buffer as the slot's cache; returns ``ds`` on it."""
        npy, meta_path = self._paths(slot, stamp)
        if count == len(buffer) and isinstance(buffer, np.memmap) and buffer.filename:
            buffer.flush()  # every file was used: the buffer is the cache file
            os.replace(buffer.filename, npy)
        else:  # some files were skipped: keep the first `count` images
            tmp = self.folder / f".{slot}-{uuid.uuid4().hex}.npy"
            final = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(count, *buffer.shape[1:]))
            for start in range(0, count, 4096):  # a chunk at a time: never the whole set in memory
                final[start : start + 4096] = buffer[start : min(count, start + 4096)]
            final.flush()
            del final
            os.replace(tmp, npy)
        meta = {
            "stamp": stamp,
            "shape": [count, *buffer.shape[1:]],
            "labels": ds.labels.tolist(),
            "class_names": list(ds.class_names),
            "skipped": [s.to_dict() for s in ds.skipped],
            "source": ds.source,
            "fingerprint": ds.fingerprint,
            "files": list(ds.files),
            "largest": ds.largest,
        }
        tmp_meta = self.folder / f".{slot}-{uuid.uuid4().hex}.json"
        tmp_meta.write_text(json.dumps(meta))
        os.replace(tmp_meta, meta_path)
        for old in self.folder.glob(f"{slot}-*.npy"):  # earlier versions of this source
            if old != npy:
                old.unlink(missing_ok=True)  # a process that still maps it keeps reading it
        cached = self.get(slot, stamp)
        if cached is None:  # pragma: no cover - only if the disk changed under us
            raise OSError(f"The decoded images could not be read back from {npy}.")
        return cached
