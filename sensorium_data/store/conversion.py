"""Converting a recording's file tree once into a store: :func:`convert` and its lock.

Conversion is atomic (written under a temporary name, renamed when complete, so a killed
conversion never leaves a store that opens) and locked (a second process converting the same
recording waits, then opens the finished store). The writer is the one of the tree's
competition (:data:`WRITERS`).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import overload

from filelock import FileLock

from sensorium_data import paths
from sensorium_data.errors import OVERWRITE, Fix, Message, StoreError
from sensorium_data.remote import RemotePath, clear_abandoned, is_url, publish
from sensorium_data.store.layout import SCHEMA_VERSION, read_attrs
from sensorium_data.store.static import StaticWriter
from sensorium_data.store.video import VideoWriter
from sensorium_data.store.writer import StoreWriter
from sensorium_data.tree import FileTree, open_tree

log = logging.getLogger(__name__)

WRITERS: dict[str, Callable[[FileTree, Path, bool], StoreWriter]] = {
    w.competition: w for w in (VideoWriter, StaticWriter)
}
"""The writer of each competition's trees: ``WRITERS[tree.competition](tree, target, progress)``."""


def default_store(tree: FileTree, data_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where :func:`convert` puts a store: ``<data_dir>/stores/<name>-<fingerprint>.zarr``."""
    return paths.stores_dir(paths.data_dir(data_dir)) / f"{tree.name}-{tree.fingerprint}.zarr"


@overload
def convert(tree: str | os.PathLike[str], store: os.PathLike[str] | None = None, *,
            data_dir: str | os.PathLike[str] | None = None, overwrite: bool = False,
            progress: bool = True, storage_options: dict | None = None) -> Path: ...


@overload
def convert(tree: str | os.PathLike[str], store: str, *,
            data_dir: str | os.PathLike[str] | None = None, overwrite: bool = False,
            progress: bool = True, storage_options: dict | None = None
            ) -> Path | RemotePath: ...


def convert(
    tree: str | os.PathLike[str],
    store: str | os.PathLike[str] | None = None,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    progress: bool = True,
    storage_options: dict | None = None,
) -> Path | RemotePath:
    """Convert a recording's file tree (folder or zip) into a zarr v3 store; return its path.

    Reads the tree in place (nothing is written next to it) and writes the store atomically
    under a lock: if another process is converting the same recording, this call waits and
    returns the finished store. A complete store of the current schema is returned as is.

    Parameters
    ----------
    tree
        A recording's folder (holding ``data/`` and ``meta/``), or its zip: a 2023 (video)
        recording, or a 2022 (static image) one (layouts in :mod:`sensorium_data.store`).
    store
        Where to write the store. Default: ``<data_dir>/stores/<name>-<fingerprint>.zarr``.
        An fsspec URL (``s3://bucket/prefix/F.zarr``): converted locally, then uploaded, its
        root metadata last (:func:`sensorium_data.remote.publish`); ``storage_options`` are
        fsspec's (default: the usual fsspec/botocore configuration).
    data_dir
        The cache folder (default ``$SENSORIUM_DATA_DIR``, else the OS cache).
    overwrite
        Convert again even if a complete store exists at ``store``.
    progress
        Show progress bars.

    Examples
    --------
    >>> import sensorium_data as sd
    >>> tree = "~/data/dynamic29515-10-12-Video-9b4f6a1a067fe51e15306b9628efea20"
    >>> store = sd.convert(tree)  # doctest: +SKIP
    >>> store = sd.convert(tiny[0], progress=False)  # a simulated recording (sd.simulate)
    >>> store.name  # in the cache: <name>-<fingerprint>.zarr
    'tiny-A-....zarr'
    """
    if is_url(store):
        return convert_to_url(tree, str(store), storage_options=storage_options,
                              overwrite=overwrite, progress=progress)
    source = open_tree(tree)
    target = Path(store).expanduser() if store is not None else default_store(source, data_dir)
    return convert_tree(source, target, overwrite=overwrite, progress=progress)


def convert_to_url(tree: str | os.PathLike[str], url: str, *,
                   storage_options: dict | None = None, overwrite: bool = False,
                   progress: bool = True) -> RemotePath:
    """Convert ``tree`` into a temporary local store, then :func:`publish` it at ``url``."""
    import tempfile

    target = RemotePath(url, storage_options)
    target.fs.invalidate_cache()
    clear_abandoned(target)
    if target.fs.exists(target.path) and not overwrite:  # before the conversion's work
        msg = Message(f"{url} already holds files; pass ", OVERWRITE, " to replace them, "
                      "or another URL.")
        raise FileExistsError(msg)
    scratch = Path(tempfile.mkdtemp(prefix="sensorium-upload-"))
    try:
        local = convert(tree, scratch / target.name, progress=progress)
        return publish(local, url, storage_options=storage_options, overwrite=overwrite)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def convert_tree(source: FileTree, target: Path, *, overwrite: bool = False,
                 progress: bool = True) -> Path:
    """:func:`convert` for an opened tree and an explicit store path."""
    target.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(target) + ".lock")
    if lock.is_locked:
        log.info("waiting for another process converting %s", target.name)
    with lock:
        for stale in _leftovers(target):  # no conversion into target runs: we hold its lock
            log.info("removing %s left by an interrupted conversion", stale.name)
            shutil.rmtree(stale, ignore_errors=True)
        if _reusable(source, target, overwrite):
            return target
        log.info("converting %s into %s", source.location, target)
        return WRITERS[source.competition](source, target, progress).run()


def _leftovers(target: Path) -> list[Path]:
    """Folders a killed conversion into ``target`` leaves: ``<store>.tmp-<pid>`` (the store
    being written) and ``<store>.old-<pid>`` (the store being replaced)."""
    pattern = re.compile(re.escape(target.name) + r"\.(tmp|old)-[0-9]+")
    return [p for p in target.parent.iterdir() if pattern.fullmatch(p.name)]


def _reusable(source: FileTree, target: Path, overwrite: bool) -> bool:
    """Whether ``target`` is a finished store of ``source`` to return as is; raises if it is
    something that must not be replaced (anything but a store this library completed, or a
    store of another recording without ``overwrite``)."""
    if not target.exists() or (target.is_dir() and not any(target.iterdir())):
        return False
    try:
        attrs = read_attrs(target) if target.is_dir() else {}
    except StoreError:
        attrs = {}
    ours = bool(attrs.get("complete")) and "source_fingerprint" in attrs
    if not ours:
        msg = Message(
            f"{target} exists and is not a store that sensorium_data completed; it will not be "
            "overwritten or removed, even with ", OVERWRITE, ". Choose another store path.",
        )
        raise StoreError(msg)
    same = attrs["source_fingerprint"] == source.fingerprint
    if overwrite:
        return False
    if not same:
        msg = Message(
            f"{target} is the store of {attrs.get('source')} (fingerprint "
            f"{attrs['source_fingerprint']}), not of {source.location} (fingerprint "
            f"{source.fingerprint}: file names and sizes differ). Choose another store path, "
            "or pass ", OVERWRITE, " to replace it.",
        )
        raise StoreError(msg)
    if attrs.get("schema_version") != SCHEMA_VERSION:
        log.info("%s is of schema version %s; converting it again", target,
                 attrs.get("schema_version"))
        return False
    # an extraction is newer than the zip it was converted from: compare the same source only
    changed = source.modified - float(attrs.get("source_modified", source.modified))
    if changed > 0 and attrs.get("source") == source.location:
        log.warning(
            "%s has files modified after %s was converted from it (names and sizes unchanged); "
            "the store keeps the old values. Convert again with %s to take the changes.",
            source.location, target,
            Message(Fix(f"sensorium_data.convert({source.location!r}, {str(target)!r}, "
                        "overwrite=True)",
                        f"sensorium convert {source.location} --store {target} --overwrite")),
        )
    return True
