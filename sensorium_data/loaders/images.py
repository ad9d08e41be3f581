"""Torch dataset of the 2022 (static image) recordings: one item per trial, as the starter kit.

The starter kit (``sensorium.datasets.static_loaders``) reads one ``.npy`` file per trial and
key, normalizes it, appends the behaviour as constant image channels and rescales the image
with scikit-image, every time an item is read. Here the selected trials of each recording are
read from its store once, normalized and rescaled in blocks (the same numbers; see
:mod:`sensorium_data.rescale`) and kept in memory, so an item is three slices. At the
starter kit's scale 0.25 that is ``36 x 64 x 4`` bytes per image plus ``4`` bytes per neuron
per trial: about 190 MB for the 4,500 train trials of an 8,000-neuron mouse.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import xarray as xr
import zarr

from sensorium_data.rescale import Rescaler
from sensorium_data.scale import official_precision
from sensorium_data.store.chunks import Chunks, read_region
from sensorium_data.store.layout import check_schema, quiet_zarr

log = logging.getLogger(__name__)

Track = Literal["sensorium", "sensorium+"]
ImageNormalize = Literal["official"] | None
TRACKS: tuple[Track, ...] = ("sensorium", "sensorium+")
BEHAVIOR_CHANNELS = 3
"""Pupil dilation, its derivative and running speed: SENSORIUM+'s extra image channels."""
ZEROED_2022 = "26872-17-20"
"""The SENSORIUM track's mouse: the release ships its behaviour and pupil position as zeros."""
BLOCK = 256  # trials read and rescaled at once


@dataclass
class _Mouse:
    """The selected trials of one recording, normalized and rescaled, in memory."""

    name: str
    trials: np.ndarray  # (n,) int64, the trial coordinate
    image_id: np.ndarray  # (n,) str
    images: torch.Tensor  # (n, H, W) float32
    responses: torch.Tensor  # (n, N) float32, NaN where withheld
    behavior: torch.Tensor  # (n, 3) float32
    pupil_center: torch.Tensor  # (n, 2) float32
    precision: np.ndarray  # (N,) float64


class ImageDataset(torch.utils.data.Dataset):
    """The trials of one tier of one or more 2022 recordings, as torch tensors.

    Item ``i`` is one trial of one mouse (all trials of the first mouse, then the next, in the
    order of ``source``), with the image rescaled to the resolution asked for, exactly as the
    starter kit's ``ScaleInputs`` (scikit-image ``rescale``, linear, mirrored edges) does it.
    Works with :class:`MouseBatchSampler` and in a DataLoader with any number of workers.

    Parameters
    ----------
    source
        A 2022 Dataset from :func:`sensorium_data.open_mouse` (a selection of its trials is
        fine), a store path (or anything ``open_mouse`` accepts), or a list of them.
    tier
        ``"train"``, ``"validation"``, ``"test"``, ``"final_test"``, a list of them, or None
        for every trial. Withheld responses (the competition mice's test tiers) are NaN.
    scale
        Image scale: 0.25 (the starter kit's training resolution, 36 x 64 from 144 x 256),
        1 for the stored resolution, any positive number.
    track
        ``"sensorium"``: the image is the only channel. ``"sensorium+"``: the three behaviour
        variables (pupil dilation, its derivative, running speed) follow as constant
        channels, and the recording must have behaviour and pupil position (the shifter
        reads ``pupil_center``); 26872-17-20 does not.
    normalize
        ``"official"`` (the starter kit's NeuroNormalizer with the shipped statistics: images
        ``(x - mean) / std``, behaviour ``x / std``, pupil position ``(x - mean) / std``,
        responses ``x * official_precision(std)``) or None (raw values).

    Attributes
    ----------
    mice : list of str
    n_neurons : dict of str to int
    in_channels : int
        1, or 4 for ``"sensorium+"``.
    image_shape : tuple of int
        (height, width) of the items' images.

    Notes
    -----
    An item is a dict: ``images`` float32 (C, H, W); ``responses`` float32 (N,);
    ``behavior`` float32 (3,) and ``pupil_center`` float32 (2,), normalized; ``mouse`` str;
    ``trial`` int (the trial coordinate); ``image_id`` str. Batch them with
    :func:`collate_images` (or :func:`collate`, which hands image items to it).

    Examples
    --------
    >>> import torch, sensorium_data as sd
    >>> images = sd.ImageDataset(["26872-17-20", "27204-5-13"], scale=0.25)  # doctest: +SKIP
    >>> images = sd.ImageDataset(static2022, scale=0.5)  # simulated ones, half their size
    >>> images.mice, images[0]["images"].shape
    (['static2022-A', 'static2022-B'], torch.Size([1, 36, 64]))
    >>> sampler = sd.MouseBatchSampler(images, batch_size=4)
    >>> loader = torch.utils.data.DataLoader(images, batch_sampler=sampler,
    ...                                      collate_fn=sd.collate_images)
    >>> next(iter(loader))["images"].shape
    torch.Size([4, 1, 36, 64])
    """

    def __init__(
        self,
        source: xr.Dataset | str | os.PathLike[str] | Sequence[xr.Dataset | str | os.PathLike[str]],
        *,
        tier: str | Sequence[str] | None = "train",
        scale: float = 0.25,
        track: Track = "sensorium",
        normalize: ImageNormalize = "official",
    ):
        if track not in TRACKS:
            msg = (f"unknown track={track!r}; choose 'sensorium' (images only) or 'sensorium+' "
                   "(behaviour as 3 extra image channels, pupil position for the shifter).")
            raise ValueError(msg)
        if normalize not in ("official", None):
            msg = (f"unknown normalize={normalize!r} for 2022 images; choose 'official' (the "
                   "starter kit's NeuroNormalizer with the shipped statistics) or None (raw).")
            raise ValueError(msg)
        if isinstance(scale, bool) or not isinstance(scale, int | float) or not (
                math.isfinite(scale) and scale > 0):
            msg = (f"scale={scale!r}; pass a positive image scale, e.g. 0.25 (the starter "
                   "kit's 36 x 64) or 1 (the stored 144 x 256).")
            raise ValueError(msg)
        self.tier, self.scale, self.track, self.normalize = tier, float(scale), track, normalize
        datasets = _open_static(source)
        self._mice = [self._load(ds) for ds in datasets]
        shapes = {tuple(m.images.shape[1:]) for m in self._mice}
        if len(shapes) > 1:
            msg = (f"the recordings' images have different shapes at scale {scale}: "
                   f"{sorted(shapes)}; pass recordings of one image size.")
            raise ValueError(msg)
        self.image_shape: tuple[int, int] = shapes.pop()  # type: ignore[assignment]
        self._offsets = np.cumsum([0, *(len(m.trials) for m in self._mice)]).tolist()
        log.info("%r", self)

    def __repr__(self) -> str:
        return (f"ImageDataset({len(self)} trials of {self.mice}, tier={self.tier!r}, "
                f"images {self.in_channels} x {self.image_shape[0]} x {self.image_shape[1]}, "
                f"normalize={self.normalize!r})")

    # -- what the trainer asks -------------------------------------------------------------

    @property
    def mice(self) -> list[str]:
        """The recordings' names, in the order of ``source``."""
        return [m.name for m in self._mice]

    @property
    def n_neurons(self) -> dict[str, int]:
        """Neurons per mouse."""
        return {m.name: int(m.responses.shape[1]) for m in self._mice}

    @property
    def in_channels(self) -> int:
        """Image channels of an item: 1, plus 3 behaviour channels for ``"sensorium+"``."""
        return 1 + BEHAVIOR_CHANNELS * (self.track == "sensorium+")

    def indices_by_mouse(self) -> dict[str, np.ndarray]:
        """The dataset indices of each mouse's items (for :class:`MouseBatchSampler`)."""
        return {m.name: np.arange(self._offsets[i], self._offsets[i + 1])
                for i, m in enumerate(self._mice)}

    def precision(self, mouse: str) -> np.ndarray:
        """The response scale applied to ``mouse``, (neuron,): ``responses = raw * precision``.

        Ones for ``normalize=None``; with ``"official"`` it is the leaderboard's scale, so
        predictions of a model trained on these items are in the submission's units.
        """
        for m in self._mice:
            if m.name == mouse:
                return m.precision.copy()
        msg = f"unknown mouse {mouse!r}; this dataset has {self.mice}."
        raise KeyError(msg)

    def set_epoch(self, epoch: int) -> None:
        """Nothing changes between epochs (items are whole trials); kept for the trainer."""

    # -- items ---------------------------------------------------------------------------------

    def __len__(self) -> int:
        return self._offsets[-1]

    def __getitem__(self, index: int) -> dict[str, Any]:
        n = len(self)
        if not -n <= index < n:
            msg = f"index {index} is out of range for {n} items."
            raise IndexError(msg)
        index %= n
        m = int(np.searchsorted(self._offsets, index, side="right")) - 1
        mouse, j = self._mice[m], index - self._offsets[m]
        image = mouse.images[j][None]  # (1, H, W)
        if self.track == "sensorium+":
            channels = mouse.behavior[j][:, None, None].expand(-1, *self.image_shape)
            image = torch.cat([image, channels])  # (4, H, W)
        return {
            "images": image,
            "responses": mouse.responses[j],
            "behavior": mouse.behavior[j],
            "pupil_center": mouse.pupil_center[j],
            "mouse": mouse.name,
            "trial": int(mouse.trials[j]),
            "image_id": str(mouse.image_id[j]),
        }

    # -- reading -------------------------------------------------------------------------------

    def _load(self, ds: xr.Dataset) -> _Mouse:
        name = str(ds.attrs["mouse"])
        store = Path(ds.attrs["store"])
        chosen = _select(ds, self.tier, name)
        positions = _positions(ds, store, chosen, name)
        stats = ds.sensorium.statistics
        behavior = np.asarray(_read(store, "behavior", positions), np.float64)  # (n, 5)
        if self.track == "sensorium+":
            _check_behavior(name, ds, behavior)
        n_neurons = int(ds.sizes["neuron"])
        if self.normalize == "official":
            s = {k: stats[k].sel(statistic=["mean", "std"]).values.astype(np.float64)
                 for k in ("images", "responses", "behavior")}
            image_mean, image_std = s["images"]
            precision = official_precision(s["responses"][1])
            b_mean, b_std = s["behavior"]
            b_mean = np.concatenate([np.zeros(3), b_mean[3:]])  # behaviour is not centred
        else:
            image_mean, image_std = np.zeros(1), np.ones(1)
            precision = np.ones(n_neurons)
            b_mean, b_std = np.zeros(5), np.ones(5)
        with np.errstate(divide="ignore"):  # a zeroed variable (std 0) stays 0
            b_scale = np.where(b_std > 0, 1 / b_std, 0.0)
        behavior = (behavior - b_mean) * b_scale
        height, width = ds.sizes["height"], ds.sizes["width"]
        rescale = Rescaler((height, width), self.scale)
        images = np.empty((len(positions), *rescale.shape), np.float32)
        responses = np.empty((len(positions), n_neurons), np.float32)
        for b in range(0, len(positions), BLOCK):
            block = positions[b:b + BLOCK]
            raw = _read(store, "images", block).astype(np.float64)  # (b, height, width)
            images[b:b + BLOCK] = rescale((raw - image_mean) / image_std)
            responses[b:b + BLOCK] = _read(store, "responses", block) * precision
        return _Mouse(
            name=name, trials=ds["trial"].values[chosen].astype(np.int64),
            image_id=ds["image_id"].values[chosen].astype(str),
            images=torch.from_numpy(images), responses=torch.from_numpy(responses),
            behavior=torch.from_numpy(behavior[:, :3].astype(np.float32)),
            pupil_center=torch.from_numpy(behavior[:, 3:].astype(np.float32)),
            precision=precision,
        )


def collate_images(items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Stack :class:`ImageDataset` items into a batch.

    Returns
    -------
    dict
        ``images`` (B, C, H, W), ``behavior`` (B, 3), ``pupil_center`` (B, 2); ``responses``
        (B, N), or a list of (N_i,) tensors if the items come from different mice; ``mouse``
        a str if all items share it, else a list; ``trial`` LongTensor (B,); ``image_id``
        list of str.

    Examples
    --------
    >>> import torch
    >>> a = {"images": torch.ones(1, 36, 64), "responses": torch.ones(5),
    ...      "behavior": torch.ones(3), "pupil_center": torch.ones(2), "mouse": "A",
    ...      "trial": 7, "image_id": "12"}
    >>> batch = collate_images([a, dict(a, trial=9)])
    >>> batch["images"].shape, batch["responses"].shape, batch["mouse"], batch["trial"].tolist()
    (torch.Size([2, 1, 36, 64]), torch.Size([2, 5]), 'A', [7, 9])
    """
    if not items:
        msg = "collate_images got no items; a batch needs at least one."
        raise ValueError(msg)
    batch: dict[str, Any] = {key: torch.stack([item[key] for item in items])
                             for key in ("images", "behavior", "pupil_center")}
    mice = [str(item["mouse"]) for item in items]
    responses = [item["responses"] for item in items]
    if len(set(mice)) == 1:
        batch["responses"], batch["mouse"] = torch.stack(responses), mice[0]
    else:  # mice differ in their number of neurons
        batch["responses"], batch["mouse"] = [r.clone() for r in responses], mice
    batch["trial"] = torch.tensor([int(item["trial"]) for item in items], dtype=torch.long)
    batch["image_id"] = [str(item["image_id"]) for item in items]
    return batch


# -- helpers ---------------------------------------------------------------------------------


def _open_static(source: Any) -> list[xr.Dataset]:
    """The 2022 Datasets of ``source``; a 2023 (video) recording is an error that says so."""
    from sensorium_data.dataset import open_mouse

    items = [source] if isinstance(source, xr.Dataset | str | os.PathLike) else list(source)
    if not items:
        msg = "source is empty; pass a 2022 Dataset from open_mouse, a store path, or a list."
        raise ValueError(msg)
    datasets = [item if isinstance(item, xr.Dataset) else open_mouse(item, progress=False)
                for item in items]
    names = []
    for ds in datasets:
        name = str(ds.attrs.get("mouse", ds.attrs.get("store", "?")))
        if not ds.attrs.get("store"):
            msg = (f"the Dataset of {name} was not opened with sensorium_data.open_mouse, so it "
                   "has no store to read from; pass open_mouse(...) or the store's path.")
            raise ValueError(msg)
        check_schema(ds.attrs["store"], ds.attrs)
        if "images" not in ds or "frame" in ds.dims:
            msg = (f"{name} is a SENSORIUM {ds.attrs.get('competition', '2023')} recording of "
                   "videos; ImageDataset reads 2022 (static image) recordings. Use "
                   "sensorium_data.ClipDataset for videos, or pass a 2022 recording such as "
                   "'26872-17-20'.")
            raise ValueError(msg)
        names.append(name)
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        msg = (f"recording(s) {twice} given more than once; each mouse gets one readout, so "
               "pass each recording once.")
        raise ValueError(msg)
    return datasets


def _select(ds: xr.Dataset, tier: str | Sequence[str] | None, name: str) -> np.ndarray:
    """Positions (in ``ds``) of the trials of ``tier``."""
    tiers = ds["tier"].values.astype(str)
    if tier is None:
        return np.arange(len(tiers))
    chosen = [tier] if isinstance(tier, str) else list(tier)
    positions = np.flatnonzero(np.isin(tiers, chosen))
    if not len(positions):
        have = ", ".join(f"{t} ({n})" for t, n in ds.sensorium.tiers_with_trials.items())
        msg = (f"{name} has no trials of tier {tier!r}; its tiers (trials): {have}. Pass one "
               "of them as tier=, a list of them, or tier=None for every trial.")
        raise ValueError(msg)
    return positions


def _positions(ds: xr.Dataset, store: Path, chosen: np.ndarray, name: str) -> np.ndarray:
    """Rows of the store holding the Dataset's trials at ``chosen``."""
    with quiet_zarr():
        store_trials = np.asarray(zarr.open_array(store / "trial", mode="r")[:])
    trials = ds["trial"].values[chosen].astype(np.int64)
    order = np.argsort(store_trials)
    found = np.searchsorted(store_trials, trials, sorter=order).clip(0, len(order) - 1)
    positions = order[found]
    if not np.array_equal(store_trials[positions], trials):
        msg = f"the Dataset of {name} has trials that its store {store} does not."
        raise ValueError(msg)
    return positions.astype(np.int64)


def _read(store: Path, name: str, positions: np.ndarray) -> np.ndarray:
    """Rows ``positions`` of ``<store>/<name>``, read over their span (damaged chunks raise)."""
    with quiet_zarr():
        array = zarr.open_array(store / name, mode="r")
    lo, hi = int(positions.min()), int(positions.max()) + 1
    region = (slice(lo, hi), *(slice(0, n) for n in array.shape[1:]))
    return read_region(array, Chunks(store, name), region)[positions - lo]


def _check_behavior(name: str, ds: xr.Dataset, behavior: np.ndarray) -> None:
    """SENSORIUM+ needs behaviour and pupil position; a zeroed recording is an error."""
    zeroed = [what for what, cols in (("behaviour", slice(0, 3)), ("pupil position", slice(3, 5)))
              if not np.any(behavior[:, cols])]
    if not zeroed:
        return
    known = ds.attrs.get("data_key") == ZEROED_2022 or ZEROED_2022 in name
    why = (f"the release ships them as zeros for {ZEROED_2022}, the SENSORIUM track's mouse"
           if known else "the recording has none")
    msg = (f"track='sensorium+' needs behaviour and pupil position, but the {' and '.join(zeroed)} "
           f"of {name} are all zero ({why}). Use track='sensorium' for this mouse (no behaviour "
           "channels, no shifter), or a mouse with behaviour such as 27204-5-13.")
    raise ValueError(msg)
