"""Batches of dataset indices: one mouse per batch, cycling over mice, or mixed; distributed."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Literal, Protocol

import numpy as np
import torch

log = logging.getLogger(__name__)

Mode = Literal["per_mouse", "mixed"]


class _ByMouse(Protocol):
    def indices_by_mouse(self) -> dict[str, np.ndarray]: ...


class MouseBatchSampler(torch.utils.data.Sampler[list[int]]):
    """Batches of indices of a :class:`ClipDataset` (or :class:`TrialDataset`).

    ``mode="per_mouse"`` (the baselines' way): every batch holds one mouse, and the batches
    cycle over the mice in the dataset's order, A, B, C, A, B, C, ..., so that every run of
    ``len(mice)`` consecutive batches (one optimizer step when gradients are accumulated over
    mice) holds one batch of each mouse. An epoch is as long as the largest mouse needs to
    show each of its trials once; mice with fewer trials start again with a fresh shuffle
    when they run out (as neuralpredictors' ``LongCycler``), so ``len(self) = len(mice) x``
    the largest mouse's number of batches. ``mode="mixed"``: one shuffle of all trials of all
    mice, cut into batches (batches mix mice; :func:`collate` then gives ``responses`` as a
    list); each trial once per epoch.

    Distributed: each of ``num_replicas`` ranks sees its share of each shuffle (every
    ``num_replicas``-th index, after padding the shuffle with its first indices to a multiple
    of ``num_replicas``, as :class:`torch.utils.data.DistributedSampler` does), so the ranks'
    batches do not overlap within one pass; all ranks get the same number of batches and, in
    ``per_mouse`` mode, the same mouse at the same step.

    Parameters
    ----------
    dataset
        The dataset (anything with ``indices_by_mouse()``).
    batch_size
        Items per batch.
    mode
        ``"per_mouse"`` or ``"mixed"``.
    shuffle
        Shuffle the trials (a new order for each :meth:`set_epoch`); without it, trials come in
        index order.
    drop_last
        Leave out batches smaller than ``batch_size`` (the last of each pass of a mouse).
    seed
        Seed of the shuffles; every rank must use the same.
    num_replicas, rank
        The number of ranks and this one; default: from :mod:`torch.distributed` if it is
        initialised, else 1 and 0.

    Examples
    --------
    >>> import torch, sensorium_data as sd
    >>> clips = sd.ClipDataset(["F.zarr", "G.zarr"], seed=0)  # doctest: +SKIP
    >>> clips = sd.ClipDataset(tiny[:2], frames=30, seed=0)  # simulated ones (sd.simulate)
    >>> sampler = sd.MouseBatchSampler(clips, batch_size=4)
    >>> loader = torch.utils.data.DataLoader(clips, batch_sampler=sampler,
    ...                                      collate_fn=sd.collate)  # and num_workers=2, ...
    >>> for epoch in range(2):
    ...     sampler.set_epoch(epoch); clips.set_epoch(epoch)
    ...     mice = {batch["mouse"] for batch in loader}  # each batch is one mouse's
    >>> sorted(mice)
    ['tiny-A', 'tiny-B']
    """

    def __init__(
        self,
        dataset: _ByMouse,
        batch_size: int,
        *,
        mode: Mode = "per_mouse",
        shuffle: bool = True,
        drop_last: bool = False,
        seed: int = 0,
        num_replicas: int | None = None,
        rank: int | None = None,
    ):
        if mode not in ("per_mouse", "mixed"):
            msg = (
                f"unknown mode={mode!r}; choose 'per_mouse' (one mouse per batch, cycling over "
                "mice) or 'mixed' (batches mix mice)."
            )
            raise ValueError(msg)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
            msg = f"batch_size={batch_size!r}; pass a positive number of items per batch."
            raise ValueError(msg)
        num_replicas, rank = _replicas(num_replicas, rank)
        self.groups = {m: np.asarray(ix, dtype=np.int64)
                       for m, ix in dataset.indices_by_mouse().items() if len(ix)}
        self.batch_size, self.mode, self.shuffle = batch_size, mode, shuffle
        self.drop_last, self.seed = drop_last, seed
        self.num_replicas, self.rank = num_replicas, rank
        self.epoch = 0
        if mode == "mixed":
            self.groups = {"*": np.concatenate(list(self.groups.values()))}
        per_pass = {m: self._batches_per_pass(len(ix)) for m, ix in self.groups.items()}
        empty = [m for m, n in per_pass.items() if n == 0]
        if empty:
            n = min(len(self.groups[m]) for m in empty)
            msg = (
                f"{empty} would get no batch: {n} items over {num_replicas} rank(s) is fewer "
                f"than batch_size={batch_size} per rank with drop_last=True; lower batch_size "
                "or pass drop_last=False."
            )
            raise ValueError(msg)
        self.steps = max(per_pass.values())

    def _batches_per_pass(self, n: int) -> int:
        per_rank = -(-n // self.num_replicas)
        return per_rank // self.batch_size if self.drop_last else -(-per_rank // self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        """Use the shuffles of ``epoch`` (the same on every rank)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.steps * len(self.groups)

    def _passes(self, g: int, indices: np.ndarray) -> Iterator[list[int]]:
        """This rank's batches of group ``g``: pass after pass, each a fresh shuffle."""
        for cycle in range(1 << 62):
            order = indices
            if self.shuffle:
                rng = np.random.default_rng([self.seed, self.epoch, g, cycle])
                order = rng.permutation(indices)
            pad = -len(order) % self.num_replicas
            order = np.concatenate([order, np.resize(order, pad)])[self.rank::self.num_replicas]
            stop = len(order) - len(order) % self.batch_size if self.drop_last else len(order)
            for b in range(0, stop, self.batch_size):
                yield order[b:b + self.batch_size].tolist()

    def __iter__(self) -> Iterator[list[int]]:
        streams = [self._passes(g, ix) for g, ix in enumerate(self.groups.values())]
        for _ in range(self.steps):
            for stream in streams:
                yield next(stream)


def _replicas(num_replicas: int | None, rank: int | None) -> tuple[int, int]:
    dist = torch.distributed
    initialised = dist.is_available() and dist.is_initialized()
    if num_replicas is None:
        num_replicas = dist.get_world_size() if initialised else 1
    if rank is None:
        rank = dist.get_rank() if initialised else 0
    if num_replicas < 1 or not 0 <= rank < num_replicas:
        msg = (
            f"rank={rank} with num_replicas={num_replicas}; the rank must be in "
            f"0..{num_replicas - 1} (and num_replicas >= 1)."
        )
        raise ValueError(msg)
    return num_replicas, rank
