"""The charts' house style: one palette, one layout, one cache setting, shared by every figure family.

Blue is training, orange is validation, green marks the best epoch, purple the
epoch whose weights were restored, red where training stopped. The test split,
the layer kinds, the lab's variants and runs compared in order each have their
colours here too, so a colour means the same thing on every page.
"""

from __future__ import annotations

import json
from typing import Any

import plotly.graph_objects as go

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
# The overfitting lab's variants (core.lab.variants.VARIANT_NAMES), the same colour wherever they are drawn.
VARIANT_COLORS = {"baseline": STOPPED, "dropout": TRAIN, "augment": BEST, "early_stopping": RESTORED, "all": VAL}
# Runs compared in order (scratch CNN, then VGG16 transfer).
SERIES_COLORS = (TRAIN, VAL, BEST, RESTORED, STOPPED)
FONT = dict(family="Source Sans 3, Source Sans Pro, sans-serif", size=13)

# Passed to st.plotly_chart(config=...): no plotly logo, only the tools students use.
CONFIG = {"displaylogo": False, "modeBarButtonsToRemove": ["lasso2d", "select2d", "autoScale2d"]}
# Every figure function is wrapped in st.cache_resource(**CACHE): built once per input, shared read-only.
CACHE = dict(show_spinner=False, max_entries=256)


def axis(**extra: Any) -> dict:
    """An axis in the house style (light grid, no zero line), with ``extra`` on top."""
    return {"gridcolor": GRID, "zeroline": False, **extra}


def base_layout(height: int, top: int = 72, **extra: Any) -> dict:
    """A figure's layout in the house style: the font, a horizontal legend above, no backgrounds."""
    return {
        "height": height,
        "margin": {"l": 10, "r": 10, "t": top, "b": 10},
        "font": FONT,
        "legend": {"orientation": "h", "yanchor": "bottom", "y": 1.12, "xanchor": "left", "x": 0},
        "plot_bgcolor": "rgba(0,0,0,0)",
        "paper_bgcolor": "rgba(0,0,0,0)",
        **extra,
    }


def spec(fig: go.Figure) -> dict:
    """The figure as plain JSON data (for tests and debugging)."""
    return json.loads(fig.to_json())
