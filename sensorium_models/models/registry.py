"""Models by name: ``register_model``, ``create_model``, ``list_models``, ``model_config``.

A model variant is a registered function that returns its config (a frozen dataclass of
hyperparameters); the config builds the core, and :class:`VideoEncoder` adds the readouts.
"""

from __future__ import annotations

import dataclasses
import numbers
import typing
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from sensorium_models.models.encoder import ModelConfig, VideoEncoder
from sensorium_models.models.specs import MouseSpec

C = TypeVar("C", bound=ModelConfig)

_MODELS: dict[str, Callable[[], ModelConfig]] = {}


def register_model(variant: Callable[[], C]) -> Callable[[], C]:
    """Register a model variant under its function's name.

    The function takes no arguments and returns the variant's config; keep it to
    hyperparameters.

    Examples
    --------
    In a model file, after the module (``create_model("ln_wide", ...)`` then builds it):

    >>> @register_model  # doctest: +SKIP
    ... def ln_wide() -> LNConfig:
    ...     return LNConfig(channels=32, spatial_kernel=11, temporal_kernel=11,
    ...                     gamma_spatial=10.0, gamma_temporal=0.01)
    """
    name = variant.__name__
    if name in _MODELS:
        msg = f"a model named {name!r} is already registered; give the variant another name."
        raise ValueError(msg)
    _MODELS[name] = variant
    return variant


def list_models() -> list[str]:
    """The registered model names, sorted.

    Examples
    --------
    >>> [m for m in list_models() if m in ("factorized_baseline", "gru_baseline", "ln")]
    ['factorized_baseline', 'gru_baseline', 'ln']
    """
    return sorted(_MODELS)


def model_config(name: str) -> ModelConfig:
    """The default config of model ``name``: a frozen dataclass of its options.

    Examples
    --------
    >>> model_config("factorized_baseline").hidden_channels
    (32, 64, 128)
    """
    if name not in _MODELS:
        msg = (
            f"unknown model {name!r}; registered models: {', '.join(list_models())}. "
            "See sensorium_models.list_models()."
        )
        raise ValueError(msg)
    return _MODELS[name]()


def create_model(name: str, *, mice: Mapping[str, MouseSpec], in_channels: int = 3,
                 **config: Any) -> VideoEncoder:
    """Build model ``name`` with readouts for ``mice`` and its defaults overridden by ``config``.

    Parameters
    ----------
    name
        A registered model (:func:`list_models`).
    mice
        Mouse name -> :class:`MouseSpec` (:func:`mouse_specs` builds them from Datasets).
    in_channels
        Channels of the input clips: 1 video + 2 behaviour (+ 2 pupil) channels, as the
        loader's ``in_channels``.
    **config
        Fields of :func:`model_config(name) <model_config>` to override; lists are taken for
        tuples. An unknown key is a TypeError naming the valid keys.

    Returns
    -------
    VideoEncoder
        In training mode; ``model(videos, mouse=..., behavior=...)`` gives (B, N, T - burn_in).

    Examples
    --------
    >>> import numpy as np, torch
    >>> mice = {"toy": MouseSpec(n_neurons=4, coords=np.random.default_rng(0).normal(size=(4, 2)))}
    >>> model = create_model("ln", mice=mice, channels=2)
    >>> model.burn_in, model.config.channels
    (10, 2)
    >>> model(torch.randn(1, 3, 12, 36, 64), mouse="toy").shape
    torch.Size([1, 4, 2])
    """
    resolved = resolve_config(name, **config)
    if not isinstance(in_channels, numbers.Integral) or in_channels < 1:
        msg = f"in_channels={in_channels!r}; it must be a positive int (the clips' channels)."
        raise ValueError(msg)
    core = resolved.build_core(int(in_channels))
    return VideoEncoder(core, mice=mice, in_channels=int(in_channels), config=resolved,
                        name=name)


def resolve_config(name: str, **config: Any) -> ModelConfig:
    """Model ``name``'s config with ``config`` applied, checked: an unknown key or a value of
    the wrong type is a TypeError, a value out of range a ValueError, each naming it."""
    defaults = model_config(name)
    options = {f.name: f for f in dataclasses.fields(defaults)}
    unknown = [k for k in config if k not in options]
    if unknown:
        msg = (
            f"unknown option {unknown[0]!r} for model {name!r}; valid options: "
            f"{', '.join(options)}."
        )
        raise TypeError(msg)
    hints = typing.get_type_hints(type(defaults))
    return dataclasses.replace(
        defaults, **{k: _coerce(name, k, v, hints[k]) for k, v in config.items()}
    )


def _coerce(model: str, key: str, value: Any, hint: Any) -> Any:
    """``value`` as the type of option ``key`` (int -> float, list -> tuple), or TypeError."""
    if typing.get_origin(hint) is tuple:
        if isinstance(value, list | tuple) and all(_is_int(v) for v in value):
            return tuple(int(v) for v in value)
        kind = "a list of ints"
    elif hint is bool:
        if isinstance(value, bool):
            return value
        kind = "true or false"
    elif hint is int:
        if _is_int(value):
            return int(value)
        kind = "an int"
    else:
        if isinstance(value, numbers.Real) and not isinstance(value, bool):
            return float(value)
        kind = "a number"
    msg = f"option {key!r} of model {model!r} must be {kind}; got {value!r}."
    raise TypeError(msg)


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)
