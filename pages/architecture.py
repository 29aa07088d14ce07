"""Architecture: build the network with sliders and watch its layer table and shapes update.

Everything here is core.models.layer_table arithmetic (pure Python): no TensorFlow, so the
table follows a slider at once.
"""

import pandas as pd
import streamlit as st

from core.base import (
    COURSE_PARAMS,
    MODEL_LABELS,
    MODEL_PARAM,
    MODELS,
    PADDINGS,
    ModelConfig,
    decode_model,
    encode_model,
    plural,
)
from core.jobs import budget_warning, estimate_text
from core.lab import parameters_control
from core.models import check_architecture, check_cost
from core.models.layer_table import layer_table
from core.store.challenges import time_budget_for
from ui import challenges, charts, jobs, resources, share, state
from ui.controls import DENSE_UNITS, slider_range, steps, weights_picker
from ui.feedback import flash, header
from ui.frame import run_page

K = state.ARCH
INPUT_SIZES = [16, 24, 32, 48, 64, 96, 128, 160, 224]
FILTERS = [4, 8, 16, 32, 64, 128]


def main() -> None:
    header(
        "Architecture",
        "The course's network stacks **Conv2D → MaxPooling2D** blocks that find patterns and shrink the image, "
        "then **Flatten → Dense → Dropout → Dense (softmax)** to pick a class. Move a slider and the table shows "
        "every layer's output shape and how many weights it learns.",
    )
    flash()
    share.follow_link(MODEL_PARAM, decode_model, state.model_cfg(), lambda c: state.set_configs(model=c))
    challenges.follow_link()  # the teacher's ?challenge= link: its images become the active dataset
    base = resources.fit_classes(state.model_cfg(), state.dataset())
    controls, results = st.columns([1, 2], gap="large")
    with controls:
        cfg, slots = _controls(base)
    if cfg is None:
        return
    st.session_state[state.MODEL_CFG] = cfg
    share.write_link(MODEL_PARAM, encode_model(cfg))
    with controls:
        share.settings_file("share.arch")

    problems = check_architecture(cfg)
    # Larger than this server trains (parameters; activations for the Train page's batch size)?
    too_big = [] if problems else check_cost(cfg, state.train_cfg().batch_size)
    for p in problems + too_big:
        slot = slots.get(p.field)
        (slot if slot is not None else controls).error(p.message, icon=":material/block:")
    over = None if problems else challenges.reasons(cfg, state.train_cfg()).get("parameters")
    if over:  # the active dataset is a challenge's: its parameter budget, next to the control that moves it most
        slot = slots.get(parameters_control(cfg))
        (slot if slot is not None else controls).error(over, icon=":material/flag:")
    with results:
        if problems:
            st.warning(
                "This network cannot be built: the feature map would shrink to nothing. "
                "The reason is shown next to the control that causes it.",
                icon=":material/warning:",
            )
            return
        if too_big:
            st.warning(
                "This network is larger than this server trains: its table is below, the limit it passes is "
                "shown next to the control to change.",
                icon=":material/warning:",
            )
        _table(cfg)


def _controls(base: ModelConfig):
    """The widgets, started from the config; returns the new config and a slot per field for problems."""
    slots: dict = {}
    state.bind(K + "model", base.model)
    model = st.radio(
        "Model",
        MODELS,
        key=K + "model",
        format_func=MODEL_LABELS.get,
        help="Train the course's CNN from random weights, or reuse VGG16's convolution base.",
    )

    state.bind(K + "input_size", base.input_size)
    input_size = st.select_slider(
        "Input size (pixels)",
        steps(INPUT_SIZES, st.session_state[K + "input_size"]),
        key=K + "input_size",
        help="Every image is resized to this square size before it enters the network.",
    )
    slots["input_size"] = st.empty()

    changes: dict = {"model": model, "input_size": input_size}
    if model == "cnn":
        state.bind(K + "blocks", base.blocks)
        changes["blocks"] = st.slider(
            "Conv → Pool blocks",
            *slider_range("blocks", K + "blocks"),
            key=K + "blocks",
            help="Each block: a convolution finds patterns, a pooling halves the map.",
        )
        slots["blocks"] = st.empty()
        first = base.filter_list[0] if base.filter_list else base.filters
        state.bind(K + "filters", first)
        filters = st.select_slider(
            "Filters in the first block",
            steps(FILTERS, st.session_state[K + "filters"]),
            key=K + "filters",
            help="How many patterns the first convolution looks for; each next block doubles it (32-64-128).",
        )
        changes["filters"] = filters
        keep_list = bool(base.filter_list) and filters == first and changes["blocks"] == len(base.filter_list)
        changes["filter_list"] = base.filter_list if keep_list else ()
        if keep_list:
            st.caption(f"Filters per block from this configuration: {'-'.join(map(str, base.filter_list))}.")
        slots["filters"] = st.empty()
        state.bind(K + "kernel_size", base.kernel_size)
        changes["kernel_size"] = st.slider(
            "Kernel size",
            *slider_range("kernel_size", K + "kernel_size"),
            key=K + "kernel_size",
            help="Side of each square filter: 3 means 3×3 pixels.",
        )
        slots["kernel_size"] = st.empty()
        state.bind(K + "pool_size", base.pool_size)
        changes["pool_size"] = st.slider(
            "Pool size",
            *slider_range("pool_size", K + "pool_size"),
            key=K + "pool_size",
            help="Max pooling keeps the largest value of each window: 2 halves the map.",
        )
        slots["pool_size"] = st.empty()
        state.bind(K + "padding", base.padding)
        changes["padding"] = st.radio(
            "Padding",
            PADDINGS,
            key=K + "padding",
            horizontal=True,
            help="'valid': no border, each convolution trims kernel−1 pixels. 'same': a zero border keeps the size.",
        )
        slots["padding"] = st.empty()
        state.bind(K + "batchnorm", base.batchnorm)
        changes["batchnorm"] = st.toggle(
            "Batch normalisation",
            key=K + "batchnorm",
            help="After each convolution: re-centres and re-scales each filter's output; often steadies training.",
        )
    else:
        # A weights file not typed in yet: keep the config's weights until it is.
        changes["weights"] = weights_picker(K + "weights", base.weights) or base.weights

    state.bind(K + "dense_units", base.dense_units)
    changes["dense_units"] = st.select_slider(
        "Dense units",
        steps(DENSE_UNITS, st.session_state[K + "dense_units"]),
        key=K + "dense_units",
        help="Neurons in the fully connected layer that combines the features.",
    )
    slots["dense_units"] = st.empty()
    state.bind(K + "dropout", round(float(base.dropout), 2))
    changes["dropout"] = st.slider(
        "Dropout",
        *slider_range("dropout", K + "dropout"),
        step=0.05,
        key=K + "dropout",
        help="Fraction of dense outputs switched off at random in each training step.",
    )
    slots["dropout"] = st.empty()
    try:
        return base.replace(**changes), slots
    except ValueError as exc:  # ConfigError: e.g. an empty weights path
        st.error(str(exc), icon=":material/error:")
        return None, slots


def _estimate(cfg: ModelConfig) -> None:
    """The training time of this network with the Train page's settings on the active dataset."""
    source = state.dataset()
    if not source:
        return
    try:
        est, ahead = jobs.training_estimate(source, cfg, state.train_cfg())
    except ValueError:  # the data cannot be read: the Data page says why
        return
    if est.calibrated:
        st.caption(
            f":material/timer: Training it with the Train page's settings ({plural(est.epochs, 'epoch')}, "
            f"{est.n_train:,} training images): {estimate_text(est, ahead)}."
        )
        if warning := budget_warning(est, time_budget_for(resources.store(), source)[0] or 0):
            st.caption(f":material/timer_off: {warning}")


def _table(cfg: ModelConfig) -> None:
    table = layer_table(cfg)
    rows = []
    for r in table.rows:
        rows.append(
            {
                "layer": r.name,
                "type": r.type,
                "output shape": "×".join(str(d) for d in r.output_shape),
                "parameters": f"{r.params:,}",
                "trainable": f"{r.trainable:,}",
                "receptive field": _field(r),
                "multiply-adds": f"{r.macs:,}",
                "how the count is made": r.formula,
            }
        )
    t1, t2, t3, t4 = st.columns(4)
    t1.metric("Total parameters", f"{table.total_params:,}")
    t2.metric("Trainable", f"{table.trainable_params:,}", help="Weights training changes.")
    t3.metric(
        "Non-trainable",
        f"{table.non_trainable_params:,}",
        help="Frozen weights: a frozen VGG16 base, BatchNorm's moving averages.",
    )
    t4.metric(
        "Multiply-adds per image",
        f"{table.total_macs / 1e6:,.1f} M",
        help="The arithmetic of one image's forward pass (convolutions and dense layers); training costs "
        "about three times this per image and epoch.",
    )
    _estimate(cfg)
    if cfg.replace(num_classes=5) == ModelConfig() and table.total_params == COURSE_PARAMS:
        st.caption(f"This is the course's network: `model.summary()` prints Total params: {COURSE_PARAMS:,}.")
    elif cfg.num_classes != 5:
        st.caption(f"{cfg.num_classes} output units: one per class of the active dataset.")

    # st.table, not st.dataframe: the formulas wrap instead of being cut off.
    st.table(pd.DataFrame(rows), hide_index=True, border="horizontal")
    heaviest = max(table.rows, key=lambda r: r.params)
    if table.total_params:
        st.caption(
            f"The biggest layer is **{heaviest.name}** with {heaviest.params:,} of the {table.total_params:,} "
            f"parameters ({heaviest.params / table.total_params:.0%})."
        )
    base = next((r for r in table.rows if r.children), None)
    if base is not None:
        with st.expander(f"Inside the VGG16 base: {len(base.children)} layers (13 convolutions, 5 poolings)"):
            st.table(
                pd.DataFrame(
                    [
                        {
                            "layer": c.name,
                            "type": c.type,
                            "output shape": "×".join(str(d) for d in c.output_shape),
                            "parameters": f"{c.params:,}",
                            "receptive field": _field(c),
                            "how the count is made": c.formula,
                        }
                        for c in base.children
                    ]
                ),
                hide_index=True,
                border="horizontal",
            )

    st.caption(
        "**Receptive field**: how many input pixels one unit of the layer sees (a square of that side); "
        "**jump**: how many input pixels apart two neighbouring units are. Each k×k window adds (k−1)×jump "
        "pixels; each pooling multiplies the jump. Deeper units see more of the image."
    )
    st.subheader("How the feature map shrinks and deepens")
    st.caption(
        "Each box is one layer's output: its height is the map's side, its width grows with the number of "
        "channels (filters). Convolutions add depth, poolings shrink the map; Flatten lays it out as one vector."
    )
    stages = [("input", "input", tuple(table.input_shape))]
    for r in table.rows:
        if r.children:
            pools = [c for c in r.children if c.type == "MaxPooling2D"]
            stages += [(c.name.replace("_pool", ""), c.type, c.output_shape) for c in pools]
        elif r.type in ("Conv2D", "MaxPooling2D"):
            stages.append((r.name, r.type, r.output_shape))
        elif r.type in ("Flatten", "GlobalAveragePooling2D", "Dense"):
            stages.append((r.name, r.type, r.output_shape))
    st.plotly_chart(charts.feature_map_figure(stages), config=charts.CONFIG)


def _field(row) -> str:
    if row.receptive_field is None:
        return "whole image"
    return f"{row.receptive_field}×{row.receptive_field} px (jump {row.jump})"


run_page(main)
