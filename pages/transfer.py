"""Transfer learning: the course's last step, a frozen VGG16 base with a new head, against the scratch CNN.

Reads the controls, asks :mod:`core.results.compare` for the two configs and starts them
(:func:`ui.jobs.start_many`); :func:`ui.jobs.follow` redraws the comparison while
they train. Nothing trains in this script, and TensorFlow is not imported here.
"""

from __future__ import annotations

from functools import partial

import streamlit as st

from core.base import AugmentConfig, ModelConfig, TrainConfig, plural
from core.models.layer_table import layer_table
from core.results import compare_configs, comparison_rows
from ui import charts, jobs, resources, state
from ui.controls import DENSE_UNITS, FINE_TUNE_RATES, slider_range, valid_range, weights_picker
from ui.feedback import header, no_dataset
from ui.frame import run_page
from ui.job_panel import job_panel
from ui.sidebar import dataset_label

K = "transfer."  # this page's widget keys
ROLES = {"scratch": "Scratch CNN", "transfer": "VGG16 transfer"}
STARTED = ("transfer", "scratch")  # the order they start in: unusable weights fail before minutes of CNN training
DEFAULTS = {
    K + "weights": ModelConfig().weights,
    K + "weights_path": "",
    K + "input_size": ModelConfig().input_size,
    K + "dense": ModelConfig().dense_units,
    K + "dropout": ModelConfig().dropout,
    K + "epochs": 10,
    K + "ft_epochs": 0,
    K + "ft_lr": TrainConfig().fine_tune_lr,
    K + "seed": TrainConfig().seed,
    K + "augment": False,
}
COLUMNS = {
    "Training time (s)": st.column_config.NumberColumn(format="%.1f"),
    "Best-epoch val acc": st.column_config.NumberColumn(format="%.3f"),
    "Test acc": st.column_config.NumberColumn(
        format="%.3f", help="With the weights each run keeps (its best epoch's)."
    ),
    "Macro F1": st.column_config.NumberColumn(format="%.3f"),
}


def main() -> None:
    header("Transfer learning")
    _explain()
    source = state.dataset()
    if not source:
        no_dataset()
        return
    st.caption(
        f"Data: **{dataset_label(source)}** (change it in the sidebar). Both runs use the same images, split and seed."
    )
    state.start_widgets(DEFAULTS)
    weights = _controls()
    st.markdown("**Trainable vs frozen parameters**")
    vgg_cfg = _parameters(source, weights)
    if st.button(
        "Compare scratch CNN vs VGG16 transfer",
        type="primary",
        key=K + "start",
        icon=":material/compare_arrows:",
        help="Trains both in the background; runs already in the store come back at once.",
    ):
        _start(source, vgg_cfg, weights)
    run = jobs.following(jobs.TRANSFER)  # the comparison this session started last
    if run is None:
        st.info(
            "No comparison yet. Press **Compare scratch CNN vs VGG16 transfer**: the course's CNN and the "
            "VGG16 model train one after the other in the background.",
            icon=":material/move_up:",
        )
        return
    jobs.follow(jobs.TRANSFER, partial(_results, run.about["settings"]))


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


def _controls() -> str | None:
    """The widgets; returns the chosen weights (None while a weights file's path is empty)."""
    ss = st.session_state
    weights = weights_picker(K + "weights", ModelConfig().weights, persist_state="session")
    c1, c2, c3 = st.columns(3)
    c1.slider(
        "Input size (px)",
        32,
        128,
        step=8,
        key=K + "input_size",
        persist_state="session",
        help="VGG16 needs 32 or more: its five 2x2 poolings halve the image five times.",
    )
    c2.select_slider("Dense units", options=list(DENSE_UNITS), key=K + "dense", persist_state="session")
    c3.slider("Dropout", *slider_range("dropout", K + "dropout"), step=0.05, key=K + "dropout", persist_state="session")
    c4, c5, c6 = st.columns(3)
    c4.slider("Epochs (head)", 1, 50, key=K + "epochs", persist_state="session")
    c5.slider(
        "Fine-tune epochs (0 = off)",
        *slider_range("fine_tune_epochs", K + "ft_epochs"),
        key=K + "ft_epochs",
        persist_state="session",
        help="After the head: unfreeze block5 and train it with a small learning rate.",
    )
    c6.number_input(
        "Seed",
        *valid_range("seed"),
        step=1,
        key=K + "seed",
        persist_state="session",
        help="The split, the first weights and the shuffling: the same for both runs.",
    )
    if ss[K + "ft_epochs"]:
        st.select_slider(
            "Fine-tune learning rate",
            options=list(FINE_TUNE_RATES),
            format_func=lambda x: f"{x:g}",
            key=K + "ft_lr",
            persist_state="session",
        )
    st.toggle("Data augmentation (the course's settings)", key=K + "augment", persist_state="session")
    st.caption(
        "With augmentation on, the training images change every epoch, so they go through the frozen base "
        "every epoch: much slower. Without it, the base's features are computed once per dataset, input size "
        "and weight source, cached, and only the head trains on them: fast. The scratch CNN gets pixels / 255."
    )
    return weights


def _parameters(source: str, weights: str | None) -> ModelConfig:
    ss = st.session_state
    cfg = ModelConfig(
        model="vgg16",
        input_size=int(ss[K + "input_size"]),
        dense_units=int(ss[K + "dense"]),
        dropout=float(ss[K + "dropout"]),
        weights=weights or "none",
    )
    cfg = resources.fit_classes(cfg, source)
    table = layer_table(cfg)
    c1, c2, c3 = st.columns(3)
    c1.metric("Trainable (the head)", f"{table.trainable_params:,}")
    c2.metric("Frozen (the VGG16 base)", f"{table.non_trainable_params:,}")
    c3.metric("Trainable share", f"{table.trainable_params / table.total_params:.2%}")
    st.caption(f"At {cfg.input_size}x{cfg.input_size} px, Dense {cfg.dense_units}, {cfg.num_classes} classes.")
    base = table.rows[0]
    head = [
        {
            "Layer": r.name,
            "Type": r.type,
            "Output": "x".join(map(str, r.output_shape)),
            "Parameters": r.params,
            "Trainable": r.trainable,
        }
        for r in table.rows
    ]
    st.dataframe(head, hide_index=True)
    with st.expander(
        f"Inside the frozen base: {len(base.children)} layers "
        f"({sum(c.type == 'Conv2D' for c in base.children)} conv, "
        f"{sum(c.type != 'Conv2D' for c in base.children)} pooling)"
    ):
        st.dataframe(
            [
                {
                    "Layer": c.name,
                    "Type": c.type,
                    "Output": "x".join(map(str, c.output_shape)),
                    "Parameters (frozen)": c.params,
                }
                for c in base.children
            ],
            hide_index=True,
        )
    return cfg


def _train_cfg() -> TrainConfig:
    ss = st.session_state
    return TrainConfig(
        epochs=int(ss[K + "epochs"]),
        seed=int(ss[K + "seed"]),
        fine_tune_epochs=int(ss[K + "ft_epochs"]),
        fine_tune_lr=float(ss[K + "ft_lr"]),
        augment=AugmentConfig.course() if ss[K + "augment"] else AugmentConfig(),
    )


def _start(source: str, vgg_cfg: ModelConfig, weights: str | None) -> None:
    if not weights:
        st.error("Pick a weight source, or type the path of a VGG16 weights file.", icon=":material/error:")
        return
    train_cfg = _train_cfg()
    n_ft = train_cfg.fine_tune_epochs
    ft = f" + {n_ft} fine-tune at {train_cfg.fine_tune_lr:g}" if n_ft else ""
    settings = (
        f"{source} · weights {weights} · {vgg_cfg.input_size} px · Dense {vgg_cfg.dense_units} · "
        f"dropout {vgg_cfg.dropout:g} · {plural(train_cfg.epochs, 'epoch')}{ft} · seed {train_cfg.seed}"
        + (" · augmentation" if train_cfg.augment.enabled else "")
    )
    try:
        scratch_cfg, transfer_cfg = compare_configs(vgg_cfg, train_cfg, weights)
        by_role = {"scratch": scratch_cfg, "transfer": transfer_cfg}
        configs = [(by_role[role], train_cfg) for role in STARTED]
        jobs.start_many(jobs.TRANSFER, source, configs, settings=settings)
    except ValueError as exc:  # WeightsError, DataError, ArchitectureError, ConfigError
        st.error(str(exc), icon=":material/error:")


# --- results ------------------------------------------------------------------


def _results(settings: str, snaps: list) -> None:
    """Both jobs, then (once both are done) the comparison table and curves."""
    by_role = dict(zip(STARTED, snaps, strict=True))
    snaps = [by_role[role] for role in ROLES]
    st.subheader("Scratch CNN vs VGG16 transfer")
    st.caption(settings)
    job_panel(
        snaps,
        key=K,
        titles=list(ROLES.values()),
        retry="Press the compare button again; stored runs come back at once.",
        stop_label="Stop both",
    )
    if any(jobs.is_active(s) for s in snaps):
        return
    records = dict(zip(ROLES, jobs.results(snaps), strict=True))
    if any(r is None or r.status != "complete" for r in records.values()):
        return
    try:
        rows = comparison_rows(records["scratch"], records["transfer"])
    except ValueError as exc:
        st.error(str(exc), icon=":material/error:")
        return
    st.dataframe(_table(rows), hide_index=True, column_config=COLUMNS)
    if rows[1]["fine_tuned_params"]:
        st.caption(f"Fine-tuning also trained block5's {rows[1]['fine_tuned_params']:,} weights.")
    if rows[1]["features"]:
        st.caption(f"Transfer features: {rows[1]['features']}.")
    st.markdown("**Validation accuracy per epoch**")
    curves = {ROLES[role]: rec.history.get("val_accuracy", []) for role, rec in records.items()}
    st.plotly_chart(charts.comparison_figure(curves, records["transfer"].phases or ()), config=charts.CONFIG)
    transfer_id = records["transfer"].run_id
    if state.run_id() == transfer_id:
        st.success("The transfer run is selected: open Diagnostics or Predictions to read it.", icon=":material/check:")
    else:
        st.button(
            "Select the transfer run for Diagnostics and Predictions",
            key=K + "select",
            on_click=_select,
            args=(transfer_id,),
            icon=":material/ads_click:",
        )


def _select(run_id: str) -> None:
    st.session_state[state.RUN_ID] = run_id  # a callback: runs before the sidebar's run select is drawn


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


run_page(main)
