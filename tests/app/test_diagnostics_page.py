"""Diagnostics: curves with the key epochs marked, the verdict in words, remedies that carry over to the right page."""

from apphelpers import chart_specs, texts

from core.base.config import AugmentConfig


def test_no_run_explains_where_to_get_one(open_page, empty_home):
    at = open_page("pages/diagnostics.py")
    assert not at.exception
    assert any("No run yet: train one on the Train page" in i.value for i in at.info)
    assert not chart_specs(at)


def test_a_trained_run_shows_curves_and_a_verdict(open_page, trained):
    at = open_page("pages/diagnostics.py", run_id=trained.run_id)
    assert not at.exception
    spec = chart_specs(at)[0]
    curves = {(t["name"], t.get("xaxis", "x")): t["y"] for t in spec["data"] if t.get("mode") == "lines+markers"}
    assert curves[("training", "x")] == trained.history["loss"]
    assert curves[("validation", "x2")] == trained.history["val_accuracy"]
    stars = [t for t in spec["data"] if t["name"] == "best epoch"]
    assert [s["x"] for s in stars] == [[trained.best_epoch]] * 2  # on both charts
    assert "Verdict: " in texts(at) and trained.diagnosis["title"] in texts(at)


def test_early_stopping_and_fine_tuning_are_marked_and_remedies_carry_over(open_page, staged, data_dir):
    at = open_page("pages/diagnostics.py", run_id=staged.run_id, dataset=str(data_dir))
    assert not at.exception
    spec = chart_specs(at)[0]
    notes = [a["text"].strip() for a in spec["layout"]["annotations"]]
    assert notes.count("best + restored (4)") == 2 and notes.count("stopped (8)") == 2
    assert notes.count("fine-tune starts") == 2
    assert len(spec["layout"]["shapes"]) >= 2 + 2 + 2  # vlines on both plots + the shaded phase
    text = texts(at)
    assert "Verdict: :orange-badge[:material/trending_up: Overfitting]" in text
    applicable = [r for r in staged.diagnosis["remedies"] if r["changes"]]
    assert [b.label for b in at.button].count("Try this") == len(applicable)
    targets = [c.value for c in at.caption if c.value.startswith("opens the")]
    assert "opens the Train page" in targets and "opens the Architecture page" in targets

    # "Turn on data augmentation" changes a training setting: the Train page opens with it applied.
    remedies = staged.diagnosis["remedies"]
    augment = next(i for i, r in enumerate(remedies) if r["key"] == "augment")
    at.button(key=f"diag.remedy.{augment}").click().run()
    assert not at.exception
    assert at.session_state["train_cfg"].augment == AugmentConfig.course()
    assert at.session_state["train_cfg"].early_stopping == 4  # the rest is the run's own settings
    assert at.slider(key="train.aug.rotation").value == 20  # the widgets follow the config
    assert any("Applied" in s.value for s in at.success)

    # A model change goes to the Architecture page.
    at.switch_page("pages/diagnostics.py").run()
    dropout = next(i for i, r in enumerate(remedies) if r["key"] == "dropout")
    at.button(key=f"diag.remedy.{dropout}").click().run()
    assert not at.exception
    new = remedies[dropout]["changes"]["model.dropout"]
    assert at.session_state["model_cfg"].dropout == new
    assert at.slider(key="arch.dropout").value == new
    assert at.table  # the layer table of the changed network


def test_the_run_can_be_downloaded(open_page, trained):
    from core.results.export import history_csv, script_text

    at = open_page("pages/diagnostics.py", run_id=trained.run_id)
    assert not at.exception
    buttons = at.get("download_button")
    assert len(buttons) == 4
    at.toggle(key="diag.dl.big").set_value(True).run()
    assert not at.exception, [e.value for e in at.exception]
    labels = [b.proto.label for b in at.get("download_button")]
    assert len(labels) == 6 and "Report (HTML, opens offline)" in labels and "Best model (.keras)" in labels
    from ui.study import exports

    files = exports(trained.run_id)
    assert files["script"] == script_text(trained) and files["history"] == history_csv(trained)
    # The report the page offers holds the run's calibration, as calibration.py measures it.
    from core.store.runstore import RunStore
    from core.training import run_calibration
    from ui.study import report

    cal = run_calibration(RunStore(), trained)
    assert f"<td class=num>{cal.before.ece:.4f}</td><td class=num>{cal.after.ece:.4f}</td>" in report(trained.run_id)


def test_a_stored_short_run_shows_the_truth_tables_verdict(open_page, trained):
    """The issue's 3-epoch run, stored with the verdict it used to get: the page shows today's row of the table."""
    import json

    from core.results.diagnosis import diagnose
    from core.results.verdict import thresholds_markdown
    from core.store.runstore import RunRecord, RunStore, default_home

    history = {
        "loss": [1.61, 1.58, 1.50],
        "accuracy": [0.22, 0.27, 0.33],
        "val_loss": [1.532, 1.572, 1.312],
        "val_accuracy": [0.25, 0.24, 0.41],
    }
    old = "The network is not learning much: both losses stay high and validation loss has stopped falling."
    stale = {"verdict": "underfitting", "title": "Underfitting", "headline": old, "evidence": [], "numbers": {}}
    data = dict(trained.to_dict())
    data.update(
        run_id="short000000000003",
        key="short000000000003",
        created=trained.created + 2,
        label="the issue's 3-epoch run",  # the sidebar tells runs apart by their labels
        history=history,
        epoch_seconds=[0.1] * 3,
        best_epoch=3,
        stopped_early=False,
        restored_epoch=3,
        phases=[],
        diagnosis={**stale, "remedies": []},
        data={**trained.data, "classes": ["a", "b", "c", "d", "e"]},
    )
    record = RunRecord.from_dict(json.loads(json.dumps(data)))
    store = RunStore(default_home())
    store.save(record, arrays=store.load_arrays(trained.run_id))
    try:  # the app tests share one store: this run must not stay the newest for the tests after it
        at = open_page("pages/diagnostics.py", run_id=record.run_id)
        assert not at.exception
        text = texts(at)
        expected = diagnose(history, restored_epoch=3, num_classes=5)  # the table's row, read from the curves
        assert expected.title == "Still improving (underfitting so far)"
        assert f"Verdict: :violet-badge[:material/trending_down: {expected.title}]" in text
        assert "validation loss was still falling at the last epoch (its lowest, 1.312, came at epoch 3 of 3)" in text
        assert "Over epochs 1-3 validation loss fell from 1.532 (epoch 1) to 1.312 (epoch 3)" in text
        assert "stopped falling" not in text and "Underfitting]" not in text
        labels = [e.label for e in at.expander]
        assert "How the verdict is decided (the truth table)" in labels
        assert thresholds_markdown().splitlines()[2] in text  # the table a teacher reads is on the page
        assert [b.label for b in at.button].count("Try this") >= 1  # "train for more epochs" carries over
    finally:
        store.delete(record.run_id)
