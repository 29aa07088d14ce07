"""Predictions on the test set: the clickable confusion matrix and one image's class probabilities."""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go
import streamlit as st

from ui.charts.common import BEST, CACHE, TRAIN, VAL, axis, base_layout


@st.cache_resource(**CACHE)
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
    layout = base_layout(
        height,
        top=10,
        shapes=shapes,
        clickmode="event+select",
        dragmode=False,
        hovermode="closest",
        xaxis=axis(title={"text": "predicted class"}, side="bottom", showgrid=False, type="category"),
        yaxis=axis(
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
    layout = base_layout(
        height or 60 + 34 * len(names),
        top=20,
        xaxis=axis(range=[0, 1.15], tickformat=".0%", title={"text": "probability"}),
        yaxis=axis(autorange="reversed"),
    )
    return go.Figure({"data": [trace], "layout": layout})
