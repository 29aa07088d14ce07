"""Synthetic drill-core box photographs, classified by fracture density.

Core comes out of the drill string in runs of a few metres and is laid in
boxes with several rows separated by dividers; the box is photographed, often
both dry and wet. Geotechnical logging measures how broken the core is:
fracture frequency (fractures per metre) and RQD, the share of a run made of
sound pieces longer than 10 cm. The classes follow that measure:

* **intact**: long cylindrical pieces with at most one or two breaks per row
  (RQD above about 90%).
* **fractured**: several fractures per row, pieces of moderate length, small
  gaps and slight displacements (RQD around 50-75%).
* **highly_fractured**: many short pieces and rubble: fragments narrower than
  the core, rotated and shifted, wider gaps and some lost core (RQD below
  about 25%).

Why fracture density and not lithology: a lithology label on a core photo is
largely a colour label (red granite, black basalt, buff sandstone), so it
would teach that colour statistics suffice. Fracture density is a *geometric*
property (how many breaks, how long the pieces are) that the same rock shows
in any colour. So lithology is varied here as a nuisance, identically for
every class, together with box material, number of rows, lighting, camera
white balance and wet versus dry core.

Wet core is darker and more saturated (water fills the surface roughness)
and shows a specular highlight along the top of each piece.

All lengths are in field-of-view units (the photo is 1 x 1).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from synth._common import (
    SUPERSAMPLE,
    blend_ranges,
    blur,
    downsample,
    draw,
    pixel_grid,
    restyle_stats,
    smooth_noise,
)

CLASSES = ("intact", "fractured", "highly_fractured")

# Shared parameters; the ``overlap`` knob pulls the class ranges together.
#   fractures  natural fractures per row (one row spans the photo)
#   disorder   how much pieces are shifted, rotated, chipped, lost (0-1)
PARAMS: dict[str, dict[str, tuple[float, float]]] = {
    "intact": {"fractures": (0.0, 1.2), "disorder": (0.00, 0.10)},
    "fractured": {"fractures": (3.5, 7.0), "disorder": (0.10, 0.35)},
    "highly_fractured": {"fractures": (9.0, 16.0), "disorder": (0.55, 1.00)},
}

# Rock types a core may be: base colour, speckle strength, banding strength.
LITHOLOGIES = {
    "granite": ((0.74, 0.60, 0.54), 0.20, 0.00),
    "sandstone": ((0.74, 0.65, 0.50), 0.08, 0.10),
    "basalt": ((0.30, 0.30, 0.30), 0.10, 0.00),
    "gneiss": ((0.58, 0.55, 0.52), 0.15, 0.20),
    "limestone": ((0.72, 0.71, 0.68), 0.05, 0.06),
}
BOXES = {
    "wood": (0.55, 0.40, 0.26),
    "plastic": (0.24, 0.24, 0.26),
    "cardboard": (0.62, 0.52, 0.38),
}

# Like the thin sections, part of each photo's colour statistics is replaced
# by a random camera exposure/white balance (0 = all of it).
KEEP_COLOUR = 0.8


def render(
    class_id: int,
    params: np.random.Generator,
    pixels: np.random.Generator,
    size: int,
    noise: float,
    overlap: float,
) -> np.ndarray:
    """One core-box photograph, float RGB in [0, 1] of shape (size, size, 3)."""
    p = draw(params, blend_ranges(PARAMS, CLASSES[class_id], overlap))
    n = size * SUPERSAMPLE
    x, y = pixel_grid(n)

    box = str(params.choice(sorted(BOXES)))
    box_rgb = np.clip(np.asarray(BOXES[box]) * params.uniform(0.85, 1.15, 3), 0, 1)
    base, speckle, banding = LITHOLOGIES[str(params.choice(sorted(LITHOLOGIES)))]
    rock_rgb = np.clip(np.asarray(base) * params.uniform(0.85, 1.15, 3), 0, 1)
    wet = params.uniform(0.6, 1.0) if params.random() < 0.45 else 0.0
    rows = int(params.choice([3, 4]))
    margin = params.uniform(0.0, 0.08)  # box wall visible above the first row
    pitch = (1.0 - margin) / rows
    divider = pitch * params.uniform(0.12, 0.22)
    radius = (pitch - divider) * params.uniform(0.40, 0.46)
    band_angle = params.uniform(-1.0, 1.0)  # foliation / bedding across the core
    band_period = params.uniform(0.03, 0.08)

    # Box floor with wood grain / moulding texture, darker in the gaps' shadows.
    grain = 0.06 * smooth_noise(pixels, n, 0.01) * (3.0 if box == "wood" else 1.0)
    img = box_rgb * (0.75 + grain)[..., None]
    core = np.zeros((n, n), dtype=bool)
    shade = np.zeros((n, n))
    phase = np.zeros((n, n))  # texture phase: changes from piece to piece (rotated pieces)
    across = np.zeros((n, n))  # position across the core, -1 (top edge) to 1 (bottom edge)
    speck = smooth_noise(pixels, n, 0.006)
    rough = smooth_noise(pixels, n, 0.02)

    for r in range(rows):
        yc = margin + pitch * r + divider + (pitch - divider) / 2
        band = np.abs(y - yc) < pitch / 2
        count = int(params.poisson(p["fractures"]))
        fx = np.sort(params.uniform(0.0, 1.0, count))
        tilt = np.tan(params.uniform(-0.9, 0.9, count))  # fracture dip relative to the core axis
        gap = params.uniform(0.010, 0.018, count) + p["disorder"] * params.uniform(0.0, 0.03, count)
        # Piece index of each pixel: how many fracture traces lie to its left.
        trace = fx[:, None, None] + tilt[:, None, None] * (y - yc)[None]  # (count, n, n)
        piece = np.sum(x[None] > trace, axis=0)  # zero everywhere when there is no fracture
        off = np.abs(x[None] - trace) - gap[:, None, None] / 2  # distance outside each open fracture
        in_gap = np.any(off < 0, axis=0)
        near_gap = np.any(off < 0.008, axis=0)
        pieces = count + 1
        shift = params.normal(0.0, p["disorder"] * 0.15 * radius, pieces)
        shrink = 1 - p["disorder"] * params.uniform(0.0, 0.35, pieces)  # chipped, narrower fragments
        lost = params.random(pieces) < 0.25 * p["disorder"] ** 2  # core loss
        ph = params.uniform(0, 2 * math.pi, pieces)
        s = (y - yc - shift[piece]) / (radius * shrink[piece])
        edge = 1 - p["disorder"] * 0.25 * np.abs(rough)  # broken, irregular fragment outlines
        on = band & (np.abs(s) < edge) & ~in_gap & ~lost[piece]
        core |= on
        # Lambert shading of a cylinder lit from above and in front.
        normal_y, normal_z = s, np.sqrt(np.clip(1 - s**2, 0, 1))
        lit = 0.35 + 0.75 * np.clip(normal_z * 0.8 - normal_y * 0.6, 0, None)
        shade = np.where(on, lit * np.where(near_gap, 0.75, 1.0), shade)  # broken ends catch less light
        phase = np.where(on, ph[piece], phase)
        across = np.where(on, s, across)
        # The core's shadow on the box floor just below it, and the divider strip above.
        below = band & ~on & (s > 0) & (s < 1.35)
        img = np.where(below[..., None], img * 0.6, img)
        crack = band & in_gap & (np.abs(s) < 1.05)  # looking down into an open fracture
        img = np.where(crack[..., None], img * 0.35, img)
        div = (y > yc - (pitch - divider) / 2 - divider) & (y < yc - (pitch - divider) / 2)
        img = np.where(div[..., None], np.clip(box_rgb * 1.15, 0, 1) * (0.9 + grain)[..., None], img)

    # Rock texture: speckle (crystals) and bands (foliation, bedding) whose phase
    # jumps between pieces, as it does when broken pieces are turned.
    layers = ndimage.gaussian_filter1d(pixels.standard_normal(512), 1.5, mode="wrap")
    layers /= layers.std()
    coord = (x + band_angle * across * radius) / band_period * 4 + phase * 40
    bands = np.interp(np.mod(coord, 512), np.arange(512), layers)
    tex = 1 + speckle * speck + banding * bands
    rock = rock_rgb * (tex * shade)[..., None]
    if wet:
        grey = rock.mean(axis=-1, keepdims=True)
        rock = (grey + (rock - grey) * (1 + 0.8 * wet)) * (1 - 0.35 * wet)
        glint = wet * params.uniform(0.3, 0.6) * np.exp(-(((across + 0.45) / 0.15) ** 2))
        rock = rock + glint[..., None]
        img = img * (1 - 0.25 * wet)
    img = np.where(core[..., None], rock, img)

    # Depth/run marker blocks (in every class): a bright block across one row.
    for _ in range(int(params.poisson(0.7))):
        r = params.integers(rows)
        yc = margin + pitch * r + divider + (pitch - divider) / 2
        bx, bw = params.uniform(0.05, 0.95), params.uniform(0.03, 0.06)
        colour = np.asarray([(0.9, 0.85, 0.3), (0.92, 0.92, 0.9), (0.9, 0.5, 0.2)][params.integers(3)])
        block = (np.abs(x - bx) < bw / 2) & (np.abs(y - yc) < radius * 1.05)
        img = np.where(block[..., None], colour * (0.9 + 0.1 * speck)[..., None], img)

    img = downsample(blur(img, params.uniform(0.0, 0.6) * SUPERSAMPLE), SUPERSAMPLE)
    img = restyle_stats(img, params, brightness=(0.30, 0.65), contrast=(0.10, 0.25), tint=0.10, keep=KEEP_COLOUR)
    xs, ys = pixel_grid(size)
    gx, gy = params.uniform(-0.25, 0.25, 2)  # the lamp is never quite centred
    img = img * (1 + gx * (xs - 0.5) + gy * (ys - 0.5))[..., None]
    img = img + noise * params.uniform(0.01, 0.03) * pixels.standard_normal(img.shape)
    return np.clip(img, 0.0, 1.0)


def _rng(cls: str) -> str:
    lo, hi = PARAMS[cls]["fractures"]
    return f"{lo:g}-{hi:g} (mean of a Poisson draw)"


DATASHEET = {
    "title": "drill-core box photographs by fracture density",
    "summary": (
        "Top-down photographs of core boxes (3-4 rows of core between dividers), classified by how\n"
        "broken the core is. Deliberately small, like real core-photo sets: this is the dataset\n"
        "where data augmentation should matter most."
    ),
    "classes": {
        "intact": f"long cylindrical pieces, {_rng('intact')} natural fractures per row (RQD above ~90%)",
        "fractured": f"{_rng('fractured')} fractures per row: moderate pieces, thin dark open "
        "fracture traces at various angles, small gaps and shifts (RQD ~50-75%)",
        "highly_fractured": f"{_rng('highly_fractured')} fractures per row: short pieces and rubble, "
        "chipped narrower fragments, wide gaps, shifted pieces, some lost core (RQD below ~25%)",
    },
    "choice": (
        "The course allows lithology, fracture density or alteration intensity. Fracture density is\n"
        "used because it is a geometric property (how many breaks, how long the pieces are), the\n"
        "kind of cue a CNN learns from shapes and edges, and it is the one logged for every\n"
        "geotechnical hole (fracture frequency, RQD). Lithology labels on core photos are largely\n"
        "colour labels, which would teach that colour statistics suffice. Here lithology is a\n"
        "nuisance varied equally across classes."
    ),
    "nuisance": (
        "Varied identically in every class: lithology (granite, sandstone, basalt, gneiss,\n"
        "limestone: colour, speckle, foliation/bedding bands that look a bit like fractures),\n"
        "box material (wood, plastic, cardboard), number of rows (3-4), wet core (45%: darker,\n"
        "more saturated, specular highlight along each piece) or dry, depth/run marker blocks,\n"
        "lamp position, camera white balance and exposure (each image's per-channel mean and std\n"
        f"moved {1 - KEEP_COLOUR:.0%} of the way to a random target), focus blur and sensor noise."
    ),
    "generation": (
        "1. Draw fracture frequency and disorder from the class's ranges (`--overlap` pulls them\n"
        "   toward the middle), then box, lithology, wetness and row layout.\n"
        "2. Per row, draw Poisson(fractures) fracture traces across the core at random angles and\n"
        "   positions; each piece between traces gets its own shift, chipping (narrower, rougher\n"
        "   outline), rotation (texture phase) and, rarely, is lost.\n"
        "3. Shade each piece as a lit cylinder, texture it with the lithology, darken the box floor\n"
        "   in the gaps and below each piece, add wetness, markers, blur, average down from twice\n"
        "   the size, restyle colour statistics, add the lamp gradient and noise.\n"
        "\nSeeds: `numpy.random.SeedSequence([seed, 3, class_id, index])`."
    ),
    "difficulty": (
        "Measured with `python bench/bench_datasets.py` on the shipped files (course CNN, 20\n"
        "epochs, seed 42, stratified 80/20 train/test split, 20% of training for validation):\n"
        "\n"
        "- course CNN test accuracy **0.75** (0.75-0.86 over three training seeds; the test set has\n"
        "  only 36 images, so +-0.07 is noise); errors are mostly intact versus fractured;\n"
        "- logistic regression on the six colour statistics: **0.39** (chance 0.33);\n"
        "- CNN on 20% of the training images (23 photos), no dropout: train 0.96 vs validation\n"
        "  0.66, a gap of **0.30**; with the course augmentation **0.13** (train 0.61,\n"
        "  validation 0.48)."
    ),
    "limitations": (
        "Fracture traces are straight lines; no core orientation line, no labels or scale bars,\n"
        "no mechanical (drilling-induced) breaks distinguished from natural ones. 64 x 64 px is far\n"
        "below real core-photo resolution; RQD values are indicative only."
    ),
}
