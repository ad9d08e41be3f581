"""Stop a run that has failed, with the likely cause and the fix, instead of training on.

Two signs, read from the epochs so far (``metrics.csv``'s rows):

- the validation correlation stays at zero (``|r| < ZERO``) for ``DEAD_EPOCHS`` epochs: the
  predictions no longer depend on the input (an LN at lr 5e-3 drives them all to 0.0);
- the training loss grows in each of ``RISING_EPOCHS`` epochs in a row, by more than
  ``RISE - 1`` times the size of where it started (a Poisson loss without its constant can
  be negative): the updates overshoot.

Both point at a learning rate too high for the model and the data; the message says so and
names the lower one to start a new run with.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from sensorium_data.errors import Fix, Message

if TYPE_CHECKING:
    import xarray as xr

    from sensorium_models.training.config import TrainConfig

log = logging.getLogger(__name__)

ZERO = 1e-3
DEAD_EPOCHS = 2
RISING_EPOCHS = 3
RISE = 1.5
FEW_TRAIN_TRIALS = 100  # below: the per-frame statistics are noise


class TrainingFailedError(ValueError):
    """A run stopped by a guard; the message names the cause and the fix."""


def failure(history: Sequence[Mapping[str, float]], *, lr: float, val_tier: str) -> str | None:
    """What went wrong in the epochs of ``history``, or None while the run looks healthy.

    Parameters
    ----------
    history
        One mapping per epoch with ``train_loss`` and ``validation_correlation``.
    lr
        The run's starting learning rate (the fix names a tenth of it).
    val_tier
        The tier of the validation correlation, for the message.

    Examples
    --------
    >>> rows = [{"train_loss": 3.8e5, "validation_correlation": 0.0},
    ...         {"train_loss": 7.3e5, "validation_correlation": 0.0}]
    >>> print(failure(rows, lr=5e-3, val_tier="oracle"))  # doctest: +ELLIPSIS
    the oracle correlation has been 0.0000 for 2 epochs: the predictions no longer depend ...
    >>> failure(rows[:1], lr=5e-3, val_tier="oracle") is None
    True
    """
    fix = Message(
        f"The likely cause is a learning rate too high for this model and data (lr {lr:g}). "
        "Start a new run with a lower one, e.g. ",
        Fix(f"lr={lr / 10:g} (in the TrainConfig or its config file)",
            f"--set lr={lr / 10:g} (lr={lr / 10:g} in a config file)"),
        "; see docs/training.md, 'When training goes wrong'.",
    )
    recent = history[-DEAD_EPOCHS:]
    if len(recent) == DEAD_EPOCHS and all(
        abs(row["validation_correlation"]) < ZERO for row in recent
    ):
        r = recent[-1]["validation_correlation"]
        return Message(
            f"the {val_tier} correlation has been {r:.4f} for {DEAD_EPOCHS} epochs: the "
            "predictions no longer depend on the input (all zero or constant). ", fix,
        )
    losses = [row["train_loss"] for row in history[-(RISING_EPOCHS + 1):]]
    if (len(losses) == RISING_EPOCHS + 1 and all(b > a for a, b in itertools.pairwise(losses))
            and losses[-1] - losses[0] > (RISE - 1) * abs(losses[0])):
        return Message(
            f"the training loss grew in each of the last {RISING_EPOCHS} epochs, from "
            f"{losses[0]:.4g} to {losses[-1]:.4g}. ", fix,
        )
    return None


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
            "up to 100x weight), and such runs learn little beyond the mean. Pass %s "
            "(docs/training.md, 'When training goes wrong').",
            config.train_tier, listed,
            Message(Fix("normalize='per_neuron'", "--set normalize=per_neuron")))
