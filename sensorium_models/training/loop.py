"""One epoch of training and one validation pass."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from sensorium_models.accumulators import RunningSingleTrialCorrelation
from sensorium_models.training import data
from sensorium_models.training.predict import Autocast, evaluating, whole_trials

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from torch import nn

    from sensorium_data import TrialDataset
    from sensorium_models.models import VideoEncoder

log = logging.getLogger(__name__)

EPS = 1e-8


def poisson_loss(predictions: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Summed Poisson negative log-likelihood without its constant: ``sum(pred - target *
    log(pred + eps))`` (neuralpredictors' ``PoissonLoss(avg=False)``). NaN targets (none in
    training clips) are left out."""
    valid = torch.isfinite(targets)
    targets = torch.where(valid, targets, torch.zeros_like(targets))
    terms = predictions - targets * torch.log(predictions + EPS)
    return torch.where(valid, terms, torch.zeros_like(terms)).sum()


def train_epoch(
    model: VideoEncoder,
    forward: nn.Module,
    batches: Iterable[dict[str, Any]],
    optimizer: torch.optim.Optimizer,
    *,
    loss_scale: Mapping[str, float],
    batches_per_step: int,
    device: torch.device,
    autocast: Autocast,
    on_batch: Any = None,
    criterion: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
) -> float:
    """Train one epoch; return the mean loss per batch (``criterion``, Poisson by default,
    scaled, plus the regularizers).

    Gradients of ``batches_per_step`` consecutive batches (one per mouse, as
    :class:`sensorium_data.MouseBatchSampler` orders them) are summed into one optimizer
    step. ``forward`` is ``model`` or its compiled version.
    """
    model.train()
    optimizer.zero_grad(set_to_none=True)
    total, count = 0.0, 0
    pending = 0
    for batch in batches:
        mouse = batch["mouse"]
        videos = batch["videos"].to(device, non_blocking=True)  # (B, C, F, H, W)
        behavior = batch["behavior"].to(device, non_blocking=True)  # (B, 4, F)
        responses = batch["responses"].to(device, non_blocking=True)  # (B, N, F)
        with autocast():
            out = forward(videos, mouse=mouse, behavior=behavior)  # (B, N, T_out)
        target = responses[..., -out.shape[-1]:]  # the model's output is end-aligned
        fit = (criterion or poisson_loss)(out.float(), target)  # training/losses.py names them
        loss = fit * loss_scale[mouse] + model.regularizer(mouse)
        loss.backward()
        pending += 1
        if pending == batches_per_step:
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            pending = 0
        value = float(loss.detach())
        total, count = total + value, count + 1
        if on_batch is not None:
            on_batch(value)
    if pending:
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return total / max(count, 1)


def validate(model: nn.Module, dataset: TrialDataset, *, batch_size: int, device: torch.device,
             autocast: Autocast, num_workers: int = 0) -> float:
    """Single-trial correlation of whole trials (normalized responses against predictions,
    frames 50 to 300 as the metric), per neuron, averaged over all mice's neurons."""
    accumulators = {m: RunningSingleTrialCorrelation() for m in dataset.mice}
    with evaluating(model):
        for batch in data.iterate(dataset, batch_size, num_workers):
            predicted = whole_trials(model, batch, device, autocast)  # (B, N, F)
            accumulators[batch["mouse"]].update(batch["responses"].numpy(), predicted,
                                                n_frames=batch["length"].numpy())
    per_neuron = [acc.compute(per_neuron=True) for acc in accumulators.values() if acc.n]
    if not per_neuron:
        msg = "no validation trial had frames past the first 50; nothing to validate on."
        raise ValueError(msg)
    return float(np.concatenate(per_neuron).mean())
