"""The model zoo: cores with per-mouse Gaussian readouts, created by name.

Importing a model file registers its variants; the config imports below import them all.
"""

from sensorium_models.models.encoder import Core, ModelConfig, VideoEncoder
from sensorium_models.models.ensemble import Ensemble
from sensorium_models.models.factorized import FactorizedConfig
from sensorium_models.models.ln import LNConfig
from sensorium_models.models.registry import (
    create_model,
    list_models,
    model_config,
    register_model,
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
    "RotationGRUConfig",
    "VideoEncoder",
    "create_model",
    "list_models",
    "model_config",
    "mouse_specs",
    "register_model",
]
