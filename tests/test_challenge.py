"""core.lab.challenge: a challenge's hidden test split, its budgets, entries scored by the server on real trained
runs (the course CNN and the VGG16 transfer model), the board's ranking and CSV, and a restart."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tinydata import write_tiny_dataset

from core.base.config import ModelConfig, TrainConfig
from core.data import load_dataset
from core.lab.challenge import (
    Budgets,
    ChallengeBoard,
    ChallengeError,
    board_csv,
    hidden_split,
    rank_entries,
)
from core.results.compare import run_metrics
from core.store.runstore import RunStore
from core.training.experiment import run_experiment, run_split

CNN = ModelConfig(input_size=16, blocks=1, filters=4, dense_units=8, dropout=0.0)
TRAIN = TrainConfig(epochs=3, batch_size=8, seed=3)
PER_CLASS = 20


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    root = tmp_path_factory.mktemp("challenge")
    data = write_tiny_dataset(root / "data", per_class=PER_CLASS)
    store = RunStore(root / "home")
    board = ChallengeBoard(store)
    ch = board.create(
        "Stripes", str(data), Budgets(max_params=2000, max_epochs=4, max_trainings=2), brief="Tell the stripes apart."
    )
    return store, board, ch, data


@pytest.fixture(scope="module")
def cnn_run(home):
    store, _, ch, _ = home
    return run_experiment(ch.public, CNN, TRAIN, store=store)


def test_the_hidden_split_is_stratified_seeded_and_never_in_the_students_data(home):
    store, board, ch, data = home
    hidden = set(board._hidden_files(ch.id))
    every = load_dataset(str(data), image_size=16)
    public = load_dataset(ch.public, image_size=16)
    assert ch.hidden_count == len(hidden) == 3 * 4  # 20 % of 20 images, in each of 3 classes
    assert ch.public_count == len(public) == 3 * PER_CLASS - 12
    assert public.class_names == every.class_names == ch.classes
    assert set(public.files).isdisjoint(hidden) and set(public.files) | hidden == set(every.files)
    for name in ch.classes:  # stratified: 4 of each class hidden
        assert sum(f.startswith(f"{name}/") for f in hidden) == 4
    # what a student's run trains, validates and tests on: the public folder, split as any dataset
    split = run_split(public, TRAIN)
    seen = {public.files[i] for part in (split.x_train, split.x_val, split.x_test) for i in part.index}
    assert seen and seen.isdisjoint(hidden)
    # no hidden picture reaches the students' folder under another name either
    hidden_pixels = {every.images[every.files.index(f)].tobytes() for f in hidden}
    assert not any(img.tobytes() in hidden_pixels for img in public.images)
    assert not any(Path(ch.public).rglob("*.json"))  # the hidden names live in the store's SQLite only
    # seeded: the same seed draws the same images, another seed others
    labels = every.labels
    assert np.array_equal(hidden_split(labels, 0.2, 7), hidden_split(labels, 0.2, 7))
    assert not np.array_equal(hidden_split(labels, 0.2, 7), hidden_split(labels, 0.2, 8))


def test_a_class_of_one_image_no_title_and_a_zero_budget_are_refused(tmp_path, store):
    with pytest.raises(ChallengeError, match="at least 2 images"):
        hidden_split(np.array([0, 0, 0, 1]), 0.2, 0)
    with pytest.raises(ChallengeError, match="title"):
        ChallengeBoard(store).create("  ", "thin_sections")
    with pytest.raises(ChallengeError, match="whole number"):
        Budgets(max_epochs=0)


def test_budget_reasons_name_each_control_that_breaks_them(home):
    _, board, ch, _ = home
    assert board.budget_reasons(ch, CNN, TRAIN, owner="ann") == {}
    big = ModelConfig(input_size=16, blocks=2, filters=16, dense_units=64)
    reasons = board.budget_reasons(ch, big, TrainConfig(epochs=5), owner="ann")
    assert set(reasons) == {"parameters", "epochs"}
    assert "at most 2,000" in reasons["parameters"] and "This network has" in reasons["parameters"]
    assert reasons["epochs"] == "This training runs up to 5 epochs; the challenge allows at most 4 epochs."
    vgg = ModelConfig(model="vgg16", weights="none", input_size=32, dense_units=8)
    fine = board.budget_reasons(ch, vgg, TrainConfig(epochs=3, fine_tune_epochs=2))
    assert "up to 5 epochs" in fine["epochs"] and "parameters" in fine  # VGG16's 14.7 M parameters


def independent_accuracy(store, rec, data: Path, hidden: list[str]) -> float:
    """The hidden images read with Pillow, predicted by the stored .keras file (16 x 16 PNGs: no resizing)."""
    import keras

    model = keras.models.load_model(store.model_path(rec.run_id))
    classes = rec.data["classes"]
    x = np.stack([np.asarray(Image.open(data / f).convert("RGB"), dtype=np.float32) / 255.0 for f in hidden])
    y = np.array([classes.index(f.split("/")[0]) for f in hidden])
    return float(np.mean(np.argmax(model.predict(x, verbose=0), axis=1) == y))


def test_an_entry_is_scored_on_the_hidden_split_and_students_see_only_validation_before_the_reveal(home, cnn_run):
    store, board, ch, data = home
    public = board.enter(ch.id, "name:ann", cnn_run.run_id)  # a student who logged in as "ann"
    assert "score" not in public and "correct" not in public
    assert public["params"] == cnn_run.layers["total_params"] and public["epochs"] == 3
    [mine] = board.board(ch.id, teacher=True)
    expected = independent_accuracy(store, cnn_run, Path(data), board._hidden_files(ch.id))
    assert mine.score == pytest.approx(expected)
    assert mine.name == "ann" and mine.run_id == cnn_run.run_id  # the teacher reads the student's name
    [seen] = board.board(ch.id)  # a student, before the reveal: validation only, an animal's name
    assert seen.score is None and seen.run_id is None and seen.name != "ann"
    assert seen.val_accuracy == run_metrics(cnn_run)["best_val_accuracy"] is not None
    text = board_csv(board.board(ch.id))
    assert text.splitlines()[0] == "rank,student,validation accuracy,parameters,epochs,training seconds,runs entered"
    assert "ann" not in text and not any(f in text for f in board._hidden_files(ch.id))
    with pytest.raises(ChallengeError, match="already"):
        board.enter(ch.id, "name:ann", cnn_run.run_id)
    # the projector is anonymous even for the teacher, and shows no score before the reveal
    [shown] = board.board(ch.id, teacher=True, projector=True)
    assert shown.name == seen.name and shown.score is None


def test_the_vgg16_transfer_model_is_scored_through_its_own_preprocessing(home, cnn_run):
    store, board, ch, _ = home
    vgg = ModelConfig(model="vgg16", weights="none", input_size=32, dense_units=8)
    roomy = board.create("Any size", ch.source, Budgets(max_epochs=2))
    public_run = run_experiment(roomy.public, vgg, TrainConfig(epochs=1, batch_size=16), store=store)
    with pytest.raises(ChallengeError, match="other data"):
        board.enter(roomy.id, "bob", cnn_run.run_id)  # trained on the first challenge's images
    board.enter(roomy.id, "bob", public_run.run_id)
    correct, total = board.hidden_correct(roomy, public_run)
    [row] = board.board(roomy.id, teacher=True)
    assert total == roomy.hidden_count and row.score == correct / total
    # the same images through the model's own preprocessing, computed here from the stored model
    from core.models import model_input

    every = load_dataset(ch.source, image_size=32)
    index = [every.files.index(f) for f in board._hidden_files(roomy.id)]
    model = store.load_model(public_run.run_id)
    x = model_input(vgg, every.images[index].astype("float32") / 255.0)
    assert correct == int(np.sum(np.argmax(model.predict(x, verbose=0), axis=1) == every.labels[index]))


def test_budgets_refuse_an_entry_and_the_deadline_closes_the_challenge(home, cnn_run):
    store, board, ch, _ = home
    over = run_experiment(ch.public, CNN, TrainConfig(epochs=5, batch_size=8, seed=3), store=store)
    with pytest.raises(ChallengeError, match="at most 4 epochs"):
        board.enter(ch.id, "cid", over.run_id)
    late = board.create("Late", ch.source, deadline=1000.0)
    with pytest.raises(ChallengeError, match="closed"):
        board.enter(late.id, "cid", cnn_run.run_id)
    one = board.create("One each", ch.source, Budgets(max_trainings=1), deadline=4e9)  # open until 2096
    run = run_experiment(one.public, CNN, TRAIN, store=store)
    board.enter(one.id, "dee", run.run_id)
    assert "trainings" not in board.budget_reasons(one, CNN, TRAIN, owner="dee")  # trainings count jobs, not entries
    other = run_experiment(one.public, CNN, TrainConfig(epochs=2, batch_size=8, seed=4), store=store)
    with pytest.raises(ChallengeError, match="You have entered 1 run in this challenge, its limit"):
        board.enter(one.id, "dee", other.run_id)
    board.enter(one.id, "eve", other.run_id)  # the limit is each student's
    # what the top runs did differently: told only once revealed (or closed), against the class's median run
    assert board.differences(one.id) is None
    closed = board.differences(one.id, now=4e9 + 1)  # after the deadline: ranked as students see it, by validation
    by_val = [r.name for r in board.board(one.id)]
    assert closed["names"] == [by_val[1], by_val[0]] and closed["ranks"] == [2, 1]
    board.reveal(one.id)
    diff = board.differences(one.id)
    ranked = board.board(one.id, teacher=True)
    assert diff["run_ids"] == [ranked[1].run_id, ranked[0].run_id]  # the median (of two: the second), then the top
    assert diff["names"] == [r.name for r in board.board(one.id)][::-1]
    by_run = {run.run_id: (3, 3), other.run_id: (2, 4)}
    settings = {row["key"]: row["values"] for row in diff["rows"]}
    assert settings["train.epochs"] == [by_run[r][0] for r in diff["run_ids"]]
    assert settings["train.seed"] == [by_run[r][1] for r in diff["run_ids"]]
    assert all(row["differs"] for row in diff["rows"]) and "model.filters" not in settings


def entry(owner, val, correct, params, entered):
    return {
        "owner": owner,
        "val_accuracy": val,
        "correct": correct,
        "hidden_count": 10,
        "params": params,
        "entered": entered,
    }


def test_the_ranking_takes_each_students_best_and_breaks_ties_by_fewer_parameters():
    entries = [
        entry("ann", 0.9, 7, 5000, 1),
        entry("ann", 0.6, 9, 5000, 2),  # ann's best on the hidden split, her worst on validation
        entry("bob", 0.8, 9, 3000, 3),  # ties ann's hidden score with fewer parameters
        entry("cy", 0.8, 8, 100, 4),
    ]
    revealed = rank_entries(entries, by_score=True)
    assert [(e["owner"], e["correct"], n) for e, n in revealed] == [("bob", 9, 1), ("ann", 9, 2), ("cy", 8, 1)]
    hidden = rank_entries(entries, by_score=False)  # before the reveal: validation picks and ranks
    assert [(e["owner"], e["val_accuracy"]) for e, _ in hidden] == [("ann", 0.9), ("cy", 0.8), ("bob", 0.8)]


def test_a_challenge_and_its_entries_survive_a_restart(home, cnn_run):
    store, board, ch, _ = home
    before = board.board(ch.id, teacher=True)
    again = ChallengeBoard(RunStore(store.home))  # a new server process: new store, new board
    assert [c.id for c in again.list()][-1] == ch.id and again.get(ch.id) == board.get(ch.id)
    assert again.board(ch.id, teacher=True) == before
    names = [r.name for r in again.board(ch.id)]
    assert names == [r.name for r in board.board(ch.id)]  # the animals are kept
    opened = again.reveal(ch.id, names=True)
    assert opened.revealed and opened.names_revealed
    text = board_csv(board.board(ch.id))
    assert "hidden test accuracy" in text.splitlines()[0] and "ann" in text


def test_a_challenges_time_budget_stops_a_real_training_keeps_its_best_epoch_and_says_why(home, monkeypatch):
    from core.base.tables import plural
    from core.store.challenges import time_budget_for
    from core.training.experiment import stop_reason
    from core.training.fit import predict_proba

    store, board, ch, _ = home
    timed = board.create("Against the clock", ch.source, Budgets(max_seconds=3))
    monkeypatch.setenv("CNNLAB_MAX_TRAIN_SECONDS", "0")  # the server sets none: the challenge's holds
    assert time_budget_for(store, timed.public) == (3.0, timed)
    budget, other = time_budget_for(store, ch.public)
    assert budget is None and other.id == ch.id  # another challenge, without a time budget
    cfg = TrainConfig(epochs=500, batch_size=4, seed=5)  # half a minute or more without the budget
    rec = run_experiment(timed.public, CNN, cfg, store=store)
    n = len(rec.history["loss"])
    assert rec.status == "stopped" and 1 <= n < 500 and not rec.stopped_by_user
    assert rec.extra["challenge"] == timed.id and rec.extra["time_budget"] == 3.0
    assert rec.extra["time_budget_by"] == "challenge"
    assert stop_reason(rec) == (
        f"Stopped: the challenge's time budget of 3 s per training was reached after {plural(n, 'epoch')}."
    )
    best = int(np.argmin(rec.history["val_loss"])) + 1
    assert rec.best_epoch == rec.restored_epoch == best  # the keep-best rule: the best epoch's weights
    data = run_split(load_dataset(timed.public, image_size=16), TrainConfig.from_dict(rec.train_config))
    probs = predict_proba(store.load_model(rec.run_id), data.x_val)
    kept_loss = float(-np.mean(np.log(probs[np.arange(len(probs)), data.y_val_int])))
    assert kept_loss == pytest.approx(rec.history["val_loss"][best - 1], rel=5e-3)  # the stored model is that epoch's
    # the smaller of the two wins: a server limit below the challenge's is the one a training gets
    monkeypatch.setenv("CNNLAB_MAX_TRAIN_SECONDS", "2")
    assert time_budget_for(store, timed.public) == (2.0, timed)
    monkeypatch.setenv("CNNLAB_MAX_TRAIN_SECONDS", "60")
    assert time_budget_for(store, timed.public)[0] == 3.0


def test_the_worker_holds_a_students_trainings_to_the_challenges_budgets(home):
    from core.jobs import JobTable, TrainingWorker
    from core.jobs.challenge_rules import SetAside
    from core.lab import OverBudget

    store, board, ch0, _ = home
    ch = board.create("One try", ch0.source, Budgets(max_params=2000, max_epochs=2, max_trainings=1))
    w = TrainingWorker(store)
    big, one = CNN.replace(dense_units=512), TrainConfig(epochs=1, batch_size=8, seed=11)
    with pytest.raises(OverBudget, match="the challenge allows at most 2,000"):
        w.submit(ch.public, big, one, owner="name:ann")
    with pytest.raises(OverBudget, match="This training runs up to 3 epochs; the challenge allows at most 2 epochs."):
        w.submit(ch.public, CNN, one.replace(epochs=3), owner="name:ann")
    with pytest.raises(OverBudget, match="the most it allows each student"):  # a sweep of two past one training
        w.submit_many(ch.public, [(CNN, one), (CNN, one.replace(seed=12))], owner="name:ann")
    assert not w.jobs()  # nothing was queued
    first = w.submit(ch.public, CNN, one, owner="name:ann")
    assert first.challenge == ch.id and JobTable(store).get(first.id)["challenge"] == ch.id  # the job carries it
    w.wait(first, timeout=180)
    assert first.result is not None and first.result.extra["challenge"] == ch.id  # and so does its run
    assert board.trainings_of(ch.id, "name:ann") == 1
    said = board.budget_reasons(ch, CNN, one, owner="name:ann")["trainings"]
    assert said.startswith("You have started 1 training on this challenge's images")
    with pytest.raises(OverBudget, match="You have started 1 training"):
        w.submit(ch.public, CNN, one.replace(seed=12), owner="name:ann")
    again = w.submit(ch.public, CNN, one, owner="name:ann")  # the stored run comes back: nothing trains
    assert again.snapshot().cached and board.trainings_of(ch.id, "name:ann") == 1
    assert board.trainings_of(ch.id, "name:bob") == 0 and "trainings" not in board.budget_reasons(
        ch, CNN, one, "name:bob"
    )
    # the teacher is held to nothing (admin); a student's trainings must be on the challenge's images
    teacher = w.submit(ch.public, big, one.replace(seed=13), owner="teacher:ms stone", admin=True)
    assert teacher.challenge == ch.id
    w.stop(teacher.id, admin=True)
    w.wait(teacher, timeout=120)
    with pytest.raises(SetAside):  # nor around them on the teacher's data, where the hidden images are
        w.submit(ch0.source, big, one.replace(epochs=3), owner="name:ann")


def test_the_teacher_edits_and_deletes_a_challenge_and_the_students_runs_stay(home):
    store, board, ch0, _ = home
    made = board.create("Draft", ch0.source, Budgets(max_epochs=2), brief="first words")
    hidden = board._hidden_files(made.id)
    edited = board.update(
        made.id, title=" Final ", brief="Few parameters win.", budgets=Budgets(max_epochs=5, max_seconds=30)
    )
    assert (edited.title, edited.brief) == ("Final", "Few parameters win.")
    assert edited.budgets == Budgets(max_epochs=5, max_seconds=30.0) and edited.deadline is None
    assert edited.public == made.public and board._hidden_files(made.id) == hidden  # the data stays as made
    assert board.update(made.id, deadline=4e9).deadline == 4e9 and board.get(made.id).title == "Final"
    with pytest.raises(ChallengeError, match="title"):
        board.update(made.id, title="  ")
    with pytest.raises(ChallengeError, match="above 0"):
        Budgets(max_seconds=0)
    run = run_experiment(made.public, CNN, TrainConfig(epochs=1, batch_size=8, seed=21), store=store)
    board.enter(made.id, "name:ann", run.run_id)
    assert board.delete(made.id).title == "Final"
    assert made.id not in [c.id for c in board.list()]
    with pytest.raises(ChallengeError, match="no challenge"):
        board.board(made.id)
    assert board.entries_of(made.id, "name:ann") == 0 and board.for_source(made.public) is None
    assert store.get(run.run_id) is not None and Path(made.public).is_dir()  # the student's run and images stay
    with pytest.raises(ChallengeError, match="no challenge"):
        board.delete(made.id)


def test_a_challenges_own_data_is_set_aside_from_students_until_the_reveal(home, tmp_path):
    from core.data import SAMPLE_DATA_DIR
    from core.jobs import TrainingWorker
    from core.jobs.challenge_rules import SetAside, check_not_withheld, data_folder, withheld

    store, board, _, _ = home
    data = write_tiny_dataset(tmp_path / "secret", per_class=6)
    ch = board.create("Secret", str(data))
    for source in (str(data), str(data / "dark"), str(tmp_path), str(data / ".." / "secret")):  # itself, in, around
        assert withheld(store, source) == ch, source
    assert withheld(store, ch.public) is None and withheld(store, "drill_core") is None  # the students' folder
    assert data_folder("drill_core") == str((Path(SAMPLE_DATA_DIR) / "drill_core").resolve())  # a bundled name's
    with pytest.raises(SetAside, match="set aside for the challenge 'Secret' until your teacher reveals its scores"):
        check_not_withheld(store, str(data))
    w = TrainingWorker(store)
    with pytest.raises(SetAside):  # a student's training on it, from any page or link
        w.submit(str(data), CNN, TRAIN, owner="name:ann")
    assert not w.jobs()
    board.reveal(ch.id)
    assert withheld(store, str(data)) is None
    board.reveal(ch.id, scores=False)
    assert withheld(store, str(data)) == ch
    board.delete(ch.id)  # a deleted challenge sets nothing aside
    assert withheld(store, str(data)) is None
