"""Transfer learning: the course's last step, a frozen VGG16 base with a new head, against the scratch CNN.

Reads the controls, asks :mod:`core.transfer` for the two configs, hands them to
core's process-wide training worker and draws what comes back. Nothing trains
in this script (and TensorFlow is not imported here): a fragment polls the two
jobs once a second while either is queued or running.
"""

from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st

from core.config import AugmentConfig, ModelConfig, TrainConfig
from core.architecture import layer_table
from core.transfer import WEIGHT_SOURCES, comparison_rows, compare_configs, weights_status
from ui import charts, resources, state
from ui.feedback import header, job_status, run_page

K = "transfer."  # this page's widget keys
JOBS = "transfer_jobs"  # {"scratch": job id, "transfer": job id, "settings": text}
POLL_SECONDS = 1.0
ACTIVE = ("queued", "running")
ROLES = {"scratch": "Scratch CNN", "transfer": "VGG16 transfer"}
COLORS = {"scratch": charts.TRAIN, "transfer": charts.VAL}
LOCAL = "file"  # the select's value for "a local weights file"
FT_RATES = (1e-6, 3e-6, 1e-5, 3e-5, 1e-4)
DEFAULTS = {
    K + "source": "imagenet",
    K + "path": "",
    K + "input_size": 64,
    K + "dense": 128,
    K + "dropout": 0.5,
    K + "epochs": 10,
    K + "ft_epochs": 0,
    K + "ft_lr": 1e-5,
    K + "seed": 42,
    K + "augment": False,
}
ss = st.session_state


def _init_controls() -> None:
    kept = ss.get(K + "settings") or {}
    for key, default in DEFAULTS.items():
        if key not in ss:
            ss[key] = kept.get(key, default)


def _weights() -> str:
    src = ss[K + "source"]
    return (ss[K + "path"] or "").strip() if src == LOCAL else src


def _explain() -> None:
    st.markdown(
        "The last step of the course does not train a network from nothing. It takes **VGG16**, a network "
        "already trained on a large image collection (ImageNet), keeps its 13 convolution layers as they are "
        "(**frozen**: their weights do not change) and adds a small new head on top: "
        "`GlobalAveragePooling2D → Dense → Dropout → Dense(softmax)`. Only the head learns. The base already "
        "knows edges, textures and shapes; the head learns which of them tell our classes apart. "
        "Optionally, **fine-tuning** then unfreezes the last conv block (block5) and trains it a little, "
        "with a very small learning rate."
    )


def _parameters(source: str) -> ModelConfig:
    cfg = ModelConfig(model="vgg16", input_size=int(ss[K + "input_size"]), dense_units=int(ss[K + "dense"]),
                      dropout=float(ss[K + "dropout"]), weights=_weights() or "none")  # fmt: skip
    cfg = resources.fit_classes(cfg, source)
    table = layer_table(cfg)
    c1, c2, c3 = st.columns(3)
    c1.metric("Trainable (the head)", f"{table.trainable_params:,}")
    c2.metric("Frozen (the VGG16 base)", f"{table.non_trainable_params:,}")
    c3.metric("Trainable share", f"{table.trainable_params / table.total_params:.2%}")
    st.caption(f"At {cfg.input_size}x{cfg.input_size} px, Dense {cfg.dense_units}, {cfg.num_classes} classes.")
    base = table.rows[0]
    head = [{"Layer": r.name, "Type": r.type, "Output": "x".join(map(str, r.output_shape)),
             "Parameters": r.params, "Trainable": r.trainable} for r in table.rows]  # fmt: skip
    st.dataframe(head, hide_index=True)
    with st.expander(f"Inside the frozen base: {len(base.children)} layers "
                     f"({sum(c.type == 'Conv2D' for c in base.children)} conv, "
                     f"{sum(c.type != 'Conv2D' for c in base.children)} pooling)"):  # fmt: skip
        st.dataframe([{"Layer": c.name, "Type": c.type, "Output": "x".join(map(str, c.output_shape)),
                       "Parameters (frozen)": c.params} for c in base.children], hide_index=True)  # fmt: skip
    return cfg


def _controls() -> None:
    options = [*WEIGHT_SOURCES, LOCAL]
    st.selectbox("VGG16 weights", options, key=K + "source",
                 format_func=lambda s: f"{s}: {WEIGHT_SOURCES[s]}" if s in WEIGHT_SOURCES else "a local weights file",
                 help="Where the frozen base's weights come from.")  # fmt: skip
    if ss[K + "source"] == LOCAL:
        st.text_input("Path of a VGG16 weights file (.h5 or .weights.h5) on the server", key=K + "path")
    weights = _weights()
    if not weights:
        st.info("Type the path of a VGG16 weights file.", icon=":material/info:")
    else:
        status = weights_status(weights)
        show = st.success if status.ok else st.warning
        show(f"**{status.label or weights}**. {status.message}",
             icon=":material/check_circle:" if status.ok else ":material/warning:")  # fmt: skip
        st.caption(f"Images go through: {status.preprocessing}. (The scratch CNN gets pixels / 255.)")

    c1, c2, c3 = st.columns(3)
    c1.slider("Input size (px)", 32, 128, step=8, key=K + "input_size",
              help="VGG16 needs 32 or more: its five 2x2 poolings halve the image five times.")  # fmt: skip
    c2.select_slider("Dense units", options=[16, 32, 64, 128, 256, 512], key=K + "dense")
    c3.slider("Dropout", 0.0, 0.9, step=0.05, key=K + "dropout")
    c4, c5, c6 = st.columns(3)
    c4.slider("Epochs (head)", 1, 50, key=K + "epochs")
    c5.slider("Fine-tune epochs (0 = off)", 0, 20, key=K + "ft_epochs",
              help="After the head: unfreeze block5 and train it with a small learning rate.")  # fmt: skip
    c6.number_input("Seed", min_value=0, max_value=2**31 - 1, step=1, key=K + "seed",
                    help="The split, the first weights and the shuffling: the same for both runs.")  # fmt: skip
    if ss[K + "ft_epochs"]:
        st.select_slider("Fine-tune learning rate", options=list(FT_RATES), format_func=lambda x: f"{x:g}",
                         key=K + "ft_lr")  # fmt: skip
    st.toggle("Data augmentation (the course's settings)", key=K + "augment")
    st.caption(
        "With augmentation on, the training images change every epoch, so they go through the frozen base "
        "every epoch: much slower. Without it, the base's features are computed once per dataset, input size "
        "and weight source, cached, and only the head trains on them: fast."
    )
    ss[K + "settings"] = {key: ss[key] for key in DEFAULTS if key in ss}


def _train_cfg() -> TrainConfig:
    return TrainConfig(
        epochs=int(ss[K + "epochs"]),
        seed=int(ss[K + "seed"]),
        fine_tune_epochs=int(ss[K + "ft_epochs"]),
        fine_tune_lr=float(ss[K + "ft_lr"]),
        augment=AugmentConfig.course() if ss[K + "augment"] else AugmentConfig(),
    )


def _start(source: str, vgg_cfg: ModelConfig) -> None:
    weights = _weights()
    if not weights:
        st.error("Pick a weight source, or type the path of a VGG16 weights file.", icon=":material/error:")
        return
    train_cfg = _train_cfg()
    worker = resources.worker()
    try:
        scratch_cfg, transfer_cfg = compare_configs(vgg_cfg, train_cfg, weights)
        # The transfer run first: unusable weights fail before minutes of CNN training.
        transfer = worker.submit(source, transfer_cfg, train_cfg)
        scratch = worker.submit(source, scratch_cfg, train_cfg)
    except ValueError as exc:  # WeightsError, DataError, ArchitectureError, ConfigError
        st.error(str(exc), icon=":material/error:")
        return
    n_ft = train_cfg.fine_tune_epochs
    ft = f" + {n_ft} fine-tune at {train_cfg.fine_tune_lr:g}" if n_ft else ""
    ss[JOBS] = {
        "scratch": scratch.id,
        "transfer": transfer.id,
        "settings": f"{source} · weights {weights} · {vgg_cfg.input_size} px · Dense {vgg_cfg.dense_units} · "
        f"dropout {vgg_cfg.dropout:g} · {train_cfg.epochs} epochs{ft} · seed {train_cfg.seed}"
        + (" · augmentation" if ss[K + "augment"] else ""),
    }


# --- results ------------------------------------------------------------------


def _snapshots(run: dict) -> dict[str, dict | None]:
    out = {}
    for role in ROLES:
        job = resources.worker().get(run[role])
        out[role] = job.snapshot() if job is not None else None
    return out


def _table(rows: list[dict]) -> list[dict]:
    out = []
    for r in rows:
        row = {
            "Model": ROLES[r["model"]],
            "Trainable params": r["trainable_params"],
            "Frozen params": r["frozen_params"],
            "Training time (s)": r["seconds"],
            "Best epoch": f"{r['best_epoch']} of {r['epochs_run']}",
            "Best-epoch val acc": r["best_val_accuracy"],
            "Test acc": r["test_accuracy"],
            "Macro F1": r["macro_f1"],
        }
        row.update({f"F1 {c}": v for c, v in r["f1"].items()})
        out.append(row)
    return out


def _chart(records: dict) -> go.Figure:
    fig = go.Figure()
    for role, rec in records.items():
        vacc = rec.history.get("val_accuracy", [])
        fig.add_trace(go.Scatter(x=list(range(1, len(vacc) + 1)), y=vacc, mode="lines+markers", name=ROLES[role],
                                 line=dict(color=COLORS[role], width=2.5)))  # fmt: skip
    for phase in list(records["transfer"].phases or [])[1:]:
        x = phase["first_epoch"] - 0.5
        fig.add_vline(x=x, line=dict(color=charts.MUTED, dash="dash"))
        fig.add_annotation(x=x, y=1, yref="paper", text=f"{phase['name']} starts", showarrow=False,
                           xanchor="left", yanchor="top")  # fmt: skip
    fig.update_layout(title="Validation accuracy per epoch", xaxis_title="Epoch", yaxis_title="Validation accuracy",
                      **charts._layout(400))  # fmt: skip
    fig.update_xaxes(**charts._axis())
    fig.update_yaxes(**charts._axis())
    return fig


def _select(run_id: str) -> None:
    ss[state.RUN_ID] = run_id  # a callback: runs before the sidebar's run select is drawn


def _results(run: dict, polling: bool) -> None:
    snaps = _snapshots(run)
    active = any(s is not None and s["state"] in ACTIVE for s in snaps.values())
    if polling and not active:
        st.rerun()  # once: ends the polling and draws the final comparison
    st.subheader("Scratch CNN vs VGG16 transfer")
    st.caption(run["settings"])
    for role, snap in snaps.items():
        job_status(ROLES[role], snap, "Press the compare button again; stored runs come back at once.")
    if active:
        if st.button("Stop both", key=K + "stop", icon=":material/stop:"):
            for role in ROLES:
                resources.worker().stop(run[role])
            st.rerun()
        return
    records = {role: resources.record(s["run_id"]) if s and s["state"] == "done" else None
               for role, s in snaps.items()}  # fmt: skip
    if any(r is None for r in records.values()):
        return
    try:
        rows = comparison_rows(records["scratch"], records["transfer"])
    except ValueError as exc:
        st.error(str(exc), icon=":material/error:")
        return
    st.dataframe(_table(rows), hide_index=True, column_config={
        "Training time (s)": st.column_config.NumberColumn(format="%.1f"),
        "Best-epoch val acc": st.column_config.NumberColumn(format="%.3f"),
        "Test acc": st.column_config.NumberColumn(format="%.3f", help="With the best epoch's weights."),
        "Macro F1": st.column_config.NumberColumn(format="%.3f"),
    })  # fmt: skip
    if rows[1]["fine_tuned_params"]:
        st.caption(f"Fine-tuning also trained block5's {rows[1]['fine_tuned_params']:,} weights.")
    if rows[1]["features"]:
        st.caption(f"Transfer features: {rows[1]['features']}.")
    st.plotly_chart(_chart(records), config=charts.CONFIG)
    transfer_id = records["transfer"].run_id
    if ss.get(state.RUN_ID) == transfer_id:
        st.success("The transfer run is selected: open Diagnostics or Predictions to read it.",
                   icon=":material/check:")  # fmt: skip
    else:
        st.button("Select the transfer run for Diagnostics and Predictions", key=K + "select",
                  on_click=_select, args=(transfer_id,), icon=":material/ads_click:")  # fmt: skip


# --- the page -------------------------------------------------------------------


def main() -> None:
    state.init()
    header("Transfer learning", "")
    _explain()
    source = str(ss.get(state.DATASET) or "thin_sections")
    st.caption(f"Data: **{source}** (change it in the sidebar). Both runs use the same images, split and seed.")
    _init_controls()
    _controls()
    st.markdown("**Trainable vs frozen parameters**")
    vgg_cfg = _parameters(source)
    if st.button("Compare scratch CNN vs VGG16 transfer", type="primary", key=K + "start",
                 icon=":material/compare_arrows:",
                 help="Trains both in the background; runs already in the store come back at once."):  # fmt: skip
        _start(source, vgg_cfg)
    run = ss.get(JOBS)
    if not run:
        st.info("No comparison yet. Press **Compare scratch CNN vs VGG16 transfer**: the course's CNN and the "
                "VGG16 model train one after the other in the background.", icon=":material/move_up:")  # fmt: skip
        return
    polling = any(s is not None and s["state"] in ACTIVE for s in _snapshots(run).values())
    st.fragment(run_every=POLL_SECONDS if polling else None)(_results)(run, polling)


run_page(main)
