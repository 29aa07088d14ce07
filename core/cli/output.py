"""What the CLI prints: the one table printer, live progress, and the JSON of a run."""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TextIO

from core.fit import ProgressEvent
from core.store import RunRecord


def print_table(rows: Sequence[Mapping[str, Any]], cols: Sequence[tuple[str, str]], file: TextIO | None = None) -> None:
    """Rows as aligned text columns; ``cols`` are ``(key, header)`` pairs; a missing cell prints empty."""
    file = file or sys.stdout
    cells = [[str(r.get(k, "") if r.get(k) is not None else "-") for k, _ in cols] for r in rows]
    widths = [max([len(h), *(len(c[i]) for c in cells)]) for i, (_, h) in enumerate(cols)]
    print("  ".join(h.ljust(w) for (_, h), w in zip(cols, widths, strict=True)).rstrip(), file=file)
    for c in cells:
        print("  ".join(v.ljust(w) for v, w in zip(c, widths, strict=True)).rstrip(), file=file)


def number(v: Any, fmt: str = "") -> str:
    """A cell: '-' for a missing value, thousands separators for ints, ``fmt`` for floats."""
    if v is None:
        return "-"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return format(v, fmt or ".1f")
    return str(v)


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
        "epoch_seconds": rec.epoch_seconds,
        "diagnosis": rec.diagnosis,
        "test": rec.test,
        "data": rec.data,
        "params": rec.layers,
        "seconds": rec.seconds,
        "extra": rec.extra,
    }
