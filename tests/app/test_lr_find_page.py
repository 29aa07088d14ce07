"""Train page: "Find a learning rate" runs a range test as a job, draws loss against the learning rate on a log
axis with the suggestion and its rule, and "Use" sets the learning-rate slider; the same test again comes
from the run store."""

from apphelpers import TINY, chart_specs, started_ids, texts, wait_for

from core.base.config import LEARNING_RATES, TrainConfig
from core.results.lr_range import nearest


def test_find_a_learning_rate_draws_the_test_and_use_sets_the_slider(open_page, write_dataset, tmp_path, idle_worker):
    data = write_dataset(tmp_path / "rocks", per_class=30)  # 3 x 30 images: 15 steps of batch 16 (5 epochs)
    at = open_page("pages/train.py", dataset=str(data), model_cfg=TINY, train_cfg=TrainConfig(batch_size=16))
    assert at.button(key="train.lr_find").label == "Find a learning rate"
    at.button(key="train.lr_find").click().run()
    assert not at.exception, [e.value for e in at.exception]
    job = idle_worker.get(started_ids(at, "lr_find")[0])
    assert job.kind == "lr-find"
    wait_for(lambda: not job.active, timeout=300)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert job.lr_find is not None, job.error
    fig = next(s for s in chart_specs(at) if s["layout"]["xaxis"].get("type") == "log")
    assert [t["name"] for t in fig["data"]] == ["loss of each step", "smoothed loss"]
    assert len(fig["data"][1]["x"]) == len(job.lr_find.lrs)
    s = job.lr_find.suggestion
    assert s.learning_rate is not None, job.lr_find.sentence()
    note = fig["layout"]["annotations"][0]["text"]
    assert note.startswith(f"suggested {s.learning_rate:.2g}") and s.rule in note  # the rule on the chart
    assert "suggested:" in texts(at)
    assert "Last training" not in texts(at)  # the Train section shows trainings, not the range test

    step = nearest(s.learning_rate, LEARNING_RATES)
    use = at.button(key="train.lr_use")
    assert use.label == f"Use {step:g}"
    use.click().run()
    assert not at.exception
    assert at.select_slider(key="train.learning_rate").value == step
    assert at.session_state["train_cfg"].learning_rate == step

    # Again, now with that learning rate: the same range test, answered by the run store at once.
    at.button(key="train.lr_find").click().run()
    assert not at.exception
    again = idle_worker.get(started_ids(at, "lr_find")[0])
    assert again.id != job.id and not again.active and again.snapshot().cached and again.started is None
    assert "nothing was trained again" in texts(at)
