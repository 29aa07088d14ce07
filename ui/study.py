"""What the Compare and Sweep pages share: picking runs, queueing repeats and sweeps as this session's jobs,
and the files a run can be downloaded as (built once per run and cached)."""

from __future__ import annotations

import datetime
import time
from collections.abc import Mapping, Sequence
from typing import Any

import streamlit as st

from core.base import ModelConfig, TrainConfig
from core.results import report_html, seed_configs, sweep_points
from core.results.export import config_json, history_csv, predictions_csv, script_text
from core.store import RunRecord
from core.training import HeldOutUnavailable
from ui import jobs, resources


def filter_runs(
    runs: Sequence[Mapping[str, Any]], sources: Sequence[str], kinds: Sequence[str], since: datetime.date | None = None
) -> list[dict]:
    """The run summaries on the chosen datasets and model kinds, trained on or after ``since`` (local time);
    an empty choice keeps all."""
    start = time.mktime(since.timetuple()) if since is not None else None
    return [
        dict(r)
        for r in runs
        if (not sources or r["source"] in sources)
        and (not kinds or r["model"] in kinds)
        and (start is None or r["created"] >= start)
    ]


def records(run_ids: Sequence[str]) -> list[RunRecord]:
    """The records this session may see, in order (a run it may not see, or gone, is left out)."""
    out = [resources.record(r) for r in run_ids]
    return [r for r in out if r is not None]


def submit_repeats(rec: RunRecord, k: int) -> None:
    """Queue ``rec``'s configuration over ``k`` seeds (its own seed first) as this session's jobs, recorded
    under :func:`ui.jobs.repeats_key` (the Compare page shows them).

    Raises ConfigError (k out of range) and the worker's data/architecture errors.
    """
    model_cfg = ModelConfig.from_dict(rec.model_config)
    configs = [(model_cfg, t) for t in seed_configs(TrainConfig.from_dict(rec.train_config), k)]
    jobs.start_many(jobs.repeats_key(rec.run_id), rec.source, configs)


def submit_sweep(
    source: str, grid: Mapping[str, Sequence[Any]], model_cfg: ModelConfig, train_cfg: TrainConfig
) -> None:
    """Check every point of the grid, then queue them all as this session's Sweep jobs.

    The sweep's ``names``, ``values`` and ``source`` are kept with the job ids
    (:func:`ui.jobs.following`). Raises ConfigError before anything is queued.
    """
    names, values, points = sweep_points(grid, model_cfg, train_cfg)
    configs = [(p.model_cfg, p.train_cfg) for p in points]
    jobs.start_many(jobs.SWEEP, source, configs, names=names, values=values, source=source)


@st.cache_data(show_spinner=False, max_entries=8)
def _exports(home: str, run_id: str) -> dict[str, str]:
    rec = resources.record(run_id)
    if rec is None:
        return {}
    return {
        "script": script_text(rec),
        "history": history_csv(rec),
        "config": config_json(rec),
        "predictions": predictions_csv(rec, resources.store()),
    }


def exports(run_id: str) -> dict[str, str]:
    """The run's script, history CSV, predictions CSV and configuration JSON (text, cached per run)."""
    return _exports(resources.home(), run_id)


@st.cache_data(show_spinner=False, max_entries=2)
def _report(home: str, run_id: str) -> str:
    rec = resources.record(run_id)
    if rec is None:
        return ""
    try:
        calibration = resources.calibration(rec)
    except HeldOutUnavailable:  # no test predictions kept: the report leaves its calibration out
        calibration = None
    return report_html(rec, calibration)


def report(run_id: str) -> str:
    """The run's self-contained HTML report (about 5 MB: built only when asked for, cached)."""
    return _report(resources.home(), run_id)


def model_bytes(run_id: str) -> bytes | None:
    """The run's best model file as the store wrote it; None when it has none."""
    path = resources.store().model_path(run_id)
    return path.read_bytes() if path.exists() else None
