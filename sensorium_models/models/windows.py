"""Long clips through a model trained on short windows: run the windows, batched, and stitch.

A model trained on clips of ``window`` frames whose first ``burn_in`` outputs are context only
(Dynamic-V1FM: 30 frames, 15 of burn-in) predicts a longer clip window by window. Windows start
every ``window - burn_in`` frames, so their kept outputs tile the clip; where the last regular
window stops short of the end, one more window ending at the last frame (the tail window)
supplies the frames still missing, from its last outputs. For T = 40, window 30, burn-in 15::

    frames       0 ........ 14 15 ........ 29 30 ........ 39
    window 0     [ burn-in    | kept: 15-29  ]
    tail (10-39)            [ burn-in      | dropped | kept: 30-39 ]

Output ``i`` of the stitched clip belongs to frame ``burn_in + i``, as for any core.
"""

from __future__ import annotations

import torch
from torch import Tensor


def window_starts(frames: int, window: int, burn_in: int) -> list[int]:
    """First frames of the windows that cover a clip of ``frames`` frames, the tail last.

    Parameters
    ----------
    frames
        Frames of the clip, at least ``window``.
    window
        Frames of one window.
    burn_in
        Outputs at the start of each window that are context only, less than ``window``.

    Returns
    -------
    list of int
        ``0, stride, 2 stride, ...`` (``stride = window - burn_in``) while a window fits, then
        ``frames - window`` if the regular windows leave frames uncovered.

    Examples
    --------
    >>> window_starts(40, 30, 15)
    [0, 10]
    >>> window_starts(60, 30, 15)
    [0, 15, 30]
    """
    if not 0 <= burn_in < window:
        msg = f"burn_in={burn_in} with window={window}; burn_in must be in [0, window)."
        raise ValueError(msg)
    if frames < window:
        msg = (
            f"a clip of {frames} frames is shorter than the model's window of {window} "
            f"({burn_in} frames of burn-in, then {window - burn_in} predicted); pass clips of "
            f"at least {window} frames."
        )
        raise ValueError(msg)
    stride = window - burn_in
    starts = list(range(0, frames - window + 1, stride))
    if starts[-1] + window < frames:
        starts.append(frames - window)
    return starts


def split_windows(x: Tensor, window: int, burn_in: int, dim: int = 2) -> Tensor:
    """The windows of ``x`` along ``dim`` (time), stacked along the batch dimension.

    Parameters
    ----------
    x
        (B, ..., T, ...) with time at ``dim``.
    window, burn_in
        As :func:`window_starts`.
    dim
        The time dimension.

    Returns
    -------
    Tensor
        (K * B, ..., window, ...), window-major: rows ``k * B .. (k + 1) * B`` are window k.

    Examples
    --------
    >>> import torch
    >>> split_windows(torch.zeros(2, 3, 40), 30, 15).shape
    torch.Size([4, 3, 30])
    """
    starts = window_starts(x.shape[dim], window, burn_in)
    if len(starts) == 1:
        return x
    return torch.cat([x.narrow(dim, s, window) for s in starts])  # (K * B, ..., window, ...)


def merge_windows(y: Tensor, frames: int, window: int, burn_in: int, dim: int = 2) -> Tensor:
    """Stitch the kept outputs of :func:`split_windows` windows into one clip's outputs.

    Parameters
    ----------
    y
        (K * B, ..., window - burn_in, ...) outputs of each window (its burn-in already
        dropped), time at ``dim``, in the order :func:`split_windows` made them.
    frames
        Frames of the clip that was split.
    window, burn_in
        As :func:`window_starts`.
    dim
        The time dimension.

    Returns
    -------
    Tensor
        (B, ..., frames - burn_in, ...): output ``i`` belongs to frame ``burn_in + i``.

    Examples
    --------
    >>> import torch
    >>> clip = torch.arange(40.0).view(1, 1, 40)
    >>> windows = split_windows(clip, 30, 15)[..., 15:]  # a "model" echoing its frames
    >>> merge_windows(windows, 40, 30, 15).equal(clip[..., 15:])
    True
    """
    starts = window_starts(frames, window, burn_in)
    if len(starts) == 1:
        return y
    stride = window - burn_in
    parts = list(y.chunk(len(starts), dim=0))  # K x (B, ..., stride, ...)
    regular = (frames - window) // stride + 1
    missing = frames - burn_in - stride * regular  # left for the tail window, < stride
    if missing:
        parts[-1] = parts[-1].narrow(dim, stride - missing, missing)  # its last outputs
    return torch.cat(parts, dim=dim)  # (B, ..., frames - burn_in, ...)
