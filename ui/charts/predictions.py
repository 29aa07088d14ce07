"""Predictions on the test set: the clickable confusion matrix, one image's class probabilities, the reliability
diagram (calibration)."""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go
import streamlit as st

from ui.charts.common import BEST, CACHE, MUTED, TEST, TRAIN, VAL, axis, base_layout


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


@st.cache_resource(**CACHE)
def reliability_figure(before: dict, after: dict | None = None, height: int = 380) -> go.Figure:
    """The reliability diagram: each confidence bin's accuracy against the diagonal of honest confidence.

    ``before`` and ``after`` are :class:`core.results.Reliability` as dicts (``to_dict()``): the test
    images as the network says them (bars, with each bin's count on top) and after temperature scaling
    (diamonds). A bar below the diagonal is a bin where the network is surer than it is right.
    """
    edges = [float(e) for e in before["edges"]]
    centres = [(lo + hi) / 2 for lo, hi in zip(edges[:-1], edges[1:], strict=True)]
    width = (edges[1] - edges[0]) * 0.9 if len(edges) > 1 else 0.9
    spans = [f"{lo:.0%}-{hi:.0%}" for lo, hi in zip(edges[:-1], edges[1:], strict=True)]

    def tips(rel: dict) -> list[str]:
        out = []
        for span, n, conf, acc in zip(spans, rel["counts"], rel["confidence"], rel["accuracy"], strict=True):
            images = f"{n} test image{'' if n == 1 else 's'}"
            out.append(
                f"{span}: {images}" if not n else f"{span}: {images}, said {conf:.0%} on average, right {acc:.0%}"
            )
        return out

    traces = [
        {
            "type": "scatter",
            "x": [0, 1],
            "y": [0, 1],
            "mode": "lines",
            "name": "honest",
            "line": {"color": MUTED, "dash": "dash", "width": 1.5},
            "hoverinfo": "skip",
        },
        {
            "type": "bar",
            "x": centres,
            "y": [a if a is not None else 0 for a in before["accuracy"]],
            "width": width,
            "name": "the network",
            "marker": {"color": TEST, "opacity": 0.85},
            "text": [str(n) if n else "" for n in before["counts"]],
            "textposition": "outside",
            "hovertext": tips(before),
            "hovertemplate": "%{hovertext}<extra></extra>",
        },
    ]
    if after is not None:
        filled = [k for k, n in enumerate(after["counts"]) if n]
        traces.append(
            {
                "type": "scatter",
                "x": [after["confidence"][k] for k in filled],
                "y": [after["accuracy"][k] for k in filled],
                "mode": "markers+lines",
                "name": "after temperature scaling",
                "marker": {"color": VAL, "symbol": "diamond", "size": 10},
                "line": {"color": VAL, "width": 1.5},
                "hovertext": [tips(after)[k] for k in filled],
                "hovertemplate": "%{hovertext}<extra></extra>",
            }
        )
    layout = base_layout(
        height,
        xaxis=axis(
            range=[0, 1],
            tickformat=".0%",
            dtick=0.1,
            automargin=True,
            title={"text": "confidence: the top class' probability"},
        ),
        yaxis=axis(range=[0, 1.12], tickformat=".0%", automargin=True, title={"text": "accuracy: share right"}),
        bargap=0,
        hovermode="closest",
    )
    return go.Figure({"data": traces, "layout": layout})
