"""A tiny, real image dataset for tests (PNG class folders a small CNN can learn in a few epochs), the tiny
network's CLI flags, and running the CLI in-process."""

import numpy as np
from PIL import Image


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


# A network that trains on the tiny dataset in a second: the CLI flags for it.
TINY_FLAGS = (
    "--input-size",
    "16",
    "--blocks",
    "1",
    "--filters",
    "4",
    "--dense",
    "8",
    "--batch-size",
    "8",
    "--epochs",
    "1",
    "--precision",
    "float32",
)


def run_cli(capsys, *argv):
    """`python -m core ARGV...` in this process: (exit code, stdout, stderr)."""
    from core.cli import main

    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err
