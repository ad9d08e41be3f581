"""One epoch of training and one validation pass."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import nullcontext
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from sensorium_models.accumulators import RunningSingleTrialCorrelation
from sensorium_models.training import data
from sensorium_models.training.predict import Autocast, evaluating, whole_trials

if TYPE_CHECKING:
    from collections.abc import Iterable

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


def on_device(batches: Iterable[dict[str, Any]], device: torch.device
              ) -> Iterator[dict[str, Any]]:
    """The batches with their tensors on ``device``, each copied while the one before trains.

    On CUDA the copies run on a side stream, ``non_blocking`` (from pinned memory, as the
    trainer's DataLoader pins them, they overlap the compute): batch ``k + 1`` is drawn from
    ``batches`` and its copy started before batch ``k`` is handed out, and the compute stream
    waits for a copy only when it uses that batch. Elsewhere the same order, with plain copies
    (a no-op for tensors already there).

    Examples
    --------
    >>> import torch
    >>> batches = [{"mouse": "A", "videos": torch.zeros(2, 3)} for _ in range(3)]
    >>> [b["videos"].device.type for b in on_device(batches, torch.device("cpu"))]
    ['cpu', 'cpu', 'cpu']
    """
    cuda = device.type == "cuda"
    side = torch.cuda.Stream(device) if cuda else None

    def start_copy(batch: dict[str, Any]) -> dict[str, Any]:
        with torch.cuda.stream(side) if side is not None else nullcontext():
            return {k: _map_tensors(v, lambda t: t.to(device, non_blocking=cuda))
                    for k, v in batch.items()}

    iterator = iter(batches)
    ahead = next(iterator, None)
    staged = None if ahead is None else start_copy(ahead)
    while staged is not None:
        current = staged
        if side is not None:
            compute = torch.cuda.current_stream(device)
            compute.wait_stream(side)
            for value in current.values():  # memory the compute uses is not reused early
                _map_tensors(value, compute_uses(compute))
        ahead = next(iterator, None)
        staged = None if ahead is None else start_copy(ahead)
        yield current


def compute_uses(stream: torch.cuda.Stream) -> Any:
    """A function marking a tensor as used by ``stream`` (its memory is kept until then)."""
    return lambda t: t.record_stream(stream)


def _map_tensors(value: Any, fn: Any) -> Any:
    """``fn`` applied to a tensor, or to each tensor of a list (responses of mixed mice)."""
    if isinstance(value, torch.Tensor):
        return fn(value)
    if isinstance(value, list) and value and isinstance(value[0], torch.Tensor):
        return [fn(t) for t in value]
    return value


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
) -> float:
    """Train one epoch; return the mean loss per batch (Poisson term scaled, plus the
    regularizers).

    Gradients of ``batches_per_step`` consecutive batches (one per mouse, as
    :class:`sensorium_data.MouseBatchSampler` orders them) are summed into one optimizer
    step. ``forward`` is ``model`` or its compiled version. Batches reach the device through
    :func:`on_device` (the next one is copied while the current one trains).
    """
    model.train()
    optimizer.zero_grad(set_to_none=True)
    total, count = 0.0, 0
    pending = 0
    for batch in on_device(batches, device):
        mouse = batch["mouse"]
        videos = batch["videos"]  # (B, C, F, H, W)
        behavior = batch["behavior"]  # (B, 4, F)
        responses = batch["responses"]  # (B, N, F)
        with autocast():
            out = forward(videos, mouse=mouse, behavior=behavior)  # (B, N, T_out)
        target = responses[..., -out.shape[-1]:]  # the model's output is end-aligned
        loss = poisson_loss(out.float(), target) * loss_scale[mouse] + model.regularizer(mouse)
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
