"""What the CLI prints besides tables (core.base.tables): live progress and the JSON of a run."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TextIO

from core.results import diagnosis_of
from core.store import RunRecord
from core.training import ProgressEvent, stop_reason


def progress_printer(stream: TextIO) -> Callable[[ProgressEvent], None]:
    """A progress callable printing one line per epoch, as Keras' ``verbose=2`` does."""

    def progress(ev: ProgressEvent) -> None:
        if ev.kind == "epoch":
            logs = " - ".join(f"{k}: {v:.4f}" for k, v in ev.logs.items())
            print(f"Epoch {ev.epoch}/{ev.epochs} [{ev.phase}] - {logs}", file=stream, flush=True)

    return progress


def run_payload(rec: RunRecord) -> dict[str, Any]:
    """The JSON of a run (``train --json``; the lab and compare reuse it)."""
    return {
        "run_id": rec.run_id,
        "cached": rec.cached,
        "status": rec.status,
        "label": rec.label,
        "history": rec.history,
        "best_epoch": rec.best_epoch,
        "restored_epoch": rec.restored_epoch,
        "stopped_early": rec.stopped_early,
        "stop_reason": stop_reason(rec),  # a time budget's sentence; None otherwise
        "epoch_seconds": rec.epoch_seconds,
        "diagnosis": d.to_dict() if (d := diagnosis_of(rec)) else rec.diagnosis,  # today's truth table
        "test": rec.test,
        "data": rec.data,
        "params": rec.layers,
        "seconds": rec.seconds,
        "extra": rec.extra,
    }
