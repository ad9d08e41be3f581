"""Values from the command line and the model's options, checked before any data is opened.

``--set key=value`` flags become typed values (:func:`parse_assignment`); a model name and its
``model_config`` overrides become the full options ``create_model`` takes
(:func:`resolve_model_config`).
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from dataclasses import fields
from typing import Any

from sensorium_data.errors import Message, reason
from sensorium_models.training.config import MODEL_KEY, ConfigError


def parse_assignment(text: str) -> tuple[str, Any]:
    """``"key=value"`` -> (key, value); the value is parsed as TOML, else kept as a string.

    Examples
    --------
    >>> parse_assignment("lr=1e-3"), parse_assignment("model_config.channels=[8, 16]")
    (('lr', 0.001), ('model_config.channels', [8, 16]))
    >>> parse_assignment("device=cuda")
    ('device', 'cuda')
    """
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        msg = f"--set {text!r}: write key=value, e.g. --set lr=0.001 or --set max_epochs=20."
        raise ConfigError(msg)
    try:
        value = tomllib.loads(f"value = {raw.strip()}")["value"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return key, value


def resolve_model_config(name: str, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The model's full options: its defaults with ``overrides`` applied (lists become tuples
    where the default is a tuple), ready for ``create_model(name, **options)``.

    Raises ConfigError naming the valid model names or option keys, or a value of the wrong
    type or out of range.
    """
    from sensorium_models.models import list_models, model_config
    from sensorium_models.models.registry import resolve_config

    known = list_models()
    if name not in known:
        msg = f"unknown model {name!r}; known models: {', '.join(known)}."
        raise ConfigError(msg)
    defaults = model_config(name)
    valid = {f.name: f for f in fields(defaults)}
    for key in overrides:
        if key not in valid:
            msg = (
                f"unknown option {MODEL_KEY}.{key} for model {name!r}; its options: "
                f"{', '.join(valid)}."
            )
            raise ConfigError(msg)
    try:  # types and ranges, before any data is opened
        resolved = resolve_config(name, **overrides)
    except (TypeError, ValueError) as e:
        raise ConfigError(Message("model_config: ", reason(e))) from e
    for key in overrides:
        value = getattr(resolved, key)
        if isinstance(value, float) and not math.isfinite(value):
            msg = (f"model_config.{key}={value}; a model option must be a finite number "
                   f"(default {getattr(defaults, key)}).")
            raise ConfigError(msg)
    values = {f: getattr(defaults, f) for f in valid}
    for key, value in overrides.items():
        if isinstance(values[key], tuple) and isinstance(value, list):
            value = tuple(value)
        values[key] = value
    return values
