"""Learning-rate schedules: the baselines' plateau schedule, or a per-step warm-up, constant
and cosine (the 2023 winners'), and what decides a run's best epoch and its end under each.

``schedule="plateau"``: :class:`torch.optim.lr_scheduler.ReduceLROnPlateau`, stepped once per
epoch on the validation correlation, with early stopping in rounds
(:class:`~sensorium_models.training.stopping.EarlyStopping`).

``schedule="warmup_cosine"``: the factor of every group's LR after ``s`` optimizer steps is
:func:`warmup_cosine_factor`, stepped after every optimizer step; the run trains all
``max_epochs`` (no early stopping: the cosine is the plan) and keeps its best validation
epoch in ``best.pt`` (:class:`KeepBest`), as DwiseNeuro keeps its best checkpoint of the
cosine stage.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any

import torch

from sensorium_models.training.config import ConfigError
from sensorium_models.training.stopping import Decision, EarlyStopping

if TYPE_CHECKING:
    from sensorium_models.training.config import TrainConfig

log = logging.getLogger(__name__)

Scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau | torch.optim.lr_scheduler.LambdaLR


def warmup_cosine_factor(step: int, *, warmup: int, constant: int, total: int,
                         final: float) -> float:
    """The LR factor of optimizer step ``step`` (0-based): ``(step + 1) / warmup`` during the
    ``warmup`` steps, 1 for the next ``constant``, then a cosine from 1 down to ``final``
    at the last of ``total`` steps (and ``final`` after it).

    Examples
    --------
    >>> f = dict(warmup=10, constant=10, total=40, final=0.01)
    >>> [round(warmup_cosine_factor(s, **f), 3) for s in (0, 4, 9, 10, 19, 20, 29, 39, 40)]
    [0.1, 0.5, 1.0, 1.0, 1.0, 1.0, 0.546, 0.01, 0.01]
    """
    if step < warmup:
        return (step + 1) / warmup
    if step < warmup + constant:
        return 1.0
    span = max(total - warmup - constant - 1, 1)  # the cosine's last step is step total - 1
    progress = min((step - warmup - constant) / span, 1.0)
    return final + (1 - final) * (1 + math.cos(math.pi * progress)) / 2


def build_scheduler(config: TrainConfig, optimizer: torch.optim.Optimizer,
                    steps_per_epoch: int) -> Scheduler:
    """The run's scheduler; ``steps_per_epoch`` optimizer steps make an epoch.

    Examples
    --------
    >>> import torch
    >>> from sensorium_models.training.config import TrainConfig
    >>> opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    >>> config = TrainConfig(lr=1.0, min_lr=0.01, schedule="warmup_cosine",
    ...                      warmup_epochs=1, constant_epochs=1, max_epochs=4)
    >>> scheduler = build_scheduler(config, opt, steps_per_epoch=10)
    >>> lrs = []
    >>> for _ in range(40):
    ...     lrs.append(opt.param_groups[0]["lr"]); opt.step(); scheduler.step()
    >>> [round(lrs[s], 3) for s in (0, 9, 15, 20, 29, 39)]
    [0.1, 1.0, 1.0, 1.0, 0.546, 0.01]
    """
    if config.schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="max", factor=config.factor, patience=config.patience,
            threshold=config.threshold, threshold_mode="abs", min_lr=config.min_lr)
    warmup = round(config.warmup_epochs * steps_per_epoch)
    constant = round(config.constant_epochs * steps_per_epoch)
    total = config.max_epochs * steps_per_epoch
    final = config.min_lr / config.start_lr

    def factor(step: int) -> float:
        return warmup_cosine_factor(step, warmup=warmup, constant=constant, total=total,
                                    final=final)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def per_step(config: TrainConfig) -> bool:
    """Whether the scheduler steps after every optimizer step (else once per epoch)."""
    return config.schedule == "warmup_cosine"


@dataclass
class KeepBest:
    """The best epoch so far, without early stopping (``schedule="warmup_cosine"``); the
    same interface and checkpoint state as :class:`EarlyStopping`."""

    threshold: float
    best: float = -math.inf
    best_epoch: int = 0
    stopped: bool = False

    def step(self, objective: float, epoch: int, scheduler: Any = None) -> Decision:
        """``"improved"`` when ``objective`` beats the best by more than ``threshold``;
        ``"stop"`` on a non-finite one (the weights diverged); else ``"worse"``."""
        if not math.isfinite(objective):
            log.warning("epoch %d: the validation correlation is %s; stopping", epoch, objective)
            self.stopped = True
            return "stop"
        if objective > self.best + self.threshold:
            self.best, self.best_epoch = objective, epoch
            return "improved"
        return "worse"

    def state_dict(self) -> dict[str, Any]:
        return asdict(self)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        known = {f.name for f in fields(self)}
        for key, value in state.items():
            if key in known:
                setattr(self, key, value)


def build_stopping(config: TrainConfig) -> EarlyStopping | KeepBest:
    """Early stopping in rounds for ``"plateau"``; :class:`KeepBest` for ``"warmup_cosine"``."""
    if config.schedule == "plateau":
        return EarlyStopping(config.patience, config.lr_decay_steps, config.threshold)
    return KeepBest(config.threshold)


def check_resume(saved: TrainConfig, config: TrainConfig) -> None:
    """A run on ``"warmup_cosine"`` cannot change ``max_epochs`` on resume: it sets the length
    of the cosine, so the LR would jump."""
    if saved.schedule == "warmup_cosine" and saved.max_epochs != config.max_epochs:
        msg = (f"max_epochs={config.max_epochs}: this run's warmup_cosine schedule spans its "
               f"max_epochs={saved.max_epochs} (the cosine ends there), so changing it on "
               f"resume would make the LR jump; resume with max_epochs={saved.max_epochs}, or "
               "start a new run.")
        raise ConfigError(msg)
