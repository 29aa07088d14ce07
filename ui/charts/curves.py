"""One run's training curves: loss and accuracy, training vs validation, with the run's key epochs marked.

The Train page redraws it once a second for every watching browser while a run trains (Diagnostics draws a
stored run's), so the figure is one plain spec turned into a ``go.Figure`` once (see :mod:`ui.charts`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go
import streamlit as st

from ui.charts.common import BEST, CACHE, MUTED, RESTORED, STOPPED, TRAIN, VAL, axis, base_layout


@st.cache_resource(**CACHE)
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
    xaxis = axis(title={"text": "epoch"}, range=[0.5, x_max + 0.5], dtick=max(1, math.ceil(x_max / 10)))
    layout = base_layout(
        height,
        hovermode="x unified",
        shapes=shapes,
        annotations=notes,
        xaxis={**xaxis, "domain": domains[0], "anchor": "y"},
        xaxis2={**xaxis, "domain": domains[1], "anchor": "y2"},
        yaxis=axis(rangemode="tozero", anchor="x"),
        yaxis2=axis(range=[0, 1.02], tickformat=".0%", anchor="x2"),
    )
    return go.Figure({"data": traces, "layout": layout})


@st.cache_resource(**CACHE)
def lr_find_figure(
    lrs: Sequence[float],
    losses: Sequence[float],
    smoothed: Sequence[float],
    *,
    suggested: float | None,
    rule: str | None,
    falls: tuple[float, float] | None,
    height: int = 380,
) -> go.Figure:
    """A learning-rate range test: each step's loss (faint) and the smoothed loss against the learning rate on a
    log axis, the range where the smoothed loss falls shaded, the suggested rate marked with its rule written
    on the chart."""
    x = [float(v) for v in lrs]
    clean = [float(v) if math.isfinite(v) else None for v in losses]
    line = [float(v) if math.isfinite(v) else None for v in smoothed]
    traces: list[dict] = [
        {
            "type": "scatter",
            "x": x,
            "y": clean,
            "name": "loss of each step",
            "mode": "markers",
            "marker": {"color": MUTED, "size": 4, "opacity": 0.45},
        },
        {
            "type": "scatter",
            "x": x,
            "y": line,
            "name": "smoothed loss",
            "mode": "lines",
            "line": {"color": TRAIN, "width": 2.5},
        },
    ]
    shapes: list[dict] = []
    notes: list[dict] = []
    if falls is not None:
        shapes.append(
            {
                "type": "rect",
                "xref": "x",
                "yref": "paper",
                "x0": falls[0],
                "x1": falls[1],
                "y0": 0,
                "y1": 1,
                "fillcolor": BEST,
                "opacity": 0.08,
                "line": {"width": 0},
                "layer": "below",
            }
        )
    if suggested is not None:
        shapes.append(
            {
                "type": "line",
                "xref": "x",
                "yref": "paper",
                "x0": suggested,
                "x1": suggested,
                "y0": 0,
                "y1": 1,
                "line": {"color": BEST, "width": 2, "dash": "dash"},
            }
        )
        notes.append(
            {
                "xref": "x",
                "yref": "paper",
                "x": math.log10(suggested),
                "y": 1.0,
                "yanchor": "bottom",
                "showarrow": False,
                "text": f"suggested {suggested:.2g}: {rule}",
                "font": {"color": BEST},
            }
        )
    finite = [v for v in line if v is not None]
    top = 1.3 * max(finite[: max(1, len(finite) // 2)] + finite[:1]) if finite else None
    layout = base_layout(
        height,
        top=96,
        xaxis=axis(type="log", title={"text": "learning rate (log scale)"}, exponentformat="power"),
        yaxis=axis(title={"text": "training loss"}, range=[0, top] if top else None),
        shapes=shapes,
        annotations=notes,
        hovermode="x unified",
    )
    return go.Figure({"data": traces, "layout": layout})
