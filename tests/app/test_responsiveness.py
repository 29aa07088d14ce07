"""What a class of thirty asks of the server on every rerun is read once (issue 20, bench/bench_load.py).

The sidebar's run list is read again only when the run store changes (a new run shows on the next rerun);
thirty sessions asking for the same dataset at once decode it once; the training-time estimate's image
count does not list the dataset's folder on every rerun.
"""

from __future__ import annotations

import json
import shutil
import threading

from apphelpers import APP, TIMEOUT

from core.store.runstore import RunRecord, RunStore
from ui.feedback import NO_RUN


def _copy_of(rec: RunRecord, run_id: str, label: str, created: float) -> RunRecord:
    data = json.loads(json.dumps(rec.to_dict()))
    data.update(run_id=run_id, key=run_id, label=label, created=created)
    return RunRecord.from_dict(data)


def test_the_sidebar_reads_the_runs_once_and_again_when_a_run_is_stored(trained, empty_home, data_dir, monkeypatch):
    from streamlit.testing.v1 import AppTest

    reads = []
    real = RunStore.list_runs

    def counted(self, *args, **kwargs):
        reads.append(str(self.home))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(RunStore, "list_runs", counted)
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.session_state["dataset"] = str(data_dir)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert NO_RUN in [c.value for c in at.sidebar.caption]
    first = len(reads)
    assert first == 1, reads  # one read for this store as it is

    at.run()  # nothing changed in the store: the sidebar's list comes from the cache
    assert len(reads) == first
    assert NO_RUN in [c.value for c in at.sidebar.caption]

    store = RunStore(empty_home)
    store.save(_copy_of(trained, "fresh00000000001", "a run stored meanwhile", trained.created + 5))
    at.run()  # the store changed: read again, and the new run is in the select
    assert len(reads) == first + 1
    [select] = [s for s in at.sidebar.selectbox if s.label == "Run"]
    assert select.value == "fresh00000000001"
    assert "a run stored meanwhile" in select.format_func(select.value)

    store.save(_copy_of(trained, "fresh00000000002", "a second run", trained.created + 10))
    at.run()
    [select] = [s for s in at.sidebar.selectbox if s.label == "Run"]
    assert select.options[:2] == [select.format_func("fresh00000000002"), select.format_func("fresh00000000001")]


def test_the_store_stamp_changes_with_every_write_and_not_without(trained, tmp_path):
    store = RunStore(tmp_path / "home")
    before = store.stamp()
    assert store.stamp() == before
    store.list_runs()  # a read writes nothing
    assert store.stamp() == before
    store.save(_copy_of(trained, "stamp00000000001", "one", trained.created))
    after = store.stamp()
    assert after != before
    store.delete("stamp00000000001")
    assert store.stamp() != after


def test_sessions_asking_for_one_dataset_at_once_decode_it_once(data_dir, tmp_path, monkeypatch):
    from core.data import clear_cache
    from ui import resources

    monkeypatch.setenv("CNNLAB_HOME", str(tmp_path / "home"))
    folder = tmp_path / "rocks"
    shutil.copytree(data_dir, folder)
    clear_cache()
    together = threading.Barrier(4)
    found = []

    def session():
        together.wait()  # the four ask at once, as a class does after a server start
        found.append(resources.dataset(str(folder), 24, 3))

    threads = [threading.Thread(target=session) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(found) == 4
    # One decoded it; the other three got that very copy (four decodes would be four arrays).
    assert len({id(ds) for ds in found}) == 1
    n = len(found[0])

    # The estimate's image count is the dataset's own, and is remembered: a file added since is in the dataset
    # (its folder is listed again on every call) but not yet in the count (read again after 30 s).
    assert resources.image_count(str(folder), 24, 3) == n
    first_class = sorted(p for p in folder.iterdir() if p.is_dir())[0]
    some_image = sorted(first_class.glob("*.png"))[0]
    shutil.copy(some_image, first_class / "added.png")
    assert len(resources.dataset(str(folder), 24, 3)) == n + 1
    assert resources.image_count(str(folder), 24, 3) == n
    clear_cache()
