"""Data: choose the images, look at them, and see how they are prepared for the network."""

import pandas as pd
import streamlit as st

from core.base import data_roots, plural, upload_too_large
from core.data.health import NEAR_BITS, NEAR_LEVELS, SPLIT_WORDS
from ui import charts, resources, state
from ui.feedback import errors_shown, header
from ui.frame import run_page
from ui.sidebar import dataset_label, folder_label

SAMPLES_PER_CLASS = 8
PAIRS_SHOWN = 12  # duplicate pairs drawn with their thumbnails; the file list has them all
NICE = {
    "shape": "shape",
    "dtype": "dtype",
    "min": "min",
    "max": "max",
    "images": "images",
    "image_shape": "image shape",
    "example_class": "example class",
    "example_label": "its label",
    "per_class": "images per class",
    "train": "training images",
    "val": "validation images",
    "test": "test images",
    "train_per_class": "training per class",
    "val_per_class": "validation per class",
    "test_per_class": "test per class",
    "test_size": "test_size",
    "val_split": "val_split",
    "seed": "random_state",
    "train_fraction": "fraction kept",
}


def main() -> None:
    header(
        "Data",
        "A CNN learns from **labelled images**: one folder per class (sandstone, limestone, ...). "
        "Pick the images here, look at them, and follow how they become the numbers a network reads.",
    )
    with st.container(border=True):
        _choose_source()

    source = state.dataset()
    if not source:
        st.info("No dataset is active yet: pick one above.", icon=":material/info:")
        return
    m, t = state.model_cfg(), state.train_cfg()
    try:
        ds = resources.dataset(source, m.input_size, m.channels)
    except ValueError as exc:  # DataError: the message says what to fix
        st.error(str(exc), icon=":material/error:")
        return

    st.subheader(f"Active dataset: {dataset_label(source)}", divider="gray")
    if resources.bundled_info(source) is None:
        st.caption(f"Read from `{ds.source}` on the server.")
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Images", f"{len(ds):,}")
    c2.metric("Classes", len(ds.class_names))
    c3.metric(
        "Image size (network input)",
        f"{m.input_size} × {m.input_size} × {m.channels}",
        help="Every image is resized to the input size set on the Architecture page.",
    )
    c4.metric("Files skipped", len(ds.skipped), help="Files that could not be used; the list is at the bottom.")

    st.subheader("Sample images")
    st.caption(f"The first {SAMPLES_PER_CLASS} images of each class, as the network sees them.")
    counts = dict(zip(ds.class_names, ds.counts, strict=True))
    for name, idx in resources.sample_indices(ds, SAMPLES_PER_CLASS).items():
        st.markdown(f"**{name}** · {counts[name]} images")
        st.image([ds.images[i] for i in idx], width=84)

    with errors_shown("preparing the data"):
        _preparation(ds, t)
    with errors_shown("checking the data's health"):
        _health(ds, t)

    st.subheader("Skipped files")
    if ds.skipped:
        st.caption("These files were not used. The reason says what to change.")
        st.dataframe(
            pd.DataFrame([{"file": s.path, "reason": s.reason} for s in ds.skipped]),
            hide_index=True,
            width="stretch",
        )
    else:
        st.caption("None: every file in the dataset was read.")


def _choose_source() -> None:
    st.subheader("Choose the images")
    kinds = ["Sample data", "Upload a zip"]
    if resources.server_paths_allowed():
        kinds.append("Folder on the server")
    kind = st.segmented_control("Where are the images?", kinds, default=kinds[0], key="data.kind", required=True)
    if kind == "Upload a zip":
        _upload()
    elif kind == "Folder on the server":
        _server_folder()
    else:
        _bundled()


def _bundled() -> None:
    infos = resources.bundled()
    if not infos:
        st.caption("No sample datasets are installed on this server (sample_data/ is empty). Upload a zip instead.")
        return
    cols = st.columns(len(infos))
    for col, info in zip(cols, infos, strict=True):
        with col, st.container(border=True):
            st.markdown(f"**{info.title}**")
            st.caption(f"{info.n_images} images · {len(info.classes)} classes: {', '.join(info.classes)}")
            if resources.set_aside(info.name):  # a challenge's hidden test images come from it
                st.caption(":material/flag: Set aside for a challenge: pick the challenge on the Train page.")
            elif state.dataset() == info.name:
                st.badge("active", icon=":material/check:", color="green")
            elif st.button("Use this dataset", key=f"data.use.{info.name}"):
                state.use_dataset(info.name)


def _upload() -> None:
    st.caption(
        "A .zip with **one folder per class**, the images inside (PNG, JPEG, TIFF, BMP, GIF, WebP). "
        "Right-click your dataset folder and choose *Compress*; that zip works as it is."
    )
    up = st.file_uploader("Zip of class folders", type=["zip"], key="data.upload")
    if up is None:
        return
    too_big = upload_too_large(up.name, up.size)
    if too_big:
        st.error(too_big, icon=":material/error:")
        return
    seen = st.session_state.setdefault("data.uploads_used", [])
    if up.file_id in seen:
        # Used already: the student may have switched to another dataset since; do not switch back.
        if state.dataset() == st.session_state.get("data.upload_path"):
            st.success(f"Using your upload **{up.name}**.", icon=":material/check:")
        return
    try:
        path = str(resources.save_upload(up.getvalue(), up.name))
        ds = resources.upload_dataset(path, up.name)  # refused: named as up.name, and deleted
    except ValueError as exc:
        st.error(str(exc), icon=":material/error:")
        return
    seen.append(up.file_id)
    previous = st.session_state.get("data.upload_path")
    if previous and previous != path and resources.release_upload(previous):
        state.drop_source(previous)  # replaced, and nothing trained on it: deleted
    st.session_state["data.upload_path"] = path
    st.success(f"Read {len(ds)} images in {len(ds.class_names)} classes from {up.name}.")
    state.use_dataset(path, f"Upload: {up.name}")


def _server_folder() -> None:
    roots = ", ".join(f"`{r}`" for r in data_roots())
    st.caption(f"A folder with one sub-folder per class, or a .zip, inside the folders this server shares: {roots}.")
    path = st.text_input("Path on the server", key="data.path", placeholder="/data/my_thin_sections")
    if st.button("Use this folder", key="data.use_path", disabled=not path):
        try:
            ds = resources.dataset(path.strip())
        except ValueError as exc:
            st.error(str(exc), icon=":material/error:")
            return
        source = ds.source
        st.success(f"Read {len(ds)} images in {len(ds.class_names)} classes.")
        state.use_dataset(source, folder_label(source))


def _preparation(ds, t) -> None:
    st.subheader("From images to numbers")
    st.caption(
        "The preparation the course does before `model.fit`, with the numbers it prints. The loss, split sizes "
        "and seed come from the Train page."
    )
    prep = resources.preparation(ds, t.loss, t.test_size, t.val_split, t.seed, t.train_fraction)
    for i, step in enumerate(prep["steps"], start=1):
        with st.expander(f"Step {i}: {step['title']}", expanded=i <= 3):
            st.markdown(step["what"])
            keys = list(dict.fromkeys([*step["before"], *step["after"]]))
            rows = [
                {"": NICE.get(k, k), "before": _fmt(k, step["before"].get(k)), "after": _fmt(k, step["after"].get(k))}
                for k in keys
            ]
            st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")

    st.subheader("Images per class in each split")
    sizes = prep["sizes"]
    st.caption(
        f"{sizes['train']} training, {sizes['val']} validation and {sizes['test']} test images. "
        "Stratified splits keep every class's share the same in all three."
    )
    st.plotly_chart(charts.class_counts_figure(prep["class_names"], prep["class_counts"]), config=charts.CONFIG)


def _health(ds, t) -> None:
    st.subheader("Data health")
    st.caption(
        "Checked before training, on the split above: are the classes balanced, and is any picture in the "
        "dataset twice? Near-identical means a resized or re-encoded copy: perceptual hashes (dHash) at most "
        f"{NEAR_BITS} of 64 bits apart, and small grey versions within {NEAR_LEVELS:g} grey levels on average."
    )
    report = resources.health(ds, t.test_size, t.val_split, t.seed, t.train_fraction)
    imbalance = report.imbalance
    if imbalance.warning:
        st.warning(imbalance.warning, icon=":material/balance:")
    else:
        st.success(imbalance.sentence(), icon=":material/check:")
    c1, c2, c3 = st.columns(3)
    c1.metric("Identical pairs", report.exact.total, help="Images whose pixels are exactly the same.")
    c2.metric("Near-identical pairs", report.near.total, help="Resized or re-encoded copies of one picture.")
    c3.metric(
        "Pairs across training and validation/test",
        len(report.leaks),
        help="A copy of a training image in validation or test: the model is scored on an image it has learned.",
    )
    for problem in report.problems():
        st.warning(problem, icon=":material/content_copy:")
    pairs = [*report.exact.pairs, *report.near.pairs]
    total = report.exact.total + report.near.total
    if total > PAIRS_SHOWN:
        st.caption(f"The first {PAIRS_SHOWN} of {total:,} pairs: across splits first, then the closest.")
    elif pairs:
        st.caption("Across splits first, then the closest.")
    for p in pairs[:PAIRS_SHOWN]:
        kind = "Identical" if p.exact else f"Near-identical ({plural(p.distance, 'bit')} apart)"
        notes = (" · across splits" if p.across else "") + ("" if p.same_class else " · different classes")
        with st.container(border=True):
            a, b, words = st.columns([1, 1, 4])
            a.image(ds.images[p.a.index], width=72)
            b.image(ds.images[p.b.index], width=72)
            words.markdown(f"**{kind}**{notes}  \n{_where(p.a)}  \n{_where(p.b)}")
    drop = report.drop_list()
    if drop:
        st.download_button(
            f"Download the {plural(len(drop), 'file')} to remove (one of each pair across splits)",
            "\n".join(drop) + "\n",
            file_name="duplicates_to_remove.txt",
            key="data.health.drop",
            help="Remove these files from the dataset folder (or zip) and load it again: each is a copy of an "
            "image in an earlier split, so the test stops scoring images the model learned.",
        )
    st.page_link(
        state.PAGES["predictions"],
        label="After a training: the images whose label the network doubts most (Predictions)",
        icon=":material/label_off:",
        help="The validation and test images with the lowest probability for the class they are filed under.",
    )


def _where(ref) -> str:
    return f"`{ref.file}` ({SPLIT_WORDS[ref.split]}, {ref.label})"


def _fmt(key: str, v) -> str:
    """As Python prints it: shapes as tuples, labels and counts as lists."""
    if v is None:
        return "–"
    if isinstance(v, float):  # as NumPy prints a float: 1.0, 0.901961
        text = f"{v:g}"
        return text if any(ch in text for ch in ".en") else text + ".0"
    if isinstance(v, list):
        inner = ", ".join(_fmt("", x) for x in v)
        if "shape" in key:
            return f"({inner},)" if len(v) == 1 else f"({inner})"
        return f"[{inner}]"
    return str(v)


run_page(main)
