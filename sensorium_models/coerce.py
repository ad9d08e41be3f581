"""Config values as the type of their dataclass field: one rule for the training config
(:class:`~sensorium_models.training.TrainConfig`) and the models' options
(:func:`~sensorium_models.models.create_model`), each wording its own error.

Values come from TOML, JSON or ``--set`` flags, so an int is a float where a float is
wanted and a list is a tuple; nothing else is converted (``True`` is not an int, ``"3"`` not a
number).
"""

from __future__ import annotations

import numbers
import types
import typing
from collections.abc import Mapping
from typing import Any


class Mismatch(TypeError):
    """A value that is not of the type ``hint`` (the part of the field's type it failed:
    ``float`` for ``float | None``)."""

    def __init__(self, value: Any, hint: Any):
        super().__init__(f"{value!r} is not {getattr(hint, '__name__', hint)}")
        self.value, self.hint = value, hint


def coerce(value: Any, hint: Any) -> Any:
    """``value`` as type ``hint``: an int as a float, a list as a tuple (its items coerced), a
    mapping as a dict, None where the type allows it; else :class:`Mismatch`.

    Examples
    --------
    >>> coerce(3, float), coerce([1, 2], tuple[int, ...]), coerce(None, str | None)
    (3.0, (1, 2), None)
    >>> coerce(True, int)
    Traceback (most recent call last):
    ...
    sensorium_models.coerce.Mismatch: True is not int
    >>> try:
    ...     coerce(["a", 1], tuple[str, ...])
    ... except Mismatch as e:
    ...     print(e.hint)
    tuple[str, ...]
    """
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return coerce(value, inner)
    if origin is tuple:
        if isinstance(value, list | tuple):
            try:
                return tuple(coerce(v, args[0]) for v in value)
            except Mismatch:
                pass
    elif origin is dict:
        if isinstance(value, Mapping):
            return dict(value)
    elif hint is float:
        if isinstance(value, numbers.Real) and not isinstance(value, bool):
            return float(value)
    elif hint is int:
        if isinstance(value, numbers.Integral) and not isinstance(value, bool):
            return int(value)
    elif isinstance(value, hint):
        return value
    raise Mismatch(value, hint)
