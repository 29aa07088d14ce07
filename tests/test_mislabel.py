"""core.results.mislabel and core.training.heldout.run_mislabels: held-out images ranked by the probability of
their own label; wrong labels planted in a real folder come out on top after a real training; ``health --run``."""

import json
import shutil

import numpy as np
import pytest
from tinydata import run_cli, write_tiny_dataset

from core.base.config import ModelConfig, TrainConfig
from core.data import load_dataset
from core.results.mislabel import class_thresholds, flagged_classes, rank_mislabels
from core.store.runstore import RunRecord, RunStore
from core.training.experiment import run_experiment, run_split
from core.training.heldout import HeldOutUnavailable, run_mislabels, validation_images

NAMES = ["a", "b", "c"]
# Three classes; held-out images with hand-known probabilities. Labels: val [0, 0, 1], test [1, 2, 2, 0].
VAL = (np.array([0, 0, 1]), np.array([[0.9, 0.05, 0.05], [0.2, 0.7, 0.1], [0.1, 0.8, 0.1]]))
TEST = (
    np.array([1, 2, 2, 0]),
    np.array([[0.3, 0.6, 0.1], [0.1, 0.1, 0.8], [0.6, 0.3, 0.1], [0.5, 0.4, 0.1]]),
)


def test_ranked_by_the_own_label_s_probability_with_the_confident_learning_flag():
    found = rank_mislabels(NAMES, {"val": VAL, "test": TEST}, k=4, files={"test": ["t0", "t1", "t2", "t3"]})
    # Own-label probabilities: val 0.9, 0.2, 0.8; test 0.6, 0.8, 0.1, 0.5. Lowest first.
    assert [(s.split, s.index) for s in found.suspects] == [("test", 2), ("val", 1), ("test", 3), ("test", 0)]
    assert [s.own_probability for s in found.suspects] == pytest.approx([0.1, 0.2, 0.5, 0.6])
    assert [s.predicted for s in found.suspects] == [0, 1, 0, 1]
    assert [s.file for s in found.suspects] == ["t2", None, "t3", "t0"]
    # Thresholds: mean own probability per class over the held-out images labelled with it.
    assert found.thresholds == pytest.approx([(0.9 + 0.2 + 0.5) / 3, (0.8 + 0.6) / 2, (0.8 + 0.1) / 2])
    # Flagged: test #2 (c, p(a)=0.6 >= 0.533) and val #1 (a, p(b)=0.7 >= 0.7); test #3 has p(a)=0.5 < 0.533
    # and p(b)=0.4 < 0.7: nothing confident, so its low own probability alone is not a flag.
    assert [s.flagged_as for s in found.suspects] == [0, 1, None, None]
    assert found.n_flagged == 2 and found.counts == {"val": 3, "test": 4} and found.n == 7
    assert "3 validation images and 4 test images" in found.sentence() and "2 images" in found.sentence()
    d = found.to_dict()
    assert d["suspects"][0]["label_name"] == "c" and d["suspects"][0]["flagged_as_name"] == "a"
    assert d["suspects"][1]["split_name"] == "validation"
    json.dumps(d)


def test_the_flag_against_a_hand_computation_and_ties():
    y = np.array([0, 1, 1])
    p = np.array([[0.6, 0.4], [0.45, 0.55], [0.9, 0.1]])
    t = class_thresholds(y, p)
    assert t == pytest.approx([0.6, 0.325])
    # Image 0: both classes reach their threshold, the more probable is its label; image 1: only its label
    # reaches it; image 2 (labelled 1): class 0 reaches 0.6 and its label does not, so it is flagged as 0.
    assert flagged_classes(y, p, t).tolist() == [-1, -1, 0]
    assert flagged_classes(y, p, [0.4, None]).tolist() == [-1, 0, 0]  # no threshold: class 1 is never confident
    # Ties in probability: validation before test, then by number.
    tie = rank_mislabels(
        ["x", "y"], {"test": (np.array([0, 0]), np.full((2, 2), 0.5)), "val": (y[:1], np.array([[0.5, 0.5]]))}
    )
    assert [(s.split, s.index) for s in tie.suspects] == [("val", 0), ("test", 0), ("test", 1)]


def test_bad_arguments_say_what_was_wrong():
    with pytest.raises(ValueError, match="k must be an integer >= 1. Got 0"):
        rank_mislabels(NAMES, {"test": TEST}, k=0)
    with pytest.raises(ValueError, match="among \\['val', 'test'\\]. Got \\['train'\\]"):
        rank_mislabels(NAMES, {"train": TEST})
    with pytest.raises(ValueError, match="y_true has 2 labels but probs has 4 rows"):
        rank_mislabels(NAMES, {"test": (TEST[0][:2], TEST[1])})
    empty = rank_mislabels(NAMES, {"val": (np.zeros(0, int), np.zeros((0, 3)))})
    assert empty.suspects == [] and empty.sentence() == "There are no held-out images to check."


# --------------------------------------------------------------------------- a real run with planted labels

PLANTED = 8  # striped images copied into the "bright" folder: wrong labels
CNN = ModelConfig(input_size=16, blocks=1, filters=4, dense_units=8, dropout=0.0)
TRAIN = TrainConfig(epochs=8, batch_size=8, seed=3, learning_rate=0.01)


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    root = tmp_path_factory.mktemp("mislabel")
    data = write_tiny_dataset(root / "data", per_class=16)
    for i in range(PLANTED):
        shutil.copy(data / "striped" / f"striped_{i:02d}.png", data / "bright" / f"planted_{i:02d}.png")
    store = RunStore(root / "home")
    return store, data, run_experiment(str(data), CNN, TRAIN, store=store)


def test_planted_wrong_labels_rank_near_the_top(planted):
    store, data, rec = planted
    found = run_mislabels(store, rec, k=50)
    # Every held-out image is ranked, and each split's own-label probabilities are the run's.
    arrays = store.load_arrays(rec.run_id)
    assert found.counts == {"val": rec.data["n_val"], "test": rec.data["n_test"]}
    assert len(found.suspects) == found.n
    test_own = arrays["probs"][np.arange(len(arrays["y_true"])), arrays["y_true"]]
    for s in found.suspects:
        if s.split == "test":
            assert s.own_probability == pytest.approx(float(test_own[s.index]))
    assert [s.own_probability for s in found.suspects] == sorted(s.own_probability for s in found.suspects)
    # The files are the dataset's: the planted copies are where the split put them.
    ds = load_dataset(str(data), image_size=16)
    split = run_split(ds, TrainConfig.from_dict(rec.train_config))
    held_planted = [
        ds.files[i] for i in (*split.val_index, *split.test_index) if ds.files[i].startswith("bright/planted_")
    ]
    assert len(held_planted) >= 3, "the split must put some planted images in validation or test"
    # Criterion: all but at most one of the planted held-out images rank within the top (planted + 2).
    top = [s.file for s in found.suspects[: len(held_planted) + 2]]
    assert sum(f in top for f in held_planted) >= len(held_planted) - 1, (held_planted, top)


def test_validation_images_are_the_run_s_own_and_old_runs_rank_the_same(planted):
    store, data, rec = planted
    images = validation_images(store, rec)
    ds = load_dataset(str(data), image_size=16)
    split = run_split(ds, TrainConfig.from_dict(rec.train_config))
    np.testing.assert_array_equal(images, ds.images[split.val_index])
    # An older run (validation predictions not kept): scored again from its model, the same ranking.
    arrays = store.load_arrays(rec.run_id)
    old = RunRecord.from_dict({**rec.to_dict(), "run_id": rec.run_id + "-old", "created": rec.created + 1})
    store.save(old, model=store.load_model(rec.run_id), arrays={k: v for k, v in arrays.items() if "val" not in k})
    new, again = run_mislabels(store, rec, k=10), run_mislabels(store, store.get(old.run_id), k=10)
    assert [(s.split, s.index, s.file) for s in again.suspects] == [(s.split, s.index, s.file) for s in new.suspects]
    assert [s.own_probability for s in again.suspects] == pytest.approx([s.own_probability for s in new.suspects])


def test_when_the_data_is_gone_only_the_test_images_are_ranked(planted, tmp_path):
    store, data, rec = planted
    moved = RunRecord.from_dict({**rec.to_dict(), "run_id": rec.run_id + "-moved", "source": str(tmp_path / "gone")})
    store.save(moved, model=store.load_model(rec.run_id), arrays=store.load_arrays(rec.run_id))
    found = run_mislabels(store, store.get(moved.run_id), k=5)
    assert found.counts == {"val": 0, "test": rec.data["n_test"]} and all(s.split == "test" for s in found.suspects)
    assert found.note.startswith("Only the test images: The run's images cannot be read again")
    assert all(s.file is None for s in found.suspects)
    with pytest.raises(HeldOutUnavailable, match="cannot be read again"):
        validation_images(store, store.get(moved.run_id))


def test_health_run_json_and_text(planted, capsys, monkeypatch):
    store, data, rec = planted
    monkeypatch.setenv("CNNLAB_HOME", str(store.home))
    code, out, err = run_cli(capsys, "health", "--run", rec.run_id, "--top", "5", "--json")
    assert code == 0 and not err
    got = json.loads(out)
    expected = run_mislabels(store, rec, k=5).to_dict()
    assert got["run_id"] == rec.run_id and got["label"] == rec.label
    assert got["suspects"] == json.loads(json.dumps(expected["suspects"])) and len(got["suspects"]) == 5
    assert got["counts"] == {"val": rec.data["n_val"], "test": rec.data["n_test"]}
    code, out, _ = run_cli(capsys, "health", "--run", rec.run_id, "--top", "3")
    first = got["suspects"][0]
    assert code == 0 and f"1  {first['split_name']} #{first['index']}" in out and first["file"] in out


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["health", "--run", "nope"], "No stored run 'nope'"),
        (["health"], "Say what to check: --data FOLDER"),
        (["health", "--run", "x", "--data", "drill_core"], "not both"),
        (["health", "--run", "x", "--top", "0"], "--top is how many images to list, at least 1. Got 0"),
    ],
)
def test_health_run_errors_are_one_line(argv, needle, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("CNNLAB_HOME", str(tmp_path / "home"))
    code, out, err = run_cli(capsys, *argv)
    assert code == 2 and needle in err and err.count("\n") == 1, err


@pytest.fixture(scope="module")
def vgg_run(planted):
    store, data, _ = planted
    cfg = ModelConfig(model="vgg16", weights="none", input_size=32, dense_units=8)
    return store, run_experiment(str(data), cfg, TrainConfig(epochs=1, batch_size=16), store=store)


def test_a_vgg16_transfer_run_is_ranked_from_its_own_predictions(vgg_run):
    store, rec = vgg_run
    found = run_mislabels(store, rec, k=100)
    arrays = store.load_arrays(rec.run_id)
    own = {
        "test": arrays["probs"][np.arange(len(arrays["y_true"])), arrays["y_true"]],
        "val": arrays["val_probs"][np.arange(len(arrays["y_val"])), arrays["y_val"]],
    }
    assert found.n == rec.data["n_val"] + rec.data["n_test"] == len(found.suspects)
    assert [s.own_probability for s in found.suspects] == pytest.approx(
        sorted(float(v) for split in ("val", "test") for v in own[split])
    )
    assert validation_images(store, rec).shape == (rec.data["n_val"], 32, 32, 3)
