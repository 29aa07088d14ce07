"""core.data: loading class folders and zips, bad files, the cache, and the course's data preparation."""

from __future__ import annotations

import io
import json
import os
import re
import struct
import subprocess
import sys
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.model_selection import train_test_split

import core.data as data
from core.base.errors import UserError
from core.data import DataError, Dataset, ImageSplit, load_dataset, loading, prepare_data, sources

SIZE = 16  # load size used by the tests; the files themselves are 12 x 12
CLASSES = ("granite", "sandstone", "shale")


@pytest.fixture(autouse=True)
def _fresh_cache():
    data.clear_cache()
    yield
    data.clear_cache()


# --------------------------------------------------------------------------- helpers


def _color(ci: int, i: int) -> tuple[int, int, int]:
    """A distinct colour per (class, image), so pixels tell which file an image came from."""
    return (10 + 40 * ci, 20 + 30 * i, 250 - 20 * i - 10 * ci)


def _gray(ci: int, i: int) -> int:
    return 30 + 40 * ci + 5 * i


def _save_image(path: Path, ci: int, i: int, side: int = 12) -> tuple[int, int, int]:
    """Write a uniform image in one of several modes; return the RGB colour it should load as."""
    path.parent.mkdir(parents=True, exist_ok=True)
    r, g, b = _color(ci, i)
    kind = i % 6
    if kind == 1:  # 8-bit grayscale
        v = _gray(ci, i)
        Image.new("L", (side, side), v).save(path)
        return (v, v, v)
    if kind == 2:  # RGBA: alpha is dropped
        Image.new("RGBA", (side, side), (r, g, b, 90)).save(path)
    elif kind == 3:  # palette
        Image.new("RGB", (side, side), (r, g, b)).convert("P", palette=Image.Palette.ADAPTIVE).save(path)
    elif kind == 4:  # 16-bit grayscale: 0..65535 maps to 0..255
        v = _gray(ci, i)
        Image.fromarray(np.full((side, side), v * 257, np.uint16)).save(path)
        return (v, v, v)
    elif kind == 5:  # not square: stretched to a square
        Image.new("RGB", (side + 8, side - 4), (r, g, b)).save(path)
    else:
        Image.new("RGB", (side, side), (r, g, b)).save(path)
    return (r, g, b)


def make_dataset(root: Path, classes=CLASSES, n: int = 6) -> dict[str, tuple[int, int, int]]:
    """Class folders of n images each; returns {relative path: expected RGB}."""
    expected = {}
    for ci, c in enumerate(classes):
        for i in range(n):
            expected[f"{c}/img_{i:02d}.png"] = _save_image(root / c / f"img_{i:02d}.png", ci, i)
    return expected


def zip_folder(src: Path, dest: Path, top: str | None = None, junk: bool = True) -> Path:
    """Zip src's contents (optionally inside a top-level folder), with macOS debris."""
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in sorted(src.rglob("*")):
            if p.is_file():
                rel = p.relative_to(src).as_posix()
                zf.write(p, f"{top}/{rel}" if top else rel)
        if junk:
            zf.writestr("__MACOSX/granite/._img_00.png", b"\x00\x05\x16\x07junk")
            zf.writestr(f"{top}/.DS_Store" if top else ".DS_Store", b"junk")
    return dest


def png_bytes(color=(1, 2, 3), side: int = 12, mode: str = "RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, (side, side), color).save(buf, "PNG")
    return buf.getvalue()


def truncated_png() -> bytes:
    """A noisy PNG cut in the middle of its pixel data."""
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()[:2000]


def zero_size_png() -> bytes:
    def chunk(tag: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))

    ihdr = struct.pack(">IIBBBBB", 0, 0, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def synthetic(counts, side: int = 4, seed: int = 0) -> Dataset:
    """A Dataset built from arrays, for prepare_data tests (no files)."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(counts)), counts).astype(np.int64)
    images = rng.integers(1, 255, (len(labels), side, side, 3), dtype=np.uint8)
    images[0, 0, 0, 0], images[-1, 0, 0, 0] = 0, 255
    names = [f"class{i}" for i in range(len(counts))]
    return Dataset(images, labels, names, [], "synthetic", "0" * 64, [f"{i}.png" for i in range(len(labels))])


def assert_colors(ds: Dataset, expected: dict[str, tuple[int, int, int]], prefix: str = "") -> None:
    assert sorted(ds.files) == sorted(prefix + k for k in expected)
    for img, f in zip(ds.images, ds.files, strict=True):
        want = np.array(expected[f[len(prefix) :]])
        got = img.reshape(-1, 3).astype(int)
        assert np.abs(got - want).max() <= 1, (f, got[0], want)


# --------------------------------------------------------------------------- loading


def test_folder_loads_resized_rgb_with_sorted_classes_and_aligned_files(tmp_path):
    expected = make_dataset(tmp_path / "ds")
    ds = load_dataset(tmp_path / "ds", image_size=SIZE)
    assert ds.images.shape == (18, SIZE, SIZE, 3) and ds.images.dtype == np.uint8
    assert ds.labels.dtype == np.int64
    assert ds.labels.tolist() == [0] * 6 + [1] * 6 + [2] * 6
    assert ds.class_names == ["granite", "sandstone", "shale"]
    assert ds.files[:3] == ["granite/img_00.png", "granite/img_01.png", "granite/img_02.png"]
    assert ds.files[6] == "sandstone/img_00.png"
    assert ds.skipped == []
    assert ds.source == str((tmp_path / "ds").resolve())
    assert len(ds.fingerprint) == 64 and int(ds.fingerprint, 16) >= 0
    # L, RGBA, P, 16-bit and non-square images all load as the right colour
    assert_colors(ds, expected)


def test_palette_with_transparency_and_float_tiff(tmp_path):
    make_dataset(tmp_path / "ds", n=2)
    pal = Image.new("P", (12, 12), 1)
    pal.putpalette([0, 0, 0, 120, 60, 30] + [0] * 762)
    pal.save(tmp_path / "ds" / "shale" / "pal.png", transparency=bytes([0, 255, 128]))  # per-entry alpha
    Image.fromarray(np.full((12, 12), 0.5, np.float32)).save(tmp_path / "ds" / "shale" / "float.tif")
    Image.fromarray(np.full((12, 12), 40_000, np.int32)).save(tmp_path / "ds" / "shale" / "int32.tif")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Pillow warns when palette transparency skips RGBA
        ds = load_dataset(tmp_path / "ds", image_size=SIZE)
    assert ds.skipped == []
    assert ds.images[ds.files.index("shale/pal.png")][0, 0].tolist() == [120, 60, 30]
    assert ds.images[ds.files.index("shale/float.tif")][0, 0].tolist() == [128, 128, 128]  # [0, 1] floats
    assert ds.images[ds.files.index("shale/int32.tif")][0, 0].tolist() == [156, 156, 156]  # 16-bit range


def test_channels_1_gives_grayscale(tmp_path):
    make_dataset(tmp_path / "ds", n=2)
    ds = load_dataset(tmp_path / "ds", image_size=SIZE, channels=1)
    assert ds.images.shape == (6, SIZE, SIZE, 1)
    # file 1 of each class is an L image of value _gray(ci, 1)
    assert ds.images[1].min() == ds.images[1].max() == _gray(0, 1)
    # file 0 is RGB: ITU-R 601 luma, as PIL's convert("L")
    r, g, b = _color(0, 0)
    assert abs(int(ds.images[0, 0, 0, 0]) - round(r * 0.299 + g * 0.587 + b * 0.114)) <= 1


def test_nested_folders_inside_a_class_belong_to_that_class(tmp_path):
    make_dataset(tmp_path / "ds", n=2)
    _save_image(tmp_path / "ds" / "shale" / "site_b" / "x.png", 2, 0)
    ds = load_dataset(tmp_path / "ds", image_size=SIZE)
    assert "shale/site_b/x.png" in ds.files
    assert ds.labels[ds.files.index("shale/site_b/x.png")] == 2
    assert ds.counts == [2, 2, 3]


def test_exif_orientation_is_applied(tmp_path):
    make_dataset(tmp_path / "ds", n=2)
    arr = np.zeros((12, 24, 3), np.uint8)
    arr[:, :12] = 255  # left half white, in a wide image
    im = Image.fromarray(arr)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    im.save(tmp_path / "ds" / "shale" / "rot.png", exif=exif)
    ds = load_dataset(tmp_path / "ds", image_size=SIZE)
    img = ds.images[ds.files.index("shale/rot.png")]
    # displayed upright it is tall with the white half on top
    assert img[1, SIZE // 2, 0] == 255 and img[-2, SIZE // 2, 0] == 0


def test_zip_with_classes_at_root_equals_folder(tmp_path):
    expected = make_dataset(tmp_path / "ds")
    folder = load_dataset(tmp_path / "ds", image_size=SIZE)
    z = load_dataset(zip_folder(tmp_path / "ds", tmp_path / "ds.zip"), image_size=SIZE)
    assert z.class_names == folder.class_names
    assert z.files == folder.files
    assert np.array_equal(z.images, folder.images) and np.array_equal(z.labels, folder.labels)
    assert z.fingerprint == folder.fingerprint
    assert z.skipped == []  # __MACOSX and .DS_Store are ignored silently
    assert_colors(z, expected)


def test_zip_with_one_top_level_folder(tmp_path):
    make_dataset(tmp_path / "ds")
    (tmp_path / "ds" / "classes.txt").write_text("shale\ngranite\nsandstone\n")
    folder = load_dataset(tmp_path / "ds", image_size=SIZE)
    z = load_dataset(zip_folder(tmp_path / "ds", tmp_path / "wrapped.zip", top="my_rocks"), image_size=SIZE)
    assert z.class_names == ["shale", "granite", "sandstone"]
    assert z.files[0] == "my_rocks/shale/img_00.png"
    assert z.fingerprint == folder.fingerprint
    assert z.skipped == []


def test_folder_with_one_top_level_folder_is_unwrapped_too(tmp_path):
    make_dataset(tmp_path / "outer" / "inner")
    ds = load_dataset(tmp_path / "outer", image_size=SIZE)
    assert ds.class_names == list(CLASSES)
    assert ds.files[0] == "inner/granite/img_00.png"


def test_bundled_name_and_bundled_datasets(tmp_path, monkeypatch):
    root = tmp_path / "sample_data"
    make_dataset(root / "drill_core", classes=("core_a", "core_b"), n=3)
    (root / "drill_core" / "README.md").write_text("Some intro\n\n# Drill core photos\n\ntext\n")
    make_dataset(root / "thin_sections", n=2)
    (root / "thin_sections" / "classes.txt").write_text("shale\nsandstone\ngranite\n")
    (root / "notes").mkdir()  # no class folders: not a dataset
    monkeypatch.setattr(loading, "SAMPLE_DATA_DIR", root)

    ds = load_dataset("drill_core", image_size=SIZE)
    assert ds.source == "drill_core"
    assert load_dataset("drill_core/", image_size=SIZE) is ds
    assert ds.class_names == ["core_a", "core_b"] and len(ds) == 6
    assert ds.skipped == []  # README.md at the top is not data

    infos = data.bundled_datasets()
    assert [i.name for i in infos] == ["thin_sections", "drill_core"]  # course order
    thin, drill = infos
    assert drill.title == "Drill core photos"
    assert drill.n_images == 6 and drill.counts == [3, 3] and drill.path == root / "drill_core"
    assert thin.title == "Thin sections"  # no README: from the name
    assert thin.classes == ["shale", "sandstone", "granite"] and thin.n_images == 6


def test_classes_txt_fixes_label_order(tmp_path):
    make_dataset(tmp_path / "ds")
    (tmp_path / "ds" / "classes.txt").write_text("\ufeff# label order\nshale\n\ngranite\nsandstone\n")
    ds = load_dataset(tmp_path / "ds", image_size=SIZE)
    assert ds.class_names == ["shale", "granite", "sandstone"]
    assert ds.files[0].startswith("shale/") and ds.labels[0] == 0
    assert ds.labels[ds.files.index("granite/img_00.png")] == 1
    assert ds.skipped == []


def test_classes_txt_that_does_not_match_the_folders(tmp_path):
    make_dataset(tmp_path / "ds")
    (tmp_path / "ds" / "classes.txt").write_text("shale\ngranite\nbasalt\n")
    with pytest.raises(DataError) as e:
        load_dataset(tmp_path / "ds", image_size=SIZE)
    msg = str(e.value)
    assert "'basalt' but there is no such folder" in msg and "'sandstone'" in msg and "not listed" in msg


# --------------------------------------------------------------------------- fingerprint and cache


def test_fingerprint_depends_on_content_only(tmp_path):
    make_dataset(tmp_path / "a")
    make_dataset(tmp_path / "b")
    fa = load_dataset(tmp_path / "a", image_size=SIZE).fingerprint
    assert load_dataset(tmp_path / "b", image_size=SIZE).fingerprint == fa
    assert load_dataset(tmp_path / "a", image_size=SIZE + 4).fingerprint != fa

    arr = np.asarray(Image.open(tmp_path / "b" / "shale" / "img_00.png").convert("RGB")).copy()
    arr[0, 0, 0] ^= 0x40  # one pixel
    Image.fromarray(arr).save(tmp_path / "b" / "shale" / "img_00.png")
    assert load_dataset(tmp_path / "b", image_size=SIZE).fingerprint != fa


def test_cache_returns_same_object_until_a_file_changes(tmp_path):
    make_dataset(tmp_path / "ds")
    first = load_dataset(tmp_path / "ds", image_size=SIZE)
    assert load_dataset(str(tmp_path / "ds"), image_size=SIZE) is first
    assert load_dataset(tmp_path / "ds", image_size=SIZE, use_cache=False) is not first
    assert load_dataset(tmp_path / "ds", image_size=SIZE, channels=1) is not first

    with pytest.raises(ValueError):
        first.images[0, 0, 0, 0] = 1  # read-only: callers cannot corrupt the cache
    with pytest.raises(ValueError):
        first.labels[0] = 2

    p = tmp_path / "ds" / "shale" / "img_03.png"
    st = p.stat()
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    touched = load_dataset(tmp_path / "ds", image_size=SIZE)
    assert touched is not first and touched.fingerprint == first.fingerprint

    _save_image(tmp_path / "ds" / "shale" / "img_99.png", 2, 0)
    added = load_dataset(tmp_path / "ds", image_size=SIZE)
    assert len(added) == 19 and added is not touched


def test_zip_cache_keyed_by_size_and_mtime(tmp_path):
    make_dataset(tmp_path / "ds")
    zp = zip_folder(tmp_path / "ds", tmp_path / "ds.zip")
    first = load_dataset(zp, image_size=SIZE)
    assert load_dataset(zp, image_size=SIZE) is first
    _save_image(tmp_path / "ds" / "shale" / "img_99.png", 2, 1)
    zip_folder(tmp_path / "ds", zp)
    again = load_dataset(zp, image_size=SIZE)
    assert again is not first and len(again) == 19


def test_load_zip_bytes(tmp_path):
    make_dataset(tmp_path / "ds")
    raw = zip_folder(tmp_path / "ds", tmp_path / "ds.zip").read_bytes()
    ds = data.load_zip_bytes(raw, "rocks.zip", image_size=SIZE)
    assert ds.source == "rocks.zip" and len(ds) == 18
    assert ds.fingerprint == load_dataset(tmp_path / "ds", image_size=SIZE).fingerprint
    assert data.load_zip_bytes(raw, "rocks.zip", image_size=SIZE) is ds
    with pytest.raises(DataError, match="not a zip archive"):
        data.load_zip_bytes(b"hello", "x.zip")


# --------------------------------------------------------------------------- bad files: skipped, with a reason


def test_bad_files_are_skipped_with_reasons(tmp_path):
    root = tmp_path / "ds"
    make_dataset(root)
    good = png_bytes()
    (root / "shale" / "truncated.png").write_bytes(truncated_png())
    (root / "shale" / "noise.png").write_bytes(np.random.default_rng(0).bytes(300))
    (root / "shale" / "notes.txt").write_text("collected 2021")
    (root / "granite" / "empty.png").write_bytes(b"")
    (root / "granite" / "zero.png").write_bytes(zero_size_png())
    (root / "granite" / ".DS_Store").write_bytes(b"junk")  # ignored silently
    (root / "granite" / "._img_00.png").write_bytes(b"junk")  # AppleDouble: ignored silently
    (root / "stray.png").write_bytes(good)  # beside the class folders
    (root / "README.md").write_text("# Rocks\n")  # metadata: not data, not skipped
    ds = load_dataset(root, image_size=SIZE)

    assert len(ds) == 18 and ds.counts == [6, 6, 6]
    reasons = {s.path: s.reason for s in ds.skipped}
    assert set(reasons) == {
        "shale/truncated.png",
        "shale/noise.png",
        "shale/notes.txt",
        "granite/empty.png",
        "granite/zero.png",
        "stray.png",
    }
    assert "truncated" in reasons["shale/truncated.png"]
    assert reasons["shale/noise.png"].startswith("not an image")
    assert "'.txt'" in reasons["shale/notes.txt"] and "not an image file" in reasons["shale/notes.txt"]
    assert "0 bytes" in reasons["granite/empty.png"]
    assert "zero size (0 x 0 pixels)" in reasons["granite/zero.png"]
    assert "not inside a class folder" in reasons["stray.png"]
    assert [s.path for s in ds.skipped] == sorted(reasons)  # listed in a stable order
    summary = data.dataset_summary(ds)
    assert summary["n_skipped"] == 6 and {"path": "stray.png", "reason": reasons["stray.png"]} in summary["skipped"]


def test_bad_files_in_a_zip_are_skipped_too(tmp_path):
    make_dataset(tmp_path / "ds")
    good = png_bytes()
    zp = zip_folder(tmp_path / "ds", tmp_path / "ds.zip")
    with zipfile.ZipFile(zp, "a") as zf:
        zf.writestr("shale/truncated.png", truncated_png())
        zf.writestr("shale/readme.docx", b"PK\x03\x04")
        zf.writestr("../evil.png", good)  # never extracted, never used
    ds = load_dataset(zp, image_size=SIZE)
    reasons = {s.path: s.reason for s in ds.skipped}
    assert len(ds) == 18
    assert "truncated" in reasons["shale/truncated.png"]
    assert "'.docx'" in reasons["shale/readme.docx"]
    assert "unsafe path" in reasons["../evil.png"]
    assert not (tmp_path.parent / "evil.png").exists()


def test_zip_with_duplicate_entry_names_reads_each_name_once(tmp_path):
    """A zip with every file twice (a folder added to the zip twice) holds 18 images, not 36: the last copy is
    read, the name is listed once as skipped with the reason, and no image can land in two splits."""
    expected = make_dataset(tmp_path / "ds")
    zp = zip_folder(tmp_path / "ds", tmp_path / "ds.zip", junk=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns "Duplicate name"
        with zipfile.ZipFile(zp, "a") as zf:
            for rel in sorted(expected):
                if rel == "shale/img_00.png":
                    zf.writestr(rel, png_bytes(color=(7, 8, 9)))  # the last copy differs: it is the one used
                else:
                    zf.write(tmp_path / "ds" / rel, rel)
    assert len(zipfile.ZipFile(zp).infolist()) == 36
    ds = load_dataset(zp, image_size=SIZE)
    assert len(ds) == 18 and sorted(ds.files) == sorted(expected)
    dup = [s for s in ds.skipped if "same name" in s.reason]
    assert sorted(s.path for s in dup) == sorted(expected)
    assert "2 files with this same name" in dup[0].reason and "counted more than once" in dup[0].reason
    assert tuple(ds.images[ds.files.index("shale/img_00.png")][0, 0]) == (7, 8, 9)
    data_ = prepare_data(ds, seed=0)
    assert len(data_.train_index) + len(data_.val_index) + len(data_.test_index) == 18


def test_password_protected_member_is_skipped(tmp_path):
    make_dataset(tmp_path / "ds")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("granite/locked.png", png_bytes())
        for p in sorted((tmp_path / "ds").rglob("*.png")):
            zf.write(p, p.relative_to(tmp_path / "ds").as_posix())
    raw = bytearray(buf.getvalue())
    raw[raw.find(b"PK\x01\x02") + 8] |= 0x1  # mark the first member encrypted
    (tmp_path / "locked.zip").write_bytes(bytes(raw))
    ds = load_dataset(tmp_path / "locked.zip", image_size=SIZE)
    assert len(ds) == 18
    assert "password-protected" in {s.path: s.reason for s in ds.skipped}["granite/locked.png"]


# --------------------------------------------------------------------------- bad datasets: DataError saying
# what was found and what is needed


def test_class_with_one_image(tmp_path):
    make_dataset(tmp_path / "ds", classes=("granite", "sandstone"))
    _save_image(tmp_path / "ds" / "shale" / "only.png", 2, 0)
    with pytest.raises(DataError) as e:
        load_dataset(tmp_path / "ds", image_size=SIZE)
    assert str(e.value) == (
        "Class 'shale' has 1 image; every class needs at least 2 so it can appear in both the training and "
        "the test split. Add images to 'shale' or remove the folder."
    )


def test_class_whose_images_are_all_unreadable(tmp_path):
    make_dataset(tmp_path / "ds", classes=("granite", "sandstone"))
    (tmp_path / "ds" / "shale").mkdir()
    (tmp_path / "ds" / "shale" / "a.png").write_bytes(b"not a png at all")
    (tmp_path / "ds" / "shale" / "b.png").write_bytes(b"")
    with pytest.raises(DataError) as e:
        load_dataset(tmp_path / "ds", image_size=SIZE)
    msg = str(e.value)
    assert msg.startswith("Class 'shale' has 0 images (2 files in it were skipped, e.g. 'shale/a.png': not an image")
    assert "Add images to 'shale'" in msg


def test_only_one_class(tmp_path):
    make_dataset(tmp_path / "ds", classes=("shale",))
    with pytest.raises(DataError) as e:
        load_dataset(tmp_path / "ds", image_size=SIZE)
    msg = str(e.value)
    assert "only one class folder ('shale', 6 image(s))" in msg and "at least 2 classes" in msg


def test_messages_name_the_source_as_read_folder_zip_or_upload(tmp_path):
    folder = tmp_path / "loose"
    folder.mkdir()
    for i in range(3):
        _save_image(folder / f"{i}.png", 0, i)
    said = " has 3 image(s) ('0.png', '1.png', '2.png') but no class sub-folders."
    with pytest.raises(DataError, match=re.escape(f"The folder '{folder}'{said}")):
        load_dataset(folder, image_size=SIZE)
    archive = zip_folder(folder, tmp_path / "loose.zip", junk=False)
    with pytest.raises(DataError, match=re.escape(f"The zip '{archive}'{said}")):
        load_dataset(archive, image_size=SIZE)
    with pytest.raises(DataError, match=re.escape(f"The zip 'mine.zip'{said}")):
        data.load_zip_bytes(archive.read_bytes(), "mine.zip", image_size=SIZE)


def test_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / ".DS_Store").write_bytes(b"")
    with pytest.raises(DataError) as e:
        load_dataset(tmp_path / "empty")
    assert "is empty" in str(e.value) and "one sub-folder per class" in str(e.value)


def test_images_without_class_folders(tmp_path):
    for i in range(4):
        _save_image(tmp_path / "flat" / f"{i}.png", 0, i)
    with pytest.raises(DataError) as e:
        load_dataset(tmp_path / "flat")
    msg = str(e.value)
    assert "has 4 image(s)" in msg and "no class sub-folders" in msg and "folder names become the class names" in msg


def test_missing_path_lists_bundled_names(tmp_path, monkeypatch):
    root = tmp_path / "sample_data"
    make_dataset(root / "drill_core", n=2)
    make_dataset(root / "thin_sections", n=2)
    monkeypatch.setattr(loading, "SAMPLE_DATA_DIR", root)
    with pytest.raises(DataError) as e:
        load_dataset(tmp_path / "nope")
    msg = str(e.value)
    assert f"No dataset at '{tmp_path / 'nope'}': that path does not exist" in msg
    assert "Bundled datasets: thin_sections, drill_core." in msg
    with pytest.raises(DataError, match="not a bundled dataset name"):
        load_dataset("thin_section")  # a typo


def test_missing_path_without_bundled_datasets(tmp_path, monkeypatch):
    monkeypatch.setattr(loading, "SAMPLE_DATA_DIR", tmp_path / "none")
    with pytest.raises(DataError, match="No bundled datasets are installed"):
        load_dataset("thin_sections")


def test_bundled_datasets_are_the_repos_sample_data():
    assert loading.SAMPLE_DATA_DIR == Path(__file__).resolve().parent.parent / "sample_data"
    assert [b.name for b in data.bundled_datasets()] == ["thin_sections", "seismic_facies", "drill_core"]


def test_data_errors_are_user_errors(tmp_path):
    with pytest.raises(UserError) as e:
        load_dataset(tmp_path / "nope")
    assert type(e.value) is DataError and isinstance(e.value, ValueError)  # older callers catch ValueError
    with pytest.raises(UserError, match="is empty"):
        data.read_image_bytes(b"", name="x.png")


def test_file_that_is_not_a_zip(tmp_path):
    (tmp_path / "img.png").write_bytes(png_bytes())
    with pytest.raises(DataError) as e:
        load_dataset(tmp_path / "img.png")
    assert "is a file but not a zip archive" in str(e.value) and "one sub-folder per" in str(e.value)
    (tmp_path / "broken.zip").write_bytes(b"PK\x03\x04 but then nothing")
    with pytest.raises(DataError) as e:
        load_dataset(tmp_path / "broken.zip")
    assert "is not a valid zip archive" in str(e.value)


def test_zip_with_nothing_usable(tmp_path):
    with zipfile.ZipFile(tmp_path / "junk.zip", "w") as zf:
        zf.writestr("notes.txt", "hello")
        zf.writestr("__MACOSX/._notes.txt", "junk")
    with pytest.raises(DataError) as e:
        load_dataset(tmp_path / "junk.zip")
    msg = str(e.value)
    assert "contains nothing usable" in msg and "'notes.txt'" in msg and "one sub-folder per class" in msg
    with zipfile.ZipFile(tmp_path / "macos.zip", "w") as zf:
        zf.writestr("__MACOSX/._a.png", "junk")
    with pytest.raises(DataError, match="contains nothing usable: it is empty"):
        load_dataset(tmp_path / "macos.zip")


def test_zip_bomb_guards(tmp_path, monkeypatch):
    with zipfile.ZipFile(tmp_path / "big.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        for c in ("a", "b"):
            zf.writestr(f"{c}/zeros.png", b"\0" * (3 << 20))  # 3 MiB that compress to a few KiB
    assert (tmp_path / "big.zip").stat().st_size < 100_000
    monkeypatch.setattr(sources, "MAX_ZIP_BYTES", 4 << 20)
    with pytest.raises(DataError) as e:
        load_dataset(tmp_path / "big.zip")
    assert "would unpack to 6.0 MiB, more than the 4.0 MiB" in str(e.value)

    monkeypatch.setattr(sources, "MAX_FILES", 1)
    with pytest.raises(DataError, match="has 2 entries, more than the 1 this app reads"):
        load_dataset(tmp_path / "big.zip")


def test_too_many_files_in_a_folder(tmp_path, monkeypatch):
    make_dataset(tmp_path / "ds")
    monkeypatch.setattr(sources, "MAX_FILES", 10)
    with pytest.raises(DataError, match="more than 10 files and folders"):
        load_dataset(tmp_path / "ds")


@pytest.mark.parametrize(
    "kwargs, text",
    [
        ({"image_size": 4}, "'image_size' parameter of load_dataset must be an integer in [8, 512]. Got 4 instead"),
        ({"image_size": 64.0}, "Got 64.0 instead"),
        ({"channels": 2}, "'channels' parameter of load_dataset must be 1 (grayscale) or 3 (RGB). Got 2 instead"),
    ],
)
def test_load_arguments_are_checked(tmp_path, kwargs, text):
    make_dataset(tmp_path / "ds", n=2)
    with pytest.raises(DataError) as e:
        load_dataset(tmp_path / "ds", **kwargs)
    assert text in str(e.value)


# --------------------------------------------------------------------------- read_image_bytes


def test_read_image_bytes():
    img = data.read_image_bytes(png_bytes((200, 100, 50), side=30), image_size=SIZE)
    assert img.shape == (SIZE, SIZE, 3) and img.dtype == np.uint8
    assert np.abs(img.reshape(-1, 3).astype(int) - [200, 100, 50]).max() <= 1
    gray = data.read_image_bytes(png_bytes(77, mode="L"), image_size=SIZE, channels=1)
    assert gray.shape == (SIZE, SIZE, 1) and gray.min() == gray.max() == 77
    sixteen = io.BytesIO()
    Image.fromarray(np.full((10, 10), 40_000, np.uint16)).save(sixteen, "PNG")
    assert data.read_image_bytes(sixteen.getvalue(), image_size=SIZE)[0, 0].tolist() == [156, 156, 156]


@pytest.mark.parametrize(
    "raw, text",
    [
        (b"", "is empty (0 bytes)"),
        (b"GIF89a but no more", "cannot be used: not an image Pillow can read"),
        (truncated_png(), "cannot be used: the image is truncated"),
        (zero_size_png(), "cannot be used: the image has zero size (0 x 0 pixels)"),
    ],
)
def test_read_image_bytes_errors(raw, text):
    with pytest.raises(DataError) as e:
        data.read_image_bytes(raw, image_size=SIZE, name="core.png")
    assert f"The uploaded file 'core.png' {text}" in str(e.value)
    assert "Upload a PNG, JPEG" in str(e.value)


# --------------------------------------------------------------------------- prepare_data


def test_prepare_scales_and_one_hot_encodes():
    ds = synthetic([20] * 5)
    p = prepare_data(ds)
    for name, x, idx in (
        ("train", p.x_train, p.train_index),
        ("val", p.x_val, p.val_index),
        ("test", p.x_test, p.test_index),
    ):
        assert isinstance(x, ImageSplit) and x.dtype == np.uint8 and x.shape == (len(idx), 4, 4, 3)
        assert x.images is ds.images  # a view by index: the images are not copied
        assert np.array_equal(np.asarray(x), ds.images[idx]) and np.array_equal(x[1:3], ds.images[idx[1:3]])
        assert p.x01(name).dtype == np.float32
        assert np.array_equal(p.x01(name), ds.images[idx].astype("float32") / 255.0)  # the course's formula
    assert p.x01("train").min() >= 0.0 and p.x01("train").max() <= 1.0
    assert (len(p.x_train), len(p.x_val), len(p.x_test)) == (64, 16, 20)
    assert p.y_train.shape == (64, 5) and p.y_train.dtype == np.float32
    assert np.array_equal(p.y_train.sum(axis=1), np.ones(64))
    assert np.array_equal(p.y_train.argmax(axis=1), p.y_train_int)
    assert np.array_equal(p.y_test_int, ds.labels[p.test_index])
    assert p.num_classes == 5 and p.input_shape == (4, 4, 3) and p.loss == "categorical"


def test_prepare_sparse_keeps_integer_labels():
    ds = synthetic([20] * 5)
    p = prepare_data(ds, loss="sparse")
    assert p.y_train.shape == (64,) and p.y_train.dtype == np.int64
    assert np.array_equal(p.y_train, p.y_train_int) and np.array_equal(p.y_val, ds.labels[p.val_index])
    one_hot = prepare_data(ds, loss="categorical")
    assert np.array_equal(one_hot.test_index, p.test_index)  # the loss does not change the split


def test_prepare_test_split_is_the_courses_call():
    ds = synthetic([30, 20, 10])
    p = prepare_data(ds, test_size=0.25, seed=7)
    _, x_test, _, y_test = train_test_split(
        ds.images.astype("float32") / 255.0, ds.labels, test_size=0.25, random_state=7, stratify=ds.labels
    )
    assert np.array_equal(p.x01("test"), x_test) and np.array_equal(p.y_test_int, y_test)


def test_prepare_stratifies_and_never_overlaps():
    ds = synthetic([40, 20, 10])
    p = prepare_data(ds)
    tr, va, te = set(p.train_index.tolist()), set(p.val_index.tolist()), set(p.test_index.tolist())
    assert not (tr & va or tr & te or va & te)
    assert tr | va | te == set(range(70))
    assert p.class_counts == {"train": [25, 13, 6], "val": [7, 3, 2], "test": [8, 4, 2]}
    share = np.array([40, 20, 10]) / 70
    for split in ("train", "val", "test"):
        counts = np.array(p.class_counts[split])
        assert np.abs(counts - share * counts.sum()).max() <= 1, split  # proportions kept within one image


def test_prepare_is_deterministic_by_seed():
    ds = synthetic([20] * 5)
    a, b, c = prepare_data(ds, seed=1), prepare_data(ds, seed=1), prepare_data(ds, seed=2)
    for name in ("train_index", "val_index", "test_index"):
        assert np.array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(np.sort(a.test_index), np.sort(c.test_index))


def test_prepare_train_fraction_keeps_val_and_test():
    ds = synthetic([40, 20, 10])
    full = prepare_data(ds)
    half = prepare_data(ds, train_fraction=0.5)
    assert np.array_equal(half.val_index, full.val_index) and np.array_equal(half.test_index, full.test_index)
    assert set(half.train_index.tolist()) < set(full.train_index.tolist())
    assert full.class_counts["train"] == [25, 13, 6]
    assert half.class_counts["train"] == [13, 7, 3]  # half of each, rounded half up
    tiny = prepare_data(ds, train_fraction=0.05)
    assert tiny.class_counts["train"] == [1, 1, 1]  # at least one image per class
    assert len(tiny.x_train) == len(tiny.y_train) == 3
    assert [s.key for s in tiny.steps][-1] == "subsample"
    assert tiny.steps[-1].before["train"] == 44 and tiny.steps[-1].after["train"] == 3


def test_prepare_steps_numbers():
    ds = synthetic([20] * 5)
    p = prepare_data(ds)
    steps = {s.key: s for s in p.steps}
    assert list(steps) == ["tensor", "scale", "encode", "split_test", "split_val"]
    scale = steps["scale"]
    assert scale.title == "Scale pixels to [0, 1]"
    assert scale.before == {"shape": [100, 4, 4, 3], "dtype": "uint8", "min": 0, "max": 255}
    assert scale.after == {"shape": [100, 4, 4, 3], "dtype": "float32", "min": 0.0, "max": 1.0}
    enc = steps["encode"]
    assert enc.before["example_label"] == 2 and enc.before["example_class"] == "class2"
    assert enc.after["example_label"] == [0, 0, 1, 0, 0] and enc.after["shape"] == [100, 5]
    assert steps["split_test"].after["train"] == 80 and steps["split_test"].after["test_per_class"] == [4] * 5
    assert steps["split_val"].after["val"] == 16 and steps["split_val"].after["train"] == 64
    doc = json.loads(json.dumps(p.to_dict()))
    assert doc["sizes"] == {"train": 64, "val": 16, "test": 20}
    assert doc["steps"][1]["after"]["dtype"] == "float32" and all(s["what"] for s in doc["steps"])
    sparse = {s.key: s for s in prepare_data(ds, loss="sparse").steps}
    assert sparse["encode"].after["shape"] == [100] and sparse["encode"].after["example_label"] == 2


def test_prepare_names_a_class_too_small_to_split():
    ds = synthetic([30, 30, 3])
    assert data.images_needed(0.2, 0.2) == 7
    with pytest.raises(DataError) as e:
        prepare_data(ds)
    msg = str(e.value)
    assert msg.startswith("Class 'class2' has 3 images, too few to split: the validation set would get none")
    assert "a class needs 7 or more images to be sure of at least one in every split. Add 4 or more" in msg


def test_prepare_too_few_images_for_the_number_of_classes():
    with pytest.raises(DataError, match="Class 'class0' has 2 images, too few to split: the test set"):
        prepare_data(synthetic([2, 2, 2, 2]), test_size=0.2)


@pytest.mark.parametrize(
    "kwargs, text",
    [
        ({"loss": "mse"}, "'loss' parameter of prepare_data must be one of 'categorical', 'sparse'. Got 'mse'"),
        ({"test_size": 1.5}, "'test_size' parameter of prepare_data must be a number in (0, 1). Got 1.5"),
        ({"val_split": 0}, "'val_split' parameter of prepare_data must be a number in (0, 1). Got 0"),
        ({"train_fraction": 0}, "'train_fraction' parameter of prepare_data must be a number in (0, 1]. Got 0"),
        ({"seed": -1}, "'seed' parameter of prepare_data must be an integer"),
    ],
)
def test_prepare_arguments_are_checked(kwargs, text):
    with pytest.raises(DataError) as e:
        prepare_data(synthetic([10, 10]), **kwargs)
    assert text in str(e.value)


def test_prepare_from_loaded_folder(tmp_path):
    make_dataset(tmp_path / "ds", n=10)
    ds = load_dataset(tmp_path / "ds", image_size=SIZE)
    p = prepare_data(ds, loss="sparse")
    assert p.class_counts == {"train": [7, 6, 6], "val": [1, 2, 2], "test": [2, 2, 2]}
    assert sorted(p.test_index.tolist() + p.val_index.tolist() + p.train_index.tolist()) == list(range(30))
    assert p.x_train[:].flags.writeable  # a batch read from a split is the caller's own


def test_dataset_summary_is_json(tmp_path):
    make_dataset(tmp_path / "ds")
    (tmp_path / "ds" / "shale" / "notes.txt").write_text("x")
    s = data.dataset_summary(load_dataset(tmp_path / "ds", image_size=SIZE))
    assert json.loads(json.dumps(s)) == s
    assert s["n_images"] == 18 and s["counts"] == {"granite": 6, "sandstone": 6, "shale": 6}
    assert s["image_shape"] == [SIZE, SIZE, 3] and s["skipped"][0]["path"] == "shale/notes.txt"


def test_import_is_light():
    heavy = ("tensorflow", "keras", "streamlit", "sklearn")
    code = f"import sys, core.data; print(sorted(m for m in {heavy!r} if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert out.stdout.strip() == "[]"
