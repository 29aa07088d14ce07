"""Architecture: sliders build the network; the layer table, totals and diagram follow; problems sit by their slider."""

import pytest
from apphelpers import chart_specs, texts

from core.base.config import COURSE_PARAMS, MODEL_LABELS, RANGES, WEIGHT_SOURCE_LABELS, WEIGHT_SOURCES, ModelConfig


def _table(at):
    return at.table[0].value


def _error_after(at, widget_key: str) -> str | None:
    """The error drawn right after a widget in the controls column (its slot), if any."""
    controls = list(at.columns[0])
    for i, el in enumerate(controls):
        if getattr(el, "key", None) == widget_key:
            nxt = controls[i + 1] if i + 1 < len(controls) else None
            return nxt.value if type(nxt).__name__ == "Error" else None
    raise AssertionError(f"no widget {widget_key}")


def test_the_course_network_has_the_course_parameter_count(open_page, five_class_dir):
    at = open_page("pages/architecture.py", dataset=str(five_class_dir))
    assert not at.exception
    table = _table(at)
    assert table["layer"].tolist() == [
        "block1_conv",
        "block1_pool",
        "block2_conv",
        "block2_pool",
        "block3_conv",
        "block3_pool",
        "flatten",
        "dense",
        "dropout",
        "output",
    ]
    assert table.set_index("layer").loc["block1_conv", "how the count is made"].startswith("32 x (3x3x3 + 1) = 896")
    assert table.set_index("layer").loc["flatten", "output shape"] == "4608"
    assert table["receptive field"].tolist()[:6] == [
        "3×3 px (jump 1)",
        "4×4 px (jump 2)",
        "8×8 px (jump 2)",
        "10×10 px (jump 4)",
        "18×18 px (jump 4)",
        "22×22 px (jump 8)",
    ]
    assert table.set_index("layer").loc["dense", "receptive field"] == "whole image"
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Total parameters"] == f"{COURSE_PARAMS:,}"
    assert "This is the course's network" in texts(at)
    # The feature-map diagram: input, 3 x (conv, pool), flatten, dense, output.
    boxes = [t for t in chart_specs(at)[0]["data"] if t.get("fill") == "toself"]
    assert [b["name"] for b in boxes][:3] == ["input", "block1_conv", "block1_pool"]


def test_the_table_follows_the_sliders(open_page, five_class_dir):
    at = open_page("pages/architecture.py", dataset=str(five_class_dir))
    at.slider(key="arch.blocks").set_value(2).run()
    at.select_slider(key="arch.filters").set_value(16).run()
    at.radio(key="arch.padding").set_value("same").run()
    at.toggle(key="arch.batchnorm").set_value(True).run()
    at.select_slider(key="arch.dense_units").set_value(64).run()
    at.slider(key="arch.dropout").set_value(0.3).run()
    assert not at.exception
    expected = ModelConfig(blocks=2, filters=16, padding="same", batchnorm=True, dense_units=64, dropout=0.3)
    assert at.session_state["model_cfg"] == expected
    from core.models.layer_table import layer_table

    want = layer_table(expected)
    assert {m.label: m.value for m in at.metric}["Total parameters"] == f"{want.total_params:,}"
    assert {m.label: m.value for m in at.metric}["Non-trainable"] == f"{want.non_trainable_params:,}"
    assert "block2_bn" in _table(at)["layer"].tolist()


@pytest.mark.parametrize(
    ("widget", "kind", "value", "field", "phrase"),
    [
        ("arch.blocks", "slider", 5, "arch.blocks", "Block 5"),
        ("arch.kernel_size", "slider", 9, "arch.kernel_size", "Block 1: a 9x9 kernel does not fit"),
        ("arch.pool_size", "slider", 4, "arch.blocks", "pooling cannot shrink"),
    ],
)
def test_an_impossible_network_is_explained_next_to_its_slider(
    open_page, five_class_dir, widget, kind, value, field, phrase
):
    cfg = ModelConfig(input_size=8, blocks=1) if "kernel" in widget else ModelConfig()
    state = {"dataset": str(five_class_dir), "model_cfg": cfg}
    at = open_page("pages/architecture.py", **state)
    getattr(at, kind)(key=widget).set_value(value).run()
    assert not at.exception
    message = _error_after(at, field)
    assert message is not None and phrase in message, [e.value for e in at.error]
    assert not at.table  # no table for a network that cannot be built
    assert any("cannot be built" in w.value for w in at.warning)


def test_input_size_problem_for_vgg16_sits_by_the_input_slider(open_page, five_class_dir):
    at = open_page(
        "pages/architecture.py", dataset=str(five_class_dir), model_cfg=ModelConfig(model="vgg16", input_size=16)
    )
    assert not at.exception
    assert "VGG16 needs inputs of at least 32x32" in (_error_after(at, "arch.input_size") or "")


def test_vgg16_shows_its_base_as_one_expandable_row_and_the_weight_source(open_page, five_class_dir):
    at = open_page("pages/architecture.py", dataset=str(five_class_dir))
    at.radio(key="arch.model").set_value("vgg16").run()
    assert not at.exception
    table = _table(at)
    assert table["layer"].tolist() == ["vgg16", "gap", "dense", "dropout", "output"]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Non-trainable"] == "14,714,688"  # VGG16's frozen conv base
    inside = at.table[1].value
    assert len(inside) == 18 and inside["layer"].tolist()[:3] == ["block1_conv1", "block1_conv2", "block1_pool"]
    assert at.selectbox(key="arch.weights").value == "imagenet"
    assert at.radio(key="arch.model").options[1] == MODEL_LABELS["vgg16"]  # core's labels, as the CLI shows them
    # The labels are core.base.config's; the status is core.models.weight_sources' check (the Keras cache may hold
    # the file or not).
    assert at.selectbox(key="arch.weights").options[:3] == [WEIGHT_SOURCE_LABELS[w] for w in WEIGHT_SOURCES]
    assert at.success or at.warning
    at.selectbox(key="arch.weights").set_value("none").run()
    assert not at.exception and at.session_state["model_cfg"].weights == "none"
    # Back to the CNN: its sliders come back where they were.
    at.radio(key="arch.model").set_value("cnn").run()
    assert at.slider(key="arch.blocks").value == 3 and _table(at)["layer"].tolist()[0] == "block1_conv"


def test_a_weights_file_on_the_server_is_checked_and_kept(open_page, five_class_dir, tmp_path):
    at = open_page("pages/architecture.py", dataset=str(five_class_dir), model_cfg=ModelConfig(model="vgg16"))
    at.selectbox(key="arch.weights").set_value("file").run()
    assert not at.exception
    assert at.session_state["model_cfg"].weights == "imagenet"  # nothing typed yet: the config keeps its weights
    missing = str(tmp_path / "nope.weights.h5")
    at.text_input(key="arch.weights_path").set_value(missing).run()
    assert not at.exception
    assert at.session_state["model_cfg"].weights == missing
    assert any("does not exist" in w.value for w in at.warning)


def test_configs_beyond_the_sliders_usual_range_still_show(open_page, five_class_dir):
    """A run made with the CLI or the lab can hold values the sliders do not usually offer."""
    odd = ModelConfig(input_size=200, blocks=1, filters=3, kernel_size=11, pool_size=6, dense_units=100, dropout=0.95)
    at = open_page("pages/architecture.py", dataset=str(five_class_dir), model_cfg=odd)
    assert not at.exception, [e.value for e in at.exception]
    assert at.session_state["model_cfg"] == odd
    # Each slider's bounds are the config's table (core.base.config.RANGES): its valid minimum and usual maximum,
    # raised to the stored value when that is beyond it.
    assert (at.slider(key="arch.blocks").min, at.slider(key="arch.blocks").max) == (RANGES["blocks"].lo, 5)
    assert at.slider(key="arch.kernel_size").max == 11 and at.slider(key="arch.pool_size").max == 6
    assert at.slider(key="arch.dropout").max == 0.95


def test_slider_bounds_come_from_the_config_table(open_page, five_class_dir):
    at = open_page("pages/architecture.py", dataset=str(five_class_dir))
    for name in ("blocks", "kernel_size", "pool_size", "dropout"):
        s = at.slider(key="arch." + name)
        assert (s.min, s.max) == (RANGES[name].lo, RANGES[name].top), name
    assert RANGES["kernel_size"].top == 9 and RANGES["dropout"].top == 0.9  # the usual maxima, below the valid ones
