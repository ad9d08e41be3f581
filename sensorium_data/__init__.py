"""sensorium_data: the SENSORIUM recordings as lazy, labelled xarray Datasets.

>>> import sensorium_data as sd
>>> sd.list_mice("2023")[0]
'dynamic29156-11-10-Video-8744edeac3b4d1ce16b680916b5267ce'

``open_mouse("F")`` downloads a recording on first use, converts it once into a zarr store in
the cache (``$SENSORIUM_DATA_DIR``) and opens it lazily.
"""

from typing import TYPE_CHECKING, Any

from sensorium_data.archive import CorruptArchiveError, UnsafeArchiveError
from sensorium_data.catalog import (
    Competition,
    Recording,
    UnknownMouseError,
    find,
    list_mice,
    lookup,
    recordings,
)
from sensorium_data.dataset import load_mouse, open_mouse, open_store
from sensorium_data.errors import (
    ClusterError,
    RecordingFormatError,
    SensoriumDataError,
    StoreError,
)
from sensorium_data.fetch import DownloadError, HashMismatchError, download, fetch_mouse
from sensorium_data.simulate import list_presets, simulate
from sensorium_data.store import convert
from sensorium_data.store.upgrade import upgrade
from sensorium_data.tree import FileTree, TreeWriter, open_tree

if TYPE_CHECKING:
    from sensorium_data.loaders import (
        ClipDataset,
        ImageDataset,
        MouseBatchSampler,
        TrialDataset,
        collate,
        collate_images,
    )

__version__ = "0.1.0"

__all__ = [
    "ClipDataset",
    "ClusterError",
    "Competition",
    "CorruptArchiveError",
    "DownloadError",
    "FileTree",
    "HashMismatchError",
    "ImageDataset",
    "MouseBatchSampler",
    "Recording",
    "RecordingFormatError",
    "SensoriumDataError",
    "StoreError",
    "TreeWriter",
    "TrialDataset",
    "UnknownMouseError",
    "UnsafeArchiveError",
    "__version__",
    "collate",
    "collate_images",
    "convert",
    "download",
    "fetch_mouse",
    "find",
    "list_mice",
    "list_presets",
    "load_mouse",
    "lookup",
    "open_mouse",
    "open_store",
    "open_tree",
    "recordings",
    "simulate",
    "upgrade",
]

_LOADERS = ("ClipDataset", "ImageDataset", "MouseBatchSampler", "TrialDataset", "collate",
            "collate_images")


def __getattr__(name: str) -> Any:
    """The torch training views, imported on first use (torch takes ~1.5 s to import)."""
    if name in _LOADERS:
        from sensorium_data import loaders

        return getattr(loaders, name)
    msg = f"module 'sensorium_data' has no attribute {name!r}"
    raise AttributeError(msg)
