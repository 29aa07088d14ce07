"""The run store: atomic writes, lookups by key, crash safety, the feature cache."""

import json
import os
import time

import numpy as np
import pytest

from core.store.runstore import RunRecord, RunStore, default_home


def _record(run_id="abc", key="abc", status="complete", acc=0.8, created=None):
    return RunRecord(
        run_id=run_id,
        key=key,
        status=status,
        created=created or time.time(),
        source="thin_sections",
        label="CNN test",
        data={"classes": ["a", "b"], "n_train": 8, "n_val": 2, "n_test": 2, "skipped": []},
        model_config={"model": "cnn"},
        train_config={"epochs": 2},
        layers={"total_params": 10, "trainable_params": 10, "non_trainable_params": 0},
        history={"loss": [1.0, 0.5], "accuracy": [0.5, 0.7], "val_loss": [1.1, 0.9], "val_accuracy": [0.4, 0.6]},
        epoch_seconds=[0.1, 0.1],
        best_epoch=2,
        stopped_early=False,
        stopped_by_user=status == "stopped",
        restored_epoch=None,
        phases=[],
        diagnosis={"verdict": "still_improving"},
        test={"accuracy": acc, "loss": 0.5},
        seconds=0.2,
        versions={},
    )


def test_home_comes_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("CNNLAB_HOME", str(tmp_path / "h"))
    assert default_home() == tmp_path / "h"
    monkeypatch.delenv("CNNLAB_HOME")
    assert "cnnlab" in str(default_home()) and not str(default_home()).startswith(os.getcwd())


def test_save_get_find_list(tmp_path):
    s = RunStore(tmp_path)
    s.save(_record(), arrays={"probs": np.eye(2, dtype=np.float32)})
    got = s.get("abc")
    assert got is not None and got.test["accuracy"] == 0.8 and not got.cached
    assert s.find("abc").run_id == "abc"
    assert s.find("nope") is None
    np.testing.assert_array_equal(s.load_arrays("abc")["probs"], np.eye(2))
    rows = s.list_runs()
    assert [r["run_id"] for r in rows] == ["abc"]
    assert rows[0]["best_val_accuracy"] == 0.6 and rows[0]["epochs_run"] == 2
    # a second store on the same folder sees the same runs (it is on disk)
    assert RunStore(tmp_path).get("abc").history["loss"] == [1.0, 0.5]


def test_stopped_runs_are_listed_but_never_the_cached_answer(tmp_path):
    s = RunStore(tmp_path)
    s.save(_record(run_id="k1-stopped-x", key="k1", status="stopped"))
    assert s.find("k1") is None
    assert s.get("k1-stopped-x").status == "stopped"
    assert len(s.list_runs()) == 1


def test_replacing_a_run_keeps_one_copy(tmp_path):
    s = RunStore(tmp_path)
    s.save(_record(acc=0.1))
    s.save(_record(acc=0.9))
    assert s.get("abc").test["accuracy"] == 0.9
    assert len(s.list_runs()) == 1
    assert not any(p.name.startswith("old-") for p in s.tmp_dir.iterdir())


class Boom:
    """A model whose save dies half way, as a crash during writing would."""

    def save(self, path):
        with open(path, "wb") as fh:
            fh.write(b"half a model")
        raise RuntimeError("disk died")


def test_a_crash_while_writing_leaves_earlier_runs_intact(tmp_path):
    s = RunStore(tmp_path)
    s.save(_record(run_id="old", key="old"))
    with pytest.raises(RuntimeError):
        s.save(_record(run_id="new", key="new"), model=Boom())
    assert s.get("new") is None and s.find("new") is None
    assert not (s.runs_dir / "new").exists()
    assert s.get("old") is not None
    assert list(s.tmp_dir.iterdir()) == []
    # and a crash while replacing a run keeps the old one
    with pytest.raises(RuntimeError):
        s.save(_record(run_id="old", key="old", acc=0.99), model=Boom())
    assert s.get("old").test["accuracy"] == 0.8


def test_a_folder_without_an_index_row_is_not_a_run(tmp_path):
    s = RunStore(tmp_path)
    d = s.runs_dir / "ghost"
    d.mkdir()
    (d / "record.json").write_text(json.dumps(_record(run_id="ghost").to_dict()))
    assert s.get("ghost") is None and s.find("ghost") is None


def test_stale_tmp_leftovers_are_cleaned(tmp_path):
    s = RunStore(tmp_path)
    stale = s.tmp_dir / "dead.1234"
    stale.mkdir()
    old = time.time() - 7 * 3600
    os.utime(stale, (old, old))
    fresh = s.tmp_dir / "live.5678"
    fresh.mkdir()
    RunStore(tmp_path)
    assert not stale.exists() and fresh.exists()


def test_delete(tmp_path):
    s = RunStore(tmp_path)
    s.save(_record())
    assert s.delete("abc") and s.get("abc") is None and not (s.runs_dir / "abc").exists()
    assert not s.delete("abc")


def test_feature_cache_round_trip_and_corruption(tmp_path):
    s = RunStore(tmp_path)
    assert s.cache_get("vgg16", "k") is None
    s.cache_put("vgg16", "k", {"x": np.arange(6, dtype=np.float32).reshape(2, 3)})
    np.testing.assert_array_equal(s.cache_get("vgg16", "k")["x"], np.arange(6).reshape(2, 3))
    (s.cache_dir / "vgg16" / "k.npz").write_bytes(b"garbage")
    assert s.cache_get("vgg16", "k") is None


def test_model_round_trip(tmp_path):
    import keras

    from core.base.config import ModelConfig
    from core.models.builder import build_model

    s = RunStore(tmp_path)
    model = build_model(ModelConfig(input_size=16, blocks=1, filters=4, dense_units=4, num_classes=2))
    s.save(_record(), model=model)
    loaded = s.load_model("abc")
    x = np.random.default_rng(0).random((2, 16, 16, 3), dtype=np.float32)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5)
    assert isinstance(loaded, keras.Model)


# --- Fault injection: a writer killed mid-replace, two writers of one run id -------------------

_KILL_BETWEEN_RENAMES = r"""
import os, signal, sys, time
from pathlib import Path
sys.path[:0] = [{root!r}, {root!r} + "/tests"]
from test_runstore import _record
from core.store.runstore import RunStore

store = RunStore({home!r})
real_rename = Path.rename

def rename(self, target):
    out = real_rename(self, target)
    if Path(target).name.startswith("old-"):  # the old run moved aside, the new one not yet in place
        os.kill(os.getpid(), signal.SIGKILL)
    return out

Path.rename = rename
store.save(_record(run_id="r1", acc=0.99))
"""


def test_a_writer_killed_between_the_two_renames_leaves_the_run_readable(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    root = str(Path(__file__).resolve().parent.parent)
    home = tmp_path / "home"
    RunStore(home).save(_record(run_id="r1", acc=0.5))
    code = _KILL_BETWEEN_RENAMES.format(root=root, home=str(home))
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=root)
    assert p.returncode == -9, p.stderr  # really killed at the worst moment
    assert not (home / "runs" / "r1").exists() and list((home / "tmp").glob("old-r1.*"))
    # A reader in another process (a restarted server) still gets the earlier run, intact.
    rec = RunStore(home).get("r1")
    assert rec is not None and rec.test["accuracy"] == 0.5
    assert [r["run_id"] for r in RunStore(home).list_runs()] == ["r1"]
    # and the same window found by a reader of the live store (no restart) is healed too
    store = RunStore(home)
    subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120, cwd=root)
    assert store.get("r1").test["accuracy"] == 0.5


_SAVE_AT_ONCE = r"""
import sys, time
sys.path[:0] = [{root!r}, {root!r} + "/tests"]
from test_runstore import _record
from core.store.runstore import RunStore

store = RunStore({home!r})
while time.time() < {start}:
    time.sleep(0.0005)
for i in range(150):
    store.save(_record(run_id="same", key="same", acc={acc}))
    assert store.get("same") is not None
print("ok")
"""


def test_two_processes_saving_the_same_run_id_both_succeed(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    root = str(Path(__file__).resolve().parent.parent)
    home = tmp_path / "home"
    RunStore(home)
    start = time.time() + 3
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _SAVE_AT_ONCE.format(root=root, home=str(home), start=start, acc=a)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=root,
        )
        for a in (0.25, 0.75)
    ]
    outs = [p.communicate(timeout=180) for p in procs]
    for p, (out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0 and out.strip() == "ok", err
    store = RunStore(home)
    assert [r["run_id"] for r in store.list_runs()] == ["same"]
    rec = store.get("same")
    assert rec is not None and rec.test["accuracy"] in (0.25, 0.75)
    assert not list((home / "tmp").iterdir())  # nothing left behind


def test_a_writer_that_loses_the_race_for_the_same_run_id_finds_it_stored(tmp_path, monkeypatch):
    """Deterministic form of the race: another writer lands the same run id just before our final rename."""
    from pathlib import Path

    home = tmp_path / "home"
    ours, theirs = RunStore(home), RunStore(home)
    real_rename = Path.rename
    state = {"raced": False}

    def rename(self, target):
        target = Path(target)
        if not state["raced"] and target.parent == home / "runs":
            state["raced"] = True
            theirs.save(_record(run_id="same", acc=0.75))  # the other process wins the race
        return real_rename(self, target)

    monkeypatch.setattr(Path, "rename", rename)
    ours.save(_record(run_id="same", acc=0.25))  # used to raise OSError: Directory not empty
    assert state["raced"]
    rec = RunStore(home).get("same")
    assert rec is not None and rec.test["accuracy"] == 0.75  # the run already stored is the run
    assert [r["run_id"] for r in ours.list_runs()] == ["same"]
    assert ours.list_runs()[0]["test_accuracy"] == 0.75  # the index describes what is on disk
    assert not list((home / "tmp").iterdir())


# --------------------------------------------------------------------------- who sees which runs


def _on(record: RunRecord, source: str) -> RunRecord:
    record.source = source
    return record


def test_runs_on_an_upload_are_listed_only_to_its_uploaders(tmp_path):
    store = RunStore(tmp_path / "home")
    upload = store.save_upload(b"zip bytes", owner="session:alice")
    assert store.save_upload(b"zip bytes", owner="session:carol") == upload  # same bytes, one file, two owners
    store.save(_on(_record("up1", "up1"), str(upload)))
    store.save(_on(_record("shared1", "shared1"), "thin_sections"))
    ids = lambda viewer: [r["run_id"] for r in store.list_runs(viewer=viewer)]  # noqa: E731
    assert sorted(ids("session:alice")) == sorted(ids("session:carol")) == ["shared1", "up1"]
    assert ids("session:bob") == ["shared1"]
    assert sorted(ids(None)) == ["shared1", "up1"]  # the CLI and a teacher
    assert store.may_see(str(upload), "session:alice") and not store.may_see(str(upload), "session:bob")
    assert store.may_see("thin_sections", "session:bob")


def test_an_existing_runs_db_is_migrated(tmp_path):
    import sqlite3

    home = tmp_path / "home"
    store = RunStore(home)
    upload = store.uploads_dir / ("ab" * 32 + ".zip")
    upload.write_bytes(b"old upload")
    store.save(_on(_record("old-up", "old-up"), str(upload)))
    store.save(_on(_record("old-shared", "old-shared"), "thin_sections"))
    with sqlite3.connect(home / "runs.db") as con:  # as a runs.db from before owners looked
        con.execute("DROP INDEX runs_upload")
        con.execute("ALTER TABLE runs DROP COLUMN upload")
        con.execute("DROP TABLE upload_owners")
    migrated = RunStore(home)
    assert [r["run_id"] for r in migrated.list_runs(viewer="session:x")] == ["old-shared"]
    assert sorted(r["run_id"] for r in migrated.list_runs()) == ["old-shared", "old-up"]  # the teacher's
    with sqlite3.connect(home / "runs.db") as con:
        assert con.execute("SELECT upload FROM runs WHERE run_id = 'old-up'").fetchone() == (upload.name,)


def test_a_released_upload_is_deleted_unless_a_run_or_another_owner_keeps_it(tmp_path):
    store = RunStore(tmp_path / "home")
    shared = store.save_upload(b"shared zip", owner="session:alice")
    assert store.save_upload(b"shared zip", owner="session:bob") == shared
    kept = store.save_upload(b"trained on", owner="session:alice")
    store.save(_on(_record("up1", "up1"), str(kept)))
    alone = store.save_upload(b"refused zip", owner="session:alice")
    assert store.release_upload(alone, "session:alice") and not alone.exists()
    assert store.release_upload(shared, "session:alice") and shared.exists()  # bob still has it
    assert store.uploads_of("session:alice") == {kept.name: len(b"trained on")}
    assert not store.release_upload(kept, "session:alice") and kept.exists()  # a run uses it: alice keeps it
    assert store.release_upload(shared, "session:bob") and not shared.exists()
    orphan = store.uploads_dir / ("0" * 64 + ".zip")
    orphan.write_bytes(b"left by a crash")
    RunStore(store.home)  # opening the store cleans up
    assert not orphan.exists() and kept.exists()


def test_an_upload_keeps_the_name_its_owner_gave_it(tmp_path):
    import sqlite3

    home = tmp_path / "home"
    store = RunStore(home)
    upload = store.save_upload(b"zip bytes", owner="name:ada", name="rocks.zip")
    store.save_upload(b"zip bytes", owner="name:bob", name="bobs.zip")
    assert store.upload_names("name:ada") == {str(upload): "rocks.zip"}
    assert store.upload_names("name:bob") == {str(upload): "bobs.zip"}
    store.save_upload(b"zip bytes", owner="name:ada", name="renamed.zip")  # the same bytes again: the new name
    assert store.upload_names("name:ada") == {str(upload): "renamed.zip"}
    with sqlite3.connect(home / "runs.db") as con:  # a runs.db from before names
        con.execute("ALTER TABLE upload_owners DROP COLUMN name")
    migrated = RunStore(home)
    assert migrated.upload_names("name:ada") == {str(upload): upload.name}  # no name kept: the file's
    migrated.save_upload(b"zip bytes", owner="name:ada", name="again.zip")
    assert migrated.upload_names("name:ada") == {str(upload): "again.zip"}
