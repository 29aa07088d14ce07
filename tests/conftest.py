"""Shared test setup: a private run store and quiet TensorFlow for every test session."""

import os
import tempfile

# Before anything imports TensorFlow or the store.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# Each test has a store of its own: measuring the speed (a new process, ~15 s of CPU) or starting a worker with a
# warm training process (TensorFlow loaded) at every app start would swamp the suite; the tests that check them
# turn them on. The pages that train start their worker when they need it, as with CNNLAB_WARM_AT_START=0.
os.environ.setdefault("CNNLAB_MEASURE_SPEED", "0")
os.environ.setdefault("CNNLAB_WARM_AT_START", "0")
_HOME = tempfile.mkdtemp(prefix="cnnlab-tests-")
os.environ["CNNLAB_HOME"] = _HOME

import pytest  # noqa: E402
from tinydata import write_tiny_dataset  # noqa: E402,F401  (tests import it from here too)


@pytest.fixture
def tiny_folder(tmp_path):
    return write_tiny_dataset(tmp_path / "tiny")


@pytest.fixture
def store(tmp_path):
    from core.store.runstore import RunStore

    return RunStore(tmp_path / "home")


@pytest.fixture
def keras_home(tmp_path, monkeypatch):
    """An empty Keras cache folder: no ImageNet weights on this "computer"."""
    home = tmp_path / "keras_home"
    (home / "models").mkdir(parents=True)
    monkeypatch.setenv("KERAS_HOME", str(home))
    return home


@pytest.fixture(scope="module")
def cluster():
    """A real Dask cluster, 2 worker processes on 127.0.0.1, for one test module (test_dask_executor, test_matrix)."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None) as c:
        yield c


@pytest.fixture(autouse=True)
def _workers_closed(monkeypatch):
    """Every training worker a test makes is closed after the test, as a server's is when it stops: its warm
    training process (about 300 MB, TensorFlow loaded) ends instead of waiting for a job until the session ends,
    and its dispatching thread ends instead of writing heartbeats to a store that may be gone. The process-wide
    worker (``get_worker``, shared by the page tests) stays."""
    from core.jobs import worker as worker_module

    made = []
    init = worker_module.TrainingWorker.__init__

    def tracked(self, *args, **kwargs):
        made.append(self)
        init(self, *args, **kwargs)

    monkeypatch.setattr(worker_module.TrainingWorker, "__init__", tracked)
    yield
    for w in made:
        if getattr(w, "_thread", None) is not None and w is not worker_module._worker:  # None: refused settings
            w.close()


@pytest.fixture(scope="session")
def trained_runs(tmp_path_factory):
    """Real runs trained once per session, for the modules that look inside them (tests/trainedruns.py)."""
    from trainedruns import TrainedRuns

    return TrainedRuns(tmp_path_factory.mktemp("trained-runs"))
