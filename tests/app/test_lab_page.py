"""The Overfitting lab page (AppTest): empty state, presets, controls, live jobs, cached results."""

import json

import pytest
from apphelpers import started

from core.base.config import AugmentConfig, ModelConfig, TrainConfig
from core.jobs.worker import get_worker
from core.lab.variants import VARIANT_NAMES, lab_variants
from core.store.runstore import RunRecord

PAGE = "pages/lab.py"
TINY = ModelConfig(input_size=16, blocks=1, filters=4, dense_units=8)


pytestmark = pytest.mark.usefixtures("private_worker")


@pytest.fixture
def page(open_page):
    """The app, opened on the lab page with this session state."""
    return lambda **state: open_page(PAGE, **state)


def texts(elements) -> str:
    return "\n".join(str(e.value) for e in elements)


def test_empty_state_with_the_default_dataset(page):
    at = page()
    assert not at.exception
    assert at.title[0].value == "Overfitting lab"
    assert "No lab yet" in texts(at.info) and "Run the lab" in texts(at.info)
    assert "thin_sections" in texts(at.info)  # the default data source
    assert "Network: CNN with 3 blocks (32-64-128 filters" in texts(at.caption)  # core.base.config.network_text
    assert at.slider(key="lab.fraction").value == 20 and at.slider(key="lab.epochs").value == 30
    assert at.button_group(key="lab.variants").value == list(VARIANT_NAMES)
    assert not at.get("plotly_chart") and not at.dataframe


def test_presets_set_the_controls_and_say_what_to_look_for(page):
    at = page()
    at.button(key="lab.preset.overfit").click().run()
    assert not at.exception
    assert (at.slider(key="lab.fraction").value, at.slider(key="lab.epochs").value) == (10, 60)
    assert at.select_slider(key="lab.lr").value == 0.001
    assert at.button_group(key="lab.variants").value == ["baseline"]
    assert "Look for" in texts(at.info) and "Make it overfit" in texts(at.info)

    at.button(key="lab.preset.underfit").click().run()
    assert at.select_slider(key="lab.lr").value == 1e-5
    assert at.button_group(key="lab.variants").value == ["baseline", "all"]
    assert at.slider(key="lab.fraction").value == 10  # only the learning rate (and epochs) change

    at.button(key="lab.preset.fix").click().run()
    assert not at.exception
    assert at.button_group(key="lab.variants").value == list(VARIANT_NAMES)
    assert "Fix it" in texts(at.info)


def test_the_controls_move_and_survive_a_trip_to_another_page(page):
    at = page()
    at.slider(key="lab.fraction").set_value(50).run()
    at.slider(key="lab.epochs").set_value(12).run()
    at.select_slider(key="lab.lr").set_value(3e-4).run()
    at.button_group(key="lab.variants").set_value(["baseline", "dropout"]).run()
    assert not at.exception
    at.switch_page("pages/home.py").run()
    at.switch_page("pages/train.py").run()
    at.switch_page(PAGE).run()
    assert not at.exception
    assert at.slider(key="lab.fraction").value == 50 and at.slider(key="lab.epochs").value == 12
    assert at.select_slider(key="lab.lr").value == 3e-4
    assert at.button_group(key="lab.variants").value == ["baseline", "dropout"]
    at.button_group(key="lab.variants").set_value([]).run()
    assert at.button(key="lab.start").disabled and "at least one variant" in texts(at.caption)


def test_a_missing_dataset_is_explained_not_raised(page, tmp_path):
    gone = str(tmp_path / "no_such_folder")  # inside the folders the test server shares
    at = page(dataset=gone)
    at.button(key="lab.start").click().run()
    assert not at.exception
    assert f"No dataset at '{gone}'" in texts(at.error)
    assert started(at, "lab") is None


def test_variants_train_in_the_background_and_the_page_follows(page, tiny_folder):
    at = page(dataset=str(tiny_folder), model_cfg=TINY)
    at.radio(key="lab.network").set_value("architecture").run()
    at.slider(key="lab.epochs").set_value(2).run()
    at.number_input(key="lab.seed").set_value(7).run()
    at.button_group(key="lab.variants").set_value(["baseline"]).run()
    at.button(key="lab.start").click().run()
    assert not at.exception
    run = started(at, "lab")
    assert [v.name for v in run.about["variants"]] == ["baseline"] and len(run.ids) == 1
    assert run.about["variants"][0].model_cfg.filters == 4 and run.about["variants"][0].train_cfg.epochs == 2
    progress = [p.proto.text for p in at.get("progress")]
    assert progress and ("queued" in progress[0] or "training" in progress[0])

    job = get_worker().get(run.ids[0])
    get_worker().wait(job, timeout=180)
    at.run()
    assert not at.exception
    table = at.dataframe[0].value
    assert list(table["Variant"]) == ["baseline"] and list(table["Source"]) == ["trained"]
    assert table["Epochs run"][0] == "2 of 2"
    assert table["Test acc"][0] == pytest.approx(job.result.test["accuracy"])
    assert [p.proto.text for p in at.get("progress")] == ["baseline: trained"]

    at.button(key="lab.start").click().run()  # the same lab again: straight from the store
    assert [p.proto.text for p in at.get("progress")] == ["baseline: cached (stored run, not retrained)"]
    assert list(at.dataframe[0].value["Source"]) == ["cached"]


def _history(acc, vacc, vloss):
    return {"loss": [1.0 - 0.1 * i for i in range(len(acc))], "accuracy": acc, "val_loss": vloss, "val_accuracy": vacc}


def test_stored_runs_show_as_curves_table_and_summary(page, tiny_folder):
    """Hand-made stored runs for the page's exact configurations: every variant comes back cached."""
    from core.training.experiment import resolve

    # What the page asks for with its default controls and the Architecture page's network.
    variants = lab_variants(
        fraction=0.2, epochs=30, seed=42, model_cfg=TINY, train_cfg=TrainConfig(learning_rate=0.001)
    )
    store = get_worker().store
    overfit = _history([0.5, 0.8, 0.95, 0.99], [0.45, 0.6, 0.62, 0.58], [1.2, 0.9, 0.95, 1.1])
    calm = _history([0.4, 0.6, 0.7, 0.72], [0.5, 0.62, 0.7, 0.7], [1.3, 1.0, 0.8, 0.81])
    for v in variants:
        _, m, key = resolve(str(tiny_folder), v.model_cfg, v.train_cfg)
        h = overfit if v.name == "baseline" else calm
        store.save(
            RunRecord(
                run_id=key,
                key=key,
                status="complete",
                created=1.0,
                source=str(tiny_folder),
                label=v.title,
                data={},
                model_config=m.to_dict(),
                train_config=v.train_cfg.to_dict(),
                layers={},
                history=h,
                epoch_seconds=[1.0] * 4,
                best_epoch=2 if v.name == "baseline" else 3,
                stopped_early=False,
                stopped_by_user=False,
                restored_epoch=None,
                phases=[],
                diagnosis={"title": "Good fit"},
                test={"accuracy": 0.6 if v.name == "baseline" else 0.7},
                seconds=4.0,
                versions={},
            )
        )

    at = page(dataset=str(tiny_folder), model_cfg=TINY)
    at.radio(key="lab.network").set_value("architecture").run()
    at.button(key="lab.start").click().run()
    assert not at.exception
    assert all("cached" in p.proto.text for p in at.get("progress")) and len(at.get("progress")) == 5
    table = at.dataframe[0].value
    assert list(table["Variant"]) == [v.title for v in variants]
    assert list(table["Source"]) == ["cached"] * 5
    assert table["Train-val gap (last epoch)"][0] == pytest.approx(0.41)
    assert table["Best-epoch val acc"][0] == pytest.approx(0.6) and table["Best epoch"][0] == 2
    assert table["Train-val gap (last epoch)"][4] == pytest.approx(0.02)
    assert "cut the gap by 0.39" in texts(at.success)
    assert "Dropout(0.5)" in texts(at.markdown)

    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    lines = [t for t in spec["data"] if t["mode"] == "lines"]
    stars = [t for t in spec["data"] if t["mode"] == "markers"]
    assert [t["name"] for t in lines] == [v.title for v in variants]
    assert [(s["x"], s["y"]) for s in stars] == [([2], [0.9])] + [([3], [0.8])] * 4


def test_a_preset_opens_the_train_page_with_its_settings(page):
    at = page(model_cfg=ModelConfig(filters=16, dropout=0.0), train_cfg=TrainConfig(batch_size=16))
    assert at.title[0].value == "Overfitting lab" and "No lab yet" in texts(at.info)
    at.button(key="lab.preset.fix").click().run()
    at.button(key="lab.apply").click().run()
    assert not at.exception
    assert at.title[0].value == "Train"
    m, t = at.session_state["model_cfg"], at.session_state["train_cfg"]
    assert (m.filters, m.dropout) == (16, 0.5)
    assert (t.batch_size, t.early_stopping, t.restore_best) == (16, 5, True)
    assert t.augment == AugmentConfig.course()
    # The Train page's widgets start from the new configs, and say what happened.
    assert at.toggle(key="train.es_on").value is True and at.slider(key="train.patience").value == 5
    assert at.slider(key="train.aug.rotation").value == 20
    assert "Fix it" in texts(at.success)

    at.switch_page(PAGE).run()
    at.button(key="lab.preset.overfit").click().run()
    at.button(key="lab.apply").click().run()
    assert not at.exception
    m, t = at.session_state["model_cfg"], at.session_state["train_cfg"]
    assert (m.dropout, t.train_fraction, t.epochs, t.augment.enabled, t.early_stopping) == (0.0, 0.1, 60, False, 0)
