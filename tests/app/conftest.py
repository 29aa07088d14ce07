"""Fixtures for the dashboard's tests: a stored run, an empty store, and an app opened on a page.

The root conftest points CNNLAB_HOME at a temporary folder for the session, so
the pages' RunStore (ui.resources.store(), keyed by that home) is the one the
fixtures seed. Every test opens app.py (routing, sidebar, state) and switches
to the page under test, as a browser would.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # the pages import core and ui from the repository root
    sys.path.insert(0, str(ROOT))

from apphelpers import APP, FAST, TIMEOUT, TINY  # noqa: E402

from core.base.config import ModelConfig  # noqa: E402


def _root_conftest(config):
    """tests/conftest.py as pytest loaded it (importing it again would make a second CNNLAB_HOME)."""
    for plugin in config.pluginmanager.get_plugins():
        path = getattr(plugin, "__file__", None) or ""
        if Path(path).resolve() == ROOT / "tests" / "conftest.py":
            return plugin
    raise RuntimeError("tests/conftest.py is not loaded")


@pytest.fixture(autouse=True)
def _classroom_server(tmp_path_factory, monkeypatch):
    """As a teacher would start the app for these tests: pytest's temporary folders are the shared data
    folder (CNNLAB_DATA_ROOTS). app.py marks the process as serving (core.base.limits); that ends with the test,
    so the engine's own tests read any path, as the CLI does."""
    monkeypatch.setenv("CNNLAB_DATA_ROOTS", str(tmp_path_factory.getbasetemp()))
    monkeypatch.delenv("CNNLAB_SERVING", raising=False)
    yield
    os.environ.pop("CNNLAB_SERVING", None)


@pytest.fixture(scope="session")
def write_dataset(pytestconfig):
    return _root_conftest(pytestconfig).write_tiny_dataset


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory, write_dataset) -> Path:
    """A tiny 3-class dataset (16x16 PNGs) a 1-block CNN learns in seconds."""
    return write_dataset(tmp_path_factory.mktemp("data") / "tiny")


@pytest.fixture(scope="session")
def five_class_dir(tmp_path_factory, write_dataset) -> Path:
    """Five classes, as the course's network expects (683,845 parameters)."""
    names = ("sandstone", "limestone", "shale", "granite", "basalt")
    return write_dataset(tmp_path_factory.mktemp("data5") / "rocks", classes=names, per_class=6)


@pytest.fixture(scope="session")
def trained(data_dir):
    """A real run in the session's store, trained once: a saved model, test arrays, a diagnosis."""
    from core.store.runstore import RunStore
    from core.training.experiment import run_experiment

    return run_experiment(str(data_dir), TINY, FAST, store=RunStore(_home()))


def _home() -> Path:
    from core.store.runstore import default_home

    return default_home()


@pytest.fixture(scope="session")
def staged(trained):
    """A stored run built by hand: VGG16-style phases, early stopping, an overfitting verdict, no model file.

    Its arrays are the trained run's, so the Predictions page can show images.
    """
    from core.results.diagnosis import diagnose
    from core.store.runstore import RunRecord, RunStore

    loss = [1.0, 0.7, 0.5, 0.35, 0.25, 0.18, 0.12, 0.08]
    val_loss = [1.05, 0.8, 0.62, 0.55, 0.6, 0.7, 0.82, 0.95]
    history = {
        "loss": loss,
        "accuracy": [0.45, 0.6, 0.72, 0.8, 0.87, 0.92, 0.95, 0.97],
        "val_loss": val_loss,
        "val_accuracy": [0.42, 0.55, 0.64, 0.7, 0.69, 0.68, 0.66, 0.65],
    }
    model_cfg = ModelConfig.from_dict(trained.model_config)
    train_cfg = FAST.replace(epochs=8, early_stopping=4, restore_best=True)
    diagnosis = diagnose(
        history, restored_epoch=4, stopped_epoch=8, num_classes=3, model_cfg=model_cfg, train_cfg=train_cfg
    )
    data = dict(trained.to_dict())
    data.update(
        run_id="staged0000000001",
        key="staged0000000001",
        created=trained.created + 1,
        label="staged overfitting run",
        train_config=train_cfg.to_dict(),
        history=history,
        epoch_seconds=[0.1] * 8,
        best_epoch=4,
        stopped_early=True,
        restored_epoch=4,
        phases=[{"name": "head", "first_epoch": 1, "epochs": 5}, {"name": "fine_tune", "first_epoch": 6, "epochs": 3}],
        diagnosis=diagnosis.to_dict(),
    )
    record = RunRecord.from_dict(json.loads(json.dumps(data)))
    store = RunStore(_home())
    store.save(record, arrays=store.load_arrays(trained.run_id))
    return record


@pytest.fixture
def empty_home(tmp_path, monkeypatch):
    """Point the app at a store with no runs."""
    home = tmp_path / "empty-home"
    monkeypatch.setenv("CNNLAB_HOME", str(home))
    return home


@pytest.fixture
def open_page():
    """``open_page("pages/x.py", **session_state)``: app.py run once, then switched to the page."""

    def _open(page: str, **state):
        from streamlit.testing.v1 import AppTest

        at = AppTest.from_file(APP, default_timeout=TIMEOUT)
        for key, value in state.items():
            at.session_state[key] = value
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        if page != "pages/home.py":  # home is the default page
            at.switch_page(page).run()
        return at

    return _open


@pytest.fixture
def idle_worker():
    """Leave the process-wide worker idle after the test (stop and wait for what it started)."""
    from ui.resources import worker

    yield worker()
    w = worker()
    for job in w.jobs():
        if job.active:
            w.stop(job.id, admin=True)
    for job in w.jobs():
        w.wait(job, timeout=120)


def _own_worker(home: Path, **options):
    """A TrainingWorker on ``home`` made the process-wide one for a test; after it, every job it has is stopped
    and waited for, the previous worker is put back and this one is closed (its thread and warm process end).

    Its warm process starts with its first training (``LocalExecutor(lazy=True)``): many of these tests read
    pages and queues and train nothing. The warm start itself is tested in tests/test_process.py, and the page
    tests on the process-wide worker (``get_worker``) go through it."""
    import core.jobs.worker
    from core.jobs.executor import LocalExecutor
    from core.store.runstore import RunStore

    worker = core.jobs.worker.TrainingWorker(RunStore(home), executor=LocalExecutor(lazy=True), **options)
    previous = core.jobs.worker.use_worker(worker)
    try:
        yield worker
    finally:
        for job in worker.jobs():
            if job.active:
                worker.stop(job.id, admin=True)
        for job in worker.jobs():
            worker.wait(job, timeout=120)
        core.jobs.worker.use_worker(previous)
        worker.close()


@pytest.fixture
def private_worker(tmp_path, monkeypatch):
    """A process-wide worker and run store of this test's own: its runs stay out of the session's
    store, whose newest run other page tests expect to be theirs."""
    home = tmp_path / "home"
    monkeypatch.setenv("CNNLAB_HOME", str(home))
    yield from _own_worker(home)


@pytest.fixture
def one_slot(tmp_path, monkeypatch):
    """A process-wide worker of this test's own that trains one job at a time (the queue is what is tested)."""
    home = tmp_path / "home"
    monkeypatch.setenv("CNNLAB_HOME", str(home))
    yield from _own_worker(home, workers=1)
