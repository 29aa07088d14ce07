"""Scanning a folder or a zip into class folders, without decoding anything.

:func:`scan_folder` and :func:`scan_zip` list a source's files, each an
:class:`Item` saying how to open it (or why it cannot be used), and refuse
sources larger than the limits below. :func:`layout` then finds the class
folders (at the top, or inside one top-level folder), reads ``classes.txt``
for the label order, and lists the files that are not in a class folder as
skipped. Problems with the source as a whole raise :class:`DataError`.

The names without a leading underscore are for :mod:`core.data.loading`;
:mod:`core.data` re-exports none of them.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import unicodedata
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from core.base.limits import bytes_text as _bytes_text
from core.base.limits import inside
from core.data.dataset import SkippedFile
from core.data.errors import DataError
from core.data.images import IMAGE_EXTENSIONS

# Limits on what a source may hold (read at call time, so tests can lower them).
MAX_ZIP_BYTES = 1 << 30  # total uncompressed size of a zip
MAX_MEMBER_BYTES = 256 << 20  # one file inside a zip
MAX_FILES = 50_000  # files and folders in a zip or a dataset folder
CHUNK = 1 << 20  # a zip entry is read this many bytes at a time, never past its declared size


LINK_OUT = "a link to a place outside the folders this server shares (CNNLAB_DATA_ROOTS); not read"


@dataclass
class Item:
    """One file of a source: where it is, and how to open it (or why it cannot be used)."""

    rel: str  # posix path relative to the source root
    size: int
    opener: Callable[[], str | BinaryIO] | None = None
    problem: str | None = None  # set when the file cannot be read at all


def is_ignored(name: str) -> bool:
    """Dotfiles and macOS zip debris: ignored without a mention."""
    return name.startswith(".") or name == "__MACOSX" or name == "__pycache__"


HIDDEN_FOLDER = "a hidden folder (its name starts with '.'), so it was not read; rename it if it holds a class"


def hidden_folder(name: str) -> bool:
    """A folder whose name starts with '.' (``.git``, ``...``): not read, but mentioned (unlike zip debris)."""
    return name.startswith(".") and name not in (".", "..")


def _is_metadata(name: str) -> bool:
    """Files at a dataset's top that describe it and are not data."""
    low = name.lower()
    return low == "classes.txt" or low.startswith(("readme", "license", "licence"))


def has_image_ext(name: str) -> bool:
    """Whether the file name ends with one of :data:`IMAGE_EXTENSIONS` (any case)."""
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def _too_many(where: str) -> DataError:
    return DataError(
        f"{where} holds more than {MAX_FILES:,} files and folders, more than this app reads. "
        "Point it at a single dataset folder (one sub-folder per class)."
    )


def scan_folder(
    root: Path, roots: tuple[Path, ...] | None = None
) -> tuple[list[Item], list[str], list[SkippedFile], str]:
    """All files and folders under root (following links, once), and a signature of them.

    With ``roots`` (the dashboard's allowed folders), a link that resolves
    outside all of them is listed as skipped and not followed.
    """
    items: list[Item] = []
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
            if is_ignored(e.name):
                if hidden_folder(e.name) and e.is_dir():
                    problems.append(SkippedFile(f"{rel}/{e.name}/" if rel else f"{e.name}/", HIDDEN_FOLDER))
                continue
            r = f"{rel}/{e.name}" if rel else e.name
            if len(items) + len(dirs) >= MAX_FILES:
                raise _too_many(f"The folder '{root}'")
            if roots is not None and e.is_symlink() and not inside(e.path, roots):
                problems.append(SkippedFile(r, LINK_OUT))
                continue
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
                items.append(Item(r, st.st_size, opener=lambda p=e.path: p))
                sig.append(f"f\t{r}\t{st.st_size}\t{st.st_mtime_ns}")
            else:
                problems.append(SkippedFile(r, "not a regular file"))
    sig.sort()
    return items, dirs, problems, hashlib.sha256("\n".join(sig).encode()).hexdigest()


def scan_zip(zf: zipfile.ZipFile, label: str) -> tuple[list[Item], list[str]]:
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
    items: list[Item] = []
    dirs: set[str] = set()
    hidden_seen: set[str] = set()
    budget = _Budget(label)
    for info in infos:
        name = info.filename.replace("\\", "/")
        while name.startswith("./"):
            name = name[2:]
        parts = [p for p in name.split("/") if p and p != "."]
        if not parts:
            continue
        rel = "/".join(parts)
        if name.startswith("/") or ".." in parts or ":" in parts[0]:
            items.append(Item(rel, info.file_size, problem="an unsafe path inside the zip (absolute, or with '..')"))
            continue
        if any(is_ignored(p) for p in parts):
            k = next(k for k, p in enumerate(parts) if is_ignored(p))
            hidden = "/".join(parts[: k + 1])
            if hidden_folder(parts[k]) and (k + 1 < len(parts) or info.is_dir()) and hidden not in hidden_seen:
                hidden_seen.add(hidden)  # noted once, as a problem item (never a class folder)
                items.append(Item(hidden + "/", 0, problem=HIDDEN_FOLDER))
            continue
        for k in range(1, len(parts)):
            dirs.add("/".join(parts[:k]))
        if info.is_dir():
            dirs.add(rel)
        elif info.flag_bits & 0x1:
            items.append(Item(rel, info.file_size, problem="password-protected; encrypted zips cannot be read"))
        elif info.file_size > MAX_MEMBER_BYTES:
            why = f"too large ({_bytes_text(info.file_size)}; the limit is {_bytes_text(MAX_MEMBER_BYTES)})"
            items.append(Item(rel, info.file_size, problem=why))
        else:
            items.append(Item(rel, info.file_size, opener=lambda i=info: read_member(zf, i, budget)))
    return _once_each(items), sorted(dirs)


def _once_each(items: list[Item]) -> list[Item]:
    """A zip may hold several entries with the same name (adding a folder to a zip twice makes them): each name
    is read once, the last entry (the file unzipping leaves), and the others are listed as skipped with the reason."""
    count: dict[str, int] = {}
    for i in items:
        count[i.rel] = count.get(i.rel, 0) + 1
    if all(n == 1 for n in count.values()):
        return items
    seen: dict[str, int] = {}
    out = []
    for i in items:
        seen[i.rel] = seen.get(i.rel, 0) + 1
        n = count[i.rel]
        if seen[i.rel] == n:
            out.append(i)
        elif seen[i.rel] == 1:  # one line per name, however many copies
            why = (
                f"the zip holds {n} files with this same name; only one of them (the last, as unzipping leaves it) "
                "is used, so the image is not counted more than once"
            )
            out.append(Item(i.rel, i.size, problem=why))
    return out


class _Budget:
    """The bytes read from one zip so far, checked against :data:`MAX_ZIP_BYTES` as they arrive."""

    def __init__(self, label: str):
        self.label, self.used, self.done = label, 0, set()

    def take(self, name: str, n: int) -> None:
        if name in self.done:  # read again (e.g. for a better message): counted once
            return
        self.used += n
        if self.used > MAX_ZIP_BYTES:
            raise DataError(
                f"The zip '{self.label}' unpacks to more than the {_bytes_text(MAX_ZIP_BYTES)} this app reads. "
                "Use fewer or smaller images (64 x 64 pixel PNGs are plenty for this course)."
            )


class LyingEntry(OSError):
    """A zip entry whose contents do not match its header (more bytes than declared, or another CRC)."""


LIE = "its contents do not match the zip's header (a damaged or tampered entry, e.g. larger than it says); not read"


def read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, budget: _Budget) -> io.BytesIO:
    """One entry's bytes, read in chunks and never past its declared size (+1 byte, to notice a lie).

    A zip's headers are only a claim: an entry that says 1,000 bytes may unpack
    to gigabytes. Reading stops as soon as it passes the declared size, so
    memory stays bounded by the limits the headers were checked against.
    """
    declared = info.file_size
    out = io.BytesIO()
    try:
        with zf.open(info) as fh:
            while chunk := fh.read(min(CHUNK, declared + 1 - out.tell())):
                budget.take(info.filename, len(chunk))
                out.write(chunk)
                if out.tell() > declared:
                    raise LyingEntry(LIE)
    except zipfile.BadZipFile as e:  # Python stops at the declared size, then the CRC does not match
        raise LyingEntry(f"{LIE} ({e})") from None
    budget.done.add(info.filename)
    out.seek(0)
    return out


def _read_classes_txt(item: Item) -> list[str]:
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


def _children(items: list[Item], dirs: list[str], prefix: str) -> tuple[list[str], list[Item]]:
    """The folders and files directly inside prefix."""
    sub = sorted(d for d in dirs if (r := _under(d, prefix)) and "/" not in r)
    files = [i for i in items if (r := _under(i.rel, prefix)) and "/" not in r]
    return sub, files


def _dataset_root(items: list[Item], dirs: list[str]) -> str:
    """The folder holding the class folders: "" when they are at the top; else the deepest folder reached
    through single folders that hold no images themselves (what compressing the dataset folder, or the folder
    around it, gives: ``export/2024/rocks/<classes>``)."""
    prefix = ""
    while True:
        sub, files = _children(items, dirs, prefix)
        sub = [d for d in sub if not is_ignored(d.rsplit("/", 1)[-1])]
        if len(sub) != 1 or any(has_image_ext(i.rel) for i in files):
            return prefix
        inner_dirs, inner_files = _children(items, dirs, sub[0])
        inner_dirs = [d for d in inner_dirs if not is_ignored(d.rsplit("/", 1)[-1])]
        if not inner_dirs or any(has_image_ext(i.rel) for i in inner_files):
            return prefix  # sub[0] holds images itself: it is the one class folder (refused below as such)
        prefix = sub[0]


def _look_alike(names: list[str], where: str) -> None:
    """Refuse class folders whose names differ only in case or Unicode form ('Shale'/'shale', NFC/NFD 'café')."""
    groups: dict[str, list[str]] = {}
    for n in names:
        groups.setdefault(unicodedata.normalize("NFC", n).casefold(), []).append(n)
    clashes = [g for g in groups.values() if len(g) > 1]
    if not clashes:
        return
    pairs = []
    for g in clashes:
        if len({unicodedata.normalize("NFC", n) for n in g}) > 1:
            pairs.append(" and ".join(f"'{n}'" for n in g) + " differ only in upper/lower case")
        else:  # the same letters, one name with accented letters, the other with accents as separate marks (NFD)
            how = {True: "accents as separate marks", False: "accented letters"}
            shown = [f"'{n}' ({how[n != unicodedata.normalize('NFC', n)]})" for n in g]
            pairs.append(" and ".join(shown) + " are the same name written two ways")
    raise DataError(
        f"{where} has class folders that would look like one class: {'; '.join(pairs)}. Rename or merge them "
        "so that no two class names look the same."
    )


def _no_class_folders(items: list[Item], top_files: list[Item], where: str, kind: str) -> DataError:
    images = [i.rel for i in top_files if has_image_ext(i.rel)]
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


def _class_order(folders: list[str], classes_txt: Item | None, where: str) -> list[str]:
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


def layout(items: list[Item], dirs: list[str], where: str, kind: str):
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
    folders = [d.rsplit("/", 1)[-1] for d in class_dirs]
    _look_alike(folders, where)
    names = _class_order(folders, classes_txt, where)

    by_class: dict[str, list[Item]] = {n: [] for n in names}
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
        n_img = sum(has_image_ext(i.rel) for i in by_class[names[0]])
        raise DataError(
            f"{where} has only one class folder ('{names[0]}', {n_img} image(s)). A classifier needs at least "
            f"2 classes: add a sub-folder for each other class next to '{names[0]}'."
        )
    return prefix, names, by_class, skipped


def _list_text(names: list[str], limit: int = 5) -> str:
    shown = ", ".join(f"'{n}'" for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")
