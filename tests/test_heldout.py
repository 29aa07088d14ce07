"""core.training.heldout: a stored run's validation predictions (kept, or computed once and cached) and its
calibration, on real trained runs: the course-style CNN and the VGG16 transfer model."""

import numpy as np
import pytest
from trainedruns import VGG, VGG_TRAIN

from core.base.config import ModelConfig, TrainConfig
from core.data import load_dataset, prepare_data
from core.results.calibration import fit_temperature, reliability
from core.store.runstore import RunRecord, RunStore
from core.training.heldout import (
    CACHE_KIND,
    HeldOutUnavailable,
    run_calibration,
    stored_validation,
    validation_predictions,
)

CNN = ModelConfig(input_size=16, blocks=1, filters=4, dense_units=8, dropout=0.0)
TRAIN = TrainConfig(epochs=3, batch_size=8, seed=3)  # precision "auto": this machine's default
# The recomputed predictions are checked in both precisions, bfloat16 forced (emulated on a CPU without it).
PRECISIONS = ("bfloat16", "float32")


@pytest.fixture(scope="module")
def home(trained_runs, tmp_path_factory):
    return trained_runs.home(tmp_path_factory.mktemp("heldout"), per_class=16)


@pytest.fixture(scope="module")
def trained(home):
    """``trained(model_cfg, train_cfg)``: the run in this module's store, trained once per session
    (tests/trainedruns.py; an "auto" run is the same run as the precision it resolves to on this machine)."""
    return home


@pytest.fixture(scope="module")
def cnn_run(home):
    return home(CNN, TRAIN)


@pytest.fixture(scope="module")
def vgg_run(home):
    return home(VGG, VGG_TRAIN)


def as_old_run(store: RunStore, rec: RunRecord) -> RunRecord:
    """The run as one stored before validation predictions were kept: its arrays without them, and a
    ``created`` of its own (so its cache entry is its own)."""
    arrays = store.load_arrays(rec.run_id)
    old = RunRecord.from_dict({**rec.to_dict(), "run_id": rec.run_id + "-old", "created": rec.created + 1})
    store.save(old, model=store.load_model(rec.run_id), arrays={k: v for k, v in arrays.items() if "val" not in k})
    return store.get(old.run_id)


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("which", ["cnn", "vgg16"])
def test_a_new_run_keeps_its_validation_predictions_and_an_old_one_gets_the_same(
    which, precision, home, trained, monkeypatch
):
    store, data = home
    cfg, train_cfg = (CNN, TRAIN) if which == "cnn" else (VGG, VGG_TRAIN)
    rec = trained(cfg, train_cfg.replace(precision=precision))
    assert rec.extra["precision"] == precision
    arrays = store.load_arrays(rec.run_id)
    cfg, t = ModelConfig.from_dict(rec.model_config), TrainConfig.from_dict(rec.train_config)
    split = prepare_data(
        load_dataset(data, image_size=cfg.input_size), test_size=t.test_size, val_split=t.val_split, seed=t.seed
    )
    assert arrays["y_val"].tolist() == split.y_val_int.tolist() and len(arrays["y_val"]) == rec.data["n_val"]
    assert arrays["val_probs"].shape == (rec.data["n_val"], len(rec.data["classes"]))

    old = as_old_run(store, rec)
    assert stored_validation(store, old) is None
    y_val, probs = validation_predictions(store, old)  # from the stored model, on the run's own split
    assert y_val.tolist() == arrays["y_val"].tolist()
    np.testing.assert_allclose(probs, arrays["val_probs"], atol=1e-5)
    assert list((store.cache_dir / CACHE_KIND).glob(f"{old.run_id}-*.npz"))

    monkeypatch.setattr(RunStore, "load_model", lambda *a: pytest.fail("the cached predictions were not used"))
    again = validation_predictions(store, old)
    np.testing.assert_array_equal(again[1], probs)


@pytest.mark.parametrize("which", ["cnn_run", "vgg_run"])
def test_the_run_s_calibration_fits_on_validation_and_keeps_the_test_accuracy(which, home, request):
    store, _ = home
    rec = request.getfixturevalue(which)
    arrays = store.load_arrays(rec.run_id)
    cal = run_calibration(store, rec)
    assert cal.temperature == pytest.approx(fit_temperature(arrays["y_val"], arrays["val_probs"]))
    assert cal.before.ece == pytest.approx(reliability(arrays["y_true"], arrays["probs"]).ece)
    assert cal.test_accuracy_before == pytest.approx(rec.test["accuracy"])
    assert cal.test_accuracy_after == cal.test_accuracy_before
    assert cal.val_nll_after <= cal.val_nll_before + 1e-12  # T = 1 is among the candidates
    assert sum(cal.after.counts) == len(arrays["y_true"]) and cal.note == ""


def test_changed_data_or_no_model_gives_the_test_bins_and_says_why(home, cnn_run):
    store, _ = home
    old = as_old_run(store, cnn_run)
    moved = RunRecord.from_dict({**old.to_dict(), "created": old.created + 5})  # no cache entry of its own
    moved.data = {**moved.data, "fingerprint": "images-since-changed"}
    with pytest.raises(HeldOutUnavailable, match="changed since this run was trained"):
        validation_predictions(store, moved)
    cal = run_calibration(store, moved)
    assert cal.temperature is None and cal.after is None
    assert cal.note.startswith("No temperature scaling: The images in") and "Train the run again" in cal.note
    assert cal.before.ece == pytest.approx(
        reliability(cnn_run.test["y_true"], store.load_arrays(old.run_id)["probs"]).ece
    )

    store.model_path(old.run_id).unlink()
    gone = RunRecord.from_dict({**old.to_dict(), "created": old.created + 6})
    assert "no saved network file" in run_calibration(store, gone).note


def test_a_read_only_store_computes_without_keeping(home, cnn_run):
    store, _ = home
    old = as_old_run(store, cnn_run)
    readonly = RunStore(store.home, readonly=True)
    fresh = RunRecord.from_dict({**old.to_dict(), "created": old.created + 7})
    before = set((store.cache_dir / CACHE_KIND).glob("*.npz")) if (store.cache_dir / CACHE_KIND).exists() else set()
    y_val, probs = validation_predictions(readonly, fresh)
    assert len(y_val) == cnn_run.data["n_val"] and probs.shape[0] == len(y_val)
    after = set((store.cache_dir / CACHE_KIND).glob("*.npz")) if (store.cache_dir / CACHE_KIND).exists() else set()
    assert after == before
