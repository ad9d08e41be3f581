"""Models by name: ``register_model``, ``create_model``, ``list_models``, ``model_config``;
readouts by name: ``register_readout``, ``list_readouts``.

A model variant is a registered function that returns its config (a frozen dataclass of
hyperparameters); the config builds the core, its ``readout`` names the registered builder of
each mouse's readout, and :class:`VideoEncoder` puts them together. Every module of
:mod:`sensorium_models.models` is imported with the package, so a new model or readout is one
new file.
"""

from __future__ import annotations

import dataclasses
import numbers
import typing
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from sensorium_data.errors import Fix, Message
from sensorium_models.coerce import Mismatch, coerce
from sensorium_models.models.encoder import ModelConfig, Readout, VideoEncoder
from sensorium_models.models.specs import MouseSpec

C = TypeVar("C", bound=ModelConfig)
R = TypeVar("R", bound=Readout)
ReadoutBuilder = Callable[[int, MouseSpec, ModelConfig], Readout]

_MODELS: dict[str, Callable[[], ModelConfig]] = {}
_READOUTS: dict[str, ReadoutBuilder] = {}


def register_model(variant: Callable[[], C]) -> Callable[[], C]:
    """Register a model variant under its function's name.

    The function takes no arguments and returns the variant's config; keep it to
    hyperparameters.

    Examples
    --------
    In a model file, after the module (``create_model("ln_wide", ...)`` then builds it):

    >>> from sensorium_models.models.ln import LNConfig
    >>> @register_model
    ... def ln_wide() -> LNConfig:
    ...     return LNConfig(channels=32, spatial_kernel=11, temporal_kernel=11,
    ...                     gamma_spatial=10.0, gamma_temporal=0.01)
    >>> model_config("ln_wide").channels
    32
    """
    name = variant.__name__
    if name in _MODELS:
        msg = f"a model named {name!r} is already registered; give the variant another name."
        raise ValueError(msg)
    _MODELS[name] = variant
    return variant


def register_readout(
    name: str,
) -> Callable[[Callable[[int, MouseSpec, ModelConfig], R]],
              Callable[[int, MouseSpec, ModelConfig], R]]:
    """Register a readout family under ``name``, for a model config's ``readout`` option.

    The decorated builder takes the core's output channels, one mouse's :class:`MouseSpec`
    and the model's config, and returns that mouse's :class:`~.encoder.Readout`.

    Examples
    --------
    In a readout file, after the module (here one that builds the Gaussian readout; a model
    config's ``readout="my_gaussian"`` then picks it):

    >>> from sensorium_models.models.readout import gaussian
    >>> @register_readout("my_gaussian")
    ... def my_gaussian(in_channels: int, spec: MouseSpec, config: ModelConfig) -> Readout:
    ...     return gaussian(in_channels, spec, config)
    >>> "my_gaussian" in list_readouts()
    True
    """
    def register(builder: Callable[[int, MouseSpec, ModelConfig], R],
                 ) -> Callable[[int, MouseSpec, ModelConfig], R]:
        if name in _READOUTS:
            msg = f"a readout named {name!r} is already registered; give it another name."
            raise ValueError(msg)
        _READOUTS[name] = builder
        return builder
    return register


def list_readouts() -> list[str]:
    """The registered readout names, sorted.

    Examples
    --------
    >>> "gaussian" in list_readouts()
    True
    """
    return sorted(_READOUTS)


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
        msg = Message(
            f"unknown model {name!r}; registered models: {', '.join(list_models())}. See ",
            Fix("sensorium_models.list_models()", "sensorium train --help"), ".",
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
    if not mice:
        msg = "a model needs at least one mouse; pass mice=mouse_specs(datasets)."
        raise ValueError(msg)
    core = resolved.build_core(int(in_channels))
    build_readout = _READOUTS[resolved.readout]
    readouts = {mouse: build_readout(core.out_channels, spec, resolved)
                for mouse, spec in mice.items()}
    return VideoEncoder(core, readouts=readouts, in_channels=int(in_channels),
                        config=resolved, name=name)


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
    resolved = dataclasses.replace(
        defaults, **{k: _coerce(name, k, v, hints[k]) for k, v in config.items()}
    )
    if resolved.readout not in _READOUTS:
        msg = (
            f"readout={resolved.readout!r} for model {name!r}; registered readouts: "
            f"{', '.join(list_readouts())}."
        )
        raise ValueError(msg)
    return resolved


def _coerce(model: str, key: str, value: Any, hint: Any) -> Any:
    """``value`` as the type of option ``key`` (:func:`~sensorium_models.coerce.coerce`), or
    TypeError."""
    try:
        return coerce(value, hint)
    except Mismatch:
        kinds = {bool: "true or false", str: "a string", int: "an int", float: "a number"}
        kind = "a list of ints" if typing.get_origin(hint) is tuple else kinds.get(hint, hint)
        msg = f"option {key!r} of model {model!r} must be {kind}; got {value!r}."
        raise TypeError(msg) from None
