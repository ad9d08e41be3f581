"""The SENSORIUM 2022 LN baseline: the SOTA core of :mod:`.sota_2022` made linear.

The starter kit builds it with the same function as its SOTA model, ``layers=3`` and
``linear=True``: the convolutions and batch norms stay, every ELU inside the core goes, and
the output's ELU + 1 is the only nonlinearity, so each neuron is a linear filter of the image
(a mix of the core's, read at its position) followed by a fixed nonlinearity.
"""

from __future__ import annotations

import dataclasses

from sensorium_models.models.registry import register_model
from sensorium_models.models.sota_2022 import Stacked2dConfig, sota_2022


@register_model
def ln_2022() -> Stacked2dConfig:
    """The 2022 LN baseline: the SOTA config with 3 layers and no core nonlinearity."""
    return dataclasses.replace(sota_2022(), layers=3, linear=True)
