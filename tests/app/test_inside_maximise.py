"""Inside the CNN (AppTest), the "Learned filters" tab: what a filter (or a class) wants to see, for both model kinds.

Nothing is grown until the button is pressed; the image grown is kept in the run's folder, so the next visit
(another session too) shows it at once; its numbers are the engine's own.
"""

import re

import pytest
from apphelpers import texts

from core.base.config import ModelConfig, TrainConfig

PAGE = "pages/inside.py"


def _kept(home, run_id) -> list:
    return sorted(p for p in (home / "runs" / run_id / "maximise").glob("*.npz") if not p.name.startswith("tests_"))


def test_a_filter_is_grown_only_when_asked_and_kept_with_the_run(open_page, trained, monkeypatch):
    from core.inside import open_run, stored_maximised
    from core.store.runstore import RunStore, default_home
    from ui import resources

    home = default_home()
    for f in _kept(home, trained.run_id):
        f.unlink()  # another test of this session may have grown one
    grown = []
    real = resources.maximise_run
    monkeypatch.setattr(resources, "maximise_run", lambda *a, **k: grown.append(a[2:5]) or real(*a, **k))
    at = open_page(PAGE, run_id=trained.run_id)
    assert not at.exception, [e.value for e in at.exception]
    assert "What does this filter want to see?" in texts(at)
    assert at.button(key="inside.mx_go").label == "What does this filter want to see?"
    assert "Nothing is computed until you ask" in texts(at) and grown == [] and not _kept(home, trained.run_id)
    at.number_input(key="inside.mx_filter").set_value(2).run()
    at.button(key="inside.mx_go").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert grown == [("block1_conv", 2, None)] and len(_kept(home, trained.run_id)) == 1
    store = RunStore(home)
    kept = stored_maximised(store, open_run(store, trained.run_id), "block1_conv", 2)
    assert kept is not None and kept.value > kept.test_mean
    assert f"filter 2 of block1_conv gives a mean activation of {kept.value:.3f}" in texts(at)
    assert "steps of gradient ascent" in texts(at)
    # A new visit shows it at once, with no button and nothing grown again.
    again = open_page(PAGE, run_id=trained.run_id)
    again.number_input(key="inside.mx_filter").set_value(2).run()
    assert not again.exception and grown == [("block1_conv", 2, None)]
    assert not [b for b in again.button if b.key == "inside.mx_go"]
    assert "kept from an earlier request" in texts(again)
    # The grid of the layer's first filters (4 in this network), grown with one progress bar.
    again.button(key="inside.mx_grid").click().run()
    assert not again.exception and sorted(g[1] for g in grown[1:]) == [0, 1, 3]  # filter 2 was kept
    assert len(_kept(home, trained.run_id)) == 4
    captions = [c for img in again.image for c in img.captions]
    grid = [c.split(":")[0] for c in captions if re.fullmatch(r"filter \d+(: .* the test images)?", c)]
    assert grid == [f"filter {i}" for i in range(4)]


def test_a_class_of_a_vgg16_transfer_run(open_page, vgg_home):
    from core.inside import open_run, stored_maximised
    from core.store.runstore import RunStore, default_home

    at = open_page(PAGE, run_id=vgg_home.run_id)
    assert not at.exception, [e.value for e in at.exception]
    assert at.selectbox(key="inside.mx_layer").options[0] == "block1_conv1"
    at.radio(key="inside.mx_kind").set_value("A class").run()
    at.selectbox(key="inside.mx_class").set_value(1).run()
    assert at.button(key="inside.mx_go").label == "What does this class look like to the network?"
    at.button(key="inside.mx_go").click().run()
    assert not at.exception, [e.value for e in at.exception]
    store = RunStore(default_home())
    kept = stored_maximised(store, open_run(store, vgg_home.run_id), class_index=1)
    assert kept is not None and kept.image.shape == (32, 32, 3)
    text = texts(at)
    assert f"score for {kept.class_name} is {kept.value:.2f}" in text and "BGR, mean subtracted" in text


@pytest.fixture
def vgg_home(tmp_path, monkeypatch, data_dir):
    """A store of this test's own with a VGG16 transfer run (random base weights: nothing to download)."""
    from core.store.runstore import RunStore
    from core.training.experiment import run_experiment

    home = tmp_path / "home"
    monkeypatch.setenv("CNNLAB_HOME", str(home))
    cfg = ModelConfig(model="vgg16", weights="none", input_size=32, dense_units=8)
    return run_experiment(str(data_dir), cfg, TrainConfig(epochs=1, batch_size=16), store=RunStore(home))
