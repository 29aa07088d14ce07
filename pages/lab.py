"""Overfitting lab: a baseline and the course's three cures, trained side by side on the same split.

Reads the controls, asks :mod:`core.lab` for the variants, hands them to core's
process-wide training worker and draws what comes back. Nothing trains in this
script: a fragment polls the jobs once a second while any is queued or running.
Variants already in the run store come back at once, marked "cached".

Self-contained on purpose (streamlit, core, plotly): it works inside app.py's
navigation and on its own, with or without the shared session keys.
"""

from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st
from streamlit.errors import StreamlitAPIException

from core import lab
from core.config import ModelConfig, TrainConfig
from ui import resources
from ui.feedback import job_status

K = "lab."  # this page's session keys
RUN = K + "run"  # the lab this session started last: source, variants, job ids, settings text
PRESET = K + "preset"  # the lesson picked last
SETTINGS = K + "settings"  # the controls' values, kept when the page is left (Streamlit drops widget state)
POLL_SECONDS = 1.0
ACTIVE = ("queued", "running")
TRAIN_PAGE = "pages/train.py"
# Widget-key prefixes of the Architecture and Train pages (ui.state.ARCH / TRAIN): dropped when a
# preset changes the configs, so those pages read their sliders from the new configs.
CONFIG_WIDGET_PREFIXES = ("arch.", "train.")

TITLES = {v.name: v.title for v in lab.lab_variants()}
COLORS = {
    "baseline": "#B8323F",
    "dropout": "#2563A8",
    "augment": "#1E8A53",
    "early_stopping": "#7A4FB5",
    "all": "#E0792B",
}
DEFAULTS = {
    K + "fraction": round(lab.DEFAULT_FRACTION * 100),
    K + "epochs": lab.DEFAULT_EPOCHS,
    K + "lr": 0.001,
    K + "seed": lab.DEFAULT_SEED,
    K + "variants": list(lab.VARIANT_NAMES),
    K + "network": "course",
}
ss = st.session_state


# --- controls -----------------------------------------------------------------


def _init_controls() -> None:
    kept = ss.get(SETTINGS) or {}
    for key, default in DEFAULTS.items():
        if key not in ss:
            ss[key] = kept.get(key, default)
    if ss[K + "lr"] not in lab.LEARNING_RATES:
        ss[K + "lr"] = 0.001


def _use_preset(name: str) -> None:
    """Set the controls to a lesson (a widget callback: runs before the widgets are drawn)."""
    preset = lab.PRESETS[name]
    current = TrainConfig(
        train_fraction=ss.get(K + "fraction", 20) / 100,
        epochs=ss.get(K + "epochs", lab.DEFAULT_EPOCHS),
        learning_rate=ss.get(K + "lr", 0.001),
    )
    _, t = preset.apply(None, current)
    ss[K + "fraction"] = min(100, max(10, round(t.train_fraction * 100)))
    ss[K + "epochs"] = min(100, max(2, t.epochs))
    ss[K + "lr"] = t.learning_rate if t.learning_rate in lab.LEARNING_RATES else 0.001
    ss[K + "variants"] = list(preset.variants)
    ss[PRESET] = name


def _architecture_cnn() -> ModelConfig | None:
    """The Architecture page's network, when it is a CNN other than the course's."""
    cfg = ss.get("model_cfg")
    if not isinstance(cfg, ModelConfig) or cfg.model != "cnn":
        return None
    if cfg.replace(dropout=0.0, num_classes=5) == ModelConfig(dropout=0.0):
        return None  # the course's network: nothing to choose
    return cfg


def _network_label(cfg: ModelConfig | None) -> str:
    if cfg is None:
        return "the course's CNN (32-64-128 filters, Dense 128)"
    filters = "-".join(str(f) for f in cfg.block_filters())
    return f"your Architecture-page CNN ({filters} filters, Dense {cfg.dense_units}, {cfg.input_size} px)"


def _presets() -> None:
    cols = st.columns(len(lab.PRESETS))
    for col, (name, preset) in zip(cols, lab.PRESETS.items(), strict=True):
        col.button(preset.title, key=K + "preset." + name, on_click=_use_preset, args=(name,),
                   help=preset.description, width="stretch")  # fmt: skip
    name = ss.get(PRESET)
    if name not in lab.PRESETS:
        return
    preset = lab.PRESETS[name]
    st.info(f"**{preset.title}**: {preset.description}\n\n**Look for:** {preset.look_for}",
            icon=":material/school:")  # fmt: skip
    if st.button(f"Use “{preset.title}” on the Train page", key=K + "apply", icon=":material/tune:",
                 help="Copies these settings into your Architecture and Train settings."):  # fmt: skip
        _apply_to_configs(preset)


def _apply_to_configs(preset: lab.Preset) -> None:
    m0, t0 = ss.get("model_cfg"), ss.get("train_cfg")
    m, t = preset.apply(m0 if isinstance(m0, ModelConfig) else None, t0 if isinstance(t0, TrainConfig) else None)
    ss["model_cfg"], ss["train_cfg"] = m, t
    for key in [k for k in ss.keys() if isinstance(k, str) and k.startswith(CONFIG_WIDGET_PREFIXES)]:
        del ss[key]
    try:
        st.switch_page(TRAIN_PAGE)
    except StreamlitAPIException:  # the page runs on its own, without app.py's navigation
        st.success(f"“{preset.title}” is now in your Architecture and Train settings: train it on the Train page.",
                   icon=":material/check:")  # fmt: skip


def _controls() -> tuple[ModelConfig | None, list[str]]:
    c1, c2 = st.columns(2)
    c1.slider("Training images used", 10, 100, step=5, format="%d%%", key=K + "fraction",
              help="A stratified share of the training part; validation and test images stay the same.")  # fmt: skip
    c2.slider("Epochs (at most)", 2, 100, key=K + "epochs",
              help="Every variant gets the same number; early stopping may end one sooner.")  # fmt: skip
    c3, c4 = st.columns(2)
    c3.select_slider("Learning rate", options=list(lab.LEARNING_RATES), format_func=lambda x: f"{x:g}",
                     key=K + "lr", help="Adam's usual value is 0.001.")  # fmt: skip
    c4.number_input("Seed", min_value=0, max_value=2**31 - 1, step=1, key=K + "seed",
                    help="The split, the first weights and the shuffling: the same for every variant.")  # fmt: skip
    arch = _architecture_cnn()
    model_cfg = None
    if arch is not None:
        choice = st.radio("Network", ["course", "architecture"], key=K + "network", horizontal=True,
                          format_func=lambda n: _network_label(arch if n == "architecture" else None))  # fmt: skip
        model_cfg = arch if choice == "architecture" else None
    else:
        st.caption(f"Network: {_network_label(None)}.")
    chosen = st.pills("Variants", list(lab.VARIANT_NAMES), selection_mode="multi", format_func=TITLES.get,
                      key=K + "variants") or []  # fmt: skip
    ss[SETTINGS] = {key: ss[key] for key in DEFAULTS if key in ss}
    return model_cfg, [n for n in lab.VARIANT_NAMES if n in chosen]


def _start(source: str, model_cfg: ModelConfig | None, chosen: list[str]) -> None:
    fraction, epochs, lr, seed = ss[K + "fraction"] / 100, ss[K + "epochs"], ss[K + "lr"], int(ss[K + "seed"])
    variants = lab.lab_variants(fraction=fraction, epochs=epochs, seed=seed, model_cfg=model_cfg,
                                train_cfg=TrainConfig(learning_rate=lr))  # fmt: skip
    variants = [v for v in variants if v.name in chosen]
    try:
        jobs = lab.submit_lab(source, variants, worker=resources.worker())
    except ValueError as exc:  # DataError, ArchitectureError, ConfigError: the message says what to do
        st.error(str(exc), icon=":material/error:")
        return
    ss[RUN] = {
        "source": source,
        "variants": variants,
        "job_ids": [j.id for j in jobs],
        "settings": f"{source} · {fraction:.0%} of the training images · up to {epochs} epochs · "
        f"learning rate {lr:g} · seed {seed} · {_network_label(model_cfg)}",
    }


# --- results ------------------------------------------------------------------


def _snapshots(run: dict) -> tuple[list, list[dict | None]]:
    w = resources.worker()
    jobs = [w.get(job_id) for job_id in run["job_ids"]]
    return jobs, [j.snapshot() if j is not None else None for j in jobs]


def _chart(curves: list[dict], show_train: bool) -> go.Figure:
    fig = go.Figure()
    for c in curves:
        color = COLORS.get(c["variant"], "#6B7280")
        fig.add_trace(go.Scatter(x=c["epochs"], y=c["val_loss"], mode="lines", name=c["title"],
                                 line=dict(color=color, width=2.5), legendgroup=c["variant"]))  # fmt: skip
        if show_train and c["loss"]:
            fig.add_trace(go.Scatter(x=c["epochs"][: len(c["loss"])], y=c["loss"], mode="lines",
                                     name=f"{c['title']} (training)", line=dict(color=color, width=1.5, dash="dot"),
                                     legendgroup=c["variant"], showlegend=False))  # fmt: skip
        if c["best_epoch"]:
            fig.add_trace(go.Scatter(
                x=[c["best_epoch"]], y=[c["best_val_loss"]], mode="markers", legendgroup=c["variant"],
                marker=dict(symbol="star", size=15, color=color, line=dict(color="white", width=1)),
                name=f"{c['title']}: best epoch", showlegend=False,
                hovertemplate=f"{c['title']}<br>best epoch %{{x}}<br>validation loss %{{y:.3f}}<extra></extra>",
            ))  # fmt: skip
    fig.update_layout(
        title="Validation loss per epoch (★ = each variant's best epoch)",
        xaxis_title="Epoch",
        yaxis_title="Validation loss",
        height=420,
        margin=dict(l=10, r=10, t=60, b=10),
        legend=dict(orientation="h", yanchor="bottom", y=1.0, xanchor="left", x=0),
        hovermode="closest",
    )
    return fig


def _table(rows: list[dict]) -> list[dict]:
    out = []
    for r in rows:
        if r["epochs_run"] is None:
            source = "-"
        else:
            source = "cached" if r["cached"] else "trained"
        out.append({
            "Variant": r["title"],
            "Best-epoch val acc": r["best_val_accuracy"],
            "Train-val gap (last epoch)": r["final_gap"],
            "Test acc": r["test_accuracy"],
            "Epochs run": None if r["epochs_run"] is None else f"{r['epochs_run']} of {r['epochs_planned']}",
            "Best epoch": r["best_epoch"],
            "Time (s)": r["seconds"],
            "Source": source,
            "Verdict": r["verdict"],
        })  # fmt: skip
    return out


COLUMNS = {
    "Best-epoch val acc": st.column_config.NumberColumn(format="%.3f", help="Validation accuracy at the epoch "
                                                        "with the lowest validation loss."),
    "Train-val gap (last epoch)": st.column_config.NumberColumn(format="%+.3f", help="Training minus validation "
                                                                "accuracy at the last epoch run."),
    "Test acc": st.column_config.NumberColumn(format="%.3f", help="With the best epoch's weights."),
    "Time (s)": st.column_config.NumberColumn(format="%.1f", help="Training time when the run was trained."),
}  # fmt: skip


def _results(run: dict, polling: bool) -> None:
    variants = run["variants"]
    jobs, snaps = _snapshots(run)
    active = any(s is not None and s["state"] in ACTIVE for s in snaps)
    if polling and not active:
        st.rerun()  # the whole page, once: ends the polling and shows the final table
    st.subheader("Results")
    st.caption(run["settings"])
    for v, snap in zip(variants, snaps, strict=True):
        job_status(v.title, snap, "Press Run the lab again; stored variants come back at once.")
    if active and st.button("Stop the lab", key=K + "stop", icon=":material/stop:"):
        worker = resources.worker()
        for j in jobs:
            if j is not None and j.active:
                worker.stop(j.id)
        st.rerun()

    curves = lab.lab_curves(variants, [s["history"] if s else None for s in snaps])
    if curves:
        show_train = st.toggle("Show training loss too (dotted)", key=K + "show_train")
        st.plotly_chart(_chart(curves, show_train), config={"displaylogo": False})
    elif active:
        st.caption("The curves appear after the first epoch.")

    records = [j.result if j is not None and j.state in ("done", "stopped") else None for j in jobs]
    rows = lab.lab_rows(variants, records)
    if any(r["epochs_run"] is not None for r in rows):
        st.dataframe(_table(rows), hide_index=True, column_config=COLUMNS)
        summary = lab.lab_summary(rows)
        if summary and not active:
            st.success(" ".join(summary), icon=":material/lightbulb:")
    st.markdown("**What each variant changes, and why**")
    st.markdown("\n".join(f"- **{v.title}**: {v.changes}" for v in variants))
    st.caption(
        "Every variant is scored with its best epoch's weights (lowest validation loss), as the course's "
        "ModelCheckpoint keeps them. Training accuracy is measured on the batches as trained, with dropout "
        "switched on and augmented images, so with those cures the gap can even be negative."
    )


# --- the page -------------------------------------------------------------------


st.title("Overfitting lab")
st.markdown(
    "Small geoscience datasets overfit: a network with hundreds of thousands of weights can memorise a hundred "
    "thin sections. Train a **baseline** and the course's three cures (**dropout**, **data augmentation**, "
    "**early stopping**) on the same images, split and seed, and compare their validation-loss curves."
)
source = str(ss.get("dataset") or "thin_sections")
st.caption(f"Data: **{source}** (change it in the sidebar).")

_init_controls()
_presets()
model_cfg, chosen = _controls()
if st.button("Run the lab", type="primary", key=K + "start", icon=":material/play_arrow:", disabled=not chosen,
             help="Trains the chosen variants one after another in the background."):  # fmt: skip
    _start(source, model_cfg, chosen)
if not chosen:
    st.caption("Pick at least one variant.")

run = ss.get(RUN)
if not run:
    st.info(
        f"No lab yet. Press **Run the lab** to train the variants on **{source}**, one after another in the "
        "background: a few minutes for the five at 20% of the thin sections; variants already in the run store "
        "come back at once. Or pick a lesson above first: **Make it overfit**, then **Fix it**.",
        icon=":material/science:",
    )
else:
    _, first = _snapshots(run)
    polling = any(s is not None and s["state"] in ACTIVE for s in first)
    st.fragment(run_every=POLL_SECONDS if polling else None)(_results)(run, polling)
