"""The decoded-images cache: a folder decoded once, memory-mapped after, equal to a fresh decode."""

import io
import os
import zipfile

import numpy as np
import pytest

from core.data import DataError, load_dataset, load_zip_bytes, loading
from core.data.imagecache import SUBDIR


@pytest.fixture(autouse=True)
def _fresh_memory_cache():
    loading.clear_cache()
    yield
    loading.clear_cache()


def _same(a, b):
    assert np.array_equal(np.asarray(a.images), np.asarray(b.images))
    assert np.array_equal(a.labels, b.labels) and a.class_names == b.class_names
    assert a.fingerprint == b.fingerprint and a.files == b.files and a.source == b.source
    assert [s.to_dict() for s in a.skipped] == [s.to_dict() for s in b.skipped]


def test_a_folder_is_decoded_once_and_reopened_from_the_cache(tiny_folder, tmp_path, monkeypatch):
    (tiny_folder / "dark" / "notes.txt").write_text("not an image")
    cache = tmp_path / "cache"
    plain = load_dataset(tiny_folder, image_size=16, use_cache=False)
    first = load_dataset(tiny_folder, image_size=16, use_cache=False, cache_dir=cache)
    _same(first, plain)
    assert isinstance(first.images, np.memmap) and not first.images.flags.writeable
    assert len(list((cache / SUBDIR).glob("*.npy"))) == 1 and plain.skipped[0].path == "dark/notes.txt"

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again")

    monkeypatch.setattr(loading, "decode_image", no_decoding)
    again = load_dataset(tiny_folder, image_size=16, use_cache=False, cache_dir=cache)  # a new process would too
    _same(again, plain)
    assert isinstance(again.images, np.memmap)
    monkeypatch.undo()

    # a changed file is noticed: decoded again, the slot's old file replaced
    img = tiny_folder / "dark" / "dark_00.png"
    os.utime(img, ns=(img.stat().st_atime_ns, img.stat().st_mtime_ns + 10**9))
    (tiny_folder / "dark" / "dark_01.png").unlink()
    changed = load_dataset(tiny_folder, image_size=16, use_cache=False, cache_dir=cache)
    assert len(changed) == len(plain) - 1
    _same(changed, load_dataset(tiny_folder, image_size=16, use_cache=False))
    assert len(list((cache / SUBDIR).glob("*.npy"))) == 1
    # another size or channel count is another entry
    gray = load_dataset(tiny_folder, image_size=16, channels=1, use_cache=False, cache_dir=cache)
    assert gray.images.shape[1:] == (16, 16, 1)
    assert len(list((cache / SUBDIR).glob("*.npy"))) == 2


def test_zips_and_uploads_are_cached_too(tiny_folder, tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for p in sorted(tiny_folder.rglob("*.png")):
            zf.write(p, p.relative_to(tiny_folder).as_posix())
    (tmp_path / "d.zip").write_bytes(buf.getvalue())
    cache = tmp_path / "cache"
    plain = load_dataset(tmp_path / "d.zip", image_size=16, use_cache=False)
    _same(load_dataset(tmp_path / "d.zip", image_size=16, use_cache=False, cache_dir=cache), plain)
    _same(load_dataset(tmp_path / "d.zip", image_size=16, use_cache=False, cache_dir=cache), plain)
    up = load_zip_bytes(buf.getvalue(), "d.zip", image_size=16, cache_dir=cache)
    assert isinstance(up.images, np.memmap) and np.array_equal(np.asarray(up.images), np.asarray(plain.images))


def test_a_source_that_fails_leaves_nothing_in_the_cache(tmp_path, tiny_folder):
    (tiny_folder / "lonely").mkdir()
    (tiny_folder / "lonely" / "one.png").write_bytes((tiny_folder / "dark" / "dark_00.png").read_bytes())
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match="Class 'lonely' has 1 image"):
        load_dataset(tiny_folder, image_size=16, use_cache=False, cache_dir=cache)
    assert not list((cache / SUBDIR).iterdir())
