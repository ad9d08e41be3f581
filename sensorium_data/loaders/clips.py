"""Torch datasets of clips (training) and whole trials (evaluation), read from the stores."""

from __future__ import annotations

import logging
import os
from bisect import bisect_right
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
import xarray as xr

from sensorium_data.errors import Fix, Message
from sensorium_data.loaders.batching import batch_buffer
from sensorium_data.loaders.local import ProcessLocal, window_start
from sensorium_data.loaders.mapped import layout_reason, open_trials
from sensorium_data.loaders.memory import Resident
from sensorium_data.loaders.normalize import Normalize, check_normalize
from sensorium_data.loaders.reader import Fetched, Windows
from sensorium_data.loaders.shaping import Shaping, check_canvas, check_frame_step
from sensorium_data.loaders.sources import Source, Tier, TrialSelection, open_sources, select_trials
from sensorium_data.remote import RemotePath

log = logging.getLogger(__name__)

class _Slot(NamedTuple):
    """Where one item is written in its batch: videos (C, F, H, W), responses (N, F),
    behaviour (4, F), views of the batch's tensors."""

    videos: torch.Tensor
    responses: torch.Tensor
    behavior: torch.Tensor


class _Window(NamedTuple):
    """Where item ``i`` reads: recording ``m``, its ``j``-th selected trial, frames
    ``start:start + frames``."""

    m: int
    j: int
    start: int
    frames: int


class ClipDataset(torch.utils.data.Dataset):
    """Random clips of the trials of one tier of one or more recordings, as torch tensors.

    Item ``i`` is one trial of one mouse (all mice's trials in turn, in the order of
    ``source``) cut to a window of ``frames`` frames that lies inside the trial's valid frames
    (``n_frames``), starting at a random frame. Reads the zarr store directly (chunk files,
    no dask), one reader per process, so it works in a :class:`torch.utils.data.DataLoader`
    with any number of workers.

    Parameters
    ----------
    source
        A Dataset from :func:`sensorium_data.open_mouse` (a selection of its trials is fine),
        a store path (or anything ``open_mouse`` accepts), or a list of them (one per mouse).
    tier
        The tier(s) whose trials to serve: ``"train"``, ``"oracle"``, ... , a list of tiers, or
        None for every trial. A test tier with withheld responses is allowed: its items'
        responses are NaN.
    frames
        Frames per clip, or None for whole trials (``n_frames`` each; batch them with
        :func:`collate`, which pads). Trials shorter than ``frames`` are left out.
    normalize
        ``"official"`` (the competition's per-frame statistics, as the starter kit's
        NeuroNormalizer applies them), ``"per_neuron"`` (statistics averaged over frames: one
        response scale per neuron), or None (raw values). See ``docs/loading.md``.
    behavior_channels
        Add pupil dilation and running speed as two video channels, broadcast over the image.
    pupil_channels
        Add pupil position (x, y) as two more video channels.
    in_memory
        Load the tier's valid frames into RAM once (normalized, float32, about
        ``n_frames x (neurons + 36 x 64 + 4) x 4`` bytes per trial); items are then slices.
    seed
        With an int, the window of item ``i`` depends only on ``(seed, epoch, i)``: the same in
        every run and worker; call :meth:`set_epoch` each epoch for new windows. With None,
        every read draws a fresh random window (not reproducible).
    frame_step
        A clip takes every ``frame_step``-th frame: ``frames`` frames spanning
        ``(frames - 1) * frame_step + 1`` of the trial (DwiseNeuro: 16 at step 2). Trials
        shorter than the span are left out. Whole trials are always served at step 1.
    canvas
        Centre the frames on a canvas of this side (or (height, width)), zero around them;
        the behaviour and pupil channels fill it whole. None keeps 36 x 64.
    relu_responses
        Responses below zero become zero (DwiseNeuro's targets are ``relu(responses)``).

    Attributes
    ----------
    mice : list of str
        The recordings' names (``ds.attrs["mouse"]``), in the order of ``source``.
    n_neurons : dict of str to int
        Neurons per mouse.
    in_channels : int
        Video channels: 1 + 2 (behaviour) + 2 (pupil).

    Notes
    -----
    An item is a dict: ``videos`` float32 (C, F, 36, 64), grayscale first, then pupil
    dilation and running speed, then pupil x and y (as enabled); ``responses`` float32 (N, F);
    ``behavior`` float32 (4, F), all four variables, normalized; ``mouse`` str; ``trial`` int
    (the trial coordinate); ``start`` int (first frame of the window). With ``in_memory`` in
    the main process, ``responses`` and ``behavior`` are views of the dataset's memory: read
    them, do not modify them in place (:func:`collate` copies).

    Examples
    --------
    >>> import sensorium_data as sd
    >>> clips = sd.ClipDataset(["F.zarr", "G.zarr"], frames=80, seed=0)  # doctest: +SKIP
    >>> item = clips[0]  # doctest: +SKIP
    >>> item["videos"].shape, item["responses"].shape  # doctest: +SKIP
    (torch.Size([3, 80, 36, 64]), torch.Size([7863, 80]))

    The same on simulated recordings (:func:`sensorium_data.simulate`, 16 neurons):

    >>> clips = sd.ClipDataset(tiny[:2], frames=30, seed=0)
    >>> item = clips[0]
    >>> item["videos"].shape, item["responses"].shape, item["mouse"]
    (torch.Size([3, 30, 36, 64]), torch.Size([16, 30]), 'tiny-A')
    """

    def __init__(
        self,
        source: Source | Sequence[Source],
        *,
        tier: Tier = "train",
        frames: int | None = 80,
        normalize: Normalize = "official",
        behavior_channels: bool = True,
        pupil_channels: bool = False,
        in_memory: bool = False,
        seed: int | None = None,
        frame_step: int = 1,
        canvas: int | tuple[int, int] | None = None,
        relu_responses: bool = False,
    ):
        check_normalize(normalize)
        self.shaping = Shaping(check_frame_step(frame_step), check_canvas(canvas),
                               bool(relu_responses))
        integer = isinstance(frames, int | np.integer) and not isinstance(frames, bool)
        if frames is not None and (not integer or frames <= 0):
            msg = (
                f"frames={frames!r}; pass a positive number of frames per clip (the baselines "
                "use 80), or frames=None for whole trials."
            )
            raise ValueError(msg)
        datasets = open_sources(source)
        self._selections: list[TrialSelection] = [select_trials(ds, tier, normalize)
                                                  for ds in datasets]
        self._datasets: dict[str, xr.Dataset] | None = {
            rec.mouse: ds for rec, ds in zip(self._selections, datasets, strict=True)}
        self.tier, self.normalize, self.seed = tier, normalize, seed
        self.frames = None if frames is None else int(frames)
        self.span = None if frames is None else self.shaping.span(int(frames))
        self.behavior_channels, self.pupil_channels = behavior_channels, pupil_channels
        for rec in self._selections:
            self._fit(rec)
        self._mapped = [self._can_map(rec) for rec in self._selections]
        self._offsets = np.cumsum([0, *(len(rec.trials) for rec in self._selections)]).tolist()
        self._epoch = torch.zeros(1, dtype=torch.int64).share_memory_()  # seen by all workers
        self._local: ProcessLocal | None = None
        self._resident: list[Resident] | None = None
        if in_memory:
            self._resident = [Resident(rec, *self._readers(m))
                              for m, rec in enumerate(self._selections)]
        log.info("%r", self)

    @staticmethod
    def _can_map(rec: TrialSelection) -> bool:
        """Whether the store of ``rec`` is in the mapped layout; says so when it is not."""
        if isinstance(rec.store, RemotePath):  # only local files can be memory-mapped
            log.warning("%s: %s is read through zarr over the network (the slow path); "
                        "%s copies it to the local cache for fast training", rec.mouse,
                        rec.store, Message(Fix(
                            f"sensorium_data.remote.pull({str(rec.store)!r}, "
                            f"<cache>/stores/{rec.store.name})",
                            f"`sensorium cache pull {rec.store}`")))
            return False
        reason = layout_reason(rec.store)
        if reason is not None:
            log.warning("%s: %s; clips are read through the slower decoding path", rec.mouse,
                        reason)
        return reason is None

    def _fit(self, rec: TrialSelection) -> None:
        """Leave out trials shorter than the clips; warn about withheld responses."""
        canvas = self.shaping.canvas
        if canvas is not None and (rec.height > canvas[0] or rec.width > canvas[1]):
            msg = (f"canvas={canvas} is smaller than the frames of {rec.mouse} ({rec.height} x "
                   f"{rec.width}); pass a canvas of at least that size, or None.")
            raise ValueError(msg)
        if self.span is not None:
            long_enough = rec.n_frames >= self.span
            if not long_enough.any():
                longest = int(rec.n_frames.max())
                step = self.shaping.frame_step
                at = f" at frame_step={step} (a span of {self.span})" if step > 1 else ""
                fix = (f"frames <= {longest}" if step == 1 else
                       f"fewer frames or a smaller frame_step (span = (frames - 1) * frame_step "
                       f"+ 1 <= {longest})")
                msg = (
                    f"frames={self.frames}{at} is longer than every trial of tier "
                    f"{self.tier!r} of {rec.mouse} (the longest has {longest} valid frames); "
                    f"pass {fix}, or frames=None for whole trials."
                )
                raise ValueError(msg)
            if not long_enough.all():
                log.info("%s: %d trials shorter than %d frames left out", rec.mouse,
                         int((~long_enough).sum()), self.span)
                rec.keep(long_enough)
        if not rec.labelled.any():
            log.warning("%s: the responses of tier %r were withheld; items' responses are NaN",
                        rec.mouse, self.tier)

    # -- what the trainer asks -------------------------------------------------------------

    @property
    def mice(self) -> list[str]:
        """The recordings' names, in the order of ``source``."""
        return [rec.mouse for rec in self._selections]

    @property
    def datasets(self) -> dict[str, xr.Dataset]:
        """The opened Dataset of each mouse (reopened from the store in worker processes)."""
        if self._datasets is None:
            from sensorium_data.dataset import open_store

            self._datasets = {rec.mouse: open_store(rec.store) for rec in self._selections}
        return self._datasets

    @property
    def n_neurons(self) -> dict[str, int]:
        """Neurons per mouse."""
        return {rec.mouse: rec.n_neurons for rec in self._selections}

    @property
    def in_channels(self) -> int:
        """Video channels of an item: 1 + 2 (behaviour) + 2 (pupil), as enabled."""
        return 1 + 2 * self.behavior_channels + 2 * self.pupil_channels

    def indices_by_mouse(self) -> dict[str, np.ndarray]:
        """The dataset indices of each mouse's items."""
        return {rec.mouse: np.arange(self._offsets[m], self._offsets[m + 1])
                for m, rec in enumerate(self._selections)}

    def precision(self, mouse: str) -> np.ndarray:
        """The response scale applied to ``mouse``: (neuron, frame) float32.

        ``responses = raw * precision``, so predictions divided by it are in raw units. Ones
        for ``normalize=None``.
        """
        return np.array(self._selection(mouse).scaling.precision)

    def set_epoch(self, epoch: int) -> None:
        """Draw new windows: with a seed, item ``i``'s window depends on ``(seed, epoch, i)``.

        The epoch lives in shared memory, so workers (also persistent ones) see it; call it
        before iterating the DataLoader of that epoch.
        """
        self._epoch[0] = int(epoch)

    def _selection(self, mouse: str) -> TrialSelection:
        for rec in self._selections:
            if rec.mouse == mouse:
                return rec
        msg = f"unknown mouse {mouse!r}; this dataset has {self.mice}."
        raise KeyError(msg)

    # -- items ---------------------------------------------------------------------------------

    def __len__(self) -> int:
        return self._offsets[-1]

    def __getitem__(self, index: int) -> dict[str, Any]:
        window = self._window(index)
        return self._item(window, self._fetch(window))

    def __getitems__(self, indices: Sequence[int]) -> list[dict[str, Any]]:
        """The items of a batch (a DataLoader calls this with each batch's indices): the reads
        of all its items are started first, so that the disk works while items decode."""
        windows = [self._window(i) for i in indices]
        fetched = [self._fetch(window) for window in windows]
        slots = self._slots(windows)
        return [self._item(w, f, s) for w, f, s in zip(windows, fetched, slots, strict=True)]

    def _slots(self, windows: list[_Window]) -> list[_Slot | None]:
        """Items of one mouse and one length are written straight into their batch (which
        :func:`collate` then hands on without copying): one copy per clip from the store."""
        first = windows[0]
        same = all(w.m == first.m and w.frames == first.frames for w in windows)
        if self._resident is not None or not same or self.shaping != Shaping():
            return [None] * len(windows)  # (a shaped item is made apart, then copied)
        rec, n, f = self._selections[first.m], len(windows), first.frames
        videos = batch_buffer((n, self.in_channels, f, rec.height, rec.width))
        behavior = batch_buffer((n, 4, f))
        if self._mapped[first.m]:  # frames first in memory, as on disk: (B, N, F) strided
            responses = batch_buffer((n, f, rec.n_neurons)).transpose(1, 2)
        else:
            responses = batch_buffer((n, rec.n_neurons, f))
        return [_Slot(videos[b], responses[b], behavior[b]) for b in range(n)]

    def _window(self, index: int) -> _Window:
        n_items = len(self)
        if not -n_items <= index < n_items:
            msg = f"index {index} is out of range for a dataset of {n_items} items."
            raise IndexError(msg)
        index = int(index) % n_items
        m = bisect_right(self._offsets, index) - 1
        j = index - self._offsets[m]
        n = int(self._selections[m].n_frames[j])
        frames = self.span or n
        return _Window(m, j, self._start(index, n - frames + 1), frames)

    def _fetch(self, window: _Window) -> tuple[Fetched, Fetched] | None:
        """Start the reads of a window's chunk files on this process's threads (videos first:
        they are decoded first)."""
        if self._resident is not None:
            return None
        m, j, start, frames = window
        if self._mapped[m]:
            return {}, {}  # nothing to read ahead: the copy out of the map reads the pages
        pos, pool = int(self._selections[m].positions[j]), self._process().pool
        videos, responses = self._readers(m)
        return (videos.fetch(pos, start, start + frames, pool),
                responses.fetch(pos, start, start + frames, pool))

    def _item(self, window: _Window, fetched: tuple[Fetched, Fetched] | None,
              slot: _Slot | None = None) -> dict[str, Any]:
        m, j, start, frames = window
        rec = self._selections[m]
        if self._resident is not None:
            videos, responses, behavior = self._from_memory(self._resident[m], rec, j, start,
                                                            frames)
        else:
            assert fetched is not None  # _fetch reads from the store whenever not resident
            videos, responses, behavior = self._from_store(m, j, start, frames, fetched, slot)
        tensors: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
        if slot is not None:  # written straight into the batch (no shaping: see _slots)
            tensors = (slot[0], slot[1], slot[2])
        else:
            videos, responses, behavior = self.shaping(videos, responses, behavior)
            tensors = (torch.from_numpy(videos), torch.from_numpy(responses),
                       torch.from_numpy(behavior))
        return {"videos": tensors[0], "responses": tensors[1], "behavior": tensors[2],
                "mouse": rec.mouse, "trial": int(rec.trials[j]), "start": start}

    def _start(self, index: int, n_starts: int) -> int:
        if n_starts <= 1:
            return 0
        if self.seed is not None:
            return window_start(self.seed, int(self._epoch[0]), index, n_starts)
        local = self._process()
        if local.rng is None:
            local.rng = np.random.default_rng()  # fresh entropy in each process
        return int(local.rng.integers(n_starts))

    def _process(self) -> ProcessLocal:
        if self._local is None or self._local.pid != os.getpid():
            self._local = ProcessLocal(len(self._selections))
        return self._local

    def _readers(self, m: int) -> tuple[Windows, Windows]:
        """This process's readers of recording ``m``: opened on first use in each process."""
        local = self._process()
        readers = local.readers[m]
        if readers is None:
            rec, mapped = self._selections[m], self._mapped[m]
            # which store positions have chunk files: every trial with frames, for responses
            # only the labelled ones (withheld responses are never written)
            has_frames = np.zeros(int(rec.positions.max()) + 1, bool)
            has_frames[rec.positions] = rec.n_frames > 0
            labelled = np.zeros_like(has_frames)
            labelled[rec.positions] = rec.labelled & (rec.n_frames > 0)
            readers = (open_trials(rec.store, "videos", 1, has_frames, mapped),
                       open_trials(rec.store, "responses", 2, labelled, mapped))
            local.readers[m] = readers
        return readers

    def _precision_t(self, m: int) -> np.ndarray:
        """The response precision of recording ``m``, time-major (T, N), made once per
        process."""
        local = self._process()
        precision = local.precision_t[m]
        if precision is None:
            precision = np.ascontiguousarray(self._selections[m].scaling.precision.T)
            local.precision_t[m] = precision
        return precision

    def _videos(self, rec: TrialSelection, frames: int) -> np.ndarray:
        return np.empty((self.in_channels, frames, rec.height, rec.width), np.float32)

    def _channels(self, videos: np.ndarray, behavior: np.ndarray) -> None:
        """Broadcast behaviour (4, F) into the video channels after the grayscale one."""
        rows = [0, 1] * self.behavior_channels + [2, 3] * self.pupil_channels
        videos[1:] = behavior[rows, :, None, None]

    def _from_store(self, m: int, j: int, start: int, frames: int,
                    fetched: tuple[Fetched, Fetched], slot: _Slot | None = None
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Normalize the window into new arrays, or into ``slot`` (its place in the batch)."""
        rec = self._selections[m]
        video_reader, response_reader = self._readers(m)
        pos, stop = int(rec.positions[j]), start + frames
        if slot is None:
            videos = self._videos(rec, frames)
            behavior = rec.behavior[j, :, start:stop].copy()  # (4, F)
            responses = np.empty((rec.n_neurons, frames), np.float32)
        else:
            videos, responses, behavior = (t.numpy() for t in slot)
            np.copyto(behavior, rec.behavior[j, :, start:stop])
        for at, piece in video_reader.parts(pos, start, stop, fetched[0]):  # (f, height, width)
            rec.scaling.videos(piece, start + at, videos[0, at:at + len(piece)])
        self._channels(videos, behavior)
        # time-major when the store and the batch are: every operand is then read in order
        precision = self._precision_t(m).T if self._mapped[m] else rec.scaling.precision
        for at, piece in response_reader.parts(pos, start, stop, fetched[1]):  # (N, f)
            f = piece.shape[1]
            np.multiply(piece, precision[:, start + at:start + at + f],
                        out=responses[:, at:at + f])
        return videos, responses, behavior

    def _from_memory(self, resident: Resident, rec: TrialSelection, j: int, start: int, frames: int
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        clip, responses, behavior = resident.window(j, start, frames)
        videos = self._videos(rec, frames)
        videos[0] = clip
        self._channels(videos, behavior)
        if torch.utils.data.get_worker_info() is not None:
            # a worker sends items to the main process; a view would send the whole memory
            responses, behavior = responses.copy(), behavior.copy()
        return videos, responses, behavior

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_local"] = None  # readers are opened again by each process
        state["_datasets"] = None
        return state

    def __repr__(self) -> str:
        size = f"clips of {self.frames} frames" if self.frames else "whole trials"
        return (f"{type(self).__name__}({len(self.mice)} mice, {len(self)} {size}, "
                f"tier={self.tier!r}, normalize={self.normalize!r}, "
                f"in_channels={self.in_channels}, in_memory={self._resident is not None})")


class TrialDataset(ClipDataset):
    """Whole trials for evaluation and prediction: :class:`ClipDataset` with ``frames=None``.

    Item ``i`` is trial ``i`` (mice in the order of ``source``), all its valid frames, with
    ``length`` (its ``n_frames``) and ``start`` 0. Batch with :func:`collate`, which pads to
    the longest trial of the batch.

    Parameters
    ----------
    source, normalize, behavior_channels, pupil_channels, in_memory, canvas, relu_responses
        As for :class:`ClipDataset` (whole trials keep every frame).
    tier
        The tier(s) to serve, default ``"oracle"`` (the validation tier of 2023); None for
        every trial.

    Examples
    --------
    >>> import torch, sensorium_data as sd
    >>> trials = sd.TrialDataset("F.zarr", tier="oracle")  # doctest: +SKIP
    >>> trials = sd.TrialDataset(tiny[0], tier="oracle")  # or a simulated recording
    >>> loader = torch.utils.data.DataLoader(trials, batch_size=4, collate_fn=sd.collate)
    >>> batch = next(iter(loader))
    >>> batch["length"]  # F's oracle trials have 300 frames; tiny-A's two, 150
    tensor([150, 150])
    """

    def __init__(
        self,
        source: Source | Sequence[Source],
        *,
        tier: Tier = "oracle",
        normalize: Normalize = "official",
        behavior_channels: bool = True,
        pupil_channels: bool = False,
        in_memory: bool = False,
        canvas: int | tuple[int, int] | None = None,
        relu_responses: bool = False,
    ):
        super().__init__(source, tier=tier, frames=None, normalize=normalize,
                         behavior_channels=behavior_channels, pupil_channels=pupil_channels,
                         in_memory=in_memory, seed=0, canvas=canvas,
                         relu_responses=relu_responses)

    def _item(self, window: _Window, fetched: tuple[Fetched, Fetched] | None,
              slot: _Slot | None = None) -> dict[str, Any]:
        item = super()._item(window, fetched, slot)
        item["length"] = window.frames
        return item
