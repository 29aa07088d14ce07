"""The dataset: images per class in each split."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import plotly.graph_objects as go
import streamlit as st

from ui.charts.common import CACHE, SPLIT_COLORS, SPLIT_NAMES, axis, base_layout


@st.cache_resource(**CACHE)
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
    layout = base_layout(height, barmode="group", bargap=0.25, xaxis=axis(), yaxis=axis(title={"text": "images"}))
    return go.Figure({"data": traces, "layout": layout})
