"""What a store is on disk, for the code that reads it: schema, codecs, the mapped layout.

Readers (:mod:`sensorium_data.dataset`, the training loaders) import this module only, never
the writers. It holds the schema version and the check every reader makes, the codecs, the
quiet zarr context, and the mapped layout.

The mapped layout: each trial of a large array is one raw, time-major file. Schema 2 stores
(written by :func:`sensorium_data.convert` since the training loader maps them) keep
``responses``, ``rates`` and ``videos`` as one uncompressed chunk per trial::

    responses/c/<trial>/0/0      float32 (frame, neuron)   TransposeCodec((0, 2, 1)) + bytes
    videos/c/<trial>/0/0/0       uint8   (frame, height, width)                      bytes

so that the frames ``start:stop`` of one trial are one contiguous slice of one file, which
:class:`sensorium_data.loaders.mapped.MappedTrials` maps with ``mmap``. The arrays keep their
dims, (trial, neuron, frame) and (trial, frame, height, width): zarr's ``TransposeCodec``
puts the bytes time-major on disk, and xarray and dask read the store as any other zarr store.
Every trial that has data has its file (``write_empty_chunks``); the only files missing are
those of withheld responses, which read as NaN.

Schema 1 stores (Blosc/zstd chunks of 50 frames) are still read, through the slower decoding
path; :func:`sensorium_data.upgrade` rewrites one into schema 2 from the store itself.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import zarr
from zarr.codecs import BloscCodec, TransposeCodec, ZstdCodec

from sensorium_data.errors import Fix, Message, StoreError, convert_again

SCHEMA_VERSION = 2
"""Version of the store layout; a store of another version is converted again.

2: responses, rates and videos in the mapped layout (below);
1: the same arrays in Blosc/zstd chunks (still read; :func:`sensorium_data.upgrade`)."""
READABLE_SCHEMAS = (1, SCHEMA_VERSION)
"""Schema versions :func:`sensorium_data.open_mouse` opens."""

# Codecs, measured in docs/storage.md: the arrays outside the mapped layout are zstd; 2022
# responses (one number per trial and neuron) Blosc/zstd with byte shuffling.
RESPONSE_CODEC = BloscCodec(cname="zstd", clevel=3, shuffle="shuffle", typesize=4)
CODEC = ZstdCodec(level=3)


@contextmanager
def quiet_zarr() -> Iterator[None]:
    """Silence zarr's notices about consolidated metadata and string dtypes in v3 (known)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Cc]onsolidated metadata.*")
        warnings.filterwarnings("ignore", message=".*does not have a Zarr V3 specification.*")
        yield


def read_attrs(store: Path) -> dict:
    """The attributes of the zarr group at ``store``; a :class:`StoreError` if it is none."""
    if not (store / "zarr.json").is_file():
        msg = f"{store} is not a zarr store (no zarr.json)."
        raise StoreError(msg)
    with quiet_zarr():
        try:
            group = zarr.open_group(store, mode="r")
        except Exception as e:  # zarr raises several types for damaged metadata
            msg = f"{store} is not a readable zarr store ({e})."
            raise StoreError(msg) from e
        return dict(group.attrs)


def is_complete(store: Path) -> bool:
    """True if ``store`` is a finished store of this schema version."""
    try:
        attrs = read_attrs(store)
    except StoreError:
        return False
    return attrs.get("schema_version") == SCHEMA_VERSION and bool(attrs.get("complete"))


def check_schema(store: object, attrs: Mapping[str, object], fix: str | Fix = "") -> None:
    """Refuse a store whose ``schema_version`` (in ``attrs``) this version does not read.

    ``fix`` is added to the advice (another way out than converting again).

    Examples
    --------
    >>> check_schema("a.zarr", {"schema_version": SCHEMA_VERSION})
    >>> check_schema("a.zarr", {"schema_version": 0})
    Traceback (most recent call last):
    ...
    sensorium_data.errors.StoreError: a.zarr is a store of schema version 0, but this version \
of sensorium reads versions [1, 2]. Convert the recording again: \
sensorium_data.convert(<tree or zip>, store, overwrite=True).
    """
    version = attrs.get("schema_version")
    if version not in READABLE_SCHEMAS:
        msg = Message(
            f"{store} is a store of schema version {version}, but this version of sensorium "
            f"reads versions {list(READABLE_SCHEMAS)}. Convert the recording again: ",
            convert_again(), fix, ".",
        )
        raise StoreError(msg)


MAPPED = ("responses", "rates", "videos")
"""The arrays written in the mapped layout; the others are small and keep zarr's defaults."""
# The frame axis of each mapped array; responses are stored transposed so frames come first.
FRAME_AXIS = {"responses": 2, "rates": 2, "videos": 1}
_DTYPES: dict[str, np.dtype] = {"uint8": np.dtype(np.uint8), "float32": np.dtype("<f4")}


def mapped_encoding(name: str) -> dict[str, object]:
    """Keyword arguments of ``zarr.Group.create_array`` for array ``name`` of :data:`MAPPED`
    (chunks are passed apart: one whole trial)."""
    filters = [TransposeCodec(order=(0, 2, 1))] if FRAME_AXIS[name] == 2 else None
    return {"filters": filters, "compressors": None,
            "config": {"write_empty_chunks": True}}


def chunk_file(array: Path, trial: int, ndim: int) -> Path:
    """The chunk file of trial position ``trial`` of a one-trial-per-chunk array."""
    return array.joinpath("c", str(trial), *["0"] * (ndim - 1))


def array_file_reason(meta: dict, dtypes: Mapping[str, np.dtype]) -> str | None:
    """Why the array described by ``meta`` (its ``zarr.json``) does not keep its chunks as
    plain files named ``c/<i>/<j>...`` of one of ``dtypes``, or None if it does: the checks
    the mapped and the direct readers share."""
    if meta.get("zarr_format") != 3 or meta.get("node_type") != "array":
        return "not a zarr v3 array"
    if meta.get("storage_transformers"):
        return "storage transformers"
    if meta.get("data_type") not in dtypes:
        return f"data type {meta.get('data_type')}"
    keys = meta.get("chunk_key_encoding", {})
    if keys.get("name") != "default" or keys.get("configuration", {}).get("separator") != "/":
        return f"chunk key encoding {keys}"
    return None


def mapped_reason(meta: dict, frame_axis: int) -> str | None:
    """Why the array described by ``meta`` (its ``zarr.json``) cannot be mapped, or None if each
    trial is one raw, little-endian, time-major chunk file."""
    reason = array_file_reason(meta, _DTYPES)
    if reason is not None:
        return reason
    grid = meta.get("chunk_grid", {})
    shape = list(meta.get("shape", []))
    chunk = list(grid.get("configuration", {}).get("chunk_shape", []))
    if grid.get("name") != "regular" or chunk != [1, *shape[1:]]:
        return f"chunks {chunk} of shape {shape} are not one whole trial each"
    names = [c.get("name") for c in meta.get("codecs", [])]
    if frame_axis == 2:
        if names != ["transpose", "bytes"] or list(
                meta["codecs"][0].get("configuration", {}).get("order", [])) != [0, 2, 1]:
            return f"codecs {names} (need transpose (0, 2, 1) then bytes: frames first on disk)"
    elif names != ["bytes"]:
        return f"codecs {names} (need bytes only)"
    endian = meta["codecs"][-1].get("configuration", {}).get("endian", "little")
    if endian != "little" and _DTYPES[meta["data_type"]].itemsize > 1:
        return "big-endian bytes"
    return None
