"""Train: how to train, how to augment, and the training itself, live.

This page is the form (the settings and the augmentation, with a preview); the
Train button, the live training and the last result are :mod:`ui.train_panels`.
Training never runs in this script: moving a slider, switching page or reloading
does not stop or duplicate it.
"""

import random

import streamlit as st

from core.base import (
    MODEL_PARAM,
    TRAIN_PARAM,
    decode_model,
    decode_train,
    encode_train,
    network_text,
    precision_reason,
)
from core.base.config import (
    CLASS_WEIGHT_LABELS,
    CLASS_WEIGHTS,
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
from core.models import check_architecture, check_cost, course_code, keras_code, weights_status
from ui import challenges, resources, share, state, train_panels
from ui.controls import FINE_TUNE_RATES, slider_max, slider_range, steps, valid_range
from ui.feedback import errors_shown, flash, header
from ui.frame import run_page

K = state.TRAIN
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
    if st.session_state.pop(train_panels.GO_COMPARE, False):
        st.switch_page(state.PAGES["compare"])
    flash()
    # A link with both (the teacher's "send these settings to everyone") sets the network too; this page writes
    # back only ?train=, the Architecture page owns ?model=.
    share.follow_link(MODEL_PARAM, decode_model, state.model_cfg(), lambda c: state.set_configs(model=c))
    share.follow_link(TRAIN_PARAM, decode_train, state.train_cfg(), lambda c: state.set_configs(train=c))
    challenges.follow_link()  # the teacher's ?challenge= link: its images become the active dataset
    challenges.picker()
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
        train_panels.train_section(m, cfg, bool(problems), bool(too_big))
    st.header("Find a learning rate", divider="gray")
    with errors_shown("talking to the trainer"):
        train_panels.lr_find_section(m, cfg, bool(problems) or bool(too_big))

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
        over = challenges.reasons(m, base.replace(epochs=c["epochs"])).get("epochs")
        if over:  # the active dataset is a challenge's: its epoch budget, next to the slider
            st.error(over, icon=":material/block:")
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
        "More: test set size, less training data, class weights, precision"
        + (", fine-tuning" if m.model == "vgg16" else "")
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
            if not problems:  # the network's size is known only when it fits its input
                st.caption(
                    "This training: " + precision_reason(m, base.replace(precision=c["precision"])),
                    help="Decided once when you press Train; the run is saved under the precision it computed in.",
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
            state.bind(K + "class_weight", base.class_weight)
            c["class_weight"] = st.selectbox(
                "Class weights",
                CLASS_WEIGHTS,
                key=K + "class_weight",
                format_func=CLASS_WEIGHT_LABELS.get,
                help="For imbalanced data (the Data page's health check warns): balanced weights each image by "
                "images / (classes x its class's images) in the training loss.",
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


run_page(main)
