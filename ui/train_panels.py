"""The Train page's panels below its form: the Train button and what blocks it, the live training, the
last training's result, repeating it over seeds, and the learning-rate range test ("Find a learning rate":
a job like a training, its chart, and "Use this", which moves the learning-rate slider).

Training never runs in the page's script: the Train button hands the job to
core's process-wide worker (:func:`ui.jobs.start`), and :func:`ui.jobs.follow`
redraws it once a second with the job panel (:mod:`ui.job_panel`). Moving a
slider, switching page or reloading does not stop or duplicate it.
"""

from __future__ import annotations

import streamlit as st

from core.base import describe, plural, settings
from core.base.config import LEARNING_RATES, TrainConfig
from core.jobs import CANCELLED, Job, JobState, budget_warning, estimate_text
from core.lab import CONTROLS
from core.results import MAX_SEEDS, MIN_SEEDS
from core.results.lr_range import nearest
from core.store.challenges import time_budget_for
from core.training import LRRange, stop_reason
from ui import challenges, charts, jobs, resources, state, study
from ui.feedback import show_unexpected
from ui.job_panel import ended_text, failure_details, job_panel, queue_table
from ui.sidebar import when

K = state.TRAIN  # the Train page's widget and session keys
GO_COMPARE = K + "go_compare"  # the page switches to Compare on its next run (st.switch_page is not for callbacks)
COMPARE_RUNS = "compare.runs"  # the Compare page's run select (pages/compare.py)


def train_section(m, cfg: TrainConfig | None, impossible: bool, too_big: bool) -> None:
    """The Train button (unless this session's training runs), then the shown training: live, or its result.

    ``impossible`` / ``too_big``: the page's checks of the network (drawn above it).
    """
    ss = st.session_state
    job, mine = jobs.shown_job()
    if mine and st.query_params.get("job") != job.id:
        st.query_params["job"] = job.id  # a reload of this page finds the job again
        st.query_params["sid"] = state.owner()  # ... and knows it is this tab's (ui.state.owner)
    if not (mine and job.active) or jobs.found_again(jobs.TRAIN):  # one training per press of this tab at a time
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
        jobs.follow(jobs.TRAIN, _live, job_ids=None if mine else [job.id], on_finish=jobs.select_runs)
        return
    # Finished while nobody watched (another page, a closed tab): select its run once.
    if state.select_finished_run(job.id, job.snapshot().run_id):
        st.rerun()
    _finished(job)


def _live(snaps: list) -> None:
    job_panel(snaps, key=K)


def _start() -> None:
    """The Train button's callback (runs before the next script run, so it may set the sidebar's run)."""
    ss = st.session_state
    ss.pop(K + "error", None)
    try:
        jobs.start(jobs.TRAIN, state.dataset(), state.model_cfg(), state.train_cfg())
    except ValueError as exc:  # DataError, ArchitectureError, ConfigError: said next to the button
        ss[K + "error"] = str(exc)
    except Exception as exc:  # noqa: BLE001
        ss[K + "error_unexpected"] = exc


def _start_panel(m, cfg: TrainConfig | None, impossible: bool, too_big: bool) -> None:
    """The Train button, what blocks it, and whether the run store already has this run.

    The worker checks the network once more, for good, when the job is submitted.
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
    reasons = challenges.reasons(m, cfg)  # the active dataset is a challenge's images: its budgets
    blockers += [reasons[c] for c in CONTROLS if c in reasons]
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
        busy = f"**{snap.label}** (epoch {snap.epoch}/{snap.epochs})"
        if len(running) > 1:
            busy = f"{len(running)} trainings, the oldest {busy}"
        st.info(
            f"The trainer is busy with {busy}: it trains {w.workers} at a time. A new run waits in the queue; "
            f"{len(w.queued())} waiting now.",
            icon=":material/hourglass_top:",
        )
        queue_table()
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
    """How long the student will wait, in its parts: from the layer table's multiply-adds, this server's measured
    speed, whether a warm training process is ready, and the trainings the fair queue starts first."""
    try:
        est, ahead = jobs.training_estimate(source, m, cfg)
    except ValueError:  # DataError: already said above
        return
    if est.calibrated:
        st.caption(
            f":material/timer: {estimate_text(est, ahead)}; peak memory about "
            f"{est.peak_bytes / 2**20:,.0f} MB ({est.precision})."
        )
        if warning := budget_warning(est, time_budget_for(resources.store(), source)[0] or 0):
            st.warning(warning, icon=":material/timer_off:")
        return
    busy = bool(resources.worker().running())  # a training now would slow the measurement down and skew it
    if not busy and settings().measure_speed and not jobs.measuring_failed(est.precision):
        jobs.measure_speed(est.precision)  # this precision was not measured when the server started
    if jobs.measuring_speed(est.precision):
        _measuring(est.precision)
    else:
        st.button(
            "Estimate the time",
            key=K + "measure",
            icon=":material/timer:",
            on_click=jobs.measure_speed,
            args=(est.precision,),
            disabled=busy,
            help="Measures this server's training speed once (about 30 s of training on random images, "
            "best while nothing else trains). After that every training shows its time before it starts.",
        )


@st.fragment(run_every=2.0)
def _measuring(precision: str) -> None:
    """ "Measuring..." while this server's speed is measured, looked at every 2 s: once it is stored, the whole
    page reruns once and the estimate shows (this part is then no longer drawn, and the looking stops)."""
    if not jobs.measuring_speed(precision):
        st.rerun()
    st.caption(
        ":material/timer: Measuring this server's training speed (once, about 30 s when nothing else runs)... "
        "the estimate shows when it is done."
    )


def _finished(job: Job) -> None:
    """The last training of this session (or the server's): its result, or why there is none."""
    snap = job.snapshot()
    st.subheader("Last training")
    if snap.state == JobState.INTERRUPTED:
        st.warning(snap.error, icon=":material/restart_alt:")
        st.caption(snap.label)
        if jobs.mine(job):
            st.button(
                "Train it again",
                key=K + "rerun",
                on_click=jobs.rerun,
                args=(snap.id,),
                icon=":material/restart_alt:",
            )
        return
    if snap.state == JobState.FAILED:
        st.error(ended_text(snap), icon=":material/error:")  # out of memory: one line
        failure_details(snap)
        return
    rec = resources.record(snap.run_id)
    if rec is None:
        st.info(ended_text(snap) or CANCELLED, icon=":material/info:")
        return
    n = len(rec.history.get("loss", []))
    acc = rec.test.get("accuracy")
    if snap.cached:
        st.badge("cached", icon=":material/inventory_2:", color="violet")
        st.success(
            f"Loaded from the run store: this configuration was trained before ({when(rec.created)}, "
            f"{rec.seconds:.0f} s). Nothing was retrained. Test accuracy {acc:.0%}.",
            icon=":material/inventory_2:",
        )
    elif rec.status == "stopped":
        why = stop_reason(rec) or f"Stopped by you after {plural(n, 'epoch')}."
        st.warning(
            f"{why} The run keeps {_kept_weights(rec)} and is saved, marked *stopped*. Test accuracy {acc:.0%}.",
            icon=":material/timer_off:" if stop_reason(rec) else ":material/stop_circle:",
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
    """The button's callback: queue the repeats (shown by the Compare page), and go there."""
    ss = st.session_state
    try:
        study.submit_repeats(resources.record(run_id), int(ss[K + "seeds"]))
    except ValueError as exc:  # ConfigError, DataError: said next to the Train button
        ss[K + "error"] = str(exc)
        return
    ss[COMPARE_RUNS] = [run_id]
    ss[GO_COMPARE] = True  # the page switches on its next run


def _kept_weights(rec) -> str:
    """Which weights the saved model holds (core sets restored_epoch when it put the best epoch's back)."""
    if rec.restored_epoch:
        return f"the weights of its best epoch ({rec.restored_epoch})"
    return f"the weights of its last epoch ({len(rec.history.get('loss', []))})"


# -- the learning-rate range test ---------------------------------------------------------------------------

LR = K + "learning_rate"  # the learning-rate slider's key (pages/train.py)


def lr_find_section(m, cfg: TrainConfig | None, blocked: bool) -> None:
    """ "Find a learning rate": a range test of this network and these settings as a job (stored: the same test
    again answers at once), followed live with the job panel, then its chart and "Use this"."""
    ss = st.session_state
    started = jobs.following(jobs.LR_FIND)
    job = jobs.find(started.ids[0]) if started else None
    active = job is not None and job.active
    c1, c2 = st.columns([1, 3], vertical_alignment="center")
    c1.button(
        "Find a learning rate",
        key=K + "lr_find",
        icon=":material/query_stats:",
        on_click=_start_lr_find,
        disabled=blocked or cfg is None or not state.dataset() or active,
        width="stretch",
    )
    c2.caption(
        "A short training of a fresh copy of this network while the learning rate rises from "
        f"{LRRange().start:g} to {LRRange().end:g}: where the loss falls fastest, the network learns; where it "
        "shoots up, the steps are too big. Nothing is kept but the curve."
    )
    if K + "lr_error" in ss:
        st.error(ss.pop(K + "lr_error"), icon=":material/error:")
    if job is None:
        return
    if active:
        jobs.follow(jobs.LR_FIND, _live_lr)
        return
    snap = job.snapshot()
    result = resources.lr_find(snap.lr_find_key)
    if result is None:
        st.info(ended_text(snap) or CANCELLED, icon=":material/info:")
        failure_details(snap)
        return
    _lr_find_result(result, cached=snap.cached)


def _live_lr(snaps: list) -> None:
    job_panel(snaps, key=K + "lr.")


def _start_lr_find() -> None:
    """The button's callback: the range test of the page's settings as this session's job."""
    ss = st.session_state
    ss.pop(K + "lr_error", None)
    try:
        jobs.start(jobs.LR_FIND, state.dataset(), state.model_cfg(), state.train_cfg(), lr_find=LRRange())
    except ValueError as exc:  # DataError, ArchitectureError, ConfigError, QueueFull: said under the button
        ss[K + "lr_error"] = str(exc)


def _lr_find_result(result, *, cached: bool) -> None:
    s = result.suggestion
    if cached:
        st.caption(
            f":material/inventory_2: From the run store: this range test ran before ({when(result.created)}, "
            f"{result.seconds:.0f} s); nothing was trained again."
        )
    st.plotly_chart(
        charts.lr_find_figure(
            tuple(result.lrs),
            tuple(result.losses),
            tuple(result.smoothed),
            suggested=s.learning_rate,
            rule=s.rule,
            falls=None if s.falls_from is None else (s.falls_from, s.falls_to),
        ),
        config=charts.CONFIG,
    )
    st.markdown(result.sentence())
    if s.learning_rate is None:
        return
    step = nearest(s.learning_rate, LEARNING_RATES)
    c1, c2 = st.columns([1, 3], vertical_alignment="center")
    c1.button(
        f"Use {step:g}",
        key=K + "lr_use",
        icon=":material/check:",
        on_click=_use_rate,
        args=(step,),
        width="stretch",
    )
    c2.caption(
        f"Sets the learning rate above to {step:g}, the slider's step nearest the suggested {s.learning_rate:.2g} "
        "(its steps are fixed: 1, 3, 10, 30... times a power of ten)."
    )


def _use_rate(value: float) -> None:
    """ "Use this": move the learning-rate slider (the page builds the settings from it on this run)."""
    st.session_state[LR] = value
