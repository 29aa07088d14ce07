"""Precision: what "auto" picks per CPU flags, the policy kept local, bf16 runs recorded and keyed."""

from types import SimpleNamespace

import numpy as np
import pytest
from tinydata import write_tiny_dataset

from core.base.config import ConfigError, ModelConfig, TrainConfig, run_key
from core.base.errors import UserError
from core.base.precision import (
    BF16_MIN_MACS,
    cpu_flags,
    has_native_bf16,
    network_macs,
    precision_policy,
    precision_reason,
    resolve_precision,
    run_precision,
    settle_precision,
)
from core.data import load_dataset, prepare_data
from core.models.layer_table import layer_table
from core.models.weight_sources import preprocess_images
from core.training.train import train_model

TINY = ModelConfig(input_size=16, blocks=1, filters=4, dense_units=8, dropout=0.0, num_classes=3)


@pytest.mark.parametrize(
    "flags, expected",
    [
        ({"fma", "avx2"}, "float32"),  # AVX2 only: bf16 would be emulated
        ({"avx2", "avx512f", "avx512_vnni"}, "float32"),  # AVX-512 without its bf16 extension
        ({"avx2", "avx512f", "avx512_bf16"}, "bfloat16"),  # AMD EPYC Genoa, Intel Cooper Lake
        ({"avx512f", "amx_bf16", "amx_tile"}, "bfloat16"),  # Intel Sapphire Rapids
        (set(), "float32"),  # flags unknown (no /proc/cpuinfo)
    ],
)
def test_auto_follows_the_cpu_flags(flags, expected):
    assert resolve_precision("auto", flags) == expected
    assert has_native_bf16(flags) == (expected == "bfloat16")
    # an explicit choice is kept whatever the CPU
    assert resolve_precision("float32", flags) == "float32"
    assert resolve_precision("bfloat16", flags) == "bfloat16"


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: Test CPU\nflags\t\t: fpu avx2 avx512_bf16\n\n")
    assert cpu_flags(info) == {"fpu", "avx2", "avx512_bf16"}
    assert cpu_flags(tmp_path / "missing") == frozenset()


def test_bad_precision_is_refused():
    with pytest.raises(ConfigError, match="'precision' parameter of TrainConfig must be one of 'auto', 'float32'"):
        TrainConfig(precision="float16")
    with pytest.raises(UserError, match="Unknown precision"):
        resolve_precision("half")


def test_vgg16_follows_the_same_rule():
    vgg = ModelConfig(model="vgg16", weights="none")
    assert run_precision(vgg, TrainConfig(precision="bfloat16"), {"avx2"}) == "bfloat16"
    assert run_precision(vgg, TrainConfig(), {"avx512_bf16"}) == "bfloat16"
    assert run_precision(vgg, TrainConfig(), {"avx2"}) == "float32"
    assert run_precision(ModelConfig(), TrainConfig(), {"avx512_bf16"}) == "bfloat16"


# --------------------------------------------------------------------------- bfloat16 where it pays (issue 22)


def test_the_multiply_adds_the_rule_reads_are_the_layer_tables():
    import random

    rng = random.Random(3)
    configs = [ModelConfig(), TINY, ModelConfig(batchnorm=True, padding="same", kernel_size=5, channels=1)]
    while len(configs) < 60:
        cfg = ModelConfig(
            input_size=rng.choice([16, 32, 64, 96]),
            blocks=rng.randint(1, 4),
            filters=rng.choice([4, 8, 16, 32]),
            kernel_size=rng.choice([3, 5]),
            pool_size=rng.choice([2, 3]),
            padding=rng.choice(["valid", "same"]),
            batchnorm=rng.random() < 0.5,
            dense_units=rng.choice([8, 64, 128]),
            num_classes=rng.randint(2, 6),
        )
        try:
            layer_table(cfg)
        except UserError:  # does not fit its input: no table to compare with
            continue
        configs.append(cfg)
    for cfg in configs:
        assert network_macs(cfg) == layer_table(cfg).total_macs, cfg
    assert network_macs(ModelConfig()) == 30_029_824  # the course network at 64 px (bench/RESULTS.md: 30.0 M)


@pytest.mark.parametrize(
    "model_cfg, expected",
    [
        pytest.param(ModelConfig(), "bfloat16", id="course-network-30M"),
        pytest.param(ModelConfig(filters=16), "float32", id="filters16-8.5M"),
        pytest.param(ModelConfig(input_size=32, blocks=1, filters=8, dense_units=32), "float32", id="1-block"),
        pytest.param(ModelConfig(blocks=3, filters=64), "bfloat16", id="filters64-112M"),
        pytest.param(ModelConfig(model="vgg16", weights="none"), "bfloat16", id="vgg16"),
    ],
)
def test_auto_picks_bfloat16_only_for_networks_large_enough_to_gain(model_cfg, expected):
    bf16_cpu, avx2_cpu = {"avx2", "avx512_bf16"}, {"avx2", "fma"}
    assert run_precision(model_cfg, TrainConfig(), bf16_cpu) == expected
    assert run_precision(model_cfg, TrainConfig(), avx2_cpu) == "float32"
    # an explicit choice is kept whatever the size
    assert run_precision(model_cfg, TrainConfig(precision="bfloat16"), bf16_cpu) == "bfloat16"
    assert run_precision(model_cfg, TrainConfig(precision="float32"), bf16_cpu) == "float32"
    # the decision travels in the config, once: a settled config is not decided again
    settled = settle_precision(model_cfg, TrainConfig(), bf16_cpu)
    assert settled.precision == expected
    assert settle_precision(model_cfg, settled, avx2_cpu) is settled


def test_the_rule_sits_between_the_measured_sizes():
    # measured (bench/RESULTS.md, issue 22): no gain at 8.5 million multiply-adds, 0.66x the CPU time at 30 million
    assert network_macs(ModelConfig(filters=16)) < BF16_MIN_MACS < network_macs(ModelConfig())
    assert run_precision(ModelConfig(filters=24), TrainConfig(), {"avx512_bf16"}) == "bfloat16"  # 17.6 million
    assert run_precision(ModelConfig(filters=16), TrainConfig(), {"avx512_bf16"}) == "float32"  # 8.5 million


def test_the_train_page_line_says_what_auto_took_and_why():
    bf16_cpu = {"avx512_bf16"}
    small = precision_reason(ModelConfig(filters=16), TrainConfig(), bf16_cpu)
    assert small == (
        "float32: this network is too small for bfloat16 to pay (8.5 million multiply-adds per image; "
        "bfloat16 pays from 15 million)."
    )
    assert precision_reason(ModelConfig(), TrainConfig(), bf16_cpu) == (
        "bfloat16: this CPU multiplies bfloat16 natively, and this network (30.0 million multiply-adds per image) "
        "is large enough for it to pay."
    )
    assert precision_reason(ModelConfig(), TrainConfig(), {"avx2"}) == (
        "float32: this CPU has no bfloat16 arithmetic, so bfloat16 would be slower here."
    )
    assert precision_reason(TINY, TrainConfig(precision="bfloat16"), bf16_cpu) == "bfloat16, as chosen."
    assert precision_reason(TINY, TrainConfig(precision="bfloat16"), {"avx2"}).startswith(
        "bfloat16, as chosen: this CPU has no bfloat16 arithmetic"
    )
    assert precision_reason(ModelConfig(), TrainConfig(precision="float32"), bf16_cpu) == "float32, as chosen."


def test_a_bfloat16_vgg16_base_feeds_a_float32_head(tmp_path, store):
    from core.training.base_features import FEATURES_KIND
    from core.training.transfer import train_transfer

    folder = write_tiny_dataset(tmp_path / "tiny", per_class=6, size=32)
    data = prepare_data(load_dataset(folder, image_size=32), seed=0)
    vgg = ModelConfig(model="vgg16", input_size=32, num_classes=3, dense_units=8, weights="none")
    res = train_transfer(vgg, TrainConfig(epochs=1, batch_size=8, precision="bfloat16"), data, store=store)
    assert res.extra["precision"] == "bfloat16"
    base = res.model.get_layer("vgg16")
    assert base.get_layer("block1_conv1").compute_dtype == "bfloat16"
    assert res.model.get_layer("dense").compute_dtype == "float32"
    probs = res.model.predict(preprocess_images(data.x01("test"), "none"), verbose=0)
    assert probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    f32 = train_transfer(vgg, TrainConfig(epochs=1, batch_size=8, precision="float32"), data, store=store)
    assert f32.extra["precision"] == "float32" and f32.extra["features_key"] != res.extra["features_key"]
    assert len(list((store.cache_dir / FEATURES_KIND).glob("*.npz"))) == 2  # one cache entry per precision


def test_the_key_holds_the_precision_used_and_float32_keys_are_unchanged():
    m, t = ModelConfig(), TrainConfig()
    # The key of the default configs on data "fp", as stored before the precision setting existed.
    assert run_key(m, t, "fp", "float32") == "7bc8ff16e64f4034"  # computed by the code before this change
    assert run_key(m.replace(model="vgg16"), t.replace(fine_tune_epochs=3), "fp") == "c059053cf6cfa8cf"
    assert run_key(m, t, "fp") == run_key(m, t.replace(precision="float32"), "fp", "float32")
    assert run_key(m, t, "fp", "bfloat16") != run_key(m, t, "fp", "float32")
    # "auto" and the explicit choice it resolves to are the same run
    assert run_key(m, t, "fp", "bfloat16") == run_key(m, t.replace(precision="bfloat16"), "fp", "bfloat16")


def test_the_policy_is_set_and_restored():
    import keras

    before = keras.config.dtype_policy().name
    with precision_policy("bfloat16"):
        assert keras.config.dtype_policy().name == "mixed_bfloat16"
        layer = keras.layers.Dense(2)
    assert keras.config.dtype_policy().name == before == "float32"
    assert layer.compute_dtype == "bfloat16" and layer.variable_dtype == "float32"
    with pytest.raises(ValueError, match="precision_policy"):
        with precision_policy("auto"):
            pass


def test_a_bfloat16_run_trains_and_gives_float32_probabilities(tiny_folder):
    import keras

    data = prepare_data(load_dataset(tiny_folder, image_size=16), loss="categorical", seed=0)
    res = train_model(TINY, TrainConfig(epochs=2, batch_size=8, precision="bfloat16"), data, store=None)
    assert res.extra["precision"] == "bfloat16"
    assert res.model.get_layer("block1_conv").compute_dtype == "bfloat16"
    assert keras.config.dtype_policy().name == "float32"  # not leaked to the next training
    out = res.model.predict(data.x01("test"), verbose=0)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-5)
    assert all(np.isfinite(v) for v in res.history["loss"])
    f32 = train_model(TINY, TrainConfig(epochs=1, batch_size=8, precision="float32"), data, store=None)
    assert f32.extra["precision"] == "float32"
    assert f32.model.get_layer("block1_conv").compute_dtype == "float32"


# --------------------------------------------------------------------------- decided once (issue 17)


@pytest.fixture
def other_cpu(monkeypatch):
    """The server's CPU pretends to have bfloat16 and TINY counts as large enough for it, in this process only;
    counts how often the CPU's flags are read.

    A child process reads the real /proc/cpuinfo and the real size rule: if it decided "auto" again, it would
    pick float32 for TINY (too small for bfloat16 to pay, on any CPU), so the tests below fail on a CPU with
    AVX512_BF16 and on one without.
    """
    import core.base.precision as P

    pretend = frozenset({"avx512_bf16"})
    monkeypatch.setattr(P, "BF16_MIN_MACS", 0)
    reads = []

    def flags(cpuinfo="/proc/cpuinfo"):
        reads.append(cpuinfo)
        return pretend

    monkeypatch.setattr(P, "cpu_flags", flags)
    return SimpleNamespace(precision="bfloat16" if pretend else "float32", reads=reads)


def test_auto_is_decided_where_the_job_is_submitted_and_the_child_trains_in_it(tiny_folder, store, other_cpu):
    from core.jobs import JobState, TrainingWorker

    w = TrainingWorker(store)
    job = w.submit(str(tiny_folder), TINY, TrainConfig(epochs=1, batch_size=8))  # precision "auto"
    assert other_cpu.reads == ["/proc/cpuinfo"]  # once, for the key and the job alike
    assert job.train_cfg.precision == other_cpu.precision  # what the child is sent
    w.wait(job, timeout=120)
    assert job.state == JobState.DONE, job.error
    rec = store.get(job.result.run_id)
    assert rec.extra["precision"] == rec.train_config["precision"] == other_cpu.precision
    model = ModelConfig.from_dict(rec.model_config)
    assert rec.key == run_key(
        model, TrainConfig.from_dict(rec.train_config), rec.data["fingerprint"], other_cpu.precision
    )
    # the same key as an "auto" job submitted before the decision moved (the key leaves the setting out)
    assert rec.key == run_key(model, TrainConfig(epochs=1, batch_size=8), rec.data["fingerprint"], other_cpu.precision)
    w.close()


def test_in_process_auto_is_decided_once_too(tiny_folder, store, other_cpu):
    from core.training.experiment import run_experiment

    rec = run_experiment(str(tiny_folder), TINY, TrainConfig(epochs=1, batch_size=8), store=store)
    assert other_cpu.reads == ["/proc/cpuinfo"]
    assert rec.extra["precision"] == rec.train_config["precision"] == other_cpu.precision


def test_below_the_submit_boundary_auto_is_a_bug(tiny_folder, store):
    from core.training.experiment import compute_run, resolve

    ds, m, key = resolve(str(tiny_folder), TINY, TrainConfig(epochs=1))
    with pytest.raises(ValueError, match="settle_precision"):
        compute_run(ds, m, TrainConfig(epochs=1), key, source=str(tiny_folder), store=store)


def test_a_result_in_another_precision_than_its_key_names_is_not_stored(tiny_folder, store):
    from core.training.experiment import PrecisionMismatch, compute_run, resolve, save_run

    cfg = TrainConfig(epochs=1, batch_size=8, precision="float32")
    ds, m, key = resolve(str(tiny_folder), TINY, cfg)
    art = compute_run(ds, m, cfg, key, source=str(tiny_folder), store=store)
    art.record.extra["precision"] = "bfloat16"  # as a worker that decided "auto" again on its own CPU would
    with pytest.raises(PrecisionMismatch) as caught:
        save_run(store, art)
    assert str(caught.value).startswith("This training ran in bfloat16 although it was started as a float32 run")
    assert isinstance(caught.value, UserError) and store.list_runs() == []


def test_runs_differing_only_in_precision_have_different_labels(tiny_folder, store):
    from core.base.naming import describe
    from core.store.runstore import RunRecord

    f32, bf16 = describe(TINY, TrainConfig(precision="float32")), describe(TINY, TrainConfig(precision="bfloat16"))
    assert bf16 == f32 + " · bfloat16" and describe(TINY, TrainConfig()) == f32  # "auto": not decided yet
    # a bfloat16 run stored before labels named the precision ("auto" in its settings) reads with it
    old = {
        "run_id": "r",
        "key": "r",
        "status": "complete",
        "created": 0.0,
        "source": "s",
        "label": f32,
        "data": {},
        "model_config": {},
        "train_config": {"precision": "auto"},
        "layers": {},
        "history": {},
        "epoch_seconds": [],
        "best_epoch": 1,
        "stopped_early": False,
        "stopped_by_user": False,
        "restored_epoch": None,
        "phases": [],
        "diagnosis": {},
        "test": {},
        "seconds": 1.0,
        "versions": {},
        "extra": {"precision": "bfloat16"},
    }
    assert RunRecord.from_dict(old).label == bf16
    assert RunRecord.from_dict({**old, "extra": {"precision": "float32"}}).label == f32
    assert RunRecord.from_dict({**old, "label": bf16}).label == bf16  # not marked twice


# --------------------------------------------------------------------------- runs stored before


def _stored_before(store, tmp_path, tiny_folder, precision: str, old_train_config: dict):
    """A real run of ``precision``, rewritten into a store of its own as code from before stored it."""
    from core.base.naming import describe
    from core.store.runstore import RunRecord, RunStore
    from core.training.experiment import run_experiment

    rec = run_experiment(str(tiny_folder), TINY, TrainConfig(epochs=1, batch_size=8, precision=precision), store=store)
    old = rec.to_dict()
    old["train_config"] = old_train_config
    old["extra"] = {k: v for k, v in old["extra"].items() if k != "precision" or precision != "float32"}
    old["label"] = describe(TINY.replace(num_classes=3), TrainConfig(epochs=1, batch_size=8))  # no precision in it
    before = RunStore(tmp_path / f"before-{precision}")
    before.save(RunRecord.from_dict(old), model=store.load_model(rec.run_id), arrays=store.load_arrays(rec.run_id))
    return rec, before


@pytest.mark.parametrize(
    ("precision", "settings"),
    [
        pytest.param("float32", "no precision setting", id="float32-before-the-setting"),
        pytest.param("bfloat16", "auto", id="auto-on-a-bf16-cpu"),
    ],
)
def test_runs_stored_before_are_found_and_open(tiny_folder, store, tmp_path, monkeypatch, precision, settings):
    import core.base.precision as P
    from core.inside import grad_cam, open_run
    from core.training.experiment import run_experiment

    train = TrainConfig(epochs=1, batch_size=8).to_dict()
    if settings == "no precision setting":
        train.pop("precision")
    rec, before = _stored_before(store, tmp_path, tiny_folder, precision, train)
    # the CPU that stored them: "auto" meant bfloat16 on it, and float32 before the setting existed
    # (and networks of every size took bfloat16 then: TINY counts as large enough here)
    monkeypatch.setattr(P, "BF16_MIN_MACS", 0)
    monkeypatch.setattr(
        P, "cpu_flags", lambda cpuinfo="/proc/cpuinfo": frozenset({"avx512_bf16"} if precision == "bfloat16" else set())
    )
    again = run_experiment(str(tiny_folder), TINY, TrainConfig(epochs=1, batch_size=8), store=before)
    assert again.cached and again.run_id == rec.run_id and [r["run_id"] for r in before.list_runs()] == [rec.run_id]
    assert TrainConfig.from_dict(again.train_config).precision == "auto"  # read as it is
    assert ("bfloat16" in again.label) is (precision == "bfloat16")  # its label says what it computed in
    explicit = run_experiment(
        str(tiny_folder), TINY, TrainConfig(epochs=1, batch_size=8, precision=precision), store=before
    )
    assert explicit.cached and explicit.run_id == rec.run_id
    net = open_run(before, rec.run_id)
    image = before.load_arrays(rec.run_id)["test_images"][0]
    assert grad_cam(net, image).heatmap.shape == (16, 16)


@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_run_lists_written_before_name_the_precision_once_the_store_is_opened(tiny_folder, store, tmp_path, precision):
    """A runs.db row from before run lists named the precision: a bfloat16 run must not share a float32 label."""
    import json
    import sqlite3
    from contextlib import closing

    from core.base.naming import describe
    from core.store import RunStore

    rec, before = _stored_before(store, tmp_path, tiny_folder, precision, TrainConfig(epochs=1, batch_size=8).to_dict())
    old_label = describe(TINY.replace(num_classes=3), TrainConfig(epochs=1, batch_size=8))
    with closing(sqlite3.connect(before.db_path)) as con, con:
        summary = json.loads(con.execute("SELECT summary FROM runs").fetchone()[0])
        summary.pop("precision")
        summary["label"] = old_label
        con.execute("UPDATE runs SET summary = ?", (json.dumps(summary),))
    assert "precision" not in RunStore(before.home, readonly=True).list_runs()[0]  # read-only: listed as it is

    (row,) = RunStore(before.home).list_runs()  # opened for writing: the row is brought up to date
    assert row["precision"] == precision and row["run_id"] == rec.run_id
    assert row["label"] == (f"{old_label} · bfloat16" if precision == "bfloat16" else old_label)
