"""The network's shape: how the feature map shrinks and deepens, stage by stage (the Architecture page).

It is redrawn on every slider move, so it is one plain spec, built once per input.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import plotly.graph_objects as go
import streamlit as st

from ui.charts.common import CACHE, KIND_COLORS, MUTED, TRAIN, base_layout


@st.cache_resource(**CACHE)
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
    layout = base_layout(
        height,
        annotations=notes,
        showlegend=True,
        xaxis={"visible": False, "range": [-0.3, x + 0.1]},
        yaxis={"visible": False, "range": [-0.95, 0.85]},
    )
    return go.Figure({"data": traces, "layout": layout})
