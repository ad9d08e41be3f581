"""An exponential moving average of a model's weights (``ema`` in the config).

After every optimizer step each floating-point entry of the state dict, parameters and
buffers alike (batch norm's running statistics too), moves to
``decay * average + (1 - decay) * weight``; integer buffers (batch norm's step count) are
copied. DwiseNeuro validates and checkpoints this average (timm's ``ModelEmaV2``, decay
0.999), which smooths the noise of the last steps out of the weights.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn


class WeightAverage:
    """The moving average of ``model``'s state, held in a copy of the model.

    Parameters
    ----------
    model
        The model being trained; the average starts at its current weights.
    decay
        The weight of the average at each update, in [0, 1).

    Attributes
    ----------
    module
        The averaged model, in eval mode, without gradients: validate and save it.
    updates
        Updates so far.

    Examples
    --------
    >>> import torch
    >>> model = torch.nn.Linear(1, 1, bias=False)
    >>> _ = model.weight.data.fill_(0.0)
    >>> average = WeightAverage(model, decay=0.9)
    >>> _ = model.weight.data.fill_(1.0)
    >>> average.update(model); average.update(model)
    >>> round(float(average.module.weight), 4)  # 1 - 0.9 ** 2
    0.19
    """

    def __init__(self, model: nn.Module, decay: float):
        if not 0 <= decay < 1:
            msg = f"decay={decay}; the moving average's decay must lie in [0, 1)."
            raise ValueError(msg)
        self.decay = decay
        self.module = copy.deepcopy(model).eval().requires_grad_(False)
        self.updates = 0

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the average towards ``model``'s current state."""
        current = model.state_dict()
        for key, average in self.module.state_dict().items():
            value = current[key].detach()
            if average.is_floating_point():
                average.lerp_(value.to(average.dtype), 1 - self.decay)
            else:
                average.copy_(value)
        self.updates += 1

    @torch.no_grad()
    def reset(self, state: Mapping[str, torch.Tensor]) -> None:
        """Start the average again at ``state`` (after the best weights were put back)."""
        self.module.load_state_dict(state)

    def state_dict(self) -> dict[str, Any]:
        return {"decay": self.decay, "updates": self.updates,
                "state_dict": {k: v.detach().cpu() for k, v in self.module.state_dict().items()}}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.module.load_state_dict(state["state_dict"])
        self.updates = int(state["updates"])
