"""Train: settings and augmentation widgets, and training in the background worker (live, stop, cached, queue)."""

from apphelpers import APP, FAST, TIMEOUT, TINY, chart_specs, started_ids, texts, wait_for
from calibrations import QUICK_RUNS

from core.base.config import LOSS_LABELS, LOSSES, AugmentConfig, TrainConfig
from ui.jobs import WATCHING


def test_settings_and_augmentation_controls_build_the_train_config(open_page, empty_home, data_dir, idle_worker):
    at = open_page("pages/train.py", dataset=str(data_dir), model_cfg=TINY)
    assert not at.exception
    assert "No run yet: train one on the Train page." in texts(at)  # the sidebar's empty state
    at.slider(key="train.epochs").set_value(7)
    at.select_slider(key="train.learning_rate").set_value(3e-4)
    at.radio(key="train.loss").set_value("sparse").run()
    assert at.radio(key="train.loss").value == "sparse"
    assert at.radio(key="train.loss").options == [LOSS_LABELS[loss] for loss in LOSSES]  # core's labels, as the CLI's
    assert any("class numbers like 2" in c.value for c in at.caption)
    assert at.checkbox(key="train.restore_best").disabled  # only means something with early stopping
    at.toggle(key="train.es_on").set_value(True).run()
    restore = at.checkbox(key="train.restore_best")
    assert not restore.disabled and restore.value is True
    assert restore.label == "Keep the best epoch's weights" and "last epoch it trained" in restore.help
    at.slider(key="train.patience").set_value(3)
    restore.uncheck()
    at.selectbox(key="train.monitor").set_value("val_accuracy").run()
    at.button(key="train.aug_course").click().run()
    at.checkbox(key="train.aug.vflip").uncheck()
    at.selectbox(key="train.aug.fill_mode").set_value("reflect").run()
    assert not at.exception, [e.value for e in at.exception]
    aug = AugmentConfig.course().replace(vflip=False, fill_mode="reflect")
    want = TrainConfig(
        epochs=7,
        learning_rate=3e-4,
        loss="sparse",
        early_stopping=3,
        monitor="val_accuracy",
        restore_best=False,
        augment=aug,
    )
    assert at.session_state["train_cfg"] == want
    course, keras_code = (c.value for c in at.code[:2])
    assert "rotation_range=20," in course and "vertical_flip=False," in course and 'fill_mode="reflect"' in course
    assert "RandomRotation(factor=20 / 360" in keras_code and "vertical" not in keras_code
    assert any("Only **training** images are augmented" in i.value for i in at.info)
    # The live preview: the original and 8 augmented versions, redrawn for another image.
    assert [len(img.value) for img in at.image] == [1, 8]
    before = at.image[1].value
    at.button(key="train.preview_next").click().run()
    assert not at.exception and at.image[1].value != before
    at.button(key="train.aug_off").click().run()
    assert [len(img.value) for img in at.image] == [1]
    assert "No augmentation" in at.code[1].value


def test_the_class_weight_control_sets_the_train_config_and_the_address(open_page, data_dir, idle_worker):
    from core.base.config import CLASS_WEIGHT_LABELS, CLASS_WEIGHTS

    at = open_page("pages/train.py", dataset=str(data_dir), model_cfg=TINY)
    box = at.selectbox(key="train.class_weight")
    assert box.value == "none" and box.options == [CLASS_WEIGHT_LABELS[c] for c in CLASS_WEIGHTS]
    box.set_value("balanced").run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.session_state["train_cfg"] == TrainConfig(class_weight="balanced")
    assert "class_weight:balanced" in at.query_params["train"]


def test_training_runs_in_the_worker_selects_its_run_and_comes_back_cached(open_page, data_dir, idle_worker):
    at = open_page("pages/train.py", dataset=str(data_dir), model_cfg=TINY, train_cfg=FAST.replace(seed=11))
    at.button(key="train.start").click().run()
    assert not at.exception, [e.value for e in at.exception]
    job = idle_worker.jobs()[-1]
    assert started_ids(at, "train")[0] == job.id and job.train_cfg.seed == 11
    wait_for(lambda: not job.active)
    at.run()
    assert not at.exception
    run_id = job.result.run_id
    assert at.session_state["run_id"] == run_id  # the finished job's run is selected
    assert any(s.value.startswith("Finished: 3 epochs") for s in at.success)
    assert chart_specs(at), "the final curves"
    # The same configuration again: served from the run store, marked cached, nothing trained.
    assert at.button(key="train.start").label == "Show the stored run"
    at.button(key="train.start").click().run()
    assert not at.exception
    assert any("Loaded from the run store" in s.value for s in at.success)
    assert any(b.proto.label == "cached" for b in at.get("badge")) or "cached" in texts(at)
    assert at.session_state["run_id"] == run_id
    assert len([j for j in idle_worker.jobs() if j.key == job.key and j.result and not j.result.cached]) == 1


def test_a_reloaded_page_finds_the_running_job_and_stop_keeps_what_was_learned(open_page, data_dir, idle_worker):
    from streamlit.testing.v1 import AppTest

    long = FAST.replace(epochs=300, batch_size=4, seed=12)
    at = open_page("pages/train.py", dataset=str(data_dir), model_cfg=TINY, train_cfg=long)
    at.button(key="train.start").click().run()
    job = idle_worker.jobs()[-1]
    assert at.query_params["job"] in (job.id, [job.id])  # in the URL, so a reload finds it
    wait_for(lambda: len(job.snapshot().history.get("loss", [])) >= 1)

    # A reload: new session state, the same URL. The job is this session's again.
    assert job.owner == at.session_state["owner"] and at.query_params["sid"] in (job.owner, [job.owner])
    reloaded = AppTest.from_file(APP, default_timeout=TIMEOUT)
    reloaded.query_params["job"] = job.id
    reloaded.query_params["sid"] = job.owner
    reloaded.session_state["dataset"] = str(data_dir)
    reloaded.run().switch_page("pages/train.py").run()
    assert not reloaded.exception
    assert started_ids(reloaded, "train")[0] == job.id
    assert "Training" in reloaded.get("progress")[0].proto.text and chart_specs(reloaded), "live curves"
    assert not [b for b in reloaded.button if b.key == "train.start"]  # one training per session at a time

    # Another session (or a reload that lost the URL) is shown the server's job, and may start its own,
    # but not stop this one: a student stops only their own training.
    other = open_page("pages/train.py", dataset=str(data_dir), model_cfg=TINY)
    assert other.session_state[WATCHING] == job.id and other.get("progress")
    assert other.button(key="train.start").label == "Train"
    assert not [b for b in other.button if b.key == "train.stop"]
    assert "only they (or the teacher) can stop it" in texts(other)
    reloaded.button(key="train.stop").click().run()
    wait_for(lambda: not job.active)
    reloaded.run()
    assert not reloaded.exception
    rec = job.result
    assert rec.status == "stopped" and 1 <= len(rec.history["loss"]) < 300
    assert reloaded.session_state["run_id"] == rec.run_id  # the finished job's run is selected
    assert any("Stopped by you" in w.value for w in reloaded.warning)


def test_two_tabs_share_one_training_and_a_busy_trainer_shows_its_queue(open_page, data_dir, idle_worker):
    same = {"dataset": str(data_dir), "model_cfg": TINY, "train_cfg": FAST.replace(epochs=300, batch_size=4, seed=13)}
    tab1 = open_page("pages/train.py", **same)
    tab1.button(key="train.start").click().run()
    first = idle_worker.jobs()[-1]
    wait_for(lambda: first.state == "running")

    # A second tab asks for the same configuration: it joins the job instead of training again.
    tab2 = open_page("pages/train.py", **same)
    assert tab2.session_state[WATCHING] == first.id  # a new session is shown what the server trains
    tab2.button(key="train.start").click().run()
    assert not tab2.exception
    assert started_ids(tab2, "train")[0] == first.id
    assert len([j for j in idle_worker.jobs() if j.active]) == 1

    # Another configuration waits in the queue, and the page says so.
    other = open_page("pages/train.py", dataset=str(data_dir), model_cfg=TINY, train_cfg=FAST.replace(seed=14))
    assert any("The trainer is busy" in i.value for i in other.info)
    other.button(key="train.start").click().run()
    assert not other.exception
    second = idle_worker.jobs()[-1]
    assert second.state == "queued" and started_ids(other, "train")[0] == second.id
    assert any("number **1** in the queue" in i.value for i in other.info) and second.position == 1
    assert other.dataframe[0].value[""].tolist() == ["training", "waiting"]
    assert other.dataframe[0].value["place"].tolist() == ["–", "1"]
    other.button(key="train.cancel").click().run()
    assert not other.exception
    assert any("Cancelled before it started" in i.value for i in other.info)
    tab1.run().button(key="train.stop").click().run()
    wait_for(lambda: not second.active)
    assert second.state == "stopped" and second.result is None


def test_vgg16_adds_fine_tuning_controls(open_page, data_dir, idle_worker):
    from core.base.config import ModelConfig

    vgg = ModelConfig(model="vgg16", input_size=32, weights="none", dense_units=16)
    at = open_page("pages/train.py", dataset=str(data_dir), model_cfg=vgg)
    assert not at.exception
    assert "VGG16 base (none weights)" in texts(at)
    at.slider(key="train.fine_tune_epochs").set_value(3).run()
    at.select_slider(key="train.fine_tune_lr").set_value(1e-4).run()
    assert not at.exception
    cfg = at.session_state["train_cfg"]
    assert (cfg.fine_tune_epochs, cfg.fine_tune_lr) == (3, 1e-4)


def test_configs_beyond_the_sliders_usual_range_still_show(open_page, data_dir):
    odd = TrainConfig(
        epochs=250,
        early_stopping=30,
        learning_rate=0.007,
        batch_size=48,
        val_split=0.33,
        augment=AugmentConfig(rotation=33, width_shift=0.6, zoom=0.7),
    )
    at = open_page("pages/train.py", dataset=str(data_dir), model_cfg=TINY, train_cfg=odd)
    assert not at.exception, [e.value for e in at.exception]
    assert at.session_state["train_cfg"] == odd


def test_a_job_the_server_never_finished_shows_as_interrupted_and_trains_again(data_dir, idle_worker):
    """A job left running by a server that died (its row in the job table, its server's process gone)."""
    import socket
    import subprocess
    import sys
    import time

    from streamlit.testing.v1 import AppTest

    from core.jobs.jobtable import JobTable

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # a server process that is no more
    table = JobTable(idle_worker.store)
    with table._connect() as con:
        con.execute(
            "INSERT INTO servers(id, host, pid, started, heartbeat) VALUES ('deadserver', ?, ?, ?, ?)",
            (socket.gethostname(), gone.pid, time.time(), time.time()),
        )
    cfg = FAST.replace(seed=77)
    table.put(
        {
            "id": "lostjob001",
            "key": "lostkey",
            "source": str(data_dir),
            "label": "the lost run",
            "owner": "sid0123",
            "state": "running",
            "model_config": TINY.replace(num_classes=3).to_dict(),
            "train_config": cfg.to_dict(),
            "submitted": time.time(),
            "started": time.time(),
            "server": "deadserver",
            "epoch": 2,
            "epochs": 3,
        }
    )

    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params["job"], at.query_params["sid"] = "lostjob001", "sid0123"
    at.session_state["dataset"] = str(data_dir)
    at.run().switch_page("pages/train.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("The server stopped while this job was training" in w.value for w in at.warning)
    at.button(key="train.rerun").click().run()
    assert not at.exception
    job = idle_worker.get(started_ids(at, "train")[0])
    assert job.id != "lostjob001" and job.owner == "sid0123" and job.train_cfg.seed == 77
    wait_for(lambda: not job.active)
    assert job.state == "done" and job.result.status == "complete"


def test_the_time_estimate_is_measured_once_then_shown_by_the_button(
    open_page, empty_home, data_dir, idle_worker, monkeypatch
):
    import core.jobs.estimate as E

    monkeypatch.setattr(E, "CALIBRATION_RUNS", QUICK_RUNS)  # the button measures the default runs
    at = open_page("pages/train.py", dataset=str(data_dir), model_cfg=TINY, train_cfg=FAST.replace(precision="float32"))
    assert not at.exception
    assert "on this server" not in texts(at)  # CNNLAB_MEASURE_SPEED=0 (tests/conftest.py): measured when asked
    at.button(key="train.measure").click().run()
    assert not at.exception
    assert any(
        "Measuring this server's training speed (once, about 30 s when nothing else runs)..." in c.value
        for c in at.caption
    )
    # a new process imports TensorFlow and trains five tiny networks: minutes on a busy shared machine
    wait_for(lambda: not E.calibrating(empty_home, "float32"), timeout=600)
    assert E.load_calibration(empty_home, "float32") is not None
    at.run()
    line = next(c.value for c in at.caption if "on this server" in c.value)
    # the whole wait in one sentence, in its parts, in the student's words
    assert line.startswith(":material/timer: about ") and " on this server: " in line
    assert " to start, " in line and " for 3 epochs, " in line and " to test and save; peak memory about " in line
    assert line.endswith("(float32).")
    # with early stopping every planned epoch is counted: at most that long, and it says why it may be less (the
    # page's own precision: `auto` trains TINY in float32 on any CPU, too small for bfloat16, so the same calibration)
    early = open_page("pages/train.py", dataset=str(data_dir), model_cfg=TINY, train_cfg=FAST.replace(early_stopping=2))
    line = next(c.value for c in early.caption if "on this server" in c.value)
    assert line.startswith(":material/timer: at most about ") and " for up to 3 epochs, " in line
    assert "; early stopping may end it sooner; peak memory about " in line
    arch = open_page(
        "pages/architecture.py", dataset=str(data_dir), model_cfg=TINY, train_cfg=FAST.replace(precision="float32")
    )
    assert not arch.exception
    assert any("Training it with the Train page's settings (3 epochs" in c.value for c in arch.caption)
    assert any(m.label == "Multiply-adds per image" for m in arch.metric)


def test_the_speed_is_measured_in_the_background_when_the_server_starts(
    open_page, empty_home, data_dir, idle_worker, monkeypatch
):
    import core.jobs.estimate as E
    from core.base.precision import resolve_precision

    monkeypatch.setenv("CNNLAB_MEASURE_SPEED", "1")
    monkeypatch.setattr(E, "CALIBRATION_RUNS", QUICK_RUNS)
    auto = resolve_precision("auto")
    at = open_page("pages/train.py", dataset=str(data_dir), model_cfg=TINY, train_cfg=FAST.replace(precision=auto))
    assert not at.exception
    # app.py started it: no button to press, "measuring" until it is stored
    assert E.calibrating(empty_home, auto) or E.load_calibration(empty_home, auto) is not None
    assert all(b.key != "train.measure" for b in at.button)
    if E.calibrating(empty_home, auto):
        assert any("Measuring this server's training speed" in c.value for c in at.caption)
    wait_for(lambda: not E.calibrating(empty_home, auto), timeout=600)
    assert E.load_calibration(empty_home, auto) is not None
    at.run()
    assert any(c.value.startswith(":material/timer: about ") and " to test and save; " in c.value for c in at.caption)


def test_the_page_says_which_precision_this_training_takes_and_why(open_page, data_dir, idle_worker):
    from core.base.precision import cpu_flags, has_native_bf16

    at = open_page("pages/train.py", dataset=str(data_dir), model_cfg=TINY)
    assert not at.exception

    def line():
        return next(c.value for c in at.caption if c.value.startswith("This training: "))

    if has_native_bf16(cpu_flags()):  # TINY is far below the size where bfloat16 pays
        assert line().startswith("This training: float32: this network is too small for bfloat16 to pay (")
    else:
        assert (
            line() == "This training: float32: this CPU has no bfloat16 arithmetic, so bfloat16 would be slower here."
        )
    at.selectbox(key="train.precision").set_value("bfloat16").run()
    assert not at.exception
    assert line().startswith("This training: bfloat16, as chosen")
    assert at.session_state["train_cfg"].precision == "bfloat16"


def test_the_server_readies_a_training_process_when_it_first_serves_a_page(open_page, empty_home, monkeypatch):
    """CNNLAB_WARM_AT_START=1 (the default outside tests): the Home page is enough for the worker to start and its
    training process to load TensorFlow, so a student who then presses Train does not wait for it."""
    import core.jobs.worker as W

    monkeypatch.setenv("CNNLAB_WARM_AT_START", "1")
    before = W.use_worker(None)  # a fresh process-wide worker, as in a server that has just started
    try:
        at = open_page("pages/home.py")
        assert not at.exception
        w = W._worker
        assert w is not None and w.store.home == empty_home  # started by app.py: Home does not train
        wait_for(w.warm_start, timeout=300)  # its training process has Python and TensorFlow loaded and waits
    finally:
        mine = W.use_worker(before)
        if mine is not None:
            mine.close()


def test_without_warm_at_start_a_page_that_trains_nothing_starts_no_worker(open_page, empty_home, monkeypatch):
    import core.jobs.worker as W

    monkeypatch.setenv("CNNLAB_WARM_AT_START", "0")
    before = W.use_worker(None)
    try:
        open_page("pages/home.py")
        assert W._worker is None
    finally:
        W.use_worker(before)
