"""What a training view needs of each recording, resolved once in the main process."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import xarray as xr
import zarr

from sensorium_data.loaders.normalize import Normalize, Scaling, scaling
from sensorium_data.remote import Location, as_location, zarr_target
from sensorium_data.store.chunks import read_array
from sensorium_data.store.layout import check_schema, quiet_zarr

log = logging.getLogger(__name__)

Source = xr.Dataset | str | os.PathLike[str]
Tier = str | Sequence[str] | None


@dataclass
class TrialSelection:
    """The selected trials of one recording and its normalization, in memory (small).

    ``positions`` index the store's trial axis; ``behavior`` (trial, 4, frame) is the
    normalized behaviour of the selected trials, kept whole because it is small.
    """

    mouse: str
    store: Location
    trials: np.ndarray
    positions: np.ndarray
    n_frames: np.ndarray
    labelled: np.ndarray
    n_neurons: int
    frames: int
    height: int
    width: int
    scaling: Scaling
    behavior: np.ndarray

    def keep(self, mask: np.ndarray) -> None:
        """Keep only the selected trials where ``mask`` is True."""
        for name in ("trials", "positions", "n_frames", "labelled", "behavior"):
            setattr(self, name, getattr(self, name)[mask])


def open_sources(source: Source | Sequence[Source]) -> list[xr.Dataset]:
    """Datasets of ``source``: a Dataset from ``open_mouse``, a store path (or anything
    :func:`sensorium_data.open_mouse` accepts), or a list of them."""
    from sensorium_data.dataset import open_mouse

    items = [source] if isinstance(source, xr.Dataset | str | os.PathLike) else list(source)
    if not items:
        msg = "source is empty; pass a Dataset from open_mouse, a store path, or a list of them."
        raise ValueError(msg)
    datasets = []
    for item in items:
        if isinstance(item, xr.Dataset):
            datasets.append(item)
        elif isinstance(item, str | os.PathLike):
            datasets.append(open_mouse(item, progress=False))
        else:
            msg = (
                f"cannot read a {type(item).__name__} as a recording; pass a Dataset from "
                "sensorium_data.open_mouse, a store path, or a list of them."
            )
            raise TypeError(msg)
    names = [_check(ds) for ds in datasets]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        msg = (
            f"recording(s) {twice} given more than once; each mouse gets one readout, so pass "
            "each recording once."
        )
        raise ValueError(msg)
    return datasets


def _check(ds: xr.Dataset) -> str:
    """The recording's name, after checking it is a 2023 store of a schema version read here."""
    store = ds.attrs.get("store")
    if not store:
        msg = (
            "this Dataset was not opened with sensorium_data.open_mouse, so it has no store to "
            "read from; pass open_mouse(...) or the store's path."
        )
        raise ValueError(msg)
    check_schema(store, ds.attrs)
    if "videos" not in ds or "frame" not in ds.dims:
        msg = (
            f"{ds.attrs.get('mouse', store)} is a {ds.attrs.get('competition')} recording of "
            "static images; clips need a 2023 (video) recording. Read 2022 recordings with "
            "sensorium_data.ImageDataset."
        )
        raise ValueError(msg)
    return str(ds.attrs["mouse"])


def select(ds: xr.Dataset, tier: Tier) -> np.ndarray:
    """Positions (in ``ds``) of the trials of ``tier`` with valid frames."""
    name = ds.attrs["mouse"]
    tiers = [tier] if isinstance(tier, str) else None if tier is None else list(tier)
    has = ds["n_frames"].values > 0
    if tiers is not None:
        has &= np.isin(ds["tier"].values.astype(str), tiers)
        missing = sorted(set(tiers) - set(ds.sensorium.tiers_with_trials))
        if missing and has.any():
            log.info("%s has no trials of tier(s) %s; serving the others", name, missing)
    if not has.any():
        counts = ", ".join(f"{t} ({n})" for t, n in ds.sensorium.tiers_with_trials.items())
        msg = (
            f"{name} has no trials of tier {tier!r}; its tiers with trials (count): {counts}. "
            "Pass one of them as tier=, a list of them, or tier=None for every trial."
        )
        raise ValueError(msg)
    return np.flatnonzero(has)


def select_trials(ds: xr.Dataset, tier: Tier, normalize: Normalize) -> TrialSelection:
    """The selected trials of ``ds`` and their normalization constants."""
    name = str(ds.attrs["mouse"])
    store = as_location(ds.attrs["store"])
    store_trials = np.asarray(_array(store, "trial")[:])
    n_neurons, frames = _array(store, "responses").shape[1:]
    height, width = _array(store, "videos").shape[2:]
    if ds.sizes["neuron"] != n_neurons or ds.sizes["frame"] != frames:
        msg = (
            f"the Dataset of {name} has {ds.sizes['neuron']} neurons and {ds.sizes['frame']} "
            f"frames, its store {n_neurons} and {frames}; select trials only (isel/sel on "
            "trial), and neurons or frames in the model."
        )
        raise ValueError(msg)
    chosen = select(ds, tier)
    trials = ds["trial"].values[chosen].astype(np.int64)
    order = np.argsort(store_trials)
    positions = order[np.searchsorted(store_trials, trials, sorter=order).clip(0, len(order) - 1)]
    if not np.array_equal(store_trials[positions], trials):
        msg = f"the Dataset of {name} has trials that its store {store} does not."
        raise ValueError(msg)
    scale = scaling(ds.sensorium.statistics, normalize, n_neurons=n_neurons, frames=frames,
                    height=height, width=width, name=name)
    behavior = read_array(store, "behavior").astype(np.float32)[positions]  # (n, 4, T)
    behavior -= scale.behavior_mean
    behavior *= scale.behavior_scale
    return TrialSelection(
        mouse=name, store=store, trials=trials, positions=positions.astype(np.int64),
        n_frames=ds["n_frames"].values[chosen].astype(np.int64),
        labelled=ds["labelled"].values[chosen].astype(bool), n_neurons=int(n_neurons),
        frames=int(frames), height=int(height), width=int(width), scaling=scale,
        behavior=behavior,
    )


def _array(store: Location, name: str) -> zarr.Array:
    with quiet_zarr():
        return zarr.open_array(zarr_target(store / name), mode="r")
