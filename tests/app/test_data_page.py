"""Data: choose a source (sample data, uploaded zip, server folder), see the images, the preparation, the splits."""

import hashlib
import shutil

import numpy as np
from apphelpers import chart_specs, texts, zip_of

from core.base.config import TrainConfig
from core.data import load_dataset, prepare_data


def test_a_folder_dataset_shows_samples_preparation_splits_and_skipped_files(open_page, data_dir, tmp_path):
    folder = tmp_path / "with_junk"
    shutil.copytree(data_dir, folder)
    (folder / "dark" / "notes.png").write_bytes(b"this is not a picture")
    at = open_page("pages/data.py", dataset=str(folder))
    assert not at.exception
    text = texts(at)
    assert "Sample images" in text and "**dark** · 12 images" in text
    assert len(at.image) == 3 and all(len(img.value) == 8 for img in at.image)  # 8 samples per class
    # The course's preparation, with its numbers.
    titles = [e.proto.label for e in at.expander]
    assert titles[:3] == [
        "Step 1: Images as a 4D tensor",
        "Step 2: Scale pixels to [0, 1]",
        "Step 3: Encode labels (one-hot)",
    ]
    steps = [df.value for df in at.dataframe][:5]
    scale = steps[1].set_index("")
    assert scale.loc["shape", "after"] == "(36, 64, 64, 3)" and scale.loc["dtype", "after"] == "float32"
    hi = int(load_dataset(str(folder), 64).images.max())
    assert scale.loc["max", "before"] == str(hi)
    after = f"{float(np.float32(hi) / np.float32(255)):g}"
    assert scale.loc["max", "after"] == (after if "." in after else after + ".0")
    assert scale.loc["min", "after"] == "0.0"
    encode = steps[2].set_index("")
    assert encode.loc["its label", "after"] == "[0, 0, 1]"
    # Class counts per split as bars: train + val + test = all 36 images.
    bars = chart_specs(at)[0]["data"]
    assert [b["name"] for b in bars] == ["training", "validation", "test"]
    assert sum(sum(b["y"]) for b in bars) == 36
    # The junk file is listed with its reason.
    skipped = at.dataframe[-1].value
    assert skipped["file"].tolist() == ["dark/notes.png"]
    assert "not an image" in skipped["reason"][0]


def test_sparse_loss_keeps_integer_labels_in_the_steps(open_page, data_dir):
    at = open_page("pages/data.py", dataset=str(data_dir), train_cfg=TrainConfig(loss="sparse"))
    assert not at.exception
    assert "Step 3: Keep integer labels (sparse)" in [e.proto.label for e in at.expander]


def test_uploading_a_zip_saves_it_by_hash_and_makes_it_the_dataset(open_page, data_dir):
    from ui.resources import store

    at = open_page("pages/data.py", dataset=str(data_dir))
    at.segmented_control(key="data.kind").set_value("Upload a zip").run()
    data = zip_of(data_dir)
    at.file_uploader(key="data.upload").upload("rocks.zip", data, "application/zip").run()
    assert not at.exception, [e.value for e in at.exception]
    saved = store().uploads_dir / f"{hashlib.sha256(data).hexdigest()}.zip"
    assert saved.read_bytes() == data
    assert at.session_state["dataset"] == str(saved)
    assert at.selectbox(key="dataset").value == str(saved)
    assert "Upload: rocks.zip" in at.selectbox(key="dataset").options
    # Switching back to another dataset in the sidebar sticks (the upload is not re-applied).
    at.selectbox(key="dataset").set_value(str(data_dir)).run()
    assert at.session_state["dataset"] == str(data_dir)


def test_a_bad_upload_is_explained_not_raised(open_page, data_dir):
    at = open_page("pages/data.py", dataset=str(data_dir))
    at.segmented_control(key="data.kind").set_value("Upload a zip").run()
    at.file_uploader(key="data.upload").upload("broken.zip", b"PK\x03\x04 not really a zip", "application/zip").run()
    assert not at.exception
    assert any("zip" in e.value for e in at.error)
    assert at.session_state["dataset"] == str(data_dir)


def test_a_server_folder_can_be_used_only_when_the_teacher_names_the_roots(open_page, data_dir, tmp_path, monkeypatch):
    other = tmp_path / "other"
    shutil.copytree(data_dir, other)
    at = open_page("pages/data.py", dataset=str(data_dir))
    at.segmented_control(key="data.kind").set_value("Folder on the server").run()
    at.text_input(key="data.path").input(str(tmp_path / "missing")).run()
    at.button(key="data.use_path").click().run()
    assert not at.exception and any("No dataset at" in e.value for e in at.error)
    at.text_input(key="data.path").input(str(other)).run()
    at.button(key="data.use_path").click().run()
    assert not at.exception
    assert at.session_state["dataset"] == str(other.resolve())

    monkeypatch.delenv("CNNLAB_DATA_ROOTS")  # the default: no folders on the server
    at = open_page("pages/data.py")
    assert at.segmented_control(key="data.kind").options == ["Sample data", "Upload a zip"]


def test_a_missing_dataset_is_a_message(open_page, tmp_path):
    at = open_page("pages/data.py", dataset=str(tmp_path / "gone"))
    assert not at.exception
    assert any("No dataset at" in e.value for e in at.error)


def test_uploads_are_named_as_the_student_named_them_and_cleaned_up(open_page, data_dir, tmp_path, monkeypatch):
    """A refused upload is named by its file name and deleted; a replaced one with no runs is deleted; an upload
    nobody owns (left by a crash) is removed; past the per-student quota, one line says so."""
    from ui.resources import store

    uploads = store().uploads_dir
    orphan = uploads / ("0" * 64 + ".zip")
    orphan.write_bytes(b"left behind")
    at = open_page("pages/data.py", dataset=str(data_dir))
    at.segmented_control(key="data.kind").set_value("Upload a zip").run()
    one_class = tmp_path / "one"
    (one_class / "shale").mkdir(parents=True)
    for p in list((data_dir / "dark").iterdir())[:6]:
        (one_class / "shale" / p.name).write_bytes(p.read_bytes())
    refused = zip_of(one_class)
    at.file_uploader(key="data.upload").upload("my rocks.zip", refused, "application/zip").run()
    assert not at.exception, [e.value for e in at.exception]
    [error] = [e.value for e in at.error]
    assert error.startswith("The zip 'my rocks.zip' has only one class folder ('shale', 6 image(s))")
    assert "uploads/" not in error
    assert not (uploads / f"{hashlib.sha256(refused).hexdigest()}.zip").exists()  # the refused upload is deleted
    assert not orphan.exists()  # and the one nobody owned (removed whenever the store cleans up)

    def two_classes(name: str, classes: tuple[str, str]) -> bytes:
        folder = tmp_path / name
        for c in classes:
            (folder / c).mkdir(parents=True)
            for p in list((data_dir / "dark").iterdir())[:6]:
                (folder / c / p.name).write_bytes(p.read_bytes())
        return zip_of(folder)

    first, newer = two_classes("first", ("x", "y")), two_classes("newer", ("a", "b"))
    first_file, newer_file = (uploads / f"{hashlib.sha256(z).hexdigest()}.zip" for z in (first, newer))
    at.file_uploader(key="data.upload").upload("rocks.zip", first, "application/zip").run()
    assert not at.exception and first_file.exists() and at.session_state["dataset"] == str(first_file)
    at.file_uploader(key="data.upload").upload("rocks2.zip", newer, "application/zip").run()
    assert not at.exception, [e.value for e in at.exception]
    assert newer_file.exists() and at.session_state["dataset"] == str(newer_file)
    assert not first_file.exists()  # replaced, and nothing was trained on it
    assert str(first_file) not in at.selectbox(key="dataset").options

    monkeypatch.setenv("CNNLAB_UPLOAD_QUOTA_MB", "1")
    big = tmp_path / "big.zip"
    big.write_bytes(newer + b"\0" * (1 << 20))  # not a valid zip past its end, but refused before it is read
    at.file_uploader(key="data.upload").upload("huge.zip", big.read_bytes(), "application/zip").run()
    [error] = [e.value for e in at.error]
    assert error.startswith("'huge.zip' (1.0 MiB) would bring your uploads on this server to ")
    assert "more than the 1.0 MiB each student may keep (CNNLAB_UPLOAD_QUOTA_MB)" in error


def _metric(at, label: str) -> str:
    return next(str(m.value) for m in at.metric if m.label == label)


def test_data_health_shows_imbalance_duplicates_and_the_files_to_drop(open_page, data_dir, tmp_path):
    from core.data import data_health

    folder = tmp_path / "unhealthy"
    shutil.copytree(data_dir, folder)
    for i in range(5, 12):
        (folder / "striped" / f"striped_{i:02d}.png").unlink()  # 5 striped images against 12 and 14
    shutil.copyfile(folder / "dark" / "dark_00.png", folder / "dark" / "dark_copy.png")
    shutil.copyfile(folder / "bright" / "bright_03.png", folder / "dark" / "was_bright.png")  # also a wrong label
    at = open_page("pages/data.py", dataset=str(folder))
    assert not at.exception, [e.value for e in at.exception]
    report = data_health(load_dataset(str(folder), 64))
    text = texts(at)
    assert "Data health" in text
    warnings = [w.value for w in at.warning]
    assert report.imbalance.warning in warnings and "'striped' only" in report.imbalance.warning
    assert "1 pair of duplicates carries different classes" in " ".join(warnings)
    assert _metric(at, "Identical pairs") == "2" and _metric(at, "Near-identical pairs") == "0"
    assert _metric(at, "Pairs across training and validation/test") == str(len(report.leaks))
    assert len(at.image) == 3 + 2 * 2  # the samples per class, then both images of each pair
    assert "`dark/dark_copy.png`" in text and "`dark/was_bright.png`" in text
    drops = [b.proto.label for b in at.get("download_button") if "to remove" in b.proto.label]
    assert len(drops) == (1 if report.drop_list() else 0)


def test_a_healthy_dataset_says_so(open_page, data_dir):
    at = open_page("pages/data.py", dataset=str(data_dir))
    assert not at.exception
    counts = prepare_data(load_dataset(str(data_dir), 64)).class_counts["train"]  # 8, 7, 7 with the default seed
    ratio = max(counts) / min(counts)
    assert any(f"has {ratio:.2f} times the training images" in s.value for s in at.success) and ratio < 1.5
    assert _metric(at, "Identical pairs") == "0" and _metric(at, "Near-identical pairs") == "0"
    assert not [b for b in at.get("download_button") if "to remove" in b.proto.label]
    # After a training, the images most likely mislabelled are on Predictions: the health section links there.
    links = [el for el in at.get("page_link") if el.proto.page == "predictions"]
    assert len(links) == 1 and "doubts most" in links[0].proto.label
