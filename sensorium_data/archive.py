"""Safe handling of the published recording zips.

Each zip holds one recording folder, usually under a top-level folder named like the zip::

    dynamic29515-10-12-Video-9b4f6a1a067fe51e15306b9628efea20.zip
    ├── dynamic29515-10-12-Video-9b4f6a1a067fe51e15306b9628efea20/
    │   ├── data/   videos/, responses/, behavior/, pupil_center/  (<trial>.npy)
    │   └── meta/   neurons/, trials/, statistics/
    └── __MACOSX/   resource forks written by macOS zip tools (skipped, as are ._* files)

Every member name is checked before anything is written, and a tree appears at its target
only once it is complete: extraction goes to a hidden sibling folder that is renamed last.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import stat
import tempfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from sensorium_data.errors import RecordingFormatError, SensoriumDataError

__all__ = [
    "CorruptArchiveError",
    "UnsafeArchiveError",
    "check_members",
    "check_sizes",
    "extract",
    "partial_prefix",
    "zip_root",
]

log = logging.getLogger(__name__)

_DRIVE = re.compile(r"^[A-Za-z]:")
_CHUNK = 1 << 20

# Limits on what extract writes (module constants: raise them for an unusual archive). The
# largest published member is a responses file of ~27 MB, a recording extracts to ~15 GB.
MAX_MEMBER_BYTES = 1 << 30
"""Largest file extract writes (1 GiB)."""
MAX_TOTAL_BYTES = 64 << 30
"""Most bytes extract writes from one zip (64 GiB)."""
MAX_RATIO = 100
"""Highest ratio of uncompressed to compressed bytes for a zip of more than 1 GiB."""
RECORDING_SUFFIXES = (".npy", ".json")
"""The files of a recording folder; anything else in the zip is not written."""


class UnsafeArchiveError(SensoriumDataError, ValueError):
    """A zip member would land outside the extraction folder (``..``, absolute path, link)."""


class CorruptArchiveError(SensoriumDataError, ValueError):
    """A zip is truncated or damaged (not a zip, bad CRC, broken compressed data)."""


def partial_prefix(target: Path) -> str:
    """Name prefix of the hidden sibling folders that :func:`extract` writes into first.

    A process killed mid-extraction leaves such a folder behind; whoever holds the lock on
    ``target`` may delete ``target.parent.glob(partial_prefix(target) + "*")``.
    """
    return f".{target.name}.partial-"


def is_junk(name: str) -> bool:
    """True for what macOS zip tools add: ``__MACOSX/`` folders and ``._*`` resource forks."""
    parts = PurePosixPath(name).parts
    return any(p == "__MACOSX" or p.startswith("._") for p in parts)


def _unsafe_reason(info: zipfile.ZipInfo) -> str | None:
    name = info.filename
    parts = re.split(r"[/\\]", name)
    if name.startswith(("/", "\\")) or _DRIVE.match(name):
        return "absolute path"
    if ".." in parts:
        return "'..' component"
    if "\x00" in name:
        return "NUL character"
    if stat.S_ISLNK(info.external_attr >> 16):
        return "symbolic link"
    return None


def check_members(zf: zipfile.ZipFile, zip_path: str | os.PathLike[str]) -> list[zipfile.ZipInfo]:
    """Check every member name of a zip; return the members worth extracting.

    Parameters
    ----------
    zf : zipfile.ZipFile
        The open archive.
    zip_path : str or os.PathLike
        Its path, for the error message.

    Returns
    -------
    list of zipfile.ZipInfo
        All members except the ``__MACOSX/`` folder and ``._*`` files.

    Raises
    ------
    UnsafeArchiveError
        If any member is an absolute path, has a drive letter or a ``..`` component, or is a
        symbolic link. Nothing should then be extracted from the zip at all.

    Examples
    --------
    >>> import io, zipfile
    >>> buf = io.BytesIO()
    >>> with zipfile.ZipFile(buf, "w") as zf:
    ...     zf.writestr("rec/data/videos/0.npy", b"")
    ...     zf.writestr("__MACOSX/rec/._0.npy", b"")
    >>> [m.filename for m in check_members(zipfile.ZipFile(buf), "rec.zip")]
    ['rec/data/videos/0.npy']
    """
    unsafe = [(m.filename, r) for m in zf.infolist() if (r := _unsafe_reason(m)) is not None]
    if unsafe:
        shown = "; ".join(f"{name!r} ({reason})" for name, reason in unsafe[:5])
        more = f" and {len(unsafe) - 5} more" if len(unsafe) > 5 else ""
        msg = (
            f"refusing to extract {os.fspath(zip_path)}: {len(unsafe)} member(s) would be written "
            f"outside the target folder: {shown}{more}. Nothing was extracted; the file is not a "
            "published SENSORIUM recording, download it again from the catalog url"
        )
        raise UnsafeArchiveError(msg)
    return [m for m in zf.infolist() if not is_junk(m.filename)]


def zip_root(zf: zipfile.ZipFile) -> str:
    """Member-name prefix of the recording folder (the one holding ``data/`` and ``meta/``).

    Parameters
    ----------
    zf : zipfile.ZipFile
        The open archive.

    Returns
    -------
    str
        ``"<folder>/"`` for the published zips, ``""`` if ``data/`` and ``meta/`` sit at the
        top of the zip. Prepend it to ``"data/videos/0.npy"`` to read a member.

    Raises
    ------
    RecordingFormatError
        If no folder, or more than one at the same depth, holds both ``data/`` and ``meta/``.

    Examples
    --------
    >>> import io, zipfile
    >>> buf = io.BytesIO()
    >>> with zipfile.ZipFile(buf, "w") as zf:
    ...     zf.writestr("rec/data/videos/0.npy", b"")
    ...     zf.writestr("rec/meta/trials/tiers.npy", b"")
    ...     zf.writestr("__MACOSX/rec/data/._x", b"")
    >>> zip_root(zipfile.ZipFile(buf))
    'rec/'
    """
    found: dict[str, set[str]] = {}
    for name in zf.namelist():
        if is_junk(name):
            continue
        parts = name.split("/")
        for depth, part in enumerate(parts[:-1]):  # a folder, so not the last component
            if part in ("data", "meta"):
                prefix = "".join(p + "/" for p in parts[:depth])
                found.setdefault(prefix, set()).add(part)
    roots = sorted((p for p, kinds in found.items() if kinds == {"data", "meta"}), key=_depth)
    where = zf.filename or "the zip"
    if not roots:
        msg = (
            f"{where} holds no folder with both data/ and meta/, so it is not a SENSORIUM "
            "recording; check that the file is one of the competition's recording zips"
        )
        raise RecordingFormatError(msg)
    if len(roots) > 1 and _depth(roots[0]) == _depth(roots[1]):
        msg = (
            f"{where} holds several recordings ({', '.join(roots)}); expected one folder "
            "with data/ and meta/ per zip, as published"
        )
        raise RecordingFormatError(msg)
    return roots[0]


def _depth(prefix: str) -> int:
    return prefix.count("/")


def extract(zip_path: str | os.PathLike[str], target: str | os.PathLike[str]) -> Path:
    """Extract a recording zip so that ``target`` becomes the recording folder.

    The recording's top-level folder is stripped: the result is ``target/data/...`` and
    ``target/meta/...``. ``__MACOSX/`` and ``._*`` entries are skipped, as is anything outside
    the recording folder's ``data/`` and ``meta/`` .npy and .json files (with a warning). Sizes
    are checked first (:func:`check_sizes`). Every member name is checked before anything is
    written, and the files go to a hidden sibling folder that is renamed to ``target`` only
    when complete, so ``target`` existing means the extraction finished. Each member's CRC is
    checked as it is read. The zip itself is never modified.

    Parameters
    ----------
    zip_path : str or os.PathLike
        The recording zip.
    target : str or os.PathLike
        The folder to create; it must not exist yet. Its parent is created if needed.

    Returns
    -------
    pathlib.Path
        ``target``, the folder holding ``data/`` and ``meta/``.

    Raises
    ------
    UnsafeArchiveError
        If a member would land outside ``target`` (nothing is written).
    CorruptArchiveError
        If the zip is truncated or damaged (nothing is left behind).
    RecordingFormatError
        If the zip holds no folder with ``data/`` and ``meta/``.
    FileExistsError
        If ``target`` exists already.

    Examples
    --------
    >>> import io, zipfile, tempfile, pathlib
    >>> tmp = pathlib.Path(tempfile.mkdtemp())
    >>> with zipfile.ZipFile(tmp / "rec.zip", "w") as zf:
    ...     zf.writestr("rec/data/videos/0.npy", b"")
    ...     zf.writestr("rec/meta/trials/tiers.npy", b"")
    >>> root = extract(tmp / "rec.zip", tmp / "trees" / "rec")
    >>> sorted(p.name for p in root.iterdir())
    ['data', 'meta']
    """
    zip_path, target = Path(zip_path), Path(target)
    if target.exists():
        msg = f"cannot extract {zip_path} into {target}: it exists already; remove it first"
        raise FileExistsError(msg)
    try:
        with zipfile.ZipFile(zip_path) as zf:
            members = check_members(zf, zip_path)
            root = zip_root(zf)
            check_sizes([m for m in members if _recording_file(m, root)], zip_path)
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=partial_prefix(target), dir=target.parent))
            try:
                _write_members(zf, members, root, tmp)
                tmp.rename(target)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
    except (zipfile.BadZipFile, zlib.error, EOFError) as err:
        msg = (
            f"{zip_path} is damaged or truncated ({err}); nothing was extracted. Download it "
            "again (an interrupted copy or download leaves such a file)"
        )
        raise CorruptArchiveError(msg) from err
    log.info("extracted %s into %s", zip_path, target)
    return target


def _recording_file(info: zipfile.ZipInfo, root: str) -> bool:
    """A file of the recording: ``<root>data/...`` or ``<root>meta/...``, .npy or .json."""
    relative = info.filename[len(root):]
    return (info.filename.startswith(root) and relative.startswith(("data/", "meta/"))
            and relative.endswith(RECORDING_SUFFIXES))


def check_sizes(members: list[zipfile.ZipInfo], zip_path: str | os.PathLike[str]) -> None:
    """Refuse to extract members beyond :data:`MAX_MEMBER_BYTES`, :data:`MAX_TOTAL_BYTES` or,
    for more than 1 GiB, :data:`MAX_RATIO` (a zip bomb); ``members`` are the files to write.

    Raises
    ------
    UnsafeArchiveError
        Naming the member or the totals, and the limit (a module constant) to raise.

    Examples
    --------
    >>> import io, zipfile
    >>> buf = io.BytesIO()
    >>> with zipfile.ZipFile(buf, "w") as zf:
    ...     zf.writestr("rec/data/videos/0.npy", b"0" * 100)
    >>> check_sizes(zipfile.ZipFile(buf).infolist(), "rec.zip")
    """
    where = os.fspath(zip_path)
    big = [m for m in members if m.file_size > MAX_MEMBER_BYTES]
    if big:
        msg = (
            f"refusing to extract {where}: member {big[0].filename!r} would be "
            f"{big[0].file_size:,} bytes, over the limit of {MAX_MEMBER_BYTES:,} "
            "(sensorium_data.archive.MAX_MEMBER_BYTES); no published recording has such a "
            "file. Nothing was extracted; download the zip again from the catalog url"
        )
        raise UnsafeArchiveError(msg)
    total = sum(m.file_size for m in members)
    packed = max(sum(m.compress_size for m in members), 1)
    if total > MAX_TOTAL_BYTES or (total > 1 << 30 and total / packed > MAX_RATIO):
        msg = (
            f"refusing to extract {where}: it would write {total:,} bytes from {packed:,} "
            f"(ratio {total / packed:.0f}); the limits are {MAX_TOTAL_BYTES:,} bytes "
            f"(sensorium_data.archive.MAX_TOTAL_BYTES) and a ratio of {MAX_RATIO} "
            "(MAX_RATIO). Nothing was extracted; download the zip again from the catalog url"
        )
        raise UnsafeArchiveError(msg)


def _write_members(
    zf: zipfile.ZipFile, members: list[zipfile.ZipInfo], root: str, dest: Path
) -> None:
    outside = []
    for info in members:
        if not info.is_dir() and not _recording_file(info, root):
            outside.append(info.filename)
            continue
        relative = info.filename[len(root) :]
        if not relative or not info.filename.startswith(root):
            continue
        path = dest.joinpath(*relative.rstrip("/").split("/"))
        if info.is_dir():
            path.mkdir(parents=True, exist_ok=True)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        with zf.open(info) as src, open(path, "wb") as out:  # zipfile checks the CRC at EOF
            shutil.copyfileobj(src, out, _CHUNK)
    if outside:
        log.warning(
            "%s: skipped %d member(s) outside the recording's data/ and meta/ folders (in %r) "
            "or not .npy/.json files, e.g. %r",
            zf.filename,
            len(outside),
            root,
            outside[0],
        )
