"""Checks before the first epoch: the clips a model takes (the few-train-trials warning is
one of the guards, :mod:`sensorium_models.training.guards`)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from sensorium_data.errors import Fix, Message
from sensorium_models.training.config import ConfigError, TrainConfig

if TYPE_CHECKING:

    from sensorium_models.models import VideoEncoder

log = logging.getLogger(__name__)

def check_window(config: TrainConfig, model: VideoEncoder) -> None:
    """A model that takes clips of a fixed window at a frame step (DwiseNeuro) must get them."""
    window = getattr(model.config, "window", None)
    step = getattr(model.config, "frame_step", None)
    if window is None or step is None:
        return
    if config.frames > window or config.frame_step != step:
        msg = Message(f"frames={config.frames} at frame_step={config.frame_step}: {config.model} "
               f"takes clips of at most window={window} frames at frame_step={step}; pass ",
               Fix(f"frames={window}, frame_step={step}",
                   f"--set frames={window} --set frame_step={step}"), ".")
        raise ConfigError(msg)
