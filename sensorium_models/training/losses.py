"""Training losses by name, for the config's ``loss`` key.

Each takes (B, N, T) positive predictions and targets of the same shape and returns a scalar
summed over the batch, before the trainer's per-mouse scale sqrt(trials / batch_size):

- ``"poisson"``: the baselines' summed Poisson negative log-likelihood
  (:func:`~sensorium_models.training.loop.poisson_loss`).
- ``"poisson_correlation"``: ViV1T's, the Poisson term plus ``1000 * sum_n (1 - corr_n)``,
  where ``corr_n`` is neuron n's Pearson correlation over the batch's (clip, frame) rows. The
  correlation term rewards the shape of each neuron's trace, which the leaderboard scores,
  and not only its scale.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from sensorium_models.training.loop import poisson_loss

#: Weight of the correlation term of ``"poisson_correlation"`` (ViV1T's ``alpha``).
CORRELATION_WEIGHT = 1000.0
# ViV1T adds float32's machine epsilon to the standard deviations
CORRELATION_EPS = float(torch.finfo(torch.float32).eps)

Loss = Callable[[Tensor, Tensor], Tensor]


def correlation_loss(predictions: Tensor, targets: Tensor) -> Tensor:
    """``sum_n (1 - corr_n)``: Pearson correlation per neuron over all (clip, frame) rows of
    the batch, standard deviations with ddof 0 plus float32's epsilon; NaN targets are left
    out of their neuron's statistics.

    Examples
    --------
    >>> import torch
    >>> y = torch.rand(2, 3, 10) + 0.1
    >>> round(float(correlation_loss(2 * y, y)), 4), round(float(correlation_loss(-y, y)), 4)
    (0.0, 6.0)
    """
    valid = torch.isfinite(targets)
    weights = valid.to(predictions.dtype)  # (B, N, T)
    count = weights.sum((0, 2)).clamp_min(1)  # (N,)
    targets = torch.where(valid, targets, torch.zeros_like(targets))

    def standardised(x: Tensor) -> Tensor:
        mean = (x * weights).sum((0, 2)) / count  # (N,)
        centred = (x - mean[:, None]) * weights  # (B, N, T)
        std = torch.sqrt((centred * centred).sum((0, 2)) / count)  # (N,)
        return centred / (std[:, None] + CORRELATION_EPS)  # (B, N, T)

    corr = (standardised(predictions) * standardised(targets)).sum((0, 2)) / count  # (N,)
    return (1 - corr).sum()


def poisson_correlation_loss(predictions: Tensor, targets: Tensor) -> Tensor:
    """ViV1T's loss: ``poisson_loss + 1000 * correlation_loss``.

    Examples
    --------
    >>> import torch
    >>> y = torch.rand(2, 3, 10) + 0.1
    >>> bool(poisson_correlation_loss(y, y) == poisson_loss(y, y) + 1000 * correlation_loss(y, y))
    True
    """
    return (poisson_loss(predictions, targets)
            + CORRELATION_WEIGHT * correlation_loss(predictions, targets))


#: The config's ``loss`` choices.
LOSSES: dict[str, Loss] = {
    "poisson": poisson_loss,
    "poisson_correlation": poisson_correlation_loss,
}


def get_loss(name: str) -> Loss:
    """The loss function called ``name`` (:data:`LOSSES`).

    Examples
    --------
    >>> get_loss("poisson_correlation").__name__
    'poisson_correlation_loss'
    >>> get_loss("mse")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: unknown loss 'mse'; choose one of poisson, poisson_correlation (the config's ...
    """
    if name not in LOSSES:
        msg = (f"unknown loss {name!r}; choose one of {', '.join(LOSSES)} (the config's loss "
               "key).")
        raise ValueError(msg)
    return LOSSES[name]
