"""Open any recording as a lazy, labelled :class:`xarray.Dataset`."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import dask
import numpy as np
import xarray as xr

from sensorium_data import paths
from sensorium_data.errors import LIST_MICE, Fix, Message, StoreError, convert_again
from sensorium_data.remote import (
    Location,
    RemotePath,
    as_location,
    check_reachable,
    is_url,
    zarr_target,
)
from sensorium_data.store.chunks import check_small, checked_dask
from sensorium_data.store.conversion import convert, convert_tree
from sensorium_data.store.layout import check_schema, is_complete, quiet_zarr
from sensorium_data.store.upgrade import needs_upgrade, upgrade
from sensorium_data.tree import STATISTICS, open_tree

log = logging.getLogger(__name__)

PER_TRIAL = ("tier", "stimulus_type", "video_id", "image_id", "trial_idx", "n_frames", "labelled")
COMPETITIONS = ("2022", "2023")
BLOCK = 16
"""Trials read at once from a lazy array (scoring, predicting): amortizes dask's per-task cost
in bounded memory."""
PER_NEURON = ("x", "y", "z")
CHECKED = ("videos", "images", "responses", "rates", "behavior")


def _looks_like_path(mouse: str | os.PathLike[str]) -> bool:
    """A path object, a string with a separator or a .zip/.zarr suffix, or (unless the catalog
    knows the name) an existing file or folder."""
    if isinstance(mouse, os.PathLike):
        return True
    if os.sep in mouse or mouse.endswith((".zip", ".zarr")):
        return True
    from sensorium_data import catalog

    exists = Path(mouse).expanduser().exists()
    if catalog.find(mouse) is None:
        return exists
    if exists:
        log.warning("%r names a mouse of the catalog and a file or folder here; using the "
                    "catalog's mouse (pass %r for the folder)", mouse, f".{os.sep}{mouse}")
    return False


def resolve_store(
    mouse: str | os.PathLike[str],
    *,
    data_dir: str | os.PathLike[str] | None = None,
    download: bool = True,
    progress: bool = True,
) -> Path:
    """The converted store of ``mouse``, converting (and downloading) what is missing."""
    if _looks_like_path(mouse):
        path = Path(mouse).expanduser()
        if (path / "zarr.json").is_file():
            return path
        if not path.exists():
            msg = Message(
                f"{path} does not exist; pass an existing recording folder, zip or .zarr store, "
                "or a mouse name (see ", LIST_MICE, ").",
            )
            raise FileNotFoundError(msg)
        return convert(path, data_dir=data_dir, progress=progress)

    from sensorium_data import catalog

    rec = catalog.lookup(str(mouse))
    root = paths.data_dir(data_dir)
    store = paths.stores_dir(root) / f"{rec.name}.zarr"
    if is_complete(store):
        return store
    if needs_upgrade(store):  # a store of an earlier schema: rewritten from itself, in place
        return upgrade(store, progress=progress)
    tree = paths.trees_dir(root) / rec.name
    zip_path = paths.downloads_dir(root) / f"{rec.name}.zip"
    if tree.is_dir():  # extraction renames the finished folder into place
        source = tree
    elif zip_path.exists() or download:
        from sensorium_data.fetch import download as download_zip

        source = download_zip(rec, data_dir=root, progress=progress)
    else:
        name = rec.letter or rec.short_name
        msg = Message(
            f"{rec.name} ({name}) is not in the cache {root}",
            Fix(f" and download=False. Call sensorium_data.fetch_mouse({name!r}) first, pass "
                "download=True,", f". Download it first (sensorium fetch {name}),"),
            f" or point ${paths.ENV_DATA_DIR} at the folder that holds it.",
        )
        raise FileNotFoundError(msg)
    return convert_tree(open_tree(source), store, progress=progress)


def open_store(store: str | os.PathLike[str] | RemotePath, *,
               storage_options: dict | None = None) -> xr.Dataset:
    """Open a converted store (a path or an fsspec URL) as a lazy Dataset (see
    :func:`open_mouse`)."""
    store = as_location(store, storage_options)
    if isinstance(store, RemotePath):
        check_reachable(store)
    with quiet_zarr():
        try:
            ds = xr.open_zarr(store.zarr_store() if isinstance(store, RemotePath) else store,
                              consolidated=True, chunks={})
        except Exception as e:  # zarr/xarray raise several types for damaged stores
            msg = f"{store} is not a readable sensorium store ({e}); convert the recording again."
            raise StoreError(msg) from e
    if not ds.attrs.get("complete"):
        msg = Message(
            f"{store} is not a finished sensorium store (its attributes do not say complete); "
            "it was not written by sensorium_data.convert, or its conversion did not finish. "
            "Convert the recording into another store path: ",
            Fix("sensorium_data.convert(<tree or zip>, store)",
                "sensorium convert <tree or zip> --store STORE"), ".",
        )
        raise StoreError(msg)
    check_schema(store, ds.attrs, Fix(", or delete the store and call open_mouse again",
                                      ", or delete the store and run the command again"))
    if ds.attrs.get("competition") not in COMPETITIONS:
        msg = Message(
            f"{store} records competition {ds.attrs.get('competition')!r}; this version reads "
            f"stores of {' and '.join(COMPETITIONS)}. Convert the recording again: ",
            convert_again(store), ".",
        )
        raise StoreError(msg)
    small = [*PER_TRIAL, *PER_NEURON, "time", "behavior_variable"]
    present = [name for name in small if name in ds.variables]
    if ds.attrs.get("all_chunks_written"):
        check_small(store, present)
    try:
        values = dask.compute(*(ds[name].data for name in present))
    except Exception as e:  # zarr and its codecs raise many types for a damaged chunk
        msg = Message(
            f"{store}: its coordinates ({', '.join(present)}) cannot be read ({e}); the store "
            "is damaged. Convert again: ", convert_again(store), ".",
        )
        raise StoreError(msg) from e
    ds = ds.assign_coords(
        {name: _eager(ds[name], v) for name, v in zip(present, values, strict=True)}
    )
    for name in CHECKED:
        if name in ds.data_vars:  # missing or damaged chunks raise instead of reading as NaN
            stored = ds[name]
            ds[name] = stored.copy(data=checked_dask(store, name))
            ds[name].encoding = stored.encoding
    if "videos" in ds and ds["videos"].dtype == np.uint8:
        # 8-bit on disk (lossless); padded frames, stored as 0, become NaN again, chunk by chunk
        stored = ds["videos"]
        n_frames = ds["n_frames"].values
        data = stored.data.map_blocks(_nan_padding, n_frames=n_frames, dtype=np.float32)
        ds["videos"] = stored.copy(data=data)
        ds["videos"].encoding = stored.encoding
    if "images" in ds and ds["images"].dtype == np.uint8:  # 2022: no padding to mask
        stored = ds["images"]
        ds["images"] = stored.copy(data=stored.data.astype(np.float32))
        ds["images"].encoding = stored.encoding
    for name in ds.data_vars:
        ds[name].attrs.update(_DESCRIPTIONS.get(str(name), {}))
    ds.attrs["store"] = str(store)
    return ds


def _nan_padding(block: np.ndarray, *, n_frames: np.ndarray, block_info: dict) -> np.ndarray:
    """One chunk of uint8 videos (trial, frame, height, width) as float32, NaN past n_frames."""
    (t0, t1), (f0, f1) = block_info[0]["array-location"][:2]
    out = block.astype(np.float32)
    out[np.arange(f0, f1)[None, :] >= n_frames[t0:t1, None]] = np.nan
    return out


def _eager(coord: xr.DataArray, values: np.ndarray) -> xr.DataArray:
    """A small coordinate in memory; strings as plain numpy unicode, not StringDType."""
    if values.dtype.kind in "OT":
        values = np.array(values.tolist(), dtype=str)
    return coord.copy(data=values)


_DESCRIPTIONS = {
    "videos": {"long_name": "stimulus (grayscale, 0-255)", "units": "intensity"},
    "images": {"long_name": "stimulus image (grayscale)", "units": "intensity"},
    "responses": {"long_name": "deconvolved calcium activity", "units": "a.u."},
    "behavior": {"long_name": "pupil dilation, running speed, pupil position"},
    "rates": {"long_name": "noise-free rates of the simulator", "units": "a.u."},
}


def open_mouse(
    mouse: str | os.PathLike[str],
    *,
    data_dir: str | os.PathLike[str] | None = None,
    download: bool = True,
    progress: bool = True,
    storage_options: dict | None = None,
) -> xr.Dataset:
    """Open one recording as a lazy, labelled :class:`xarray.Dataset`.

    On first use the recording is downloaded (if ``download``), and converted once into a zarr
    store in the cache; later calls open the store in well under a second. Nothing is read
    until asked: the variables are dask arrays.

    Parameters
    ----------
    mouse
        A 2023 recording's letter (``"F"``), short name (``"29515-10-12"``) or folder name
        (``"dynamic29515-10-12-Video-9b4f6a1a067fe51e15306b9628efea20"``); a 2022 recording's
        short name (``"26872-17-20"``) or folder name; or a path to a recording's folder, its
        zip, or a converted ``.zarr`` store; or an fsspec URL of a store
        (``s3://bucket/prefix/F.zarr``), opened lazily where it is.
    data_dir
        The cache folder (default ``$SENSORIUM_DATA_DIR``, else the OS cache); a URL
        (``s3://lab/sensorium``): the stores are opened from ``<URL>/stores/<name>.zarr``.
    download
        Download the recording if it is not in the cache.
    progress
        Show progress bars while downloading and converting.
    storage_options
        For a URL: fsspec's options (``{"key": ..., "secret": ..., "client_kwargs":
        {"endpoint_url": ...}}`` for S3); default: the usual fsspec/botocore configuration
        (``AWS_*`` variables, ``~/.aws``).

    Returns
    -------
    xarray.Dataset
        ``videos`` (trial, frame, height, width), ``responses`` (trial, neuron, frame) and
        ``behavior`` (trial, behavior_variable, frame), NaN past each trial's ``n_frames`` and
        for withheld responses; coordinates ``trial``, ``tier``, ``stimulus_type``,
        ``video_id``, ``n_frames``, ``labelled``, ``neuron``, ``x``, ``y``, ``z``, ``time``.
        The shipped normalization statistics are at ``ds.sensorium.statistics``.
        A 2022 recording (``attrs["competition"] == "2022"``) has no frame axis: ``images``
        (trial, height, width), ``responses`` (trial, neuron), ``behavior`` (trial,
        behavior_variable), coordinates ``trial``, ``tier``, ``image_id``, ``trial_idx``,
        ``labelled``, ``neuron``, ``x``, ``y``, ``z``.

    Examples
    --------
    >>> import sensorium_data as sd
    >>> ds = sd.open_mouse("F")  # doctest: +SKIP
    >>> ds = sd.open_mouse(tiny[0], progress=False)  # or a simulated one (sd.simulate)
    >>> oracle = ds.responses.where(ds.tier == "oracle", drop=True)
    >>> dict(oracle.sizes)
    {'trial': 2, 'neuron': 16, 'frame': 180}
    """
    if is_url(mouse):  # a store on object storage: opened where it is, never converted
        return open_store(str(mouse), storage_options=storage_options)
    shared = paths.remote_cache(data_dir)
    if shared is not None and not _looks_like_path(mouse):  # a cache on object storage
        from sensorium_data import catalog

        name = catalog.lookup(str(mouse)).name
        return open_store(f"{shared}/stores/{name}.zarr", storage_options=storage_options)
    store = resolve_store(mouse, data_dir=data_dir, download=download, progress=progress)
    return open_store(store, storage_options=storage_options)


def load_mouse(
    mouse: str | os.PathLike[str],
    *,
    data_dir: str | os.PathLike[str] | None = None,
    download: bool = True,
    progress: bool = True,
    storage_options: dict | None = None,
) -> xr.Dataset:
    """:func:`open_mouse`, then read everything into memory (``open_mouse(...).load()``).

    A full-size recording needs about 8 GB of memory; prefer :func:`open_mouse` and select
    first.
    """
    return open_mouse(mouse, data_dir=data_dir, download=download, progress=progress,
                      storage_options=storage_options).load()


def tiers_with_trials(ds: xr.Dataset) -> dict[str, int]:
    """The tiers that have trials with frames, and how many each, by tier name (``"none"``
    included where such trials have frames); ``ds.sensorium.tiers_with_trials``. Every trial
    of a 2022 recording (no ``n_frames``: one image each) counts.

    Examples
    --------
    >>> ds = xr.Dataset(coords={"tier": ("trial", ["train", "oracle", "train", "oracle"]),
    ...                         "n_frames": ("trial", [300, 300, 300, 0])})
    >>> tiers_with_trials(ds)
    {'oracle': 1, 'train': 2}
    """
    tiers = ds["tier"].values.astype(str)
    if "n_frames" in ds.variables:
        tiers = tiers[ds["n_frames"].values > 0]
    names, counts = np.unique(tiers, return_counts=True)
    return dict(zip(names.tolist(), counts.tolist(), strict=True))


@xr.register_dataset_accessor("sensorium")
class SensoriumAccessor:
    """``ds.sensorium``: what belongs to a recording beyond its variables."""

    def __init__(self, ds: xr.Dataset):
        self._ds = ds

    @property
    def store(self) -> Location:
        """The zarr store the Dataset was opened from (a :class:`~sensorium_data.remote.
        RemotePath` for a URL)."""
        store = self._ds.attrs.get("store")
        if not store:
            msg = "this Dataset was not opened with sensorium_data.open_mouse; it has no store."
            raise ValueError(msg)
        return as_location(store)

    @property
    def tiers_with_trials(self) -> dict[str, int]:
        """The tiers that have trials with frames, and how many each (:func:`tiers_with_trials`).
        """
        return tiers_with_trials(self._ds)

    @property
    def statistics(self) -> xr.Dataset:
        """The recording's shipped normalization statistics (``meta/statistics``), lazily.

        Variables ``videos`` (statistic, frame, height, width), ``responses`` (statistic,
        neuron, frame) and ``behavior`` (statistic, behavior_variable, frame), with
        ``statistic`` in mean, std, min, max: per frame, as the 2023 release ships them.
        For a 2022 recording: ``images`` (statistic, height, width), ``responses`` (statistic,
        neuron), ``behavior`` (statistic, behavior_variable).
        """
        with quiet_zarr():
            stats = xr.open_zarr(zarr_target(self.store), group="statistics",
                                 consolidated=False, chunks={})
        for name in stats.data_vars:  # damaged or missing chunks raise, as for the data
            stored = stats[name]
            stats[name] = stored.copy(data=checked_dask(self.store / "statistics", str(name)))
        coords = {k: self._ds[k] for k in ("neuron", "behavior_variable") if k in self._ds.coords}
        return stats.assign_coords({**coords, "statistic": list(STATISTICS)})
