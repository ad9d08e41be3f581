"""Batches that mix mice (``mixed_mice`` in the config), as DwiseNeuro trains.

The core runs once over the whole batch (so batch norm sees every clip of it); each mouse's
readout and shifter read only the features of that mouse's clips. The loss of a clip counts
for its own mouse only: the mask that the original applies to every readout's output over
every clip, without computing the outputs it would throw away.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, cast

import torch
from torch import Tensor

from sensorium_models.models.encoder import Readout, check_inputs

if TYPE_CHECKING:
    from torch import nn

    from sensorium_models.models import VideoEncoder


def rows_by_mouse(mice: Sequence[str]) -> dict[str, list[int]]:
    """Each mouse's rows of the batch, mice in order of first appearance.

    Examples
    --------
    >>> rows_by_mouse(["B", "A", "B"])
    {'B': [0, 2], 'A': [1]}
    """
    out: dict[str, list[int]] = {}
    for row, mouse in enumerate(mice):
        out.setdefault(mouse, []).append(row)
    return out


def mixed_forward(model: VideoEncoder, videos: Tensor, behavior: Tensor, mice: Sequence[str],
                  *, core: nn.Module | None = None, every_mouse: bool = False
                  ) -> dict[str, Tensor]:
    """Each mouse's predictions for its own clips of a batch that mixes mice (or, with
    ``every_mouse``, every mouse's predictions for every clip, as distillation needs).

    Parameters
    ----------
    model
        A model with a readout for every mouse of ``mice``.
    videos
        (B, C, T, H, W) clips.
    behavior
        (B, 4, T) behaviour of the clips.
    mice
        The B clips' mice.
    core
        ``model.core`` (the default) or its compiled version.
    every_mouse
        Run every readout of the model over all B clips (each with the clip's own
        behaviour), not only each mouse's readout over its own clips.

    Returns
    -------
    dict of str to Tensor
        Mouse -> (B_mouse, N_mouse, T - burn_in) predictions of its rows
        (:func:`rows_by_mouse`), as ``model(videos[rows], mouse=mouse, behavior=...)``
        gives them for a core without batch statistics; with ``every_mouse``, each of the
        model's mice -> (B, N_mouse, T - burn_in).
    """
    rows = rows_by_mouse(mice)
    if every_mouse:
        rows = {mouse: list(range(len(mice))) for mouse in model.mice}
    for mouse in dict.fromkeys([*mice, *rows]):
        check_inputs(videos, behavior, mouse=mouse, mice=model.mice,
                     in_channels=model.in_channels, burn_in=model.burn_in)
    features = (model.core if core is None else core)(videos)  # (B, C', T_out, H', W')
    state = behavior[:, :, -features.shape[2]:]  # (B, 4, T_out)
    out = {}
    for mouse, index in rows.items():
        select = torch.tensor(index, device=videos.device)
        own = state.index_select(0, select)  # (B_mouse, 4, T_out)
        shift = None
        if model.shifters is not None:
            shift = model.shifters[mouse](own[:, 2:4])  # (B_mouse, T_out, 2)
        drive = model.readouts[mouse](features.index_select(0, select), shift, own)
        out[mouse] = model.output(drive)  # (B_mouse, N_mouse, T_out)
    return out


def mixed_targets(responses: Sequence[Tensor], mice: Sequence[str], frames: int
                  ) -> dict[str, Tensor]:
    """Each mouse's targets, (B_mouse, N_mouse, frames): the last ``frames`` of its rows'."""
    return {mouse: torch.stack([responses[r][:, -frames:] for r in index])
            for mouse, index in rows_by_mouse(mice).items()}


def mixed_regularizer(model: VideoEncoder, mice: Sequence[str]) -> Tensor:
    """The core's penalty once, plus the readout penalty of each mouse in the batch."""
    total = model.core.regularizer()
    for mouse in rows_by_mouse(mice):
        total = total + cast(Readout, model.readouts[mouse]).regularizer()
    return total


def scaled_sum(losses: Mapping[str, Tensor], scale: Mapping[str, float]) -> Tensor:
    """``sum(scale[mouse] * losses[mouse])``."""
    return torch.stack([loss * scale[mouse] for mouse, loss in losses.items()]).sum()
