"""Checks before the first epoch: the clips a model takes, and recordings too small for the
competition's per-frame statistics."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING

from sensorium_models.training.config import ConfigError, TrainConfig

if TYPE_CHECKING:
    import xarray as xr

    from sensorium_models.models import VideoEncoder

log = logging.getLogger(__name__)

# Below this many train trials a recording's per-frame statistics are too noisy for
# normalize="official" (the simulator's tiny preset has 16; real recordings hundreds).
FEW_TRAIN_TRIALS = 100


def check_window(config: TrainConfig, model: VideoEncoder) -> None:
    """A model that takes clips of a fixed window at a frame step (DwiseNeuro) must get them."""
    window = getattr(model.config, "window", None)
    step = getattr(model.config, "frame_step", None)
    if window is None or step is None:
        return
    if config.frames > window or config.frame_step != step:
        msg = (f"frames={config.frames} at frame_step={config.frame_step}: {config.model} "
               f"takes clips of at most window={window} frames at frame_step={step}; pass "
               f"--set frames={window} --set frame_step={step}.")
        raise ConfigError(msg)


def warn_few_train_trials(config: TrainConfig, datasets: Mapping[str, xr.Dataset]) -> None:
    """Log a warning naming ``normalize="per_neuron"`` when the competition's per-frame
    statistics come from fewer than ``FEW_TRAIN_TRIALS`` train trials of some recording."""
    if config.normalize != "official":
        return
    counts = {m: int((ds["tier"].values.astype(str) == config.train_tier).sum())
              for m, ds in datasets.items()}
    few = {m: n for m, n in counts.items() if n < FEW_TRAIN_TRIALS}
    if few:
        listed = ", ".join(f"{m} ({n})" for m, n in few.items())
        log.warning(
            "few %s trials in %s: normalize='official' divides each frame by its standard "
            "deviation over these trials, too few to estimate it (a quiet neuron's frame gets "
            "up to 100x weight), and such runs learn little beyond the mean. Pass --set "
            "normalize=per_neuron (docs/training.md, 'When training goes wrong').",
            config.train_tier, listed)
