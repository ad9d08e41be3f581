"""The readout biases a new run starts from, measured on its training clips.

A readout's bias starts where the output nonlinearity gives each neuron's mean response,
``b = f^-1(m)`` (:func:`sensorium_models.models.encoder.initial_bias`). That is right only for
a drive that does not vary: the untrained core and readout already give each neuron a drive
``b + z`` that varies over clips and frames, and for a convex output the mean output
``E[f(b + z)]`` exceeds ``f(b) = m``. On the ``exp`` branch of ``elu1`` (means below 1, the
usual case in normalised units) ``E[exp(b + z)] = m E[exp(z)]``, ``exp(s^2 / 2)`` times too
large for a drive spread ``s``: on the simulator's tiny preset the LN starts 1.6-2.1x above
the responses' mean (measured), and training at its small learning rate keeps much of that.
:func:`calibrate_biases` measures the drives on a few training batches, with the batch-norm
statistics of those batches, and moves each neuron's bias so that its mean output over them is
its mean response.

Training moves the mean output further: Adam moves every filter weight by about the learning
rate per step, coherently over a filter, and the bias (one parameter per neuron, moved by the
same small step) cannot follow (the LN on the tiny preset: 4.6x the train tier's mean after
one epoch at lr 5e-4; the demo's LN, not calibrated, 0.18-0.33x after its first epoch and
1.7-2.1x after its third; measured). The
trainer therefore calibrates again after every epoch, after the batch-norm statistics are
recomputed and before validation, **for evaluation only** (:func:`for_evaluation`):
validation, ``best.pt`` and the predictions made from it use the calibrated biases, and
training goes on from its own. Calibrating the trained biases themselves derailed training:
the drives are measured in eval mode (the readout at its mean positions), where training
samples positions around them, so a bias that sets the eval-mode mean to the target left the
train-mode mean 1.2x (start) to 1.8-3.8x (after epochs 1-3) above it, and every epoch spent its
steps pulling it down again, through the filters, against the bias that the next calibration
raised (the demo's LN: oracle correlation 0.008, -0.006, -0.000 over 3 epochs, against 0.047,
0.077, 0.086 without the calibration and 0.008, 0.056, 0.090 with the start's alone).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from sensorium_models.models.encoder import OUTPUTS
from sensorium_models.training.batchnorm import recompute_batch_norm
from sensorium_models.training.predict import evaluating

if TYPE_CHECKING:
    from sensorium_models.models import VideoEncoder
    from sensorium_models.training.predict import Autocast

log = logging.getLogger(__name__)

#: Training batches per mouse whose drives set the biases.
CALIBRATION_BATCHES = 4


def bias_shift(drive: torch.Tensor, target: torch.Tensor, output: str,
               iterations: int = 60) -> torch.Tensor:
    """Per neuron, the shift ``d`` with ``mean(f(drive + d)) == target``.

    ``drive`` is (N, S) samples of each neuron's drive, ``target`` (N,) the mean responses,
    ``output`` a name in :data:`OUTPUTS` (monotone: found by bisection in [-30, 30]).

    Examples
    --------
    >>> drive = torch.tensor([[-1.0, 1.0]], dtype=torch.float64)
    >>> d = bias_shift(drive, torch.tensor([0.5], dtype=torch.float64), "exp")
    >>> round(float(torch.exp(drive + d).mean()), 6)
    0.5
    """
    f = OUTPUTS[output][0]
    drive, target = drive.double(), target.double()
    if output == "identity":
        return target - drive.mean(1)
    target = target.clamp(min=1e-3)  # a positive output's mean: as initial_bias clips it
    finite = torch.isfinite(drive).all(1) & torch.isfinite(target)
    if not finite.all():  # a NaN or inf drive would walk the bisection to +30: left alone
        log.warning("%d neurons have non-finite outputs; their biases are not calibrated",
                    int((~finite).sum()))
        drive = torch.where(finite[:, None], drive, 0.0)
    low = torch.full_like(target, -30.0)
    high = torch.full_like(target, 30.0)
    for _ in range(iterations):
        middle = (low + high) / 2
        above = f(drive + middle[:, None]).mean(1) > target
        high = torch.where(above, middle, high)
        low = torch.where(above, low, middle)
    return torch.where(finite, (low + high) / 2, 0.0)


def calibrate_start(model: Any, clips: Any, means: Mapping[str, np.ndarray], *,
                    batch_size: int, device: torch.device, autocast: Autocast,
                    batch_norm: bool = True) -> dict[str, float]:
    """:func:`calibrate_biases` of a model on :data:`CALIBRATION_BATCHES` batches of each
    mouse's training clips (a new run's, and after every epoch); an ``identity`` output (a
    readout with its own nonlinearity) is left as it is."""
    from sensorium_models.training import data

    if model.config.output == "identity":  # the readout applies its own nonlinearity
        return {}
    batches = data.loader(clips, spread_batches(clips, batch_size), 0)
    return calibrate_biases(model, batches, means, output=model.config.output, device=device,
                            autocast=autocast, batch_norm=batch_norm)


@contextlib.contextmanager
def for_evaluation(model: Any, clips: Any, means: Mapping[str, np.ndarray], *,
                   batch_size: int, device: torch.device, autocast: Autocast
                   ) -> Iterator[dict[str, torch.Tensor]]:
    """:func:`calibrate_start` for what runs inside (validation, ``best.pt``): on exit each
    readout's bias is put back where training left it; yields those biases (by mouse).

    The batch norm layers are not touched (the trainer has recomputed their statistics); the
    calibrated biases are for evaluation, the trained ones for the next steps (see the
    module's notes for what calibrating the trained biases did).
    """
    trained = readout_biases(model)
    try:
        calibrate_start(model, clips, means, batch_size=batch_size, device=device,
                        autocast=autocast, batch_norm=False)
        yield trained
    finally:
        set_readout_biases(model, trained)


def readout_biases(model: Any) -> dict[str, torch.Tensor]:
    """A copy of each readout's per-neuron ``bias`` parameter, by mouse (readouts without
    one left out)."""
    return {mouse: readout.bias.detach().clone() for mouse, readout in model.readouts.items()
            if isinstance(getattr(readout, "bias", None), torch.nn.Parameter)}


def set_readout_biases(model: Any, biases: Mapping[str, torch.Tensor]) -> None:
    """Copy ``biases`` (from :func:`readout_biases`) into the model's readouts."""
    with torch.no_grad():
        for mouse, bias in biases.items():
            model.readouts[mouse].bias.copy_(bias)


def spread_batches(clips: Any, batch_size: int,
                   per_mouse: int = CALIBRATION_BATCHES) -> list[list[int]]:
    """Up to ``per_mouse`` batches of one mouse each, of clips spread evenly over the mouse's
    training clips (every trial when there are few)."""
    out = []
    for indices in clips.indices_by_mouse().values():
        n = min(len(indices), per_mouse * batch_size)
        chosen = indices[np.linspace(0, len(indices) - 1, n).round().astype(int)].tolist()
        out += [chosen[b:b + batch_size] for b in range(0, n, batch_size)]
    return out


def calibrate_biases(model: VideoEncoder, batches: Iterable[dict[str, Any]],
                     means: Mapping[str, np.ndarray], *, output: str, device: torch.device,
                     autocast: Autocast, batch_norm: bool = True) -> dict[str, float]:
    """Shift each readout's bias so that the model's mean output over ``batches`` (training
    clips, one mouse each) is ``means`` (per mouse, (N,) normalised mean responses); return
    per mouse the mean output / mean response before the shift (1.0: nothing to correct).

    With ``batch_norm``, batch norm layers first take the statistics of ``batches`` (after
    an epoch they already have those of more batches). A readout without a (N,) ``bias`` is
    left as it is (logged).
    """
    batches = list(batches)
    if batch_norm:
        recompute_batch_norm(model.core, batches, device=device, autocast=autocast)
    drives: dict[str, list[torch.Tensor]] = {}
    function = model.output
    model.output = OUTPUTS["identity"][0]  # the drive itself
    try:
        with evaluating(model), torch.no_grad(), autocast():
            for batch in batches:
                mouse = batch["mouse"]
                drive = model(batch["videos"].to(device), mouse=mouse,
                              behavior=batch["behavior"].to(device))  # (B, N, T')
                drives.setdefault(mouse, []).append(
                    drive.float().transpose(0, 1).reshape(drive.shape[1], -1).cpu())
    finally:
        model.output = function
    before: dict[str, float] = {}
    for mouse, pieces in drives.items():
        drive = torch.cat(pieces, 1)  # (N, samples)
        target = torch.as_tensor(np.asarray(means[mouse]), dtype=torch.float64)
        before[mouse] = float(function(drive.double()).mean(1).sum() / target.sum())
        bias = getattr(model.readouts[mouse], "bias", None)
        if not isinstance(bias, torch.nn.Parameter) or bias.shape != target.shape:
            log.info("%s: its readout has no per-neuron bias; its start is not calibrated",
                     mouse)
            continue
        shift = bias_shift(drive, target, output)
        with torch.no_grad():
            bias.add_(shift.to(bias.device, bias.dtype))
    if before:
        log.info("readout biases calibrated on %d training batches (mean output / mean "
                 "response before: %s)", len(batches),
                 ", ".join(f"{m} {r:.2f}" for m, r in before.items()))
    return before
