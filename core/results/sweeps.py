"""Small grid sweeps: the configs of every point, checked before anything trains, and the results as a grid.

Training is the caller's (the CLI's ``train_all`` through the worker, or a
page through the worker): this module gives the configurations and reads the
stored runs. A sweep changes one or two settings over a list of values each.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from core.base.config import (
    DATA_DECIDED,
    SETTING_ALIASES,
    AugmentConfig,
    ConfigError,
    ModelConfig,
    TrainConfig,
    run_key,
)
from core.base.precision import run_precision
from core.results.compare import run_metrics

if TYPE_CHECKING:  # pragma: no cover
    from core.store.runstore import RunRecord

MAX_POINTS = 25
MAX_SETTINGS = 2


_MODEL_FIELDS = {f.name: f for f in dataclasses.fields(ModelConfig)}
_TRAIN_FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig) if f.name != "augment"}
_AUG_FIELDS = {f.name: f for f in dataclasses.fields(AugmentConfig)}
SWEEPABLE = tuple(sorted({*_MODEL_FIELDS, *_TRAIN_FIELDS, *_AUG_FIELDS} - {"filter_list", *DATA_DECIDED}))
_ALIASES = SETTING_ALIASES  # the command line's short names (core.base.config): --lr and a grid's lr are one setting


def _where(name: str) -> tuple[str, str]:
    """``(section, field)`` of a setting: ``dropout``, ``model.dropout``, ``train.epochs``, ``augment.zoom``..."""
    name = _ALIASES.get(name, name)
    section, _, field = (
        name.removeprefix("train.augment.").rpartition(".")
        if name.startswith("train.augment.")
        else name.rpartition(".")
    )
    if name.startswith("train.augment."):
        section = "augment"
    if field in DATA_DECIDED and section in ("", "model"):
        raise ConfigError(
            f"{name!r} cannot be swept: {DATA_DECIDED[field]}, so every point would train the same "
            "run. Sweep a setting you choose, such as dropout or filters."
        )
    for sec, fields in (("model", _MODEL_FIELDS), ("train", _TRAIN_FIELDS), ("augment", _AUG_FIELDS)):
        if section in ("", sec) and field in fields and field != "filter_list":
            return sec, field
    raise ConfigError(f"Unknown setting {name!r} to sweep. Known settings: {', '.join(SWEEPABLE)}.")


def _value(section: str, field: str, text: Any) -> Any:
    default = getattr({"model": ModelConfig(), "train": TrainConfig(), "augment": AugmentConfig()}[section], field)
    if not isinstance(text, str):
        return text
    t = text.strip()
    try:
        if isinstance(default, bool):
            if t.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError
            return t.lower() in ("true", "1", "yes")
        if isinstance(default, int):
            return int(t)
        if isinstance(default, float):
            return float(t)
    except ValueError:
        kind = "True or False" if isinstance(default, bool) else type(default).__name__
        raise ConfigError(f"Bad value {t!r} for {field}: expected {kind}.") from None
    return t


def parse_grid(specs: Sequence[str]) -> dict[str, list[Any]]:
    """``["dropout=0,0.25", "filters=16,32"]`` -> ``{"dropout": ["0", "0.25"], "filters": ["16", "32"]}``."""
    grid: dict[str, list[Any]] = {}
    for spec in specs:
        name, eq, values = spec.partition("=")
        parts = [v for v in values.split(",") if v.strip()]
        if not eq or not name.strip() or not parts:
            raise ConfigError(f"--grid must look like NAME=V1,V2,... (e.g. dropout=0,0.25,0.5). Got {spec!r}.")
        if name.strip() in grid:
            raise ConfigError(f"The setting {name.strip()!r} is given twice: give it once with all its values.")
        grid[name.strip()] = parts
    return grid


def grid_from_json(text: str) -> dict[str, list[Any]]:
    """A grid file: a JSON object of ``{"setting": [values...]}``."""
    try:
        data = json.loads(text, object_pairs_hook=_once)
    except ConfigError:
        raise
    except ValueError as exc:
        raise ConfigError(f'The grid file is not JSON ({exc}). Write it as {{"dropout": [0, 0.5]}}.') from None
    if not isinstance(data, dict) or not all(isinstance(v, list) and v for v in data.values()):
        raise ConfigError('The grid file must be a JSON object of non-empty lists, like {"dropout": [0, 0.5]}.')
    return {str(k): v for k, v in data.items()}


def _once(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object whose keys are each given once (json.loads would keep the last of a repeated key silently)."""
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise ConfigError(f"The grid file gives {k!r} twice: give each setting once, with all its values.")
        out[k] = v
    return out


@dataclasses.dataclass(frozen=True)
class SweepPoint:
    """One point of a sweep: the values of the swept settings, and the configs to train."""

    values: tuple[Any, ...]
    model_cfg: ModelConfig
    train_cfg: TrainConfig

    @property
    def title(self) -> str:
        return ", ".join(str(v) for v in self.values)


def sweep_points(
    grid: Mapping[str, Sequence[Any]], model_cfg: ModelConfig, train_cfg: TrainConfig
) -> tuple[list[str], list[list[Any]], list[SweepPoint]]:
    """Every point of the grid, each checked before anything trains.

    Returns:
        ``(names, values per name, points)``; points in row-major order (the first setting varies slowest).

    Raises:
        ConfigError: no setting or more than two, an unknown setting, a bad value
            (the message names it), a repeated value, or more than 25 points.
    """
    if not grid or len(grid) > MAX_SETTINGS:
        raise ConfigError(f"A sweep takes one or two settings. Got {len(grid)}.")
    names, where, values = [], [], []
    spelled: dict[tuple[str, str], str] = {}  # each setting once, whatever it is called ("lr", "learning_rate")
    for name, raw in grid.items():
        sec, field = _where(name)
        if (sec, field) in spelled:
            raise ConfigError(
                f"The setting {field!r} is given twice, as {spelled[sec, field]!r} and as {name!r}: "
                "give it once, with all its values."
            )
        spelled[sec, field] = name
        vals = [_value(sec, field, v) for v in raw]
        if len(set(map(repr, vals))) != len(vals):
            raise ConfigError(f"The values of {name!r} repeat ({raw}): give each value once.")
        names.append(field)
        where.append((sec, field))
        values.append(vals)
    n = math.prod(len(v) for v in values)
    if n > MAX_POINTS:
        raise ConfigError(f"The sweep has {n} points; at most {MAX_POINTS} are allowed. Use fewer values.")
    points = []
    for combo in itertools.product(*values):
        m, t, a = {}, {}, {}
        for (sec, field), v in zip(where, combo, strict=True):
            {"model": m, "train": t, "augment": a}[sec][field] = v
        try:
            mc = model_cfg.replace(**m)
            tc = train_cfg.replace(**t, **({"augment": train_cfg.augment.replace(**a)} if a else {}))
        except (ConfigError, TypeError) as exc:
            raise ConfigError(f"The sweep point {dict(zip(names, combo, strict=True))} is not valid: {exc}") from None
        points.append(SweepPoint(tuple(combo), mc, tc))
    _distinct(names, points)
    return names, values, points


def _distinct(names: Sequence[str], points: Sequence[SweepPoint]) -> None:
    """Every point must be a run of its own: two points with one run key would show one result under two labels."""
    seen: dict[str, SweepPoint] = {}
    for p in points:
        ident = run_key(p.model_cfg, p.train_cfg, "", run_precision(p.model_cfg, p.train_cfg))  # same data for all
        if ident in seen:
            a, b = (", ".join(f"{n}={v}" for n, v in zip(names, q.values, strict=True)) for q in (seen[ident], p))
            moot = [n for n, x, y in zip(names, seen[ident].values, p.values, strict=True) if x != y]
            raise ConfigError(
                f"The sweep points {a} and {b} would train exactly the same run: with the other settings as they are, "
                f"{' and '.join(moot)} {'makes' if len(moot) == 1 else 'make'} no difference (as the kernel size for "
                "VGG16, the fill mode without augmentation, or fine-tuning for the CNN). Sweep a setting that "
                "changes the run."
            )
        seen[ident] = p


def sweep_grid(
    names: Sequence[str],
    values: Sequence[Sequence[Any]],
    records: Sequence[RunRecord],
    metric: str = "best_val_accuracy",
) -> dict[str, Any]:
    """The sweep's results as a grid: ``z[i][j]`` for the i-th value of the first setting and the j-th of the
    second (one setting: a single row), with the run ids in the same shape."""
    if len(records) != math.prod(len(v) for v in values) or len({r.run_id for r in records}) != len(records):
        raise ValueError("sweep_grid needs one record per point, each point's own run, in the points' order.")
    rows = [run_metrics(r) for r in records]
    cols = len(values[1]) if len(values) > 1 else len(values[0])
    shape_rows = len(values[0]) if len(values) > 1 else 1
    z = [[rows[i * cols + j][metric] for j in range(cols)] for i in range(shape_rows)]
    ids = [[rows[i * cols + j]["run_id"] for j in range(cols)] for i in range(shape_rows)]
    return {
        "settings": list(names),
        "values": [list(v) for v in values],
        "metric": metric,
        "z": z,
        "run_ids": ids,
        "runs": rows,
    }
