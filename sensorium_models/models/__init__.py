"""The model zoo: cores with per-mouse readouts, created by name.

Importing a model or readout file registers it; every module of this package is imported
below, so adding a model is adding one file.
"""

import importlib
import pkgutil

from sensorium_models.models.encoder import Core, ModelConfig, Readout, VideoEncoder
from sensorium_models.models.ensemble import Ensemble
from sensorium_models.models.factorized import FactorizedConfig
from sensorium_models.models.ln import LNConfig
from sensorium_models.models.registry import (
    create_model,
    list_models,
    list_readouts,
    model_config,
    register_model,
    register_readout,
)
from sensorium_models.models.rotation_gru import RotationGRUConfig
from sensorium_models.models.specs import MouseSpec, mouse_specs

__all__ = [
    "Core",
    "Ensemble",
    "FactorizedConfig",
    "LNConfig",
    "ModelConfig",
    "MouseSpec",
    "Readout",
    "RotationGRUConfig",
    "VideoEncoder",
    "create_model",
    "list_models",
    "list_readouts",
    "model_config",
    "mouse_specs",
    "register_model",
    "register_readout",
]

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
