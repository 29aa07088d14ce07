"""Settings a teacher can hand out: the model and training configs as a compact URL value each, and as a
JSON file. Reading either checks everything and says what was wrong; nothing half-applied.

URL values hold only what differs from the defaults, as ``field:value`` pairs joined by commas
(``dropout:0.25,filter_list:16-32-64``); values are percent-encoded, so a weights path may hold any
character. The Architecture page owns ``?model=``, the Train page ``?train=`` (``st.query_params`` is
cleared when the page changes, so each page writes what it owns).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any
from urllib.parse import quote, unquote

from core.base.config import AugmentConfig, ConfigError, ModelConfig, TrainConfig

MAX_TEXT = 4096  # a URL value or a settings file longer than this is not one of ours
MODEL_PARAM, TRAIN_PARAM = "model", "train"


def _text(v: Any) -> str:
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, tuple):
        return "-".join(str(x) for x in v)
    return quote(str(v) if not isinstance(v, float) else repr(v), safe="")


def _pairs(obj: Any, default: Any, skip: tuple[str, ...] = ()) -> list[str]:
    return [
        f"{f.name}:{_text(getattr(obj, f.name))}"
        for f in dataclasses.fields(obj)
        if f.name not in skip and getattr(obj, f.name) != getattr(default, f.name)
    ]


def encode_model(cfg: ModelConfig) -> str:
    """The model config as a URL value: the fields that differ from ``ModelConfig()``; "" for the defaults."""
    return ",".join(_pairs(cfg, ModelConfig()))


def encode_train(cfg: TrainConfig) -> str:
    """The training config (augmentation fields included, by name) as a URL value; "" for the defaults."""
    return ",".join(_pairs(cfg, TrainConfig(), skip=("augment",)) + _pairs(cfg.augment, AugmentConfig()))


def _value(field: dataclasses.Field, raw: str, owner: str) -> Any:
    text = unquote(raw)
    default = field.default if field.default is not dataclasses.MISSING else None
    try:
        if field.name == "filter_list":
            return tuple(int(x) for x in text.split("-")) if text else ()
        if isinstance(default, bool):
            if text not in ("0", "1"):
                raise ValueError
            return text == "1"
        if isinstance(default, int):
            return int(text)
        if isinstance(default, float):
            return float(text)
    except ValueError:
        raise ConfigError(f"The link's {owner} setting {field.name!r} has a bad value {text!r}.") from None
    return text


def _parse(text: str, owner: str, groups: dict[str, dict[str, dataclasses.Field]]) -> dict[str, dict[str, Any]]:
    if not isinstance(text, str) or len(text) > MAX_TEXT:
        raise ConfigError(f"The link's {owner} settings are not readable (too long or not text).")
    out: dict[str, dict[str, Any]] = {g: {} for g in groups}
    for pair in filter(None, text.split(",")):
        name, colon, raw = pair.partition(":")
        group = next((g for g, fields in groups.items() if name in fields), None)
        if not colon or group is None:
            raise ConfigError(
                f"The link's {owner} settings hold {pair[:40]!r}, which is not a setting:value pair "
                "this app knows. Ask for a new link."
            )
        out[group][name] = _value(groups[group][name], raw, owner)
    return out


def decode_model(text: str) -> ModelConfig:
    """A URL value from :func:`encode_model` back to a ModelConfig (defaults for the fields it leaves out).

    Raises:
        ConfigError: an unknown field, a bad value, or a value out of range (the message says which).
    """
    fields = {f.name: f for f in dataclasses.fields(ModelConfig)}
    return ModelConfig(**_parse(text, "model", {"model": fields})["model"])


def decode_train(text: str) -> TrainConfig:
    """A URL value from :func:`encode_train` back to a TrainConfig.

    Raises:
        ConfigError: an unknown field, a bad value, or a value out of range.
    """
    groups = {
        "train": {f.name: f for f in dataclasses.fields(TrainConfig) if f.name != "augment"},
        "augment": {f.name: f for f in dataclasses.fields(AugmentConfig)},
    }
    parts = _parse(text, "training", groups)
    return TrainConfig(**parts["train"], augment=AugmentConfig(**parts["augment"]))


def configs_json(model_cfg: ModelConfig, train_cfg: TrainConfig) -> str:
    """Both configs as the settings file: ``{"model": {...}, "train": {...}}`` (what ``export --config`` writes)."""
    return json.dumps({"model": model_cfg.to_dict(), "train": train_cfg.to_dict()}, indent=2)


def configs_from_json(data: bytes | str) -> tuple[ModelConfig, TrainConfig]:
    """A settings file back to ``(ModelConfig, TrainConfig)``.

    Raises:
        ConfigError: not JSON, not the two objects, an unknown field or a bad value (the message says which).
    """
    if len(data) > 64 * MAX_TEXT:
        raise ConfigError("This file is too large to be a CNN Lab settings file.")
    try:
        d = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise ConfigError("This file is not JSON: upload a settings file saved by CNN Lab.") from None
    if not isinstance(d, dict) or set(d) != {"model", "train"} or not all(isinstance(v, dict) for v in d.values()):
        raise ConfigError('A settings file holds two objects, {"model": {...}, "train": {...}}. This one does not.')
    try:
        return ModelConfig.from_dict(d["model"]), TrainConfig.from_dict(d["train"])
    except TypeError as exc:  # a value of the wrong kind that __post_init__ could not even compare
        raise ConfigError(f"The settings file has a value of the wrong kind ({exc}).") from None
