"""The synthetic sample data: the generator is deterministic and the shipped files match it.

Fast (a few seconds): reads every shipped PNG once, regenerates a handful of
images and one tiny dataset, and fits one logistic regression on six numbers
per image.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.base.config import ConfigError
from synth import (
    DATASETS,
    SAMPLE_DATA_DIR,
    generate_dataset,
    image_filename,
    make_image,
    png_bytes,
)
from synth.__main__ import main as cli_main

NAMES = list(DATASETS)
SHIPPED_COUNTS = {"thin_sections": (5, 200), "seismic_facies": (4, 150), "drill_core": (3, 60)}


def _pngs(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.png"))


def _datasheet_rows(name: str) -> list[tuple[int, str, int]]:
    """(label, class, images) rows of the datasheet's Classes table."""
    text = (SAMPLE_DATA_DIR / name / "README.md").read_text(encoding="utf-8")
    section = text.split("## Classes", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| (\d+) \| ([a-z_]+) \| (\d+) \|", section, flags=re.M)
    return [(int(a), b, int(c)) for a, b, c in rows]


# --- the shipped files -----------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_classes_txt_matches_class_folders(name: str) -> None:
    root = SAMPLE_DATA_DIR / name
    listed = (root / "classes.txt").read_text(encoding="utf-8").splitlines()
    folders = sorted(p.name for p in root.iterdir() if p.is_dir())
    assert listed == list(DATASETS[name].classes)
    assert sorted(listed) == folders
    n_classes, per_class = SHIPPED_COUNTS[name]
    assert len(listed) == n_classes
    assert [len(_pngs(root / c)) for c in listed] == [per_class] * n_classes


def test_thin_sections_is_the_course_setup() -> None:
    root = SAMPLE_DATA_DIR / "thin_sections"
    classes = (root / "classes.txt").read_text(encoding="utf-8").split()
    assert classes == ["sandstone", "limestone", "shale", "granite", "basalt"]
    assert sum(len(_pngs(root / c)) for c in classes) == 1000


@pytest.mark.parametrize("name", NAMES)
def test_datasheet_counts_equal_files_on_disk(name: str) -> None:
    root = SAMPLE_DATA_DIR / name
    rows = _datasheet_rows(name)
    assert [c for _, c, _ in rows] == list(DATASETS[name].classes)
    assert [label for label, _, _ in rows] == list(range(len(rows)))
    for _, cls, count in rows:
        assert count == len(_pngs(root / cls)), cls
    text = (root / "README.md").read_text(encoding="utf-8")
    total = sum(c for _, _, c in rows)
    assert f"| images | {total} (" in text
    assert "SYNTHETIC" in text
    spec = DATASETS[name]
    assert f"python -m synth --dataset {name} --seed 42 --per-class {spec.per_class} --size 64" in text


@pytest.mark.parametrize("name", NAMES)
def test_every_shipped_image_opens_has_the_right_size_and_is_not_blank(name: str) -> None:
    spec = DATASETS[name]
    files = [p for c in spec.classes for p in _pngs(SAMPLE_DATA_DIR / name / c)]
    assert len(files) == spec.per_class * len(spec.classes)
    stds = []
    for path in files:
        with Image.open(path) as im:
            assert im.format == "PNG"
            assert im.size == (64, 64), path
            assert im.mode == spec.mode, path
            px = np.asarray(im, dtype=np.float64)
        # Not blank, not a flat colour, not mostly clipped to black or white.
        stds.append(px.std())
        assert px.std() > 8.0, path
        assert np.mean((px == 0) | (px == 255)) < 0.5, path
    assert np.median(stds) > 20.0


def test_sample_data_stays_small() -> None:
    total = sum(p.stat().st_size for p in SAMPLE_DATA_DIR.rglob("*") if p.is_file())
    assert total < 30 * 2**20


def test_colour_statistics_do_not_give_thin_sections_away() -> None:
    """Six colour numbers per image must not solve the task (the CNN gets 0.9+)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    spec = DATASETS["thin_sections"]
    feats, labels = [], []
    for label, cls in enumerate(spec.classes):
        for path in _pngs(SAMPLE_DATA_DIR / "thin_sections" / cls):
            px = np.asarray(Image.open(path), dtype=np.float64) / 255.0
            feats.append(np.concatenate([px.mean(axis=(0, 1)), px.std(axis=(0, 1))]))
            labels.append(label)
    x, y = np.asarray(feats), np.asarray(labels)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.2, random_state=42, stratify=y)
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(x_tr, y_tr)
    acc = clf.score(x_te, y_te)
    assert acc <= 0.70, f"colour statistics alone reach {acc:.3f}"
    assert acc >= 0.15  # sanity: the features and labels line up (chance is 0.2)


# --- determinism -----------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_make_image_reproduces_shipped_files_byte_for_byte(name: str) -> None:
    spec = DATASETS[name]
    picks = [(spec.classes[0], 0), (spec.classes[-1], spec.per_class - 1), (spec.classes[1], 17)]
    for cls, index in picks:
        path = SAMPLE_DATA_DIR / name / cls / image_filename(cls, index)
        pixels = make_image(name, cls, index)
        shipped = np.asarray(Image.open(path))
        # Pixels first (the generator), then bytes (generator + PNG encoder).
        np.testing.assert_array_equal(pixels, shipped, err_msg=f"pixels differ: {path}")
        assert png_bytes(pixels) == path.read_bytes(), f"PNG bytes differ: {path}"


def test_small_variant_reproduces_the_first_shipped_images(tmp_path: Path) -> None:
    info = generate_dataset("drill_core", tmp_path, per_class=2)
    assert info["counts"] == {c: 2 for c in DATASETS["drill_core"].classes}
    assert info["images"] == 6
    new, shipped = tmp_path / "drill_core", SAMPLE_DATA_DIR / "drill_core"
    assert (new / "classes.txt").read_bytes() == (shipped / "classes.txt").read_bytes()
    for cls in DATASETS["drill_core"].classes:
        files = _pngs(new / cls)
        assert [p.name for p in files] == [image_filename(cls, 0), image_filename(cls, 1)]
        for p in files:
            assert p.read_bytes() == (shipped / cls / p.name).read_bytes(), p.name
    assert "| 0 | intact | 2 |" in (new / "README.md").read_text(encoding="utf-8")


def test_an_image_depends_only_on_its_identity() -> None:
    later = make_image("seismic_facies", "levee_wedge", 5)
    first = make_image("seismic_facies", "levee_wedge", 0)
    assert np.array_equal(make_image("seismic_facies", "levee_wedge", 5), later)
    assert not np.array_equal(first, later)
    assert not np.array_equal(make_image("seismic_facies", "levee_wedge", 5, seed=7), later)
    # Same index and class id in another dataset: a different stream.
    a = make_image("thin_sections", "sandstone", 3)
    b = make_image("drill_core", "intact", 3)
    assert a.shape == b.shape and not np.array_equal(a, b)


def test_png_encoding_has_no_metadata() -> None:
    data = png_bytes(make_image("drill_core", "fractured", 0))
    for chunk in (b"tEXt", b"zTXt", b"iTXt", b"tIME", b"pHYs"):
        assert chunk not in data


# --- knobs, validation, CLI -----------------------------------------------------------


def test_knobs_change_the_images_as_documented() -> None:
    base = make_image("thin_sections", "granite", 1)
    assert base.shape == (64, 64, 3) and base.dtype == np.uint8
    big = make_image("thin_sections", "granite", 1, image_size=128)
    assert big.shape == (128, 128, 3)
    # Same scene at a higher resolution: the downsized big image resembles the small one.
    small_again = np.asarray(Image.fromarray(big).resize((64, 64), Image.BOX), dtype=np.float64)
    other = make_image("thin_sections", "granite", 2).astype(np.float64)
    same_err = np.abs(small_again - base).mean()
    assert same_err < np.abs(other - base).mean() * 0.6
    gray = make_image("seismic_facies", "parallel", 0, image_size=32)
    assert gray.shape == (32, 32)
    clean = make_image("thin_sections", "granite", 1, noise=0.0)
    noisy = make_image("thin_sections", "granite", 1, noise=3.0)
    assert np.abs(np.diff(noisy.astype(float), axis=1)).mean() > np.abs(np.diff(clean.astype(float), axis=1)).mean()
    assert not np.array_equal(make_image("thin_sections", "granite", 1, overlap=1.0), base)


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"overlap": 1.5}, "overlap"),
        ({"noise": -1.0}, "noise"),
        ({"image_size": 8}, "image_size"),
        ({"seed": -3}, "seed"),
        ({"image_size": 64.0}, "image_size"),
    ],
)
def test_bad_knobs_raise_clear_errors(kwargs: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=rf"The '{field}' parameter of make_image must be .* Got"):
        make_image("thin_sections", "shale", 0, **kwargs)


def test_unknown_names_raise_clear_errors() -> None:
    with pytest.raises(ConfigError, match="'name' parameter of make_image must be one of 'thin_sections'"):
        make_image("mudstone_photos", "shale", 0)
    with pytest.raises(ConfigError, match="'class_name' parameter of make_image .* Got 'gabbro'"):
        make_image("thin_sections", "gabbro", 0)


def test_lowering_per_class_removes_stale_images(tmp_path: Path) -> None:
    generate_dataset("drill_core", tmp_path, per_class=3, image_size=32)
    keep = tmp_path / "drill_core" / "intact" / "notes.txt"
    keep.write_text("mine")
    generate_dataset("drill_core", tmp_path, per_class=1, image_size=32)
    assert [p.name for p in _pngs(tmp_path / "drill_core" / "intact")] == ["intact_0000.png"]
    assert keep.exists()  # only the generator's own files are removed


def test_cli_writes_a_variant_and_its_regenerate_command(tmp_path: Path, capsys) -> None:
    code = cli_main(
        [
            "--dataset",
            "seismic_facies",
            "--out",
            str(tmp_path),
            "--per-class",
            "2",
            "--size",
            "32",
            "--noise",
            "2",
            "--overlap",
            "0.5",
            "--seed",
            "3",
        ]
    )
    assert code == 0
    root = tmp_path / "seismic_facies"
    assert sum(len(_pngs(root / c)) for c in DATASETS["seismic_facies"].classes) == 8
    with Image.open(root / "parallel" / "parallel_0001.png") as im:
        assert im.size == (32, 32)
    readme = (root / "README.md").read_text(encoding="utf-8")
    assert (
        f"python -m synth --dataset seismic_facies --seed 3 --per-class 2 --size 32 "
        f"--noise 2 --overlap 0.5 --out {tmp_path}"
    ) in readme
    assert "seismic_facies: 8 images" in capsys.readouterr().out
    assert cli_main(["--dataset", "drill_core", "--out", str(tmp_path), "--overlap", "2"]) == 2
