"""sensorium_models/__init__.py: every public name importable from the package, on first use."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import sensorium_models as sm


@pytest.mark.parametrize("name", sm.__all__)
def test_every_public_name_is_its_module_s(name):
    value = getattr(sm, name)
    home = importlib.import_module(f"sensorium_models.{sm._HOMES[name]}")
    assert value is getattr(home, name)
    assert name in dir(sm)


def test_every_public_name_has_a_home():
    assert sorted(sm._HOMES) == sorted(sm.__all__)


def test_submodules_and_unknown_names():
    assert sm.models.VideoEncoder is sm.models.encoder.VideoEncoder
    with pytest.raises(AttributeError, match="has no attribute 'no_such_thing'"):
        sm.no_such_thing  # noqa: B018


def test_the_metrics_do_not_import_torch():
    code = ("import sys, sensorium_models as sm; sm.feve; sm.evaluate; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "False"


def test_no_submodule_is_named_like_a_public_name():
    # importing such a submodule (python -m, pkgutil, a doc tool) replaces the public name
    import pkgutil

    submodules = {info.name for info in pkgutil.iter_modules(sm.__path__)}
    assert not submodules & set(sm.__all__)
