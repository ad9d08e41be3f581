"""Stores at fsspec URLs (``s3://bucket/prefix/F.zarr``, ``gs://...``, ``memory://...``).

A store on object storage is read lazily through zarr's fsspec store; credentials and the
endpoint come from the usual fsspec/botocore configuration (``AWS_ACCESS_KEY_ID``,
``AWS_ENDPOINT_URL``, ``~/.aws``...) or from ``storage_options`` passed through.
:class:`RemotePath` gives the store's files the few :class:`pathlib.Path` methods the
checked readers (:mod:`sensorium_data.chunks`, the loaders) use, so they read either kind.

A store is published to a URL by :func:`publish`: every file is uploaded under the URL but
the root ``zarr.json`` (whose attributes say ``complete`` and hold the consolidated
metadata), which is written last, in one write; an upload that stops before it leaves a
prefix that never opens as a complete store. ``sensorium cache pull URL`` copies a store back
to the local cache (:func:`pull`), where training reads it fastest.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import IO, Any

from sensorium_data.errors import OVERWRITE, Fix, Message, StoreError

log = logging.getLogger(__name__)

_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.\-]*://")
# storage_options by store URL, for handles made again from a Dataset's attrs (the loaders):
# credentials never go into a Dataset's attributes
_OPTIONS: dict[str, dict[str, Any]] = {}


def is_url(location: object) -> bool:
    """Whether ``location`` is an fsspec URL (``file://`` counts as local)."""
    return (isinstance(location, str) and bool(_URL.match(location))
            and not location.startswith("file://"))


class RemotePath:
    """A file or folder at an fsspec URL, with the :class:`pathlib.Path` methods the readers
    use (``/``, ``joinpath``, ``is_file``, ``is_dir``, ``read_text``, ``open``,
    ``relative_to``, ``name``).

    Examples
    --------
    >>> import fsspec
    >>> fsspec.filesystem("memory").pipe("/doc/a.zarr/zarr.json", b"{}")
    >>> p = RemotePath("memory://doc/a.zarr")
    >>> (p / "zarr.json").is_file(), p.is_dir(), (p / "zarr.json").read_text()
    (True, True, '{}')
    """

    def __init__(self, url: str, storage_options: Mapping[str, Any] | None = None,
                 _fs: Any = None):
        import fsspec

        self.url = url.rstrip("/")
        if storage_options is not None:
            _OPTIONS[self.url] = dict(storage_options)
        self.options = dict(storage_options if storage_options is not None
                            else _options_for(self.url))
        if _fs is None:
            _fs, _ = fsspec.core.url_to_fs(self.url, **self.options)
        self.fs = _fs
        self.path = _fs._strip_protocol(self.url)

    def _child(self, *parts: str) -> RemotePath:
        out = RemotePath.__new__(RemotePath)
        out.url = "/".join([self.url, *parts])
        out.options, out.fs = self.options, self.fs
        out.path = "/".join([self.path, *parts])
        return out

    def __truediv__(self, part: str) -> RemotePath:
        return self._child(str(part))

    def joinpath(self, *parts: str) -> RemotePath:
        return self._child(*map(str, parts))

    @property
    def parent(self) -> RemotePath:
        out = RemotePath.__new__(RemotePath)
        out.url, out.options, out.fs = self.url.rsplit("/", 1)[0], self.options, self.fs
        out.path = self.path.rsplit("/", 1)[0]
        return out

    @property
    def name(self) -> str:
        return self.url.rsplit("/", 1)[-1]

    def relative_to(self, other: RemotePath) -> PurePosixPath:
        return PurePosixPath(self.path).relative_to(other.path)

    def is_file(self) -> bool:
        self.fs.invalidate_cache(self.path)  # a listing cached before a deletion must not do
        return bool(self.fs.isfile(self.path))

    def is_dir(self) -> bool:
        self.fs.invalidate_cache(self.path)
        return bool(self.fs.isdir(self.path))

    def exists(self) -> bool:
        self.fs.invalidate_cache(self.path)
        return bool(self.fs.exists(self.path))

    def read_text(self) -> str:
        return bytes(self.fs.cat_file(self.path)).decode()

    def open(self, mode: str = "rb") -> IO[Any]:
        return self.fs.open(self.path, mode)

    def zarr_store(self) -> Any:
        """zarr's read-only fsspec store of this folder."""
        from zarr.storage import FsspecStore

        return FsspecStore.from_url(self.url, storage_options=self.options or None,
                                    read_only=True)

    def __str__(self) -> str:
        return self.url

    def __repr__(self) -> str:
        return f"RemotePath({self.url!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RemotePath) and other.url == self.url

    def __hash__(self) -> int:
        return hash(self.url)


def _options_for(url: str) -> dict[str, Any]:
    """The storage options a store above or at ``url`` was opened with, else none."""
    for root, options in _OPTIONS.items():
        if url == root or url.startswith(root + "/"):
            return options
    return {}


Location = Path | RemotePath


def as_location(store: str | os.PathLike[str] | RemotePath,
                storage_options: Mapping[str, Any] | None = None) -> Location:
    """A :class:`RemotePath` for a URL, else a local :class:`~pathlib.Path`."""
    if isinstance(store, RemotePath):
        return store
    if is_url(store):
        return RemotePath(str(store), storage_options)
    if storage_options:
        # the keys only: the values may hold credentials
        msg = (f"storage_options with keys {sorted(storage_options)} and the local path {store}; "
               "they are for stores at fsspec URLs (s3://bucket/prefix/F.zarr); drop them.")
        raise ValueError(msg)
    return Path(store).expanduser()


def zarr_target(location: Location) -> Any:
    """What ``zarr.open_*`` takes for ``location``."""
    return location.zarr_store() if isinstance(location, RemotePath) else location


def check_reachable(store: RemotePath) -> None:
    """Raise a :class:`StoreError` naming the cause (credentials, endpoint, bucket, prefix)
    when the store's root metadata cannot be read."""
    try:
        store.fs.invalidate_cache()
        if _found(store.fs, f"{store.path}/zarr.json"):
            return
        bucket = store.path.split("/", 1)[0]
        bucket_exists = _found(store.fs, bucket)
    except PermissionError as e:
        msg = (f"access to {store} was denied ({e}); check the credentials: storage_options="
               "{'key': ..., 'secret': ...} or AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or "
               "~/.aws/credentials (profile: storage_options={'profile': ...}).")
        raise StoreError(msg) from e
    except Exception as e:  # botocore, aiohttp, gcsfs... raise their own connection errors
        endpoint = store.options.get("client_kwargs", {}).get("endpoint_url") or os.environ.get(
            "AWS_ENDPOINT_URL", "the default")
        msg = (f"cannot reach {store} ({type(e).__name__}: {e}); check the endpoint "
               f"({endpoint}): storage_options={{'client_kwargs': {{'endpoint_url': ...}}}} or "
               "AWS_ENDPOINT_URL, and the network.")
        raise StoreError(msg) from e
    if not bucket_exists:
        msg = (f"the bucket {bucket!r} of {store} does not exist (or these credentials cannot "
               "see it); check the URL, or create the bucket.")
        raise FileNotFoundError(msg)
    msg = Message(f"no store at {store}: it has no zarr.json (not a store, or its upload never "
                  "finished); check the prefix, or convert ",
                  Fix("to this URL (sensorium_data.convert(tree, url))",
                      "with --out to this URL"), " again.")
    raise FileNotFoundError(msg)


def _found(fs: Any, path: str) -> bool:
    """Whether ``path`` exists; errors other than its absence (denied, unreachable) raise."""
    try:
        fs.info(path)
    except FileNotFoundError:
        return False
    return True


# Written first and removed last by publish: a prefix holding it but no root zarr.json is
# an upload that stopped.
UPLOADING = ".sensorium-uploading"


def publish(local: Path, url: str, *, storage_options: Mapping[str, Any] | None = None,
            overwrite: bool = False) -> RemotePath:
    """Upload the finished local store ``local`` to ``url``; the root ``zarr.json`` last.

    Anything already at ``url`` is refused unless ``overwrite``; then its root ``zarr.json``
    goes first (it stops opening as a store) and the rest after it.
    """
    target = RemotePath(url, storage_options)
    fs = target.fs
    fs.invalidate_cache()
    clear_abandoned(target)
    if fs.exists(target.path):
        if not overwrite:
            msg = Message(f"{url} already holds files; pass ", OVERWRITE, " to replace "
                          "them, or another URL.")
            raise FileExistsError(msg)
        if fs.isfile(f"{target.path}/zarr.json"):
            fs.rm_file(f"{target.path}/zarr.json")
        fs.rm(target.path, recursive=True)
    files = sorted(p for p in local.rglob("*") if p.is_file() and p != local / "zarr.json")
    log.info("uploading %d files of %s to %s", len(files) + 1, local, url)
    fs.pipe_file(f"{target.path}/{UPLOADING}", b"an upload by sensorium_data in progress\n")
    fs.put([str(p) for p in files],
           [f"{target.path}/{p.relative_to(local).as_posix()}" for p in files])
    fs.put_file(str(local / "zarr.json"), f"{target.path}/zarr.json")  # publishes the store
    fs.rm_file(f"{target.path}/{UPLOADING}")
    fs.invalidate_cache()
    return target


def clear_abandoned(target: RemotePath) -> None:
    """Remove an upload of this library that stopped before its root ``zarr.json`` (its
    marker file is there, the metadata is not): it never opened as a store, and a retry (a dask
    worker's, the user's) must not be refused because of it. Anything else is left alone."""
    fs = target.fs
    if fs.isfile(f"{target.path}/{UPLOADING}") and not fs.isfile(f"{target.path}/zarr.json"):
        log.warning("%s holds an upload that stopped before it was published; removing it",
                    target.url)
        fs.rm(target.path, recursive=True)
        fs.invalidate_cache()


def pull(url: str, local: Path, *, storage_options: Mapping[str, Any] | None = None,
         overwrite: bool = False) -> Path:
    """Copy the store at ``url`` into the local folder ``local`` (a ``.partial`` folder first,
    renamed into place when every file is there); return ``local``."""
    import shutil

    source = RemotePath(url, storage_options)
    check_reachable(source)
    if local.exists() and not overwrite:
        msg = Message(f"{local} exists; pass ", OVERWRITE, " to replace it.")
        raise FileExistsError(msg)
    partial = local.with_name(local.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    source.fs.get(f"{source.path}/", str(partial), recursive=True)
    # the old copy goes only once the new one is whole: a failed download leaves it as it was
    old = local.with_name(local.name + ".old")
    if local.exists():
        shutil.rmtree(old, ignore_errors=True)
        local.rename(old)
    partial.rename(local)
    shutil.rmtree(old, ignore_errors=True)
    return local
