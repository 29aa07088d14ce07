"""core.data.health: class counts per split, the imbalance warning, and duplicates planted in a real folder of PNGs
found within and across the split training makes (checked against prepare_data's own split)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image
from tinydata import run_cli, write_tiny_dataset

import core.data as data
from core.data import DataError, Dataset, data_health, load_dataset, prepare_data
from core.data.health import IMBALANCE_RATIO, NEAR_BITS, NEAR_LEVELS, dhash

SIZE = 32  # files and load size


@pytest.fixture(autouse=True)
def _fresh_cache():
    data.clear_cache()
    yield
    data.clear_cache()


def _smooth(rng) -> np.ndarray:
    """A smooth random picture (an 8 x 8 grid of colours, enlarged): a photo-like image, not pixel noise."""
    small = rng.integers(0, 256, (8, 8, 3)).astype(np.uint8)
    return np.asarray(Image.fromarray(small).resize((SIZE, SIZE), Image.Resampling.BICUBIC))


def write_folder(root, counts=(12, 12, 12), seed=0):
    rng = np.random.default_rng(seed)
    for ci, n in enumerate(counts):
        d = root / f"class{ci}"
        d.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            Image.fromarray(_smooth(rng)).save(d / f"img{i:02d}.png")
    return root


def _near_copy(src, dst) -> None:
    """A resized, re-encoded copy: enlarged to 3x, saved as JPEG (quality 70)."""
    img = Image.open(src).convert("RGB")
    img.resize((SIZE * 3, SIZE * 3), Image.Resampling.BILINEAR).save(dst, "JPEG", quality=70)


@pytest.fixture
def planted(tmp_path):
    """A clean folder plus copies: 4 exact (same class), 4 near (same class), 1 exact into another class."""
    root = write_folder(tmp_path / "planted")
    exact = [(f"class{c}/img{i:02d}.png", f"class{c}/copy{i:02d}.png") for c, i in ((0, 1), (0, 2), (1, 3), (2, 4))]
    near = [(f"class{c}/img{i:02d}.png", f"class{c}/near{i:02d}.jpg") for c, i in ((0, 5), (1, 6), (1, 7), (2, 8))]
    for a, b in exact:
        shutil.copyfile(root / a, root / b)
    for a, b in near:
        _near_copy(root / a, root / b)
    shutil.copyfile(root / "class2/img09.png", root / "class1/wrong09.png")  # one picture under two labels
    return root, exact + [("class2/img09.png", "class1/wrong09.png")], near


def _split_of(ds, **kw) -> dict[str, str]:
    """Each file's split, from prepare_data itself (the split training makes)."""
    prep = prepare_data(ds, **kw)
    out = {}
    for name, idx in (("train", prep.train_index), ("val", prep.val_index), ("test", prep.test_index)):
        out.update({ds.files[i]: name for i in idx})
    return out


def _pairs(dup) -> set[frozenset[str]]:
    return {frozenset((p.a.file, p.b.file)) for p in dup.pairs}


def test_dhash_is_one_bit_per_pair_of_horizontal_neighbours():
    ramp = np.tile(np.arange(0, 256, 4, dtype=np.uint8)[None, :, None], (64, 1, 3))  # brighter to the right
    assert int(dhash(ramp[None])[0]) == 2**64 - 1
    assert int(dhash(ramp[None, :, ::-1])[0]) == 0  # darker to the right: no bit set
    half = ramp.copy()
    half[32:] = ramp[32:, ::-1]  # top 4 rows of the 9 x 8 thumbnail rise, the bottom 4 fall
    assert int(dhash(half[None])[0]) == int("1" * 32 + "0" * 32, 2)


def test_planted_duplicates_are_found_within_and_across_splits(planted):
    root, exact, near = planted
    ds = load_dataset(str(root), image_size=SIZE)
    report = data_health(ds, seed=3)
    split = _split_of(ds, seed=3)

    assert _pairs(report.exact) == {frozenset(p) for p in exact}
    assert _pairs(report.near) == {frozenset(p) for p in near}
    assert report.exact.total == len(exact) and report.near.total == len(near)
    for p in (*report.exact.pairs, *report.near.pairs):
        assert (p.a.split, p.b.split) == (split[p.a.file], split[p.b.file])  # the training's split, not another
        assert p.distance <= NEAR_BITS and (p.distance == 0 if p.exact else True)
    # This seed puts planted copies both within one split and across two: both cases are exercised
    assert report.exact.within >= 1 and report.near.across >= 1
    assert report.exact.across + report.near.across == sum(split[a] != split[b] for a, b in exact + near)
    across_first = [p.across for p in report.exact.pairs]
    assert across_first == sorted(across_first, reverse=True)
    leaks = {frozenset((p.a.file, p.b.file)) for p in report.leaks}
    assert leaks == {
        frozenset((a, b)) for a, b in exact + near if "train" in (split[a], split[b]) and split[a] != split[b]
    }
    assert [(p.a.file, p.b.file) for p in report.mislabelled] in (
        [("class1/wrong09.png", "class2/img09.png")],
        [("class2/img09.png", "class1/wrong09.png")],
    )
    # one image of each pair across splits, the one in the later split (never the training one)
    later = ["train", "val", "test"].index
    expected = {max(a, b, key=lambda f: later(split[f])) for a, b in exact + near if split[a] != split[b]}
    assert set(report.drop_list()) == expected and all(split[f] != "train" for f in expected) and expected
    text = " ".join(report.sentences())
    assert f"{len(exact)} pairs of identical images" in text and f"{len(near)} pairs of near-identical images" in text
    assert "1 pair of duplicates carries different classes" in text


def test_a_clean_folder_and_a_bundled_dataset_report_no_duplicates(tmp_path):
    for ds in (load_dataset(str(write_folder(tmp_path / "clean")), image_size=SIZE), load_dataset("drill_core")):
        report = data_health(ds)
        assert (report.exact.total, report.near.total, report.leaks, report.drop_list()) == (0, 0, [], [])
        assert "No identical images." in report.sentences() and "No near-identical images." in report.sentences()


def test_one_shared_pattern_is_not_a_duplicate_when_the_pixels_differ(tmp_path):
    # The tiny dataset's "bright" images are faint noise under one stripe pattern: close dHashes, other pixels.
    ds = load_dataset(str(write_tiny_dataset(tmp_path / "tiny")), image_size=64)
    hashes = dhash(ds.images[ds.labels == ds.class_names.index("bright")])
    apart = np.bitwise_count(hashes[:, None] ^ hashes[None, :])
    assert apart.max() <= NEAR_BITS  # dHash alone would call all 66 pairs near duplicates
    assert data_health(ds, near_levels=255).near.total >= 66
    assert data_health(ds).near.total == 0  # the thumbnails differ by more than NEAR_LEVELS grey levels
    assert NEAR_LEVELS < 6.5


@pytest.mark.parametrize("fraction", [1.0, 0.5])
def test_the_counts_are_the_splits_own(tmp_path, fraction):
    ds = load_dataset(str(write_folder(tmp_path / "c", counts=(20, 12, 9))), image_size=SIZE)
    report = data_health(ds, test_size=0.25, val_split=0.3, seed=7, train_fraction=fraction)
    prep = prepare_data(ds, test_size=0.25, val_split=0.3, seed=7, train_fraction=fraction)
    assert report.counts == {"all": [20, 12, 9], **prep.class_counts}
    assert sum(map(sum, (report.counts[s] for s in ("train", "val", "test")))) == len(prep.train_index) + len(
        prep.val_index
    ) + len(prep.test_index)


def test_imbalance_warns_above_the_ratio_and_names_both_classes(tmp_path):
    ds = load_dataset(str(write_folder(tmp_path / "imb", counts=(30, 10, 12))), image_size=SIZE)
    report = data_health(ds)
    train = report.counts["train"]
    imb = report.imbalance
    assert (imb.largest, imb.smallest) == ("class0", "class1")
    assert imb.ratio == pytest.approx(train[0] / train[1]) and imb.ratio > IMBALANCE_RATIO
    assert imb.warning.startswith("The classes are imbalanced: 'class0' has") and "'class1' only" in imb.warning
    assert f"({imb.ratio:.1f} to 1)" in imb.warning
    assert data_health(ds, imbalance_ratio=10).imbalance.warning is None
    bal = data_health(load_dataset(str(write_folder(tmp_path / "bal", counts=(25, 25, 25))), image_size=SIZE))
    assert bal.counts["train"] == [16, 16, 16]  # 25 - 5 test - 4 validation
    assert bal.imbalance.warning is None and bal.imbalance.ratio == 1.0
    assert bal.imbalance.sentence() == "The classes are balanced: every class has 16 training images."


def test_pairs_past_the_listing_cap_are_counted(tmp_path):
    root = write_folder(tmp_path / "many")
    for i in range(6):
        shutil.copyfile(root / "class0/img00.png", root / f"class0/dup{i}.png")  # 7 copies: 21 pairs
    report = data_health(load_dataset(str(root), image_size=SIZE), max_pairs=2)
    assert report.exact.total == 21 and len(report.exact.pairs) <= 4  # at most 2 across and 2 within
    assert report.exact.across + report.exact.within == 21


def test_a_class_too_small_to_split_still_gets_its_duplicates(tmp_path):
    root = write_folder(tmp_path / "small", counts=(12, 12, 2))
    shutil.copyfile(root / "class0/img00.png", root / "class0/copy.png")
    report = data_health(load_dataset(str(root), image_size=SIZE))
    assert report.split_problem and "class2" in report.split_problem
    assert set(report.counts) == {"all"} and report.exact.total == 1
    assert report.exact.pairs[0].a.split == "all" and not report.leaks


def test_bad_parameters_are_one_clear_error(tmp_path):
    ds = load_dataset(str(write_folder(tmp_path / "p")), image_size=SIZE)
    with pytest.raises(DataError, match=r"'near_bits' parameter of data_health must be an integer in \[0, 64\]"):
        data_health(ds, near_bits=65)
    with pytest.raises(DataError, match="'imbalance_ratio' parameter"):
        data_health(ds, imbalance_ratio=0.5)


def test_cli_health_json_and_text(planted, capsys):
    root, exact, near = planted
    code, out, err = run_cli(capsys, "health", "--data", str(root), "--input-size", str(SIZE), "--seed", "3", "--json")
    assert code == 0 and err == ""
    doc = json.loads(out)
    ds = load_dataset(str(root), image_size=SIZE)
    assert doc["counts"]["all"] == dict(zip(ds.class_names, ds.counts, strict=True))
    assert doc["exact_duplicates"]["total"] == len(exact) and doc["near_duplicates"]["total"] == len(near)
    assert {frozenset((p["a"]["file"], p["b"]["file"])) for p in doc["near_duplicates"]["pairs"]} == {
        frozenset(p) for p in near
    }
    assert doc["split"] == {"test_size": 0.2, "val_split": 0.2, "seed": 3, "train_fraction": 1.0}
    assert doc["sentences"] == data_health(ds, seed=3).sentences()

    code, out, err = run_cli(capsys, "health", "--data", str(root), "--input-size", str(SIZE), "--seed", "3")
    assert code == 0 and "Class" in out and "Training" in out and "near (" in out and "identical" in out
    assert "class1/wrong09.png" in out


def test_cli_health_bad_folder_is_one_line_exit_2(tmp_path, capsys):
    code, out, err = run_cli(capsys, "health", "--data", str(tmp_path / "nothing"))
    assert code == 2 and out == "" and err.count("\n") == 1 and "No dataset at" in err
    code, out, err = run_cli(capsys, "health", "--data", "drill_core", "--val-split", "0.9")
    assert code == 2 and err.count("\n") == 1 and "val_split" in err


def test_images_left_out_by_the_training_fraction_leak_nothing(tmp_path):
    ds = load_dataset(str(write_folder(tmp_path / "f", counts=(20, 20, 20))), image_size=SIZE)
    prep = prepare_data(ds, train_fraction=0.5)  # the split depends on the labels and the seed, not the pixels
    used = np.concatenate([prep.train_index, prep.val_index, prep.test_index])
    unused = np.setdiff1d(np.arange(len(ds)), used)
    images = np.array(ds.images)
    images[unused[0]] = images[prep.test_index[0]]  # a test image's copy that training never sees
    images[unused[1]] = images[prep.train_index[0]]  # a training image's copy that is never scored
    copied = Dataset(images, ds.labels, ds.class_names, [], "copied", "x", ds.files)
    report = data_health(copied, train_fraction=0.5)
    assert report.exact.total == report.exact.across == 2
    assert {frozenset((p.a.split, p.b.split)) for p in report.exact.pairs} == {
        frozenset(("unused", "test")),
        frozenset(("unused", "train")),
    }
    assert report.leaks == [] and report.drop_list() == [] and report.problems() == []
