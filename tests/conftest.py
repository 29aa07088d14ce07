"""Shared test setup: a private run store and quiet TensorFlow for every test session."""

import os
import tempfile

# Before anything imports TensorFlow or the store.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
_HOME = tempfile.mkdtemp(prefix="cnnlab-tests-")
os.environ["CNNLAB_HOME"] = _HOME

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402


def write_tiny_dataset(root, classes=("dark", "striped", "bright"), per_class=12, size=16, seed=0):
    """A real folder of PNGs whose classes a tiny CNN can tell apart in a few epochs."""
    rng = np.random.default_rng(seed)
    for ci, name in enumerate(classes):
        d = root / name
        d.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            img = rng.integers(0, 60, (size, size, 3)).astype(np.uint8)
            if ci == 1:
                img[::4] = 230  # horizontal stripes
            elif ci == 2:
                img[:, ::4] = 230  # vertical stripes
            Image.fromarray(img).save(d / f"{name}_{i:02d}.png")
    return root


@pytest.fixture
def tiny_folder(tmp_path):
    return write_tiny_dataset(tmp_path / "tiny")


@pytest.fixture
def store(tmp_path):
    from core.store import RunStore

    return RunStore(tmp_path / "home")
