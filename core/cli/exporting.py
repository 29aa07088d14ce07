"""``export RUN_ID``: a stored run as a script, its model, its history and predictions, an HTML report."""

from __future__ import annotations

import argparse
from pathlib import Path

from core.compare import get_runs
from core.errors import UserError
from core.export import config_json, copy_model, history_csv, predictions_csv, script_text
from core.report import report_html
from core.store import RunStore


def _write(path: str, text: str) -> Path:
    p = Path(path)
    try:
        p.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UserError(f"Cannot write {path!r}: {exc.strerror}. Choose a folder you can write to.") from None
    return p


def cmd_export(args: argparse.Namespace, store: RunStore) -> int:
    """Write what was asked for; one line per file written."""
    wanted = {k: getattr(args, k) for k in ("code", "model", "history", "predictions", "report", "config")}
    if not any(wanted.values()):
        raise UserError("Say what to export: --code run.py, --model m.keras, --history h.csv, "
                        "--predictions p.csv, --report run.html or --config c.json.")  # fmt: skip
    (rec,) = get_runs(store, [args.run_id])
    written = []
    if args.code:
        written.append(_write(args.code, script_text(rec, Path(args.code).name)))
    if args.model:
        try:
            written.append(copy_model(rec, store, args.model))
        except OSError as exc:
            raise UserError(f"Cannot write {args.model!r}: {exc.strerror}.") from None
    if args.history:
        written.append(_write(args.history, history_csv(rec)))
    if args.predictions:
        written.append(_write(args.predictions, predictions_csv(rec, store)))
    if args.report:
        written.append(_write(args.report, report_html(rec)))
    if args.config:
        written.append(_write(args.config, config_json(rec)))
    for p in written:
        print(f"wrote {p} ({p.stat().st_size:,} bytes)")
    return 0
