"""The Sweep page (AppTest): bad grids refused with a message, a real sweep through the worker, its
heatmap, a repeated sweep that trains nothing, and opening a cell's run."""

from apphelpers import FAST, TINY, chart_specs, started, started_ids, texts

PAGE = "pages/sweep.py"


def _open(open_page, data_dir):
    return open_page(PAGE, dataset=str(data_dir), model_cfg=TINY, train_cfg=FAST.replace(epochs=1))


def test_renders_and_refuses_bad_grids(open_page, data_dir, private_worker):
    at = _open(open_page, data_dir)
    assert not at.exception and "No sweep yet" in texts(at)
    at.text_input(key="sweep.first_values").set_value("0, 1.5").run()
    at.button(key="sweep.start").click().run()
    assert not at.exception
    assert "'dropout' parameter of ModelConfig" in "\n".join(e.value for e in at.error)
    assert started(at, "sweep") is None and not private_worker.jobs()
    at.selectbox(key="sweep.first").set_value("filters").run()
    at.text_input(key="sweep.first_values").set_value("a, b").run()
    at.button(key="sweep.start").click().run()
    assert "Bad value 'a' for filters" in "\n".join(e.value for e in at.error)
    assert "num_classes" not in at.selectbox(key="sweep.first").options  # the data decides it: not offered
    at.selectbox(key="sweep.first").set_value("fill_mode").run()  # no augmentation: the fill mode changes nothing
    at.text_input(key="sweep.first_values").set_value("nearest, reflect").run()
    at.button(key="sweep.start").click().run()
    assert "would train exactly the same run" in "\n".join(e.value for e in at.error)
    assert started(at, "sweep") is None and not private_worker.jobs()


def test_a_two_setting_sweep_its_heatmap_and_a_repeat_that_trains_nothing(open_page, data_dir, private_worker):
    at = _open(open_page, data_dir)
    at.text_input(key="sweep.first_values").set_value("0, 0.5").run()
    at.selectbox(key="sweep.second").set_value("dense_units").run()
    at.text_input(key="sweep.second_values").set_value("4, 8").run()
    at.button(key="sweep.start").click().run()
    assert not at.exception, [e.value for e in at.exception]
    run = started(at, "sweep")
    assert run.about["names"] == ["dropout", "dense_units"] and len(run.ids) == 4
    for job_id in run.ids:
        private_worker.wait(private_worker.get(job_id), timeout=300)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    heat = [s for s in chart_specs(at) if s["data"][0].get("type") == "heatmap"][0]["data"][0]
    assert heat["y"] == ["0.0", "0.5"] and heat["x"] == ["4", "8"] and len(heat["z"]) == 2
    from core.results.compare import run_metrics

    for k, (i, j) in enumerate(((0, 0), (0, 1), (1, 0), (1, 1))):  # row-major: dropout slowest
        rec = private_worker.get(run.ids[k]).result
        assert (rec.model_config["dropout"], rec.model_config["dense_units"]) == ((0.0, 0.5)[i], (4, 8)[j])
        assert heat["z"][i][j] == run_metrics(rec)["best_val_accuracy"]
    assert "4 points trained, 0 came back" in texts(at)
    # small multiples: one loss panel per point, titled by its settings, with the run's own curves
    multiples = [s for s in chart_specs(at) if len(s["data"]) == 12][0]
    titles = [a["text"] for a in multiples["layout"]["annotations"]]
    assert titles == [
        "dropout 0.0, dense_units 4",
        "dropout 0.0, dense_units 8",
        "dropout 0.5, dense_units 4",
        "dropout 0.5, dense_units 8",
    ]
    first = private_worker.get(run.ids[0]).result
    assert multiples["data"][1]["y"] == first.history["val_loss"]
    n_runs = len(private_worker.store.list_runs())
    at.button(key="sweep.start").click().run()  # the same sweep again
    for job_id in started_ids(at, "sweep"):
        private_worker.wait(private_worker.get(job_id), timeout=60)
    at.run()
    assert "All 4 points were stored already: nothing was trained." in texts(at)
    assert len(private_worker.store.list_runs()) == n_runs
    pick = at.selectbox(key="sweep.cell").options[3]
    assert "dropout 0.5, dense_units 8" in pick
    last = private_worker.get(run.ids[3]).result.run_id
    at.selectbox(key="sweep.cell").set_value(last).run()
    at.button(key="sweep.open").click().run()
    assert not at.exception
    assert at.session_state["run_id"] == last
    assert at.title[0].value == "Diagnostics"
