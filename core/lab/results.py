"""The overfitting lab's results: the table, the overlaid curves and the takeaway.

Pure functions of the variants (:mod:`core.lab.variants`) and their stored runs; no
training, no printing (the CLI prints, the Overfitting lab page draws).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from core.base.tables import number
from core.lab.variants import LabVariant
from core.results.curves import best_epoch as _best_epoch
from core.results.diagnosis import diagnosis_of
from core.results.verdict import UNDERFITTING_SO_FAR
from core.store.runstore import RunRecord


def lab_rows(variants: Sequence[LabVariant], records: Sequence[RunRecord | None]) -> list[dict[str, Any]]:
    """One table row per variant.

    Args:
        variants: the lab's variants.
        records: their runs, in the same order; None for one not finished yet.

    Returns:
        Dicts with ``variant``, ``title``, ``changes``, ``best_epoch`` (lowest
        validation loss, 1-based), ``best_val_accuracy`` (validation accuracy at
        that epoch), ``final_train_accuracy``, ``final_val_accuracy``,
        ``final_gap`` (training minus validation accuracy at the last epoch),
        ``test_accuracy`` (with the best epoch's weights), ``epochs_run``,
        ``epochs_planned``, ``stopped_early``, ``seconds`` (training time),
        ``verdict`` (the verdict's title), ``fit`` (the verdict itself:
        "still_improving", ...; :func:`core.results.diagnosis.diagnosis_of`, so a stored
        run reads by today's table), ``run_id`` and ``cached``. The
        measurements are None for a variant without a record.
    """
    if len(variants) != len(records):
        raise ValueError(
            f"lab_rows needs one record (or None) per variant. Got {len(variants)} variants and {len(records)} records."
        )
    rows = []
    for v, rec in zip(variants, records, strict=True):
        row: dict[str, Any] = {
            "variant": v.name,
            "title": v.title,
            "changes": v.changes,
            "epochs_planned": v.train_cfg.epochs,
            "best_epoch": None,
            "best_val_accuracy": None,
            "final_train_accuracy": None,
            "final_val_accuracy": None,
            "final_gap": None,
            "test_accuracy": None,
            "epochs_run": None,
            "stopped_early": None,
            "seconds": None,
            "verdict": None,
            "fit": None,
            "run_id": None,
            "cached": None,
        }
        if rec is not None:
            h = rec.history
            acc, vacc = h.get("accuracy", []), h.get("val_accuracy", [])
            n = len(h.get("loss", []))
            best = rec.best_epoch if 0 < rec.best_epoch <= len(vacc) else _best_or_none(h)
            diagnosis = diagnosis_of(rec)
            row.update(
                best_epoch=best,
                best_val_accuracy=vacc[best - 1] if best else None,
                final_train_accuracy=acc[-1] if acc else None,
                final_val_accuracy=vacc[-1] if vacc else None,
                final_gap=acc[-1] - vacc[-1] if acc and vacc else None,
                test_accuracy=rec.test.get("accuracy"),
                epochs_run=n,
                stopped_early=bool(rec.stopped_early),
                seconds=rec.seconds,
                verdict=diagnosis.title if diagnosis else None,
                fit=diagnosis.verdict if diagnosis else None,
                run_id=rec.run_id,
                cached=bool(rec.cached),
            )
        rows.append(row)
    return rows


def _best_or_none(history: Mapping[str, Sequence[float]]) -> int | None:
    try:
        return _best_epoch(history, "val_loss")
    except (KeyError, ValueError):
        return None


def lab_curves(variants: Sequence[LabVariant], histories: Sequence[Mapping[str, Sequence[float]] | None]) -> list[dict]:
    """Validation-loss curves to overlay, with each one's best epoch (lowest validation loss).

    Args:
        variants: the lab's variants.
        histories: each variant's history so far (a finished run's, or a
            training job's partial one); None or empty when nothing is known yet.

    Returns:
        One dict per variant with history: ``variant``, ``title``, ``epochs``
        (1-based), ``val_loss``, ``loss``, ``best_epoch``, ``best_val_loss``.
    """
    out = []
    for v, h in zip(variants, histories, strict=True):
        vloss = list((h or {}).get("val_loss", []))
        if not vloss:
            continue
        best = _best_or_none({"val_loss": vloss})
        out.append(
            {
                "variant": v.name,
                "title": v.title,
                "epochs": list(range(1, len(vloss) + 1)),
                "val_loss": vloss,
                "loss": list((h or {}).get("loss", []))[: len(vloss)],
                "best_epoch": best,
                "best_val_loss": vloss[best - 1] if best else None,
            }
        )
    return out


def lab_summary(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """What the table says, in a few sentences (empty while the baseline is missing)."""
    by = {r["variant"]: r for r in rows if r.get("final_gap") is not None}
    base = by.get("baseline")
    if base is None:
        return []
    out = [
        f"The baseline ends with training accuracy {base['final_train_accuracy']:.2f} against validation "
        f"accuracy {base['final_val_accuracy']:.2f}: a gap of {base['final_gap']:+.2f}."
    ]
    others = [r for r in rows if r["variant"] != "baseline" and r.get("final_gap") is not None]
    if others:
        gaps = ", ".join(f"{r['title']} {r['final_gap']:+.2f}" for r in others)
        out.append(f"Gaps with the cures: {gaps}.")
    full = by.get("all")
    if full is not None:
        if full["final_gap"] < base["final_gap"]:
            out.append(
                f"All three together cut the gap by {base['final_gap'] - full['final_gap']:.2f}"
                + _test_change(base, full)
            )
        else:
            out.append(
                "All three together did not shrink the gap here: the baseline is not overfitting much "
                "(try the Make it overfit preset)."
            )
    es = by.get("early_stopping")
    if es is not None and es["stopped_early"]:
        out.append(
            f"Early stopping ended its run after {es['epochs_run']} of {es['epochs_planned']} epochs "
            f"(best epoch {es['best_epoch']})."
        )
    # A regularised network learns more slowly: if the verdict says it was still improving,
    # its accuracy has not caught up yet, and the table would undersell the cure.
    rising = [r for r in others if r.get("fit") == "still_improving"]
    if rising:
        names = ", ".join(f"{r['title']} (best epoch {r['best_epoch']} of {r['epochs_run']}{_also(r)})" for r in rising)
        out.append(
            f"Still improving at the end: {names}. Regularised networks learn more slowly; give them more "
            "epochs before comparing accuracies."
        )
    under = [r for r in others if r.get("fit") == "underfitting"]
    if under:
        names = ", ".join(f"{r['title']} ({r['final_train_accuracy']:.2f})" for r in under)
        out.append(
            f"Underfitting now, with low training accuracy at the last epoch: {names}. Their gap closed partly "
            "because they learned less; give them more epochs or more of the training images."
        )
    return out


def _also(row: Mapping[str, Any]) -> str:
    """ ", underfitting so far" when the variant's verdict says both (one verdict, one group)."""
    return ", underfitting so far" if row.get("verdict") == UNDERFITTING_SO_FAR else ""


def _test_change(base: Mapping[str, Any], other: Mapping[str, Any]) -> str:
    if base.get("test_accuracy") is None or other.get("test_accuracy") is None:
        return "."
    return f"; test accuracy {base['test_accuracy']:.2f} -> {other['test_accuracy']:.2f}."


LAB_COLUMNS = [
    ("title", "Variant"),
    ("best_val_accuracy", "Best-epoch val acc"),
    ("final_gap", "Train-val gap (last epoch)"),
    ("test_accuracy", "Test acc"),
    ("epochs", "Epochs"),
    ("time", "Time"),
]


def lab_cells(row: dict[str, Any]) -> dict[str, str]:
    """One lab table row as text."""
    epochs = "-"
    if row.get("epochs_run") is not None:
        epochs = f"{row['epochs_run']}/{row['epochs_planned']}"
        if row.get("best_epoch"):
            epochs += f" (best {row['best_epoch']})"
    time_text = "-" if row.get("seconds") is None else f"{row['seconds']:.1f} s"
    if row.get("cached"):
        time_text += " (stored)"
    return {
        "title": row["title"],
        "best_val_accuracy": number(row.get("best_val_accuracy"), ".3f"),
        "final_gap": number(row.get("final_gap"), "+.3f"),
        "test_accuracy": number(row.get("test_accuracy"), ".3f"),
        "epochs": epochs,
        "time": time_text,
    }
