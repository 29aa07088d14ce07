"""Overfitting lab: a baseline and the course's three cures, trained side by side on the same split.

Reads the controls, asks :mod:`core.lab.variants` for the variants and starts them
(:func:`ui.jobs.start_many`); :func:`ui.jobs.follow` redraws the results while they train.
Variants already in the run store come back at once, marked "cached".
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial

import streamlit as st

from core.base import LEARNING_RATES, ModelConfig, TrainConfig, network_text, plural
from core.lab import lab_curves, lab_rows, lab_summary
from core.lab import variants as lab
from ui import charts, jobs, resources, state
from ui.controls import slider_max, valid_range
from ui.feedback import header, no_dataset, set_flash
from ui.frame import run_page
from ui.job_panel import job_panel
from ui.sidebar import dataset_label

K = "lab."  # this page's widget and session keys
PRESET = K + "preset"  # the lesson picked last
TITLES = {v.name: v.title for v in lab.lab_variants()}
NETWORKS = {"course": "The course's CNN", "architecture": "Your Architecture-page CNN"}
DEFAULTS = {
    K + "fraction": round(lab.DEFAULT_FRACTION * 100),
    K + "epochs": lab.DEFAULT_EPOCHS,
    K + "lr": TrainConfig().learning_rate,
    K + "seed": lab.DEFAULT_SEED,
    K + "variants": list(lab.VARIANT_NAMES),
    K + "network": "course",
}
COLUMNS = {
    "Best-epoch val acc": st.column_config.NumberColumn(
        format="%.3f", help="Validation accuracy at the epoch with the lowest validation loss."
    ),
    "Train-val gap (last epoch)": st.column_config.NumberColumn(
        format="%+.3f", help="Training minus validation accuracy at the last epoch run."
    ),
    "Test acc": st.column_config.NumberColumn(format="%.3f", help="With the best epoch's weights."),
    "Time (s)": st.column_config.NumberColumn(format="%.1f", help="Training time when the run was trained."),
}


def main() -> None:
    header(
        "Overfitting lab",
        "Small geoscience datasets overfit: a network with hundreds of thousands of weights can memorise a "
        "hundred thin sections. Train a **baseline** and the course's three cures (**dropout**, **data "
        "augmentation**, **early stopping**) on the same images, split and seed, and compare their "
        "validation-loss curves.",
    )
    source = state.dataset()
    if not source:
        no_dataset()
        return
    st.caption(f"Data: **{dataset_label(source)}** (change it in the sidebar).")
    state.start_widgets(DEFAULTS)
    _presets()
    model_cfg, chosen = _controls(source)
    if st.button(
        "Run the lab",
        type="primary",
        key=K + "start",
        icon=":material/play_arrow:",
        disabled=not chosen,
        help="Trains the chosen variants one after another in the background.",
    ):
        _start(source, model_cfg, chosen)
    if not chosen:
        st.caption("Pick at least one variant.")

    run = jobs.following(jobs.LAB)  # the lab this session started last: its jobs, variants and settings text
    if run is None:
        st.info(
            f"No lab yet. Press **Run the lab** to train the variants on **{source}**, one after another in the "
            "background: a few minutes for the five at 20% of the thin sections; variants already in the run "
            "store come back at once. Or pick a lesson above first: **Make it overfit**, then **Fix it**.",
            icon=":material/science:",
        )
        return
    jobs.follow(jobs.LAB, partial(_results, run.about))


# --- controls -----------------------------------------------------------------


def _use_preset(name: str) -> None:
    """Set the controls to a lesson (a widget callback: runs before the widgets are drawn)."""
    ss = st.session_state
    preset = lab.PRESETS[name]
    current = TrainConfig(train_fraction=ss[K + "fraction"] / 100, epochs=ss[K + "epochs"], learning_rate=ss[K + "lr"])
    _, t = preset.apply(None, current)
    ss[K + "fraction"] = min(100, max(10, round(t.train_fraction * 100)))
    ss[K + "epochs"] = min(100, max(2, t.epochs))
    ss[K + "lr"] = t.learning_rate if t.learning_rate in LEARNING_RATES else DEFAULTS[K + "lr"]
    ss[K + "variants"] = list(preset.variants)
    ss[PRESET] = name


def _presets() -> None:
    cols = st.columns(len(lab.PRESETS))
    for col, (name, preset) in zip(cols, lab.PRESETS.items(), strict=True):
        col.button(
            preset.title,
            key=K + "preset." + name,
            on_click=_use_preset,
            args=(name,),
            help=preset.description,
            width="stretch",
        )
    name = st.session_state.get(PRESET)
    if name not in lab.PRESETS:
        return
    preset = lab.PRESETS[name]
    st.info(f"**{preset.title}**: {preset.description}\n\n**Look for:** {preset.look_for}", icon=":material/school:")
    if st.button(
        f"Use “{preset.title}” on the Train page",
        key=K + "apply",
        icon=":material/tune:",
        help="Copies these settings into your Architecture and Train settings.",
    ):
        state.set_configs(*preset.apply(state.model_cfg(), state.train_cfg()))
        set_flash(f"“{preset.title}” is now in your Architecture and Train settings: train it here.")
        st.switch_page(state.PAGES["train"])


def _architecture_cnn() -> ModelConfig | None:
    """The Architecture page's network, when it is a CNN other than the course's."""
    cfg = state.model_cfg()
    if cfg.model != "cnn" or cfg.replace(dropout=0.0, num_classes=5) == ModelConfig(dropout=0.0):
        return None  # VGG16 (not the lab's subject), or the course's network: nothing to choose
    return cfg


def _controls(source: str) -> tuple[ModelConfig | None, list[str]]:
    c1, c2 = st.columns(2)
    c1.slider(
        "Training images used",
        10,
        100,
        step=5,
        format="%d%%",
        key=K + "fraction",
        persist_state="session",
        help="A stratified share of the training part; validation and test images stay the same.",
    )
    c2.slider(
        "Epochs (at most)",
        2,
        slider_max("epochs", K + "epochs"),
        key=K + "epochs",
        persist_state="session",
        help="Every variant gets the same number; early stopping may end one sooner.",
    )
    c3, c4 = st.columns(2)
    c3.select_slider(
        "Learning rate",
        options=list(LEARNING_RATES),
        format_func=lambda x: f"{x:g}",
        key=K + "lr",
        persist_state="session",
        help="Adam's usual value is 0.001.",
    )
    c4.number_input(
        "Seed",
        *valid_range("seed"),
        step=1,
        key=K + "seed",
        persist_state="session",
        help="The split, the first weights and the shuffling: the same for every variant.",
    )
    arch = _architecture_cnn()
    model_cfg = None
    if arch is not None:
        choice = st.radio(
            "Network",
            list(NETWORKS),
            key=K + "network",
            persist_state="session",
            horizontal=True,
            format_func=NETWORKS.get,
        )
        model_cfg = arch if choice == "architecture" else None
    st.caption(f"Network: {_network(model_cfg, source)}. The variants add their cure to it.")
    chosen = (
        st.pills(
            "Variants",
            list(lab.VARIANT_NAMES),
            selection_mode="multi",
            format_func=TITLES.get,
            key=K + "variants",
            persist_state="session",
        )
        or []
    )
    return model_cfg, [n for n in lab.VARIANT_NAMES if n in chosen]


def _network(model_cfg: ModelConfig | None, source: str) -> str:
    """The baseline's network in words (the course's CNN when ``model_cfg`` is None; no dropout)."""
    return network_text(resources.fit_classes(model_cfg or ModelConfig(), source).replace(dropout=0.0))


def _start(source: str, model_cfg: ModelConfig | None, chosen: list[str]) -> None:
    ss = st.session_state
    fraction, epochs, lr, seed = ss[K + "fraction"] / 100, ss[K + "epochs"], ss[K + "lr"], int(ss[K + "seed"])
    try:
        variants = lab.lab_variants(
            fraction=fraction, epochs=epochs, seed=seed, model_cfg=model_cfg, train_cfg=TrainConfig(learning_rate=lr)
        )
        variants = [v for v in variants if v.name in chosen]
        settings = (
            f"{source} · {fraction:.0%} of the training images · up to {plural(epochs, 'epoch')} · "
            f"learning rate {lr:g} · seed {seed} · {_network(model_cfg, source)}"
        )
        configs = [(v.model_cfg, v.train_cfg) for v in variants]
        jobs.start_many(jobs.LAB, source, configs, source=source, variants=variants, settings=settings)
    except ValueError as exc:  # DataError, ArchitectureError, ConfigError: the message says what to do
        st.error(str(exc), icon=":material/error:")


# --- results ------------------------------------------------------------------


def _results(run: Mapping, snaps: list) -> None:
    """The lab's jobs, curves and table (redrawn once a second while a variant trains)."""
    variants = run["variants"]
    active = any(jobs.is_active(s) for s in snaps)
    st.subheader("Results")
    st.caption(run["settings"])
    job_panel(
        snaps,
        key=K,
        titles=[v.title for v in variants],
        retry="Press Run the lab again; stored variants come back at once.",
        stop_label="Stop the lab",
    )

    curves = lab_curves(variants, [s.history if s else None for s in snaps])
    if curves:
        show_train = st.toggle("Show training loss too (dotted)", key=K + "show_train")
        st.markdown("**Validation loss per epoch** (★ = each variant's best epoch)")
        st.plotly_chart(charts.lab_figure(curves, show_train), config=charts.CONFIG)
    elif active:
        st.caption("The curves appear after the first epoch.")

    rows = lab_rows(variants, jobs.results(snaps))
    if any(r["epochs_run"] is not None for r in rows):
        st.dataframe(_table(rows), hide_index=True, column_config=COLUMNS)
        summary = lab_summary(rows)
        if summary and not active:
            st.success(" ".join(summary), icon=":material/lightbulb:")
    st.markdown("**What each variant changes, and why**")
    st.markdown("\n".join(f"- **{v.title}**: {v.changes}" for v in variants))
    st.caption(
        "Every variant is scored with its best epoch's weights (lowest validation loss), as the course's "
        "ModelCheckpoint keeps them. Training accuracy is measured on the batches as trained, with dropout "
        "switched on and augmented images, so with those cures the gap can even be negative."
    )


def _table(rows: list[dict]) -> list[dict]:
    out = []
    for r in rows:
        ran = r["epochs_run"] is not None
        out.append(
            {
                "Variant": r["title"],
                "Best-epoch val acc": r["best_val_accuracy"],
                "Train-val gap (last epoch)": r["final_gap"],
                "Test acc": r["test_accuracy"],
                "Epochs run": f"{r['epochs_run']} of {r['epochs_planned']}" if ran else None,
                "Best epoch": r["best_epoch"],
                "Time (s)": r["seconds"],
                "Source": ("cached" if r["cached"] else "trained") if ran else "-",
                "Verdict": r["verdict"],
            }
        )
    return out


run_page(main)
