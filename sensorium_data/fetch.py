"""Download, verify and extract recordings into the cache (see `sensorium_data.paths`).

The transfer goes through pooch (progress bar, retries, timeout). Verification is ours: the
sha256 of the zip is compared with the catalog's hash where there is one, else with the hash
recorded at the first download in ``<data_dir>/known_hashes.json`` (trust on first use). A
verified, extracted recording is found again without touching pooch or rehashing the zip.
``SENSORIUM_MIRROR`` replaces the catalog's host with another server (the zip's file name is
appended to it).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Protocol
from urllib.parse import unquote, urlsplit

from filelock import FileLock, Timeout

from sensorium_data import paths
from sensorium_data.archive import CorruptArchiveError, extract, partial_prefix
from sensorium_data.errors import Fix, Message, RecordingFormatError, SensoriumDataError

__all__ = [
    "ENV_MIRROR",
    "DownloadError",
    "HashMismatchError",
    "RecordingLike",
    "download",
    "fetch_mouse",
    "source_url",
]

log = logging.getLogger(__name__)

ENV_MIRROR = "SENSORIUM_MIRROR"
RETRIES = 3  # attempts after the first; pooch waits 1 s, 2 s, 3 s in between
TIMEOUT = 60.0  # seconds without a byte from the server before an attempt fails


class RecordingLike(Protocol):
    """What fetching needs from a catalog entry (`sensorium_data.catalog.Recording`)."""

    @property
    def name(self) -> str: ...  # folder name = zip stem

    @property
    def url(self) -> str: ...

    @property
    def sha256(self) -> str | None: ...  # None: no hash published upstream


class HashMismatchError(SensoriumDataError, ValueError):
    """A zip's sha256 differs from the catalog's or from the one recorded at first download."""


class DownloadError(SensoriumDataError, OSError):
    """A zip could not be downloaded (network error, timeout, HTTP error status)."""


def fetch_mouse(
    mouse: str | RecordingLike,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    progress: bool = True,
) -> Path:
    """Download and extract one recording; return the folder holding ``data/`` and ``meta/``.

    On first use the zip is downloaded into ``<data_dir>/downloads/``, verified, and extracted
    into ``<data_dir>/trees/<name>/``. Later calls return that folder at once: the tree only
    appears there once complete, so nothing is downloaded or hashed again. Concurrent calls
    (threads or processes) for the same recording wait for each other.

    Parameters
    ----------
    mouse : str or Recording
        A mouse as the catalog knows it: its letter (``"F"``), short name
        (``"29515-10-12"``) or folder name; or a catalog entry.
    data_dir : str or os.PathLike, optional
        The cache folder; default ``$SENSORIUM_DATA_DIR``, else the OS cache.
    progress : bool
        Show a progress bar while downloading.

    Returns
    -------
    pathlib.Path
        ``<data_dir>/trees/<name>``, holding ``data/`` and ``meta/``.

    Raises
    ------
    UnknownMouseError
        If the catalog knows no such mouse.
    DownloadError
        If the zip cannot be downloaded.
    HashMismatchError
        If the zip's sha256 is not the expected one (the zip is deleted).
    CorruptArchiveError
        If the zip cannot be read (the cached zip is deleted; call again to download anew).

    Examples
    --------
    >>> import sensorium_data as sd
    >>> root = sd.fetch_mouse("F")  # doctest: +SKIP
    >>> sorted(p.name for p in root.iterdir())  # doctest: +SKIP
    ['data', 'meta']
    """
    rec = _resolve(mouse)
    root = paths.data_dir(data_dir)
    tree = paths.trees_dir(root) / rec.name
    if tree.is_dir():
        return tree
    tree.parent.mkdir(parents=True, exist_ok=True)
    with _locked(tree.with_name(f"{rec.name}.lock"), f"extracting {rec.name}"):
        if tree.is_dir():  # another process finished while we waited
            return tree
        for stale in tree.parent.glob(partial_prefix(tree) + "*"):
            log.info("removing %s, left by an interrupted extraction", stale)
            shutil.rmtree(stale, ignore_errors=True)
        zip_path = download(rec, data_dir=root, progress=progress)
        try:
            _check_identity(rec, root, zip_path)
            return extract(zip_path, tree)
        except CorruptArchiveError as err:
            _discard(rec, root, zip_path)
            msg = Message(
                f"{zip_path} is damaged or truncated ({err.__cause__}); the cached download "
                "was deleted. ", Fix(f"Call fetch_mouse({rec.name!r})",
                                     f"Run sensorium fetch {rec.name}"),
                " again to download it afresh",
            )
            raise CorruptArchiveError(msg) from err


def download(
    recording: str | RecordingLike,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    progress: bool = True,
) -> Path:
    """Download one recording's zip into the cache and verify its sha256.

    A zip already in the cache (from an earlier call, or placed there by hand) is verified
    (hashed) instead of downloaded. The expected hash is the catalog's; for recordings
    without one, the hash recorded at the first download in ``<data_dir>/known_hashes.json``
    (a zip seen for the first time has its hash recorded there).

    Parameters
    ----------
    recording : str or Recording
        A mouse name the catalog knows (see `fetch_mouse`), or a catalog entry.
    data_dir : str or os.PathLike, optional
        The cache folder; default ``$SENSORIUM_DATA_DIR``, else the OS cache.
    progress : bool
        Show a progress bar while downloading.

    Returns
    -------
    pathlib.Path
        ``<data_dir>/downloads/<name>.zip``, verified.

    Raises
    ------
    DownloadError
        If the zip cannot be downloaded (after retries).
    HashMismatchError
        If its sha256 is not the expected one; the zip is deleted.

    Examples
    --------
    >>> from sensorium_data.fetch import download
    >>> download("F", progress=False).name  # doctest: +SKIP
    'dynamic29515-10-12-Video-9b4f6a1a067fe51e15306b9628efea20.zip'
    """
    rec = _resolve(recording)
    root = paths.data_dir(data_dir)
    zip_path = paths.downloads_dir(root) / f"{rec.name}.zip"
    zip_path.parent.mkdir(parents=True, exist_ok=True)
    with _locked(zip_path.with_name(zip_path.name + ".lock"), f"downloading {rec.name}"):
        if zip_path.exists():
            _verify(rec, root, zip_path, zip_path, origin=f"found at {zip_path}")
            return zip_path
        url = source_url(rec)
        part = _transfer(rec, url, zip_path, progress)
        if not zipfile.is_zipfile(part):  # e.g. an HTML error page sent with status 200
            part.unlink()
            msg = (
                f"{url} did not send a zip file for {rec.name}; the server may have answered "
                f"with an error page. Try again later, or place the zip by hand at {zip_path}"
            )
            raise DownloadError(msg)
        _verify(rec, root, part, zip_path, origin=f"downloaded from {url}")
        part.replace(zip_path)
    log.info("downloaded %s to %s", rec.name, zip_path)
    return zip_path


def source_url(recording: str | RecordingLike) -> str:
    """The url a recording is downloaded from: the catalog's, or ``$SENSORIUM_MIRROR/<file>``.

    Examples
    --------
    >>> import os
    >>> from types import SimpleNamespace
    >>> rec = SimpleNamespace(name="rec", url="https://gin.g-node.org/u/r/raw/master/rec.zip")
    >>> os.environ["SENSORIUM_MIRROR"] = "http://mirror.example.org/sensorium/"
    >>> source_url(rec)
    'http://mirror.example.org/sensorium/rec.zip'
    >>> del os.environ["SENSORIUM_MIRROR"]
    """
    rec = _resolve(recording)
    mirror = os.environ.get(ENV_MIRROR)
    if not mirror:
        return rec.url
    if urlsplit(mirror).scheme not in ("http", "https"):
        msg = (
            f"{ENV_MIRROR}={mirror!r} is not an http(s) url; set it to a server's base url, "
            "or copy the zip into the cache's downloads/ folder by hand and unset it"
        )
        raise ValueError(msg)
    file_name = unquote(PurePosixPath(urlsplit(rec.url).path).name)
    return f"{mirror.rstrip('/')}/{file_name}"


def _resolve(recording: str | RecordingLike) -> RecordingLike:
    if isinstance(recording, str):
        from sensorium_data.catalog import lookup

        return lookup(recording)
    name = recording.name
    if not name or name in (".", "..") or "/" in name or "\\" in name:
        msg = f"recording name {name!r} is not a folder name; expected e.g. 'dynamic29515-10-12-…'"
        raise ValueError(msg)
    return recording


def _transfer(rec: RecordingLike, url: str, zip_path: Path, progress: bool) -> Path:
    import pooch
    import requests

    part = zip_path.with_name(zip_path.name + ".part")
    part.unlink(missing_ok=True)  # left by a killed run; we hold the lock
    downloader = pooch.HTTPDownloader(
        progressbar=progress, timeout=TIMEOUT, headers={"User-Agent": _user_agent()}
    )
    # No hash for pooch: it would retry a mismatch as if it were a network error, and we
    # check (and explain) it ourselves.
    manager = pooch.create(
        path=zip_path.parent,
        base_url="",
        registry={part.name: None},
        urls={part.name: url},
        retry_if_failed=RETRIES,
    )
    log.info("downloading %s from %s", rec.name, url)
    pooch_log = pooch.get_logger()  # pooch prints its INFO messages to stderr; we log ours
    level = pooch_log.level
    pooch_log.setLevel(logging.WARNING)
    try:
        manager.fetch(part.name, downloader=downloader)
    except requests.exceptions.RequestException as err:
        msg = (
            f"could not download {rec.name} from {url}: {err}. Check the connection and try "
            f"again; or place the zip there by hand at {zip_path} (it is verified on the next "
            f"call), or set {ENV_MIRROR} to the base url of a server holding the same file"
        )
        raise DownloadError(msg) from err
    finally:
        pooch_log.setLevel(level)
    return part


def _verify(rec: RecordingLike, root: Path, path: Path, zip_path: Path, *, origin: str) -> None:
    """Check ``path`` (to become ``zip_path``) against the expected hash; delete it if wrong."""
    actual = _sha256(path)
    known = paths.known_hashes_file(root)
    expected: str | None
    if rec.sha256:
        expected, source = rec.sha256.lower(), "the catalog"
        fix = "if it fails again, the catalog's hash or the server's file is wrong: report it"
    else:
        expected = _read_known_hashes(known).get(rec.name)
        source = f"{known} (recorded at the first download)"
        fix = f"if the file changed upstream on purpose, remove the entry {rec.name!r} from {known}"
        if expected is None:
            _record_hash(known, rec.name, actual)
            log.info("recorded sha256 %s of %s in %s (trust on first use)", actual, rec.name, known)
            return
    if actual != expected:
        path.unlink(missing_ok=True)
        msg = (
            f"sha256 of {zip_path.name} ({origin}) does not match: expected {expected} from "
            f"{source}, got {actual}. The file was deleted; run again to download it afresh; "
            f"{fix}"
        )
        raise HashMismatchError(msg)


def _check_identity(rec: RecordingLike, root: Path, zip_path: Path) -> None:
    """Refuse (and forget) a zip whose counts are not the catalog's for its name."""
    from sensorium_data import catalog
    from sensorium_data.store.writer import check_identity
    from sensorium_data.tree import open_tree

    if catalog.find(rec.name) is None:
        return
    try:
        check_identity(open_tree(zip_path))
    except RecordingFormatError as err:
        _discard(rec, root, zip_path)
        # err's message names its fix in both words (a Message): kept as a part, not str()'d
        msg = Message(err.args[0], " The download was deleted; check the mirror "
                      f"(${ENV_MIRROR}) or the server.")
        raise RecordingFormatError(msg) from err


def _discard(rec: RecordingLike, root: Path, zip_path: Path) -> None:
    """Forget a cached zip found unreadable, and its recorded hash (it was of a bad file)."""
    zip_path.unlink(missing_ok=True)
    if not rec.sha256:
        known = paths.known_hashes_file(root)
        with _locked(known.with_name(known.name + ".lock"), "updating known hashes"):
            hashes = _read_known_hashes(known)
            if hashes.pop(rec.name, None) is not None:
                _write_json(known, hashes)


def _sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _read_known_hashes(path: Path) -> dict[str, str]:
    try:
        hashes = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except ValueError as err:
        msg = f"{path} is not valid JSON ({err}); delete it (hashes are recorded again)"
        raise ValueError(msg) from err
    if not isinstance(hashes, dict):
        msg = f"{path} should map folder names to sha256 hashes; delete it (recorded again)"
        raise ValueError(msg)
    return hashes


def _record_hash(path: Path, name: str, sha256: str) -> None:
    with _locked(path.with_name(path.name + ".lock"), "updating known hashes"):
        hashes = _read_known_hashes(path)
        hashes[name] = sha256
        _write_json(path, hashes)


def _write_json(path: Path, obj: dict[str, str]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)


@contextmanager
def _locked(lock_path: Path, doing: str) -> Iterator[None]:
    lock = FileLock(lock_path)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log.info("waiting for another process %s (lock %s)", doing, lock_path)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


def _user_agent() -> str:
    from importlib.metadata import PackageNotFoundError, version

    import pooch

    try:
        ours = version("sensorium")
    except PackageNotFoundError:
        ours = "unknown"
    return f"sensorium/{ours} (sensorium_data; pooch/{pooch.__version__})"
