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

    monkeypatch.setattr(loading, "decode_sized", no_decoding)
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


def test_the_pixel_limit_holds_for_a_kept_read_as_for_a_fresh_one(tiny_folder, tmp_path, monkeypatch):
    """A read kept on disk or in memory is opened only when the limit in force now reads the files the same."""
    from PIL import Image

    from core.base.config import ModelConfig, TrainConfig
    from core.cli import main
    from core.store.runstore import RunStore
    from core.training.experiment import resolve

    Image.new("RGB", (40, 40), (9, 9, 9)).save(tiny_folder / "dark" / "big.png")  # 1,600 pixels; the rest 16 x 16
    cache = tmp_path / "cache"
    monkeypatch.setenv("CNNLAB_MAX_PIXELS", "30x30")
    first = load_dataset(tiny_folder, image_size=16, cache_dir=cache)
    assert len(first) == 36 and [s.path for s in first.skipped] == ["dark/big.png"]
    assert "more than the 900 (30 x 30)" in first.skipped[0].reason

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again")

    monkeypatch.setattr(loading, "decode_sized", no_decoding)
    for use_cache in (True, False):  # memory, then disk: the same limit, nothing decoded
        assert load_dataset(tiny_folder, image_size=16, cache_dir=cache, use_cache=use_cache).skipped == first.skipped
    monkeypatch.setenv("CNNLAB_MAX_PIXELS", "35x35")  # another limit that reads the files the same: still kept
    for use_cache in (True, False):
        kept = load_dataset(tiny_folder, image_size=16, cache_dir=cache, use_cache=use_cache)
        assert len(kept) == 36 and "more than the 1,225 (35 x 35)" in kept.skipped[0].reason  # worded for now
    monkeypatch.undo()

    monkeypatch.setenv("CNNLAB_MAX_PIXELS", "50x50")  # the big image is within it now: read it
    for use_cache in (True, False):
        wider = load_dataset(tiny_folder, image_size=16, cache_dir=cache, use_cache=use_cache)
        assert len(wider) == 37 and wider.skipped == []
    monkeypatch.setenv("CNNLAB_MAX_PIXELS", "10x10")  # every image is over it now: refused as a fresh read is
    for use_cache in (True, False):
        with pytest.raises(DataError, match=r"has 0 images .* the image is too large: 16 x 16 = 256 pixels"):
            load_dataset(tiny_folder, image_size=16, cache_dir=cache, use_cache=use_cache)

    # the run store's image cache, as `train --no-cache` meets it (issue 17: 64 x 64 images trained at 10x10)
    monkeypatch.setenv("CNNLAB_MAX_PIXELS", "50x50")
    store = RunStore(tmp_path / "home")
    resolve(str(tiny_folder), ModelConfig(input_size=16), TrainConfig(), store)  # decoded into the store's cache
    loading.clear_cache()  # a new process
    monkeypatch.setenv("CNNLAB_MAX_PIXELS", "10x10")
    monkeypatch.setenv("CNNLAB_HOME", str(store.home))
    assert main(["train", "--data", str(tiny_folder), "--input-size", "16", "--epochs", "1", "--no-cache"]) == 2
    assert store.list_runs() == []


def test_the_dashboard_and_the_command_line_share_one_cache_file_and_a_training_is_never_handed_a_gone_one(
    tiny_folder, tmp_path, monkeypatch
):
    """A training process opens the cached images by their file's path (core.jobs.child), so that file must be
    there: the dashboard (serving, data roots) and the CLI (neither) reading the same files keep one file instead
    of deleting each other's by turns, a dataset kept in memory is the file of the store it was asked for, and a
    kept dataset whose file another process removed is read again."""
    store_a, store_b = tmp_path / "a", tmp_path / "b"
    cli = load_dataset(tiny_folder, image_size=16, cache_dir=store_a)
    monkeypatch.setenv("CNNLAB_DATA_ROOTS", str(tmp_path))
    monkeypatch.setenv("CNNLAB_SERVING", "1")
    dashboard = load_dataset(tiny_folder, image_size=16, cache_dir=store_a)
    assert dashboard.images.filename == cli.images.filename and os.path.exists(cli.images.filename)
    assert len(list((store_a / SUBDIR).glob("*.npy"))) == 1
    monkeypatch.delenv("CNNLAB_SERVING")

    other = load_dataset(tiny_folder, image_size=16, cache_dir=store_b)  # another store: its own file
    assert os.path.dirname(other.images.filename) == str(store_b / SUBDIR)
    _same(other, cli)
    os.remove(other.images.filename)  # another process decoded it again (its files changed, say)
    again = load_dataset(tiny_folder, image_size=16, cache_dir=store_b)
    assert os.path.exists(again.images.filename)
    _same(again, cli)
