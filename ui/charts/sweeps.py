"""A sweep's results: the best-epoch validation accuracy over the grid, and one small loss chart per point."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from ui.charts.common import BEST, CACHE, GRID, TRAIN, VAL, axis, base_layout


@st.cache_resource(**CACHE)
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
        layout = base_layout(
            height,
            xaxis=axis(title={"text": names[0]}, type="category"),
            yaxis=axis(title={"text": "best-epoch validation accuracy"}, tickformat=".0%"),
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
    layout = base_layout(
        height,
        xaxis=axis(title={"text": names[1]}, type="category"),
        yaxis=axis(title={"text": names[0]}, type="category"),
    )
    return go.Figure({"data": data, "layout": layout})


@st.cache_resource(**CACHE)
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
    fig.update_layout(**base_layout(rows * panel_height + 80, top=60))
    fig.update_annotations(font={"size": 11})
    fig.update_xaxes(gridcolor=GRID)
    fig.update_yaxes(gridcolor=GRID)
    return fig
