"""The overfitting lab's results: the table's numbers, the takeaway sentences and the curves, from hand-made records."""

import pytest

from core.lab.results import lab_curves, lab_rows, lab_summary
from core.lab.variants import lab_variants
from core.store.runstore import RunRecord


def record(
    run_id,
    *,
    acc,
    vacc,
    vloss,
    best_epoch,
    test_acc,
    seconds=10.0,
    stopped_early=False,
    cached=False,
    verdict="Overfitting",
):
    n = len(acc)
    return RunRecord(
        run_id=run_id,
        key=run_id,
        status="complete",
        created=0.0,
        source="x",
        label="",
        data={},
        model_config={},
        train_config={},
        layers={},
        history={"loss": [1.0 - 0.1 * i for i in range(n)], "accuracy": acc, "val_loss": vloss, "val_accuracy": vacc},
        epoch_seconds=[seconds / n] * n,
        best_epoch=best_epoch,
        stopped_early=stopped_early,
        stopped_by_user=False,
        restored_epoch=None,
        phases=[],
        diagnosis={"verdict": verdict.lower(), "title": verdict},
        test={"accuracy": test_acc},
        seconds=seconds,
        versions={},
        cached=cached,
    )


BASE = record(
    "b",
    acc=[0.5, 0.8, 0.95, 0.99],
    vacc=[0.45, 0.6, 0.62, 0.58],
    vloss=[1.2, 0.9, 0.95, 1.1],
    best_epoch=2,
    test_acc=0.61,
    seconds=12.5,
)
ALL = record(
    "a",
    acc=[0.4, 0.6, 0.7, 0.72, 0.74],
    vacc=[0.5, 0.62, 0.7, 0.71, 0.73],
    vloss=[1.3, 1.0, 0.8, 0.78, 0.79],
    best_epoch=4,
    test_acc=0.74,
    seconds=20.0,
    stopped_early=True,
    cached=True,
)


def test_lab_rows_from_hand_made_records():
    variants = lab_variants(fraction=0.2, epochs=30, seed=42)
    rows = lab_rows(variants, [BASE, None, None, None, ALL])
    b, d, a = rows[0], rows[1], rows[4]
    assert b["variant"] == "baseline" and b["title"] == "baseline"
    assert b["best_epoch"] == 2 and b["best_val_accuracy"] == pytest.approx(0.6)
    assert b["final_train_accuracy"] == pytest.approx(0.99) and b["final_val_accuracy"] == pytest.approx(0.58)
    assert b["final_gap"] == pytest.approx(0.41)
    assert b["test_accuracy"] == pytest.approx(0.61)
    assert (b["epochs_run"], b["epochs_planned"], b["seconds"], b["cached"]) == (4, 30, 12.5, False)
    assert b["verdict"] == "Overfitting" and b["run_id"] == "b"
    assert a["best_val_accuracy"] == pytest.approx(0.71) and a["final_gap"] == pytest.approx(0.01)
    assert (a["epochs_run"], a["stopped_early"], a["cached"]) == (5, True, True)
    assert d["variant"] == "dropout" and d["final_gap"] is None and d["epochs_run"] is None
    assert d["changes"] == variants[1].changes

    text = " ".join(lab_summary(rows))
    assert "gap of +0.41" in text and "cut the gap by 0.40" in text and "0.61 -> 0.74" in text
    assert "Still improving" not in text  # all three stopped early: it had finished improving
    assert lab_summary(lab_rows(variants, [None, None, None, None, ALL])) == []

    # A cure whose verdict is "still improving" has not caught up yet: the summary says so. The groups come
    # from the verdict read again by today's table (diagnosis_of), not from the title stored with the run.
    late = record(
        "d",
        acc=[0.4, 0.5, 0.6, 0.65],
        vacc=[0.4, 0.5, 0.55, 0.6],
        vloss=[1.3, 1.1, 1.0, 0.9],
        best_epoch=4,
        test_acc=0.58,
        verdict="Underfitting",
    )
    rows = lab_rows(variants, [BASE, late, None, None, ALL])
    assert (rows[1]["fit"], rows[1]["verdict"]) == ("still_improving", "Still improving")
    text = " ".join(lab_summary(rows))
    assert "Still improving at the end: + dropout (best epoch 4 of 4)." in text
    assert "Underfitting now" not in text  # one verdict per variant: not both groups

    # Flat and low, its lowest validation loss before the end: underfitting, not still improving.
    flat = record(
        "d",
        acc=[0.3, 0.35, 0.36, 0.36],
        vacc=[0.3, 0.33, 0.34, 0.33],
        vloss=[1.5, 1.45, 1.44, 1.46],
        best_epoch=3,
        test_acc=0.3,
    )
    text = " ".join(lab_summary(lab_rows(variants, [BASE, flat, None, None, ALL])))
    assert "Underfitting now, with low training accuracy at the last epoch: + dropout (0.36)." in text
    assert "Still improving" not in text

    # Still improving and underfitting in one verdict: one group, and the name says both.
    low = record(
        "d",
        acc=[0.3, 0.35, 0.4, 0.45],
        vacc=[0.3, 0.33, 0.36, 0.4],
        vloss=[1.5, 1.4, 1.3, 1.2],
        best_epoch=4,
        test_acc=0.3,
    )
    text = " ".join(lab_summary(lab_rows(variants, [BASE, low, None, None, ALL])))
    assert "Still improving at the end: + dropout (best epoch 4 of 4, underfitting so far)." in text
    assert "Underfitting now" not in text

    # `lab --epochs 2`: a variant whose best epoch is 1 of 2 is too short to judge, not "still improving".
    short = record("d", acc=[0.5, 0.6], vacc=[0.5, 0.55], vloss=[1.0, 1.1], best_epoch=1, test_acc=0.5)
    rows = lab_rows(variants, [BASE, short, None, None, ALL])
    assert rows[1]["verdict"] == "Too few epochs to judge"
    assert "best epoch 1 of 2" not in " ".join(lab_summary(rows))

    with pytest.raises(ValueError, match="one record"):
        lab_rows(variants, [BASE])


def test_a_record_without_a_valid_best_epoch_falls_back_to_the_lowest_val_loss():
    rec = record("x", acc=[0.5, 0.6, 0.7], vacc=[0.4, 0.5, 0.45], vloss=[1.0, 0.7, 0.8], best_epoch=0, test_acc=0.5)
    row = lab_rows(lab_variants()[:1], [rec])[0]
    assert row["best_epoch"] == 2 and row["best_val_accuracy"] == pytest.approx(0.5)


def test_curves_mark_the_lowest_validation_loss_and_skip_empty_histories():
    variants = lab_variants()[:3]
    curves = lab_curves(variants, [BASE.history, {"loss": [1.0], "val_loss": []}, {"val_loss": [0.9, 0.5, 0.7]}])
    assert [c["variant"] for c in curves] == ["baseline", "augment"]
    assert curves[0]["best_epoch"] == 2 and curves[0]["best_val_loss"] == 0.9 and curves[0]["epochs"] == [1, 2, 3, 4]
    assert curves[1]["best_epoch"] == 2 and curves[1]["best_val_loss"] == 0.5
