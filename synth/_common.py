"""Building blocks shared by the three sample-data generators.

Everything here is plain NumPy/SciPy and deterministic: the same inputs give
the same floats, and :func:`png_bytes` turns the same pixels into the same
file bytes (no metadata, no timestamps, fixed zlib settings).

Conventions used by the generators:

* Geometry is drawn in *field-of-view units*: the image spans [0, 1] in both
  directions, so a scene drawn at 64 px and at 128 px is the same scene.
* Each image gets two random streams from one ``SeedSequence``: ``params``
  for the scene (sizes, positions, minerals, colours) and ``pixels`` for
  pixel-level texture and sensor noise. Only the second depends on the image
  size, so a larger ``image_size`` re-renders the same rock, not a new one.
* Scenes are rendered at ``SUPERSAMPLE`` times the output size and averaged
  down, which anti-aliases thin features (laminae, fractures, grain rims).
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping

import numpy as np
from PIL import Image
from scipy import ndimage

SUPERSAMPLE = 2

# Range = (low, high) of a uniform draw; a class's ranges live in a dict.
Range = tuple[float, float]


def image_streams(
    seed: int, dataset_id: int, class_id: int, index: int
) -> tuple[np.random.Generator, np.random.Generator]:
    """The two random streams of one image: ``(params, pixels)``.

    The image depends only on ``(seed, dataset_id, class_id, index)`` (and the
    knobs), never on how many other images are generated, so a bigger variant
    of a dataset starts with exactly the shipped images.
    """
    root = np.random.SeedSequence([seed, dataset_id, class_id, index])
    params_seq, pixels_seq = root.spawn(2)
    return np.random.default_rng(params_seq), np.random.default_rng(pixels_seq)


def blend_ranges(table: Mapping[str, Mapping[str, Range]], class_name: str, overlap: float) -> dict[str, Range]:
    """The class's parameter ranges moved ``overlap`` of the way to the shared middle.

    ``table[class][param] = (lo, hi)``. The middle of a parameter is the mean
    of its ranges over all classes. ``overlap=0`` keeps the class's own
    ranges; ``overlap=1`` gives every class the same ranges, so only the
    renderer's structure (not its numbers) still tells the classes apart.
    """
    own = table[class_name]
    out: dict[str, Range] = {}
    for key, (lo, hi) in own.items():
        mid_lo = float(np.mean([table[c][key][0] for c in table]))
        mid_hi = float(np.mean([table[c][key][1] for c in table]))
        out[key] = (lo + overlap * (mid_lo - lo), hi + overlap * (mid_hi - hi))
    return out


def draw(rng: np.random.Generator, ranges: Mapping[str, Range]) -> dict[str, float]:
    """One uniform value per parameter, in a fixed (sorted) order."""
    return {k: float(rng.uniform(*ranges[k])) for k in sorted(ranges)}


def pixel_grid(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates ``(x, y)`` in field-of-view units, each (n, n)."""
    c = (np.arange(n, dtype=np.float64) + 0.5) / n
    y, x = np.meshgrid(c, c, indexing="ij")
    return x, y


def smooth_noise(rng: np.random.Generator, n: int, sigma_fov: float) -> np.ndarray:
    """Gaussian-filtered white noise with unit standard deviation, (n, n), periodic.

    ``sigma_fov`` is the correlation length in field-of-view units, so the
    field looks the same at every resolution. Broad fields are filtered on a
    coarser grid and interpolated up: the same look at a fraction of the cost.
    """
    sigma_px = max(sigma_fov * n, 0.3)
    step = max(int(sigma_px // 4), 1)
    while n % step:
        step -= 1
    white = rng.standard_normal((n // step, n // step))
    field = ndimage.gaussian_filter(white, sigma=sigma_px / step, mode="wrap")
    if step > 1:
        field = ndimage.zoom(field, step, order=1, mode="grid-wrap", grid_mode=True)
    std = field.std()
    return field / std if std > 0 else field


def downsample(img: np.ndarray, factor: int) -> np.ndarray:
    """Box-average ``factor x factor`` blocks (anti-aliasing after supersampling)."""
    if factor == 1:
        return img
    h, w = img.shape[:2]
    shape = (h // factor, factor, w // factor, factor) + img.shape[2:]
    return img.reshape(shape).mean(axis=(1, 3))


def blur(img: np.ndarray, sigma_px: float) -> np.ndarray:
    """Gaussian blur of the spatial axes only (out-of-focus optics)."""
    if sigma_px <= 0.05:
        return img
    sigma = (sigma_px, sigma_px) + (0,) * (img.ndim - 2)
    return ndimage.gaussian_filter(img, sigma=sigma, mode="reflect")


class Windows:
    """Square pixel windows around many objects at once, for vectorised drawing.

    Drawing grains one by one in a Python loop costs ~0.2 ms each and a thin
    section has a hundred or more. Here a group of objects shares one window
    size and is evaluated as (k, w, w) arrays.

    Attributes:
        dx, dy: offsets (field-of-view units) of each window pixel from its
            object's centre, broadcastable to (k, w, w).
        flat: flat pixel index of each window pixel, (k, w, w).
        inside: window pixel lies in the image, (k, w, w).
    """

    def __init__(self, n: int, centres: np.ndarray, reach: float) -> None:
        centres = np.asarray(centres, dtype=np.float64).reshape(-1, 2)
        half = int(math.ceil(reach * n)) + 1
        offs = np.arange(-half, half + 1)
        ci = np.floor(centres[:, 1] * n).astype(np.int64)
        cj = np.floor(centres[:, 0] * n).astype(np.int64)
        rows = ci[:, None] + offs  # (k, w)
        cols = cj[:, None] + offs
        self.n = n
        self.dy = ((rows + 0.5) / n - centres[:, 1:2])[:, :, None]
        self.dx = ((cols + 0.5) / n - centres[:, 0:1])[:, None, :]
        ok_r = (rows >= 0) & (rows < n)
        ok_c = (cols >= 0) & (cols < n)
        self.inside = ok_r[:, :, None] & ok_c[:, None, :]
        self.flat = rows[:, :, None] * n + cols[:, None, :]

    def candidates(
        self, d: np.ndarray, ids: np.ndarray, extra: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(pixel, distance, object id, extra) of every window pixel with d < 1."""
        take = self.inside & (d < 1.0)
        idv = np.broadcast_to(np.asarray(ids)[:, None, None], d.shape)[take]
        ext = np.zeros(idv.shape) if extra is None else np.broadcast_to(extra, d.shape)[take]
        return self.flat[take], d[take], idv, ext


def resolve(
    n: int, parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Label map (-1 = background), distance map and extra map from candidates.

    A pixel belongs to the object with the smallest normalised distance there,
    so touching grains meet along straight-ish contacts, as compacted grains do.
    """
    flat, dv, ids, ext = (np.concatenate(a) for a in zip(*parts, strict=True))
    order = np.lexsort((ids, dv, flat))  # by pixel, then distance, then id (ties)
    flat, dv, ids, ext = flat[order], dv[order], ids[order], ext[order]
    first = np.ones(len(flat), dtype=bool)
    first[1:] = flat[1:] != flat[:-1]
    label = np.full(n * n, -1, dtype=np.int32)
    dist = np.full(n * n, np.inf)
    extra = np.zeros(n * n)
    label[flat[first]] = ids[first]
    dist[flat[first]] = dv[first]
    extra[flat[first]] = ext[first]
    return label.reshape(n, n), dist.reshape(n, n), extra.reshape(n, n)


def paint(
    n: int,
    centres: np.ndarray,
    radii: np.ndarray,
    *,
    aspects: np.ndarray | None = None,
    angles: np.ndarray | None = None,
    sides: np.ndarray | None = None,
    wobble: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Label map (-1 = none) and normalised distance map of many grains/crystals.

    Each object is an ellipse (``sides`` 0) or a regular polygon with
    ``sides`` sides, of mean radius ``radii`` (field-of-view units), stretched
    by ``aspects`` along ``angles``. ``wobble`` (k, h, 2) holds (amplitude,
    phase) of boundary harmonics 2, 3, ...: zero for smooth, rounded grains,
    larger for irregular, angular ones.
    """
    k = len(radii)
    if k == 0:
        return np.full((n, n), -1, dtype=np.int32), np.full((n, n), np.inf)
    radii = np.asarray(radii, dtype=np.float64)
    aspects = np.ones(k) if aspects is None else np.asarray(aspects, dtype=np.float64)
    angles = np.zeros(k) if angles is None else np.asarray(angles, dtype=np.float64)
    sides = np.zeros(k, dtype=np.int64) if sides is None else np.asarray(sides)
    wob = np.zeros(k) if wobble is None else np.abs(wobble[..., 0]).sum(axis=1)
    # Window reach: a safe bound on the outline's distance from the centre.
    corner = np.where(sides > 0, 1.0 / np.cos(np.pi / np.maximum(sides, 3)), 1.0)
    reach = radii * np.sqrt(aspects) * corner * (1.0 + wob)
    reach = reach * 1.02 + 1.0 / n
    parts = [
        _paint_group(n, group, centres, radii, aspects, angles, sides, wobble, reach) for group in size_groups(reach)
    ]
    label, dist, _ = resolve(n, parts)
    return label, dist


def size_groups(reach: np.ndarray) -> list[np.ndarray]:
    """Split objects into a few groups of similar window size (quantiles 50/80/95%).

    Every object of a group is evaluated in a window as large as the group's
    largest, so one big grain does not make the hundred small ones expensive.
    """
    if len(reach) == 0:
        return []
    edges = np.quantile(reach, [0.5, 0.8, 0.95])
    bins = np.searchsorted(edges, reach, side="left")
    return [g for b in range(4) if len(g := np.flatnonzero(bins == b))]


def _paint_group(
    n: int,
    group: np.ndarray,
    centres: np.ndarray,
    radii: np.ndarray,
    aspects: np.ndarray,
    angles: np.ndarray,
    sides: np.ndarray,
    wobble: np.ndarray | None,
    reach: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Candidates (see :meth:`Windows.candidates`) of the objects in ``group``."""
    win = Windows(n, np.asarray(centres)[group], float(reach[group].max()))
    ca, sa = np.cos(angles[group])[:, None, None], np.sin(angles[group])[:, None, None]
    sq = np.sqrt(aspects[group])[:, None, None]
    u = (win.dx * ca + win.dy * sa) / sq
    v = (-win.dx * sa + win.dy * ca) * sq
    r = radii[group][:, None, None]
    rho = np.hypot(u, v)
    d = rho / r
    gs = sides[group]
    for s in np.unique(gs[gs > 0]):
        # Polygon: the largest projection onto the side normals, over the inradius.
        sel = gs == s
        theta = np.arange(s) * (2 * math.pi / s)
        proj = u[sel, ..., None] * np.cos(theta) + v[sel, ..., None] * np.sin(theta)
        d[sel] = proj.max(axis=-1) / (r[sel] * math.cos(math.pi / s))
    if wobble is not None:
        # Outline radius r * (1 + sum_h a_h cos(h phi + p_h)), harmonics by recurrence
        # on (cos phi, sin phi) rather than arctan2 + cos: the same outline, less time.
        safe = np.maximum(rho, 1e-12)
        c1, s1 = u / safe, v / safe
        ck, sk = c1, s1
        bump = np.ones_like(d)
        w = wobble[group]
        for h in range(w.shape[1]):
            ck, sk = ck * c1 - sk * s1, sk * c1 + ck * s1  # now cos/sin of (h + 2) phi
            amp, ph = w[:, h, 0][:, None, None], w[:, h, 1][:, None, None]
            bump = bump + amp * (ck * np.cos(ph) - sk * np.sin(ph))
        d = d / np.maximum(bump, 0.2)
    return win.candidates(d, group)


def jittered_grid(rng: np.random.Generator, spacing: float, jitter: float, margin: float) -> np.ndarray:
    """Points on a square grid of ``spacing`` with random jitter, covering the view.

    A jittered grid packs grains evenly (like a sorted, compacted sand) without
    the cost of a rejection sampler. Returns (k, 2) ``(x, y)`` rows.
    """
    ticks = np.arange(-margin, 1 + margin + 1e-9, spacing)
    gy, gx = np.meshgrid(ticks, ticks, indexing="ij")
    pts = np.stack([gx.ravel(), gy.ravel()], axis=1)
    pts = pts + rng.uniform(-jitter, jitter, size=pts.shape) * spacing
    # Offset odd rows by half a spacing: a hexagonal-ish packing looks less gridded.
    row = np.repeat(np.arange(len(ticks)), len(ticks))
    pts[:, 0] += (row % 2) * spacing * 0.5
    return pts


def _michel_levy_exact(retardation_nm: np.ndarray) -> np.ndarray:
    r = np.asarray(retardation_nm, dtype=np.float64)[..., None, None]
    lam = np.array([[610.0, 640.0, 680.0], [520.0, 550.0, 580.0], [430.0, 460.0, 490.0]])
    return np.mean(np.sin(np.pi * r / lam) ** 2, axis=-1)


_ML_MAX = 8000
_ML_TABLE = _michel_levy_exact(np.arange(_ML_MAX + 1, dtype=np.float64))


def michel_levy(retardation_nm: np.ndarray) -> np.ndarray:
    """Approximate interference colour between crossed polars at 45 degrees.

    A birefringent crystal of retardation R transmits sin^2(pi R / lambda) of
    each wavelength. Averaging three wavelengths per channel gives the
    Michel-Levy sequence well enough to teach it: black -> greys -> white
    (first order, quartz and feldspar) -> yellow, red, blue, green (second
    order, olivine, pyroxene) -> washed-out pastels (high order, calcite).
    Looked up in a 1 nm table (0-8000 nm). Returns ``R.shape + (3,)`` in [0, 1].
    """
    r = np.clip(np.rint(np.asarray(retardation_nm, dtype=np.float64)), 0, _ML_MAX).astype(np.int64)
    return _ML_TABLE[r]


def voronoi(rng: np.random.Generator, n: int, size: float) -> np.ndarray:
    """Cell labels of a Voronoi mosaic with cells about ``size`` across (FOV units).

    Seeds sit on a jittered grid, so each pixel's nearest seed is among the
    3 x 3 grid cells around it: nine distance maps instead of a tree search.
    Returns (n, n) int labels (arbitrary but deterministic numbering).
    """
    m = max(int(round(1.0 / size)), 1)
    jit = rng.uniform(0.1, 0.9, (m + 2, m + 2, 2))  # seed position inside its grid cell
    x, y = pixel_grid(n)
    gi = np.floor(y * m).astype(np.int64) + 1  # +1: a ring of padding cells
    gj = np.floor(x * m).astype(np.int64) + 1
    best = np.full((n, n), np.inf)
    label = np.zeros((n, n), dtype=np.int64)
    for di in (-1, 0, 1):
        for dj in (-1, 0, 1):
            ci, cj = gi + di, gj + dj
            sx = (cj - 1 + jit[ci, cj, 0]) / m
            sy = (ci - 1 + jit[ci, cj, 1]) / m
            d = (x - sx) ** 2 + (y - sy) ** 2
            closer = d < best
            best = np.where(closer, d, best)
            label = np.where(closer, ci * (m + 2) + cj, label)
    return label


def restyle_stats(
    img: np.ndarray,
    rng: np.random.Generator,
    *,
    brightness: Range,
    contrast: Range,
    tint: float,
    keep: float,
) -> np.ndarray:
    """Move each channel's mean and std toward a random, class-independent target.

    Cameras, lamps, white balance and section thickness change the overall
    colour and contrast of a photograph far more than the rock does. Here each
    channel is shifted and scaled so its mean and std land on a random target
    (brightness ``brightness``, contrast ``contrast``, per-channel white
    balance ``tint``); ``keep`` of the original statistics is kept (0 = none).
    The spatial pattern (what the CNN should learn) is untouched.
    """
    flat = img.reshape(-1, img.shape[-1])
    mean, std = flat.mean(axis=0), np.maximum(flat.std(axis=0), 0.02)
    level = rng.uniform(*brightness)
    spread = rng.uniform(*contrast)
    channels = img.shape[-1]
    target_mean = np.clip(level * np.exp(rng.normal(0.0, tint, channels)), 0.08, 0.92)
    target_std = spread * np.exp(rng.normal(0.0, tint, channels))
    new_mean = keep * mean + (1 - keep) * target_mean
    new_std = np.exp(keep * np.log(std) + (1 - keep) * np.log(target_std))
    return (img - mean) / std * new_std + new_mean


def to_uint8(img: np.ndarray) -> np.ndarray:
    """[0, 1] floats to uint8 with rounding (not truncation)."""
    return np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)


def png_bytes(pixels: np.ndarray) -> bytes:
    """Encode a uint8 image as PNG bytes, deterministically.

    No text chunks, no timestamp, fixed compression level and
    ``optimize=False``: the bytes depend only on the pixels (and the zlib
    build bundled with Pillow).
    """
    if pixels.dtype != np.uint8:
        raise TypeError(f"png_bytes expects uint8 pixels. Got {pixels.dtype} instead.")
    if pixels.ndim not in (2, 3) or (pixels.ndim == 3 and pixels.shape[2] != 3):
        raise ValueError(f"png_bytes expects (H, W) or (H, W, 3) pixels. Got {pixels.shape} instead.")
    buf = io.BytesIO()
    # fromarray picks "L" for (H, W) and "RGB" for (H, W, 3) uint8 arrays.
    Image.fromarray(np.ascontiguousarray(pixels)).save(buf, format="PNG", optimize=False, compress_level=9)
    return buf.getvalue()
