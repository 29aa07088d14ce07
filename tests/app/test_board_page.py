"""The Challenge board page: a teacher (password login) creates a challenge and reveals it; two students train
through the real worker, enter their runs and see the board; nothing of the hidden split reaches a student's
page or CSV before the reveal."""

from __future__ import annotations

from apphelpers import APP, TIMEOUT, TINY, texts
from streamlit.testing.v1 import AppTest

from core.base.config import TrainConfig
from core.lab import ChallengeBoard
from core.store.runstore import RunStore

PASSWORDS = {"class_password": "quartz-42", "teacher_password": "granite-7"}
TRAIN = TrainConfig(epochs=2, batch_size=8)


def _person(password: str, name: str) -> AppTest:
    """A browser logged in with ``name`` and a password: a student's jobs are then "name:<name>"'s."""
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.secrets["cnnlab"] = PASSWORDS
    at.run()
    at.text_input(key="login.name").input(name)
    at.text_input(key="login.password").input(password)
    at.button[0].click().run()
    at.switch_page("pages/board.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _csv(at: AppTest, monkeypatch) -> str:
    """The bytes the board's download button serves: what the page gave Streamlit's media files on a run."""
    from streamlit.runtime.media_file_manager import MediaFileManager

    served = {}
    add = MediaFileManager.add

    def keep(self, data, mimetype, coordinates, file_name=None, is_for_static_download=False):
        served[file_name] = data
        return add(self, data, mimetype, coordinates, file_name, is_for_static_download)

    with monkeypatch.context() as m:
        m.setattr(MediaFileManager, "add", keep)
        at.run()
    [name] = [n for n in served if n and n.startswith("board-")]
    data = served[name]
    return data.decode() if isinstance(data, bytes) else data


def _shown(at: AppTest) -> str:
    frames = [str(df.value.to_dict("records")) + str(list(df.value.columns)) for df in at.dataframe]
    return texts(at) + "\n".join(frames)


def test_two_students_and_a_teacher_on_one_challenge(private_worker, data_dir, monkeypatch):
    teacher = _person(PASSWORDS["teacher_password"], "ms stone")
    teacher.text_input(key="board.title").input("Stripes")
    teacher.text_input(key="board.folder").input(str(data_dir))
    teacher.text_area(key="board.brief").input("Tell the stripes apart with few parameters.")
    teacher.number_input(key="board.epochs").set_value(3)
    teacher.button(key="FormSubmitter:board.new-Create the challenge").click().run()
    assert not teacher.exception, [e.value for e in teacher.exception]
    assert "The challenge 'Stripes' is on the board." in texts(teacher)
    board = ChallengeBoard(RunStore(private_worker.store.home))
    [ch] = board.list()
    hidden = board._hidden_files(ch.id)
    assert ch.budgets.max_epochs == 3 and hidden

    alice, bob = _person(PASSWORDS["class_password"], "alice"), _person(PASSWORDS["class_password"], "bob")
    assert "Tell the stripes apart" in texts(alice) and "At most 3 epochs per training." in texts(alice)
    # the page holds the current settings to the budget before anything trains
    alice.session_state["train_cfg"] = TRAIN.replace(epochs=5)
    alice.run()
    assert any("the challenge allows at most 3 epochs" in w.value for w in alice.warning)

    for at, owner, seed in ((alice, "name:alice", 1), (bob, "name:bob", 2)):
        job = private_worker.submit(ch.public, TINY, TRAIN.replace(seed=seed), owner=owner)
        assert private_worker.wait(job, timeout=300).result is not None, job.error
        at.run()
        assert at.selectbox(key="board.run").options  # only their own run is offered
        at.button(key="board.enter").click().run()
        assert not at.exception and any("Entered as" in s.value for s in at.success), texts(at)
    assert len(alice.selectbox(key="board.run").options) == 1  # Bob's run is not Alice's to enter

    alice.run()
    before = _shown(alice)
    csv_text = _csv(alice, monkeypatch)
    assert (
        csv_text.splitlines()[0] == "rank,student,validation accuracy,parameters,epochs,training seconds,runs entered"
    )
    assert len(csv_text.splitlines()) == 3
    for seen in (before, csv_text):  # no hidden score, no hidden file, no one's id
        assert "Hidden test accuracy" not in seen and "hidden test accuracy" not in seen
        assert not any(f in seen or f.rsplit("/", 1)[-1] in seen for f in hidden)
        assert "name:alice" not in seen and "bob" not in seen  # (Alice's own page says who is logged in)
    teacher.run()
    assert "Hidden test accuracy" in _shown(teacher) and "alice" in _shown(teacher)  # the teacher sees who

    # the projector: anonymous and large, even on the teacher's screen
    teacher.toggle(key="board.projector").set_value(True).run()
    projected = "\n".join(m.value for m in teacher.main.markdown)  # what the room sees (the sidebar is hidden)
    assert "## 1. " in projected and "alice" not in projected and "validation accuracy" in projected

    teacher.toggle(key="board.projector").set_value(False).run()
    teacher.toggle(key=f"board.reveal.{ch.id}").set_value(True).run()
    assert not teacher.exception, [e.value for e in teacher.exception]
    alice.run()
    after = _csv(alice, monkeypatch)
    assert "hidden test accuracy" in after.splitlines()[0] and "Hidden test accuracy" in _shown(alice)
    assert "alice" not in after and "bob" not in after  # names stay anonymous until revealed too
    assert "What the top runs did differently" in texts(alice) and "Median run:" in _shown(alice)
    assert len(alice.get("plotly_chart")) == 2  # loss and accuracy, the two runs overlaid
    scores = {r.name: r.score for r in board.board(ch.id)}
    for line in after.splitlines()[1:]:
        cells = line.split(",")
        assert float(cells[3]) == round(scores[cells[1]], 4)


def test_the_train_page_holds_a_challenges_images_to_its_budgets(private_worker, data_dir, open_page):
    from core.lab import Budgets

    board = ChallengeBoard(private_worker.store)
    ch = board.create("Small", str(data_dir), Budgets(max_params=500, max_epochs=3))
    at = open_page("pages/train.py", dataset=ch.public, model_cfg=TINY, train_cfg=TRAIN.replace(epochs=5))
    assert not at.exception, [e.value for e in at.exception]
    over = "This training runs up to 5 epochs; the challenge allows at most 3 epochs."
    assert over in texts(at)  # next to the epochs slider, and among what blocks the Train button
    warnings = [w.value for w in at.warning]
    assert over in warnings and any("the challenge allows at most 500" in w for w in warnings)
    assert at.button(key="train.start").disabled
    at.slider(key="train.epochs").set_value(3).run()
    assert over not in texts(at) and at.button(key="train.start").disabled  # the parameters still break it
    other = open_page("pages/train.py", dataset=str(data_dir), model_cfg=TINY, train_cfg=TRAIN.replace(epochs=5))
    assert not other.button(key="train.start").disabled  # the same settings on other data: no budget


def _next_to(at: AppTest, widget_key: str, text: str) -> bool:
    """Whether ``text`` is an error drawn right after the widget ``widget_key`` (its slot on the page)."""
    flat = []

    def walk(node):
        for child in getattr(node, "children", {}).values():
            flat.append(child)
            walk(child)

    walk(at.main)
    at_widget = next(i for i, n in enumerate(flat) if getattr(n, "key", None) == widget_key)
    following = [n for n in flat[at_widget + 1 : at_widget + 3] if n.type == "error"]
    return any(text in n.value for n in following)


def test_the_teachers_link_opens_a_challenge_and_each_reason_sits_next_to_its_control(
    private_worker, data_dir, open_page
):
    from core.lab import Budgets

    board = ChallengeBoard(private_worker.store)
    ch = board.create("Small", str(data_dir), Budgets(max_params=2000, max_epochs=3, max_trainings=1, max_seconds=20))
    big = TINY.replace(dense_units=256)
    alice = open_page("pages/train.py", model_cfg=big, train_cfg=TRAIN.replace(epochs=5), owner="alice1")
    alice.query_params["challenge"] = ch.id  # the teacher's link: .../train?challenge=<id>
    alice.run()
    assert not alice.exception, [e.value for e in alice.exception]
    assert alice.session_state["dataset"] == ch.public and alice.selectbox(key="train.challenge").value == ch.id
    assert "At most 20 s per training." in texts(alice) and "At most 3 epochs per training." in texts(alice)
    epochs = "This training runs up to 5 epochs; the challenge allows at most 3 epochs."
    assert _next_to(alice, "train.epochs", epochs)  # under the epochs slider
    params = [w.value for w in alice.warning if "the challenge allows at most 2,000" in w.value]
    assert params and alice.button(key="train.start").disabled  # Train is refused, the reasons beside it

    alice.switch_page("pages/architecture.py").run()  # the parameters: next to the dense layer's slider
    assert not alice.exception, [e.value for e in alice.exception]
    assert _next_to(alice, "arch.dense_units", params[0])
    alice.select_slider(key="arch.dense_units").set_value(8).run()
    assert "the challenge allows at most 2,000" not in texts(alice)
    alice.switch_page("pages/train.py").run()
    alice.slider(key="train.epochs").set_value(2).run()
    assert not alice.button(key="train.start").disabled and epochs not in texts(alice)

    # Alice's one training on the challenge's images; then Train says why not, and Bob may still train
    job = private_worker.submit(ch.public, TINY, TRAIN.replace(seed=7), owner="alice1")
    private_worker.wait(job, timeout=300)
    alice.slider(key="train.epochs").set_value(1).run()
    tried = "You have started 1 training on this challenge's images"
    assert any(tried in w.value for w in alice.warning) and alice.button(key="train.start").disabled
    bob = open_page("pages/train.py", model_cfg=TINY, train_cfg=TRAIN.replace(epochs=1), owner="bob1")
    bob.query_params["challenge"] = ch.id
    bob.run()
    assert tried not in texts(bob) and not bob.button(key="train.start").disabled

    # "No challenge" gives the data back and lifts the budgets
    alice.selectbox(key="train.challenge").set_value(None).run()
    assert alice.session_state["dataset"] != ch.public and not alice.button(key="train.start").disabled
    assert "challenge" not in alice.query_params
    unknown = open_page("pages/train.py")
    unknown.query_params["challenge"] = "nope"
    unknown.run()
    assert not unknown.exception and any("There is no challenge 'nope'" in w.value for w in unknown.warning)


def test_a_challenges_data_and_its_runs_are_set_aside_from_students_until_the_reveal(
    private_worker, data_dir, open_page
):
    from core.training.experiment import run_experiment

    store = private_worker.store
    earlier = run_experiment(str(data_dir), TINY, TRAIN.replace(seed=31), store=store)  # before the challenge
    board = ChallengeBoard(store)
    ch = board.create("Stripes", str(data_dir))
    bundled = board.create("Cores", "drill_core")  # a bundled dataset: every student's sidebar offers it
    hidden = board._hidden_files(ch.id)

    student = open_page("pages/data.py", dataset=str(data_dir), run_id=earlier.run_id, owner="carl1")
    assert not student.exception, [e.value for e in student.exception]
    assert student.session_state["dataset"] not in (str(data_dir), "drill_core")  # the sidebar moved off it
    offered = student.selectbox(key="dataset").options
    assert not any("drill" in o.lower() for o in offered)
    assert not [s for s in student.selectbox if s.key == "run_id"]  # the run list holds none: it was the only run
    assert "Set aside for a challenge" in texts(student)  # the Data page's card of drill_core, no button
    assert not [b for b in student.button if b.key == "data.use.drill_core"]
    for path in (str(data_dir), str(data_dir / "striped"), str(data_dir.parent)):  # itself, inside, around it
        student.segmented_control(key="data.kind").set_value("Folder on the server").run()
        student.text_input(key="data.path").input(path).run()
        student.button(key="data.use_path").click().run()
        assert any("set aside for the challenge 'Stripes'" in e.value for e in student.error), path
    # the earlier run's pages, asked for by id (a link): nothing of it
    student.session_state["run_id"] = earlier.run_id
    student.switch_page("pages/predictions.py").run()
    assert not student.exception, [e.value for e in student.exception]
    shown = texts(student)
    assert not any(f.rsplit("/", 1)[-1] in shown for f in hidden) and earlier.label not in shown
    assert not student.get("imgs") and not student.dataframe  # no image, no table of per-image results

    teacher = _person(PASSWORDS["teacher_password"], "ms stone")  # the teacher reads it all
    teacher.switch_page("pages/data.py").run()
    teacher.segmented_control(key="data.kind").set_value("Folder on the server").run()
    teacher.text_input(key="data.path").input(str(data_dir)).run()
    teacher.button(key="data.use_path").click().run()
    assert not teacher.exception and not teacher.error and teacher.session_state["dataset"] == str(data_dir)
    assert any("drill" in o.lower() for o in teacher.selectbox(key="dataset").options)

    board.reveal(ch.id)
    board.reveal(bundled.id)
    student.switch_page("pages/data.py").run()
    assert any("drill" in o.lower() for o in student.selectbox(key="dataset").options)
    assert len(student.selectbox(key="run_id").options) == 1  # the earlier run is back in the list
    student.segmented_control(key="data.kind").set_value("Folder on the server").run()
    student.text_input(key="data.path").input(str(data_dir)).run()
    student.button(key="data.use_path").click().run()
    assert not any("set aside" in e.value for e in student.error) and student.session_state["dataset"] == str(data_dir)


def test_the_teacher_edits_a_challenge_and_deletes_it_after_a_confirmation(private_worker, data_dir):
    from core.lab import Budgets
    from core.training.experiment import run_experiment

    store = private_worker.store
    board = ChallengeBoard(store)
    ch = board.create("Draft", str(data_dir), Budgets(max_epochs=2))
    run = run_experiment(ch.public, TINY, TRAIN.replace(seed=41), store=store)
    board.enter(ch.id, "name:alice", run.run_id)
    teacher = _person(PASSWORDS["teacher_password"], "ms stone")
    prefix = f"board.edit.{ch.id}."
    teacher.text_input(key=prefix + "title").input("Stripes, final")
    teacher.number_input(key=prefix + "epochs").set_value(4)
    teacher.number_input(key=prefix + "seconds").set_value(90)
    teacher.button(key=f"FormSubmitter:board.edit.{ch.id}-Save the changes").click().run()
    assert not teacher.exception, [e.value for e in teacher.exception]
    edited = board.get(ch.id)
    assert edited.title == "Stripes, final" and edited.budgets == Budgets(max_epochs=4, max_seconds=90.0)
    assert "At most 4 epochs per training. At most 90 s per training." in texts(teacher)
    alice = _person(PASSWORDS["class_password"], "alice")  # a student sees the new budgets, never the controls
    assert "At most 90 s per training." in texts(alice) and "Edit or delete this challenge" not in texts(alice)
    assert not [b for b in alice.button if (b.key or "").startswith("board.delete")]

    teacher.button(key=f"board.delete.{ch.id}.ask").click().run()
    assert any("Delete 'Stripes, final' and its board?" in w.value for w in teacher.warning)
    teacher.button(key=f"board.delete.{ch.id}.no").click().run()  # kept
    assert board.get(ch.id).title == "Stripes, final"
    teacher.button(key=f"board.delete.{ch.id}.ask").click().run()
    teacher.button(key=f"board.delete.{ch.id}.yes").click().run()
    assert not teacher.exception, [e.value for e in teacher.exception]
    assert board.list() == [] and "There is no challenge yet" in texts(teacher)
    assert store.get(run.run_id) is not None  # Alice's run stays


def test_a_training_for_a_challenge_stops_at_its_time_budget_and_the_train_page_says_whose(
    private_worker, data_dir, open_page, monkeypatch
):
    from core.base.tables import plural
    from core.lab import Budgets

    monkeypatch.setenv("CNNLAB_MAX_TRAIN_SECONDS", "0")  # the server sets none: the challenge's 2 s hold
    ch = ChallengeBoard(private_worker.store).create("Quick", str(data_dir), Budgets(max_seconds=2))
    at = open_page("pages/train.py", model_cfg=TINY, train_cfg=TRAIN.replace(epochs=300, batch_size=4, seed=97))
    at.query_params["challenge"] = ch.id
    at.run()
    assert at.session_state["dataset"] == ch.public and not at.button(key="train.start").disabled
    at.button(key="train.start").click().run()
    [job] = [j for j in private_worker.jobs() if j.train_cfg.seed == 97]
    assert job.time_budget == 2.0 and job.challenge == ch.id
    private_worker.wait(job, timeout=180)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    rec = job.result
    n = len(rec.history["loss"])
    assert job.state == "stopped" and 1 <= n < 300 and rec.extra["challenge"] == ch.id
    said = f"Stopped: the challenge's time budget of 2 s per training was reached after {plural(n, 'epoch')}."
    assert job.error == said and any(w.value.startswith(said + " The run keeps") for w in at.warning), texts(at)
    assert rec.restored_epoch == rec.best_epoch  # its best epoch's weights are the ones kept
