"""The teacher's view (issue 20): every student's jobs with their places in the fair queue and the verdicts of
finished runs, stopping a student's job with a confirmation, a link that sends a run's settings to the class;
students are refused. Real tiny trainings through a real one-slot TrainingWorker, password logins."""

from __future__ import annotations

import inspect
from urllib.parse import parse_qs, urlsplit

import pytest
from apphelpers import APP, FAST, LONG, TIMEOUT, TINY, texts, wait_for
from test_classroom import PASSWORDS, _login, _session

from core.base.config import ModelConfig, TrainConfig
from core.jobs import JobState, owner_name
from core.results import diagnosis_of, in_few_words

TEACHER_PAGE = "pages/teacher.py"


def _logged_in(password: str, name: str = "", **state):
    """A session logged in with a password (and as ``name`` where the login asks for a student's name)."""
    named = {"name": name} if name and "name" in inspect.signature(_login).parameters else {}
    at = _login(_session({"cnnlab": PASSWORDS}, **state), password, **named)
    assert not at.exception, [e.value for e in at.exception]
    return at


def _train(student: str, src: str, train_cfg):
    """A student (class password; their name, or their tab's id without names) presses Train; the job."""
    from ui.resources import worker

    tab = f"{student}tab"  # ui.state.owner: who the jobs are without a name
    at = _logged_in(PASSWORDS["class_password"], student, owner=tab, dataset=src, model_cfg=TINY, train_cfg=train_cfg)
    at.switch_page("pages/train.py").run()
    at.button(key="train.start").click().run()
    assert not at.exception, [e.value for e in at.exception]
    return worker().get(at.session_state["jobs.started"]["train"].ids[0])


def _job_texts(at) -> str:
    return "\n".join(str(p.proto.text) for p in at.get("progress"))


def test_the_teacher_sees_every_students_jobs_and_verdicts_and_stops_a_students_training(data_dir, one_slot):
    src = str(data_dir)
    finished = _train("ann", src, FAST.replace(seed=11))
    one_slot.wait(finished, timeout=180)
    assert finished.state == JobState.DONE
    running = _train("bob", src, LONG.replace(seed=12))
    wait_for(lambda: running.snapshot().history.get("loss"), timeout=180)  # its first epoch has ended
    waiting = _train("ann", src, LONG.replace(seed=13))
    assert waiting.state == JobState.QUEUED and waiting.position == 1
    assert waiting.owner == finished.owner != running.owner and "ann" in owner_name(finished.owner)

    teacher = _logged_in(PASSWORDS["teacher_password"], dataset=src)
    teacher.switch_page(TEACHER_PAGE).run()
    assert not teacher.exception, [e.value for e in teacher.exception]
    heads = [h.value for h in teacher.subheader]
    assert f"{owner_name(finished.owner)} · 1 waiting, 1 finished" in heads, heads
    assert any(h.startswith(f"{owner_name(running.owner)} · 1 training") for h in heads), heads
    lines = _job_texts(teacher)
    assert f"{waiting.label}: queued (number 1 in the queue)" in lines
    assert f"{running.label}: training, epoch " in lines and f"{finished.label}: trained" in lines
    assert len(teacher.get("plotly_chart")) >= 2  # small multiples: the finished run's and the running one's curves

    table = teacher.dataframe[0].value
    rec = finished.result
    assert table["Student"].tolist() == [owner_name(finished.owner)]
    assert table["Run"].tolist() == [rec.label] and table["Test accuracy"].tolist() == [rec.test["accuracy"]]
    assert table["Verdict"].tolist() == [in_few_words(diagnosis_of(rec))]

    # Stopping Bob's training: a button, then a confirmation.
    teacher.button(key=f"teacher.stop.{running.id}").click().run()
    assert running.state == JobState.RUNNING and not running.stop_event.is_set()  # not yet: asked first
    assert any(f"Stop {owner_name(running.owner)}'s training" in w.value for w in teacher.warning), texts(teacher)
    teacher.button(key=f"teacher.yes.{running.id}").click().run()
    assert not teacher.exception, [e.value for e in teacher.exception]
    one_slot.wait(running, timeout=180)
    assert running.state == JobState.STOPPED and running.result is not None  # kept what it had learned
    wait_for(lambda: waiting.state != JobState.QUEUED, timeout=60)  # the slot went to Ann's waiting job

    # A student opening the page's address reads one line, nothing else.
    bob = _logged_in(PASSWORDS["class_password"], "bob", owner="bobtab", dataset=src)
    bob.switch_page(TEACHER_PAGE).run()
    assert not bob.exception
    assert [i.value for i in bob.info] == [
        "This page is for the teacher: log in with the teacher password to see the whole class."
    ]
    assert not bob.dataframe and not bob.subheader and not bob.get("plotly_chart") and not bob.get("progress")
    assert not [b for b in bob.button if b.key and b.key.startswith("teacher.")]


MODELS = {  # the scratch CNN and the VGG16 transfer model (no weights: random, as in tests/app/test_matrix_pages.py)
    "cnn": (TINY.replace(filters=6, kernel_size=5), FAST.replace(seed=21, learning_rate=0.01, optimizer="sgd")),
    "vgg16": (
        ModelConfig(model="vgg16", weights="none", input_size=32, dense_units=8),
        TrainConfig(epochs=1, batch_size=8, seed=22, learning_rate=0.01),
    ),
}


@pytest.mark.parametrize("kind", list(MODELS))
def test_a_runs_settings_link_opens_the_train_page_with_them(data_dir, private_worker, kind):
    from streamlit.testing.v1 import AppTest

    from core.training.experiment import run_experiment

    src = str(data_dir)
    model_cfg, train_cfg = MODELS[kind]
    rec = run_experiment(src, model_cfg, train_cfg, store=private_worker.store)
    job = private_worker.submit(src, model_cfg, train_cfg, owner="user:cleo")  # stored: a finished job of hers
    assert job.state == JobState.DONE and job.result.run_id == rec.run_id

    teacher = _logged_in(PASSWORDS["teacher_password"], dataset=src)
    teacher.switch_page(TEACHER_PAGE).run()
    assert not teacher.exception, [e.value for e in teacher.exception]
    assert teacher.selectbox(key="teacher.share").value == 0
    train_link, arch_link = (c.value for c in teacher.code)
    url = urlsplit(train_link)
    assert url.path.endswith("/train") and urlsplit(arch_link).path.endswith("/architecture")
    params = {k: v[0] for k, v in parse_qs(url.query).items()}
    assert set(params) == {"model", "train"} and set(parse_qs(urlsplit(arch_link).query)) == {"model"}

    # A student opens the link: the Train page takes the run's network and training settings.
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.session_state["dataset"] = src
    at.run()
    at.switch_page("pages/train.py")
    at.query_params.update(params)  # a page switch clears them, as in a browser; the link is for this page
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.session_state["model_cfg"] == ModelConfig.from_dict(rec.model_config)
    assert at.session_state["train_cfg"] == TrainConfig.from_dict(rec.train_config)
    assert at.session_state["train_cfg"].learning_rate == 0.01 and at.session_state["model_cfg"].model == kind
    assert teacher.dataframe[0].value["Verdict"].tolist() == [in_few_words(diagnosis_of(rec))]
