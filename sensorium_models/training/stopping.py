"""Early stopping in rounds, as the baselines train (neuralpredictors' ``early_stopping``
with ``interval=1``, ``restore_best=True`` and ``lr_decay_steps``).

Every epoch the validation correlation is compared with the best so far (better means above
it by more than ``threshold``) and given to
:class:`torch.optim.lr_scheduler.ReduceLROnPlateau` (mode max, absolute threshold), which
decays the LR on its own count: after more than ``patience`` epochs without improvement. A
round ends after ``patience`` epochs in a row without improvement; the best weights are then
put back and the next round starts from them. Training stops, with the best weights, when
``lr_decay_steps`` rounds have ended (or at ``max_epochs``). The scheduler is never reset, so
its decays fall one epoch after a round's end, or later: with the defaults (patience 5,
4 rounds) a run decays the LR about three times.

One difference from the starter kit: it scores the untrained model before the first epoch and
counts that as the first best; here the first best is the first epoch's.
"""
from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

import torch

from sensorium_data.errors import Fix, Message

log = logging.getLogger(__name__)

Decision = Literal["improved", "worse", "restored", "stop"]


@dataclass
class EarlyStopping:
    """The state between epochs; ``state_dict`` / ``load_state_dict`` for checkpoints."""

    patience: int
    lr_decay_steps: int
    threshold: float
    best: float = -math.inf
    best_epoch: int = 0
    bad_epochs: int = 0  # in a row, in the current round
    rounds: int = 0  # rounds ended
    stopped: bool = False

    def step(self, objective: float, epoch: int,
             scheduler: torch.optim.lr_scheduler.ReduceLROnPlateau) -> Decision:
        """Record epoch ``epoch``'s objective and step the scheduler; say what to do.

        ``"improved"``: save the weights as the best. ``"restored"``: a round ended; put the
        best weights back. ``"stop"``: put the best weights back and stop.
        """
        if not math.isfinite(objective):
            log.warning("epoch %d: the validation correlation is %s; stopping", epoch, objective)
            self.stopped = True
            return "stop"
        before = [g["lr"] for g in scheduler.optimizer.param_groups]
        scheduler.step(objective)
        after = [g["lr"] for g in scheduler.optimizer.param_groups]
        if after != before:
            log.info("epoch %d: plateau, LR %.3g -> %.3g", epoch, before[0], after[0])
        if objective > self.best + self.threshold:
            self.best, self.best_epoch, self.bad_epochs = objective, epoch, 0
            return "improved"
        self.bad_epochs += 1
        if self.bad_epochs < self.patience:
            return "worse"
        self.rounds, self.bad_epochs = self.rounds + 1, 0
        if self.rounds >= self.lr_decay_steps:
            self.stopped = True
            return "stop"
        log.info("epoch %d: %d epochs without improvement, round %d of %d ended; best weights "
                 "(epoch %d) restored", epoch, self.patience, self.rounds, self.lr_decay_steps,
                 self.best_epoch)
        return "restored"

    def state_dict(self) -> dict[str, Any]:
        return asdict(self)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        known = {f.name for f in fields(self)}
        unknown = sorted(set(state) - known)
        if unknown:
            msg = Message(f"the early-stopping state has keys {unknown} it does not know (it holds "
                   f"{sorted(known)}): the checkpoint is not one this version wrote; train the "
                   "run anew (another ", Fix("out folder", "--out"), ") instead of resuming it.")
            raise ValueError(msg)
        for key, value in state.items():
            setattr(self, key, value)
