"""Shareable settings on the Architecture and Train pages (AppTest): the URL holds every control and a
link opens with them; the JSON file downloads and loads; a malformed link or file is refused with a
message and the controls stay as they were."""

import json

from apphelpers import APP, TIMEOUT

from core.base.config import AugmentConfig, ModelConfig, TrainConfig
from core.base.config_codec import configs_json, decode_model, decode_train, encode_model, encode_train

MODEL = ModelConfig(
    input_size=48,
    num_classes=3,
    blocks=2,
    filters=8,
    kernel_size=5,
    pool_size=3,
    padding="same",
    batchnorm=True,
    dense_units=64,
    dropout=0.3,
)
TRAIN = TrainConfig(
    optimizer="sgd",
    learning_rate=0.01,
    loss="sparse",
    epochs=7,
    batch_size=16,
    val_split=0.25,
    early_stopping=3,
    monitor="val_accuracy",
    restore_best=False,
    seed=7,
    augment=AugmentConfig(rotation=15, hflip=True, zoom=0.2, fill_mode="reflect"),
)


def _param(at, name):
    v = at.query_params.get(name)
    return v[0] if isinstance(v, list) else v


def _open_link(page, data_dir, **params):
    """A fresh browser opening a link: the query parameters are there before the first run."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.session_state["dataset"] = str(data_dir)
    at.query_params.update(params)
    at.run()
    at.switch_page(page)
    at.query_params.update(params)  # a page switch clears them, as in a browser; the link is for this page
    at.run()
    return at


def _errors(at) -> str:
    return "\n".join(e.value for e in at.error)


def test_the_architecture_controls_round_trip_through_the_url(open_page, data_dir):
    at = open_page("pages/architecture.py", dataset=str(data_dir), model_cfg=MODEL)
    assert not at.exception
    assert at.session_state["model_cfg"] == MODEL  # the widgets took every value from the config
    text = _param(at, "model")
    assert decode_model(text) == MODEL and text == encode_model(MODEL)
    link = _open_link("pages/architecture.py", data_dir, model=text)
    assert not link.exception, [e.value for e in link.exception]
    assert link.session_state["model_cfg"] == MODEL
    assert link.slider(key="arch.kernel_size").value == 5 and link.toggle(key="arch.batchnorm").value is True
    link.slider(key="arch.kernel_size").set_value(3).run()  # a change goes into the URL
    assert decode_model(_param(link, "model")) == MODEL.replace(kernel_size=3)


def test_the_train_controls_round_trip_through_the_url(open_page, data_dir, idle_worker):
    at = open_page("pages/train.py", dataset=str(data_dir), train_cfg=TRAIN)
    assert not at.exception, [e.value for e in at.exception]
    assert at.session_state["train_cfg"] == TRAIN
    text = _param(at, "train")
    assert decode_train(text) == TRAIN and decode_train(encode_train(TRAIN)) == TRAIN
    link = _open_link("pages/train.py", data_dir, train=text)
    assert not link.exception, [e.value for e in link.exception]
    assert link.session_state["train_cfg"] == TRAIN
    assert link.slider(key="train.epochs").value == 7 and link.checkbox(key="train.aug.hflip").value is True


def test_a_malformed_link_is_refused_and_the_controls_stay(data_dir, idle_worker):
    at = _open_link("pages/architecture.py", data_dir, model="dropout:7,blocks:2")
    assert not at.exception
    assert "This link's settings were not used" in _errors(at) and "'dropout'" in _errors(at)
    assert at.session_state["model_cfg"].dropout == ModelConfig().dropout
    at = _open_link("pages/train.py", data_dir, train="colour:red")
    assert not at.exception and "not a setting:value pair" in _errors(at)
    assert at.session_state["train_cfg"] == TrainConfig()


def test_settings_download_and_upload(open_page, data_dir, idle_worker):
    at = open_page("pages/train.py", dataset=str(data_dir), model_cfg=MODEL, train_cfg=TRAIN)
    assert not at.exception
    before = (at.session_state["model_cfg"], at.session_state["train_cfg"])
    at.file_uploader(key="share.train.upload").upload(
        "bad.json", b'{"model": {"dropout": 3}, "train": {}}', "application/json"
    ).run()
    assert not at.exception and "These settings were not loaded" in _errors(at) and "'dropout'" in _errors(at)
    assert (at.session_state["model_cfg"], at.session_state["train_cfg"]) == before
    other_model, other_train = MODEL.replace(dropout=0.1, blocks=1), TRAIN.replace(epochs=3, seed=99)
    at.file_uploader(key="share.train.upload").upload(
        "ok.json", configs_json(other_model, other_train).encode(), "application/json"
    ).run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.session_state["model_cfg"] == other_model and at.session_state["train_cfg"] == other_train
    assert at.slider(key="train.epochs").value == 3  # the controls follow
    at.run()  # the uploaded file stays in the widget: it is not applied again over later changes
    assert at.session_state["train_cfg"] == other_train
    # the download holds exactly what the page shows
    data = json.loads(configs_json(at.session_state["model_cfg"], at.session_state["train_cfg"]))
    assert data["train"]["seed"] == 99 and data["model"]["blocks"] == 1
