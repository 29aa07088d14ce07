"""Diagnostics: read the training curves, get a verdict, and try a remedy with one click."""

import json

import streamlit as st

from core.base import ModelConfig, TrainConfig, apply_changes
from core.results import diagnosis_of, last_weights_text, truth_table_text
from core.training import stop_reason
from ui import charts, resources, state, study
from ui.feedback import flash, header, no_run, set_flash
from ui.frame import run_page
from ui.sidebar import folder_label, source_name, when

VERDICT_STYLE = {  # badge colour and icon per verdict
    "good_fit": ("green", ":material/check_circle:"),
    "overfitting": ("orange", ":material/trending_up:"),
    "underfitting": ("blue", ":material/trending_flat:"),
    "still_improving": ("violet", ":material/trending_down:"),
    "too_few_epochs": ("gray", ":material/hourglass_empty:"),
    "diverged": ("red", ":material/warning:"),
}
SETTING_NAMES = {
    "model.dropout": "dropout",
    "model.filters": "filters (first block)",
    "model.filter_list": "filters per block",
    "model.dense_units": "dense units",
    "model.blocks": "blocks",
    "model.model": "model",
    "train.augment": "augmentation",
    "train.early_stopping": "early stopping patience",
    "train.monitor": "early stopping watches",
    "train.restore_best": "keep the best epoch's weights",
    "train.epochs": "epochs",
    "train.learning_rate": "learning rate",
    "train.train_fraction": "share of training images",
}


def main() -> None:
    header(
        "Diagnostics",
        "The training curves are the most important thing to read after training. **Training** (blue) shows how "
        "well the network fits the images it learns from; **validation** (orange) how well it does on images it "
        "never learned from. The gap between them tells the story.",
    )
    flash()
    rec = resources.record(state.run_id())
    if rec is None:
        no_run("come back to read its curves")
        return

    st.markdown(f"**Run:** {rec.label} · on *{source_name(rec.source)}* · {when(rec.created)}")
    n = len(rec.history.get("loss", []))
    stopped = n if rec.stopped_early else None
    st.plotly_chart(
        charts.history_figure(
            rec.history, best=rec.best_epoch, restored=rec.restored_epoch, stopped=stopped, phases=rec.phases
        ),
        config=charts.CONFIG,
    )
    monitor = rec.train_config.get("monitor", "val_loss")
    notes = [f"★ **best epoch {rec.best_epoch}**: the best {monitor}"]
    if rec.restored_epoch:
        notes.append(f"**restored {rec.restored_epoch}**: the saved model holds this epoch's weights")
    else:
        notes.append(last_weights_text(n))
    if stopped:
        notes.append(f"**stopped {stopped}**: early stopping ended training here")
    if len(rec.phases) > 1:
        notes.append("grey band: VGG16 fine-tuning, after the new head had trained")
    if rec.status == "stopped":
        notes.append(stop_reason(rec) or "this run was stopped by hand before its last planned epoch")
    st.caption(" · ".join(notes))

    diag = d.to_dict() if (d := diagnosis_of(rec)) else {}  # by today's truth table, also for older runs
    _verdict(diag)
    with st.expander("How the verdict is decided (the truth table)", icon=":material/rule:"):
        st.markdown(truth_table_text())
    _remedies(rec, diag)
    with st.expander("This run's settings and numbers"):
        c1, c2 = st.columns(2)
        c1.markdown("**Model**")
        c1.code(json.dumps(rec.model_config, indent=2), language="json")
        c2.markdown("**Training**")
        c2.code(json.dumps(rec.train_config, indent=2), language="json")
        st.caption(
            f"Trained in {rec.seconds:.1f} s on {rec.data.get('n_train', '?')} training images · run id {rec.run_id}"
        )
    _downloads(rec)


def _downloads(rec) -> None:
    """The run to take away: a script to run anywhere, the report, the model and the numbers."""
    with st.expander("Download this run", icon=":material/download:"):
        files = study.exports(rec.run_id)
        st.caption(
            "A standalone script in the course's style (needs only TensorFlow, NumPy, scikit-learn and "
            "Pillow: `python run.py FOLDER --epochs N`), the history and test predictions as CSV, and "
            "the settings as JSON (the Train page can load them)."
        )
        c1, c2, c3, c4 = st.columns(4)
        c1.download_button(
            "Script (run.py)",
            files["script"],
            f"run_{rec.run_id}.py",
            "text/x-python",
            key="diag.dl.script",
            icon=":material/code:",
            on_click="ignore",
        )
        c2.download_button(
            "History (CSV)",
            files["history"],
            f"history_{rec.run_id}.csv",
            "text/csv",
            key="diag.dl.history",
            on_click="ignore",
        )
        c3.download_button(
            "Predictions (CSV)",
            files["predictions"],
            f"predictions_{rec.run_id}.csv",
            "text/csv",
            key="diag.dl.predictions",
            on_click="ignore",
        )
        c4.download_button(
            "Settings (JSON)",
            files["config"],
            f"settings_{rec.run_id}.json",
            "application/json",
            key="diag.dl.config",
            on_click="ignore",
        )
        if st.toggle("Prepare the model file and the HTML report (about 5 MB)", key="diag.dl.big"):
            c5, c6 = st.columns(2)
            model = study.model_bytes(rec.run_id)
            if model is not None:
                c5.download_button(
                    "Best model (.keras)", model, f"model_{rec.run_id}.keras", key="diag.dl.model", on_click="ignore"
                )
            c6.download_button(
                "Report (HTML, opens offline)",
                study.report(rec.run_id),
                f"report_{rec.run_id}.html",
                "text/html",
                key="diag.dl.report",
                icon=":material/description:",
                on_click="ignore",
            )


def _verdict(diag: dict) -> None:
    verdict = diag.get("verdict", "")
    color, icon = VERDICT_STYLE.get(verdict, ("gray", ":material/help:"))
    numbers = diag.get("numbers", {})
    with st.container(border=True):
        st.markdown(f"#### Verdict: :{color}-badge[{icon} {diag.get('title', 'none')}]")
        st.markdown(diag.get("headline", ""))
        for line in diag.get("evidence", []):
            st.markdown(f"- {line}")
        c1, c2, c3, c4 = st.columns(4)
        _metric(c1, "Best epoch", numbers.get("best_epoch"), "{}", "The epoch with the lowest validation loss.")
        _metric(c2, "Validation accuracy there", numbers.get("best_val_accuracy"), "{:.0%}")
        _metric(
            c3,
            "Train − validation accuracy",
            numbers.get("gap_accuracy"),
            "{:+.0%}",
            "At the last epoch. A wide gap (the course's 0.95 vs 0.78) is a sign of overfitting.",
        )
        _metric(
            c4,
            "Validation loss since its best",
            numbers.get("val_loss_rise"),
            "{:+.0%}",
            "How far validation loss climbed back from its lowest point by the end.",
        )


def _metric(col, label: str, value, fmt: str, help: str | None = None) -> None:
    col.metric(label, fmt.format(value) if isinstance(value, (int, float)) else "–", help=help)


def _remedies(rec, diag: dict) -> None:
    remedies = diag.get("remedies", [])
    st.subheader("What to try next")
    if not remedies:
        st.caption("Nothing to fix: the curves look healthy. Compare it with other runs, or try transfer learning.")
        return
    for i, remedy in enumerate(remedies):
        changes = remedy.get("changes") or {}
        with st.container(border=True):
            c1, c2 = st.columns([4, 1], vertical_alignment="center")
            c1.markdown(f"**{remedy['label']}**")
            c1.caption(remedy.get("why", ""))
            if changes:
                what = ", ".join(f"{SETTING_NAMES.get(k, k)} → {_value(v)}" for k, v in changes.items())
                c1.caption(f"Changes: {what}")
                target = "architecture" if any(k.startswith("model.") for k in changes) else "train"
                if c2.button(
                    "Try this",
                    key=f"diag.remedy.{i}",
                    width="stretch",
                    icon=":material/auto_fix_high:",
                    help=f"Apply the change to this run's settings and open the {target.title()} page.",
                ):
                    _apply(rec, remedy, target)
                c2.caption(f"opens the {target.title()} page")
            else:
                c2.caption("Advice only: the app cannot do this one for you.")


def _value(v) -> str:
    if v == "course":
        return "the course's settings"
    if isinstance(v, bool):
        return "on" if v else "off"
    if isinstance(v, list):
        return "-".join(str(x) for x in v)
    return f"{v:g}" if isinstance(v, float) else str(v)


def _apply(rec, remedy: dict, target: str) -> None:
    model_cfg = ModelConfig.from_dict(rec.model_config)
    train_cfg = TrainConfig.from_dict(rec.train_config)
    new_model, new_train = apply_changes(remedy["changes"], model_cfg, train_cfg)
    state.set_configs(new_model, new_train)
    if rec.source != state.dataset():
        if resources.bundled_info(rec.source) is None:
            state.add_source(rec.source, folder_label(rec.source))
        state.request(**{state.DATASET: rec.source})
    set_flash(
        f"Applied “{remedy['label']}” to this run's settings. Check them here, then train again on the "
        "Train page and compare the curves."
    )
    st.switch_page(state.PAGES[target])


run_page(main)
