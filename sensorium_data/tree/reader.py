"""Reading a recording's file tree (a folder or a zip, read in place): :func:`open_tree`.

Trial indices are the file names; they have gaps (tier ``none`` has no files). Every trial file
of a recording has the same number of frames; shorter trials are NaN-padded. The format is
drawn in :mod:`sensorium_data.tree.formats`.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import io
import logging
import os
import re
import threading
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

import numpy as np

from sensorium_data.archive import is_junk, zip_root
from sensorium_data.errors import RecordingFormatError
from sensorium_data.npy import load_npy
from sensorium_data.tree.formats import OPTIONAL_STREAMS, STATIC_STREAMS, STATISTICS, STREAMS, TIERS

log = logging.getLogger(__name__)


class _Files(Protocol):
    """Read access to the files of one recording, relative to its root folder."""

    location: str

    def listdir(self, folder: str) -> list[str]: ...

    def exists(self, rel: str) -> bool: ...

    def open(self, rel: str) -> io.BufferedIOBase: ...

    def sizes(self) -> list[tuple[str, int]]: ...

    def modified(self) -> float: ...


class _DirFiles:
    def __init__(self, root: Path):
        self.root = root
        self.location = str(root)

    def listdir(self, folder: str) -> list[str]:
        try:
            return [e.name for e in os.scandir(self.root / folder) if e.is_file()]
        except FileNotFoundError:
            return []

    def exists(self, rel: str) -> bool:
        return (self.root / rel).exists()

    def open(self, rel: str) -> io.BufferedIOBase:
        return open(self.root / rel, "rb")

    def sizes(self) -> list[tuple[str, int]]:
        out = []
        for dirpath, _, names in os.walk(self.root):
            for n in names:
                full = Path(dirpath) / n
                rel = full.relative_to(self.root).as_posix()
                if not is_junk(rel):
                    out.append((rel, full.stat().st_size))
        return out

    def modified(self) -> float:
        newest = 0.0
        for folder in ("data", "meta"):
            for dirpath, _, names in os.walk(self.root / folder):
                for n in names:
                    if not is_junk(n):
                        newest = max(newest, (Path(dirpath) / n).stat().st_mtime)
        return newest


class _ZipFiles:
    """Members of a zip under one prefix; one ZipFile handle per thread."""

    def __init__(self, path: Path, prefix: str):
        self.path = path
        self.prefix = prefix
        self.location = f"{path}!/{prefix}"
        self._local = threading.local()
        with zipfile.ZipFile(path) as zf:
            infos = [i for i in zf.infolist() if i.filename.startswith(prefix)]
        self._sizes = {
            i.filename[len(prefix) :]: i.file_size
            for i in infos
            if not i.is_dir() and not is_junk(i.filename)
        }
        self._names = set(self._sizes)
        self._dirs: dict[str, list[str]] = {}
        for rel in self._names:
            folder, _, base = rel.rpartition("/")
            self._dirs.setdefault(folder, []).append(base)

    def _zip(self) -> zipfile.ZipFile:
        zf = getattr(self._local, "zf", None)
        if zf is None:
            zf = self._local.zf = zipfile.ZipFile(self.path)
        return zf

    def listdir(self, folder: str) -> list[str]:
        return list(self._dirs.get(folder.rstrip("/"), []))

    def exists(self, rel: str) -> bool:
        rel = rel.rstrip("/")
        return rel in self._names or rel in self._dirs

    def open(self, rel: str) -> io.BufferedIOBase:
        return self._zip().open(self.prefix + rel)  # type: ignore[return-value]

    def sizes(self) -> list[tuple[str, int]]:
        return list(self._sizes.items())

    def modified(self) -> float:
        return self.path.stat().st_mtime


def _find_root_in_zip(path: Path) -> str:
    try:
        with zipfile.ZipFile(path) as zf:
            return zip_root(zf)
    except zipfile.BadZipFile as e:
        msg = (
            f"{path} is not a readable zip archive ({e}); it may be truncated or corrupt. "
            "Download it again, or pass the extracted folder instead."
        )
        raise RecordingFormatError(msg) from e


def _find_root_in_dir(path: Path) -> Path:
    if (path / "data").is_dir() or (path / "meta").is_dir():
        return path
    children = [c for c in path.iterdir() if c.is_dir() and not is_junk(c.name)]
    inner = [c for c in children if (c / "data").is_dir()]
    if len(inner) == 1:
        return inner[0]
    msg = (
        f"{path} is not a SENSORIUM recording: it has no data/ and meta/ folders. Expected "
        "<folder>/data/{videos,responses,behavior,pupil_center}/<trial>.npy and "
        "<folder>/meta/{neurons,trials,statistics}/ (pass the folder that holds data/ and meta/)."
    )
    raise RecordingFormatError(msg)


def _read_header(f: io.BufferedIOBase) -> tuple[tuple[int, ...], np.dtype]:
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(f)
    else:
        shape, _, dtype = np.lib.format.read_array_header_2_0(f)
    return tuple(shape), np.dtype(dtype)


@dataclass
class FileTree:
    """A recording in the competition's file-tree format, opened for reading.

    Use :func:`open_tree` to make one. Nothing is written to the folder or zip.
    """

    files: _Files
    name: str
    trials: np.ndarray
    """Trial indices that have files, ascending (gaps kept)."""
    tiers: np.ndarray
    """Tier of each trial of :attr:`trials`."""
    streams: tuple[str, ...]
    competition: Literal["2022", "2023"] = "2023"
    """``"2022"`` for a static-image recording (``data/images``), else ``"2023"``."""
    _meta_cache: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def location(self) -> str:
        return self.files.location

    @functools.cached_property
    def fingerprint(self) -> str:
        """A short hash of the tree's file names and sizes (the same for a zip and its
        extraction), to tell whether a converted store still matches its source."""
        h = hashlib.blake2b(digest_size=8)
        for rel, size in sorted(self.files.sizes()):
            if rel.startswith(("data/", "meta/")):
                h.update(f"{rel}\0{size}\n".encode())
        return h.hexdigest()

    @functools.cached_property
    def modified(self) -> float:
        """The newest modification time (seconds since the epoch) of the tree's data and meta
        files; for a zip, the zip's own. Not part of :attr:`fingerprint` (an extraction is
        newer than its zip); :func:`sensorium_data.convert` warns when a store is older."""
        return self.files.modified()

    def path(self, stream: str, trial: int) -> str:
        return f"data/{stream}/{trial}.npy"

    def read(self, stream: str, trial: int) -> np.ndarray:
        """Load ``data/<stream>/<trial>.npy`` as stored (float32 or float64)."""
        rel = self.path(stream, trial)
        try:
            with self.files.open(rel) as f:
                return np.load(f, allow_pickle=False)
        except (zipfile.BadZipFile, zlib.error, EOFError, ValueError) as e:
            msg = (
                f"could not read {self.location}/{rel} ({e}): the file is damaged or truncated. "
                "Download or extract the recording again."
            )
            raise RecordingFormatError(msg) from e

    def header(self, stream: str, trial: int) -> tuple[tuple[int, ...], np.dtype]:
        """Shape and dtype of one trial file, from its header alone."""
        rel = self.path(stream, trial)
        try:
            with self.files.open(rel) as f:
                return _read_header(f)
        except (zipfile.BadZipFile, zlib.error, EOFError, ValueError) as e:
            msg = f"{self.location}/{rel} is not a valid .npy file ({e}); the recording is damaged."
            raise RecordingFormatError(msg) from e

    def meta(self, rel: str, *, required: bool = True) -> np.ndarray | None:
        """Load ``meta/<rel>.npy``; None if it is missing and not ``required``."""
        if rel in self._meta_cache:
            return self._meta_cache[rel]
        full = f"meta/{rel}.npy"
        if not self.files.exists(full):
            if required:
                msg = f"{self.location} is not a complete SENSORIUM recording: {full} is missing."
                raise RecordingFormatError(msg)
            return None
        try:
            with self.files.open(full) as f:
                data = f.read()
        except (zipfile.BadZipFile, zlib.error, EOFError) as e:
            msg = (
                f"could not read {self.location}/{full} ({e}): the file is damaged. Extract or "
                "download the recording again."
            )
            raise RecordingFormatError(msg) from e
        value = load_npy(data, f"{self.location}/{full}")
        self._meta_cache[rel] = value
        return value

    def numbers(self, rel: str, *, required: bool = True) -> np.ndarray | None:
        """:meth:`meta` of a file that must hold numbers (ids, coordinates, statistics)."""
        value = self.meta(rel, required=required)
        if value is not None and np.asarray(value).dtype.kind not in "biuf":
            msg = (
                f"{self.location}/meta/{rel}.npy holds {np.asarray(value).dtype} values; it "
                "must hold numbers. The file is damaged; replace it with the published one."
            )
            raise RecordingFormatError(msg)
        return value

    def trial_labels(self, name: str) -> np.ndarray | None:
        """``meta/trials/<name>.npy`` (e.g. stimulus_type) for :attr:`trials`, if present."""
        values = self.meta(f"trials/{name}", required=False)
        if values is None:
            return None
        return np.asarray(values)[self.trials].astype(str)

    def statistics(self, stream: str) -> dict[str, np.ndarray]:
        """The shipped normalization statistics of a stream (``meta/statistics/<stream>/all``)."""
        out = {}
        for stat in STATISTICS:
            value = self.numbers(f"statistics/{stream}/all/{stat}", required=False)
            if value is not None:
                out[stat] = np.asarray(value)
        return out

    def check_shapes(
        self, *, integer_ok: tuple[str, ...] = ()
    ) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
        """Read every trial file's header; one shape per stream, or a clear error.

        Streams in ``integer_ok`` may also hold integers (else floating point is required).
        """
        found: dict[str, tuple[tuple[int, ...], np.dtype]] = {}
        for stream in self.streams:
            first = int(self.trials[0])
            shape0, dtype0 = self.header(stream, first)
            for trial in self.trials[1:]:
                shape, dtype = self.header(stream, int(trial))
                if shape != shape0:
                    msg = (
                        f"{self.location}/{self.path(stream, int(trial))} has shape {shape} but "
                        f"{self.path(stream, first)} has {shape0}: every trial of a stream must "
                        "have the same shape (shorter trials are NaN-padded). The file is damaged "
                        "or from another recording; replace it with the published one."
                    )
                    raise RecordingFormatError(msg)
                if dtype.kind != "f" and not (stream in integer_ok and dtype.kind in "iu"):
                    msg = (
                        f"{self.location}/{self.path(stream, int(trial))} holds {dtype} values; "
                        "the recordings store floating point (float32 or float64) arrays."
                    )
                    raise RecordingFormatError(msg)
            found[stream] = (shape0, dtype0)
        return found


def open_tree(path: str | os.PathLike[str]) -> FileTree:
    """Open a recording's file tree (a folder, or a zip read in place) and list its trials.

    Trials are the indices of the files in ``data/responses``; files under ``__MACOSX/``, names
    starting with ``._`` and anything that is not ``<integer>.npy`` are ignored.

    Examples
    --------
    >>> tree = open_tree("~/data/dynamic29515-10-12-Video-9b4f6a1a067fe51e15306b9628efea20.zip")
    ... # doctest: +SKIP
    >>> tree = open_tree(tiny[0])  # or a simulated recording's folder (sd.simulate)
    >>> tree.name, tree.competition, tree.trials[:3].tolist(), tree.tiers[:3].tolist()
    ('tiny-A', '2023', [0, 1, 2], ['final_test_main', 'final_test_bonus', 'oracle'])
    """
    path = Path(path).expanduser()
    files: _Files
    if path.is_file():
        if not zipfile.is_zipfile(path):
            msg = (
                f"{path} is neither a folder nor a zip archive; pass a recording's folder (holding "
                "data/ and meta/), its zip, or a converted .zarr store."
            )
            raise RecordingFormatError(msg)
        prefix = _find_root_in_zip(path)
        files = _ZipFiles(path, prefix)
        name = prefix.rstrip("/") or path.stem
    elif path.is_dir():
        root = _find_root_in_dir(path)
        files = _DirFiles(root)
        name = root.name
    else:
        msg = f"{path} does not exist; pass an existing recording folder, zip or store."
        raise RecordingFormatError(msg)

    static = files.exists("data/images")
    if static and files.exists("data/videos"):
        msg = (
            f"{files.location} has both data/images (SENSORIUM 2022) and data/videos "
            "(SENSORIUM 2023); a recording has one of them. Pass the folder of one recording."
        )
        raise RecordingFormatError(msg)
    required = STATIC_STREAMS if static else STREAMS
    streams = [*required, *(s for s in OPTIONAL_STREAMS if files.exists(f"data/{s}"))]
    indices: dict[str, set[int]] = {}
    for stream in streams:
        found = _trial_files(files, stream)
        if not found:
            msg = (
                f"{files.location} is not a SENSORIUM recording: data/{stream}/ holds no "
                f"<trial>.npy files. Every {'2022' if static else '2023'} recording has "
                f"data/{{{','.join(required)}}}/<trial>.npy."
            )
            raise RecordingFormatError(msg)
        indices[stream] = found
    every = set.union(*indices.values())
    for stream, found in indices.items():
        missing = sorted(every - found)
        if missing:
            other = next(s for s in streams if missing[0] in indices[s])
            shown = ", ".join(map(str, missing[:10])) + (" ..." if len(missing) > 10 else "")
            msg = (
                f"{files.location}: trial {missing[0]} has data/{other}/{missing[0]}.npy but no "
                f"data/{stream}/{missing[0]}.npy ({len(missing)} trial(s) missing from "
                f"data/{stream}: {shown}). The recording is incomplete: extract or download it "
                "again."
            )
            raise RecordingFormatError(msg)
    trials = np.array(sorted(every), dtype=np.int64)

    tree = FileTree(files, name, trials, np.array([], dtype=str), tuple(streams),
                    "2022" if static else "2023")
    all_tiers = _check_tiers(files.location, tree.meta("trials/tiers"), trials, static)
    tree.tiers = all_tiers[trials]
    return tree


_TRIAL_FILE = re.compile(r"(0|[1-9][0-9]*)\.npy", re.ASCII)


def _trial_files(files: _Files, stream: str) -> set[int]:
    """The trial indices of ``data/<stream>/<trial>.npy``; refuses a name that looks like a
    trial file but is not the canonical ``<index>.npy`` (``08.npy``, non-ASCII digits)."""
    found = set()
    for name in files.listdir(f"data/{stream}"):
        if _TRIAL_FILE.fullmatch(name):
            found.add(int(name[:-4]))
        elif name.endswith(".npy") and name[:-4].isdigit():
            msg = (
                f"{files.location}/data/{stream}/{name!r} looks like a trial file but is not "
                "named <trial index>.npy with ASCII digits and no leading zero (e.g. 8.npy); "
                "rename or remove it."
            )
            raise RecordingFormatError(msg)
    return found


def _check_tiers(location: str, tiers: np.ndarray | None, trials: np.ndarray,
                 static: bool) -> np.ndarray:
    """``meta/trials/tiers.npy`` as strings, after checking it against the trial files: one
    string entry per trial index, known tier names (2023), and files for every trial whose
    tier is not ``none``."""
    where = f"{location}/meta/trials/tiers.npy"
    values = np.asarray(tiers)
    if values.ndim != 1 or values.dtype.kind not in "UO":
        msg = (
            f"{where} holds a {values.ndim}-d {values.dtype} array; it must be a 1-d array of "
            "tier names (str), one per trial index. Replace it with the published file."
        )
        raise RecordingFormatError(msg)
    names = values.astype(str)
    if trials[-1] >= len(names):
        msg = (
            f"{location}: data files go up to trial {trials[-1]} but meta/trials/tiers.npy "
            f"has {len(names)} entries; the file tree and its metadata do not match."
        )
        raise RecordingFormatError(msg)
    if not static:
        unknown = sorted(set(names.tolist()) - {*TIERS, "none"})
        if unknown:
            hints = [difflib.get_close_matches(u, TIERS, 1) for u in unknown]
            shown = ", ".join(f"{u!r}" + (f" (did you mean {h[0]!r}?)" if h else "")
                              for u, h in zip(unknown, hints, strict=True))
            msg = (
                f"{where} has unknown tier(s) {shown}; SENSORIUM 2023 tiers are "
                f"{', '.join(TIERS)} and 'none' (no files). Fix the names in tiers.npy."
            )
            raise RecordingFormatError(msg)
    listed = np.flatnonzero(names != "none")
    lost = np.setdiff1d(listed, trials)
    if len(lost):
        t = int(lost[0])
        msg = (
            f"{location}: trial {t} has tier {str(names[t])!r} in meta/trials/tiers.npy but no "
            f"data/<stream>/{t}.npy files ({len(lost)} such trial(s): "
            f"{lost[:10].tolist()}). The recording is incomplete: extract or download it again."
        )
        raise RecordingFormatError(msg)
    return names

