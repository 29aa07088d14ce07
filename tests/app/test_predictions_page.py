"""Predictions: test scores, the confusion matrix and its images, confident mistakes, and your own image."""

import io

import numpy as np
from apphelpers import chart_specs, texts
from PIL import Image

from core.results.evaluation import cell_indices


def test_no_run_explains_where_to_get_one(open_page, empty_home):
    at = open_page("pages/predictions.py")
    assert not at.exception
    assert any("No run yet: train one on the Train page" in i.value for i in at.info)


def test_scores_matrix_cells_and_mistakes(open_page, trained):
    from core.store.runstore import RunStore

    arrays = RunStore().load_arrays(trained.run_id)
    at = open_page("pages/predictions.py", run_id=trained.run_id)
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Test accuracy"] == f"{trained.test['accuracy']:.1%}"
    assert metrics["Test images"] == str(len(arrays["y_true"]))
    per_class = at.dataframe[0].value
    assert per_class["class"].tolist() == trained.data["classes"]
    heat = chart_specs(at)[0]["data"][0]
    assert heat["type"] == "heatmap" and heat["z"] == trained.test["confusion_matrix"]

    names = trained.data["classes"]
    for r, c in ((0, 0), (1, 2)):
        at.selectbox(key=f"pred.true.{trained.run_id}").set_value(names[r]).run()
        at.selectbox(key=f"pred.pred.{trained.run_id}").set_value(names[c]).run()
        assert not at.exception
        want = cell_indices((arrays["y_true"], arrays["probs"]), r, c)
        assert f"**{len(want)} test image" in texts(at)
        shown = sum(len(img.value) for img in at.image[: len(want)]) if want else 0
        assert shown == min(len(want), 24)
    wrong = trained.test["most_confident_wrong"]
    assert ("No test image was misclassified." in texts(at)) == (not wrong)


def test_a_click_on_a_cell_selects_it(open_page, trained):
    """The chart's selection state (what a browser click sends) picks the cell shown below it."""
    names = trained.data["classes"]
    at = open_page("pages/predictions.py", run_id=trained.run_id)
    at.selectbox(key=f"pred.true.{trained.run_id}").set_value(names[0]).run()
    at.selectbox(key=f"pred.pred.{trained.run_id}").set_value(names[0]).run()
    assert at.get("plotly_chart")[0].proto.id  # a widget: clicks come back as selection state
    at.session_state[f"pred.cm.{trained.run_id}"] = {"selection": {"points": [{"x": names[2], "y": names[1]}]}}
    at.run()
    assert not at.exception
    assert at.selectbox(key=f"pred.true.{trained.run_id}").value == names[1]
    assert at.selectbox(key=f"pred.pred.{trained.run_id}").value == names[2]


def test_your_own_image_gets_the_run_s_class_probabilities(open_page, trained, monkeypatch):
    from core.store.runstore import RunStore
    from ui import resources

    loads = []
    real = RunStore.load_model
    monkeypatch.setattr(RunStore, "load_model", lambda self, run_id: loads.append(run_id) or real(self, run_id))
    resources._model.clear()
    image = RunStore().load_arrays(trained.run_id)["test_images"][0]
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    at = open_page("pages/predictions.py", run_id=trained.run_id)
    at.file_uploader(key="pred.upload").upload("mine.png", buf.getvalue(), "image/png").run()
    assert not at.exception, [e.value for e in at.exception]
    bars = chart_specs(at)[-1]["data"][0]
    assert bars["y"] == trained.data["classes"]
    assert abs(sum(bars["x"]) - 1) < 1e-4
    probs = RunStore().load_arrays(trained.run_id)["probs"][0]
    np.testing.assert_allclose(bars["x"], probs, atol=1e-4)  # the same network, the same answer
    at.run()
    at.run()
    assert loads == [trained.run_id]  # loaded once, then shared from st.cache_resource

    at.file_uploader(key="pred.upload").clear().upload("notes.png", b"not an image", "image/png").run()
    assert not at.exception
    assert any("cannot be used" in e.value for e in at.error)


def test_a_run_without_a_saved_network_says_so(open_page, staged):
    at = open_page("pages/predictions.py", run_id=staged.run_id)
    buf = io.BytesIO()
    Image.new("RGB", (20, 20), "gray").save(buf, format="PNG")
    at.file_uploader(key="pred.upload").upload("grey.png", buf.getvalue(), "image/png").run()
    assert not at.exception
    assert any("no saved network file" in i.value for i in at.info)


def _reliability_chart(at) -> dict:
    return next(s for s in chart_specs(at) if any(t.get("name") == "the network" for t in s["data"]))


def test_the_reliability_diagram_and_the_calibration_error_before_and_after(open_page, trained):
    from core.results.calibration import calibrate
    from core.store.runstore import RunStore

    arrays = RunStore().load_arrays(trained.run_id)
    want = calibrate(arrays["y_true"], arrays["probs"], arrays["y_val"], arrays["val_probs"])  # independent of the page
    at = open_page("pages/predictions.py", run_id=trained.run_id)
    assert not at.exception, [e.value for e in at.exception]
    assert "Can you trust its confidence?" in texts(at)
    spec = _reliability_chart(at)
    bars = next(t for t in spec["data"] if t["type"] == "bar")
    assert sum(int(n) for n in bars["text"] if n) == len(arrays["y_true"])  # every test image in one bin
    assert [round(y, 6) for y in bars["y"]] == [round(a or 0, 6) for a in want.before.accuracy]
    assert any(t.get("name") == "after temperature scaling" for t in spec["data"])
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Calibration error"] == f"{want.before.ece:.1%}"
    assert metrics["After temperature scaling"] == f"{want.after.ece:.1%}"
    assert metrics["How often it is right"] == f"{trained.test['accuracy']:.1%}"
    page = texts(at)
    assert "When the network says" in page and f"T = {want.temperature:.2f}" in page
    assert "The test accuracy stays" in page


def test_a_run_whose_images_changed_shows_its_bins_and_why_there_is_no_temperature(open_page, trained):
    import json

    from core.store.runstore import RunRecord, RunStore

    store = RunStore()
    arrays = {k: v for k, v in store.load_arrays(trained.run_id).items() if "val" not in k}  # an older run
    data = json.loads(json.dumps(trained.to_dict()))
    data.update(run_id="changed000000001", key="changed000000001", created=trained.created + 2)
    data["data"]["fingerprint"] = "images-changed-since"
    store.save(RunRecord.from_dict(data), model=store.load_model(trained.run_id), arrays=arrays)
    at = open_page("pages/predictions.py", run_id="changed000000001")
    assert not at.exception, [e.value for e in at.exception]
    assert not any(t.get("name") == "after temperature scaling" for t in _reliability_chart(at)["data"])
    assert any("No temperature scaling: The images in" in i.value for i in at.info)
    assert "After temperature scaling" not in {m.label for m in at.metric}


def test_a_run_stored_before_scores_its_validation_images_once_with_the_shared_model(open_page, trained):
    import json

    from core.results.calibration import calibrate
    from core.store.runstore import RunRecord, RunStore

    store = RunStore()
    arrays = store.load_arrays(trained.run_id)
    data = json.loads(json.dumps(trained.to_dict()))
    data.update(run_id="older00000000001", key="older00000000001", created=trained.created + 3)
    store.save(
        RunRecord.from_dict(data),
        model=store.load_model(trained.run_id),
        arrays={k: v for k, v in arrays.items() if "val" not in k},
    )
    want = calibrate(arrays["y_true"], arrays["probs"], arrays["y_val"], arrays["val_probs"])
    at = open_page("pages/predictions.py", run_id="older00000000001")
    assert not at.exception, [e.value for e in at.exception]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["After temperature scaling"] == f"{want.after.ece:.1%}"  # the same model, the same split
    assert list((store.cache_dir / "validation").glob("older00000000001-*.npz"))  # kept for the next look


def test_the_images_most_likely_mislabelled_each_with_an_inside_link(open_page, trained):
    from core.results.mislabel import TOP_K
    from core.store.runstore import RunStore

    arrays = RunStore().load_arrays(trained.run_id)
    names = trained.data["classes"]
    # Independent of the engine: every held-out image's probability of its own label, lowest first.
    own = sorted(
        [(float(arrays["probs"][i, y]), "test", i) for i, y in enumerate(arrays["y_true"])]
        + [(float(arrays["val_probs"][i, y]), "val", i) for i, y in enumerate(arrays["y_val"])]
    )
    at = open_page("pages/predictions.py", run_id=trained.run_id)
    assert not at.exception, [e.value for e in at.exception]
    page = texts(at)
    assert "Most likely mislabelled" in page
    assert f"{len(arrays['y_val'])} validation images and {len(arrays['y_true'])} test images" in page
    shown = own[:TOP_K]
    for p, split, i in shown:
        y = int((arrays["y_true"] if split == "test" else arrays["y_val"])[i])
        word = "test" if split == "test" else "validation"
        assert f"labelled **{names[y]}**: {p:.0%}" in page and f"{word} #{i}" in page
    links = {el.proto.query_string for el in at.get("page_link") if el.proto.page == "inside"}
    for _, split, i in shown:
        want = f"run={trained.run_id}&image={i}" + ("&split=val" if split == "val" else "")
        assert want in links, (want, links)
    assert any(split == "val" for _, split, _ in shown)  # both splits are listed (and linked) here
