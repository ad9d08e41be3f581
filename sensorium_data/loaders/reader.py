"""Frame windows of one trial, read from a store without xarray or dask.

A store written by :func:`sensorium_data.convert` keeps each array of a trial in chunks that
span every axis but trial and frame: videos ``(1, T, 36, 64)`` (one chunk per trial),
responses ``(1, N, 50)`` (2-3 chunks per 80-frame window). Each chunk is one file,
``<store>/<array>/c/<trial>/0/<k>`` (zarr v3 default key encoding), holding the chunk's
C-order bytes compressed by one codec (blosc or zstd). :class:`ChunkFiles` reads those files
and decodes them with numcodecs directly, which costs less than half of what
``zarr.Array.__getitem__`` does per window (its per-call overhead is ~2-3 ms);
:class:`ZarrWindows` is the fallback for any other layout (sharding, other codecs,
checksums), through zarr-python.

The files of a batch can be read by a thread pool (:meth:`ChunkFiles.fetch`) while the
calling thread decodes the ones already read: with a cold page cache the reads then overlap
the decoding. (``posix_fadvise(WILLNEED)``, tried first, does not overlap them: the call
itself takes a good part of the read time. Side by side on the project's VM the threads
serve cold clips 1.2-1.6x faster without DataLoader workers, and the same with two;
docs/benchmarks.md.)
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from concurrent.futures import Executor, Future
from pathlib import Path
from typing import Protocol, cast

import numpy as np
import zarr
from numcodecs import blosc, zstd

from sensorium_data.errors import StoreError
from sensorium_data.remote import Location, RemotePath, zarr_target
from sensorium_data.store.chunks import Chunks, read_region
from sensorium_data.store.layout import array_file_reason, quiet_zarr

log = logging.getLogger(__name__)

_DTYPES: dict[str, np.dtype] = {
    "uint8": np.dtype(np.uint8), "float32": np.dtype("<f4"), "float64": np.dtype("<f8")}
_DECODERS = {"blosc": blosc.decompress, "zstd": zstd.decompress}

Fetched = Mapping[int, "Future[bytes | None]"]  # chunk index along frames -> its file's bytes


class Windows(Protocol):
    """Reads ``array[trial, ..., start:stop, ...]`` of one trial (frame axis kept in place)."""

    def fetch(self, trial: int, start: int, stop: int, pool: Executor) -> Fetched:
        """Start reading the window's data on ``pool``; pass the result to :meth:`parts`."""
        ...

    def parts(self, trial: int, start: int, stop: int, fetched: Fetched | None = None
              ) -> Iterator[tuple[int, np.ndarray]]:
        """The window as consecutive pieces along frames: (offset in the window, piece)."""
        ...


class ChunkFiles:
    """Windows decoded straight from the chunk files of a local zarr v3 array.

    Only for arrays whose chunks hold one trial and all of every axis but the frame axis;
    :func:`open_windows` checks that and falls back to :class:`ZarrWindows` otherwise.
    """

    def __init__(self, path: Path, meta: dict, frame_axis: int):
        self.path = path
        self.frame_axis = frame_axis
        self.shape = tuple(meta["shape"])
        self.chunk = tuple(meta["chunk_grid"]["configuration"]["chunk_shape"])
        self.dtype = _DTYPES[meta["data_type"]]
        fill = meta["fill_value"]
        self.fill = np.nan if fill == "NaN" else fill
        compressors = [c["name"] for c in meta["codecs"][1:]]
        self.decode = _DECODERS[compressors[0]] if compressors else bytes
        self.step = self.chunk[frame_axis]
        self.checks = Chunks(path.parent, path.name, meta)

    def _file(self, trial: int, k: int) -> Path:
        key = ["0"] * len(self.shape)
        key[0], key[self.frame_axis] = str(trial), str(k)
        return self.path.joinpath("c", *key)

    def _chunks(self, start: int, stop: int) -> range:
        return range(start // self.step, (stop - 1) // self.step + 1)

    def _read(self, trial: int, k: int) -> bytes | None:
        """The stored bytes of chunk ``k`` along frames of ``trial``; None if never written."""
        try:
            with open(self._file(trial, k), "rb") as f:
                return f.read()
        except FileNotFoundError:
            return None

    def _decode(self, raw: bytes | None, trial: int, k: int) -> np.ndarray:
        """A chunk without its trial axis; a chunk never written holds the fill value only
        (an error if it holds data that exists: :class:`sensorium_data.store.chunks.Chunks`)."""
        index = [0] * len(self.shape)
        index[0], index[self.frame_axis] = trial, k
        if raw is None:
            self.checks.check(tuple(index))
            return np.full(self.chunk[1:], self.fill, self.dtype)
        self.checks.check_blosc(tuple(index), raw)
        try:
            return np.frombuffer(self.decode(raw), self.dtype).reshape(self.chunk[1:])
        except (RuntimeError, ValueError) as e:  # what blosc and zstd raise for bad bytes
            raise self.checks.damaged(tuple(index), e) from e

    def fetch(self, trial: int, start: int, stop: int, pool: Executor) -> Fetched:
        return {k: pool.submit(self._read, trial, k) for k in self._chunks(start, stop)}

    def parts(self, trial: int, start: int, stop: int, fetched: Fetched | None = None
              ) -> Iterator[tuple[int, np.ndarray]]:
        head = (slice(None),) * (self.frame_axis - 1)  # axes before frames, trial dropped
        for k in self._chunks(start, stop):
            raw = fetched[k].result() if fetched is not None else self._read(trial, k)
            lo = max(start - k * self.step, 0)
            hi = min(stop - k * self.step, self.step)
            yield k * self.step + lo - start, self._decode(raw, trial, k)[(*head, slice(lo, hi))]


class ZarrWindows:
    """Windows read through zarr-python (any layout zarr can read)."""

    def __init__(self, path: Location, frame_axis: int):
        with quiet_zarr():
            self.array = zarr.open_array(zarr_target(path), mode="r")
        self.frame_axis = frame_axis
        self.checks = Chunks(path.parent, path.name)

    def fetch(self, trial: int, start: int, stop: int, pool: Executor) -> Fetched:
        return {}  # zarr-python reads what it needs when asked

    def parts(self, trial: int, start: int, stop: int, fetched: Fetched | None = None
              ) -> Iterator[tuple[int, np.ndarray]]:
        region = [slice(0, n) for n in self.array.shape]
        region[0], region[self.frame_axis] = slice(trial, trial + 1), slice(start, stop)
        yield 0, read_region(self.array, self.checks, tuple(region))[0]


def decode_in_this_thread() -> None:
    """Make blosc decode in the calling thread, without its thread pool: in DataLoader workers,
    the workers are the parallelism and blosc's threads would compete with them (~5 % slower
    with 2 workers on 2 cores)."""
    blosc.use_threads = False


def direct_layout(meta: dict, frame_axis: int) -> str | None:
    """Why the array at ``meta`` (its zarr.json) cannot be read chunk file by chunk file, or
    None if it can."""
    reason = array_file_reason(meta, _DTYPES)
    if reason is not None:
        return reason
    grid = meta.get("chunk_grid", {})
    if grid.get("name") != "regular":
        return f"chunk grid {grid.get('name')}"
    shape, chunk = meta["shape"], grid["configuration"]["chunk_shape"]
    spans = all(c == s for i, (c, s) in enumerate(zip(chunk, shape, strict=True))
                if i not in (0, frame_axis))
    if chunk[0] != 1 or not spans:
        return f"chunks {chunk} of shape {shape} do not hold one trial"
    codecs = meta.get("codecs", [])
    if not codecs or codecs[0].get("name") != "bytes":
        return f"codecs {[c.get('name') for c in codecs]}"
    endian = codecs[0].get("configuration", {}).get("endian", "little")
    if endian != "little" and _DTYPES[meta["data_type"]].itemsize > 1:
        return "big-endian bytes"
    rest = [c.get("name") for c in codecs[1:]]
    if len(rest) > 1 or (rest and rest[0] not in _DECODERS):
        return f"codecs {[c.get('name') for c in codecs]}"
    return None


def open_windows(store: Location, name: str, frame_axis: int, direct: bool = True
                 ) -> Windows:
    """A reader of frame windows of ``<store>/<name>``: chunk files if the layout allows it
    (and ``direct``, and the store is local), else zarr-python."""
    path = store / name
    try:
        meta = json.loads((path / "zarr.json").read_text())
    except (OSError, ValueError) as e:
        gone = "no longer exists (deleted after it was opened?)" if not store.is_dir() else (
            f"has no readable {name}/zarr.json ({e}); it is damaged")
        msg = (
            f"the store {store} {gone}, so {name} cannot be read. Open the recording again "
            "(open_mouse converts it again from its source)."
        )
        raise StoreError(msg) from e
    reason = ("a store at a URL" if isinstance(store, RemotePath) else
              direct_layout(meta, frame_axis) if direct else "direct reads turned off")
    if reason is None:
        return ChunkFiles(cast(Path, path), meta, frame_axis)  # local (above)
    log.info("%s: reading through zarr-python (%s)", path, reason)
    return ZarrWindows(path, frame_axis)
