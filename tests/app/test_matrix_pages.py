"""Every page that starts trainings, with bfloat16 forced, for each model kind it offers (AppTest, real worker).

The dashboard's side of tests/test_matrix.py: each page's start button is
clicked (Train, Overfitting lab, Transfer, Compare's "Repeat over seeds",
Sweep), and every job it queues must be decided as bfloat16 where it was
submitted, train in a child process in bfloat16 and be stored as such.

"Forced" twice over: the server's CPU flags say native bfloat16 and every
network counts as large enough for it to pay (so "auto", the setting of the
pages without a precision control, decides bfloat16 on any machine, as on an
AVX512_BF16 CPU for a network of 15 million multiply-adds or more), and where the session's training settings
are used (Train, Sweep), they ask for bfloat16 outright. The training children
read the real CPU: if they decided "auto" again, a machine without
AVX512_BF16 would train in float32 and the assertions below fail.

Every page starts its trainings through ui.jobs.start / start_many: the jobs are found
under the page's key (ui.jobs.following) and belong to the session. A new page that
starts trainings joins :data:`STARTS`.
"""

from __future__ import annotations

import pytest
from apphelpers import TINY, started_ids

from core.base.config import ModelConfig, TrainConfig

VGG = ModelConfig(model="vgg16", weights="none", input_size=32, dense_units=8)
BF16 = TrainConfig(epochs=1, batch_size=8, precision="bfloat16")
MODELS = {"cnn": TINY, "vgg16": VGG}


@pytest.fixture
def bf16_cpu(monkeypatch):
    import core.base.precision

    monkeypatch.setattr(core.base.precision, "cpu_flags", lambda cpuinfo="/proc/cpuinfo": frozenset({"avx512_bf16"}))
    # and the tiny test networks count as large enough for bfloat16 to pay (in this process; a child deciding
    # again would read the real rule, under which they stay float32 on any CPU)
    monkeypatch.setattr(core.base.precision, "BF16_MIN_MACS", 0)


def _train(open_page, data_dir, kind, worker):
    at = open_page("pages/train.py", dataset=str(data_dir), model_cfg=MODELS[kind], train_cfg=BF16)
    at.button(key="train.start").click().run()
    return at, started_ids(at, "train")


def _lab(open_page, data_dir, kind, worker):
    at = open_page("pages/lab.py", dataset=str(data_dir), model_cfg=TINY)
    at.radio(key="lab.network").set_value("architecture").run()
    at.slider(key="lab.epochs").set_value(2).run()
    at.button_group(key="lab.variants").set_value(["baseline"]).run()
    at.button(key="lab.start").click().run()
    return at, started_ids(at, "lab")


def _transfer(open_page, data_dir, kind, worker):
    at = open_page("pages/transfer.py", dataset=str(data_dir))
    at.selectbox(key="transfer.weights").set_value("none").run()
    at.slider(key="transfer.input_size").set_value(32).run()
    at.select_slider(key="transfer.dense").set_value(16).run()
    at.slider(key="transfer.epochs").set_value(1).run()
    at.button(key="transfer.start").click().run()
    return at, started_ids(at, "transfer")


def _compare(open_page, data_dir, kind, worker):
    from core.training.experiment import run_experiment

    rec = run_experiment(str(data_dir), MODELS[kind], BF16, store=worker.store)  # the run to repeat
    at = open_page("pages/compare.py", **{"compare.runs": [rec.run_id]})
    at.number_input(key="compare.seeds").set_value(2).run()
    at.button(key="compare.repeat").click().run()
    return at, started_ids(at, f"repeats:{rec.run_id}")


def _sweep(open_page, data_dir, kind, worker):
    at = open_page("pages/sweep.py", dataset=str(data_dir), model_cfg=MODELS[kind], train_cfg=BF16)
    at.selectbox(key="sweep.first").set_value("dropout").run()
    at.text_input(key="sweep.first_values").set_value("0.25").run()
    at.button(key="sweep.start").click().run()
    return at, started_ids(at, "sweep")


# page -> (how its start button is pressed, the model kinds it offers, the kinds one press trains)
STARTS = {
    "train": (_train, ("cnn", "vgg16")),
    "lab": (_lab, ("cnn",)),  # the lab varies the course's CNN
    "transfer": (_transfer, ("both",)),  # one press: a scratch CNN and a VGG16 transfer model
    "compare": (_compare, ("cnn", "vgg16")),
    "sweep": (_sweep, ("cnn", "vgg16")),
}


def cases():
    for page, (_, kinds) in STARTS.items():
        for kind in kinds:
            yield pytest.param(page, kind, id=f"{page}-{kind}")


@pytest.mark.parametrize(("page", "kind"), list(cases()))
def test_each_start_button_trains_in_bfloat16(open_page, data_dir, private_worker, bf16_cpu, page, kind):
    start, _ = STARTS[page]
    at, job_ids = start(open_page, data_dir, kind, private_worker)
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    jobs = [private_worker.get(j) for j in job_ids]
    assert jobs and all(j is not None for j in jobs)
    assert {j.owner for j in jobs} == {at.session_state["owner"]}  # started through ui.jobs, as this session's
    expected = {"cnn", "vgg16"} if kind == "both" else {kind}
    assert {j.model_cfg.model for j in jobs} == expected
    for job in jobs:
        assert job.train_cfg.precision == "bfloat16"  # decided where it was submitted: what the child gets
        assert "bfloat16" in job.label
        private_worker.wait(job, timeout=300)
        assert job.state == "done", job.error
        rec = private_worker.store.get(job.result.run_id)
        assert rec.extra["precision"] == rec.train_config["precision"] == "bfloat16"
    assert any(not j.result.cached for j in jobs)  # something trained (Compare's own seed comes back stored)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
