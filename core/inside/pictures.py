"""Feature maps and heatmaps as pictures: colour scales, channel grids, overlays, PNG files.

NumPy and Pillow only (no matplotlib): the CLI writes these PNGs, and the
dashboard's figures (ui.charts) reuse :func:`tile` so the page and the files
lay the channels out the same way. One colour scale per layer: a channel that
looks bright is bright compared with the layer's other channels.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

# Anchor colours of matplotlib's viridis (feature maps) and inferno (heatmaps), interpolated linearly.
VIRIDIS = (
    (68, 1, 84),
    (72, 40, 120),
    (62, 74, 137),
    (49, 104, 142),
    (38, 130, 142),
    (31, 158, 137),
    (53, 183, 121),
    (109, 205, 89),
    (180, 222, 44),
    (253, 231, 37),
)
INFERNO = (
    (0, 0, 4),
    (27, 12, 65),
    (74, 12, 107),
    (120, 28, 109),
    (165, 44, 96),
    (207, 68, 70),
    (237, 105, 37),
    (251, 155, 6),
    (247, 209, 61),
    (252, 255, 164),
)


# One colour per class (Tableau 10, told apart with most kinds of colour blindness), cycled past ten classes: the
# embedding's PNG and the dashboard's scatter (ui.charts.inside) colour a class the same.
CLASS_COLORS = (
    "#4E79A7",
    "#F28E2B",
    "#E15759",
    "#76B7B2",
    "#59A14F",
    "#EDC948",
    "#B07AA1",
    "#FF9DA7",
    "#9C755F",
    "#BAB0AC",
)


def class_color(index: int) -> str:
    return CLASS_COLORS[index % len(CLASS_COLORS)]


def colorize(values: np.ndarray, scale=VIRIDIS, low: float | None = None, high: float | None = None) -> np.ndarray:
    """Values -> uint8 RGB on a colour scale from ``low`` (default: the minimum) to ``high`` (the maximum).

    NaN (the gaps of :func:`tile`) becomes white.
    """
    v = np.asarray(values, dtype="float64")
    finite = v[np.isfinite(v)]
    low = float(finite.min()) if low is None and finite.size else (low or 0.0)
    high = float(finite.max()) if high is None and finite.size else (high if high is not None else 1.0)
    t = np.clip((v - low) / (high - low), 0, 1) if high > low else np.zeros_like(v)
    anchors = np.asarray(scale, dtype="float64")
    pos = np.linspace(0, 1, len(anchors))
    t = np.nan_to_num(t, nan=0.0)
    rgb = np.stack([np.interp(t, pos, anchors[:, i]) for i in range(3)], axis=-1)
    rgb[~np.isfinite(v)] = 255
    return rgb.round().astype(np.uint8)


def grid_shape(count: int) -> tuple[int, int]:
    """(rows, columns) of a near-square grid of ``count`` tiles, wider than tall."""
    cols = max(1, math.ceil(math.sqrt(count)))
    return math.ceil(count / cols), cols


def tile(maps: np.ndarray, start: int = 0, count: int | None = None, gap: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Channels ``start .. start+count`` of (H, W, C) maps side by side.

    Returns:
        ``(values, channel)``: a 2-D float array with NaN in the gaps, and the
        channel number of every cell (-1 in the gaps).
    """
    h, w, c = maps.shape
    count = c - start if count is None else min(count, c - start)
    rows, cols = grid_shape(count)
    values = np.full((rows * (h + gap) - gap, cols * (w + gap) - gap), np.nan, dtype="float32")
    channel = np.full(values.shape, -1, dtype=np.int32)
    for n in range(count):
        r, q = divmod(n, cols)
        y, x = r * (h + gap), q * (w + gap)
        values[y : y + h, x : x + w] = maps[:, :, start + n]
        channel[y : y + h, x : x + w] = start + n
    return values, channel


def upscale(rgb: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour enlargement: each pixel becomes a ``factor`` x ``factor`` block."""
    return np.repeat(np.repeat(rgb, factor, axis=0), factor, axis=1) if factor > 1 else rgb


def grid_picture(maps: np.ndarray, max_channels: int = 64, tile_pixels: int = 48) -> np.ndarray:
    """Up to ``max_channels`` channels of (H, W, C) maps as one RGB picture, on the layer's colour scale."""
    h = maps.shape[0]
    factor = max(1, math.ceil(tile_pixels / h))
    values, _ = tile(np.repeat(np.repeat(maps, factor, axis=0), factor, axis=1), count=max_channels, gap=2)
    finite = maps[:, :, :max_channels]
    return colorize(values, VIRIDIS, float(finite.min()), float(finite.max()))


def overlay(image_uint8: np.ndarray, heat: np.ndarray, strength: float = 0.6) -> np.ndarray:
    """A heatmap in [0, 1] (H, W) laid over an image (H, W, C): hot where the heat is high, the image elsewhere."""
    image = np.asarray(image_uint8, dtype="float64")
    if image.ndim == 2 or image.shape[-1] == 1:
        image = np.repeat(image.reshape(*image.shape[:2], 1), 3, axis=-1)
    h = np.clip(np.asarray(heat, dtype="float64"), 0, 1)[:, :, None]
    color = colorize(h[:, :, 0], INFERNO, 0.0, 1.0).astype("float64")
    a = strength * (0.25 + 0.75 * h)
    return (image * (1 - a) + color * a).round().clip(0, 255).astype(np.uint8)


def save_png(rgb: np.ndarray, path: str | Path, min_side: int = 0) -> Path:
    """Write an RGB (or grey) uint8 array as a PNG, enlarged (nearest) to at least ``min_side`` pixels."""
    factor = max(1, math.ceil(min_side / max(1, min(rgb.shape[:2])))) if min_side else 1
    path = Path(path)
    Image.fromarray(upscale(np.asarray(rgb, dtype=np.uint8), factor).squeeze()).save(path, format="PNG")
    return path


def scatter_picture(
    coords: np.ndarray,
    labels: np.ndarray,
    wrong: np.ndarray,
    class_names: list[str],
    title: str = "",
    axes: tuple[str, str] = ("", ""),
    faded: np.ndarray | None = None,
    side: int = 640,
) -> np.ndarray:
    """Points in 2-D as an RGB picture: a dot per point in its class's colour, a cross where ``wrong``, a small
    ring where ``faded`` (training images, drawn first, underneath), a legend.

    Drawn with Pillow (no plotting library): the CLI's ``embed --out`` writes it.
    """
    font = ImageFont.load_default(size=14)
    legend_w, top, pad = 190, 36 if title else 12, 28
    img = Image.new("RGB", (side + legend_w, top + side - pad + 30), "white")
    draw = ImageDraw.Draw(img)
    xy = np.asarray(coords, dtype="float64").reshape(-1, 2)
    low, high = (xy.min(axis=0), xy.max(axis=0)) if len(xy) else (np.zeros(2), np.ones(2))
    span = np.where(high > low, high - low, 1.0)
    box = (pad, top, side - pad, top + side - 2 * pad)  # the plot area
    draw.rectangle(box, outline=(190, 190, 190))
    px = box[0] + 8 + (xy[:, 0] - low[0]) / span[0] * (box[2] - box[0] - 16)
    py = box[3] - 8 - (xy[:, 1] - low[1]) / span[1] * (box[3] - box[1] - 16)  # y up, as on a chart
    faded = np.zeros(len(xy), dtype=bool) if faded is None else np.asarray(faded, dtype=bool)
    rank = np.where(faded, 0, np.where(np.asarray(wrong, dtype=bool), 2, 1))
    for i in np.argsort(rank, kind="stable"):  # training rings underneath, crosses on top
        x, y, color = float(px[i]), float(py[i]), class_color(int(labels[i]))
        if faded[i]:
            draw.ellipse((x - 3, y - 3, x + 3, y + 3), outline=color)
        elif wrong[i]:
            draw.line((x - 5, y - 5, x + 5, y + 5), fill=color, width=3)
            draw.line((x - 5, y + 5, x + 5, y - 5), fill=color, width=3)
        else:
            draw.ellipse((x - 4, y - 4, x + 4, y + 4), fill=color, outline="white")
    if title:
        draw.text((pad, 10), title, fill="black", font=font)
    if any(axes):
        draw.text((box[0], box[3] + 6), f"across: {axes[0]}   up: {axes[1]}", fill=(90, 90, 90), font=font)
    y = top + 4
    for c, name in enumerate(class_names):
        draw.ellipse((side + 6, y + 3, side + 16, y + 13), fill=class_color(c))
        draw.text((side + 24, y), name, fill="black", font=font)
        y += 22
    draw.line((side + 6, y + 3, side + 16, y + 13), fill=(60, 60, 60), width=3)
    draw.line((side + 6, y + 13, side + 16, y + 3), fill=(60, 60, 60), width=3)
    draw.text((side + 24, y), "misclassified", fill="black", font=font)
    if faded.any():
        y += 22
        draw.ellipse((side + 8, y + 5, side + 14, y + 11), outline=(60, 60, 60))
        draw.text((side + 24, y), "training image", fill="black", font=font)
    return np.asarray(img)


def maps_picture(
    image_uint8: np.ndarray, rows: list[list[tuple[str, np.ndarray]]], title: str = "", side: int = 192
) -> np.ndarray:
    """Maps in [0, 1] over one image, as an RGB picture: one row per list, the image itself first in every row,
    each tile with its caption underneath (the CLI's ``saliency --out``; Pillow only)."""
    font = ImageFont.load_default(size=13)
    cols = 1 + max((len(r) for r in rows), default=0)
    pad, caption, top = 8, 34, 28 if title else 6
    img = Image.new("RGB", (pad + cols * (side + pad), top + len(rows) * (side + caption + pad)), "white")
    draw = ImageDraw.Draw(img)
    if title:
        draw.text((pad, 8), title, fill="black", font=font)
    factor = max(1, math.ceil(side / max(np.shape(image_uint8)[:2])))

    def tile_at(rgb: np.ndarray, r: int, c: int, text: str) -> None:
        x, y = pad + c * (side + pad), top + r * (side + caption + pad)
        picture = Image.fromarray(upscale(np.asarray(rgb, dtype=np.uint8), factor).squeeze()).convert("RGB")
        img.paste(picture.resize((side, side), Image.NEAREST), (x, y))
        for n, line in enumerate(text.split("\n")[:2]):
            draw.text((x, y + side + 3 + 15 * n), line, fill="black", font=font)

    for r, row in enumerate(rows):
        tile_at(image_uint8, r, 0, "the image")
        for c, (text, heat) in enumerate(row, start=1):
            tile_at(overlay(image_uint8, heat), r, c, text)
    return np.asarray(img)
