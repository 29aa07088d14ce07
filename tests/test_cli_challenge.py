"""``python -m core challenge list|show ID|board ID [--csv] [--json]``: the teacher's view of the challenges from
the run store, on a real entered run; a bad id or a missing one is one line and exit 2."""

import json

import pytest
from tinydata import run_cli, write_tiny_dataset

from core.base.config import ModelConfig, TrainConfig
from core.lab import Budgets, ChallengeBoard
from core.store.runstore import RunStore
from core.training.experiment import run_experiment

CNN = ModelConfig(input_size=16, blocks=1, filters=4, dense_units=8, dropout=0.0)


@pytest.fixture
def entered(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("CNNLAB_HOME", str(home))
    store = RunStore(home)
    board = ChallengeBoard(store)
    data = write_tiny_dataset(tmp_path / "data", per_class=10)
    ch = board.create("Stripes", str(data), Budgets(max_epochs=3, max_seconds=45), brief="Few parameters win.")
    run = run_experiment(ch.public, CNN, TrainConfig(epochs=1, batch_size=8), store=store)
    board.enter(ch.id, "name:ann", run.run_id)
    return board, ch, run


def test_list_show_and_board_read_the_store_as_the_teacher_sees_it(entered, capsys):
    board, ch, run = entered
    code, out, err = run_cli(capsys, "challenge", "list")
    assert code == 0 and not err
    [header, line] = out.splitlines()
    assert header.split() == ["Id", "Title", "Images", "(hidden)", "State", "Runs"]
    assert line.split()[:2] == [ch.id, "Stripes"] and line.split()[-2:] == ["open", "1"]
    assert f"{ch.public_count + ch.hidden_count} ({ch.hidden_count})" in line

    code, out, _ = run_cli(capsys, "challenge", "show", ch.id)
    assert code == 0 and "Few parameters win." in out and "epochs: 3" in out and "seconds per training: 45" in out
    assert f"{ch.hidden_count} (never printed)" in out
    hidden = board._hidden_files(ch.id)
    code, out, _ = run_cli(capsys, "challenge", "show", ch.id, "--json")
    facts = json.loads(out)
    assert facts["budgets"]["max_seconds"] == 45 and facts["hidden_images"] == ch.hidden_count
    assert not any(f in out for f in hidden)

    [row] = board.board(ch.id, teacher=True)
    code, out, _ = run_cli(capsys, "challenge", "board", ch.id)
    assert code == 0 and run.run_id in out and "ann" in out and f"{row.score:.1%}" in out
    assert "not shown to the students yet" in out
    code, out, _ = run_cli(capsys, "challenge", "board", ch.id, "--csv")
    lines = out.splitlines()
    assert lines[0].startswith("rank,student,validation accuracy,hidden test accuracy") and lines[0].endswith(",run")
    assert lines[1].split(",")[1] == "ann" and float(lines[1].split(",")[3]) == round(row.score, 4)
    code, out, _ = run_cli(capsys, "challenge", "board", ch.id, "--json")
    assert json.loads(out)[0]["run_id"] == run.run_id
    assert not any(f in out for f in hidden)


@pytest.mark.parametrize(
    "argv, said",
    [
        (("challenge", "show", "nope"), "There is no challenge 'nope'"),
        (("challenge", "board"), "Say which challenge: 'challenge board ID'"),
        (("challenge", "list", "x1"), "'challenge list' takes no id"),
    ],
)
def test_a_bad_or_missing_id_is_one_line_and_exit_2(entered, capsys, argv, said):
    code, out, err = run_cli(capsys, *argv)
    assert code == 2 and not out and said in err and len(err.strip().splitlines()) == 1


def test_an_empty_store_lists_no_challenge(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CNNLAB_HOME", str(tmp_path / "empty"))
    code, out, err = run_cli(capsys, "challenge", "list")
    assert code == 0 and not err and out.startswith("No challenge yet")
    code, _, err = run_cli(capsys, "challenge", "board", "abc")
    assert code == 2 and "There is no challenge 'abc'" in err
