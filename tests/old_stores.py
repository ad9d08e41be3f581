"""Stores as the earlier schema (1) wrote them, made from a store of today's schema."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import zarr
from zarr.codecs import BloscCodec, ZstdCodec

from sensorium_data.store import quiet_zarr


def schema_1_copy(store: Path, out: Path) -> Path:
    """A copy of ``store`` in the schema 1 layout: responses and rates in Blosc zstd chunks of
    50 frames, videos zstd, withheld (all-NaN) trials without chunks; ``schema_version`` 1."""
    shutil.copytree(store, out)
    with quiet_zarr():
        group = zarr.open_group(out, mode="r+")
        for name in ("responses", "rates", "videos"):
            if name not in group:
                continue
            arr = group[name]
            assert isinstance(arr, zarr.Array)
            values, dims, fill = arr[:], arr.metadata.dimension_names, arr.fill_value
            del group[name]
            if name == "videos":
                chunks, codec = (1, *values.shape[1:]), ZstdCodec(level=3)
            else:
                chunks = (1, values.shape[1], 50)
                codec = BloscCodec(cname="zstd", clevel=3, shuffle="shuffle", typesize=4)
            new = group.create_array(name, shape=values.shape, chunks=chunks, dtype=values.dtype,
                                     dimension_names=dims, fill_value=fill, compressors=[codec])
            for i, trial in enumerate(values):
                if not (np.issubdtype(trial.dtype, np.floating) and np.isnan(trial).all()):
                    new[i] = trial
        group.attrs["schema_version"] = 1
        zarr.consolidate_metadata(out)
    return out
