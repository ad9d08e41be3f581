"""Batching items of :class:`ClipDataset` and :class:`TrialDataset`, padding along frames."""

from __future__ import annotations

import itertools
import math
import weakref
from collections.abc import Mapping, Sequence
from typing import Any

import torch

# The batches made by batch_buffer and still alive: only their rows are handed on uncopied.
_BUFFERS: weakref.WeakSet[torch.Tensor] = weakref.WeakSet()


def collate(items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Stack items into a batch; items of different lengths are padded along frames.

    Parameters
    ----------
    items
        Items of :class:`ClipDataset` or :class:`TrialDataset` (items of
        :class:`ImageDataset` go to :func:`collate_images`).

    Returns
    -------
    dict
        ``videos`` (B, C, F, 36, 64) and ``behavior`` (B, 4, F) padded with 0; ``responses``
        (B, N, F) padded with NaN, or, if the items come from different mice, a list of (N_i,
        F) tensors; ``mouse`` a str if all items share it, else a list of str; ``trial``,
        ``start`` and ``length`` (valid frames of each item before padding) LongTensors (B,).
        F is the longest item's number of frames.

    Examples
    --------
    >>> import torch
    >>> a = {"videos": torch.ones(3, 4, 36, 64), "responses": torch.ones(5, 4),
    ...      "behavior": torch.ones(4, 4), "mouse": "A", "trial": 7, "start": 0}
    >>> b = dict(a, videos=torch.ones(3, 2, 36, 64), responses=torch.ones(5, 2),
    ...          behavior=torch.ones(4, 2), trial=9)
    >>> batch = collate([a, b])
    >>> batch["videos"].shape, batch["mouse"], batch["length"].tolist()
    (torch.Size([2, 3, 4, 36, 64]), 'A', [4, 2])
    >>> batch["responses"][1, 0].tolist()
    [1.0, 1.0, nan, nan]
    """
    if not items:
        msg = "collate got no items; a batch needs at least one."
        raise ValueError(msg)
    if "images" in items[0]:  # 2022 items have no frames to pad
        from sensorium_data.loaders.images import collate_images

        return collate_images(items)
    lengths = [int(item["length"]) if "length" in item else int(item["responses"].shape[-1])
               for item in items]
    frames = max(lengths)
    mice = [item["mouse"] for item in items]
    batch: dict[str, Any] = {
        "videos": _stack([item["videos"] for item in items], frames, 2, 0.0),
        "behavior": _stack([item["behavior"] for item in items], frames, 2, 0.0),
    }
    responses = [item["responses"] for item in items]
    if len(set(mice)) == 1:
        batch["responses"] = _stack(responses, frames, 2, math.nan)
        batch["mouse"] = mice[0]
    else:  # mice differ in their number of neurons
        batch["responses"] = [_stack([r], frames, 2, math.nan)[0] for r in responses]
        batch["mouse"] = mice
    for key in ("trial", "start"):
        batch[key] = torch.tensor([int(item[key]) for item in items], dtype=torch.long)
    batch["length"] = torch.tensor(lengths, dtype=torch.long)
    return batch


def _stack(tensors: list[torch.Tensor], frames: int, axis: int, pad: float) -> torch.Tensor:
    """Stack along a new first axis, padding ``axis`` (of the result) to ``frames``."""
    first = tensors[0]
    whole = _rows_of_one_batch(tensors)
    if whole is not None and whole.shape[axis] == frames:
        return whole
    shape = [len(tensors), *first.shape]
    shape[axis] = frames
    out = _empty(first, shape)
    if any(t.shape[axis - 1] != frames for t in tensors):
        out.fill_(pad)
        for b, t in enumerate(tensors):
            out[b].narrow(axis - 1, 0, t.shape[axis - 1]).copy_(t)
        return out
    return torch.stack(tensors, out=out)


def _rows_of_one_batch(tensors: list[torch.Tensor]) -> torch.Tensor | None:
    """The batch whose rows ``tensors`` are, in order and evenly spaced in one memory (as
    :class:`ClipDataset` writes the items of a batch), as a view of that memory; or None."""
    first = tensors[0]
    if not any(first._base is batch for batch in _BUFFERS):
        return None  # only batches made for it: never a view of memory the items share
    if first.numel() == 0 or any(t.shape != first.shape or t.stride() != first.stride()
                                 for t in tensors):
        return None
    storage = first.untyped_storage()
    if any(t.untyped_storage().data_ptr() != storage.data_ptr() for t in tensors):
        return None
    offsets = [t.storage_offset() for t in tensors]
    step = offsets[1] - offsets[0] if len(tensors) > 1 else first.numel()
    extent = 1 + sum((n - 1) * abs(st)
                     for n, st in zip(first.shape, first.stride(), strict=True))
    if step < extent or any(b - a != step for a, b in itertools.pairwise(offsets)):
        return None  # rows overlap, or are not evenly spaced
    return first.as_strided((len(tensors), *first.shape), (step, *first.stride()), offsets[0])


def _empty(like: torch.Tensor, shape: list[int]) -> torch.Tensor:
    """An empty tensor; in shared memory inside a DataLoader worker, so that sending the batch
    to the main process does not copy it again (as torch's default_collate does)."""
    if torch.utils.data.get_worker_info() is None:
        return like.new_empty(shape)
    storage = like._typed_storage()._new_shared(math.prod(shape), device=like.device)
    return like.new(storage).resize_(shape)


def batch_buffer(shape: tuple[int, ...]) -> torch.Tensor:
    """An empty float32 batch that items are written into (in shared memory inside a
    DataLoader worker); :func:`collate` hands it on whole when the items are its rows."""
    batch = _empty(torch.empty(0, dtype=torch.float32), list(shape))
    _BUFFERS.add(batch)
    return batch
