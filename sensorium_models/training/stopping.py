"""Early stopping driven by ReduceLROnPlateau, restoring the best weights at each plateau.

As the baselines train (neuralpredictors' ``early_stopping`` with ``restore_best=True`` and
``lr_decay_steps``): every epoch the validation correlation is given to
:class:`torch.optim.lr_scheduler.ReduceLROnPlateau` (mode max, absolute threshold). When it
declares a plateau (more than ``patience`` epochs without beating the best by
``threshold``), it multiplies the LR by ``factor``, and the best weights so far are put
back. At the plateau that follows the last allowed decay (or when the LR can no longer
drop), training stops, with the best weights.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

import torch

log = logging.getLogger(__name__)

Decision = Literal["improved", "worse", "decayed", "stop"]


@dataclass
class EarlyStopping:
    """The state between epochs; ``state_dict`` / ``load_state_dict`` for checkpoints."""

    lr_decay_steps: int
    threshold: float
    best: float = -math.inf
    best_epoch: int = 0
    decays: int = 0
    stopped: bool = False

    def step(self, objective: float, epoch: int,
             scheduler: torch.optim.lr_scheduler.ReduceLROnPlateau) -> Decision:
        """Record epoch ``epoch``'s objective and step the scheduler; say what to do.

        ``"improved"``: save the weights as the best. ``"decayed"``: the LR was decayed;
        restore the best weights. ``"stop"``: restore the best weights and stop.
        """
        if not math.isfinite(objective):
            log.warning("epoch %d: the validation correlation is %s; stopping", epoch, objective)
            self.stopped = True
            return "stop"
        improved = objective > self.best + self.threshold
        if improved:
            self.best, self.best_epoch = objective, epoch
        before = [g["lr"] for g in scheduler.optimizer.param_groups]
        scheduler.step(objective)
        if improved:
            return "improved"
        if scheduler.num_bad_epochs != 0:  # no plateau yet: the scheduler counts on
            return "worse"
        after = [g["lr"] for g in scheduler.optimizer.param_groups]
        if self.decays >= self.lr_decay_steps or after == before:
            self.stopped = True
            return "stop"
        self.decays += 1
        log.info("epoch %d: plateau, LR %.3g -> %.3g (decay %d of %d); best weights (epoch "
                 "%d) restored", epoch, before[0], after[0], self.decays, self.lr_decay_steps,
                 self.best_epoch)
        return "decayed"

    def state_dict(self) -> dict[str, Any]:
        return asdict(self)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key, value in state.items():
            setattr(self, key, value)
