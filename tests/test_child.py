"""The training process's side of the protocol: a real ``python -m core.jobs FD`` on tiny data, spoken to
over a socket pair as core.jobs.process does (see core/jobs/child.py's docstring for the messages)."""

import ast
import pickle
import socket
import subprocess
import sys
from multiprocessing.connection import Connection
from pathlib import Path

import pytest

from core.base.config import ModelConfig, TrainConfig
from core.base.precision import settle_precision
from core.jobs.child import EXIT_ORPHANED, make_task
from core.jobs.process import child_env
from core.training.experiment import resolve
from core.training.fit import ProgressEvent

ROOT = Path(__file__).resolve().parents[1]
TINY = ModelConfig(input_size=16, blocks=1, filters=4, dense_units=8, dropout=0.0)


class Child:
    """One ``python -m core.jobs`` process and the parent's end of its connection."""

    def __init__(self, stderr=None):
        mine, theirs = socket.socketpair()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "core.jobs", str(theirs.fileno())],
            pass_fds=[theirs.fileno()],
            env=child_env(1),
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stderr=stderr,
            text=True,
        )
        theirs.close()
        self.conn = Connection(mine.detach())

    def messages(self, until=("result", "error"), on_message=None):
        """Every message up to and including the first whose kind is in ``until``."""
        out = []
        while True:
            assert self.conn.poll(300), "the child said nothing for 300 s"
            msg = self.conn.recv()
            out.append(msg)
            if on_message is not None:
                on_message(msg)
            if msg[0] in until:
                return out

    def exit_code(self) -> int:
        """The child's exit code once it ends by itself (the parent's end stays open meanwhile)."""
        code = self.proc.wait(timeout=120)
        self.conn.close()
        return code

    def orphan(self) -> int:
        """Close the parent's end, as a dying server would: the child's exit code."""
        self.conn.close()
        return self.proc.wait(timeout=120)


@pytest.fixture
def task_for(tiny_folder, store):
    def _task(train_cfg: TrainConfig, home=store.home) -> dict:
        train_cfg = settle_precision(TINY, train_cfg)
        ds, model_cfg, key = resolve(str(tiny_folder), TINY, train_cfg, store)
        return make_task(ds, model_cfg, train_cfg, key, str(tiny_folder), None if home is None else str(home))

    return _task


def test_a_training_reports_its_start_progress_and_run_and_stores_it(task_for, store):
    child = Child()
    child.conn.send(("task", task_for(TrainConfig(epochs=2, batch_size=8))))
    msgs = child.messages()
    kinds = [m[0] for m in msgs]
    assert kinds[:2] == ["ready", "took"] and kinds[-1] == "result" and set(kinds[2:-1]) == {"progress"}
    assert msgs[0][1] == {"pid": child.proc.pid, "threads": 1}  # child_env(1): one TensorFlow thread
    events = [m[1] for m in msgs if m[0] == "progress"]
    assert all(isinstance(e, ProgressEvent) for e in events)
    assert [e.epoch for e in events if e.kind == "epoch"] == [1, 2] and events[-1].kind == "end"
    assert {e.epochs for e in events} == {2}
    result = msgs[-1][1]
    assert result["status"] == "complete" and set(result) == {"run_id", "status"}
    rec = store.get(result["run_id"])
    assert rec is not None and len(rec.history["val_loss"]) == 2 and store.model_path(rec.run_id).exists()
    assert child.exit_code() == 0


def test_without_a_store_the_child_answers_the_artifacts(task_for, store):
    child = Child()
    child.conn.send(("task", task_for(TrainConfig(epochs=1, batch_size=8), home=None)))
    result = child.messages()[-1][1]
    art = result["artifacts"]
    assert art["record"]["run_id"] == result["run_id"] and art["record"]["status"] == "complete"
    assert art["model"][:2] == b"PK"  # the .keras file (a zip) as bytes
    assert set(art["arrays"]) == {"test_images", "y_true", "probs", "test_index", "y_val", "val_probs"}
    assert store.list_runs() == []  # nothing stored: the caller stores it
    assert child.exit_code() == 0


def test_a_stop_message_ends_the_training_as_a_stopped_run(task_for, store):
    child = Child()
    child.conn.send(("task", task_for(TrainConfig(epochs=100, batch_size=8))))

    def stop_after_the_first_epoch(msg):
        if msg[0] == "progress" and msg[1].kind == "epoch" and msg[1].epoch == 1:
            child.conn.send(("stop", None))

    msgs = child.messages(on_message=stop_after_the_first_epoch)
    result = msgs[-1][1]
    assert result["status"] == "stopped"
    epochs = [m[1].epoch for m in msgs if m[0] == "progress" and m[1].kind == "epoch"]
    assert 1 <= len(epochs) <= 2 and len(store.get(result["run_id"]).history["loss"]) == len(epochs)
    assert child.exit_code() == 0


def test_a_bad_config_is_a_user_error_in_one_line(task_for):
    task = task_for(TrainConfig(epochs=1, batch_size=8))
    task["model_config"] = {**task["model_config"], "dropout": 1.5}  # e.g. a hand-edited settings file
    child = Child()
    child.conn.send(("task", task))
    kind, error = child.messages()[-1]
    assert kind == "error" and error["kind"] == "user" and error["detail"] is None
    assert "'dropout' parameter of ModelConfig must be" in error["message"] and "\n" not in error["message"]
    assert child.exit_code() == 0


def test_a_child_whose_parent_goes_away_stops_and_stores_nothing(task_for, store):
    child = Child()
    child.conn.send(("task", task_for(TrainConfig(epochs=100, batch_size=8))))
    child.messages(until=("progress",))  # training
    assert child.orphan() == EXIT_ORPHANED
    assert store.list_runs() == []


def test_a_child_warms_up_before_its_task_and_waits_for_it():
    child = Child(stderr=subprocess.PIPE)
    [(kind, info)] = child.messages(until=("ready",))  # no task sent: it got ready by itself
    assert (kind, info) == ("ready", {"pid": child.proc.pid, "threads": 1})
    maps = Path(f"/proc/{child.proc.pid}/maps")
    if maps.exists():  # Linux: TensorFlow's library is loaded in the waiting process
        assert "libtensorflow" in maps.read_text()
    assert child.proc.poll() is None  # waiting for its task
    assert child.orphan() == EXIT_ORPHANED  # the server went away before a task came: it ends, unused
    assert "found in sys.modules" not in child.proc.stderr.read()  # runpy's warning: the entry is its own module


def test_the_entry_point_is_not_a_command():
    p = subprocess.run([sys.executable, "-m", "core.jobs"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "training process, started by its worker" in p.stderr


PLAIN_CHILD = """
import pickle, sys
from core.jobs.child import run_task, warm_up
warm_up()  # no throwaway training (first_trace) before the task
task = pickle.loads(open(sys.argv[1], "rb").read())
print(repr(run_task(task)["artifacts"]["record"]["history"]))
"""


def test_the_throwaway_training_of_the_warm_up_leaves_the_run_unchanged(task_for, tmp_path):
    task = task_for(TrainConfig(epochs=3, batch_size=8), home=None)
    child = Child()
    child.messages(until=("ready",))  # warmed up ahead of its task: with the throwaway training
    child.conn.send(("task", task))
    warmed = child.messages()[-1][1]["artifacts"]["record"]["history"]
    assert child.exit_code() == 0
    path = tmp_path / "task.pickle"
    path.write_bytes(pickle.dumps(task))
    plain = subprocess.run(
        [sys.executable, "-c", PLAIN_CHILD, str(path)],
        cwd=ROOT,
        env=child_env(1),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert plain.returncode == 0, plain.stderr
    assert warmed == ast.literal_eval(plain.stdout.strip().splitlines()[-1])  # the same seeds, the same numbers
