"""One stored run as a single self-contained HTML file: configuration, layer table, curves with the best
epoch, the verdict and its evidence, the confusion matrix and the per-class metrics, and (given the run's
:class:`core.results.calibration.Calibration`) the reliability diagram, the calibration error before and
after temperature scaling and the sentences the Predictions page says about them.

It opens with no network: plotly.js is embedded once, inline (``plotly.offline.get_plotlyjs()``, about
4.8 MB), and there are no ``<script src>`` or stylesheet links. plotly is imported inside
:func:`report_html` only.
"""

from __future__ import annotations

import html
import json
from typing import TYPE_CHECKING, Any

from core.base.config import ModelConfig
from core.models.layer_table import layer_table
from core.results.calibration import Calibration, Reliability, confidence_sentence, temperature_sentence
from core.results.compare import run_metrics, run_settings
from core.results.diagnosis import diagnosis_of

if TYPE_CHECKING:  # pragma: no cover
    from core.store.runstore import RunRecord

BLUE, ORANGE, GREEN = "#1f77b4", "#ff7f0e", "#2ca02c"

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1000px; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }
th { background: #f3f3f3; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.verdict { padding: 0.8em 1em; background: #f6f8fa; border-left: 4px solid #2ca02c; }
.plot { width: 100%; height: 380px; }
"""


def _e(v: Any) -> str:
    return html.escape("" if v is None else str(v))


def _table(head: list[str], rows: list[list[Any]], numeric: set[int] | None = None) -> str:
    numeric = numeric or set()
    out = ["<table><tr>", *(f"<th>{_e(h)}</th>" for h in head), "</tr>"]
    for r in rows:
        out.append(
            "<tr>"
            + "".join(f"<td{' class=num' if i in numeric else ''}>{_e(v)}</td>" for i, v in enumerate(r))
            + "</tr>"
        )
    out.append("</table>")
    return "".join(out)


def _fmt(v: Any, spec: str = ".4f") -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return format(v, spec)
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    return str(v)


def _curve_figure(rec: RunRecord, key: str, title: str, best: int) -> dict[str, Any]:
    h = rec.history
    epochs = list(range(1, len(h.get(key, [])) + 1))
    data = [
        {"x": epochs, "y": h.get(key, []), "name": "training", "mode": "lines+markers", "line": {"color": BLUE}},
        {
            "x": epochs,
            "y": h.get(f"val_{key}", []),
            "name": "validation",
            "mode": "lines+markers",
            "line": {"color": ORANGE},
        },
    ]
    layout = {
        "title": {"text": title},
        "xaxis": {"title": {"text": "epoch"}},
        "yaxis": {"title": {"text": key}},
        "shapes": [
            {
                "type": "line",
                "x0": best,
                "x1": best,
                "yref": "paper",
                "y0": 0,
                "y1": 1,
                "line": {"color": GREEN, "dash": "dash"},
            }
        ],
        "annotations": [
            {
                "x": best,
                "yref": "paper",
                "y": 1,
                "text": f"best epoch {best}",
                "showarrow": False,
                "font": {"color": GREEN},
            }
        ],
        "margin": {"t": 50, "r": 20},
    }
    return {"data": data, "layout": layout}


def _confusion_figure(rec: RunRecord) -> dict[str, Any]:
    names = list(rec.test.get("class_names", []))
    z = rec.test.get("confusion_matrix", [])
    data = [
        {
            "type": "heatmap",
            "z": z,
            "x": names,
            "y": names,
            "colorscale": "Blues",
            "reversescale": True,
            "texttemplate": "%{z}",
            "hovertemplate": "true %{y}, predicted %{x}: %{z}<extra></extra>",
        }
    ]
    layout = {
        "title": {"text": "Confusion matrix (test set)"},
        "xaxis": {"title": {"text": "predicted"}},
        "yaxis": {"title": {"text": "true"}, "autorange": "reversed"},
    }
    return {"data": data, "layout": layout}


def _reliability_figure(cal: Calibration) -> dict[str, Any]:
    """The reliability diagram: each confidence bin's accuracy (bars, its image count on top) against the
    diagonal of honest confidence, and the bins after temperature scaling (diamonds)."""
    before = cal.before
    edges = before.edges
    centres = [(lo + hi) / 2 for lo, hi in zip(edges[:-1], edges[1:], strict=True)]
    data: list[dict[str, Any]] = [
        {"x": [0, 1], "y": [0, 1], "mode": "lines", "name": "honest", "line": {"color": "#888", "dash": "dash"}},
        {
            "type": "bar",
            "x": centres,
            "y": [a if a is not None else 0 for a in before.accuracy],
            "width": (edges[1] - edges[0]) * 0.9,
            "name": "the network",
            "marker": {"color": BLUE},
            "text": [str(n) if n else "" for n in before.counts],
            "textposition": "outside",
        },
    ]
    if cal.after is not None:
        filled = [k for k, n in enumerate(cal.after.counts) if n]
        data.append(
            {
                "x": [cal.after.confidence[k] for k in filled],
                "y": [cal.after.accuracy[k] for k in filled],
                "mode": "markers+lines",
                "name": "after temperature scaling",
                "marker": {"color": ORANGE, "symbol": "diamond", "size": 10},
            }
        )
    layout = {
        "title": {"text": "Reliability (test set): how often it is right at each confidence"},
        "xaxis": {"title": {"text": "confidence (probability of the class it picked)"}, "range": [0, 1]},
        "yaxis": {"title": {"text": "accuracy"}, "range": [0, 1.1]},
        "margin": {"t": 50, "r": 20},
    }
    return {"data": data, "layout": layout}


def _bins_table(before: Reliability, after: Reliability | None) -> str:
    head = ["confidence", "test images", "said on average", "right"]
    if after is not None:
        head += ["test images after scaling", "said after scaling", "right after scaling"]
    rows = []
    for k in range(len(before.counts)):
        row = [f"{before.edges[k]:.0%}-{before.edges[k + 1]:.0%}", before.counts[k]]
        row += [_fmt(before.confidence[k], ".1%"), _fmt(before.accuracy[k], ".1%")]
        if after is not None:
            row += [after.counts[k], _fmt(after.confidence[k], ".1%"), _fmt(after.accuracy[k], ".1%")]
        rows.append(row)
    return _table(head, rows, numeric=set(range(1, len(head))))


def _calibration_section(cal: Calibration | None) -> list[str]:
    if cal is None:
        return []
    parts = ["<h2>Can you trust its confidence?</h2>", f"<p><b>{_e(confidence_sentence(cal.before))}</b></p>"]
    parts.append("<div id=reliability class=plot></div>")
    after = cal.after
    parts.append(
        _table(
            [
                "calibration error (ECE)",
                "after temperature scaling",
                "temperature T",
                "mean confidence",
                "test accuracy",
                "test accuracy after scaling",
            ],
            [
                [
                    _fmt(cal.before.ece, ".4f"),
                    _fmt(after.ece if after else None, ".4f"),
                    _fmt(cal.temperature, ".3f"),
                    _fmt(cal.before.mean_confidence, ".4f"),
                    _fmt(cal.test_accuracy_before, ".4f"),
                    _fmt(cal.test_accuracy_after, ".4f"),
                ]
            ],
            numeric=set(range(6)),
        )
    )
    parts.append(f"<p>{_e(temperature_sentence(cal))}</p>")
    parts.append(_bins_table(cal.before, after))
    return parts


def report_html(rec: RunRecord, calibration: Calibration | None = None) -> str:
    """The report of ``rec`` as one HTML document (a string), plotly.js inline once.

    Args:
        rec: the stored run.
        calibration: the run's calibration (:func:`core.training.run_calibration`); None leaves its section out.
    """
    from plotly.offline import get_plotlyjs  # ~1 s: only when a report is written

    m = run_metrics(rec)
    best = m["best_epoch"]
    parts = [f"<h1>CNN Lab run {_e(rec.run_id)}</h1>", f"<p>{_e(rec.label)}</p>"]
    d = rec.data or {}
    parts.append(
        f"<p>Data: {_e(rec.source)} &mdash; {_e(d.get('n_train'))} training, {_e(d.get('n_val'))} "
        f"validation, {_e(d.get('n_test'))} test images; classes {_e(', '.join(d.get('classes', [])))}.</p>"
    )
    parts.append("<h2>Scores</h2>")
    parts.append(
        _table(
            [
                "best epoch (lowest val_loss)",
                "val loss there",
                "val accuracy there",
                "test accuracy",
                "macro F1",
                "trainable params",
                "frozen params",
                "seconds per epoch",
                "seconds",
            ],
            [
                [
                    f"{best}/{m['epochs_run']}",
                    _fmt(m["best_val_loss"]),
                    _fmt(m["best_val_accuracy"]),
                    _fmt(m["test_accuracy"]),
                    _fmt(m["macro_f1"]),
                    _fmt(m["trainable_params"]),
                    _fmt(m["frozen_params"]),
                    _fmt(m["seconds_per_epoch"], ".2f"),
                    _fmt(m["seconds"], ".1f"),
                ]
            ],
            numeric=set(range(9)),
        )
    )
    diag = d.to_dict() if (d := diagnosis_of(rec)) is not None else {}
    evidence = "".join(f"<li>{_e(x)}</li>" for x in diag.get("evidence", []))
    parts.append(
        f"<h2>Verdict</h2><div class=verdict><b>{_e(diag.get('title', diag.get('verdict', '')))}</b> "
        f"&mdash; {_e(diag.get('headline', ''))}<ul>{evidence}</ul></div>"
    )
    parts.append("<h2>Curves</h2><div id=loss class=plot></div><div id=accuracy class=plot></div>")
    parts.append("<h2>Test set</h2><div id=confusion class=plot></div>")
    per_class = rec.test.get("per_class", [])
    parts.append(
        _table(
            ["class", "precision", "recall", "F1", "support"],
            [[c["class"], _fmt(c["precision"]), _fmt(c["recall"]), _fmt(c["f1"]), c["support"]] for c in per_class],
            numeric={1, 2, 3, 4},
        )
    )
    parts += _calibration_section(calibration)
    if rec.model_config:
        table = layer_table(ModelConfig.from_dict(rec.model_config))
        parts.append("<h2>Layers</h2>")
        parts.append(
            _table(
                ["layer", "type", "output shape", "params", "trainable"],
                [[r.name, r.type, str(r.output_shape), f"{r.params:,}", f"{r.trainable:,}"] for r in table.rows],
                numeric={3, 4},
            )
        )
        parts.append(
            f"<p>Total params: {table.total_params:,}; trainable {table.trainable_params:,}; "
            f"non-trainable {table.non_trainable_params:,}.</p>"
        )
    parts.append("<h2>Configuration</h2>")
    parts.append(_table(["setting", "value"], [[k, json.dumps(v)] for k, v in sorted(run_settings(rec).items())]))
    figures = {
        "loss": _curve_figure(rec, "loss", "Loss", best),
        "accuracy": _curve_figure(rec, "accuracy", "Accuracy", best),
        "confusion": _confusion_figure(rec),
    }
    if calibration is not None:
        figures["reliability"] = _reliability_figure(calibration)
    data = json.dumps(figures).replace("</", "<\\/")
    draw = (
        "const FIGURES = " + data + ";\nfor (const [id, fig] of Object.entries(FIGURES)) "
        "{ Plotly.newPlot(id, fig.data, fig.layout, {displaylogo: false, responsive: true}); }"
    )
    return (
        "<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
        f"<title>CNN Lab run {_e(rec.run_id)}</title><style>{_STYLE}</style>"
        f"<script>{get_plotlyjs()}</script></head><body>{''.join(parts)}"
        f"<script>{draw}</script></body></html>\n"
    )
