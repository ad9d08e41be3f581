"""The optimizer of a run: Adam or AdamW, with the readouts in a group of their own when
their learning rate or weight decay differs from the core's."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from torch import nn

    from sensorium_models.training.config import TrainConfig

#: Parameter-name prefixes of the readout group: each mouse's readout and shifter.
READOUT_PREFIXES = ("readouts.", "shifters.")


def build_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """``config.optimizer`` over ``model``'s parameters.

    One parameter group at ``lr`` and ``weight_decay`` unless ``readout_lr`` or
    ``readout_weight_decay`` is set; then group 0 holds the core (every parameter outside
    the readouts and shifters) and group 1 the readouts and shifters, at their own values.
    (One group keeps the layout of checkpoints written before the second existed.)

    Examples
    --------
    >>> import torch
    >>> from sensorium_models.training.config import TrainConfig
    >>> model = torch.nn.ModuleDict({"core": torch.nn.Linear(2, 2),
    ...                              "readouts": torch.nn.Linear(2, 1)})
    >>> opt = build_optimizer(model, TrainConfig(optimizer="adam", lr=1e-3, readout_lr=4e-3))
    >>> type(opt).__name__, [(g["lr"], len(g["params"])) for g in opt.param_groups]
    ('Adam', [(0.001, 2), (0.004, 2)])
    """
    kind = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[config.optimizer]
    if config.readout_lr is None and config.readout_weight_decay is None:
        return kind(model.parameters(), lr=config.start_lr, weight_decay=config.weight_decay)
    core: list[nn.Parameter] = []
    readout: list[nn.Parameter] = []
    for name, parameter in model.named_parameters():
        (readout if name.startswith(READOUT_PREFIXES) else core).append(parameter)
    groups = [
        {"params": core, "lr": config.start_lr, "weight_decay": config.weight_decay},
        {"params": readout,
         "lr": config.start_lr if config.readout_lr is None else config.readout_lr,
         "weight_decay": (config.weight_decay if config.readout_weight_decay is None
                          else config.readout_weight_decay)},
    ]
    return kind(groups, lr=config.start_lr, weight_decay=config.weight_decay)
