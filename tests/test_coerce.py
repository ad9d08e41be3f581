"""sensorium_models.coerce: one rule for config values, used by TrainConfig and the models."""

from __future__ import annotations

import doctest

import numpy as np
import pytest

import sensorium_models as sm
from sensorium_models import coerce as coerce_module
from sensorium_models.coerce import Mismatch, coerce
from sensorium_models.models.registry import resolve_config


def test_docstring_examples():
    result = doctest.testmod(coerce_module)
    assert result.attempted >= 3 and result.failed == 0


@pytest.mark.parametrize(("value", "hint", "expected"), [
    (2, float, 2.0), (np.float32(0.5), float, 0.5), (np.int64(3), int, 3),
    ([1, 2], tuple[int, ...], (1, 2)), (("a",), tuple[str, ...], ("a",)),
    ({"k": 1}, dict[str, int], {"k": 1}), (None, float | None, None), (1, float | None, 1.0),
    (True, bool, True), ("x", str, "x"),
])
def test_values_become_their_type(value, hint, expected):
    out = coerce(value, hint)
    assert out == expected and type(out) is type(expected)


@pytest.mark.parametrize(("value", "hint", "failed"), [
    (True, int, int), (True, float, float), ("3", float, float), (1, bool, bool),
    ([1, "a"], tuple[int, ...], tuple[int, ...]), ("x", float | None, float),
    (None, int, int), ([1], dict[str, int], dict[str, int]),
])
def test_other_values_are_a_mismatch_naming_the_type(value, hint, failed):
    with pytest.raises(Mismatch) as e:
        coerce(value, hint)
    assert e.value.hint == failed and e.value.value == value


def test_the_config_and_the_models_share_the_rule():
    # a numpy scalar from a sweep script is a number for both
    assert sm.TrainConfig(lr=np.float32(0.25)).lr == 0.25
    assert resolve_config("ln", channels=np.int64(4)).channels == 4
    with pytest.raises(sm.ConfigError, match="config key 'max_epochs' must be int; got True"):
        sm.TrainConfig(max_epochs=True)
    with pytest.raises(TypeError, match="option 'channels' of model 'ln' must be an int; got "
                                        "True"):
        resolve_config("ln", channels=True)
