"""Real trained runs for the tests that look inside them (test_inside, test_saliency, test_maximise,
test_embedding, test_heldout), each trained once per test session.

``trained_runs.home(root, per_class)`` (the session fixture in tests/conftest.py) gives a module a run store of
its own on the session's tiny dataset with ``per_class`` images per class; calling that home with
``(model_cfg, train_cfg)`` returns the run, trained in the session's store the first time any module asks for
it and copied into the module's store after that (record, model file, arrays, the store's cache). So the VGG16
transfer run that several modules look inside trains once, and every module still keeps its own store: its
caches, kept results and listings are its own.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from tinydata import write_tiny_dataset

from core.base.config import ModelConfig, TrainConfig
from core.store.runstore import RunRecord, RunStore

# The VGG16 transfer model the modules look inside: random base weights (the same arithmetic as ImageNet's), the
# smallest input VGG16 takes, one epoch.
VGG = ModelConfig(model="vgg16", weights="none", input_size=32, dense_units=8)
VGG_TRAIN = TrainConfig(epochs=1, batch_size=16)


class ModuleHome:
    """A module's run store and the session's dataset; ``home(model_cfg, train_cfg)`` is the run in this store."""

    def __init__(self, runs: TrainedRuns, store: RunStore, per_class: int):
        self._runs, self.store, self.per_class = runs, store, per_class
        self.data = runs.data(per_class)

    def __getitem__(self, i: int):  # ``store, data = home``; ``home[0]`` is the store
        return (self.store, self.data)[i]

    def __call__(self, model_cfg: ModelConfig, train_cfg: TrainConfig, min_accuracy: float = 0.0) -> RunRecord:
        """The run of these settings on this home's data, in this home's store (an "auto" precision is the
        precision it resolves to on this machine: the same run); ``min_accuracy``: it must have learned that much
        (test accuracy), as the tests that read what it learned need."""
        trained = self._runs.trained(self.per_class, model_cfg, train_cfg)
        if self.store.get(trained.run_id) is None:
            source = self._runs.store
            self.store.save(
                trained, model=source.model_path(trained.run_id).read_bytes(), arrays=source.load_arrays(trained.run_id)
            )
            # and what its training kept in the store's cache (a VGG16 run's base features, the decoded images):
            # entries are named by their content's key, so another run's are only unused here
            shutil.copytree(source.cache_dir, self.store.cache_dir, dirs_exist_ok=True)
        assert trained.test["accuracy"] >= min_accuracy, trained.test["accuracy"]
        return self.store.get(trained.run_id)

    def open(self, rec: RunRecord):
        """The run opened to look inside (:func:`core.inside.open_run`)."""
        from core.inside import open_run

        return open_run(self.store, rec.run_id)

    def test_images(self, rec: RunRecord) -> tuple:
        """``(images, labels)`` of the run's test split, as stored with it."""
        arrays = self.store.load_arrays(rec.run_id)
        return arrays["test_images"], arrays["y_true"]


class TrainedRuns:
    """The session's tiny datasets (one per ``per_class``) and the runs trained on them, once each."""

    def __init__(self, root: Path):
        self.root = root
        self.store = RunStore(root / "home")
        self._data: dict[int, str] = {}
        self._runs: dict[tuple, RunRecord] = {}

    def data(self, per_class: int) -> str:
        """The tiny 3-class dataset with ``per_class`` images a class (written once)."""
        if per_class not in self._data:
            self._data[per_class] = str(write_tiny_dataset(self.root / f"data{per_class}", per_class=per_class))
        return self._data[per_class]

    def trained(self, per_class: int, model_cfg: ModelConfig, train_cfg: TrainConfig) -> RunRecord:
        """The run in the session's store, trained the first time it is asked for."""
        from core.base.precision import settle_precision
        from core.training.experiment import run_experiment

        train_cfg = settle_precision(model_cfg, train_cfg)
        key = (per_class, model_cfg, train_cfg)
        if key not in self._runs:
            self._runs[key] = run_experiment(self.data(per_class), model_cfg, train_cfg, store=self.store)
        return self._runs[key]

    def home(self, root: Path, per_class: int = 16) -> ModuleHome:
        """A module's own run store under ``root`` on the dataset with ``per_class`` images a class."""
        return ModuleHome(self, RunStore(root / "home"), per_class)
