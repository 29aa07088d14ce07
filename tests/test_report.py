"""report_html: one run as a self-contained HTML page, from a hand-made record whose numbers are known.

The report of a real trained run, written by `export --report`, is tested in test_export.py.
"""

import dataclasses
import html
import json
import re

import pytest

from core.base.config import ModelConfig, TrainConfig
from core.models.layer_table import layer_table
from core.results.diagnosis import diagnosis_of
from core.results.report import report_html
from core.store.runstore import RunRecord

MODEL = ModelConfig(input_size=16, blocks=1, filters=4, dense_units=8, num_classes=2)
HISTORY = {
    "loss": [1.2, 0.9, 0.6, 0.4, 0.3, 0.2],
    "accuracy": [0.5, 0.6, 0.7, 0.8, 0.9, 0.95],
    "val_loss": [1.0, 0.7, 0.5, 0.6, 0.8, 1.0],  # lowest at epoch 3
    "val_accuracy": [0.5, 0.6, 0.725, 0.7, 0.65, 0.6],
}
CLASSES = ["shale", "sand</script>stone"]  # a class name that would end the page's script if not escaped


def record(**changes) -> RunRecord:
    table = layer_table(MODEL)
    rec = RunRecord(
        run_id="r0001",
        key="r0001",
        status="complete",
        created=0.0,
        source="rocks",
        label="CNN <b>& friends</b>",
        data={"classes": CLASSES, "n_train": 40, "n_val": 8, "n_test": 8, "skipped": []},
        model_config=MODEL.to_dict(),
        train_config=TrainConfig(epochs=6).to_dict(),
        layers={
            "total_params": table.total_params,
            "trainable_params": table.trainable_params,
            "non_trainable_params": table.non_trainable_params,
        },
        history=HISTORY,
        epoch_seconds=[0.5] * 6,
        best_epoch=3,
        stopped_early=False,
        stopped_by_user=False,
        restored_epoch=3,
        phases=[],
        diagnosis={},
        test={
            "accuracy": 0.75,
            "macro": {"f1": 0.7},
            "class_names": CLASSES,
            "confusion_matrix": [[3, 1], [1, 3]],
            "per_class": [
                {"class": "shale", "precision": 0.75, "recall": 0.75, "f1": 0.75, "support": 4},
                {"class": CLASSES[1], "precision": 0.75, "recall": 0.75, "f1": 0.75, "support": 4},
            ],
        },
        seconds=4.3,
        versions={},
    )
    return dataclasses.replace(rec, **changes)


def figures(page: str) -> dict:
    data = re.search(r"const FIGURES = (.*);\nfor \(const", page).group(1)
    return json.loads(data)


@pytest.fixture(scope="module")
def page():
    return report_html(record())


def test_the_scores_are_the_best_epochs(page):
    table = layer_table(MODEL)
    cells = ["3/6", "0.5000", "0.7250", "0.7500", "0.7000", f"{table.trainable_params:,}", "0", "0.50", "4.3"]
    assert "".join(f"<td class=num>{c}</td>" for c in cells) in page
    assert f"Total params: {table.total_params:,}; trainable {table.trainable_params:,}" in page
    assert "40 training, 8 validation, 8 test images" in page


def test_text_from_the_run_is_escaped(page):
    assert "CNN &lt;b&gt;&amp; friends&lt;/b&gt;" in page and "<b>& friends" not in page
    assert page.count("</script>") == 2  # plotly.js and the drawing: a class name cannot close either
    assert "<td>sand&lt;/script&gt;stone</td>" in page


def test_the_figures_mark_the_best_epoch_and_hold_the_runs_numbers(page):
    figs = figures(page)
    loss = figs["loss"]
    assert [t["y"] for t in loss["data"]] == [HISTORY["loss"], HISTORY["val_loss"]]
    assert loss["data"][0]["x"] == [1, 2, 3, 4, 5, 6]
    assert (loss["layout"]["shapes"][0]["x0"], loss["layout"]["annotations"][0]["text"]) == (3, "best epoch 3")
    assert [t["y"] for t in figs["accuracy"]["data"]] == [HISTORY["accuracy"], HISTORY["val_accuracy"]]
    confusion = figs["confusion"]["data"][0]
    assert confusion["z"] == [[3, 1], [1, 3]] and confusion["x"] == CLASSES


def test_the_verdict_is_todays_with_its_evidence(page):
    d = diagnosis_of(record())
    assert f"<div class=verdict><b>{d.title}</b>" in page and d.evidence
    assert all(f"<li>{html.escape(e)}</li>" in page for e in d.evidence)


def test_the_configuration_lists_every_setting(page):
    assert "<tr><td>train.epochs</td><td>6</td></tr>" in page
    assert "<tr><td>model.filters</td><td>4</td></tr>" in page
    assert "<tr><td>data.source</td><td>&quot;rocks&quot;</td></tr>" in page


def test_missing_numbers_show_as_a_dash_and_missing_parts_are_left_out():
    page = report_html(record(test={}, model_config={}, epoch_seconds=[]))
    # best epoch from the curves still; no test scores, no per-epoch time (the epoch times do not match)
    assert "<td class=num>3/6</td><td class=num>0.5000</td><td class=num>0.7250</td><td class=num>-</td>" in page
    assert "<h2>Layers</h2>" not in page and "<td class=num>-</td><td class=num>4.3</td>" in page


def _calibration():
    """Calibration of 8 test images (2 classes) with a temperature fitted on 6 validation images."""
    from core.results.calibration import calibrate

    y = [0, 0, 0, 0, 1, 1, 1, 1]
    top = [0.95, 0.92, 0.85, 0.65, 0.97, 0.75, 0.55, 0.9]  # the probability of class 0 for the first four
    probs = [[p, 1 - p] for p in top[:4]] + [[p, 1 - p] for p in top[4:]]  # the last four: wrong when p > 0.5
    y_val, val = [0, 1, 0, 1, 0, 1], [[0.9, 0.1], [0.8, 0.2], [0.7, 0.3], [0.95, 0.05], [0.6, 0.4], [0.3, 0.7]]
    return calibrate(y, probs, y_val, val)


def test_the_calibration_section_holds_calibration_py_s_numbers_and_sentences():
    from core.results.calibration import confidence_sentence, temperature_sentence

    cal = _calibration()
    page = report_html(record(), cal)
    assert "<h2>Can you trust its confidence?</h2>" in page
    cells = [f"{cal.before.ece:.4f}", f"{cal.after.ece:.4f}", f"{cal.temperature:.3f}"]
    assert "".join(f"<td class=num>{c}</td>" for c in cells) in page and cal.before.ece != cal.after.ece
    assert f"<b>{html.escape(confidence_sentence(cal.before))}</b>" in page
    assert html.escape(temperature_sentence(cal)) in page
    rel = figures(page)["reliability"]["data"]
    bars = next(t for t in rel if t.get("type") == "bar")
    assert bars["y"] == [a if a is not None else 0 for a in cal.before.accuracy]
    assert bars["text"] == [str(n) if n else "" for n in cal.before.counts] and sum(cal.before.counts) == 8
    k = max(i for i, n in enumerate(cal.before.counts) if n)  # the most confident bin, one table row
    row = f"<td>{cal.before.edges[k]:.0%}-{cal.before.edges[k + 1]:.0%}</td><td class=num>{cal.before.counts[k]}</td>"
    assert row in page


def test_without_a_calibration_the_section_is_left_out(page):
    assert "Can you trust its confidence?" not in page and "reliability" not in figures(page)
