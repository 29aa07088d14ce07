"""The overfitting lab's variants: their configs, the presets, running them (directly and through the worker), the CLI.

The lab's table, takeaway and curves are in test_lab_results.py."""

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from tinydata import write_tiny_dataset

from core.base.config import AugmentConfig, ConfigError, ModelConfig, TrainConfig, apply_changes, run_key
from core.cli import main
from core.lab.variants import (
    LAB_DROPOUT,
    LAB_PATIENCE,
    PRESETS,
    VARIANT_NAMES,
    lab_variants,
    run_lab,
)

ROOT = Path(__file__).resolve().parent.parent
TINY = ModelConfig(input_size=16, blocks=1, filters=4, dense_units=8)


def flat(model_cfg: ModelConfig, train_cfg: TrainConfig) -> dict:
    """Both configs as one dict of dotted keys, the way Remedy/Preset changes name fields."""
    out = {f"model.{k}": v for k, v in model_cfg.to_dict().items()}
    out.update({f"train.{k}": v for k, v in train_cfg.to_dict().items()})
    return out


def diff(a: dict, b: dict) -> set[str]:
    return {k for k in a if a[k] != b[k]}


CLAIMS = {
    "baseline": set(),
    "dropout": {"model.dropout"},
    "augment": {"train.augment"},
    "early_stopping": {"train.early_stopping"},
    "all": {"model.dropout", "train.augment", "train.early_stopping"},
}


# --- Variants ---------------------------------------------------------------


@pytest.mark.parametrize(
    "model_cfg, train_cfg",
    [
        (None, None),
        # A student's own settings, with regularisation already switched on: the lab
        # must switch it off in the baseline and keep everything else.
        (
            ModelConfig(filters=16, dense_units=64, dropout=0.3, batchnorm=True),
            TrainConfig(
                learning_rate=3e-4,
                batch_size=16,
                early_stopping=3,
                monitor="val_accuracy",
                restore_best=False,
                augment=AugmentConfig(rotation=45, hflip=True),
            ),
        ),
    ],
)
def test_variants_differ_from_the_baseline_only_in_what_they_claim(model_cfg, train_cfg):
    variants = lab_variants(fraction=0.3, epochs=12, seed=7, model_cfg=model_cfg, train_cfg=train_cfg)
    assert [v.name for v in variants] == list(VARIANT_NAMES)
    base = flat(variants[0].model_cfg, variants[0].train_cfg)
    for v in variants:
        assert diff(flat(v.model_cfg, v.train_cfg), base) == CLAIMS[v.name], v.name
        assert v.changes.endswith(".") and len(v.changes) > 40

    # The baseline has no regularisation at all; the shared settings are the asked ones.
    assert base["model.dropout"] == 0.0
    assert not variants[0].train_cfg.augment.enabled
    assert base["train.early_stopping"] == 0
    assert (base["train.train_fraction"], base["train.epochs"], base["train.seed"]) == (0.3, 12, 7)
    assert base["train.monitor"] == "val_loss" and base["train.restore_best"] is True
    if model_cfg is not None:
        assert base["model.filters"] == 16 and base["model.batchnorm"] is True
        assert base["train.learning_rate"] == 3e-4 and base["train.batch_size"] == 16

    by = {v.name: v for v in variants}
    assert by["dropout"].model_cfg.dropout == LAB_DROPOUT == 0.5
    assert by["augment"].train_cfg.augment == AugmentConfig.course()
    assert by["early_stopping"].train_cfg.early_stopping == LAB_PATIENCE == 5
    assert by["all"].model_cfg == by["dropout"].model_cfg
    assert by["all"].train_cfg.augment == AugmentConfig.course()
    assert by["all"].train_cfg.early_stopping == LAB_PATIENCE

    # Five different runs: none of them can be served as another's cached result.
    keys = {run_key(v.model_cfg, v.train_cfg, "same-data") for v in variants}
    assert len(keys) == 5


def test_the_sentences_name_the_actual_settings():
    by = {v.name: v for v in lab_variants(fraction=0.2, epochs=30, seed=42)}
    assert "20%" in by["baseline"].changes and "30 epochs" in by["baseline"].changes
    assert "Dropout(0.5)" in by["dropout"].changes
    assert "20 degrees" in by["augment"].changes and "training images only" in by["augment"].changes
    assert "5 epochs" in by["early_stopping"].changes and "restored" in by["early_stopping"].changes


@pytest.mark.parametrize(
    "kw, field", [({"fraction": 0.01}, "train_fraction"), ({"epochs": 0}, "epochs"), ({"seed": -1}, "seed")]
)
def test_out_of_range_settings_are_refused_with_the_field_named(kw, field):
    args = {"fraction": 0.2, "epochs": 30, "seed": 42, **kw}
    with pytest.raises(ConfigError, match=f"'{field}'"):
        lab_variants(**args)


# --- Presets ----------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_apply_cleanly_and_change_only_their_keys(name):
    p = PRESETS[name]
    assert p.title and p.description and p.look_for
    assert all(k.startswith("model.") for k in p.model_changes)
    assert all(k.startswith("train.") for k in p.train_changes)
    assert set(p.variants) <= set(VARIANT_NAMES) and p.variants
    # Applied to someone's Architecture/Train settings, as the dashboard does.
    m0 = ModelConfig(filters=16, dense_units=64, batchnorm=True)
    t0 = TrainConfig(batch_size=16, seed=3, optimizer="rmsprop")
    m1, t1 = apply_changes(p.changes, m0, t0)
    assert (m1, t1) == p.apply(m0, t0)
    changed = diff(flat(m1, t1), flat(m0, t0))
    assert changed <= set(p.changes)
    assert (m1.filters, m1.batchnorm, t1.batch_size, t1.seed, t1.optimizer) == (16, True, 16, 3, "rmsprop")


def test_preset_values():
    m, t = PRESETS["overfit"].apply()
    assert (m.dropout, t.train_fraction, t.epochs, t.early_stopping, t.augment.enabled) == (0.0, 0.1, 60, 0, False)
    m, t = PRESETS["underfit"].apply()
    assert t.learning_rate == 1e-5
    m, t = PRESETS["fix"].apply(ModelConfig(dropout=0.0), TrainConfig(train_fraction=0.1))
    assert m.dropout == 0.5 and t.augment == AugmentConfig.course() and t.early_stopping == 5
    assert t.restore_best and t.monitor == "val_loss" and t.train_fraction == 0.1  # the data stay small


def test_make_it_overfit_then_fix_it_are_the_labs_baseline_and_all_three():
    """A student who applies the presets on the Train page gets the lab's own runs (same run keys)."""
    variants = {v.name: v for v in lab_variants(fraction=0.1, epochs=60, seed=42)}
    overfit = PRESETS["overfit"].apply()
    assert overfit == (variants["baseline"].model_cfg, variants["baseline"].train_cfg)
    fixed = PRESETS["fix"].apply(*overfit)
    assert fixed == (variants["all"].model_cfg, variants["all"].train_cfg)


def test_presets_are_read_only():
    with pytest.raises(TypeError):
        PRESETS["fix"].train_changes["train.early_stopping"] = 50  # type: ignore[index]
    with pytest.raises(ValueError, match="variants"):
        type(PRESETS["fix"])("t", "d", "l", {}, {}, variants=("baseline", "bagging"))


# --- Running ----------------------------------------------------------------

TINY_TRAIN = TrainConfig(batch_size=8)


@pytest.fixture(scope="module")
def trained_lab(tmp_path_factory):
    """The lab trained once on tiny data (2 epochs) in a store of its own, shared by the tests below."""
    from core.store.runstore import RunStore

    home = tmp_path_factory.mktemp("lab-home")
    folder = write_tiny_dataset(tmp_path_factory.mktemp("lab-data") / "tiny")
    variants = lab_variants(fraction=0.5, epochs=2, seed=42, model_cfg=TINY, train_cfg=TINY_TRAIN)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CNNLAB_HOME", str(home))  # the CLI's default store is this one too
        seen = []
        records = run_lab(
            str(folder), variants, store=RunStore(home), on_variant=lambda i, v, r: seen.append((i, v.name))
        )
        yield SimpleNamespace(folder=str(folder), variants=variants, records=records, seen=seen, store=RunStore(home))


def test_run_lab_trains_five_variants_then_serves_them_from_the_store(trained_lab):
    from core.base.precision import settle_precision
    from core.jobs.worker import TrainingWorker

    lab, first = trained_lab, trained_lab.records
    assert lab.seen == list(enumerate(VARIANT_NAMES))
    assert len(first) == 5 and not any(r.cached for r in first)
    assert len({r.run_id for r in first}) == 5
    for v, r in zip(lab.variants, first, strict=True):
        assert r.status == "complete" and len(r.history["val_loss"]) == 2
        assert r.train_config == settle_precision(v.model_cfg, v.train_cfg).to_dict()  # "auto" decided at submit
        assert r.model_config["dropout"] == v.model_cfg.dropout and r.model_config["num_classes"] == 3
    # The same split for all: equal counts per class in every part.
    assert len({json.dumps(r.data["class_counts"], sort_keys=True) for r in first}) == 1
    assert first[0].data["n_train"] < 24  # half of the training part

    second = run_lab(lab.folder, lab.variants, store=lab.store)
    assert all(r.cached for r in second)
    assert [r.run_id for r in second] == [r.run_id for r in first]
    assert [r.history for r in second] == [r.history for r in first]

    # The dashboard's path (the worker) finds the same stored runs.
    worker = TrainingWorker(lab.store)
    jobs = [worker.submit(lab.folder, v.model_cfg, v.train_cfg) for v in lab.variants]
    snaps = [j.snapshot() for j in jobs]
    assert all(s.state == "done" and s.cached for s in snaps)
    assert [s.run_id for s in snaps] == [r.run_id for r in first]


def test_importing_the_lab_does_not_import_tensorflow():
    code = "import sys, core.lab.variants; print('tensorflow' in sys.modules or 'keras' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --- The CLI ------------------------------------------------------------------


def test_cli_lab_json_and_table(capsys, monkeypatch, trained_lab):
    import core.cli.commands
    import core.lab.variants

    # The CLI's network is the course CNN; here the tiny one the fixture trained, so the
    # CLI finds its runs in the store instead of training five more networks.
    asked = []
    real = core.lab.variants.lab_variants

    def tiny_variants(**kw):
        asked.append(kw)
        return real(**kw, model_cfg=TINY, train_cfg=TINY_TRAIN)

    monkeypatch.setattr(core.cli.commands, "lab_variants", tiny_variants)
    monkeypatch.setenv("CNNLAB_HOME", str(trained_lab.store.home))
    argv = ["lab", "--data", trained_lab.folder, "--fraction", "0.5", "--epochs", "2", "--seed", "42"]
    code = main([*argv, "--json"])
    out, err = capsys.readouterr()
    assert code == 0 and "Overfitting lab" not in err  # --json prints nothing else
    assert asked == [{"fraction": 0.5, "epochs": 2, "seed": 42}]
    d = json.loads(out)
    assert (d["data"], d["fraction"], d["epochs"], d["seed"]) == (trained_lab.folder, 0.5, 2, 42)
    assert [v["variant"] for v in d["variants"]] == list(VARIANT_NAMES)
    for v, rec in zip(d["variants"], trained_lab.records, strict=True):
        assert v["cached"] is True and v["run_id"] == rec.run_id and v["history"] == rec.history
        assert v["epochs_run"] == 2 and v["epochs_planned"] == 2
        h = rec.history
        assert v["final_gap"] == pytest.approx(h["accuracy"][-1] - h["val_accuracy"][-1])
        assert v["best_val_accuracy"] == pytest.approx(h["val_accuracy"][rec.best_epoch - 1])
        assert v["test_accuracy"] == pytest.approx(rec.test["accuracy"])
        assert v["train_config"]["train_fraction"] == 0.5 and v["changes"]
    assert [v["model_config"]["dropout"] for v in d["variants"]] == [0.0, 0.5, 0.0, 0.0, 0.5]
    assert d["summary"] and "baseline" in d["summary"][0]

    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:2] == ["Variant", "Best-epoch"]
    table = lines[1:6]
    assert [ln.split("  ")[0].strip() for ln in table] == [v.title for v in trained_lab.variants]
    assert all("(stored)" in ln for ln in table)
    gap = f"{d['variants'][0]['final_gap']:+.3f}"
    assert gap in table[0]
    assert "[5/5] + all three: 2 epochs, stored run" in err


@pytest.mark.parametrize(
    "argv, code, needle",
    [
        (["lab", "--data", "thin_sections", "--fraction", "2"], 2, "'train_fraction'"),
        (["lab", "--data", "/no/such/folder"], 2, "No dataset"),  # a user's error: exit 2
    ],
)
def test_cli_lab_errors_are_one_line(capsys, argv, code, needle):
    assert main(argv) == code
    err = capsys.readouterr().err.strip()
    assert needle in err and "\n" not in err and "Traceback" not in err
