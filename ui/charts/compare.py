"""Several runs on one chart: the lab's variants, scratch vs transfer, runs overlaid, repeats' mean and band.

Each run (or configuration) gets one colour (:data:`ui.charts.common.SERIES_COLORS`, the lab's
:data:`~ui.charts.common.VARIANT_COLORS`); validation is solid, training dotted, the best epoch a star.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go
import streamlit as st

from ui.charts.common import (
    BEST,
    CACHE,
    MUTED,
    SERIES_COLORS,
    VARIANT_COLORS,
    axis,
    base_layout,
)


@st.cache_resource(**CACHE)
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
    layout = base_layout(
        height,
        hovermode="closest",
        xaxis=axis(title={"text": "epoch"}),
        yaxis=axis(title={"text": "validation loss"}, rangemode="tozero"),
    )
    return go.Figure({"data": traces, "layout": layout})


@st.cache_resource(**CACHE)
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
    layout = base_layout(
        height,
        shapes=shapes,
        annotations=notes,
        hovermode="x unified",
        xaxis=axis(title={"text": "epoch"}),
        yaxis=axis(title={"text": "validation accuracy"}, range=[0, 1.02], tickformat=".0%"),
    )
    return go.Figure({"data": traces, "layout": layout})


@st.cache_resource(**CACHE)
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
    yaxis = axis(title={"text": metric})
    if "accuracy" in metric:
        yaxis.update(range=[0, 1.02], tickformat=".0%")
    layout = base_layout(
        height,
        hovermode="closest",
        xaxis=axis(title={"text": "epoch"}),
        yaxis=yaxis,
        title={"text": f"{metric}: validation solid, training dotted, ★ best epoch", "x": 0, "font": {"size": 14}},
    )
    return go.Figure({"data": traces, "layout": layout})


@st.cache_resource(**CACHE)
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
    yaxis = axis(title={"text": f"{metric} (mean, band = min to max)"})
    if "accuracy" in metric:
        yaxis.update(tickformat=".0%")
    return go.Figure({"data": traces, "layout": base_layout(height, xaxis=axis(title={"text": "epoch"}), yaxis=yaxis)})
