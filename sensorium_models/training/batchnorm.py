"""Batch-norm statistics that belong to the weights being evaluated.

In training mode a batch norm layer normalises with the batch's own statistics and keeps a
moving average of them for evaluation. That average lags the weights: each batch's statistics
were taken before the optimizer step that follows it, and with few steps per epoch and a
large learning rate (the simulator's presets: two steps per epoch at lr 5e-3) a step moves a
layer's output by several of its standard deviations. Channels fed by the behaviour inputs,
constant over the frame, move the most: the 121 weights of an 11 x 11 kernel all step the same
way. Evaluation then normalises with the wrong statistics, and the error grows layer by layer
(docs/models.md, "Batch norm": one batch's output mean 35.0 in eval mode against 0.30 in
train mode). :func:`recompute_batch_norm` replaces the moving averages by the mean and
variance of each layer's input over training clips, taken with the current weights.
"""

from __future__ import annotations

import typing
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

if TYPE_CHECKING:
    from sensorium_models.training.predict import Autocast


class _Moments:
    """Running count, mean and summed squared deviation per channel (Chan et al.'s merge)."""

    def __init__(self) -> None:
        self.n = 0
        self.mean: Tensor | None = None
        self.m2: Tensor | None = None

    def update(self, x: Tensor) -> None:
        dims = [d for d in range(x.ndim) if d != 1]
        x = x.detach().double()
        n = x.numel() // x.shape[1]
        mean = x.mean(dims)  # (C,)
        m2 = ((x - mean.view(1, -1, *[1] * (x.ndim - 2))) ** 2).sum(dims)  # (C,)
        if self.mean is None or self.m2 is None:
            self.n, self.mean, self.m2 = n, mean, m2
            return
        total = self.n + n
        delta = mean - self.mean
        self.mean = self.mean + delta * n / total
        self.m2 = self.m2 + m2 + delta**2 * self.n * n / total
        self.n = total


def batch_norms(module: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """The batch norm layers of ``module`` that keep running statistics."""
    return [m for m in module.modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]


def recompute_batch_norm(core: nn.Module, batches: Iterable[dict[str, Any]], *,
                         device: torch.device, autocast: Autocast) -> int:
    """Set every batch norm layer's running mean and variance to those of its input over
    ``batches``, with the current weights; return the number of batches used.

    The core runs in training mode, as it does while training (each layer normalises with the
    batch's statistics), without gradients; each layer's input is pooled over every batch, so
    the variance includes how much batch means differ (batches hold one mouse each). Cores
    without batch norm are left as they are and read no batch.

    Parameters
    ----------
    core
        The model's core (a :class:`sensorium_models.models.encoder.Core`).
    batches
        Training batches (``videos`` (B, C, T, H, W)), as the clip loaders give them.
    device, autocast
        Where and in which precision the core runs.

    Examples
    --------
    >>> import torch
    >>> core = torch.nn.Sequential(torch.nn.Conv3d(1, 2, 1), torch.nn.BatchNorm3d(2))
    >>> batches = [{"videos": torch.randn(4, 1, 3, 5, 5) * 3 + 1} for _ in range(5)]
    >>> from contextlib import nullcontext
    >>> recompute_batch_norm(core, batches, device=torch.device("cpu"), autocast=nullcontext)
    5
    """
    norms = batch_norms(core)
    if not norms:
        return 0
    moments = {id(m): _Moments() for m in norms}

    def record(module: nn.Module, inputs: tuple[Tensor, ...]) -> None:
        moments[id(module)].update(inputs[0])

    hooks = [m.register_forward_pre_hook(record) for m in norms]
    was_training = core.training
    core.train()
    count = 0
    try:
        with torch.no_grad():
            for batch in batches:
                videos = batch["videos"].to(device, non_blocking=True)  # (B, C, T, H, W)
                with autocast():
                    core(videos)  # (B, C', T - burn_in, H', W'), only the layers' inputs count
                count += 1
    finally:
        for hook in hooks:
            hook.remove()
        core.train(was_training)
    for m in norms:
        stats = moments[id(m)]
        if stats.mean is None or stats.m2 is None or stats.n < 2:
            continue
        mean, var = typing.cast(Tensor, m.running_mean), typing.cast(Tensor, m.running_var)
        mean.copy_(stats.mean.to(mean.dtype))
        var.copy_((stats.m2 / (stats.n - 1)).to(var.dtype))
    return count
