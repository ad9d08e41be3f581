"""The response scale lives with the data; sensorium_data never imports sensorium_models."""

from __future__ import annotations

import doctest
import subprocess
import sys

import sensorium_data.scale as scale


def test_docstring_examples():
    assert doctest.testmod(scale).failed == 0


def test_the_data_package_does_not_import_the_model_package():
    # normalizing a clip's responses used to import all of sensorium_models for this formula
    code = ("import sys, numpy as np, sensorium_data, sensorium_data.loaders; "
            "from sensorium_data.loaders.normalize import floor_precision; "
            "floor_precision(np.ones((2, 3))); "
            "sys.exit(1 if any(m.startswith('sensorium_models') for m in sys.modules) else 0)")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
