"""Plotly figures in one house style: the same colours mean the same thing on every page.

Blue is training, orange is validation, green marks the best epoch, purple the
epoch whose weights were restored, red where training stopped. Runs drawn side
by side (the lab's variants, scratch vs transfer) get one colour each. Every function
takes numbers core already computed and only decides how to draw them.

Speed matters here: the Train, lab and transfer pages redraw their curves for
every watching browser once a second, and the Architecture page redraws on every slider move.
Plotly's object API (``make_subplots``, ``add_vline``, ``update_layout``)
spends 100-300 ms validating each call, so each figure is assembled as one
plain spec and turned into a ``go.Figure`` once (~10-30 ms). The public
functions are also cached with ``st.cache_resource``: a figure is built once
per distinct input (per epoch for a live run) and shared, read-only, by every
session; ``st.plotly_chart`` only serialises it.
"""

from __future__ import annotations

import base64
import io
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
import streamlit as st
from PIL import Image
from plotly.subplots import make_subplots

from core.inside.pictures import tile, upscale

TRAIN = "#2563A8"
VAL = "#E0792B"
TEST = "#6B7F3A"
BEST = "#1E8A53"
RESTORED = "#7A4FB5"
STOPPED = "#B8323F"
MUTED = "#6B7280"
GRID = "rgba(120,120,120,0.18)"
SPLIT_COLORS = {"train": TRAIN, "val": VAL, "test": TEST}
SPLIT_NAMES = {"train": "training", "val": "validation", "test": "test"}
KIND_COLORS = {"input": "#9CA3AF", "Conv2D": TRAIN, "MaxPooling2D": VAL, "vector": TEST}
FONT = dict(family="Source Sans 3, Source Sans Pro, sans-serif", size=13)

# Passed to st.plotly_chart(config=...): no plotly logo, only the tools students use.
CONFIG = {"displaylogo": False, "modeBarButtonsToRemove": ["lasso2d", "select2d", "autoScale2d"]}
_CACHE = dict(show_spinner=False, max_entries=256)


def _axis(**extra: Any) -> dict:
    return {"gridcolor": GRID, "zeroline": False, **extra}


def _layout(height: int, top: int = 72, **extra: Any) -> dict:
    return {
        "height": height,
        "margin": {"l": 10, "r": 10, "t": top, "b": 10},
        "font": FONT,
        "legend": {"orientation": "h", "yanchor": "bottom", "y": 1.12, "xanchor": "left", "x": 0},
        "plot_bgcolor": "rgba(0,0,0,0)",
        "paper_bgcolor": "rgba(0,0,0,0)",
        **extra,
    }


# --------------------------------------------------------------------------- training curves


@st.cache_resource(**_CACHE)
def history_figure(
    history: Mapping[str, Sequence[float]],
    *,
    best: int | None = None,
    restored: int | None = None,
    stopped: int | None = None,
    phases: Sequence[Mapping[str, Any]] = (),
    planned_epochs: int | None = None,
    height: int = 360,
) -> go.Figure:
    """Loss and accuracy, training vs validation, side by side, with the run's key epochs marked.

    ``best``/``restored``/``stopped`` are 1-based epochs; ``phases`` are the
    record's phases (a later phase, e.g. VGG16 fine-tuning, is shaded).
    """
    n = len(history.get("loss", []))
    epochs = list(range(1, n + 1))
    gap = 0.09
    domains = ([0, (1 - gap) / 2], [(1 + gap) / 2, 1])
    axes = (("x", "y"), ("x2", "y2"))
    traces: list[dict] = []
    shapes: list[dict] = []
    notes: list[dict] = []
    pairs = (("loss", "val_loss"), ("accuracy", "val_accuracy"))
    for col, ((train_key, val_key), (xa, ya)) in enumerate(zip(pairs, axes, strict=True)):
        for key, name, color, group in ((train_key, "training", TRAIN, "train"), (val_key, "validation", VAL, "val")):
            values = [float(v) for v in history.get(key, [])]
            if values:
                traces.append(
                    {
                        "type": "scatter",
                        "x": epochs[: len(values)],
                        "y": values,
                        "xaxis": xa,
                        "yaxis": ya,
                        "name": name,
                        "legendgroup": group,
                        "showlegend": col == 0,
                        "mode": "lines+markers",
                        "line": {"color": color, "width": 2.5},
                        "marker": {"size": 6},
                        "hovertemplate": f"{name} {key.replace('val_', '')}: %{{y:.3f}}<extra></extra>",
                    }
                )
        if best is not None and 1 <= best <= len(history.get(val_key, [])):
            traces.append(
                {
                    "type": "scatter",
                    "x": [best],
                    "y": [float(history[val_key][best - 1])],
                    "xaxis": xa,
                    "yaxis": ya,
                    "mode": "markers",
                    "name": "best epoch",
                    "legendgroup": "best",
                    "showlegend": col == 0,
                    "marker": {"symbol": "star", "size": 16, "color": BEST, "line": {"color": "white", "width": 1}},
                    "hovertemplate": f"best epoch {best}<extra></extra>",
                }
            )

    def vline(x: float, color: str, dash: str, text: str, top: bool) -> None:
        for xa, ya in axes:
            shapes.append(
                {
                    "type": "line",
                    "xref": xa,
                    "yref": f"{ya} domain",
                    "x0": x,
                    "x1": x,
                    "y0": 0,
                    "y1": 1,
                    "line": {"color": color, "width": 1.5, "dash": dash},
                }
            )
            notes.append(
                {
                    "xref": xa,
                    "yref": f"{ya} domain",
                    "x": x,
                    "y": 1 if top else 0,
                    "text": text,
                    "showarrow": False,
                    "xanchor": "right",
                    "yanchor": "top" if top else "bottom",
                    "font": {"size": 11, "color": color},
                }
            )

    for phase in list(phases)[1:]:
        first = int(phase.get("first_epoch", 0))
        if first > 1:
            for xa, ya in axes:
                shapes.append(
                    {
                        "type": "rect",
                        "xref": xa,
                        "yref": f"{ya} domain",
                        "x0": first - 0.5,
                        "x1": max(n, first) + 0.5,
                        "y0": 0,
                        "y1": 1,
                        "fillcolor": MUTED,
                        "opacity": 0.08,
                        "line": {"width": 0},
                        "layer": "below",
                    }
                )
            vline(first - 0.5, MUTED, "dot", f"{str(phase.get('name', '')).replace('_', '-')} starts ", top=False)

    marks: dict[int, list[tuple[str, str]]] = {}
    for epoch, label, color in ((best, "best", BEST), (restored, "restored", RESTORED), (stopped, "stopped", STOPPED)):
        if epoch is not None and 1 <= epoch <= max(n, 1):
            marks.setdefault(int(epoch), []).append((label, color))
    for epoch, items in sorted(marks.items()):
        vline(epoch, items[0][1], "dash", " + ".join(label for label, _ in items) + f" ({epoch}) ", top=True)

    titles = ("Loss (lower is better)", "Accuracy (higher is better)")
    for title, domain in zip(titles, domains, strict=True):
        notes.append(
            {
                "xref": "paper",
                "yref": "paper",
                "x": sum(domain) / 2,
                "y": 1.0,
                "yanchor": "bottom",
                "xanchor": "center",
                "text": title,
                "showarrow": False,
                "font": {"size": 15},
            }
        )
    x_max = max(n, planned_epochs or 0, 1)
    xaxis = _axis(title={"text": "epoch"}, range=[0.5, x_max + 0.5], dtick=max(1, math.ceil(x_max / 10)))
    layout = _layout(
        height,
        hovermode="x unified",
        shapes=shapes,
        annotations=notes,
        xaxis={**xaxis, "domain": domains[0], "anchor": "y"},
        xaxis2={**xaxis, "domain": domains[1], "anchor": "y2"},
        yaxis=_axis(rangemode="tozero", anchor="x"),
        yaxis2=_axis(range=[0, 1.02], tickformat=".0%", anchor="x2"),
    )
    return go.Figure({"data": traces, "layout": layout})


# --------------------------------------------------------------------------- runs side by side

# The overfitting lab's variants (core.lab.variants.VARIANT_NAMES), the same colour wherever they are drawn.
VARIANT_COLORS = {"baseline": STOPPED, "dropout": TRAIN, "augment": BEST, "early_stopping": RESTORED, "all": VAL}
# Runs compared in order (scratch CNN, then VGG16 transfer).
SERIES_COLORS = (TRAIN, VAL, BEST, RESTORED, STOPPED)


@st.cache_resource(**_CACHE)
def lab_figure(curves: Sequence[Mapping[str, Any]], show_train: bool = False, height: int = 420) -> go.Figure:
    """Validation loss per epoch of several lab variants, each with a star on its best epoch.

    ``curves`` is :func:`core.lab.results.lab_curves`' output; ``show_train``
    adds each variant's training loss, dotted.
    """
    traces: list[dict] = []
    for c in curves:
        color = VARIANT_COLORS.get(c["variant"], MUTED)
        group = c["variant"]
        traces.append(
            {
                "type": "scatter",
                "x": list(c["epochs"]),
                "y": list(c["val_loss"]),
                "mode": "lines",
                "name": c["title"],
                "legendgroup": group,
                "line": {"color": color, "width": 2.5},
                "hovertemplate": f"{c['title']}<br>validation loss %{{y:.3f}}<extra></extra>",
            }
        )
        if show_train and c["loss"]:
            traces.append(
                {
                    "type": "scatter",
                    "x": list(c["epochs"])[: len(c["loss"])],
                    "y": list(c["loss"]),
                    "mode": "lines",
                    "name": f"{c['title']} (training)",
                    "legendgroup": group,
                    "showlegend": False,
                    "line": {"color": color, "width": 1.5, "dash": "dot"},
                    "hovertemplate": f"{c['title']}<br>training loss %{{y:.3f}}<extra></extra>",
                }
            )
        if c["best_epoch"]:
            traces.append(
                {
                    "type": "scatter",
                    "x": [c["best_epoch"]],
                    "y": [c["best_val_loss"]],
                    "mode": "markers",
                    "name": f"{c['title']}: best epoch",
                    "legendgroup": group,
                    "showlegend": False,
                    "marker": {"symbol": "star", "size": 15, "color": color, "line": {"color": "white", "width": 1}},
                    "hovertemplate": f"{c['title']}<br>best epoch %{{x}}<br>validation loss %{{y:.3f}}<extra></extra>",
                }
            )
    layout = _layout(
        height,
        hovermode="closest",
        xaxis=_axis(title={"text": "epoch"}),
        yaxis=_axis(title={"text": "validation loss"}, rangemode="tozero"),
    )
    return go.Figure({"data": traces, "layout": layout})


@st.cache_resource(**_CACHE)
def comparison_figure(
    val_accuracy: Mapping[str, Sequence[float]], phases: Sequence[Mapping[str, Any]] = (), height: int = 400
) -> go.Figure:
    """Validation accuracy per epoch of a few runs (legend name -> values), one colour each.

    ``phases`` are one run's record phases: a later phase (VGG16 fine-tuning)
    is marked where it starts.
    """
    traces = [
        {
            "type": "scatter",
            "x": list(range(1, len(values) + 1)),
            "y": [float(v) for v in values],
            "mode": "lines+markers",
            "name": name,
            "line": {"color": SERIES_COLORS[i % len(SERIES_COLORS)], "width": 2.5},
            "hovertemplate": f"{name}: %{{y:.1%}}<extra></extra>",
        }
        for i, (name, values) in enumerate(val_accuracy.items())
    ]
    shapes, notes = [], []
    for phase in list(phases)[1:]:
        x = int(phase.get("first_epoch", 1)) - 0.5
        shapes.append(
            {
                "type": "line",
                "xref": "x",
                "yref": "paper",
                "x0": x,
                "x1": x,
                "y0": 0,
                "y1": 1,
                "line": {"color": MUTED, "dash": "dash"},
            }
        )
        notes.append(
            {
                "x": x,
                "y": 1,
                "xref": "x",
                "yref": "paper",
                "showarrow": False,
                "xanchor": "left",
                "yanchor": "top",
                "text": f" {str(phase.get('name', '')).replace('_', '-')} starts",
            }
        )
    layout = _layout(
        height,
        shapes=shapes,
        annotations=notes,
        hovermode="x unified",
        xaxis=_axis(title={"text": "epoch"}),
        yaxis=_axis(title={"text": "validation accuracy"}, range=[0, 1.02], tickformat=".0%"),
    )
    return go.Figure({"data": traces, "layout": layout})


# --------------------------------------------------------------------------- data


@st.cache_resource(**_CACHE)
def class_counts_figure(
    class_names: Sequence[str], counts: Mapping[str, Sequence[int]], height: int = 320
) -> go.Figure:
    """Images per class in each split, as grouped bars."""
    traces = [
        {
            "type": "bar",
            "x": list(class_names),
            "y": list(counts[split]),
            "name": SPLIT_NAMES[split],
            "marker": {"color": SPLIT_COLORS[split]},
            "text": list(counts[split]),
            "textposition": "outside",
            "hovertemplate": f"%{{x}}: %{{y}} {SPLIT_NAMES[split]} images<extra></extra>",
        }
        for split in ("train", "val", "test")
        if split in counts
    ]
    layout = _layout(height, barmode="group", bargap=0.25, xaxis=_axis(), yaxis=_axis(title={"text": "images"}))
    return go.Figure({"data": traces, "layout": layout})


# --------------------------------------------------------------------------- architecture


@st.cache_resource(**_CACHE)
def feature_map_figure(stages: Sequence[tuple[str, str, tuple[int, ...]]], height: int = 300) -> go.Figure:
    """How the feature map shrinks and deepens: one box per stage.

    ``stages`` are ``(name, kind, output_shape)``. A box's height is the map's
    side relative to the input; its width grows with the number of channels
    (log scale, so 3 and 512 both fit). A 1D vector (flatten, dense) is a thin bar.
    """
    traces: list[dict] = []
    notes: list[dict] = []
    x = 0.0
    side0 = max((s[2][0] for s in stages if len(s[2]) == 3), default=1)
    depth_max = max((math.log2(max(s[2][-1], 2)) for s in stages), default=1.0)
    for name, kind, shape in stages:
        if len(shape) == 3:
            h = max(shape[0] / side0, 0.03)
            w = 0.25 + 0.75 * math.log2(max(shape[2], 2)) / depth_max
            label = f"{shape[0]}×{shape[1]}×{shape[2]}"
            color = KIND_COLORS.get(kind, TRAIN)
        else:
            h, w = 0.9, 0.12
            label = f"{shape[0]:,}"
            color = KIND_COLORS["vector"]
        x0, x1 = x, x + w
        traces.append(
            {
                "type": "scatter",
                "x": [x0, x1, x1, x0, x0],
                "y": [-h / 2, -h / 2, h / 2, h / 2, -h / 2],
                "fill": "toself",
                "mode": "lines",
                "line": {"color": color, "width": 1},
                "fillcolor": color,
                "opacity": 0.85,
                "name": name,
                "showlegend": False,
                "hoveron": "fills",
                "hovertemplate": f"<b>{name}</b> ({kind})<br>output {label}<extra></extra>",
            }
        )
        notes.append(
            {"x": (x0 + x1) / 2, "y": -0.62, "text": label, "showarrow": False, "font": {"size": 11}, "textangle": -35}
        )
        notes.append(
            {
                "x": (x0 + x1) / 2,
                "y": 0.58,
                "text": name.replace("block", "b"),
                "showarrow": False,
                "font": {"size": 10, "color": MUTED},
                "textangle": -35,
            }
        )
        x = x1 + 0.35
    legend = (("input", "input"), ("Conv2D", "convolution"), ("MaxPooling2D", "pooling"), ("vector", "vector"))
    for kind, label in legend:
        if any(k == kind or (kind == "vector" and len(s) == 1) for _, k, s in stages):
            traces.append(
                {
                    "type": "scatter",
                    "x": [None],
                    "y": [None],
                    "mode": "markers",
                    "name": label,
                    "marker": {"symbol": "square", "size": 12, "color": KIND_COLORS[kind]},
                }
            )
    layout = _layout(
        height,
        annotations=notes,
        showlegend=True,
        xaxis={"visible": False, "range": [-0.3, x + 0.1]},
        yaxis={"visible": False, "range": [-0.95, 0.85]},
    )
    return go.Figure({"data": traces, "layout": layout})


# --------------------------------------------------------------------------- predictions


@st.cache_resource(**_CACHE)
def confusion_figure(
    matrix: Sequence[Sequence[int]],
    class_names: Sequence[str],
    selected: tuple[int, int] | None = None,
    height: int | None = None,
) -> go.Figure:
    """The confusion matrix as a heatmap whose cells can be clicked.

    Plotly heatmaps do not report selections, so an invisible square marker sits
    on every cell: clicking a cell selects that marker, whose x/y are the
    predicted and true class names.
    """
    names = [str(n) for n in class_names]
    k = len(names)
    height = height or min(680, 200 + 80 * k)
    z = [[int(v) for v in row] for row in matrix]
    xs, ys, tips = [], [], []
    for r in range(k):
        for c in range(k):
            xs.append(names[c])
            ys.append(names[r])
            v = z[r][c]
            what = "correct" if r == c else f"{names[r]} mistaken for {names[c]}"
            tips.append(f"true {names[r]}, predicted {names[c]}: {v} image{'s' if v != 1 else ''} ({what})")
    traces = [
        {
            "type": "heatmap",
            "z": z,
            "x": names,
            "y": names,
            "colorscale": "Blues",
            "showscale": False,
            "text": [[str(v) for v in row] for row in z],
            "texttemplate": "%{text}",
            "textfont": {"size": 15},
            "hoverinfo": "skip",
            "xgap": 2,
            "ygap": 2,
        },
        {
            "type": "scatter",
            "x": xs,
            "y": ys,
            "mode": "markers",
            "name": "cells",
            "showlegend": False,
            "marker": {
                "symbol": "square",
                "size": max(18, int((height - 120) / max(k, 1) * 0.9)),
                "color": "rgba(0,0,0,0)",
            },
            "selected": {"marker": {"opacity": 0}},
            "unselected": {"marker": {"opacity": 0}},
            "hovertext": tips,
            "hovertemplate": "%{hovertext}<extra></extra>",
        },
    ]
    shapes = []
    if selected is not None:
        r, c = selected
        shapes.append(
            {
                "type": "rect",
                "x0": c - 0.5,
                "x1": c + 0.5,
                "y0": r - 0.5,
                "y1": r + 0.5,
                "line": {"color": VAL, "width": 4},
                "fillcolor": "rgba(0,0,0,0)",
            }
        )
    layout = _layout(
        height,
        top=10,
        shapes=shapes,
        clickmode="event+select",
        dragmode=False,
        hovermode="closest",
        xaxis=_axis(title={"text": "predicted class"}, side="bottom", showgrid=False, type="category"),
        yaxis=_axis(
            title={"text": "true class"},
            autorange="reversed",
            showgrid=False,
            type="category",
            scaleanchor="x",
            constrain="domain",
        ),
    )
    return go.Figure({"data": traces, "layout": layout})


def probabilities_figure(
    class_names: Sequence[str], probs: Sequence[float], true_class: int | None = None, height: int | None = None
) -> go.Figure:
    """One image's class probabilities as horizontal bars; the top class is dark, the true class outlined."""
    names = [str(n) for n in class_names]
    p = [float(v) for v in probs]
    top = max(range(len(p)), key=lambda i: p[i]) if p else -1
    trace = {
        "type": "bar",
        "x": p,
        "y": names,
        "orientation": "h",
        "marker": {
            "color": [TRAIN if i == top else "rgba(37,99,168,0.35)" for i in range(len(names))],
            "line": {"color": [BEST if i == true_class else "rgba(0,0,0,0)" for i in range(len(names))], "width": 3},
        },
        "text": [f"{v:.0%}" for v in p],
        "textposition": "outside",
        "hovertemplate": "%{y}: %{x:.1%}<extra></extra>",
    }
    layout = _layout(
        height or 60 + 34 * len(names),
        top=20,
        xaxis=_axis(range=[0, 1.15], tickformat=".0%", title={"text": "probability"}),
        yaxis=_axis(autorange="reversed"),
    )
    return go.Figure({"data": [trace], "layout": layout})


# --------------------------------------------------------------------------- inside the network


def _png_uri(rgb: np.ndarray) -> str:
    buf = io.BytesIO()
    Image.fromarray(np.asarray(rgb, dtype=np.uint8).squeeze()).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _grid(values: np.ndarray) -> list:
    """A 2-D array as JSON-friendly rows: 4 decimals, None for NaN (a gap)."""
    rounded = np.round(np.asarray(values, dtype="float64"), 4)
    return [[None if math.isnan(v) else v for v in row] for row in rounded.tolist()]


def _picture_axes(height: int, **extra: Any) -> dict:
    return _layout(
        height,
        top=10,
        xaxis={"visible": False, "constrain": "domain"},
        yaxis={"visible": False, "autorange": "reversed", "scaleanchor": "x", "constrain": "domain"},
        **extra,
    )


@st.cache_resource(**_CACHE)
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


@st.cache_resource(**_CACHE)
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


@st.cache_resource(**_CACHE)
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


@st.cache_resource(**_CACHE)
def filters_figure(rgb: np.ndarray, height: int = 360) -> go.Figure:
    """First-layer filters (F, k, k, 3) in [0, 1] as small RGB patches in a grid (grey = a zero weight)."""
    k = rgb.shape[1]
    factor = max(1, math.ceil(24 / k))
    patches = np.repeat(np.repeat(rgb, factor, axis=1), factor, axis=2)  # (F, k', k', 3)
    channels = [tile(np.moveaxis(patches[..., c], 0, -1), gap=2)[0] for c in range(3)]
    picture = np.nan_to_num(np.stack(channels, axis=-1), nan=1.0)
    trace = {"type": "image", "source": _png_uri((picture * 255).round()), "hoverinfo": "skip"}
    return go.Figure({"data": [trace], "layout": _picture_axes(height)})


@st.cache_resource(**_CACHE)
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


@st.cache_resource(**_CACHE)
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


def spec(fig: go.Figure) -> dict:
    """The figure as plain JSON data (for tests and debugging)."""
    return json.loads(fig.to_json())


# --------------------------------------------------------------------------- comparing runs, repeats, sweeps


@st.cache_resource(**_CACHE)
def overlay_figure(
    runs: Sequence[tuple[str, tuple[float, ...], tuple[float, ...], int]], metric: str = "loss", height: int = 420
) -> go.Figure:
    """Several runs' curves on one chart: validation solid, training dotted, one colour per run, and each
    run's best epoch (lowest val_loss) marked with a star on its validation curve.

    ``runs`` are ``(name, training values, validation values, best epoch)``, hashable for the cache.
    """
    traces: list[dict] = []
    for i, (name, train, val, best) in enumerate(runs):
        color = SERIES_COLORS[i % len(SERIES_COLORS)]
        x = list(range(1, max(len(train), len(val)) + 1))
        traces.append(
            {
                "type": "scatter",
                "x": x[: len(val)],
                "y": list(val),
                "mode": "lines",
                "name": name,
                "legendgroup": name,
                "line": {"color": color, "width": 2.5},
                "hovertemplate": f"{name} validation: %{{y:.3f}}<extra></extra>",
            }
        )
        traces.append(
            {
                "type": "scatter",
                "x": x[: len(train)],
                "y": list(train),
                "mode": "lines",
                "name": f"{name} (training)",
                "legendgroup": name,
                "showlegend": False,
                "line": {"color": color, "width": 1.5, "dash": "dot"},
                "hovertemplate": f"{name} training: %{{y:.3f}}<extra></extra>",
            }
        )
        if 0 < best <= len(val):
            traces.append(
                {
                    "type": "scatter",
                    "x": [best],
                    "y": [val[best - 1]],
                    "mode": "markers",
                    "name": f"{name}: best epoch {best}",
                    "legendgroup": name,
                    "showlegend": False,
                    "marker": {"symbol": "star", "size": 15, "color": BEST, "line": {"color": color, "width": 2}},
                    "hovertemplate": f"{name}: best epoch {best}<extra></extra>",
                }
            )
    yaxis = _axis(title={"text": metric})
    if "accuracy" in metric:
        yaxis.update(range=[0, 1.02], tickformat=".0%")
    layout = _layout(
        height,
        hovermode="closest",
        xaxis=_axis(title={"text": "epoch"}),
        yaxis=yaxis,
        title={"text": f"{metric}: validation solid, training dotted, ★ best epoch", "x": 0, "font": {"size": 14}},
    )
    return go.Figure({"data": traces, "layout": layout})


@st.cache_resource(**_CACHE)
def band_figure(
    curves: Sequence[tuple[str, tuple[float, ...], tuple[float, ...], tuple[float, ...]]],
    metric: str = "val_accuracy",
    height: int = 380,
) -> go.Figure:
    """Mean curves over seeds with their min-max band: ``(name, mean, min, max)`` per configuration."""
    traces: list[dict] = []
    for i, (name, mean, lo, hi) in enumerate(curves):
        color = SERIES_COLORS[i % len(SERIES_COLORS)]
        x = list(range(1, len(mean) + 1))
        traces.append(
            {
                "type": "scatter",
                "x": x + x[::-1],
                "y": list(hi) + list(lo)[::-1],
                "fill": "toself",
                "fillcolor": color,
                "opacity": 0.18,
                "line": {"width": 0},
                "hoverinfo": "skip",
                "name": f"{name} (min-max over seeds)",
                "showlegend": False,
            }
        )
        traces.append(
            {
                "type": "scatter",
                "x": x,
                "y": list(mean),
                "mode": "lines+markers",
                "name": name,
                "line": {"color": color, "width": 2.5},
                "hovertemplate": f"{name} mean: %{{y:.3f}}<extra></extra>",
            }
        )
    yaxis = _axis(title={"text": f"{metric} (mean, band = min to max)"})
    if "accuracy" in metric:
        yaxis.update(tickformat=".0%")
    return go.Figure({"data": traces, "layout": _layout(height, xaxis=_axis(title={"text": "epoch"}), yaxis=yaxis)})


@st.cache_resource(**_CACHE)
def sweep_figure(
    names: tuple[str, ...],
    values: tuple[tuple[Any, ...], ...],
    z: tuple[tuple[float | None, ...], ...],
    height: int = 380,
) -> go.Figure:
    """A sweep's best-epoch validation accuracy: a heatmap over two settings, a line over one."""
    if len(names) == 1:
        x = [str(v) for v in values[0]]
        hover = f"{names[0]} %{{x}}: %{{y:.1%}}<extra></extra>"
        data = [
            {
                "type": "scatter",
                "x": x,
                "y": list(z[0]),
                "mode": "lines+markers",
                "name": "best-epoch val acc",
                "line": {"color": VAL, "width": 2.5},
                "hovertemplate": hover,
            }
        ]
        layout = _layout(
            height,
            xaxis=_axis(title={"text": names[0]}, type="category"),
            yaxis=_axis(title={"text": "best-epoch validation accuracy"}, tickformat=".0%"),
        )
        return go.Figure({"data": data, "layout": layout})
    text = [[("-" if v is None else f"{v:.1%}") for v in row] for row in z]
    data = [
        {
            "type": "heatmap",
            "z": [list(r) for r in z],
            "x": [str(v) for v in values[1]],
            "y": [str(v) for v in values[0]],
            "text": text,
            "texttemplate": "%{text}",
            "colorscale": "Blues",
            "zmin": 0,
            "zmax": 1,
            "colorbar": {"title": {"text": "val acc"}, "tickformat": ".0%"},
            "hovertemplate": f"{names[0]} %{{y}}, {names[1]} %{{x}}: %{{text}}<extra></extra>",
        }
    ]
    layout = _layout(
        height,
        xaxis=_axis(title={"text": names[1]}, type="category"),
        yaxis=_axis(title={"text": names[0]}, type="category"),
    )
    return go.Figure({"data": data, "layout": layout})


@st.cache_resource(**_CACHE)
def small_multiples_figure(
    panels: Sequence[tuple[str, tuple[float, ...], tuple[float, ...]]], columns: int = 4, panel_height: int = 170
) -> go.Figure:
    """One small loss chart per run (training blue, validation orange, the best epoch's point green), axes shared.

    ``panels``: ``(title, training loss, validation loss)`` per run, in the sweep's order.
    """
    rows = max(1, -(-len(panels) // columns))
    fig = make_subplots(
        rows=rows,
        cols=columns,
        shared_yaxes=True,
        subplot_titles=[p[0] for p in panels],
        horizontal_spacing=0.03,
        vertical_spacing=0.5 / rows,
    )
    for i, (_, loss, val_loss) in enumerate(panels):
        r, c = i // columns + 1, i % columns + 1
        epochs = list(range(1, len(loss) + 1))
        fig.add_scatter(
            x=epochs,
            y=list(loss),
            mode="lines",
            line={"color": TRAIN, "width": 1.5},
            name="training",
            legendgroup="train",
            showlegend=i == 0,
            row=r,
            col=c,
        )
        fig.add_scatter(
            x=epochs,
            y=list(val_loss),
            mode="lines",
            line={"color": VAL, "width": 1.8},
            name="validation",
            legendgroup="val",
            showlegend=i == 0,
            row=r,
            col=c,
        )
        if val_loss:
            best = int(np.argmin(val_loss))
            fig.add_scatter(
                x=[best + 1],
                y=[val_loss[best]],
                mode="markers",
                marker={"color": BEST, "size": 8},
                name="best epoch",
                legendgroup="best",
                showlegend=i == 0,
                row=r,
                col=c,
            )
    fig.update_layout(**_layout(rows * panel_height + 80, top=60))
    fig.update_annotations(font={"size": 11})
    fig.update_xaxes(gridcolor=GRID)
    fig.update_yaxes(gridcolor=GRID)
    return fig
