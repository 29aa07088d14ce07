"""CNN Lab's bundled sample datasets and their deterministic generator.

No real geoscience image set can be downloaded with the app, so CNN Lab ships
three small **synthetic** datasets drawn by this package from documented
geological cues (see each module's docstring and each dataset's README):

================  ===========================================  ===========  =======
dataset           classes (label order)                        images       mode
================  ===========================================  ===========  =======
thin_sections     sandstone, limestone, shale, granite, basalt  5 x 200     RGB
seismic_facies    parallel, channel_fill, levee_wedge,          4 x 150     L (gray)
                  chaotic_mtd
drill_core        intact, fractured, highly_fractured           3 x 60      RGB
================  ===========================================  ===========  =======

Each image depends only on (dataset, seed, class, index) and the knobs, so
the shipped files regenerate byte for byte, and a larger variant (more images
per class) starts with exactly the shipped images::

    python -m synth                      # regenerate sample_data/ exactly
    python -m synth --dataset thin_sections --per-class 500 --out /tmp/big
    python -m synth --dataset drill_core --overlap 0.5 --noise 2 --out /tmp/hard

Python API: :func:`generate_dataset`, :func:`generate_all`, :func:`make_image`.

Knobs (the same for every dataset):

* ``image_size``: output height = width in pixels. Scenes are drawn in
  field-of-view units, so a larger size re-renders the same rock in more detail.
* ``per_class``: images per class.
* ``noise``: multiplies the sensor / seismic noise (0 = none, 1 = shipped).
* ``overlap``: 0 = the shipped class separation; toward 1 every class's
  parameter ranges move to the shared middle, so classes look more alike
  (a harder variant).

No TensorFlow here; NumPy, SciPy and Pillow only.
"""

from __future__ import annotations

import multiprocessing
import os
import re
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from core.base.config import ConfigError
from synth import drill_core, seismic_facies, thin_sections
from synth._common import image_streams, png_bytes, to_uint8
from synth.datasheet import index_markdown, readme_markdown

__all__ = [
    "DATASETS",
    "DEFAULT_SEED",
    "SAMPLE_DATA_DIR",
    "DatasetSpec",
    "generate_all",
    "generate_dataset",
    "image_filename",
    "make_image",
    "png_bytes",
]

DEFAULT_SEED = 42
SAMPLE_DATA_DIR = Path(__file__).resolve().parents[1] / "sample_data"


@dataclass(frozen=True)
class DatasetSpec:
    """What a bundled dataset is and how to draw it.

    Attributes:
        name: folder name under ``sample_data/``.
        dataset_id: fixed number mixed into every image's seed (never reuse).
        classes: class names in label order (written to ``classes.txt``).
        per_class: images per class in the shipped version.
        mode: PNG mode, "RGB" or "L" (grayscale; the loader converts to RGB).
        render: ``render(class_id, params_rng, pixels_rng, size, noise, overlap)``
            returning floats in [0, 1] of shape (size, size, 3) or (size, size).
        module: the generator module; its docstring explains the cues.
    """

    name: str
    dataset_id: int
    classes: tuple[str, ...]
    per_class: int
    mode: str
    render: Callable[..., np.ndarray]
    module: Any


DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec("thin_sections", 1, thin_sections.CLASSES, 200, "RGB", thin_sections.render, thin_sections),
        DatasetSpec("seismic_facies", 2, seismic_facies.CLASSES, 150, "L", seismic_facies.render, seismic_facies),
        DatasetSpec("drill_core", 3, drill_core.CLASSES, 60, "RGB", drill_core.render, drill_core),
    )
}


def _fail(func: str, name: str, expected: str, got: Any) -> NoReturn:
    raise ConfigError(f"The '{name}' parameter of {func} must be {expected}. Got {got!r} instead.")


def _check_knobs(func: str, seed: Any, image_size: Any, noise: Any, overlap: Any) -> None:
    def is_int(v: Any) -> bool:
        return isinstance(v, (int, np.integer)) and not isinstance(v, bool)

    def is_num(v: Any) -> bool:
        return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)

    if not is_int(seed) or not 0 <= seed < 2**32:
        _fail(func, "seed", "an integer in [0, 2**32)", seed)
    if not is_int(image_size) or not 16 <= image_size <= 512:
        _fail(func, "image_size", "an integer in [16, 512]", image_size)
    if not is_num(noise) or not 0 <= noise <= 5:
        _fail(func, "noise", "a number in [0, 5]", noise)
    if not is_num(overlap) or not 0 <= overlap <= 1:
        _fail(func, "overlap", "a number in [0, 1]", overlap)


def _spec(func: str, name: str) -> DatasetSpec:
    if name not in DATASETS:
        _fail(func, "name", "one of " + ", ".join(repr(k) for k in DATASETS), name)
    return DATASETS[name]


def image_filename(class_name: str, index: int) -> str:
    """File name of image ``index`` (0-based) of a class: ``<class>_<index:04d>.png``."""
    return f"{class_name}_{index:04d}.png"


def make_image(
    name: str,
    class_name: str,
    index: int,
    *,
    seed: int = DEFAULT_SEED,
    image_size: int = 64,
    noise: float = 1.0,
    overlap: float = 0.0,
) -> np.ndarray:
    """One image of a bundled dataset, exactly as :func:`generate_dataset` writes it.

    Args:
        name: dataset name, e.g. "thin_sections".
        class_name: one of the dataset's classes, e.g. "granite".
        index: image number within the class, 0-based.
        seed, image_size, noise, overlap: the generator's knobs.

    Returns:
        uint8 array, (image_size, image_size, 3) for RGB datasets or
        (image_size, image_size) for grayscale ones (seismic_facies).
    """
    spec = _spec("make_image", name)
    _check_knobs("make_image", seed, image_size, noise, overlap)
    if class_name not in spec.classes:
        _fail("make_image", "class_name", "one of " + ", ".join(repr(c) for c in spec.classes), class_name)
    if not isinstance(index, (int, np.integer)) or isinstance(index, bool) or index < 0:
        _fail("make_image", "index", "a non-negative integer", index)
    class_id = spec.classes.index(class_name)
    params, pixels = image_streams(int(seed), spec.dataset_id, class_id, int(index))
    img = spec.render(class_id, params, pixels, int(image_size), float(noise), float(overlap))
    return to_uint8(img)


def _png_for(job: tuple[str, str, int, int, int, float, float]) -> bytes:
    """PNG bytes of one image; top-level so worker processes can run it."""
    name, class_name, index, seed, image_size, noise, overlap = job
    pixels = make_image(name, class_name, index, seed=seed, image_size=image_size, noise=noise, overlap=overlap)
    return png_bytes(pixels)


def _render_all(jobs: list[tuple], workers: int) -> Iterator[bytes]:
    if workers <= 1 or len(jobs) < 50:
        return map(_png_for, jobs)
    # "spawn": never fork a process that may hold TensorFlow or Streamlit threads.
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
    with pool:
        return iter(list(pool.map(_png_for, jobs, chunksize=25)))


def generate_dataset(
    name: str,
    out_dir: str | Path = SAMPLE_DATA_DIR,
    *,
    seed: int = DEFAULT_SEED,
    per_class: int | None = None,
    image_size: int = 64,
    noise: float = 1.0,
    overlap: float = 0.0,
    jobs: int = 1,
) -> dict[str, Any]:
    """Write one dataset to ``out_dir/<name>/``: class folders, classes.txt, README.md.

    Defaults reproduce the shipped ``sample_data/<name>`` byte for byte.
    Earlier PNGs of this dataset that the new settings do not produce (for
    example after lowering ``per_class``) are removed, so the folder always
    matches its datasheet; other files are left alone.

    Args:
        name: "thin_sections", "seismic_facies" or "drill_core".
        out_dir: the root folder (the dataset goes in a sub-folder ``name``).
        seed: random seed; each image's stream is derived from
            ``(seed, dataset, class, index)``.
        per_class: images per class; ``None`` uses the shipped count.
        image_size: height = width in pixels.
        noise: noise multiplier (1 = shipped).
        overlap: class overlap in [0, 1] (0 = shipped).
        jobs: worker processes; the files are identical for any value.

    Returns:
        A summary dict: ``name``, ``path``, ``classes``, ``counts`` (per
        class), ``images``, ``image_size``, ``mode``, ``seed``,
        ``per_class``, ``noise``, ``overlap``, ``seconds``.
    """
    spec = _spec("generate_dataset", name)
    _check_knobs("generate_dataset", seed, image_size, noise, overlap)
    if per_class is None:
        per_class = spec.per_class
    if not isinstance(per_class, (int, np.integer)) or isinstance(per_class, bool) or not 1 <= per_class <= 100_000:
        _fail("generate_dataset", "per_class", "an integer in [1, 100000] or None", per_class)
    if not isinstance(jobs, int) or isinstance(jobs, bool) or not 1 <= jobs <= (os.cpu_count() or 1) * 4:
        _fail("generate_dataset", "jobs", "a positive integer (worker processes)", jobs)

    start = time.perf_counter()
    root = Path(out_dir) / name
    for class_name in spec.classes:
        folder = root / class_name
        folder.mkdir(parents=True, exist_ok=True)
        wanted = {image_filename(class_name, i) for i in range(per_class)}
        ours = re.compile(rf"^{re.escape(class_name)}_\d+\.png$")
        for old in folder.glob("*.png"):
            if ours.match(old.name) and old.name not in wanted:
                old.unlink()
    todo = [
        (name, c, i, int(seed), int(image_size), float(noise), float(overlap))
        for c in spec.classes
        for i in range(per_class)
    ]
    for job, data in zip(todo, _render_all(todo, jobs), strict=True):
        path = root / job[1] / image_filename(job[1], job[2])
        # Rewrite only what changed: identical images keep their file times.
        if not path.exists() or path.read_bytes() != data:
            path.write_bytes(data)
    counts = {c: per_class for c in spec.classes}
    (root / "classes.txt").write_text("".join(c + "\n" for c in spec.classes), encoding="utf-8")
    info = {
        "name": name,
        "path": str(root),
        "classes": list(spec.classes),
        "counts": counts,
        "images": sum(counts.values()),
        "image_size": int(image_size),
        "mode": spec.mode,
        "seed": int(seed),
        "per_class": int(per_class),
        "noise": float(noise),
        "overlap": float(overlap),
    }
    in_repo = Path(out_dir).resolve() == SAMPLE_DATA_DIR.resolve()
    out_label = "sample_data" if in_repo else str(out_dir)
    shipped = (seed, per_class, image_size, noise, overlap) == (DEFAULT_SEED, spec.per_class, 64, 1.0, 0.0)
    readme = readme_markdown(spec, info, out_label, shipped=shipped)
    (root / "README.md").write_text(readme, encoding="utf-8")
    info["seconds"] = round(time.perf_counter() - start, 2)
    return info


def generate_all(out_dir: str | Path = SAMPLE_DATA_DIR, **knobs: Any) -> list[dict[str, Any]]:
    """Write every bundled dataset (and an index README) under ``out_dir``.

    ``knobs`` are passed to :func:`generate_dataset` (``seed``, ``per_class``,
    ``image_size``, ``noise``, ``overlap``, ``jobs``).
    """
    infos = [generate_dataset(name, out_dir, **knobs) for name in DATASETS]
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    (Path(out_dir) / "README.md").write_text(index_markdown(infos), encoding="utf-8")
    return infos
