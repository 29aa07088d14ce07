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
with the dataset as a whole raise :class:`DataError` saying what was found
and what is needed.

Importing this module is cheap: no TensorFlow, no Streamlit; scikit-learn is
imported only when data is split.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import stat
import struct
import threading
import zipfile
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from core.config import LOSSES

SAMPLE_DATA_DIR = Path(__file__).resolve().parent.parent / "sample_data"
# The bundled datasets in course order; other folders follow alphabetically.
BUNDLED_ORDER = ("thin_sections", "seismic_facies", "drill_core")

# Limits on what a source may hold (read at call time, so tests can lower them).
MAX_ZIP_BYTES = 1 << 30  # total uncompressed size of a zip
MAX_MEMBER_BYTES = 256 << 20  # one file inside a zip
MAX_FILES = 50_000  # files and folders in a zip or a dataset folder
CACHE_SIZE = 8  # datasets kept in memory by load_dataset

IMAGE_SIZE_RANGE = (8, 512)  # as ModelConfig.input_size
# Formats Pillow may decode. An allow-list: some of Pillow's plugins (EPS) run
# external programs, and a class folder may hold anything a student put there.
PIL_FORMATS = ("PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP", "PPM")
IMAGE_EXTENSIONS = frozenset(
    {".png", ".jpg", ".jpeg", ".jpe", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm", ".pnm"}
)
_FORMATS_TEXT = "PNG, JPEG, TIFF, BMP, GIF, WebP or PPM"
_RESAMPLE = Image.Resampling.LANCZOS


class DataError(ValueError):
    """A dataset cannot be used: the message says what was found and what is needed."""


@dataclass(frozen=True)
class SkippedFile:
    """A file that was not used, and why (in words a student can act on)."""

    path: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"path": self.path, "reason": self.reason}


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
    """

    images: np.ndarray
    labels: np.ndarray
    class_names: list[str]
    skipped: list[SkippedFile]
    source: str
    fingerprint: str
    files: list[str]

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


@dataclass(frozen=True)
class BundledInfo:
    """A dataset shipped in ``sample_data/``, described without decoding it."""

    name: str
    path: Path
    title: str
    n_images: int
    classes: list[str]
    counts: list[int] = field(default_factory=list)


# --------------------------------------------------------------------------- images


class _Unreadable(Exception):
    """An image file that cannot be used; the message is the reason shown to the user."""


def _zero_size_hint(head: bytes) -> str | None:
    """Pillow refuses images with a zero width or height; read the header to say so."""
    dims = None
    if head[:8] == b"\x89PNG\r\n\x1a\n" and len(head) >= 24:
        dims = struct.unpack(">II", head[16:24])
    elif head[:6] in (b"GIF87a", b"GIF89a") and len(head) >= 10:
        dims = struct.unpack("<HH", head[6:10])
    elif head[:2] == b"BM" and len(head) >= 26:
        dims = struct.unpack("<ii", head[18:26])
    if dims is not None and 0 in dims:
        return f"the image has zero size ({dims[0]} x {abs(dims[1])} pixels)"
    return None


def _high_depth_to_uint8(im: Image.Image, size: int) -> np.ndarray:
    """16-bit, 32-bit integer and float images -> 8-bit grayscale (H, W).

    Resized in float so no precision is lost before the final rounding. The
    scale follows the pixel format, not each image's own range, so relative
    brightness stays comparable across images: 16-bit 0..65535 maps to 0..255.
    For 32-bit integer and float images the range is guessed from the values:
    [0, 1] floats, 8-bit or 16-bit values, otherwise stretched min..max.
    """
    lo, hi = im.getextrema()
    f = im.convert("F")
    if f.size != (size, size):
        f = f.resize((size, size), _RESAMPLE, reducing_gap=3.0)
    a = np.asarray(f, dtype=np.float32)
    if im.mode.startswith("I;16"):
        a = a / 257.0
    elif im.mode == "F" and lo >= 0 and hi <= 1.0:
        a = a * 255.0
    elif lo >= 0 and hi <= 255:
        pass
    elif lo >= 0 and hi <= 65535:
        a = a / 257.0
    else:
        a = (a - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(a)
    return np.clip(np.rint(a), 0, 255).astype(np.uint8)


def _decode(fp: str | BinaryIO, image_size: int, channels: int) -> np.ndarray:
    """Decode one image to uint8 (image_size, image_size, channels); raise _Unreadable."""
    try:
        with Image.open(fp, formats=PIL_FORMATS) as im:
            w, h = im.size
            if w <= 0 or h <= 0:
                raise _Unreadable(f"the image has zero size ({w} x {h} pixels)")
            limit = Image.MAX_IMAGE_PIXELS
            if limit and w * h > limit:
                raise _Unreadable(
                    f"the image is too large to read ({w} x {h} = {w * h:,} pixels; the limit is {limit:,})"
                )
            if im.format in ("JPEG", "MPO"):
                # Let libjpeg decode at 1/2, 1/4 or 1/8 scale when the image is much larger.
                im.draft("L" if channels == 1 else "RGB", (image_size, image_size))
            im.load()  # decode now, so truncated files fail here and not later
            if im.getexif().get(0x0112, 1) != 1:  # EXIF orientation: show it the way a viewer does
                im = ImageOps.exif_transpose(im)
            if im.mode.startswith("I") or im.mode == "F":
                a = _high_depth_to_uint8(im, image_size)
                return a[:, :, None] if channels == 1 else np.repeat(a[:, :, None], 3, axis=2)
            if im.mode in ("P", "PA"):
                # Palette transparency must go through RGBA; like Keras' load_img, alpha is then dropped.
                im = im.convert("RGBA" if im.mode == "PA" or "transparency" in im.info else "RGB")
            target = "L" if channels == 1 else "RGB"
            if im.mode != target:
                im = im.convert(target)
            if im.size != (image_size, image_size):
                im = im.resize((image_size, image_size), _RESAMPLE, reducing_gap=3.0)
            a = np.asarray(im, dtype=np.uint8)
            return a[:, :, None] if channels == 1 else a
    except _Unreadable:
        raise
    except UnidentifiedImageError:
        raise _Unreadable(
            "not an image Pillow can read (damaged, or another kind of file with an image name)"
        ) from None
    except Image.DecompressionBombError as e:
        raise _Unreadable(f"the image is too large to read ({e})") from None
    except OSError as e:
        if "truncated" in str(e):
            raise _Unreadable(
                "the image is truncated: the file ends early (an interrupted copy or download?)"
            ) from None
        raise _Unreadable(f"the image could not be read ({e})") from None
    except Exception as e:  # noqa: BLE001 - untrusted files make decoders raise anything
        raise _Unreadable(f"the image could not be decoded ({type(e).__name__}: {e})") from None


def read_image_bytes(data: bytes, image_size: int = 64, channels: int = 3, name: str = "") -> np.ndarray:
    """Decode one uploaded image the way :func:`load_dataset` decodes a dataset's images.

    Args:
        data: the file's bytes.
        image_size: height = width of the result, in pixels.
        channels: 3 for RGB, 1 for grayscale.
        name: the file's name, used in error messages.

    Returns:
        uint8 array (image_size, image_size, channels).

    Raises:
        DataError: the bytes are empty or are not a readable image.
    """
    _check_image_args("read_image_bytes", image_size, channels)
    what = f"The uploaded file '{name}'" if name else "The uploaded file"
    if not data:
        raise DataError(f"{what} is empty (0 bytes). Upload a {_FORMATS_TEXT} image.")
    try:
        return _decode(io.BytesIO(data), image_size, channels)
    except _Unreadable as e:
        reason = _zero_size_hint(bytes(data[:32])) or str(e)
        raise DataError(f"{what} cannot be used: {reason}. Upload a {_FORMATS_TEXT} image.") from None


def _check_image_args(owner: str, image_size: Any, channels: Any) -> None:
    lo, hi = IMAGE_SIZE_RANGE
    if isinstance(image_size, bool) or not isinstance(image_size, int) or not lo <= image_size <= hi:
        raise DataError(
            f"The 'image_size' parameter of {owner} must be an integer in [{lo}, {hi}]. Got {image_size!r} instead."
        )
    if channels not in (1, 3) or isinstance(channels, bool):
        raise DataError(
            f"The 'channels' parameter of {owner} must be 1 (grayscale) or 3 (RGB). Got {channels!r} instead."
        )


# --------------------------------------------------------------------------- sources


@dataclass
class _Item:
    """One file of a source: where it is, and how to open it (or why it cannot be used)."""

    rel: str  # posix path relative to the source root
    size: int
    opener: Callable[[], str | BinaryIO] | None = None
    problem: str | None = None  # set when the file cannot be read at all


def _ignored(name: str) -> bool:
    """Dotfiles and macOS zip debris: ignored without a mention."""
    return name.startswith(".") or name == "__MACOSX" or name == "__pycache__"


def _is_metadata(name: str) -> bool:
    """Files at a dataset's top that describe it and are not data."""
    low = name.lower()
    return low == "classes.txt" or low.startswith(("readme", "license", "licence"))


def _has_image_ext(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def _too_many(where: str) -> DataError:
    return DataError(
        f"{where} holds more than {MAX_FILES:,} files and folders, more than this app reads. "
        "Point it at a single dataset folder (one sub-folder per class)."
    )


def _scan_folder(root: Path) -> tuple[list[_Item], list[str], list[SkippedFile], str]:
    """All files and folders under root (following links, once), and a signature of them."""
    items: list[_Item] = []
    dirs: list[str] = []
    problems: list[SkippedFile] = []
    sig: list[str] = []
    visited: set[tuple[int, int]] = set()
    stack = [("", str(root))]
    while stack:
        rel, full = stack.pop()
        try:
            st = os.stat(full)
            if (st.st_dev, st.st_ino) in visited:
                problems.append(SkippedFile(rel + "/", "a link back to a folder already read (a loop); not read again"))
                continue
            visited.add((st.st_dev, st.st_ino))
            with os.scandir(full) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as e:
            problems.append(SkippedFile(rel + "/", f"the folder could not be read ({e.strerror or e})"))
            continue
        for e in entries:
            if _ignored(e.name):
                continue
            r = f"{rel}/{e.name}" if rel else e.name
            if len(items) + len(dirs) >= MAX_FILES:
                raise _too_many(f"The folder '{root}'")
            try:
                st = e.stat()  # follows links
            except OSError:
                problems.append(SkippedFile(r, "a broken link or a file that cannot be read"))
                continue
            if stat.S_ISDIR(st.st_mode):
                dirs.append(r)
                sig.append(f"d\t{r}")
                stack.append((r, e.path))
            elif stat.S_ISREG(st.st_mode):
                items.append(_Item(r, st.st_size, opener=lambda p=e.path: p))
                sig.append(f"f\t{r}\t{st.st_size}\t{st.st_mtime_ns}")
            else:
                problems.append(SkippedFile(r, "not a regular file"))
    sig.sort()
    return items, dirs, problems, hashlib.sha256("\n".join(sig).encode()).hexdigest()


def _scan_zip(zf: zipfile.ZipFile, label: str) -> tuple[list[_Item], list[str]]:
    """The zip's members as items, without extracting anything; guards against zip bombs."""
    infos = zf.infolist()
    if len(infos) > MAX_FILES:
        raise DataError(
            f"The zip '{label}' has {len(infos):,} entries, more than the {MAX_FILES:,} this app reads. "
            "Use a zip of one dataset: one folder per class with the images inside."
        )
    total = sum(i.file_size for i in infos)
    if total > MAX_ZIP_BYTES:
        raise DataError(
            f"The zip '{label}' would unpack to {_bytes_text(total)}, more than the {_bytes_text(MAX_ZIP_BYTES)} "
            "this app reads. Use fewer or smaller images (64 x 64 pixel PNGs are plenty for this course)."
        )
    items: list[_Item] = []
    dirs: set[str] = set()
    for info in infos:
        name = info.filename.replace("\\", "/")
        while name.startswith("./"):
            name = name[2:]
        parts = [p for p in name.split("/") if p and p != "."]
        if not parts:
            continue
        rel = "/".join(parts)
        if name.startswith("/") or ".." in parts or ":" in parts[0]:
            items.append(_Item(rel, info.file_size, problem="an unsafe path inside the zip (absolute, or with '..')"))
            continue
        if any(_ignored(p) for p in parts):
            continue
        for k in range(1, len(parts)):
            dirs.add("/".join(parts[:k]))
        if info.is_dir():
            dirs.add(rel)
        elif info.flag_bits & 0x1:
            items.append(_Item(rel, info.file_size, problem="password-protected; encrypted zips cannot be read"))
        elif info.file_size > MAX_MEMBER_BYTES:
            why = f"too large ({_bytes_text(info.file_size)}; the limit is {_bytes_text(MAX_MEMBER_BYTES)})"
            items.append(_Item(rel, info.file_size, problem=why))
        else:
            items.append(_Item(rel, info.file_size, opener=lambda i=info: io.BytesIO(zf.read(i))))
    return items, sorted(dirs)


def _bytes_text(n: int) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} bytes"


def _read_classes_txt(item: _Item) -> list[str]:
    try:
        src = item.opener()  # type: ignore[misc]
        raw = Path(src).read_bytes() if isinstance(src, str) else src.read()
        text = raw.decode("utf-8-sig")
    except (OSError, UnicodeDecodeError, zipfile.BadZipFile) as e:
        raise DataError(
            f"'{item.rel}' could not be read ({e}). Save it as UTF-8 text, one class name per line."
        ) from None
    names = [ln.strip() for ln in text.splitlines()]
    return [n for n in names if n and not n.startswith("#")]


def _under(rel: str, prefix: str) -> str | None:
    """rel relative to the folder prefix ("" is the root), or None when it is not inside it."""
    if not prefix:
        return rel
    return rel[len(prefix) + 1 :] if rel.startswith(prefix + "/") else None


def _children(items: list[_Item], dirs: list[str], prefix: str) -> tuple[list[str], list[_Item]]:
    """The folders and files directly inside prefix."""
    sub = sorted(d for d in dirs if (r := _under(d, prefix)) and "/" not in r)
    files = [i for i in items if (r := _under(i.rel, prefix)) and "/" not in r]
    return sub, files


def _dataset_root(items: list[_Item], dirs: list[str]) -> str:
    """"" when the class folders are at the top; the folder's name when they sit inside one
    top-level folder (what compressing the dataset folder itself gives)."""
    top_dirs, top_files = _children(items, dirs, "")
    if len(top_dirs) == 1 and not any(_has_image_ext(i.rel) for i in top_files):
        inner_dirs, inner_files = _children(items, dirs, top_dirs[0])
        if inner_dirs and not any(_has_image_ext(i.rel) for i in inner_files):
            return top_dirs[0]
    return ""


def _no_class_folders(items: list[_Item], top_files: list[_Item], where: str, kind: str) -> DataError:
    images = [i.rel for i in top_files if _has_image_ext(i.rel)]
    if images:
        return DataError(
            f"{where} has {len(images)} image(s) ({_list_text(images)}) but no class sub-folders. "
            "Put the images of each class in their own sub-folder (e.g. sandstone/, shale/); "
            "the folder names become the class names."
        )
    need = "one sub-folder per class with the images inside (e.g. shale/001.png, sandstone/001.png)"
    if kind == "zip":
        need = f"{need}, at the zip's root or inside one top-level folder"
    data_files = [i.rel for i in items if not _is_metadata(os.path.basename(i.rel))]
    if data_files:
        found = f"contains nothing usable: no class folders of images, only {_list_text(data_files)}"
    elif items:
        found = f"contains nothing usable: it holds no images, only {_list_text([i.rel for i in items])}"
    else:
        found = "contains nothing usable: it is empty" if kind == "zip" else "is empty"
    return DataError(f"{where} {found}. A dataset needs {need}.")


def _class_order(folders: list[str], classes_txt: _Item | None, where: str) -> list[str]:
    """The label order: classes.txt's when there is one (it must match the folders), else sorted."""
    if classes_txt is None:
        return sorted(folders)
    listed = _read_classes_txt(classes_txt)
    dup = sorted({n for n in listed if listed.count(n) > 1})
    missing = [n for n in listed if n not in folders]
    extra = [n for n in folders if n not in listed]
    found = []
    if dup:
        found.append(f"it lists {_list_text(dup)} more than once")
    if missing:
        found.append(f"it lists {_list_text(missing)} but there is no such folder")
    if extra:
        found.append(f"folder(s) {_list_text(extra)} are not listed")
    if found:
        raise DataError(
            f"classes.txt in {where} does not match the class folders: {'; '.join(found)}. "
            f"It must list every class folder once, one per line (folders found: {_list_text(folders)})."
        )
    return listed


def _layout(items: list[_Item], dirs: list[str], where: str, kind: str):
    """Find the class folders and sort the files into them.

    Returns (prefix, class_names, {class: [items, sorted by path]}, skipped),
    where prefix is the folder holding the class folders ("" for the top).
    """
    prefix = _dataset_root(items, dirs)
    class_dirs, top_files = _children(items, dirs, prefix)
    if not class_dirs:
        raise _no_class_folders(items, top_files, where, kind)

    meta = [i for i in top_files + _children(items, dirs, "")[1] if _is_metadata(os.path.basename(i.rel))]
    classes_txt = next((i for i in meta if os.path.basename(i.rel).lower() == "classes.txt"), None)
    names = _class_order([d.rsplit("/", 1)[-1] for d in class_dirs], classes_txt, where)

    by_class: dict[str, list[_Item]] = {n: [] for n in names}
    skipped: list[SkippedFile] = []
    for i in sorted(items, key=lambda i: i.rel):
        rest = _under(i.rel, prefix)
        if rest is not None and "/" in rest and rest.split("/", 1)[0] in by_class:
            by_class[rest.split("/", 1)[0]].append(i)
        elif i.problem:  # e.g. an unsafe path in a zip
            skipped.append(SkippedFile(i.rel, i.problem))
        elif not _is_metadata(os.path.basename(i.rel)):  # a file beside the class folders
            skipped.append(
                SkippedFile(i.rel, "not inside a class folder, so it has no label; move it into its class's folder")
            )
    if len(names) == 1:
        n_img = sum(_has_image_ext(i.rel) for i in by_class[names[0]])
        raise DataError(
            f"{where} has only one class folder ('{names[0]}', {n_img} image(s)). A classifier needs at least "
            f"2 classes: add a sub-folder for each other class next to '{names[0]}'."
        )
    return prefix, names, by_class, skipped


def _list_text(names: list[str], limit: int = 5) -> str:
    shown = ", ".join(f"'{n}'" for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _decode_items(by_class, names, image_size, channels):
    images: list[np.ndarray] = []
    labels: list[int] = []
    files: list[str] = []
    skipped: list[SkippedFile] = []
    for label, name in enumerate(names):
        for item in by_class[name]:
            reason = item.problem
            ext = os.path.splitext(item.rel)[1].lower()
            if reason is None and ext and ext not in IMAGE_EXTENSIONS:
                reason = f"not an image file ('{ext}'); only {_FORMATS_TEXT} images are used"
            if reason is None and item.size == 0:
                reason = "an empty file (0 bytes)"
            if reason is None:
                try:
                    src = item.opener()  # type: ignore[misc]
                    images.append(_decode(src, image_size, channels))
                    labels.append(label)
                    files.append(item.rel)
                    continue
                except _Unreadable as e:
                    reason = _zero_size_hint(_head(item)) or str(e)
                except zipfile.BadZipFile as e:
                    reason = f"damaged inside the zip ({e})"
                except (OSError, NotImplementedError, RuntimeError) as e:
                    reason = f"could not be read ({e})"
            skipped.append(SkippedFile(item.rel, reason))
    return images, labels, files, skipped


def _head(item: _Item) -> bytes:
    try:
        src = item.opener()  # type: ignore[misc]
        if isinstance(src, str):
            with open(src, "rb") as f:
                return f.read(32)
        return src.read(32)
    except Exception:  # noqa: BLE001 - only used to improve a message
        return b""


def _fingerprint(class_names: list[str], labels: np.ndarray, images: np.ndarray) -> str:
    h = hashlib.sha256()
    h.update(json.dumps({"v": 1, "classes": class_names, "shape": list(images.shape)}).encode())
    h.update(labels.astype("<i8").tobytes())
    h.update(np.ascontiguousarray(images).tobytes())
    return h.hexdigest()


def _build(items, dirs, extra_skipped, where, kind, source, image_size, channels) -> Dataset:
    prefix, names, by_class, skipped = _layout(items, dirs, where, kind)
    images, labels, files, bad = _decode_items(by_class, names, image_size, channels)
    skipped = sorted(extra_skipped + skipped + bad, key=lambda s: s.path)
    lab = np.asarray(labels, dtype=np.int64)
    counts = np.bincount(lab, minlength=len(names))
    short = [(n, int(c)) for n, c in zip(names, counts) if c < 2]
    if short:
        parts = []
        for n, c in short:
            s = f"Class '{n}' has {c} image{'' if c == 1 else 's'}"
            folder = f"{prefix}/{n}/" if prefix else f"{n}/"
            lost = [k for k in skipped if k.path.startswith(folder)]
            if lost:
                s += f" ({len(lost)} file(s) in it were skipped, e.g. '{lost[0].path}': {lost[0].reason})"
            parts.append(s)
        fix = " or ".join(f"'{n}'" for n, _ in short)
        raise DataError(
            "; ".join(parts) + "; every class needs at least 2 so it can appear in both the training and the test "
            f"split. Add images to {fix} or remove the folder."
        )
    arr = np.stack(images) if images else np.zeros((0, image_size, image_size, channels), np.uint8)
    arr.flags.writeable = False
    lab.flags.writeable = False
    return Dataset(arr, lab, list(names), skipped, source, _fingerprint(names, lab, arr), files)


# --------------------------------------------------------------------------- loading + cache

_cache: OrderedDict[tuple, Dataset] = OrderedDict()
_cache_lock = threading.Lock()


def clear_cache() -> None:
    """Forget every dataset :func:`load_dataset` holds in memory."""
    with _cache_lock:
        _cache.clear()


def _cached(key: tuple, make: Callable[[], Dataset], use_cache: bool) -> Dataset:
    if use_cache:
        with _cache_lock:
            if key in _cache:
                _cache.move_to_end(key)
                return _cache[key]
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
    names = [p.name for p in root.iterdir() if p.is_dir() and not _ignored(p.name)]
    return sorted(names, key=lambda n: (BUNDLED_ORDER.index(n) if n in BUNDLED_ORDER else len(BUNDLED_ORDER), n))


def load_dataset(source: str | Path, image_size: int = 64, channels: int = 3, *, use_cache: bool = True) -> Dataset:
    """Load a dataset of class folders as uint8 arrays.

    Every image is converted to RGB (or grayscale when ``channels=1``) and
    resized to ``image_size`` x ``image_size`` with a Lanczos filter. Files
    that cannot be used are listed in ``Dataset.skipped``. Results are cached
    in memory, keyed by the resolved path, the size, the channels and the
    files' names, sizes and modification times (a zip's size and time).

    Args:
        source: a bundled dataset name (see :func:`bundled_datasets`), a folder
            with one sub-folder per class, or a ``.zip`` of class folders (at
            its root or inside one top-level folder). A ``classes.txt`` at the
            dataset's top fixes the label order; otherwise classes are sorted.
        image_size: height = width of the loaded images, in pixels.
        channels: 3 for RGB, 1 for grayscale.
        use_cache: return the in-memory copy when nothing changed.

    Returns:
        A :class:`Dataset` whose arrays are read-only (they may be shared).

    Raises:
        DataError: the source does not exist or cannot be used as a dataset.
    """
    _check_image_args("load_dataset", image_size, channels)
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
        path = path.resolve()
        label = str(path)

    if path.is_dir():
        items, dirs, problems, sig = _scan_folder(path)
        key = ("dir", str(path), label, image_size, channels, sig)
        where = f"The folder '{label}'"
        return _cached(key, lambda: _build(items, dirs, problems, where, "dir", label, image_size, channels), use_cache)

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
    key = ("zip", str(path), label, image_size, channels, st.st_size, st.st_mtime_ns)
    return _cached(key, lambda: _load_zip(path, label, image_size, channels), use_cache)


def load_zip_bytes(data: bytes, name: str = "upload.zip", image_size: int = 64, channels: int = 3) -> Dataset:
    """Load an uploaded zip of class folders from memory (cached by the bytes' SHA-256).

    Same rules and errors as :func:`load_dataset`; ``Dataset.source`` is ``name``.
    """
    _check_image_args("load_zip_bytes", image_size, channels)
    if not data:
        raise DataError(f"The uploaded file '{name}' is empty (0 bytes). Upload a .zip of class folders.")
    key = ("bytes", hashlib.sha256(data).hexdigest(), name, image_size, channels)
    buf = io.BytesIO(data)
    if not zipfile.is_zipfile(buf):
        raise DataError(f"The uploaded file '{name}' is not a zip archive. Upload a .zip of class folders.")
    return _cached(key, lambda: _load_zip(io.BytesIO(data), name, image_size, channels), True)


def _load_zip(file: Path | BinaryIO, label: str, image_size: int, channels: int) -> Dataset:
    try:
        with zipfile.ZipFile(file) as zf:
            items, dirs = _scan_zip(zf, label)
            return _build(items, dirs, [], f"The zip '{label}'", "zip", label, image_size, channels)
    except zipfile.BadZipFile as e:
        raise DataError(
            f"'{label}' is not a valid zip archive ({e}). Re-create the zip from the dataset folder."
        ) from None


# --------------------------------------------------------------------------- describing


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
        class_dirs = sorted(p.name for p in folder.iterdir() if p.is_dir() and not _ignored(p.name))
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
            sum(_has_image_ext(f) for _, _, fs in os.walk(folder / c) for f in fs if not _ignored(f)) for c in classes
        ]
        title = _readme_title(folder) or name.replace("_", " ").capitalize()
        out.append(BundledInfo(name, folder, title, sum(counts), classes, counts))
    return out


def dataset_summary(ds: Dataset) -> dict[str, Any]:
    """A JSON-friendly description of a dataset (no pixels)."""
    return {
        "source": ds.source,
        "fingerprint": ds.fingerprint,
        "n_images": len(ds),
        "n_classes": len(ds.class_names),
        "classes": list(ds.class_names),
        "counts": dict(zip(ds.class_names, ds.counts)),
        "image_shape": list(ds.image_shape),
        "n_skipped": len(ds.skipped),
        "skipped": [s.to_dict() for s in ds.skipped],
    }


# --------------------------------------------------------------------------- preparing


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
    """Arrays ready for ``model.fit``, and how they were made.

    ``y_*`` are one-hot float32 (loss="categorical") or int64 (loss="sparse");
    ``y_*_int`` are always the integer labels. ``*_index`` index the dataset
    the arrays came from. ``class_counts`` maps "train", "val", "test" to the
    number of images per class.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
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

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(int(d) for d in self.x_train.shape[1:])  # type: ignore[return-value]

    def to_dict(self) -> dict[str, Any]:
        """Everything but the arrays, JSON-friendly (for the CLI and the UI)."""
        return _jsonable({
            "class_names": self.class_names,
            "loss": self.loss,
            "input_shape": self.input_shape,
            "sizes": {"train": len(self.x_train), "val": len(self.x_val), "test": len(self.x_test)},
            "class_counts": self.class_counts,
            "params": {"seed": self.seed, "test_size": self.test_size, "val_split": self.val_split,
                       "train_fraction": self.train_fraction},
            "steps": [s.to_dict() for s in self.steps],
        })

    def __repr__(self) -> str:
        return (
            f"PreparedData(loss={self.loss!r}, train={len(self.x_train)}, val={len(self.x_val)}, "
            f"test={len(self.x_test)}, classes={self.class_names})"
        )


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

    1. pixels / 255 -> float32 in [0, 1];
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

    def scale(idx: np.ndarray) -> np.ndarray:
        return np.divide(images[idx], np.float32(255.0), dtype=np.float32)  # = x.astype("float32") / 255.0

    x_train, x_val, x_test = scale(train_idx), scale(val_idx), scale(test_idx)
    eye = np.eye(k, dtype=np.float32)

    def enc(idx: np.ndarray) -> np.ndarray:
        return eye[labels[idx]] if loss == "categorical" else labels[idx].copy()

    def per_class(idx: np.ndarray) -> list[int]:
        return np.bincount(labels[idx], minlength=k).tolist()

    class_counts = {"train": per_class(train_idx), "val": per_class(val_idx), "test": per_class(test_idx)}
    xs = [x for x in (x_train, x_val, x_test) if x.size]
    steps = _steps(images, labels, names, loss, eye, xs, test_size, val_split, seed, train_fraction,
                   train_full, test_idx, before_sub, train_idx, val_idx, per_class)
    return PreparedData(
        x_train, enc(train_idx), x_val, enc(val_idx), x_test, enc(test_idx),
        labels[train_idx].copy(), labels[val_idx].copy(), labels[test_idx].copy(),
        train_idx, val_idx, test_idx, names, loss, steps, class_counts,
        seed=int(seed), test_size=float(test_size), val_split=float(val_split), train_fraction=float(train_fraction),
        dataset=ds,
    )  # fmt: skip


def _steps(images, labels, names, loss, eye, xs, test_size, val_split, seed, train_fraction,
           train_full, test_idx, before_sub, train_idx, val_idx, per_class) -> list[PrepStep]:  # fmt: skip
    n, k = len(labels), len(names)
    shape = list(images.shape)
    lo, hi = (int(images.min()), int(images.max())) if images.size else (0, 0)
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
            {"shape": shape, "dtype": "float32", "min": float(min(x.min() for x in xs)),
             "max": float(max(x.max() for x in xs))},
            "scale",
        ),  # fmt: skip
    ]
    label_before = {"shape": [n], "dtype": "int64", "min": int(labels.min()), "max": int(labels.max()),
                    "example_class": names[ex], "example_label": ex}  # fmt: skip
    if loss == "categorical":
        steps.append(PrepStep(
            "Encode labels (one-hot)",
            "Turn each class number into a vector with a 1 in that class's position and 0 elsewhere, "
            "the form categorical_crossentropy compares with the softmax output.",
            label_before,
            {"shape": [n, k], "dtype": "float32", "min": 0.0, "max": 1.0,
             "example_class": names[ex], "example_label": eye[ex].astype(int).tolist()},
            "encode",
        ))  # fmt: skip
    else:
        steps.append(PrepStep(
            "Keep integer labels (sparse)",
            "sparse_categorical_crossentropy takes the class number itself (0, 1, 2, ...), "
            "so the labels stay integers.",
            label_before,
            dict(label_before),
            "encode",
        ))  # fmt: skip
    steps.append(PrepStep(
        "Stratified train/test split",
        f"Hold back {test_size:.0%} of the images for the final test, keeping each class's share the same in "
        "both parts (stratify), so no class is missing from the test.",
        {"images": n, "per_class": per_class(np.arange(n))},
        {"train": len(train_full), "test": len(test_idx), "train_per_class": per_class(train_full),
         "test_per_class": per_class(test_idx), "test_size": test_size, "seed": seed},
        "split_test",
    ))  # fmt: skip
    steps.append(PrepStep(
        "Validation split",
        f"Set aside {val_split:.0%} of the training part to check the model after every epoch; "
        "the model never learns from these images, so they show overfitting.",
        {"train": len(train_full), "train_per_class": per_class(train_full)},
        {"train": len(before_sub), "val": len(val_idx), "train_per_class": per_class(before_sub),
         "val_per_class": per_class(val_idx), "val_split": val_split, "seed": seed},
        "split_val",
    ))  # fmt: skip
    if train_fraction < 1:
        steps.append(PrepStep(
            "Use a fraction of the training images",
            f"Keep only {train_fraction:.0%} of the training images (at least one per class) to see what "
            "training on little data does; validation and test stay the same.",
            {"train": len(before_sub), "train_per_class": per_class(before_sub)},
            {"train": len(train_idx), "train_per_class": per_class(train_idx), "train_fraction": train_fraction},
            "subsample",
        ))  # fmt: skip
    return steps
