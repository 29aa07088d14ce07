"""Inside the CNN: what each layer of a stored run computes on one image, and why it chose its class; and where
all its test images sit in the network's own feature space."""

import hashlib

import streamlit as st

from core.base import plural
from core.data import read_image_bytes
from core.data.health import SPLIT_WORDS
from core.inside import METHODS, SALIENCY_METHODS, ModelMissingError, top_layers
from core.inside.pictures import upscale
from core.inside.saliency import NOISE, SAMPLES, SEED, STEPS, THRESHOLD
from core.training import HeldOutUnavailable
from ui import charts, resources, state
from ui.feedback import errors_shown, header, no_run
from ui.frame import run_page
from ui.sidebar import source_name

K = "inside."
TEST, VAL, UPLOAD = "A test image", "A validation image", "Your own image"
SOURCES = {"test": TEST, "val": VAL}
SPLITS = tuple(SOURCES)
IMAGE_TYPES = ["png", "jpg", "jpeg", "tif", "tiff", "bmp", "gif", "webp"]
PER_PAGE = 64  # channels drawn at once
MAPS_TAB, EMBED_TAB = "Feature maps", "All test images"

EARLY = (
    "**Early layers** respond to simple things: edges at one angle, a colour contrast, a fine texture. Their "
    "maps still look like the image, because each unit sees only a few pixels."
)
MIDDLE = (
    "**Middle layers** combine those into motifs (grain boundaries, laminae, repeated patterns). The maps are "
    "smaller and look less like the image; each unit sees a larger patch."
)
LATE = (
    "**Late layers** respond to arrangements that tell the classes apart. Their small maps no longer look like "
    "the image: which channels light up, not where, is what the classifier head reads."
)


def main() -> None:
    header(
        "Inside the CNN",
        "Pick an image and look at what the trained network computes: every channel of every layer, one "
        "convolution worked out by hand, the filters it learned, and where in the image it found the evidence "
        "for a class (**Grad-CAM**).",
    )
    _follow_link()
    rec = resources.record(state.run_id())
    if rec is None:
        no_run("come back to look inside it")
        return
    st.markdown(f"**Run:** {rec.label} · on *{source_name(rec.source)}*")
    try:
        with st.spinner("Opening the trained network (the first time takes a few seconds)…"):
            net = resources.network(rec)
    except ModelMissingError as exc:
        st.info(str(exc), icon=":material/info:")
        return
    picked = _pick_image(rec, net)
    if picked is None:
        return
    image, key = picked
    probs = resources.probabilities(rec, key, image)
    left, right = st.columns([1, 2], gap="large")
    left.image(image, caption=f"as the network reads it: {'×'.join(map(str, net.input_shape))}", width=200)
    with right:
        top = int(probs.argmax())
        st.markdown(f"The network says **{net.class_names[top]}** ({probs[top]:.0%}).")
        st.plotly_chart(charts.probabilities_figure(net.class_names, probs.tolist()), config=charts.CONFIG)
    # Selecting a tab reruns the page (on_change), so the map of all test images is computed only once its tab
    # is open; the other tabs draw as before (their figures are cached per image).
    maps_tab, worked_tab, filters_tab, cam_tab, embed_tab = st.tabs(
        [MAPS_TAB, "A convolution by hand", "Learned filters", "Grad-CAM: why this class?", EMBED_TAB],
        key=K + "tab",
        on_change="rerun",
    )
    with maps_tab, errors_shown("drawing the feature maps"):
        _feature_maps(rec, net, image, key)
    with worked_tab, errors_shown("working out the convolution"):
        _worked(rec, net, image, key)
    with filters_tab, errors_shown("drawing the filters"):
        _filters(rec, net)
    with filters_tab, errors_shown("growing the image"):
        _wants_to_see(rec, net)
    with cam_tab, errors_shown("computing Grad-CAM"):
        _grad_cam(rec, net, image, key, probs)
    with embed_tab, errors_shown("mapping the test images"):
        if embed_tab.open:
            _embedding(rec, net, key)


def _follow_link() -> None:
    """A link from the Predictions page (?run=<id>&image=<index>[&split=val]) selects that run and image, once.

    The image is a test image (its number on Predictions), or with ``split=val`` a validation image (the
    gallery of images most likely mislabelled lists both)."""
    ss, q = st.session_state, st.query_params
    link = (q.get("run"), q.get("image"), q.get("split") or "test")
    if not link[0] or ss.get(K + "link") == link:
        return
    ss[K + "link"] = link
    if link[1] is not None and str(link[1]).isdigit() and link[2] in SPLITS:
        ss[K + "goto"] = (link[2], int(link[1]))
    if resources.record(link[0]) is None:
        st.warning(f"The link's run {link[0]} is not stored here; showing the run selected in the sidebar.")
    elif link[0] != state.run_id():
        state.request(**{state.RUN_ID: link[0]})
        st.rerun()


def _index_key(rec, split: str) -> str:
    """The session key of the test (or validation) image picked for this run."""
    return K + (f"index.{rec.run_id}" if split == "test" else f"val_index.{rec.run_id}")


def _held_out(rec, split: str) -> tuple | None:
    """``(labels, probabilities, images)`` of the run's test or validation images; None when there are none."""
    if split == "test":
        arrays = resources.arrays(rec.run_id)
        if "test_images" in arrays and "y_true" in arrays and len(arrays["y_true"]) > 0:
            return arrays["y_true"], arrays["probs"], arrays["test_images"]
        return None
    with st.spinner("Reading the run's validation images again (once)…"):
        return resources.validation(rec)


def _pick_image(rec, net):
    """The image to look at (uint8, the run's size) and its cache key; None when there is none yet."""
    ss = st.session_state
    has_test = _held_out(rec, "test") is not None
    names = net.class_names
    goto = ss.pop(K + "goto", None)
    if goto is not None and has_test:
        split, index = goto
        try:
            held = _held_out(rec, split)
        except HeldOutUnavailable:  # said below, when the validation images are picked
            held = None
        if held is not None and 0 <= index < len(held[0]):
            ss[K + "source"], ss[K + "class"] = SOURCES[split], names[int(held[0][index])]
            ss[_index_key(rec, split)] = index
    source = st.radio("Image", [TEST, VAL, UPLOAD] if has_test else [UPLOAD], key=K + "source", horizontal=True)
    if source == UPLOAD:
        side = f"{net.input_shape[0]}×{net.input_shape[1]}"
        up = st.file_uploader(
            f"An image ({', '.join(IMAGE_TYPES)}); resized to {side} like the training images",
            type=IMAGE_TYPES,
            key=K + "upload",
        )
        if up is None:
            st.caption("Upload an image to look inside the network with it.")
            return None
        data = up.getvalue()
        with errors_shown("reading your image"):
            image = read_image_bytes(
                data, image_size=rec.model_config["input_size"], channels=rec.model_config["channels"], name=up.name
            )
            return image, "upload:" + hashlib.sha256(data).hexdigest()[:16]
        return None
    split = "test" if source == TEST else "val"
    try:
        y, p, images = _held_out(rec, split)
    except HeldOutUnavailable as exc:
        st.info(str(exc), icon=":material/info:")
        return None
    word = SPLIT_WORDS[split]
    if ss.get(K + "class") not in names:
        ss[K + "class"] = names[0]
    c1, c2 = st.columns([1, 2])
    true = c1.selectbox("True class", names, key=K + "class")
    indices = [i for i in range(len(y)) if names[int(y[i])] == true]
    if not indices:
        c2.caption(f"No {word} image of {true}.")
        return None
    index_key = _index_key(rec, split)
    if ss.get(index_key) not in indices:
        ss[index_key] = indices[0]

    def label(i: int) -> str:
        guess = int(p[i].argmax())
        mark = "✓" if guess == int(y[i]) else "✗"
        return f"{word} image #{i} · {mark} predicted {names[guess]} {p[i][guess]:.0%}"

    index = c2.selectbox(
        f"{word.capitalize()} images of {true} ({len(indices)})", indices, key=index_key, format_func=label
    )
    return images[index], f"{split}:{index}"


def _feature_maps(rec, net, image, key) -> None:
    names = [la.name for la in net.layers]
    if st.session_state.get(K + "layer") not in names:
        st.session_state[K + "layer"] = names[0]
    name = st.select_slider("Layer (input → output)", names, key=K + "layer")
    info = net.layer(name)
    maps = resources.feature_maps(rec, key, image, name)
    h, w, c = info.output_shape
    st.markdown(
        f"**{name}** ({info.type}): output **{h}×{w}×{c}**, {plural(c, 'map')} of {h}×{w}. One unit sees "
        f"**{info.receptive_field}×{info.receptive_field}** input pixels; neighbouring units are "
        f"{plural(info.jump, 'pixel')} apart in the image."
    )
    m1, m2, m3 = st.columns(3)
    m1.metric("Smallest value", f"{maps.min():.3f}")
    m2.metric("Largest value", f"{maps.max():.3f}")
    m3.metric("Values at 0", f"{(maps == 0).mean():.0%}", help="ReLU sets negative sums to 0: the unit is off.")
    start = 0
    if c > PER_PAGE:
        start = st.select_slider(
            "Channels",
            list(range(0, c, PER_PAGE)),
            key=K + f"start.{name}",
            format_func=lambda s: f"{s}–{min(s + PER_PAGE, c) - 1}",
        )
    st.plotly_chart(charts.feature_maps_figure(maps, start, PER_PAGE), config=charts.CONFIG)
    st.caption("One tile per channel, numbered; one colour scale for the whole layer (the bar on the right).")
    st.markdown(EARLY if info.depth < 0.34 else MIDDLE if info.depth < 0.67 else LATE)
    if info.type == "MaxPooling2D":
        st.caption(
            f"Pooling keeps the largest value of each {info.kernel_size}×{info.kernel_size} window: the "
            "same channels as the layer before, smaller maps."
        )
    elif info.type == "BatchNormalization":
        st.caption(
            "Batch normalisation re-centres and re-scales each channel with numbers learned in training: "
            "values below 0 can appear again."
        )


def _worked(rec, net, image, key) -> None:
    ss = st.session_state
    convs = [la.name for la in net.conv_layers()]
    c1, c2, c3, c4 = st.columns(4)
    name = c1.selectbox("Convolution", convs, key=K + "conv")
    h, w, f = net.layer(name).output_shape
    for field, size in (("row", h), ("col", w), ("filter", f)):
        ss[K + field] = min(int(ss.get(K + field, size // 2 if field != "filter" else 0)), size - 1)
    row = c2.number_input("Row", 0, h - 1, key=K + "row")
    col = c3.number_input("Column", 0, w - 1, key=K + "col")
    channel = c4.number_input("Filter (output channel)", 0, f - 1, key=K + "filter")
    wc = resources.worked(rec, key, image, name, row, col, channel)
    k, cin = wc.kernel_size, wc.in_channels
    reads = "the image" + (" (VGG16 preprocessing: BGR, mean subtracted)" if net.cfg.model == "vgg16" else " (/255)")
    st.markdown(
        f"Unit ({row}, {col}) of filter {channel} reads a **{k}×{k}×{cin}** patch of "
        f"{reads if wc.input_name == 'input' else wc.input_name}. The filter has {k}×{k}×{cin} = "
        f"{k * k * cin} weights + 1 bias; the layer has {plural(wc.filters, 'filter')}: "
        f"**{wc.filters} × ({k}×{k}×{cin} + 1) = {wc.filters * wc.weights_per_filter:,}** "
        "parameters."
    )
    shown = range(cin) if cin <= 3 else [st.slider("Input channel shown", 0, cin - 1, key=K + f"in.{name}")]
    for ci in shown:
        a, b, c = st.columns(3)
        suffix = f" · channel {'BGR'[ci] if net.cfg.model == 'vgg16' and wc.input_name == 'input' else ci}"
        a.plotly_chart(
            charts.matrix_figure(wc.patch[:, :, ci], "input patch" + suffix, ~wc.inside),
            config=charts.CONFIG,
            key=K + f"patch{ci}",
        )
        b.plotly_chart(
            charts.matrix_figure(wc.kernel[:, :, ci], "kernel" + suffix, fmt=".3f"),
            config=charts.CONFIG,
            key=K + f"kernel{ci}",
        )
        c.plotly_chart(
            charts.matrix_figure(wc.products[:, :, ci], f"products: sum {wc.per_channel()[ci]:.3f}", fmt=".3f"),
            config=charts.CONFIG,
            key=K + f"prod{ci}",
        )
    lines = [
        f"1. Sum of the {k * k * cin} products: **{wc.total:.4f}**",
        f"2. Plus the bias {wc.bias:+.4f}: **{wc.pre_activation:.4f}**",
    ]
    if wc.activation == "relu":
        lines.append(f"3. ReLU, max(0, {wc.pre_activation:.4f}): **{wc.value:.4f}**")
    lines.append(
        f"4. The network computed **{wc.model_value:.4f}** for this unit "
        f"(difference {abs(wc.value - wc.model_value):.1e}: float rounding)."
    )
    if wc.batchnorm is not None:
        b = wc.batchnorm
        lines.append(
            f"5. Batch normalisation ({b.layer}, after the ReLU in this network): γ × (x − mean) / "
            f"√(variance + ε) + β = {b.gamma:.3f} × ({b.x:.4f} − {b.mean:.4f}) / √({b.variance:.4f} + "
            f"{b.epsilon:g}) + {b.beta:.3f} = **{b.value:.4f}** (network: {b.model_value:.4f})"
        )
    st.markdown("\n".join(lines))
    st.plotly_chart(
        charts.unit_figure(resources.feature_maps(rec, key, image, name)[:, :, channel], row, col), config=charts.CONFIG
    )
    st.caption(f"Filter {channel}'s whole map in {name}; the outlined unit is the one worked out above.")
    if wc.pool is None:
        st.caption(wc.pool_note)
        return
    pool = wc.pool
    st.markdown(
        f"**Then pooling ({pool.layer})**: the {pool.size}×{pool.size} window holding this unit keeps its "
        f"largest value, **{pool.value:.4f}**, which is unit ({pool.out_row}, {pool.out_col}) of "
        f"{pool.layer} (network: {pool.model_value:.4f})."
    )
    st.plotly_chart(
        charts.matrix_figure(pool.window, "pooling window", fmt=".3f", colorscale="Viridis", center=False),
        config=charts.CONFIG,
        key=K + "pool",
    )


def _filters(rec, net) -> None:
    convs = [la.name for la in net.conv_layers()]
    name = st.selectbox("Convolution", convs, key=K + "flayer")
    fs = resources.conv_filters(rec, name)
    k, cin, count = fs.kernel.shape[0], fs.kernel.shape[2], fs.count
    if fs.first:
        st.markdown(
            f"The **{plural(count, 'filter')}** of {name}, each a {k}×{k}×{cin} patch of weights drawn as "
            "colours: grey is a weight of 0; a colour is what the filter responds to."
        )
        st.plotly_chart(charts.filters_figure(fs.rgb()), config=charts.CONFIG)
        if net.cfg.model == "vgg16":
            st.caption(
                "These are VGG16's **pretrained** filters (the base stays frozen, so training did not change "
                "them); VGG16 reads BGR images, so the channels are flipped back to RGB here."
            )
        else:
            st.caption(
                "Learned from random starting values on your images: compare them with VGG16's pretrained "
                "filters by picking a VGG16 transfer run below."
            )
        _other_filters(rec)
        return
    index = st.slider("Filter", 0, count - 1, key=K + f"fidx.{name}")
    st.markdown(
        f"Filter {index} of {name} reads {cin} feature maps, not colours: its {k}×{k}×{cin} weights are shown "
        f"one {k}×{k} slice per input channel (red above 0, blue below)."
    )
    st.plotly_chart(charts.kernel_slices_figure(fs.slices(index), PER_PAGE), config=charts.CONFIG)


def _other_filters(rec) -> None:
    others = {
        r["run_id"]: r for r in resources.list_runs() if r["run_id"] != rec.run_id and resources.has_model(r["run_id"])
    }
    if not others:
        return
    other = st.selectbox(
        "Beside another run's first-layer filters",
        [None, *others],
        key=K + "other",
        format_func=lambda r: "(none)" if r is None else others[r]["label"],
    )
    if other is not None:
        fs = resources.conv_filters(resources.record(other))
        st.plotly_chart(charts.filters_figure(fs.rgb()), config=charts.CONFIG, key=K + "other_fig")


A_FILTER, A_CLASS = "A filter", "A class"
GRID = 8  # filters grown at once by "the first 8 filters"


def _wants_to_see(rec, net) -> None:
    """Activation maximisation: an image grown from noise for one filter (or class), only when asked."""
    ss = st.session_state
    st.divider()
    st.subheader("What does this filter want to see?")
    st.caption(
        "Start from random noise and change the image, step by step, in the direction that makes the filter "
        "respond more (gradient ascent). Small random shifts, a light blur now and then, and a pull back towards "
        "grey keep it from turning into noise: what is left is the pattern the filter looks for."
    )
    convs = [la.name for la in net.conv_layers()]
    c1, c2, c3 = st.columns(3)
    kind = c1.radio("Look at", [A_FILTER, A_CLASS], key=K + "mx_kind", horizontal=True)
    if kind == A_FILTER:
        layer = c2.selectbox("Convolution", convs, key=K + "mx_layer")
        count = net.layer(layer).output_shape[-1]
        ss[K + "mx_filter"] = min(int(ss.get(K + "mx_filter", 0)), count - 1)
        index = c3.number_input(f"Filter (0 to {count - 1})", 0, count - 1, key=K + "mx_filter")
        request, label = (layer, int(index), None), "What does this filter want to see?"
    else:
        names = net.class_names
        chosen = c2.selectbox("Class", list(range(len(names))), key=K + "mx_class", format_func=names.__getitem__)
        request, label = (None, None, int(chosen)), "What does this class look like to the network?"
    result = resources.kept_maximised(rec, *request)
    if result is None:
        slow = "VGG16: about half a minute" if net.cfg.model == "vgg16" else "a few seconds"
        if not st.button(label, key=K + "mx_go", icon=":material/auto_awesome:", help=f"Takes {slow} on a CPU."):
            st.caption(f"Nothing is computed until you ask ({slow}); once grown, the image is kept with the run.")
            _grid(rec, net, kind, convs)
            return
        result = _grow(rec, [request])[0]
    left, right = st.columns([1, 2])
    left.image(upscale(result.image, max(1, 192 // result.image.shape[0])), width=192, caption=result.what)
    right.markdown(result.sentence())
    s = result.settings
    right.caption(
        f"Grown from noise (seed {s.seed}) in {plural(s.steps, 'step')} of gradient ascent"
        + (f" ({result.seconds:.1f} s)" if not result.cached else ", kept from an earlier request")
        + f"; each step shifted the image by up to {plural(s.jitter, 'pixel')}, every {plural(s.blur_every, 'step')} "
        f"a blur of {s.blur_sigma:g} pixels smoothed it, and each step pulled it {s.decay:.1%} back towards grey."
        + (
            " VGG16 sees the image after its own preprocessing (BGR, mean subtracted)."
            if net.cfg.model == "vgg16"
            else ""
        )
    )
    _grid(rec, net, kind, convs)


def _grow(rec, requests: list[tuple]) -> list:
    """Grow the images asked for, one progress bar over all of them."""
    bar = st.progress(0.0, text="Starting from noise…")
    results = []
    for n, request in enumerate(requests):

        def progress(step: int, steps: int, n: int = n) -> None:
            if step == steps or step % 5 == 0:
                done = (n + step / steps) / len(requests)
                bar.progress(done, text=f"Image {n + 1} of {len(requests)}: step {step} of {steps}")

        results.append(resources.maximised(rec, *request, progress=progress))
    bar.empty()
    return results


def _grid(rec, net, kind: str, convs: list[str]) -> None:
    """The first filters of the chosen layer side by side, grown when asked (kept ones come back at once)."""
    if kind != A_FILTER:
        return
    layer = st.session_state[K + "mx_layer"]
    shown = min(GRID, net.layer(layer).output_shape[-1])
    requests = [(layer, i, None) for i in range(shown)]
    kept = [resources.kept_maximised(rec, *r) for r in requests]
    if any(k is None for k in kept):
        if not st.button(f"Grow the first {plural(shown, 'filter')} of {layer}", key=K + "mx_grid"):
            return
        missing = [r for r, k in zip(requests, kept, strict=True) if k is None]
        grown = iter(_grow(rec, missing))
        kept = [k if k is not None else next(grown) for k in kept]
    st.image(
        [upscale(k.image, max(1, 96 // k.image.shape[0])) for k in kept],
        width=96,
        caption=[
            f"filter {k.filter}: {k.ratio:.0f}× the test images" if k.ratio else f"filter {k.filter}" for k in kept
        ],
    )


def _grad_cam(rec, net, image, key, probs) -> None:
    names = net.class_names
    top = int(probs.argmax())
    convs = [la.name for la in net.conv_layers()]
    c1, c2 = st.columns(2)

    def label(i: int) -> str:
        return f"{names[i]} ({probs[i]:.0%})" + (" · predicted" if i == top else "")

    chosen = c1.selectbox(
        "Explain the class", list(range(len(names))), index=top, key=K + "cam_class", format_func=label
    )
    layer = c2.selectbox("At layer", convs, index=len(convs) - 1, key=K + "cam_layer")
    shown = [top] if chosen == top else [top, chosen]
    for col, c in zip(st.columns(2), shown, strict=False):
        cam = resources.gradcam(rec, key, image, c, layer)
        with col:
            st.markdown(f"**{names[c]}** ({probs[c]:.1%}){' · predicted' if c == top else ''}")
            st.plotly_chart(charts.heat_overlay_figure(image, cam.heatmap), config=charts.CONFIG, key=K + f"cam{c}")
            if cam.peak <= 0:
                st.caption(f"No part of {layer}'s maps pushed the score of {names[c]} up: the map is empty.")
    info = net.layer(layer)
    h, w, c = info.output_shape
    st.caption(
        f"Bright = where {layer} found evidence for the class: the gradient of the class score says how much "
        f"each of its {plural(c, 'channel')} matters, and their weighted sum is shown. Its maps are {h}×{w}, "
        "so the heatmap is that coarse, smoothed to the image."
    )
    if st.toggle("Second view: cover parts of the image (occlusion)", key=K + "occlusion"):
        with st.spinner("Covering the image square by square (up to 100 passes: a few seconds for VGG16)…"):
            occ = resources.occluded(rec, key, image, chosen)
        st.plotly_chart(
            charts.heat_overlay_figure(image, occ.drop, diverging=True, label="drop"),
            config=charts.CONFIG,
            key=K + "occ",
        )
        st.caption(
            f"A {occ.patch}×{occ.patch} square of the image's average colour was moved over it in steps of "
            f"{occ.stride}. Red: covering it lowers the probability of {names[chosen]} (from "
            f"{occ.probability:.0%}); blue: raises it. This asks the network directly, with no gradients: "
            "slower, but in the probabilities you read above."
        )
    _saliency(rec, net, image, key, chosen)


def _saliency(rec, net, image, key, chosen: int) -> None:
    """Every saliency method on one row for the class chosen above; then, when asked, the sanity check."""
    ss, name = st.session_state, net.class_names[chosen]
    st.markdown("#### Every method on one row")
    if not st.toggle(f"Compare five ways of explaining {name}", key=K + "saliency"):
        st.caption(
            "Grad-CAM, occlusion, SmoothGrad, Integrated Gradients and a control that ignores the network, for the "
            "same image and class: a few seconds (longer for VGG16), once per image and class."
        )
        return
    with st.spinner("Computing the maps (SmoothGrad and Integrated Gradients take dozens of gradients each)…"):
        maps = [resources.saliency_map(rec, key, image, chosen, m) for m in SALIENCY_METHODS]
    st.plotly_chart(
        charts.maps_row_figure(image, tuple(m.heatmap for m in maps), tuple(m.name for m in maps)),
        config=charts.CONFIG,
        key=K + "saliency_row",
    )
    ig = next(m for m in maps if m.method == "ig")
    c = ig.completeness
    st.markdown(
        f"- **SmoothGrad**: how much each pixel moves the score of {name}, averaged over {SAMPLES} copies of the "
        f"image with noise added ({NOISE:.0%} of the range from black to white, seed {SEED}: the same map every "
        "time).\n"
        f"- **Integrated Gradients**: the same gradients along the way from a **black image** (the baseline: "
        f'"no signal") to this one, in {plural(STEPS, "step")}. The pixels\' shares add up to '
        f"**{c.total:.3f}**; the score of {name} goes from {c.baseline_score:.3f} for the black image to "
        f"{c.score:.3f} for this one, a change of **{c.difference:.3f}**: a gap of {c.gap:.3f} "
        f"({c.relative_gap:.1%}), the steps' rounding, which more steps would shrink. A black pixel gets no share, "
        "whatever it means.\n"
        "- **Edges (control)**: where the image's brightness changes. It reads no weight of the network: a map "
        "that looks like it says more about the image than about the network."
    )
    st.caption(
        "Each map is scaled to its own brightest part (SmoothGrad and Integrated Gradients: to their top 1% of "
        "pixels, so that a few extreme pixels do not leave the rest dark)."
    )
    st.markdown("#### Sanity check: randomise the top layers")
    layers = top_layers(net)
    st.markdown(
        f"Give **{', '.join(layers)}** random starting weights (a copy: the trained network stays as it is), "
        f"compute every map again for {name} and compare it with the one above by rank correlation (1: the "
        f"pixels in the same order; 0: no relation). A method **passes** when its map changes: the correlation "
        f"falls below {THRESHOLD:g}."
    )
    asked = K + f"sanity.{rec.run_id}.{key}.{chosen}"
    if st.button("Randomise the top layers and compare", key=K + "sanity", icon=":material/casino:"):
        ss[asked] = True
    if not ss.get(asked):
        return
    with st.spinner("Computing every map again with random top layers…"):
        rows = [resources.sanity_row(rec, key, image, chosen, m) for m in SALIENCY_METHODS]
    titles = tuple(f"{r.name}<br>{r.correlation:.2f} · {r.verdict}" for r in rows)
    st.plotly_chart(
        charts.maps_row_figure(image, tuple(r.randomised for r in rows), titles),
        config=charts.CONFIG,
        key=K + "sanity_row",
    )
    passed = [r.name for r in rows if r.passed]
    failed = [r.name for r in rows if r.verdict == "failed"]
    empty = [r.name for r in rows if r.verdict == "no map"]
    st.markdown(
        (f"**Passed** (the map changed with the weights): {', '.join(passed)}. " if passed else "No method passed. ")
        + (f"**Failed** (about the same map with random weights): {', '.join(failed)}. " if failed else "")
        + (f"No map to compare (no evidence for {name} at all): {', '.join(empty)}." if empty else "")
    )
    st.info(
        "A map that does not change when the weights are random explains the image, not the model.",
        icon=":material/lightbulb:",
    )
    st.caption(
        "One image, one random draw (seeded: the same every time). Adebayo et al. (2018) proposed this check; "
        "the edge map is there to fail it."
    )


def _embedding(rec, net, image_key: str) -> None:
    """Every test image as a point in the penultimate layer's feature space; a point picked opens that image.

    The image looked at above (``image_key`` "test:<index>") is the one picked until a dot is clicked."""
    ss = st.session_state
    arrays = resources.arrays(rec.run_id)
    if not len(arrays.get("y_true", [])):
        st.info("This run has no stored test images to map.", icon=":material/info:")
        return
    c1, c2 = st.columns(2)
    method = c1.radio(
        "Projection to 2-D", list(METHODS), key=K + "embed_method", horizontal=True, format_func=METHODS.get
    )
    with_train = c2.toggle(
        "Also the training images",
        key=K + "embed_train",
        help="Read the run's dataset again, split it as the training did, and place its training images too "
        "(faded rings). The number below stays the test images'.",
    )
    spinner = "Placing the images with t-SNE (a few seconds, once per run)…" if method == "tsne" else "Mapping…"
    with st.spinner(spinner):
        em = resources.embedding(rec, method, with_train)
    names, n = em.class_names, em.n_test
    st.markdown(em.sentence())
    chart_key, pick_key, click_key = K + f"embed_chart.{rec.run_id}", K + f"embed_pick.{rec.run_id}", K + "embed_click"
    # A click on a point arrives as the chart's state, before the chart is drawn again: it picks that image.
    points = ((ss.get(chart_key) or {}).get("selection") or {}).get("points") or []
    clicked = points[0].get("customdata") if points else None
    if isinstance(clicked, list):
        clicked = clicked[0] if clicked else None
    if clicked is not None and clicked != ss.get(click_key) and 0 <= int(clicked) < n:
        ss[click_key] = ss[pick_key] = int(clicked)
    if ss.get(pick_key) not in range(n):
        shown = int(image_key.split(":")[1]) if image_key.startswith("test:") else None
        ss[pick_key] = shown if shown in range(n) else em.mistakes[0] if em.mistakes else 0
    st.plotly_chart(
        charts.embedding_figure(
            em.coords,
            em.labels,
            em.predicted,
            em.confidence,
            tuple(names),
            em.axis_titles(),
            ss[pick_key],
            n,
            to_scale=method == "pca",
        ),
        key=chart_key,
        on_select="rerun",
        selection_mode="points",
        config=charts.CONFIG,
    )
    misses, n_train = len(em.mistakes), len(em.labels) - n
    how = (
        "PCA: the two directions along which the images' features vary most, drawn to scale"
        if method == "pca"
        else "t-SNE: neighbours in the features stay neighbours in the picture; distances between groups mean little"
    )
    st.caption(
        f"Each dot is one of the {plural(n, 'test image')}, placed by the {em.units} numbers the {em.layer} layer "
        f"gives it ({how}); colour is its true class, a cross marks the {plural(misses, 'image')} the "
        f"network got wrong. In the flat picture, {plural(em.k, 'nearest neighbour')} are right for "
        f"{em.knn_accuracy_2d:.0%}. **Click a dot** (or pick it below) to see that image."
        + (f" Faded rings: the {plural(n_train, 'training image')}, which the network learned from." if n_train else "")
        if em.knn_accuracy_2d is not None
        else f"Each dot is one of the {plural(n, 'test image')}; colour is its true class, a cross a mistake."
    )

    def label(i: int) -> str:
        mark = "✓" if em.predicted[i] == em.labels[i] else "✗"
        return f"test image #{i} · {names[int(em.labels[i])]} · {mark} predicted {names[int(em.predicted[i])]}"

    left, right = st.columns([1, 2])
    index = right.selectbox("Test image", list(range(n)), key=pick_key, format_func=label)
    left.image(arrays["test_images"][index], width=128)
    right.markdown(
        f"True class **{names[int(em.labels[index])]}**; the network says **{names[int(em.predicted[index])]}** "
        f"({float(em.confidence[index]):.0%})."
    )
    right.button(
        "Look inside this image",
        key=K + "embed_open",
        icon=":material/layers:",
        on_click=lambda: ss.update({K + "goto": ("test", index), K + "tab": MAPS_TAB}),
        help="Show this image's feature maps, worked convolution and Grad-CAM in the tabs of this page.",
    )


run_page(main)
