"""Activation checkpointing: a core's blocks recompute their activations in the backward pass.

Training keeps every block's intermediate tensors for the backward pass; at published widths
those dominate the memory of a step (Dynamic-V1FM's window attention keeps 392 x 392 weights
per window and head). With ``checkpoint_activations`` a core keeps only each block's input
and runs the block again when the backward pass reaches it: one more forward per block, the
same gradients.
"""

from __future__ import annotations

from typing import Any

from sensorium_models.training.config import ConfigError


def enable_checkpointing(model: Any, name: str) -> None:
    """Turn on activation checkpointing in ``model``'s core, or raise :class:`ConfigError`
    naming the models whose cores support it."""
    core = model.core
    if not getattr(core, "supports_checkpointing", False):
        msg = (f"checkpoint_activations=true: {name}'s core ({type(core).__name__}) is not "
               f"built of blocks that can recompute their activations; the models that can: "
               f"{checkpointing_models()}. Drop checkpoint_activations for {name}.")
        raise ConfigError(msg)
    core.checkpointing = True


def checkpointing_models() -> list[str]:
    """The registered models whose cores support activation checkpointing (each core built
    on the meta device: no memory, no weights)."""
    import torch

    from sensorium_models.models import list_models, model_config

    able = []
    for name in list_models():
        try:
            with torch.device("meta"):
                core = model_config(name).build_core(5)
        except Exception:  # a model of the user's that cannot build here is not listed
            continue
        if getattr(core, "supports_checkpointing", False):
            able.append(name)
    return able
