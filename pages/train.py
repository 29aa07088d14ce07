"""Train: how to train, how to augment, and the training itself, live.

Training never runs in this script: the Train button hands the job to core's
process-wide worker, and :func:`ui.jobs.follow` redraws it once a second. Moving
a slider, switching page or reloading does not stop or duplicate it.
"""

import random
from functools import partial

import pandas as pd
import streamlit as st

from core.base import TRAIN_PARAM, decode_train, describe, encode_train, network_text, plural
from core.base.config import (
    FILL_MODES,
    LEARNING_RATES,
    LOSS_LABELS,
    LOSSES,
    MONITOR_LABELS,
    MONITORS,
    OPTIMIZER_LABELS,
    OPTIMIZERS,
    PRECISION_LABELS,
    PRECISIONS,
    AugmentConfig,
    TrainConfig,
)
from core.jobs import estimate_text
from core.models import check_architecture, check_cost, course_code, keras_code, weights_status
from core.results import MAX_SEEDS, MIN_SEEDS
from ui import charts, identity, jobs, resources, share, state, study
from ui.controls import FINE_TUNE_RATES, slider_max, slider_range, steps, valid_range
from ui.feedback import errors_shown, flash, header, job_error, show_unexpected
from ui.frame import run_page
from ui.sidebar import when

K = state.TRAIN
COMPARE_REPEATS, COMPARE_RUNS = "compare.repeats", "compare.runs"  # the Compare page's keys (pages/compare.py)
A = K + "aug."
BATCH_SIZES = [8, 16, 32, 64, 128]
LOSS_EXAMPLES = {  # what the labels look like for each loss (its name and label are core.base.config's)
    "categorical": "Labels are one-hot vectors like [0, 0, 1, 0, 0], compared with the softmax output.",
    "sparse": "Labels stay class numbers like 2: the same loss value, without the one-hot step.",
}
PREVIEW_N = 8


def main() -> None:
    header(
        "Train",
        "Choose **how** the network learns, then press **Train**. Training runs in the background on the server: "
        "you can move sliders, visit other pages or reload while it runs, and stop it when the curves have told "
        "you enough.",
    )
    if st.session_state.pop(K + "go_compare", False):
        st.switch_page(state.PAGES["compare"])
    flash()
    share.follow_link(TRAIN_PARAM, decode_train, state.train_cfg(), lambda c: state.set_configs(train=c))
    m = resources.fit_classes(state.model_cfg(), state.dataset())
    base = state.train_cfg()
    problems = check_architecture(m)  # once per rerun: the network line, the batch slider and the button use it
    _model_line(m, problems)

    settings_tab, augment_tab = st.tabs([":material/tune: Settings", ":material/flip: Data augmentation"])
    with settings_tab:
        changes, too_big = _settings(base, m, problems)
    with augment_tab:
        aug, preview_slot = _augmentation(base.augment)
    cfg: TrainConfig | None = None
    if aug is not None:
        try:
            cfg = base.replace(**changes, augment=aug)
        except ValueError as exc:  # ConfigError
            st.error(str(exc), icon=":material/error:")
    if cfg is not None:
        st.session_state[state.TRAIN_CFG] = cfg
        share.write_link(TRAIN_PARAM, encode_train(cfg))
    share.settings_file("share.train")

    st.header("Train the network", divider="gray")
    with errors_shown("talking to the trainer"):
        _train_section(m, cfg, bool(problems), bool(too_big))

    # Last, so the rest of the page is already on screen while TensorFlow loads the first time.
    if aug is not None:
        with preview_slot, errors_shown("drawing the augmentation preview"):
            _preview(aug, m)


def _model_line(m, problems: list) -> None:
    with st.container(border=True):
        c1, c2 = st.columns([4, 1], vertical_alignment="center")
        c1.markdown(f"**Network:** {network_text(m)}")
        c2.page_link(state.PAGES["architecture"], label="Change it", icon=":material/account_tree:")
        if problems:
            st.error(problems[0].message + " Fix it on the Architecture page before training.", icon=":material/block:")
        elif m.model == "vgg16":
            status = weights_status(m.weights)
            if not status.ok:
                st.warning(status.message, icon=":material/warning:")


def _settings(base: TrainConfig, m, problems: list) -> tuple[dict, list]:
    """The settings' widgets: (the TrainConfig fields they set, why this server refuses the network)."""
    c, too_big = {}, []
    col1, col2, col3 = st.columns(3, gap="large")
    with col1:
        st.markdown("##### Optimizer and loss")
        state.bind(K + "optimizer", base.optimizer)
        c["optimizer"] = st.selectbox(
            "Optimizer",
            OPTIMIZERS,
            key=K + "optimizer",
            format_func=OPTIMIZER_LABELS.get,
            help="Adam adapts the step size per weight and usually works without tuning (the course's choice).",
        )
        state.bind(K + "learning_rate", base.learning_rate)
        c["learning_rate"] = st.select_slider(
            "Learning rate",
            steps(LEARNING_RATES, st.session_state[K + "learning_rate"]),
            key=K + "learning_rate",
            format_func=lambda v: f"{v:g}",
            help="How big each weight update is. Adam's default is 0.001; too big and the loss jumps around.",
        )
        state.bind(K + "loss", base.loss)
        c["loss"] = st.radio("Loss", LOSSES, key=K + "loss", format_func=LOSS_LABELS.get)
        st.caption(LOSS_EXAMPLES[c["loss"]])
    with col2:
        st.markdown("##### Epochs and batches")
        state.bind(K + "epochs", base.epochs)
        c["epochs"] = st.slider(
            "Epochs",
            *slider_range("epochs", K + "epochs"),
            key=K + "epochs",
            help="Full passes over the training images (the most training can run).",
        )
        state.bind(K + "batch_size", base.batch_size)
        c["batch_size"] = st.select_slider(
            "Batch size",
            steps(BATCH_SIZES, st.session_state[K + "batch_size"]),
            key=K + "batch_size",
            help="Images per weight update. The course uses 32.",
        )
        too_big = [] if problems else check_cost(m, c["batch_size"])
        for p in too_big:  # too big for this server: said next to the slider
            st.error(p.message, icon=":material/block:")
        state.bind(K + "val_split", base.val_split)
        c["val_split"] = st.slider(
            "Validation split",
            *slider_range("val_split", K + "val_split"),
            step=0.05,
            key=K + "val_split",
            format="%.2f",
            help="Share of the training images held back to check the network after every epoch.",
        )
        state.bind(K + "seed", base.seed)
        c["seed"] = int(
            st.number_input(
                "Seed",
                *valid_range("seed"),
                step=1,
                key=K + "seed",
                help="Same seed, same split and same starting weights: a repeatable run.",
            )
        )
    with col3:
        st.markdown("##### Early stopping")
        state.bind(K + "es_on", base.early_stopping > 0)
        on = st.toggle("Stop when validation stops improving", key=K + "es_on")
        state.bind(K + "patience", base.early_stopping or 5)
        patience = st.slider(
            "Patience (epochs)",
            1,  # 0 is the toggle's "off"
            slider_max("early_stopping", K + "patience"),
            key=K + "patience",
            disabled=not on,
            help="How many epochs without improvement to wait before stopping.",
        )
        c["early_stopping"] = patience if on else 0
        state.bind(K + "monitor", base.monitor)
        c["monitor"] = st.selectbox(
            "Watch", MONITORS, key=K + "monitor", format_func=MONITOR_LABELS.get, disabled=not on
        )
        state.bind(K + "restore_best", base.restore_best)
        c["restore_best"] = st.checkbox(
            "Keep the best epoch's weights",
            key=K + "restore_best",
            disabled=not on,
            help="Checked: when training ends, the weights of the epoch with the best watched value are put back, "
            "and the run is tested and saved with them. Unchecked: the run keeps the weights of the last epoch it "
            "trained. Without early stopping the best epoch's weights are always kept (the course's checkpoint).",
        )

    with st.expander(
        "More: test set size, less training data, precision" + (", fine-tuning" if m.model == "vgg16" else "")
    ):
        e1, e2, e3 = st.columns(3, gap="large")
        with e1:
            state.bind(K + "test_size", base.test_size)
            c["test_size"] = st.slider(
                "Test set size",
                *slider_range("test_size", K + "test_size"),
                step=0.05,
                key=K + "test_size",
                format="%.2f",
                help="Share of all images kept for the final test (the course uses 0.2).",
            )
            state.bind(K + "precision", base.precision)
            c["precision"] = st.selectbox(
                "Precision", PRECISIONS, key=K + "precision", format_func=PRECISION_LABELS.get
            )
            st.caption(
                "bfloat16 keeps the weights in float32 but multiplies in 16-bit numbers, which CPUs with "
                "bfloat16 support do much faster; results can differ in the last digits."
            )
        with e2:
            state.bind(K + "train_fraction", base.train_fraction)
            c["train_fraction"] = st.slider(
                "Use this share of the training images",
                *slider_range("train_fraction", K + "train_fraction"),
                step=0.05,
                key=K + "train_fraction",
                format="%.2f",
                help="Train on less data to see overfitting appear; validation and test stay the same.",
            )
        if m.model == "vgg16":
            with e3:
                state.bind(K + "fine_tune_epochs", base.fine_tune_epochs)
                c["fine_tune_epochs"] = st.slider(
                    "Fine-tuning epochs",
                    *slider_range("fine_tune_epochs", K + "fine_tune_epochs"),
                    key=K + "fine_tune_epochs",
                    help="After the new head has trained, unfreeze VGG16's last block and train this many more epochs.",
                )
                state.bind(K + "fine_tune_lr", base.fine_tune_lr)
                c["fine_tune_lr"] = st.select_slider(
                    "Fine-tuning learning rate",
                    steps(FINE_TUNE_RATES, st.session_state[K + "fine_tune_lr"]),
                    key=K + "fine_tune_lr",
                    format_func=lambda v: f"{v:g}",
                    help="Small, so the pre-trained weights are adjusted, not overwritten.",
                )
    return c, too_big


# --------------------------------------------------------------------------- augmentation


def _augment_widget_values(cfg: AugmentConfig) -> dict:
    """The config as the widgets hold it (the sliders are float sliders: 20 -> 20.0)."""
    return {
        name: float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value
        for name, value in cfg.to_dict().items()
    }


def _set_augment(cfg: AugmentConfig) -> None:
    for name, value in _augment_widget_values(cfg).items():
        st.session_state[A + name] = value


def _augmentation(base: AugmentConfig):
    st.markdown(
        "Geoscience image sets are small. **Augmentation** shows the network a randomly rotated, shifted, flipped "
        "or zoomed copy of every training image in each epoch, so it learns the rock, not the exact picture."
    )
    for name, value in _augment_widget_values(base).items():
        state.bind(A + name, value)
    controls, preview = st.columns([2, 3], gap="large")
    with controls:
        b1, b2 = st.columns(2)
        b1.button(
            "The course's settings",
            key=K + "aug_course",
            on_click=_set_augment,
            args=(AugmentConfig.course(),),
            icon=":material/school:",
            width="stretch",
        )
        b2.button(
            "All off",
            key=K + "aug_off",
            on_click=_set_augment,
            args=(AugmentConfig(),),
            icon=":material/block:",
            width="stretch",
        )
        values = {
            "rotation": st.slider(
                "Rotation (degrees)",
                *slider_range("rotation", A + "rotation"),
                step=5.0,
                key=A + "rotation",
                help="rotation_range: turn by a random angle up to this, either way.",
            ),
            "width_shift": st.slider(
                "Width shift",
                *slider_range("width_shift", A + "width_shift"),
                step=0.05,
                key=A + "width_shift",
                format="%.2f",
                help="width_shift_range: move left/right by up to this share of the width.",
            ),
            "height_shift": st.slider(
                "Height shift",
                *slider_range("height_shift", A + "height_shift"),
                step=0.05,
                key=A + "height_shift",
                format="%.2f",
                help="height_shift_range: move up/down by up to this share of the height.",
            ),
            "zoom": st.slider(
                "Zoom",
                *slider_range("zoom", A + "zoom"),
                step=0.05,
                key=A + "zoom",
                format="%.2f",
                help="zoom_range: 0.1 zooms each axis between 90% and 110%.",
            ),
        }
        f1, f2 = st.columns(2)
        values["hflip"] = f1.checkbox("Horizontal flip", key=A + "hflip", help="horizontal_flip: mirror left-right.")
        values["vflip"] = f2.checkbox(
            "Vertical flip", key=A + "vflip", help="vertical_flip: valid for microscope images and core photos."
        )
        values["fill_mode"] = st.selectbox(
            "Fill mode",
            FILL_MODES,
            key=A + "fill_mode",
            help="How pixels moved in from outside the image are filled.",
        )
    try:
        aug = AugmentConfig(**values)
    except ValueError as exc:
        controls.error(str(exc), icon=":material/error:")
        return None, preview
    st.info(
        "Only **training** images are augmented. Validation and test images are shown to the network as they "
        "are, so their scores measure how it does on real, unaltered images.",
        icon=":material/verified:",
    )
    code1, code2 = st.columns(2, gap="large")
    with code1:
        st.markdown("**The course's code** (`ImageDataGenerator`, removed in Keras 3)")
        st.code(course_code(aug), language="python")
    with code2:
        st.markdown("**What CNN Lab runs** (Keras 3 preprocessing layers)")
        st.code(keras_code(aug), language="python")
    return aug, preview


def _preview(aug: AugmentConfig, m) -> None:
    source = state.dataset()
    if not source:
        st.caption("Pick a dataset to preview augmentation.")
        return
    ds = resources.dataset(source, m.input_size, m.channels)
    ss = st.session_state
    ss.setdefault(K + "preview_pick", 0)
    ss.setdefault(K + "preview_seed", 0)
    index = random.Random(ss[K + "preview_pick"]).randrange(len(ds))
    st.markdown(f"**Preview** · one {ds.class_names[int(ds.labels[index])]} image and {PREVIEW_N} random versions")
    b1, b2 = st.columns(2)
    if b1.button("Another image", key=K + "preview_next", icon=":material/image:", width="stretch"):
        ss[K + "preview_pick"] += 1
        st.rerun()
    if b2.button(
        "New random versions",
        key=K + "preview_reseed",
        icon=":material/casino:",
        width="stretch",
        disabled=not aug.enabled,
    ):
        ss[K + "preview_seed"] += 1
        st.rerun()
    image = ds.images[index]
    st.image(image, caption="original", width=160)
    if not aug.enabled:
        st.caption("Every control is off: the network sees the images as they are.")
        return
    with st.spinner("Loading TensorFlow for the preview (only the first time)…"):
        versions = resources.augment_preview(image, f"{ds.fingerprint}:{index}", aug, PREVIEW_N, ss[K + "preview_seed"])
    st.image(list(versions), width=100)


# --------------------------------------------------------------------------- training


def _start() -> None:
    """The Train button's callback (runs before the next script run, so it may set the sidebar's run)."""
    ss = st.session_state
    ss.pop(K + "error", None)
    try:
        jobs.start(state.dataset(), state.model_cfg(), state.train_cfg())
    except ValueError as exc:  # DataError, ArchitectureError, ConfigError: said next to the button
        ss[K + "error"] = str(exc)
    except Exception as exc:  # noqa: BLE001
        ss[K + "error_unexpected"] = exc


def _train_section(m, cfg: TrainConfig | None, impossible: bool, too_big: bool) -> None:
    ss = st.session_state
    job, mine = jobs.shown_job()
    if mine and st.query_params.get("job") != job.id:
        st.query_params["job"] = job.id  # a reload of this page finds the job again
        st.query_params["sid"] = state.owner()  # ... and knows it is this tab's (ui.state.owner)
    if not (mine and job.active):  # one training per session at a time
        _start_panel(m, cfg, impossible, too_big)
    if K + "error" in ss:
        st.error(ss.pop(K + "error"), icon=":material/error:")
    if K + "error_unexpected" in ss:
        show_unexpected(ss.pop(K + "error_unexpected"), "starting the training")

    if job is None:
        return
    if job.active:
        if not mine:
            st.caption("Training on the server now, started in another tab or session (yours, before a reload?):")
        can_stop = mine or identity.is_teacher()  # a student stops only their own training
        jobs.follow([job.id], partial(_live, mine, can_stop), on_finish=jobs.select_runs)
        return
    # Finished while nobody watched (another page, a closed tab): select its run once.
    if state.select_finished_run(job.id, job.snapshot()["run_id"]):
        st.rerun()
    _finished(job)


def _start_panel(m, cfg: TrainConfig | None, impossible: bool, too_big: bool) -> None:
    """The Train button, what blocks it, and whether the run store already has this run.

    ``impossible`` / ``too_big``: the page's checks of the network (drawn above); the worker checks it
    once more, for good, when the job is submitted.
    """
    source = state.dataset()
    blockers = []
    if not source:
        blockers.append("Pick a dataset on the Data page first.")
    if impossible:
        blockers.append("The architecture does not fit its input: fix it on the Architecture page.")
    elif cfg is not None and too_big:
        blockers.append("This network is larger than this server trains (see above): make it smaller first.")
    if cfg is None:
        blockers.append("Fix the setting marked above first.")
    stored = None
    if not blockers:
        try:
            stored = resources.stored_run(source, m, cfg)
        except ValueError as exc:  # DataError
            blockers.append(str(exc))
    w = resources.worker()
    running = w.running()
    if len(running) >= w.workers:
        snap = running[0].snapshot()
        busy = f"**{snap['label']}** (epoch {snap['epoch']}/{snap['epochs']})"
        if len(running) > 1:
            busy = f"{len(running)} trainings, the oldest {busy}"
        st.info(
            f"The trainer is busy with {busy}: it trains {w.workers} at a time. A new run waits in the queue; "
            f"{len(w.queued())} waiting now.",
            icon=":material/hourglass_top:",
        )
        _queue_table()
    c1, c2 = st.columns([1, 3], vertical_alignment="center")
    label = "Show the stored run" if stored is not None else "Train"
    c1.button(
        label,
        type="primary",
        icon=":material/play_arrow:",
        on_click=_start,
        disabled=bool(blockers),
        key=K + "start",
        width="stretch",
    )
    with c2:
        if blockers:
            for b in blockers:
                st.warning(b, icon=":material/block:")
        elif stored is not None:
            st.caption(
                f":material/inventory_2: This exact configuration was trained on this dataset before "
                f"({when(stored.created)}): it comes back from the run store instantly, nothing is retrained."
            )
        else:
            st.caption(f"{describe(m, cfg)} on **{source}**")
            _estimate_line(source, m, cfg)


def _estimate_line(source: str, m, cfg: TrainConfig) -> None:
    """How long it will take: from the layer table's multiply-adds and this server's measured speed."""
    try:
        est, ahead = jobs.training_estimate(source, m, cfg)
    except ValueError:  # DataError: already said above
        return
    if est.calibrated:
        st.caption(
            f":material/timer: {estimate_text(est, ahead)}; peak memory about "
            f"{est.peak_bytes / 2**20:,.0f} MB ({est.precision})."
        )
    elif jobs.measuring_speed(est.precision):
        st.caption(
            ":material/timer: Measuring this server's training speed (about 30 s, once); the estimate "
            "shows on the next change."
        )
    else:
        st.button(
            "Estimate the time",
            key=K + "measure",
            icon=":material/timer:",
            on_click=jobs.measure_speed,
            args=(est.precision,),
            disabled=bool(resources.worker().running()),
            help="Measures this server's training speed once (about 30 s of training on random images, "
            "best while nothing else trains). After that every training shows its time before it starts.",
        )


def _queue_table() -> None:
    rows = jobs.queue_rows()
    if rows:
        st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")


def _live(mine: bool, can_stop: bool, snaps: list) -> None:
    """The running (or queued) job, redrawn once a second by :func:`ui.jobs.follow`.

    ``mine``: this tab started it. ``can_stop``: mine, or the viewer is the teacher: Stop and Cancel show.
    """
    snap = snaps[0]
    if not jobs.is_active(snap):
        st.rerun()  # it ended between two looks: the whole page shows the result
    job_id = snap["id"]
    if snap["state"] == "queued":
        whose = "Your run" if mine else "This run"
        st.info(
            f"{whose} is number **{snap['position']}** in the queue: it starts when a training before it ends.",
            icon=":material/hourglass_top:",
        )
        _queue_table()
        if can_stop:
            st.button("Cancel", key=K + "cancel", on_click=jobs.stop, args=(job_id,), icon=":material/close:")
        return
    st.progress(snap["fraction"], text=f"**Training** {snap['label']} — {jobs.progress_text(snap)}")
    c1, c2 = st.columns([1, 4], vertical_alignment="center")
    if not can_stop:
        c2.caption("Started in another tab or by someone else: only they (or the teacher) can stop it.")
    elif snap["stop_requested"]:
        c1.button("Stopping…", key=K + "stopping", disabled=True, width="stretch")
        c2.caption("Training stops after the current batch; the run is saved with what it has learned.")
    else:
        c1.button(
            "Stop training", key=K + "stop", on_click=jobs.stop, args=(job_id,), icon=":material/stop:", width="stretch"
        )
        c2.caption("Stopping keeps what the network has learned: the run is saved and can be read like any other.")
    history = snap["history"]
    if history.get("loss"):
        st.plotly_chart(charts.history_figure(history, planned_epochs=snap["epochs"]), config=charts.CONFIG)
    else:
        st.caption("The curves appear when the first epoch ends.")


def _finished(job) -> None:
    snap = job.snapshot()
    st.subheader("Last training")
    if snap["state"] == jobs.INTERRUPTED:
        st.warning(snap["error"], icon=":material/restart_alt:")
        st.caption(snap["label"])
        if jobs.mine(job):
            st.button(
                "Train it again",
                key=K + "rerun",
                on_click=jobs.rerun,
                args=(snap["id"],),
                icon=":material/restart_alt:",
            )
        return
    if snap["state"] == "failed":
        st.error(job_error(snap["error"]) or "Training failed.", icon=":material/error:")  # out of memory: one line
        if snap["detail"]:
            with st.expander("Details (for the teacher)"):
                st.code(snap["detail"], language="text")
        return
    rec = resources.record(snap["run_id"])
    if rec is None:
        st.info(snap["error"] or "Cancelled before it started: nothing was trained.", icon=":material/info:")
        return
    n = len(rec.history.get("loss", []))
    acc = rec.test.get("accuracy")
    if snap["cached"]:
        st.badge("cached", icon=":material/inventory_2:", color="violet")
        st.success(
            f"Loaded from the run store: this configuration was trained before ({when(rec.created)}, "
            f"{rec.seconds:.0f} s). Nothing was retrained. Test accuracy {acc:.0%}.",
            icon=":material/inventory_2:",
        )
    elif rec.status == "stopped":
        st.warning(
            f"Stopped by you after {n} epoch{'s' if n != 1 else ''}. The run keeps {_kept_weights(rec)} and is "
            f"saved, marked *stopped*. Test accuracy {acc:.0%}.",
            icon=":material/stop_circle:",
        )
    else:
        extra = " Early stopping ended it before the last epoch." if rec.stopped_early else ""
        st.success(
            f"Finished: {plural(n, 'epoch')} in {rec.seconds:.0f} s.{extra} The model keeps "
            f"{_kept_weights(rec)}: test accuracy **{acc:.0%}**.",
            icon=":material/check_circle:",
        )
    st.plotly_chart(
        charts.history_figure(
            rec.history,
            best=rec.best_epoch,
            restored=rec.restored_epoch,
            stopped=n if rec.stopped_early else None,
            phases=rec.phases,
        ),
        config=charts.CONFIG,
    )
    c1, c2, _ = st.columns([1, 1, 2])
    c1.page_link(state.PAGES["diagnostics"], label="Read the curves", icon=":material/monitoring:")
    c2.page_link(state.PAGES["predictions"], label="See the predictions", icon=":material/grid_view:")
    if rec.status == "complete":
        _repeat_control(rec)


def _repeat_control(rec) -> None:
    """Train this configuration again over other seeds; the Compare page shows the spread."""
    c1, c2, c3 = st.columns([2, 1, 1], vertical_alignment="bottom")
    c1.caption(
        "Was it luck? Train the same settings with other seeds (split, first weights, shuffling) and see "
        "how much the scores move."
    )
    state.start_widgets({K + "seeds": 3})
    c2.number_input("Seeds", MIN_SEEDS, MAX_SEEDS, key=K + "seeds", persist_state="session")
    c3.button("Repeat over seeds", key=K + "repeat", icon=":material/replay:", on_click=_repeat, args=(rec.run_id,))


def _repeat(run_id: str) -> None:
    """The button's callback: queue the repeats, hand them to the Compare page, and go there."""
    ss = st.session_state
    try:
        ids = study.submit_repeats(resources.record(run_id), int(ss[K + "seeds"]))
    except ValueError as exc:  # ConfigError, DataError: said next to the Train button
        ss[K + "error"] = str(exc)
        return
    ss[COMPARE_REPEATS] = {**(ss.get(COMPARE_REPEATS) or {}), run_id: ids}
    ss[COMPARE_RUNS] = [run_id]
    ss[K + "go_compare"] = True  # main() switches page (st.switch_page is not for callbacks)


def _kept_weights(rec) -> str:
    """Which weights the saved model holds (core sets restored_epoch when it put the best epoch's back)."""
    if rec.restored_epoch:
        return f"the weights of its best epoch ({rec.restored_epoch})"
    return f"the weights of its last epoch ({len(rec.history.get('loss', []))})"


run_page(main)
