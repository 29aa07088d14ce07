"""Inside a trained network: feature maps, a convolution worked by hand, filters, Grad-CAM and occlusion, and
all test images in the penultimate layer's feature space (the embedding's scatter).

Pictures are drawn as heatmaps with hidden axes (row 0 at the top, square pixels) or as a PNG under a
half-transparent map; the tiling of channels is :func:`core.inside.pictures.tile`, the same as in the
files the engine writes.
"""

from __future__ import annotations

import base64
import io
import math
from typing import Any

import numpy as np
import plotly.graph_objects as go
import streamlit as st
from PIL import Image

from core.inside.pictures import class_color, tile, upscale
from ui.charts.common import CACHE, MUTED, VAL, axis, base_layout


def _png_uri(rgb: np.ndarray) -> str:
    buf = io.BytesIO()
    Image.fromarray(np.asarray(rgb, dtype=np.uint8).squeeze()).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _grid(values: np.ndarray) -> list:
    """A 2-D array as JSON-friendly rows: 4 decimals, None for NaN (a gap)."""
    rounded = np.round(np.asarray(values, dtype="float64"), 4)
    return [[None if math.isnan(v) else v for v in row] for row in rounded.tolist()]


def _picture_axes(height: int, **extra: Any) -> dict:
    return base_layout(
        height,
        top=10,
        xaxis={"visible": False, "constrain": "domain"},
        yaxis={"visible": False, "autorange": "reversed", "scaleanchor": "x", "constrain": "domain"},
        **extra,
    )


@st.cache_resource(**CACHE)
def feature_maps_figure(maps: np.ndarray, start: int = 0, count: int = 64, height: int = 520) -> go.Figure:
    """Channels ``start .. start+count`` of one layer's (H, W, C) output as a grid, on one colour scale.

    Each tile is one channel (its number above it); the colour bar is the layer's value range, so a bright
    tile is bright compared with the layer's other channels.
    """
    values, channel = tile(maps, start, count)
    h, w = maps.shape[:2]
    shown = maps[:, :, start : start + count]
    lo, hi = float(shown.min()), float(shown.max())
    cols = (values.shape[1] + 1) // (w + 1)
    notes = [
        {
            "x": (n % cols) * (w + 1) + (w - 1) / 2,
            "y": (n // cols) * (h + 1) - 0.5,
            "text": str(start + n),
            "showarrow": False,
            "yanchor": "bottom",
            "font": {"size": 10, "color": MUTED},
        }
        for n in range(min(count, maps.shape[2] - start))
    ]
    trace = {
        "type": "heatmap",
        "z": _grid(values),
        "customdata": channel.tolist(),
        "colorscale": "Viridis",
        "zmin": lo,
        "zmax": hi if hi > lo else lo + 1,
        "hoverongaps": False,
        "colorbar": {"title": {"text": "activation"}, "thickness": 14},
        "hovertemplate": "channel %{customdata}: %{z:.3f}<extra></extra>",
    }
    return go.Figure({"data": [trace], "layout": _picture_axes(height, annotations=notes)})


@st.cache_resource(**CACHE)
def matrix_figure(
    values: np.ndarray,
    title: str = "",
    outside: np.ndarray | None = None,
    fmt: str = ".2f",
    colorscale: str = "RdBu",
    center: bool = True,
    height: int = 230,
) -> go.Figure:
    """A small k x k matrix with its numbers written in (a patch, a kernel, their products, a pooling window).

    ``outside`` marks cells that read the zero border ("pad"); ``center`` puts white at 0.
    """
    v = np.asarray(values, dtype="float64")
    finite = np.where(np.isfinite(v), v, np.nan)
    text = [
        [
            ("pad" if outside is not None and outside[i, j] else format(x, fmt)) if np.isfinite(x) else "–"
            for j, x in enumerate(row)
        ]
        for i, row in enumerate(v)
    ]
    bound = float(np.nanmax(np.abs(finite))) if np.isfinite(finite).any() else 1.0
    trace = {
        "type": "heatmap",
        "z": _grid(finite),
        "text": text,
        "texttemplate": "%{text}",
        "colorscale": colorscale,
        "showscale": False,
        "xgap": 2,
        "ygap": 2,
        "hovertemplate": "%{text}<extra></extra>",
        "textfont": {"size": 12 if v.shape[0] <= 5 else 9},
    }
    if center:
        trace.update(zmid=0, zmin=-bound or -1, zmax=bound or 1)
    notes = (
        [
            {
                "xref": "paper",
                "yref": "paper",
                "x": 0.5,
                "y": 1.0,
                "yanchor": "bottom",
                "text": title,
                "showarrow": False,
                "font": {"size": 13},
            }
        ]
        if title
        else []
    )
    layout = _picture_axes(height, annotations=notes)
    layout["margin"]["t"] = 26 if title else 6
    return go.Figure({"data": [trace], "layout": layout})


@st.cache_resource(**CACHE)
def unit_figure(channel_map: np.ndarray, row: int, col: int, height: int = 260) -> go.Figure:
    """One channel of a layer's output with one unit outlined (the unit worked by hand)."""
    trace = {
        "type": "heatmap",
        "z": _grid(channel_map),
        "colorscale": "Viridis",
        "showscale": False,
        "hovertemplate": "row %{y}, column %{x}: %{z:.3f}<extra></extra>",
    }
    box = {
        "type": "rect",
        "x0": col - 0.5,
        "x1": col + 0.5,
        "y0": row - 0.5,
        "y1": row + 0.5,
        "line": {"color": VAL, "width": 3},
    }
    return go.Figure({"data": [trace], "layout": _picture_axes(height, shapes=[box])})


@st.cache_resource(**CACHE)
def filters_figure(rgb: np.ndarray, height: int = 360) -> go.Figure:
    """First-layer filters (F, k, k, 3) in [0, 1] as small RGB patches in a grid (grey = a zero weight)."""
    k = rgb.shape[1]
    factor = max(1, math.ceil(24 / k))
    patches = np.repeat(np.repeat(rgb, factor, axis=1), factor, axis=2)  # (F, k', k', 3)
    channels = [tile(np.moveaxis(patches[..., c], 0, -1), gap=2)[0] for c in range(3)]
    picture = np.nan_to_num(np.stack(channels, axis=-1), nan=1.0)
    trace = {"type": "image", "source": _png_uri((picture * 255).round()), "hoverinfo": "skip"}
    return go.Figure({"data": [trace], "layout": _picture_axes(height)})


@st.cache_resource(**CACHE)
def kernel_slices_figure(slices: np.ndarray, count: int = 64, height: int = 360) -> go.Figure:
    """One deeper filter's weights, one k x k slice per input channel (C, k, k); white = 0, red > 0, blue < 0."""
    maps = np.moveaxis(np.asarray(slices[:count]), 0, -1)
    values, channel = tile(maps)
    bound = float(np.abs(maps).max()) or 1.0
    trace = {
        "type": "heatmap",
        "z": _grid(values),
        "customdata": channel.tolist(),
        "colorscale": "RdBu",
        "reversescale": True,
        "zmid": 0,
        "zmin": -bound,
        "zmax": bound,
        "hoverongaps": False,
        "xgap": 0,
        "colorbar": {"title": {"text": "weight"}, "thickness": 14},
        "hovertemplate": "input channel %{customdata}: %{z:.3f}<extra></extra>",
    }
    return go.Figure({"data": [trace], "layout": _picture_axes(height)})


@st.cache_resource(**CACHE)
def heat_overlay_figure(
    image: np.ndarray, heat: np.ndarray, diverging: bool = False, label: str = "Grad-CAM", height: int = 320
) -> go.Figure:
    """A map over the image: the image underneath, the map half-transparent on top (hover: its value).

    ``diverging``: a signed map (occlusion's probability drop), white at 0; else a [0, 1] map (Grad-CAM).
    """
    h, w = heat.shape
    factor = max(1, math.ceil(256 / max(h, w)))
    base = upscale(np.asarray(image, dtype=np.uint8), factor)
    under = {
        "type": "image",
        "source": _png_uri(base),
        "x0": -0.5,
        "y0": -0.5,
        "dx": 1 / factor,
        "dy": 1 / factor,
        "hoverinfo": "skip",
    }
    over = {
        "type": "heatmap",
        "z": _grid(heat),
        "opacity": 0.5,
        "hovertemplate": f"{label} %{{z:.2f}}<extra></extra>",
        "colorbar": {"title": {"text": label}, "thickness": 14},
    }
    if diverging:
        bound = float(np.abs(heat).max()) or 1.0
        over.update(colorscale="RdBu", reversescale=True, zmid=0, zmin=-bound, zmax=bound)
    else:
        over.update(colorscale="Inferno", zmin=0, zmax=1)
    return go.Figure({"data": [under, over], "layout": _picture_axes(height)})


@st.cache_resource(**CACHE)
def maps_row_figure(
    image: np.ndarray, heats: tuple[np.ndarray, ...], titles: tuple[str, ...], height: int = 250
) -> go.Figure:
    """Several [0, 1] maps of one image side by side, each over the image, on one colour scale (the saliency
    methods on one row; the same methods after the sanity check's randomisation on the next)."""
    n = max(1, len(heats))
    h, w = heats[0].shape if heats else np.shape(image)[:2]
    factor = max(1, math.ceil(128 / max(h, w)))
    source = _png_uri(upscale(np.asarray(image, dtype=np.uint8), factor))
    gap = 0.02
    width = (1 - gap * (n - 1)) / n
    data, layout = [], base_layout(height, top=40, annotations=[])
    for i, (heat, title) in enumerate(zip(heats, titles, strict=True)):
        suffix = "" if i == 0 else str(i + 1)
        x0 = i * (width + gap)
        data.append(
            {
                "type": "image",
                "source": source,
                "x0": -0.5,
                "y0": -0.5,
                "dx": 1 / factor,
                "dy": 1 / factor,
                "hoverinfo": "skip",
                "xaxis": f"x{suffix}",
                "yaxis": f"y{suffix}",
            }
        )
        data.append(
            {
                "type": "heatmap",
                "z": _grid(heat),
                "opacity": 0.5,
                "coloraxis": "coloraxis",
                "xaxis": f"x{suffix}",
                "yaxis": f"y{suffix}",
                "name": title.replace("<br>", " "),
                "hovertemplate": f"{title.split('<br>')[0]} %{{z:.2f}}<extra></extra>",
            }
        )
        layout[f"xaxis{suffix}"] = {"visible": False, "constrain": "domain", "domain": [x0, x0 + width]}
        layout[f"yaxis{suffix}"] = {
            "visible": False,
            "autorange": "reversed",
            "scaleanchor": f"x{suffix}",
            "constrain": "domain",
        }
        layout["annotations"].append(
            {
                "text": title,
                "x": x0 + width / 2,
                "y": 1.0,
                "xref": "paper",
                "yref": "paper",
                "yanchor": "bottom",
                "showarrow": False,
                "font": {"size": 12},
            }
        )
    layout["coloraxis"] = {
        "colorscale": "Inferno",
        "cmin": 0,
        "cmax": 1,
        "colorbar": {"title": {"text": "share of<br>the peak"}, "thickness": 12},
    }
    return go.Figure({"data": data, "layout": layout})


@st.cache_resource(**CACHE)
def embedding_figure(
    coords: np.ndarray,
    labels: np.ndarray,
    predicted: np.ndarray,
    confidence: np.ndarray,
    class_names: tuple[str, ...],
    axes: tuple[str, str],
    selected: int | None = None,
    n_test: int | None = None,
    to_scale: bool = False,
    height: int = 520,
) -> go.Figure:
    """Test images as points (core.inside.embedding): coloured by true class, a cross where the network was
    wrong, the selected image ringed. Each point's ``customdata`` is its test-image index (the selection).

    Points from ``n_test`` on are training images: small faded rings underneath, not selectable. ``to_scale``:
    one unit is as long across as up (PCA, whose distances mean something; not t-SNE).
    """
    traces = []
    n_test = len(coords) if n_test is None else n_test
    test = np.arange(len(coords)) < n_test
    wrong = np.asarray(labels) != np.asarray(predicted)
    for c, name in enumerate(class_names):
        idx = np.flatnonzero((np.asarray(labels) == c) & ~test)
        if len(idx):
            traces.append(
                {
                    "type": "scattergl" if len(coords) > 2000 else "scatter",
                    "mode": "markers",
                    "name": f"{name} · training",
                    "legendgroup": f"{name} · training",
                    "x": np.round(coords[idx, 0].astype("float64"), 4).tolist(),
                    "y": np.round(coords[idx, 1].astype("float64"), 4).tolist(),
                    "hovertemplate": f"a training image of {name}<extra></extra>",
                    "opacity": 0.45,
                    "marker": {"color": class_color(c), "symbol": "circle-open", "size": 6},
                }
            )
    for c, name in enumerate(class_names):
        for miss in (False, True):
            idx = np.flatnonzero((np.asarray(labels) == c) & (wrong == miss) & test)
            if not len(idx):
                continue
            traces.append(
                {
                    "type": "scattergl" if len(coords) > 2000 else "scatter",
                    "mode": "markers",
                    "name": f"{name} · misclassified" if miss else name,
                    "legendgroup": name,
                    "x": np.round(coords[idx, 0].astype("float64"), 4).tolist(),
                    "y": np.round(coords[idx, 1].astype("float64"), 4).tolist(),
                    "customdata": idx.tolist(),
                    "text": [
                        f"test image #{i}<br>true: {name}<br>predicted: {class_names[int(predicted[i])]} "
                        f"({float(confidence[i]):.0%})"
                        for i in idx
                    ],
                    "hovertemplate": "%{text}<extra></extra>",
                    "marker": {
                        "color": class_color(c),
                        "symbol": "x" if miss else "circle",
                        "size": 11 if miss else 8,
                        "line": {"width": 0.5, "color": "white"},
                    },
                }
            )
    if selected is not None and 0 <= selected < len(coords):
        traces.append(
            {
                "type": "scatter",
                "mode": "markers",
                "name": f"test image #{selected}",
                "x": [float(coords[selected, 0])],
                "y": [float(coords[selected, 1])],
                "customdata": [int(selected)],
                "hoverinfo": "skip",
                "marker": {"color": "rgba(0,0,0,0)", "size": 20, "line": {"width": 2.5, "color": "black"}},
            }
        )
    layout = base_layout(
        height,
        top=90,
        xaxis=axis(title={"text": axes[0]}),
        yaxis=axis(title={"text": axes[1]}, **({"scaleanchor": "x", "scaleratio": 1} if to_scale else {})),
        hovermode="closest",
        clickmode="event+select",
    )
    return go.Figure({"data": traces, "layout": layout})
