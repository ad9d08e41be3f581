"""The zarr v3 store of a recording: written once from its file tree, read lazily ever after.

:func:`convert` writes the store that :func:`sensorium_data.open_mouse` reads; a 2023 (video)
store is drawn in :mod:`~sensorium_data.store.video`, a 2022 (static image) store in
:mod:`~sensorium_data.store.static`. Both record ``competition`` in the store's attributes.

The modules, in the order they depend on each other (each imports only those above it)::

    layout       schema version, codecs, the mapped layout, quiet_zarr: all a reader needs
    chunks       reads that never turn a missing or damaged chunk into values
    writer       StoreWriter, the base of the writers, and what they share
    video        VideoWriter (2023)          static     StaticWriter (2022)
    conversion   convert and its lock; the writer of each competition
    upgrade      rewriting a store of an earlier schema from the store itself

Readers (:mod:`sensorium_data.dataset`, :mod:`sensorium_data.loaders`) import ``layout`` and
``chunks`` only.
"""

from sensorium_data.store.conversion import WRITERS, convert, convert_tree, default_store
from sensorium_data.store.layout import (
    CODEC,
    READABLE_SCHEMAS,
    RESPONSE_CODEC,
    SCHEMA_VERSION,
    check_schema,
    is_complete,
    quiet_zarr,
)
from sensorium_data.store.video import (
    BEHAVIOR_TRIALS,
    BEHAVIOR_VARIABLES,
    LICENSE_2023,
    VideoWriter,
)
from sensorium_data.store.writer import (
    CONVERT_THREADS,
    StoreWriter,
    check_identity,
    stack_statistics,
)

__all__ = [
    "BEHAVIOR_TRIALS",
    "BEHAVIOR_VARIABLES",
    "CODEC",
    "CONVERT_THREADS",
    "LICENSE_2023",
    "READABLE_SCHEMAS",
    "RESPONSE_CODEC",
    "SCHEMA_VERSION",
    "WRITERS",
    "StoreWriter",
    "VideoWriter",
    "check_identity",
    "check_schema",
    "convert",
    "convert_tree",
    "default_store",
    "is_complete",
    "quiet_zarr",
    "stack_statistics",
]
