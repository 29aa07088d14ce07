"""Repeats over seeds: the configs to train, and what their runs say together.

Training is the caller's (the CLI's ``train_all`` through the worker, or a
page through the worker): this module gives the configurations and reads the
stored runs. A repeat changes only ``TrainConfig.seed``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from core.base.config import RANGES, ConfigError, TrainConfig
from core.results.compare import run_metrics
from core.results.curves import HISTORY_KEYS

if TYPE_CHECKING:  # pragma: no cover
    from core.store.runstore import RunRecord

MIN_SEEDS, MAX_SEEDS = 2, 10


def seed_configs(train_cfg: TrainConfig, k: int) -> list[TrainConfig]:
    """``k`` copies of ``train_cfg`` with seeds ``seed, seed+1, ...``: the only thing that changes.

    Raises:
        ConfigError: ``k`` is not a whole number from 2 to 10.
    """
    if isinstance(k, bool) or not isinstance(k, int) or not MIN_SEEDS <= k <= MAX_SEEDS:
        raise ConfigError(f"The number of seeds must be a whole number from {MIN_SEEDS} to {MAX_SEEDS}. Got {k!r}.")
    if train_cfg.seed + k - 1 > RANGES["seed"].hi:
        raise ConfigError(f"--seed {train_cfg.seed} leaves no room for {k} seeds after it: use a smaller seed.")
    return [train_cfg.replace(seed=train_cfg.seed + i) for i in range(k)]


def spread(values: Sequence[float | None]) -> dict[str, float | None]:
    """Mean, standard deviation (ddof=1), min and max of the values that are there."""
    v = np.array([x for x in values if x is not None], dtype=float)
    if not len(v):
        return {"mean": None, "std": None, "min": None, "max": None, "n": 0}
    return {
        "mean": float(v.mean()),
        "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0,
        "min": float(v.min()),
        "max": float(v.max()),
        "n": int(len(v)),
    }


def mean_curves(records: Sequence[RunRecord]) -> dict[str, dict[str, list[float]]]:
    """Per curve: the mean over runs and the min-max band, epoch by epoch, over the epochs all runs have."""
    out: dict[str, dict[str, list[float]]] = {}
    for key in HISTORY_KEYS:
        series = [r.history.get(key, []) for r in records]
        n = min((len(s) for s in series), default=0)
        if not n:
            continue
        a = np.array([s[:n] for s in series], dtype=float)
        out[key] = {"mean": a.mean(0).tolist(), "min": a.min(0).tolist(), "max": a.max(0).tolist()}
    return out


def repeat_summary(records: Sequence[RunRecord]) -> dict[str, Any]:
    """What k repeats of one configuration say together: curves, the spread of the scores, each run's row."""
    rows = [run_metrics(r) for r in records]
    return {
        "runs": rows,
        "seeds": [row["seed"] for row in rows],
        "curves": mean_curves(records),
        "best_val_accuracy": spread([row["best_val_accuracy"] for row in rows]),
        "test_accuracy": spread([row["test_accuracy"] for row in rows]),
    }


def difference_sentence(
    a: Mapping[str, Any], b: Mapping[str, Any], name_a: str = "A", name_b: str = "B", metric: str = "best_val_accuracy"
) -> str:
    """One sentence: is the difference between two repeated configurations larger than the seed spread?

    ``a`` and ``b`` are :func:`repeat_summary` results. The difference of the
    means is set against the range each configuration covers over its seeds:
    if the ranges overlap, the seed alone can explain the difference.
    """
    sa, sb = a[metric], b[metric]
    what = "best-epoch validation accuracy" if metric == "best_val_accuracy" else "test accuracy"
    if not sa["n"] or not sb["n"]:
        return f"There are no {what} values to compare yet."
    diff = sa["mean"] - sb["mean"]
    hi, lo = (name_a, name_b) if diff >= 0 else (name_b, name_a)
    noise = max(sa["max"] - sa["min"], sb["max"] - sb["min"])
    overlap = sa["min"] <= sb["max"] and sb["min"] <= sa["max"]
    base = f"{hi} scores {abs(diff):.1%} higher {what} than {lo} on average over {sa['n']} and {sb['n']} seeds"
    if overlap:
        return (
            f"{base}, but the seeds alone move it by up to {noise:.1%} and the two ranges overlap: "
            "this difference may be luck, not the settings."
        )
    return (
        f"{base}, more than the seeds alone move it (up to {noise:.1%}) and the ranges do not overlap: "
        "the settings make the difference."
    )
