"""Predictions: how the chosen run does on the test images, where it goes wrong, and on your own image."""

import pandas as pd
import streamlit as st

from core.base import ModelConfig, plural, upload_too_large
from core.data import read_image_bytes
from core.data.health import SPLIT_WORDS
from core.results import (
    TOP_K,
    cell_indices,
    confidence_sentence,
    temperature_sentence,
    top_classes,
    worst_confusion,
)
from ui import charts, resources, state
from ui.feedback import errors_shown, header, no_run
from ui.frame import run_page
from ui.sidebar import source_name

K = "pred."
MAX_IMAGES = 24
IMAGE_TYPES = ["png", "jpg", "jpeg", "tif", "tiff", "bmp", "gif", "webp"]


def main() -> None:
    header(
        "Predictions",
        "The **test images** were kept apart during training, so they show how the network would do on new "
        "images. Here is what it got right, what it confused, and how it sees an image of yours.",
    )
    rec = resources.record(state.run_id())
    if rec is None:
        no_run("come back to see its predictions")
        return
    test = rec.test
    names = test.get("class_names") or rec.data.get("classes", [])
    st.markdown(f"**Run:** {rec.label} · on *{source_name(rec.source)}*")

    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Test accuracy", f"{test['accuracy']:.1%}", help="Share of test images whose top class is right.")
    c2.metric("Test loss", f"{test['loss']:.3f}", help=f"Mean {test.get('loss_name', 'categorical')} cross-entropy.")
    c3.metric("Test images", f"{len(test.get('y_true', [])):,}")
    c4.metric("Macro F1", f"{test['macro']['f1']:.2f}", help="F1 averaged over classes, each class counting the same.")
    for note in test.get("notes", []):
        st.caption(f":material/info: {note}")

    st.subheader("Per class")
    st.caption(
        "**Precision**: of the images called this class, the share that are. **Recall**: of the images of this "
        "class, the share found. **F1** combines both. **Support**: test images of the class."
    )
    bar = dict(min_value=0.0, max_value=1.0, format="%.2f")
    st.dataframe(
        pd.DataFrame(test["per_class"]),
        hide_index=True,
        width="stretch",
        column_config={
            "precision": st.column_config.ProgressColumn(**bar),
            "recall": st.column_config.ProgressColumn(**bar),
            "f1": st.column_config.ProgressColumn("F1", **bar),
        },
    )

    arrays = resources.arrays(rec.run_id)
    if not {"test_images", "y_true", "probs"} <= set(arrays):
        st.info(
            "This run has no saved test images, so the images behind the numbers cannot be shown.",
            icon=":material/info:",
        )
    else:
        _confusion(rec, names, arrays)
        _most_wrong(rec, names, arrays)
        with errors_shown("ranking the images most likely mislabelled"):
            _mislabelled(rec, arrays)
        with errors_shown("measuring how honest its confidence is"):
            _calibration(rec)
    with errors_shown("classifying your image"):
        _your_image(rec, names)


def _confusion(rec, names: list[str], arrays: dict) -> None:
    st.subheader("Confusion matrix")
    st.caption(
        "Rows are the true class, columns what the network said. The diagonal holds the correct answers; "
        "every other cell is one kind of mistake. **Click a cell** (or pick it below) to see its images."
    )
    matrix = rec.test["confusion_matrix"]
    ss = st.session_state
    chart_key = f"{K}cm.{rec.run_id}"
    cell_key = f"{K}cell.{rec.run_id}"
    if cell_key not in ss:
        ss[cell_key] = worst_confusion(matrix)
    true_key, pred_key, click_key = f"{K}true.{rec.run_id}", f"{K}pred.{rec.run_id}", f"{K}click.{rec.run_id}"
    # A click on the chart arrives as the chart's state, readable before the chart is drawn again;
    # a change of the selects arrives as their state. Whichever changed picks the cell.
    points = ((ss.get(chart_key) or {}).get("selection") or {}).get("points") or []
    clicked = None
    if points and points[0].get("x") in names and points[0].get("y") in names:
        clicked = (names.index(points[0]["y"]), names.index(points[0]["x"]))
    if clicked is not None and clicked != ss.get(click_key):
        ss[click_key] = clicked
        ss[cell_key] = clicked
    elif ss.get(true_key) in names and ss.get(pred_key) in names:
        ss[cell_key] = (names.index(ss[true_key]), names.index(ss[pred_key]))
    r, c = ss[cell_key]
    ss[true_key], ss[pred_key] = names[r], names[c]
    true_name, pred_name = names[r], names[c]
    left, right = st.columns([1, 1], gap="large")
    with left:
        st.plotly_chart(
            charts.confusion_figure(matrix, names, selected=(r, c)),
            key=chart_key,
            on_select="rerun",
            selection_mode="points",
            config=charts.CONFIG,
        )
    with right:
        s1, s2 = st.columns(2)
        s1.selectbox("True class", names, key=true_key)
        s2.selectbox("Predicted as", names, key=pred_key)
        idx = cell_indices((arrays["y_true"], arrays["probs"]), r, c)
        kind = "correct" if r == c else "mistakes"
        if idx:
            st.markdown(f"**{plural(len(idx), 'test image')}** of *{true_name}* predicted as *{pred_name}* ({kind})")
        else:
            st.markdown(f"**0 test images** of *{true_name}* predicted as *{pred_name}*: none in this cell.")
        if idx:
            _gallery(rec.run_id, idx[:MAX_IMAGES], names, arrays, width=96)
            if len(idx) > MAX_IMAGES:
                st.caption(f"Showing {MAX_IMAGES} of {len(idx)}.")


def _inside_link(col, run_id: str, index: int, split: str = "test") -> None:
    """A link to the Inside page with this run and test (or validation) image: feature maps and Grad-CAM for it."""
    col.page_link(
        state.PAGES["inside"],
        label="Inside",
        icon=":material/layers:",
        query_params={"run": run_id, "image": str(index), **({"split": split} if split != "test" else {})},
        help="See this image's feature maps and Grad-CAM: why the network chose its class.",
    )


def _gallery(run_id: str, indices: list[int], names: list[str], arrays: dict, width: int, per_row: int = 4) -> None:
    for start in range(0, len(indices), per_row):
        cols = st.columns(per_row)
        for col, i in zip(cols, indices[start : start + per_row], strict=False):
            probs = arrays["probs"][i]
            col.image(arrays["test_images"][i], width=width)
            col.caption("  \n".join(f"{names[k]} {float(probs[k]):.0%}" for k in top_classes(probs)))
            _inside_link(col, run_id, i)


def _most_wrong(rec, names: list[str], arrays: dict) -> None:
    test = rec.test
    st.subheader("Most confidently wrong")
    wrong = list(test.get("most_confident_wrong", []))
    if not wrong:
        st.caption("No test image was misclassified.")
        return
    st.caption(
        "The mistakes the network was surest about: often a label to double-check, or two classes that "
        "look alike at this size. **Inside** shows where in the image it found its evidence."
    )
    per_row = 6
    for start in range(0, len(wrong), per_row):
        cols = st.columns(per_row)
        for col, i in zip(cols, wrong[start : start + per_row], strict=False):
            t, p = int(test["y_true"][i]), int(test["predicted"][i])
            col.image(arrays["test_images"][i], width=96)
            col.caption(f"**{names[p]}** {test['confidence'][i]:.0%}  \ntrue: {names[t]}")
            _inside_link(col, rec.run_id, i)


def _mislabelled(rec, arrays: dict) -> None:
    st.subheader("Most likely mislabelled")
    st.caption(
        "The validation and test images, which the network never trained on, with the lowest probability for "
        "the class they are filed under. A network trained on mostly right labels doubts a wrong one: check "
        "these files first. **Flagged**: the network is as sure of another class here as it is, on average, "
        "of that class on the images labelled with it (cleanlab's confident learning)."
    )
    with st.spinner("Ranking the validation and test images (once per run)…"):
        found = resources.mislabels(rec, TOP_K)
    st.markdown(found.sentence())
    if found.note:
        st.caption(f":material/info: {found.note}")
    names = found.class_names
    val_images = resources.validation(rec)[2] if any(s.split == "val" for s in found.suspects) else None
    per_row = 6
    for start in range(0, len(found.suspects), per_row):
        cols = st.columns(per_row)
        for col, s in zip(cols, found.suspects[start : start + per_row], strict=False):
            col.image((arrays["test_images"] if s.split == "test" else val_images)[s.index], width=96)
            flag = f"  \n:red[flagged: looks like {names[s.flagged_as]}]" if s.flagged else ""
            col.caption(
                f"labelled **{names[s.label]}**: {s.own_probability:.0%}  \n"
                f"says {names[s.predicted]} {s.predicted_probability:.0%}  \n"
                f"{SPLIT_WORDS[s.split]} #{s.index}" + (f" · `{s.file}`" if s.file else "") + flag
            )
            _inside_link(col, rec.run_id, s.index, s.split)


def _calibration(rec) -> None:
    st.subheader("Can you trust its confidence?")
    st.caption(
        "Each test image's **confidence** is the probability of the class the network picked. Sorted into bins "
        "(0-10%, ..., 90-100%), an honest network is right as often as it says: the bars reach the diagonal. "
        "A bar below it is where the network is surer than it is right. The number on a bar counts its images."
    )
    with st.spinner("Scoring the validation images once (a few seconds)…"):
        cal = resources.calibration(rec)
    st.markdown(f"**{confidence_sentence(cal.before)}**")
    left, right = st.columns([3, 2], gap="large")
    with left:
        after = cal.after.to_dict() if cal.after else None
        st.plotly_chart(charts.reliability_figure(cal.before.to_dict(), after), config=charts.CONFIG)
    with right:
        c1, c2 = st.columns(2)
        c1.metric(
            "Calibration error",
            f"{cal.before.ece:.1%}",
            help="Expected calibration error (ECE): the gap between confidence and accuracy in each bin, "
            "averaged over the bins by their share of the test images. 0 is perfectly honest.",
        )
        if cal.after is not None:
            c2.metric(
                "After temperature scaling",
                f"{cal.after.ece:.1%}",
                delta=f"{(cal.after.ece - cal.before.ece) * 100:+.1f} points",
                delta_color="inverse",
                help="The same error once every probability is recomputed from the network's scores divided by "
                "one number T, fitted on the validation images.",
            )
        c1.metric(
            "How sure it says it is",
            f"{cal.before.mean_confidence:.1%}",
            help="The mean confidence over the test images.",
        )
        c2.metric(
            "How often it is right",
            f"{cal.test_accuracy_before:.1%}",
            help="The test accuracy: temperature scaling does not change it.",
        )
        if cal.after is None:
            st.info(temperature_sentence(cal), icon=":material/info:")
        else:
            st.caption(temperature_sentence(cal))


def _your_image(rec, names: list[str]) -> None:
    st.subheader("Try your own image")
    m = ModelConfig.from_dict(rec.model_config)
    up = st.file_uploader(
        f"An image ({', '.join(IMAGE_TYPES)}); it is resized to {m.input_size}×{m.input_size} like the training images",
        type=IMAGE_TYPES,
        key=K + "upload",
    )
    if up is None:
        st.caption(f"The network only knows these classes: {', '.join(names)}. Any image gets one of them.")
        return
    too_big = upload_too_large(up.name, up.size)
    if too_big:
        st.error(too_big, icon=":material/error:")
        return
    image = read_image_bytes(up.getvalue(), image_size=m.input_size, channels=m.channels, name=up.name)
    try:
        with st.spinner("Loading the trained network (the first time takes a few seconds)…"):
            probs = resources.predict(rec, image[None])[0]
    except FileNotFoundError:
        st.info("This run has no saved network file, so it cannot classify new images.", icon=":material/info:")
        return
    c1, c2 = st.columns([1, 3], gap="large")
    c1.image(image, caption="as the network sees it", width=160)
    with c2:
        st.plotly_chart(charts.probabilities_figure(names, probs.tolist()), config=charts.CONFIG)


run_page(main)
