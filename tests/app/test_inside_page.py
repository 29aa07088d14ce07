"""Inside the CNN (AppTest): feature maps, the worked convolution, filters, Grad-CAM, for both model kinds."""

import io
import json

import numpy as np
import pytest
from apphelpers import chart_specs, texts
from PIL import Image

from core.base.config import ModelConfig, TrainConfig
from core.models.layer_table import layer_table

PAGE = "pages/inside.py"


def test_no_run_explains_where_to_get_one(open_page, empty_home):
    at = open_page(PAGE)
    assert not at.exception
    assert any("No run yet: train one on the Train page" in i.value for i in at.info)


def _heatmaps(at) -> list[dict]:
    return [t for s in chart_specs(at) for t in s["data"] if t["type"] == "heatmap"]


def test_a_cnn_run_feature_maps_worked_convolution_filters_and_grad_cam(open_page, trained, monkeypatch):
    from core.store.runstore import RunStore
    from ui import resources

    loads = []
    real = RunStore.load_model
    monkeypatch.setattr(RunStore, "load_model", lambda self, run_id: loads.append(run_id) or real(self, run_id))
    resources._model.clear()
    resources._network.clear()
    at = open_page(PAGE, run_id=trained.run_id)
    assert not at.exception, [e.value for e in at.exception]
    assert [t.value for t in at.title] == ["Inside the CNN"] and len(at.tabs) == 5
    table = {r.name: r for r in layer_table(ModelConfig.from_dict(trained.model_config)).rows}
    # Feature maps: the first layer, then the slider moved to the pooling layer.
    assert "**block1_conv** (Conv2D): output **14×14×4**" in texts(at)
    grid = _heatmaps(at)[0]
    assert len(grid["z"]) == 2 * 14 + 1 and len(grid["z"][0]) == 2 * 14 + 1  # 4 channels: 2 x 2 tiles
    at.select_slider(key="inside.layer").set_value("block1_pool").run()
    assert not at.exception
    h, w, c = table["block1_pool"].output_shape
    assert f"**block1_pool** (MaxPooling2D): output **{h}×{w}×{c}**" in texts(at)
    assert "One unit sees **4×4** input pixels" in texts(at)
    # The worked convolution: a unit, its arithmetic, and the network's own value.
    at.number_input(key="inside.row").set_value(3).run()
    at.number_input(key="inside.col").set_value(11).run()
    at.number_input(key="inside.filter").set_value(2).run()
    assert not at.exception
    text = texts(at)
    assert "Unit (3, 11) of filter 2 reads a **3×3×3** patch" in text
    assert "**4 × (3×3×3 + 1) = 112** parameters" in text
    hand = float(text.split("ReLU, max(0, ")[1].split("**")[1])
    model = float(text.split("The network computed **")[1].split("**")[0])
    assert hand == pytest.approx(model, abs=2e-4)
    assert "Then pooling (block1_pool)" in text and "unit (1, 5) of block1_pool" in text
    # Filters: the first layer's as RGB patches.
    assert any(t["type"] == "image" for s in chart_specs(at) for t in s["data"])
    # Grad-CAM: the predicted class, then another one beside it.
    cams = [t for t in _heatmaps(at) if t.get("colorscale") and t.get("zmax") == 1 and t.get("opacity")]
    assert len(cams) == 1 and np.array(cams[0]["z"], dtype=float).shape == (16, 16)
    other = next(i for i in range(3) if i != at.selectbox(key="inside.cam_class").value)
    at.selectbox(key="inside.cam_class").set_value(other).run()
    cams = [t for t in _heatmaps(at) if t.get("opacity")]
    assert len(cams) == 2 and all(
        0 <= np.nanmin(np.array(t["z"], float)) and np.nanmax(np.array(t["z"], float)) <= 1 for t in cams
    )
    at.toggle(key="inside.occlusion").set_value(True).run()
    assert not at.exception and "A 2×2 square of the image's average colour" in texts(at)
    at.run()
    assert loads == [trained.run_id]  # loaded once, shared from st.cache_resource


def test_a_link_from_the_predictions_page_opens_that_run_and_image(open_page, trained, staged):
    from core.store.runstore import RunStore

    at = open_page("pages/predictions.py", run_id=trained.run_id)
    links = [el for el in at.get("page_link") if el.proto.page == "inside"]  # the page's URL: /inside
    assert links and all(f"run={trained.run_id}" in el.proto.query_string for el in links)
    y = RunStore().load_arrays(trained.run_id)["y_true"]
    index = len(y) - 1
    # A fresh session opening the link's URL, with another run selected before.
    from apphelpers import APP, TIMEOUT
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.session_state["run_id"] = staged.run_id
    at.run()
    at.query_params.update(run=trained.run_id, image=str(index))
    at.switch_page(PAGE).run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.session_state["run_id"] == trained.run_id
    assert at.radio(key="inside.source").value == "A test image"
    assert at.selectbox(key="inside.class").value == trained.data["classes"][int(y[index])]
    assert at.selectbox(key=f"inside.index.{trained.run_id}").value == index


def _open_link(start_run: str, **query):
    """A fresh session, another run selected, then the Inside page opened with this link's query."""
    from apphelpers import APP, TIMEOUT
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.session_state["run_id"] = start_run
    at.run()
    at.query_params.update(**query)
    at.switch_page(PAGE).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_a_link_to_a_validation_image_opens_it(trained, staged):
    """The gallery of images most likely mislabelled links validation images too (&split=val)."""
    from core.store.runstore import RunStore
    from core.training import validation_images

    store = RunStore()
    arrays = store.load_arrays(trained.run_id)
    y_val, val_probs = arrays["y_val"], arrays["val_probs"]
    index = _clearest(val_probs)
    at = _open_link(staged.run_id, run=trained.run_id, image=str(index), split="val")
    assert at.session_state["run_id"] == trained.run_id
    assert at.radio(key="inside.source").value == "A validation image"
    assert at.selectbox(key="inside.class").value == trained.data["classes"][int(y_val[index])]
    picker = at.selectbox(key=f"inside.val_index.{trained.run_id}")
    assert picker.value == index and all(o.startswith("validation image #") for o in picker.options)
    # The picture looked inside is the run's own validation image: the network says what it said of it.
    assert f"The network says **{trained.data['classes'][int(val_probs[index].argmax())]}**" in texts(at)
    assert validation_images(store, trained).shape[0] == len(y_val)


def _clearest(probs) -> int:
    """The image whose top class leads the second by most (its answer does not flip with rounding)."""
    top2 = np.sort(probs, axis=1)[:, -2:]
    return int(np.argmax(top2[:, 1] - top2[:, 0]))


def test_your_own_image_and_an_unreadable_one(open_page, trained):
    at = open_page(PAGE, run_id=trained.run_id)
    at.radio(key="inside.source").set_value("Your own image").run()
    assert not at.exception and "Upload an image" in texts(at)
    buf = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 30, 30)).save(buf, format="PNG")
    at.file_uploader(key="inside.upload").upload("red.png", buf.getvalue(), "image/png").run()
    assert not at.exception, [e.value for e in at.exception]
    assert "The network says" in texts(at)
    at.file_uploader(key="inside.upload").clear().upload("notes.png", b"not an image", "image/png").run()
    assert not at.exception
    assert any("cannot be used" in e.value for e in at.error)


def test_a_run_without_a_saved_network_says_so(open_page, staged):
    at = open_page(PAGE, run_id=staged.run_id)
    assert not at.exception
    assert any("no saved network file" in i.value for i in at.info)
    assert not at.tabs


@pytest.fixture
def vgg_home(tmp_path, monkeypatch, data_dir):
    """A store of this test's own with a VGG16 transfer run (random base weights: nothing to download)."""
    from core.store.runstore import RunStore
    from core.training.experiment import run_experiment

    home = tmp_path / "home"
    monkeypatch.setenv("CNNLAB_HOME", str(home))
    cfg = ModelConfig(model="vgg16", weights="none", input_size=32, dense_units=8)
    return run_experiment(str(data_dir), cfg, TrainConfig(epochs=1, batch_size=16), store=RunStore(home))


def test_a_vgg16_transfer_run_shows_its_nested_base(open_page, vgg_home):
    rec = vgg_home
    at = open_page(PAGE, run_id=rec.run_id)
    assert not at.exception, [e.value for e in at.exception]
    assert at.select_slider(key="inside.layer").options[0] == "block1_conv1"
    assert len(at.select_slider(key="inside.layer").options) == 18
    at.select_slider(key="inside.layer").set_value("block3_conv2").run()
    assert "**block3_conv2** (Conv2D): output **8×8×256**" in texts(at)
    assert "One unit sees **32×32** input pixels" in texts(at)
    grid = _heatmaps(at)[0]
    assert json.dumps(grid).count("null") > 0  # the gaps between the 64 tiles shown of 256
    at.select_slider(key="inside.start.block3_conv2").set_value(192).run()
    assert not at.exception
    assert "pretrained" in texts(at) and "BGR" in texts(at)
    assert at.selectbox(key="inside.cam_layer").value == "block5_conv3"
    at.selectbox(key="inside.conv").set_value("block2_conv1").run()
    assert not at.exception and "reads a **3×3×64** patch of block1_pool" in texts(at)
    # Its validation images too (read again from its data): the network's answer is the stored one.
    from core.store.runstore import RunStore

    arrays = RunStore().load_arrays(rec.run_id)
    index = _clearest(arrays["val_probs"])
    at.radio(key="inside.source").set_value("A validation image").run()
    assert not at.exception, [e.value for e in at.exception]
    at.selectbox(key="inside.class").set_value(rec.data["classes"][int(arrays["y_val"][index])]).run()
    at.selectbox(key=f"inside.val_index.{rec.run_id}").set_value(index).run()
    assert not at.exception, [e.value for e in at.exception]
    said = rec.data["classes"][int(arrays["val_probs"][index].argmax())]
    assert f"The network says **{said}**" in texts(at)


def _scatter(at) -> list[dict]:
    return [t for s in chart_specs(at) for t in s["data"] if t["type"] in ("scatter", "scattergl")]


def test_all_test_images_in_the_feature_space_and_a_picked_one_opened(open_page, trained):
    from core.inside import embed_run
    from core.store.runstore import RunStore

    store = RunStore()
    arrays = store.load_arrays(trained.run_id)
    n, names = len(arrays["y_true"]), trained.data["classes"]
    em = embed_run(store, trained.run_id, "pca")
    at = open_page(PAGE, run_id=trained.run_id)
    assert not at.exception, [e.value for e in at.exception]
    assert em.sentence() not in texts(at)  # nothing is mapped until the tab is opened
    at.session_state["inside.tab"] = "All test images"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert em.sentence() in texts(at)
    pick = f"inside.embed_pick.{trained.run_id}"
    assert at.session_state[pick] == at.selectbox(key=f"inside.index.{trained.run_id}").value  # the image above
    spec = next(s for s in chart_specs(at) if any(t["type"] == "scatter" for t in s["data"]))
    assert spec["layout"]["yaxis"]["scaleanchor"] == "x"  # PCA drawn to scale
    points = [t for t in _scatter(at) if "legendgroup" in t]
    assert sorted(i for t in points for i in t["customdata"]) == list(range(n))  # every test image, once
    crosses = [i for t in points if t["marker"]["symbol"] == "x" for i in t["customdata"]]
    assert sorted(crosses) == sorted(int(i) for i in em.wrong.nonzero()[0])
    for t in points:  # each point where core put it, in its true class's trace
        for i, x, y in zip(t["customdata"], t["x"], t["y"], strict=True):
            assert (x, y) == pytest.approx(tuple(em.coords[i]), abs=1e-3) and t["legendgroup"] == names[
                arrays["y_true"][i]
            ]
    # A click on a point (the chart's selection state) picks that image and rings it.
    other = next(i for i in range(n) if i != at.session_state[pick])
    at.session_state[f"inside.embed_chart.{trained.run_id}"] = {"selection": {"points": [{"customdata": other}]}}
    at.run()
    assert at.session_state[pick] == other
    assert [t["customdata"] for t in _scatter(at) if "legendgroup" not in t] == [[other]]
    # Or pick it below the chart, and open it in this page's tabs.
    index = n - 1
    at.selectbox(key=pick).set_value(index).run()
    ring = [t for t in _scatter(at) if "legendgroup" not in t]
    assert len(ring) == 1 and ring[0]["customdata"] == [index]
    at.button(key="inside.embed_open").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.radio(key="inside.source").value == "A test image"
    assert at.selectbox(key="inside.class").value == names[int(arrays["y_true"][index])]
    assert at.selectbox(key=f"inside.index.{trained.run_id}").value == index
    assert at.session_state["inside.tab"] == "Feature maps"  # the image opened in the first tab
    at.session_state["inside.tab"] = "All test images"
    at.run()
    # t-SNE: the same images, another picture, axes named for it.
    at.radio(key="inside.embed_method").set_value("tsne").run()
    assert not at.exception, [e.value for e in at.exception]
    spec = next(s for s in chart_specs(at) if any(t["type"] == "scatter" for t in s["data"]))
    assert spec["layout"]["xaxis"]["title"]["text"] == "t-SNE 1" and "scaleanchor" not in spec["layout"]["yaxis"]
    # The training images too: faded rings, one per training image of the run's own split, not selectable.
    at.toggle(key="inside.embed_train").set_value(True).run()
    assert not at.exception, [e.value for e in at.exception]
    rings = [t for t in _scatter(at) if t.get("name", "").endswith("· training")]
    assert sum(len(t["x"]) for t in rings) == trained.data["n_train"] and not any("customdata" in t for t in rings)
    assert f"Faded rings: the {trained.data['n_train']} training images" in texts(at)


def _rows(at) -> list[dict]:
    """The maps-on-one-row figures (their heatmaps are named after the methods), top to bottom."""
    return [s for s in chart_specs(at) if any(t.get("name", "").startswith("Edges (control)") for t in s["data"])]


def test_saliency_maps_on_one_row_and_the_sanity_check(open_page, trained, monkeypatch):
    from core.inside import SALIENCY_METHODS, open_run, saliency, sanity_check
    from core.store.runstore import RunStore

    at = open_page(PAGE, run_id=trained.run_id)
    assert not at.exception, [e.value for e in at.exception]
    assert "Sanity check" not in texts(at)  # nothing is computed until asked
    at.toggle(key="inside.saliency").set_value(True).run()
    assert not at.exception, [e.value for e in at.exception]
    (spec,) = _rows(at)
    maps = [t for t in spec["data"] if t["type"] == "heatmap"]
    assert [t["name"] for t in maps] == list(SALIENCY_METHODS.values())  # all five on one row
    assert all(np.array(t["z"], float).shape == (16, 16) for t in maps)
    # the numbers on the page are core's, for the image and class shown
    store = RunStore()
    index = at.selectbox(key=f"inside.index.{trained.run_id}").value
    image = store.load_arrays(trained.run_id)["test_images"][index]
    net = open_run(store, trained.run_id)
    chosen = at.selectbox(key="inside.cam_class").value
    ig = saliency(net, image, "ig", chosen)
    np.testing.assert_allclose(np.array(maps[3]["z"], float), ig.heatmap, atol=1e-4)
    assert f"add up to **{ig.completeness.total:.3f}**" in texts(at) and "**black image**" in texts(at)
    assert "block1_conv, dense, output" in texts(at)  # the randomised layers, named
    at.button(key="inside.sanity").click().run()
    assert not at.exception, [e.value for e in at.exception]
    check = sanity_check(net, image, chosen)
    first, second = _rows(at)
    assert first == spec  # the maps above are drawn again from the cache, unchanged
    after = [t for t in second["data"] if t["type"] == "heatmap"]
    assert len(after) == 5
    for row, trace in zip(check.rows, after, strict=True):
        np.testing.assert_allclose(np.array(trace["z"], float), row.randomised, atol=1e-4)
    titles = [a["text"] for a in second["layout"]["annotations"]]
    assert any(t.startswith("Edges (control)<br>1.00 · failed") for t in titles), titles
    failed = ", ".join(r.name for r in check.rows if r.verdict == "failed")
    assert f"**Failed** (about the same map with random weights): {failed}." in texts(at)
    assert "explains the image, not the model" in texts(at)
    from ui import resources

    def again(*args, **kwargs):
        raise AssertionError("computed again")

    monkeypatch.setattr(resources, "sanity_check", again)
    monkeypatch.setattr(resources, "saliency", again)
    at.run()  # a rerun keeps the check shown (asked once for this image and class) from the cache
    assert not at.exception, [e.value for e in at.exception]
    assert "explains the image, not the model" in texts(at) and len(_rows(at)) == 2


def test_the_sanity_check_on_a_vgg16_run(open_page, vgg_home):
    at = open_page(PAGE, run_id=vgg_home.run_id)
    at.toggle(key="inside.saliency").set_value(True).run()
    assert not at.exception, [e.value for e in at.exception]
    assert "block5_conv1, block5_conv2, block5_conv3, dense, output" in texts(at)
    at.button(key="inside.sanity").click().run()
    assert not at.exception, [e.value for e in at.exception]
    titles = [a["text"] for a in _rows(at)[1]["layout"]["annotations"]]
    assert len(titles) == 5 and titles[-1].startswith("Edges (control)<br>1.00 · failed")
