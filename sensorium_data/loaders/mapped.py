"""Frame windows of one trial, mapped from a store in the mapped layout (no decoding, no copy).

In a schema 2 store (:mod:`sensorium_data.store.layout`) each trial of ``responses`` and ``videos``
is one raw chunk file with frames first, so frames ``start:stop`` of a trial are one
contiguous slice of one file. :class:`MappedTrials` maps that file with ``mmap`` for each read
and hands out a view of the slice; the caller normalizes it straight into the batch, the one
copy a clip costs. Maps are not kept between reads: a clip touches only its own pages, so the
process's resident memory does not grow with the trials it has served, and a file that
disappears is noticed on the next read.

A missing file is an error (naming the file) unless the trial has no data to store (withheld
responses, which read as NaN); a file of the wrong size too (a truncated copy). A store moved
or deleted while a dataset reads it says so.
"""

from __future__ import annotations

import json
import logging
import math
import mmap
from collections.abc import Iterator
from concurrent.futures import Executor
from pathlib import Path
from typing import cast

import numpy as np

from sensorium_data.errors import Fix, Message, StoreError, convert_again
from sensorium_data.loaders.reader import Fetched, Windows, open_windows
from sensorium_data.remote import Location
from sensorium_data.store.layout import chunk_file, mapped_reason

log = logging.getLogger(__name__)


class MappedTrials:
    """Windows of one array whose trials are raw, time-major chunk files.

    Parameters
    ----------
    path
        The array's folder in the store, e.g. ``F.zarr/responses``.
    meta
        Its ``zarr.json``, checked by :func:`sensorium_data.store.layout.mapped_reason`.
    frame_axis
        The frame axis of the array's dims (2 for responses, 1 for videos).
    stored
        Per trial position of the store: True where the trial's file must exist.
    """

    def __init__(self, path: Path, meta: dict, frame_axis: int, stored: np.ndarray):
        self.path = path
        self.frame_axis = frame_axis
        shape = tuple(int(n) for n in meta["shape"])
        self.ndim = len(shape)
        self.dtype = np.dtype(meta["data_type"]).newbyteorder("<")
        fill = meta["fill_value"]
        self.fill = np.nan if fill == "NaN" else fill
        # one trial on disk: frames first, then the other axes in their order
        rest = [n for axis, n in enumerate(shape) if axis not in (0, frame_axis)]
        self.disk_shape = (shape[frame_axis], *rest)
        self.nbytes = math.prod(self.disk_shape) * self.dtype.itemsize
        self.stored = stored

    def _map(self, trial: int) -> np.ndarray | None:
        """Trial ``trial`` as a read-only (frame, ...) view of its mapped file; None if the trial
        has no file because it has nothing to store."""
        file = chunk_file(self.path, trial, self.ndim)
        try:
            with open(file, "rb") as f:
                size = f.seek(0, 2)
                if size != self.nbytes:
                    msg: str = Message(
                        f"{file} holds {size} bytes, but a trial of {self.path.name} is "
                        f"{self.nbytes} bytes: the file is truncated or from another store. "
                        "Convert the recording again (", convert_again(self.path.parent), ").",
                    )
                    raise StoreError(msg)
                buffer = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except FileNotFoundError:
            if not (self.path.parent / "zarr.json").is_file():
                msg = (
                    f"the store {self.path.parent} was deleted or moved while this dataset "
                    "reads it; open the dataset again on the store where it is now."
                )
                raise StoreError(msg) from None
            if not self.stored[trial]:
                return None
            msg = Message(
                f"{file} is missing: trial position {trial} of {self.path.name} has data, so "
                "its chunk file must exist. The store is damaged; convert the recording again "
                "(", convert_again(self.path.parent), ").",
            )
            raise StoreError(msg) from None
        return np.frombuffer(buffer, self.dtype).reshape(self.disk_shape)

    def fetch(self, trial: int, start: int, stop: int, pool: Executor) -> Fetched:
        return {}  # nothing to start: the map reads what the copy touches

    def parts(self, trial: int, start: int, stop: int, fetched: Fetched | None = None
              ) -> Iterator[tuple[int, np.ndarray]]:
        """The window in the array's own axis order (trial dropped), as one piece: a view of
        the map (responses: a transposed view, (neuron, frame))."""
        trial_map = self._map(trial)
        if trial_map is None:
            window = np.full((stop - start, *self.disk_shape[1:]), self.fill, self.dtype)
        else:
            window = trial_map[start:stop]  # (f, ...) frames first
        yield 0, np.moveaxis(window, 0, self.frame_axis - 1)


def layout_reason(store: Path) -> str | None:
    """Why the ``videos`` and ``responses`` of ``store`` cannot be mapped (the store's schema
    or the arrays' layout, with the way to upgrade it), or None if they can."""
    attrs = json.loads((store / "zarr.json").read_text()).get("attributes", {})
    if attrs.get("schema_version") == 1:
        return Message(f"{store} is a store of schema version 1 (compressed chunks); upgrade "
                       "it in place, from the store itself: ",
                       Fix(f"sensorium_data.upgrade({str(store)!r})",
                           f"sensorium convert --upgrade {store}"))
    for name, axis in (("videos", 1), ("responses", 2)):
        meta = json.loads((store / name / "zarr.json").read_text())
        reason = mapped_reason(meta, axis)
        if reason is not None:
            return f"{store / name} is not in the mapped layout ({reason})"
    return None


def open_trials(store: Location, name: str, frame_axis: int, stored: np.ndarray,
                mapped: bool = True) -> Windows:
    """A reader of frame windows of ``<store>/<name>``: :class:`MappedTrials` if ``mapped``
    (checked by :func:`layout_reason`), else the decoding readers of
    :func:`sensorium_data.loaders.reader.open_windows`."""
    if not mapped:
        return open_windows(store, name, frame_axis)
    path = store / name
    try:
        meta = json.loads((path / "zarr.json").read_text())
    except FileNotFoundError:
        msg = (
            f"{path / 'zarr.json'} is missing: the store {store} was deleted or moved while "
            "this dataset reads it; open the dataset again on the store where it is now."
        )
        raise StoreError(msg) from None
    return MappedTrials(cast(Path, path), meta, frame_axis, stored)  # mapped: local
