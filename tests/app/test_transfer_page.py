"""The Transfer learning page (AppTest): explanation and parameters, weight sources, controls, a real comparison."""

import pytest
from apphelpers import chart_specs, started, started_ids, texts

PAGE = "pages/transfer.py"


@pytest.fixture(autouse=True)
def no_imagenet_file(tmp_path, monkeypatch, private_worker):
    """This test's own worker and store, and an empty Keras cache: the ImageNet file is always missing."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    return private_worker


def metrics(at) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_renders_without_runs_with_the_course_numbers(open_page):
    at = open_page(PAGE)
    assert not at.exception
    assert at.title[0].value == "Transfer learning"
    assert "GlobalAveragePooling2D" in texts(at) and "No comparison yet" in texts(at)
    # thin_sections has 5 classes: the course's head at 64x64, Dense 128.
    m = metrics(at)
    assert m["Trainable (the head)"] == "66,309" and m["Frozen (the VGG16 base)"] == "14,714,688"
    base = at.dataframe[1].value  # the expander: the frozen base's layers
    assert len(base) == 18 and list(base["Type"]).count("Conv2D") == 13
    assert not chart_specs(at)


def test_weight_sources_show_their_status_without_raising(open_page, tmp_path):
    at = open_page(PAGE)
    assert "not in the Keras cache" in "\n".join(w.value for w in at.warning)  # imagenet, file missing
    assert "vgg16.preprocess_input" in texts(at)
    at.selectbox(key="transfer.weights").set_value("none").run()
    assert not at.exception
    assert "not transfer learning" in "\n".join(s.value for s in at.success)
    at.selectbox(key="transfer.weights").set_value("file").run()
    at.text_input(key="transfer.weights_path").set_value(str(tmp_path / "nope.h5")).run()
    assert not at.exception
    assert "does not exist" in "\n".join(w.value for w in at.warning)


def test_sliders_move_and_the_parameters_follow(open_page):
    at = open_page(PAGE)
    at.select_slider(key="transfer.dense").set_value(64).run()
    at.slider(key="transfer.input_size").set_value(32).run()
    at.slider(key="transfer.epochs").set_value(3).run()
    at.slider(key="transfer.ft_epochs").set_value(2).run()
    assert not at.exception
    assert at.select_slider(key="transfer.ft_lr").value == 1e-5
    # 512*64+64 + 64*5+5: the head depends on Dense units, not on the input size.
    assert metrics(at)["Trainable (the head)"] == f"{512 * 64 + 64 + 64 * 5 + 5:,}"
    assert metrics(at)["Frozen (the VGG16 base)"] == "14,714,688"


def test_a_missing_imagenet_file_or_dataset_is_an_error_message(open_page, tmp_path):
    at = open_page(PAGE, dataset=str(tmp_path / "no_such_folder"))
    at.button(key="transfer.start").click().run()
    assert not at.exception
    assert f"No dataset at '{tmp_path / 'no_such_folder'}'" in "\n".join(e.value for e in at.error)
    assert started(at, "transfer") is None


def test_compare_on_a_tiny_dataset(open_page, data_dir, private_worker):
    at = open_page(PAGE, dataset=str(data_dir))
    at.selectbox(key="transfer.weights").set_value("none").run()
    at.slider(key="transfer.input_size").set_value(32).run()
    at.select_slider(key="transfer.dense").set_value(16).run()
    at.slider(key="transfer.epochs").set_value(2).run()
    at.button(key="transfer.start").click().run()
    assert not at.exception, [e.value for e in at.exception]
    run = dict(zip(("transfer", "scratch"), started_ids(at, "transfer"), strict=True))  # the order they start in
    assert at.get("progress")
    for role in ("scratch", "transfer"):
        private_worker.wait(private_worker.get(run[role]), timeout=300)
    at.run()
    assert not at.exception
    assert [p.proto.text for p in at.get("progress")] == ["Scratch CNN: trained", "VGG16 transfer: trained"]
    table = at.dataframe[-1].value
    assert list(table["Model"]) == ["Scratch CNN", "VGG16 transfer"]
    assert table["Frozen params"][1] == 14_714_688 and table["Frozen params"][0] == 0
    assert table["Trainable params"][1] == 512 * 16 + 16 + 16 * 3 + 3  # tiny data has 3 classes
    names = [t["name"] for t in chart_specs(at)[0]["data"]]
    assert names == ["Scratch CNN", "VGG16 transfer"]
    transfer_id = private_worker.get(run["transfer"]).result.run_id
    at.button(key="transfer.select").click().run()
    assert at.session_state["run_id"] == transfer_id

    at.button(key="transfer.start").click().run()  # the same again: straight from the store
    assert [p.proto.text for p in at.get("progress")] == [
        "Scratch CNN: cached (stored run, not retrained)",
        "VGG16 transfer: cached (stored run, not retrained)",
    ]
