"""One epoch of training and one validation pass."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import nullcontext
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from sensorium_models.accumulators import RunningSingleTrialCorrelation
from sensorium_models.training import augment, data, mixed
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
    on_step: Callable[[], None] | None = None,
    cutmix: float = 0.0,
    scaler: torch.amp.GradScaler | None = None,
    regularizer_scale: float = 1.0,
    core: nn.Module | None = None,
    criterion: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    teacher: VideoEncoder | None = None,
) -> float:
    """Train one epoch; return the mean loss per batch (``criterion``, Poisson by default,
    scaled, plus the regularizers).

    Gradients of ``batches_per_step`` consecutive batches (one per mouse, as
    :class:`sensorium_data.MouseBatchSampler` orders them, times ``accumulate``) are summed
    into one optimizer step, after which ``on_step()`` runs (a per-step LR schedule, the
    weights' moving average). ``forward`` is ``model`` or its compiled version. A batch
    whose ``mouse`` is a list mixes mice (:mod:`.mixed`). ``cutmix``: the probability of
    CutMix per clip (:mod:`.augment`). ``scaler``: fp16's gradient scaler.
    ``regularizer_scale``: the regularizers' weight per batch (``1 / accumulate``, so that
    accumulated batches count them as one bigger batch would). ``core``: ``model.core`` or
    its compiled version, for batches that mix mice. ``teacher``: distillation (batches
    that mix mice, :func:`.distill.distilled_loss`).
    Batches reach the device through :func:`on_device` (the next one is copied while the
    current one trains).
    """
    model.train()
    optimizer.zero_grad(set_to_none=True)
    total, count = 0.0, 0
    pending = 0
    for batch in on_device(batches, device):
        loss = batch_loss(model, forward, batch, loss_scale=loss_scale, device=device,
                          autocast=autocast, cutmix=cutmix,
                          regularizer_scale=regularizer_scale, core=core,
                          criterion=criterion, teacher=teacher)
        (loss if scaler is None else scaler.scale(loss)).backward()
        pending += 1
        if pending == batches_per_step:
            _step(optimizer, scaler, on_step)
            pending = 0
        value = float(loss.detach())
        total, count = total + value, count + 1
        if on_batch is not None:
            on_batch(value)
    if pending:
        _step(optimizer, scaler, on_step)
    return total / max(count, 1)


def batch_loss(model: VideoEncoder, forward: nn.Module, batch: Mapping[str, Any], *,
               loss_scale: Mapping[str, float], device: torch.device, autocast: Autocast,
               cutmix: float = 0.0, regularizer_scale: float = 1.0,
               core: nn.Module | None = None,
               criterion: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
               teacher: VideoEncoder | None = None,
               ) -> torch.Tensor:
    """The loss of one batch: each mouse's ``criterion`` (default: the summed Poisson loss,
    :mod:`.losses` names the others) times its ``loss_scale``, plus the regularizers times
    ``regularizer_scale``. With a ``teacher`` (batches that mix mice), every mouse's readout
    fits every clip (:func:`.distill.distilled_loss`) and every readout's penalty counts."""
    fit = criterion or poisson_loss
    mouse = batch["mouse"]
    videos = batch["videos"].to(device, non_blocking=True)  # (B, C, F, H, W)
    behavior = batch["behavior"].to(device, non_blocking=True)  # (B, 4, F)
    responses = batch["responses"]  # (B, N, F), or B (N_i, F) of mixed mice
    responses = (responses.to(device, non_blocking=True) if isinstance(responses, torch.Tensor)
                 else [r.to(device, non_blocking=True) for r in responses])
    if cutmix:
        videos, responses, _ = augment.cutmix(videos, responses, mouse, cutmix)
    if isinstance(mouse, str):
        with autocast():
            out = forward(videos, mouse=mouse, behavior=behavior)  # (B, N, T_out)
        target = responses[..., -out.shape[-1]:]  # the model's output is end-aligned
        return (fit(out.float(), target) * loss_scale[mouse]
                + model.regularizer(mouse) * regularizer_scale)
    if teacher is not None:
        from sensorium_models.training.distill import distilled_loss

        with autocast():
            loss = distilled_loss(model, teacher, videos, behavior, responses, mouse,
                                  loss_scale=loss_scale, core=core)
        return loss + mixed.mixed_regularizer(model, model.mice) * regularizer_scale
    with autocast():
        outs = mixed.mixed_forward(model, videos, behavior, mouse,
                                   core=core)  # mouse -> (B_m, N_m, T_out)
    frames = next(iter(outs.values())).shape[-1]
    targets = mixed.mixed_targets(responses, mouse, frames)  # mouse -> (B_m, N_m, T_out)
    losses = {m: fit(out.float(), targets[m]) for m, out in outs.items()}
    return (mixed.scaled_sum(losses, loss_scale)
            + mixed.mixed_regularizer(model, mouse) * regularizer_scale)


def _step(optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler | None,
          on_step: Callable[[], None] | None) -> None:
    if scaler is None:
        optimizer.step()
    else:
        scaler.step(optimizer)
        scaler.update()
    optimizer.zero_grad(set_to_none=True)
    if on_step is not None:
        on_step()


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
