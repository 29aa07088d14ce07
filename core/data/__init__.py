"""Datasets: load class folders (or a zip of them) and prepare them as the course does.

A dataset is a folder with one sub-folder per class, the images inside::

    thin_sections/
        README.md          # optional datasheet; its first heading is the title
        classes.txt        # optional: one class name per line, fixes the label order
        sandstone/001.png ...
        limestone/001.png ...

or a ``.zip`` of such class folders (at the zip's root, or inside one top-level
folder, as "Compress" on macOS and Windows makes them). :func:`load_dataset`
turns it into a :class:`Dataset` of uint8 arrays; :func:`prepare_data` then
does what the course's notebook does before ``model.fit``: scale pixels to
[0, 1], encode labels, and a stratified train / validation / test split,
recording each step's numbers so the dashboard can show them.

Bad files never crash a load and are never dropped silently: each one is
listed in ``Dataset.skipped`` with a reason a student can act on. Problems
with the dataset as a whole raise :class:`DataError` (a
:class:`core.base.errors.UserError`) saying what was found and what is needed.

The package, lowest module first (each imports only the ones above it):

- :mod:`core.data.errors`: :class:`DataError`.
- :mod:`core.data.images`: decoding one image (:func:`read_image_bytes`), the formats read.
- :mod:`core.data.dataset`: :class:`Dataset`, :class:`SkippedFile`, the fingerprint,
  :func:`dataset_summary`.
- :mod:`core.data.sources`: scanning a folder or a zip into class folders; the size limits.
- :mod:`core.data.imagecache`: decoded images kept as memory-mapped uint8 ``.npy`` files in the
  run store's cache (``load_dataset(cache_dir=...)``), so a source is decoded once.
- :mod:`core.data.loading`: :func:`load_dataset`, :func:`load_zip_bytes`, the in-memory cache,
  :func:`bundled_datasets`, :data:`SAMPLE_DATA_DIR`.
- :mod:`core.data.prepare`: :func:`prepare_data`, :class:`PreparedData`, :class:`PrepStep`,
  :class:`ImageSplit`, :func:`images_needed` (uses :mod:`~core.data.dataset`, not the scanning).
- :mod:`core.data.health`: :func:`data_health` (class counts per split, imbalance, exact and
  near-duplicate images within and across the training's splits), :class:`HealthReport`.

This module re-exports the public API; import it from here. Settings read at
call time live on the module that reads them: patch
``core.data.loading.SAMPLE_DATA_DIR`` / ``CACHE_SIZE`` or
``core.data.sources.MAX_FILES`` / ``MAX_ZIP_BYTES`` / ``MAX_MEMBER_BYTES``,
not the names here.

Importing this package is cheap: no TensorFlow, no Streamlit; scikit-learn is
imported only when data is split.
"""

from core.data.dataset import Dataset, SkippedFile, dataset_summary
from core.data.errors import DataError
from core.data.health import HealthReport, data_health
from core.data.images import read_image_bytes
from core.data.loading import (
    SAMPLE_DATA_DIR,
    BundledInfo,
    bundled_datasets,
    clear_cache,
    load_dataset,
    load_zip_bytes,
)
from core.data.prepare import PreparedData, PrepStep, images_needed, prepare_data
from core.data.split import ImageSplit

__all__ = [
    "SAMPLE_DATA_DIR",
    "BundledInfo",
    "DataError",
    "Dataset",
    "HealthReport",
    "ImageSplit",
    "PrepStep",
    "PreparedData",
    "SkippedFile",
    "bundled_datasets",
    "clear_cache",
    "data_health",
    "dataset_summary",
    "images_needed",
    "load_dataset",
    "load_zip_bytes",
    "prepare_data",
    "read_image_bytes",
]
