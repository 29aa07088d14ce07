"""Loading a dataset: a bundled name, a folder or a zip -> :class:`Dataset`, kept in memory.

:func:`load_dataset` and :func:`load_zip_bytes` scan the source
(:mod:`core.data.sources`), decode every image (:mod:`core.data.images`),
list each file that was not used with the reason, and check that every class
has at least 2 images. Results are cached in memory (:data:`CACHE_SIZE`
datasets, least recently used first out); :func:`clear_cache` empties it.
:func:`bundled_datasets` describes the datasets in :data:`SAMPLE_DATA_DIR`
without decoding them.

``SAMPLE_DATA_DIR`` and ``CACHE_SIZE`` are read at call time, so tests can
patch them on this module.
"""

from __future__ import annotations

import hashlib
import io
import os
import threading
import zipfile
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import BinaryIO

import numpy as np

from core.base.limits import challenges_dir, check_kind, data_roots, inside, refusal, serving, uploads_dir
from core.base.tables import plural
from core.data.dataset import Dataset, SkippedFile, fingerprint, under_limits
from core.data.errors import DataError
from core.data.imagecache import ImageCache
from core.data.images import (
    FORMATS_TEXT,
    IMAGE_EXTENSIONS,
    TooLarge,
    Unreadable,
    check_image_args,
    decode_sized,
    zero_size_hint,
)
from core.data.sources import Item, LyingEntry, has_image_ext, is_ignored, layout, scan_folder, scan_zip

SAMPLE_DATA_DIR = Path(__file__).resolve().parents[2] / "sample_data"
# The bundled datasets in course order; other folders follow alphabetically.
BUNDLED_ORDER = ("thin_sections", "seismic_facies", "drill_core")
CACHE_SIZE = 8  # datasets kept in memory by load_dataset


@dataclass(frozen=True)
class BundledInfo:
    """A dataset shipped in ``sample_data/``, described without decoding it."""

    name: str
    path: Path
    title: str
    n_images: int
    classes: list[str]
    counts: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class _Read:
    """One source being decoded: what it is, its name, and the size its images are read at."""

    kind: str  # "dir" or "zip": how core.data.sources.layout reads its entries
    label: str  # Dataset.source: the bundled name, the absolute path, or the upload's name
    image_size: int
    channels: int

    @property
    def where(self) -> str:
        """The source as messages name it: "The folder '...'" or "The zip '...'"."""
        return f"The {'folder' if self.kind == 'dir' else 'zip'} '{self.label}'"


def _decode_items(by_class, names, image_size, channels, out: np.ndarray):
    """Decode every usable file into ``out`` (one row per image, in order).

    Returns (count, labels, files, skipped, largest): ``largest`` is the pixel count of the largest image read.
    """
    count = largest = 0
    labels: list[int] = []
    files: list[str] = []
    skipped: list[SkippedFile] = []
    for label, name in enumerate(names):
        for item in by_class[name]:
            size = None
            reason = item.problem
            ext = os.path.splitext(item.rel)[1].lower()
            if reason is None and ext and ext not in IMAGE_EXTENSIONS:
                reason = f"not an image file ('{ext}'); only {FORMATS_TEXT} images are used"
            if reason is None and item.size == 0:
                reason = "an empty file (0 bytes)"
            if reason is None:
                try:
                    src = item.opener()  # type: ignore[misc]
                    out[count], pixels = decode_sized(src, image_size, channels)
                    largest = max(largest, pixels)
                    count += 1
                    labels.append(label)
                    files.append(item.rel)
                    continue
                except TooLarge as e:
                    reason, size = str(e), (e.width, e.height)
                except Unreadable as e:
                    reason = zero_size_hint(_head(item)) or str(e)
                except zipfile.BadZipFile as e:
                    reason = f"damaged inside the zip ({e})"
                except LyingEntry as e:
                    reason = str(e)
                except (OSError, NotImplementedError, RuntimeError) as e:
                    reason = f"could not be read ({e})"
            skipped.append(SkippedFile(item.rel, reason, size))
    return count, labels, files, skipped, largest


def _head(item: Item) -> bytes:
    try:
        src = item.opener()  # type: ignore[misc]
        if isinstance(src, str):
            with open(src, "rb") as f:
                return f.read(32)
        return src.read(32)
    except Exception:  # noqa: BLE001 - only used to improve a message
        return b""


def _build(read: _Read, items, dirs, extra_skipped: list[SkippedFile], disk=None) -> Dataset:
    """Decode the source's class folders into a Dataset: in memory, or into the image cache (``disk``).

    ``extra_skipped`` are the files the scan already refused (a folder's links that point outside, say).
    """
    prefix, names, by_class, skipped = layout(items, dirs, read.where, read.kind)
    skipped = extra_skipped + skipped
    n_max = sum(len(by_class[n]) for n in names)
    shape = (read.image_size, read.image_size, read.channels)
    if disk is None or n_max == 0:
        return _fill(np.empty((n_max, *shape), np.uint8), prefix, names, by_class, skipped, read.label)
    cache, slot, stamp = disk
    with cache.writer(slot, stamp, n_max, shape) as buffer:
        ds = _fill(buffer, prefix, names, by_class, skipped, read.label)
        return cache.put(slot, stamp, buffer, len(ds), ds)


def _fill(buffer, prefix, names, by_class, skipped, source) -> Dataset:
    image_size, channels = buffer.shape[1], buffer.shape[3]
    count, labels, files, bad, largest = _decode_items(by_class, names, image_size, channels, buffer)
    skipped = sorted(skipped + bad, key=lambda s: s.path)
    lab = np.asarray(labels, dtype=np.int64)
    counts = np.bincount(lab, minlength=len(names))
    short = [(n, int(c)) for n, c in zip(names, counts, strict=True) if c < 2]
    if short:
        parts = []
        for n, c in short:
            s = f"Class '{n}' has {c} image{'' if c == 1 else 's'}"
            folder = f"{prefix}/{n}/" if prefix else f"{n}/"
            lost = [k for k in skipped if k.path.startswith(folder)]
            if lost:
                were = "was" if len(lost) == 1 else "were"
                s += f" ({plural(len(lost), 'file')} in it {were} skipped, e.g. '{lost[0].path}': {lost[0].reason})"
            parts.append(s)
        fix = " or ".join(f"'{n}'" for n, _ in short)
        raise DataError(
            "; ".join(parts) + "; every class needs at least 2 so it can appear in both the training and the test "
            f"split. Add images to {fix} or remove the folder."
        )
    arr = buffer[:count] if isinstance(buffer, np.memmap) or count == len(buffer) else buffer[:count].copy()
    if not isinstance(buffer, np.memmap):  # the cache's buffer stays writable until ImageCache.put has it
        arr.flags.writeable = False
    lab.flags.writeable = False
    return Dataset(arr, lab, list(names), skipped, source, fingerprint(names, lab, arr), files, largest)


_cache: OrderedDict[tuple, Dataset] = OrderedDict()
_cache_lock = threading.Lock()


def clear_cache() -> None:
    """Forget every dataset :func:`load_dataset` holds in memory."""
    with _cache_lock:
        _cache.clear()


def _mapped_file_gone(ds: Dataset) -> bool:
    """Whether ``ds``'s images are mapped from a cache file that is no longer there (another process decoded the
    source again): this process can still read its map, but a training process handed the file's path cannot."""
    name = getattr(ds.images, "filename", None)
    return bool(name) and not os.path.exists(name)


def _cached(key: tuple, make: Callable[[], Dataset], use_cache: bool) -> Dataset:
    """The dataset kept in memory under ``key`` if the limits in force now let it be read the same and its cache
    file is still there; else ``make()``."""
    if use_cache:
        with _cache_lock:
            kept = _cache.get(key)
            ds = under_limits(kept) if kept is not None and not _mapped_file_gone(kept) else None
            if ds is not None:
                _cache[key] = ds
                _cache.move_to_end(key)
                return ds
    ds = make()
    if use_cache:
        with _cache_lock:
            _cache[key] = ds
            while len(_cache) > CACHE_SIZE:
                _cache.popitem(last=False)
    return ds


def _bundled_names() -> list[str]:
    root = Path(SAMPLE_DATA_DIR)
    if not root.is_dir():
        return []
    names = [p.name for p in root.iterdir() if p.is_dir() and not is_ignored(p.name)]
    return sorted(names, key=lambda n: (BUNDLED_ORDER.index(n) if n in BUNDLED_ORDER else len(BUNDLED_ORDER), n))


def _allowed_roots() -> tuple[Path, ...] | None:
    """Where a dashboard process may read data (None: anywhere, as for the CLI); see :mod:`core.base.limits`."""
    if not serving():
        return None
    return (*data_roots(), Path(SAMPLE_DATA_DIR).resolve(), uploads_dir(), challenges_dir())


def _on_disk(cache_dir, source_key: tuple, what_was_read, build: Callable[..., Dataset]) -> Callable[[], Dataset]:
    """``build()`` in memory without a cache folder; else the decoded images from the cache, or decoded into it."""
    if cache_dir is None:
        return build
    cache = ImageCache(cache_dir)
    slot, stamp = cache.names(source_key, what_was_read)

    def make() -> Dataset:
        kept = cache.get(slot, stamp)
        ds = under_limits(kept) if kept is not None else None  # limits apply to every read, kept or not
        return ds if ds is not None else build(disk=(cache, slot, stamp))

    return make


def load_dataset(
    source: str | Path,
    image_size: int = 64,
    channels: int = 3,
    *,
    use_cache: bool = True,
    cache_dir: str | Path | None = None,
) -> Dataset:
    """Load a dataset of class folders as uint8 arrays.

    Every image is converted to RGB (or grayscale when ``channels=1``) and
    resized to ``image_size`` x ``image_size`` with a Lanczos filter. Files
    that cannot be used are listed in ``Dataset.skipped``. Results are cached
    in memory, keyed by the resolved path, the size, the channels, the
    files' names, sizes and modification times (a zip's size and time) and
    ``cache_dir``.

    Args:
        source: a bundled dataset name (see :func:`bundled_datasets`), a folder
            with one sub-folder per class, or a ``.zip`` of class folders (at
            its root or inside one top-level folder). A ``classes.txt`` at the
            dataset's top fixes the label order; otherwise classes are sorted.
        image_size: height = width of the loaded images, in pixels.
        channels: 3 for RGB, 1 for grayscale.
        use_cache: return the in-memory copy when nothing changed.
        cache_dir: the run store's cache folder (``RunStore.cache_dir``): the
            decoded images are kept there as a uint8 ``.npy`` and memory-mapped
            on later loads, in this process or another (:mod:`core.data.imagecache`);
            None decodes into memory.

    Returns:
        A :class:`Dataset` whose arrays are read-only (they may be shared); with
        ``cache_dir``, its images are a read-only memory map.

    Raises:
        DataError: the source does not exist or cannot be used as a dataset.
    """
    check_image_args("load_dataset", image_size, channels)
    text = os.fspath(source)
    name = text.rstrip("/" + os.sep)  # "thin_sections/" is the bundled name too
    if name and "/" not in name and os.sep not in name and name not in (".", ".."):
        bundled = Path(SAMPLE_DATA_DIR) / name
    else:
        bundled = None
    if bundled is not None and bundled.is_dir():
        path, label = bundled.resolve(), name
    else:
        path = Path(text).expanduser()
        allowed = _allowed_roots()
        if allowed is not None and text and not inside(path, allowed):
            raise refusal(text)  # before looking: a refused path's existence is not told either
        if not text or not path.exists():
            names = _bundled_names()
            have = (
                f"Bundled datasets: {', '.join(names)}."
                if names
                else f"No bundled datasets are installed in '{SAMPLE_DATA_DIR}'."
            )
            raise DataError(
                f"No dataset at '{text}': that path does not exist and it is not a bundled dataset name. {have} "
                "Pass a bundled name, a folder with one sub-folder per class, or a .zip of class folders."
            )
        check_kind(path, "a folder of class folders or a .zip of them", folder=True)  # before any read
        path = path.resolve()
        label = str(path)

    where = None if cache_dir is None else os.fspath(cache_dir)  # kept in memory per cache: a store's own file
    if path.is_dir():
        roots = _allowed_roots()
        items, dirs, problems, sig = scan_folder(path, roots)
        key = ("dir", str(path), label, image_size, channels, sig, roots, where)
        build = partial(_build, _Read("dir", label, image_size, channels), items, dirs, problems)
        # On disk, what was read is the files read and the ones skipped, not the roots: the dashboard (roots) and
        # the CLI (none) reading the same files share one cache file instead of deleting each other's by turns.
        read = (sig, [p.to_dict() for p in problems])
        return _cached(key, _on_disk(cache_dir, key[:5], read, build), use_cache)

    if not zipfile.is_zipfile(path):
        if path.suffix.lower() == ".zip":
            raise DataError(
                f"'{label}' is not a valid zip archive (it may be damaged or only partly downloaded). "
                "Re-create the zip from a folder with one sub-folder per class."
            )
        raise DataError(
            f"'{label}' is a file but not a zip archive. load_dataset needs a folder with one sub-folder per "
            "class, or a .zip of such folders."
        )
    st = path.stat()
    key = ("zip", str(path), label, image_size, channels, st.st_size, st.st_mtime_ns, where)
    build = partial(_load_zip, path, _Read("zip", label, image_size, channels))
    return _cached(key, _on_disk(cache_dir, key[:5], key[5:7], build), use_cache)


def load_zip_bytes(
    data: bytes,
    name: str = "upload.zip",
    image_size: int = 64,
    channels: int = 3,
    *,
    cache_dir: str | Path | None = None,
) -> Dataset:
    """Load an uploaded zip of class folders from memory (cached by the bytes' SHA-256).

    Same rules and errors as :func:`load_dataset`; ``Dataset.source`` is ``name``.
    """
    check_image_args("load_zip_bytes", image_size, channels)
    if not data:
        raise DataError(f"The uploaded file '{name}' is empty (0 bytes). Upload a .zip of class folders.")
    key = ("bytes", hashlib.sha256(data).hexdigest(), name, image_size, channels)
    buf = io.BytesIO(data)
    if not zipfile.is_zipfile(buf):
        raise DataError(f"The uploaded file '{name}' is not a zip archive. Upload a .zip of class folders.")
    build = partial(_load_zip, io.BytesIO(data), _Read("zip", name, image_size, channels))
    where = None if cache_dir is None else os.fspath(cache_dir)  # kept in memory per cache, as load_dataset's
    return _cached((*key, where), _on_disk(cache_dir, key, key[1], build), True)


def _load_zip(file: Path | BinaryIO, read: _Read, disk=None) -> Dataset:
    try:
        with zipfile.ZipFile(file) as zf:
            items, dirs = scan_zip(zf, read.label)
            return _build(read, items, dirs, [], disk)
    except zipfile.BadZipFile as e:
        raise DataError(
            f"'{read.label}' is not a valid zip archive ({e}). Re-create the zip from the dataset folder."
        ) from None


def _readme_title(folder: Path) -> str | None:
    for name in ("README.md", "readme.md", "README.txt", "README"):
        p = folder / name
        if p.is_file():
            try:
                for line in p.read_text(encoding="utf-8-sig", errors="replace").splitlines():
                    if line.lstrip().startswith("#"):
                        title = line.strip().lstrip("#").strip()
                        if title:
                            return title
            except OSError:
                return None
            return None
    return None


def bundled_datasets() -> list[BundledInfo]:
    """The datasets in ``SAMPLE_DATA_DIR``, described from their files without decoding.

    ``n_images`` counts files with an image extension in the class folders;
    :func:`load_dataset` may still skip some of them.
    """
    out = []
    for name in _bundled_names():
        folder = Path(SAMPLE_DATA_DIR) / name
        class_dirs = sorted(p.name for p in folder.iterdir() if p.is_dir() and not is_ignored(p.name))
        if not class_dirs:
            continue
        classes = class_dirs
        ctxt = folder / "classes.txt"
        if ctxt.is_file():
            listed = [ln.strip() for ln in ctxt.read_text(encoding="utf-8-sig").splitlines()]
            listed = [n for n in listed if n and not n.startswith("#")]
            if sorted(listed) == class_dirs:
                classes = listed
        counts = [
            sum(has_image_ext(f) for _, _, fs in os.walk(folder / c) for f in fs if not is_ignored(f)) for c in classes
        ]
        title = _readme_title(folder) or name.replace("_", " ").capitalize()
        out.append(BundledInfo(name, folder, title, sum(counts), classes, counts))
    return out
