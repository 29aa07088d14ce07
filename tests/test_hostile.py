"""A hostile or careless student against a classroom server: each input refused with one clear message,
the same in the CLI (one line on stderr, exit 2) and in the dashboard (AppTest), memory kept bounded.

The CLI runs as a real subprocess (``python -m core``); the dashboard runs app.py in AppTest with the
process marked as serving (app.py does that) and ``CNNLAB_DATA_ROOTS`` naming the one folder it may read.
"""

from __future__ import annotations

import io
import os
import struct
import subprocess
import sys
import textwrap
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.data import DataError, load_dataset, sources

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app.py")


# --------------------------------------------------------------------------- helpers


def _png(side: int = 12, value: int = 90) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((side, side, 3), value, np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def _chunk(tag: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))


def _declared_png(width: int, height: int) -> bytes:
    """A valid PNG header declaring width x height, with a few bytes of pixel data: tiny on disk."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\0" * 64)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def _pixel_bomb(side: int = 9000) -> bytes:
    """A real side x side PNG (every pixel decodable) that is small on disk."""
    buf = io.BytesIO()
    Image.new("1", (side, side), 0).save(buf, "PNG", optimize=True)
    return buf.getvalue()


def _truncated() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(3).integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()[:1500]


def _dataset(root: Path, bad: dict[str, bytes]) -> Path:
    """Class 'good' with two real images; class 'bad' holding only the given files (so the load fails and
    its message quotes why the first bad file was skipped)."""
    (root / "good").mkdir(parents=True)
    (root / "bad").mkdir()
    for i in range(2):
        (root / "good" / f"{i}.png").write_bytes(_png(value=40 + i))
    for name, data in bad.items():
        (root / "bad" / name).write_bytes(data)
    return root


def _zip(path: Path, entries: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return path


def cli(*args: str, home: Path, env: dict | None = None) -> tuple[int, str, str]:
    full_env = {**os.environ, "CNNLAB_HOME": str(home), **(env or {})}
    full_env.pop("CNNLAB_SERVING", None)  # the machine's own user
    p = subprocess.run(
        [sys.executable, "-m", "core", *args], cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=300
    )
    return p.returncode, p.stdout, p.stderr


def one_line(stderr: str, rc: int) -> str:
    """The CLI's refusal: exit 2 and exactly one line on stderr (no warning, no traceback)."""
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert rc == 2 and len(lines) == 1, stderr
    return lines[0].split(": ", 1)[1]


@pytest.fixture
def served(tmp_path, monkeypatch):
    """The dashboard's process as a teacher starts it: ``tmp_path/shared`` is the one shared folder."""
    shared = tmp_path / "shared"
    shared.mkdir()
    monkeypatch.setenv("CNNLAB_DATA_ROOTS", str(shared))
    monkeypatch.setenv("CNNLAB_HOME", str(tmp_path / "home"))
    yield shared
    os.environ.pop("CNNLAB_SERVING", None)  # app.py sets it; the engine's other tests read any path


def app_folder(path: Path | str) -> list[str]:
    """Open the Data page, choose 'Folder on the server', use ``path``; return the error messages shown."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page("pages/data.py").run()
    at.segmented_control(key="data.kind").set_value("Folder on the server").run()
    at.text_input(key="data.path").input(str(path)).run()
    at.button(key="data.use_path").click().run()
    assert not at.exception, [e.value for e in at.exception]
    return [e.value for e in at.error]


def app_upload(name: str, data: bytes) -> list[str]:
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page("pages/data.py").run()
    at.segmented_control(key="data.kind").set_value("Upload a zip").run()
    at.file_uploader(key="data.upload").upload(name, data, "application/zip").run()
    assert not at.exception, [e.value for e in at.exception]
    return [e.value for e in at.error]


def same_message(cli_message: str, app_errors: list[str], reason: str) -> None:
    assert reason in cli_message
    assert any(reason in e for e in app_errors), app_errors


# --------------------------------------------------------------------------- zips


def test_zip_slip_entries_are_refused_and_nothing_is_written(tmp_path, served):
    evil = {
        "good/0.png": _png(),
        "good/1.png": _png(value=50),
        "bad/": b"",
        "bad/../../evil.png": _png(),
        "bad/../../../tmp/evil2.png": _png(),
    }
    zpath = _zip(tmp_path / "slip.zip", evil)
    rc, _, err = cli("train", "--data", str(zpath), home=tmp_path / "cli-home")
    msg = one_line(err, rc)
    reason = "an unsafe path inside the zip (absolute, or with '..')"
    same_message(msg, app_upload("slip.zip", zpath.read_bytes()), reason)
    assert not (tmp_path / "evil.png").exists() and not Path("/tmp/evil2.png").exists()


def _lying_zip(path: Path, real_mib: int = 192, declared: int = 1000) -> Path:
    """Two entries whose headers say ``declared`` bytes but which unpack to ``real_mib`` MiB each."""
    zeros = b"\0" * (1 << 20)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        zf.writestr("good/0.png", _png())
        zf.writestr("good/1.png", _png(value=50))
        for name in ("bad/x.png", "bad/y.png"):
            with zf.open(name, "w") as fh:
                for _ in range(real_mib):
                    fh.write(zeros)
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        infos = {i.filename: i for i in zf.infolist()}
        cd_start = zf.start_dir
    for name in ("bad/x.png", "bad/y.png"):
        off = infos[name].header_offset
        assert data[off : off + 4] == b"PK\x03\x04"
        struct.pack_into("<I", data, off + 22, declared)  # local header: uncompressed size
    pos = cd_start
    while data[pos : pos + 4] == b"PK\x01\x02":  # central directory: uncompressed size
        n, m, k = struct.unpack_from("<HHH", data, pos + 28)
        if bytes(data[pos + 46 : pos + 46 + n]).decode().startswith("bad/"):
            struct.pack_into("<I", data, pos + 24, declared)
        pos += 46 + n + m + k
    path.write_bytes(bytes(data))
    return path


def test_a_zip_whose_headers_lie_about_sizes_keeps_memory_bounded(tmp_path, served):
    zpath = _lying_zip(tmp_path / "liar.zip")
    assert zpath.stat().st_size < 2_000_000  # 384 MiB of content in under 2 MB
    probe = textwrap.dedent(f"""
        import resource, sys
        sys.path.insert(0, {str(ROOT)!r})
        from core.data import DataError, load_dataset
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        try:
            load_dataset({str(zpath)!r}, 16)
        except DataError as e:
            print("refused:", e)
        print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)
    """)
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300).stdout
    refused, growth_mib = out.strip().splitlines()[-2:]
    assert "its contents do not match the zip's header" in refused
    assert int(growth_mib) < 48, f"peak memory grew by {growth_mib} MiB reading a 2 MB zip"

    rc, _, err = cli("train", "--data", str(zpath), home=tmp_path / "cli-home")
    same_message(
        one_line(err, rc), app_upload("liar.zip", zpath.read_bytes()), "its contents do not match the zip's header"
    )


def test_a_zip_with_too_many_entries(tmp_path, served):
    zpath = tmp_path / "many.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        for i in range(sources.MAX_FILES + 1):
            zf.writestr(f"a/{i}.txt", b"")
    rc, _, err = cli("train", "--data", str(zpath), home=tmp_path / "cli-home")
    reason = f"has {sources.MAX_FILES + 1:,} entries, more than the {sources.MAX_FILES:,} this app reads"
    same_message(one_line(err, rc), app_upload("many.zip", zpath.read_bytes()), reason)


def test_the_upload_size_limit(tmp_path, served, monkeypatch):
    monkeypatch.setenv("CNNLAB_MAX_UPLOAD_MB", "1")
    errors = app_upload("big.zip", b"PK" + b"\0" * (1 << 20))
    assert any("is 1.0 MiB, more than the 1.0 MiB this server takes (CNNLAB_MAX_UPLOAD_MB)" in e for e in errors)


# --------------------------------------------------------------------------- images


@pytest.mark.parametrize(
    "name, data, reason",
    [
        (
            "bomb.png",
            _pixel_bomb(),
            "the image is too large: 9000 x 9000 = 81,000,000 pixels, more than the "
            "16,777,216 (4096 x 4096) this app reads (CNNLAB_MAX_PIXELS)",
        ),
        # Over Pillow's own limit (it would warn, or raise with its own number): the same one message.
        ("huge.png", _declared_png(12_000, 12_000), "the image is too large: 12000 x 12000 = 144,000,000 pixels"),
        ("giant.png", _declared_png(100_000, 100_000), "the image is too large: 100000 x 100000"),
        ("cut.png", _truncated(), "the image is truncated: the file ends early"),
        ("notes.png", b"these are my notes, not a picture", "not an image Pillow can read"),
    ],
    ids=["pixel-bomb", "over-pillows-limit", "huge-declared-size", "truncated", "not-an-image"],
)
def test_bad_images_get_one_message_in_the_cli_and_the_app(tmp_path, served, name, data, reason):
    assert len(data) < 300_000  # all small files: the file-size limits let them through
    ds = _dataset(served / "ds", {name: data, "2" + name: data})
    rc, _, err = cli("train", "--data", str(ds), "--input-size", "16", "--blocks", "1", home=tmp_path / "cli-home")
    msg = one_line(err, rc)  # no DecompressionBombWarning, no TensorFlow line: one line only
    assert "Class 'bad' has 0 images" in msg
    same_message(msg, app_folder(ds), reason)


def test_the_pixel_limit_is_configurable(tmp_path, monkeypatch):
    ds = _dataset(tmp_path / "ds", {"a.png": _png(side=40), "b.png": _png(side=40)})
    monkeypatch.setenv("CNNLAB_MAX_PIXELS", "32x32")
    with pytest.raises(DataError, match=r"40 x 40 = 1,600 pixels, more than the 1,024 \(32 x 32\)"):
        load_dataset(ds, 16, use_cache=False)
    monkeypatch.setenv("CNNLAB_MAX_PIXELS", "1600")
    assert len(load_dataset(ds, 16, use_cache=False)) == 4


# --------------------------------------------------------------------------- paths on the server


def test_a_link_out_of_the_data_root_is_not_followed_by_the_app(tmp_path, served):
    outside = tmp_path / "private"
    outside.mkdir()
    (outside / "secret.png").write_bytes(_png(value=200))
    ds = _dataset(served / "ds", {})
    for i in range(2):
        (ds / "bad" / f"{i}.png").symlink_to(outside / "secret.png")
    (served / "escape").symlink_to(outside)
    reason = "a link to a place outside the folders this server shares (CNNLAB_DATA_ROOTS); not read"
    assert any(reason in e for e in app_folder(ds))
    # A link to a folder outside is refused as a whole, without saying whether anything is there.
    assert any("is not inside the folders this server shares" in e for e in app_folder(served / "escape"))
    # The CLI is the machine's own user (no serving mark): it follows the links.
    os.environ.pop("CNNLAB_SERVING")
    assert len(load_dataset(ds, 16, use_cache=False)) == 4


def test_a_server_path_outside_the_allowed_roots(tmp_path, served, monkeypatch):
    errors = app_folder("/etc")
    assert any("'/etc' is not inside the folders this server shares" in e for e in errors), errors
    assert not any("classes" in e or "passwd" in e for e in errors)  # nothing about what is there
    # With no roots at all (the default), the choice is not even offered; a path reaching the engine is refused.
    monkeypatch.delenv("CNNLAB_DATA_ROOTS")
    from core.base.limits import PathRefused, mark_serving

    mark_serving()
    with pytest.raises(PathRefused, match="Reading a folder on the server is turned off here"):
        load_dataset("/etc")
    os.environ.pop("CNNLAB_SERVING")
    with pytest.raises(DataError, match="has 0 images"):  # the CLI's user may read it (it is no dataset)
        load_dataset("/etc", use_cache=False)


# --------------------------------------------------------------------------- networks and weights


ABSURD = ["--input-size", "512", "--blocks", "1", "--filters", "1024", "--dense", "8192", "--padding", "same"]


def test_an_absurd_network_is_refused_before_anything_is_built(tmp_path):
    # --data names nothing: the refusal comes before the data is read, let alone TensorFlow.
    rc, out, err = cli("train", "--data", str(tmp_path / "nothing"), *ABSURD, home=tmp_path / "home")
    msg = one_line(err, rc)
    assert "This network has 549,755,891,717 parameters, more than the 25,000,000 this server trains" in msg
    assert "needs about 48.1 GiB for its activations" in msg and out == ""
    # summary prints the table (that is how a student sees why), then refuses the same way.
    rc, out, err = cli("summary", *ABSURD, home=tmp_path / "home")
    assert "Total params: 549,755,891,717" in out
    assert "549,755,891,717 parameters, more than the 25,000,000" in one_line(err, rc)
    # Limits are the teacher's to set.
    rc, _, err = cli("summary", *ABSURD, home=tmp_path / "home", env={"CNNLAB_MAX_PARAMS": str(10**12)})
    assert rc == 0, err


def test_the_architecture_page_says_it_next_to_the_slider(tmp_path, served):
    from streamlit.testing.v1 import AppTest

    from core.base.config import ModelConfig

    big = ModelConfig(input_size=224, blocks=1, filters=128, pool_size=1, padding="same", dense_units=512)
    at = AppTest.from_file(APP, default_timeout=120)
    at.session_state["model_cfg"] = big
    at.run()
    at.switch_page("pages/architecture.py").run()
    assert not at.exception
    errors = [e.value for e in at.error]
    rc, _, err = cli(
        "summary",
        "--input-size",
        "224",
        "--blocks",
        "1",
        "--filters",
        "128",
        "--pool",
        "1",
        "--padding",
        "same",
        "--dense",
        "512",
        home=tmp_path / "home",
    )
    msg = one_line(err, rc)
    assert msg.startswith("This network has 3,288,340,997 parameters, more than the 25,000,000")
    assert msg in errors
    # Placed right under the Dense units slider: the next element after it in the controls column.
    column = at.columns[0]
    kinds = [type(el).__name__ + ":" + str(getattr(el, "label", getattr(el, "value", ""))) for el in column]
    dense = next(i for i, k in enumerate(kinds) if k.endswith("Dense units"))
    assert msg in kinds[dense + 1], kinds[dense : dense + 2]
    assert any("larger than this server trains" in w.value for w in at.warning)
    assert at.table, "the table is still shown, so the student sees where the parameters are"


@pytest.mark.parametrize("kind", ["text.h5", "model.keras"])
def test_a_weights_file_of_the_wrong_kind(tmp_path, served, kind):
    from streamlit.testing.v1 import AppTest

    path = served / kind
    if kind.endswith(".keras"):  # a whole Keras model file (a zip), not a weights file
        _zip(path, {"config.json": b"{}", "model.weights.h5": b"\x89HDF"})
    else:
        path.write_text("not weights")
    rc, _, err = cli(
        "train", "--data", "thin_sections", "--model", "vgg16", "--weights", str(path), home=tmp_path / "home"
    )
    msg = one_line(err, rc)
    assert f"The weights file {path} is not an HDF5 weights file (wrong signature)" in msg

    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page("pages/architecture.py").run()
    at.radio(key="arch.model").set_value("vgg16").run()
    at.selectbox(key="arch.weights").set_value("file").run()
    at.text_input(key="arch.weights_path").input(str(path)).run()
    assert not at.exception
    assert msg in [w.value for w in at.warning]


def test_a_weights_file_outside_the_roots_is_not_even_looked_at(tmp_path, served):
    from core.base.limits import mark_serving
    from core.models.weight_sources import weights_status

    mark_serving()
    status = weights_status("/etc/passwd")
    assert not status.ok and "is not inside the folders this server shares" in status.message


class ResourceExhaustedError(RuntimeError):
    """Stands in for TensorFlow's (recognised by its name, so nothing imports TensorFlow to catch it)."""


def test_out_of_memory_is_one_line_in_the_cli_and_the_dashboard(monkeypatch, capsys):
    import core.cli
    from core.base.limits import resource_message
    from core.cli import commands
    from ui.feedback import job_error

    def oom(args, store):
        raise ResourceExhaustedError("OOM when allocating tensor with shape[32,512,512,1024]")

    monkeypatch.setitem(commands.COMMANDS, "summary", oom)
    monkeypatch.setattr(core.cli, "COMMANDS", commands.COMMANDS)
    assert core.cli.main(["summary"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "ran out of memory for this network" in err[0] and "shape[" not in err[0]
    assert resource_message(ValueError("x")) is None
    worker_text = "Training failed unexpectedly (ResourceExhaustedError: OOM when allocating). Earlier runs are safe."
    assert job_error(worker_text) == resource_message(MemoryError())


# --------------------------------------------------------------------------- special files: never opened


@pytest.fixture
def specials(tmp_path):
    """A FIFO (reading it would wait for ever), a socket, a device, and a folder."""
    import socket

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    sock_path = tmp_path / "sock"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(sock_path))
    (tmp_path / "folder").mkdir()
    yield {
        "fifo": (fifo, "a named pipe (FIFO)"),
        "socket": (sock_path, "a socket"),
        "device": (Path("/dev/zero"), "a device"),
    }
    sock.close()


@pytest.mark.parametrize("kind", ["fifo", "socket", "device"])
def test_a_special_file_as_data_is_refused_before_any_read(specials, kind, tmp_path):
    path, words = specials[kind]
    rc, out, err = cli("train", "--data", str(path), "--epochs", "1", home=tmp_path / "home")
    assert one_line(err, rc) == (
        f"'{path}' is {words}, not a folder of class folders or a .zip of them: nothing was "
        "read from it. Give the path of a folder of class folders or a .zip of them."
    )


def test_special_files_as_weights_grid_and_image_are_refused(specials, tmp_path):
    fifo, _ = specials["fifo"]
    home = tmp_path / "home"
    rc, _, err = cli("train", "--data", "thin_sections", "--model", "vgg16", "--weights", str(fifo), home=home)
    assert one_line(err, rc) == f"{fifo} is a named pipe (FIFO), not a weights file."
    rc, _, err = cli(
        "train", "--data", "thin_sections", "--model", "vgg16", "--weights", str(tmp_path / "folder"), home=home
    )
    assert one_line(err, rc) == f"{tmp_path / 'folder'} is a folder, not a weights file."
    rc, _, err = cli("sweep", "--data", "thin_sections", "--grid-file", "/dev/zero", home=home)
    assert one_line(err, rc).startswith("'/dev/zero' is a device, not a JSON grid file: nothing was read from it.")
    bad = tmp_path / "grid.json"
    bad.write_bytes(b'{"dropout": [0, 0.\xff5]}')
    rc, _, err = cli("sweep", "--data", "thin_sections", "--grid-file", str(bad), home=home)
    assert one_line(err, rc) == (
        f"The grid file '{bad}' is not UTF-8 text (byte 18 is not): save it as plain JSON "
        'like {"dropout": [0, 0.5]}.'
    )


def test_an_image_path_is_read_only_when_a_regular_file_within_the_limit(specials, tmp_path, monkeypatch):
    from core.base.limits import SpecialFile, read_bounded

    for path, words in specials.values():
        with pytest.raises(SpecialFile, match=f"is {words.replace('(', '.').replace(')', '.')}, not an image"):
            read_bounded(path, 1 << 20, "an image")
    with pytest.raises(SpecialFile, match="is a folder, not an image"):
        read_bounded(tmp_path / "folder", 1 << 20, "an image")
    big = tmp_path / "big.png"
    big.write_bytes(b"\0" * 2048)
    with pytest.raises(SpecialFile, match="is larger than the 1.0 KiB an image may have"):
        read_bounded(big, 1024, "an image")
    assert read_bounded(big, 4096, "an image") == b"\0" * 2048


# --------------------------------------------------------------------------- an unusable run store


def _read_only_cli(folder: Path, *args: str, home: Path) -> tuple[int, str, str]:
    """``cli(*args)`` with ``folder`` really read-only: as root (who ignores permission bits) a read-only bind
    mount in a private mount namespace (``unshare -m``); as anyone else the folder's write bits taken away."""
    if os.geteuid() != 0:
        for p in [folder, *folder.rglob("*")]:
            p.chmod(p.stat().st_mode & ~0o222)
        try:
            return cli(*args, home=home)
        finally:
            for p in [folder, *folder.rglob("*")]:
                p.chmod(p.stat().st_mode | 0o200)
    probe = subprocess.run(
        [
            "unshare",
            "-m",
            "sh",
            "-c",
            f"mount --bind '{folder}' '{folder}' && mount -o remount,ro,bind '{folder}' '{folder}'",
        ],
        capture_output=True,
    )
    if probe.returncode != 0:
        pytest.skip(f"running as root and cannot make a read-only mount here: {probe.stderr.decode().strip()}")
    env = {**os.environ, "CNNLAB_HOME": str(home)}
    env.pop("CNNLAB_SERVING", None)
    command = " ".join(["exec", sys.executable, "-m", "core", *(f"'{a}'" for a in args)])
    p = subprocess.run(
        [
            "unshare",
            "-m",
            "sh",
            "-c",
            f"mount --bind '{folder}' '{folder}' && mount -o remount,ro,bind '{folder}' '{folder}' && {command}",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return p.returncode, p.stdout, p.stderr


@pytest.fixture(scope="module")
def stored_run(tmp_path_factory):
    """A store with one tiny run in it (trained once for the tests below)."""
    from tinydata import write_tiny_dataset

    root = tmp_path_factory.mktemp("rostore")
    data = write_tiny_dataset(root / "data", per_class=6, size=16)
    rc, out, err = cli(
        "train",
        "--data",
        str(data),
        "--epochs",
        "1",
        "--input-size",
        "16",
        "--filters",
        "4",
        "--blocks",
        "1",
        "--dense",
        "4",
        "--batch-size",
        "8",
        "--precision",
        "float32",
        "--json",
        home=root / "home",
    )
    assert rc == 0, err
    import json

    return root, json.loads(out)["run_id"]


def test_commands_that_only_read_work_on_a_read_only_store(stored_run, tmp_path):
    root, run_id = stored_run
    home = root / "home"
    before = sorted(p.name for p in home.rglob("*"))
    rc, out, err = _read_only_cli(root, "runs", home=home)
    assert rc == 0 and run_id in out, err
    rc, out, err = _read_only_cli(root, "jobs", "--json", home=home)
    assert rc == 0 and out.strip() == "[]", err
    rc, out, err = _read_only_cli(root, "compare", run_id, run_id, home=home)
    assert rc == 0 and run_id in out, err
    rc, out, err = _read_only_cli(root, "export", run_id, "--history", str(tmp_path / "h.csv"), home=home)
    assert rc == 0 and (tmp_path / "h.csv").read_text().startswith("epoch"), err
    rc, out, err = _read_only_cli(root, "train", "--data", "thin_sections", "--epochs", "1", home=home)
    line = one_line(err, rc)  # root: "Read-only file system"; anyone else: "Permission denied"
    assert line.startswith(f"The run store's folder '{home}' (CNNLAB_HOME) cannot be written (")
    assert line.endswith("). Point CNNLAB_HOME at a folder you can write to."), line
    assert sorted(p.name for p in home.rglob("*")) == before  # nothing written, no migration


def test_a_read_only_empty_folder_reads_as_an_empty_store(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    rc, out, err = _read_only_cli(empty, "runs", home=empty)
    assert rc == 0 and out.startswith("No stored runs yet"), err
    rc, out, err = _read_only_cli(empty, "lab", "--data", "thin_sections", "--epochs", "1", home=empty)
    assert one_line(err, rc).startswith(f"The run store's folder '{empty}' (CNNLAB_HOME) cannot be written (")
    assert list(empty.iterdir()) == []


@pytest.mark.parametrize("kind", ["file", "device"])
def test_a_store_that_is_not_a_folder_is_one_line_and_summary_needs_no_store(kind, tmp_path):
    home = Path("/dev/null") if kind == "device" else tmp_path / "home"
    if kind == "file":
        home.write_text("not a folder")
    for args in (["runs"], ["lab", "--data", "thin_sections", "--epochs", "1"], ["jobs"]):
        rc, _, err = cli(*args, home=home)
        assert one_line(err, rc) == (
            f"The run store's folder '{home}' (CNNLAB_HOME) is a {kind}, not a folder. "
            "Point CNNLAB_HOME at a folder (it is created if missing)."
        )
    rc, out, err = cli("summary", home=home)
    assert rc == 0 and "Total params: 683,845" in out, err


# --------------------------------------------------------------------------- class folders a user expects


def test_class_folders_wrapped_in_several_folders_are_found_and_hidden_ones_reported(tmp_path):
    entries = {
        f"export/2024/rocks/{c}/{i}.png": _png(value=30 + 40 * k)
        for k, c in enumerate(("shale", "sand", "lime"))
        for i in range(6)
    }
    entries.update({f"export/2024/rocks/.../{i}.png": _png() for i in range(3)})
    entries["export/2024/rocks/.thumbs/a.png"] = _png()
    entries["export/2024/rocks/shale/.DS_Store"] = b"debris"  # a hidden file: debris, not mentioned
    ds = load_dataset(_zip(tmp_path / "deep.zip", entries), image_size=12, use_cache=False)
    assert ds.class_names == ["lime", "sand", "shale"] and len(ds) == 18
    reason = "a hidden folder (its name starts with '.'), so it was not read; rename it if it holds a class"
    assert [(s.path, s.reason) for s in ds.skipped] == [
        ("export/2024/rocks/.../", reason),
        ("export/2024/rocks/.thumbs/", reason),
    ]
    folder = tmp_path / "folder"
    for k, c in enumerate(("shale", "sand", "...")):
        (folder / c).mkdir(parents=True)
        for i in range(6):
            (folder / c / f"{i}.png").write_bytes(_png(value=30 + 40 * k))
    ds = load_dataset(folder, image_size=12, use_cache=False)
    assert ds.class_names == ["sand", "shale"] and [(s.path, s.reason) for s in ds.skipped] == [(".../", reason)]


def test_class_names_that_look_the_same_are_refused_with_both_names(tmp_path):
    import unicodedata

    def zip_of(*classes):
        return _zip(
            tmp_path / f"{len(list(tmp_path.iterdir()))}.zip",
            {f"{c}/{i}.png": _png() for c in (*classes, "sand") for i in range(6)},
        )

    with pytest.raises(DataError) as err:
        load_dataset(zip_of("Shale", "shale"), image_size=12, use_cache=False)
    assert ("class folders that would look like one class: 'Shale' and 'shale' differ only in upper/lower case") in str(
        err.value
    )
    nfc, nfd = unicodedata.normalize("NFC", "café"), unicodedata.normalize("NFD", "café")
    with pytest.raises(DataError) as err:
        load_dataset(zip_of(nfc, nfd), image_size=12, use_cache=False)
    assert (
        f"'{nfd}' (accents as separate marks) and '{nfc}' (accented letters) are the same name written two ways"
    ) in str(err.value)


def test_a_store_on_a_full_disk_is_one_line(tmp_path):
    """A real full file system: a 128 KiB tmpfs, filled, in a private mount namespace (root only)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    script = (
        f"mount -t tmpfs -o size=128k tmpfs '{disk}' && mkdir '{disk}/home' && "
        f"(head -c 200000 /dev/zero > '{disk}/fill' 2>/dev/null; true) && "
        f"exec {sys.executable} -m core lab --data thin_sections --epochs 1"
    )
    if os.geteuid() != 0 or subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode != 0:
        pytest.skip("needs root and unshare to mount a small full file system")
    env = {**os.environ, "CNNLAB_HOME": str(disk / "home")}
    p = subprocess.run(
        ["unshare", "-m", "sh", "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert one_line(p.stderr, p.returncode) == (
        f"The run store's folder '{disk / 'home'}' (CNNLAB_HOME) cannot be written (No space left on device). "
        "Free some space on its disk, or point CNNLAB_HOME at another folder."
    )
