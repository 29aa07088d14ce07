"""``export RUN_ID``: a stored run as a script, its model, its history and predictions, an HTML report."""

from __future__ import annotations

import argparse
from pathlib import Path

from core.base import UserError
from core.results import Calibration, get_runs, report_html
from core.results.export import config_json, copy_model, history_csv, predictions_csv, script_text
from core.store import RunRecord, RunStore
from core.training import HeldOutUnavailable, run_calibration


def _write(path: str, text: str) -> Path:
    p = Path(path)
    try:
        p.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UserError(f"Cannot write {path!r}: {exc.strerror}. Choose a folder you can write to.") from None
    return p


def _calibration(store: RunStore, rec: RunRecord) -> Calibration | None:
    """The run's calibration for its report; None when it kept no test predictions (the section is left out)."""
    try:
        return run_calibration(store, rec)
    except HeldOutUnavailable:
        return None


def cmd_export(args: argparse.Namespace, store: RunStore) -> int:
    """Write what was asked for; one line per file written."""
    if args.old_model_flag is not None:  # --model is the model kind everywhere else: refused here, with the fix
        raise UserError(
            f"export names the model file with --model-file now (--model is the model kind in every "
            f"other command): python -m core export {args.run_id} --model-file {args.old_model_flag}"
        )
    wanted = {k: getattr(args, k) for k in ("code", "model_file", "history", "predictions", "report", "config")}
    if not any(wanted.values()):
        raise UserError(
            "Say what to export: --code run.py, --model-file m.keras, --history h.csv, "
            "--predictions p.csv, --report run.html or --config c.json."
        )
    (rec,) = get_runs(store, [args.run_id])
    written = []
    if args.code:
        written.append(_write(args.code, script_text(rec, Path(args.code).name)))
    if args.model_file:
        try:
            written.append(copy_model(rec, store, args.model_file))
        except OSError as exc:
            raise UserError(f"Cannot write {args.model_file!r}: {exc.strerror}.") from None
    if args.history:
        written.append(_write(args.history, history_csv(rec)))
    if args.predictions:
        written.append(_write(args.predictions, predictions_csv(rec, store)))
    if args.report:
        written.append(_write(args.report, report_html(rec, _calibration(store, rec))))
    if args.config:
        written.append(_write(args.config, config_json(rec)))
    for p in written:
        print(f"wrote {p} ({p.stat().st_size:,} bytes)")
    return 0
