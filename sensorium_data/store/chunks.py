"""Reads of a store's big arrays that never turn missing or damaged data into values.

zarr returns an array's fill value for a chunk that has no file: in a store written by
:func:`sensorium_data.convert` that stands for data that does not exist (the responses of a
trial whose test labels were withheld, the padding frames past a trial's ``n_frames``). A
chunk file of anything else that is missing (deleted, or the whole store deleted while open)
or damaged (truncated) is an error naming the store, the array and the trial, raised by
:class:`Chunks` whatever reads the store: the xarray view (:func:`checked_dask`), the training
loaders (``loaders/reader.py``) and whole-array reads (:func:`read_array`).

Every chunk of existing data is written at conversion (``write_empty_chunks``; stores that
record ``all_chunks_written`` also have every chunk of the small arrays and statistics), so a
missing one is never a chunk that happened to hold only the fill value. blosc decodes a buffer
cut after its header into wrong values without an error, so the size of each blosc chunk is
checked against its header before it is decoded.
"""

from __future__ import annotations

import functools
import json

import dask.array as da
import numpy as np
import zarr

from sensorium_data.errors import OPEN_AGAIN, Message, StoreError, convert_again
from sensorium_data.remote import Location, as_location, zarr_target

# Arrays whose chunks may be absent for unlabelled (withheld) trials.
LABELLED_ONLY = ("responses", "rates")
FRAME_DIM = "frame"


class Chunks:
    """Which chunk files of ``<store>/<name>`` must exist, and the errors when they do not.

    Parameters
    ----------
    store
        The store folder (a path, or a :class:`~sensorium_data.remote.RemotePath`).
    name
        The array's name (``videos``, ``responses``, ...).
    meta
        The array's ``zarr.json``; read from disk if not given.

    Examples
    --------
    >>> import sensorium_data as sd
    >>> store = sd.convert(tiny[0], progress=False)  # a simulated recording (sd.simulate)
    >>> chunks = Chunks(store, "responses")
    >>> chunks.check((2, 0, 0))  # a StoreError if trial position 2's chunk file were gone
    """

    def __init__(self, store: Location, name: str, meta: dict | None = None):
        self.store, self.name = as_location(store), name
        if meta is None:
            meta = json.loads((self.store / name / "zarr.json").read_text())
        self.shape = tuple(meta["shape"])
        self.chunk = tuple(meta["chunk_grid"]["configuration"]["chunk_shape"])
        dims = list(meta.get("dimension_names") or [])
        self.frame_axis = dims.index(FRAME_DIM) if FRAME_DIM in dims else None
        keys = meta.get("chunk_key_encoding", {})
        self.separator = keys.get("configuration", {}).get("separator", "/")
        self.known_layout = keys.get("name") == "default" and not meta.get("storage_transformers")
        self.blosc = any(c.get("name") == "blosc" for c in meta.get("codecs", []))

    @functools.cached_property
    def _per_trial(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """trial, n_frames and labelled of every trial position (small arrays, read once)."""
        n = self.shape[0]
        out = []
        for coord, default in (("trial", np.arange(n)), ("n_frames", np.full(n, 1 << 30)),
                               ("labelled", np.ones(n, bool))):
            path = self.store / coord
            if not (path / "zarr.json").is_file():
                out.append(default)
                continue
            try:
                out.append(np.asarray(zarr.open_array(zarr_target(path), mode="r")[:]))
            except Exception as e:  # zarr and its codecs raise many types for a damaged chunk
                msg = Message(
                    f"{self.store}: {coord} cannot be read ({type(e).__name__}: {e}); the store "
                    "is damaged. Convert again: ", convert_again(self.store), ".",
                )
                raise StoreError(msg) from e
        return out[0], out[1], out[2]

    @property
    def trials(self) -> np.ndarray:
        return self._per_trial[0]

    @property
    def n_frames(self) -> np.ndarray:
        return self._per_trial[1]

    @property
    def labelled(self) -> np.ndarray:
        return self._per_trial[2]

    def file(self, index: tuple[int, ...]) -> Location:
        """The file of the chunk at grid position ``index``."""
        if self.separator == "/":
            return self.store.joinpath(self.name, "c", *map(str, index))
        return self.store / self.name / self.separator.join(["c", *map(str, index)])

    def key(self, index: tuple[int, ...]) -> str:
        """The chunk's file relative to the store (``responses/c/5/0/1``)."""
        parts = ["c", *map(str, index)]
        return f"{self.name}/{self.separator.join(parts)}"

    def required(self, index: tuple[int, ...]) -> bool:
        """Whether the chunk holds data that exists (so its file must exist)."""
        t0 = index[0] * self.chunk[0]
        positions = np.arange(t0, min(t0 + self.chunk[0], self.shape[0]))
        needed = np.ones(len(positions), bool)
        if self.name in LABELLED_ONLY:
            needed &= self.labelled[positions].astype(bool)
        if self.frame_axis is not None:
            first_frame = index[self.frame_axis] * self.chunk[self.frame_axis]
            needed &= first_frame < self.n_frames[positions]
        return bool(needed.any())

    def what(self, index: tuple[int, ...]) -> str:
        """``"<name> of trial <t>"``: the trial (its ``trial`` coordinate, the file index) at
        the start of a chunk; just the name for a group without trials (statistics)."""
        if not (self.store / "trial").is_dir():
            return self.name
        position = min(index[0] * self.chunk[0], len(self.trials) - 1)
        return f"{self.name} of trial {self.trials[position]}"

    def check(self, index: tuple[int, ...]) -> None:
        """Raise :class:`StoreError` if the chunk must exist and its file does not."""
        if not self.known_layout or not self.required(index):
            return
        if self.file(index).is_file():
            return
        if not self.store.is_dir():
            msg = Message(
                f"the store {self.store} no longer exists (deleted after it was opened?), so "
                f"{self.what(index)} cannot be read. ", OPEN_AGAIN, ".",
            )
        else:
            msg = Message(
                f"{self.store}: {self.what(index)} is missing (chunk file "
                f"{self.key(index)}); the store is damaged, and it is "
                "not read as NaN. Convert again: ", convert_again(self.store), ".",
            )
        raise StoreError(msg)

    def indices(self, region: tuple[slice, ...]) -> list[tuple[int, ...]]:
        """The grid positions of the chunks that ``region`` (slices with start and stop)
        touches."""
        ranges = [range(s.start // c, (s.stop - 1) // c + 1) if s.stop > s.start else range(0)
                  for s, c in zip(region, self.chunk, strict=True)]
        return [tuple(r[i] for r, i in zip(ranges, index, strict=True))
                for index in np.ndindex(*(len(r) for r in ranges))]

    def check_region(self, region: tuple[slice, ...]) -> None:
        """:meth:`check` every chunk that ``region`` touches."""
        for index in self.indices(region):
            self.check(index)

    def check_blosc(self, index: tuple[int, ...], raw: bytes | None = None) -> None:
        """Raise if a blosc chunk's file is shorter or longer than its header says: blosc
        decodes a truncated buffer into wrong values without an error."""
        if not self.blosc or not self.known_layout:
            return
        if raw is None:
            try:
                with self.file(index).open("rb") as f:
                    head = f.read(16)
                    size = f.seek(0, 2)
            except FileNotFoundError:
                return  # missing chunks are check()'s
        else:
            head, size = raw[:16], len(raw)
        if len(head) < 16 or int.from_bytes(head[12:16], "little") != size:
            recorded = int.from_bytes(head[12:16], "little") if len(head) >= 16 else "?"
            error = ValueError(f"{size} bytes, its blosc header says {recorded}")
            raise self.damaged(index, error)

    def damaged(self, index: tuple[int, ...], error: Exception) -> StoreError:
        """The error for a chunk file that exists but cannot be decoded."""
        msg = Message(
            f"{self.store}: {self.what(index)} cannot be read (chunk file "
            f"{self.key(index)}: {type(error).__name__}: {error}); the "
            "file is truncated or damaged. Convert again: ", convert_again(self.store), ".",
        )
        return StoreError(msg)


def _holds_fill(block: np.ndarray, fill: object) -> bool:
    if isinstance(fill, float | np.floating) and np.isnan(fill):
        return bool(np.isnan(block).any())
    return bool((block == fill).any())


def read_region(array: zarr.Array, chunks: Chunks, region: tuple[slice, ...]) -> np.ndarray:
    """``array[region]``, with damaged chunks and missing chunks of existing data as errors."""
    for index in chunks.indices(region) if chunks.blosc else ():
        chunks.check_blosc(index)
    try:
        block = np.asarray(array[region])
    except Exception as e:  # zarr and its codecs raise many types for a damaged chunk
        index = tuple(s.start // c for s, c in zip(region, chunks.chunk, strict=True))
        raise chunks.damaged(index, e) from e
    if _holds_fill(block, array.fill_value):
        chunks.check_region(region)
    return block


def read_array(store: Location, name: str) -> np.ndarray:
    """The whole of ``<store>/<name>``, checked as :func:`read_region` checks."""
    array = zarr.open_array(zarr_target(as_location(store) / name), mode="r")
    return read_region(array, Chunks(store, name), tuple(slice(0, n) for n in array.shape))


def checked_dask(store: Location, name: str) -> da.Array:
    """``<store>/<name>`` as a dask array with one block per chunk, each read by
    :func:`read_region` (the xarray view of :func:`sensorium_data.open_store`)."""
    array = zarr.open_array(zarr_target(as_location(store) / name), mode="r")
    chunks = Chunks(store, name)

    def block(block_info: dict | None = None) -> np.ndarray:
        assert block_info is not None  # dask passes it to a function that names it
        region = tuple(slice(a, b) for a, b in block_info[None]["array-location"])
        return read_region(array, chunks, region)

    grid = tuple(
        tuple(min(c, n - i) for i in range(0, n, c)) if n else (0,)
        for n, c in zip(array.shape, chunks.chunk, strict=True)
    )
    return da.map_blocks(block, chunks=grid, dtype=array.dtype,
                         meta=np.empty((0,) * array.ndim, array.dtype), token=f"read-{name}")


def check_small(store: Location, names: list[str]) -> None:
    """Raise :class:`StoreError` if a chunk file of the small arrays ``names`` (coordinates,
    read whole at opening) is missing; only for stores that record ``all_chunks_written``."""
    for name in names:
        meta = json.loads((as_location(store) / name / "zarr.json").read_text())
        chunks = Chunks(store, name, meta)
        region = tuple(slice(0, n) for n in chunks.shape)
        for index in chunks.indices(region):
            if chunks.known_layout and not chunks.file(index).is_file():
                msg = Message(
                    f"{store}: the chunk file {chunks.key(index)} of {name} "
                    "is missing; the store is damaged. Convert again: ", convert_again(store),
                    ".",
                )
                raise StoreError(msg)
