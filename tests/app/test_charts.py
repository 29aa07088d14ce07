"""ui.charts: a package of figure families behind one re-exporting __init__, and one figure per family drawn
from known numbers (the spec a browser receives)."""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path

import numpy as np

from ui import charts

ROOT = Path(__file__).resolve().parents[2]
FAMILIES = ("common", "curves", "compare", "sweeps", "data", "architecture", "predictions", "inside")


def _used_names() -> set[str]:
    """Every ``charts.NAME`` the pages and the benchmarks use."""
    used = set()
    for path in [*ROOT.glob("pages/*.py"), *ROOT.glob("bench/*.py"), ROOT / "app.py"]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "charts":
                used.add(node.attr)
    return used


def test_every_name_the_pages_use_is_re_exported():
    used = _used_names()
    assert {"CONFIG", "history_figure", "confusion_figure", "matrix_figure"} <= used  # the scan finds them
    assert used - {"clear"} <= set(charts.__all__), used - set(charts.__all__)


def test_init_re_exports_every_figure_and_the_palette_and_holds_no_logic():
    public = {}
    for family in FAMILIES:
        module = importlib.import_module(f"ui.charts.{family}")
        for name, value in vars(module).items():
            figure = name.endswith("_figure") and inspect.isfunction(inspect.unwrap(value))
            if figure or (family == "common" and (name.isupper() or name == "spec")):
                public[name] = value
    for helper in ("CACHE", "FONT"):  # the families' shared style, not the pages'
        public.pop(helper)
    assert set(charts.__all__) == set(public)
    assert all(getattr(charts, name) is value for name, value in public.items())
    tree = ast.parse((ROOT / "ui" / "charts" / "__init__.py").read_text())
    kinds = {type(node).__name__ for node in tree.body[1:]}
    assert kinds == {"ImportFrom", "Assign"}, kinds  # the docstring, imports and __all__ only


def test_history_figure_marks_the_best_and_stopped_epochs():
    history = {"loss": [1.0, 0.6, 0.4], "val_loss": [1.1, 0.7, 0.9], "accuracy": [0.4, 0.6, 0.8]}
    history["val_accuracy"] = [0.3, 0.55, 0.5]
    fig = charts.spec(charts.history_figure(history, best=2, stopped=3, planned_epochs=10))
    stars = [t for t in fig["data"] if t["name"] == "best epoch"]
    assert [t["y"] for t in stars] == [[0.7], [0.55]]  # val_loss and val_accuracy at epoch 2
    notes = [a["text"].strip() for a in fig["layout"]["annotations"]]
    assert notes.count("best (2)") == 2 and notes.count("stopped (3)") == 2
    assert fig["layout"]["xaxis"]["range"] == [0.5, 10.5]  # room for the planned epochs
    assert charts.history_figure(history, best=2, stopped=3, planned_epochs=10) is charts.history_figure(
        history, best=2, stopped=3, planned_epochs=10
    )  # built once per input, shared


def test_overlay_and_band_figures_draw_each_run_in_its_own_colour():
    runs = (("run 1", (1.0, 0.5, 0.4), (1.2, 0.8, 0.9), 2), ("run 2", (0.9, 0.7), (1.0, 0.6), 2))
    fig = charts.spec(charts.overlay_figure(runs, "loss"))
    stars = {t["name"]: t["y"] for t in fig["data"] if t["mode"] == "markers"}
    assert stars == {"run 1: best epoch 2": [0.8], "run 2: best epoch 2": [0.6]}
    solid = [t["line"]["color"] for t in fig["data"] if t["mode"] == "lines" and "dash" not in t["line"]]
    assert solid == [charts.TRAIN, charts.VAL]
    band = charts.spec(charts.band_figure((("a", (0.5, 0.6), (0.4, 0.5), (0.7, 0.8)),)))
    assert band["data"][0]["y"] == [0.7, 0.8, 0.5, 0.4]  # max forward, then min backward: a closed band


def test_class_counts_figure_has_one_bar_group_per_split():
    fig = charts.spec(charts.class_counts_figure(("sand", "lime"), {"train": (5, 3), "val": (2, 1)}))
    assert [(t["name"], t["y"]) for t in fig["data"]] == [("training", [5, 3]), ("validation", [2, 1])]


def test_feature_map_figure_labels_each_stage_with_its_shape():
    stages = (("input", "input", (32, 32, 3)), ("block1", "Conv2D", (32, 32, 8)), ("flatten", "Flatten", (2048,)))
    fig = charts.spec(charts.feature_map_figure(stages))
    labels = [a["text"] for a in fig["layout"]["annotations"] if a["y"] < 0]
    assert labels == ["32×32×3", "32×32×8", "2,048"]


def test_confusion_figure_says_which_class_was_mistaken_for_which():
    fig = charts.spec(charts.confusion_figure(((3, 1), (0, 2)), ("sand", "lime"), selected=(0, 1)))
    tips = fig["data"][1]["hovertext"]
    assert tips[1] == "true sand, predicted lime: 1 image (sand mistaken for lime)"
    assert tips[0] == "true sand, predicted sand: 3 images (correct)"
    box = fig["layout"]["shapes"][0]
    assert (box["x0"], box["y0"]) == (0.5, -0.5)  # column 1 (predicted lime), row 0 (true sand)


def test_matrix_figure_writes_pad_where_the_window_reads_the_border():
    values = np.array([[1.0, -2.0], [0.5, 0.0]])
    outside = np.array([[True, False], [False, False]])
    trace = charts.spec(charts.matrix_figure(values, outside=outside))["data"][0]
    assert trace["text"] == [["pad", "-2.00"], ["0.50", "0.00"]]
    assert (trace["zmin"], trace["zmid"], trace["zmax"]) == (-2.0, 0, 2.0)


def test_sweep_figure_is_a_line_over_one_setting_and_a_grid_over_two():
    line = charts.spec(charts.sweep_figure(("dropout",), ((0.0, 0.5),), ((0.6, 0.7),)))["data"][0]
    assert (line["type"], line["x"], line["y"]) == ("scatter", ["0.0", "0.5"], [0.6, 0.7])
    grid = charts.spec(charts.sweep_figure(("lr", "filters"), ((0.01, 0.001), (8, 16)), ((0.5, None), (0.75, 0.8))))
    assert grid["data"][0]["text"] == [["50.0%", "-"], ["75.0%", "80.0%"]]  # an unfinished point shows "-"
    assert (grid["data"][0]["y"], grid["data"][0]["x"]) == (["0.01", "0.001"], ["8", "16"])


def test_reliability_figure_puts_each_bin_s_accuracy_at_its_centre_with_its_count():
    from core.results.calibration import reliability, temperature_scale

    y = [0, 1, 0, 1, 2, 0]
    p = [
        [0.95, 0.03, 0.02],
        [0.85, 0.1, 0.05],
        [0.55, 0.4, 0.05],
        [0.3, 0.62, 0.08],
        [0.2, 0.35, 0.45],
        [0.05, 0.92, 0.03],
    ]
    before, after = reliability(y, p), reliability(y, temperature_scale(p, 2.0))
    fig = charts.spec(charts.reliability_figure(before.to_dict(), after.to_dict()))
    diagonal, bars, scaled = fig["data"]
    assert diagonal["x"] == [0, 1] and diagonal["y"] == [0, 1]
    assert bars["x"][9] == 0.95 and bars["y"][9] == 0.5 and bars["text"][9] == "2"  # .95 right, .92 wrong
    assert bars["text"][:4] == ["", "", "", ""] and bars["y"][8] == 0.0 and bars["text"][8] == "1"
    assert bars["hovertext"][9] == "90%-100%: 2 test images, said 94% on average, right 50%"
    assert len(scaled["x"]) == sum(1 for n in after.counts if n)  # a diamond per filled bin after scaling
    assert charts.spec(charts.reliability_figure(before.to_dict()))["data"][-1]["type"] == "bar"  # no T: no diamonds
