"""What a shared server allows: the limits' messages, where data may be read from, special files, memory."""

import os
import socket

import pytest

from core.base.errors import UserError
from core.base.limits import (
    PathRefused,
    SpecialFile,
    bytes_text,
    check_kind,
    check_readable,
    inside,
    read_bounded,
    resource_message,
    special_kind,
    too_many_pixels,
    upload_too_large,
)


@pytest.fixture
def limits(monkeypatch):
    """Set CNNLAB_* variables for one test (the settings are read again when one changes)."""

    def _set(**values):
        for name, value in values.items():
            monkeypatch.setenv(f"CNNLAB_{name.upper()}", value)

    monkeypatch.delenv("CNNLAB_SERVING", raising=False)
    monkeypatch.delenv("CNNLAB_DATA_ROOTS", raising=False)
    return _set


def test_bytes_read_in_the_largest_unit_that_fits():
    assert bytes_text(12) == "12 bytes" and bytes_text(1024) == "1.0 KiB"
    assert bytes_text(200 << 20) == "200.0 MiB" and bytes_text(3 << 29) == "1.5 GiB"


def test_an_upload_over_the_limit_is_one_message_with_both_sizes(limits):
    limits(max_upload_mb="1")
    assert upload_too_large("rocks.zip", 1 << 20) is None  # exactly the limit is allowed
    msg = upload_too_large("rocks.zip", 3 << 20)
    assert msg.startswith("The uploaded file 'rocks.zip' is 3.0 MiB, more than the 1.0 MiB this server takes")
    assert "CNNLAB_MAX_UPLOAD_MB" in msg


def test_an_image_over_the_pixel_limit_says_by_how_much(limits):
    limits(max_pixels="64x64")
    assert too_many_pixels(64, 64) is None and too_many_pixels(128, 32) is None  # 4,096 pixels either way
    msg = too_many_pixels(65, 64)
    assert msg.startswith("the image is too large: 65 x 64 = 4,160 pixels, more than the 4,096 (64 x 64) this app")
    limits(max_pixels="5000")  # not a square: no side length to quote
    assert "more than the 5,000 this app reads" in too_many_pixels(100, 100)


def test_inside_follows_links(tmp_path):
    root, other = tmp_path / "shared", tmp_path / "private"
    (root / "rocks").mkdir(parents=True)
    other.mkdir()
    (root / "escape").symlink_to(other)
    assert inside(root, [root.resolve()]) and inside(root / "rocks", [root.resolve()])
    assert not inside(root / "escape", [root.resolve()])  # inside by its name, outside where it points
    assert not inside(tmp_path / "shared-too", [root.resolve()])  # a common prefix is not a parent


def test_the_cli_reads_any_path_the_dashboard_only_its_roots(tmp_path, limits):
    root, other = tmp_path / "shared", tmp_path / "private"
    root.mkdir()
    other.mkdir()
    check_readable(other)  # not serving (the CLI, a notebook): anything goes
    limits(serving="1", data_roots=str(root))
    check_readable(root / "x")
    check_readable(other, also=[other.resolve()])  # e.g. the store's uploads
    with pytest.raises(PathRefused) as err:
        check_readable(other, what="zip")
    msg = str(err.value)
    assert msg.startswith(f"'{other}' is not inside the folders this server shares ('{root.resolve()}')")
    assert msg.endswith("Choose a zip inside one of them.") and isinstance(err.value, UserError)
    limits(data_roots="")
    with pytest.raises(PathRefused, match="Reading a folder on the server is turned off here"):
        check_readable(root / "x")


def test_special_files_are_named_and_never_opened(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)  # opening it to read would hang: special_kind must only stat it
    assert special_kind(fifo) == "a named pipe (FIFO)"
    assert special_kind("/dev/null") == "a device"
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(tmp_path / "sock"))
        assert special_kind(tmp_path / "sock") == "a socket"
    (tmp_path / "plain.txt").write_text("x")
    assert special_kind(tmp_path / "plain.txt") is None and special_kind(tmp_path / "missing") is None


def test_check_kind_names_what_was_given_and_what_was_expected(tmp_path):
    (tmp_path / "a.zip").write_bytes(b"PK")
    check_kind(tmp_path / "a.zip", "a .zip")
    check_kind(tmp_path, "a folder", file=False, folder=True)
    with pytest.raises(SpecialFile) as err:
        check_kind(tmp_path, "a .zip")
    assert str(err.value) == f"'{tmp_path}' is a folder, not a .zip: nothing was read from it. Give the path of a .zip."
    with pytest.raises(SpecialFile, match="is a file, not a folder"):
        check_kind(tmp_path / "a.zip", "a folder", file=False, folder=True)
    with pytest.raises(SpecialFile, match="is a device, not a settings file"):
        check_kind("/dev/zero", "a settings file")


def test_read_bounded_stops_at_the_limit(tmp_path):
    path = tmp_path / "settings.json"
    path.write_bytes(b"0123456789")
    assert read_bounded(path, 10, "a settings file") == b"0123456789"
    with pytest.raises(SpecialFile) as err:
        read_bounded(path, 9, "a settings file")
    assert str(err.value) == f"'{path}' is larger than the 9 bytes a settings file may have; nothing was used."


def test_out_of_memory_is_one_line_and_other_errors_are_not_it():
    class ResourceExhaustedError(RuntimeError):  # TensorFlow's, recognised by name without importing it
        pass

    for exc in (MemoryError(), ResourceExhaustedError("OOM when allocating tensor")):
        msg = resource_message(exc)
        assert msg.startswith("The computer ran out of memory for this network") and "\n" not in msg
    assert resource_message(ValueError("x")) is None
