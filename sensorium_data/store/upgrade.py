"""Upgrading a store of an earlier schema into the current one, from the store itself."""

from __future__ import annotations

import itertools
import logging
import math
import os
import shutil
from pathlib import Path

import numpy as np
import zarr
from filelock import FileLock
from tqdm.auto import tqdm

from sensorium_data.errors import Message, StoreError, convert_again
from sensorium_data.store.chunks import Chunks, read_region
from sensorium_data.store.layout import (
    FRAME_AXIS,
    MAPPED,
    READABLE_SCHEMAS,
    SCHEMA_VERSION,
    mapped_encoding,
    quiet_zarr,
    read_attrs,
)

log = logging.getLogger(__name__)


def needs_upgrade(store: str | os.PathLike[str]) -> bool:
    """True if ``store`` is a complete store of an earlier schema that :func:`upgrade` rewrites."""
    try:
        attrs = read_attrs(Path(store))
    except StoreError:
        return False
    version = attrs.get("schema_version")
    return bool(attrs.get("complete")) and version in READABLE_SCHEMAS and version != SCHEMA_VERSION


def upgrade(store: str | os.PathLike[str], *, progress: bool = True) -> Path:
    """Rewrite a store of an earlier schema into the current one, from the store itself.

    The new store is written beside the old one under a temporary name, then swapped in; the
    old store stays whole until the new one is complete (a killed upgrade leaves the old store
    as it was). Runs under the same lock as :func:`sensorium_data.convert`. Values, dims,
    coordinates and attributes are unchanged; only the chunks and codecs of :data:`MAPPED`
    arrays change. A store of the current schema is returned as is.

    Parameters
    ----------
    store
        The store to upgrade.
    progress
        Show a progress bar.

    Returns
    -------
    Path
        ``store``.

    Examples
    --------
    >>> import sensorium_data as sd
    >>> sd.upgrade("F.zarr")  # doctest: +SKIP
    PosixPath('F.zarr')
    >>> store = sd.convert(tiny[0], progress=False)  # a simulated recording (sd.simulate)
    >>> sd.upgrade(store, progress=False) == store  # of the current schema: nothing to do
    True
    """
    target = Path(store).expanduser()
    with FileLock(str(target) + ".lock"):
        attrs = read_attrs(target)
        version = attrs.get("schema_version")
        if version == SCHEMA_VERSION and attrs.get("complete"):
            return target
        if version not in READABLE_SCHEMAS or not attrs.get("complete"):
            msg = Message(
                f"{target} is a store of schema version {version} (complete: "
                f"{bool(attrs.get('complete'))}); upgrade rewrites complete stores of versions "
                f"{list(READABLE_SCHEMAS[:-1])}. Convert the recording again from its file "
                "tree: ", convert_again(target), ".",
            )
            raise StoreError(msg)
        tmp = target.with_name(f"{target.name}.tmp-{os.getpid()}")
        if tmp.exists():
            shutil.rmtree(tmp)
        log.info("upgrading %s from schema %s to %s", target, version, SCHEMA_VERSION)
        try:
            with quiet_zarr():
                old = zarr.open_group(target, mode="r")
                new = zarr.open_group(tmp, mode="w", zarr_format=3)
                _copy_group(old, new, progress, target.name, target)
                new.attrs.update({**dict(old.attrs), "schema_version": SCHEMA_VERSION})
                zarr.consolidate_metadata(tmp)
        except BaseException:  # the old store was not touched; leave nothing half-written
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        aside = target.with_name(f"{target.name}.old-{os.getpid()}")
        os.replace(target, aside)
        os.replace(tmp, target)
        shutil.rmtree(aside, ignore_errors=True)
    return target


def _copy_group(old: zarr.Group, new: zarr.Group, progress: bool, label: str, store: Path,
                root: bool = True) -> None:
    """Copy every array of ``old`` into ``new``: the large ones of a video recording (at the
    root, not the statistics of the same names) into the mapped layout trial by trial, the
    others with their own chunks and codecs."""
    stored = old.get("labelled")
    labelled = np.asarray(stored[...]) if isinstance(stored, zarr.Array) else None
    for name, arr in old.arrays():
        dims = arr.metadata.dimension_names  # type: ignore[union-attr]
        # 2022 responses are (trial, neuron): not mapped
        mapped = (root and name in MAPPED and dims is not None
                  and len(dims) > FRAME_AXIS[name] and dims[FRAME_AXIS[name]] == "frame")
        # read as the views read: a missing or damaged chunk is an error, never NaN copied
        checked = Chunks(store, arr.path)
        whole = tuple(slice(0, n) for n in arr.shape)
        if mapped:
            out = new.create_array(name, shape=arr.shape, chunks=(1, *arr.shape[1:]),
                                   dtype=arr.dtype, dimension_names=dims,
                                   fill_value=arr.fill_value,
                                   **mapped_encoding(name))  # type: ignore[arg-type]
            bar = tqdm(range(arr.shape[0]), desc=f"{label[:24]} {name}", unit="trial",
                       disable=not progress, leave=False)
            for i in bar:
                if name == "responses" and labelled is not None and not labelled[i]:
                    continue  # withheld: no file, as convert writes it
                out[i] = read_region(arr, checked, (slice(i, i + 1), *whole[1:]))[0]
            out.attrs.update(dict(arr.attrs))
            continue
        # every chunk written, as convert writes them (all_chunks_written is copied)
        out = new.create_array(name, shape=arr.shape, chunks=arr.chunks, dtype=arr.dtype,
                               dimension_names=dims, fill_value=arr.fill_value,
                               compressors=arr.compressors or None,
                               filters=arr.filters or None,
                               config={"write_empty_chunks": True})
        out.attrs.update(dict(arr.attrs))
        if math.prod(arr.shape):
            out[...] = _read_all(arr, checked, whole, dims)
    for name, sub in old.groups():
        _copy_group(sub, new.create_group(name), progress, label, store, root=False)


def _read_all(arr: zarr.Array, checked: Chunks, whole: tuple[slice, ...],
              dims: tuple[str | None, ...] | None) -> np.ndarray:
    """All of ``arr``: arrays over trials read as the views read them (a missing chunk of
    existing data or a damaged one is an error); the others (neurons, frames, statistics)
    must have every chunk file, which convert writes."""
    if dims and dims[0] == "trial":
        return read_region(arr, checked, whole)
    grid = [range(-(-n // c)) for n, c in zip(arr.shape, checked.chunk, strict=True)]
    for index in itertools.product(*grid):
        if checked.known_layout and not checked.file(index).is_file():
            missing = checked.key(index)
            msg = Message(f"{checked.store}: the chunk file {missing} of {checked.name} is "
                          "missing; the store is damaged and is not upgraded. Convert the "
                          "recording again: ", convert_again(checked.store), ".")
            raise StoreError(msg)
    return np.asarray(arr[...])
